//! Rust client for Cairn, a Raft-replicated, Kafka-compatible event log.
//!
//! [`Client`] speaks Cairn's public gRPC API (`cairn.v1`, re-exported as
//! [`proto`]). It keeps a cache of which node leads each partition, sends
//! partition requests (produce, fetch, list offsets) to the leader, and
//! retries transient failures (leader changes, unreachable nodes) with
//! exponential backoff until a deadline. Errors that are the caller's fault
//! are returned at once as [`ClientError::Server`] with the server's
//! [`ErrorCode`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), cairn_client::ClientError> {
//! use cairn_client::{Acks, Client, OwnedRecord};
//!
//! let client = Client::connect(&["127.0.0.1:50051".to_string()]).await?;
//! let records = [OwnedRecord::with_key("user-1", "hello")];
//! for outcome in client.produce_records("events", &records, Acks::All).await? {
//!     let ack = outcome.result?;
//!     println!("partition {} offset {}", outcome.partition, ack.base_offset);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [`Consumer`] is a consumer-group member: subscribe, poll, commit (auto or
//! manual), seek; partitions are spread over the group's members and move
//! when members come and go.
//!
//! [`Producer`] batches records per partition on top of a [`Client`]:
//! `send` buffers a record and returns a [`DeliveryFuture`]; a background
//! task sends each partition's records in one compressed, idempotent batch
//! once `batch_size` bytes are buffered or `linger` has passed, retries
//! transient failures, and makes `send` wait when `buffer_memory` is full.
//! See [`ProducerConfig`] and `docs/client.md`.
//!
//! Payloads (keys, values, headers) are never logged.

mod addr;
mod batching;
mod cache;
mod client;
mod config;
mod consumer;
mod error;
mod fetched;
mod groups;
mod mirror;
mod offset_spec;
mod outcome;
mod owned_record;
mod partitioner;
mod producer;
mod retry;

pub use batching::{DeliveryFuture, Producer, ProducerConfig, ProducerError, RecordMetadata};
pub use cairn_group::{decode_assignment, TopicPartition, CONSUMER_PROTOCOL_TYPE};
pub use cairn_proto::v1 as proto;
pub use cairn_proto::v1::{Acks, ErrorCode};
pub use cairn_record::{Compression, RecordHeader};
pub use client::Client;
pub use config::BearerToken;
pub use config::ClientConfig;
pub use config::TlsSettings;
pub use consumer::{
    Consumer, ConsumerConfig, ConsumerError, ConsumerEvent, ConsumerRecord, OffsetReset,
};
pub use error::{ClientError, ERROR_CODE_KEY, LEADER_ADDR_KEY, LEADER_ID_KEY};
pub use fetched::{ConsumedRecord, FetchedRecords};
pub use offset_spec::OffsetSpec;
pub use outcome::PartitionOutcome;
pub use owned_record::OwnedRecord;
pub use retry::RetryPolicy;
