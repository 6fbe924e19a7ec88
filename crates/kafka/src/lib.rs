//! The Kafka wire protocol at Cairn's edge: frames, requests, responses.
//!
//! ```text
//!   socket ──read_frame──▶ frame ──decode_request──▶ Request { header, body: ApiRequest }
//!   socket ◀─────────── encode_response(header, version, ApiResponse) ◀── handler
//! ```
//!
//! Message bodies are kafka-protocol's generated types. This crate decides
//! which APIs and versions Cairn speaks ([`SUPPORTED_APIS`]); a request for
//! anything else is a typed [`KafkaError`], never a panic, so the connection
//! handler can answer it or close the connection and the broker serves
//! everyone else. [`decode_request`] is pure so that a fuzz target
//! (`fuzz/`) and the proptests call it directly. No I/O beyond the frame
//! reader; no knowledge of Cairn's state.

mod apis;
mod error;
mod frame;
mod request;
mod response;
mod versions;

pub use error::KafkaError;
pub use frame::read_frame;
pub use frame::read_frame_body;
pub use frame::read_frame_size;
pub use frame::DEFAULT_MAX_REQUEST_BYTES;
pub use kafka_protocol;
pub use request::decode_request;
pub use request::decode_request_bytes;
pub use request::ApiRequest;
pub use request::Request;
pub use response::encode_response;
pub use response::ApiResponse;
pub use versions::api_versions_response;
pub use versions::supported_range;
pub use versions::SupportedApi;
pub use versions::SUPPORTED_APIS;

#[cfg(test)]
mod decode_tests;
