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
    let cluster = three_voters_then_a_joiner().await?;
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

/// Issue 12 (node removal): `cairn node decommission` drains a joined node
/// under load and removes it; no acknowledged record is lost, no replica is
/// placed on it again, and its id can never join again (a wiped node under
/// a removed id would otherwise vote with an empty log). A metadata voter
/// cannot be decommissioned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decommissioned_node_is_drained_under_load_removed_and_never_rejoins() -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use crate::groups::cli;

    let mut cluster = three_voters_then_a_joiner().await?;
    let client = cluster.client().await?;
    let topic = client.create_topic("drain", 4, 3, HashMap::new()).await?;
    let on_4 = topic
        .partitions
        .iter()
        .filter(|p| p.replicas.contains(&4))
        .count();
    ensure!(on_4 == 3, "node 4 holds {on_4} of 4 partitions, want 3");
    cluster
        .wait_fully_replicated("drain", Duration::from_secs(30))
        .await?;

    eprintln!("--- node 4 with an empty data dir cannot come back under its id");
    cluster.kill(3)?;
    let kept = cluster.data_dir(3).with_extension("kept");
    std::fs::rename(cluster.data_dir(3), &kept)?;
    cluster.start_node(3)?;
    let code = wait_exit(&mut cluster, 3).await?;
    ensure!(code != 0, "node 4 exited with {code}");
    let log = cluster.logs_tail(40);
    ensure!(log.contains("another data directory"), "{log}");
    cluster.reap(3);
    std::fs::remove_dir_all(cluster.data_dir(3))?;
    std::fs::rename(&kept, cluster.data_dir(3))?;
    cluster.start_node(3)?;
    cluster
        .wait_fully_replicated("drain", Duration::from_secs(30))
        .await?;

    eprintln!("--- a metadata voter cannot be decommissioned");
    let refused = client.decommission_node(1).await;
    ensure!(
        matches!(&refused, Err(e) if e.code() == Some(cairn_client::ErrorCode::NodeInUse)),
        "decommissioning voter 1: {refused:?}"
    );
    let refused = client.remove_node(4).await;
    ensure!(
        matches!(&refused, Err(e) if e.code() == Some(cairn_client::ErrorCode::NodeInUse)),
        "removing node 4 before a decommission: {refused:?}"
    );

    eprintln!("--- decommission node 4 while producers write (acks=all)");
    let progress = Arc::new(AtomicU64::new(0));
    let load = {
        let client = client.clone();
        let progress = progress.clone();
        tokio::spawn(
            async move { workload::produce(&client, "drain", 4, 2, 6_000, 20, progress).await },
        )
    };
    while progress.load(Ordering::Relaxed) < 500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = tokio::task::spawn_blocking({
        let bootstrap = cluster.bootstrap().join(",");
        move || {
            std::process::Command::new(crate::cluster::cairn_bin())
                .args(["node", "decommission", "4", "--timeout-s", "120"])
                .args(["--format", "json", "--bootstrap", &bootstrap])
                .output()
        }
    })
    .await??;
    ensure!(
        out.status.success(),
        "decommission failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        cluster.logs_tail(30)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    ensure!(result["removed"] == true, "{result}");
    ensure!(
        result["moves"].as_array().map(Vec::len) == Some(3),
        "{result}"
    );
    let history = load.await??;
    eprintln!(
        "--- {} records acknowledged; node 4 removed after {} s",
        history.acked_records(),
        result["seconds"]
    );

    // The operator stops a removed node (it no longer follows the metadata,
    // so it would answer from its last view).
    cluster.kill(3)?;
    let status = client.cluster_status().await?;
    ensure!(
        status.nodes.iter().all(|n| n.id != 4) && status.removed_nodes == vec![4],
        "node 4 still listed: {status:?}"
    );
    let topic = client.describe_topic("drain").await?;
    for p in &topic.partitions {
        ensure!(
            !p.replicas.contains(&4) && !p.voters.contains(&4),
            "partition {} still on node 4: {p:?}",
            p.partition
        );
    }
    let read = workload::read_all(&client, "drain", 4).await?;
    workload::check(&history, &read)?;

    eprintln!("--- no replica is placed on the removed node");
    let later = client.create_topic("after", 3, 3, HashMap::new()).await?;
    ensure!(
        later.partitions.iter().all(|p| !p.replicas.contains(&4)),
        "{later:?}"
    );
    let text = cli(&cluster, &["node", "list", "--format", "json"])?;
    let listed: serde_json::Value = serde_json::from_slice(&text.stdout)?;
    ensure!(
        listed["removed_nodes"] == serde_json::json!([4]),
        "{listed}"
    );

    eprintln!("--- node 4, wiped, cannot join again under its removed id");
    std::fs::remove_dir_all(cluster.data_dir(3))?;
    cluster.start_node(3)?;
    let code = wait_exit(&mut cluster, 3).await?;
    ensure!(code != 0, "node 4 exited with {code}");
    let log = cluster.logs_tail(40);
    ensure!(log.contains("never used again"), "{log}");
    let status = client.cluster_status().await?;
    ensure!(status.nodes.iter().all(|n| n.id != 4), "{status:?}");
    Ok(())
}

/// Waits (up to 30 s) for node `i`'s process to end; its exit code.
async fn wait_exit(cluster: &mut TestCluster, i: usize) -> Result<i32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(code) = cluster.exit_code(i) {
            return Ok(code);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "node {} still running\n{}",
            i + 1,
            cluster.logs_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Nodes 1-3 as metadata voters, then node 4 joining through node 1.
async fn three_voters_then_a_joiner() -> Result<TestCluster> {
    let mut cluster = TestCluster::new(4)?.with_voters(3);
    for i in 0..3 {
        cluster.start_node(i)?;
    }
    cluster.wait_ready(Duration::from_secs(30)).await?;
    cluster.start_node(3)?;
    cluster.wait_ready(Duration::from_secs(30)).await?;
    Ok(cluster)
}
