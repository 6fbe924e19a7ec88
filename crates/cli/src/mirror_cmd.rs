//! `cairn mirror create | list | describe | pause | resume | delete | status
//! | promote | failback`.

use anyhow::{bail, Context, Result};
use cairn_client::proto::{MirrorLinkConfig, MirrorLinkDescription, MirrorPartitionState};
use cairn_client::Client;
use serde_json::json;

use crate::cli::{Format, MirrorArgs, MirrorCommand};
use crate::connect::connect;
use crate::output::render_table;

/// Runs a mirror command.
pub async fn run(args: MirrorArgs) -> Result<()> {
    let client = connect(&args.conn).await?;
    match args.command {
        MirrorCommand::Create {
            name,
            source,
            topics,
            exclude,
            groups,
            exclude_groups,
            sync_acls,
            source_ca,
            source_cert,
            source_key,
            source_token_file,
            source_address_map,
        } => {
            let mut address_map = std::collections::HashMap::new();
            for m in &source_address_map {
                let Some((from, to)) = m.split_once('=') else {
                    bail!("--source-address-map {m:?}: want ADVERTISED=ADDR");
                };
                address_map.insert(from.trim().to_string(), to.trim().to_string());
            }
            let link = MirrorLinkConfig {
                name: name.clone(),
                source_bootstrap: source,
                topics_include: topics,
                topics_exclude: exclude,
                groups_include: groups,
                groups_exclude: exclude_groups,
                sync_acls,
                tls_ca_file: source_ca,
                token_file: source_token_file,
                tls_cert_file: source_cert,
                tls_key_file: source_key,
                paused: false,
                source_address_map: address_map,
            };
            client
                .create_mirror_link(link)
                .await
                .with_context(|| format!("cannot create mirror link {name}"))?;
            eprintln!("mirror link {name} created");
        }
        MirrorCommand::List { format } => {
            let links = client
                .list_mirror_links()
                .await
                .context("cannot list links")?;
            print_links(&links, format);
        }
        MirrorCommand::Describe { name, format } => {
            let links = client
                .list_mirror_links()
                .await
                .context("cannot list links")?;
            let link: Vec<MirrorLinkDescription> = links
                .into_iter()
                .filter(|l| l.link.as_ref().is_some_and(|c| c.name == name))
                .collect();
            if link.is_empty() {
                bail!("mirror link {name:?} does not exist");
            }
            print_links(&link, format);
        }
        MirrorCommand::Pause { name } => {
            client
                .pause_mirror_link(&name, true)
                .await
                .with_context(|| format!("cannot pause mirror link {name}"))?;
            eprintln!("mirror link {name} paused");
        }
        MirrorCommand::Resume { name } => {
            client
                .pause_mirror_link(&name, false)
                .await
                .with_context(|| format!("cannot resume mirror link {name}"))?;
            eprintln!("mirror link {name} resumed");
        }
        MirrorCommand::Delete { name } => {
            client
                .delete_mirror_link(&name)
                .await
                .with_context(|| format!("cannot delete mirror link {name}"))?;
            eprintln!("mirror link {name} deleted");
        }
        MirrorCommand::Status { name, format } => {
            status(&client, name.as_deref().unwrap_or(""), format).await?;
        }
        MirrorCommand::Promote { name, topics } => {
            let promoted = client
                .promote_mirror_topics(&name, &topics)
                .await
                .with_context(|| format!("cannot promote the topics of mirror link {name}"))?;
            println!("{}", json!({ "link": name, "promoted": promoted }));
            eprintln!(
                "{} topic(s) promoted: writable, no longer mirrored",
                promoted.len()
            );
        }
        MirrorCommand::Failback { name, topics, yes } => {
            if !yes {
                bail!("failback deletes this cluster's copies of the link's topics and mirrors them again from the source; run again with --yes to go ahead");
            }
            let r = client
                .failback_mirror_link(&name, &topics)
                .await
                .with_context(|| format!("cannot fail back mirror link {name}"))?;
            println!(
                "{}",
                json!({ "link": name, "reseeded": r.reseeded, "records_discarded": r.records_discarded })
            );
            eprintln!(
                "{} topic(s) re-seeded from the source; {} records held here were discarded",
                r.reseeded.len(),
                r.records_discarded
            );
        }
    }
    Ok(())
}

fn link_json(d: &MirrorLinkDescription) -> serde_json::Value {
    let l = d.link.clone().unwrap_or_default();
    json!({
        "name": l.name,
        "source": l.source_bootstrap,
        "topics": l.topics_include,
        "exclude": l.topics_exclude,
        "groups": l.groups_include,
        "exclude_groups": l.groups_exclude,
        "sync_security": l.sync_acls,
        "source_ca": l.tls_ca_file,
        "source_cert": l.tls_cert_file,
        "source_token_file": l.token_file,
        "paused": l.paused,
        "source_address_map": l.source_address_map,
        "mirror_topics": d.topics,
        "sync_error": d.sync_error,
    })
}

fn print_links(links: &[MirrorLinkDescription], format: Format) {
    match format {
        Format::Json => println!(
            "{}",
            json!({ "links": links.iter().map(link_json).collect::<Vec<_>>() })
        ),
        Format::Text => {
            let rows: Vec<Vec<String>> = links
                .iter()
                .map(|d| {
                    let l = d.link.clone().unwrap_or_default();
                    vec![
                        l.name,
                        if l.paused { "paused" } else { "active" }.into(),
                        l.source_bootstrap.join(","),
                        l.topics_include.join(","),
                        d.topics.len().to_string(),
                        d.sync_error.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                render_table(
                    &[
                        "LINK",
                        "STATE",
                        "SOURCE",
                        "TOPICS",
                        "MIRROR TOPICS",
                        "SYNC ERROR"
                    ],
                    &rows
                )
            );
        }
    }
}

fn partition_json(p: &MirrorPartitionState) -> serde_json::Value {
    json!({
        "link": p.link,
        "topic": p.topic,
        "partition": p.partition,
        "node": p.node,
        "state": p.state,
        "error": p.error,
        "source_log_start": p.source_log_start,
        "source_high_watermark": p.source_high_watermark,
        "high_watermark": p.high_watermark,
        "last_mirrored_offset": p.high_watermark.checked_sub(1),
        "lag_records": p.lag_records,
        "lag_bytes": p.lag_bytes,
        "lag_ms": p.lag_ms,
        "replication_latency_ms": p.replication_latency_ms,
        "records_mirrored": p.records_mirrored,
        "bytes_mirrored": p.bytes_mirrored,
        "records_skipped": p.records_skipped,
        "updated_ms": p.updated_ms,
    })
}

async fn status(client: &Client, link: &str, format: Format) -> Result<()> {
    let parts = client
        .mirror_status(link)
        .await
        .context("cannot read mirror status")?;
    match format {
        Format::Json => println!(
            "{}",
            json!({ "partitions": parts.iter().map(partition_json).collect::<Vec<_>>() })
        ),
        Format::Text => {
            let rows: Vec<Vec<String>> = parts
                .iter()
                .map(|p| {
                    vec![
                        p.link.clone(),
                        p.topic.clone(),
                        p.partition.to_string(),
                        p.state.clone(),
                        p.high_watermark.to_string(),
                        p.source_high_watermark.to_string(),
                        p.lag_records.to_string(),
                        p.lag_bytes.to_string(),
                        p.lag_ms.to_string(),
                        p.node.to_string(),
                        p.error.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                render_table(
                    &[
                        "LINK",
                        "TOPIC",
                        "PARTITION",
                        "STATE",
                        "HWM",
                        "SOURCE HWM",
                        "LAG",
                        "LAG BYTES",
                        "LAG MS",
                        "NODE",
                        "ERROR"
                    ],
                    &rows
                )
            );
        }
    }
    Ok(())
}
