//! [`NetnsHosts`]: nodes in Linux network namespaces, as `cluster/netns`
//! sets them up (namespace `cairn-nI`, address 10.77.0.I, data dir on its
//! own loop-mounted filesystem when `--disk-mb` was given).

use std::collections::BTreeSet;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::process::Command;

use crate::hosts::Hosts;
use crate::hosts::NetemSpec;
use crate::hosts::NodeId;
use crate::ChaosError;

/// Which `cluster/netns` cluster the hosts are: `CAIRN_NETNS_INSTANCE` (read
/// by the script too), 0 when unset. Instance K's nodes live in namespaces
/// `cairnK-nI` at 10.77.K.I, so runs of different instances on one machine
/// leave each other alone; 0 is `cairn-nI` at 10.77.0.I.
fn instance() -> u32 {
    std::env::var("CAIRN_NETNS_INSTANCE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// nftables table the nemesis owns inside each namespace.
const TABLE: &str = "cairn_chaos";
/// nftables table of the packet-loss fault (apart from partitions').
const LOSS_TABLE: &str = "cairn_chaos_loss";
/// Name of the file that fills a node's disk.
const FILL_FILE: &str = "chaos-fill";

/// Which host slots run nodes of the cluster.
#[derive(Debug, Default)]
struct Slots {
    /// Slots that joined after `up` (`cluster/netns join`).
    joined: BTreeSet<NodeId>,
    /// Slots whose node was removed from the cluster (never used again).
    retired: BTreeSet<NodeId>,
}

/// The hosts of a cluster started by `cluster/netns up`.
#[derive(Debug, Clone)]
pub struct NetnsHosts {
    script: PathBuf,
    dir: PathBuf,
    size: u64,
    /// Host slots past `size` that nodes can join under.
    spare: u64,
    slots: Arc<Mutex<Slots>>,
    /// Extra environment for the nodes' processes (e.g. test-only settings).
    env: Vec<(String, String)>,
    /// The `cluster/netns` instance (`CAIRN_NETNS_INSTANCE`).
    instance: u32,
}

impl NetnsHosts {
    /// Hosts of `size` nodes whose state lives in `dir`, driven by the
    /// `cluster/netns` script at `script`.
    pub fn new(script: impl Into<PathBuf>, dir: impl Into<PathBuf>, size: u64) -> Self {
        Self {
            script: script.into(),
            dir: dir.into(),
            size,
            spare: 0,
            slots: Arc::default(),
            env: Vec::new(),
            instance: instance(),
        }
    }

    /// Adds `spares` host slots (`size + 1 ..= size + spares`) for nodes
    /// that join the running cluster.
    pub fn with_spares(mut self, spares: u64) -> Self {
        self.spare = spares;
        self
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets an environment variable for every node started from now on.
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The address of node `n`'s host (of the cluster `CAIRN_NETNS_INSTANCE` names).
    pub fn ip(n: NodeId) -> String {
        format!("10.77.{}.{n}", instance())
    }

    /// Makes these hosts `cluster/netns` instance `k` (whatever
    /// `CAIRN_NETNS_INSTANCE` says): two clusters, e.g. two regions, driven
    /// from one process.
    pub fn with_instance(mut self, k: u32) -> Self {
        self.instance = k;
        self.env.retain(|(key, _)| key != "CAIRN_NETNS_INSTANCE");
        self.env
            .push(("CAIRN_NETNS_INSTANCE".to_string(), k.to_string()));
        self
    }

    /// The address of node `n`'s host.
    pub fn host_ip(&self, n: NodeId) -> String {
        format!("10.77.{}.{n}", self.instance)
    }

    /// The address of the root namespace on this cluster's bridge.
    pub fn bridge_ip(&self) -> String {
        format!("10.77.{}.254", self.instance)
    }

    fn namespace(&self, n: NodeId) -> String {
        match self.instance {
            0 => format!("cairn-n{n}"),
            k => format!("cairn{k}-n{n}"),
        }
    }

    fn script_cmd(&self, args: &[String]) -> Command {
        let mut cmd = Command::new(&self.script);
        cmd.args(args).env("CAIRN_NETNS_DIR", &self.dir);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Creates the namespaces and starts every node; waits for a metadata leader.
    pub async fn up(&self, bin: &Path, disk_mb: Option<u64>) -> Result<(), ChaosError> {
        let mut args = vec![
            "up".to_string(),
            self.size.to_string(),
            "--bin".to_string(),
            bin.display().to_string(),
            "--dir".to_string(),
            self.dir.display().to_string(),
        ];
        if let Some(mb) = disk_mb {
            args.push("--disk-mb".to_string());
            args.push(mb.to_string());
        }
        run(self.script_cmd(&args)).await.map(drop)
    }

    /// Stops every node and removes the namespaces.
    pub async fn down(&self) -> Result<(), ChaosError> {
        run(self.script_cmd(&["down".to_string()])).await.map(drop)
    }

    fn pid(&self, n: NodeId) -> Option<i32> {
        std::fs::read_to_string(self.dir.join(format!("node-{n}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn check(&self, n: NodeId) -> Result<(), ChaosError> {
        if n == 0 || n > self.size + self.spare {
            return Err(ChaosError::UnknownNode(n));
        }
        Ok(())
    }

    fn in_ns(&self, n: NodeId, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.namespace(n), program])
            .args(args);
        cmd
    }

    async fn signal(&self, n: NodeId, signal: &str) -> Result<(), ChaosError> {
        self.check(n)?;
        if let Some(pid) = self.pid(n) {
            if pid_alive(pid) {
                let mut cmd = Command::new("kill");
                cmd.args([signal, &pid.to_string()]);
                run(cmd).await?;
            }
        }
        Ok(())
    }

    fn data_dir(&self, n: NodeId) -> PathBuf {
        self.dir.join(format!("node-{n}"))
    }
}

fn pid_alive(pid: i32) -> bool {
    // A zombie or a reused pid would fool `kill -0`; /proc tells the state.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Runs `cmd` to completion; a non-zero exit is an error carrying stderr.
async fn run(mut cmd: Command) -> Result<String, ChaosError> {
    let described = format!("{:?}", cmd.as_std());
    let out = cmd
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| ChaosError::Command {
            command: described.clone(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(ChaosError::Command {
            command: described,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Hosts for NetnsHosts {
    fn nodes(&self) -> Vec<NodeId> {
        let slots = self.slots();
        (1..=self.size)
            .chain(slots.joined.iter().copied())
            .filter(|n| !slots.retired.contains(n))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    fn voters(&self) -> Vec<NodeId> {
        (1..=self.size).collect()
    }

    fn spares(&self) -> Vec<NodeId> {
        let slots = self.slots();
        (self.size + 1..=self.size + self.spare)
            .filter(|n| !slots.joined.contains(n) && !slots.retired.contains(n))
            .collect()
    }

    fn join(&self, node: NodeId, via: NodeId) -> BoxFuture<'_, Result<(), ChaosError>> {
        async move {
            self.check(node)?;
            if !self.spares().contains(&node) {
                return Err(ChaosError::NoTarget(format!("host {node} is not a spare")));
            }
            run(self.script_cmd(&["join".to_string(), node.to_string(), via.to_string()])).await?;
            self.slots().joined.insert(node);
            Ok(())
        }
        .boxed()
    }

    fn retire(&self, node: NodeId) -> BoxFuture<'_, Result<(), ChaosError>> {
        async move {
            self.check(node)?;
            run(self.script_cmd(&["wipe".to_string(), node.to_string()])).await?;
            self.slots().retired.insert(node);
            Ok(())
        }
        .boxed()
    }

    fn bootstrap(&self) -> Vec<String> {
        self.nodes()
            .into_iter()
            .map(|n| format!("{}:50051", self.host_ip(n)))
            .collect()
    }

    fn is_running(&self, node: NodeId) -> bool {
        self.pid(node).is_some_and(pid_alive)
    }

    fn kill(&self, node: NodeId) -> BoxFuture<'_, Result<(), ChaosError>> {
        async move {
            self.signal(node, "-KILL").await?;
            // SIGKILL lands when each thread leaves the kernel (an fsync in
            // flight finishes first): return only once the process is gone.
            if let Some(pid) = self.pid(node) {
                for _ in 0..500 {
                    if !pid_alive(pid) {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn start(
        &self,
        node: NodeId,
        monotonic_offset_s: Option<i64>,
    ) -> BoxFuture<'_, Result<(), ChaosError>> {
        async move {
            self.check(node)?;
            if self.is_running(node) {
                return Ok(());
            }
            let mut args = vec!["start".to_string(), node.to_string()];
            if let Some(offset) = monotonic_offset_s {
                args.push("--clock-offset".to_string());
                args.push(offset.to_string());
            }
            run(self.script_cmd(&args)).await.map(drop)
        }
        .boxed()
    }

    fn pause(&self, node: NodeId) -> BoxFuture<'_, Result<(), ChaosError>> {
        async move { self.signal(node, "-STOP").await }.boxed()
    }

    fn resume(&self, node: NodeId) -> BoxFuture<'_, Result<(), ChaosError>> {
        async move { self.signal(node, "-CONT").await }.boxed()
    }

    fn block(&self, node: NodeId, from: Vec<NodeId>) -> BoxFuture<'_, Result<(), ChaosError>> {
        async move {
            self.check(node)?;
            let mut script = format!(
                "add table inet {TABLE}\n\
                 add chain inet {TABLE} input {{ type filter hook input priority 0 ; policy accept ; }}\n"
            );
            for f in from {
                self.check(f)?;
                script.push_str(&format!(
                    "add rule inet {TABLE} input ip saddr {} drop\n",
                    self.host_ip(f)
                ));
            }
            let mut cmd = self.in_ns(node, "nft", &["-f", "-"]);
            run_with_stdin(&mut cmd, script).await
        }
        .boxed()
    }

    fn heal_network(&self) -> BoxFuture<'_, Result<(), ChaosError>> {
        async move {
            for n in self.nodes() {
                // Absent table: nothing to heal.
                let cmd = self.in_ns(n, "nft", &["list", "table", "inet", TABLE]);
                if run(cmd).await.is_ok() {
                    run(self.in_ns(n, "nft", &["delete", "table", "inet", TABLE])).await?;
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn netem(&self, node: NodeId, spec: NetemSpec) -> BoxFuture<'_, Result<String, ChaosError>> {
        async move {
            self.check(node)?;
            let line = spec.netem_line();
            let mut args = vec!["qdisc", "replace", "dev", "eth0", "root", "netem"];
            args.extend(line.split_whitespace());
            match run(self.in_ns(node, "tc", &args)).await {
                Ok(_) => return Ok(format!("tc netem {line}")),
                Err(ChaosError::Command { detail, .. }) if detail.contains("qdisc kind is unknown") => {}
                Err(e) => return Err(e),
            }
            // No sch_netem in this kernel: random loss with nftables, and
            // delay as queueing behind a token-bucket rate limit.
            let script = format!(
                "add table inet {LOSS_TABLE}\n\
                 add chain inet {LOSS_TABLE} input {{ type filter hook input priority 0 ; policy accept ; }}\n\
                 add rule inet {LOSS_TABLE} input numgen random mod 100 < {} drop\n",
                spec.loss_pct.max(1)
            );
            run_with_stdin(&mut self.in_ns(node, "nft", &["-f", "-"]), script).await?;
            let rate = format!("{}kbit", spec.rate_kbit);
            run(self.in_ns(
                node,
                "tc",
                &["qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", &rate, "burst", "32kbit", "latency", "400ms"],
            ))
            .await?;
            Ok(format!(
                "no netem in this kernel: nft random loss {}% + tbf rate {rate} (queueing delay up to 400 ms); no reordering",
                spec.loss_pct.max(1)
            ))
        }
        .boxed()
    }

    fn clear_netem(&self, node: NodeId) -> BoxFuture<'_, Result<(), ChaosError>> {
        async move {
            self.check(node)?;
            let shown = run(self.in_ns(node, "tc", &["qdisc", "show", "dev", "eth0"])).await?;
            if shown.contains("netem") || shown.contains("tbf") {
                run(self.in_ns(node, "tc", &["qdisc", "del", "dev", "eth0", "root"])).await?;
            }
            let cmd = self.in_ns(node, "nft", &["list", "table", "inet", LOSS_TABLE]);
            if run(cmd).await.is_ok() {
                run(self.in_ns(node, "nft", &["delete", "table", "inet", LOSS_TABLE])).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn fill_disk(&self, node: NodeId) -> BoxFuture<'_, Result<(), ChaosError>> {
        async move {
            self.check(node)?;
            let dir = self.data_dir(node);
            let mut df = Command::new("df");
            df.args(["--output=avail", "-B1"]).arg(&dir);
            let out = run(df).await?;
            let avail: u64 = out
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .next()
                .unwrap_or(0);
            let mut cmd = Command::new("fallocate");
            cmd.args(["-l", &avail.to_string()])
                .arg(dir.join(FILL_FILE));
            // fallocate may stop a few blocks short; top up with dd until ENOSPC.
            let _ = run(cmd).await;
            let mut dd = Command::new("dd");
            dd.arg("if=/dev/zero")
                .arg(format!(
                    "of={}",
                    dir.join(format!("{FILL_FILE}-2")).display()
                ))
                .arg("bs=64k");
            let _ = run(dd).await;
            Ok(())
        }
        .boxed()
    }

    fn free_disk(&self, node: NodeId) -> BoxFuture<'_, Result<(), ChaosError>> {
        async move {
            self.check(node)?;
            let dir = self.data_dir(node);
            for f in [FILL_FILE.to_string(), format!("{FILL_FILE}-2")] {
                let _ = std::fs::remove_file(dir.join(f));
            }
            Ok(())
        }
        .boxed()
    }
}

async fn run_with_stdin(cmd: &mut Command, input: String) -> Result<(), ChaosError> {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;
    let described = format!("{:?}", cmd.as_std());
    let err = |detail: String| ChaosError::Command {
        command: described.clone(),
        detail,
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| err(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|e| err(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
