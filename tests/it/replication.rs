//! Issue 2: acknowledged writes survive a leader kill -9 and a whole-cluster
//! restart; a killed node catches up.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::ensure;
use anyhow::Result;

use crate::cluster::TestCluster;
use crate::workload;

const TOPIC: &str = "events";
const PARTITIONS: u32 = 6;
const RECORDS: u64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acked_records_survive_leader_kill_and_full_restart() -> Result<()> {
    eprintln!("--- start 3 nodes, create {TOPIC} with {PARTITIONS} partitions RF3");
    let mut cluster = TestCluster::start(3).await?;
    let client = cluster.client().await?;
    client
        .create_topic(TOPIC, PARTITIONS, 3, HashMap::new())
        .await?;
    cluster
        .wait_fully_replicated(TOPIC, Duration::from_secs(30))
        .await?;

    eprintln!("--- produce {RECORDS} records acks=all from 8 concurrent producers");
    let progress = Arc::new(AtomicU64::new(0));
    let producing = {
        let client = client.clone();
        let progress = progress.clone();
        tokio::spawn(async move {
            workload::produce(&client, TOPIC, PARTITIONS, 8, RECORDS, 100, progress).await
        })
    };

    let deadline = Instant::now() + Duration::from_secs(120);
    while progress.load(Ordering::Relaxed) < RECORDS * 3 / 10 {
        ensure!(
            Instant::now() < deadline,
            "producers made too little progress"
        );
        ensure!(!producing.is_finished(), "producers stopped early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = client.describe_topic(TOPIC).await?;
    let leader = before.partitions[0]
        .leader
        .expect("partition 0 has a leader");
    let epoch_before = before.partitions[0].leader_epoch;
    eprintln!(
        "--- kill -9 node {leader}, the leader of {TOPIC}/0, at {} acked",
        progress.load(Ordering::Relaxed)
    );
    let killed = cluster.node_index(leader);
    cluster.kill(killed)?;

    let history = producing.await??;
    eprintln!(
        "--- producers done: {} acked, {} batches unacknowledged, {} batches retried, {} duplicates caught by the server",
        history.acked_records(),
        history.failed.len(),
        history.retried_batches,
        history.duplicates_reported
    );
    ensure!(
        history.failed.is_empty(),
        "producers gave up on {} batches",
        history.failed.len()
    );
    ensure!(history.acked_records() as u64 == RECORDS);

    let after = client.describe_topic(TOPIC).await?;
    let new_leader = after.partitions[0]
        .leader
        .expect("partition 0 has a new leader");
    ensure!(
        new_leader != leader,
        "partition 0 still led by the killed node {leader}"
    );
    ensure!(
        after.partitions[0].leader_epoch > epoch_before,
        "leader epoch did not advance"
    );

    eprintln!("--- every acknowledged record is there exactly once, in order");
    workload::check(
        &history,
        &workload::read_all(&client, TOPIC, PARTITIONS).await?,
    )?;

    eprintln!("--- restart node {leader}: it catches up and the topic is fully replicated again");
    cluster.start_node(killed)?;
    cluster
        .wait_fully_replicated(TOPIC, Duration::from_secs(60))
        .await?;

    eprintln!("--- kill -9 the whole cluster and restart it");
    cluster.kill_all()?;
    for i in 0..3 {
        cluster.start_node(i)?;
    }
    cluster.wait_ready(Duration::from_secs(30)).await?;
    cluster
        .wait_fully_replicated(TOPIC, Duration::from_secs(60))
        .await?;
    let client = cluster.client().await?;
    let topics = client.list_topics().await?;
    ensure!(
        topics.iter().any(|t| t.name == TOPIC),
        "topic missing after restart"
    );
    workload::check(
        &history,
        &workload::read_all(&client, TOPIC, PARTITIONS).await?,
    )?;
    Ok(())
}
