//! `cairn audit tail`: the audit trail, read from the topic `__cairn_audit`.
//!
//! Each partition is read from its first offset (or the first at or after
//! `--since`) up to the high watermark it had at the start; the events of
//! all partitions are printed oldest first. With `--follow` it then keeps
//! polling every partition and prints new events as they arrive.

use std::io::Write;

use anyhow::{anyhow, Context, Result};
use cairn_broker::audit::{AuditEvent, AUDIT_TOPIC};
use cairn_client::{Client, ErrorCode, OffsetSpec};

use crate::cli::{AuditArgs, AuditCommand, Format};
use crate::connect::connect;

/// Which events to print.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub principal: Option<String>,
    pub topic: Option<String>,
    pub since_ms: Option<i64>,
}

impl Filter {
    pub fn keeps(&self, e: &AuditEvent) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == e.principal)
            && self
                .topic
                .as_ref()
                .is_none_or(|t| e.resource_type == "topic" && *t == e.resource)
            && self.since_ms.is_none_or(|s| e.time_ms >= s)
    }
}

/// An enum field as it is stored (`authorization`, `denied`, ...).
fn stored_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v)
        .unwrap_or_default()
        .trim_matches('"')
        .to_string()
}

/// One line of text for an event.
pub fn text_line(e: &AuditEvent) -> String {
    let resource = if e.resource_type.is_empty() {
        "-".to_string()
    } else {
        format!("{}:{}", e.resource_type, e.resource)
    };
    let mut line = format!(
        "{}  node={}  {}  {}  {}  {}  {}  {}  {}",
        e.time,
        e.node,
        stored_name(&e.event),
        e.principal,
        if e.client.is_empty() { "-" } else { &e.client },
        e.listener,
        e.operation,
        resource,
        stored_name(&e.result),
    );
    if !e.detail.is_empty() {
        line.push_str("  ");
        line.push_str(&e.detail);
    }
    line
}

fn print(out: &mut impl Write, e: &AuditEvent, format: Format) -> Result<()> {
    match format {
        Format::Json => out.write_all(&e.encode())?,
        Format::Text => out.write_all(text_line(e).as_bytes())?,
    }
    out.write_all(b"\n")?;
    Ok(())
}

pub async fn run(args: AuditArgs) -> Result<()> {
    let AuditCommand::Tail {
        principal,
        topic,
        since,
        limit,
        follow,
        format,
    } = args.command;
    let filter = Filter {
        principal,
        topic,
        since_ms: since,
    };
    let client = connect(&args.conn).await?;
    let partitions = loop {
        match client.partition_count(AUDIT_TOPIC).await {
            Ok(n) => break n,
            Err(e) if e.code() == Some(ErrorCode::UnknownTopic) && follow => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) if e.code() == Some(ErrorCode::UnknownTopic) => {
                // No event was ever stored: nothing to print.
                return Ok(());
            }
            Err(e) => return Err(anyhow!(e).context("cannot read the audit topic")),
        }
    };
    let mut next = Vec::with_capacity(partitions as usize);
    let mut events = Vec::new();
    for p in 0..partitions {
        let (events_p, end) = read_to_end(&client, p, filter.since_ms).await?;
        events.extend(events_p.into_iter().filter(|e| filter.keeps(e)));
        next.push(end);
    }
    events.sort_by_key(|e| (e.time_ms, e.node));
    if let Some(n) = limit {
        let skip = events.len().saturating_sub(n);
        events.drain(..skip);
    }
    let mut out = std::io::stdout().lock();
    for e in &events {
        print(&mut out, e, format)?;
    }
    out.flush()?;
    drop(out);
    if !follow {
        return Ok(());
    }
    loop {
        for (p, offset) in next.iter_mut().enumerate() {
            let fetched = client
                .fetch_records(AUDIT_TOPIC, p as u32, *offset, 1 << 20, 500)
                .await
                .with_context(|| format!("cannot read audit partition {p}"))?;
            *offset = fetched.next_offset;
            let mut out = std::io::stdout().lock();
            for r in fetched.records {
                if let Some(e) = decode(r.value.as_deref()) {
                    if filter.keeps(&e) {
                        print(&mut out, &e, format)?;
                    }
                }
            }
            out.flush()?;
        }
    }
}

fn decode(value: Option<&[u8]>) -> Option<AuditEvent> {
    let v = value?;
    match AuditEvent::decode(v) {
        Ok(e) => Some(e),
        Err(err) => {
            tracing::warn!(error = %err, "an audit record that is not an audit event; skipped");
            None
        }
    }
}

/// The events of partition `p` from `since` (or its start) to the high
/// watermark it has now, and the offset to go on from.
async fn read_to_end(
    client: &Client,
    p: u32,
    since: Option<i64>,
) -> Result<(Vec<AuditEvent>, u64)> {
    let end = client
        .list_offsets(AUDIT_TOPIC, p, OffsetSpec::Latest)
        .await
        .with_context(|| format!("cannot look up the end of audit partition {p}"))?
        .offset
        .max(0) as u64;
    let mut offset = match since {
        None => client
            .list_offsets(AUDIT_TOPIC, p, OffsetSpec::Earliest)
            .await?
            .offset
            .max(0) as u64,
        Some(ts) => {
            let o = client
                .list_offsets(AUDIT_TOPIC, p, OffsetSpec::Timestamp(ts))
                .await?
                .offset;
            if o < 0 {
                end
            } else {
                o as u64
            }
        }
    };
    let mut events = Vec::new();
    while offset < end {
        let fetched = client
            .fetch_records(AUDIT_TOPIC, p, offset, 4 << 20, 0)
            .await
            .with_context(|| format!("cannot read audit partition {p} at offset {offset}"))?;
        if fetched.next_offset <= offset {
            break;
        }
        offset = fetched.next_offset;
        events.extend(
            fetched
                .records
                .into_iter()
                .filter(|r| u64::try_from(r.offset).is_ok_and(|o| o < end))
                .filter_map(|r| decode(r.value.as_deref())),
        );
    }
    Ok((events, offset.min(end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(principal: &str, resource_type: &str, resource: &str, time_ms: i64) -> AuditEvent {
        AuditEvent::decode(
            format!(
                r#"{{"time":"t","time_ms":{time_ms},"node":1,"event":"authorization","principal":"{principal}","client":"","listener":"kafka","operation":"Fetch","resource_type":"{resource_type}","resource":"{resource}","result":"allowed"}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn the_filter_keeps_what_it_names() {
        let f = Filter {
            principal: Some("User:alice".into()),
            topic: Some("labs".into()),
            since_ms: Some(100),
        };
        assert!(f.keeps(&event("User:alice", "topic", "labs", 100)));
        assert!(!f.keeps(&event("User:bob", "topic", "labs", 100)));
        assert!(!f.keeps(&event("User:alice", "group", "labs", 100)));
        assert!(!f.keeps(&event("User:alice", "topic", "labs", 99)));
        assert!(Filter::default().keeps(&event("User:bob", "", "", 0)));
    }

    #[test]
    fn a_text_line_names_every_field() {
        let mut e = event("User:alice", "topic", "labs", 0);
        e.detail = "READ: Acl".into();
        assert_eq!(
            text_line(&e),
            "t  node=1  authorization  User:alice  -  kafka  Fetch  topic:labs  allowed  READ: Acl"
        );
    }
}
