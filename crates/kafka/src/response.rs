//! Encoding a response: size prefix, response header, body.

use bytes::BufMut;
use bytes::BytesMut;
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::Encodable;

pub use crate::apis::ApiResponse;
use crate::KafkaError;

/// The whole frame of a response to the request `correlation_id`, at
/// `version` (the request's). The response header version follows from
/// the API and version (ApiVersions always uses header v0).
pub fn encode_response(
    correlation_id: i32,
    version: i16,
    body: &ApiResponse,
) -> Result<BytesMut, KafkaError> {
    let api_key = body.api_key() as i16;
    let err = |reason: String| KafkaError::Encode {
        api_key,
        version,
        reason,
    };
    let mut out = BytesMut::with_capacity(256);
    out.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, body.header_version(version))
        .map_err(|e| err(e.to_string()))?;
    body.encode_body(&mut out, version).map_err(err)?;
    let size = i32::try_from(out.len() - 4).map_err(|_| err("response over 2 GiB".into()))?;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(out)
}
