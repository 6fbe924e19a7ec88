//! One seed: a cluster, a workload, a fault schedule, then the verdict.
//!
//! ```text
//!  seed ──► RNG ──► fault schedule (fixed up front: kinds, nodes, times)
//!            │
//!            ├──► cluster of N nodes on SimNet + SimDisk, topic `sim` (P partitions, RF3)
//!            ├──► producers (idempotent, one per partition) and consumers, writing the history
//!            ├──► invariant monitor (every 50 ms: one leader per term, high watermarks)
//!            └──► heal, final drain, replica comparison ──► jepsen checker ──► Report
//! ```
//!
//! Everything runs on one thread, on a tokio runtime whose clock is paused:
//! time jumps to the next timer whenever every task waits, so a simulated
//! minute costs only the CPU the cluster uses in it.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::hash::Hash;
use std::hash::Hasher;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use cairn_broker::Acks;
use cairn_broker::BrokerError;
use cairn_broker::Listener;
use cairn_broker::NewTopic;
use cairn_broker::RequestContext;
use cairn_jepsen::History;
use cairn_jepsen::Op;
use cairn_jepsen::OpF;
use cairn_jepsen::OpKind;
use cairn_jepsen::Read;
use cairn_jepsen::NEMESIS_PROCESS;
use rand::rngs::StdRng;
use rand::Rng;
use rand::SeedableRng;
use serde::Serialize;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::cluster::NodeId;
use crate::cluster::Plant;
use crate::net::MessageOdds;
use crate::net::SimNet;

pub const TOPIC: &str = "sim";

/// What a run does.
#[derive(Debug, Clone)]
pub struct Options {
    /// Simulated seconds of workload under faults (before the final heal
    /// and drain).
    pub seconds: u64,
    pub nodes: u64,
    pub partitions: u32,
    /// Faults on (crashes, power losses, partitions, pauses, message
    /// faults, latency, reassignments); off: a fault-free run.
    pub faults: bool,
    /// A bug planted on purpose, for the run to find.
    pub plant: Plant,
    /// Where the nodes' disks live (a memory file system).
    pub root: PathBuf,
    /// Print the history and the fault schedule as they happen.
    pub trace: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seconds: 30,
            nodes: 4,
            partitions: 3,
            faults: true,
            plant: Plant::None,
            root: default_root(),
            trace: false,
        }
    }
}

/// `/dev/shm` (memory) when there is one, else the temp dir.
pub fn default_root() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    base.join(format!("cairn-sim-{}", std::process::id()))
}

/// The verdict on one seed.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Report {
    pub seed: u64,
    pub valid: bool,
    /// Anomalies the history checker found (first few, with their class).
    pub anomalies: Vec<String>,
    /// Invariants broken during the run or at its end.
    pub violations: Vec<String>,
    /// Hash of the history (ops, their order and simulated times).
    pub history_hash: u64,
    pub ops: usize,
    pub acked_sends: usize,
    pub simulated_ms: u64,
    pub wall_ms: u64,
    pub faults: Vec<String>,
    pub messages: u64,
    pub faulted_messages: u64,
    /// Connects refused to leftovers of crashed incarnations (tasks that
    /// outlived `Running::shutdown`; a real crash has none).
    #[serde(default)]
    pub zombie_connects: u64,
}

/// One fault of the schedule, fixed up front from the seed.
#[derive(Debug, Clone)]
enum Fault {
    /// Node crashes (power loss) and comes back after `down`.
    Crash { nodes: Vec<NodeId>, down: Duration },
    /// The node is cut from every other node for `hold`.
    Isolate { node: NodeId, hold: Duration },
    /// The node stops moving messages for `hold` (a long pause).
    Pause { node: NodeId, hold: Duration },
    /// Raft messages are dropped, duplicated and delayed for `hold`.
    Messages { hold: Duration },
    /// Every link is slow for `hold`.
    Slow { hold: Duration },
    /// A partition's replicas move to another set of nodes.
    Reassign {
        partition: u32,
        replicas: Vec<NodeId>,
    },
}

impl Fault {
    fn name(&self) -> String {
        match self {
            Fault::Crash { nodes, down } => {
                format!("crash nodes {nodes:?} for {} ms", down.as_millis())
            }
            Fault::Isolate { node, hold } => {
                format!("isolate node {node} for {} ms", hold.as_millis())
            }
            Fault::Pause { node, hold } => format!("pause node {node} for {} ms", hold.as_millis()),
            Fault::Messages { hold } => {
                format!("drop/duplicate/delay messages for {} ms", hold.as_millis())
            }
            Fault::Slow { hold } => format!("slow network for {} ms", hold.as_millis()),
            Fault::Reassign {
                partition,
                replicas,
            } => format!("reassign partition {partition} to {replicas:?}"),
        }
    }
}

fn schedule(rng: &mut StdRng, o: &Options) -> Vec<(Duration, Fault)> {
    let mut out = Vec::new();
    if !o.faults {
        return out;
    }
    let ms = |rng: &mut StdRng, lo: u64, hi: u64| Duration::from_millis(rng.random_range(lo..hi));
    let mut t = ms(rng, 1_000, 3_000);
    let end = Duration::from_secs(o.seconds);
    let voters = crate::cluster::VOTERS;
    while t < end {
        let node = rng.random_range(1..=o.nodes);
        let fault = match rng.random_range(0..100) {
            0..=24 => Fault::Crash {
                nodes: vec![node],
                down: ms(rng, 50, 4_000),
            },
            25..=39 => {
                // A power loss of a majority of the voters, or of all.
                let mut nodes: Vec<NodeId> = (1..=o.nodes).collect();
                let keep = rng.random_range(0..=1usize);
                for _ in 0..keep {
                    let i = rng.random_range(0..nodes.len());
                    nodes.remove(i);
                }
                if nodes.iter().filter(|n| **n <= voters).count() < 2 {
                    nodes = (1..=o.nodes).collect();
                }
                Fault::Crash {
                    nodes,
                    down: ms(rng, 50, 2_000),
                }
            }
            40..=54 => Fault::Isolate {
                node,
                hold: ms(rng, 500, 5_000),
            },
            55..=64 => Fault::Pause {
                node,
                hold: ms(rng, 200, 3_000),
            },
            65..=79 => Fault::Messages {
                hold: ms(rng, 1_000, 6_000),
            },
            80..=87 => Fault::Slow {
                hold: ms(rng, 1_000, 5_000),
            },
            _ => {
                let mut all: Vec<NodeId> = (1..=o.nodes).collect();
                let mut replicas = Vec::new();
                let rf = 3.min(all.len());
                while replicas.len() < rf {
                    let i = rng.random_range(0..all.len());
                    replicas.push(all.remove(i));
                }
                Fault::Reassign {
                    partition: rng.random_range(0..o.partitions),
                    replicas,
                }
            }
        };
        out.push((t, fault));
        t += ms(rng, 1_500, 6_000);
    }
    out
}

/// The history, shared by every client task.
#[derive(Default)]
struct Recorder {
    ops: Vec<Op>,
    trace: bool,
}

type Rec = Arc<Mutex<Recorder>>;

fn record(rec: &Rec, start: Instant, mut op: Op) {
    let mut r = rec.lock().unwrap_or_else(|e| e.into_inner());
    op.index = r.ops.len() as u64;
    op.time_us = start.elapsed().as_micros() as u64;
    if r.trace {
        if let Ok(line) = serde_json::to_string(&op) {
            println!("{line}");
        }
    }
    r.ops.push(op);
}

fn ctx() -> RequestContext {
    RequestContext::anonymous(Listener::Internal, None)
}

/// Runs one seed to its verdict, on a fresh single-threaded runtime whose
/// clock is paused (simulated).
pub fn run_seed(seed: u64, o: &Options) -> anyhow::Result<Report> {
    // A fresh thread, seeded before anything on it draws a random number
    // (std seeds each thread's HashMap keys once, on first use).
    let o = o.clone();
    std::thread::Builder::new()
        .name(format!("sim-seed-{seed}"))
        .spawn(move || {
            crate::entropy::seed_this_thread(seed);
            run_seed_here(seed, &o)
        })?
        .join()
        .map_err(|_| anyhow::anyhow!("seed {seed}: the simulation panicked"))?
}

fn run_seed_here(seed: u64, o: &Options) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    let wall = std::time::Instant::now();
    let root = o.root.join(format!("seed-{seed}"));
    let mut report = runtime.block_on(async {
        // Wall-clock time (record timestamps, retention) follows the
        // simulated clock too, from a fixed epoch.
        let _wall_clock = cairn_clock::simulate_wall_clock(1_800_000_000_000);
        simulate(seed, o, root.clone()).await
    })?;
    drop(runtime);
    let _ = std::fs::remove_dir_all(&root);
    report.wall_ms = wall.elapsed().as_millis() as u64;
    Ok(report)
}

struct Shared {
    cluster: tokio::sync::Mutex<Cluster>,
    rec: Rec,
    start: Instant,
    violations: Mutex<Vec<String>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    fn violation(&self, v: String) {
        let mut vs = self.violations.lock().unwrap_or_else(|e| e.into_inner());
        if vs.len() < 20 && !vs.contains(&v) {
            vs.push(v);
        }
    }

    async fn brokers(&self) -> Vec<(NodeId, cairn_broker::Broker)> {
        let c = self.cluster.lock().await;
        c.up_nodes()
            .into_iter()
            .filter_map(|id| c.broker(id).map(|b| (id, b)))
            .collect()
    }
}

async fn simulate(seed: u64, o: &Options, root: PathBuf) -> anyhow::Result<Report> {
    let mut rng = StdRng::seed_from_u64(seed);
    let net = SimNet::new(rng.random());
    let mut cluster = Cluster::new(&root, o.nodes, net.clone(), o.plant, rng.random());
    for id in 1..=o.nodes {
        cluster.start(id).await?;
    }
    let (stop, _) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared {
        cluster: tokio::sync::Mutex::new(cluster),
        rec: Arc::new(Mutex::new(Recorder {
            ops: Vec::new(),
            trace: o.trace,
        })),
        start: Instant::now(),
        violations: Mutex::new(Vec::new()),
        stop,
    });

    create_topic(&shared, o).await?;
    let faults = schedule(&mut rng, o);

    let monitor = tokio::spawn(monitor(shared.clone()));
    let mut clients = Vec::new();
    for p in 0..o.partitions {
        clients.push(tokio::spawn(producer(
            shared.clone(),
            p as u64,
            p,
            rng.random(),
        )));
        clients.push(tokio::spawn(consumer(
            shared.clone(),
            cairn_jepsen::FIRST_CONSUMER_PROCESS + p as u64,
            p,
            rng.random(),
        )));
    }

    let t0 = Instant::now();
    let mut names = Vec::new();
    for (at, fault) in &faults {
        tokio::time::sleep_until(t0 + *at).await;
        names.push(fault.name());
        inject(&shared, &net, fault, o).await;
    }
    tokio::time::sleep_until(t0 + Duration::from_secs(o.seconds)).await;

    // Heal everything, stop the clients, and drain.
    heal(&shared, &net).await;
    let _ = shared.stop.send(true);
    for c in clients {
        let _ = c.await;
    }
    let _ = shared.stop.send(false);
    drain(&shared, o).await;
    compare_replicas(&shared, o).await;
    let _ = shared.stop.send(true);
    monitor.abort();

    shared.cluster.lock().await.stop_all().await;

    let ops = std::mem::take(&mut shared.rec.lock().unwrap_or_else(|e| e.into_inner()).ops);
    let history = History::new(ops.clone());
    let result = cairn_jepsen::check(&history);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for op in &ops {
        serde_json::to_string(op)
            .unwrap_or_default()
            .hash(&mut hasher);
    }
    let violations = shared
        .violations
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let anomalies: Vec<String> = result
        .anomalies
        .iter()
        .take(10)
        .map(|a| format!("{:?}: {}", a.kind, a.description))
        .collect();
    let (messages, faulted_messages) = net.message_counts();
    Ok(Report {
        seed,
        valid: result.valid && violations.is_empty(),
        anomalies,
        violations,
        history_hash: hasher.finish(),
        acked_sends: ops
            .iter()
            .filter(|op| op.f == OpF::Send && op.kind == OpKind::Ok)
            .count(),
        ops: ops.len(),
        simulated_ms: t0.elapsed().as_millis() as u64,
        wall_ms: 0,
        faults: names,
        messages,
        faulted_messages,
        zombie_connects: net.zombie_connects(),
    })
}

async fn create_topic(shared: &Shared, o: &Options) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let replicas: Vec<Vec<NodeId>> = (0..o.partitions)
        .map(|p| (0..3).map(|i| 1 + (p as u64 + i) % 3).collect())
        .collect();
    loop {
        for (_, b) in shared.brokers().await {
            let t = NewTopic {
                name: TOPIC.to_string(),
                partitions: o.partitions,
                replication_factor: 3,
                configs: BTreeMap::new(),
                assignment: Some(replicas.clone()),
            };
            match b.create_topic(&ctx(), t, false).await {
                Ok(_) | Err(BrokerError::TopicExists(_)) => {
                    // Led everywhere before the workload starts.
                    if all_led(shared, o).await {
                        return Ok(());
                    }
                }
                Err(_) => {}
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("the topic was not created and led within 60 simulated seconds");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn all_led(shared: &Shared, o: &Options) -> bool {
    let brokers = shared.brokers().await;
    (0..o.partitions).all(|p| {
        brokers.iter().any(|(_, b)| {
            b.test_group_states()
                .iter()
                .any(|g| g.leader && g.partition.as_ref() == Some(&(TOPIC.to_string(), p)))
        })
    })
}

async fn inject(shared: &Shared, net: &SimNet, fault: &Fault, o: &Options) {
    let nemesis = |kind: OpKind, name: &str| {
        let mut op = Op::new(0, 0, NEMESIS_PROCESS, kind, OpF::Fault);
        op.fault = Some(name.to_string());
        op
    };
    let name = fault.name();
    record(&shared.rec, shared.start, nemesis(OpKind::Invoke, &name));
    match fault {
        Fault::Crash { nodes, down } => {
            {
                let mut c = shared.cluster.lock().await;
                for n in nodes {
                    if let Err(e) = c.crash(*n).await {
                        shared.violation(format!("crash of node {n} failed: {e}"));
                    }
                }
            }
            tokio::time::sleep(*down).await;
            let mut c = shared.cluster.lock().await;
            for n in nodes {
                if let Err(e) = c.start(*n).await {
                    shared.violation(format!("restart of node {n} failed: {e}"));
                }
            }
        }
        Fault::Isolate { node, hold } => {
            for other in 1..=o.nodes {
                if other != *node {
                    net.cut(*node, other);
                }
            }
            tokio::time::sleep(*hold).await;
            net.heal();
        }
        Fault::Pause { node, hold } => {
            net.freeze(*node, Instant::now() + *hold);
            tokio::time::sleep(*hold).await;
        }
        Fault::Messages { hold } => {
            net.set_message_odds(MessageOdds::SOME);
            tokio::time::sleep(*hold).await;
            net.set_message_odds(MessageOdds::NONE);
        }
        Fault::Slow { hold } => {
            net.set_latency(Duration::from_millis(5), Duration::from_millis(60));
            tokio::time::sleep(*hold).await;
            net.set_latency(Duration::from_micros(200), Duration::from_millis(2));
        }
        Fault::Reassign {
            partition,
            replicas,
        } => {
            for (_, b) in shared.brokers().await {
                if b.reassign_partition(&ctx(), TOPIC, *partition, replicas.clone())
                    .await
                    .is_ok()
                {
                    break;
                }
            }
        }
    }
    record(&shared.rec, shared.start, nemesis(OpKind::Info, &name));
}

async fn heal(shared: &Shared, net: &SimNet) {
    net.heal();
    net.set_message_odds(MessageOdds::NONE);
    net.set_latency(Duration::from_micros(200), Duration::from_millis(2));
    let mut c = shared.cluster.lock().await;
    let down: Vec<NodeId> = c
        .nodes
        .iter()
        .map(|n| n.id)
        .filter(|id| !c.is_up(*id))
        .collect();
    for id in down {
        if let Err(e) = c.start(id).await {
            shared.violation(format!("restart of node {id} at the end failed: {e}"));
        }
    }
}

fn parse_record(r: &cairn_record::Record) -> Option<(u32, u64)> {
    let key = std::str::from_utf8(r.key.as_deref()?).ok()?.parse().ok()?;
    let value = std::str::from_utf8(r.value.as_deref()?)
        .ok()?
        .parse()
        .ok()?;
    Some((key, value))
}

/// A record as the workload writes it: (offset, key, value).
type Rec3 = (i64, u32, u64);

/// Records of a fetch answer as (offset, key, value).
fn records_of(bytes: &Bytes) -> Vec<Rec3> {
    let mut out = Vec::new();
    for batch in cairn_record::split_batches(bytes).flatten() {
        let batch = Bytes::copy_from_slice(batch);
        let Ok((header, records)) = cairn_record::decode_batch(&batch) else {
            continue;
        };
        for r in &records {
            if let Some((k, v)) = parse_record(r) {
                out.push((header.base_offset + r.offset_delta as i64, k, v));
            }
        }
    }
    out
}

/// One idempotent producer writing key `partition` to its partition.
async fn producer(shared: Arc<Shared>, process: u64, partition: u32, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut stop = shared.stop.subscribe();
    let mut value: u64 = 0;
    let mut producer: Option<(i64, i16, i32)> = None;
    let mut target: NodeId = 1;
    while !*stop.borrow() {
        let pause = Duration::from_millis(rng.random_range(10..120));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => break,
        }
        value += 1;
        let mut invoke = Op::new(0, 0, process, OpKind::Invoke, OpF::Send);
        invoke.key = Some(partition);
        invoke.value = Some(value);
        record(&shared.rec, shared.start, invoke.clone());
        let mut outcome: Option<Result<u64, String>> = None;
        for attempt in 0..8 {
            let brokers = shared.brokers().await;
            if brokers.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let (id, broker) = brokers
                .iter()
                .find(|(id, _)| *id == target)
                .cloned()
                .unwrap_or_else(|| brokers[rng.random_range(0..brokers.len())].clone());
            let (pid, epoch, seq) = match producer {
                Some(p) => p,
                None => match broker.init_producer_id(&ctx(), None).await {
                    Ok((pid, epoch)) => {
                        producer = Some((pid, epoch, 0));
                        (pid, epoch, 0)
                    }
                    Err(_) => {
                        target = brokers[rng.random_range(0..brokers.len())].0;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let mut b = cairn_record::RecordBatchBuilder::new().with_producer(pid, epoch, seq);
            b.push(
                cairn_clock::unix_millis(),
                Some(partition.to_string().as_bytes()),
                Some(value.to_string().as_bytes()),
                &[],
            );
            let batch = b.build();
            match broker
                .produce(&ctx(), TOPIC, partition, batch, Acks::All, 2_000)
                .await
            {
                Ok(p) => {
                    if let Some(offset) = p.base_offset {
                        outcome = Some(Ok(offset));
                    } else {
                        outcome = Some(Err("no offset".into()));
                    }
                    break;
                }
                Err(BrokerError::NotLeader {
                    leader: Some((l, _)),
                    ..
                }) if l != id => target = l,
                Err(e) => {
                    if attempt > 2 {
                        target = brokers[rng.random_range(0..brokers.len())].0;
                    }
                    outcome = Some(Err(e.to_string()));
                    tokio::time::sleep(Duration::from_millis(rng.random_range(20..200))).await;
                }
            }
        }
        let mut done = invoke;
        match outcome {
            Some(Ok(offset)) => {
                done.kind = OpKind::Ok;
                done.partition = Some(partition);
                done.offset = Some(offset as i64);
                if let Some((pid, epoch, seq)) = producer {
                    producer = Some((pid, epoch, seq + 1));
                }
            }
            other => {
                // Unknown: it may have been written. A new producer id, so
                // the next send does not wait on this one's sequence.
                done.kind = OpKind::Info;
                done.error = other.and_then(|o| o.err());
                producer = None;
            }
        }
        record(&shared.rec, shared.start, done);
    }
}

/// One consumer reading `partition` from offset 0, in order.
async fn consumer(shared: Arc<Shared>, process: u64, partition: u32, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut stop = shared.stop.subscribe();
    let mut assign = Op::new(0, 0, process, OpKind::Invoke, OpF::Assign);
    assign.positions = Some(vec![(partition, 0)]);
    record(&shared.rec, shared.start, assign.clone());
    assign.kind = OpKind::Ok;
    record(&shared.rec, shared.start, assign);
    let mut next: u64 = 0;
    while !*stop.borrow() {
        let brokers = shared.brokers().await;
        if brokers.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let (_, broker) = brokers[rng.random_range(0..brokers.len())].clone();
        let c = ctx();
        let got = tokio::select! {
            r = broker.fetch(&c, TOPIC, partition, next, 64 << 10, Duration::from_millis(200)) => r,
            _ = stop.changed() => break,
        };
        let Ok(fetched) = got else {
            tokio::time::sleep(Duration::from_millis(rng.random_range(10..100))).await;
            continue;
        };
        let reads: Vec<Read> = records_of(&fetched.records)
            .into_iter()
            .filter(|(offset, _, _)| *offset >= next as i64)
            .map(|(offset, key, value)| Read {
                partition,
                offset,
                key,
                value,
            })
            .collect();
        if reads.is_empty() {
            continue;
        }
        next = reads.last().map_or(next, |r| r.offset as u64 + 1);
        let invoke = Op::new(0, 0, process, OpKind::Invoke, OpF::Poll);
        record(&shared.rec, shared.start, invoke);
        let mut ok = Op::new(0, 0, process, OpKind::Ok, OpF::Poll);
        ok.reads = reads;
        record(&shared.rec, shared.start, ok);
    }
}

/// After the heal: a fresh consumer per partition reads everything there is.
async fn drain(shared: &Arc<Shared>, o: &Options) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for p in 0..o.partitions {
        let process = cairn_jepsen::FIRST_CONSUMER_PROCESS + 100 + p as u64;
        let mut assign = Op::new(0, 0, process, OpKind::Invoke, OpF::Assign);
        assign.positions = Some(vec![(p, 0)]);
        record(&shared.rec, shared.start, assign.clone());
        assign.kind = OpKind::Ok;
        record(&shared.rec, shared.start, assign);
        let mut next: u64 = 0;
        let mut empty_reads = 0;
        while Instant::now() < deadline && empty_reads < 3 {
            let mut progressed = false;
            for (_, b) in shared.brokers().await {
                let Ok(f) = b
                    .fetch(&ctx(), TOPIC, p, next, 1 << 20, Duration::from_millis(100))
                    .await
                else {
                    continue;
                };
                let reads: Vec<Read> = records_of(&f.records)
                    .into_iter()
                    .filter(|(offset, _, _)| *offset >= next as i64)
                    .map(|(offset, key, value)| Read {
                        partition: p,
                        offset,
                        key,
                        value,
                    })
                    .collect();
                if reads.is_empty() {
                    if next >= f.high_watermark {
                        empty_reads += 1;
                    }
                } else {
                    next = reads.last().map_or(next, |r| r.offset as u64 + 1);
                    record(
                        &shared.rec,
                        shared.start,
                        Op::new(0, 0, process, OpKind::Invoke, OpF::Poll),
                    );
                    let mut ok = Op::new(0, 0, process, OpKind::Ok, OpF::Poll);
                    ok.reads = reads;
                    record(&shared.rec, shared.start, ok);
                    empty_reads = 0;
                }
                progressed = true;
                break;
            }
            if !progressed {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Every replica's committed log must agree with every other's where both
/// have it.
async fn compare_replicas(shared: &Arc<Shared>, o: &Options) {
    // Let followers apply what the leader committed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for p in 0..o.partitions {
        let mut logs: Vec<(NodeId, Vec<Rec3>)> = Vec::new();
        for (id, b) in shared.brokers().await {
            let Some(Some(reader)) = b.test_replica(TOPIC, p) else {
                continue;
            };
            let mut records = Vec::new();
            let mut next = reader.log_start();
            while next < reader.high_watermark() {
                let Ok(f) = reader.read_local(next, 1 << 20).await else {
                    break;
                };
                let got = records_of(&f.records);
                if got.is_empty() {
                    break;
                }
                next = got.last().map_or(next, |r| r.0 as u64 + 1);
                records.extend(got);
            }
            logs.push((id, records));
        }
        for i in 1..logs.len() {
            let (a, la) = &logs[0];
            let (b, lb) = &logs[i];
            let by_offset: HashMap<i64, (u32, u64)> =
                la.iter().map(|(o, k, v)| (*o, (*k, *v))).collect();
            for (offset, k, v) in lb {
                if let Some(other) = by_offset.get(offset) {
                    if *other != (*k, *v) {
                        shared.violation(format!(
                            "replicas disagree: partition {p} offset {offset}: node {a} holds {other:?}, node {b} holds {:?}",
                            (k, v)
                        ));
                        break;
                    }
                }
            }
        }
    }
}

/// Invariants checked while the cluster runs: at most one leader per group
/// and term; a replica's high watermark never goes back within one
/// incarnation of its node.
async fn monitor(shared: Arc<Shared>) {
    let mut leaders: HashMap<(Option<(String, u32)>, u64), NodeId> = HashMap::new();
    let mut hws: HashMap<(NodeId, u32, (String, u32)), u64> = HashMap::new();
    let mut reported = std::collections::HashSet::new();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let nodes: Vec<(NodeId, u32, cairn_broker::Broker)> = {
            let c = shared.cluster.lock().await;
            c.nodes
                .iter()
                .filter_map(|n| n.broker.clone().map(|b| (n.id, n.incarnation, b)))
                .collect()
        };
        let mut seen = std::collections::HashSet::new();
        for (id, incarnation, b) in nodes {
            for g in b.test_group_states() {
                tracing::debug!(
                    at_ms = shared.start.elapsed().as_millis() as u64,
                    node = id,
                    incarnation,
                    group = ?g.partition,
                    term = g.term,
                    leader = g.leader,
                    detail = %g.detail,
                    "group state"
                );
                if let Some(p) = &g.partition {
                    seen.insert((id, incarnation, p.clone()));
                }
                // Every group, the metadata group too: leader ids are
                // standard Raft's (a partition's term is its Kafka leader
                // epoch, which must name one leader).
                if g.leader {
                    let key = (g.partition.clone(), g.term);
                    match leaders.get(&key) {
                        Some(other) if *other != id => {
                            if reported.insert((key.clone(), id)) {
                                shared.violation(format!(
                                    "two leaders in one term: group {:?} term {}: nodes {other} and {id} (seen at {} ms)",
                                    g.partition,
                                    g.term,
                                    shared.start.elapsed().as_millis()
                                ));
                            }
                        }
                        Some(_) => {}
                        None => {
                            leaders.insert(key, id);
                        }
                    }
                }
                if let Some(p) = g.partition {
                    let key = (id, incarnation, p.clone());
                    let hw = hws.entry(key).or_insert(0);
                    if g.high_watermark < *hw {
                        shared.violation(format!(
                            "high watermark went back on node {id} (start {incarnation}) at {} ms: {p:?} {} -> {}",
                            shared.start.elapsed().as_millis(),
                            *hw,
                            g.high_watermark
                        ));
                    }
                    *hw = (*hw).max(g.high_watermark);
                }
            }
        }
        // A replica removed (a reassignment) and later added again starts
        // over.
        hws.retain(|k, _| seen.contains(k));
    }
}
