//! A Cairn node: the store, the metadata group, the local partition
//! replicas, and the tasks that keep them in line with the metadata.

use openraft::async_runtime::watch::WatchReceiver;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use cairn_metadata::assign_replicas;
use cairn_metadata::MetaCommand;
use cairn_metadata::MetaResponse;
use cairn_metadata::NodeInfo;
use cairn_metadata::Topic;
use cairn_metadata::METADATA_GROUP;
use cairn_proto::internal::LedGroup;
use cairn_proto::internal::MetaProposeRequest;
use cairn_raft::GroupId;
use cairn_raft::GroupNetworkFactory;
use cairn_raft::LedInfo;
use cairn_raft::Liveness;
use cairn_raft::Raft;
use cairn_raft::Request;
use cairn_raft::Response;
use cairn_raft::Transport;
use cairn_storage::NodeStore;
use openraft::error::ClientWriteError;
use openraft::error::RaftError;
use openraft::ServerState;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::meta_sm::MetaStateMachine;
use crate::meta_sm::MetaView;
use crate::replica::Replica;
use crate::NodeId;

/// A node is dead to us after this long without a heartbeat.
pub(crate) const DEAD_AFTER: Duration = Duration::from_millis(600);
/// Node heartbeat period.
pub(crate) const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);

/// A metadata write as forwarded to the metadata leader.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) enum Proposal {
    Command(MetaCommand),
    /// Replicas are chosen by the leader, from the nodes alive there.
    CreateTopic {
        name: String,
        partitions: u32,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
    },
    /// Grows a topic to `count` partitions; the leader chooses the new
    /// partitions' replicas from the nodes alive there.
    CreatePartitions {
        name: String,
        count: u32,
    },
    /// Decommissions a node: the leader moves its partitions to the nodes
    /// alive there (`MetadataState::plan_drain`).
    DecommissionNode {
        node: NodeId,
    },
    /// Removes a drained node, once the leader sees that no partition's
    /// committed membership holds it any more.
    RemoveNode {
        node: NodeId,
    },
    /// A read-only mirror of the link's source topic; replicas chosen by
    /// the leader as for [`Proposal::CreateTopic`].
    CreateMirrorTopic {
        link: String,
        name: String,
        partitions: u32,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
    },
}

/// Leadership and progress of one partition group, as this node knows it.
#[derive(Debug, Clone, Default)]
pub struct GroupStatus {
    pub leader: Option<NodeId>,
    pub term: u64,
    pub high_watermark: u64,
    pub log_start: u64,
    pub healthy: Vec<NodeId>,
    /// The voters of the leader's last *committed* membership (joint
    /// configurations: both halves).
    pub voters: Vec<NodeId>,
    /// The leader's replica change in progress (empty: none).
    pub reassignment: String,
}

pub struct Node {
    pub(crate) id: NodeId,
    /// This data dir's random id (see `INCARNATION_KEY`).
    pub(crate) incarnation: String,
    /// Whether this node takes Raft traffic. A node with an empty data dir
    /// that joins does not until the metadata leader accepted the join: if
    /// it is refused (its id was removed, or is registered from another
    /// data dir), it must not have answered as a member of any group, or a
    /// leader would see its log vanish (reliability finding 21).
    pub(crate) admitted: std::sync::atomic::AtomicBool,
    pub(crate) config: ServerConfig,
    pub(crate) store: NodeStore,
    pub(crate) transport: Arc<Transport>,
    pub(crate) liveness: Arc<Liveness>,
    pub(crate) meta: Raft<MetaStateMachine>,
    pub(crate) meta_view: Arc<MetaView>,
    pub(crate) replicas: RwLock<HashMap<GroupId, Arc<Replica>>>,
    /// Groups this node leads, refreshed by the election driver, sent in heartbeats.
    pub(crate) led: RwLock<Vec<LedGroup>>,
    pub(crate) heartbeat_now: Notify,
    /// Partition groups whose membership this node is changing right now.
    pub(crate) membership_changes:
        std::sync::Mutex<HashMap<GroupId, crate::tasks::MembershipChange>>,
    /// Consumer groups, served while this node is the metadata leader.
    pub(crate) coordinator: crate::coordinator::Coordinator,
    /// Producer ids reserved in the metadata group for this node's Kafka
    /// InitProducerId answers, not handed out yet.
    pub(crate) producer_ids: std::sync::Mutex<std::ops::Range<i64>>,
    /// When this process started serving: it refuses votes for
    /// [`crate::lease::VOTE_HOLD_AFTER_START`] after it.
    pub(crate) started: cairn_clock::Instant,
    /// Bugs planted on purpose (the simulator's; none on a real node).
    pub(crate) plants: crate::Plants,
    /// Snapshots being received in chunks, by group.
    pub(crate) snapshot_inbox: cairn_raft::SnapshotInbox,
    /// The audit trail's queue.
    pub(crate) audit: crate::audit::Auditor,
    /// Mirror links: the pullers this node runs, their status.
    pub(crate) mirrors: crate::mirror::Mirrors,
}

/// A metadata refusal of a decommission or removal as the API's error.
pub(crate) fn node_error(e: cairn_metadata::MetaError) -> ApiError {
    use cairn_metadata::MetaError;
    match e {
        MetaError::UnknownNode(n) | MetaError::NodeRetired(n) => ApiError::UnknownNode(n),
        MetaError::NodeInUse(m) => ApiError::NodeInUse(m),
        other => ApiError::InvalidArgument(other.to_string()),
    }
}

/// Producer ids reserved at a time (one metadata write per this many
/// idempotent producers).
const PRODUCER_ID_BLOCK: u32 = 1000;

impl Node {
    pub(crate) fn info(&self) -> NodeInfo {
        NodeInfo {
            id: self.id,
            rpc_addr: self.config.advertised_rpc(),
            grpc_addr: self.config.advertised_grpc(),
            admin_addr: self.config.admin_addr.clone(),
            kafka_addr: self.config.advertised_kafka(),
            rack: self.config.rack.clone(),
            incarnation: self.incarnation.clone(),
        }
    }

    pub(crate) fn replica(&self, group: GroupId) -> Option<Arc<Replica>> {
        self.replicas.read().ok()?.get(&group).cloned()
    }

    pub(crate) fn all_replicas(&self) -> Vec<Arc<Replica>> {
        self.replicas
            .read()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn meta_leader(&self) -> Option<NodeId> {
        self.meta.metrics().borrow_watched().current_leader
    }

    pub(crate) fn topic(&self, name: &str) -> Result<Topic, ApiError> {
        self.meta_view
            .read(|s| s.topics.get(name).cloned())
            .ok_or_else(|| ApiError::UnknownTopic(name.to_string()))
    }

    pub(crate) fn node_info(&self, id: NodeId) -> Option<NodeInfo> {
        self.meta_view.read(|s| s.nodes.get(&id).cloned())
    }

    /// Who leads `group` and how far its log is, from the local replica when
    /// it leads, else from the leader's heartbeats.
    /// A broker default as this node applies it: the dynamic value set for
    /// it, else the cluster-wide one (`cairn_metadata::broker_configs`),
    /// else its static setting. `key` is a Kafka broker config name.
    pub(crate) fn broker_default(&self, key: &str) -> i64 {
        let dynamic = self.meta_view.read(|s| {
            s.broker_config(self.id, key)
                .and_then(|(v, _)| v.parse::<i64>().ok())
        });
        dynamic.unwrap_or(match key {
            "log.retention.ms" => self.config.retention_ms,
            "log.retention.bytes" => self.config.retention_bytes,
            "message.max.bytes" => i64::try_from(self.config.max_message_bytes).unwrap_or(i64::MAX),
            "producer.id.expiration.ms" => self.config.producer_id_expiration_ms,
            _ => 0,
        })
    }

    /// A topic's `cleanup.policy`: its own, else the cluster-wide
    /// `log.cleanup.policy`, else `delete`. A value set for one node is not
    /// read: every replica of a partition must agree on what it compacts.
    pub(crate) fn cleanup_policy(
        &self,
        topic: &std::collections::BTreeMap<String, String>,
    ) -> String {
        if let Some(p) = topic.get(cairn_metadata::TopicConfig::CleanupPolicy.key()) {
            return p.clone();
        }
        self.meta_view.read(|s| {
            s.broker_configs
                .get("")
                .and_then(|c| c.get("log.cleanup.policy"))
                .cloned()
                .unwrap_or_else(|| "delete".to_string())
        })
    }

    pub(crate) fn group_status(&self, group: GroupId) -> GroupStatus {
        if let Some(r) = self.replica(group) {
            // A leader cut off from a quorum does not name itself: clients
            // asking this node are sent on to look elsewhere.
            if let Some(s) = r
                .status_if_leader(&self.liveness)
                .filter(|_| r.sees_quorum(&self.liveness))
            {
                return s;
            }
        }
        let term = self
            .replica(group)
            .map(|r| r.raft.metrics().borrow_watched().current_term)
            .unwrap_or(0);
        match self.liveness.live_leader(group, term) {
            Some((leader, info)) => GroupStatus {
                leader: Some(leader),
                term: info.term,
                high_watermark: info.high_watermark,
                log_start: info.log_start,
                healthy: info.healthy,
                voters: info.voters,
                reassignment: info.reassignment,
            },
            // The leader's heartbeats have not named it yet (a group just
            // created or just elected): a replica here already follows it.
            // Naming it at once lets clients that take `leader -1` as final
            // (librdkafka's watermark query) go on.
            None => self
                .replica(group)
                .and_then(|r| {
                    let m = r.raft.metrics().borrow_watched().clone();
                    let leader = m
                        .current_leader
                        .filter(|l| *l != self.id && self.liveness.is_alive(*l))?;
                    Some(GroupStatus {
                        leader: Some(leader),
                        term: m.current_term,
                        ..GroupStatus::default()
                    })
                })
                .unwrap_or_default(),
        }
    }

    /// Proposes a metadata write, forwarding it to the metadata leader when
    /// this node is not the leader.
    pub(crate) async fn propose(&self, proposal: Proposal) -> Result<MetaResponse, ApiError> {
        let mut last_err = None;
        for attempt in 0..50u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let leader = self.meta_leader();
            match leader {
                Some(l) if l == self.id => {
                    let cmd = self.prepare(proposal.clone())?;
                    match self.meta.client_write(Request::Meta(cmd)).await {
                        Ok(resp) => match resp.data {
                            Response::Meta(r) => return Ok(r),
                            other => {
                                return Err(ApiError::Internal(format!(
                                    "metadata group answered {other:?}"
                                )))
                            }
                        },
                        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                            last_err = Some("leadership moved".to_string());
                        }
                        Err(e) => last_err = Some(e.to_string()),
                    }
                }
                Some(l) => match self.forward(l, &proposal).await {
                    Ok(r) => return Ok(r),
                    Err(e) => last_err = Some(e),
                },
                None => last_err = Some("no metadata leader".to_string()),
            }
        }
        Err(ApiError::LeaderNotAvailable {
            what: format!(
                "the metadata group ({})",
                last_err.unwrap_or_else(|| "unknown".into())
            ),
        })
    }

    async fn forward(&self, leader: NodeId, proposal: &Proposal) -> Result<MetaResponse, String> {
        let mut client = self.transport.client(leader).map_err(|e| e.to_string())?;
        let command = serde_json::to_vec(proposal).map_err(|e| e.to_string())?;
        let reply = client
            .meta_propose(MetaProposeRequest {
                command: command.into(),
            })
            .await
            .map_err(|s| s.message().to_string())?;
        serde_json::from_slice(&reply.into_inner().response).map_err(|e| e.to_string())
    }

    /// Turns a proposal into a command, on the leader.
    fn prepare(&self, proposal: Proposal) -> Result<MetaCommand, ApiError> {
        match proposal {
            Proposal::Command(c) => Ok(c),
            Proposal::CreateTopic {
                name,
                partitions,
                replication_factor,
                configs,
            } => {
                let assignment = self.assign_new_partitions(partitions, replication_factor)?;
                Ok(MetaCommand::CreateTopic {
                    name,
                    replication_factor,
                    configs,
                    assignment,
                })
            }
            Proposal::CreateMirrorTopic {
                link,
                name,
                partitions,
                replication_factor,
                configs,
            } => {
                let assignment = self.assign_new_partitions(partitions, replication_factor)?;
                Ok(MetaCommand::CreateMirrorTopic {
                    link,
                    name,
                    replication_factor,
                    configs,
                    assignment,
                })
            }
            Proposal::CreatePartitions { name, count } => {
                let (added, replication_factor) = self
                    .meta_view
                    .read(|s| {
                        let added = s.partitions_to_add(&name, count)?;
                        Ok((added, s.topics[&name].replication_factor))
                    })
                    .map_err(ApiError::from_partition_growth)?;
                let assignment = self.assign_new_partitions(added, replication_factor)?;
                Ok(MetaCommand::CreatePartitions {
                    name,
                    count,
                    assignment,
                })
            }
            Proposal::DecommissionNode { node } => {
                let voters: Vec<NodeId> = self
                    .meta
                    .metrics()
                    .borrow_watched()
                    .membership_config
                    .voter_ids()
                    .collect();
                if voters.contains(&node) {
                    return Err(ApiError::NodeInUse(format!(
                        "node {node} is a voter of the metadata group ({voters:?}); only nodes that joined as non-voters can be decommissioned"
                    )));
                }
                self.meta_view.read(|s| {
                    if s.retired.contains(&node) || !s.nodes.contains_key(&node) {
                        return Err(ApiError::UnknownNode(node));
                    }
                    let alive: Vec<NodeId> = s
                        .nodes
                        .keys()
                        .copied()
                        .filter(|n| self.liveness.is_alive(*n))
                        .collect();
                    let moves = s.plan_drain(node, &alive).map_err(node_error)?;
                    Ok(MetaCommand::DecommissionNode { node, moves })
                })
            }
            Proposal::RemoveNode { node } => {
                let partitions = self.meta_view.read(|s| {
                    if s.retired.contains(&node) {
                        return Ok(Vec::new());
                    }
                    if !s.nodes.contains_key(&node) {
                        return Err(ApiError::UnknownNode(node));
                    }
                    if !s.draining.contains(&node) {
                        return Err(ApiError::NodeInUse(format!(
                            "node {node} is not being decommissioned; decommission it first"
                        )));
                    }
                    Ok(s.topics
                        .values()
                        .flat_map(|t| {
                            t.partitions
                                .iter()
                                .map(|p| (t.name.clone(), p.partition, p.group))
                        })
                        .collect::<Vec<_>>())
                })?;
                let pending = self.partitions_holding(node, &partitions);
                if !pending.is_empty() {
                    return Err(ApiError::NodeInUse(format!(
                        "{} partitions may still hold node {node} in their Raft membership: {}",
                        pending.len(),
                        pending.join(", ")
                    )));
                }
                Ok(MetaCommand::RemoveNode { node })
            }
        }
    }

    /// Of `partitions` (topic, partition, group), those whose committed
    /// Raft membership may still hold `node`, each with why: its leader's
    /// committed voters name it, a change is under way, or no leader is
    /// known here to ask (then nothing proves it left).
    pub(crate) fn partitions_holding(
        &self,
        node: NodeId,
        partitions: &[(String, u32, GroupId)],
    ) -> Vec<String> {
        partitions
            .iter()
            .filter_map(|(t, p, g)| {
                let s = self.group_status(*g);
                if s.leader.is_none() {
                    Some(format!("{t}/{p} (no leader)"))
                } else if s.voters.is_empty() {
                    // Only a follower's idea of who leads (`group_status`
                    // before the leader's heartbeats name it): nothing
                    // here says what the committed membership is.
                    Some(format!(
                        "{t}/{p} (its leader's membership not known here yet)"
                    ))
                } else if !s.reassignment.is_empty() {
                    Some(format!(
                        "{t}/{p} (membership change under way: {})",
                        s.reassignment
                    ))
                } else if s.voters.contains(&node) {
                    Some(format!("{t}/{p} (voters {:?})", s.voters))
                } else {
                    None
                }
            })
            .collect()
    }

    /// Replicas for `partitions` new partitions, from the nodes alive here,
    /// balanced against the replicas every node holds already.
    fn assign_new_partitions(
        &self,
        partitions: u32,
        replication_factor: u32,
    ) -> Result<Vec<Vec<NodeId>>, ApiError> {
        let (nodes, load) = self.meta_view.read(|s| {
            let nodes: Vec<NodeInfo> = s
                .nodes
                .values()
                .filter(|n| self.liveness.is_alive(n.id) && !s.draining.contains(&n.id))
                .cloned()
                .collect();
            (nodes, s.replica_load())
        });
        assign_replicas(&nodes, &load, partitions, replication_factor)
            .map_err(|e| ApiError::InvalidReplicationFactor(format!("{e} (nodes alive)")))
    }

    /// Heartbeat payload: the groups this node leads.
    pub(crate) fn led_groups(&self) -> Vec<LedGroup> {
        self.led.read().map(|l| l.clone()).unwrap_or_default()
    }

    pub(crate) fn record_heartbeat(&self, from: NodeId, led: Vec<LedGroup>) {
        self.liveness.heard_from(
            from,
            led.into_iter().map(|g| {
                (
                    g.group,
                    LedInfo {
                        term: g.term,
                        high_watermark: g.high_watermark,
                        log_start: g.log_start,
                        healthy: g.healthy,
                        voters: g.voters,
                        reassignment: g.reassignment,
                    },
                )
            }),
        );
    }

    /// Whether a heartbeat's cluster id is compatible with ours.
    pub(crate) fn check_cluster(&self, theirs: &str) -> Result<(), String> {
        let ours = self.transport.cluster_id();
        if !ours.is_empty() && !theirs.is_empty() && ours != theirs {
            return Err(format!(
                "cluster mismatch: node {} belongs to cluster {ours}, the caller to {theirs}",
                self.id
            ));
        }
        Ok(())
    }

    /// A producer id no other producer got, on any node, before or after a
    /// restart: ids come from blocks reserved in the metadata group, and a
    /// block's unused rest is dropped when the node stops.
    pub(crate) async fn allocate_producer_id(&self) -> Result<i64, ApiError> {
        loop {
            if let Some(id) = self.producer_ids.lock().ok().and_then(|mut r| r.next()) {
                return Ok(id);
            }
            let cmd = MetaCommand::AllocateProducerIds {
                count: PRODUCER_ID_BLOCK,
            };
            match self.propose(Proposal::Command(cmd)).await? {
                MetaResponse::ProducerIds { first } => {
                    if let Ok(mut r) = self.producer_ids.lock() {
                        *r = first..first + i64::from(PRODUCER_ID_BLOCK);
                    }
                }
                other => {
                    return Err(ApiError::Internal(format!(
                        "producer id allocation answered {other:?}"
                    )))
                }
            }
        }
    }

    pub(crate) fn is_meta_leader(&self) -> bool {
        self.meta.metrics().borrow_watched().state == ServerState::Leader
    }

    /// Whether this node leads the metadata group with a live lease: a
    /// quorum acknowledged it within [`crate::lease::META_LEASE`]. The group
    /// coordinator answers only then: a metadata leader cut off from the
    /// others keeps its `Leader` state until it hears of a successor, and
    /// would answer from a stale view (reliability finding 10).
    pub(crate) fn meta_lease_valid(&self) -> bool {
        let rx = self.meta.metrics();
        let m = rx.borrow_watched();
        m.state == ServerState::Leader
            && crate::lease::held(
                m.membership_config.voter_ids().all(|v| v == m.id),
                m.last_quorum_acked
                    .as_ref()
                    .map(|t| openraft::Instant::elapsed(&**t)),
                crate::lease::META_LEASE,
            )
    }

    /// Whether this node should still refuse votes: it started within the
    /// longest refusal window, and openraft forgot, at the restart, which
    /// leader it had promised not to vote against (`lease.rs`).
    pub(crate) fn holding_votes(&self) -> bool {
        self.started.elapsed() < crate::lease::VOTE_HOLD_AFTER_START
    }
}

pub(crate) fn meta_group() -> GroupId {
    METADATA_GROUP
}

pub(crate) fn network(transport: &Arc<Transport>, group: GroupId) -> GroupNetworkFactory {
    GroupNetworkFactory::new(transport.clone(), group)
}
