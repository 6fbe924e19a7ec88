//! Errors: what a node fails with, and what a client request fails with.

use cairn_proto::v1::ErrorCode;
use tonic::metadata::MetadataValue;
use tonic::Code;
use tonic::Status;

use crate::NodeId;

/// A node could not start or stopped on a fatal error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("storage: {0}")]
    Storage(#[from] cairn_storage::StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("data dir {data_dir} belongs to node {stored}, but this node is configured as {configured}; refusing to start")]
    NodeIdMismatch {
        data_dir: String,
        stored: NodeId,
        configured: NodeId,
    },
    #[error("data dir {data_dir} belongs to cluster {local}, but peer {peer} belongs to cluster {remote}; refusing to start (point --data-dir at this cluster's data, or at an empty directory)")]
    ClusterMismatch {
        data_dir: String,
        local: String,
        remote: String,
        peer: String,
    },
    #[error("raft: {0}")]
    Raft(String),
    #[error("join via {addr} failed: {reason}")]
    Join { addr: String, reason: String },
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("OAuth: {0}")]
    OAuth(String),
}

/// A client request failed; maps to a gRPC status carrying `cairn-error-code`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("not the leader of {what}")]
    NotLeader {
        what: String,
        leader: Option<(NodeId, String)>,
    },
    #[error("{what} has no leader right now; retry")]
    LeaderNotAvailable { what: String },
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("topic {topic:?} has {count} partitions; partition {partition} does not exist")]
    UnknownPartition {
        topic: String,
        partition: u32,
        count: usize,
    },
    #[error("record batch of {size} bytes exceeds max.message.bytes = {max}")]
    MessageTooLarge { size: usize, max: u64 },
    #[error("corrupt record batch: {0}")]
    CorruptMessage(String),
    /// Records the topic refuses (Kafka's INVALID_RECORD, KIP-467): each by
    /// its index in its batch, with why. The whole batch is refused.
    /// A CreateTime batch's timestamp outside the topic's
    /// `message.timestamp.before.max.ms` / `after.max.ms` (Kafka's
    /// INVALID_TIMESTAMP).
    #[error("{0}")]
    InvalidTimestamp(String),
    #[error("{message}")]
    InvalidRecord {
        message: String,
        records: Vec<(i32, String)>,
    },
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidConfig(String),
    /// A topic name Kafka's rules refuse.
    #[error("{0}")]
    InvalidTopic(String),
    /// Replicas named by the client that cannot be used.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("request timed out after {0} ms; the write may or may not have been applied")]
    Timeout(u64),
    /// Also sent as gRPC metadata `cairn-log-start` and
    /// `cairn-high-watermark`, so a consumer can reset without parsing text.
    #[error("offset {offset} is out of range [{log_start}, {high_watermark}]")]
    OffsetOutOfRange {
        offset: u64,
        log_start: u64,
        high_watermark: u64,
    },
    #[error("producer {producer_id}: sequence {got} is out of order, expected {expected}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id}: epoch {epoch} is fenced by its newer epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("storage failed on this node ({0}); the node is stopping, retry another replica")]
    Storage(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// No coordinator can be named right now (no metadata leader, or one
    /// without a live lease); retry.
    #[error("{0}")]
    CoordinatorNotAvailable(String),
    #[error("this node is not the group coordinator")]
    NotCoordinator { leader: Option<(NodeId, String)> },
    #[error("{0}")]
    UnknownMember(String),
    /// A static member's instance is held by a newer member id (KIP-345).
    #[error("{0}")]
    FencedInstanceId(String),
    #[error("{0}")]
    IllegalGeneration(String),
    #[error("group {0} is rebalancing; join again")]
    RebalanceInProgress(String),
    #[error("{0}")]
    InconsistentGroupProtocol(String),
    #[error("{0}")]
    GroupNotEmpty(String),
    #[error("group {0:?} does not exist")]
    UnknownGroup(String),
    /// A request of one group protocol to a group of the other (a classic
    /// JoinGroup to a consumer-protocol group with members, or the
    /// reverse).
    #[error("{0}")]
    WrongGroupType(String),
    /// A consumer-protocol (KIP-848) heartbeat refused.
    #[error("{0}")]
    ConsumerGroup(cairn_group::modern::HeartbeatError),
    /// A consumer-protocol member's commit at another epoch than its own.
    #[error("{0}")]
    StaleMemberEpoch(String),
    #[error("{0}")]
    InvalidSessionTimeout(String),
    #[error("node {0} is not in the cluster")]
    UnknownNode(NodeId),
    /// A decommission or removal that cannot go ahead (yet).
    #[error("{0}")]
    NodeInUse(String),
    #[error("user {0} has no such credential")]
    UnknownUser(String),
    #[error("role {0:?} does not exist")]
    UnknownRole(String),
    /// Authentication failed: unknown user, wrong password, bad token.
    #[error("authentication failed: {0}")]
    AuthenticationFailed(String),
    #[error("SASL mechanism {0} is not enabled on this listener")]
    UnsupportedSaslMechanism(String),
    #[error("{0}")]
    IllegalSaslState(String),
    /// A write to a topic that is a read-only mirror (until promoted).
    #[error("topic {topic:?} is a read-only mirror of link {link:?}; promote it (cairn mirror promote) to write to it")]
    MirrorTopicReadOnly { topic: String, link: String },
    #[error("mirror link {0:?} does not exist")]
    UnknownMirrorLink(String),
    /// The principal may not do this: an ACL denies it or none allows it.
    #[error("{principal} is not authorized to {acl} {resource_type} {resource:?}")]
    Unauthorized {
        principal: String,
        acl: crate::acl::AclOperation,
        resource_type: crate::acl::ResourceType,
        resource: String,
    },
}

impl From<cairn_metadata::GroupError> for ApiError {
    fn from(e: cairn_metadata::GroupError) -> Self {
        use cairn_metadata::GroupError as G;
        match e {
            G::IllegalGeneration { .. } => ApiError::IllegalGeneration(e.to_string()),
            G::UnknownMember { .. } => ApiError::UnknownMember(e.to_string()),
            G::NotEmpty { .. } => ApiError::GroupNotEmpty(e.to_string()),
            G::UnknownGroup(g) => ApiError::UnknownGroup(g),
            G::StaleMemberEpoch { .. } => ApiError::StaleMemberEpoch(e.to_string()),
        }
    }
}

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::NotLeader { .. } => ErrorCode::NotLeader,
            ApiError::LeaderNotAvailable { .. } => ErrorCode::LeaderNotAvailable,
            ApiError::UnknownTopic(_) => ErrorCode::UnknownTopic,
            ApiError::UnknownPartition { .. } => ErrorCode::UnknownPartition,
            ApiError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            ApiError::CorruptMessage(_) => ErrorCode::CorruptMessage,
            ApiError::InvalidRecord { .. } | ApiError::InvalidTimestamp(_) => {
                ErrorCode::InvalidArgument
            }
            ApiError::TopicExists(_) => ErrorCode::TopicAlreadyExists,
            ApiError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            ApiError::InvalidConfig(_) => ErrorCode::InvalidConfig,
            ApiError::InvalidTopic(_) | ApiError::InvalidReplicaAssignment(_) => {
                ErrorCode::InvalidArgument
            }
            ApiError::InvalidReplicationFactor(_) => ErrorCode::InvalidReplicationFactor,
            ApiError::InvalidPartitions(_) => ErrorCode::InvalidArgument,
            ApiError::Timeout(_) => ErrorCode::RequestTimedOut,
            ApiError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            ApiError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequence,
            ApiError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
            ApiError::Storage(_) => ErrorCode::StorageError,
            ApiError::Internal(_) => ErrorCode::Internal,
            ApiError::NotCoordinator { .. } | ApiError::CoordinatorNotAvailable(_) => {
                ErrorCode::NotCoordinator
            }
            // The gRPC API has no static members; the same remedy: rejoin.
            ApiError::UnknownMember(_) | ApiError::FencedInstanceId(_) => {
                ErrorCode::UnknownMemberId
            }
            ApiError::IllegalGeneration(_) => ErrorCode::IllegalGeneration,
            ApiError::RebalanceInProgress(_) => ErrorCode::RebalanceInProgress,
            ApiError::InconsistentGroupProtocol(_) => ErrorCode::InconsistentGroupProtocol,
            ApiError::GroupNotEmpty(_) => ErrorCode::GroupNotEmpty,
            ApiError::UnknownGroup(_) | ApiError::WrongGroupType(_) => ErrorCode::UnknownGroup,
            ApiError::ConsumerGroup(e) => {
                use cairn_group::modern::HeartbeatError as H;
                match e {
                    H::UnknownMember(_) | H::FencedMemberEpoch(_) | H::FencedInstanceId(_) => {
                        ErrorCode::UnknownMemberId
                    }
                    _ => ErrorCode::InvalidArgument,
                }
            }
            ApiError::StaleMemberEpoch(_) => ErrorCode::IllegalGeneration,
            ApiError::InvalidSessionTimeout(_) => ErrorCode::InvalidSessionTimeout,
            ApiError::UnknownNode(_) => ErrorCode::UnknownNode,
            ApiError::NodeInUse(_) => ErrorCode::NodeInUse,
            ApiError::MirrorTopicReadOnly { .. } => ErrorCode::InvalidArgument,
            ApiError::UnknownMirrorLink(_) => ErrorCode::InvalidArgument,
            ApiError::Unauthorized { .. } => ErrorCode::Unauthorized,
            ApiError::AuthenticationFailed(_) => ErrorCode::Unauthenticated,
            ApiError::UnknownUser(_) | ApiError::UnknownRole(_) => ErrorCode::InvalidArgument,
            ApiError::UnsupportedSaslMechanism(_) | ApiError::IllegalSaslState(_) => {
                ErrorCode::InvalidArgument
            }
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            ApiError::NotLeader { .. } => Code::FailedPrecondition,
            ApiError::LeaderNotAvailable { .. } => Code::Unavailable,
            ApiError::UnknownTopic(_) | ApiError::UnknownPartition { .. } => Code::NotFound,
            ApiError::TopicExists(_) => Code::AlreadyExists,
            ApiError::MessageTooLarge { .. }
            | ApiError::CorruptMessage(_)
            | ApiError::InvalidRecord { .. }
            | ApiError::InvalidTimestamp(_)
            | ApiError::InvalidArgument(_)
            | ApiError::InvalidConfig(_)
            | ApiError::InvalidTopic(_)
            | ApiError::InvalidReplicaAssignment(_)
            | ApiError::InvalidReplicationFactor(_)
            | ApiError::InvalidPartitions(_)
            | ApiError::OutOfOrderSequence { .. } => Code::InvalidArgument,
            ApiError::InvalidProducerEpoch { .. } => Code::FailedPrecondition,
            ApiError::Timeout(_) => Code::DeadlineExceeded,
            ApiError::OffsetOutOfRange { .. } => Code::OutOfRange,
            ApiError::Storage(_) => Code::Unavailable,
            ApiError::Internal(_) => Code::Internal,
            ApiError::NotCoordinator { .. } => Code::FailedPrecondition,
            ApiError::CoordinatorNotAvailable(_) => Code::Unavailable,
            ApiError::UnknownMember(_)
            | ApiError::FencedInstanceId(_)
            | ApiError::IllegalGeneration(_)
            | ApiError::RebalanceInProgress(_)
            | ApiError::GroupNotEmpty(_) => Code::FailedPrecondition,
            ApiError::UnknownGroup(_) | ApiError::UnknownNode(_) => Code::NotFound,
            ApiError::WrongGroupType(_) | ApiError::StaleMemberEpoch(_) => Code::FailedPrecondition,
            ApiError::ConsumerGroup(e) => {
                use cairn_group::modern::HeartbeatError as H;
                match e {
                    H::InvalidRequest(_)
                    | H::UnsupportedAssignor(_)
                    | H::InvalidRegularExpression(_) => Code::InvalidArgument,
                    H::GroupMaxSizeReached(_) => Code::ResourceExhausted,
                    _ => Code::FailedPrecondition,
                }
            }
            ApiError::NodeInUse(_) => Code::FailedPrecondition,
            ApiError::MirrorTopicReadOnly { .. } => Code::FailedPrecondition,
            ApiError::UnknownMirrorLink(_) => Code::NotFound,
            ApiError::Unauthorized { .. } => Code::PermissionDenied,
            ApiError::AuthenticationFailed(_) => Code::Unauthenticated,
            ApiError::UnknownUser(_) | ApiError::UnknownRole(_) => Code::NotFound,
            ApiError::UnsupportedSaslMechanism(_) | ApiError::IllegalSaslState(_) => {
                Code::InvalidArgument
            }
            ApiError::InconsistentGroupProtocol(_) | ApiError::InvalidSessionTimeout(_) => {
                Code::InvalidArgument
            }
        }
    }
}

impl ApiError {
    /// The Kafka error code clients of the Kafka API are answered with.
    pub fn kafka_code(&self) -> i16 {
        use cairn_kafka::kafka_protocol::ResponseError as K;
        let e = match self {
            ApiError::NotLeader { .. } => K::NotLeaderOrFollower,
            // Both make Kafka clients refresh their metadata and retry.
            ApiError::LeaderNotAvailable { .. } => K::NotLeaderOrFollower,
            ApiError::UnknownTopic(_) | ApiError::UnknownPartition { .. } => {
                K::UnknownTopicOrPartition
            }
            ApiError::MessageTooLarge { .. } => K::MessageTooLarge,
            ApiError::CorruptMessage(_) => K::CorruptMessage,
            ApiError::InvalidRecord { .. } => K::InvalidRecord,
            ApiError::InvalidTimestamp(_) => K::InvalidTimestamp,
            ApiError::TopicExists(_) => K::TopicAlreadyExists,
            ApiError::InvalidArgument(_) => K::InvalidRequest,
            ApiError::InvalidConfig(_) => K::InvalidConfig,
            ApiError::InvalidTopic(_) => K::InvalidTopicException,
            ApiError::InvalidReplicaAssignment(_) => K::InvalidReplicaAssignment,
            ApiError::InvalidReplicationFactor(_) => K::InvalidReplicationFactor,
            ApiError::InvalidPartitions(_) => K::InvalidPartitions,
            ApiError::Timeout(_) => K::RequestTimedOut,
            ApiError::OffsetOutOfRange { .. } => K::OffsetOutOfRange,
            ApiError::OutOfOrderSequence { .. } => K::OutOfOrderSequenceNumber,
            ApiError::InvalidProducerEpoch { .. } => K::InvalidProducerEpoch,
            ApiError::Storage(_) => K::KafkaStorageError,
            ApiError::Internal(_) => K::UnknownServerError,
            ApiError::NotCoordinator { .. } => K::NotCoordinator,
            ApiError::CoordinatorNotAvailable(_) => K::CoordinatorNotAvailable,
            ApiError::UnknownMember(_) => K::UnknownMemberId,
            ApiError::FencedInstanceId(_) => K::FencedInstanceId,
            ApiError::IllegalGeneration(_) => K::IllegalGeneration,
            ApiError::RebalanceInProgress(_) => K::RebalanceInProgress,
            ApiError::InconsistentGroupProtocol(_) => K::InconsistentGroupProtocol,
            ApiError::GroupNotEmpty(_) => K::NonEmptyGroup,
            ApiError::UnknownGroup(_) | ApiError::WrongGroupType(_) => K::GroupIdNotFound,
            ApiError::StaleMemberEpoch(_) => K::StaleMemberEpoch,
            ApiError::ConsumerGroup(e) => {
                use cairn_group::modern::HeartbeatError as H;
                match e {
                    H::InvalidRequest(_) => K::InvalidRequest,
                    H::UnknownMember(_) => K::UnknownMemberId,
                    H::FencedMemberEpoch(_) => K::FencedMemberEpoch,
                    H::UnreleasedInstanceId(_) => K::UnreleasedInstanceId,
                    H::FencedInstanceId(_) => K::FencedInstanceId,
                    H::UnsupportedAssignor(_) => K::UnsupportedAssignor,
                    H::GroupMaxSizeReached(_) => K::GroupMaxSizeReached,
                    H::InvalidRegularExpression(_) => K::InvalidRegularExpression,
                }
            }
            ApiError::InvalidSessionTimeout(_) => K::InvalidSessionTimeout,
            // Kafka's UnregisterBroker answers BROKER_ID_NOT_REGISTERED.
            ApiError::UnknownNode(_) => K::BrokerIdNotRegistered,
            ApiError::NodeInUse(_) => K::InvalidRequest,
            // Not retriable: a producer is told at once (Confluent's mirror
            // topics answer the same).
            ApiError::MirrorTopicReadOnly { .. } => K::InvalidRequest,
            ApiError::UnknownMirrorLink(_) => K::ResourceNotFound,
            ApiError::AuthenticationFailed(_) => K::SaslAuthenticationFailed,
            ApiError::UnknownUser(_) | ApiError::UnknownRole(_) => K::ResourceNotFound,
            ApiError::UnsupportedSaslMechanism(_) => K::UnsupportedSaslMechanism,
            ApiError::IllegalSaslState(_) => K::IllegalSaslState,
            ApiError::Unauthorized { resource_type, .. } => {
                use crate::acl::ResourceType as R;
                match resource_type {
                    R::Topic => K::TopicAuthorizationFailed,
                    R::Group => K::GroupAuthorizationFailed,
                    R::TransactionalId => K::TransactionalIdAuthorizationFailed,
                    R::DelegationToken => K::DelegationTokenAuthorizationFailed,
                    R::Cluster | R::User => K::ClusterAuthorizationFailed,
                }
            }
        };
        e.code()
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let mut status = Status::new(e.grpc_code(), e.to_string());
        let md = status.metadata_mut();
        md.insert("cairn-error-code", MetadataValue::from(e.code() as i32));
        if let ApiError::NotLeader {
            leader: Some((id, addr)),
            ..
        }
        | ApiError::NotCoordinator {
            leader: Some((id, addr)),
        } = &e
        {
            md.insert("cairn-leader-id", MetadataValue::from(*id));
            if let Ok(v) = addr.parse() {
                md.insert("cairn-leader-addr", v);
            }
        }
        if let ApiError::OffsetOutOfRange {
            log_start,
            high_watermark,
            ..
        } = &e
        {
            md.insert("cairn-log-start", MetadataValue::from(*log_start));
            md.insert("cairn-high-watermark", MetadataValue::from(*high_watermark));
        }
        status
    }
}

impl ApiError {
    /// A refusal of adding partitions (`MetadataState::partitions_to_add`,
    /// `MetaCommand::CreatePartitions`) as the API's error.
    pub(crate) fn from_partition_growth(e: cairn_metadata::MetaError) -> ApiError {
        use cairn_metadata::MetaError;
        match e {
            MetaError::UnknownTopic(n) => ApiError::UnknownTopic(n),
            MetaError::InvalidPartitions(e) => ApiError::InvalidPartitions(e),
            other => ApiError::InvalidArgument(other.to_string()),
        }
    }
}
