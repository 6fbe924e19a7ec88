//! `cairn-jepsen failover`: produce unavailability after kill -9 of a
//! partition leader — the time from the kill to the next acknowledged write
//! on that partition that was sent after the kill — over many kills.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use cairn_chaos::{Hosts, NetnsHosts};
use cairn_client::{Acks, Client, ClientConfig, OwnedRecord, RetryPolicy};
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct FailoverPlan {
    pub kills: u32,
    pub nodes: u64,
    pub producers: u32,
    pub results: PathBuf,
    pub bin: PathBuf,
    pub netns_script: PathBuf,
    pub keep_cluster: bool,
}

const TOPIC: &str = "failover";

/// Sends that completed ok: (invoked at, completed at).
type Acked = Arc<Mutex<Vec<(Instant, Instant)>>>;

async fn client(bootstrap: &[String]) -> Result<Client> {
    let config = ClientConfig {
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            deadline: Duration::from_secs(10),
        },
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        produce_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    };
    Ok(Client::connect_with(bootstrap, config).await?)
}

async fn produce_loop(client: Client, acked: Acked, stop: Arc<AtomicBool>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let invoked = Instant::now();
        let record = OwnedRecord {
            partition: Some(0),
            value: Some(Bytes::from(n.to_string())),
            ..OwnedRecord::default()
        };
        n += 1;
        let r = client.produce_records(TOPIC, &[record], Acks::All).await;
        let ok = matches!(&r, Ok(o) if o.iter().all(|p| p.result.is_ok()));
        if ok {
            acked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((invoked, Instant::now()));
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Waits until partition 0 has a leader and all replicas are healthy, and
/// the same leader and epoch were reported three times 100 ms apart (a view
/// taken mid-election is not trusted). Returns (leader, leader epoch).
async fn settled(admin: &Client, replicas: usize, bound: Duration) -> Result<(u64, u64)> {
    let deadline = Instant::now() + bound;
    let mut seen: Option<(u64, u64)> = None;
    let mut agreeing = 0;
    loop {
        let now = match admin.describe_topic(TOPIC).await {
            Ok(t) => t.partitions.first().and_then(|p| {
                let l = p.leader?;
                (p.healthy_replicas.len() >= replicas).then_some((l, p.leader_epoch))
            }),
            Err(_) => None,
        };
        match now {
            Some(v) if seen == Some(v) => agreeing += 1,
            Some(v) => {
                seen = Some(v);
                agreeing = 1;
            }
            None => agreeing = 0,
        }
        if agreeing >= 3 {
            return Ok(seen.unwrap_or_default());
        }
        if Instant::now() > deadline {
            bail!("partition 0 did not settle (leader + {replicas} healthy replicas) within {bound:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The leader epoch of partition 0 once it has a leader again.
async fn epoch_now(admin: &Client) -> Option<u64> {
    for _ in 0..100 {
        if let Ok(t) = admin.describe_topic(TOPIC).await {
            if let Some(p) = t.partitions.first().filter(|p| p.leader.is_some()) {
                return Some(p.leader_epoch);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

pub async fn failover(plan: FailoverPlan) -> Result<Vec<Duration>> {
    std::fs::create_dir_all(&plan.results)
        .with_context(|| format!("creating {}", plan.results.display()))?;
    let hosts = NetnsHosts::new(&plan.netns_script, plan.results.join("hosts"), plan.nodes);
    // A run starts from empty nodes: take down what an earlier run left, then wipe it.
    hosts.down().await.ok();
    let _ = std::fs::remove_dir_all(hosts.dir());
    eprintln!("--- starting {} nodes in network namespaces", plan.nodes);
    hosts.up(&plan.bin, None).await?;
    let result = measure(&plan, &hosts).await;
    if !plan.keep_cluster {
        let _ = hosts.down().await;
    }
    result
}

async fn measure(plan: &FailoverPlan, hosts: &NetnsHosts) -> Result<Vec<Duration>> {
    let bootstrap = hosts.bootstrap();
    let admin = client(&bootstrap).await?;
    let rf = plan.nodes.min(3) as usize;
    // Nodes register with the metadata group a moment after it has a leader.
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = admin
        .create_topic(TOPIC, 1, rf as u32, HashMap::new())
        .await
    {
        if Instant::now() > deadline {
            bail!("cannot create the topic: {e}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    settled(&admin, rf, Duration::from_secs(60)).await?;
    let mut not_leader = 0u32;
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..plan.producers {
        tasks.push(tokio::spawn(produce_loop(
            client(&bootstrap).await?,
            acked.clone(),
            stop.clone(),
        )));
    }
    let mut downtimes = Vec::new();
    let mut k = 0;
    while downtimes.len() < plan.kills as usize {
        k += 1;
        if k > plan.kills * 2 {
            bail!("{not_leader} of {k} kills did not hit the leader");
        }
        let (leader, epoch) = settled(&admin, rf, Duration::from_secs(60)).await?;
        // Writes flow before the kill.
        let flowing = Instant::now();
        while acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .is_none_or(|(_, done)| *done < flowing)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let killed_at = Instant::now();
        hosts.kill(leader).await?;
        // Only a write sent after the old leader is gone proves a new one.
        let dead_at = Instant::now();
        let next = loop {
            let found = acked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .rev()
                .take_while(|(_, done)| *done > killed_at)
                .filter(|(invoked, _)| *invoked > dead_at)
                .map(|(_, done)| *done)
                .min();
            if let Some(done) = found {
                break done;
            }
            if killed_at.elapsed() > Duration::from_secs(60) {
                bail!("kill {k}: no write acknowledged within 60 s of killing node {leader}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let down = next - killed_at;
        if epoch_now(&admin).await == Some(epoch) {
            // The epoch did not move: the node killed was not leading after all.
            eprintln!(
                "    kill {k}: node {leader} was not the leader (epoch unchanged); not counted"
            );
            not_leader += 1;
        } else {
            eprintln!(
                "    kill {k}: leader node {leader}, next ack after {:.3} s",
                down.as_secs_f64()
            );
            downtimes.push(down);
        }
        hosts.start(leader, None).await?;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mut sorted = downtimes.clone();
    sorted.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    let median = ms(&sorted[sorted.len() / 2]);
    let max = ms(sorted.last().unwrap_or(&Duration::ZERO));
    let summary = serde_json::json!({
        "kills": plan.kills,
        "kills_not_counted_not_leader": not_leader,
        "median_ms": median,
        "max_ms": max,
        "min_ms": ms(&sorted[0]),
        "each_ms": downtimes.iter().map(ms).collect::<Vec<_>>(),
    });
    std::fs::write(
        plan.results.join("failover.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    eprintln!(
        "failover over {} kills: median {median:.0} ms, max {max:.0} ms (min {:.0} ms)",
        plan.kills,
        ms(&sorted[0])
    );
    Ok(downtimes)
}
