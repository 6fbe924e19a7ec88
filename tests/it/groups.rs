//! Issue 4: consumer groups. Real `cairn` servers and, for the failover
//! test, real `cairn consume --group` processes killed with SIGKILL.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cairn_client::proto::OffsetCommit;
use cairn_client::{
    Acks, Client, ClientError, Consumer, ConsumerConfig, ConsumerError, ErrorCode, OffsetReset,
    OwnedRecord, TopicPartition,
};

use crate::cluster::{cairn_bin, TestCluster};

fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> Option<ErrorCode> {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}

/// A `cairn consume --group` process writing JSON lines to a file.
struct ConsumerProc {
    child: Child,
    out: PathBuf,
}

impl ConsumerProc {
    fn start(cluster: &TestCluster, topic: &str, group: &str, name: &str) -> Result<Self> {
        let out = cluster.dir.path().join(format!("{name}.jsonl"));
        let err = cluster.dir.path().join(format!("{name}.log"));
        let child = Command::new(cairn_bin())
            .args(["consume", topic, "--group", group, "--format", "json"])
            .args(["--reset", "earliest", "--session-timeout-ms", "3000"])
            .args(["--client-id", name, "--wait-ms", "200"])
            .args(["--bootstrap", &cluster.bootstrap().join(",")])
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(std::fs::File::create(&out)?))
            .stderr(Stdio::from(std::fs::File::create(&err)?))
            .spawn()
            .context("spawn cairn consume")?;
        Ok(ConsumerProc { child, out })
    }

    /// (partition, offset, value) per line printed so far.
    fn lines(&self) -> Result<Vec<(u32, i64, String)>> {
        read_lines(&self.out)
    }

    fn interrupt(&mut self) -> Result<()> {
        let ok = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()?
            .success();
        ensure!(ok, "kill -INT failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("consumer did not exit after SIGINT")
    }
}

impl Drop for ConsumerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(path: &Path) -> Result<Vec<(u32, i64, String)>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    // The last line may be half written.
    for line in text.lines().filter(|l| l.ends_with('}')) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        out.push((
            v["partition"].as_u64().context("partition")? as u32,
            v["offset"].as_i64().context("offset")?,
            v["value"].as_str().context("value")?.to_owned(),
        ));
    }
    Ok(out)
}

/// Waits until the group is stable with `members` members owning all
/// `partitions` partitions; answers member -> partition count.
async fn wait_stable(
    client: &Client,
    group: &str,
    members: usize,
    partitions: usize,
    timeout: Duration,
) -> Result<BTreeMap<String, usize>> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match client.describe_group(group).await {
            Ok(d) => {
                let mut owned = BTreeMap::new();
                let mut total = 0;
                for m in &d.members {
                    let n = cairn_client::decode_assignment(&m.assignment)?.len();
                    total += n;
                    owned.insert(m.client_id.clone(), n);
                }
                if d.state == "Stable" && d.members.len() == members && total == partitions {
                    return Ok(owned);
                }
                last = format!(
                    "{} with {} members owning {total}",
                    d.state,
                    d.members.len()
                );
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("group {group} not stable with {members} members after {timeout:?}: {last}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_consumer_s_partitions_move_and_nothing_is_skipped() -> Result<()> {
    const PARTITIONS: usize = 12;
    const RECORDS: usize = 4_000;
    let cluster = TestCluster::start(3).await?;
    let client = cluster.client().await?;
    client
        .create_topic("orders", PARTITIONS as u32, 3, HashMap::new())
        .await?;
    cluster
        .wait_fully_replicated("orders", Duration::from_secs(30))
        .await?;

    let mut consumers = Vec::new();
    for name in ["c1", "c2", "c3"] {
        consumers.push(ConsumerProc::start(&cluster, "orders", "billing", name)?);
    }
    let owned = wait_stable(&client, "billing", 3, PARTITIONS, Duration::from_secs(30)).await?;
    ensure!(
        owned.values().all(|n| *n == 4),
        "12 partitions over 3 members: {owned:?}"
    );

    eprintln!("--- produce while the group consumes; kill -9 c1 half way");
    let producer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut acked: Vec<(u32, i64, String)> = Vec::new();
            for chunk in 0..(RECORDS / 100) {
                let records: Vec<OwnedRecord> = (0..100)
                    .map(|i| {
                        let n = chunk * 100 + i;
                        OwnedRecord::with_key(format!("k{n}"), format!("v{n}"))
                    })
                    .collect();
                for o in client
                    .produce_records("orders", &records, Acks::All)
                    .await?
                {
                    let ack = o.result?;
                    for (i, idx) in o.record_indices.iter().enumerate() {
                        let value = format!("v{}", chunk * 100 + idx);
                        acked.push((o.partition, ack.base_offset + i as i64, value));
                    }
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            anyhow::Ok(acked)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumers[0].lines()?.len() < 300 {
        ensure!(Instant::now() < deadline, "c1 consumed nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consumers[0].child.kill()?;
    consumers[0].child.wait()?;
    let killed_at = Instant::now();
    wait_stable(&client, "billing", 2, PARTITIONS, Duration::from_secs(20)).await?;
    let moved_after = killed_at.elapsed();
    eprintln!("partitions moved {moved_after:?} after the kill (session timeout 3 s)");
    ensure!(
        moved_after < Duration::from_secs(3 + 5),
        "partitions took {moved_after:?} to move"
    );
    let acked = producer.await??;
    ensure!(acked.len() == RECORDS);

    eprintln!("--- every acknowledged record is processed by someone");
    let want: BTreeSet<(u32, i64)> = acked.iter().map(|(p, o, _)| (*p, *o)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen: BTreeSet<(u32, i64)> = consumers
            .iter()
            .flat_map(|c| c.lines().unwrap_or_default())
            .map(|(p, o, _)| (p, o))
            .collect();
        let missing = want.difference(&seen).count();
        if missing == 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{missing} acknowledged records never consumed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for c in consumers.iter_mut().skip(1) {
        c.interrupt()?;
    }

    let by_offset: HashMap<(u32, i64), &str> = acked
        .iter()
        .map(|(p, o, v)| ((*p, *o), v.as_str()))
        .collect();
    let mut count: BTreeMap<(u32, i64), usize> = BTreeMap::new();
    for c in &consumers {
        let lines = c.lines()?;
        let mut last: HashMap<u32, i64> = HashMap::new();
        for (p, o, v) in &lines {
            ensure!(
                by_offset.get(&(*p, *o)) == Some(&v.as_str()),
                "{p}/{o} holds {v:?}, acknowledged as {:?}",
                by_offset.get(&(*p, *o))
            );
            // One member reads a partition in order; after losing and
            // regaining it, it may go back to the committed offset.
            if let Some(prev) = last.insert(*p, *o) {
                ensure!(*o != prev, "{p}/{o} printed twice in a row");
            }
            *count.entry((*p, *o)).or_default() += 1;
        }
    }
    let duplicates: usize = count.values().map(|n| n - 1).sum();
    eprintln!(
        "{} records consumed, {duplicates} duplicates (the uncommitted window)",
        count.len()
    );
    // The CLI commits after each batch it prints: what was printed but not
    // committed when c1 died (one poll, at most 500 records), plus a batch
    // whose commit raced a rebalance.
    ensure!(duplicates <= 1_000, "{duplicates} duplicates");
    Ok(())
}

async fn member(cluster: &TestCluster, group: &str, topic: &str) -> Result<Consumer> {
    let mut config = ConsumerConfig::new(group);
    config.offset_reset = OffsetReset::Earliest;
    config.auto_commit = false;
    config.session_timeout = Duration::from_secs(6);
    config.heartbeat_interval = Duration::from_millis(500);
    let mut c = Consumer::new(cluster.client().await?, config);
    c.subscribe(&[topic]);
    Ok(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_generations_survive_metadata_leader_kill_and_full_restart() -> Result<()> {
    let mut cluster = TestCluster::start(3).await?;
    let client = cluster.client().await?;
    client.create_topic("events", 2, 3, HashMap::new()).await?;
    cluster
        .wait_fully_replicated("events", Duration::from_secs(30))
        .await?;
    let records: Vec<OwnedRecord> = (0..40)
        .map(|i| OwnedRecord::with_key(format!("k{i}"), format!("v{i}")))
        .collect();
    client
        .produce_records("events", &records, Acks::All)
        .await?;

    let mut consumer = member(&cluster, "audit", "events").await?;
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < 40 {
        ensure!(Instant::now() < deadline, "consumed {got} of 40");
        got += consumer.poll(Duration::from_millis(500)).await?.len();
    }
    consumer.commit().await?;
    let (member_id, generation) = consumer.generation().context("joined")?;
    let committed = |offsets: Vec<OffsetCommit>| -> BTreeMap<u32, i64> {
        offsets
            .into_iter()
            .filter(|o| o.topic == "events")
            .map(|o| (o.partition, o.offset))
            .collect()
    };
    let before = committed(client.fetch_offsets("audit").await?);
    ensure!(before.values().sum::<i64>() == 40, "{before:?}");

    eprintln!("--- a stale generation, an unknown member and a tool commit are refused");
    let one = vec![OffsetCommit {
        topic: "events".into(),
        partition: 0,
        offset: 0,
        metadata: String::new(),
    }];
    ensure!(
        code(
            client
                .commit_member_offsets("audit", generation - 1, &member_id, one.clone())
                .await
        ) == Some(ErrorCode::IllegalGeneration)
    );
    ensure!(
        code(
            client
                .commit_member_offsets("audit", generation, "zombie", one.clone())
                .await
        ) == Some(ErrorCode::UnknownMemberId)
    );
    ensure!(
        code(client.commit_offsets("audit", one.clone()).await) == Some(ErrorCode::GroupNotEmpty)
    );

    eprintln!("--- kill -9 the metadata leader (the coordinator)");
    let leader = client
        .cluster_status()
        .await?
        .metadata_leader
        .context("metadata leader")?;
    cluster.kill(cluster.node_index(leader))?;
    ensure!(committed(client.fetch_offsets("audit").await?) == before);
    // The new coordinator took the group over: same member, same generation.
    let tp = TopicPartition::new("events", 0);
    let pos = consumer.position(&tp).context("position")?;
    consumer.seek(&tp, pos - 5)?;
    consumer.commit().await?;
    ensure!(
        consumer.generation() == Some((member_id.clone(), generation)),
        "the group rebalanced after the coordinator moved: {:?}",
        consumer.generation()
    );
    let after_failover = committed(client.fetch_offsets("audit").await?);
    ensure!(after_failover[&0] == before[&0] - 5, "{after_failover:?}");

    eprintln!("--- full restart");
    drop(consumer);
    cluster.kill_all()?;
    for i in 0..3 {
        cluster.start_node(i)?;
    }
    cluster.wait_ready(Duration::from_secs(30)).await?;
    let client = cluster.client().await?;
    ensure!(committed(client.fetch_offsets("audit").await?) == after_failover);

    eprintln!("--- a new member resumes from the committed offsets");
    let mut again = member(&cluster, "audit", "events").await?;
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(40);
    while read < 5 {
        ensure!(
            Instant::now() < deadline,
            "resumed with {read} of 5 records"
        );
        read += again.poll(Duration::from_millis(500)).await?.len();
    }
    ensure!(
        read == 5,
        "read {read} records after resuming, expected the 5 rewound"
    );
    Ok(())
}

pub(crate) fn cli(cluster: &TestCluster, args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new(cairn_bin())
        .args(args)
        .args(["--bootstrap", &cluster.bootstrap().join(",")])
        .output()?)
}

pub(crate) fn cli_json(cluster: &TestCluster, args: &[&str]) -> Result<serde_json::Value> {
    let out = cli(cluster, args)?;
    ensure!(
        out.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_cli_lists_describes_resets_and_deletes() -> Result<()> {
    let cluster = TestCluster::start(1).await?;
    let client = cluster.client().await?;
    client.create_topic("t", 2, 1, HashMap::new()).await?;
    let records: Vec<OwnedRecord> = (0..20)
        .map(|i| OwnedRecord::from_value(format!("v{i}")))
        .collect();
    for (i, r) in records.iter().enumerate() {
        client
            .produce("t", (i % 2) as u32, cairn_client_batch(r), Acks::All)
            .await?;
    }

    eprintln!("--- consume --group commits as it goes");
    let out = cli(
        &cluster,
        &[
            "consume",
            "t",
            "--group",
            "g",
            "--max-records",
            "20",
            "--format",
            "json",
        ],
    )?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(String::from_utf8_lossy(&out.stdout).lines().count() == 20);

    let list = cli_json(&cluster, &["group", "list", "--format", "json"])?;
    ensure!(
        list.as_array().is_some_and(|a| a
            .iter()
            .any(|g| g["group"] == "g" && g["state"] == "Empty" && g["members"] == 0)),
        "{list}"
    );
    let lag = |d: &serde_json::Value| -> Vec<(i64, i64, i64)> {
        d["partitions"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p["committed"].as_i64().unwrap_or(-1),
                            p["log_end"].as_i64().unwrap_or(-1),
                            p["lag"].as_i64().unwrap_or(-1),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let d = cli_json(&cluster, &["group", "describe", "g", "--format", "json"])?;
    ensure!(lag(&d) == vec![(10, 10, 0), (10, 10, 0)], "{d}");
    client
        .produce("t", 0, cairn_client_batch(&records[0]), Acks::All)
        .await?;
    let d = cli_json(&cluster, &["group", "describe", "g", "--format", "json"])?;
    ensure!(lag(&d) == vec![(10, 11, 1), (10, 10, 0)], "{d}");
    let text = cli(&cluster, &["group", "describe", "g"])?;
    ensure!(String::from_utf8_lossy(&text.stdout).contains("LAG"));

    eprintln!("--- reset-offsets: earliest, offset N, latest, timestamp");
    let reset = |to: &[&str]| -> Result<Vec<(i64, i64, i64)>> {
        let mut args = vec![
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--format",
            "json",
        ];
        args.extend_from_slice(to);
        cli_json(&cluster, &args)?;
        Ok(lag(&cli_json(
            &cluster,
            &["group", "describe", "g", "--format", "json"],
        )?))
    };
    ensure!(reset(&["--to", "earliest"])? == vec![(0, 11, 11), (0, 10, 10)]);
    ensure!(reset(&["-p", "1", "--to", "offset", "7"])? == vec![(0, 11, 11), (7, 10, 3)]);
    ensure!(reset(&["--to", "latest"])? == vec![(11, 11, 0), (10, 10, 0)]);
    let ts = (1_700_000_000_000i64 + 3).to_string();
    ensure!(reset(&["-p", "0", "--to", "timestamp", &ts])?[0].0 == 3);

    eprintln!("--- with an active member: reset and delete are refused, clearly");
    let mut active = member(&cluster, "g", "t").await?;
    active.poll(Duration::from_millis(200)).await?;
    let d = cli_json(&cluster, &["group", "describe", "g", "--format", "json"])?;
    ensure!(
        d["state"] == "Stable" && d["members"].as_array().map(Vec::len) == Some(1),
        "{d}"
    );
    for args in [
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to",
            "earliest",
        ][..],
        &["group", "delete", "g"],
    ] {
        let out = cli(&cluster, args)?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && err.contains("active member"),
            "{args:?}: {err}"
        );
    }
    active.close().await?;

    eprintln!("--- delete, then the group is gone");
    let out = cli(&cluster, &["group", "delete", "g"])?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(code(client.describe_group("g").await) == Some(ErrorCode::UnknownGroup));
    ensure!(client.fetch_offsets("g").await?.is_empty());

    eprintln!("--- reset policy none: no committed offset is an error");
    let mut strict = member(&cluster, "strict", "t").await?;
    let mut config = ConsumerConfig::new("strict");
    config.offset_reset = OffsetReset::None;
    strict = {
        drop(strict);
        let mut c = Consumer::new(cluster.client().await?, config);
        c.subscribe(&["t"]);
        c
    };
    match strict.poll(Duration::from_secs(2)).await {
        Err(ConsumerError::NoOffset { .. }) => {}
        other => bail!("expected NoOffset, got {other:?}"),
    }
    Ok(())
}

/// One record as a batch with a fixed timestamp per value index.
fn cairn_client_batch(r: &OwnedRecord) -> bytes::Bytes {
    let value = r.value.as_deref().unwrap_or_default();
    let n: i64 = std::str::from_utf8(&value[1..])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut b = cairn_record::RecordBatchBuilder::new();
    b.push(1_700_000_000_000 + n / 2, None, Some(value), &[]);
    b.build()
}

/// Polls `c` until `stop` says so, reporting every event.
fn spawn_poller(
    mut c: Consumer,
    events: tokio::sync::mpsc::UnboundedSender<(usize, cairn_client::ConsumerEvent)>,
    who: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<Consumer>> {
    tokio::spawn(async move {
        while !*stop.borrow() {
            c.poll(Duration::from_millis(200)).await?;
            for e in c.take_events() {
                let _ = events.send((who, e));
            }
        }
        Ok(c)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_moves_only_what_must_move() -> Result<()> {
    use cairn_client::ConsumerEvent;
    let cluster = TestCluster::start(1).await?;
    let client = cluster.client().await?;
    client.create_topic("t", 6, 1, HashMap::new()).await?;
    let sticky = |name: &str| -> Result<ConsumerConfig> {
        let mut config = ConsumerConfig::new("coop");
        config.client_id = name.to_owned();
        config.assignors = vec!["cooperative-sticky".into()];
        config.heartbeat_interval = Duration::from_millis(300);
        config.session_timeout = Duration::from_secs(6);
        Ok(config)
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut a = Consumer::new(cluster.client().await?, sticky("a")?);
    a.subscribe(&["t"]);
    let a = spawn_poller(a, tx.clone(), 0, stop.clone());
    wait_stable(&client, "coop", 1, 6, Duration::from_secs(20)).await?;

    let mut b = Consumer::new(cluster.client().await?, sticky("b")?);
    b.subscribe(&["t"]);
    let b = spawn_poller(b, tx, 1, stop);
    let owned = wait_stable(&client, "coop", 2, 6, Duration::from_secs(30)).await?;
    ensure!(owned.values().all(|n| *n == 3), "{owned:?}");
    stop_tx.send(true)?;
    let (a, b) = (a.await??, b.await??);

    let mut assigned = [BTreeSet::new(), BTreeSet::new()];
    let mut revoked = [BTreeSet::new(), BTreeSet::new()];
    while let Ok((who, e)) = rx.try_recv() {
        match e {
            ConsumerEvent::Assigned(tps) => assigned[who].extend(tps),
            ConsumerEvent::Revoked(tps) => revoked[who].extend(tps),
            ConsumerEvent::OffsetReset { .. } => {}
        }
    }
    ensure!(
        assigned[0].len() == 6,
        "a first got all six: {:?}",
        assigned[0]
    );
    ensure!(
        revoked[0].len() == 3,
        "a gave up only the three that moved: {:?}",
        revoked[0]
    );
    ensure!(revoked[1].is_empty());
    ensure!(assigned[1] == revoked[0], "b got exactly what a gave up");
    let now_a: BTreeSet<TopicPartition> = a.assignment().into_iter().collect();
    let now_b: BTreeSet<TopicPartition> = b.assignment().into_iter().collect();
    ensure!(now_a.is_disjoint(&now_b) && now_a.len() + now_b.len() == 6);
    ensure!(now_b == revoked[0]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_behind_the_log_start_is_reset_per_policy_and_told() -> Result<()> {
    use cairn_client::ConsumerEvent;
    let mut cluster = TestCluster::new(1)?.with_env("CAIRN_RETENTION_CHECK_INTERVAL_MS", "200");
    cluster.start_node(0)?;
    cluster.wait_ready(Duration::from_secs(30)).await?;
    let client = cluster.client().await?;
    client.create_topic("short", 1, 1, HashMap::new()).await?;
    let batch = |i: usize| OwnedRecord::from_value(format!("{i:04}-{}", "x".repeat(1000)));
    for i in 0..5 {
        client
            .produce_records("short", &[batch(i)], Acks::All)
            .await?;
    }
    let mut c = member(&cluster, "late", "short").await?;
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while read < 5 {
        ensure!(Instant::now() < deadline, "read {read} of 5");
        read += c.poll(Duration::from_millis(300)).await?.len();
    }
    c.commit().await?;
    let tp = TopicPartition::new("short", 0);
    c.seek(&tp, 1)?; // behind: offsets 1.. are about to be deleted
    c.take_events();

    eprintln!("--- retention deletes the prefix under the consumer's position");
    for i in 5..40 {
        client
            .produce_records("short", &[batch(i)], Acks::All)
            .await?;
    }
    let mut set = HashMap::new();
    set.insert("retention.bytes".to_string(), "5000".to_string());
    client.alter_topic_config("short", set, Vec::new()).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let log_start = loop {
        let start = client.describe_topic("short").await?.partitions[0].log_start_offset;
        if start > 1 {
            break start;
        }
        ensure!(
            Instant::now() < deadline,
            "retention never moved the log start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let first = loop {
        let records = c.poll(Duration::from_millis(500)).await?;
        if let Some(r) = records.first() {
            break r.record.offset as u64;
        }
        ensure!(Instant::now() < deadline, "no record after the reset");
    };
    let resets: Vec<ConsumerEvent> = c
        .take_events()
        .into_iter()
        .filter(|e| matches!(e, ConsumerEvent::OffsetReset { .. }))
        .collect();
    ensure!(
        resets.len() == 1
            && matches!(&resets[0], ConsumerEvent::OffsetReset { from: Some(1), to, .. } if *to >= log_start),
        "expected one reset from 1 to >= {log_start}: {resets:?}"
    );
    ensure!(
        first >= log_start,
        "read {first}, below the log start {log_start}"
    );
    Ok(())
}

/// A metadata voter that was down while the metadata log moved past a
/// snapshot catches up from that snapshot. (The state machine used to offer
/// the snapshot it had at start-up, whose log was already purged: the node
/// never caught up.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_down_during_many_commits_catches_up_from_a_snapshot() -> Result<()> {
    let mut cluster = TestCluster::new(3)?.with_env("CAIRN_METADATA_SNAPSHOT_ENTRIES", "50");
    for i in 0..3 {
        cluster.start_node(i)?;
    }
    cluster.wait_ready(Duration::from_secs(30)).await?;
    let client = cluster.client().await?;
    let leader = client
        .cluster_status()
        .await?
        .metadata_leader
        .context("leader")?;
    let down = (cluster.node_index(leader) + 1) % 3;
    cluster.kill(down)?;
    eprintln!("--- 300 commits, one metadata entry each, with a voter down");
    for i in 0..300i64 {
        // One at a time: each commit is its own metadata entry.
        let offsets = vec![OffsetCommit {
            topic: "t".into(),
            partition: 0,
            offset: i,
            metadata: String::new(),
        }];
        client.commit_offsets("many", offsets).await?;
    }
    client.create_topic("after", 1, 2, HashMap::new()).await?;
    eprintln!("--- restart the voter; it must learn of topic 'after'");
    cluster.start_node(down)?;
    // Ask the restarted node itself: it knows the topic once it caught up.
    let addr = format!("http://{}", cluster.specs[down].grpc);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) =
            cairn_client::proto::cairn_client::CairnClient::connect(addr.clone()).await
        {
            let r = c
                .describe_topic(cairn_client::proto::DescribeTopicRequest {
                    name: "after".into(),
                })
                .await;
            if r.is_ok() {
                break;
            }
        }
        ensure!(
            Instant::now() < deadline,
            "the restarted node never caught up with the metadata"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Reliability finding 8: a group that emptied was dropped from the
/// coordinator's memory, and the next JoinGroup started it again at
/// generation 1 instead of going on from the stored generation. A member of
/// an earlier generation N could then commit again once the group was back
/// at N. Generations must only grow: across an empty group kept in memory,
/// and across a restart of the coordinator (which reloads only groups with
/// members).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_s_generation_only_grows() -> Result<()> {
    use cairn_client::proto::{GroupProtocol, JoinGroupRequest};
    let mut cluster = TestCluster::start(1).await?;
    let join = || JoinGroupRequest {
        group: "g".into(),
        member_id: String::new(),
        client_id: "gen-test".into(),
        protocol_type: "consumer".into(),
        protocols: vec![GroupProtocol {
            name: "range".into(),
            metadata: Default::default(),
        }],
        session_timeout_ms: 6_000,
        rebalance_timeout_ms: 6_000,
    };
    let mut last = 0;
    for round in 0..2 {
        let client = cluster.client().await?;
        for _ in 0..2 {
            let joined = client.join_group(join()).await?;
            ensure!(
                joined.generation > last,
                "round {round}: the group came back at generation {} after generation {last}",
                joined.generation
            );
            last = joined.generation;
            client.leave_group("g", &joined.member_id).await?;
        }
        eprintln!("--- restart the node: the empty group is not reloaded into memory");
        cluster.kill(0)?;
        cluster.start_node(0)?;
        cluster.wait_ready(Duration::from_secs(30)).await?;
    }
    Ok(())
}
