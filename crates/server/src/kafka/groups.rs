//! Consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups,
//! DeleteGroups, OffsetDelete.
//!
//! All of them go through `cairn_broker::Broker` to the same coordinator the gRPC API
//! uses (on the metadata leader), so a group is one group whichever door its
//! members use, and offsets committed through one are read through the
//! other. The coordinator a client is sent to is the metadata leader; every
//! other node answers NOT_COORDINATOR and the client asks again.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use cairn_broker::acl::ResourceType;
use cairn_broker::Broker;
use cairn_broker::BrokerError as ApiError;
use cairn_broker::JoinArgs;
use cairn_broker::MemberRef;
use cairn_broker::OffsetToCommit;
use cairn_broker::RequestContext;
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

use super::code;
use super::metadata::host_port;
use super::str_bytes;
use super::Session;
use super::NONE;

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

/// The coordinator of `group`: the metadata leader, as (node id, host, port).
fn coordinator_broker(
    broker: &Broker,
    ctx: &RequestContext,
    group: &str,
) -> Result<(i32, String, i32), (i16, String)> {
    let c = broker
        .find_coordinator(ctx, group)
        .map_err(|e| (e.kafka_code(), e.to_string()))?;
    let (host, port) = host_port(&c.kafka_addr).ok_or_else(|| {
        (
            code(ResponseError::CoordinatorNotAvailable),
            "the coordinator has no Kafka address".to_owned(),
        )
    })?;
    Ok((i32::try_from(c.node).unwrap_or(i32::MAX), host, port))
}

pub(crate) fn find_coordinator(
    broker: &Broker,
    ctx: &RequestContext,
    r: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let answer = |key_type: i8, key: &str| {
        if key_type == KEY_TYPE_TRANSACTION {
            return Err((
                code(ResponseError::TransactionalIdAuthorizationFailed),
                "Cairn does not support transactions yet: transactional ids are refused".to_owned(),
            ));
        }
        coordinator_broker(broker, ctx, key)
    };
    if version >= 4 {
        let coordinators = r
            .coordinator_keys
            .iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key.clone());
                match answer(r.key_type, key.as_str()) {
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
    match answer(r.key_type, r.key.as_str()) {
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
    broker: &Broker,
    ctx: &RequestContext,
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
        group_instance_id: r.group_instance_id.as_ref().map(|i| i.to_string()),
    };
    let protocol_type = r.protocol_type.clone();
    match broker.join_group(ctx, req).await {
        Ok(j) => JoinGroupResponse::default()
            .with_skip_assignment(j.skip_assignment && version >= 9)
            .with_generation_id(j.generation)
            .with_protocol_type(Some(protocol_type))
            .with_protocol_name(Some(str_bytes(j.protocol)))
            .with_leader(str_bytes(j.leader))
            .with_member_id(str_bytes(j.member_id))
            .with_members(
                j.members
                    .into_iter()
                    .map(|(member_id, metadata)| {
                        let instance = j
                            .instance_ids
                            .iter()
                            .find(|(m, _)| *m == member_id)
                            .map(|(_, i)| str_bytes(i.clone()));
                        JoinGroupResponseMember::default()
                            .with_member_id(str_bytes(member_id))
                            .with_group_instance_id(instance)
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

pub(crate) async fn sync_group(
    broker: &Broker,
    ctx: &RequestContext,
    r: SyncGroupRequest,
) -> SyncGroupResponse {
    let who = MemberRef {
        group: r.group_id.to_string(),
        generation: r.generation_id,
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.as_ref().map(|i| i.to_string()),
    };
    let assignments = r
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    match broker.sync_group(ctx, who, assignments).await {
        Ok(assignment) => SyncGroupResponse::default()
            .with_protocol_type(r.protocol_type)
            .with_protocol_name(r.protocol_name)
            .with_assignment(assignment.into()),
        Err(e) => SyncGroupResponse::default().with_error_code(e.kafka_code()),
    }
}

pub(crate) async fn heartbeat(
    broker: &Broker,
    ctx: &RequestContext,
    r: HeartbeatRequest,
) -> HeartbeatResponse {
    let req = MemberRef {
        group: r.group_id.to_string(),
        generation: r.generation_id,
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.as_ref().map(|i| i.to_string()),
    };
    let error = match broker.heartbeat(ctx, req).await {
        Ok(()) => NONE,
        Err(e) => e.kafka_code(),
    };
    HeartbeatResponse::default().with_error_code(error)
}

pub(crate) async fn leave_group(
    broker: &Broker,
    ctx: &RequestContext,
    r: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group = r.group_id.to_string();
    let leave = |member_id: String, instance: Option<String>| {
        let group = group.clone();
        async move {
            match broker
                .leave_group(ctx, &group, &member_id, instance.as_deref())
                .await
            {
                Ok(()) => NONE,
                Err(e) => e.kafka_code(),
            }
        }
    };
    if version < 3 {
        return LeaveGroupResponse::default()
            .with_error_code(leave(r.member_id.to_string(), None).await);
    }
    let mut members = Vec::with_capacity(r.members.len());
    let mut error = NONE;
    for m in r.members {
        let e = leave(
            m.member_id.to_string(),
            m.group_instance_id.as_ref().map(|i| i.to_string()),
        )
        .await;
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

/// A group's committed offsets: topic -> partition -> (offset, metadata,
/// leader epoch or -1).
type Committed = BTreeMap<String, BTreeMap<i32, (i64, String, i32)>>;

pub(crate) async fn offset_commit(
    broker: &Broker,
    ctx: &RequestContext,
    r: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let mut offsets = Vec::new();
    for t in &r.topics {
        for p in &t.partitions {
            offsets.push(OffsetToCommit {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                metadata: p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                leader_epoch: (p.committed_leader_epoch >= 0).then_some(p.committed_leader_epoch),
            });
        }
    }
    // A negative generation (or member epoch): a commit from outside the
    // group (an admin tool, a consumer with manual assignment; librdkafka's
    // with the consumer protocol names its member id even then), accepted
    // while the group has no members, as Kafka does.
    let generation =
        (r.generation_id_or_member_epoch >= 0).then_some(r.generation_id_or_member_epoch);
    let outcome = broker
        .commit_offsets(
            ctx,
            &r.group_id,
            generation,
            &r.member_id,
            r.group_instance_id.as_deref(),
            offsets,
            true,
        )
        .await;
    // Each partition's answer, by (topic, partition); a refusal of the
    // whole group answers every partition.
    // A commit from outside a group that has members: Kafka answers
    // UNKNOWN_MEMBER_ID (the admin client's AlterConsumerGroupOffsets on an
    // active group), not NON_EMPTY_GROUP.
    let kafka_code = |e: &ApiError| match e {
        ApiError::GroupNotEmpty(_) => code(ResponseError::UnknownMemberId),
        e => e.kafka_code(),
    };
    let answer = |topic: &str, partition: i32| -> i16 {
        match &outcome {
            Err(e) => kafka_code(e),
            Ok(results) => results
                .iter()
                .find(|(t, p, _)| t == topic && *p == partition)
                .map_or(NONE, |(_, _, r)| match r {
                    Ok(()) => NONE,
                    Err(e) => kafka_code(e),
                }),
        }
    };
    OffsetCommitResponse::default().with_topics(
        r.topics
            .iter()
            .map(|t| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(answer(t.name.as_str(), p.partition_index))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// One group's committed offsets, or the Kafka error of the whole group.
async fn group_offsets(
    broker: &Broker,
    ctx: &RequestContext,
    group: &str,
) -> Result<Committed, i16> {
    let offsets = broker
        .fetch_offsets(ctx, group)
        .await
        .map_err(|e| e.kafka_code())?;
    let mut by_topic = Committed::new();
    for o in offsets {
        by_topic.entry(o.topic).or_default().insert(
            o.partition as i32,
            (o.offset, o.metadata, o.leader_epoch.unwrap_or(-1)),
        );
    }
    Ok(by_topic)
}

/// (topic, [(partition, offset, metadata, leader epoch)]) for the requested
/// partitions (offset and epoch -1 where nothing is committed), or every
/// committed one when `topics` is `None`.
type FetchedTopic = (String, Vec<(i32, i64, String, i32)>);

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
                    .map(|(p, (o, m, e))| (*p, *o, m.clone(), *e))
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
                        Some((o, m, e)) => (p, *o, m.clone(), *e),
                        None => (p, -1, String::new(), -1),
                    })
                    .collect();
                (t, parts)
            })
            .collect(),
    }
}

pub(crate) async fn offset_fetch(
    broker: &Broker,
    ctx: &RequestContext,
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
            // v9: a consumer-protocol member names itself and its epoch.
            let member = match &g.member_id {
                Some(m) if version >= 9 => {
                    broker
                        .check_offset_fetch_member(ctx, &g.group_id, m, g.member_epoch)
                        .await
                }
                _ => Ok(()),
            };
            let offsets = match member {
                Ok(()) => group_offsets(broker, ctx, &g.group_id).await,
                Err(e) => Err(e.kafka_code()),
            };
            let answer = match offsets {
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
                                        .map(|(p, o, m, e)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(o)
                                                .with_committed_leader_epoch(e)
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
    let (committed, error) = match group_offsets(broker, ctx, &r.group_id).await {
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
                        .map(|(p, o, m, e)| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_committed_leader_epoch(e)
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

pub(crate) async fn list_groups(
    broker: &Broker,
    ctx: &RequestContext,
    r: ListGroupsRequest,
) -> ListGroupsResponse {
    // Kafka clients ask every broker and merge the answers: only the
    // coordinator names groups, the others answer an empty list.
    let listed = match broker.list_groups(ctx).await {
        Ok(l) => l,
        Err(ApiError::NotCoordinator { .. }) => Vec::new(),
        Err(e) => return ListGroupsResponse::default().with_error_code(e.kafka_code()),
    };
    let states: BTreeSet<String> = r.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: BTreeSet<String> = r.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let group_type = |g: &cairn_broker::GroupSummary| {
        if g.consumer_protocol {
            "consumer"
        } else {
            "classic"
        }
    };
    let groups = listed
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
        .filter(|g| types.is_empty() || types.contains(group_type(g)))
        .map(|g| {
            let kind = group_type(&g);
            ListedGroup::default()
                .with_group_id(group_id(g.group))
                .with_protocol_type(str_bytes(g.protocol_type))
                .with_group_state(str_bytes(g.state))
                .with_group_type(str_bytes(kind))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub(crate) async fn describe_groups(
    broker: &Broker,
    ctx: &RequestContext,
    r: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(r.groups.len());
    for name in r.groups {
        let answer = DescribedGroup::default().with_group_id(name.clone());
        let answer = match broker.describe_group(ctx, &name).await {
            Ok(d) => answer
                .with_authorized_operations(if r.include_authorized_operations {
                    broker.authorized_operations(ctx, ResourceType::Group, &name)
                } else {
                    i32::MIN
                })
                .with_group_state(str_bytes(d.state))
                .with_protocol_type(str_bytes(d.protocol_type))
                .with_protocol_data(str_bytes(d.protocol))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(str_bytes(m.member_id))
                                .with_group_instance_id(m.group_instance_id.map(str_bytes))
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

pub(crate) async fn delete_groups(
    broker: &Broker,
    ctx: &RequestContext,
    r: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(r.groups_names.len());
    for name in r.groups_names {
        let error = match broker.delete_group(ctx, &name).await {
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

pub(crate) async fn offset_delete(
    broker: &Broker,
    ctx: &RequestContext,
    r: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let asked = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let answers = match broker.delete_offsets(ctx, &r.group_id, asked).await {
        Ok(a) => a,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.kafka_code()),
    };
    let subscribed = code(ResponseError::GroupSubscribedToTopic);
    let mut by_topic: BTreeMap<String, Vec<(i32, i16)>> = BTreeMap::new();
    for (t, p, result) in answers {
        let error = match result {
            Ok(true) => NONE,
            Ok(false) => subscribed,
            Err(e) => e.kafka_code(),
        };
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

/// Partitions by topic id as the consumer protocol carries them.
fn owned_partitions(
    list: &[consumer_group_heartbeat_request::TopicPartitions],
) -> cairn_group::modern::Partitions {
    let mut out = cairn_group::modern::Partitions::new();
    for t in list {
        // A topic id Cairn never gave out owns nothing here.
        let Some(id) = super::metadata::topic_id_of(t.topic_id) else {
            continue;
        };
        out.entry(id)
            .or_default()
            .extend(t.partitions.iter().filter_map(|p| u32::try_from(*p).ok()));
    }
    out
}

/// A member id for a version 0 join: 128 random bits, as a UUID's hex.
fn random_member_id() -> String {
    use std::hash::BuildHasher;
    let half =
        || std::collections::hash_map::RandomState::new().hash_one(cairn_clock::system_time());
    uuid::Uuid::from_u64_pair(half(), half())
        .simple()
        .to_string()
}

pub(crate) async fn consumer_group_heartbeat(
    broker: &Broker,
    ctx: &RequestContext,
    session: &Session,
    r: ConsumerGroupHeartbeatRequest,
    version: i16,
) -> ConsumerGroupHeartbeatResponse {
    use consumer_group_heartbeat_response::Assignment;
    use consumer_group_heartbeat_response::TopicPartitions;
    // Version 0: the coordinator names a joining member; from version 1
    // the client does (a UUID it keeps across rejoins).
    let member_id = if version == 0 && r.member_epoch == 0 && r.member_id.is_empty() {
        random_member_id()
    } else {
        r.member_id.to_string()
    };
    let hb = cairn_group::modern::Heartbeat {
        member_id,
        member_epoch: r.member_epoch,
        instance_id: r.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: r.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: r.rebalance_timeout_ms,
        subscribed_topics: r
            .subscribed_topic_names
            .as_ref()
            .map(|t| t.iter().map(|n| n.to_string()).collect()),
        subscribed_regex: r.subscribed_topic_regex.as_ref().map(|s| s.to_string()),
        server_assignor: r.server_assignor.as_ref().map(|s| s.to_string()),
        owned: r.topic_partitions.as_deref().map(owned_partitions),
        client_id: session.client_id.clone(),
        client_host: session.client_host.clone(),
    };
    match broker.consumer_group_heartbeat(ctx, &r.group_id, hb).await {
        Ok(a) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(a.member_id)))
            .with_member_epoch(a.member_epoch)
            .with_heartbeat_interval_ms(a.heartbeat_interval_ms)
            .with_assignment(a.assignment.map(|p| {
                Assignment::default().with_topic_partitions(
                    p.into_iter()
                        .map(|(id, parts)| {
                            TopicPartitions::default()
                                .with_topic_id(super::metadata::topic_uuid_of(id))
                                .with_partitions(parts.into_iter().map(|p| p as i32).collect())
                        })
                        .collect(),
                )
            })),
        Err(e) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.kafka_code())
            .with_error_message(Some(str_bytes(e.to_string())))
            .with_member_epoch(-1),
    }
}

pub(crate) async fn consumer_group_describe(
    broker: &Broker,
    ctx: &RequestContext,
    r: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    use consumer_group_describe_response::Assignment;
    use consumer_group_describe_response::DescribedGroup;
    use consumer_group_describe_response::Member;
    use consumer_group_describe_response::TopicPartitions;
    let mut described = Vec::with_capacity(r.group_ids.len());
    for name in r.group_ids {
        let view = broker.describe_consumer_group(ctx, &name).await;
        described.push((name, view));
    }
    // The names of the topics the members have or are to get.
    let ids = described
        .iter()
        .filter_map(|(_, v)| v.as_ref().ok())
        .flat_map(|v| v.meta.members.values())
        .flat_map(|m| m.assigned.keys().chain(m.target.keys()))
        .copied()
        .collect();
    let names = broker.topic_names_of(&ids);
    let assignment = |p: &cairn_group::modern::Partitions| {
        Assignment::default().with_topic_partitions(
            p.iter()
                .filter_map(|(id, parts)| {
                    let name = names.get(id)?;
                    Some(
                        TopicPartitions::default()
                            .with_topic_id(super::metadata::topic_uuid_of(*id))
                            .with_topic_name(TopicName(str_bytes(name.clone())))
                            .with_partitions(parts.iter().map(|p| *p as i32).collect()),
                    )
                })
                .collect(),
        )
    };
    let mut groups = Vec::with_capacity(described.len());
    for (name, view) in described {
        let answer = DescribedGroup::default().with_group_id(name.clone());
        let answer = match view {
            Ok(v) => answer
                .with_group_state(str_bytes(v.state))
                .with_group_epoch(v.meta.group_epoch)
                .with_assignment_epoch(v.meta.assignment_epoch)
                .with_assignor_name(str_bytes(v.assignor))
                .with_authorized_operations(if r.include_authorized_operations {
                    broker.authorized_operations(ctx, ResourceType::Group, &name)
                } else {
                    i32::MIN
                })
                .with_members(
                    v.meta
                        .members
                        .values()
                        .map(|m| {
                            Member::default()
                                .with_member_id(str_bytes(m.member_id.clone()))
                                .with_instance_id(m.instance_id.clone().map(str_bytes))
                                .with_rack_id(m.rack_id.clone().map(str_bytes))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(str_bytes(m.client_id.clone()))
                                .with_client_host(str_bytes(m.client_host.clone()))
                                .with_subscribed_topic_names(
                                    m.subscribed_topics
                                        .iter()
                                        .map(|t| TopicName(str_bytes(t.clone())))
                                        .collect(),
                                )
                                .with_subscribed_topic_regex(
                                    m.subscribed_regex.clone().map(str_bytes),
                                )
                                .with_assignment(assignment(&m.assigned))
                                .with_target_assignment(assignment(&m.target))
                                // 1: a member of the consumer protocol.
                                .with_member_type(1)
                        })
                        .collect(),
                ),
            Err(e) => answer
                .with_error_code(e.kafka_code())
                .with_error_message(Some(str_bytes(e.to_string())))
                .with_authorized_operations(i32::MIN),
        };
        groups.push(answer);
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
