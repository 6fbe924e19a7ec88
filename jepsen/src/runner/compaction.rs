//! The compaction workload: producers write keyed records over a small key
//! space to a compacted topic (`cleanup.policy=compact`, a short
//! `delete.retention.ms`), a share of them tombstones, while the nemesis
//! runs; nodes compact every [`COMPACTION_INTERVAL`]. After the final heal
//! the writers stop, the cluster settles (every replica caught up with its
//! leader and compacted through its end, tombstones past their retention),
//! and every replica's own copy of every partition is read through the
//! nodes' test-only admin endpoint (`/test/replica-log`, on with
//! `test_replica_reads`) into the history as `replica-read` ops. The checker
//! (`check_compaction`) compares each replica's final state of each key with
//! the acknowledged writes. A run in which some replica removed nothing is
//! invalid: the check would not have tested compaction.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cairn_chaos::{Hosts, NetnsHosts, NodeId};
use cairn_client::proto::FetchResponse;
use cairn_client::{Client, FetchedRecords, OffsetSpec};
use cairn_jepsen::{check_compaction, verdict, History, KeyedRecord, OpF, OpKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::recorder::Recorder;
use super::run::{self, Outcome, TestPlan};
use super::workload::{self, Shared};

/// How often nodes compact in this workload (`compaction_interval_ms`).
pub const COMPACTION_INTERVAL: Duration = Duration::from_millis(1000);
pub const TOPIC: &str = "jepsen-compact";
/// The share of writes that are tombstones.
const TOMBSTONE_RATIO: f64 = 0.2;
/// How long the cluster may take to settle after the writers stop.
const SETTLE_BOUND: Duration = Duration::from_secs(120);
/// Process ids of the final replica reads: this plus the node id.
const READER_PROCESS: u64 = 2000;
/// The admin HTTP port of every node (`cluster/netns`).
const ADMIN_PORT: u16 = 9644;

pub async fn run_on(
    plan: &TestPlan,
    hosts: Arc<NetnsHosts>,
    faults: Vec<Box<dyn cairn_chaos::Fault>>,
    mut notes: Vec<String>,
) -> Result<Outcome> {
    let dir = plan.results.clone();
    let bootstrap = hosts.bootstrap();
    let admin = workload::connect(&bootstrap, Duration::from_secs(10)).await?;
    let configs = HashMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        (
            "delete.retention.ms".to_string(),
            plan.delete_retention.as_millis().to_string(),
        ),
    ]);
    run::create_topic(&admin, TOPIC, plan.partitions, plan.nodes, configs).await?;

    let recorder = Arc::new(Recorder::create(&dir.join("history.jsonl"))?);
    let shared = Arc::new(
        Shared::new(
            recorder.clone(),
            bootstrap.clone(),
            TOPIC,
            plan.partitions,
            plan.send_interval,
        )
        .with_keys(plan.keys, TOMBSTONE_RATIO),
    );
    eprintln!(
        "--- compaction workload: {} producers, {} keys over {} partitions, {:.0}% tombstones, \
         delete.retention.ms {}; nemesis {} for {:?} (seed {})",
        plan.producers,
        plan.keys,
        plan.partitions,
        TOMBSTONE_RATIO * 100.0,
        plan.delete_retention.as_millis(),
        plan.nemesis,
        plan.time,
        plan.seed
    );
    let producers: Vec<_> = (0..plan.producers)
        .map(|i| {
            tokio::spawn(workload::producer(
                shared.clone(),
                plan.seed ^ (i as u64 + 1),
            ))
        })
        .collect();
    let progress = {
        let shared = shared.clone();
        let total = plan.time;
        let nodes = hosts.nodes();
        tokio::spawn(async move {
            let start = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let sent: u64 = shared
                    .next_value
                    .iter()
                    .map(|v| v.load(Ordering::Relaxed))
                    .sum();
                let removed = removed_by_metrics(&nodes).await;
                eprintln!(
                    "    {:5.0}s / {:.0}s: {sent} writes invoked; compaction removed {removed} \
                     records (live nodes' counters)",
                    start.elapsed().as_secs_f64(),
                    total.as_secs_f64()
                );
            }
        })
    };
    let schedule = run::run_nemesis(plan, &hosts, &admin, TOPIC, faults, &recorder).await;
    let removed_during = removed_by_metrics(&hosts.nodes()).await;
    notes.push(format!(
        "compaction during the run: the nodes' cairn_compaction_removed_records_total add up \
         to {removed_during} at the end of the nemesis (a restarted node's counter starts over)"
    ));
    let live =
        run::heal_and_await_writes(plan, &hosts, &recorder, &shared.last_ok_send_us, &mut notes)
            .await;
    shared.stop_producers.store(true, Ordering::Relaxed);
    for p in producers {
        let _ = p.await;
    }
    progress.abort();

    eprintln!("--- settling: replicas caught up and compacted, tombstones past their retention");
    let settled = settle(plan, &admin, &mut notes).await;
    eprintln!("--- reading every replica of every partition");
    let compacted = read_replicas(&admin, &recorder, &mut notes).await?;
    recorder.finish()?;
    notes.push(tombstone_stats(&History::read_jsonl(
        &dir.join("history.jsonl"),
    )?));

    let (result, meta) = run::check_and_report(plan, &check_compaction, schedule, notes, None)?;
    let valid = verdict(&result, &meta).valid && live && settled && compacted;
    let summary = std::fs::read_to_string(dir.join("report.txt")).unwrap_or_default();
    Ok(Outcome {
        valid,
        dir,
        summary,
    })
}

/// How many tombstones were written, by outcome.
fn tombstone_stats(history: &History) -> String {
    let (mut ok, mut other) = (0, 0);
    for op in history
        .ops
        .iter()
        .filter(|op| op.f == OpF::Send && op.tombstone)
    {
        match op.kind {
            OpKind::Invoke => {}
            OpKind::Ok => ok += 1,
            _ => other += 1,
        }
    }
    format!("tombstones: {ok} acknowledged, {other} failed or unknown")
}

/// What a node's `/test/replica-log` said about its replica.
#[derive(Debug, Clone, Default)]
struct ReplicaLog {
    high_watermark: u64,
    log_start: u64,
    next_offset: u64,
    cleaned_through: u64,
    records: Vec<KeyedRecord>,
}

/// Waits (up to [`SETTLE_BOUND`]) until every replica of every partition
/// has its leader's end as its high watermark and has compacted through it,
/// and the tombstones written last are past `delete.retention.ms` plus a few
/// compaction intervals. Notes what it waited for; whether it settled.
async fn settle(plan: &TestPlan, admin: &Client, notes: &mut Vec<String>) -> bool {
    let started = Instant::now();
    let tombstones_expire = started + plan.delete_retention + 3 * COMPACTION_INTERVAL;
    let deadline = started + SETTLE_BOUND;
    let mut waiting_for;
    loop {
        match unsettled(admin).await {
            Ok(None) if Instant::now() >= tombstones_expire => {
                notes.push(format!(
                    "settled {:.1} s after the writers stopped: every replica at its leader's \
                     end and compacted through it, the last tombstones past delete.retention.ms",
                    started.elapsed().as_secs_f64()
                ));
                return true;
            }
            Ok(None) => waiting_for = "tombstone retention".to_string(),
            Ok(Some(what)) => waiting_for = what,
            Err(e) => waiting_for = e.to_string(),
        }
        if Instant::now() >= deadline {
            notes.push(format!(
                "SETTLE FAILED: not settled {SETTLE_BOUND:?} after the writers stopped: \
                 {waiting_for}"
            ));
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `None` once every replica is caught up and compacted; else what is not.
async fn unsettled(admin: &Client) -> Result<Option<String>> {
    let topic = admin
        .describe_topic(TOPIC)
        .await
        .context("describing the topic")?;
    for p in &topic.partitions {
        let end = admin
            .list_offsets(TOPIC, p.partition, OffsetSpec::Latest)
            .await
            .with_context(|| format!("the end of partition {}", p.partition))?
            .offset
            .max(0) as u64;
        for &node in &p.replicas {
            // Read from the end: only the headers matter.
            let log = match replica_log(node, p.partition, end).await {
                Ok(log) => log,
                Err(e) => return Ok(Some(format!("node {node} partition {}: {e}", p.partition))),
            };
            if log.high_watermark != end || log.cleaned_through < end {
                return Ok(Some(format!(
                    "node {node} partition {}: high watermark {}, compacted through {}, \
                     leader's end {end}",
                    p.partition, log.high_watermark, log.cleaned_through
                )));
            }
        }
    }
    Ok(None)
}

/// Reads every replica of every partition whole into the history. Notes
/// how much each replica's compaction removed; whether every replica
/// removed something (else the check did not test compaction).
async fn read_replicas(
    admin: &Client,
    recorder: &Recorder,
    notes: &mut Vec<String>,
) -> Result<bool> {
    let topic = admin
        .describe_topic(TOPIC)
        .await
        .context("describing the topic for the final read")?;
    let mut all_compacted = true;
    let mut summary: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for p in &topic.partitions {
        for &node in &p.replicas {
            let process = READER_PROCESS + node;
            recorder.record(process, OpKind::Invoke, OpF::ReplicaRead, |op| {
                op.node = Some(node);
                op.partition = Some(p.partition);
            });
            match read_whole(node, p.partition).await {
                Ok(log) => {
                    let span = log.high_watermark.saturating_sub(log.log_start);
                    let removed = span.saturating_sub(log.records.len() as u64);
                    if removed == 0 {
                        all_compacted = false;
                    }
                    summary.entry(p.partition).or_default().push(format!(
                        "node {node}: {} records of {span} offsets ({removed} removed)",
                        log.records.len()
                    ));
                    recorder.record(process, OpKind::Ok, OpF::ReplicaRead, |op| {
                        op.node = Some(node);
                        op.partition = Some(p.partition);
                        op.offset = Some(log.high_watermark as i64);
                        op.records = log.records;
                    });
                }
                Err(e) => {
                    all_compacted = false;
                    notes.push(format!(
                        "REPLICA READ FAILED: node {node} partition {}: {e:#}",
                        p.partition
                    ));
                    recorder.record(process, OpKind::Fail, OpF::ReplicaRead, |op| {
                        op.node = Some(node);
                        op.partition = Some(p.partition);
                        op.error = Some(format!("{e:#}"));
                    });
                }
            }
        }
    }
    for (partition, lines) in summary {
        notes.push(format!("final read p{partition}: {}", lines.join("; ")));
    }
    if !all_compacted {
        notes.push(
            "COMPACTION NOT SHOWN: some replica removed no record (or could not be read), so \
             the check did not test compaction there"
                .to_string(),
        );
    }
    Ok(all_compacted)
}

/// One replica's whole copy of `partition`, read in pages.
async fn read_whole(node: NodeId, partition: u32) -> Result<ReplicaLog> {
    let first = replica_log(node, partition, 0).await?;
    let mut out = ReplicaLog {
        records: Vec::new(),
        ..first.clone()
    };
    let mut page = first;
    loop {
        out.records.append(&mut page.records);
        if page.next_offset >= out.high_watermark {
            return Ok(out);
        }
        let next = page.next_offset;
        page = replica_log(node, partition, next).await?;
        if page.next_offset <= next {
            bail!("node {node} partition {partition}: a read from {next} did not advance");
        }
    }
}

/// One `/test/replica-log` request: the batches of `node`'s replica of
/// `partition` from `offset`, decoded.
async fn replica_log(node: NodeId, partition: u32, offset: u64) -> Result<ReplicaLog> {
    let path = format!("/test/replica-log?topic={TOPIC}&partition={partition}&offset={offset}");
    let (status, headers, body) = http_get(node, &path).await?;
    if status != 200 {
        bail!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body).trim_end()
        );
    }
    let header = |name: &str| -> Result<u64> {
        headers
            .get(name)
            .ok_or_else(|| anyhow!("no {name} header"))?
            .parse()
            .with_context(|| format!("header {name}"))
    };
    let high_watermark = header("x-cairn-high-watermark")?;
    let log_start = header("x-cairn-log-start")?;
    let fetched = FetchedRecords::decode(
        FetchResponse {
            high_watermark,
            log_start_offset: log_start,
            records: body.into(),
        },
        offset,
    )?;
    let records = fetched
        .records
        .iter()
        .map(|r| KeyedRecord {
            offset: r.offset,
            // Unparseable keys and values stand out as ones never written.
            key: match parse(r.key.as_deref()) {
                Ok(Some(k)) => u32::try_from(k).unwrap_or(u32::MAX),
                _ => u32::MAX,
            },
            value: parse(r.value.as_deref()).unwrap_or(Some(u64::MAX)),
        })
        .collect();
    Ok(ReplicaLog {
        high_watermark,
        log_start,
        next_offset: header("x-cairn-next-offset")?,
        cleaned_through: header("x-cairn-cleaned-through")?,
        records,
    })
}

/// A decimal number in bytes: `Ok(None)` for no bytes (null), `Err` when
/// they are not one.
fn parse(bytes: Option<&[u8]>) -> Result<Option<u64>, ()> {
    match bytes {
        None => Ok(None),
        Some(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or(()),
    }
}

/// The compaction counters of every node that answers, summed.
async fn removed_by_metrics(nodes: &[NodeId]) -> u64 {
    let mut total = 0;
    for &n in nodes {
        let Ok((200, _, body)) = http_get(n, "/metrics").await else {
            continue;
        };
        for line in String::from_utf8_lossy(&body).lines() {
            if let Some(rest) = line.strip_prefix("cairn_compaction_removed_records_total") {
                if let Ok(v) = rest.trim().parse::<f64>() {
                    total += v as u64;
                }
            }
        }
    }
    total
}

/// A plain HTTP/1.0 GET to `node`'s admin server: (status, lower-cased
/// headers, body).
async fn http_get(node: NodeId, path: &str) -> Result<(u16, HashMap<String, String>, Vec<u8>)> {
    let addr = format!("{}:{ADMIN_PORT}", NetnsHosts::ip(node));
    let exchange = async {
        let mut stream = TcpStream::connect(&addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| anyhow!("{addr}: timed out"))?
        .with_context(|| format!("GET {addr}{path}"))?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("{addr}: no end of headers"))?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("{addr}: no status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, buf[split + 4..].to_vec()))
}
