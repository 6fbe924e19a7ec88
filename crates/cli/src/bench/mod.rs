//! `cairn bench produce|consume|commit`: load generators.

mod budget;
mod commit;
mod consume;
mod meter;
mod pool;
mod produce;
mod report;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cairn_client::{Client, ErrorCode};

use crate::cli::{BenchArgs, BenchCommand};
use crate::connect::connect;

/// Runs a benchmark.
pub async fn run(args: BenchArgs) -> Result<()> {
    let client = connect(&args.conn).await?;
    match args.command {
        BenchCommand::Produce(a) => produce::run(client, a).await,
        BenchCommand::Consume(a) => consume::run(client, a).await,
        BenchCommand::Commit(a) => {
            // Consumers are many processes, each with its own connection.
            let mut clients = vec![client];
            for _ in 1..a.connections {
                clients.push(connect(&args.conn).await?);
            }
            commit::run(clients, a).await
        }
    }
}

/// Makes sure `topic` exists (creating it with `partitions` if given) and
/// every partition has a leader; returns the partition count.
async fn ensure_topic(
    client: &Client,
    topic: &str,
    partitions: Option<u32>,
    replication_factor: u32,
) -> Result<u32> {
    let count = match client.describe_topic(topic).await {
        Ok(t) => {
            let n = u32::try_from(t.partitions.len()).unwrap_or(u32::MAX);
            if let Some(p) = partitions.filter(|&p| p != n) {
                eprintln!("topic {topic} exists with {n} partitions (not {p}); using it as is");
            }
            n
        }
        Err(e) if e.code() == Some(ErrorCode::UnknownTopic) => {
            let Some(p) = partitions else {
                bail!("topic {topic} does not exist; pass --partitions N (and --replication-factor R) to create it");
            };
            match client
                .create_topic(topic, p, replication_factor, Default::default())
                .await
            {
                Ok(_) => eprintln!("created topic {topic} ({p} partitions, replication factor {replication_factor})"),
                Err(e) if e.code() == Some(ErrorCode::TopicAlreadyExists) => {}
                Err(e) => return Err(e).with_context(|| format!("cannot create topic {topic}")),
            }
            p
        }
        Err(e) => return Err(e).with_context(|| format!("cannot describe topic {topic}")),
    };
    wait_for_leaders(client, topic, Duration::from_secs(30)).await?;
    Ok(count)
}

/// Polls metadata until every partition of `topic` has a leader.
async fn wait_for_leaders(client: &Client, topic: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let md = client.metadata(&[topic.to_owned()]).await?;
        let ready = md.topics.iter().find(|t| t.name == topic).is_some_and(|t| {
            !t.partitions.is_empty() && t.partitions.iter().all(|p| p.leader.is_some())
        });
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "partitions of {topic} still have no leader after {}s",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
