//! Consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups,
//! DeleteGroups, OffsetDelete.
//!
//! All of them go to `crate::coordinator`, the same coordinator the gRPC API
//! uses (on the metadata leader), so a group is one group whichever door its
//! members use, and offsets committed through one are read through the
//! other. The coordinator a client is sent to is the metadata leader; every
//! other node answers NOT_COORDINATOR and the client asks again.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::coordinator::JoinArgs;
use crate::coordinator::MemberRef;
use cairn_kafka::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use cairn_kafka::kafka_protocol::messages::describe_groups_response::DescribedGroup;
use cairn_kafka::kafka_protocol::messages::describe_groups_response::DescribedGroupMember;
use cairn_kafka::kafka_protocol::messages::find_coordinator_response::Coordinator;
use cairn_kafka::kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use cairn_kafka::kafka_protocol::messages::leave_group_response::MemberResponse;
use cairn_kafka::kafka_protocol::messages::list_groups_response::ListedGroup;
use cairn_kafka::kafka_protocol::messages::offset_commit_response::OffsetCommitResponsePartition;
use cairn_kafka::kafka_protocol::messages::offset_commit_response::OffsetCommitResponseTopic;
use cairn_kafka::kafka_protocol::messages::offset_delete_response::OffsetDeleteResponsePartition;
use cairn_kafka::kafka_protocol::messages::offset_delete_response::OffsetDeleteResponseTopic;
use cairn_kafka::kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use cairn_kafka::kafka_protocol::messages::offset_fetch_response::OffsetFetchResponsePartition;
use cairn_kafka::kafka_protocol::messages::offset_fetch_response::OffsetFetchResponsePartitions;
use cairn_kafka::kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseTopic;
use cairn_kafka::kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseTopics;
use cairn_kafka::kafka_protocol::messages::*;
use cairn_kafka::kafka_protocol::protocol::StrBytes;
use cairn_kafka::kafka_protocol::ResponseError;
use cairn_metadata::CommittedOffset;

use super::code;
use super::metadata::host_port;
use super::str_bytes;
use super::Session;
use super::NONE;
use crate::error::ApiError;
use crate::node::Node;

/// FindCoordinator's key type of a transactional id. Cairn has no
/// transactions yet: such a lookup is answered
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which the Java client and
/// librdkafka treat as fatal at once. COORDINATOR_NOT_AVAILABLE, the answer
/// before, is retriable: `initTransactions` then blocked for the client's
/// whole `max.block.ms` (reliability finding 9).
const KEY_TYPE_TRANSACTION: i8 = 1;

fn group_id(s: impl Into<String>) -> GroupId {
    GroupId(str_bytes(s))
}

/// The coordinator of every group: the metadata leader, as (node id, host, port).
fn coordinator_broker(node: &Node) -> Result<(i32, String, i32), (i16, String)> {
    let not_available = |why: &str| (code(ResponseError::CoordinatorNotAvailable), why.to_owned());
    let leader = node
        .meta_leader()
        .ok_or_else(|| not_available("no metadata leader right now; retry"))?;
    // This node leads but without a lease: it may be cut off, and a
    // successor may exist that it has not heard of.
    if leader == node.id && !node.meta_lease_valid() {
        return Err(not_available(
            "the metadata leader has no live lease; retry",
        ));
    }
    let addr = node
        .meta_view
        .read(|s| s.nodes.get(&leader).map(|n| n.kafka_addr.clone()))
        .ok_or_else(|| not_available("the coordinator's address is not known yet; retry"))?;
    let (host, port) =
        host_port(&addr).ok_or_else(|| not_available("the coordinator has no Kafka address"))?;
    Ok((i32::try_from(leader).unwrap_or(i32::MAX), host, port))
}

pub(crate) fn find_coordinator(
    node: &Node,
    r: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let answer = |key_type: i8| {
        if key_type == KEY_TYPE_TRANSACTION {
            return Err((
                code(ResponseError::TransactionalIdAuthorizationFailed),
                "Cairn does not support transactions yet: transactional ids are refused".to_owned(),
            ));
        }
        coordinator_broker(node)
    };
    if version >= 4 {
        let coordinators = r
            .coordinator_keys
            .iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key.clone());
                match answer(r.key_type) {
                    Ok((id, host, port)) => c
                        .with_node_id(BrokerId(id))
                        .with_host(str_bytes(host))
                        .with_port(port),
                    Err((error, message)) => c
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(error)
                        .with_error_message(Some(str_bytes(message))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match answer(r.key_type) {
        Ok((id, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(id))
            .with_host(str_bytes(host))
            .with_port(port),
        Err((error, message)) => FindCoordinatorResponse::default()
            .with_error_code(error)
            .with_error_message(Some(str_bytes(message)))
            .with_node_id(BrokerId(-1))
            .with_port(-1),
    }
}

pub(crate) async fn join_group(
    node: &Arc<Node>,
    session: &Session,
    r: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let rebalance_timeout_ms = if version == 0 {
        r.session_timeout_ms
    } else {
        r.rebalance_timeout_ms
    };
    let req = JoinArgs {
        group: r.group_id.to_string(),
        member_id: r.member_id.to_string(),
        client_id: session.client_id.clone(),
        client_host: session.client_host.clone(),
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        session_timeout_ms: u32::try_from(r.session_timeout_ms).unwrap_or(0),
        rebalance_timeout_ms: u32::try_from(rebalance_timeout_ms).unwrap_or(0),
    };
    let protocol_type = r.protocol_type.clone();
    match node.coordinator.join(node, req).await {
        Ok(j) => JoinGroupResponse::default()
            .with_generation_id(j.generation)
            .with_protocol_type(Some(protocol_type))
            .with_protocol_name(Some(str_bytes(j.protocol)))
            .with_leader(str_bytes(j.leader))
            .with_member_id(str_bytes(j.member_id))
            .with_members(
                j.members
                    .into_iter()
                    .map(|(member_id, metadata)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(str_bytes(member_id))
                            .with_metadata(metadata)
                    })
                    .collect(),
            ),
        Err(e) => JoinGroupResponse::default()
            .with_error_code(e.kafka_code())
            .with_generation_id(-1)
            .with_protocol_name(if version >= 7 {
                None
            } else {
                Some(StrBytes::default())
            })
            .with_member_id(r.member_id),
    }
}

pub(crate) async fn sync_group(node: &Node, r: SyncGroupRequest) -> SyncGroupResponse {
    let who = MemberRef {
        group: r.group_id.to_string(),
        generation: r.generation_id,
        member_id: r.member_id.to_string(),
    };
    let assignments = r
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    match node.coordinator.sync(node, who, assignments).await {
        Ok(assignment) => SyncGroupResponse::default()
            .with_protocol_type(r.protocol_type)
            .with_protocol_name(r.protocol_name)
            .with_assignment(assignment.into()),
        Err(e) => SyncGroupResponse::default().with_error_code(e.kafka_code()),
    }
}

pub(crate) async fn heartbeat(node: &Node, r: HeartbeatRequest) -> HeartbeatResponse {
    let req = MemberRef {
        group: r.group_id.to_string(),
        generation: r.generation_id,
        member_id: r.member_id.to_string(),
    };
    let error = match node.coordinator.heartbeat(node, req).await {
        Ok(()) => NONE,
        Err(e) => e.kafka_code(),
    };
    HeartbeatResponse::default().with_error_code(error)
}

pub(crate) async fn leave_group(
    node: &Node,
    r: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group = r.group_id.to_string();
    let leave = |member_id: String| {
        let group = group.clone();
        async move {
            match node.coordinator.leave(node, &group, &member_id).await {
                Ok(()) => NONE,
                Err(e) => e.kafka_code(),
            }
        }
    };
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(leave(r.member_id.to_string()).await);
    }
    let mut members = Vec::with_capacity(r.members.len());
    let mut error = NONE;
    for m in r.members {
        let e = leave(m.member_id.to_string()).await;
        // A request-level error for what concerns the whole group.
        if e == code(ResponseError::NotCoordinator) {
            error = e;
        }
        members.push(
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(e),
        );
    }
    LeaveGroupResponse::default()
        .with_error_code(error)
        .with_members(members)
}

/// The partition count of `topic`, if it exists.
fn partition_count(node: &Node, topic: &str) -> Option<u32> {
    node.meta_view
        .read(|s| s.topics.get(topic).map(|t| t.partitions.len() as u32))
}

/// (partition, Some(error) when refused before the commit).
type PartitionAnswers = Vec<(i32, Option<i16>)>;

/// A group's committed offsets: topic -> partition -> (offset, metadata).
type Committed = BTreeMap<String, BTreeMap<i32, (i64, String)>>;

pub(crate) async fn offset_commit(node: &Node, r: OffsetCommitRequest) -> OffsetCommitResponse {
    let now = crate::api::now_ms();
    let unknown = code(ResponseError::UnknownTopicOrPartition);
    let mut offsets = Vec::new();
    let mut answers: Vec<(TopicName, PartitionAnswers)> = Vec::new();
    for t in &r.topics {
        let name = t.name.to_string();
        let count = partition_count(node, &name);
        let mut parts = Vec::new();
        for p in &t.partitions {
            let known = u32::try_from(p.partition_index)
                .ok()
                .filter(|&i| count.is_some_and(|c| i < c));
            match known {
                Some(index) => {
                    offsets.push((
                        name.clone(),
                        index,
                        CommittedOffset {
                            offset: p.committed_offset,
                            metadata: p
                                .committed_metadata
                                .as_ref()
                                .map(|m| m.to_string())
                                .unwrap_or_default(),
                            commit_time_ms: now,
                        },
                    ));
                    parts.push((p.partition_index, None));
                }
                None => parts.push((p.partition_index, Some(unknown))),
            }
        }
        answers.push((t.name.clone(), parts));
    }
    // generation -1 with no member id: a commit from outside the group
    // (an admin tool, a consumer with manual assignment).
    let generation = (r.generation_id_or_member_epoch >= 0 || !r.member_id.is_empty())
        .then_some(r.generation_id_or_member_epoch);
    let outcome = if offsets.is_empty() {
        NONE
    } else {
        match node
            .coordinator
            .commit(
                node,
                r.group_id.to_string(),
                generation,
                r.member_id.to_string(),
                offsets,
            )
            .await
        {
            Ok(()) => NONE,
            Err(e) => e.kafka_code(),
        }
    };
    OffsetCommitResponse::default().with_topics(
        answers
            .into_iter()
            .map(|(name, parts)| {
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(index, refused)| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(index)
                                    .with_error_code(refused.unwrap_or(outcome))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// One group's committed offsets, or the Kafka error of the whole group.
async fn group_offsets(node: &Node, group: &str) -> Result<Committed, i16> {
    let offsets = node
        .coordinator
        .offsets(node, group)
        .await
        .map_err(|e| e.kafka_code())?;
    let mut by_topic = Committed::new();
    for o in offsets {
        by_topic
            .entry(o.topic)
            .or_default()
            .insert(o.partition as i32, (o.offset, o.metadata));
    }
    Ok(by_topic)
}

/// (topic, [(partition, offset, metadata)]) for the requested partitions
/// (-1 where nothing is committed), or every committed one when `topics`
/// is `None`.
type FetchedTopic = (String, Vec<(i32, i64, String)>);

fn select_offsets(
    committed: &Committed,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<FetchedTopic> {
    match topics {
        None => committed
            .iter()
            .map(|(t, parts)| {
                let parts = parts
                    .iter()
                    .map(|(p, (o, m))| (*p, *o, m.clone()))
                    .collect();
                (t.clone(), parts)
            })
            .collect(),
        Some(wanted) => wanted
            .into_iter()
            .map(|(t, parts)| {
                let found = committed.get(&t);
                let parts = parts
                    .into_iter()
                    .map(|p| match found.and_then(|f| f.get(&p)) {
                        Some((o, m)) => (p, *o, m.clone()),
                        None => (p, -1, String::new()),
                    })
                    .collect();
                (t, parts)
            })
            .collect(),
    }
}

pub(crate) async fn offset_fetch(
    node: &Node,
    r: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(r.groups.len());
        for g in r.groups {
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes))
                    .collect()
            });
            let answer = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            let answer = match group_offsets(node, &g.group_id).await {
                Err(error) => answer.with_error_code(error),
                Ok(committed) => answer.with_topics(
                    select_offsets(&committed, wanted)
                        .into_iter()
                        .map(|(t, parts)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(str_bytes(t)))
                                .with_partitions(
                                    parts
                                        .into_iter()
                                        .map(|(p, o, m)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(o)
                                                .with_committed_leader_epoch(-1)
                                                .with_metadata(Some(str_bytes(m)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            };
            groups.push(answer);
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> = r.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let (committed, error) = match group_offsets(node, &r.group_id).await {
        Ok(c) => (c, NONE),
        Err(e) => (Default::default(), e),
    };
    // Before v2 there is no top-level error: each partition carries it.
    let partition_error = if version < 2 { error } else { NONE };
    let topics = select_offsets(&committed, wanted)
        .into_iter()
        .map(|(t, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(t)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, o, m)| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_committed_leader_epoch(-1)
                                .with_metadata(Some(str_bytes(m)))
                                .with_error_code(partition_error)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default()
        .with_topics(topics)
        .with_error_code(error)
}

pub(crate) async fn list_groups(node: &Node, r: ListGroupsRequest) -> ListGroupsResponse {
    // Kafka clients ask every broker and merge the answers: only the
    // coordinator names groups, the others answer an empty list.
    let listed = match node.coordinator.list(node).await {
        Ok(l) => l,
        Err(ApiError::NotCoordinator { .. }) => Vec::new(),
        Err(e) => return ListGroupsResponse::default().with_error_code(e.kafka_code()),
    };
    let states: BTreeSet<String> = r.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: BTreeSet<String> = r.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let groups = listed
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
        // Every Cairn group is a "classic" group.
        .filter(|_| types.is_empty() || types.contains("classic"))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(group_id(g.group))
                .with_protocol_type(str_bytes(g.protocol_type))
                .with_group_state(str_bytes(g.state))
                .with_group_type(str_bytes("classic"))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub(crate) async fn describe_groups(
    node: &Node,
    r: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(r.groups.len());
    for name in r.groups {
        let answer = DescribedGroup::default().with_group_id(name.clone());
        let answer = match node.coordinator.describe(node, &name).await {
            Ok(d) => answer
                .with_group_state(str_bytes(d.state))
                .with_protocol_type(str_bytes(d.protocol_type))
                .with_protocol_data(str_bytes(d.protocol))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(str_bytes(m.member_id))
                                .with_client_id(str_bytes(m.client_id))
                                .with_client_host(str_bytes(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
            // As Kafka: a group that does not exist is described as Dead.
            Err(ApiError::UnknownGroup(_)) => answer.with_group_state(str_bytes("Dead")),
            Err(e) => answer
                .with_error_code(e.kafka_code())
                .with_error_message(Some(str_bytes(e.to_string()))),
        };
        groups.push(answer);
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(crate) async fn delete_groups(node: &Node, r: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(r.groups_names.len());
    for name in r.groups_names {
        let error = match node.coordinator.delete(node, &name).await {
            Ok(()) => NONE,
            Err(e) => e.kafka_code(),
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(name)
                .with_error_code(error),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

pub(crate) async fn offset_delete(node: &Node, r: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let unknown = code(ResponseError::UnknownTopicOrPartition);
    let mut asked = Vec::new();
    let mut refused = Vec::new();
    for t in &r.topics {
        let name = t.name.to_string();
        let count = partition_count(node, &name);
        for p in &t.partitions {
            match u32::try_from(p.partition_index)
                .ok()
                .filter(|&i| count.is_some_and(|c| i < c))
            {
                Some(i) => asked.push((name.clone(), i)),
                None => refused.push((name.clone(), p.partition_index, unknown)),
            }
        }
    }
    let answers = match node
        .coordinator
        .delete_offsets(node, &r.group_id, asked)
        .await
    {
        Ok(a) => a,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.kafka_code()),
    };
    let subscribed = code(ResponseError::GroupSubscribedToTopic);
    let mut by_topic: BTreeMap<String, Vec<(i32, i16)>> = BTreeMap::new();
    for ((t, p), deleted) in answers {
        let error = if deleted { NONE } else { subscribed };
        by_topic.entry(t).or_default().push((p as i32, error));
    }
    for (t, p, error) in refused {
        by_topic.entry(t).or_default().push((p, error));
    }
    OffsetDeleteResponse::default().with_topics(
        by_topic
            .into_iter()
            .map(|(t, parts)| {
                OffsetDeleteResponseTopic::default()
                    .with_name(TopicName(str_bytes(t)))
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(p, e)| {
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_error_code(e)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
