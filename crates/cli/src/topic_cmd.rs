//! `cairn topic create|list|describe|delete|alter-config|add-partitions|reassign`.

use anyhow::{Context, Result};

use crate::cli::{Format, TopicArgs, TopicCommand};
use crate::connect::connect;
use crate::views::{topic_json, topic_list_json, topic_list_text, topic_text};

/// Runs a topic command.
pub async fn run(args: TopicArgs) -> Result<()> {
    let client = connect(&args.conn).await?;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            format,
        } => {
            let topic = client
                .create_topic(
                    &name,
                    partitions,
                    replication_factor,
                    configs.into_iter().collect(),
                )
                .await
                .with_context(|| format!("cannot create topic {name}"))?;
            match format {
                Format::Text => print!("{}", topic_text(&topic)),
                Format::Json => println!("{}", topic_json(&topic)),
            }
        }
        TopicCommand::List { format } => {
            let topics = client.list_topics().await.context("cannot list topics")?;
            match format {
                Format::Text => print!("{}", topic_list_text(&topics)),
                Format::Json => println!("{}", topic_list_json(&topics)),
            }
        }
        TopicCommand::Describe { name, format } => {
            let topic = client
                .describe_topic(&name)
                .await
                .with_context(|| format!("cannot describe topic {name}"))?;
            match format {
                Format::Text => print!("{}", topic_text(&topic)),
                Format::Json => println!("{}", topic_json(&topic)),
            }
        }
        TopicCommand::AlterConfig {
            name,
            set,
            delete,
            format,
        } => {
            if set.is_empty() && delete.is_empty() {
                anyhow::bail!("nothing to change: give --set KEY=VALUE and/or --delete KEY");
            }
            let configs = client
                .alter_topic_config(&name, set.into_iter().collect(), delete)
                .await
                .with_context(|| format!("cannot alter the configs of topic {name}"))?;
            let sorted: std::collections::BTreeMap<_, _> = configs.into_iter().collect();
            match format {
                Format::Text => {
                    println!("topic {name} configs (others at their defaults):");
                    for (k, v) in &sorted {
                        println!("  {k}={v}");
                    }
                }
                Format::Json => println!(
                    "{}",
                    serde_json::json!({ "topic": name, "configs": sorted })
                ),
            }
        }
        TopicCommand::AddPartitions {
            name,
            count,
            format,
        } => {
            let topic = client
                .create_partitions(&name, count)
                .await
                .with_context(|| format!("cannot add partitions to topic {name}"))?;
            match format {
                Format::Text => print!("{}", topic_text(&topic)),
                Format::Json => println!("{}", topic_json(&topic)),
            }
        }
        TopicCommand::Delete { name } => {
            client
                .delete_topic(&name)
                .await
                .with_context(|| format!("cannot delete topic {name}"))?;
            println!("deleted topic {name}");
        }
        TopicCommand::Reassign {
            name,
            partition,
            replicas,
        } => {
            client
                .reassign_partition(&name, partition, &replicas)
                .await
                .with_context(|| format!("cannot reassign {name}/{partition}"))?;
            println!("reassigned {name}/{partition} to replicas {replicas:?}; the leader moves it now (watch `cairn topic describe {name}`)");
        }
    }
    Ok(())
}
