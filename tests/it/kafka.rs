//! Issue 5 (first slice): real Kafka clients against Cairn's Kafka API on a
//! 3-node cluster. librdkafka (confluent-kafka), kafka-python and aiokafka
//! produce and consume with every codec, kcat reads metadata and moves
//! records, confluent-kafka's AdminClient manages topics and configs, and
//! the gRPC API and the Kafka API see each other's topics and records.
//!
//! The clients run as processes (tests/kafka/*.py in the venv that
//! `cluster/install-kafka-clients` makes; `tests/run` calls it).

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io::Read;
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use anyhow::bail;
use anyhow::ensure;
use anyhow::Context;
use anyhow::Result;
use bytes::Bytes;
use cairn_client::Acks;
use cairn_client::OwnedRecord;
use cairn_record::partition_for_key;
use serde_json::Value;

use crate::cluster::metric;
use crate::cluster::TestCluster;

const PARTITIONS: u32 = 3;
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

pub(crate) fn python() -> Result<PathBuf> {
    let venv =
        std::env::var("CAIRN_KAFKA_VENV").unwrap_or_else(|_| "/var/tmp/cairn-kafka-venv".into());
    let py = PathBuf::from(venv).join("bin/python");
    ensure!(
        py.exists(),
        "{} not found: run cluster/install-kafka-clients (tests/run does)",
        py.display()
    );
    Ok(py)
}

/// The Java client's jars (`kafka-clients` and what it needs at run time)
/// as a classpath (`DIR/*`), or `None`, saying why, when this machine has no
/// `javac` (a test driving the Java client then skips).
/// Compiles `tests/kafka/{source}` against the Java client: the directory
/// of its classes and the classpath to run it with, or `None` (saying so)
/// on a machine without a JDK.
pub(crate) fn compile_java(source: &str) -> Result<Option<(tempfile::TempDir, String)>> {
    let Some(classpath) = java_classpath()? else {
        return Ok(None);
    };
    let classes = tempfile::tempdir()?;
    let javac = Command::new("javac")
        .args(["-cp", &classpath, "-d"])
        .arg(classes.path())
        .arg(script(source))
        .stdin(Stdio::null())
        .output()
        .context("run javac")?;
    ensure!(
        javac.status.success(),
        "javac {source} failed ({}): {}{}",
        javac.status,
        String::from_utf8_lossy(&javac.stdout),
        String::from_utf8_lossy(&javac.stderr)
    );
    let run_path = format!("{}:{classpath}", classes.path().display());
    Ok(Some((classes, run_path)))
}

pub(crate) fn java_classpath() -> Result<Option<String>> {
    for tool in ["javac", "java"] {
        if Command::new(tool)
            .arg("-version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!("SKIPPED: the Java Kafka client check: no `{tool}` on PATH (install a JDK)");
            return Ok(None);
        }
    }
    let dir = std::env::var("CAIRN_JAVA_CLIENTS")
        .unwrap_or_else(|_| "/var/tmp/cairn-java-clients".into());
    let lib = PathBuf::from(dir).join("lib");
    let has_client = std::fs::read_dir(&lib)
        .map(|d| {
            d.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("kafka-clients-") && name.ends_with(".jar")
            })
        })
        .unwrap_or(false);
    ensure!(
        has_client,
        "no kafka-clients jar in {}: run cluster/install-kafka-clients (tests/run does)",
        lib.display()
    );
    Ok(Some(format!("{}/*", lib.display())))
}

pub(crate) fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/kafka")
        .join(name)
}

/// Runs a command to its end; its stdout, or an error with both outputs.
fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: cannot start"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            tail(&stdout),
            tail(&String::from_utf8_lossy(&out.stderr))
        );
    }
    Ok(stdout)
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// One record as a client saw it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Seen {
    pub partition: u32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Option<String>,
}

fn parse_records(stdout: &str) -> Result<Vec<Seen>> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).with_context(|| format!("line {l:?}"))?;
            Ok(Seen {
                partition: v["partition"].as_u64().context("partition")? as u32,
                offset: v["offset"].as_i64().context("offset")?,
                key: v["key"].as_str().map(str::to_string),
                value: v["value"].as_str().map(str::to_string),
            })
        })
        .collect()
}

pub(crate) fn kclient(
    lib: &str,
    action: &str,
    bootstrap: &str,
    topic: &str,
    args: &[&str],
) -> Result<Vec<Seen>> {
    let mut cmd = Command::new(python()?);
    cmd.arg(script("kclient.py"))
        .args([lib, action, "--bootstrap", bootstrap, "--topic", topic])
        .args(args);
    parse_records(&run(&mut cmd, &format!("{lib} {action} {topic}"))?)
}

fn kadmin(bootstrap: &str, args: &[&str]) -> Result<std::result::Result<Value, Value>> {
    let out = Command::new(python()?)
        .arg(script("kadmin.py"))
        .args(["--bootstrap", bootstrap])
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.trim()).with_context(|| {
        format!(
            "kadmin {args:?}: {stdout} / {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok(if out.status.success() { Ok(v) } else { Err(v) })
}

/// A kadmin.py command that must succeed: its JSON answer.
fn admin_ok(bootstrap: &str, args: &[&str]) -> Result<Value> {
    kadmin(bootstrap, args)?.map_err(|e| anyhow::anyhow!("kadmin {args:?}: {e}"))
}

/// A kadmin.py command that must fail: the Kafka error's name.
fn admin_err(bootstrap: &str, args: &[&str]) -> Result<String> {
    match kadmin(bootstrap, args)? {
        Ok(v) => bail!("kadmin {args:?}: expected an error, got {v}"),
        Err(e) => Ok(e["error"].as_str().unwrap_or_default().to_string()),
    }
}

/// Keyed records produced by one client: each acknowledged once, in the
/// partition Kafka's murmur2 partitioner picks, at distinct offsets.
fn check_produced(produced: &[Seen], count: usize, prefix: &str) -> Result<()> {
    ensure!(
        produced.len() == count,
        "{} of {count} acknowledged",
        produced.len()
    );
    let mut offsets = std::collections::HashSet::new();
    for r in produced {
        let key = r.key.as_deref().context("key")?;
        let want = partition_for_key(key.as_bytes(), PARTITIONS);
        ensure!(
            r.partition == want,
            "key {key} went to partition {}, murmur2 says {want}",
            r.partition
        );
        ensure!(r.offset >= 0, "record {r:?} has no offset");
        ensure!(
            offsets.insert((r.partition, r.offset)),
            "offset given twice: {r:?}"
        );
        let i = key.trim_start_matches('k');
        ensure!(
            r.value.as_deref() == Some(&format!("{prefix}-{i}")),
            "{r:?}"
        );
    }
    Ok(())
}

/// What was consumed is what was produced: every record exactly once, and
/// per partition in offset order, which is the order they were produced in.
fn check_consumed(produced: &[Seen], consumed: &[Seen]) -> Result<()> {
    let mut want = produced.to_vec();
    want.sort();
    let mut got = consumed.to_vec();
    got.sort();
    got.dedup();
    ensure!(
        got.len() == consumed.len(),
        "records consumed more than once"
    );
    ensure!(
        got == want,
        "consumed {} records, produced {}; first difference: {:?}",
        got.len(),
        want.len(),
        got.iter().zip(&want).find(|(a, b)| a != b)
    );
    let mut by_partition: BTreeMap<u32, Vec<&Seen>> = BTreeMap::new();
    for r in consumed {
        by_partition.entry(r.partition).or_default().push(r);
    }
    for (p, rs) in by_partition {
        ensure!(
            rs.windows(2).all(|w| w[0].offset < w[1].offset),
            "partition {p} out of order"
        );
        let index = |r: &Seen| r.key.as_deref().and_then(|k| k[1..].parse::<u64>().ok());
        ensure!(
            rs.windows(2).all(|w| index(w[0]) < index(w[1])),
            "partition {p}: produce order lost"
        );
    }
    Ok(())
}

async fn every_codec(lib: &str) -> Result<()> {
    let cluster = TestCluster::start(3).await?;
    let client = cluster.client().await?;
    let bootstrap = cluster.kafka_bootstrap();
    let count = 200;
    for codec in CODECS {
        let topic = format!("{}-{codec}", lib.replace('-', "_"));
        client
            .create_topic(&topic, PARTITIONS, 3, HashMap::new())
            .await?;
        let prefix = format!("{lib}-{codec}");
        let produced = kclient(
            lib,
            "produce",
            &bootstrap,
            &topic,
            &[
                "--count",
                &count.to_string(),
                "--codec",
                codec,
                "--prefix",
                &prefix,
            ],
        )?;
        check_produced(&produced, count, &prefix).with_context(|| format!("{lib} {codec}"))?;
        let consumed = kclient(
            lib,
            "consume",
            &bootstrap,
            &topic,
            &["--partitions", "0,1,2", "--expect", &count.to_string()],
        )?;
        check_consumed(&produced, &consumed).with_context(|| format!("{lib} {codec}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_confluent_kafka_produces_and_consumes_every_codec() -> Result<()> {
    every_codec("confluent").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_kafka_python_produces_and_consumes_every_codec() -> Result<()> {
    every_codec("kafka-python").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_aiokafka_produces_and_consumes_every_codec() -> Result<()> {
    every_codec("aiokafka").await
}

/// A 3-node cluster with a topic of `PARTITIONS` partitions, RF3, and its
/// Kafka bootstrap list.
async fn three_nodes_with_topic(topic: &str) -> Result<(TestCluster, String)> {
    let cluster = TestCluster::start(3).await?;
    cluster
        .client()
        .await?
        .create_topic(topic, PARTITIONS, 3, HashMap::new())
        .await?;
    let bootstrap = cluster.kafka_bootstrap();
    Ok((cluster, bootstrap))
}

/// The fetch requests a cluster served, by KIP-227 session kind
/// (`none`, `full`, `incremental`, `refused`).
fn fetches(cluster: &TestCluster, kind: &str) -> Result<f64> {
    let name = format!("cairn_kafka_fetch_requests_total{{session=\"{kind}\"}}");
    cluster.specs.iter().map(|s| metric(&s.admin, &name)).sum()
}

/// kafka-python keeps incremental fetch sessions (KIP-227): a consumer that
/// polls while records arrive names its partitions once and then fetches
/// incrementally; it still gets every record exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_consumes_through_incremental_fetch_sessions() -> Result<()> {
    let (cluster, bootstrap) = three_nodes_with_topic("sessions").await?;
    let rounds = 3;
    let per_round = 300;
    let consumer = Command::new(python()?)
        .arg(script("kclient.py"))
        .args(["kafka-python", "consume", "--bootstrap", &bootstrap])
        .args(["--topic", "sessions", "--partitions", "0,1,2"])
        .args(["--expect", &(rounds * per_round).to_string()])
        .args(["--timeout", "120"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // The consumer polls an empty topic first: its full fetch opens a
    // session, and its next requests are incremental.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while fetches(&cluster, "incremental")? < 1.0 {
        ensure!(
            std::time::Instant::now() < deadline,
            "no incremental fetch within 60 s (full: {}, none: {}, refused: {})",
            fetches(&cluster, "full")?,
            fetches(&cluster, "none")?,
            fetches(&cluster, "refused")?
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut produced = Vec::new();
    for round in 0..rounds {
        let prefix = format!("round{round}");
        let mut batch = kclient(
            "confluent",
            "produce",
            &bootstrap,
            "sessions",
            &["--count", &per_round.to_string(), "--prefix", &prefix],
        )?;
        check_produced(&batch, per_round, &prefix)?;
        produced.append(&mut batch);
    }
    let out = consumer.wait_with_output()?;
    ensure!(
        out.status.success(),
        "consumer failed ({}): {}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stderr))
    );
    let consumed = parse_records(&String::from_utf8_lossy(&out.stdout))?;
    // Keys repeat across rounds: compare by (partition, offset, value).
    let mut want = produced.clone();
    want.sort();
    let mut got = consumed.clone();
    got.sort();
    ensure!(
        got == want,
        "consumed {} records, produced {}; first difference: {:?}",
        got.len(),
        want.len(),
        got.iter().zip(&want).find(|(a, b)| a != b)
    );
    let incremental = fetches(&cluster, "incremental")?;
    let refused = fetches(&cluster, "refused")?;
    eprintln!(
        "--- fetches: {incremental} incremental, {} full, {refused} refused",
        fetches(&cluster, "full")?
    );
    ensure!(incremental >= 3.0, "only {incremental} incremental fetches");
    ensure!(refused == 0.0, "{refused} fetches refused a session");
    Ok(())
}

/// librdkafka with `enable.idempotence=true`: InitProducerId gives it a
/// producer id, its batches carry sequence numbers, and every record lands
/// once (across a leader kill: kafka_idempotent_producer_survives_a_leader_kill).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_idempotent_librdkafka_producer_writes_each_record_once() -> Result<()> {
    let (_cluster, bootstrap) = three_nodes_with_topic("idem").await?;
    let mut produced = Vec::new();
    for round in 0..2 {
        let prefix = format!("idem{round}");
        let mut r = kclient(
            "confluent",
            "produce",
            &bootstrap,
            "idem",
            &["--count", "100", "--idempotent", "--prefix", &prefix],
        )?;
        check_produced(&r, 100, &prefix)?;
        // Each key was produced once per round: keep it unique across rounds.
        for x in &mut r {
            x.key = x.key.take().map(|k| format!("{k}r{round}"));
        }
        produced.extend(r);
    }
    let consumed: Vec<Seen> = kclient(
        "confluent",
        "consume",
        &bootstrap,
        "idem",
        &["--partitions", "0,1,2", "--expect", "200"],
    )?
    .into_iter()
    .map(|mut x| {
        let round = &x.value.as_deref().unwrap_or_default()[4..5];
        x.key = x.key.take().map(|k| format!("{k}r{round}"));
        x
    })
    .collect();
    let mut want = produced.clone();
    want.sort();
    let mut got = consumed;
    got.sort();
    ensure!(
        got == want,
        "consumed {} records, produced {}",
        got.len(),
        want.len()
    );
    Ok(())
}

/// One large record as kclient.py reports it: the value without its
/// padding, and the value's full length.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Large {
    partition: u32,
    offset: i64,
    value: String,
    bytes: u64,
}

fn parse_large(stdout: &str) -> Result<Vec<Large>> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).with_context(|| format!("line {l:?}"))?;
            Ok(Large {
                partition: v["partition"].as_u64().context("partition")? as u32,
                offset: v["offset"].as_i64().context("offset")?,
                value: v["value"].as_str().context("value")?.to_string(),
                bytes: v["bytes"].as_u64().context("bytes")?,
            })
        })
        .collect()
}

/// Issue 12, finding 12: a Fetch answers at most `fetch.max.bytes`, but
/// for the first batch (KIP-74). Four partitions hold batches of one
/// ~900 KB record each; a librdkafka consumer whose receive limit is its
/// `fetch.max.bytes` + 512 (as librdkafka's own test 0082 sets it) must
/// read all of them, each once, in order. An answer holding one batch of
/// every partition (~3.6 MB) is refused by the client ("Invalid response
/// size"), which then asks again and never progresses. One node leads all
/// four partitions, so each Fetch names all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_fetch_answers_within_fetch_max_bytes() -> Result<()> {
    const PARTS: u32 = 4;
    const PER_PARTITION: usize = 27;
    const VALUE_BYTES: u64 = 900_000;
    const TIMEOUT_S: u64 = 60;
    let total = PARTS as usize * PER_PARTITION;
    let cluster = TestCluster::start(1).await?;
    cluster
        .client()
        .await?
        .create_topic("large", PARTS, 1, HashMap::new())
        .await?;
    let bootstrap = cluster.kafka_bootstrap();
    let mut cmd = Command::new(python()?);
    cmd.arg(script("kclient.py"))
        .args(["confluent", "produce", "--bootstrap", &bootstrap])
        .args(["--topic", "large", "--count", &total.to_string()])
        .args(["--prefix", "large", "--spread", &PARTS.to_string()])
        .args(["--value-bytes", &VALUE_BYTES.to_string()]);
    let produced = parse_large(&run(&mut cmd, "confluent produce large")?)?;
    ensure!(
        produced.len() == total,
        "{} of {total} acknowledged",
        produced.len()
    );

    let partitions = (0..PARTS).map(|p| p.to_string()).collect::<Vec<_>>();
    let started = std::time::Instant::now();
    let out = Command::new(python()?)
        .arg(script("kclient.py"))
        .args(["confluent", "consume", "--bootstrap", &bootstrap])
        .args(["--topic", "large", "--partitions", &partitions.join(",")])
        .args(["--expect", &total.to_string()])
        .args(["--timeout", &TIMEOUT_S.to_string()])
        .args(["--config", "fetch.max.bytes=1000000"])
        .args(["--config", "receive.message.max.bytes=1000512"])
        .args(["--config", "max.partition.fetch.bytes=1000000"])
        .stdin(Stdio::null())
        .output()?;
    let consumed = parse_large(&String::from_utf8_lossy(&out.stdout))?;
    ensure!(
        out.status.success() && consumed.len() == total,
        "the librdkafka consumer (fetch.max.bytes=1000000, \
         receive.message.max.bytes=1000512) read {} of {total} records of \
         {VALUE_BYTES} bytes in {:.0?} ({}); its stderr:\n{}",
        consumed.len(),
        started.elapsed(),
        out.status,
        tail(&String::from_utf8_lossy(&out.stderr))
    );
    for r in &consumed {
        ensure!(r.bytes == VALUE_BYTES, "record {r:?} is not whole");
    }
    let mut want = produced.clone();
    want.sort();
    let mut got = consumed.clone();
    got.sort();
    ensure!(
        got == want,
        "consumed differs from produced; first difference: {:?}",
        got.iter().zip(&want).find(|(a, b)| a != b)
    );
    for p in 0..PARTS {
        let values: Vec<&str> = consumed
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.value.as_str())
            .collect();
        let expected: Vec<String> = (0..total)
            .filter(|i| *i as u32 % PARTS == p)
            .map(|i| format!("large-{i}"))
            .collect();
        ensure!(
            values == expected,
            "partition {p} read out of order: {values:?}"
        );
    }
    Ok(())
}

/// A node that knows a new topic but not yet all its partitions' leaders
/// answers a Metadata request naming it once it knows them, not with
/// UNKNOWN_TOPIC_OR_PARTITION: kafka-python's consumer took that answer as
/// final until its next periodic refresh, five minutes later (its
/// end-to-end test failed so once in CI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_metadata_names_a_new_topic_with_its_leaders() -> Result<()> {
    use cairn_kafka::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use cairn_kafka::kafka_protocol::messages::ApiKey;
    use cairn_kafka::kafka_protocol::messages::MetadataRequest;
    use cairn_kafka::kafka_protocol::messages::MetadataResponse;
    use cairn_kafka::kafka_protocol::messages::ResponseHeader;
    use cairn_kafka::kafka_protocol::messages::TopicName;
    use cairn_kafka::kafka_protocol::protocol::Decodable;
    use cairn_kafka::kafka_protocol::protocol::StrBytes;
    use tokio::io::AsyncWriteExt;
    const VERSION: i16 = 12;
    const PARTITIONS: usize = 8;

    let cluster = TestCluster::start(3).await?;
    let creator = cluster.client_of(0).await?;
    let asked = [cluster.client_of(1).await?, cluster.client_of(2).await?];
    for round in 0..4 {
        let topic = format!("fresh-{round}");
        // Created through node 0 (which answers once it knows the leaders)
        // while node i is asked as soon as it knows the topic: before its
        // partitions have elected leaders.
        let creating = {
            let (creator, topic) = (creator.clone(), topic.clone());
            tokio::spawn(async move {
                creator
                    .create_topic(&topic, PARTITIONS as u32, 3, HashMap::new())
                    .await
            })
        };
        let i = 1 + round % 2;
        // Node i knows the topic (its gRPC door shows it at once)...
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while asked[i - 1].describe_topic(&topic).await.is_err() {
            ensure!(
                std::time::Instant::now() < deadline,
                "node {i} never learned {topic}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // ...and its Kafka door answers the topic with every leader.
        let req = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(topic.clone()))))]));
        let mut s = tokio::net::TcpStream::connect(&cluster.specs[i].kafka).await?;
        let frame = crate::kafka_security::request_frame(
            &cairn_kafka::ApiRequest::Metadata(req),
            VERSION,
            round as i32,
        )?;
        s.write_all(&frame).await?;
        let answer = crate::kafka_security::read_frame(&mut s).await?;
        let mut buf = bytes::Bytes::from(answer);
        let header = ApiKey::Metadata.response_header_version(VERSION);
        ResponseHeader::decode(&mut buf, header).map_err(|e| anyhow::anyhow!("{e}"))?;
        let resp =
            MetadataResponse::decode(&mut buf, VERSION).map_err(|e| anyhow::anyhow!("{e}"))?;
        let t = resp.topics.first().context("no topic in the answer")?;
        ensure!(
            t.error_code == 0,
            "round {round}: node {i} answered {topic} with error {}",
            t.error_code
        );
        ensure!(
            t.partitions.len() == PARTITIONS
                && t.partitions
                    .iter()
                    .all(|p| p.error_code == 0 && p.leader_id.0 >= 0),
            "round {round}: node {i} answered {topic} without every leader: {:?}",
            t.partitions
        );
        creating.await??;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_kcat_reads_metadata_and_moves_records() -> Result<()> {
    let (cluster, bootstrap) = three_nodes_with_topic("kcat").await?;
    cluster
        .wait_fully_replicated("kcat", Duration::from_secs(30))
        .await?;

    // -L: every node a broker, the topic with its partitions, a leader each.
    // Each node learns of new leaders from the others' heartbeats, so the
    // node kcat asks may take a moment longer than the one asked above.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let md: Value = loop {
        let md: Value = serde_json::from_str(&run(
            Command::new("kcat").args(["-b", &bootstrap, "-L", "-J", "-t", "kcat"]),
            "kcat -L",
        )?)?;
        let led = md["topics"][0]["partitions"]
            .as_array()
            .is_some_and(|ps| ps.iter().all(|p| p["leader"].as_i64().unwrap_or(-1) > 0));
        if led || std::time::Instant::now() >= deadline {
            break md;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let brokers: Vec<u64> = md["brokers"]
        .as_array()
        .context("brokers")?
        .iter()
        .filter_map(|b| b["id"].as_u64())
        .collect();
    ensure!(brokers.len() == 3, "brokers {brokers:?}");
    let topic = &md["topics"][0];
    ensure!(topic["topic"] == "kcat", "{topic}");
    let partitions = topic["partitions"].as_array().context("partitions")?;
    ensure!(partitions.len() == 3, "{topic}");
    for p in partitions {
        ensure!(brokers.contains(&p["leader"].as_u64().unwrap_or(0)), "{p}");
        ensure!(p["replicas"].as_array().map(Vec::len) == Some(3), "{p}");
    }

    // -P with keys, then -C to the end: each line once, in its partition.
    let lines: Vec<String> = (0..50).map(|i| format!("k{i}:kcat-{i}")).collect();
    let mut producer = Command::new("kcat")
        .args([
            "-b",
            &bootstrap,
            "-P",
            "-t",
            "kcat",
            "-K:",
            "-X",
            "partitioner=murmur2_random",
        ])
        .stdin(Stdio::piped())
        .spawn()?;
    producer
        .stdin
        .take()
        .context("stdin")?
        .write_all(lines.join("\n").as_bytes())?;
    ensure!(producer.wait()?.success(), "kcat -P failed");
    let out = run(
        Command::new("kcat").args([
            "-b",
            &bootstrap,
            "-C",
            "-t",
            "kcat",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%p %o %k %s\n",
        ]),
        "kcat -C",
    )?;
    let mut got: Vec<(u32, String, String)> = Vec::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        ensure!(f.len() == 4, "line {l:?}");
        got.push((f[0].parse()?, f[2].to_string(), f[3].to_string()));
    }
    ensure!(got.len() == 50, "kcat consumed {} of 50", got.len());
    for (p, k, v) in &got {
        ensure!(
            *p == partition_for_key(k.as_bytes(), PARTITIONS),
            "{k} in partition {p}"
        );
        ensure!(v == &format!("kcat-{}", &k[1..]), "{k} -> {v}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_and_grpc_see_each_others_topics_and_records() -> Result<()> {
    let cluster = TestCluster::start(3).await?;
    let client = cluster.client().await?;
    let bootstrap = cluster.kafka_bootstrap();

    // gRPC in, Kafka out.
    client
        .create_topic("from-grpc", PARTITIONS, 3, HashMap::new())
        .await?;
    let records: Vec<OwnedRecord> = (0..30)
        .map(|i| OwnedRecord {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("grpc-{i}"))),
            ..OwnedRecord::default()
        })
        .collect();
    let mut produced = Vec::new();
    for outcome in client
        .produce_records("from-grpc", &records, Acks::All)
        .await?
    {
        let base = outcome.result?.base_offset;
        for (n, i) in outcome.record_indices.iter().enumerate() {
            produced.push(Seen {
                partition: outcome.partition,
                offset: base + n as i64,
                key: Some(format!("k{i}")),
                value: Some(format!("grpc-{i}")),
            });
        }
    }
    check_produced(&produced, 30, "grpc")?;
    let consumed = kclient(
        "confluent",
        "consume",
        &bootstrap,
        "from-grpc",
        &["--partitions", "0,1,2", "--expect", "30"],
    )?;
    check_consumed(&produced, &consumed)?;

    // Kafka in (a topic made by the AdminClient), gRPC out.
    kadmin(
        &bootstrap,
        &["create", "from-kafka", "--partitions", "3", "--rf", "3"],
    )?
    .map_err(|e| anyhow::anyhow!("create: {e}"))?;
    let topics = client.list_topics().await?;
    ensure!(
        topics.iter().any(|t| t.name == "from-kafka"),
        "gRPC does not see the topic"
    );
    let produced = kclient(
        "confluent",
        "produce",
        &bootstrap,
        "from-kafka",
        &["--count", "30", "--prefix", "kafka"],
    )?;
    check_produced(&produced, 30, "kafka")?;
    let mut consumed = Vec::new();
    for p in 0..PARTITIONS {
        let f = client.fetch_records("from-kafka", p, 0, 1 << 20, 0).await?;
        for r in f.records {
            consumed.push(Seen {
                partition: p,
                offset: r.offset,
                key: r.key.map(|k| String::from_utf8_lossy(&k).into_owned()),
                value: r.value.map(|v| String::from_utf8_lossy(&v).into_owned()),
            });
        }
    }
    check_consumed(&produced, &consumed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_admin_client_manages_topics_and_configs() -> Result<()> {
    let cluster = TestCluster::start(3).await?;
    let client = cluster.client().await?;
    let b = cluster.kafka_bootstrap();

    admin_ok(
        &b,
        &[
            "create",
            "adm",
            "--partitions",
            "3",
            "--rf",
            "3",
            "--config",
            "retention.ms=3600000",
            "--config",
            "compression.type=zstd",
            "--config",
            "segment.ms=3600000",
        ],
    )?;
    let t = client.describe_topic("adm").await?;
    ensure!(
        t.partitions.len() == 3 && t.replication_factor == 3,
        "{t:?}"
    );
    ensure!(
        t.configs.get("retention.ms").map(String::as_str) == Some("3600000"),
        "{:?}",
        t.configs
    );

    ensure!(admin_err(&b, &["create", "adm", "--partitions", "1"])? == "TOPIC_ALREADY_EXISTS");
    ensure!(
        admin_err(&b, &["create", "bad", "--config", "retention.ms=soon"])? == "INVALID_CONFIG"
    );
    ensure!(
        admin_err(
            &b,
            &["create", "bad", "--config", "compression.type=brotli"]
        )? == "INVALID_CONFIG"
    );
    // A name no topic can have: refused as Kafka refuses it, and Metadata
    // for it says so at once (not UNKNOWN_TOPIC_OR_PARTITION, which a
    // producer would wait out).
    ensure!(admin_err(&b, &["create", "bad name!", "--partitions", "1"])? == "TOPIC_EXCEPTION");
    // Replicas the client names (Kafka's manual assignment), checked first
    // (validate_only), then created where asked.
    admin_ok(
        &b,
        &["create", "placed", "--assign", "3,1;1,2", "--validate-only"],
    )?;
    ensure!(client.describe_topic("placed").await.is_err());
    admin_ok(&b, &["create", "placed", "--assign", "3,1;1,2"])?;
    let placed = client.describe_topic("placed").await?;
    let replicas: Vec<Vec<u64>> = placed
        .partitions
        .iter()
        .map(|p| p.replicas.clone())
        .collect();
    ensure!(replicas == vec![vec![3, 1], vec![1, 2]], "{placed:?}");
    for bad in ["1,1", "1,9"] {
        ensure!(
            admin_err(&b, &["create", "misplaced", "--assign", bad])?
                == "INVALID_REPLICA_ASSIGNMENT",
            "{bad}"
        );
    }
    let md = admin_ok(&b, &["topics", "--topic", "bad name!"])?;
    ensure!(
        md["bad name!"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("TOPIC_EXCEPTION")),
        "{md}"
    );
    admin_ok(
        &b,
        &[
            "create",
            "checked",
            "--validate-only",
            "--partitions",
            "2",
            "--rf",
            "3",
        ],
    )?;
    ensure!(
        client.describe_topic("checked").await.is_err(),
        "validate_only created the topic"
    );

    let configs = admin_ok(&b, &["describe-configs", "adm"])?;
    ensure!(
        configs["retention.ms"]["value"] == "3600000"
            && configs["retention.ms"]["default"] == false,
        "{configs}"
    );
    ensure!(configs["max.message.bytes"]["default"] == true, "{configs}");
    // Every Kafka topic config is there, set ones with their values, each
    // with its synonyms (the topic's own, the broker's, the default).
    ensure!(
        configs.as_object().map(|c| c.len()) == Some(cairn_metadata::TOPIC_CONFIGS.len()),
        "{configs}"
    );
    ensure!(
        configs["compression.type"]["value"] == "zstd"
            && configs["segment.ms"]["value"] == "3600000"
            && configs["unclean.leader.election.enable"]["value"] == "false"
            && configs["unclean.leader.election.enable"]["default"] == true,
        "{configs}"
    );
    ensure!(
        configs["retention.ms"]["synonyms"]
            == serde_json::json!(["retention.ms", "log.retention.ms"]),
        "{}",
        configs["retention.ms"]
    );
    ensure!(
        configs["producer.id.expiration.ms"]["value"] == "86400000"
            && configs["producer.id.expiration.ms"]["default"] == true,
        "{configs}"
    );
    // A broker's configs: Cairn's node settings under Kafka's names.
    let broker = admin_ok(&b, &["describe-broker-configs", "2"])?;
    ensure!(
        broker["broker.id"]["value"] == "2"
            && broker["broker.id"]["read_only"] == true
            && broker["advertised.listeners"]["value"]
                == format!("PLAINTEXT://{}", cluster.specs[1].kafka)
            && broker["log.retention.ms"]["value"].as_str().is_some()
            && broker["producer.id.expiration.ms"]["value"] == "86400000",
        "{broker}"
    );

    admin_ok(
        &b,
        &[
            "alter-configs",
            "adm",
            "--set",
            "retention.bytes=1048576",
            "--set",
            "compression.type=lz4",
            "--delete",
            "retention.ms",
        ],
    )?;
    let t = client.describe_topic("adm").await?;
    ensure!(
        t.configs.get("retention.bytes").map(String::as_str) == Some("1048576"),
        "{:?}",
        t.configs
    );
    ensure!(!t.configs.contains_key("retention.ms"), "{:?}", t.configs);
    ensure!(
        t.configs.get("compression.type").map(String::as_str) == Some("lz4"),
        "{:?}",
        t.configs
    );
    ensure!(
        admin_err(&b, &["alter-configs", "adm", "--set", "no.such.key=1"])? == "INVALID_CONFIG"
    );
    // APPEND and SUBTRACT work on a list config's value (here the default,
    // delete), and only on list configs.
    admin_ok(
        &b,
        &["alter-configs", "adm", "--append", "cleanup.policy=compact"],
    )?;
    let policy = |t: &cairn_client::proto::TopicMetadata| {
        t.configs.get("cleanup.policy").cloned().unwrap_or_default()
    };
    let t = client.describe_topic("adm").await?;
    ensure!(policy(&t) == "delete,compact", "{:?}", t.configs);
    admin_ok(
        &b,
        &[
            "alter-configs",
            "adm",
            "--subtract",
            "cleanup.policy=delete",
        ],
    )?;
    let t = client.describe_topic("adm").await?;
    ensure!(policy(&t) == "compact", "{:?}", t.configs);
    // A record without a key on the compacted topic: INVALID_RECORD, as
    // Kafka answers (KIP-467), not the whole request refused.
    let keyless = kclient(
        "confluent",
        "produce",
        &b,
        "adm",
        &["--count", "1", "--keyless", "--config", "retries=0"],
    );
    let err = format!(
        "{:#}",
        keyless.err().context("a keyless record was accepted")?
    );
    ensure!(err.contains("INVALID_RECORD"), "{err}");
    ensure!(
        admin_err(&b, &["alter-configs", "adm", "--append", "retention.ms=5"])? == "INVALID_CONFIG"
    );

    ensure!(
        admin_err(&b, &["create-partitions", "adm", "--partitions", "2"])? == "INVALID_PARTITIONS"
    );

    let cl = admin_ok(&b, &["cluster"])?;
    ensure!(cl["brokers"] == serde_json::json!([1, 2, 3]), "{cl}");
    ensure!(
        cl["controller_id"]
            .as_i64()
            .is_some_and(|c| (1..=3).contains(&c)),
        "{cl}"
    );

    admin_ok(&b, &["delete", "adm"])?;
    ensure!(
        client.describe_topic("adm").await.is_err(),
        "topic still there after delete"
    );
    ensure!(admin_err(&b, &["delete", "adm"])? == "UNKNOWN_TOPIC_OR_PART");
    Ok(())
}

/// CreatePartitions through the AdminClient grows a topic 2 -> 5: the new
/// partitions get leaders, librdkafka's partitioner uses them, and every
/// record produced there is consumed once. Then `cairn topic add-partitions`
/// grows it to 6, and the refusals: a count that does not grow, an unknown
/// topic; validate_only changes nothing. Last, a manual replica assignment
/// of the new partitions, checked, then placed where asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_create_partitions_grows_a_topic() -> Result<()> {
    use crate::groups::cli_json;
    let cluster = TestCluster::start(3).await?;
    let client = cluster.client().await?;
    let b = cluster.kafka_bootstrap();
    admin_ok(&b, &["create", "grow", "--partitions", "2", "--rf", "3"])?;
    admin_ok(&b, &["create-partitions", "grow", "--partitions", "5"])?;
    cluster
        .wait_fully_replicated("grow", Duration::from_secs(30))
        .await?;
    let described = cli_json(&cluster, &["topic", "describe", "grow", "--format", "json"])?;
    let partitions = described["partitions"].as_array().context("partitions")?;
    ensure!(partitions.len() == 5, "{described}");
    let groups: std::collections::HashSet<u64> = partitions
        .iter()
        .filter_map(|p| p["raft_group"].as_u64())
        .collect();
    ensure!(groups.len() == 5, "raft groups shared: {described}");
    for p in partitions {
        ensure!(
            p["leader"].as_u64().is_some() && p["replicas"].as_array().map(Vec::len) == Some(3),
            "{p}"
        );
    }

    // Keyed records through librdkafka spread over all five partitions.
    let produced = kclient(
        "confluent",
        "produce",
        &b,
        "grow",
        &["--count", "300", "--prefix", "grow"],
    )?;
    ensure!(
        produced.len() == 300,
        "{} of 300 acknowledged",
        produced.len()
    );
    for r in &produced {
        let key = r.key.as_deref().context("key")?;
        ensure!(r.partition == partition_for_key(key.as_bytes(), 5), "{r:?}");
    }
    for p in 2..5 {
        ensure!(
            produced.iter().any(|r| r.partition == p),
            "nothing produced to new partition {p}"
        );
    }
    let consumed = kclient(
        "confluent",
        "consume",
        &b,
        "grow",
        &["--partitions", "0,1,2,3,4", "--expect", "300"],
    )?;
    check_consumed(&produced, &consumed)?;

    // The refusals change nothing.
    ensure!(
        admin_err(&b, &["create-partitions", "grow", "--partitions", "5"])? == "INVALID_PARTITIONS"
    );
    ensure!(
        admin_err(&b, &["create-partitions", "nope", "--partitions", "5"])?
            == "UNKNOWN_TOPIC_OR_PART"
    );
    admin_ok(
        &b,
        &[
            "create-partitions",
            "grow",
            "--partitions",
            "9",
            "--validate-only",
        ],
    )?;
    ensure!(client.describe_topic("grow").await?.partitions.len() == 5);

    // A Rust producer learns of added partitions once its metadata is older
    // than `metadata_max_age` (Kafka's metadata.max.age.ms).
    let max_age = Duration::from_millis(300);
    let rust = cairn_client::Client::connect_with(
        &cluster.bootstrap(),
        cairn_client::ClientConfig {
            metadata_max_age: max_age,
            ..cairn_client::ClientConfig::default()
        },
    )
    .await?;
    let keyed: Vec<OwnedRecord> = (0..100)
        .map(|i| OwnedRecord::with_key(format!("k{i}"), "v"))
        .collect();
    let lands_by_murmur2 = |outcomes: &[cairn_client::PartitionOutcome], n: u32| {
        outcomes.iter().all(|o| {
            o.result.is_ok()
                && o.record_indices
                    .iter()
                    .all(|&i| partition_for_key(format!("k{i}").as_bytes(), n) == o.partition)
        })
    };
    let before = rust.produce_records("grow", &keyed, Acks::All).await?;
    ensure!(lands_by_murmur2(&before, 5), "{before:?}");

    // The CLI, the gRPC door.
    let grown = cli_json(
        &cluster,
        &[
            "topic",
            "add-partitions",
            "grow",
            "--count",
            "6",
            "--format",
            "json",
        ],
    )?;
    ensure!(
        grown["partitions"].as_array().map(Vec::len) == Some(6),
        "{grown}"
    );
    ensure!(
        crate::groups::cli(
            &cluster,
            &["topic", "add-partitions", "grow", "--count", "3"]
        )?
        .status
        .code()
            != Some(0),
        "shrinking succeeded"
    );
    cluster
        .wait_fully_replicated("grow", Duration::from_secs(30))
        .await?;
    // The Rust producer's view of 5 partitions is older than its max age by
    // now; its next send asks again and spreads keys over all 6.
    tokio::time::sleep(max_age).await;
    let after = rust.produce_records("grow", &keyed, Acks::All).await?;
    ensure!(lands_by_murmur2(&after, 6), "{after:?}");
    ensure!(
        after.iter().any(|o| o.partition == 5),
        "nothing went to partition 5"
    );

    // A manual assignment of the new partitions' replicas (Kafka's): checked,
    // then placed where asked.
    for bad in ["1,1,2", "1,2", "1,2,9"] {
        let e = admin_err(
            &b,
            &[
                "create-partitions",
                "grow",
                "--partitions",
                "7",
                "--assign",
                bad,
            ],
        )?;
        ensure!(e == "INVALID_REPLICA_ASSIGNMENT", "{bad}: {e}");
    }
    admin_ok(
        &b,
        &[
            "create-partitions",
            "grow",
            "--partitions",
            "8",
            "--assign",
            "3,1,2;2,3,1",
        ],
    )?;
    let t = client.describe_topic("grow").await?;
    let placed: Vec<Vec<u64>> = t.partitions[6..]
        .iter()
        .map(|p| p.replicas.clone())
        .collect();
    ensure!(placed == vec![vec![3, 1, 2], vec![2, 3, 1]], "{placed:?}");
    Ok(())
}

/// ListOffsets (earliest, latest, by timestamp, with the leader epoch) and
/// DeleteRecords through the AdminClient, on batches written through gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_admin_client_lists_offsets_and_deletes_records() -> Result<()> {
    let cluster = TestCluster::start(3).await?;
    let client = cluster.client().await?;
    let b = cluster.kafka_bootstrap();
    client.create_topic("offsets", 1, 3, HashMap::new()).await?;
    // Five batches of ten records; batch i stamped 1000 * (i + 1) ms.
    for i in 0..5i64 {
        let mut batch = cairn_record::RecordBatchBuilder::new();
        for _ in 0..10 {
            batch.push(1000 * (i + 1), None, Some(b"v"), &[]);
        }
        client
            .produce("offsets", 0, batch.build(), Acks::All)
            .await?;
    }
    let list = |spec: &str| -> Result<Value> {
        kadmin(&b, &["list-offsets", "offsets", "0", spec])?.map_err(|e| anyhow::anyhow!("{e}"))
    };
    let term = client.describe_topic("offsets").await?.partitions[0].leader_epoch as i64;
    let latest = list("latest")?;
    ensure!(
        latest["offset"] == 50 && latest["leader_epoch"] == term,
        "{latest} (term {term})"
    );
    ensure!(list("earliest")?["offset"] == 0);
    let at = list("3000")?;
    ensure!(at["offset"] == 20 && at["timestamp"] == 3000, "{at}");

    // Below 25, as Kafka: the log starts at exactly 25, inside a batch.
    let deleted = kadmin(&b, &["delete-records", "offsets", "0", "25"])?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(deleted["low_watermark"] == 25, "{deleted}");
    ensure!(list("earliest")?["offset"] == 25);
    let f = client.fetch_records("offsets", 0, 25, 1 << 20, 0).await?;
    ensure!(
        f.log_start_offset == 25 && f.records.first().map(|r| r.offset) == Some(25),
        "{f:?}"
    );
    // Reading below it is out of range.
    ensure!(
        client
            .fetch_records("offsets", 0, 24, 1 << 20, 0)
            .await
            .is_err(),
        "a fetch below the log start must fail"
    );
    // A Kafka consumer (librdkafka) reading from the beginning gets 25..50:
    // nothing below the log start, though its batch begins at 20.
    let consumed = kclient(
        "confluent",
        "consume",
        &b,
        "offsets",
        &["--partitions", "0", "--expect", "25"],
    )?;
    ensure!(
        consumed.iter().map(|r| r.offset).eq(25..50),
        "{:?}",
        consumed.iter().map(|r| r.offset).collect::<Vec<_>>()
    );
    // Beyond the high watermark: OFFSET_OUT_OF_RANGE, as Kafka.
    let beyond = admin_err(&b, &["delete-records", "offsets", "0", "51"])?;
    ensure!(beyond.contains("OFFSET_OUT_OF_RANGE"), "{beyond}");
    // Up to the high watermark: everything.
    let deleted = kadmin(&b, &["delete-records", "offsets", "0", "50"])?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(deleted["low_watermark"] == 50, "{deleted}");
    Ok(())
}

/// Bytes that are no Kafka request close the connection they came on and
/// nothing else; an ApiVersions of an unknown version is answered with
/// UNSUPPORTED_VERSION and the versions Cairn speaks, as Kafka does. (The
/// malformed frames are written by hand: no client sends them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_bad_frames_close_only_their_connection() -> Result<()> {
    let cluster = TestCluster::start(1).await?;
    let addr = cluster.specs[0].kafka.clone();
    let closed = |bytes: &[u8]| -> Result<bool> {
        let mut s = TcpStream::connect(&addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(bytes)?;
        let mut buf = [0u8; 64];
        Ok(match s.read(&mut buf) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        })
    };
    // 2 GiB announced; a negative size; an unknown API key; garbage.
    ensure!(
        closed(&0x7fff_ffffu32.to_be_bytes())?,
        "oversized frame kept the connection"
    );
    ensure!(
        closed(&[0xff, 0xff, 0xff, 0xfe])?,
        "negative size kept the connection"
    );
    ensure!(
        closed(&[0, 0, 0, 10, 0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff])?,
        "unknown API kept"
    );
    ensure!(
        closed(&[0, 0, 0, 9, 0, 3, 0, 1, 0, 0, 0, 1, 0x42])?,
        "malformed Metadata kept"
    );

    // ApiVersions v99, correlation id 7: error 35 in a v0 answer.
    let mut s = TcpStream::connect(&addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(&[0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 7, 0xff, 0xff])?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size)?;
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    s.read_exact(&mut body)?;
    ensure!(
        body[..4] == 7i32.to_be_bytes(),
        "correlation id {:?}",
        &body[..4]
    );
    ensure!(body[4..6] == 35i16.to_be_bytes(), "error {:?}", &body[4..6]);

    // The broker still serves: metadata through a real client.
    let out = run(
        Command::new("kcat").args(["-b", &addr, "-L", "-J"]),
        "kcat -L",
    )?;
    let md: Value = serde_json::from_str(&out)?;
    ensure!(md["brokers"].as_array().map(Vec::len) == Some(1), "{md}");
    Ok(())
}

/// Reads a partition from its start to its high watermark through gRPC:
/// (offset, value) of every record.
async fn read_partition(
    client: &cairn_client::Client,
    topic: &str,
    partition: u32,
) -> Result<Vec<(i64, String)>> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    loop {
        let f = client
            .fetch_records(topic, partition, offset, 1 << 20, 0)
            .await?;
        for r in &f.records {
            let v = r.value.as_deref().map(String::from_utf8_lossy);
            out.push((r.offset, v.unwrap_or_default().into_owned()));
        }
        offset = f.next_offset;
        if offset >= f.high_watermark {
            return Ok(out);
        }
    }
}

/// Reads the producer's progress lines until it reports `want` acks (None)
/// or its final "done ..." line (Some), failing if it stalls for 2 minutes.
async fn wait_for_acks(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    acked: &mut usize,
    want: usize,
) -> Result<Option<String>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while *acked < want {
        let line = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .with_context(|| format!("producer stuck at {acked} acks, waiting for {want}"))?
            .context("producer exited early")?;
        if let Some(n) = line.strip_prefix("acked ") {
            *acked = n.parse()?;
        } else if line.starts_with("done") {
            return Ok(Some(line));
        }
    }
    Ok(None)
}

/// Issue 5: librdkafka with `enable.idempotence=true`, acks=all, streams
/// 20,000 records to one partition of an RF3 topic while the partition's
/// leader is killed (-9) and later restarted. Every acknowledged record is
/// in the partition exactly once, at the offset its delivery report named,
/// in the order it was produced; no value is there twice; no record fails.
/// A librdkafka consumer tails the partition throughout: across the leader
/// change (new leader epoch, its position validated with
/// OffsetForLeaderEpoch) it reads every record once, in order, never told
/// its offset is out of range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_idempotent_producer_survives_a_leader_kill() -> Result<()> {
    use std::io::BufRead;
    const COUNT: usize = 20_000;
    const KILL_AT: usize = 4_000;
    const RESTART_AFTER: usize = 3_000;
    let mut cluster = TestCluster::start(3).await?;
    let client = cluster.client().await?;
    let topic = "idem-failover";
    client.create_topic(topic, 1, 3, HashMap::new()).await?;
    cluster
        .wait_fully_replicated(topic, Duration::from_secs(30))
        .await?;

    let dir = tempfile::tempdir()?;
    let tailed = std::fs::File::create(dir.path().join("tailed.jsonl"))?;
    let tail_err = std::fs::File::create(dir.path().join("tail-stderr"))?;
    let mut tailer = Command::new(python()?)
        .arg(script("kclient.py"))
        .args([
            "confluent",
            "consume",
            "--bootstrap",
            &cluster.kafka_bootstrap(),
        ])
        .args(["--topic", topic, "--partitions", "0"])
        .args(["--expect", &COUNT.to_string(), "--timeout", "240"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(tailed))
        .stderr(Stdio::from(tail_err))
        .spawn()?;
    let reports = dir.path().join("reports.jsonl");
    let stderr = std::fs::File::create(dir.path().join("stderr"))?;
    let mut producer = Command::new(python()?)
        .arg(script("idem_produce.py"))
        .args(["--bootstrap", &cluster.kafka_bootstrap(), "--topic", topic])
        .args(["--partition", "0", "--count", &COUNT.to_string()])
        .args(["--rate", "2000", "--reports"])
        .arg(&reports)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = producer.stdout.take().context("stdout")?;
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The acknowledged count the producer last reported.
    let mut acked = 0usize;
    wait_for_acks(&mut rx, &mut acked, KILL_AT).await?;
    let leader = client.describe_topic(topic).await?.partitions[0]
        .leader
        .context("no leader")?;
    let victim = cluster.node_index(leader);
    cluster.kill(victim)?;
    let killed_at = acked;
    // The stream goes on through the new leader.
    wait_for_acks(&mut rx, &mut acked, killed_at + RESTART_AFTER).await?;
    cluster.start_node(victim)?;
    let done = wait_for_acks(&mut rx, &mut acked, usize::MAX).await?;
    let status = producer.wait()?;
    let stderr = std::fs::read_to_string(dir.path().join("stderr"))?;
    ensure!(
        status.success() && done.is_some(),
        "producer: {status}, {done:?}\n{}",
        tail(&stderr)
    );

    // What the producer was told.
    let mut acks: BTreeMap<u64, i64> = BTreeMap::new();
    let mut failures = Vec::new();
    for line in std::fs::read_to_string(&reports)?.lines() {
        let v: Value = serde_json::from_str(line)?;
        let value = v["value"].as_u64().context("value")?;
        match v["offset"].as_i64() {
            Some(o) => ensure!(acks.insert(value, o).is_none(), "{value} acked twice"),
            None => failures.push(line.to_string()),
        }
    }
    ensure!(
        failures.is_empty() && acks.len() == COUNT,
        "{} acked, {} failed: {:?}\nproducer stderr:\n{}",
        acks.len(),
        failures.len(),
        &failures[..failures.len().min(5)],
        tail(&stderr)
    );

    // What the partition holds.
    cluster
        .wait_fully_replicated(topic, Duration::from_secs(60))
        .await?;
    let stored = read_partition(&client, topic, 0).await?;
    let mut at: HashMap<u64, i64> = HashMap::new();
    for (offset, value) in &stored {
        let value: u64 = value.parse().with_context(|| format!("value {value:?}"))?;
        if let Some(first) = at.insert(value, *offset) {
            bail!("value {value} stored twice: at {first} and {offset}");
        }
    }
    for (value, offset) in &acks {
        ensure!(
            at.get(value) == Some(offset),
            "value {value} acknowledged at {offset}, stored at {:?}",
            at.get(value)
        );
    }
    // In producer order: acknowledged offsets grow with the value.
    let offsets: Vec<i64> = acks.values().copied().collect();
    ensure!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "acknowledged records out of producer order"
    );

    // The tailing consumer read exactly what is stored, once, in order.
    let tail_status = tailer.wait()?;
    let tail_stderr = std::fs::read_to_string(dir.path().join("tail-stderr"))?;
    let read = parse_records(&std::fs::read_to_string(dir.path().join("tailed.jsonl"))?)?;
    let read: Vec<(i64, String)> = read
        .into_iter()
        .map(|r| (r.offset, r.value.unwrap_or_default()))
        .collect();
    ensure!(
        tail_status.success() && read == stored,
        "tailing consumer ({tail_status}) read {} records, {} stored; first difference: {:?}\n{}",
        read.len(),
        stored.len(),
        read.iter().zip(&stored).find(|(a, b)| a != b),
        tail(&tail_stderr)
    );
    ensure!(
        !tail_stderr.contains("OFFSET_OUT_OF_RANGE") && !tail_stderr.contains("out of range"),
        "the consumer was told its offset is out of range:\n{}",
        tail(&tail_stderr)
    );
    eprintln!(
        "idempotent failover: killed node {leader} at {killed_at} acks; {} records stored, producer stderr:\n{}",
        stored.len(),
        tail(&stderr)
    );
    Ok(())
}

/// Dynamic broker configs through the AdminClient (IncrementalAlterConfigs
/// on BROKER resources): a cluster-wide default and one node's own value,
/// shown with Kafka's sources; the defaults they change take effect
/// (`message.max.bytes` refuses a larger batch at once, `log.retention.ms`
/// deletes old records of topics that do not set `retention.ms`); a
/// read-only config is refused with INVALID_CONFIG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_dynamic_broker_configs_take_effect() -> Result<()> {
    let cluster = TestCluster::new(3)?
        .with_env("CAIRN_RETENTION_CHECK_INTERVAL_MS", "300")
        .started_for_test()
        .await?;
    let client = cluster.client().await?;
    let b = cluster.kafka_bootstrap();
    client.create_topic("dyn", 1, 3, HashMap::new()).await?;
    let big = |ts: i64| {
        let mut batch = cairn_record::RecordBatchBuilder::new();
        batch.push(ts, None, Some(&[7u8; 4000][..]), &[]);
        batch.build()
    };
    client.produce("dyn", 0, big(1000), Acks::All).await?;

    eprintln!("--- a cluster-wide message.max.bytes of 2000 refuses a 4 KB batch");
    admin_ok(
        &b,
        &[
            "alter-broker-configs",
            "",
            "--set",
            "message.max.bytes=2000",
        ],
    )?;
    let refused = client.produce("dyn", 0, big(1000), Acks::All).await;
    ensure!(
        matches!(
            &refused,
            Err(cairn_client::ClientError::Server { code, .. })
                if *code == cairn_client::ErrorCode::MessageTooLarge
        ),
        "{refused:?}"
    );
    let broker = admin_ok(&b, &["describe-broker-configs", "2"])?;
    ensure!(
        broker["message.max.bytes"]["value"] == "2000"
            && broker["message.max.bytes"]["read_only"] == false
            // DYNAMIC_DEFAULT_BROKER_CONFIG
            && broker["message.max.bytes"]["source"] == "3"
            && broker["broker.id"]["read_only"] == true,
        "{broker}"
    );
    eprintln!("--- node 2's own value wins on node 2");
    admin_ok(
        &b,
        &[
            "alter-broker-configs",
            "2",
            "--set",
            "message.max.bytes=3000",
        ],
    )?;
    let broker = admin_ok(&b, &["describe-broker-configs", "2"])?;
    ensure!(
        broker["message.max.bytes"]["value"] == "3000"
            // DYNAMIC_BROKER_CONFIG
            && broker["message.max.bytes"]["source"] == "2",
        "{broker}"
    );
    // Node 1 has no value of its own: the cluster-wide one.
    let other = admin_ok(&b, &["describe-broker-configs", "1"])?;
    ensure!(other["message.max.bytes"]["value"] == "2000", "{other}");
    eprintln!("--- read-only configs and bad values are refused; nothing changes");
    let e = admin_err(&b, &["alter-broker-configs", "", "--set", "broker.id=9"])?;
    ensure!(e == "INVALID_CONFIG", "{e}");
    let e = admin_err(
        &b,
        &["alter-broker-configs", "", "--set", "log.retention.ms=soon"],
    )?;
    ensure!(e == "INVALID_CONFIG", "{e}");
    // The cluster-wide set becomes empty.
    admin_ok(&b, &["alter-broker-configs", ""])?;
    admin_ok(
        &b,
        &["alter-broker-configs", "2", "--delete", "message.max.bytes"],
    )?;
    client.produce("dyn", 0, big(1000), Acks::All).await?;

    eprintln!("--- a cluster-wide log.retention.ms deletes the 1970 records");
    client.produce("dyn", 0, big(2000), Acks::All).await?;
    let before = client.describe_topic("dyn").await?.partitions[0].log_start_offset;
    ensure!(before == 0, "log start {before}");
    admin_ok(
        &b,
        &[
            "alter-broker-configs",
            "",
            "--set",
            "log.retention.ms=60000",
        ],
    )?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let start = client.describe_topic("dyn").await?.partitions[0].log_start_offset;
        // Everything but the last batch (always kept) goes.
        if start == 2 {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "log start {start} after 30 s: the dynamic retention did not apply"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Runs tests/kafka/JavaAdmin.java (compiled by the caller): its JSON line.
fn java_admin(run_path: &str, bootstrap: &str, args: &[&str]) -> Result<Value> {
    let out = Command::new("java")
        .arg("-cp")
        .arg(run_path)
        .arg("JavaAdmin")
        .args(["--bootstrap", bootstrap])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run java JavaAdmin")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("{}")).with_context(|| {
        format!(
            "JavaAdmin {args:?} printed {stdout:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A valid value of `def` that is not its default.
fn other_value(def: &cairn_metadata::topic_configs::ConfigDef) -> String {
    use cairn_metadata::topic_configs::Check;
    let v = match def.check {
        Check::AtLeast(lo) => (lo.max(0) + 777).to_string(),
        Check::Between(lo, hi) => {
            if def.default == lo.to_string() {
                hi.to_string()
            } else {
                lo.to_string()
            }
        }
        Check::Fraction => "0.25".into(),
        Check::Bool => (def.default != "true").to_string(),
        Check::OneOf([]) => format!("x{}", def.default),
        Check::OneOf(list) | Check::ListOf(list) => list
            .iter()
            .find(|v| **v != def.default)
            .map(|v| v.to_string())
            .unwrap_or_default(),
        Check::ThrottledReplicas => "*".into(),
    };
    assert!(def.validate(&v).is_ok(), "{}={v}", def.key);
    v
}

/// Issue 15, with the Java admin client (Kafka's reference implementation;
/// tests/kafka/JavaAdmin.java): every topic config Kafka defines round-trips
/// (created with a non-default value, described back as set by the topic,
/// deleted back to its default), APPEND and SUBTRACT work on a list config,
/// a dynamic broker config is set and deleted, and a node's log levels
/// change while it runs (BROKER_LOGGER: described, SET, DELETEd back to
/// the root's; a bad level or removing the root's refused). And a topic's
/// `compression.type` is applied on the broker side: batches are stored
/// with the topic's codec whatever the producer used, records unchanged.
/// The Java parts are skipped, saying so, without a JDK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_java_admin_configs_loggers_and_compression_type() -> Result<()> {
    use cairn_record::Compression;
    let cluster = TestCluster::start(1).await?;
    let client = cluster.client().await?;
    let b = cluster.kafka_bootstrap();

    if let Some((_classes, run_path)) = compile_java("JavaAdmin.java")? {
        let java = |args: &[&str]| -> Result<Value> {
            let v = java_admin(&run_path, &b, args)?;
            ensure!(v.get("error").is_none(), "JavaAdmin {args:?}: {v}");
            Ok(v)
        };

        eprintln!("--- every topic config round-trips");
        let set: Vec<(String, String)> = cairn_metadata::TOPIC_CONFIGS
            .iter()
            .map(|d| (d.key.to_string(), other_value(d)))
            .collect();
        let mut args = vec!["topic-configs".to_string(), "every-config".to_string()];
        args.extend(set.iter().map(|(k, v)| format!("{k}={v}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = java(&args)?;
        for (k, v) in &set {
            let created = &r["created"][k];
            ensure!(
                created["value"] == v.as_str() && created["source"] == "DYNAMIC_TOPIC_CONFIG",
                "{k}: set to {v}, described as {created}"
            );
            let deleted = &r["deleted"][k];
            let def = cairn_metadata::topic_config_def(k).context("a def")?;
            ensure!(
                deleted["source"] != "DYNAMIC_TOPIC_CONFIG"
                    && (def.synonym.is_some() || deleted["value"] == def.default),
                "{k}: deleted, described as {deleted} (default {})",
                def.default
            );
        }
        ensure!(
            r["appended"] == "delete,compact" && r["subtracted"] == "compact",
            "APPEND/SUBTRACT: {r}"
        );

        eprintln!("--- a dynamic broker config, set and deleted");
        let r = java(&["broker-config", "1", "message.max.bytes", "2000000"])?;
        ensure!(
            r["set"]["value"] == "2000000"
                && r["set"]["source"] == "DYNAMIC_BROKER_CONFIG"
                && r["deleted"]["source"] != "DYNAMIC_BROKER_CONFIG",
            "{r}"
        );

        eprintln!("--- log levels");
        let loggers = &java(&["loggers", "describe", "1"])?["loggers"];
        ensure!(
            loggers["root"] == "INFO" && loggers["cairn_raft"] == "INFO",
            "{loggers}"
        );
        // A refused produce (a keyless record on a compacted topic) is
        // logged at DEBUG by the Kafka door: not at INFO, and then, once
        // its logger says DEBUG.
        admin_ok(
            &b,
            &["create", "levels", "--config", "cleanup.policy=compact"],
        )?;
        let logged = |needle: &str| -> Result<bool> {
            Ok(std::fs::read_to_string(cluster.log_path(0))?.contains(needle))
        };
        let kafka_produce = |prefix: &str| -> Result<()> {
            // Refused, as it must be: the outcome is in the node's log.
            let _ = Command::new(python()?)
                .arg(script("kclient.py"))
                .args([
                    "confluent",
                    "produce",
                    "--bootstrap",
                    &b,
                    "--topic",
                    "levels",
                ])
                .args(["--count", "1", "--keyless", "--prefix", prefix])
                .stdin(Stdio::null())
                .output()?;
            Ok(())
        };
        kafka_produce("before")?;
        ensure!(
            !logged("kafka produce refused")?,
            "a DEBUG line was logged at INFO"
        );
        java(&["loggers", "set", "1", "cairn_server::kafka::produce=DEBUG"])?;
        let loggers = &java(&["loggers", "describe", "1"])?["loggers"];
        ensure!(
            loggers["cairn_server::kafka::produce"] == "DEBUG" && loggers["root"] == "INFO",
            "{loggers}"
        );
        kafka_produce("after")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !logged("kafka produce refused")? {
            ensure!(
                std::time::Instant::now() < deadline,
                "no DEBUG line after the logger was set to DEBUG"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        java(&["loggers", "delete", "1", "cairn_server::kafka::produce"])?;
        let loggers = &java(&["loggers", "describe", "1"])?["loggers"];
        ensure!(
            loggers.get("cairn_server::kafka::produce").is_none(),
            "the logger is back to the root's: {loggers}"
        );
        for bad in [
            &["loggers", "set", "1", "cairn_raft=LOUD"][..],
            &["loggers", "delete", "1", "root"][..],
        ] {
            let r = java_admin(&run_path, &b, bad)?;
            ensure!(
                r["error"] == "InvalidConfigurationException",
                "{bad:?}: {r}"
            );
        }
    }

    eprintln!("--- compression.type: the topic's codec, whatever the producer's");
    for (topic, codec, produced) in [
        ("zstd-topic", Compression::Zstd, Compression::None),
        ("plain-topic", Compression::None, Compression::Gzip),
    ] {
        let value = if codec == Compression::Zstd {
            "zstd"
        } else {
            "uncompressed"
        };
        admin_ok(
            &b,
            &[
                "create",
                topic,
                "--config",
                &format!("compression.type={value}"),
            ],
        )?;
        let mut batch = cairn_record::RecordBatchBuilder::new().with_compression(produced);
        for i in 0..10i64 {
            let v = format!("value {i} {}", "z".repeat(50));
            batch.push(1_000 + i, Some(b"k"), Some(v.as_bytes()), &[]);
        }
        let sent = batch.build();
        let (_, want) = cairn_record::decode_batch(&sent)?;
        client.produce(topic, 0, sent, Acks::All).await?;
        let fetched = client.fetch(topic, 0, 0, 1 << 20, 0).await?;
        let (header, got) = cairn_record::decode_batch(&fetched.records)?;
        ensure!(
            header.compression() == codec,
            "{topic}: stored as {:?}, not {codec:?}",
            header.compression()
        );
        ensure!(got == want, "{topic}: records changed");
    }
    Ok(())
}
