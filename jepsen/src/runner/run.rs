//! `cairn-jepsen test`: start a cluster of separate hosts, run a workload
//! (queue, compaction or group) under the nemesis, heal, require liveness,
//! drain or read back, check.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn_chaos::{
    parse_faults, FaultCx, FaultEvent, Heal, Hosts, Nemesis, NemesisConfig, NetnsHosts,
};
use cairn_jepsen::{
    check, verdict, write_report, CheckResult, History, OpF, OpKind, RunMeta, NEMESIS_PROCESS,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::recorder::Recorder;
use super::workload::{self, Shared};

/// Where and how a run happens.
#[derive(Debug, Clone)]
pub struct TestPlan {
    pub time: Duration,
    pub seed: u64,
    pub nemesis: String,
    pub nodes: u64,
    pub partitions: u32,
    pub producers: u32,
    pub consumers: u32,
    pub send_interval: Duration,
    pub quiet: std::ops::Range<Duration>,
    pub hold: std::ops::Range<Duration>,
    /// After the final heal, every partition must take a write within this.
    pub liveness_bound: Duration,
    pub results: PathBuf,
    pub bin: PathBuf,
    pub netns_script: PathBuf,
    pub disk_mb: Option<u64>,
    pub keep_cluster: bool,
    /// Availability bound per fault (see `RunMeta::max_unavailable_ms`).
    pub max_unavailable: Option<Duration>,
    pub workload: Workload,
    /// Compaction workload: keys written (over all partitions).
    pub keys: u32,
    /// Compaction workload: the topic's `delete.retention.ms`.
    pub delete_retention: Duration,
    /// Group workload: members of the consumer group.
    pub members: u32,
    /// Queue workload: the topic's `retention.bytes`, if retention runs
    /// during the run.
    pub retention_bytes: Option<u64>,
    /// Spare hosts for nodes that join during the run (`join`).
    pub spares: u64,
}

/// Which workload a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Producers and assigned consumers on one topic; Jepsen's queue checks.
    Queue,
    /// Keyed writes and tombstones to a compacted topic; every replica's final
    /// state checked against the acknowledged writes.
    Compaction,
    /// Consumer-group members polling and committing; where members resume
    /// checked against the acknowledged commits.
    Group,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Queue => "queue",
            Workload::Compaction => "compaction",
            Workload::Group => "group",
        }
    }
}

pub const TOPIC: &str = "jepsen";

/// What the run found; `valid` is the verdict.
pub struct Outcome {
    pub valid: bool,
    pub dir: PathBuf,
    pub summary: String,
}

pub async fn test(plan: TestPlan) -> Result<Outcome> {
    let dir = plan.results.clone();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let faults = parse_faults(&plan.nemesis)?;
    let names: Vec<&str> = faults.iter().map(|f| f.name()).collect();
    let mut notes = Vec::new();
    let mut hosts =
        NetnsHosts::new(&plan.netns_script, dir.join("hosts"), plan.nodes).with_spares(plan.spares);
    // A run starts from empty nodes: take down what an earlier run left, then wipe it.
    hosts.down().await.ok();
    let _ = std::fs::remove_dir_all(hosts.dir());
    if names.contains(&"power") {
        hosts = hosts.with_env("CAIRN_TEST_LOSE_UNSYNCED_ON_CRASH", "true");
        notes.push(
            "power: nodes run with test_lose_unsynced_on_crash (RocksDB manual WAL flush): \
             a kill -9 drops every write not yet synced, as a power loss drops the page cache; \
             this applies to every kill in this run"
                .to_string(),
        );
    }
    if names.contains(&"metadata") {
        hosts = hosts.with_env("CAIRN_METADATA_SNAPSHOT_ENTRIES", "50");
        notes.push(
            "metadata: nodes snapshot the metadata group every 50 entries, so restarts \
             replay or install snapshots cut during the churn"
                .to_string(),
        );
    }
    if let Some(bytes) = plan.retention_bytes {
        hosts = hosts.with_env("CAIRN_RETENTION_CHECK_INTERVAL_MS", "500");
        notes.push(format!(
            "retention: the topic keeps about {bytes} bytes per partition (checked every \
             500 ms), so old records are deleted, snapshots cut and logs purged during the \
             run; acknowledged records deleted before any poll read them are not checked"
        ));
    }
    if plan.workload == Workload::Compaction {
        hosts = hosts.with_env("CAIRN_TEST_REPLICA_READS", "true").with_env(
            "CAIRN_COMPACTION_INTERVAL_MS",
            &super::compaction::COMPACTION_INTERVAL
                .as_millis()
                .to_string(),
        );
        notes.push(format!(
            "compaction: nodes compact every {} ms and answer /test/replica-log \
             (test_replica_reads), so the final check reads each replica's own copy",
            super::compaction::COMPACTION_INTERVAL.as_millis()
        ));
    }
    if names.contains(&"clock") {
        notes.push(
            "clock: monotonic/boot clock jumps via Linux time namespaces at node restart; \
             the wall clock cannot be jumped for one node here (shared host kernel)"
                .to_string(),
        );
    } else {
        notes.push("clock jumps not enabled in this run".to_string());
    }
    let disk_mb = match plan.disk_mb {
        Some(mb) => Some(mb),
        None if names.contains(&"disk") => Some(1024),
        None => None,
    };
    let hosts = Arc::new(hosts);
    eprintln!("--- starting {} nodes in network namespaces", plan.nodes);
    hosts.up(&plan.bin, disk_mb).await?;
    let result = match plan.workload {
        Workload::Queue => run_on(&plan, hosts.clone(), faults, notes).await,
        Workload::Compaction => {
            super::compaction::run_on(&plan, hosts.clone(), faults, notes).await
        }
        Workload::Group => super::group::run_on(&plan, hosts.clone(), faults, notes).await,
    };
    if !plan.keep_cluster {
        if let Err(e) = hosts.down().await {
            eprintln!("warning: tearing the cluster down failed: {e}");
        }
    }
    result
}

/// Runs the nemesis for `plan.time` against `topic`, writing each fault's
/// start and end into the history; returns the fault schedule, one line per
/// event. The last fault is healed before it returns.
pub(super) async fn run_nemesis(
    plan: &TestPlan,
    hosts: &Arc<NetnsHosts>,
    admin: &cairn_client::Client,
    topic: &str,
    faults: Vec<Box<dyn cairn_chaos::Fault>>,
    recorder: &Arc<Recorder>,
) -> Vec<String> {
    // The nemesis, its events written into the history.
    let cx = FaultCx {
        hosts: hosts.clone(),
        client: admin.clone(),
        topic: topic.to_string(),
        partitions: plan.partitions,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let events = {
        let recorder = recorder.clone();
        tokio::spawn(async move {
            let mut lines = Vec::new();
            while let Some(event) = rx.recv().await {
                let at = recorder.now_us() as f64 / 1e6;
                match event {
                    FaultEvent::Start { name, description } => {
                        lines.push(format!("{at:8.3}s start {name}: {description}"));
                        eprintln!("    {at:7.1}s nemesis: {description}");
                        recorder.record(NEMESIS_PROCESS, OpKind::Invoke, OpF::Fault, |op| {
                            op.fault = Some(description);
                        });
                    }
                    FaultEvent::End {
                        name,
                        description,
                        heal,
                    } => {
                        lines.push(format!("{at:8.3}s end   {name}: {heal}"));
                        eprintln!("    {at:7.1}s nemesis: healed ({heal})");
                        recorder.record(NEMESIS_PROCESS, OpKind::Info, OpF::Fault, |op| {
                            op.fault = Some(description);
                        });
                    }
                    FaultEvent::Error { name, error } => {
                        lines.push(format!("{at:8.3}s error {name}: {error}"));
                        eprintln!("    {at:7.1}s nemesis error: {name}: {error}");
                    }
                }
            }
            lines
        })
    };
    let mut nemesis = Nemesis::new(NemesisConfig {
        faults,
        seed: plan.seed,
        quiet: plan.quiet.clone(),
        hold: plan.hold.clone(),
    });
    nemesis
        .run(&cx, Instant::now() + plan.time, tx.clone())
        .await;
    drop(tx);
    events.await.unwrap_or_default()
}

/// Heals everything, then waits until every partition has taken an ok write
/// (per `last_ok_send_us`, µs into the run) after the heal, within
/// `plan.liveness_bound`; notes how long it took. Whether it did.
pub(super) async fn heal_and_await_writes(
    plan: &TestPlan,
    hosts: &Arc<NetnsHosts>,
    recorder: &Recorder,
    last_ok_send_us: &[std::sync::atomic::AtomicU64],
    notes: &mut Vec<String>,
) -> bool {
    eprintln!(
        "--- healing everything; liveness bound {:?}",
        plan.liveness_bound
    );
    if let Err(e) = Heal::everything(hosts.as_ref()).await {
        notes.push(format!("final heal reported an error: {e}"));
    }
    let heal_us = recorder.now_us();
    let liveness_deadline = Instant::now() + plan.liveness_bound;
    let live = loop {
        let all = last_ok_send_us
            .iter()
            .all(|t| t.load(Ordering::Relaxed) > heal_us);
        if all {
            break true;
        }
        if Instant::now() > liveness_deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let live_after = Duration::from_micros(recorder.now_us() - heal_us);
    notes.push(if live {
        format!(
            "liveness: every partition took a write {:.2} s after the final heal (bound {:?})",
            live_after.as_secs_f64(),
            plan.liveness_bound
        )
    } else {
        format!(
            "LIVENESS FAILED: some partition took no write within {:?} of the final heal",
            plan.liveness_bound
        )
    });
    live
}

/// Reads the history back, checks it with `checker` and writes the report.
pub(super) fn check_and_report(
    plan: &TestPlan,
    checker: &dyn Fn(&History) -> CheckResult,
    schedule: Vec<String>,
    notes: Vec<String>,
    liveness_bound: Option<Duration>,
) -> Result<(CheckResult, RunMeta)> {
    let dir = &plan.results;
    let history = History::read_jsonl(&dir.join("history.jsonl"))?;
    let result = checker(&history);
    let meta = RunMeta {
        seed: plan.seed,
        nemeses: plan.nemesis.split(',').map(str::to_string).collect(),
        time_limit_s: plan.time.as_secs(),
        nodes: (1..=plan.nodes).collect(),
        fault_schedule: schedule,
        notes,
        liveness_bound_ms: liveness_bound.map(|b| b.as_millis() as u64),
        max_unavailable_ms: plan.max_unavailable.map(|d| d.as_millis() as u64),
    };
    write_report(dir, &history, &result, &meta)?;
    Ok((result, meta))
}

/// Creates `topic` (RF 3, or fewer with fewer nodes) and waits until every
/// partition has a leader.
pub(super) async fn create_topic(
    admin: &cairn_client::Client,
    topic: &str,
    partitions: u32,
    nodes: u64,
    configs: HashMap<String, String>,
) -> Result<()> {
    let rf = nodes.min(3) as u32;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match admin
            .create_topic(topic, partitions, rf, configs.clone())
            .await
        {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("creating the topic: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => bail!("cannot create the topic: {e}"),
        }
    }
    loop {
        let t = admin.describe_topic(topic).await;
        if let Ok(t) = &t {
            if t.partitions.iter().all(|p| p.leader.is_some()) {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!("partitions have no leaders after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    Ok(())
}

async fn run_on(
    plan: &TestPlan,
    hosts: Arc<NetnsHosts>,
    faults: Vec<Box<dyn cairn_chaos::Fault>>,
    mut notes: Vec<String>,
) -> Result<Outcome> {
    let dir = plan.results.clone();
    let bootstrap = hosts.bootstrap();
    let admin = workload::connect(&bootstrap, Duration::from_secs(10)).await?;
    let configs: HashMap<String, String> = match plan.retention_bytes {
        Some(bytes) => HashMap::from([
            ("retention.bytes".to_string(), bytes.to_string()),
            ("retention.ms".to_string(), "-1".to_string()),
        ]),
        None => HashMap::new(),
    };
    create_topic(&admin, TOPIC, plan.partitions, plan.nodes, configs).await?;

    let recorder = Arc::new(Recorder::create(&dir.join("history.jsonl"))?);
    let shared = Arc::new(Shared::new(
        recorder.clone(),
        bootstrap.clone(),
        TOPIC,
        plan.partitions,
        plan.send_interval,
    ));
    eprintln!(
        "--- workload: {} producers, {} consumers, {} partitions; nemesis {} for {:?} (seed {})",
        plan.producers, plan.consumers, plan.partitions, plan.nemesis, plan.time, plan.seed
    );
    let producers: Vec<_> = (0..plan.producers)
        .map(|i| {
            tokio::spawn(workload::producer(
                shared.clone(),
                plan.seed ^ (i as u64 + 1),
            ))
        })
        .collect();
    let consumers: Vec<_> = (0..plan.consumers)
        .map(|i| tokio::spawn(workload::consumer(shared.clone(), i as u64, false)))
        .collect();

    let progress = {
        let shared = shared.clone();
        let total = plan.time;
        tokio::spawn(async move {
            let start = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let sent: u64 = shared
                    .next_value
                    .iter()
                    .map(|v| v.load(Ordering::Relaxed))
                    .sum();
                eprintln!(
                    "    {:5.0}s / {:.0}s: {sent} sends invoked",
                    start.elapsed().as_secs_f64(),
                    total.as_secs_f64()
                );
            }
        })
    };
    let schedule = run_nemesis(plan, &hosts, &admin, TOPIC, faults, &recorder).await;

    let live =
        heal_and_await_writes(plan, &hosts, &recorder, &shared.last_ok_send_us, &mut notes).await;
    shared.stop_producers.store(true, Ordering::Relaxed);
    for p in producers {
        let _ = p.await;
    }
    shared.stop_consumers.store(true, Ordering::Relaxed);
    for c in consumers {
        let _ = c.await;
    }
    progress.abort();

    eprintln!("--- final drain: reading every partition to its end");
    shared.stop_consumers.store(false, Ordering::Relaxed);
    let drain = tokio::time::timeout(
        Duration::from_secs(60),
        workload::consumer(shared.clone(), plan.consumers as u64, true),
    )
    .await;
    let drained = drain.is_ok();
    if !drained {
        notes.push(
            "DRAIN FAILED: the final read did not reach every partition's end within 60 s"
                .to_string(),
        );
    }
    recorder.finish()?;

    let (result, meta) =
        check_and_report(plan, &check, schedule, notes, Some(plan.liveness_bound))?;
    let valid = verdict(&result, &meta).valid && live && drained;
    let summary = std::fs::read_to_string(dir.join("report.txt")).unwrap_or_default();
    Ok(Outcome {
        valid,
        dir,
        summary,
    })
}
