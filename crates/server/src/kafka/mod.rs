//! The Kafka API: Kafka clients (librdkafka, the Java client, kafka-python,
//! aiokafka, kcat) talk to Cairn unchanged. Frames and message codecs are
//! `cairn-kafka`'s; what a request does is `cairn_broker::Broker`'s, shared
//! with the gRPC API, so both doors see the same topics and records and
//! pass the same authorization.
//!
//! ```text
//!   conn.rs      accept, one task per connection, frames in, answers out in order
//!   dispatch     (here) request body -> the handler of its API family
//!   metadata.rs  Metadata, DescribeCluster
//!   produce.rs   Produce, InitProducerId
//!   fetch.rs     Fetch, ListOffsets, OffsetForLeaderEpoch
//!   fetch_session.rs  the node's incremental fetch sessions (KIP-227)
//!   admin.rs     Create/DeleteTopics, CreatePartitions, DeleteRecords, configs, log dirs
//!   groups.rs    consumer groups: FindCoordinator .. OffsetDelete, and the consumer
//!                protocol's ConsumerGroupHeartbeat/Describe (KIP-848), through the broker
//!   acls.rs      CreateAcls, DescribeAcls, DeleteAcls
//!   sasl.rs      SaslHandshake, SaslAuthenticate (before anything else on SASL_PLAINTEXT)
//!   users.rs     Describe/AlterUserScramCredentials
//!   refused.rs   transactions: answered with Kafka's error
//! ```

mod acls;
mod admin;
mod conn;
mod fetch;
mod fetch_session;
mod groups;
mod metadata;
mod produce;
mod refused;
mod sasl;
mod users;

use std::sync::Arc;

use cairn_kafka::ApiRequest;
use cairn_kafka::ApiResponse;
use cairn_kafka::Request;
pub(crate) use conn::serve;

use cairn_broker::Broker;
use cairn_broker::RequestContext;

/// What one connection keeps between requests.
pub(crate) struct Session {
    /// The client's `client.id`, for logs.
    pub client_id: String,
    /// The client's IP address (DescribeGroups shows it per member).
    pub client_host: String,
    /// The node's fetch sessions, shared by all its connections.
    pub fetch_sessions: Arc<fetch_session::FetchSessions>,
    /// Who this connection is (anonymous until SASL or mTLS), from where.
    pub ctx: RequestContext,
    /// The SASL exchange under way (after SaslHandshake).
    pub sasl: Option<cairn_broker::SaslExchange>,
    /// Authenticated with SASL.
    pub authenticated: bool,
    /// The SASL mechanism it authenticated with.
    pub mechanism: Option<String>,
    /// When the SASL session ends (KIP-368): after it, any request but a
    /// re-authentication closes the connection.
    pub expires_at: Option<cairn_clock::Instant>,
    /// Close the connection once the current answer is written.
    pub close_after: bool,
    /// A failed authentication: wait this long before answering it and
    /// closing (Kafka's `connection.failed.authentication.delay.ms`).
    pub delay_answer: Option<std::time::Duration>,
}

/// Answers one request; `None` when Kafka sends no response (a Produce with
/// acks=0) or the request must close the connection (an API Cairn decodes
/// but does not serve on this connection).
pub(crate) async fn dispatch(
    broker: &Broker,
    session: &mut Session,
    request: Request,
) -> Option<ApiResponse> {
    let version = request.version();
    if session.expires_at.is_some_and(|t| cairn_clock::now() >= t)
        && !matches!(
            request.body,
            ApiRequest::SaslHandshake(_) | ApiRequest::SaslAuthenticate(_)
        )
    {
        tracing::info!(client = ?session.ctx.client, principal = %session.ctx.principal, "kafka: the SASL session expired without re-authentication; closing the connection");
        metrics::counter!("cairn_kafka_expired_sessions_closed_total").increment(1);
        session.close_after = true;
        return None;
    }
    if broker.settings().kafka_sasl() && !session.authenticated {
        match &request.body {
            ApiRequest::ApiVersions(_)
            | ApiRequest::SaslHandshake(_)
            | ApiRequest::SaslAuthenticate(_) => {}
            other => {
                tracing::debug!(client = ?session.ctx.client, api = ?other.api_key(), "kafka: a request before authentication; closing the connection");
                session.close_after = true;
                return None;
            }
        }
    }
    let ctx = session.ctx.clone();
    let (node, ctx) = (broker, &ctx);
    Some(match request.body {
        ApiRequest::ApiVersions(_) => {
            ApiResponse::ApiVersions(cairn_kafka::api_versions_response(0))
        }
        ApiRequest::Metadata(r) => {
            ApiResponse::Metadata(metadata::metadata(node, ctx, r, version).await)
        }
        ApiRequest::DescribeCluster(r) => {
            ApiResponse::DescribeCluster(metadata::describe_cluster(node, ctx, r))
        }
        ApiRequest::Produce(r) => {
            ApiResponse::Produce(produce::produce(node, ctx, r, version).await?)
        }
        ApiRequest::InitProducerId(r) => {
            ApiResponse::InitProducerId(produce::init_producer_id(node, ctx, r).await)
        }
        ApiRequest::Fetch(r) => {
            ApiResponse::Fetch(fetch::fetch(node, ctx, &session.fetch_sessions, r, version).await)
        }
        ApiRequest::ListOffsets(r) => {
            ApiResponse::ListOffsets(fetch::list_offsets(node, ctx, r, version).await)
        }
        ApiRequest::OffsetForLeaderEpoch(r) => {
            ApiResponse::OffsetForLeaderEpoch(fetch::offset_for_leader_epoch(node, ctx, r).await)
        }
        ApiRequest::CreateTopics(r) => {
            ApiResponse::CreateTopics(admin::create_topics(node, ctx, r, version).await)
        }
        ApiRequest::DeleteTopics(r) => {
            ApiResponse::DeleteTopics(admin::delete_topics(node, ctx, r, version).await)
        }
        ApiRequest::CreatePartitions(r) => {
            ApiResponse::CreatePartitions(admin::create_partitions(node, ctx, r).await)
        }
        ApiRequest::DeleteRecords(r) => {
            ApiResponse::DeleteRecords(admin::delete_records(node, ctx, r).await)
        }
        ApiRequest::DescribeConfigs(r) => {
            ApiResponse::DescribeConfigs(admin::describe_configs(node, ctx, r, version))
        }
        ApiRequest::AlterConfigs(r) => {
            ApiResponse::AlterConfigs(admin::alter_configs(node, ctx, r).await)
        }
        ApiRequest::IncrementalAlterConfigs(r) => ApiResponse::IncrementalAlterConfigs(
            admin::incremental_alter_configs(node, ctx, r).await,
        ),
        ApiRequest::DescribeLogDirs(r) => {
            ApiResponse::DescribeLogDirs(admin::describe_log_dirs(node, ctx, r))
        }
        ApiRequest::FindCoordinator(r) => {
            ApiResponse::FindCoordinator(groups::find_coordinator(node, ctx, r, version))
        }
        ApiRequest::JoinGroup(r) => {
            ApiResponse::JoinGroup(groups::join_group(node, ctx, session, r, version).await)
        }
        ApiRequest::SyncGroup(r) => ApiResponse::SyncGroup(groups::sync_group(node, ctx, r).await),
        ApiRequest::Heartbeat(r) => ApiResponse::Heartbeat(groups::heartbeat(node, ctx, r).await),
        ApiRequest::LeaveGroup(r) => {
            ApiResponse::LeaveGroup(groups::leave_group(node, ctx, r, version).await)
        }
        ApiRequest::OffsetCommit(r) => {
            ApiResponse::OffsetCommit(groups::offset_commit(node, ctx, r).await)
        }
        ApiRequest::OffsetFetch(r) => {
            ApiResponse::OffsetFetch(groups::offset_fetch(node, ctx, r, version).await)
        }
        ApiRequest::ListGroups(r) => {
            ApiResponse::ListGroups(groups::list_groups(node, ctx, r).await)
        }
        ApiRequest::DescribeGroups(r) => {
            ApiResponse::DescribeGroups(groups::describe_groups(node, ctx, r).await)
        }
        ApiRequest::DeleteGroups(r) => {
            ApiResponse::DeleteGroups(groups::delete_groups(node, ctx, r).await)
        }
        ApiRequest::ConsumerGroupHeartbeat(r) => ApiResponse::ConsumerGroupHeartbeat(
            groups::consumer_group_heartbeat(node, ctx, session, r, version).await,
        ),
        ApiRequest::ConsumerGroupDescribe(r) => {
            ApiResponse::ConsumerGroupDescribe(groups::consumer_group_describe(node, ctx, r).await)
        }
        ApiRequest::OffsetDelete(r) => {
            ApiResponse::OffsetDelete(groups::offset_delete(node, ctx, r).await)
        }
        ApiRequest::SaslHandshake(r) => {
            ApiResponse::SaslHandshake(sasl::handshake(broker, session, r))
        }
        ApiRequest::SaslAuthenticate(r) => {
            ApiResponse::SaslAuthenticate(sasl::authenticate(broker, session, r))
        }
        ApiRequest::DescribeUserScramCredentials(r) => {
            ApiResponse::DescribeUserScramCredentials(users::describe(node, ctx, r))
        }
        ApiRequest::AlterUserScramCredentials(r) => {
            ApiResponse::AlterUserScramCredentials(users::alter(node, ctx, r).await)
        }
        ApiRequest::CreateAcls(r) => ApiResponse::CreateAcls(acls::create_acls(node, ctx, r).await),
        ApiRequest::DescribeAcls(r) => ApiResponse::DescribeAcls(acls::describe_acls(node, ctx, r)),
        ApiRequest::DeleteAcls(r) => ApiResponse::DeleteAcls(acls::delete_acls(node, ctx, r).await),
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
