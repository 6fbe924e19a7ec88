//! Consumer-group APIs (FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups,
//! DeleteGroups, OffsetDelete): not served yet.
//!
//! They go here, on top of `crate::coordinator` (the gRPC API's group
//! coordinator on the metadata leader), once each is added to
//! `cairn_kafka::SUPPORTED_APIS` (which decodes and advertises it) and to
//! `dispatch` in `mod.rs`. Until then a request for one is an unsupported
//! API: the connection is closed, as Kafka does.
