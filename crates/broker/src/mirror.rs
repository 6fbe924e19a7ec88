//! Mirror links on the target cluster (ADR 0013, docs/dr.md).
//!
//! ```text
//!   source cluster                         target cluster (this one)
//!   ┌──────────────┐  Fetch (gRPC, TLS,    ┌──────────────────────────────────┐
//!   │ orders/0 ldr │◀─ token) by the ───── │ orders/0 leader: puller task     │
//!   │ orders/1 ldr │◀─ target partition's  │   propose Produce{mirror: at}    │
//!   └──────────────┘   leader              │   through its own Raft group     │
//!          ▲                               │ metadata leader: link sync       │
//!          └──── list topics, configs, ─── │   create/grow mirror topics,     │
//!                ACLs, group offsets       │   configs, ACLs, group offsets   │
//!                                          └──────────────────────────────────┘
//! ```
//!
//! Each target partition's leader pulls its source partition from where its
//! own log ends and appends the batches as they are, at the source's offsets
//! (`cairn_raft::MirrorAt`): the entry applies only onto the log end its
//! puller saw, so a pull that raced another (a leader change) or lost its
//! place appends nothing, and the next pull starts again from the log end.
//! Nothing but the Raft log remembers where a mirror is: after a failover
//! on either side the new leader resumes at its log end.
//!
//! The metadata leader syncs each link every `mirror_sync_interval_ms`:
//! source topics matching the link become read-only mirror topics here
//! (same partitions and configs), partition counts grow, configs follow,
//! ACL bindings, roles and users are kept equal to the source's
//! (`sync_acls`; never touching this cluster's own), and the committed
//! offsets of the groups the link names are copied for groups with no
//! members here.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use cairn_client::BearerToken;
use cairn_client::Client;
use cairn_client::ClientConfig;
use cairn_client::ErrorCode;
use cairn_client::OffsetSpec;
use cairn_client::RetryPolicy;
use cairn_client::TlsSettings;
use cairn_metadata::AclEntry;
use cairn_metadata::CommittedOffset;
use cairn_metadata::MetaCommand;
use cairn_metadata::MetaResponse;
use cairn_metadata::MirrorLink;
use cairn_metadata::Role;
use cairn_metadata::ScramCredential;
use cairn_metadata::SourceSecurity;
use cairn_raft::GroupId;
use cairn_raft::MirrorAt;
use cairn_raft::ProduceCommand;
use cairn_raft::ProduceStamp;
use cairn_raft::ProducerBatch;
use cairn_raft::Request as RaftRequest;
use cairn_raft::Response as RaftResponse;
use serde::Deserialize;
use serde::Serialize;

use crate::error::ApiError;
use crate::node::Node;
use crate::node::Proposal;
use crate::replica::Replica;

/// Bytes one pull asks the source for; also the largest Raft entry a pull
/// proposes.
pub(crate) const MIRROR_FETCH_BYTES: u32 = 1 << 20;
/// How long a pull waits at the source for new records.
pub(crate) const MIRROR_FETCH_WAIT_MS: u32 = 500;
/// Most ACL bindings, roles and users one link's security sync copies: all
/// of them travel in one metadata entry.
pub(crate) const MAX_MIRRORED_SECURITY: usize = 20_000;
/// How often each node checks which pullers it should run.
const MIRROR_TICK: Duration = Duration::from_millis(250);
/// Longest wait between two failed pulls.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a mirrored entry may take to commit.
const APPEND_TIMEOUT: Duration = Duration::from_secs(10);

/// One mirrored partition as its target leader sees it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct MirrorPartitionStatus {
    pub link: String,
    pub topic: String,
    pub partition: u32,
    /// The node pulling it (the partition's leader here).
    pub node: u64,
    /// `mirroring`, `caught-up`, `error`, `diverged` (this log is ahead of
    /// the source's: the source lost records this side has, or the link
    /// points at another history).
    pub state: String,
    /// The last failure, if `state` is `error` or `diverged`.
    pub error: String,
    pub source_log_start: u64,
    pub source_high_watermark: u64,
    /// The next offset here: everything below it that the source had is
    /// mirrored.
    pub high_watermark: u64,
    /// Records the source has that are not here yet.
    pub lag_records: u64,
    /// Estimated bytes of those (by the mean record size mirrored so far).
    pub lag_bytes: u64,
    /// Age of the oldest source record not mirrored yet (0 when caught up).
    pub lag_ms: i64,
    /// Time from the newest mirrored record's timestamp to its append here,
    /// at the last append (MirrorMaker 2's `replication-latency-ms`).
    pub replication_latency_ms: i64,
    pub records_mirrored: u64,
    pub bytes_mirrored: u64,
    /// Offsets the source had deleted before they were mirrored (gaps kept).
    pub records_skipped: u64,
    /// When this status was last updated (ms since the epoch).
    pub updated_ms: i64,
}

struct Puller {
    link: MirrorLink,
    key: (String, u32),
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Puller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type StatusMap = Arc<Mutex<BTreeMap<(String, u32), MirrorPartitionStatus>>>;

/// A node's mirror state: the pullers it runs and their status, the
/// source clients by link.
#[derive(Default)]
pub(crate) struct Mirrors {
    pullers: Mutex<HashMap<GroupId, Puller>>,
    status: StatusMap,
    clients: tokio::sync::Mutex<HashMap<String, (MirrorLink, Client)>>,
    /// Per link: the last sync's failure (empty: it worked), and when.
    sync_errors: Mutex<BTreeMap<String, (String, i64)>>,
}

impl Mirrors {
    /// The mirrored partitions this node leads, with their lag.
    pub(crate) fn local_status(&self) -> Vec<MirrorPartitionStatus> {
        self.status
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The last metadata-sync failure of each link (on the metadata leader).
    pub(crate) fn sync_errors(&self) -> BTreeMap<String, (String, i64)> {
        self.sync_errors
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// A client of the link's source, made once per link config.
    async fn client(&self, link: &MirrorLink) -> Result<Client, String> {
        let mut clients = self.clients.lock().await;
        if let Some((l, c)) = clients.get(&link.name) {
            if l == link {
                return Ok(c.clone());
            }
        }
        let client = Client::connect_with(&link.source_bootstrap, client_config(link)?)
            .await
            .map_err(|e| format!("cannot reach the source {:?}: {e}", link.source_bootstrap))?;
        clients.insert(link.name.clone(), (link.clone(), client.clone()));
        Ok(client)
    }
}

fn now_ms() -> i64 {
    cairn_clock::system_time()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How a link's client reaches the source: short deadlines (a puller
/// retries on its own), TLS and a bearer token as the link says.
fn client_config(link: &MirrorLink) -> Result<ClientConfig, String> {
    let tls = link.tls_ca_file.as_ref().map(|ca| TlsSettings {
        ca_file: ca.into(),
        identity: match (&link.tls_cert_file, &link.tls_key_file) {
            (Some(c), Some(k)) => Some((c.into(), k.into())),
            _ => None,
        },
    });
    let token = match &link.token_file {
        Some(f) => Some(BearerToken(
            std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read the link's token file {f}: {e}"))?
                .trim()
                .to_string(),
        )),
        None => None,
    };
    Ok(ClientConfig {
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            deadline: Duration::from_secs(3),
        },
        bootstrap_deadline: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        idempotent: false,
        tls,
        token,
        address_map: link.source_address_map.clone(),
        ..ClientConfig::default()
    })
}

/// Batches of one fetch cut into what one mirrored entry may hold: offset
/// contiguous, and from one producer (or none), as a produce entry is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run {
    pub base_offset: u64,
    pub records: Bytes,
    /// Offsets the batches span (`last_offset_delta + 1` each).
    pub offset_count: u32,
    pub max_timestamp_ms: i64,
    pub first_timestamp_ms: i64,
    pub producer: Option<ProducerBatch>,
}

impl Run {
    fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.offset_count)
    }
}

/// Cuts fetched batches into [`Run`]s, dropping batches that end before
/// `from` (a fetch starts at the batch holding `from`).
pub(crate) fn runs(fetched: &Bytes, from: u64) -> Result<Vec<Run>, String> {
    let mut out: Vec<Run> = Vec::new();
    for batch in cairn_record::split_batches(fetched) {
        let batch = batch.map_err(|e| e.to_string())?;
        let header = cairn_record::validate_batch(batch).map_err(|e| e.to_string())?;
        let base = u64::try_from(header.base_offset).map_err(|_| "negative base offset")?;
        let count = u32::try_from(header.offset_count()).map_err(|_| "bad offset count")?;
        if base + u64::from(count) <= from {
            continue;
        }
        if base < from {
            return Err(format!(
                "the source's batch at {base} spans {from}, where this log ends"
            ));
        }
        let producer = (header.producer_id >= 0).then(|| ProducerBatch {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            first_sequence: header.base_sequence,
            last_sequence: header.base_sequence.wrapping_add(header.last_offset_delta),
        });
        let bytes = fetched.slice_ref(batch);
        let joins = out.last().is_some_and(|r| {
            r.next_offset() == base
                && r.records.len() + bytes.len() <= MIRROR_FETCH_BYTES as usize
                && match (&r.producer, &producer) {
                    (None, None) => true,
                    (Some(a), Some(b)) => {
                        a.producer_id == b.producer_id
                            && a.epoch == b.epoch
                            && a.last_sequence.wrapping_add(1) == b.first_sequence
                    }
                    _ => false,
                }
        });
        if joins {
            let r = out.last_mut().expect("joins a run");
            let mut joined = Vec::with_capacity(r.records.len() + bytes.len());
            joined.extend_from_slice(&r.records);
            joined.extend_from_slice(&bytes);
            r.records = Bytes::from(joined);
            r.offset_count += count;
            r.max_timestamp_ms = r.max_timestamp_ms.max(header.max_timestamp);
            if let (Some(a), Some(b)) = (&mut r.producer, &producer) {
                a.last_sequence = b.last_sequence;
            }
        } else {
            out.push(Run {
                base_offset: base,
                records: bytes,
                offset_count: count,
                max_timestamp_ms: header.max_timestamp,
                first_timestamp_ms: header.base_timestamp,
                producer,
            });
        }
    }
    Ok(out)
}

/// Every node, forever: runs a puller for each mirrored partition it leads
/// of a link that is not paused; on the metadata leader, syncs the links.
pub(crate) async fn mirror_loop(node: Arc<Node>) {
    let mut tick = tokio::time::interval(MIRROR_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_sync: Option<cairn_clock::Instant> = None;
    loop {
        tick.tick().await;
        let (links, topics) = node
            .meta_view
            .read(|s| (s.mirror_links.clone(), s.mirror_topics.clone()));
        // What deleted links left behind.
        if let Ok(mut errors) = node.mirrors.sync_errors.lock() {
            errors.retain(|name, _| links.contains_key(name));
        }
        node.mirrors
            .clients
            .lock()
            .await
            .retain(|name, _| links.contains_key(name));
        let mut wanted: HashMap<GroupId, (Arc<Replica>, MirrorLink)> = HashMap::new();
        for r in node.all_replicas() {
            let Some(link) = topics.get(&r.topic).and_then(|l| links.get(l)) else {
                continue;
            };
            if !link.paused && r.is_leader() {
                wanted.insert(r.group, (r, link.clone()));
            }
        }
        let stopped: Vec<Puller> = {
            let Ok(mut pullers) = node.mirrors.pullers.lock() else {
                return;
            };
            let gone: Vec<GroupId> = pullers
                .iter()
                .filter(|(g, p)| {
                    p.task.is_finished() || wanted.get(g).is_none_or(|(_, l)| *l != p.link)
                })
                .map(|(g, _)| *g)
                .collect();
            gone.iter().filter_map(|g| pullers.remove(g)).collect()
        };
        if let Ok(mut status) = node.mirrors.status.lock() {
            for p in &stopped {
                status.remove(&p.key);
            }
        }
        drop(stopped);
        for (group, (replica, link)) in wanted {
            let running = node
                .mirrors
                .pullers
                .lock()
                .map(|p| p.contains_key(&group))
                .unwrap_or(true);
            if running {
                continue;
            }
            let client = match node.mirrors.client(&link).await {
                Ok(c) => c,
                Err(e) => {
                    set_error(&node, &link, &replica, "error", e);
                    continue;
                }
            };
            let key = (replica.topic.clone(), replica.partition);
            let task = tokio::spawn(pull(node.clone(), replica, link.clone(), client));
            if let Ok(mut p) = node.mirrors.pullers.lock() {
                p.insert(group, Puller { link, key, task });
            }
        }
        if node.meta_leader() == Some(node.id)
            && last_sync.is_none_or(|t| {
                t.elapsed() >= Duration::from_millis(node.config.mirror_sync_interval_ms)
            })
        {
            last_sync = Some(cairn_clock::now());
            for link in links.values().filter(|l| !l.paused) {
                let result = sync_link(&node, link).await;
                if let Err(e) = &result {
                    tracing::warn!(link = %link.name, error = %e, "mirror link sync failed");
                }
                if let Ok(mut errors) = node.mirrors.sync_errors.lock() {
                    errors.insert(
                        link.name.clone(),
                        (result.err().unwrap_or_default(), now_ms()),
                    );
                }
            }
        }
    }
}

fn set_error(node: &Node, link: &MirrorLink, r: &Replica, state: &str, error: String) {
    if let Ok(mut status) = node.mirrors.status.lock() {
        let s = status
            .entry((r.topic.clone(), r.partition))
            .or_insert_with(|| MirrorPartitionStatus {
                link: link.name.clone(),
                topic: r.topic.clone(),
                partition: r.partition,
                node: node.id,
                ..Default::default()
            });
        s.state = state.to_string();
        s.error = error;
        s.high_watermark = r.log.high_watermark();
        s.updated_ms = now_ms();
    }
}

/// Pulls one source partition into its mirror here while this node leads
/// it (the mirror loop aborts it otherwise).
async fn pull(node: Arc<Node>, r: Arc<Replica>, link: MirrorLink, client: Client) {
    let me = node.id;
    let status = node.mirrors.status.clone();
    let key = (r.topic.clone(), r.partition);
    let update = |f: &mut dyn FnMut(&mut MirrorPartitionStatus)| {
        if let Ok(mut s) = status.lock() {
            let s = s
                .entry(key.clone())
                .or_insert_with(|| MirrorPartitionStatus {
                    link: link.name.clone(),
                    topic: r.topic.clone(),
                    partition: r.partition,
                    node: me,
                    state: "mirroring".into(),
                    ..Default::default()
                });
            f(s);
            s.high_watermark = r.log.high_watermark();
            s.lag_records = s.source_high_watermark.saturating_sub(s.high_watermark);
            s.lag_bytes = match s.records_mirrored {
                0 => 0,
                n => s.lag_records.saturating_mul(s.bytes_mirrored) / n,
            };
            s.updated_ms = now_ms();
            let labels = [
                ("link", s.link.clone()),
                ("topic", s.topic.clone()),
                ("partition", s.partition.to_string()),
            ];
            metrics::gauge!("cairn_mirror_lag_records", &labels).set(s.lag_records as f64);
            metrics::gauge!("cairn_mirror_lag_bytes", &labels).set(s.lag_bytes as f64);
            metrics::gauge!("cairn_mirror_lag_ms", &labels).set(s.lag_ms as f64);
            metrics::gauge!("cairn_mirror_replication_latency_ms", &labels)
                .set(s.replication_latency_ms as f64);
        }
    };
    // Milliseconds (an atomic: the pull task must be Send).
    let backoff = std::sync::atomic::AtomicU64::new(100);
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    #[allow(clippy::type_complexity)]
    let fail = |update: &dyn Fn(&mut dyn FnMut(&mut MirrorPartitionStatus)),
                state: &str,
                error: String| {
        tracing::debug!(link = %link.name, topic = %r.topic, partition = r.partition, %error, "mirror pull failed");
        metrics::counter!("cairn_mirror_pull_errors_total", "link" => link.name.clone())
            .increment(1);
        let state = state.to_string();
        update(&mut |s| {
            s.state = state.clone();
            s.error = error.clone();
        });
        let wait = Duration::from_millis(backoff.load(relaxed));
        backoff.store((wait * 2).min(MAX_BACKOFF).as_millis() as u64, relaxed);
        wait
    };
    // Where the source's log starts, when it deleted records this side has
    // not mirrored: the next pull starts there, leaving the gap.
    let mut skip_to: Option<u64> = None;
    loop {
        if !r.is_leader() {
            return;
        }
        let end = r.log.high_watermark();
        let from = skip_to.filter(|s| *s > end).unwrap_or(end);
        let fetched = client
            .fetch(
                &r.topic,
                r.partition,
                from,
                MIRROR_FETCH_BYTES,
                MIRROR_FETCH_WAIT_MS,
            )
            .await;
        let resp = match fetched {
            Ok(resp) => resp,
            Err(e) if e.code() == Some(ErrorCode::OffsetOutOfRange) => {
                let earliest = client
                    .list_offsets(&r.topic, r.partition, OffsetSpec::Earliest)
                    .await;
                let latest = client
                    .list_offsets(&r.topic, r.partition, OffsetSpec::Latest)
                    .await;
                match (earliest, latest) {
                    (Ok(first), _) if (first.offset.max(0) as u64) > from => {
                        let first = first.offset as u64;
                        tracing::warn!(link = %link.name, topic = %r.topic, partition = r.partition, from, source_log_start = first, "the source deleted records before they were mirrored; the gap is kept");
                        update(&mut |s| s.records_skipped += first - from);
                        skip_to = Some(first);
                        continue;
                    }
                    (_, Ok(last)) if (last.offset.max(0) as u64) < from => {
                        let wait = fail(
                            &update,
                            "diverged",
                            format!(
                                "this log ends at {from}, past the source's end {}: the source lost records mirrored here, or is another history (see docs/dr.md, failback)",
                                last.offset
                            ),
                        );
                        tokio::time::sleep(wait.max(Duration::from_secs(1))).await;
                        continue;
                    }
                    _ => {
                        let wait = fail(&update, "error", e.to_string());
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                }
            }
            Err(e) => {
                let wait = fail(&update, "error", e.to_string());
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        let runs = match runs(&resp.records, from) {
            Ok(runs) => runs,
            Err(e) => {
                let wait = fail(
                    &update,
                    "error",
                    format!("bad batches from the source: {e}"),
                );
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        let now = now_ms();
        update(&mut |s| {
            s.source_high_watermark = resp.high_watermark;
            s.source_log_start = resp.log_start_offset;
            s.lag_ms = runs
                .first()
                .map_or(0, |run| now.saturating_sub(run.first_timestamp_ms).max(0));
            if runs.is_empty() && s.state != "diverged" {
                s.state = "caught-up".into();
                s.error.clear();
            }
        });
        if runs.is_empty() {
            continue;
        }
        // An idle group's lease lapses (no periodic heartbeats): renew it
        // as a produce does, or the write is refused as if not the leader.
        if let Err(e) = crate::ops::require_lease(&r, &r.topic, r.partition).await {
            let wait = fail(&update, "error", e.to_string());
            tokio::time::sleep(wait).await;
            continue;
        }
        // Producer state expires here as the topic here says (its configs
        // are mirrored, so normally as at the source).
        let node_default = node.broker_default("producer.id.expiration.ms");
        let expiration_ms = node.meta_view.read(|s| {
            crate::ops::produce::producer_id_expiration_ms(
                node_default,
                s.topics
                    .get(&r.topic)
                    .map(|t| &t.configs)
                    .unwrap_or(&Default::default()),
            )
        });
        // Proposed together (openraft batches them), each onto the end the
        // one before leaves: if one is not appended, none after it is.
        let mut log_end = end;
        let writes: Vec<_> = runs
            .iter()
            .map(|run| {
                let at = MirrorAt {
                    base_offset: run.base_offset,
                    log_end,
                };
                log_end = run.next_offset();
                let cmd = RaftRequest::Produce(ProduceCommand {
                    records: run.records.clone(),
                    record_count: run.offset_count,
                    max_timestamp_ms: run.max_timestamp_ms,
                    producer: run.producer,
                    stamp: Some(ProduceStamp {
                        append_time_ms: now,
                        producer_id_expiration_ms: expiration_ms,
                    }),
                    mirror: Some(at),
                });
                let raft = r.raft.clone();
                async move { tokio::time::timeout(APPEND_TIMEOUT, raft.client_write(cmd)).await }
            })
            .collect();
        let results = futures::future::join_all(writes).await;
        let mut appended = (0u64, 0u64, None);
        let mut failure = None;
        for (run, result) in runs.iter().zip(results) {
            match result {
                Ok(Ok(resp)) => match resp.data {
                    RaftResponse::Produce { .. } => {
                        appended.0 += u64::from(run.offset_count);
                        appended.1 += run.records.len() as u64;
                        appended.2 = Some(run.max_timestamp_ms);
                    }
                    RaftResponse::MirrorMismatch { next_offset } => {
                        failure.get_or_insert(format!(
                            "the log ended at {next_offset}, not where this pull saw it; pulling again"
                        ));
                    }
                    other => {
                        failure.get_or_insert(format!("the partition answered {other:?}"));
                    }
                },
                Ok(Err(e)) => {
                    failure.get_or_insert(format!("append failed: {e}"));
                }
                Err(_) => {
                    failure.get_or_insert(format!(
                        "append not committed within {} s",
                        APPEND_TIMEOUT.as_secs()
                    ));
                }
            }
        }
        let (records, bytes, newest) = appended;
        if records > 0 {
            metrics::counter!("cairn_mirror_records_total", "link" => link.name.clone())
                .increment(records);
            metrics::counter!("cairn_mirror_bytes_total", "link" => link.name.clone())
                .increment(bytes);
            let appended_ms = now_ms();
            update(&mut |s| {
                s.records_mirrored += records;
                s.bytes_mirrored += bytes;
                if let Some(ts) = newest {
                    s.replication_latency_ms = appended_ms.saturating_sub(ts).max(0);
                }
                s.state = "mirroring".into();
                s.error.clear();
            });
        }
        match failure {
            None => backoff.store(100, relaxed),
            Some(e) if records > 0 => {
                tracing::debug!(link = %link.name, topic = %r.topic, partition = r.partition, error = %e, "mirror pull partly appended");
            }
            Some(e) => {
                let wait = fail(&update, "error", e);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// One sync of a link's metadata, on the metadata leader: mirror topics
/// created and grown, configs, ACLs, group offsets.
async fn sync_link(node: &Node, link: &MirrorLink) -> Result<(), String> {
    let client = node.mirrors.client(link).await?;
    let source = client
        .list_topics()
        .await
        .map_err(|e| format!("listing the source's topics: {e}"))?;
    let live = node.meta_view.read(|s| {
        s.nodes
            .keys()
            .filter(|id| **id == node.id || node.liveness.is_alive(**id))
            .count() as u32
    });
    for t in source.iter().filter(|t| link.mirrors_topic(&t.name)) {
        let (local, mirrored_by) = node.meta_view.read(|s| {
            (
                s.topics.get(&t.name).cloned(),
                s.mirror_topics.get(&t.name).cloned(),
            )
        });
        let configs: BTreeMap<String, String> = t
            .configs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        match local {
            None => {
                let proposal = Proposal::CreateMirrorTopic {
                    link: link.name.clone(),
                    name: t.name.clone(),
                    partitions: t.partitions.len() as u32,
                    replication_factor: t.replication_factor.clamp(1, live.max(1)),
                    configs,
                };
                match node.propose(proposal).await.map_err(|e| e.to_string())? {
                    MetaResponse::TopicCreated(_) => {
                        tracing::info!(link = %link.name, topic = %t.name, partitions = t.partitions.len(), "mirror topic created");
                    }
                    MetaResponse::Error(e) => {
                        tracing::warn!(link = %link.name, topic = %t.name, error = %e, "mirror topic not created")
                    }
                    _ => {}
                }
            }
            Some(local) if mirrored_by.as_deref() == Some(link.name.as_str()) => {
                if local.partitions.len() < t.partitions.len() {
                    let proposal = Proposal::CreatePartitions {
                        name: t.name.clone(),
                        count: t.partitions.len() as u32,
                    };
                    node.propose(proposal).await.map_err(|e| e.to_string())?;
                    tracing::info!(link = %link.name, topic = %t.name, partitions = t.partitions.len(), "mirror topic grown");
                }
                if local.configs != configs {
                    let delete: Vec<String> = local
                        .configs
                        .keys()
                        .filter(|k| !configs.contains_key(*k))
                        .cloned()
                        .collect();
                    let cmd = MetaCommand::AlterTopicConfig {
                        name: t.name.clone(),
                        set: configs,
                        delete,
                    };
                    node.propose(Proposal::Command(cmd))
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            // A topic of the same name that is not this link's mirror:
            // left alone (promoted, or the cluster's own).
            Some(_) => {}
        }
    }
    // A security sync the source refuses does not hold back the offsets.
    let security = match link.sync_acls {
        true => sync_security(node, link, &client).await,
        false => Ok(()),
    };
    if !link.groups_include.is_empty() {
        sync_group_offsets(node, link, &client).await?;
    }
    security
}

/// Copies the source's ACL bindings, roles and users (SCRAM credentials
/// as stored) when they differ from what the link last put here; what the
/// source dropped goes here too (`cairn_metadata::SourceSecurity`).
async fn sync_security(node: &Node, link: &MirrorLink, client: &Client) -> Result<(), String> {
    let entry = |a: cairn_client::proto::AclBinding| AclEntry {
        principal: a.principal,
        host: a.host,
        resource_type: a.resource_type,
        resource_name: a.resource_name,
        pattern_type: a.pattern_type,
        operation: a.operation,
        permission: a.permission,
    };
    let acls = client
        .list_acls(Default::default())
        .await
        .map_err(|e| format!("listing the source's ACLs: {e}"))?;
    let roles = client
        .list_roles()
        .await
        .map_err(|e| format!("listing the source's roles: {e}"))?;
    let credentials = client.export_users().await.map_err(|e| {
        format!("exporting the source's users (the link's principal needs CLUSTER_ACTION on the source's cluster): {e}")
    })?;
    let mut security = SourceSecurity {
        acls: acls.into_iter().map(entry).collect(),
        ..SourceSecurity::default()
    };
    for r in roles {
        let role = Role {
            acls: r.acls.into_iter().map(entry).collect(),
            members: r.members.into_iter().collect(),
        };
        security.roles.insert(r.role, role);
    }
    for c in credentials {
        let credential = ScramCredential {
            salt: c.salt.to_vec(),
            iterations: c.iterations,
            stored_key: c.stored_key.to_vec(),
            server_key: c.server_key.to_vec(),
        };
        security
            .users
            .entry(c.user)
            .or_default()
            .insert(c.mechanism, credential);
    }
    let items = security.acls.len() + security.roles.len() + security.users.len();
    if items > MAX_MIRRORED_SECURITY {
        return Err(format!(
            "the source has {items} ACL bindings, roles and users; a link copies at most {MAX_MIRRORED_SECURITY}"
        ));
    }
    if !node
        .meta_view
        .read(|s| s.mirror_security_differs(&link.name, &security))
    {
        return Ok(());
    }
    let (acls, roles, users) = (
        security.acls.len(),
        security.roles.len(),
        security.users.len(),
    );
    let cmd = MetaCommand::SyncMirrorSecurity {
        link: link.name.clone(),
        security,
    };
    match node.propose(Proposal::Command(cmd)).await {
        Ok(MetaResponse::Ok) => {
            tracing::info!(link = %link.name, acls, roles, users, "mirror security synced");
            Ok(())
        }
        Ok(other) => Err(format!("syncing security: {other:?}")),
        Err(e) => Err(format!("syncing security: {e}")),
    }
}

/// Copies the committed offsets of the link's groups, for its mirror
/// topics, to groups that have no members here (a group consuming here
/// commits its own).
async fn sync_group_offsets(node: &Node, link: &MirrorLink, client: &Client) -> Result<(), String> {
    let groups = client
        .list_groups()
        .await
        .map_err(|e| format!("listing the source's groups: {e}"))?;
    // This link's mirror topics: each partition's Raft group.
    let mirrored: BTreeMap<String, BTreeMap<u32, GroupId>> = node.meta_view.read(|s| {
        s.mirror_topics
            .iter()
            .filter(|(_, l)| **l == link.name)
            .filter_map(|(t, _)| {
                let partitions = s.topics.get(t)?.partitions.iter();
                Some((
                    t.clone(),
                    partitions.map(|p| (p.partition, p.group)).collect(),
                ))
            })
            .collect()
    });
    for g in groups.iter().filter(|g| link.mirrors_group(&g.group)) {
        let offsets = client
            .fetch_offsets(&g.group)
            .await
            .map_err(|e| format!("fetching group {}'s offsets: {e}", g.group))?;
        let (has_members, have) = node.meta_view.read(|s| {
            (
                s.groups
                    .get(&g.group)
                    .is_some_and(|m| !m.members.is_empty()),
                s.group_offsets.get(&g.group).cloned().unwrap_or_default(),
            )
        });
        if has_members {
            continue;
        }
        let changed: Vec<(String, u32, CommittedOffset)> = offsets
            .into_iter()
            // Never past what is mirrored here: after a promotion new
            // records take the offsets above, and a group resuming past
            // them would skip them. Below, it re-reads (duplicates) instead.
            .filter_map(|mut o| {
                let g = mirrored.get(&o.topic)?.get(&o.partition)?;
                // Unknown here for now (no leader heard of): next round.
                let status = node.group_status(*g);
                status.leader?;
                o.offset = o.offset.min(status.high_watermark as i64);
                Some(o)
            })
            .filter(|o| {
                have.get(&o.topic)
                    .and_then(|p| p.get(&o.partition))
                    .is_none_or(|c| c.offset != o.offset)
            })
            .map(|o| {
                (
                    o.topic,
                    o.partition,
                    CommittedOffset {
                        offset: o.offset,
                        metadata: o.metadata,
                        commit_time_ms: now_ms(),
                        // The source's epochs mean nothing to the target's
                        // partitions (their Raft terms differ).
                        leader_epoch: None,
                    },
                )
            })
            .collect();
        if changed.is_empty() {
            continue;
        }
        let cmd = MetaCommand::CommitOffsets {
            group: g.group.clone(),
            offsets: changed,
        };
        node.propose(Proposal::Command(cmd))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Every live peer's `MirrorStatus` answer (a peer that does not answer
/// within 2 s is left out).
async fn ask_peers(node: &Node) -> Vec<cairn_proto::internal::MirrorStatusReply> {
    let peers: Vec<u64> = node.meta_view.read(|s| {
        s.nodes
            .keys()
            .copied()
            .filter(|id| *id != node.id && node.liveness.is_alive(*id))
            .collect()
    });
    let mut out = Vec::new();
    for peer in peers {
        let Ok(mut c) = node.transport.client(peer) else {
            continue;
        };
        let reply = tokio::time::timeout(
            Duration::from_secs(2),
            c.mirror_status(cairn_proto::internal::MirrorStatusRequest {}),
        )
        .await;
        if let Ok(Ok(reply)) = reply {
            out.push(reply.into_inner());
        }
    }
    out
}

/// Every mirrored partition's status, from every live node (each reports
/// the partitions it leads).
pub(crate) async fn cluster_status(node: &Node) -> Vec<MirrorPartitionStatus> {
    let mut all = node.mirrors.local_status();
    for reply in ask_peers(node).await {
        if let Ok(v) = serde_json::from_slice::<Vec<MirrorPartitionStatus>>(&reply.partitions) {
            all.extend(v);
        }
    }
    all.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    all.dedup_by(|a, b| a.topic == b.topic && a.partition == b.partition);
    all
}

/// Waits until no live node's metadata view marks any of `topics` as a
/// mirror (each is asked over the internal RPC); false after `within`. A
/// node that does not answer is not waited for.
pub(crate) async fn wait_promoted(node: &Node, topics: &[String], within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut pending = node
            .meta_view
            .read(|s| topics.iter().any(|t| s.mirror_topics.contains_key(t)));
        if !pending {
            pending = ask_peers(node)
                .await
                .iter()
                .any(|r| r.mirror_topics.iter().any(|t| topics.contains(t)));
        }
        if !pending {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client of the link's source (shared with the link's pullers).
pub(crate) async fn source_client(node: &Node, link: &MirrorLink) -> Result<Client, String> {
    node.mirrors.client(link).await
}

/// The link by name, or the error naming it.
pub(crate) fn link(node: &Node, name: &str) -> Result<MirrorLink, ApiError> {
    node.meta_view
        .read(|s| s.mirror_links.get(name).cloned())
        .ok_or_else(|| ApiError::UnknownMirrorLink(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: i64, n: usize, producer: Option<(i64, i32)>) -> Vec<u8> {
        let mut b = cairn_record::RecordBatchBuilder::new();
        if let Some((id, seq)) = producer {
            b = b.with_producer(id, 0, seq);
        }
        for i in 0..n {
            b.push(1000 + i as i64, None, Some(b"v"), &[]);
        }
        let mut bytes = b.build().to_vec();
        cairn_record::assign_offsets(&mut bytes, base, 0).unwrap();
        bytes
    }

    #[test]
    fn fetched_batches_are_cut_into_contiguous_runs_of_one_producer() {
        let mut all = Vec::new();
        all.extend(batch(0, 3, None));
        all.extend(batch(3, 2, None));
        all.extend(batch(5, 2, Some((7, 0))));
        all.extend(batch(7, 2, Some((7, 2))));
        // A gap the source has (its compaction or retention).
        all.extend(batch(20, 1, Some((7, 4))));
        let all = Bytes::from(all);
        let r = runs(&all, 0).unwrap();
        type Shape = (u64, u32, Option<(i32, i32)>);
        let shape: Vec<Shape> = r
            .iter()
            .map(|r| {
                (
                    r.base_offset,
                    r.offset_count,
                    r.producer.map(|p| (p.first_sequence, p.last_sequence)),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![(0, 5, None), (5, 4, Some((0, 3))), (20, 1, Some((4, 4)))]
        );
        // A fetch from 4 starts at the batch holding it: refused, as this
        // log cannot end inside a batch.
        assert!(runs(&all, 4).is_err());
        // From 5: the batches before are dropped.
        assert_eq!(runs(&all, 5).unwrap()[0].base_offset, 5);
        assert_eq!(runs(&all, 21).unwrap(), vec![]);
    }
}
