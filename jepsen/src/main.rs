//! `cairn-jepsen`: Cairn's Jepsen-style harness (issue 3).
//!
//!   cairn-jepsen test --time 60 --seed 7 --nemesis kill,pause,partition
//!   cairn-jepsen test --workload compaction --nodes 5 --nemesis kill,membership
//!   cairn-jepsen test --workload group --nemesis isolate,kill,pause,partition
//!   cairn-jepsen failover --kills 20
//!   cairn-jepsen check results/history.jsonl
//!
//! Nodes run as separate hosts in network namespaces (`cluster/netns`,
//! needs root). Results — history.jsonl, report.txt, report.html,
//! verdict.json — go to `--results`. The exit code is 0 only for a valid run.

mod runner;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cairn-jepsen",
    about = "Fault-injection consistency tests for Cairn"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ClusterArgs {
    /// The cairn binary the nodes run.
    #[arg(long, env = "CAIRN_BIN", default_value_os_t = default_bin())]
    bin: PathBuf,
    /// The script that sets up network-namespace hosts.
    #[arg(long, default_value_os_t = repo_path("cluster/netns"))]
    netns_script: PathBuf,
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Folder for the history, report and verdict.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Leave the cluster running afterwards (`cluster/netns down` stops it).
    #[arg(long)]
    keep_cluster: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workload under faults, then check the history.
    ///
    /// Workloads (--workload):
    ///
    /// queue (default): producers send unique values per key, consumers read every partition;
    /// checked as Jepsen's Kafka queue workload (lost-write, unseen, duplicate,
    /// inconsistent-offsets, nonmonotonic-poll, poll-skip, nonmonotonic-send, aborted-read,
    /// phantom-read).
    ///
    /// compaction: keyed writes over --keys keys, 20% tombstones, to a compacted topic
    /// (cleanup.policy=compact, delete.retention.ms = --delete-retention-ms); nodes compact
    /// every second. After the heal every replica's own copy is read (nodes run with
    /// test_replica_reads) and each key's final value on each replica must be its last
    /// acknowledged write or a later unknown-outcome one: resurrected (a deleted key came back),
    /// wrong-final-value, replica-divergence. Invalid too if some replica removed nothing.
    ///
    /// group: --members consumer-group members poll and commit (members leave and are replaced
    /// every 5-20 s) while producers write; a member must never resume a partition below an
    /// acknowledged commit: offset-regression. Faults that hit the metadata leader hit the
    /// group coordinator.
    #[command(verbatim_doc_comment)]
    Test {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The workload: queue, compaction or group (see above).
        #[arg(long, value_enum, default_value_t = runner::run::Workload::Queue)]
        workload: runner::run::Workload,
        /// Seconds of workload under faults.
        #[arg(long, default_value_t = 60)]
        time: u64,
        /// Seed of the nemesis schedule and the workload's choices.
        #[arg(long)]
        seed: Option<u64>,
        /// Faults: comma-separated of kill,power,pause,partition,isolate,netem,disk,clock,
        /// membership (needs more nodes than 3), metadata, join (a new node joins on a spare
        /// host), remove (a joined node is decommissioned, then removed); `all` (the first
        /// eight); `none`.
        #[arg(long, default_value = "kill,pause,partition")]
        nemesis: String,
        #[arg(long, default_value_t = 4)]
        partitions: u32,
        #[arg(long, default_value_t = 4)]
        producers: u32,
        /// Queue workload: consumers reading every partition.
        #[arg(long, default_value_t = 2)]
        consumers: u32,
        /// Compaction workload: keys written, over all partitions (key k to partition k mod
        /// partitions).
        #[arg(long, default_value_t = 16)]
        keys: u32,
        /// Compaction workload: the topic's delete.retention.ms (how long a tombstone stays).
        #[arg(long, default_value_t = 2000)]
        delete_retention_ms: u64,
        /// Group workload: members of the consumer group.
        #[arg(long, default_value_t = 3)]
        members: u32,
        /// Pause between one producer's sends, in milliseconds.
        #[arg(long, default_value_t = 5)]
        send_interval_ms: u64,
        /// Quiet time between faults, seconds: min..max.
        #[arg(long, default_value = "2..6")]
        quiet: String,
        /// How long a fault is held, seconds: min..max.
        #[arg(long, default_value = "3..10")]
        hold: String,
        /// After the final heal every partition must take a write within this many seconds.
        #[arg(long, default_value_t = 30)]
        liveness_s: u64,
        /// Size of each node's own data filesystem (a loop-mounted image), MiB.
        /// Default: 1024 when the disk fault is on, else no separate filesystem.
        #[arg(long)]
        disk_mb: Option<u64>,
        /// Invalid if any fault keeps a partition from taking writes longer
        /// than this many seconds (an availability regression bound).
        #[arg(long)]
        max_unavailable_s: Option<f64>,
        /// Give the topic `retention.bytes` = this (per partition): retention
        /// deletes old records during the run, snapshots are cut and purged,
        /// and a replica a partition moves to (`membership`) catches up from
        /// a snapshot. Consumers that fall below the log start move to it;
        /// acknowledged records deleted before any poll read them are
        /// counted, not checked.
        #[arg(long)]
        retention_bytes: Option<u64>,
        /// Spare hosts new nodes join on (`join` fault); the `remove` fault
        /// decommissions and removes joined nodes, whose hosts are never used
        /// again. Default: 6 when `join` is on, else 0.
        #[arg(long)]
        spares: Option<u64>,
    },
    /// Measure produce unavailability after kill -9 of a partition leader.
    Failover {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        kills: u32,
        /// Concurrent producers writing to the partition.
        #[arg(long, default_value_t = 2)]
        producers: u32,
    },
    /// The DR drill: two 3-node regions (A mirrored to B over the WAN
    /// emulator), producers and a consumer group in A; at a seeded moment
    /// every node of A is killed -9, B is promoted, clients carry on in B.
    /// Reports RPO, RTO and duplicates per repetition and min/median/max
    /// (report.txt, report.html with timelines, report.json).
    Dr {
        /// The cairn binary the nodes run.
        #[arg(long, env = "CAIRN_BIN", default_value_os_t = default_bin())]
        bin: PathBuf,
        #[arg(long, default_value_os_t = repo_path("cluster/netns"))]
        netns_script: PathBuf,
        #[arg(long)]
        results: Option<PathBuf>,
        #[arg(long)]
        keep_cluster: bool,
        #[arg(long, default_value_t = 3)]
        reps: u32,
        #[arg(long)]
        seed: Option<u64>,
        /// Round trip between the regions, ms.
        #[arg(long, default_value_t = 40)]
        rtt_ms: u64,
        #[arg(long, default_value_t = 0)]
        jitter_ms: u64,
        /// Produce rate over all producers, bytes per second.
        #[arg(long, default_value_t = 5_000_000)]
        rate: u64,
        #[arg(long, default_value_t = 1000)]
        record_bytes: usize,
        #[arg(long, default_value_t = 25)]
        batch_records: usize,
        #[arg(long, default_value_t = 3)]
        partitions: u32,
        #[arg(long, default_value_t = 2)]
        producers: u32,
        /// When region A is lost, seconds after the producers start: min..max.
        #[arg(long, default_value = "15..25")]
        loss_after: String,
        /// Seconds the drill carries on in B after the loss.
        #[arg(long, default_value_t = 15)]
        after_loss_s: u64,
        /// A counts as gone when it has not answered for this many ms.
        #[arg(long, default_value_t = 1000)]
        detect_ms: u64,
        /// auto (the drill calls the promote API), operator (`cairn mirror
        /// promote`), or both (alternating).
        #[arg(long, value_enum, default_value_t = runner::dr::Promotion::Both)]
        promotion: runner::dr::Promotion,
        /// Region B's `mirror_sync_interval_ms`: how often the link copies
        /// the group's committed offsets (fewer duplicates after the
        /// failover when shorter). Default: the node's (2000).
        #[arg(long)]
        offset_sync_ms: Option<u64>,
        /// Invalid if a repetition's RPO window is over this many ms.
        #[arg(long)]
        max_rpo_ms: Option<u64>,
        /// Invalid if a repetition's first produce in B comes later than
        /// this many ms after the kill.
        #[arg(long)]
        max_rto_ms: Option<u64>,
        /// Run against two running clusters instead of starting its own:
        /// region A's gRPC addresses (comma-separated). Needs --region-b
        /// and --lose-a; one repetition (A is down afterwards); no WAN
        /// emulator (the link goes as B reaches A). The drill creates topic
        /// dr-drill-orders in A and link dr-drill in B, and promotes B's
        /// copy: delete both (and the link) before running it again.
        #[arg(long, value_delimiter = ',', requires_all = ["region_b", "lose_a"])]
        region_a: Vec<String>,
        /// Region B's gRPC addresses (comma-separated).
        #[arg(long, value_delimiter = ',', requires = "region_a")]
        region_b: Vec<String>,
        /// A shell command that takes every node of region A down at once.
        #[arg(long, requires = "region_a")]
        lose_a: Option<String>,
    },
    /// Check an existing history and write its report next to it.
    Check {
        history: PathBuf,
        /// The workload that wrote the history: queue, compaction or group.
        #[arg(long, value_enum, default_value_t = runner::run::Workload::Queue)]
        workload: runner::run::Workload,
    },
}

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

/// The `cairn` built beside this binary (cargo puts both in one folder).
fn default_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("cairn")))
        .unwrap_or_else(|| PathBuf::from("cairn"))
}

fn seconds_range(s: &str) -> Result<std::ops::Range<Duration>> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| anyhow::anyhow!("expected MIN..MAX seconds, got {s:?}"))?;
    let a: f64 = a.trim().parse()?;
    let b: f64 = b.trim().parse()?;
    anyhow::ensure!(a >= 0.0 && b >= a, "bad range {s:?}");
    Ok(Duration::from_secs_f64(a)..Duration::from_secs_f64(b))
}

fn results_dir(given: Option<PathBuf>, what: &str, seed: u64) -> PathBuf {
    given.unwrap_or_else(|| {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        repo_path("jepsen/results").join(format!("{what}-{stamp}-seed{seed}"))
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Test {
            cluster,
            workload,
            time,
            seed,
            nemesis,
            partitions,
            producers,
            consumers,
            keys,
            delete_retention_ms,
            members,
            send_interval_ms,
            quiet,
            hold,
            liveness_s,
            disk_mb,
            retention_bytes,
            max_unavailable_s,
            spares,
        } => {
            let seed = seed.unwrap_or_else(rand::random);
            let plan = runner::run::TestPlan {
                time: Duration::from_secs(time),
                seed,
                nemesis: nemesis.clone(),
                nodes: cluster.nodes,
                partitions,
                producers,
                consumers,
                send_interval: Duration::from_millis(send_interval_ms),
                quiet: seconds_range(&quiet)?,
                hold: seconds_range(&hold)?,
                liveness_bound: Duration::from_secs(liveness_s),
                results: results_dir(
                    cluster.results,
                    match workload {
                        runner::run::Workload::Queue => "test",
                        other => other.name(),
                    },
                    seed,
                ),
                bin: cluster.bin,
                netns_script: cluster.netns_script,
                disk_mb,
                keep_cluster: cluster.keep_cluster,
                max_unavailable: max_unavailable_s.map(Duration::from_secs_f64),
                retention_bytes,
                spares: spares.unwrap_or(if nemesis_has(&nemesis, "join") { 6 } else { 0 }),
                workload,
                keys,
                delete_retention: Duration::from_millis(delete_retention_ms),
                members,
            };
            let outcome = runner::run::test(plan).await?;
            println!("{}", outcome.summary);
            println!("results: {}", outcome.dir.display());
            if !outcome.valid {
                eprintln!("INVALID: see {}", outcome.dir.join("report.txt").display());
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Failover {
            cluster,
            kills,
            producers,
        } => {
            let plan = runner::failover::FailoverPlan {
                kills,
                nodes: cluster.nodes,
                producers,
                results: results_dir(cluster.results, "failover", 0),
                bin: cluster.bin,
                netns_script: cluster.netns_script,
                keep_cluster: cluster.keep_cluster,
            };
            runner::failover::failover(plan).await.map(drop)
        }
        Command::Dr {
            bin,
            netns_script,
            results,
            keep_cluster,
            reps,
            seed,
            rtt_ms,
            jitter_ms,
            rate,
            record_bytes,
            batch_records,
            partitions,
            producers,
            loss_after,
            after_loss_s,
            detect_ms,
            promotion,
            offset_sync_ms,
            max_rpo_ms,
            max_rto_ms,
            region_a,
            region_b,
            lose_a,
        } => {
            let external = lose_a.map(|lose_a| runner::dr::External {
                a: region_a,
                b: region_b,
                lose_a,
            });
            let reps = if external.is_some() { 1 } else { reps };
            // No WAN emulator between clusters an operator names.
            let (rtt_ms, jitter_ms) = if external.is_some() {
                (0, 0)
            } else {
                (rtt_ms, jitter_ms)
            };
            let seed = seed.unwrap_or_else(rand::random);
            let plan = runner::dr::DrPlan {
                reps,
                seed,
                rtt_ms,
                jitter_ms,
                produce_rate: rate,
                record_bytes: record_bytes.max(32),
                batch_records: batch_records.max(1),
                partitions: partitions.max(1),
                producers: producers.max(1),
                loss_after: seconds_range(&loss_after)?,
                after_loss: Duration::from_secs(after_loss_s),
                detect_after: Duration::from_millis(detect_ms),
                promotion,
                results: results_dir(results, "dr", seed),
                bin,
                netns_script,
                keep_cluster,
                offset_sync_ms,
                max_rpo_ms,
                max_rto_ms,
                external,
            };
            if !runner::dr::drill(plan).await? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Check { history, workload } => {
            let h = cairn_jepsen::History::read_jsonl(&history)?;
            let result = match workload {
                runner::run::Workload::Queue => cairn_jepsen::check(&h),
                runner::run::Workload::Compaction => cairn_jepsen::check_compaction(&h),
                runner::run::Workload::Group => cairn_jepsen::check_group(&h),
            };
            let dir = history
                .parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            let meta = cairn_jepsen::RunMeta::default();
            cairn_jepsen::write_report(&dir, &h, &result, &meta)?;
            println!("{}", std::fs::read_to_string(dir.join("report.txt"))?);
            if !result.valid {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// Whether the comma-separated `--nemesis` list names `fault`.
fn nemesis_has(nemesis: &str, fault: &str) -> bool {
    nemesis.split(',').any(|f| f.trim() == fault)
}
