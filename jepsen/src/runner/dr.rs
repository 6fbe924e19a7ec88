//! `cairn-jepsen dr`: the DR drill. Two 3-node clusters as two regions
//! (`cluster/netns` instances, each its own subnet), region B mirroring
//! region A through the WAN emulator (`cairn_chaos::WanProxy`: B's link
//! reaches A's nodes through it by its address map). Idempotent producers
//! (acks=all) and a committing consumer group run with bootstrap lists that
//! name both regions. At a seeded moment every node of A is killed -9 at
//! once; a watchdog that has been probing A all along sees it gone and
//! promotes B (`auto`: the API call; `operator`: `cairn mirror promote`).
//! Producers and consumers carry on in B. Then B's whole log is read and
//! `cairn_jepsen::dr::analyse` measures RPO, RTO and duplicates.
//!
//! ```text
//!   producers, group ──▶ A (10.77.21.x) ◀── WAN proxies (10.77.22.254:700x) ◀── B's pullers
//!          └───────────────────────────────▶ B (10.77.22.x), after the loss
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use cairn_chaos::{Hosts, NetnsHosts, WanProxy, WanSettings};
use cairn_client::proto::MirrorLinkConfig;
use cairn_client::{
    Acks, Client, ClientConfig, Consumer, ConsumerConfig, ErrorCode, FetchedRecords, OffsetReset,
    OwnedRecord, RetryPolicy,
};
use cairn_jepsen::dr::{
    analyse, apply_bounds, write_report, Ack, Consumed, LogRecord, Observation, RepResult,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

// Names of the drill's own (also on clusters an operator names).
pub const TOPIC: &str = "dr-drill-orders";
pub const GROUP: &str = "dr-drill-readers";
pub const LINK: &str = "dr-drill";
/// `cluster/netns` instances of the two regions.
const REGION_A: u32 = 21;
const REGION_B: u32 = 22;
/// The WAN proxies listen on B's bridge at these ports + node number.
const WAN_PORT_BASE: u16 = 7000;
/// How often the watchdog probes A.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// How B is promoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Promotion {
    /// The drill's watchdog calls the promote API as soon as A is gone.
    Auto,
    /// The watchdog runs `cairn mirror promote`, as an operator would.
    Operator,
    /// Alternate: odd repetitions auto, even ones operator.
    Both,
}

#[derive(Debug, Clone)]
pub struct DrPlan {
    pub reps: u32,
    pub seed: u64,
    pub rtt_ms: u64,
    pub jitter_ms: u64,
    /// Bytes per second of produce over all producers.
    pub produce_rate: u64,
    pub record_bytes: usize,
    pub batch_records: usize,
    pub partitions: u32,
    pub producers: u32,
    /// When A is lost, after the producers start (seeded in this range).
    pub loss_after: std::ops::Range<Duration>,
    /// How long the drill carries on in B after the loss.
    pub after_loss: Duration,
    /// A counts as gone once it has not answered for this long.
    pub detect_after: Duration,
    pub promotion: Promotion,
    pub results: PathBuf,
    pub bin: PathBuf,
    pub netns_script: PathBuf,
    pub keep_cluster: bool,
    /// Region B's `mirror_sync_interval_ms`; `None`: the node's default.
    pub offset_sync_ms: Option<u64>,
    /// Invalid if the RPO window or the produce RTO is over these.
    pub max_rpo_ms: Option<u64>,
    pub max_rto_ms: Option<u64>,
    /// Clusters an operator names instead of the drill's own.
    pub external: Option<External>,
}

/// Two running clusters an operator names, and how to lose region A.
#[derive(Debug, Clone)]
pub struct External {
    pub a: Vec<String>,
    pub b: Vec<String>,
    /// A shell command that takes every node of A down at once (e.g. kills
    /// them, or cuts the region off); the loss counts from its start to its
    /// end.
    pub lose_a: String,
}

/// Where the two regions are.
enum Regions<'a> {
    /// The drill's own: network namespaces, the WAN emulator between.
    Netns(&'a NetnsHosts, &'a NetnsHosts),
    External(&'a External),
}

impl Regions<'_> {
    fn bootstraps(&self) -> (Vec<String>, Vec<String>) {
        match self {
            Regions::Netns(a, b) => (a.bootstrap(), b.bootstrap()),
            Regions::External(e) => (e.a.clone(), e.b.clone()),
        }
    }

    async fn lose_a(&self) -> Result<()> {
        match self {
            Regions::Netns(a, _) => {
                let kills = a.nodes().into_iter().map(|n| a.kill(n));
                for k in futures::future::join_all(kills).await {
                    k.context("killing region A")?;
                }
            }
            Regions::External(e) => {
                let status = tokio::process::Command::new("sh")
                    .args(["-c", &e.lose_a])
                    .status()
                    .await?;
                if !status.success() {
                    bail!("--lose-a {:?} failed: {status}", e.lose_a);
                }
            }
        }
        Ok(())
    }
}

/// Runs every repetition; answers whether all were valid.
pub async fn drill(plan: DrPlan) -> Result<bool> {
    std::fs::create_dir_all(&plan.results)?;
    let settings = format!(
        "{} reps, seed {}, {} ms RTT (jitter {} ms), {:.1} MB/s produce, {} B records in batches of {}, {} partitions, {} producers, loss after {:?}, {:?} in B after, detect after {:?}",
        plan.reps,
        plan.seed,
        plan.rtt_ms,
        plan.jitter_ms,
        plan.produce_rate as f64 / 1e6,
        plan.record_bytes,
        plan.batch_records,
        plan.partitions,
        plan.producers,
        plan.loss_after,
        plan.after_loss,
        plan.detect_after
    );
    eprintln!("dr drill: {settings}");
    let mut runs = Vec::new();
    for rep in 1..=plan.reps {
        let seed = plan.seed.wrapping_add(u64::from(rep));
        let promotion = match plan.promotion {
            Promotion::Auto => "auto",
            Promotion::Operator => "operator",
            Promotion::Both if rep % 2 == 1 => "auto",
            Promotion::Both => "operator",
        };
        eprintln!(
            "--- rep {rep}/{}: {promotion} promotion, seed {seed}",
            plan.reps
        );
        let dir = plan.results.join(format!("rep-{rep}"));
        std::fs::create_dir_all(&dir)?;
        let observed = one_rep(&plan, rep, seed, promotion, &dir).await;
        let observed = match observed {
            Ok(o) => o,
            Err(e) => {
                eprintln!("rep {rep} failed: {e:#}");
                let r = RepResult {
                    rep,
                    seed,
                    promotion: promotion.into(),
                    rtt_ms: plan.rtt_ms,
                    problems: vec![format!("the drill failed: {e:#}")],
                    ..RepResult::default()
                };
                runs.push((Observation::default(), r));
                continue;
            }
        };
        let mut result = analyse(&observed);
        apply_bounds(&mut result, plan.max_rpo_ms, plan.max_rto_ms);
        std::fs::write(dir.join("observation.json"), serde_json::to_vec(&observed)?)?;
        eprintln!(
            "rep {rep}: rpo {} records / {} ms, rto produce {:?} ms, consume {:?} ms, duplicates {}/{}, {}",
            result.rpo_records,
            result.rpo_window_ms,
            result.rto_produce_ms,
            result.rto_consume_ms,
            result.duplicates,
            result.duplicate_bound,
            if result.valid { "valid" } else { "INVALID" }
        );
        runs.push((observed, result));
    }
    let text = write_report(&plan.results, &settings, &runs)?;
    println!("{text}");
    println!("results: {}", plan.results.display());
    Ok(runs.iter().all(|(_, r)| r.valid))
}

fn client_config(deadline: Duration) -> ClientConfig {
    ClientConfig {
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(300),
            deadline,
        },
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        produce_timeout: Duration::from_secs(2),
        bootstrap_deadline: Duration::from_secs(3),
        idempotent: true,
        ..ClientConfig::default()
    }
}

fn millis(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// What the producers and the group record, shared.
#[derive(Default)]
struct Log {
    acks: Mutex<Vec<Ack>>,
    consumed: Mutex<Vec<Consumed>>,
    consumers_started_ms: Mutex<Vec<u64>>,
    resent: Mutex<BTreeSet<String>>,
    bytes_acked: std::sync::atomic::AtomicU64,
}

async fn one_rep(
    plan: &DrPlan,
    rep: u32,
    seed: u64,
    promotion: &str,
    dir: &std::path::Path,
) -> Result<Observation> {
    let mut rng = StdRng::seed_from_u64(seed);
    if let Some(e) = &plan.external {
        return drive(plan, rep, seed, promotion, &Regions::External(e), &mut rng).await;
    }
    let a = NetnsHosts::new(&plan.netns_script, dir.join("region-a"), 3).with_instance(REGION_A);
    let mut b =
        NetnsHosts::new(&plan.netns_script, dir.join("region-b"), 3).with_instance(REGION_B);
    if let Some(ms) = plan.offset_sync_ms {
        b = b.with_env("CAIRN_MIRROR_SYNC_INTERVAL_MS", &ms.to_string());
    }
    for h in [&a, &b] {
        h.down().await.ok();
        let _ = std::fs::remove_dir_all(h.dir());
    }
    eprintln!("starting region A (10.77.{REGION_A}.0/24) and region B (10.77.{REGION_B}.0/24)");
    a.up(&plan.bin, None).await.context("starting region A")?;
    b.up(&plan.bin, None).await.context("starting region B")?;
    let result = drive(
        plan,
        rep,
        seed,
        promotion,
        &Regions::Netns(&a, &b),
        &mut rng,
    )
    .await;
    if !plan.keep_cluster {
        a.down().await.ok();
        b.down().await.ok();
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    plan: &DrPlan,
    rep: u32,
    seed: u64,
    promotion: &str,
    regions: &Regions<'_>,
    rng: &mut StdRng,
) -> Result<Observation> {
    let (a_boot, b_boot) = regions.bootstraps();
    // The WAN (the drill's own regions): one proxy per node of A, on B's side.
    let wan = WanSettings {
        jitter: Duration::from_millis(plan.jitter_ms),
        ..WanSettings::rtt(Duration::from_millis(plan.rtt_ms))
    };
    let mut proxies = Vec::new();
    let mut address_map = std::collections::HashMap::new();
    for (i, advertised) in a_boot.iter().enumerate() {
        let Regions::Netns(_, b) = regions else { break };
        let listen: SocketAddr =
            format!("{}:{}", b.bridge_ip(), WAN_PORT_BASE + 1 + i as u16).parse()?;
        let p = WanProxy::start(listen, advertised.parse()?, wan)
            .await
            .with_context(|| format!("WAN proxy on {listen}"))?;
        address_map.insert(advertised.clone(), p.listen.to_string());
        proxies.push(p);
    }

    let admin_a = Client::connect_with(&a_boot, client_config(Duration::from_secs(30))).await?;
    let admin_b = Client::connect_with(&b_boot, client_config(Duration::from_secs(30))).await?;
    super::run::create_topic(&admin_a, TOPIC, plan.partitions, 3, Default::default()).await?;
    let link = MirrorLinkConfig {
        name: LINK.into(),
        source_bootstrap: a_boot.clone(),
        topics_include: vec![TOPIC.into()],
        groups_include: vec![GROUP.into()],
        source_address_map: address_map,
        ..MirrorLinkConfig::default()
    };
    admin_b
        .create_mirror_link(link)
        .await
        .context("creating the link")?;
    // The mirror runs before the workload starts.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = admin_b.mirror_status(LINK).await.unwrap_or_default();
        if status.len() == plan.partitions as usize
            && status
                .iter()
                .all(|s| s.state == "caught-up" || s.state == "mirroring")
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the mirror did not start within 60 s: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let both: Vec<String> = a_boot.iter().chain(&b_boot).cloned().collect();
    let log = Arc::new(Log::default());
    let stop_producing = Arc::new(AtomicBool::new(false));
    let stop_consuming = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let mut producers = Vec::new();
    for p in 0..plan.producers {
        producers.push(tokio::spawn(producer(
            p,
            both.clone(),
            plan.clone(),
            t0,
            log.clone(),
            stop_producing.clone(),
        )));
    }
    let (lost_tx, lost_rx) = tokio::sync::watch::channel(false);
    let consumer = tokio::spawn(group_member(
        both.clone(),
        t0,
        log.clone(),
        stop_consuming.clone(),
        lost_rx,
    ));
    // The watchdog probes A from the start: it does not know when A goes.
    let watchdog = tokio::spawn(watchdog(
        a_boot.clone(),
        b_boot.clone(),
        plan.bin.clone(),
        promotion.to_string(),
        plan.detect_after,
        t0,
    ));

    let loss_at = rng.random_range(plan.loss_after.clone());
    let mut last_report = Instant::now();
    while t0.elapsed() < loss_at {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "  {:>5.1} s: {} acknowledged, {} read",
                t0.elapsed().as_secs_f64(),
                log.acks.lock().map(|a| a.len()).unwrap_or(0),
                log.consumed.lock().map(|c| c.len()).unwrap_or(0)
            );
        }
    }
    let status = admin_b.mirror_status(LINK).await.unwrap_or_default();
    let lag_records: u64 = status.iter().map(|s| s.lag_records).sum();
    let lag_ms = status
        .iter()
        .map(|s| s.lag_ms.max(0) as u64)
        .max()
        .unwrap_or(0);
    let bytes_before_loss = log.bytes_acked.load(Ordering::Relaxed);
    let kill_ms = millis(t0);
    let _ = lost_tx.send(true);
    eprintln!(
        "  {:>5.1} s: region A lost (kill -9 of every node)",
        kill_ms as f64 / 1000.0
    );
    regions.lose_a().await?;
    let dead_ms = millis(t0);
    let mirrored_commits: BTreeMap<u32, u64> = match admin_b.fetch_offsets(GROUP).await {
        Ok(c) => c
            .into_iter()
            .filter(|c| c.topic == TOPIC)
            .map(|c| (c.partition, c.offset.max(0) as u64))
            .collect(),
        Err(e) => {
            eprintln!("  the group's offsets in B: {e}");
            BTreeMap::new()
        }
    };
    let (detected_ms, promoted_ms) = watchdog.await??;
    eprintln!(
        "  detected at {} ms, promoted at {} ms",
        detected_ms, promoted_ms
    );
    let until = Duration::from_millis(dead_ms) + plan.after_loss;
    while t0.elapsed() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_producing.store(true, Ordering::Relaxed);
    for p in producers {
        p.await?;
    }
    // The group reads to the end of B's log.
    let ends = ends(&admin_b, plan.partitions).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let read: BTreeMap<u32, u64> = {
            let c = log
                .consumed
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?;
            let mut m = BTreeMap::new();
            for r in c.iter().filter(|r| r.at_ms >= dead_ms) {
                let e = m.entry(r.partition).or_insert(0);
                *e = (*e).max(r.offset + 1);
            }
            m
        };
        if ends
            .iter()
            .all(|(p, end)| *end == 0 || read.get(p).copied().unwrap_or(0) >= *end)
        {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("  the group did not read to the end of B within 60 s: read {read:?}, ends {ends:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_consuming.store(true, Ordering::Relaxed);
    consumer.await?;
    let end_ms = millis(t0);
    let final_log = read_log(&admin_b, plan.partitions).await?;
    drop(proxies);
    let acks = take(&log.acks)?;
    let consumed = take(&log.consumed)?;
    let resent = take(&log.resent)?;
    let consumers_started_ms = take(&log.consumers_started_ms)?;
    Ok(Observation {
        rep,
        seed,
        promotion: promotion.into(),
        rtt_ms: plan.rtt_ms,
        kill_ms,
        dead_ms,
        detected_ms: Some(detected_ms),
        promoted_ms: Some(promoted_ms),
        end_ms,
        acks,
        resent,
        consumed,
        consumers_started_ms,
        final_log,
        mirrored_commits,
        lag_records_at_loss: lag_records,
        lag_ms_at_loss: lag_ms,
        bytes_before_loss,
        produce_start_ms: 0,
    })
}

/// What a shared record holds, taken out.
fn take<T: Default>(m: &Mutex<T>) -> Result<T> {
    let mut held = m.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    Ok(std::mem::take(&mut *held))
}

/// Each partition's high watermark in B.
async fn ends(client: &Client, partitions: u32) -> Result<BTreeMap<u32, u64>> {
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        let end = client
            .list_offsets(TOPIC, p, cairn_client::OffsetSpec::Latest)
            .await?;
        out.insert(p, end.offset.max(0) as u64);
    }
    Ok(out)
}

/// B's whole log.
async fn read_log(client: &Client, partitions: u32) -> Result<Vec<LogRecord>> {
    let mut out = Vec::new();
    for p in 0..partitions {
        let mut next = 0u64;
        loop {
            let resp = client.fetch(TOPIC, p, next, 4 << 20, 0).await?;
            let f = FetchedRecords::decode(resp, next)?;
            for r in &f.records {
                out.push(LogRecord {
                    id: record_id(r.value.as_deref()),
                    partition: p,
                    offset: r.offset as u64,
                });
            }
            if f.next_offset <= next || f.next_offset >= f.high_watermark {
                break;
            }
            next = f.next_offset;
        }
    }
    Ok(out)
}

/// The id a value starts with (up to the first space).
fn record_id(value: Option<&[u8]>) -> String {
    let v = value.unwrap_or_default();
    let end = v.iter().position(|b| *b == b' ').unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// Sends batches of `batch_records` to the partitions in turn at the
/// plan's rate, acks=all, idempotent; a batch is sent until acknowledged
/// (refused as read-only before the promotion: again; a sequence B does
/// not know, as its predecessors were lost: from a new producer).
async fn producer(
    id: u32,
    bootstrap: Vec<String>,
    plan: DrPlan,
    t0: Instant,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
) {
    let rate = (plan.produce_rate as f64 / f64::from(plan.producers)).max(1.0);
    let mut client: Option<Client> = None;
    let mut seq = 0u64;
    let mut partition = id % plan.partitions;
    let mut paced_from = Instant::now();
    let mut paced_bytes = 0u64;
    let pad = " ".to_string() + &"x".repeat(plan.record_bytes.saturating_sub(24));
    while !stop.load(Ordering::Relaxed) {
        let due = paced_from + Duration::from_secs_f64(paced_bytes as f64 / rate);
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        } else if Instant::now() - due > Duration::from_secs(1) {
            // Behind after a stall: carry on at the rate, no burst.
            paced_from = Instant::now();
            paced_bytes = 0;
        }
        let records: Vec<OwnedRecord> = (0..plan.batch_records as u64)
            .map(|i| OwnedRecord {
                partition: Some(partition),
                key: Some(Bytes::from(format!("p{id}"))),
                value: Some(Bytes::from(format!("p{id}-{}{pad}", seq + i))),
                ..OwnedRecord::default()
            })
            .collect();
        let bytes: usize = records
            .iter()
            .map(|r| r.value.as_ref().map_or(0, |v| v.len()))
            .sum();
        let mut unknown = false;
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let c = match &client {
                Some(c) => c.clone(),
                None => {
                    match Client::connect_with(&bootstrap, client_config(Duration::from_secs(5)))
                        .await
                    {
                        Ok(c) => {
                            client = Some(c.clone());
                            c
                        }
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    }
                }
            };
            let sent = tokio::time::timeout(
                Duration::from_secs(10),
                c.produce_records(TOPIC, &records, Acks::All),
            )
            .await;
            let error = match sent {
                Ok(Ok(outcomes)) => match outcomes.into_iter().next().map(|o| o.result) {
                    Some(Ok(r)) => {
                        let at = millis(t0);
                        if let Ok(mut acks) = log.acks.lock() {
                            for (i, _) in records.iter().enumerate() {
                                acks.push(Ack {
                                    id: format!("p{id}-{}", seq + i as u64),
                                    partition,
                                    offset: r.base_offset as u64 + i as u64,
                                    at_ms: at,
                                });
                            }
                        }
                        log.bytes_acked.fetch_add(bytes as u64, Ordering::Relaxed);
                        break;
                    }
                    Some(Err(e)) => Some(e),
                    None => None,
                },
                Ok(Err(e)) => Some(e),
                Err(_) => None,
            };
            let read_only = error
                .as_ref()
                .is_some_and(|e| e.to_string().contains("read-only mirror"));
            match error.as_ref().and_then(|e| e.code()) {
                // B before its promotion: nothing was written; again.
                Some(ErrorCode::InvalidArgument) if read_only => {}
                // Refused before the write (B has not seen the batches
                // before this one, lost with A; or another refusal): a new
                // producer id starts over, nothing of this batch is written.
                Some(
                    ErrorCode::OutOfOrderSequence
                    | ErrorCode::InvalidProducerEpoch
                    | ErrorCode::InvalidArgument
                    | ErrorCode::UnknownTopic
                    | ErrorCode::UnknownPartition,
                ) => {
                    client = None;
                }
                _ => {
                    // Unknown outcome: it may be written; sent again by a
                    // new producer it could be there twice.
                    unknown = true;
                    client = None;
                }
            }
            if unknown {
                if let Ok(mut r) = log.resent.lock() {
                    for i in 0..records.len() as u64 {
                        r.insert(format!("p{id}-{}", seq + i));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seq += plan.batch_records as u64;
        paced_bytes += bytes as u64;
        partition = (partition + 1) % plan.partitions;
    }
}

/// One member of the group: polls, records what it reads, commits every
/// 500 ms; on any failure a new member (a new client) joins, wherever the
/// bootstrap list leads it. The member running at the loss runs in region
/// A: it dies with it (dropped mid-poll), and a new one takes over.
async fn group_member(
    bootstrap: Vec<String>,
    t0: Instant,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
    mut lost: tokio::sync::watch::Receiver<bool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let client =
            match Client::connect_with(&bootstrap, client_config(Duration::from_secs(5))).await {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
        let mut config = ConsumerConfig::new(GROUP);
        config.client_id = "dr-drill".into();
        config.session_timeout = Duration::from_secs(6);
        config.heartbeat_interval = Duration::from_secs(1);
        config.rebalance_timeout = Duration::from_secs(5);
        config.auto_commit = false;
        config.offset_reset = OffsetReset::Earliest;
        config.max_poll_records = 500;
        config.fetch_max_wait = Duration::from_millis(200);
        let mut consumer = Consumer::new(client, config);
        consumer.subscribe(&[TOPIC]);
        let incarnation = match log.consumers_started_ms.lock() {
            Ok(mut started) => {
                started.push(millis(t0));
                started.len() as u32 - 1
            }
            Err(_) => return,
        };
        // A member started before the loss runs in region A and dies with
        // it: whatever it has in flight then is never processed.
        let in_region_a = !*lost.borrow();
        let mut last_commit = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                let _ = tokio::time::timeout(Duration::from_secs(5), consumer.commit()).await;
                return;
            }
            let poll = tokio::time::timeout(
                Duration::from_secs(5),
                consumer.poll(Duration::from_millis(200)),
            );
            let Some(Ok(Ok(records))) = unless_lost(in_region_a, &mut lost, poll).await else {
                break;
            };
            let at = millis(t0);
            if let Ok(mut c) = log.consumed.lock() {
                for r in records {
                    c.push(Consumed {
                        id: record_id(r.record.value.as_deref()),
                        partition: r.partition,
                        offset: r.record.offset as u64,
                        at_ms: at,
                        consumer: incarnation,
                    });
                }
            }
            if last_commit.elapsed() >= Duration::from_millis(500) {
                last_commit = Instant::now();
                let commit = tokio::time::timeout(Duration::from_secs(5), consumer.commit());
                let Some(Ok(Ok(()))) = unless_lost(in_region_a, &mut lost, commit).await else {
                    break;
                };
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `f`'s outcome, or `None` if region A is lost first while the caller
/// runs there (it dies with it; what it had in flight is never processed).
async fn unless_lost<T>(
    in_region_a: bool,
    lost: &mut tokio::sync::watch::Receiver<bool>,
    f: impl std::future::Future<Output = T>,
) -> Option<T> {
    if !in_region_a {
        return Some(f.await);
    }
    tokio::select! {
        v = f => Some(v),
        _ = lost.wait_for(|l| *l) => None,
    }
}

/// Probes A's nodes every 100 ms (a TCP connect to each); once none has
/// answered for `detect_after`, promotes B. Answers when it saw A gone and
/// when the promotion answered (ms since `t0`).
async fn watchdog(
    a: Vec<String>,
    b: Vec<String>,
    bin: PathBuf,
    promotion: String,
    detect_after: Duration,
    t0: Instant,
) -> Result<(u64, u64)> {
    let mut down_since: Option<Instant> = None;
    loop {
        let probes = a.iter().map(|addr| async move {
            matches!(
                tokio::time::timeout(
                    Duration::from_millis(300),
                    tokio::net::TcpStream::connect(addr.as_str())
                )
                .await,
                Ok(Ok(_))
            )
        });
        let up = futures::future::join_all(probes)
            .await
            .into_iter()
            .any(|u| u);
        match (up, down_since) {
            (true, _) => down_since = None,
            (false, None) => down_since = Some(Instant::now()),
            (false, Some(since)) if since.elapsed() >= detect_after => break,
            _ => {}
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    let detected = millis(t0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = if promotion == "operator" {
            let out = tokio::process::Command::new(&bin)
                .args(["mirror", "promote", LINK, "--bootstrap", &b.join(",")])
                .output()
                .await?;
            if !out.status.success() {
                eprintln!(
                    "  cairn mirror promote: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            out.status.success()
        } else {
            let client = Client::connect_with(&b, client_config(Duration::from_secs(5))).await;
            match client {
                Ok(c) => match c.promote_mirror_topics(LINK, &[]).await {
                    Ok(_) => true,
                    Err(e) => {
                        eprintln!("  promoting B: {e}");
                        false
                    }
                },
                Err(e) => {
                    eprintln!("  connecting to B: {e}");
                    false
                }
            }
        };
        if done {
            return Ok((detected, millis(t0)));
        }
        if Instant::now() > deadline {
            bail!("B could not be promoted within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
