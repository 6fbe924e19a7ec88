//! Decoding a request frame: header, then body, each at the right version.

use bytes::Buf;
use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::Decodable;

pub use crate::apis::ApiRequest;
use crate::versions::supported_range;
use crate::KafkaError;

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub header: RequestHeader,
    pub body: ApiRequest,
}

impl Request {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }

    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }
}

/// Decodes one frame (the bytes after the size prefix). Never panics: an
/// unknown API, a version Cairn does not speak, or bytes that do not parse
/// are a [`KafkaError`]. Copies the frame; see [`decode_request_bytes`].
pub fn decode_request(frame: &[u8]) -> Result<Request, KafkaError> {
    decode_request_bytes(Bytes::copy_from_slice(frame))
}

/// [`decode_request`] without the copy: record batches in a Produce request
/// stay slices of `frame`.
pub fn decode_request_bytes(mut frame: Bytes) -> Result<Request, KafkaError> {
    // api key (2), api version (2), correlation id (4): read before the
    // header decoder, which assumes they are there.
    if frame.len() < 8 {
        return Err(KafkaError::FrameTooShort(frame.len()));
    }
    let mut fixed = &frame[..8];
    let api_key = fixed.get_i16();
    let version = fixed.get_i16();
    let correlation_id = fixed.get_i32();
    let supported = supported_range(api_key).ok_or(KafkaError::UnsupportedApi {
        api_key,
        correlation_id,
    })?;
    if version < supported.min_version || version > supported.max_version {
        return Err(KafkaError::UnsupportedVersion {
            api_key,
            version,
            correlation_id,
        });
    }
    let malformed = |reason: String| KafkaError::Malformed {
        api_key,
        version,
        correlation_id,
        reason,
    };
    let key: ApiKey = supported.key;
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version))
        .map_err(|e| malformed(format!("header: {e}")))?;
    let body = ApiRequest::decode(key, &mut frame, version)
        .ok_or(KafkaError::UnsupportedApi {
            api_key,
            correlation_id,
        })?
        .map_err(malformed)?;
    Ok(Request { header, body })
}
