//! APIs Cairn decodes only to refuse them with Kafka's own error:
//! transactions (InitProducerId already refuses a transactional id, so a
//! client gets here only by skipping it).

use cairn_kafka::kafka_protocol::messages::*;
use cairn_kafka::kafka_protocol::ResponseError;
use cairn_kafka::ApiRequest;
use cairn_kafka::ApiResponse;

use super::code;

/// The refusal of `request`; `None` when the only honest answer is closing
/// the connection (transaction APIs whose responses carry no top-level
/// error at the versions clients use).
pub(crate) fn answer(request: ApiRequest) -> Option<ApiResponse> {
    Some(match request {
        ApiRequest::EndTxn(_) => ApiResponse::EndTxn(
            EndTxnResponse::default().with_error_code(code(ResponseError::UnsupportedVersion)),
        ),
        ApiRequest::AddOffsetsToTxn(_) => ApiResponse::AddOffsetsToTxn(
            AddOffsetsToTxnResponse::default()
                .with_error_code(code(ResponseError::UnsupportedVersion)),
        ),
        _ => return None,
    })
}
