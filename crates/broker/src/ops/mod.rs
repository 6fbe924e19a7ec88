//! What a client request does, once, for both doors: the gRPC API
//! (`api.rs`) and the Kafka API (`kafka/`). Plain Rust types in, a typed
//! [`ApiError`] out; each door only translates its wire format.
//!
//! ```text
//!   api.rs (cairn.v1) ─┐
//!                      ├─▶ ops::{produce, read, topics} ─▶ Node / Replica
//!   kafka/*.rs ────────┘
//! ```

pub(crate) mod mirror;
mod nodes;
pub(crate) mod produce;
mod read;
mod topics;

use openraft::async_runtime::watch::WatchReceiver;
use std::sync::Arc;

use cairn_metadata::PartitionAssignment;
use cairn_metadata::Topic;
use cairn_partition::ReadError;
use openraft::error::ClientWriteError;
use openraft::error::RaftError;

pub(crate) use nodes::decommission as decommission_node;
pub(crate) use nodes::remove as remove_node;
pub(crate) use produce::produce;
pub use produce::Acks;
pub use produce::Produced;
pub(crate) use read::fetch;
pub(crate) use read::list_offsets;
pub(crate) use read::read_partition;
pub use read::OffsetSpec;
pub use read::FETCH_MAX_BYTES_LIMIT;
pub use read::FETCH_MAX_WAIT;
pub(crate) use topics::alter_topic_config;
pub(crate) use topics::check_assignment_nodes;
pub(crate) use topics::check_create_partitions;
pub(crate) use topics::check_topic_config_change;
pub(crate) use topics::create_partitions;
pub(crate) use topics::create_topic;
pub(crate) use topics::delete_records;
pub(crate) use topics::delete_topic;
pub(crate) use topics::validate_new_topic;
pub use topics::NewTopic;

use crate::error::ApiError;
use crate::node::Node;
use crate::replica::Replica;

/// The topic and the assignment of one of its partitions.
pub(crate) fn locate(
    node: &Node,
    topic: &str,
    partition: u32,
) -> Result<(Topic, PartitionAssignment), ApiError> {
    let t = node.topic(topic)?;
    let p = t
        .partitions
        .get(partition as usize)
        .cloned()
        .ok_or_else(|| ApiError::UnknownPartition {
            topic: topic.to_string(),
            partition,
            count: t.partitions.len(),
        })?;
    Ok((t, p))
}

/// The local replica of the partition, if it is the leader; else an error
/// naming the leader.
pub(crate) fn leader_replica(
    node: &Node,
    topic: &str,
    p: &PartitionAssignment,
) -> Result<Arc<Replica>, ApiError> {
    let what = format!("{topic}/{}", p.partition);
    let local = node.replica(p.group);
    if let Some(r) = &local {
        if r.is_leader() {
            return Ok(r.clone());
        }
    }
    let leader = node
        .group_status(p.group)
        .leader
        .or_else(|| local.and_then(|r| r.raft.metrics().borrow_watched().current_leader));
    match leader {
        Some(l) if l != node.id => Err(ApiError::NotLeader {
            what,
            leader: node.node_info(l).map(|n| (l, n.grpc_addr)),
        }),
        _ => Err(ApiError::LeaderNotAvailable { what }),
    }
}

/// [`locate`] then [`leader_replica`].
pub(crate) fn partition_leader(
    node: &Node,
    topic: &str,
    partition: u32,
) -> Result<(Topic, Arc<Replica>), ApiError> {
    let (t, p) = locate(node, topic, partition)?;
    let replica = leader_replica(node, topic, &p)?;
    Ok((t, replica))
}

/// The leader of a partition clients may write to: a mirror topic takes
/// writes from its mirror link only (until promoted), so produce and
/// DeleteRecords are refused there.
pub(crate) fn writable_partition_leader(
    node: &Node,
    topic: &str,
    partition: u32,
) -> Result<(Topic, Arc<Replica>), ApiError> {
    let found = partition_leader(node, topic, partition)?;
    if let Some(link) = node.meta_view.read(|s| s.mirror_topics.get(topic).cloned()) {
        return Err(ApiError::MirrorTopicReadOnly {
            topic: topic.to_string(),
            link,
        });
    }
    Ok(found)
}

/// Writes and reads are served by a leader with a live lease only. A leader
/// cut off from its followers must not take writes it cannot commit, and a
/// deposed one that has not heard of its successor yet (cut off, then
/// healed) would answer reads with its stale high watermark. Renewing the
/// lease either confirms the leadership (one heartbeat round, only when the
/// lease is stale) or makes the followers' answers depose it; either way the
/// client is told at once to look for the leader elsewhere.
pub(crate) async fn require_lease(
    replica: &Replica,
    topic: &str,
    partition: u32,
) -> Result<(), ApiError> {
    replica.renew_lease_if_stale().await;
    if replica.lease_valid() {
        Ok(())
    } else {
        Err(ApiError::LeaderNotAvailable {
            what: format!("{topic}/{partition}"),
        })
    }
}

/// [`require_lease`] for reads: also that the leader has applied an entry
/// of its own term, so its high watermark and log start are complete.
/// Until then (milliseconds after an election) the leader is "not available"
/// and clients retry, as Kafka's OFFSET_NOT_AVAILABLE has them do.
pub(crate) async fn require_read_lease(
    replica: &Replica,
    topic: &str,
    partition: u32,
) -> Result<(), ApiError> {
    require_lease(replica, topic, partition).await?;
    if replica.applied_own_term() {
        Ok(())
    } else {
        Err(ApiError::LeaderNotAvailable {
            what: format!("{topic}/{partition}"),
        })
    }
}

fn map_write_error(
    what: &str,
    e: RaftError<cairn_raft::TypeConfig, ClientWriteError<cairn_raft::TypeConfig>>,
    node: &Node,
) -> ApiError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f))
        | RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => ApiError::NotLeader {
            what: what.to_string(),
            leader: f
                .leader_id
                .and_then(|l| node.node_info(l).map(|n| (l, n.grpc_addr))),
        },
        RaftError::Fatal(f @ openraft::error::Fatal::StorageError(_)) => {
            ApiError::Storage(f.to_string())
        }
        other => ApiError::Internal(other.to_string()),
    }
}

fn read_error(e: ReadError) -> ApiError {
    match e {
        ReadError::OffsetOutOfRange {
            offset,
            log_start,
            high_watermark,
        } => ApiError::OffsetOutOfRange {
            offset,
            log_start,
            high_watermark,
        },
        other => ApiError::Internal(other.to_string()),
    }
}
