//! Which node a fault hits: any node, the leader of a partition, or the
//! metadata leader, resolved against the live cluster when injected.

use rand::rngs::StdRng;
use rand::Rng;

use crate::faults::FaultCx;
use crate::hosts::NodeId;
use crate::ChaosError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A node chosen at random.
    AnyNode,
    /// The leader of a partition of the workload's topic chosen at random.
    PartitionLeader,
    /// The leader of the metadata Raft group.
    MetadataLeader,
}

impl Target {
    /// One of the three, at random.
    pub fn random(rng: &mut StdRng) -> Target {
        match rng.random_range(0..3) {
            0 => Target::AnyNode,
            1 => Target::PartitionLeader,
            _ => Target::MetadataLeader,
        }
    }

    /// The node this target names now. A leader that cannot be found (an
    /// election under way) falls back to a random node; the description
    /// says which.
    pub async fn resolve(
        self,
        cx: &FaultCx,
        rng: &mut StdRng,
    ) -> Result<(NodeId, String), ChaosError> {
        let nodes = cx.hosts.nodes();
        if nodes.is_empty() {
            return Err(ChaosError::NoTarget("the cluster has no nodes".into()));
        }
        let any = nodes[rng.random_range(0..nodes.len())];
        match self {
            Target::AnyNode => Ok((any, format!("node {any}"))),
            Target::PartitionLeader => {
                let p = rng.random_range(0..cx.partitions.max(1));
                let leader = cx
                    .client
                    .describe_topic(&cx.topic)
                    .await
                    .ok()
                    .and_then(|t| t.partitions.into_iter().find(|m| m.partition == p))
                    .and_then(|m| m.leader);
                Ok(match leader {
                    Some(l) => (l, format!("node {l} (leader of partition {p})")),
                    None => (any, format!("node {any} (partition {p} had no leader)")),
                })
            }
            Target::MetadataLeader => {
                let leader = cx
                    .client
                    .cluster_status()
                    .await
                    .ok()
                    .and_then(|s| s.metadata_leader);
                Ok(match leader {
                    Some(l) => (l, format!("node {l} (metadata leader)")),
                    None => (any, format!("node {any} (no metadata leader)")),
                })
            }
        }
    }
}
