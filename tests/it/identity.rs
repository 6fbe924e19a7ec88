//! Issue 2: a node refuses a data dir that belongs to another cluster or node.

use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use anyhow::ensure;
use anyhow::Result;
use cairn_client::Client;

use crate::cluster::TestCluster;

async fn wait_cluster_id(addr: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(c) = Client::connect(&[addr.to_string()]).await {
            if let Ok(s) = c.cluster_status().await {
                if !s.cluster_id.is_empty() {
                    return Ok(s.cluster_id);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{addr} never reported a cluster id")
}

/// Runs a node command that must fail; returns its output.
fn must_fail(mut cmd: std::process::Command) -> Result<String> {
    let out = cmd.output()?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    ensure!(!out.status.success(), "the node started; output:\n{text}");
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_refuses_the_data_dir_of_another_cluster() -> Result<()> {
    eprintln!("--- cluster A: a single node with id 3");
    let mut a = TestCluster::new(1)?;
    a.specs[0].id = 3;
    a.start_node(0)?;
    a.wait_ready(Duration::from_secs(30)).await?;
    let a_id = wait_cluster_id(&a.specs[0].grpc).await?;
    a.kill(0)?;

    eprintln!("--- cluster B: three nodes");
    let mut b = TestCluster::start(3).await?;
    for s in b.specs.clone() {
        let id = wait_cluster_id(&s.grpc).await?;
        ensure!(id != a_id);
    }
    b.kill(2)?;

    eprintln!("--- B's node 3 started on A's data dir must refuse");
    b.set_data_dir(2, a.data_dir(0));
    let text = must_fail(b.command(2))?;
    ensure!(
        text.contains("belongs to cluster") && text.contains(&a_id),
        "unclear refusal:\n{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_refuses_the_data_dir_of_another_node() -> Result<()> {
    let mut a = TestCluster::new(1)?;
    a.start_node(0)?;
    a.wait_ready(Duration::from_secs(30)).await?;
    a.kill(0)?;
    let mut other = TestCluster::new(1)?;
    other.specs[0].id = 2;
    other.set_data_dir(0, a.data_dir(0));
    let text = must_fail(other.command(0))?;
    ensure!(
        text.contains("belongs to node 1"),
        "unclear refusal:\n{text}"
    );
    Ok(())
}
