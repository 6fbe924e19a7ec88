//! Node-to-node transport: one connection per peer, Raft messages of all
//! groups coalesced into batched RPCs.
//!
//! ```text
//!  group 7 ─┐                       ┌─> RaftBatch{ msgs of groups 7, 9, 12 } ─> peer 2
//!  group 9 ─┼─> Peer(2) queue ──────┤   (up to MAX_BATCH_MSGS, a few in flight)
//!  group 12 ┘                       └─> replies routed back by position
//! ```
//!
//! Every `call` queues one message on the target's peer task. The task takes
//! all that is queued (bounded) and sends it as one `Internal/Raft` call on
//! the peer's single HTTP/2 connection, with at most `MAX_INFLIGHT_BATCHES`
//! batches in flight, so one fsync-bound round trip serves many groups.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::RwLock;
use std::time::Duration;

use bytes::Bytes;
use cairn_proto::internal::internal_client::InternalClient;
use cairn_proto::internal::RaftBatch;
use cairn_proto::internal::RaftKind;
use cairn_proto::internal::RaftMessage;
use cairn_proto::internal::RaftReply;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio::sync::Semaphore;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

use crate::net::Dial;
use crate::net::Fate;
use crate::net::MessageFaults;
use crate::types::GroupId;
use crate::types::NodeId;

const MAX_BATCH_MSGS: usize = 1024;
const MAX_BATCH_BYTES: usize = 16 << 20;
const MAX_INFLIGHT_BATCHES: usize = 4;
const QUEUE_DEPTH: usize = 8192;

#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    #[error("no address known for node {0}")]
    UnknownNode(NodeId),
    #[error("invalid address {addr:?} for node {node}")]
    BadAddress { node: NodeId, addr: String },
    #[error("node {node} unreachable: {reason}")]
    Unreachable { node: NodeId, reason: String },
    #[error("call to node {node} timed out after {timeout:?}")]
    Timeout { node: NodeId, timeout: Duration },
    #[error("node {node} could not handle the message: {reason}")]
    Remote {
        node: NodeId,
        reason: String,
        group_missing: bool,
    },
}

struct Pending {
    group: GroupId,
    kind: RaftKind,
    body: Bytes,
    reply: oneshot::Sender<Result<Bytes, TransportError>>,
}

struct Peer {
    addr: String,
    queue: mpsc::Sender<Pending>,
    client: InternalClient<Channel>,
}

/// The node's view of its peers' addresses and one batched sender per peer.
pub struct Transport {
    me: NodeId,
    cluster_id: Arc<RwLock<String>>,
    addresses: RwLock<HashMap<NodeId, String>>,
    peers: Mutex<HashMap<NodeId, Arc<Peer>>>,
    /// Bytes of snapshot per message ([`crate::SNAPSHOT_CHUNK_BYTES`] unless set).
    snapshot_chunk_bytes: std::sync::atomic::AtomicUsize,
    /// How connections to peers are opened: TCP, mutual TLS
    /// (`rpc_tls = "mtls"`), or the simulator's network.
    dial: Dial,
    /// Fault injection only (the simulator): the fate of each message.
    faults: Option<Arc<dyn MessageFaults>>,
}

impl Transport {
    pub fn new(me: NodeId) -> Arc<Self> {
        Self::with_tls(me, None)
    }

    /// A transport whose connections to peers go through `tls`.
    pub fn with_tls(me: NodeId, tls: Option<cairn_tls::TlsConnector>) -> Arc<Self> {
        Self::with_dial(me, tls.map_or(Dial::Tcp, Dial::Tls), None)
    }

    /// A transport whose connections are opened by `dial`, and whose
    /// messages meet `faults` (fault injection) when given.
    pub fn with_dial(me: NodeId, dial: Dial, faults: Option<Arc<dyn MessageFaults>>) -> Arc<Self> {
        Arc::new(Self {
            dial,
            faults,
            me,
            cluster_id: Arc::new(RwLock::new(String::new())),
            addresses: RwLock::new(HashMap::new()),
            peers: Mutex::new(HashMap::new()),
            snapshot_chunk_bytes: std::sync::atomic::AtomicUsize::new(crate::SNAPSHOT_CHUNK_BYTES),
        })
    }

    /// Snapshots are sent in chunks of at most `bytes` (at least 1).
    pub fn set_snapshot_chunk_bytes(&self, bytes: usize) {
        self.snapshot_chunk_bytes
            .store(bytes.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn snapshot_chunk_bytes(&self) -> usize {
        self.snapshot_chunk_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    pub fn set_cluster_id(&self, id: &str) {
        if let Ok(mut c) = self.cluster_id.write() {
            *c = id.to_string();
        }
    }

    pub fn cluster_id(&self) -> String {
        self.cluster_id
            .read()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Records (or changes) a node's internal RPC address.
    pub fn set_address(&self, node: NodeId, addr: &str) {
        if let Ok(mut a) = self.addresses.write() {
            if a.get(&node).map(String::as_str) != Some(addr) {
                a.insert(node, addr.to_string());
            }
        }
    }

    pub fn address(&self, node: NodeId) -> Option<String> {
        self.addresses.read().ok()?.get(&node).cloned()
    }

    pub fn known_nodes(&self) -> Vec<NodeId> {
        self.addresses
            .read()
            .map(|a| a.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The connector for connections to peers, if they run over TLS.
    pub fn tls(&self) -> Option<&cairn_tls::TlsConnector> {
        self.dial.tls()
    }

    /// How connections to peers are opened.
    pub fn dial(&self) -> &Dial {
        &self.dial
    }

    /// A gRPC client to a peer's internal service, over the peer's one connection.
    pub fn client(&self, node: NodeId) -> Result<InternalClient<Channel>, TransportError> {
        Ok(self.peer(node)?.client.clone())
    }

    fn peer(&self, node: NodeId) -> Result<Arc<Peer>, TransportError> {
        let addr = self
            .address(node)
            .ok_or(TransportError::UnknownNode(node))?;
        let mut peers = self
            .peers
            .lock()
            .map_err(|_| TransportError::UnknownNode(node))?;
        if let Some(p) = peers.get(&node) {
            if p.addr == addr {
                return Ok(p.clone());
            }
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|_| TransportError::BadAddress {
                node,
                addr: addr.clone(),
            })?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .initial_connection_window_size(Some(16 << 20))
            .initial_stream_window_size(Some(8 << 20));
        let channel = self.dial.channel(endpoint, self.me, &addr);
        let client = InternalClient::new(channel)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20);
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let peer = Arc::new(Peer {
            addr,
            queue: tx,
            client: client.clone(),
        });
        tokio::spawn(run_peer(self.me, node, self.cluster_id.clone(), rx, client));
        peers.insert(node, peer.clone());
        Ok(peer)
    }

    /// Sends one Raft message of `group` to `target` and waits for its reply.
    pub async fn call(
        &self,
        target: NodeId,
        group: GroupId,
        kind: RaftKind,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, TransportError> {
        let fate = match &self.faults {
            Some(f) => f.fate(self.me, target, group),
            None => Fate::Deliver,
        };
        let timed_out = TransportError::Timeout {
            node: target,
            timeout,
        };
        match fate {
            Fate::Deliver => {}
            Fate::Drop => {
                tokio::time::sleep(timeout).await;
                return Err(timed_out);
            }
            Fate::DropReply => {
                let _ = self.send(target, group, kind, body, timeout).await;
                return Err(timed_out);
            }
            Fate::Duplicate => {
                let first = self.send(target, group, kind, body.clone(), timeout);
                let second = self.send(target, group, kind, body, timeout);
                return tokio::join!(first, second).0;
            }
            Fate::Delay(d) => {
                if d >= timeout {
                    tokio::time::sleep(timeout).await;
                    return Err(timed_out);
                }
                tokio::time::sleep(d).await;
                return self.send(target, group, kind, body, timeout - d).await;
            }
        }
        self.send(target, group, kind, body, timeout).await
    }

    async fn send(
        &self,
        target: NodeId,
        group: GroupId,
        kind: RaftKind,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, TransportError> {
        let peer = self.peer(target)?;
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            group,
            kind,
            body,
            reply: tx,
        };
        let unreachable = |reason: &str| TransportError::Unreachable {
            node: target,
            reason: reason.to_string(),
        };
        peer.queue
            .send(pending)
            .await
            .map_err(|_| unreachable("peer sender stopped"))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(unreachable("reply dropped")),
            Err(_) => Err(TransportError::Timeout {
                node: target,
                timeout,
            }),
        }
    }
}

async fn run_peer(
    me: NodeId,
    target: NodeId,
    cluster_id: Arc<RwLock<String>>,
    mut queue: mpsc::Receiver<Pending>,
    client: InternalClient<Channel>,
) {
    let inflight = Arc::new(Semaphore::new(MAX_INFLIGHT_BATCHES));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            return;
        };
        // Take whatever queued up while we waited for a free slot.
        let mut batch = vec![first];
        let mut bytes = batch[0].body.len();
        while batch.len() < MAX_BATCH_MSGS && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(p) => {
                    bytes += p.body.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        metrics::histogram!("cairn_transport_batch_messages").record(batch.len() as f64);
        let mut client = client.clone();
        let cluster_id = cluster_id.read().map(|c| c.clone()).unwrap_or_default();
        tokio::spawn(async move {
            let _permit = permit;
            let messages = batch
                .iter()
                .map(|p| RaftMessage {
                    group: p.group,
                    kind: p.kind as i32,
                    body: p.body.clone(),
                })
                .collect();
            let request = RaftBatch {
                from: me,
                cluster_id,
                messages,
            };
            match client.raft(request).await {
                Ok(reply) => {
                    let replies = reply.into_inner().replies;
                    if replies.len() != batch.len() {
                        let reason = format!(
                            "peer answered {} replies to {} messages",
                            replies.len(),
                            batch.len()
                        );
                        fail_all(batch, target, &reason);
                        return;
                    }
                    for (p, r) in batch.into_iter().zip(replies) {
                        let _ = p.reply.send(reply_result(target, r));
                    }
                }
                Err(status) => {
                    tracing::debug!(peer = target, code = ?status.code(), "raft batch failed");
                    fail_all(batch, target, status.message());
                }
            }
        });
    }
}

fn reply_result(node: NodeId, r: RaftReply) -> Result<Bytes, TransportError> {
    if r.error.is_empty() {
        Ok(r.body)
    } else {
        Err(TransportError::Remote {
            node,
            reason: r.error,
            group_missing: r.group_missing,
        })
    }
}

fn fail_all(batch: Vec<Pending>, node: NodeId, reason: &str) {
    for p in batch {
        let _ = p.reply.send(Err(TransportError::Unreachable {
            node,
            reason: reason.to_string(),
        }));
    }
}
