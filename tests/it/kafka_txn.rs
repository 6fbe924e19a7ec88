//! Reliability finding 9: transactional clients hung instead of failing.
//! Until Cairn has transactions, a FindCoordinator for a transactional id
//! must get an error the clients treat as fatal, at once; the answer before
//! (COORDINATOR_NOT_AVAILABLE) is retriable, so librdkafka's
//! `init_transactions` ran into its timeout and the Java client's
//! `initTransactions` blocked for its whole `max.block.ms`. Checked with
//! librdkafka, kafka-python and aiokafka (tests/kafka/ktxn.py) and with the
//! Java client (tests/kafka/JavaTxn.java, jars from
//! `cluster/install-kafka-clients`; skipped without a JDK).

use std::collections::HashMap;
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};
use cairn_record::RecordBatchHeader;
use serde_json::Value;

use crate::cluster::TestCluster;
use crate::kafka::{compile_java, python, script};

/// Each client's `init_transactions` (librdkafka: `init_transactions`,
/// kafka-python: `init_transactions`, aiokafka: `start`) with a 30 s limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_transactional_producers_fail_at_once() -> Result<()> {
    let cluster = TestCluster::start(1).await?;
    let bootstrap = cluster.kafka_bootstrap();
    for lib in ["confluent", "kafka-python", "aiokafka"] {
        let out = Command::new(python()?)
            .arg(script("ktxn.py"))
            .args([lib, "--bootstrap", &bootstrap, "--timeout", "30"])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run ktxn.py {lib}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))
            .with_context(|| {
                format!(
                    "ktxn.py {lib} printed {stdout:?}; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
        eprintln!("{line}");
        ensure!(
            line["ok"] == Value::Bool(false),
            "{lib}: initialising transactions did not fail: {line}"
        );
        let seconds = line["seconds"].as_f64().unwrap_or(f64::MAX);
        ensure!(
            seconds < 10.0,
            "{lib}: took {seconds:.1} s to fail (a retriable answer makes it wait out its timeout): {line}"
        );
        let error = line["error"].as_str().unwrap_or_default();
        ensure!(
            error
                .to_ascii_uppercase()
                .contains("TRANSACTIONAL_ID_AUTHORIZATION")
                || error.contains("TransactionalIdAuthorization"),
            "{lib}: failed, but not with TRANSACTIONAL_ID_AUTHORIZATION_FAILED: {line}"
        );
        if lib == "confluent" {
            ensure!(
                line["fatal"] == Value::Bool(true),
                "librdkafka must see a fatal error: {line}"
            );
        }
    }
    Ok(())
}

/// The Java client (kafka-clients 4.3, Kafka's reference implementation;
/// tests/kafka/JavaTxn.java, compiled here): `initTransactions` with a 30 s
/// `max.block.ms` must fail within 5 s with TransactionalIdAuthorization,
/// and an idempotent (not transactional) producer on the same node must
/// still get a record acknowledged, written under its producer id.
/// Skipped, saying so, on a machine without a JDK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_java_transactional_producer_fails_at_once() -> Result<()> {
    let Some((_classes, run_path)) = compile_java("JavaTxn.java")? else {
        return Ok(());
    };

    let cluster = TestCluster::start(1).await?;
    let client = cluster.client().await?;
    let topic = "java-idempotent";
    client.create_topic(topic, 1, 1, HashMap::new()).await?;
    let out = Command::new("java")
        .arg("-cp")
        .arg(&run_path)
        .arg("JavaTxn")
        .args(["--bootstrap", &cluster.kafka_bootstrap()])
        .args(["--topic", topic, "--timeout-ms", "30000"])
        .stdin(Stdio::null())
        .output()
        .context("run java JavaTxn")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("{}")).with_context(|| {
            format!(
                "JavaTxn printed {stdout:?} ({}); stderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    eprintln!("{line}");

    let txn = &line["transactional"];
    ensure!(
        txn["ok"] == Value::Bool(false),
        "java: initTransactions did not fail: {line}"
    );
    let seconds = txn["seconds"].as_f64().unwrap_or(f64::MAX);
    ensure!(
        seconds < 5.0,
        "java: took {seconds:.1} s to fail (a retriable answer makes it wait out max.block.ms): {line}"
    );
    // The exception itself or one it wraps.
    let causes = txn["causes"].as_array().cloned().unwrap_or_default();
    ensure!(
        causes.iter().any(|c| c["exception"]
            == "org.apache.kafka.common.errors.TransactionalIdAuthorizationException"),
        "java: failed, but not with TransactionalIdAuthorizationException: {line}"
    );

    let idem = &line["idempotent"];
    ensure!(
        idem["ok"] == Value::Bool(true),
        "java: the idempotent producer's send was not acknowledged: {line}"
    );
    ensure!(
        idem["partition"] == 0,
        "java: acknowledged for another partition: {line}"
    );
    let offset = idem["offset"]
        .as_u64()
        .with_context(|| format!("java: no offset acknowledged: {line}"))?;
    let value = idem["value"].as_str().context("value")?;
    // The record is there, at the acknowledged offset, in a batch stamped
    // with the producer id InitProducerId gave it and sequence 0.
    let fetched = client.fetch(topic, 0, offset, 1 << 20, 0).await?;
    let header = RecordBatchHeader::parse(&fetched.records)
        .with_context(|| format!("no batch at offset {offset}"))?;
    ensure!(
        header.base_offset as u64 == offset && header.producer_id >= 0 && header.base_sequence == 0,
        "java: the batch at offset {offset} is not an idempotent producer's first: {header:?}"
    );
    let records = client.fetch_records(topic, 0, offset, 1 << 20, 0).await?;
    let got: Vec<_> = records
        .records
        .iter()
        .map(|r| (r.offset, r.value.as_deref().map(String::from_utf8_lossy)))
        .collect();
    ensure!(
        got == [(offset as i64, Some(value.into()))],
        "java: partition 0 from offset {offset} holds {got:?}, not the value sent ({value})"
    );
    Ok(())
}
