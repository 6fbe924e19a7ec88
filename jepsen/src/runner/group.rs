//! The group workload: producers write to a topic (as in the queue
//! workload) while members of one consumer group poll it through the
//! client's group protocol (`Consumer`: join, sync, heartbeats, the `range`
//! assignor, offsets committed to the coordinator on the metadata leader)
//! and commit their positions, under the nemesis; members also leave and
//! are replaced now and then, so partitions keep moving. Every commit
//! (`commit`, with what it committed and how it ended) and every position a
//! member resumes from after a partition is assigned to it (`positions` of
//! the poll's `ok`) goes into the history; the checker (`check_group`)
//! looks for a member resuming below an acknowledged commit. After the
//! final heal the producers stop and the group must commit every
//! partition's end within the liveness bound.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use cairn_chaos::NetnsHosts;
use cairn_client::{
    Client, Consumer, ConsumerConfig, ConsumerError, ConsumerEvent, ConsumerRecord, OffsetReset,
    OffsetSpec, TopicPartition,
};
use cairn_jepsen::{check_group, verdict, History, OpF, OpKind, Read, FIRST_CONSUMER_PROCESS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::recorder::Recorder;
use super::run::{self, Outcome, TestPlan};
use super::workload::{self, Shared};

pub const TOPIC: &str = "jepsen-group";
pub const GROUP: &str = "jepsen-group";
/// How long one poll or commit may take before its outcome counts as unknown.
const OP_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a member commits its positions.
const COMMIT_INTERVAL: Duration = Duration::from_millis(500);
/// A member leaves the group after a random time in this range (seconds).
const LIFETIME_S: std::ops::Range<u64> = 5..20;

/// What the members share.
struct Members {
    recorder: Arc<Recorder>,
    bootstrap: Vec<String>,
    next_process: AtomicU64,
    stop: AtomicBool,
    /// Members stop leaving and being replaced (the final drain).
    steady: AtomicBool,
}

pub async fn run_on(
    plan: &TestPlan,
    hosts: Arc<NetnsHosts>,
    faults: Vec<Box<dyn cairn_chaos::Fault>>,
    mut notes: Vec<String>,
) -> Result<Outcome> {
    let dir = plan.results.clone();
    let bootstrap = cairn_chaos::Hosts::bootstrap(hosts.as_ref());
    let admin = workload::connect(&bootstrap, Duration::from_secs(10)).await?;
    run::create_topic(
        &admin,
        TOPIC,
        plan.partitions,
        plan.nodes,
        Default::default(),
    )
    .await?;

    let recorder = Arc::new(Recorder::create(&dir.join("history.jsonl"))?);
    let shared = Arc::new(Shared::new(
        recorder.clone(),
        bootstrap.clone(),
        TOPIC,
        plan.partitions,
        plan.send_interval,
    ));
    let members = Arc::new(Members {
        recorder: recorder.clone(),
        bootstrap: bootstrap.clone(),
        next_process: AtomicU64::new(FIRST_CONSUMER_PROCESS),
        stop: AtomicBool::new(false),
        steady: AtomicBool::new(false),
    });
    eprintln!(
        "--- group workload: {} producers, {} group members, {} partitions; nemesis {} for \
         {:?} (seed {})",
        plan.producers, plan.members, plan.partitions, plan.nemesis, plan.time, plan.seed
    );
    let producers: Vec<_> = (0..plan.producers)
        .map(|i| {
            tokio::spawn(workload::producer(
                shared.clone(),
                plan.seed ^ (i as u64 + 1),
            ))
        })
        .collect();
    let member_tasks: Vec<_> = (0..plan.members)
        .map(|i| {
            tokio::spawn(member(
                members.clone(),
                plan.seed.wrapping_mul(31) ^ (i as u64 + 100),
            ))
        })
        .collect();
    let progress = {
        let members = members.clone();
        let total = plan.time;
        tokio::spawn(async move {
            let start = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                eprintln!(
                    "    {:5.0}s / {:.0}s: {} member processes so far",
                    start.elapsed().as_secs_f64(),
                    total.as_secs_f64(),
                    members.next_process.load(Ordering::Relaxed) - FIRST_CONSUMER_PROCESS
                );
            }
        })
    };
    let schedule = run::run_nemesis(plan, &hosts, &admin, TOPIC, faults, &recorder).await;
    let live =
        run::heal_and_await_writes(plan, &hosts, &recorder, &shared.last_ok_send_us, &mut notes)
            .await;
    shared.stop_producers.store(true, Ordering::Relaxed);
    for p in producers {
        let _ = p.await;
    }
    progress.abort();

    eprintln!("--- drain: the group must commit every partition's end");
    members.steady.store(true, Ordering::Relaxed);
    let drained = committed_to_the_end(&admin, plan).await;
    notes.push(match &drained {
        Ok(after) => format!(
            "drain: the group committed every partition's end {:.1} s after the producers \
             stopped (bound {:?})",
            after.as_secs_f64(),
            plan.liveness_bound
        ),
        Err(e) => format!("DRAIN FAILED: {e}"),
    });
    members.stop.store(true, Ordering::Relaxed);
    for m in member_tasks {
        let _ = m.await;
    }
    recorder.finish()?;
    notes.push(stats(&History::read_jsonl(&dir.join("history.jsonl"))?));

    let (result, meta) = run::check_and_report(
        plan,
        &check_group,
        schedule,
        notes,
        Some(plan.liveness_bound),
    )?;
    let valid = verdict(&result, &meta).valid && live && drained.is_ok();
    let summary = std::fs::read_to_string(dir.join("report.txt")).unwrap_or_default();
    Ok(Outcome {
        valid,
        dir,
        summary,
    })
}

/// Waits until the group's committed offset of every partition is that
/// partition's end (the producers have stopped); how long it took.
async fn committed_to_the_end(admin: &Client, plan: &TestPlan) -> Result<Duration> {
    let started = Instant::now();
    let deadline = started + plan.liveness_bound.max(Duration::from_secs(60));
    let mut behind = String::from("not asked yet");
    while Instant::now() < deadline {
        match lagging(admin, plan.partitions).await {
            Ok(None) => return Ok(started.elapsed()),
            Ok(Some(what)) => behind = what,
            Err(e) => behind = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!(
        "the group did not commit every partition's end within {:?}: {behind}",
        deadline - started
    )
}

/// `None` when every partition's committed offset is its end; else which is not.
async fn lagging(admin: &Client, partitions: u32) -> Result<Option<String>> {
    let committed: BTreeMap<u32, i64> = admin
        .fetch_offsets(GROUP)
        .await?
        .into_iter()
        .filter(|o| o.topic == TOPIC)
        .map(|o| (o.partition, o.offset))
        .collect();
    for p in 0..partitions {
        let end = admin
            .list_offsets(TOPIC, p, OffsetSpec::Latest)
            .await?
            .offset;
        let at = committed.get(&p).copied().unwrap_or(-1);
        if at != end {
            return Ok(Some(format!("partition {p} committed {at}, end {end}")));
        }
    }
    Ok(None)
}

/// One member slot: a member process joins, polls and commits until its
/// lifetime is up, leaves, and a new process takes its place. A poll or
/// commit that times out ends the process too (its consumer may be
/// half-way through a join).
async fn member(members: Arc<Members>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let rec = &members.recorder;
    while !members.stop.load(Ordering::Relaxed) {
        let process = members.next_process.fetch_add(1, Ordering::Relaxed);
        let client = match workload::connect(&members.bootstrap, Duration::from_secs(5)).await {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut config = ConsumerConfig::new(GROUP);
        config.client_id = format!("jepsen-{process}");
        config.session_timeout = Duration::from_secs(6);
        config.heartbeat_interval = Duration::from_secs(1);
        config.rebalance_timeout = Duration::from_secs(10);
        config.auto_commit = false;
        config.offset_reset = OffsetReset::Earliest;
        config.assignors = vec!["range".into()];
        config.max_poll_records = 200;
        config.fetch_max_wait = Duration::from_millis(200);
        let mut consumer = Consumer::new(client, config);
        consumer.subscribe(&[TOPIC]);
        let lifetime = Duration::from_secs(rng.random_range(LIFETIME_S));
        let born = Instant::now();
        let mut last_commit = Instant::now();
        // Partitions assigned whose resume point is not recorded yet.
        let mut pending = BTreeSet::new();
        let healthy = loop {
            if members.stop.load(Ordering::Relaxed) {
                break true;
            }
            if born.elapsed() >= lifetime && !members.steady.load(Ordering::Relaxed) {
                break true;
            }
            // Join and resolve positions without fetching: where the member
            // resumes is exact.
            if !poll(&mut consumer, rec, process, Duration::ZERO, &mut pending).await {
                break false;
            }
            let wait = Duration::from_millis(300);
            if !poll(&mut consumer, rec, process, wait, &mut pending).await {
                break false;
            }
            if last_commit.elapsed() >= COMMIT_INTERVAL {
                last_commit = Instant::now();
                if !commit(&mut consumer, rec, process).await {
                    break false;
                }
            }
        };
        if healthy {
            // Leave at once, so the partitions move without a session timeout.
            let _ = tokio::time::timeout(Duration::from_secs(5), consumer.close()).await;
        }
    }
}

/// One recorded poll. The `ok` completion lists the records read and where
/// the member resumed on partitions assigned to it (`pending`: during this
/// poll, or during an earlier one that failed before it knew where): exact
/// for a poll that does not fetch (`timeout` zero), else the lower of the
/// first offset read and the position after the poll (never below the
/// true resume point, so the checker cannot blame a correct resume).
/// Whether the member carries on (false after a timeout).
async fn poll(
    consumer: &mut Consumer,
    rec: &Recorder,
    process: u64,
    timeout: Duration,
    pending: &mut BTreeSet<TopicPartition>,
) -> bool {
    rec.record(process, OpKind::Invoke, OpF::Poll, |_| {});
    let polled = tokio::time::timeout(OP_TIMEOUT, consumer.poll(timeout)).await;
    let events = consumer.take_events();
    for event in &events {
        match event {
            ConsumerEvent::Assigned(tps) => pending.extend(tps.iter().cloned()),
            ConsumerEvent::Revoked(tps) => {
                for tp in tps {
                    pending.remove(tp);
                }
            }
            ConsumerEvent::OffsetReset { .. } => {}
        }
    }
    match polled {
        Ok(Ok(records)) => {
            let resumed = resumes(consumer, &events, &records, pending);
            let reads = records
                .iter()
                .filter_map(|r| {
                    Some(Read {
                        partition: r.partition,
                        offset: r.record.offset,
                        key: parse(r.record.key.as_deref())? as u32,
                        value: parse(r.record.value.as_deref())?,
                    })
                })
                .collect();
            rec.record(process, OpKind::Ok, OpF::Poll, |op| {
                op.reads = reads;
                if !resumed.is_empty() {
                    op.positions = Some(resumed);
                }
            });
            true
        }
        Ok(Err(e)) => {
            rec.record(process, OpKind::Info, OpF::Poll, |op| {
                op.error = Some(e.to_string());
            });
            // A member that cannot even ask (no subscription) is broken.
            !matches!(e, ConsumerError::NotSubscribed)
        }
        Err(_) => {
            rec.record(process, OpKind::Info, OpF::Poll, |op| {
                op.error = Some("timeout".to_string());
            });
            false
        }
    }
}

/// Where the member resumed on the partitions assigned to it whose
/// position is now known (taken off `pending`), and on those reset in this
/// poll; see [`poll`].
fn resumes(
    consumer: &Consumer,
    events: &[ConsumerEvent],
    records: &[ConsumerRecord],
    pending: &mut BTreeSet<TopicPartition>,
) -> Vec<(u32, i64)> {
    let mut out: BTreeMap<u32, i64> = BTreeMap::new();
    let first_read = |p: u32| {
        records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.record.offset)
            .min()
    };
    pending.retain(|tp| {
        let Some(position) = consumer.position(tp) else {
            return true;
        };
        if tp.topic == TOPIC {
            let mut at = position as i64;
            if let Some(first) = first_read(tp.partition) {
                at = at.min(first);
            }
            out.insert(tp.partition, at);
        }
        false
    });
    for event in events {
        if let ConsumerEvent::OffsetReset { partition, to, .. } = event {
            if partition.topic == TOPIC {
                out.insert(partition.partition, *to as i64);
            }
        }
    }
    out.into_iter().collect()
}

/// One recorded commit of the member's positions (skipped when it has
/// none). Whether the member carries on (false after a timeout).
async fn commit(consumer: &mut Consumer, rec: &Recorder, process: u64) -> bool {
    let offsets: Vec<(TopicPartition, u64)> = consumer
        .assignment()
        .into_iter()
        .filter_map(|tp| consumer.position(&tp).map(|p| (tp, p)))
        .collect();
    if offsets.is_empty() {
        return true;
    }
    let positions: Vec<(u32, i64)> = offsets
        .iter()
        .map(|(tp, o)| (tp.partition, *o as i64))
        .collect();
    rec.record(process, OpKind::Invoke, OpF::Commit, |op| {
        op.positions = Some(positions.clone());
    });
    let committed = tokio::time::timeout(OP_TIMEOUT, consumer.commit_offsets(offsets)).await;
    let carry_on = committed.is_ok();
    let (kind, error) = match committed {
        Ok(Ok(())) => (OpKind::Ok, None),
        // Refused for the member's generation: not written.
        Ok(Err(e @ ConsumerError::CommitFenced { .. })) => (OpKind::Fail, Some(e.to_string())),
        Ok(Err(e)) => (OpKind::Info, Some(e.to_string())),
        Err(_) => (OpKind::Info, Some("timeout".to_string())),
    };
    rec.record(process, kind, OpF::Commit, |op| {
        op.positions = Some(positions);
        op.error = error;
    });
    carry_on
}

/// What the check had to work with: commits by outcome, and resumes (how
/// many were above zero, i.e. after some commit of that partition).
fn stats(history: &History) -> String {
    let (mut ok, mut fail, mut info, mut resumes, mut above_zero) = (0, 0, 0, 0, 0);
    let mut processes = std::collections::HashSet::new();
    for op in &history.ops {
        match (op.f, op.kind) {
            (OpF::Commit, OpKind::Ok) => ok += 1,
            (OpF::Commit, OpKind::Fail) => fail += 1,
            (OpF::Commit, OpKind::Info) => info += 1,
            (OpF::Poll, OpKind::Ok) => {
                processes.insert(op.process);
                for &(_, at) in op.positions.iter().flatten() {
                    resumes += 1;
                    if at > 0 {
                        above_zero += 1;
                    }
                }
            }
            _ => {}
        }
    }
    format!(
        "group: {} member processes; commits {ok} ok, {fail} fail (fenced), {info} unknown; \
         {resumes} partition resumes recorded, {above_zero} of them above offset 0",
        processes.len()
    )
}

fn parse(bytes: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(bytes?).ok()?.parse().ok()
}
