//! APIs Cairn decodes only to refuse them with Kafka's own error: SASL
//! (no mechanism is enabled), ACLs (security comes with a later issue) and
//! transactions (InitProducerId already refuses a transactional id, so a
//! client gets here only by skipping it).

use cairn_kafka::kafka_protocol::messages::create_acls_response::AclCreationResult;
use cairn_kafka::kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use cairn_kafka::kafka_protocol::messages::*;
use cairn_kafka::kafka_protocol::ResponseError;
use cairn_kafka::ApiRequest;
use cairn_kafka::ApiResponse;

use super::code;
use super::str_bytes;

const ACLS: &str = "ACLs are not enforced by Cairn yet (security is a later issue)";

/// The refusal of `request`; `None` when the only honest answer is closing
/// the connection (transaction APIs whose responses carry no top-level
/// error at the versions clients use).
pub(crate) fn answer(request: ApiRequest) -> Option<ApiResponse> {
    let disabled = code(ResponseError::SecurityDisabled);
    Some(match request {
        ApiRequest::SaslHandshake(_) => ApiResponse::SaslHandshake(
            SaslHandshakeResponse::default()
                .with_error_code(code(ResponseError::UnsupportedSaslMechanism)),
        ),
        ApiRequest::SaslAuthenticate(_) => ApiResponse::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(code(ResponseError::IllegalSaslState))
                .with_error_message(Some(str_bytes("SASL is not enabled on this listener"))),
        ),
        ApiRequest::DescribeAcls(_) => ApiResponse::DescribeAcls(
            DescribeAclsResponse::default()
                .with_error_code(disabled)
                .with_error_message(Some(str_bytes(ACLS))),
        ),
        ApiRequest::CreateAcls(r) => ApiResponse::CreateAcls(
            CreateAclsResponse::default().with_results(
                r.creations
                    .iter()
                    .map(|_| {
                        AclCreationResult::default()
                            .with_error_code(disabled)
                            .with_error_message(Some(str_bytes(ACLS)))
                    })
                    .collect(),
            ),
        ),
        ApiRequest::DeleteAcls(r) => ApiResponse::DeleteAcls(
            DeleteAclsResponse::default().with_filter_results(
                r.filters
                    .iter()
                    .map(|_| {
                        DeleteAclsFilterResult::default()
                            .with_error_code(disabled)
                            .with_error_message(Some(str_bytes(ACLS)))
                    })
                    .collect(),
            ),
        ),
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
