//! `cairn bench commit`: consumer-group offset commits per second.
//!
//! `--concurrency` tasks, spread over `--connections` clients (one HTTP/2
//! connection each, as separate consumer processes would have), each commit, one request at a time, an increasing
//! offset for `--partitions-per-commit` partitions of a group (tasks spread
//! over `--groups` groups). The groups have no members, so these are tool
//! commits; they take the same path as members' commits: checked by the
//! coordinator, batched into one metadata Raft entry with whatever else is
//! waiting, fsynced on a majority, applied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use cairn_client::proto::OffsetCommit;
use cairn_client::Client;
use hdrhistogram::Histogram;
use serde_json::json;

use super::meter::{per_second, Meter};
use super::report::Latency;
use crate::cli::{BenchCommitArgs, Format};

/// Runs `cairn bench commit`.
pub async fn run(clients: Vec<Client>, args: BenchCommitArgs) -> Result<()> {
    let meter = Arc::new(Meter::default());
    let start = Instant::now();
    let stop = start + Duration::from_secs(args.seconds);
    let progress = meter.spawn_progress(start);
    let mut tasks = Vec::new();
    for task in 0..args.concurrency {
        let client = clients[task as usize % clients.len()].clone();
        let meter = Arc::clone(&meter);
        let group = format!("{}-{}", args.group_prefix, task % args.groups);
        let partitions = args.partitions_per_commit;
        let topic = args.topic.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("histogram");
            let mut offset = 0i64;
            while Instant::now() < stop {
                offset += 1;
                let offsets = (0..partitions)
                    .map(|p| OffsetCommit {
                        topic: topic.clone(),
                        partition: task * partitions + p,
                        offset,
                        metadata: String::new(),
                    })
                    .collect();
                let sent = Instant::now();
                meter.start_request();
                let r = client.commit_offsets(&group, offsets).await;
                meter.end_request();
                match r {
                    Ok(()) => {
                        let _ = hist.record(sent.elapsed().as_micros() as u64);
                        meter.add(1, u64::from(partitions));
                    }
                    Err(e) => {
                        meter.error();
                        tracing::warn!(error = %e, "commit failed");
                    }
                }
            }
            hist
        }));
    }
    let mut hist = Histogram::<u64>::new(3)?;
    for t in tasks {
        hist.add(t.await?)?;
    }
    progress.abort();
    let elapsed = start.elapsed();
    let r = meter.read();
    let latency = Latency::from_histogram(&hist);
    let commits_per_s = per_second(r.records, elapsed);
    let offsets_per_s = per_second(r.bytes, elapsed);
    match args.format {
        Format::Text => println!(
            "{} commits in {:.1} s: {:.0} commits/s ({:.0} partition offsets/s), {} errors; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            r.records,
            elapsed.as_secs_f64(),
            commits_per_s,
            offsets_per_s,
            r.errors,
            latency.p50_us as f64 / 1000.0,
            latency.p99_us as f64 / 1000.0,
            latency.max_us as f64 / 1000.0,
        ),
        Format::Json => println!(
            "{}",
            json!({
                "commits": r.records,
                "partition_offsets": r.bytes,
                "errors": r.errors,
                "elapsed_s": elapsed.as_secs_f64(),
                "commits_per_s": commits_per_s,
                "partition_offsets_per_s": offsets_per_s,
                "latency_ms": {
                    "p50": latency.p50_us as f64 / 1000.0,
                    "p99": latency.p99_us as f64 / 1000.0,
                    "p999": latency.p999_us as f64 / 1000.0,
                    "max": latency.max_us as f64 / 1000.0,
                },
            })
        ),
    }
    if r.records == 0 {
        anyhow::bail!("no commit succeeded");
    }
    Ok(())
}
