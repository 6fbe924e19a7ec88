use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use crate::groups::GroupCommit;
use crate::groups::GroupError;
use crate::groups::GroupMeta;
use crate::mirror::MirrorLink;
use crate::mirror::SourceSecurity;
use crate::state::AclEntry;
use crate::state::CommittedOffset;
use crate::state::NodeId;
use crate::state::NodeInfo;
use crate::state::ScramCredential;
use crate::state::Topic;

/// A write to the metadata group. Anything non-deterministic (ids, the
/// replica assignment) is decided by the proposer and carried in the command.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum MetaCommand {
    InitCluster {
        cluster_id: String,
    },
    RegisterNode(NodeInfo),
    CreateTopic {
        name: String,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
        /// Replicas per partition, preferred leader first.
        assignment: Vec<Vec<NodeId>>,
    },
    DeleteTopic {
        name: String,
    },
    /// New replicas for a partition; its leader carries out the change.
    ReassignPartition {
        topic: String,
        partition: u32,
        replicas: Vec<NodeId>,
    },
    PutAcl(AclEntry),
    DeleteAcl(AclEntry),
    CommitOffsets {
        group: String,
        offsets: Vec<(String, u32, CommittedOffset)>,
    },
    /// Remove `delete`, then set `set`, in a topic's configs (validated again
    /// at apply). Appended last: commands are stored by variant index.
    AlterTopicConfig {
        name: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    /// The coordinator's record of a group's membership (at every rebalance).
    PutGroup {
        group: String,
        meta: GroupMeta,
    },
    /// Deletes groups and their offsets; refused for a group with members.
    DeleteGroup {
        group: String,
    },
    /// Many commits at once (the coordinator batches them); each is fenced
    /// by generation on its own, and answered in order.
    CommitBatch(Vec<GroupCommit>),
    /// Reserves `count` producer ids for one node's idempotent producers
    /// (Kafka's InitProducerId): ids are never handed out twice, across
    /// nodes and restarts. Appended last: commands are stored by variant index.
    AllocateProducerIds {
        count: u32,
    },
    /// Removes a group's committed offsets of these partitions (Kafka's
    /// OffsetDelete); the coordinator refuses topics its members subscribe
    /// to before proposing it. Appended last: commands are stored by variant
    /// index.
    DeleteOffsets {
        group: String,
        partitions: Vec<(String, u32)>,
    },
    /// Grows a topic to `count` partitions; `assignment` holds the replicas
    /// of the new ones (partitions `count - assignment.len()` .. `count`),
    /// preferred leader first, chosen by the proposer. Refused unless the
    /// topic has exactly `count - assignment.len()` partitions when applied,
    /// so a topic only grows, and two racing proposals cannot both add.
    /// Appended last: commands are stored by variant index.
    CreatePartitions {
        name: String,
        count: u32,
        assignment: Vec<Vec<NodeId>>,
    },
    /// Starts decommissioning `node`: it is marked draining (no replica is
    /// placed on it from now on) and every partition it holds gets the new
    /// replicas in `moves`, chosen by the proposer. Refused, changing
    /// nothing, unless `moves` covers exactly the partitions holding `node`
    /// and names only registered nodes that are not draining. Appended last:
    /// commands are stored by variant index.
    DecommissionNode {
        node: NodeId,
        moves: Vec<PartitionMove>,
    },
    /// Removes a drained node from the cluster for good: its id is retired
    /// and never registered again. Refused unless the node is draining and
    /// no partition names it; the proposer also checks that no partition's
    /// committed Raft membership still holds it. Appended last: commands are
    /// stored by variant index.
    RemoveNode {
        node: NodeId,
    },
    /// Sets a user's SCRAM credential for one mechanism (creating the
    /// user). The proposer derives it from the salted password; the
    /// password never reaches the metadata. Appended last: commands are
    /// stored by variant index.
    PutScramCredential {
        user: String,
        mechanism: String,
        credential: ScramCredential,
    },
    /// Removes a user's credential for one mechanism (the user goes with
    /// its last one). Appended last: commands are stored by variant index.
    DeleteScramCredential {
        user: String,
        mechanism: String,
    },
    /// Adds bindings to a role, creating it (their principals are
    /// ignored: a role's members get them). Appended last: commands are
    /// stored by variant index.
    PutRoleAcls {
        role: String,
        acls: Vec<AclEntry>,
    },
    /// Removes bindings from a role. Appended last.
    DeleteRoleAcls {
        role: String,
        acls: Vec<AclEntry>,
    },
    /// Deletes a role; its members lose its bindings. Appended last.
    DeleteRole {
        role: String,
    },
    /// Grants a role to a principal (`User:alice`). Appended last.
    GrantRole {
        role: String,
        principal: String,
    },
    /// Revokes a role from a principal. Appended last.
    RevokeRole {
        role: String,
        principal: String,
    },
    /// Creates or replaces a mirror link (pause and resume replace it).
    /// Appended last.
    PutMirrorLink(MirrorLink),
    /// Deletes a mirror link; refused while topics still mirror it (promote
    /// or delete them first). Appended last.
    DeleteMirrorLink {
        name: String,
    },
    /// Creates a topic as a read-only mirror of the link's source topic of
    /// the same name, with the source's partition count and configs; the
    /// replicas are chosen by the proposer. Refused for an unknown link.
    /// Appended last.
    CreateMirrorTopic {
        link: String,
        name: String,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
        assignment: Vec<Vec<NodeId>>,
    },
    /// `link: None` promotes the topics (they become writable and are no
    /// longer mirrored); `Some(link)` makes existing topics mirrors of the
    /// link (failback). All or nothing: refused if a topic or the link is
    /// unknown. Appended last.
    SetMirrorTopics {
        topics: Vec<String>,
        link: Option<String>,
    },
    /// A link's security sync: what the link put here becomes `security`
    /// (the source's ACL bindings, roles and users), and nothing of this
    /// cluster's own changes (`mirror::merge_security`). Refused for an
    /// unknown link. Appended last.
    SyncMirrorSecurity {
        link: String,
        security: SourceSecurity,
    },
    /// `PutGroup` for a group with static members (KIP-345): `instances`
    /// names each static member's instance id (member id, instance id),
    /// which [`crate::GroupMember`]'s stored shape has no room for.
    /// Appended last.
    PutGroupWithInstances {
        group: String,
        meta: GroupMeta,
        instances: Vec<(String, String)>,
    },
    /// `CommitBatch` with the leader epochs the clients committed (KIP-320):
    /// beside each commit, one epoch (or none) per offset, in order.
    /// Appended last.
    CommitBatchWithEpochs(Vec<(GroupCommit, Vec<Option<i32>>)>),
    /// Removes `delete`, then sets `set`, in the dynamic broker configs of
    /// `scope` (a node id, or "" for the cluster-wide default); every value
    /// is validated again at apply (`broker_configs.rs`), all or nothing.
    /// Answers the scope's configs after (`TopicConfigs`). Appended last.
    AlterBrokerConfigs {
        scope: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    /// A consumer-protocol group (KIP-848) as the coordinator left it
    /// after a heartbeat changed it, or expired or removed a member.
    /// Appended last.
    PutConsumerGroup {
        group: String,
        meta: cairn_group::modern::ModernGroup,
    },
}

/// New replicas for one partition (preferred leader first).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PartitionMove {
    pub topic: String,
    pub partition: u32,
    pub replicas: Vec<NodeId>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum MetaResponse {
    Ok,
    TopicCreated(Topic),
    Error(MetaError),
    /// The topic's configs after an `AlterTopicConfig`.
    TopicConfigs(BTreeMap<String, String>),
    /// One result per commit of a `CommitBatch`, in order.
    Commits(Vec<Result<(), GroupError>>),
    GroupError(GroupError),
    /// The first of the reserved producer ids (`AllocateProducerIds`).
    ProducerIds {
        first: i64,
    },
    /// The partitions a `DecommissionNode` moved, with their new replicas.
    Moved(Vec<PartitionMove>),
}

/// A command that was applied but refused by the state (it changed nothing).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("cluster id mismatch: the metadata holds {existing}, the command names {proposed}")]
    ClusterIdMismatch { existing: String, proposed: String },
    #[error("{0}")]
    InvalidArgument(String),
    /// A partition count that does not grow the topic (`CreatePartitions`).
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("node {0} is not in the cluster")]
    UnknownNode(NodeId),
    /// A removed node's id: never registered or used again.
    #[error("node {0} was removed from the cluster; a removed node id is never used again")]
    NodeRetired(NodeId),
    /// A decommission or removal that cannot go ahead (yet).
    #[error("{0}")]
    NodeInUse(String),
    #[error("user {0} has no such credential")]
    UnknownUser(String),
    #[error("role {0:?} does not exist")]
    UnknownRole(String),
    #[error("mirror link {0:?} does not exist")]
    UnknownMirrorLink(String),
    /// A link still mirrored by topics cannot be deleted.
    #[error("{0}")]
    MirrorLinkInUse(String),
}
