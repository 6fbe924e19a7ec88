//! Topics: create, delete, alter configs, delete records.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_metadata::alter_topic_configs;
use cairn_metadata::validate_topic_configs;
use cairn_metadata::validate_topic_name;
use cairn_metadata::MetaCommand;
use cairn_metadata::MetaError;
use cairn_metadata::MetaResponse;
use cairn_metadata::NodeId;
use cairn_metadata::Topic;

use super::writable_partition_leader;
use crate::error::ApiError;
use crate::node::Node;
use crate::node::Proposal;

const MAX_PARTITIONS: u32 = 10_000;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
    pub configs: BTreeMap<String, String>,
    /// Replicas per partition as the client names them (preferred leader
    /// first); `None`: the metadata leader places them.
    pub assignment: Option<Vec<Vec<NodeId>>>,
}

/// Checks a topic before it is proposed (the name, the counts, the
/// configs); the metadata leader checks the replication factor against the
/// live nodes when it assigns the replicas.
pub(crate) fn validate_new_topic(t: &NewTopic) -> Result<(), ApiError> {
    validate_topic_name(&t.name).map_err(|e| ApiError::InvalidTopic(e.to_string()))?;
    if t.partitions == 0 || t.partitions > MAX_PARTITIONS {
        return Err(ApiError::InvalidPartitions(format!(
            "partitions must be 1..={MAX_PARTITIONS}, got {}",
            t.partitions
        )));
    }
    if t.replication_factor == 0 {
        return Err(ApiError::InvalidReplicationFactor(
            "replication factor must be at least 1".into(),
        ));
    }
    validate_topic_configs(&t.configs).map_err(|e| ApiError::InvalidConfig(e.to_string()))?;
    if let Some(a) = &t.assignment {
        check_assignment(a, t.partitions, t.replication_factor)?;
    }
    Ok(())
}

/// An assignment a client names: one list per partition, all as long as
/// the replication factor, no node twice in a list.
fn check_assignment(a: &[Vec<NodeId>], partitions: u32, rf: u32) -> Result<(), ApiError> {
    let bad = |why: String| Err(ApiError::InvalidReplicaAssignment(why));
    if a.len() != partitions as usize {
        return bad(format!(
            "{} partitions assigned, {partitions} asked",
            a.len()
        ));
    }
    for (p, replicas) in a.iter().enumerate() {
        if replicas.len() != rf as usize {
            return bad(format!(
                "partition {p} has {} replicas; every partition needs {rf}",
                replicas.len()
            ));
        }
        let mut seen = replicas.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != replicas.len() {
            return bad(format!("partition {p} names a node twice: {replicas:?}"));
        }
    }
    Ok(())
}

/// Whether every node an assignment names can take a replica here.
pub(crate) fn check_assignment_nodes(node: &Node, a: &[Vec<NodeId>]) -> Result<(), ApiError> {
    node.meta_view.read(
        |s| match a.iter().flatten().find_map(|n| s.unplaceable(*n)) {
            Some(why) => Err(ApiError::InvalidReplicaAssignment(why)),
            None => Ok(()),
        },
    )
}

/// Creates a topic and waits (up to 10 s) until each partition has a leader.
pub(crate) async fn create_topic(node: &Node, t: NewTopic) -> Result<Topic, ApiError> {
    validate_new_topic(&t)?;
    let explicit = t.assignment.is_some();
    let proposal = match t.assignment {
        // The client chose the replicas: nothing for the leader to decide.
        Some(assignment) => {
            check_assignment_nodes(node, &assignment)?;
            Proposal::Command(MetaCommand::CreateTopic {
                name: t.name,
                replication_factor: t.replication_factor,
                configs: t.configs,
                assignment,
            })
        }
        None => Proposal::CreateTopic {
            name: t.name,
            partitions: t.partitions,
            replication_factor: t.replication_factor,
            configs: t.configs,
        },
    };
    match node.propose(proposal).await? {
        MetaResponse::TopicCreated(t) => {
            tracing::info!(topic = %t.name, partitions = t.partitions.len(), "topic created");
            wait_for_leaders(node, &t.name, t.partitions.len(), Duration::from_secs(10)).await;
            Ok(t)
        }
        MetaResponse::Error(MetaError::TopicExists(n)) => Err(ApiError::TopicExists(n)),
        MetaResponse::Error(e) if explicit => {
            Err(ApiError::InvalidReplicaAssignment(e.to_string()))
        }
        MetaResponse::Error(e) => Err(ApiError::InvalidArgument(e.to_string())),
        other => Err(ApiError::Internal(format!(
            "topic creation answered without a topic: {other:?}"
        ))),
    }
}

/// Checks that `name` can grow to `count` partitions (nothing is written):
/// the topic exists, the count grows and stays within the limit, and enough
/// nodes are alive here for the topic's replication factor.
pub(crate) fn check_create_partitions(
    node: &Node,
    name: &str,
    count: u32,
    assignment: Option<&[Vec<NodeId>]>,
) -> Result<(), ApiError> {
    let t = node.topic(name)?;
    let added = node
        .meta_view
        .read(|s| s.partitions_to_add(name, count))
        .map_err(ApiError::from_partition_growth)?;
    if count > MAX_PARTITIONS {
        return Err(ApiError::InvalidPartitions(format!(
            "partitions must be 1..={MAX_PARTITIONS}, got {count}"
        )));
    }
    if let Some(a) = assignment {
        // As Kafka: one replica list per new partition, each as long as
        // the topic's replication factor.
        check_assignment(a, added, t.replication_factor)?;
        return check_assignment_nodes(node, a);
    }
    let alive = node.meta_view.read(|s| {
        s.nodes
            .keys()
            .filter(|id| **id == node.id || node.liveness.is_alive(**id))
            .count()
    });
    if t.replication_factor as usize > alive {
        return Err(ApiError::InvalidReplicationFactor(format!(
            "topic {name:?} has replication factor {}, but only {alive} nodes are alive",
            t.replication_factor
        )));
    }
    Ok(())
}

/// Grows a topic to `count` partitions, with replicas chosen as for a new
/// topic, and waits (up to 10 s) until each partition has a leader. Answers
/// the topic as it is then.
pub(crate) async fn create_partitions(
    node: &Node,
    name: &str,
    count: u32,
    assignment: Option<Vec<Vec<NodeId>>>,
) -> Result<Topic, ApiError> {
    // A clear error before proposing; the leader and the apply check again.
    check_create_partitions(node, name, count, assignment.as_deref())?;
    let proposal = match assignment {
        // The client chose the replicas: nothing for the leader to decide.
        Some(assignment) => Proposal::Command(MetaCommand::CreatePartitions {
            name: name.to_string(),
            count,
            assignment,
        }),
        None => Proposal::CreatePartitions {
            name: name.to_string(),
            count,
        },
    };
    match node.propose(proposal).await? {
        MetaResponse::TopicCreated(t) => {
            tracing::info!(topic = %t.name, partitions = t.partitions.len(), "partitions added");
            wait_for_leaders(node, &t.name, t.partitions.len(), Duration::from_secs(10)).await;
            Ok(node.topic(name).unwrap_or(t))
        }
        MetaResponse::Error(e) => Err(ApiError::from_partition_growth(e)),
        other => Err(ApiError::Internal(format!(
            "adding partitions answered without a topic: {other:?}"
        ))),
    }
}

/// Waits until this node's metadata shows `topic` with at least
/// `partitions` partitions (a write forwarded to the metadata leader may not
/// have reached this node yet), each with a leader.
async fn wait_for_leaders(node: &Node, topic: &str, partitions: usize, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        let t = node.topic(topic).ok();
        if t.is_some_and(|t| {
            t.partitions.len() >= partitions
                && t.partitions
                    .iter()
                    .all(|p| node.group_status(p.group).leader.is_some())
        }) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn delete_topic(node: &Node, name: &str) -> Result<(), ApiError> {
    let cmd = MetaCommand::DeleteTopic {
        name: name.to_string(),
    };
    match node.propose(Proposal::Command(cmd)).await? {
        MetaResponse::Ok => {
            tracing::info!(topic = %name, "topic deleted");
            Ok(())
        }
        MetaResponse::Error(MetaError::UnknownTopic(n)) => Err(ApiError::UnknownTopic(n)),
        other => Err(ApiError::Internal(format!("{other:?}"))),
    }
}

/// The configs a topic would have after removing `delete` and setting
/// `set`, if they are valid (nothing is written).
pub(crate) fn check_topic_config_change(
    node: &Node,
    name: &str,
    set: &BTreeMap<String, String>,
    delete: &[String],
) -> Result<BTreeMap<String, String>, ApiError> {
    let current = node
        .meta_view
        .read(|s| s.topics.get(name).map(|t| t.configs.clone()))
        .ok_or_else(|| ApiError::UnknownTopic(name.to_string()))?;
    alter_topic_configs(&current, set, delete).map_err(|e| ApiError::InvalidConfig(e.to_string()))
}

/// Removes `delete`, then sets `set`, in a topic's configs; answers the
/// configs now in force (those set explicitly).
pub(crate) async fn alter_topic_config(
    node: &Node,
    name: &str,
    set: BTreeMap<String, String>,
    delete: Vec<String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    // A clear error before proposing; the apply checks again.
    check_topic_config_change(node, name, &set, &delete)?;
    let cmd = MetaCommand::AlterTopicConfig {
        name: name.to_string(),
        set,
        delete,
    };
    match node.propose(Proposal::Command(cmd)).await? {
        MetaResponse::TopicConfigs(configs) => {
            tracing::info!(topic = %name, "topic configs altered");
            Ok(configs)
        }
        MetaResponse::Error(MetaError::UnknownTopic(n)) => Err(ApiError::UnknownTopic(n)),
        MetaResponse::Error(MetaError::InvalidArgument(e)) => Err(ApiError::InvalidConfig(e)),
        other => Err(ApiError::Internal(format!("{other:?}"))),
    }
}

/// Deletes a partition's records below `before` (`None`: below the high
/// watermark) through the same replicated trim retention uses: the log
/// start moves to exactly `before` (storage is freed by whole batches).
/// Answers the new log start; above the high watermark, OffsetOutOfRange.
pub(crate) async fn delete_records(
    node: &Node,
    topic: &str,
    partition: u32,
    before: Option<u64>,
) -> Result<u64, ApiError> {
    let (_, replica) = writable_partition_leader(node, topic, partition)?;
    let hw = replica.log.high_watermark();
    let before = before.unwrap_or(hw);
    if before > hw {
        return Err(ApiError::OffsetOutOfRange {
            offset: before,
            log_start: replica.log.log_start(),
            high_watermark: hw,
        });
    }
    replica
        .propose_trim(before)
        .await
        .map_err(|e| ApiError::LeaderNotAvailable {
            what: format!("{topic}/{partition} ({e})"),
        })
}
