//! A cluster of `cairn server` processes for tests.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::atomic::AtomicU16;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use anyhow::Context;
use anyhow::Result;
use cairn_client::Client;
use cairn_client::ClientConfig;
use cairn_client::RetryPolicy;
use tempfile::TempDir;

/// The samples of a metric (a name, or a name with its labels, as
/// `/metrics` prints them) on a node's admin endpoint, summed; 0 when absent.
pub fn metric(admin: &str, name: &str) -> Result<f64> {
    use std::io::Read;
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(admin)?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {admin}\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    Ok(body
        .lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter(|rest| rest.starts_with([' ', '{']))
        .filter_map(|rest| rest.split_whitespace().last()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b))
}

/// The `cairn` binary cargo built for these tests, or `$CAIRN_BIN`.
pub fn cairn_bin() -> PathBuf {
    match std::env::var("CAIRN_BIN") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(env!("CARGO_BIN_EXE_cairn")),
    }
}

/// A port no one listens on, below Linux's ephemeral range (32768+) so that
/// outgoing connections of other nodes cannot take it between now and the
/// node's bind. Spread per process so parallel test binaries do not collide.
fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 400) as u16 * 30;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (base - 20_000 + n) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub id: u64,
    pub grpc: String,
    pub rpc: String,
    pub admin: String,
    pub kafka: String,
}

pub struct TestCluster {
    pub dir: TempDir,
    pub specs: Vec<NodeSpec>,
    procs: Vec<Option<Child>>,
    /// Data dirs other than the default, per node.
    data_dirs: Vec<Option<PathBuf>>,
    /// How many of the nodes (the first ones) are metadata voters; the rest
    /// join through node 1 with `--join`.
    voter_count: usize,
    /// More `cairn server` flags, for every node.
    extra_args: Vec<String>,
    /// Extra environment of every node (`CAIRN_*` settings).
    env: Vec<(String, String)>,
    /// How the test's own client reaches nodes with `grpc_tls` on.
    client_tls: Option<cairn_client::TlsSettings>,
    /// The test's own client's bearer token.
    pub client_token: Option<String>,
}

impl TestCluster {
    /// Starts `n` nodes forming one cluster and waits until it serves.
    pub async fn start(n: usize) -> Result<TestCluster> {
        TestCluster::new(n)?.started().await
    }

    /// Starts `n` nodes with `test_lose_unsynced_on_crash`, so that a kill
    /// loses unsynced writes and the fault-injection files
    /// (`cairn_server::HOLD_SYNC_FILE`, `HOLD_APPLY_FILE`) work, and waits
    /// until the cluster serves.
    pub async fn start_for_fault_injection(n: usize) -> Result<TestCluster> {
        TestCluster::new(n)?
            .with_env("CAIRN_TEST_LOSE_UNSYNCED_ON_CRASH", "true")
            .started()
            .await
    }

    /// Starts every node of a cluster prepared with [`TestCluster::new`]
    /// and waits until it serves.
    pub async fn started_for_test(self) -> Result<TestCluster> {
        self.started().await
    }

    /// Starts every node and waits until the cluster serves.
    async fn started(mut self) -> Result<TestCluster> {
        for i in 0..self.specs.len() {
            self.start_node(i)?;
        }
        self.wait_ready(Duration::from_secs(30)).await?;
        Ok(self)
    }

    /// Prepares `n` nodes without starting them.
    pub fn new(n: usize) -> Result<TestCluster> {
        let bin = cairn_bin();
        if !bin.exists() {
            bail!("{} not found", bin.display());
        }
        let specs = (1..=n as u64)
            .map(|id| NodeSpec {
                id,
                grpc: format!("127.0.0.1:{}", free_port()),
                rpc: format!("127.0.0.1:{}", free_port()),
                admin: format!("127.0.0.1:{}", free_port()),
                kafka: format!("127.0.0.1:{}", free_port()),
            })
            .collect();
        Ok(TestCluster {
            dir: tempfile::Builder::new().prefix("cairn-it-").tempdir()?,
            specs,
            procs: (0..n).map(|_| None).collect(),
            data_dirs: vec![None; n],
            voter_count: n,
            extra_args: Vec::new(),
            // Tests write records stamped 2023 (fixed timestamps): with the
            // default retention.ms (7 days) they would be deleted within
            // seconds, as Kafka would. Time retention is off unless a test
            // (or topic) sets it.
            env: vec![("CAIRN_RETENTION_MS".to_string(), "-1".to_string())],
            client_tls: None,
            client_token: None,
        })
    }

    /// Makes nodes `voters..` join the cluster through node 1 instead of being voters.
    pub fn with_voters(mut self, voters: usize) -> Self {
        self.voter_count = voters;
        self
    }

    /// Passes `args` to every node's `cairn server` (from its next start).
    pub fn with_server_args(mut self, args: &[&str]) -> Self {
        self.extra_args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// The test's own client connects over TLS with these settings.
    pub fn with_client_tls(mut self, tls: cairn_client::TlsSettings) -> Self {
        self.client_tls = Some(tls);
        self
    }

    /// The test's own client sends this bearer token.
    pub fn with_client_token(mut self, token: String) -> Self {
        self.client_token = Some(token);
        self
    }

    /// Sets an environment variable of every node started from now on.
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn voters(&self) -> String {
        self.specs[..self.voter_count]
            .iter()
            .map(|s| format!("{}={}", s.id, s.rpc))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        match &self.data_dirs[i] {
            Some(d) => d.clone(),
            None => self.dir.path().join(format!("node-{}", self.specs[i].id)),
        }
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("node-{}.log", self.specs[i].id))
    }

    pub fn set_data_dir(&mut self, i: usize, dir: PathBuf) {
        self.data_dirs[i] = Some(dir);
    }

    /// The `cairn server` command of node `i`.
    pub fn command(&self, i: usize) -> Command {
        let s = &self.specs[i];
        let mut cmd = Command::new(cairn_bin());
        cmd.arg("server")
            .args(["--node-id", &s.id.to_string()])
            .args(["--data-dir", &self.data_dir(i).display().to_string()])
            .args(["--grpc-addr", &s.grpc])
            .args(["--rpc-addr", &s.rpc])
            .args(["--admin-addr", &s.admin])
            .args(["--kafka-addr", &s.kafka])
            .args(&self.extra_args);
        if i < self.voter_count {
            cmd.args(["--voters", &self.voters()]);
        } else {
            cmd.args(["--join", &self.specs[0].rpc]);
        }
        // Groups in tests form at once (Kafka's default waits 3 s for more members).
        cmd.env("CAIRN_GROUP_INITIAL_REBALANCE_DELAY_MS", "300");
        // Consumer-protocol (KIP-848) members hear of new assignments sooner.
        cmd.env("CAIRN_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS", "500");
        cmd.env("CAIRN_GROUP_CONSUMER_SESSION_TIMEOUT_MS", "6000");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.env(
            "RUST_LOG",
            std::env::var("CAIRN_TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
        cmd
    }

    pub fn start_node(&mut self, i: usize) -> Result<()> {
        if self.procs[i].is_some() {
            bail!("node {} already running", self.specs[i].id);
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(i))?;
        let child = self
            .command(i)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("spawn cairn server")?;
        self.procs[i] = Some(child);
        Ok(())
    }

    /// The process id of node `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.procs[i].as_ref().map(Child::id)
    }

    /// kill -9.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        if let Some(mut child) = self.procs[i].take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    pub fn kill_all(&mut self) -> Result<()> {
        for i in 0..self.specs.len() {
            self.kill(i)?;
        }
        Ok(())
    }

    /// Sends `signal` (e.g. "-STOP", "-CONT") to node `i`'s process.
    pub fn signal(&self, i: usize, signal: &str) -> Result<()> {
        let Some(child) = &self.procs[i] else {
            bail!("node {} is not running", self.specs[i].id);
        };
        let ok = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()?
            .success();
        anyhow::ensure!(ok, "kill {signal} failed");
        Ok(())
    }

    /// The exit code of node `i` once its process has ended.
    pub fn exit_code(&mut self, i: usize) -> Option<i32> {
        match &mut self.procs[i] {
            Some(c) => c.try_wait().ok().flatten().and_then(|s| s.code()),
            None => None,
        }
    }

    /// Forgets node `i`'s ended process, so it can be started again.
    pub fn reap(&mut self, i: usize) {
        self.procs[i] = None;
    }

    pub fn is_running(&mut self, i: usize) -> bool {
        match &mut self.procs[i] {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn bootstrap(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.grpc.clone()).collect()
    }

    /// The nodes' Kafka API addresses, as a Kafka client's
    /// `bootstrap.servers`.
    pub fn kafka_bootstrap(&self) -> String {
        self.specs
            .iter()
            .map(|s| s.kafka.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node_index(&self, id: u64) -> usize {
        self.specs.iter().position(|s| s.id == id).expect("node id")
    }

    pub async fn client(&self) -> Result<Client> {
        let config = ClientConfig {
            retry: RetryPolicy {
                deadline: Duration::from_secs(30),
                ..RetryPolicy::default()
            },
            tls: self.client_tls.clone(),
            token: self.client_token.clone().map(cairn_client::BearerToken),
            ..ClientConfig::default()
        };
        Ok(Client::connect_with(&self.bootstrap(), config).await?)
    }

    /// A client that asks node `i` only (its answers come from that node's
    /// own view: liveness, for one, is local to each node).
    pub async fn client_of(&self, i: usize) -> Result<Client> {
        let config = ClientConfig {
            tls: self.client_tls.clone(),
            token: self.client_token.clone().map(cairn_client::BearerToken),
            ..ClientConfig::default()
        };
        Ok(Client::connect_with(&[self.specs[i].grpc.clone()], config).await?)
    }

    /// Waits until every running node is alive and registered, and a
    /// metadata leader is known.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let mut running = Vec::new();
        let mut running_at = Vec::new();
        for i in 0..self.specs.len() {
            if self.is_running(i) {
                running.push(self.specs[i].id);
                running_at.push(i);
            }
        }
        // Every running node must see every running node alive: placement
        // runs on the metadata leader from its own view, so one node's
        // answer is not enough (a topic created right after a join could
        // otherwise leave the joiner out).
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer");
        'poll: while Instant::now() < deadline {
            for &i in &running_at {
                let status = match self.client_of(i).await {
                    Ok(client) => client.cluster_status().await.map_err(anyhow::Error::from),
                    Err(e) => Err(e),
                };
                let ready = match status {
                    Ok(s) => {
                        let alive: Vec<u64> =
                            s.nodes.iter().filter(|n| n.alive).map(|n| n.id).collect();
                        last = format!(
                            "node {}: leader {:?}, alive {alive:?}, want {running:?}",
                            self.specs[i].id, s.metadata_leader
                        );
                        s.metadata_leader.is_some() && running.iter().all(|id| alive.contains(id))
                    }
                    Err(e) => {
                        last = format!("node {}: {e}", self.specs[i].id);
                        false
                    }
                };
                if !ready {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'poll;
                }
            }
            return Ok(());
        }
        bail!(
            "cluster not ready after {timeout:?}: {last}\n{}",
            self.logs_tail(40)
        )
    }

    /// Waits until every partition of `topic` has a leader and all replicas healthy.
    pub async fn wait_fully_replicated(&self, topic: &str, timeout: Duration) -> Result<()> {
        let client = self.client().await?;
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match client.describe_topic(topic).await {
                Ok(t) => {
                    let lagging: Vec<_> = t
                        .partitions
                        .iter()
                        .filter(|p| {
                            p.leader.is_none() || p.healthy_replicas.len() < p.replicas.len()
                        })
                        .map(|p| (p.partition, p.leader, p.healthy_replicas.clone()))
                        .collect();
                    if lagging.is_empty() {
                        return Ok(());
                    }
                    last = format!("{lagging:?}");
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{topic} not fully replicated after {timeout:?}: {last}")
    }

    pub fn logs_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for i in 0..self.specs.len() {
            let text = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            out.push_str(&format!(
                "--- node {} log (last {lines} lines)\n",
                self.specs[i].id
            ));
            for l in &all[from..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs_tail(60));
        }
        let _ = self.kill_all();
        // CAIRN_TEST_KEEP_DIRS=1 keeps the data dirs and full logs to debug a failure.
        if std::env::var_os("CAIRN_TEST_KEEP_DIRS").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("kept {}", self.dir.path().display());
        }
    }
}
