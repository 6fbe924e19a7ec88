//! The audit trail: every authentication attempt, every authorization
//! decision that refuses or touches a sensitive topic, every ACL, user,
//! role, topic and cluster change becomes one [`AuditEvent`].
//!
//! An event is logged at once (tracing target `cairn_audit`) and queued
//! ([`AUDIT_QUEUE_EVENTS`] at most); the writer loop appends the queued
//! events, in batches of up to [`AUDIT_BATCH_EVENTS`], to the JSON-lines
//! file `audit_log_file` (if set, flushed and synced per batch) and to the
//! replicated topic [`AUDIT_TOPIC`] (created by the first node that has
//! something to write), through the partition's Raft group like any other
//! write: acknowledged audit records survive what acknowledged records do.
//! A node that does not lead the partition hands the batch to its leader
//! over the internal RPC (`AppendAudit`). A full queue drops the event from
//! the topic and the file (it is still in the log), counted in
//! `cairn_audit_dropped_total`.
//!
//! No principal writes or deletes audit records: the façade refuses
//! produce, DeleteRecords and topic deletion on [`AUDIT_TOPIC`] to every
//! principal, super-users included; its configs (retention) are for
//! super-users only. Reading or describing it needs an ACL that names it
//! (literal or prefixed): neither a `*` binding nor
//! `allow_everyone_if_no_acl_found` grants it.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_metadata::TopicConfig;
use openraft::async_runtime::watch::WatchReceiver;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::node::Node;
use crate::ops;

/// The replicated audit topic.
pub const AUDIT_TOPIC: &str = "__cairn_audit";
/// Events queued for the writer at most; more are dropped (and counted).
pub const AUDIT_QUEUE_EVENTS: usize = 65_536;
/// Events the writer appends in one batch at most.
pub const AUDIT_BATCH_EVENTS: usize = 1_024;

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditKind {
    /// A SASL exchange or a TLS handshake that asked for a certificate.
    Authentication,
    /// An ACL decision: every refusal, every decision on a sensitive topic.
    Authorization,
    Acl,
    User,
    Role,
    Topic,
    /// Partition reassignment, node decommission and removal.
    Cluster,
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditResult {
    /// An authentication or a change that succeeded.
    Ok,
    /// An authentication or a change that failed.
    Failed,
    Allowed,
    Denied,
}

/// One audit record, stored as a JSON object (the record's value; its key is
/// the principal, its timestamp `time_ms`). The encoding is stable: fields
/// are only ever added (golden test below).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// The node that decided.
    pub node: u64,
    pub event: AuditKind,
    /// `User:name`, `User:ANONYMOUS` before authentication.
    pub principal: String,
    /// The client's `ip:port`; empty when unknown.
    pub client: String,
    /// `kafka`, `grpc`, `admin` or `internal`.
    pub listener: String,
    /// The façade operation (`Fetch`, `CreateTopic`, ...) or, for an
    /// authentication, the mechanism (`SCRAM-SHA-512`, `TLS`, ...).
    pub operation: String,
    /// `topic`, `group`, `cluster`, `transactional_id`, `acl`, `user`,
    /// `role`; empty for an authentication.
    pub resource_type: String,
    pub resource: String,
    pub result: AuditResult,
    /// Why (a failed login's reason, the ACL operation and rule of a
    /// decision, the error of a failed change); empty when nothing to add.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// An event's fields, before the node stamps its time and id.
#[derive(Debug, Clone)]
pub struct Audit<'a> {
    pub event: AuditKind,
    pub principal: String,
    pub client: Option<SocketAddr>,
    pub listener: &'a str,
    pub operation: &'a str,
    pub resource_type: &'a str,
    pub resource: &'a str,
    pub result: AuditResult,
    pub detail: String,
}

impl AuditEvent {
    /// The event for `a`, decided at `time_ms` on `node`.
    pub fn new(a: Audit<'_>, node: u64, time_ms: i64) -> AuditEvent {
        AuditEvent {
            time: rfc3339_ms(time_ms),
            time_ms,
            node,
            event: a.event,
            principal: a.principal,
            client: a.client.map(|c| c.to_string()).unwrap_or_default(),
            listener: a.listener.to_string(),
            operation: a.operation.to_string(),
            resource_type: a.resource_type.to_string(),
            resource: a.resource.to_string(),
            result: a.result,
            detail: a.detail,
        }
    }

    /// The stored form: one line of JSON (no newline).
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain strings and enums cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<AuditEvent, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// `ms` since the epoch as `YYYY-MM-DDThh:mm:ss.mmmZ`.
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The node's side of the trail: the queue to the writer.
pub(crate) struct Auditor {
    node: u64,
    tx: mpsc::Sender<AuditEvent>,
    /// Whether events go anywhere but the log (the topic or the file).
    stored: bool,
}

/// Where the writer puts events.
pub(crate) struct AuditSink {
    rx: mpsc::Receiver<AuditEvent>,
    topic: bool,
    file: Option<std::path::PathBuf>,
}

impl Auditor {
    /// The auditor and its writer's half. `topic`: append to
    /// [`AUDIT_TOPIC`]; `file`: append JSON lines there.
    pub(crate) fn new(
        node: u64,
        topic: bool,
        file: Option<std::path::PathBuf>,
    ) -> (Auditor, AuditSink) {
        let (tx, rx) = mpsc::channel(AUDIT_QUEUE_EVENTS);
        let stored = topic || file.is_some();
        (Auditor { node, tx, stored }, AuditSink { rx, topic, file })
    }

    /// Logs the event and queues it for the topic and the file.
    pub(crate) fn record(&self, a: Audit<'_>) {
        let e = AuditEvent::new(a, self.node, crate::facade::now_ms());
        tracing::info!(
            target: "cairn_audit",
            event = ?e.event,
            principal = %e.principal,
            client = %e.client,
            listener = %e.listener,
            operation = %e.operation,
            resource_type = %e.resource_type,
            resource = %e.resource,
            result = ?e.result,
            detail = %e.detail,
        );
        if !self.stored {
            return;
        }
        match self.tx.try_send(e) {
            Ok(()) => metrics::counter!("cairn_audit_events_total").increment(1),
            Err(_) => {
                metrics::counter!("cairn_audit_dropped_total").increment(1);
                tracing::warn!("audit queue full: an event is in the log only");
            }
        }
    }
}

/// Appends queued events to the file and the topic until the node stops.
pub(crate) async fn writer_loop(node: Arc<Node>, mut sink: AuditSink) {
    let mut file = None;
    let mut batch = Vec::with_capacity(AUDIT_BATCH_EVENTS);
    loop {
        if sink.rx.recv_many(&mut batch, AUDIT_BATCH_EVENTS).await == 0 {
            return;
        }
        if let Some(path) = &sink.file {
            if let Err(e) = append_lines(&mut file, path, &batch) {
                tracing::error!(path = %path.display(), error = %e, "cannot write the audit file");
            }
        }
        if sink.topic {
            let mut backoff = Duration::from_millis(100);
            loop {
                match append_to_topic(&node, &batch).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, events = batch.len(), "audit topic append failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            metrics::counter!("cairn_audit_records_written_total").increment(batch.len() as u64);
        }
        batch.clear();
    }
}

fn append_lines(
    file: &mut Option<std::fs::File>,
    path: &std::path::Path,
    batch: &[AuditEvent],
) -> std::io::Result<()> {
    if file.is_none() {
        *file = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        );
    }
    let Some(f) = file.as_mut() else {
        return Ok(());
    };
    let mut buf = Vec::new();
    for e in batch {
        buf.extend_from_slice(&e.encode());
        buf.push(b'\n');
    }
    f.write_all(&buf)?;
    f.sync_data()
}

/// The batch of records for `events`: key the principal, value the JSON.
fn records(events: &[AuditEvent]) -> Bytes {
    let mut b = cairn_record::RecordBatchBuilder::with_capacity(events.len() * 256);
    for e in events {
        b.push(
            e.time_ms,
            Some(e.principal.as_bytes()),
            Some(&e.encode()),
            &[],
        );
    }
    b.build()
}

/// Appends `events` to the audit topic (creating it first if need be), on
/// this node if it leads the partition, else through the leader.
async fn append_to_topic(node: &Arc<Node>, events: &[AuditEvent]) -> Result<(), ApiError> {
    let topic = match node.topic(AUDIT_TOPIC) {
        Ok(t) => t,
        Err(ApiError::UnknownTopic(_)) => create_topic(node).await?,
        Err(e) => return Err(e),
    };
    // Each node writes its own partition: events of one node stay in order.
    let partition = (node.id % topic.partitions.len().max(1) as u64) as u32;
    let batch = records(events);
    match ops::produce(
        node,
        AUDIT_TOPIC,
        partition,
        batch.clone(),
        ops::Acks::All,
        10_000,
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(ApiError::NotLeader {
            leader: Some((leader, _)),
            ..
        }) => crate::internal::append_audit(node, leader, partition, batch).await,
        Err(e) => Err(e),
    }
}

/// Creates the audit topic: `audit_topic_partitions` partitions, as many
/// replicas as the cluster has nodes up to `audit_topic_replication_factor`,
/// the retention `audit_retention_ms`, marked sensitive (reads audited).
async fn create_topic(node: &Arc<Node>) -> Result<cairn_metadata::Topic, ApiError> {
    let c = &node.config;
    let nodes = node.meta_view.read(|s| s.nodes.len()).max(
        node.meta
            .metrics()
            .borrow_watched()
            .membership_config
            .voter_ids()
            .count(),
    );
    let replication_factor = (c.audit_topic_replication_factor as usize).min(nodes.max(1)) as u32;
    let configs = BTreeMap::from([
        (
            TopicConfig::RetentionMs.key().to_string(),
            c.audit_retention_ms.to_string(),
        ),
        (
            TopicConfig::RetentionBytes.key().to_string(),
            "-1".to_string(),
        ),
        (TopicConfig::Sensitive.key().to_string(), "true".to_string()),
    ]);
    let new = ops::NewTopic {
        name: AUDIT_TOPIC.to_string(),
        partitions: c.audit_topic_partitions,
        replication_factor,
        configs,
        assignment: None,
    };
    match ops::create_topic(node, new).await {
        Ok(t) => {
            tracing::info!(
                partitions = t.partitions.len(),
                replication_factor,
                "audit topic created"
            );
            Ok(t)
        }
        // Another node created it first.
        Err(ApiError::TopicExists(_)) => node.topic(AUDIT_TOPIC),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored encoding: a change here breaks every reader of the audit
    /// topic and every audit file.
    #[test]
    fn golden_encoding() {
        let e = AuditEvent::new(
            Audit {
                event: AuditKind::Authorization,
                principal: "User:alice".into(),
                client: Some("10.0.0.7:51234".parse().unwrap()),
                listener: "kafka",
                operation: "Fetch",
                resource_type: "topic",
                resource: "admissions",
                result: AuditResult::Denied,
                detail: "READ: NoMatchingAcl".into(),
            },
            2,
            1_796_601_600_123,
        );
        let golden = r#"{"time":"2026-12-07T00:00:00.123Z","time_ms":1796601600123,"node":2,"event":"authorization","principal":"User:alice","client":"10.0.0.7:51234","listener":"kafka","operation":"Fetch","resource_type":"topic","resource":"admissions","result":"denied","detail":"READ: NoMatchingAcl"}"#;
        assert_eq!(String::from_utf8(e.encode()).unwrap(), golden);
        assert_eq!(AuditEvent::decode(golden.as_bytes()).unwrap(), e);
        // No detail: the field is left out, and read back empty.
        let mut ok = e.clone();
        ok.detail.clear();
        ok.result = AuditResult::Ok;
        let s = String::from_utf8(ok.encode()).unwrap();
        assert!(s.ends_with(r#""result":"ok"}"#), "{s}");
        assert_eq!(AuditEvent::decode(s.as_bytes()).unwrap(), ok);
    }

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_796_601_599_999), "2026-12-06T23:59:59.999Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    proptest::proptest! {
        #[test]
        fn rfc3339_agrees_with_days_arithmetic(ms in 0i64..4_102_444_800_000) {
            let s = rfc3339_ms(ms);
            // The time of day is plain arithmetic; the date grows with days.
            let secs = ms / 1000;
            let tod = format!("{:02}:{:02}:{:02}.{:03}Z", secs % 86_400 / 3600, secs % 3600 / 60, secs % 60, ms % 1000);
            proptest::prop_assert!(s.ends_with(&tod), "{} {}", s, tod);
            let next = rfc3339_ms(ms + 86_400_000);
            proptest::prop_assert!(next > s);
        }
    }
}
