//! The request and response bodies of every API in [`crate::SUPPORTED_APIS`],
//! as two enums generated from one list so they cannot drift apart.

use bytes::Bytes;
use bytes::BytesMut;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::HeaderVersion;

macro_rules! apis {
    ($($name:ident => $req:ident, $resp:ident;)*) => {
        /// A decoded request body.
        #[derive(Debug, Clone, PartialEq)]
        pub enum ApiRequest {
            $($name($req),)*
        }

        /// A response body to encode.
        #[derive(Debug, Clone, PartialEq)]
        pub enum ApiResponse {
            $($name($resp),)*
        }

        impl ApiRequest {
            pub fn api_key(&self) -> ApiKey {
                match self {
                    $(ApiRequest::$name(_) => ApiKey::$name,)*
                }
            }

            /// `None` when `key` is not one of Cairn's APIs.
            pub(crate) fn decode(
                key: ApiKey,
                body: &mut Bytes,
                version: i16,
            ) -> Option<anyhow_free::Result<ApiRequest>> {
                match key {
                    $(ApiKey::$name => Some(
                        $req::decode(body, version)
                            .map(ApiRequest::$name)
                            .map_err(|e| e.to_string()),
                    ),)*
                    _ => None,
                }
            }

            /// The default (all fields empty) body of API `key`; `None` when
            /// `key` is not one of Cairn's APIs. Tests make one request of
            /// every API from it, so a new API is in them at once.
            pub fn default_for(key: ApiKey) -> Option<ApiRequest> {
                match key {
                    $(ApiKey::$name => Some(ApiRequest::$name($req::default())),)*
                    _ => None,
                }
            }

            /// Encodes the body (clients' side: tests and the fuzz corpus).
            pub fn encode(&self, out: &mut BytesMut, version: i16) -> Result<(), String> {
                match self {
                    $(ApiRequest::$name(r) => r.encode(out, version).map_err(|e| e.to_string()),)*
                }
            }
        }

        impl ApiResponse {
            pub fn api_key(&self) -> ApiKey {
                match self {
                    $(ApiResponse::$name(_) => ApiKey::$name,)*
                }
            }

            pub(crate) fn header_version(&self, version: i16) -> i16 {
                match self {
                    $(ApiResponse::$name(_) => $resp::header_version(version),)*
                }
            }

            pub(crate) fn encode_body(&self, out: &mut BytesMut, version: i16) -> Result<(), String> {
                match self {
                    $(ApiResponse::$name(r) => r.encode(out, version).map_err(|e| e.to_string()),)*
                }
            }
        }
    };
}

/// The decoder's error text (kafka-protocol reports with anyhow; this crate
/// keeps anyhow out of its API).
mod anyhow_free {
    pub type Result<T> = std::result::Result<T, String>;
}

apis! {
    Produce => ProduceRequest, ProduceResponse;
    Fetch => FetchRequest, FetchResponse;
    ListOffsets => ListOffsetsRequest, ListOffsetsResponse;
    Metadata => MetadataRequest, MetadataResponse;
    SaslHandshake => SaslHandshakeRequest, SaslHandshakeResponse;
    ApiVersions => ApiVersionsRequest, ApiVersionsResponse;
    CreateTopics => CreateTopicsRequest, CreateTopicsResponse;
    DeleteTopics => DeleteTopicsRequest, DeleteTopicsResponse;
    DeleteRecords => DeleteRecordsRequest, DeleteRecordsResponse;
    InitProducerId => InitProducerIdRequest, InitProducerIdResponse;
    OffsetForLeaderEpoch => OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse;
    DescribeConfigs => DescribeConfigsRequest, DescribeConfigsResponse;
    AlterConfigs => AlterConfigsRequest, AlterConfigsResponse;
    DescribeLogDirs => DescribeLogDirsRequest, DescribeLogDirsResponse;
    SaslAuthenticate => SaslAuthenticateRequest, SaslAuthenticateResponse;
    CreatePartitions => CreatePartitionsRequest, CreatePartitionsResponse;
    IncrementalAlterConfigs => IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse;
    DescribeCluster => DescribeClusterRequest, DescribeClusterResponse;
    FindCoordinator => FindCoordinatorRequest, FindCoordinatorResponse;
    JoinGroup => JoinGroupRequest, JoinGroupResponse;
    SyncGroup => SyncGroupRequest, SyncGroupResponse;
    Heartbeat => HeartbeatRequest, HeartbeatResponse;
    LeaveGroup => LeaveGroupRequest, LeaveGroupResponse;
    OffsetCommit => OffsetCommitRequest, OffsetCommitResponse;
    OffsetFetch => OffsetFetchRequest, OffsetFetchResponse;
    ListGroups => ListGroupsRequest, ListGroupsResponse;
    DescribeGroups => DescribeGroupsRequest, DescribeGroupsResponse;
    DeleteGroups => DeleteGroupsRequest, DeleteGroupsResponse;
    OffsetDelete => OffsetDeleteRequest, OffsetDeleteResponse;
    AddPartitionsToTxn => AddPartitionsToTxnRequest, AddPartitionsToTxnResponse;
    AddOffsetsToTxn => AddOffsetsToTxnRequest, AddOffsetsToTxnResponse;
    EndTxn => EndTxnRequest, EndTxnResponse;
    TxnOffsetCommit => TxnOffsetCommitRequest, TxnOffsetCommitResponse;
    DescribeAcls => DescribeAclsRequest, DescribeAclsResponse;
    CreateAcls => CreateAclsRequest, CreateAclsResponse;
    DeleteAcls => DeleteAclsRequest, DeleteAclsResponse;
    DescribeUserScramCredentials => DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse;
    AlterUserScramCredentials => AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse;
    ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse;
    ConsumerGroupDescribe => ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse;
}
