//! What can go wrong between the socket and a decoded request.

/// A frame that cannot become a request, or a response that cannot be
/// encoded. The connection handler decides: answer (ApiVersions with an
/// unsupported version) or close the connection.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("request of {size} bytes exceeds kafka_max_request_bytes = {max}")]
    FrameTooLarge { size: u64, max: u64 },
    #[error("request size {0} is negative")]
    NegativeFrameSize(i32),
    #[error("request of {0} bytes is too short to hold a request header")]
    FrameTooShort(usize),
    #[error("unknown or unsupported API key {api_key} (correlation id {correlation_id})")]
    UnsupportedApi { api_key: i16, correlation_id: i32 },
    #[error("API {api_key} version {version} is not supported (correlation id {correlation_id})")]
    UnsupportedVersion {
        api_key: i16,
        version: i16,
        correlation_id: i32,
    },
    #[error(
        "malformed API {api_key} v{version} request (correlation id {correlation_id}): {reason}"
    )]
    Malformed {
        api_key: i16,
        version: i16,
        correlation_id: i32,
        reason: String,
    },
    #[error("cannot encode the API {api_key} v{version} response: {reason}")]
    Encode {
        api_key: i16,
        version: i16,
        reason: String,
    },
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}
