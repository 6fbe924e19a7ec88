//! Decommissioning and removing a node (`cairn node decommission`).
//!
//! ```text
//!   DecommissionNode ─▶ node draining, every partition on it moved (one write)
//!        │                 partition leaders add the new replicas, switch
//!        ▼                 the Raft membership, the node deletes its copies
//!   RemoveNode ───────▶ refused until no committed membership holds the node;
//!                       then the id is retired, the metadata leader drops
//!                       it from the metadata group's learners
//! ```

use cairn_metadata::MetaResponse;
use cairn_metadata::PartitionMove;

use crate::error::ApiError;
use crate::node::node_error;
use crate::node::Node;
use crate::node::Proposal;
use crate::NodeId;

/// Marks `id` draining and moves every partition off it; answers the moves.
pub(crate) async fn decommission(node: &Node, id: NodeId) -> Result<Vec<PartitionMove>, ApiError> {
    match node
        .propose(Proposal::DecommissionNode { node: id })
        .await?
    {
        MetaResponse::Moved(moves) => {
            tracing::info!(node = id, partitions = moves.len(), "node decommissioning");
            Ok(moves)
        }
        MetaResponse::Error(e) => Err(node_error(e)),
        other => Err(ApiError::Internal(format!("{other:?}"))),
    }
}

/// Removes a drained node for good.
pub(crate) async fn remove(node: &Node, id: NodeId) -> Result<(), ApiError> {
    match node.propose(Proposal::RemoveNode { node: id }).await? {
        MetaResponse::Ok => {
            tracing::info!(node = id, "node removed from the cluster");
            Ok(())
        }
        MetaResponse::Error(e) => Err(node_error(e)),
        other => Err(ApiError::Internal(format!("{other:?}"))),
    }
}
