//! Issue 2: reconciling replicas with the assignment — a partition moved to
//! another node set keeps every record, and the node left out drops its copy.

use std::collections::HashMap;
use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use anyhow::ensure;
use anyhow::Result;
use cairn_client::Acks;
use cairn_client::OwnedRecord;

use crate::cluster::metric;
use crate::cluster::TestCluster;

use crate::workload;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassigned_partition_moves_with_all_its_records() -> Result<()> {
    let mut cluster = TestCluster::new(4)?.with_voters(3);
    for i in 0..4 {
        cluster.start_node(i)?;
    }
    cluster.wait_ready(Duration::from_secs(30)).await?;
    let client = cluster.client().await?;
    client.create_topic("moving", 1, 3, HashMap::new()).await?;
    cluster
        .wait_fully_replicated("moving", Duration::from_secs(30))
        .await?;
    let before = client.describe_topic("moving").await?.partitions[0]
        .replicas
        .clone();
    let outside = (1..=4u64)
        .find(|n| !before.contains(n))
        .expect("a node without the partition");
    let leaving = before[0];
    let mut after: Vec<u64> = before.iter().copied().filter(|n| *n != leaving).collect();
    after.push(outside);

    let records: Vec<OwnedRecord> = (0..300)
        .map(|i| OwnedRecord::from_value(format!("before-{i:03}")))
        .collect();
    for o in client
        .produce_records("moving", &records, Acks::All)
        .await?
    {
        o.result?;
    }

    eprintln!("--- move the partition from {before:?} to {after:?}");
    client.reassign_partition("moving", 0, &after).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = client.describe_topic("moving").await?.partitions[0].clone();
        let mut healthy = p.healthy_replicas.clone();
        healthy.sort_unstable();
        let mut want = after.clone();
        want.sort_unstable();
        if p.leader.is_some() && healthy == want && p.replicas == after {
            break;
        }
        if Instant::now() > deadline {
            bail!("partition never settled on {after:?}: {p:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    eprintln!("--- the data is all there, and writes go on");
    let more: Vec<OwnedRecord> = (0..100)
        .map(|i| OwnedRecord::from_value(format!("after-{i:03}")))
        .collect();
    for o in client.produce_records("moving", &more, Acks::All).await? {
        o.result?;
    }
    let read = workload::read_all(&client, "moving", 1).await?;
    let values: Vec<&str> = read[0].iter().map(|(_, v)| v.as_str()).collect();
    ensure!(values.len() == 400, "read {} records", values.len());
    ensure!(values[..300]
        .iter()
        .enumerate()
        .all(|(i, v)| *v == format!("before-{i:03}")));
    ensure!(values[300..]
        .iter()
        .enumerate()
        .all(|(i, v)| *v == format!("after-{i:03}")));

    eprintln!("--- node {leaving} was left out: it drops its replica");
    let admin = cluster.specs[cluster.node_index(leaving)].admin.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&admin, "cairn_partition_replicas")? != 0.0 {
        ensure!(
            Instant::now() < deadline,
            "node {leaving} still holds the replica"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    eprintln!("--- killing node {leaving} changes nothing");
    cluster.kill(cluster.node_index(leaving))?;
    let read = workload::read_all(&client, "moving", 1).await?;
    ensure!(read[0].len() == 400);
    Ok(())
}
