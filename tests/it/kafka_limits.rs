//! Reliability finding 15: the Kafka listener had no node-wide limits. Any
//! number of connections was accepted, and each read a request whole
//! (allocating its declared size first) before any budget was checked, so
//! a flood of large requests over many connections held their sum in the
//! node's memory. Now connections are capped (per node and per client
//! address), and every request's bytes are reserved from one node-wide
//! budget before its body is read.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cluster::{metric, TestCluster};
use crate::kafka::kclient;

const MAX_REQUEST: usize = 8 << 20;
const QUEUED: usize = 32 << 20;
const MAX_CONNECTIONS: usize = 2_300;
const IDLE: usize = 2_000;
const FLOODERS: usize = 100;

/// A memory figure of a process from /proc (`VmHWM`: the resident-set
/// high-water mark; `VmRSS`: now), in bytes.
fn memory(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("no {field}"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb * 1024)
}

/// Sends `rounds` frames of the largest accepted size, each on a new
/// connection (the node closes a connection after a request it cannot
/// decode).
async fn flood(addr: String, rounds: usize) -> Result<()> {
    let mut frame = vec![0u8; 4 + MAX_REQUEST];
    frame[..4].copy_from_slice(&(MAX_REQUEST as i32).to_be_bytes());
    for _ in 0..rounds {
        let Ok(mut s) = TcpStream::connect(&addr).await else {
            continue;
        };
        // The node may close the connection before it read everything.
        let _ = s.write_all(&frame).await;
        let mut buf = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await;
    }
    Ok(())
}

/// Whether the node closed `s` (read returns end of stream) within `wait`.
async fn closed(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(wait, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_idle_connections_and_a_flood_of_large_requests_leave_the_node_serving() -> Result<()>
{
    let mut cluster = TestCluster::new(1)?
        .with_env("CAIRN_KAFKA_MAX_REQUEST_BYTES", &MAX_REQUEST.to_string())
        .with_env("CAIRN_KAFKA_MAX_QUEUED_REQUEST_BYTES", &QUEUED.to_string())
        .with_env("CAIRN_KAFKA_MAX_CONNECTIONS", &MAX_CONNECTIONS.to_string());
    cluster.start_node(0)?;
    cluster.wait_ready(Duration::from_secs(30)).await?;
    let client = cluster.client().await?;
    client
        .create_topic("t", 1, 1, std::collections::HashMap::new())
        .await?;
    let addr = cluster.specs[0].kafka.clone();
    let bootstrap = cluster.kafka_bootstrap();
    let pid = cluster.pid(0).context("node 1 runs")?;

    eprintln!("--- {IDLE} idle connections");
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(&addr).await?);
    }
    let before = memory(pid, "VmRSS")?;

    eprintln!("--- {FLOODERS} connections at a time send {} MiB requests while a client produces and consumes", MAX_REQUEST >> 20);
    let started = Instant::now();
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| tokio::spawn(flood(addr.clone(), 2)))
        .collect();
    let b = bootstrap.clone();
    let served = tokio::task::spawn_blocking(move || -> Result<usize> {
        let produced = kclient("confluent", "produce", &b, "t", &["--count", "200"])?;
        let consumed = kclient(
            "confluent",
            "consume",
            &b,
            "t",
            &["--partitions", "0", "--expect", "200", "--timeout", "60"],
        )?;
        ensure!(produced.len() == 200, "{} acknowledged", produced.len());
        Ok(consumed.len())
    });
    for f in flooders {
        f.await??;
    }
    let consumed = served.await??;
    let peak = memory(pid, "VmHWM")?;
    eprintln!(
        "flood of {} requests over {:.1} s; client consumed {consumed}; node memory {} MiB before, peak {} MiB",
        FLOODERS * 2,
        started.elapsed().as_secs_f64(),
        before >> 20,
        peak >> 20
    );
    ensure!(consumed >= 200, "the client consumed {consumed} of 200");
    ensure!(
        peak.saturating_sub(before) < 256 << 20,
        "the node's memory grew by {} MiB under the flood (queued requests are capped at {} MiB)",
        peak.saturating_sub(before) >> 20,
        QUEUED >> 20
    );

    eprintln!("--- past {MAX_CONNECTIONS} connections, new ones are closed at once");
    let mut more = Vec::new();
    for _ in 0..400 {
        more.push(TcpStream::connect(&addr).await?);
    }
    let mut refused = 0;
    for s in &mut more {
        if closed(s, Duration::from_millis(200)).await {
            refused += 1;
        }
    }
    let counted = metric(
        &cluster.specs[0].admin,
        "cairn_kafka_connections_refused_total",
    )?;
    ensure!(
        refused >= 100 && counted >= 100.0,
        "{refused} of 400 connections past the limit were closed ({counted} counted)"
    );
    drop(more);
    drop(idle);

    eprintln!("--- with the connections gone, clients are served again");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&cluster.specs[0].admin, "cairn_kafka_connections")? > 10.0 {
        ensure!(Instant::now() < deadline, "connections not released");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = kclient("confluent", "produce", &bootstrap, "t", &["--count", "10"])?;
    ensure!(again.len() == 10);
    Ok(())
}
