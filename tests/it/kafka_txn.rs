//! Reliability finding 9: transactional clients hung instead of failing.
//! Until Cairn has transactions, a FindCoordinator for a transactional id
//! must get an error the clients treat as fatal, at once; the answer before
//! (COORDINATOR_NOT_AVAILABLE) is retriable, so librdkafka's
//! `init_transactions` ran into its timeout and the Java client's
//! `initTransactions` blocked for its whole `max.block.ms`.

use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use crate::cluster::TestCluster;
use crate::kafka::{python, script};

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
