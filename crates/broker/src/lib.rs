//! The core of a Cairn node, behind one door: [`Broker`].
//!
//! Every client door (the Kafka listener, the gRPC API, the admin HTTP in
//! `cairn-server`; later the mirror, the schema registry, the console)
//! calls [`Broker`] only. Each operation takes a [`RequestContext`]: who
//! asks, from where, through which listener. [`Broker`] authorizes it once,
//! against [`acl::OPERATIONS`], and audits it. Nothing else of the core is
//! public, so a door cannot reach around it.
//!
//! ```text
//!   doors (cairn-server: Kafka, gRPC, admin HTTP)   peers (internal RPC :50052)
//!                    │                                   │
//!       Broker (authorize · audit · ops)           InternalService
//!                    │                                   │
//!   ┌────────────────┴───────────── Node ────────────────┴─────────────┐
//!   │ metadata Raft group 0 (MetaStateMachine, MetaView)                │
//!   │ partition replicas: Raft group per partition (cairn-partition)    │
//!   │ tasks: heartbeats · election driver · reconciler · registration   │
//!   │ Transport (batched RPC per peer) · Liveness · NodeStore (RocksDB) │
//!   └───────────────────────────────────────────────────────────────────┘
//! ```

pub use cairn_acl as acl;
pub mod audit;
mod authn;
mod config;
/// Who asks: re-exported from `cairn-acl`.
pub mod context {
    pub use cairn_acl::context::*;
}
mod coordinator;
mod election;
mod error;
mod facade;
mod internal;
mod lease;
pub mod log_levels;
mod meta_sm;
mod mirror;
mod node;
mod oauth;
mod ops;
mod replica;
pub mod scram;
mod settling;
mod tasks;
pub mod views;

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

pub use authn::SaslExchange;
pub use authn::SaslStep;
pub use authn::ScramUpsertion;
pub use authn::UserCredentials;
pub use cairn_metadata::MirrorLink;
pub use cairn_metadata::NodeId;
use cairn_metadata::NodeInfo;
pub use cairn_partition::FetchResult;
pub use cairn_partition::FirstBatch;
pub use cairn_partition::ReadError;
use cairn_proto::internal::internal_server::InternalServer;
use cairn_proto::internal::JoinRequest;
use cairn_proto::internal::NodeHeartbeat;
use cairn_raft::Liveness;
use cairn_raft::Raft;
use cairn_raft::Transport;
use cairn_storage::NodeStore;
use cairn_storage::StateBatch;
use cairn_storage::StoreOptions;
use cairn_storage::NODE_GROUP;
pub use config::ConfigError;
pub use config::ServerConfig;
pub use context::Listener;
pub use context::Principal;
pub use context::RequestContext;
pub use coordinator::ConsumerGroupView;
pub use coordinator::ConsumerHeartbeatAnswer;
pub use coordinator::GroupDescription;
pub use coordinator::GroupSummary;
pub use coordinator::JoinArgs;
pub use coordinator::Joined;
pub use coordinator::MemberDescription;
pub use coordinator::MemberRef;
pub use coordinator::StoredOffset;
pub use error::ApiError as BrokerError;
pub use error::ServerError;
pub use facade::Broker;
pub use facade::GroupState;
pub use facade::OffsetToCommit;
pub use facade::PartitionReader;
pub use facade::PartitionResults;
pub use facade::RoleChange;
pub use facade::DEFAULT_REPLICATION_FACTOR;
pub use mirror::MirrorPartitionStatus;
use openraft::BasicNode;
use openraft::Config;
use openraft::SnapshotPolicy;
pub use ops::Acks;
pub use ops::NewTopic;
pub use ops::OffsetSpec;
pub use ops::Produced;
pub use ops::FETCH_MAX_BYTES_LIMIT;
pub use ops::FETCH_MAX_WAIT;
pub use settling::SETTLE_WINDOW;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::meta_sm::MetaStateMachine;
use crate::node::Node;

const NODE_ID_KEY: &[u8] = b"node_id";
/// A random id made when the data dir is first used: a node that comes back
/// with another data dir (a wiped or replaced disk) under a registered id is
/// told apart from the one registered.
const INCARNATION_KEY: &[u8] = b"incarnation";
/// With `test_lose_unsynced_on_crash`: while this file exists in the data
/// dir, the node's WAL fsyncs wait (a stalled disk), for fault injection.
pub const HOLD_SYNC_FILE: &str = "test-hold-sync";
/// With `test_lose_unsynced_on_crash`: while this file exists in the data
/// dir, the node's partition state machines wait before applying (a slow
/// state machine), for fault injection.
pub const HOLD_APPLY_FILE: &str = "test-hold-apply";
/// With `test_lose_unsynced_on_crash`: while this file exists in the data
/// dir, a read (fetch, list offsets) waits between its lease check and the
/// read itself (a stalled read), for fault injection.
pub const HOLD_READ_FILE: &str = "test-hold-read";

fn meta_raft_config(config: &ServerConfig, plants: Plants) -> Result<Arc<Config>, ServerError> {
    let every = config.metadata_snapshot_entries.max(1);
    Config {
        cluster_name: "cairn-metadata".to_string(),
        heartbeat_interval: lease::META_HEARTBEAT_MS,
        election_timeout_min: lease::META_ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: lease::META_ELECTION_TIMEOUT_MAX_MS,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(every),
        max_in_snapshot_log_to_keep: (every / 10).max(1),
        // Never resume leadership in the old term after a restart; see
        // `replica::partition_raft_config` (reliability finding 5).
        enable_leader_restore: Some(plants.leader_restore),
        ..Default::default()
    }
    .validate()
    .map(Arc::new)
    .map_err(|e| ServerError::Raft(e.to_string()))
}

fn tls_error(e: cairn_tls::TlsError) -> ServerError {
    ServerError::Tls(e.to_string())
}

async fn bind(addr: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Checks (or records) which node this data dir belongs to; returns the
/// cluster id recorded in it, if any, and the data dir's incarnation (made
/// now on first use, or on the first start of a version that has them).
fn check_data_dir(
    store: &NodeStore,
    config: &ServerConfig,
) -> Result<(Option<String>, String), ServerError> {
    match store.state_get(NODE_GROUP, NODE_ID_KEY)? {
        Some(bytes) => {
            let stored = bytes
                .as_slice()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if stored != config.node_id {
                return Err(ServerError::NodeIdMismatch {
                    data_dir: config.data_dir.display().to_string(),
                    stored,
                    configured: config.node_id,
                });
            }
        }
        None => {
            let mut batch = StateBatch::new();
            batch.put(NODE_GROUP, NODE_ID_KEY, &config.node_id.to_be_bytes());
            store.write(batch)?;
        }
    }
    let incarnation = match store.state_get(NODE_GROUP, INCARNATION_KEY)? {
        Some(b) => String::from_utf8_lossy(&b).into_owned(),
        None => {
            let made = format!("{:032x}", rand::random::<u128>());
            let mut batch = StateBatch::new();
            batch.put(NODE_GROUP, INCARNATION_KEY, made.as_bytes());
            store.write(batch)?;
            made
        }
    };
    let cluster = store
        .state_get(NODE_GROUP, tasks::CLUSTER_ID_KEY)?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    Ok((cluster, incarnation))
}

/// Asks the configured peers which cluster they belong to; a node whose data
/// dir holds another cluster's data must not join them.
async fn check_peers_cluster(
    config: &ServerConfig,
    transport: &Transport,
    local: &str,
    peers: &[String],
) -> Result<(), ServerError> {
    for addr in peers {
        let Ok(mut client) = internal::connect_addr(addr, transport) else {
            continue;
        };
        let hb = NodeHeartbeat {
            from: config.node_id,
            cluster_id: local.to_string(),
            led: vec![],
            grpc_addr: config.advertised_grpc(),
        };
        match tokio::time::timeout(Duration::from_secs(2), client.heartbeat(hb)).await {
            Ok(Ok(reply)) => {
                let remote = reply.into_inner().cluster_id;
                if !remote.is_empty() && remote != local {
                    return Err(ServerError::ClusterMismatch {
                        data_dir: config.data_dir.display().to_string(),
                        local: local.to_string(),
                        remote,
                        peer: addr.clone(),
                    });
                }
            }
            Ok(Err(status)) if status.message().contains("cluster mismatch") => {
                let remote = status
                    .message()
                    .split("belongs to cluster ")
                    .nth(1)
                    .and_then(|s| s.split(',').next())
                    .unwrap_or("another cluster")
                    .to_string();
                return Err(ServerError::ClusterMismatch {
                    data_dir: config.data_dir.display().to_string(),
                    local: local.to_string(),
                    remote,
                    peer: addr.clone(),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

async fn join_cluster(node: &Arc<Node>, addr: &str) -> Result<(), ServerError> {
    let err = |reason: String| ServerError::Join {
        addr: addr.to_string(),
        reason,
    };
    let info: NodeInfo = node.info();
    let request = JoinRequest {
        node_id: node.id,
        rpc_addr: info.rpc_addr.clone(),
        node: serde_json::to_vec(&info)
            .map_err(|e| err(e.to_string()))?
            .into(),
    };
    let mut last = String::new();
    for _ in 0..60 {
        let mut client = internal::connect_addr(addr, &node.transport).map_err(err)?;
        match client.join(request.clone()).await {
            Ok(reply) => {
                let cluster_id = reply.into_inner().cluster_id;
                tracing::info!(via = addr, cluster_id = %cluster_id, "joined the cluster");
                return Ok(());
            }
            // Refused for good (a removed id): no retry will change that.
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                return Err(err(status.message().to_string()));
            }
            Err(status) => last = status.message().to_string(),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(err(last))
}

/// A node's core, started: the internal RPC server for its peers and the
/// background loops run until [`Running::shutdown`].
pub struct Running {
    broker: Broker,
    node: Arc<Node>,
    internal_server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    tls: Option<Arc<cairn_tls::CertStore>>,
}

impl Running {
    /// The node's TLS material (watched and reloaded), if any listener or
    /// the internal RPC has TLS on.
    pub fn tls(&self) -> Option<Arc<cairn_tls::CertStore>> {
        self.tls.clone()
    }

    /// The node's store (the simulator copies it at a power loss).
    pub fn store(&self) -> cairn_storage::NodeStore {
        self.node.store.clone()
    }

    /// The door to this node's core.
    pub fn broker(&self) -> Broker {
        self.broker.clone()
    }

    /// With `join` configured and an empty data dir: asks the cluster to
    /// take this node in, retrying for a minute; until it answers, the node
    /// takes no Raft traffic. Returns at once for a node already admitted.
    pub async fn join(&self) -> Result<(), ServerError> {
        join_node(&self.node).await
    }

    /// [`Running::join`] as a task of its own.
    pub fn join_in_background(&self) -> tokio::task::JoinHandle<Result<(), ServerError>> {
        let node = self.node.clone();
        tokio::spawn(async move { join_node(&node).await })
    }
}

async fn join_node(node: &Arc<Node>) -> Result<(), ServerError> {
    if let Some(addr) = &node.config.join {
        if !node.admitted.load(std::sync::atomic::Ordering::Acquire) {
            join_cluster(node, addr).await?;
            node.admitted
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }
    Ok(())
}

impl Running {
    /// Resolves when the internal RPC server stops (it should not).
    pub async fn stopped(&mut self) -> ServerError {
        match (&mut self.internal_server).await {
            Ok(Err(e)) => ServerError::Raft(format!("internal server stopped: {e}")),
            _ => ServerError::Raft("internal server stopped".into()),
        }
    }

    /// Stops the background loops and every Raft group.
    pub async fn shutdown(self) {
        for t in self.tasks {
            t.abort();
        }
        self.internal_server.abort();
        // Replica changes under way run as tasks of their own.
        if let Ok(mut changes) = self.node.membership_changes.lock() {
            for (_, c) in changes.drain() {
                c.task.abort();
            }
        }
        for r in self.node.all_replicas() {
            let _ = r.raft.shutdown().await;
        }
        let _ = self.node.meta.shutdown().await;
    }
}

/// What a simulated node replaces; `Seams::default()` is a real node's:
/// TCP between the nodes, the store as the config makes it.
#[derive(Clone, Default)]
pub struct Seams {
    /// The network between the nodes (the internal RPC's connections).
    pub network: Option<Arc<dyn cairn_raft::PeerNetwork>>,
    /// The fate of each Raft message (fault injection).
    pub message_faults: Option<Arc<dyn cairn_raft::MessageFaults>>,
    /// The store's options, instead of those the config implies.
    pub store: Option<StoreOptions>,
    /// Bugs planted on purpose (none unless the simulator asks).
    pub plants: Plants,
}

/// Bugs planted on purpose, for the simulator to show it finds them; a
/// real node never has any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plants {
    /// Reliability finding 5, undone: a leader that restarts before anyone
    /// else is elected resumes leading in its old term (openraft's leader
    /// restore), so after a power loss it can write new entries under the
    /// log ids of entries it lost.
    pub leader_restore: bool,
}

/// Opens the data dir, starts the metadata group, the internal RPC server
/// and the background loops. The client doors are the caller's.
pub async fn start(config: ServerConfig) -> Result<Running, ServerError> {
    start_with(config, Seams::default()).await
}

/// [`start`] with some of its parts replaced (the simulator's).
pub async fn start_with(config: ServerConfig, seams: Seams) -> Result<Running, ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        ServerError::Raft(format!("cannot create {}: {e}", config.data_dir.display()))
    })?;
    let store_options = seams.store.clone().unwrap_or_else(|| StoreOptions {
        buffer_unsynced_wal: config.test_lose_unsynced_on_crash,
        hold_sync_while_exists: config
            .test_lose_unsynced_on_crash
            .then(|| config.data_dir.join(HOLD_SYNC_FILE)),
        hold_apply_while_exists: config
            .test_lose_unsynced_on_crash
            .then(|| config.data_dir.join(HOLD_APPLY_FILE)),
        ..StoreOptions::default()
    });
    if store_options.buffer_unsynced_wal {
        tracing::warn!(
            "test mode: unsynced log writes are lost on a crash (test_lose_unsynced_on_crash)"
        );
    }
    let oauth = oauth::OAuth::from_config(&config)
        .map_err(ServerError::OAuth)?
        .map(Arc::new);
    let store = NodeStore::open(&config.data_dir.join("db"), store_options)?;
    let (stored_cluster, incarnation) = check_data_dir(&store, &config)?;
    let voters = config.voter_map()?;

    let tls = match config.tls_files() {
        Some(files) => Some(cairn_tls::CertStore::load(files).map_err(tls_error)?),
        None => None,
    };
    let (rpc_server_tls, rpc_client_tls) = match (&tls, config.rpc_mtls()) {
        (Some(store), true) => (
            Some(store.server_for_nodes().map_err(tls_error)?),
            Some(cairn_tls::TlsConnector::new(
                store.client().map_err(tls_error)?,
            )),
        ),
        _ => (None, None),
    };
    let dial = match (&seams.network, rpc_client_tls) {
        (Some(net), _) => cairn_raft::Dial::Network(net.clone()),
        (None, Some(tls)) => cairn_raft::Dial::Tls(tls),
        (None, None) => cairn_raft::Dial::Tcp,
    };
    let transport = Transport::with_dial(config.node_id, dial, seams.message_faults.clone());
    transport.set_snapshot_chunk_bytes(config.raft_snapshot_chunk_bytes);
    for (id, addr) in &voters {
        transport.set_address(*id, addr);
    }
    if let Some(cluster) = &stored_cluster {
        let mut peers: Vec<String> = voters
            .iter()
            .filter(|(id, _)| **id != config.node_id)
            .map(|(_, a)| a.clone())
            .collect();
        peers.extend(config.join.clone());
        check_peers_cluster(&config, &transport, cluster, &peers).await?;
        transport.set_cluster_id(cluster);
    }

    let (sm, meta_view) =
        MetaStateMachine::open(store.clone()).map_err(|e| ServerError::Raft(e.to_string()))?;
    let meta = Raft::new(
        config.node_id,
        meta_raft_config(&config, seams.plants)?,
        node::network(&transport, node::meta_group()),
        store.log_store(node::meta_group()),
        sm,
    )
    .await
    .map_err(|e| ServerError::Raft(e.to_string()))?;

    // A joining node with an empty data dir takes no Raft traffic until its
    // join is accepted (`Node::admitted`).
    let admitted = config.join.is_none() || meta.is_initialized().await.unwrap_or(false);
    let (auditor, audit_sink) = audit::Auditor::new(
        config.node_id,
        config.audit_to_topic(),
        config.audit_log_path(),
    );
    let node = Arc::new(Node {
        audit: auditor,
        id: config.node_id,
        incarnation,
        admitted: std::sync::atomic::AtomicBool::new(admitted),
        config: config.clone(),
        store,
        transport,
        liveness: Arc::new(Liveness::new(config.node_id, node::DEAD_AFTER)),
        meta,
        meta_view,
        replicas: RwLock::new(HashMap::new()),
        led: RwLock::new(Vec::new()),
        heartbeat_now: Notify::new(),
        membership_changes: std::sync::Mutex::new(HashMap::new()),
        coordinator: coordinator::Coordinator::new(coordinator::GroupLimits {
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            consumer_heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms,
            consumer_session_timeout_ms: config.group_consumer_session_timeout_ms,
            consumer_max_size: coordinator::MAX_CONSUMER_GROUP_MEMBERS,
        }),
        producer_ids: std::sync::Mutex::new(0..0),
        started: cairn_clock::now(),
        snapshot_inbox: cairn_raft::SnapshotInbox::default(),
        mirrors: mirror::Mirrors::default(),
        plants: seams.plants,
    });

    let internal = InternalServer::new(internal::InternalService { node: node.clone() })
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .initial_connection_window_size(Some(16 << 20))
        .initial_stream_window_size(Some(8 << 20))
        .add_service(internal);
    let internal_server = match &seams.network {
        Some(net) => {
            let incoming = net
                .listen(config.node_id, &config.rpc_addr)
                .map_err(|source| ServerError::Bind {
                    addr: config.rpc_addr.clone(),
                    source,
                })?;
            tokio::spawn(
                server.serve_with_incoming(tokio_stream::wrappers::ReceiverStream::new(incoming)),
            )
        }
        None => {
            let rpc_listener = bind(&config.rpc_addr).await?;
            tokio::spawn(
                server.serve_with_incoming(cairn_tls::incoming(rpc_listener, rpc_server_tls)),
            )
        }
    };

    if voters.contains_key(&node.id) {
        let initialized = node
            .meta
            .is_initialized()
            .await
            .map_err(|e| ServerError::Raft(e.to_string()))?;
        if !initialized {
            let members: BTreeMap<NodeId, BasicNode> = voters
                .iter()
                .map(|(id, a)| (*id, BasicNode::new(a.clone())))
                .collect();
            if let Err(e) = node.meta.initialize(members).await {
                tracing::debug!(error = %e, "metadata group initialize");
            }
        }
    }

    let mut tasks = vec![
        tokio::spawn(tasks::heartbeat_loop(node.clone())),
        tokio::spawn(tasks::election_loop(node.clone())),
        tokio::spawn(tasks::reconcile_loop(node.clone())),
        tokio::spawn(tasks::registration_loop(node.clone())),
        tokio::spawn(tasks::retention_loop(node.clone())),
        tokio::spawn(coordinator::tick_loop(node.clone())),
        tokio::spawn(coordinator::commit_loop(node.clone())),
        tokio::spawn(tasks::compaction_loop(node.clone())),
        tokio::spawn(audit::writer_loop(node.clone(), audit_sink)),
        tokio::spawn(mirror::mirror_loop(node.clone())),
    ];
    if let Some(store) = &tls {
        let weak = Arc::downgrade(&node);
        store.set_audit_hook(Arc::new(move |h: cairn_tls::Handshake<'_>| {
            if let Some(node) = weak.upgrade() {
                node.audit.record(audit::Audit {
                    event: audit::AuditKind::Authentication,
                    principal: format!("User:{}", h.principal),
                    client: h.remote,
                    listener: h.listener,
                    operation: "TLS",
                    resource_type: "",
                    resource: "",
                    result: match h.result {
                        Ok(()) => audit::AuditResult::Ok,
                        Err(_) => audit::AuditResult::Failed,
                    },
                    detail: h.result.err().unwrap_or_default().to_string(),
                });
            }
        }));
        tasks.push(store.watch(Duration::from_millis(config.tls_reload_interval_ms)));
    }
    Ok(Running {
        broker: Broker::new(node.clone(), oauth),
        node,
        internal_server,
        tasks,
        tls,
    })
}
