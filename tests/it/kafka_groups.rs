//! Issue 5: consumer groups with real Kafka clients. For each of
//! librdkafka (confluent-kafka), kafka-python and aiokafka: three members of
//! one group share six partitions; one leaves, one is killed -9; the last
//! takes every partition over; nothing is lost and duplicates come only
//! from records read but not committed; a new member resumes exactly at the
//! committed offsets. confluent-kafka's AdminClient lists and describes the
//! group meanwhile.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::io::BufRead;
use std::io::BufReader;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use anyhow::ensure;
use anyhow::Context;
use anyhow::Result;
use serde_json::Value;

use crate::cluster::TestCluster;
use crate::kafka::kclient;
use crate::kafka::python;
use crate::kafka::script;

const PARTITIONS: u32 = 6;

/// A `kgroup.py member` process and the JSON lines it printed.
struct Member {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Member {
    fn start(lib: &str, bootstrap: &str, topic: &str, group: &str, name: &str) -> Result<Member> {
        Self::start_with(lib, bootstrap, topic, group, name, &[])
    }

    fn start_with(
        lib: &str,
        bootstrap: &str,
        topic: &str,
        group: &str,
        name: &str,
        extra: &[&str],
    ) -> Result<Member> {
        let mut child = Command::new(python()?)
            .arg(script("kgroup.py"))
            .args([lib, "member", "--bootstrap", bootstrap])
            .args(["--topic", topic, "--group", group])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {lib} member {name}"))?;
        let stdout = child.stdout.take().context("member stdout")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().expect("member lines").push(v);
                }
            }
        });
        Ok(Member {
            name: name.to_string(),
            child,
            lines,
        })
    }

    fn events(&self, kind: &str) -> Vec<Value> {
        self.lines
            .lock()
            .expect("member lines")
            .iter()
            .filter(|v| v["type"] == kind)
            .cloned()
            .collect()
    }

    /// Its latest assignment (empty before the first).
    fn assigned(&self) -> BTreeSet<u32> {
        self.events("assigned")
            .last()
            .and_then(|v| v["partitions"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.as_u64().map(|p| p as u32))
            .collect()
    }

    fn values(&self) -> Vec<String> {
        self.events("record")
            .iter()
            .filter_map(|v| v["value"].as_str().map(str::to_string))
            .collect()
    }

    /// Records it printed that no successful commit covered.
    fn uncommitted(&self) -> usize {
        let committed: u64 = self
            .events("committed")
            .iter()
            .filter_map(|v| v["records"].as_u64())
            .sum();
        self.values().len().saturating_sub(committed as usize)
    }

    /// SIGTERM: the member commits nothing more, leaves the group and exits.
    fn stop(&mut self) -> Result<()> {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?
            .success();
        ensure!(ok, "kill -TERM {} failed", self.name);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                ensure!(
                    status.success(),
                    "member {} exited with {status}",
                    self.name
                );
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("member {} did not exit within 30 s of SIGTERM", self.name)
    }

    fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it holds; its last explanation on timeout.
async fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<String>>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match check()? {
            None => return Ok(()),
            Some(why) => last = why,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{what}: not within {timeout:?}: {last}")
}

fn produce(bootstrap: &str, topic: &str, prefix: &str, count: usize) -> Result<BTreeSet<String>> {
    let n = count.to_string();
    let acked = kclient(
        "confluent",
        "produce",
        bootstrap,
        topic,
        &["--count", &n, "--prefix", prefix],
    )?;
    ensure!(
        acked.len() == count,
        "{} of {count} acknowledged",
        acked.len()
    );
    Ok(acked.into_iter().filter_map(|r| r.value).collect())
}

fn kgroup_admin(bootstrap: &str, args: &[&str]) -> Result<Value> {
    let out = Command::new(python()?)
        .arg(script("kgroup.py"))
        .args(["admin"])
        .args(args)
        .args(["--bootstrap", bootstrap])
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "kgroup admin {args:?}: {stdout} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_str(stdout.trim())?)
}

fn consumed(members: &[&Member]) -> BTreeSet<String> {
    members.iter().flat_map(|m| m.values()).collect()
}

async fn group_survives_leave_and_kill(lib: &str) -> Result<()> {
    let cluster = TestCluster::start(3).await?;
    let client = cluster.client().await?;
    let topic = "orders";
    let group = format!("g-{lib}");
    client
        .create_topic(topic, PARTITIONS, 3, HashMap::new())
        .await?;
    cluster
        .wait_fully_replicated(topic, Duration::from_secs(30))
        .await?;
    let bootstrap = cluster.kafka_bootstrap();
    let all: BTreeSet<u32> = (0..PARTITIONS).collect();

    eprintln!("--- {lib}: 1,200 records, then three members");
    let mut produced = produce(&bootstrap, topic, "a", 1200)?;
    let mut m1 = Member::start(lib, &bootstrap, topic, &group, "m1")?;
    let mut m2 = Member::start(lib, &bootstrap, topic, &group, "m2")?;
    let mut m3 = Member::start(lib, &bootstrap, topic, &group, "m3")?;
    wait_until(
        "three members share the partitions",
        Duration::from_secs(60),
        || {
            let a = [m1.assigned(), m2.assigned(), m3.assigned()];
            let union: BTreeSet<u32> = a.iter().flatten().copied().collect();
            let total: usize = a.iter().map(BTreeSet::len).sum();
            Ok(
                (a.iter().any(BTreeSet::is_empty) || union != all || total != all.len())
                    .then(|| format!("assignments {a:?}")),
            )
        },
    )
    .await?;
    wait_until(
        "the first records are consumed",
        Duration::from_secs(60),
        || {
            let seen = consumed(&[&m1, &m2, &m3]);
            let missing = produced.difference(&seen).count();
            Ok((missing > 0).then(|| format!("{missing} not consumed yet")))
        },
    )
    .await?;

    eprintln!("--- {lib}: 1,200 more records; meanwhile m1 leaves and m2 is killed -9");
    let second = {
        let bootstrap = bootstrap.clone();
        std::thread::spawn(move || produce(&bootstrap, topic, "b", 1200))
    };
    wait_until("m2 reads the new records", Duration::from_secs(60), || {
        let n = m2.values().iter().filter(|v| v.starts_with("b-")).count();
        Ok((n == 0).then(|| "none yet".to_string()))
    })
    .await?;
    m1.stop()?;
    m2.kill()?;
    let killed_at = Instant::now();
    produced.extend(
        second
            .join()
            .map_err(|_| anyhow::anyhow!("producer thread panicked"))??,
    );
    wait_until("m3 takes every partition", Duration::from_secs(60), || {
        let a = m3.assigned();
        Ok((a != all).then(|| format!("m3 has {a:?}")))
    })
    .await?;
    eprintln!(
        "m3 took every partition {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
    wait_until("every record is consumed", Duration::from_secs(60), || {
        let seen = consumed(&[&m1, &m2, &m3]);
        let missing = produced.difference(&seen).count();
        Ok((missing > 0).then(|| format!("{missing} not consumed yet")))
    })
    .await?;

    let admin = ["describe", "--group", group.as_str()];
    wait_until(
        "the group is described as stable",
        Duration::from_secs(30),
        || {
            let d = kgroup_admin(&bootstrap, &admin)?;
            let members = d["members"].as_array().map_or(0, Vec::len);
            let parts = d["members"][0]["partitions"].as_array().map_or(0, Vec::len);
            Ok(
                (d["state"] != "STABLE" || members != 1 || parts != all.len())
                    .then(|| d.to_string()),
            )
        },
    )
    .await?;

    eprintln!("--- {lib}: m3 stops; 600 more records; a new member resumes");
    m3.stop()?;
    let third = produce(&bootstrap, topic, "c", 600)?;
    let listed = kgroup_admin(&bootstrap, &["list"])?;
    let state = listed["groups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["group"] == group.as_str()))
        .map(|g| g["state"].clone());
    ensure!(state == Some(Value::from("EMPTY")), "list groups: {listed}");
    let mut m4 = Member::start(lib, &bootstrap, topic, &group, "m4")?;
    wait_until("m4 reads the new records", Duration::from_secs(60), || {
        let seen: BTreeSet<String> = m4.values().into_iter().collect();
        let missing = third.difference(&seen).count();
        Ok((missing > 0).then(|| format!("{missing} not consumed yet")))
    })
    .await?;
    m4.stop()?;
    let resumed = m4.values();
    ensure!(
        resumed.len() == third.len() && resumed.iter().all(|v| third.contains(v)),
        "the new member read {} records, {} of them from before its group's committed offsets",
        resumed.len(),
        resumed.iter().filter(|v| !third.contains(*v)).count()
    );

    let reads: usize = [&m1, &m2, &m3].iter().map(|m| m.values().len()).sum();
    let duplicates = reads - consumed(&[&m1, &m2, &m3]).len();
    let uncommitted: usize = [&m1, &m2, &m3].iter().map(|m| m.uncommitted()).sum();
    eprintln!(
        "{lib}: {reads} reads, {duplicates} duplicates, {uncommitted} read but not committed"
    );
    ensure!(
        duplicates <= uncommitted,
        "{duplicates} duplicates, but only {uncommitted} records were read without a commit"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_confluent_kafka_group_survives_leave_and_kill() -> Result<()> {
    group_survives_leave_and_kill("confluent").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_kafka_python_group_survives_leave_and_kill() -> Result<()> {
    group_survives_leave_and_kill("kafka-python").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_aiokafka_group_survives_leave_and_kill() -> Result<()> {
    group_survives_leave_and_kill("aiokafka").await
}

/// Static membership (KIP-345) with librdkafka: a member that restarts
/// with its `group.instance.id` within its session takes its place back
/// without a rebalance (same generation, same partitions, the other member
/// untouched); DescribeGroups shows the instance ids; a second process with
/// the same instance id fences the first (FENCED_INSTANCE_ID).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_static_members_restart_without_a_rebalance() -> Result<()> {
    let cluster = TestCluster::start(3).await?;
    let client = cluster.client().await?;
    let (topic, group) = ("static", "g-static");
    client.create_topic(topic, 4, 3, HashMap::new()).await?;
    cluster
        .wait_fully_replicated(topic, Duration::from_secs(30))
        .await?;
    let bootstrap = cluster.kafka_bootstrap();
    let member = |name: &str, instance: &str| {
        Member::start_with(
            "confluent",
            &bootstrap,
            topic,
            group,
            name,
            &["--instance-id", instance],
        )
    };
    let mut a = member("a", "instance-a")?;
    let b = member("b", "instance-b")?;
    wait_until(
        "two static members share 4 partitions",
        Duration::from_secs(60),
        || {
            let (x, y) = (a.assigned(), b.assigned());
            Ok((x.len() + y.len() != 4 || x.is_empty() || y.is_empty())
                .then(|| format!("{x:?} {y:?}")))
        },
    )
    .await?;
    let mut generation = None;
    for _ in 0..100 {
        let d = client.describe_group(group).await?;
        if d.state == "Stable" {
            generation = Some(d.generation);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let generation = generation.context("the group never became stable")?;
    let (had_a, had_b) = (a.assigned(), b.assigned());
    let b_events = b.events("assigned").len();

    eprintln!("--- a is killed -9 and restarts with its instance id within its session");
    a.kill()?;
    let a2 = member("a2", "instance-a")?;
    wait_until("a2 gets a's partitions", Duration::from_secs(30), || {
        let got = a2.assigned();
        Ok((got != had_a).then(|| format!("a2 has {got:?}, a had {had_a:?}")))
    })
    .await?;
    let d = client.describe_group(group).await?;
    ensure!(
        d.generation == generation && d.state == "Stable",
        "a static member's restart rebalanced the group: generation {} -> {}, {}",
        generation,
        d.generation,
        d.state
    );
    ensure!(
        b.assigned() == had_b && b.events("assigned").len() == b_events,
        "b's assignment moved: {:?}",
        b.events("assigned")
    );
    let described = kgroup_admin(&bootstrap, &["describe", "--group", group])?;
    let mut instances: Vec<String> = described["members"]
        .as_array()
        .context("members")?
        .iter()
        .filter_map(|m| m["instance_id"].as_str().map(str::to_string))
        .collect();
    instances.sort();
    ensure!(instances == ["instance-a", "instance-b"], "{described}");

    eprintln!("--- a second process with a's instance id fences a2");
    let a3 = member("a3", "instance-a")?;
    wait_until("a2 is fenced", Duration::from_secs(30), || {
        let errors = a2.events("error");
        Ok((!errors.iter().any(|e| {
            e["error"]
                .as_str()
                .is_some_and(|s| s.contains("FENCED_INSTANCE_ID") || s.contains("fenced"))
        }))
        .then(|| format!("a2 errors: {errors:?}")))
    })
    .await?;
    wait_until("a3 holds a's partitions", Duration::from_secs(30), || {
        let got = a3.assigned();
        Ok((got != had_a).then(|| format!("a3 has {got:?}")))
    })
    .await?;
    Ok(())
}

/// Issue 15: the consumer group protocol of KIP-848 with the Java client
/// (kafka-clients 4.3, `group.protocol=consumer`; tests/kafka/JavaGroups.java)
/// on a 3-node cluster, once per server-side assignor. One member gets every
/// partition; a second joins and the partitions are split between them
/// without ever being owned by both; every record is read once and
/// committed (OffsetCommit v9, fenced by member epoch; a member commits
/// before it gives partitions up); the admin client describes
/// the group as a consumer-protocol group (ConsumerGroupDescribe), lists it
/// with its type, and reads the committed offsets; when one member leaves
/// the other gets everything back. Skipped, saying so, without a JDK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_java_consumer_protocol_groups_split_and_commit() -> Result<()> {
    let Some((_classes, run_path)) = crate::kafka::compile_java("JavaGroups.java")? else {
        return Ok(());
    };
    let cluster = TestCluster::start(3).await?;
    let client = cluster.client().await?;
    let records = 200;
    for assignor in ["uniform", "range"] {
        let topic = format!("kip848-{assignor}");
        let group = format!("g-kip848-{assignor}");
        client.create_topic(&topic, 4, 3, HashMap::new()).await?;
        cluster
            .wait_fully_replicated(&topic, Duration::from_secs(30))
            .await?;
        let out = Command::new("java")
            .arg("-cp")
            .arg(&run_path)
            .arg("JavaGroups")
            .args(["--bootstrap", &cluster.kafka_bootstrap()])
            .args(["--topic", &topic, "--group", &group])
            .args(["--records", &records.to_string(), "--assignor", assignor])
            .stdin(Stdio::null())
            .output()
            .context("run java JavaGroups")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))
            .with_context(|| {
                format!(
                    "JavaGroups printed {stdout:?} ({}); stderr: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
        eprintln!("{assignor}: {line}");
        ensure!(
            line.get("error").is_none(),
            "{assignor}: {line}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            line["overlap"] == false,
            "{assignor}: a partition was owned by both: {line}"
        );
        ensure!(line["consumed"] == records, "{assignor}: {line}");
        ensure!(line["duplicates"] == 0, "{assignor}: {line}");
        let sizes = |k: &str| line[k].as_array().map_or(0, Vec::len);
        ensure!(
            sizes("a") == 2 && sizes("b") == 2,
            "{assignor}: 4 partitions not split 2 and 2: {line}"
        );
        let d = &line["describe"];
        ensure!(
            d["type"] == "Consumer" && d["state"] == "Stable" && d["assignor"] == assignor,
            "{assignor}: described as {d}"
        );
        ensure!(
            d["members"].as_array().map_or(0, Vec::len) == 2,
            "{assignor}: described members {d}"
        );
        ensure!(
            line["listed_type"] == "Consumer",
            "{assignor}: listed {line}"
        );
        ensure!(
            line["committed_total"] == records,
            "{assignor}: committed {line}"
        );
        ensure!(line["after_leave"] == 4, "{assignor}: {line}");
        ensure!(
            line["after_close"]["state"] == "Empty",
            "{assignor}: after both closed: {}",
            line["after_close"]
        );
        // The offsets are the group's, whichever protocol reads them: the
        // gRPC API sees them too.
        let d = client.describe_group(&group).await?;
        let total: i64 = d.offsets.iter().map(|o| o.offset).sum();
        ensure!(
            total == records,
            "{assignor}: stored offsets sum to {total}"
        );
    }
    Ok(())
}

/// Issue 15: the same leave-and-kill run with librdkafka speaking the
/// consumer group protocol of KIP-848 (`group.protocol=consumer`): the
/// coordinator assigns, a killed member's partitions move once its session
/// (6 s in tests) ends, nothing is lost, duplicates only from uncommitted
/// reads, a new member resumes at the committed offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_consumer_protocol_group_survives_leave_and_kill() -> Result<()> {
    group_survives_leave_and_kill("confluent-consumer").await
}

/// Issue 15: a consumer-protocol group (librdkafka, KIP-848) goes on
/// unchanged when its coordinator (the metadata leader) is killed -9: the
/// new coordinator takes the group over as stored (epochs, assignments), so
/// no member's assignment moves, and every record produced before and after
/// is consumed, duplicates only from uncommitted reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_consumer_protocol_group_survives_coordinator_failover() -> Result<()> {
    let mut cluster = TestCluster::start(3).await?;
    let client = cluster.client().await?;
    let (topic, group) = ("kip848-failover", "g-kip848-failover");
    client
        .create_topic(topic, PARTITIONS, 3, HashMap::new())
        .await?;
    cluster
        .wait_fully_replicated(topic, Duration::from_secs(30))
        .await?;
    let bootstrap = cluster.kafka_bootstrap();
    let all: BTreeSet<u32> = (0..PARTITIONS).collect();
    let mut produced = produce(&bootstrap, topic, "a", 600)?;
    let lib = "confluent-consumer";
    let m1 = Member::start(lib, &bootstrap, topic, group, "m1")?;
    let m2 = Member::start(lib, &bootstrap, topic, group, "m2")?;
    wait_until(
        "two members share the partitions",
        Duration::from_secs(60),
        || {
            let (a, b) = (m1.assigned(), m2.assigned());
            let union: BTreeSet<u32> = a.union(&b).copied().collect();
            Ok(
                (a.is_empty() || b.is_empty() || union != all || a.len() + b.len() != all.len())
                    .then(|| format!("{a:?} {b:?}")),
            )
        },
    )
    .await?;
    wait_until(
        "the first records are consumed",
        Duration::from_secs(60),
        || {
            let missing = produced.difference(&consumed(&[&m1, &m2])).count();
            Ok((missing > 0).then(|| format!("{missing} not consumed yet")))
        },
    )
    .await?;
    let (had1, had2) = (m1.assigned(), m2.assigned());
    let events = m1.events("assigned").len() + m2.events("assigned").len();

    eprintln!("--- kill -9 the metadata leader (the coordinator)");
    let leader = client
        .cluster_status()
        .await?
        .metadata_leader
        .context("metadata leader")?;
    cluster.kill(cluster.node_index(leader))?;
    produced.extend(produce(&bootstrap, topic, "b", 600)?);
    wait_until("every record is consumed", Duration::from_secs(90), || {
        let missing = produced.difference(&consumed(&[&m1, &m2])).count();
        Ok((missing > 0).then(|| format!("{missing} not consumed yet")))
    })
    .await?;
    ensure!(
        m1.assigned() == had1
            && m2.assigned() == had2
            && m1.events("assigned").len() + m2.events("assigned").len() == events,
        "assignments moved after the coordinator failed over: {:?} {:?}",
        m1.events("assigned"),
        m2.events("assigned")
    );
    let reads: usize = [&m1, &m2].iter().map(|m| m.values().len()).sum();
    let duplicates = reads - consumed(&[&m1, &m2]).len();
    let uncommitted: usize = [&m1, &m2].iter().map(|m| m.uncommitted()).sum();
    ensure!(
        duplicates <= uncommitted,
        "{duplicates} duplicates, but only {uncommitted} records were read without a commit"
    );
    Ok(())
}
