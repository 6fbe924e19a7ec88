//! What [`crate::Broker`] answers about the cluster: plain values, copied
//! out of the metadata and the partitions' status, for the doors to put in
//! their own wire formats.

use cairn_metadata::NodeId;
use cairn_metadata::NodeInfo;
use cairn_metadata::PartitionAssignment;
use cairn_metadata::Topic;

pub use crate::node::GroupStatus as PartitionStatus;

/// A node as the cluster knows it.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub info: NodeInfo,
    /// Heard from within the liveness window (always true for the node
    /// answering).
    pub alive: bool,
    pub metadata_voter: bool,
    pub draining: bool,
}

/// A partition: where it is assigned and how its group is doing.
#[derive(Debug, Clone)]
pub struct PartitionView {
    pub assignment: PartitionAssignment,
    pub status: PartitionStatus,
}

/// A topic and the status of each of its partitions.
#[derive(Debug, Clone)]
pub struct TopicView {
    pub topic: Topic,
    pub partitions: Vec<PartitionView>,
    /// Created moments ago and not every partition's leader known here yet
    /// (see `settling.rs`): the Kafka door waits for it or leaves it out.
    pub settling: bool,
}

/// The cluster as this node sees it.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub cluster_id: String,
    pub metadata_leader: Option<NodeId>,
    pub answered_by: NodeId,
    pub nodes: Vec<NodeView>,
    /// Removed (retired) node ids.
    pub removed: Vec<NodeId>,
    pub topics: Vec<TopicView>,
    /// Topics asked for by name that the principal may not describe.
    pub denied: Vec<String>,
}

impl ClusterView {
    /// Alive nodes, and this one.
    pub fn live_nodes(&self) -> impl Iterator<Item = &NodeView> {
        self.nodes
            .iter()
            .filter(move |n| n.alive || n.info.id == self.answered_by)
    }
}

/// Which topics a cluster view holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topics {
    All,
    /// These, by name; unknown names are left out (the caller tells them).
    Named(Vec<String>),
    None,
}

/// The group coordinator's Kafka address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorView {
    pub node: NodeId,
    pub kafka_addr: String,
}

/// One partition's replica on this node (Kafka's DescribeLogDirs).
#[derive(Debug, Clone)]
pub struct LocalReplica {
    pub topic: String,
    pub partition: u32,
    pub size_bytes: u64,
    pub leader: bool,
}

/// A node's readiness (`/ready`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NoMetadataLeader,
    NotRegistered,
}
