//! Reliability finding 5, found by the CI fault run (power loss, then a
//! restart): two replicas of a partition disagreed on an offset, and an
//! acknowledged record was missing from one of them.
//!
//! A leader sends entries to its followers before its own fsync. Lose power
//! on it and it may come back without entries a follower kept. openraft's
//! default lets a restarted leader resume in its old term; it then writes
//! new entries under log ids (index, term) a follower already holds with
//! other contents, the follower takes them as already present, and the two
//! logs differ where Raft's log-matching check cannot see it. Now a
//! restarted leader must win an election in a new term first.
//!
//! Scripted: the leader's disk is held (its fsyncs wait), so an entry is
//! acknowledged by the two followers alone; one follower is frozen so the
//! other cannot elect anyone alone; the leader loses power and restarts at
//! once; a record is written; then the leader is killed and what the
//! followers hold is read. Every acknowledged record must be there, once.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use cairn_client::Acks;
use cairn_record::RecordBatchBuilder;

use crate::cluster::TestCluster;
use crate::workload::read_all;

fn batch(value: &str) -> bytes::Bytes {
    let mut b = RecordBatchBuilder::new();
    b.push(1_700_000_000_000, None, Some(value.as_bytes()), &[]);
    b.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_that_lost_its_tail_never_reuses_log_ids() -> Result<()> {
    let mut cluster = TestCluster::start_for_fault_injection(3).await?;
    let client = cluster.client().await?;
    client.create_topic("t", 1, 3, HashMap::new()).await?;
    cluster
        .wait_fully_replicated("t", Duration::from_secs(30))
        .await?;
    let mut acked = Vec::new();
    let mut produce = |value: &'static str| {
        let client = client.clone();
        acked.push(value);
        async move { client.produce("t", 0, batch(value), Acks::All).await }
    };
    produce("r0").await?;
    let leader = client.describe_topic("t").await?.partitions[0]
        .leader
        .ok_or_else(|| anyhow!("no leader"))?;
    let l = cluster.node_index(leader);
    // One of the two followers.
    let c = (l + 1) % 3;

    eprintln!(
        "--- hold node {leader}'s disk: the next record is acknowledged by its followers alone"
    );
    let hold = cluster.data_dir(l).join(cairn_server::HOLD_SYNC_FILE);
    std::fs::write(&hold, b"")?;
    let y = produce("y").await?;
    eprintln!("y acknowledged at offset {}", y.base_offset);

    eprintln!("--- freeze one follower, power loss of the leader, restart it at once");
    cluster.signal(c, "-STOP")?;
    cluster.kill(l)?;
    std::fs::remove_file(&hold)?;
    cluster.start_node(l)?;

    let x = produce("x").await?;
    eprintln!("x acknowledged at offset {}", x.base_offset);
    ensure!(
        x.base_offset != y.base_offset,
        "x and y were both acknowledged at offset {}",
        x.base_offset
    );
    produce("z1").await?;
    produce("z2").await?;

    eprintln!("--- thaw the follower, kill the old leader, read what the others hold");
    cluster.signal(c, "-CONT")?;
    cluster
        .wait_fully_replicated("t", Duration::from_secs(30))
        .await?;
    cluster.kill(l)?;
    let read = read_all(&client, "t", 1).await?;
    let values: Vec<&str> = read[0].iter().map(|(_, v)| v.as_str()).collect();
    for value in &acked {
        let n = values.iter().filter(|v| *v == value).count();
        ensure!(
            n == 1,
            "acknowledged record {value} read {n} times; partition holds {:?}",
            read[0]
        );
    }
    Ok(())
}
