//! `cairn node list | decommission`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cairn_client::{Client, ErrorCode};
use serde_json::json;

use crate::cli::{Format, NodeArgs, NodeCommand};
use crate::connect::connect;
use crate::output::render_table;
use crate::views::node_json;

/// How often the decommission wait looks again.
const POLL: Duration = Duration::from_secs(2);

/// Runs a node command.
pub async fn run(args: NodeArgs) -> Result<()> {
    let client = connect(&args.conn).await?;
    match args.command {
        NodeCommand::List { format } => list(&client, format).await,
        NodeCommand::Decommission {
            node,
            no_wait,
            timeout_s,
            format,
        } => {
            decommission(
                &client,
                node,
                no_wait,
                Duration::from_secs(timeout_s),
                format,
            )
            .await
        }
    }
}

async fn list(client: &Client, format: Format) -> Result<()> {
    let status = client
        .cluster_status()
        .await
        .context("cannot get cluster status")?;
    let mut nodes = status.nodes.clone();
    nodes.sort_by_key(|n| n.id);
    match format {
        Format::Json => println!(
            "{}",
            json!({
                "nodes": nodes.iter().map(node_json).collect::<Vec<_>>(),
                "removed_nodes": status.removed_nodes,
            })
        ),
        Format::Text => {
            let rows: Vec<Vec<String>> = nodes
                .iter()
                .map(|n| {
                    vec![
                        n.id.to_string(),
                        if n.alive { "yes" } else { "NO" }.to_owned(),
                        if n.metadata_voter { "yes" } else { "no" }.to_owned(),
                        if n.draining { "yes" } else { "no" }.to_owned(),
                        n.grpc_addr.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                render_table(&["NODE", "ALIVE", "VOTER", "DRAINING", "GRPC"], &rows)
            );
            if !status.removed_nodes.is_empty() {
                println!("removed: {:?}", status.removed_nodes);
            }
        }
    }
    Ok(())
}

/// Partitions whose Raft membership may still hold `node`: its committed
/// voters name it, or it has no leader to tell.
async fn pending(client: &Client, node: u64) -> Result<Vec<String>> {
    let topics = client.list_topics().await.context("cannot list topics")?;
    Ok(topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().filter_map(move |p| {
                let holds =
                    p.replicas.contains(&node) || p.voters.contains(&node) || p.leader.is_none();
                holds.then(|| format!("{}/{}", t.name, p.partition))
            })
        })
        .collect())
}

async fn decommission(
    client: &Client,
    node: u64,
    no_wait: bool,
    timeout: Duration,
    format: Format,
) -> Result<()> {
    let moves = client
        .decommission_node(node)
        .await
        .with_context(|| format!("cannot decommission node {node}"))?;
    eprintln!(
        "node {node} is draining: {} partitions moved off it",
        moves.len()
    );
    for m in &moves {
        eprintln!("  {}/{} -> {:?}", m.topic, m.partition, m.replicas);
    }
    let moved: Vec<_> = moves
        .iter()
        .map(|m| json!({"topic": m.topic, "partition": m.partition, "replicas": m.replicas}))
        .collect();
    if no_wait {
        match format {
            Format::Json => println!(
                "{}",
                json!({"node": node, "removed": false, "moves": moved})
            ),
            Format::Text => {
                println!("node {node}: draining; run the command again to wait and remove it")
            }
        }
        return Ok(());
    }
    let start = Instant::now();
    let mut last: Option<BTreeSet<String>> = None;
    loop {
        match client.remove_node(node).await {
            Ok(()) => break,
            Err(e) if e.code() == Some(ErrorCode::NodeInUse) => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove node {node}")),
        }
        let left: BTreeSet<String> = pending(client, node).await?.into_iter().collect();
        if last.as_ref() != Some(&left) {
            eprintln!(
                "[{:>4}s] {} partitions still hold node {node}{}",
                start.elapsed().as_secs(),
                left.len(),
                if left.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        left.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
                    )
                }
            );
            last = Some(left);
        }
        if start.elapsed() > timeout {
            bail!(
                "node {node} still held after {} s (the moves go on; run the command again to wait)",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
    let secs = start.elapsed().as_secs_f64();
    match format {
        Format::Json => println!(
            "{}",
            json!({"node": node, "removed": true, "moves": moved, "seconds": secs})
        ),
        Format::Text => println!(
            "node {node} removed after {secs:.1} s; it can be stopped (its id is never used again)"
        ),
    }
    Ok(())
}
