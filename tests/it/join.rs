//! Issue 2: a node started with `--join` becomes a data node: it is
//! registered, gets replicas of new topics, and serves as their leader.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::ensure;
use anyhow::Result;
use cairn_client::OwnedRecord;

use crate::cluster::TestCluster;
use crate::workload;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_node_takes_replicas_and_serves() -> Result<()> {
    eprintln!("--- 3 voters, then node 4 joins through node 1");
    let mut cluster = TestCluster::new(4)?.with_voters(3);
    for i in 0..3 {
        cluster.start_node(i)?;
    }
    cluster.wait_ready(Duration::from_secs(30)).await?;
    cluster.start_node(3)?;
    cluster.wait_ready(Duration::from_secs(30)).await?;
    let client = cluster.client().await?;
    let status = client.cluster_status().await?;
    let joined = status
        .nodes
        .iter()
        .find(|n| n.id == 4)
        .expect("node 4 registered");
    ensure!(joined.alive && !joined.metadata_voter, "node 4: {joined:?}");

    eprintln!("--- a new topic spreads over all four nodes");
    let topic = client.create_topic("joined", 8, 3, HashMap::new()).await?;
    let on_4 = topic
        .partitions
        .iter()
        .filter(|p| p.replicas.contains(&4))
        .count();
    ensure!(
        on_4 == 6,
        "node 4 holds {on_4} of 24 replicas, want an even 6"
    );
    cluster
        .wait_fully_replicated("joined", Duration::from_secs(30))
        .await?;

    let records: Vec<OwnedRecord> = (0..400)
        .map(|i| OwnedRecord::with_key(format!("k{i}"), format!("v{i}")))
        .collect();
    for outcome in client
        .produce_records("joined", &records, cairn_client::Acks::All)
        .await?
    {
        outcome.result?;
    }
    let read = workload::read_all(&client, "joined", 8).await?;
    ensure!(read.iter().map(Vec::len).sum::<usize>() == 400);
    Ok(())
}
