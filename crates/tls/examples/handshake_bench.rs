//! TLS handshakes per second a listener accepts: CONCURRENCY tasks connect,
//! complete a full handshake (no session resumption), and close, for SECONDS.
//!
//!   cargo run --release -p cairn-tls --example handshake_bench -- ADDR CA_FILE [SECONDS [CONCURRENCY]]
//!
//! The client runs on the same machine as the node: on a small machine it
//! takes CPU from the server, so the figure is a floor.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args.get(1).context("ADDR")?.clone();
    let ca = args.get(2).context("CA_FILE")?.clone();
    let seconds: f64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(10.0);
    let concurrency: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(8);
    let client = cairn_tls::ClientTls::from_files(std::path::Path::new(&ca), None)?;
    let mut config = (*client.rustls_config()).clone();
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols.clear();
    let config = Arc::new(config);
    let host = addr.rsplit_once(':').context("host:port")?.0.to_string();
    let name = ServerName::try_from(host)?;
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (config, name, addr) = (config.clone(), name.clone(), addr.clone());
        let (done, failed) = (done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let ok = async {
                    let tcp = TcpStream::connect(&addr).await?;
                    let s = tokio_rustls::TlsConnector::from(config.clone())
                        .connect(name.clone(), tcp)
                        .await?;
                    drop(s);
                    Ok::<_, std::io::Error>(())
                }
                .await;
                match ok {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let mut next = start + Duration::from_secs(1);
    while Instant::now() < end {
        tokio::time::sleep_until(next.into()).await;
        eprintln!(
            "{:>4.0} s  {} handshakes",
            start.elapsed().as_secs_f64(),
            done.load(Ordering::Relaxed)
        );
        next += Duration::from_secs(1);
    }
    for t in tasks {
        t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "{{\"handshakes\": {n}, \"failed\": {}, \"seconds\": {secs:.1}, \"per_s\": {:.0}}}",
        failed.load(Ordering::Relaxed),
        n as f64 / secs
    );
    Ok(())
}
