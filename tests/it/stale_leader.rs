//! Issue 3 regression, found by the CI fault run (leader isolation): a
//! deposed leader that had not yet heard of its successor answered fetches
//! with its stale high watermark, so a consumer draining the partition
//! stopped short of records acknowledged meanwhile ("unseen" in the
//! checker). Reads now need a live leader lease; a stale one is renewed,
//! which deposes such a leader, and the reader is sent elsewhere.
//!
//! Scripted with SIGSTOP: the frozen leader misses an election and the
//! writes after it; right after SIGCONT it is asked directly.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, ensure, Result};
use cairn_client::proto::cairn_client::CairnClient;
use cairn_client::proto::FetchRequest;
use cairn_client::Acks;
use cairn_record::RecordBatchBuilder;

use crate::cluster::TestCluster;

fn batch() -> bytes::Bytes {
    let mut b = RecordBatchBuilder::new();
    b.push(1_700_000_000_000, None, Some(b"v"), &[]);
    b.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_serves_no_stale_reads() -> Result<()> {
    let cluster = TestCluster::start(3).await?;
    let client = cluster.client().await?;
    client.create_topic("t", 1, 3, HashMap::new()).await?;
    cluster
        .wait_fully_replicated("t", Duration::from_secs(30))
        .await?;
    client.produce("t", 0, batch(), Acks::All).await?;
    let old = client.describe_topic("t").await?.partitions[0]
        .leader
        .ok_or_else(|| anyhow::anyhow!("no leader"))?;
    let i = cluster.node_index(old);
    let old_addr = cluster.bootstrap()[i].clone();
    // Connect first: the frozen node cannot accept a connection.
    let mut direct = CairnClient::connect(format!("http://{old_addr}")).await?;

    eprintln!("--- freeze node {old}, the leader; the others elect anew and take 20 writes");
    cluster.signal(i, "-STOP")?;
    let mut written = 1;
    for _ in 0..20 {
        client.produce("t", 0, batch(), Acks::All).await?;
        written += 1;
    }

    eprintln!("--- thaw node {old} and fetch from it at once");
    cluster.signal(i, "-CONT")?;
    let fetched = direct
        .fetch(FetchRequest {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            max_bytes: 1 << 20,
            max_wait_ms: 0,
        })
        .await;
    match fetched {
        Ok(r) => {
            let hw = r.into_inner().high_watermark;
            ensure!(
                hw >= written,
                "node {old} answered a fetch with high watermark {hw}, but {written} records are acknowledged"
            );
        }
        Err(status) => {
            let code = status
                .metadata()
                .get(cairn_client::ERROR_CODE_KEY)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            if !matches!(
                code.as_str(),
                "LEADER_NOT_AVAILABLE" | "NOT_LEADER" | "10" | "1"
            ) {
                bail!("unexpected answer from node {old}: {status:?}");
            }
        }
    }
    // Either way the partition serves every record through the client.
    let got = client.fetch_records("t", 0, 0, 1 << 20, 0).await?;
    ensure!(
        got.high_watermark >= written,
        "high watermark {}",
        got.high_watermark
    );
    Ok(())
}
