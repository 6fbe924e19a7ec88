//! The Kafka API: Kafka clients (librdkafka, the Java client, kafka-python,
//! aiokafka, kcat) talk to Cairn unchanged. Frames and message codecs are
//! `cairn-kafka`'s; what a request does is `crate::ops`, shared with the
//! gRPC API, so both doors see the same topics and records.
//!
//! ```text
//!   conn.rs      accept, one task per connection, frames in, answers out in order
//!   dispatch     (here) request body -> the handler of its API family
//!   metadata.rs  Metadata, DescribeCluster
//!   produce.rs   Produce, InitProducerId
//!   fetch.rs     Fetch, ListOffsets, OffsetForLeaderEpoch
//!   fetch_session.rs  the node's incremental fetch sessions (KIP-227)
//!   admin.rs     Create/DeleteTopics, CreatePartitions, DeleteRecords, configs, log dirs
//!   groups.rs    consumer groups: FindCoordinator .. OffsetDelete, on crate::coordinator
//!   refused.rs   SASL, ACLs, transactions: answered with Kafka's error
//! ```

mod admin;
mod conn;
mod fetch;
mod fetch_session;
mod groups;
mod metadata;
mod produce;
mod refused;

use std::sync::Arc;

use cairn_kafka::ApiRequest;
use cairn_kafka::ApiResponse;
use cairn_kafka::Request;
pub(crate) use conn::serve;

use crate::node::Node;

/// What one connection keeps between requests.
#[derive(Default)]
pub(crate) struct Session {
    /// The client's `client.id`, for logs.
    pub client_id: String,
    /// The client's IP address (DescribeGroups shows it per member).
    pub client_host: String,
    /// The node's fetch sessions, shared by all its connections.
    pub fetch_sessions: Arc<fetch_session::FetchSessions>,
}

/// Answers one request; `None` when Kafka sends no response (a Produce with
/// acks=0) or the request must close the connection (an API Cairn decodes
/// but does not serve on this connection).
pub(crate) async fn dispatch(
    node: &Arc<Node>,
    session: &mut Session,
    request: Request,
) -> Option<ApiResponse> {
    let version = request.version();
    Some(match request.body {
        ApiRequest::ApiVersions(_) => {
            ApiResponse::ApiVersions(cairn_kafka::api_versions_response(0))
        }
        ApiRequest::Metadata(r) => ApiResponse::Metadata(metadata::metadata(node, r, version)),
        ApiRequest::DescribeCluster(r) => {
            ApiResponse::DescribeCluster(metadata::describe_cluster(node, r))
        }
        ApiRequest::Produce(r) => ApiResponse::Produce(produce::produce(node, r, version).await?),
        ApiRequest::InitProducerId(r) => {
            ApiResponse::InitProducerId(produce::init_producer_id(node, r).await)
        }
        ApiRequest::Fetch(r) => {
            ApiResponse::Fetch(fetch::fetch(node, &session.fetch_sessions, r, version).await)
        }
        ApiRequest::ListOffsets(r) => {
            ApiResponse::ListOffsets(fetch::list_offsets(node, r, version).await)
        }
        ApiRequest::OffsetForLeaderEpoch(r) => {
            ApiResponse::OffsetForLeaderEpoch(fetch::offset_for_leader_epoch(node, r).await)
        }
        ApiRequest::CreateTopics(r) => {
            ApiResponse::CreateTopics(admin::create_topics(node, r, version).await)
        }
        ApiRequest::DeleteTopics(r) => {
            ApiResponse::DeleteTopics(admin::delete_topics(node, r, version).await)
        }
        ApiRequest::CreatePartitions(r) => {
            ApiResponse::CreatePartitions(admin::create_partitions(node, r).await)
        }
        ApiRequest::DeleteRecords(r) => {
            ApiResponse::DeleteRecords(admin::delete_records(node, r).await)
        }
        ApiRequest::DescribeConfigs(r) => {
            ApiResponse::DescribeConfigs(admin::describe_configs(node, r, version))
        }
        ApiRequest::AlterConfigs(r) => {
            ApiResponse::AlterConfigs(admin::alter_configs(node, r).await)
        }
        ApiRequest::IncrementalAlterConfigs(r) => {
            ApiResponse::IncrementalAlterConfigs(admin::incremental_alter_configs(node, r).await)
        }
        ApiRequest::DescribeLogDirs(r) => {
            ApiResponse::DescribeLogDirs(admin::describe_log_dirs(node, r))
        }
        ApiRequest::FindCoordinator(r) => {
            ApiResponse::FindCoordinator(groups::find_coordinator(node, r, version))
        }
        ApiRequest::JoinGroup(r) => {
            ApiResponse::JoinGroup(groups::join_group(node, session, r, version).await)
        }
        ApiRequest::SyncGroup(r) => ApiResponse::SyncGroup(groups::sync_group(node, r).await),
        ApiRequest::Heartbeat(r) => ApiResponse::Heartbeat(groups::heartbeat(node, r).await),
        ApiRequest::LeaveGroup(r) => {
            ApiResponse::LeaveGroup(groups::leave_group(node, r, version).await)
        }
        ApiRequest::OffsetCommit(r) => {
            ApiResponse::OffsetCommit(groups::offset_commit(node, r).await)
        }
        ApiRequest::OffsetFetch(r) => {
            ApiResponse::OffsetFetch(groups::offset_fetch(node, r, version).await)
        }
        ApiRequest::ListGroups(r) => ApiResponse::ListGroups(groups::list_groups(node, r).await),
        ApiRequest::DescribeGroups(r) => {
            ApiResponse::DescribeGroups(groups::describe_groups(node, r).await)
        }
        ApiRequest::DeleteGroups(r) => {
            ApiResponse::DeleteGroups(groups::delete_groups(node, r).await)
        }
        ApiRequest::OffsetDelete(r) => {
            ApiResponse::OffsetDelete(groups::offset_delete(node, r).await)
        }
        other => refused::answer(other)?,
    })
}

/// Kafka's "no error".
pub(crate) const NONE: i16 = 0;

/// A Kafka error code by name.
pub(crate) fn code(e: cairn_kafka::kafka_protocol::ResponseError) -> i16 {
    e.code()
}

/// A String as Kafka's string type.
pub(crate) fn str_bytes(s: impl Into<String>) -> cairn_kafka::kafka_protocol::protocol::StrBytes {
    cairn_kafka::kafka_protocol::protocol::StrBytes::from_string(s.into())
}
