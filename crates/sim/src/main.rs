//! `cairn-sim run --seeds A..B` and `cairn-sim replay SEED`.
#![allow(clippy::disallowed_methods)] // the runner's own progress uses real time

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;

use anyhow::Context as _;
use cairn_sim::Options;
use cairn_sim::Report;
use clap::Parser;
use clap::Subcommand;
use clap::ValueEnum as _;

#[derive(Parser)]
#[command(
    name = "cairn-sim",
    about = "A Cairn cluster in one process, under seeded faults"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Simulated seconds of workload under faults per seed.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Nodes (the first three are the metadata voters).
    #[arg(long, default_value_t = 4)]
    nodes: u64,
    /// Partitions of the topic (RF3).
    #[arg(long, default_value_t = 3)]
    partitions: u32,
    /// Run without faults.
    #[arg(long)]
    no_faults: bool,
    /// Plant a bug on purpose, to see the simulator find it.
    #[arg(long, value_enum, default_value = "none")]
    plant: cairn_sim::cluster::Plant,
    /// Where the nodes' disks go (default: /dev/shm/cairn-sim-PID).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Output: text or json (one report per line, then a summary).
    #[arg(long, default_value = "text")]
    format: String,
}

impl RunArgs {
    /// These arguments, for a child `cairn-sim one`.
    fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--seconds".to_string(),
            self.seconds.to_string(),
            "--nodes".to_string(),
            self.nodes.to_string(),
            "--partitions".to_string(),
            self.partitions.to_string(),
            "--format".to_string(),
            "json".to_string(),
        ];
        if self.no_faults {
            v.push("--no-faults".into());
        }
        if let Some(p) = self.plant.to_possible_value() {
            v.push("--plant".into());
            v.push(p.get_name().to_string());
        }
        if let Some(r) = &self.root {
            v.push("--root".into());
            v.push(r.display().to_string());
        }
        v
    }

    fn options(&self, trace: bool) -> Options {
        let mut o = Options {
            seconds: self.seconds,
            nodes: self.nodes.max(3),
            partitions: self.partitions.max(1),
            faults: !self.no_faults,
            plant: self.plant,
            trace,
            ..Options::default()
        };
        if let Some(r) = &self.root {
            o.root = r.clone();
        }
        o
    }
}

#[derive(Subcommand)]
enum Command {
    /// Runs every seed of a range and reports the failing ones.
    Run {
        /// Seeds, as `A..B` (B excluded) or `A..=B`.
        #[arg(long, default_value = "1..101")]
        seeds: String,
        /// Seeds run at once (one thread each).
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Stop at the first failing seed.
        #[arg(long)]
        fail_fast: bool,
        /// Start no seed after this many minutes (wall clock); the seeds
        /// begun finish.
        #[arg(long)]
        minutes: Option<f64>,
        /// Exit 0 even when seeds fail (to measure how fast a planted bug is found).
        #[arg(long)]
        expect_failures: bool,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Runs one seed and prints its report (what `run` starts for each
    /// seed: a process of its own, so no state of one seed's run is left
    /// for the next).
    #[command(hide = true)]
    One {
        seed: u64,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Runs one seed again with its full trace (history and faults, as they happen).
    Replay {
        seed: u64,
        #[command(flatten)]
        args: RunArgs,
    },
}

fn parse_seeds(s: &str) -> anyhow::Result<(u64, u64)> {
    if let Some((a, b)) = s.split_once("..=") {
        return Ok((a.parse()?, b.parse::<u64>()? + 1));
    }
    if let Some((a, b)) = s.split_once("..") {
        return Ok((a.parse()?, b.parse()?));
    }
    let one: u64 = s.parse().context("seeds: A..B, A..=B or one seed")?;
    Ok((one, one + 1))
}

fn print_report(r: &Report, format: &str) {
    if format == "json" {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    let verdict = if r.valid { "ok" } else { "FAIL" };
    println!(
        "seed {:>6} {verdict:<4} sim {:>6} ms  wall {:>5} ms  ops {:>5}  acked {:>4}  faults {:>2}  history {:016x}",
        r.seed,
        r.simulated_ms,
        r.wall_ms,
        r.ops,
        r.acked_sends,
        r.faults.len(),
        r.history_hash
    );
    for a in r.anomalies.iter().chain(&r.violations) {
        println!("    {a}");
    }
}

/// Runs `seed` in a child process (`cairn-sim one`) and reads its report.
fn run_child(seed: u64, args: &[String]) -> anyhow::Result<Report> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("one")
        .arg(seed.to_string())
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| {
        format!(
            "seed {seed}: the run ended ({}) without a report",
            out.status
        )
    })
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_SIM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::One { seed, args } => {
            let o = args.options(false);
            let r = cairn_sim::run_seed(seed, &o)?;
            print_report(&r, &args.format);
        }
        Command::Replay { seed, args } => {
            let o = args.options(true);
            let r = cairn_sim::run_seed(seed, &o)?;
            for f in &r.faults {
                eprintln!("fault: {f}");
            }
            print_report(&r, &args.format);
            let _ = std::fs::remove_dir_all(&o.root);
            if !r.valid {
                std::process::exit(1);
            }
        }
        Command::Run {
            seeds,
            jobs,
            fail_fast,
            minutes,
            expect_failures,
            args,
        } => {
            let (first, end) = parse_seeds(&seeds)?;
            let o = args.options(false);
            let next = Arc::new(AtomicU64::new(first));
            let failed = Arc::new(Mutex::new(Vec::<u64>::new()));
            let sim_ms = Arc::new(AtomicU64::new(0));
            let done = Arc::new(AtomicU64::new(0));
            let started = std::time::Instant::now();
            let total = end.saturating_sub(first);
            let mut threads = Vec::new();
            for _ in 0..jobs.max(1) {
                let (next, failed, sim_ms, done, format) = (
                    next.clone(),
                    failed.clone(),
                    sim_ms.clone(),
                    done.clone(),
                    args.format.clone(),
                );
                let mut child_args = args.to_args();
                child_args.push("--root".into());
                child_args.push(o.root.display().to_string());
                threads.push(std::thread::spawn(move || loop {
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed >= end {
                        return;
                    }
                    if fail_fast && !failed.lock().unwrap().is_empty() {
                        return;
                    }
                    if minutes.is_some_and(|m| started.elapsed().as_secs_f64() > m * 60.0) {
                        return;
                    }
                    let r = match run_child(seed, &child_args) {
                        Ok(r) => r,
                        Err(e) => Report {
                            seed,
                            valid: false,
                            anomalies: vec![],
                            violations: vec![format!("the run failed: {e:#}")],
                            history_hash: 0,
                            ops: 0,
                            acked_sends: 0,
                            simulated_ms: 0,
                            wall_ms: 0,
                            faults: vec![],
                            messages: 0,
                            faulted_messages: 0,
                            zombie_connects: 0,
                        },
                    };
                    sim_ms.fetch_add(r.simulated_ms, Ordering::Relaxed);
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if !r.valid {
                        failed.lock().unwrap().push(seed);
                    }
                    if format == "json" || !r.valid || n % 50 == 0 || n == total {
                        print_report(&r, &format);
                    }
                    if format != "json" && (n % 50 == 0 || n == total) {
                        eprintln!(
                            "progress: {n}/{total} seeds, {} failing, {} simulated s in {} s",
                            failed.lock().unwrap().len(),
                            sim_ms.load(Ordering::Relaxed) / 1000,
                            started.elapsed().as_secs()
                        );
                    }
                    let _ = std::io::stdout().flush();
                }));
            }
            for t in threads {
                let _ = t.join();
            }
            let _ = std::fs::remove_dir_all(&o.root);
            let mut failed = failed.lock().unwrap().clone();
            failed.sort_unstable();
            let summary = serde_json::json!({
                "seeds": done.load(Ordering::Relaxed),
                "failing": failed,
                "simulated_seconds": sim_ms.load(Ordering::Relaxed) / 1000,
                "wall_seconds": started.elapsed().as_secs(),
                "planted_bug": o.plant,
            });
            if args.format == "json" {
                println!("{summary}");
            } else {
                println!(
                    "{} seeds, {} failing {:?}; {} simulated s in {} s",
                    summary["seeds"],
                    failed.len(),
                    failed,
                    summary["simulated_seconds"],
                    summary["wall_seconds"]
                );
            }
            if !failed.is_empty() && !expect_failures {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
