//! `cairn group list|describe|reset-offsets|delete`.
//!
//! Assignments travel as Kafka consumer-protocol bytes; they are decoded here,
//! as Kafka's own tools do, to show which member reads which partition.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use cairn_client::proto::{DescribeGroupResponse, GroupListing, OffsetCommit};
use cairn_client::{Client, OffsetSpec};
use serde_json::{json, Value};

use crate::cli::{Format, GroupArgs, GroupCommand};
use crate::connect::connect;
use crate::output::render_table;

/// Runs a group command.
pub async fn run(args: GroupArgs) -> Result<()> {
    let client = connect(&args.conn).await?;
    match args.command {
        GroupCommand::List { format } => {
            let groups = client.list_groups().await.context("cannot list groups")?;
            match format {
                Format::Text => print!("{}", list_text(&groups)),
                Format::Json => println!("{}", list_json(&groups)),
            }
        }
        GroupCommand::Describe { group, format } => {
            let d = client
                .describe_group(&group)
                .await
                .with_context(|| format!("cannot describe group {group}"))?;
            let rows = lag_rows(&client, &d).await?;
            match format {
                Format::Text => print!("{}", describe_text(&d, &rows)),
                Format::Json => println!("{}", describe_json(&d, &rows)),
            }
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            partition,
            to,
            format,
        } => {
            let target = parse_target(&to)?;
            let partitions: Vec<u32> = match partition {
                Some(p) => vec![p],
                None => (0..client
                    .partition_count(&topic)
                    .await
                    .with_context(|| format!("cannot read topic {topic}"))?)
                    .collect(),
            };
            let mut offsets = Vec::new();
            for p in partitions {
                let offset = match target {
                    Target::Offset(n) => n,
                    Target::Spec(spec) => {
                        let r = client
                            .list_offsets(&topic, p, spec)
                            .await
                            .with_context(|| format!("cannot look up {topic}/{p}"))?;
                        if r.offset < 0 {
                            // No record at or after the time: the end.
                            client
                                .list_offsets(&topic, p, OffsetSpec::Latest)
                                .await?
                                .offset
                        } else {
                            r.offset
                        }
                    }
                };
                offsets.push(OffsetCommit {
                    topic: topic.clone(),
                    partition: p,
                    offset,
                    metadata: String::new(),
                });
            }
            client
                .commit_offsets(&group, offsets.clone())
                .await
                .with_context(|| format!("cannot reset the offsets of group {group}"))?;
            match format {
                Format::Text => {
                    let rows: Vec<Vec<String>> = offsets
                        .iter()
                        .map(|o| {
                            vec![
                                o.topic.clone(),
                                o.partition.to_string(),
                                o.offset.to_string(),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        render_table(&["TOPIC", "PARTITION", "NEW-OFFSET"], &rows)
                    );
                }
                Format::Json => println!(
                    "{}",
                    json!({
                        "group": group,
                        "offsets": offsets.iter().map(|o| json!({
                            "topic": o.topic, "partition": o.partition, "offset": o.offset,
                        })).collect::<Vec<_>>(),
                    })
                ),
            }
        }
        GroupCommand::Delete { group } => {
            client
                .delete_group(&group)
                .await
                .with_context(|| format!("cannot delete group {group}"))?;
            eprintln!("group {group} deleted");
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Spec(OffsetSpec),
    Offset(i64),
}

fn parse_target(to: &[String]) -> Result<Target> {
    let value = |what: &str| -> Result<i64> {
        let v = to
            .get(1)
            .with_context(|| format!("--to {what} needs a value, e.g. --to {what} 42"))?;
        v.parse::<i64>()
            .with_context(|| format!("--to {what}: {v:?} is not an integer"))
    };
    match to.first().map(String::as_str) {
        Some("earliest") if to.len() == 1 => Ok(Target::Spec(OffsetSpec::Earliest)),
        Some("latest") if to.len() == 1 => Ok(Target::Spec(OffsetSpec::Latest)),
        Some("offset") => {
            let n = value("offset")?;
            if n < 0 {
                bail!("--to offset must be >= 0");
            }
            Ok(Target::Offset(n))
        }
        Some("timestamp") => Ok(Target::Spec(OffsetSpec::Timestamp(value("timestamp")?))),
        _ => bail!(
            "--to takes earliest, latest, offset N or timestamp MS (got {:?})",
            to.join(" ")
        ),
    }
}

/// One partition of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagRow {
    topic: String,
    partition: u32,
    committed: Option<i64>,
    log_end: Option<u64>,
    member: Option<String>,
}

impl LagRow {
    fn lag(&self) -> Option<u64> {
        let end = self.log_end?;
        let committed = u64::try_from(self.committed?).ok()?;
        Some(end.saturating_sub(committed))
    }
}

/// Who owns each partition (decoded assignments) and the committed offsets,
/// with each partition's log end.
async fn lag_rows(client: &Client, d: &DescribeGroupResponse) -> Result<Vec<LagRow>> {
    let mut owner: BTreeMap<(String, u32), String> = BTreeMap::new();
    for m in &d.members {
        if d.protocol_type != cairn_group_protocol_type() {
            continue;
        }
        if let Ok(tps) = cairn_client::decode_assignment(&m.assignment) {
            for tp in tps {
                owner.insert((tp.topic, tp.partition), m.member_id.clone());
            }
        }
    }
    let mut keys: BTreeSet<(String, u32)> = owner.keys().cloned().collect();
    let committed: BTreeMap<(String, u32), i64> = d
        .offsets
        .iter()
        .map(|o| ((o.topic.clone(), o.partition), o.offset))
        .collect();
    keys.extend(committed.keys().cloned());
    let topics: BTreeSet<String> = keys.iter().map(|(t, _)| t.clone()).collect();
    let mut ends: BTreeMap<(String, u32), u64> = BTreeMap::new();
    for t in topics {
        // A deleted topic keeps its committed offsets: no log end then.
        if let Ok(meta) = client.describe_topic(&t).await {
            for p in meta.partitions {
                ends.insert((t.clone(), p.partition), p.high_watermark);
            }
        }
    }
    Ok(keys
        .into_iter()
        .map(|k| LagRow {
            committed: committed.get(&k).copied(),
            log_end: ends.get(&k).copied(),
            member: owner.get(&k).cloned(),
            topic: k.0,
            partition: k.1,
        })
        .collect())
}

fn cairn_group_protocol_type() -> &'static str {
    cairn_client::CONSUMER_PROTOCOL_TYPE
}

fn dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn list_text(groups: &[GroupListing]) -> String {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.group.clone(),
                g.state.clone(),
                if g.protocol_type.is_empty() {
                    "-".into()
                } else {
                    g.protocol_type.clone()
                },
                g.members.to_string(),
            ]
        })
        .collect();
    render_table(&["GROUP", "STATE", "PROTOCOL-TYPE", "MEMBERS"], &rows)
}

fn list_json(groups: &[GroupListing]) -> Value {
    Value::Array(
        groups
            .iter()
            .map(|g| {
                json!({
                    "group": g.group,
                    "state": g.state,
                    "protocol_type": g.protocol_type,
                    "members": g.members,
                })
            })
            .collect(),
    )
}

fn describe_text(d: &DescribeGroupResponse, rows: &[LagRow]) -> String {
    let mut out = format!(
        "group {}  state {}  generation {}  protocol {}  members {}\n",
        d.group,
        d.state,
        d.generation,
        if d.protocol.is_empty() {
            "-"
        } else {
            &d.protocol
        },
        d.members.len()
    );
    if !d.members.is_empty() {
        let members: Vec<Vec<String>> = d
            .members
            .iter()
            .map(|m| {
                let owned = rows
                    .iter()
                    .filter(|r| r.member.as_deref() == Some(&m.member_id))
                    .count();
                vec![
                    m.member_id.clone(),
                    m.client_id.clone(),
                    m.client_host.clone(),
                    owned.to_string(),
                    if m.member_id == d.leader {
                        "leader".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&render_table(
            &["MEMBER", "CLIENT-ID", "HOST", "PARTITIONS", ""],
            &members,
        ));
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.topic.clone(),
                r.partition.to_string(),
                dash(r.committed),
                dash(r.log_end),
                dash(r.lag()),
                dash(r.member.clone()),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&render_table(
        &[
            "TOPIC",
            "PARTITION",
            "COMMITTED",
            "LOG-END",
            "LAG",
            "MEMBER",
        ],
        &table,
    ));
    out
}

fn describe_json(d: &DescribeGroupResponse, rows: &[LagRow]) -> Value {
    json!({
        "group": d.group,
        "state": d.state,
        "generation": d.generation,
        "protocol_type": d.protocol_type,
        "protocol": d.protocol,
        "leader": d.leader,
        "members": d.members.iter().map(|m| json!({
            "member_id": m.member_id,
            "client_id": m.client_id,
            "client_host": m.client_host,
            "partitions": rows.iter()
                .filter(|r| r.member.as_deref() == Some(&m.member_id))
                .map(|r| json!({"topic": r.topic, "partition": r.partition}))
                .collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "partitions": rows.iter().map(|r| json!({
            "topic": r.topic,
            "partition": r.partition,
            "committed": r.committed,
            "log_end": r.log_end,
            "lag": r.lag(),
            "member": r.member,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reset_targets_parse() {
        assert_eq!(
            parse_target(&to(&["earliest"])).unwrap(),
            Target::Spec(OffsetSpec::Earliest)
        );
        assert_eq!(
            parse_target(&to(&["latest"])).unwrap(),
            Target::Spec(OffsetSpec::Latest)
        );
        assert_eq!(
            parse_target(&to(&["offset", "42"])).unwrap(),
            Target::Offset(42)
        );
        assert_eq!(
            parse_target(&to(&["timestamp", "1700000000000"])).unwrap(),
            Target::Spec(OffsetSpec::Timestamp(1_700_000_000_000))
        );
        for bad in [
            &["offset"][..],
            &["offset", "x"],
            &["offset", "-1"],
            &["soon"],
            &["earliest", "3"],
        ] {
            assert!(parse_target(&to(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lag_is_log_end_minus_committed() {
        let row = |committed, log_end| LagRow {
            topic: "t".into(),
            partition: 0,
            committed,
            log_end,
            member: None,
        };
        assert_eq!(row(Some(3), Some(10)).lag(), Some(7));
        assert_eq!(row(None, Some(10)).lag(), None);
        assert_eq!(row(Some(3), None).lag(), None);
    }
}
