//! Issue 13: the audit trail. Three nodes with SASL_PLAINTEXT, ACLs on and
//! an audit file each; operators (the gRPC API's anonymous clients, super
//! users here) make users, one on each node, then tests/kafka/kaudit.py
//! plays a scripted sequence with real clients. The audit topic must then
//! hold exactly the expected events (`cairn audit tail`), replicated on
//! three nodes, the events of every node (two of them handed to the
//! partition's leader), each also in its node's audit file; nobody may
//! write or delete audit records (alice with a WRITE ACL on the topic, the
//! super-user admin), and reading them takes an ACL naming the topic
//! (alice's READ on `*` does not do).

use std::collections::BTreeSet;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use anyhow::ensure;
use anyhow::Context;
use anyhow::Result;
use serde_json::json;
use serde_json::Value;

use crate::cluster::TestCluster;
use crate::kafka::python;
use crate::kafka::script;

const PASSWORD: &str = "s3cret-pw";

/// (event, principal, operation, resource_type, resource, result)
type Entry = (String, String, String, String, String, String);

fn entry(e: &Value) -> Entry {
    let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    (
        s("event"),
        s("principal"),
        s("operation"),
        s("resource_type"),
        s("resource"),
        s("result"),
    )
}

fn e(event: &str, principal: &str, op: &str, rtype: &str, resource: &str, result: &str) -> Entry {
    (
        event.into(),
        format!("User:{principal}"),
        op.into(),
        rtype.into(),
        resource.into(),
        result.into(),
    )
}

/// What the scripted sequence must leave in the trail, no more, no less
/// (but for [`optional`] entries).
fn expected() -> BTreeSet<Entry> {
    let acl = |op: &str, topic: &str| {
        e(
            "acl",
            "admin",
            "CreateAcls",
            "acl",
            &format!("ALLOW User:alice {op} on TOPIC:LITERAL:{topic} from *"),
            "ok",
        )
    };
    let audit = "__cairn_audit";
    BTreeSet::from([
        // Operators over gRPC (no authentication there: ANONYMOUS).
        e("user", "ANONYMOUS", "SetCredential", "user", "admin", "ok"),
        e("user", "ANONYMOUS", "SetCredential", "user", "alice", "ok"),
        e("user", "ANONYMOUS", "SetCredential", "user", "bob", "ok"),
        // setup
        e("authentication", "admin", "SCRAM-SHA-512", "", "", "ok"),
        e("topic", "admin", "CreateTopic", "topic", "labs", "ok"),
        e("topic", "admin", "CreateTopic", "topic", "notes", "ok"),
        acl("WRITE", "labs"),
        acl("WRITE", "notes"),
        acl("WRITE", audit),
        acl("READ", "*"),
        // act: logins, one refused
        e("authentication", "alice", "SCRAM-SHA-256", "", "", "ok"),
        e("authentication", "bob", "SCRAM-SHA-256", "", "", "ok"),
        e("authentication", "alice", "SCRAM-SHA-512", "", "", "failed"),
        // alice writes the sensitive topic (audited) and notes (not)
        e(
            "authorization",
            "alice",
            "Produce",
            "topic",
            "labs",
            "allowed",
        ),
        // bob may not even see labs
        e(
            "authorization",
            "bob",
            "Metadata",
            "topic",
            "labs",
            "denied",
        ),
        // nobody writes or deletes audit records
        e(
            "authorization",
            "alice",
            "Produce",
            "topic",
            audit,
            "denied",
        ),
        e(
            "authorization",
            "admin",
            "Produce",
            "topic",
            audit,
            "denied",
        ),
        e(
            "authorization",
            "admin",
            "DeleteTopic",
            "topic",
            audit,
            "denied",
        ),
        // alice's READ on `*` does not reach the audit topic (a refused
        // ListOffsets or Fetch, see `refused_read`); one naming it does
        acl("READ", audit),
        e(
            "authorization",
            "alice",
            "ListOffsets",
            "topic",
            audit,
            "allowed",
        ),
        e("authorization", "alice", "Fetch", "topic", audit, "allowed"),
    ])
}

/// Decisions a client makes as often as its metadata refreshes: looks at
/// a sensitive topic's metadata that are allowed, and refused looks at the
/// audit topic's (a client asking for every topic's metadata).
fn optional(x: &Entry) -> bool {
    (x.0 == "authorization"
        && matches!(x.2.as_str(), "Metadata" | "OffsetForLeaderEpoch")
        && (x.5 == "allowed" || x.4 == "__cairn_audit"))
        || refused_read(x)
}

/// alice's refused read of the audit topic: which request kafka-python
/// sends first (ListOffsets to seek, or Fetch) is its business.
fn refused_read(x: &Entry) -> bool {
    x.0 == "authorization"
        && x.1 == "User:alice"
        && matches!(x.2.as_str(), "ListOffsets" | "Fetch")
        && x.4 == "__cairn_audit"
        && x.5 == "denied"
}

fn kaudit(cluster: &TestCluster, phase: &str) -> Result<Value> {
    let out = Command::new(python()?)
        .arg(script("kaudit.py"))
        .args(["--bootstrap", &cluster.kafka_bootstrap()])
        .args(["--password", PASSWORD, "--phase", phase])
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).with_context(|| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.contains("|FAIL|")).collect();
        format!("kaudit.py {phase}: {stdout} / {}", tail.join("\n"))
    })
}

/// Waits until every node answers `count` ACL bindings from its own copy
/// of the metadata (a node decides with its own copy).
async fn wait_for_acls(cluster: &TestCluster, count: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    for grpc in cluster.bootstrap() {
        loop {
            let listed: Value = serde_json::from_str(&crate::tls::cairn(&[
                "acl",
                "list",
                "--format",
                "json",
                "--bootstrap",
                &grpc,
            ])?)?;
            if listed["acls"].as_array().map(Vec::len) == Some(count) {
                break;
            }
            if Instant::now() > deadline {
                bail!("{grpc} lists {listed}, want {count} bindings");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

fn tail(cluster: &TestCluster, extra: &[&str]) -> Result<Vec<Value>> {
    let bootstrap = cluster.bootstrap().join(",");
    let mut args = vec![
        "audit",
        "tail",
        "--format",
        "json",
        "--bootstrap",
        &bootstrap,
    ];
    args.extend(extra);
    crate::tls::cairn(&args)?
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("audit line {l:?}")))
        .collect()
}

/// The entries of the events of the script's principals (the operators'
/// own reads of the trail left out).
fn scripted(events: &[Value]) -> BTreeSet<Entry> {
    events
        .iter()
        .map(entry)
        .filter(|x| !(x.1 == "User:ANONYMOUS" && x.0 == "authorization"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_topic_holds_exactly_the_scripted_events() -> Result<()> {
    let cluster = TestCluster::new(3)?
        .with_env("CAIRN_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
        .with_env("CAIRN_ACL_ENABLED", "true")
        .with_env("CAIRN_SUPER_USERS", "[\"User:admin\",\"User:ANONYMOUS\"]")
        .with_env("CAIRN_AUDIT_LOG_FILE", "audit.jsonl")
        .started_for_test()
        .await?;
    let grpc = cluster.bootstrap();
    // One user made on each node: every node has events to store.
    for (addr, user) in grpc.iter().zip(["admin", "alice", "bob"]) {
        crate::kafka_security::create_user_on(addr, user, PASSWORD)?;
    }

    let mut got = serde_json::Map::new();
    let phase = |v: Value, got: &mut serde_json::Map<String, Value>| {
        got.extend(v.as_object().cloned().unwrap_or_default());
    };
    phase(kaudit(&cluster, "setup")?, &mut got);
    wait_for_acls(&cluster, 4).await?;
    phase(kaudit(&cluster, "act")?, &mut got);
    phase(kaudit(&cluster, "grant")?, &mut got);
    wait_for_acls(&cluster, 5).await?;
    phase(kaudit(&cluster, "read")?, &mut got);
    let want = json!({
        "admin_create_topics": "ok",
        "admin_create_acls": 4,
        "alice_produce_labs": "ok",
        "alice_produce_notes": "ok",
        "bob_produce_labs": "TOPIC_AUTHORIZATION_FAILED",
        "alice_wrong_password": "_AUTHENTICATION",
        "alice_produce_audit": "TOPIC_AUTHORIZATION_FAILED",
        "admin_produce_audit": "TOPIC_AUTHORIZATION_FAILED",
        "admin_delete_audit": "TOPIC_AUTHORIZATION_FAILED",
        "alice_read_audit_wildcard_acl": "TopicAuthorizationFailedError",
        "admin_grant_audit_read": 1,
        "alice_read_audit": "some",
    });
    ensure!(
        Value::Object(got.clone()) == want,
        "client outcomes: got {}, want {want}\n{}",
        Value::Object(got),
        cluster.logs_tail(30)
    );

    // The writers are asynchronous: wait until the trail holds every
    // expected entry, then it must hold nothing else.
    let want = expected();
    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events = tail(&cluster, &[])?;
        let have = scripted(&events);
        if want.is_subset(&have) || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let have = scripted(&events);
    let missing: Vec<_> = want.difference(&have).collect();
    let extra: Vec<_> = have.difference(&want).filter(|x| !optional(x)).collect();
    ensure!(
        missing.is_empty() && extra.is_empty() && have.iter().any(refused_read),
        "audit trail: missing {missing:#?}\nunexpected {extra:#?}\n\
         alice's refused read of the audit topic there: {}",
        have.iter().any(refused_read)
    );
    for ev in &events {
        ensure!(
            ev["time"].as_str().is_some_and(|t| t.ends_with('Z'))
                && ev["listener"].as_str().is_some_and(|l| !l.is_empty())
                && (ev["principal"] == "User:ANONYMOUS"
                    || ev["listener"] != "kafka"
                    || ev["client"]
                        .as_str()
                        .is_some_and(|c| c.starts_with("127.0.0.1:"))),
            "an event without its time, listener or client: {ev}"
        );
    }
    // Every node's events are there: two nodes handed theirs to the leader.
    let nodes: BTreeSet<u64> = events
        .iter()
        .filter(|v| v["event"] == "user")
        .filter_map(|v| v["node"].as_u64())
        .collect();
    ensure!(
        nodes == BTreeSet::from([1, 2, 3]),
        "user events from nodes {nodes:?}"
    );

    // Replicated on every node.
    let described: Value = serde_json::from_str(&crate::tls::cairn(&[
        "topic",
        "describe",
        "__cairn_audit",
        "--format",
        "json",
        "--bootstrap",
        &grpc.join(","),
    ])?)?;
    let replicas = described["partitions"][0]["replicas"]
        .as_array()
        .map(Vec::len);
    ensure!(replicas == Some(3), "audit topic: {described}");

    // The filters.
    let bob = tail(&cluster, &["--principal", "User:bob"])?;
    ensure!(
        !bob.is_empty() && bob.iter().all(|v| v["principal"] == "User:bob"),
        "--principal User:bob: {bob:?}"
    );
    let labs = tail(&cluster, &["--topic", "labs"])?;
    ensure!(
        labs.iter().any(|v| v["operation"] == "Produce")
            && labs
                .iter()
                .all(|v| v["resource_type"] == "topic" && v["resource"] == "labs"),
        "--topic labs: {labs:?}"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let future = (now_ms + 3_600_000).to_string();
    ensure!(
        tail(&cluster, &["--since", &future])?.is_empty(),
        "--since the future"
    );

    // Each event is also in the audit file of the node that decided it.
    let mut files = BTreeSet::new();
    for i in 0..3 {
        let text = std::fs::read_to_string(cluster.data_dir(i).join("audit.jsonl"))?;
        for line in text.lines() {
            let v: Value = serde_json::from_str(line)?;
            files.insert(v.to_string());
        }
    }
    for ev in &events {
        ensure!(
            files.contains(&ev.to_string()),
            "not in any audit file: {ev}"
        );
    }
    Ok(())
}

/// Waits until the trail (read through `bootstrap`) holds a user event
/// for each of `users`.
async fn wait_for_user_events(
    cluster: &TestCluster,
    bootstrap: &str,
    users: &[&str],
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = crate::tls::cairn(&[
            "audit",
            "tail",
            "--format",
            "json",
            "--bootstrap",
            bootstrap,
        ])
        .unwrap_or_default();
        let seen: BTreeSet<String> = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == "user")
            .filter_map(|v| v["resource"].as_str().map(String::from))
            .collect();
        if users.iter().all(|u| seen.contains(*u)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the trail holds users {seen:?}, want {users:?}\n{}",
                cluster.logs_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The audit partition's leader is killed: events decided on the other
/// nodes meanwhile wait in their writers' queues, and reach the topic once
/// a new leader is elected (the writer retries, then hands them to it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events_reach_the_topic_across_a_leader_failover() -> Result<()> {
    let mut cluster = TestCluster::new(3)?
        .with_env("CAIRN_ACL_ENABLED", "true")
        .with_env("CAIRN_SUPER_USERS", "[\"User:ANONYMOUS\"]")
        .started_for_test()
        .await?;
    let grpc = cluster.bootstrap();
    crate::kafka_security::create_user_on(&grpc[0], "first", PASSWORD)?;
    wait_for_user_events(&cluster, &grpc.join(","), &["first"]).await?;
    let describe = |bootstrap: &str| -> Result<Value> {
        Ok(serde_json::from_str(&crate::tls::cairn(&[
            "topic",
            "describe",
            "__cairn_audit",
            "--format",
            "json",
            "--bootstrap",
            bootstrap,
        ])?)?)
    };
    let leader = describe(&grpc.join(","))?["partitions"][0]["leader"]
        .as_u64()
        .context("the audit partition's leader")?;
    let dead = cluster.node_index(leader);
    cluster.kill(dead)?;
    let alive: Vec<String> = (0..3)
        .filter(|i| *i != dead)
        .map(|i| grpc[i].clone())
        .collect();
    // Decided while the partition has no leader (or a deposed one).
    for (i, addr) in alive.iter().enumerate() {
        crate::kafka_security::create_user_on(addr, &format!("during-{i}"), PASSWORD)?;
    }
    let bootstrap = alive.join(",");
    wait_for_user_events(&cluster, &bootstrap, &["first", "during-0", "during-1"]).await?;
    let now = describe(&bootstrap)?["partitions"][0]["leader"].as_u64();
    ensure!(
        now.is_some() && now != Some(leader),
        "audit partition leader {now:?}"
    );
    Ok(())
}
