//! Metadata and DescribeCluster: brokers are Cairn nodes (node id = broker
//! id, the advertised Kafka address), the controller is the metadata
//! leader, a partition's leader epoch is its Raft term and its ISR the
//! replicas its leader counts healthy.

use cairn_broker::acl::ResourceType;
use cairn_broker::acl::CLUSTER_RESOURCE;
use cairn_broker::views::ClusterView;
use cairn_broker::views::TopicView;
use cairn_broker::views::Topics;
use cairn_broker::Broker;
use cairn_broker::BrokerError;
use cairn_broker::NodeId;
use cairn_broker::RequestContext;
use cairn_kafka::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use cairn_kafka::kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use cairn_kafka::kafka_protocol::messages::metadata_response::MetadataResponsePartition;
use cairn_kafka::kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use cairn_kafka::kafka_protocol::messages::BrokerId;
use cairn_kafka::kafka_protocol::messages::DescribeClusterRequest;
use cairn_kafka::kafka_protocol::messages::DescribeClusterResponse;
use cairn_kafka::kafka_protocol::messages::MetadataRequest;
use cairn_kafka::kafka_protocol::messages::MetadataResponse;
use cairn_kafka::kafka_protocol::messages::TopicName;
use cairn_kafka::kafka_protocol::ResponseError;
use cairn_metadata::NodeInfo;
use cairn_metadata::Topic;

use super::code;
use super::str_bytes;

/// The high half of every topic id Cairn shows Kafka clients ("cairn");
/// the low half is the topic's id in the metadata.
const TOPIC_ID_TAG: u64 = 0x6361_6972_6e00_0000;

pub(crate) fn topic_uuid(t: &Topic) -> uuid::Uuid {
    topic_uuid_of(t.id)
}

/// The topic id Kafka clients see for the metadata's topic id `id`.
pub(crate) fn topic_uuid_of(id: u64) -> uuid::Uuid {
    uuid::Uuid::from_u64_pair(TOPIC_ID_TAG, id)
}

/// The metadata's topic id of a topic id Kafka clients send; `None` for
/// one Cairn never gave out.
pub(crate) fn topic_id_of(u: uuid::Uuid) -> Option<u64> {
    let (tag, id) = u.as_u64_pair();
    (tag == TOPIC_ID_TAG).then_some(id)
}

fn broker_id(id: NodeId) -> BrokerId {
    BrokerId(i32::try_from(id).unwrap_or(i32::MAX))
}

/// `host:port` as Kafka clients want them; `None` when it does not parse.
pub(super) fn host_port(addr: &str) -> Option<(String, i32)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// The nodes a client can reach: this one and every node alive.
fn live_brokers(view: &ClusterView) -> Vec<(NodeInfo, String, i32)> {
    view.live_nodes()
        .filter_map(|n| {
            let (host, port) = host_port(&n.info.kafka_addr)?;
            Some((n.info.clone(), host, port))
        })
        .collect()
}

fn controller(view: &ClusterView) -> BrokerId {
    view.metadata_leader.map(broker_id).unwrap_or(BrokerId(-1))
}

fn topic_metadata(t: &TopicView, live: &[NodeId]) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let s = &p.status;
            let error = if s.leader.is_some() {
                super::NONE
            } else {
                code(ResponseError::LeaderNotAvailable)
            };
            let replicas = &p.assignment.replicas;
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p.assignment.partition as i32)
                .with_leader_id(s.leader.map(broker_id).unwrap_or(BrokerId(-1)))
                .with_leader_epoch(i32::try_from(s.term).unwrap_or(i32::MAX))
                .with_replica_nodes(replicas.iter().copied().map(broker_id).collect())
                .with_isr_nodes(s.healthy.iter().copied().map(broker_id).collect())
                .with_offline_replicas(
                    replicas
                        .iter()
                        .filter(|r| !live.contains(r))
                        .copied()
                        .map(broker_id)
                        .collect(),
                )
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(t.topic.name.clone()))))
        .with_topic_id(topic_uuid(&t.topic))
        // The audit topic is the cluster's own, as __consumer_offsets is
        // Kafka's: tools leave it out of listings (--exclude-internal).
        .with_is_internal(t.topic.name == cairn_broker::audit::AUDIT_TOPIC)
        .with_partitions(partitions)
}

fn refused_topic(
    name: Option<TopicName>,
    topic_id: uuid::Uuid,
    error: i16,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error)
        .with_name(name)
        .with_topic_id(topic_id)
}

/// Metadata: the brokers, the controller, and the topics asked for (all of
/// them for a null list, or an empty one at version 0) that the principal
/// may describe. An unknown one is created when the node allows it
/// (`auto_create_topics_enable`) and the request does (always before
/// version 4), else it is UNKNOWN_TOPIC_OR_PARTITION; one named but not
/// allowed is TOPIC_AUTHORIZATION_FAILED, and left out of "all topics".
pub(crate) async fn metadata(
    broker: &Broker,
    ctx: &RequestContext,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let wanted = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    // By id, a topic can only be found among all those the principal may see.
    let scope = match &wanted {
        Some(asked) if asked.iter().all(|a| a.name.is_some()) => Topics::Named(
            asked
                .iter()
                .filter_map(|a| a.name.as_ref().map(|n| n.to_string()))
                .collect(),
        ),
        _ => Topics::All,
    };
    let named = matches!(scope, Topics::Named(_));
    let mut view = broker.metadata(ctx, scope);
    if named {
        // A topic asked for by name is answered once its leaders are known
        // here (settling.rs), not as unknown in the meantime.
        broker.await_settled(&mut view).await;
    }
    let brokers = live_brokers(&view);
    let live: Vec<NodeId> = brokers.iter().map(|(n, _, _)| n.id).collect();
    let auto_create = version < 4 || req.allow_auto_topic_creation;
    let with_topic_ops = req.include_topic_authorized_operations;
    let topics: Vec<MetadataResponseTopic> = match wanted {
        None => view
            .topics
            .iter()
            .filter(|t| !t.settling)
            .map(|t| topic_metadata(t, &live))
            .collect(),
        Some(asked) => {
            let mut out = Vec::with_capacity(asked.len());
            for a in asked {
                let (answer, missing) = answer_topic(&view, &live, a);
                out.push(match answer.name.clone() {
                    Some(name) if missing && auto_create => {
                        match broker.auto_create_topic(ctx, name.as_str()).await {
                            // Kafka's answer for a topic it just created.
                            Ok(t) if t.settling => refused_topic(
                                Some(name),
                                topic_uuid(&t.topic),
                                code(ResponseError::LeaderNotAvailable),
                            ),
                            Ok(t) => topic_metadata(&t, &live),
                            Err(BrokerError::UnknownTopic(_)) => answer,
                            Err(e) => {
                                tracing::info!(topic = %name.as_str(), error = %e, "kafka: topic not auto-created");
                                refused_topic(Some(name), answer.topic_id, e.kafka_code())
                            }
                        }
                    }
                    _ => answer,
                });
            }
            out
        }
    };

    MetadataResponse::default()
        .with_brokers(
            brokers
                .into_iter()
                .map(|(n, host, port)| {
                    MetadataResponseBroker::default()
                        .with_node_id(broker_id(n.id))
                        .with_host(str_bytes(host))
                        .with_port(port)
                        .with_rack(n.rack.map(str_bytes))
                })
                .collect(),
        )
        .with_cluster_id(Some(str_bytes(view.cluster_id.clone())))
        .with_controller_id(controller(&view))
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            broker.authorized_operations(ctx, ResourceType::Cluster, CLUSTER_RESOURCE)
        } else {
            i32::MIN
        })
        .with_topics(
            topics
                .into_iter()
                .map(|t| match &t.name {
                    // Only for a topic answered without error, as Kafka.
                    // As Kafka: every topic the principal may describe,
                    // existing or not (an unknown one's too), has its
                    // operations; a topic it may not describe keeps none.
                    Some(name)
                        if with_topic_ops
                            && t.error_code != code(ResponseError::TopicAuthorizationFailed) =>
                    {
                        let ops =
                            broker.authorized_operations(ctx, ResourceType::Topic, name.as_str());
                        t.with_topic_authorized_operations(ops)
                    }
                    _ => t,
                })
                .collect(),
        )
}

/// The answer for one topic asked for, as this node knows it, and whether
/// no topic has that (valid) name.
fn answer_topic(
    view: &ClusterView,
    live: &[NodeId],
    a: cairn_kafka::kafka_protocol::messages::metadata_request::MetadataRequestTopic,
) -> (MetadataResponseTopic, bool) {
    let found = match &a.name {
        Some(name) => view.topics.iter().find(|t| t.topic.name == name.as_str()),
        None => view
            .topics
            .iter()
            .find(|t| topic_uuid(&t.topic) == a.topic_id),
    };
    let denied = a
        .name
        .as_ref()
        .is_some_and(|n| view.denied.iter().any(|d| d == n.as_str()));
    match found {
        // Asked for by id, while its leaders are not known here yet
        // (settling.rs): not shown.
        Some(t) if t.settling => (
            refused_topic(
                a.name,
                a.topic_id,
                code(ResponseError::UnknownTopicOrPartition),
            ),
            false,
        ),
        Some(t) => (topic_metadata(t, live), false),
        None if denied => (
            refused_topic(
                a.name,
                a.topic_id,
                code(ResponseError::TopicAuthorizationFailed),
            ),
            false,
        ),
        // A name no topic can have: the client fails at once
        // instead of waiting for it to appear.
        None if a
            .name
            .as_ref()
            .is_some_and(|n| cairn_metadata::validate_topic_name(n.as_str()).is_err()) =>
        {
            (
                refused_topic(
                    a.name,
                    a.topic_id,
                    code(ResponseError::InvalidTopicException),
                ),
                false,
            )
        }
        None => (
            refused_topic(
                a.name,
                a.topic_id,
                code(ResponseError::UnknownTopicOrPartition),
            ),
            true,
        ),
    }
}

/// DescribeCluster: the brokers and the controller (as Metadata without
/// topics: no authorization beyond Metadata's).
pub(crate) fn describe_cluster(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let view = broker.metadata(ctx, Topics::None);
    DescribeClusterResponse::default()
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            broker.authorized_operations(ctx, ResourceType::Cluster, CLUSTER_RESOURCE)
        } else {
            i32::MIN
        })
        .with_cluster_id(str_bytes(view.cluster_id.clone()))
        .with_controller_id(controller(&view))
        .with_brokers(
            live_brokers(&view)
                .into_iter()
                .map(|(n, host, port)| {
                    DescribeClusterBroker::default()
                        .with_broker_id(broker_id(n.id))
                        .with_host(str_bytes(host))
                        .with_port(port)
                        .with_rack(n.rack.map(str_bytes))
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(
            host_port("127.0.0.1:9092"),
            Some(("127.0.0.1".into(), 9092))
        );
        assert_eq!(host_port("[::1]:19092"), Some(("::1".into(), 19092)));
        assert_eq!(host_port("nohost"), None);
    }
}
