//! The client's error type, and decoding of the server's failure metadata.
//!
//! Every failure the server sends carries the gRPC metadata key
//! [`ERROR_CODE_KEY`] (`cairn-error-code`) holding the decimal number of an
//! [`ErrorCode`]. A status without it did not come from Cairn's request
//! handling: it comes from the transport (connection refused, reset, timed
//! out) and is reported as [`ClientError::Transport`] or [`ClientError::Rpc`].

use std::time::Duration;

use cairn_proto::v1::ErrorCode;
use cairn_record::RecordError;
use tonic::Code;

/// Metadata key holding the [`ErrorCode`] number of a failed request.
pub const ERROR_CODE_KEY: &str = "cairn-error-code";
/// Metadata key naming the current leader's node id on `NOT_LEADER`.
pub const LEADER_ID_KEY: &str = "cairn-leader-id";
/// Metadata key naming the current leader's gRPC address on `NOT_LEADER`.
pub const LEADER_ADDR_KEY: &str = "cairn-leader-addr";

/// Everything a [`crate::Client`] call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// `Client::connect` was given no address.
    #[error("no bootstrap address given")]
    NoBootstrap,

    /// The TLS settings cannot be used (a file missing or unreadable).
    #[error("TLS: {0}")]
    Tls(String),
    /// A setting of the [`crate::ClientConfig`] cannot be used.
    #[error("invalid client config: {0}")]
    InvalidConfig(String),
    /// An address is not of the form `host:port` (or `http://host:port`).
    #[error("invalid address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The server rejected the request with a Cairn error code. Codes that are
    /// the caller's fault (unknown topic, invalid argument, ...) are never
    /// retried; transient ones (`NOT_LEADER`, ...) only surface inside
    /// [`ClientError::RetriesExhausted`].
    #[error("{}: {message}", code.as_str_name())]
    Server {
        /// The decoded `cairn-error-code`.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },

    /// The node could not be reached or the connection broke mid-request.
    #[error("transport error talking to {addr}: {message}")]
    Transport {
        /// The node's gRPC address.
        addr: String,
        /// What the transport reported.
        message: String,
    },

    /// A gRPC failure without a Cairn error code that is not a transport
    /// failure (for example a message over the gRPC size limit).
    #[error("gRPC error {code:?} from {addr}: {message}")]
    Rpc {
        /// The node's gRPC address.
        addr: String,
        /// The gRPC status code.
        code: Code,
        /// The status message.
        message: String,
    },

    /// A transient failure persisted until the retry deadline.
    #[error("gave up after {attempts} attempts in {:.1}s: {last}", elapsed.as_secs_f64())]
    RetriesExhausted {
        /// Attempts made, including the first.
        attempts: u32,
        /// Time spent retrying.
        elapsed: Duration,
        /// The failure of the last attempt.
        last: Box<ClientError>,
    },

    /// Fetched data is not a valid sequence of record batches (or uses a
    /// compression codec this client cannot decode).
    #[error("cannot decode fetched records: {0}")]
    Record(#[from] RecordError),

    /// A response lacks a field the contract promises.
    #[error("invalid response from server: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The Cairn error code behind this error, looking through
    /// [`ClientError::RetriesExhausted`]; `None` for client-side and transport
    /// failures.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            ClientError::RetriesExhausted { last, .. } => last.code(),
            _ => None,
        }
    }

    /// Whether the failure is one the client's retry loop treats as transient
    /// (leader changes, unreachable nodes, timeouts). An error returned by a
    /// `Client` method that is not wrapped in `RetriesExhausted` is never
    /// retriable.
    pub fn is_retriable(&self) -> bool {
        crate::retry::classify(self) != crate::retry::Disposition::Fail
    }

    pub(crate) fn server(code: ErrorCode, message: impl Into<String>) -> Self {
        ClientError::Server {
            code,
            message: message.into(),
        }
    }

    /// Decodes a failed call to the node at `addr`.
    pub(crate) fn from_status(status: &tonic::Status, addr: &str) -> Self {
        let message = status.message().to_owned();
        match error_code_of(status) {
            Some(raw) => match ErrorCode::try_from(raw) {
                Ok(code) => ClientError::Server { code, message },
                Err(_) => ClientError::Server {
                    code: ErrorCode::Unspecified,
                    message: format!("unknown error code {raw}: {message}"),
                },
            },
            None if is_transport_code(status.code()) => ClientError::Transport {
                addr: addr.to_owned(),
                message: if message.is_empty() {
                    format!("{:?}", status.code())
                } else {
                    message
                },
            },
            None => ClientError::Rpc {
                addr: addr.to_owned(),
                code: status.code(),
                message,
            },
        }
    }
}

/// gRPC codes that, without a Cairn error code, mean the request did not get
/// a proper answer from the node: unreachable, connection reset, stream
/// cancelled (for example by the client-side deadline or a node shutting
/// down).
fn is_transport_code(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
    )
}

/// The raw `cairn-error-code` value, if present and numeric.
pub(crate) fn error_code_of(status: &tonic::Status) -> Option<i32> {
    status
        .metadata()
        .get(ERROR_CODE_KEY)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Where a `NOT_LEADER` failure says the leader is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LeaderHint {
    pub id: Option<u64>,
    pub addr: Option<String>,
}

impl LeaderHint {
    /// Reads `cairn-leader-id` / `cairn-leader-addr`; `None` if neither is
    /// present and well-formed.
    pub(crate) fn from_status(status: &tonic::Status) -> Option<Self> {
        let md = status.metadata();
        let id = md
            .get(LEADER_ID_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok());
        let addr = md
            .get(LEADER_ADDR_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| crate::addr::normalize_addr(s).ok());
        if id.is_none() && addr.is_none() {
            None
        } else {
            Some(LeaderHint { id, addr })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn status_with(code: Code, pairs: &[(&'static str, &str)]) -> tonic::Status {
        let mut st = tonic::Status::new(code, "boom");
        for (k, v) in pairs {
            let v: MetadataValue<_> = v.parse().expect("ascii");
            st.metadata_mut().insert(*k, v);
        }
        st
    }

    #[test]
    fn decodes_cairn_error_code() {
        let st = status_with(Code::FailedPrecondition, &[(ERROR_CODE_KEY, "1")]);
        let err = ClientError::from_status(&st, "a:1");
        assert_eq!(err.code(), Some(ErrorCode::NotLeader));
        assert_eq!(err.to_string(), "NOT_LEADER: boom");

        let st = status_with(Code::NotFound, &[(ERROR_CODE_KEY, " 2 ")]);
        assert_eq!(
            ClientError::from_status(&st, "a:1").code(),
            Some(ErrorCode::UnknownTopic)
        );
    }

    #[test]
    fn unknown_code_number_is_unspecified() {
        let st = status_with(Code::Internal, &[(ERROR_CODE_KEY, "999")]);
        let err = ClientError::from_status(&st, "a:1");
        assert_eq!(err.code(), Some(ErrorCode::Unspecified));
        assert!(err.to_string().contains("999"));
    }

    #[test]
    fn no_code_unavailable_is_transport() {
        let st = tonic::Status::new(Code::Unavailable, "tcp connect error");
        assert!(matches!(
            ClientError::from_status(&st, "h:1"),
            ClientError::Transport { .. }
        ));
        let st = tonic::Status::new(Code::ResourceExhausted, "message too big");
        assert!(matches!(
            ClientError::from_status(&st, "h:1"),
            ClientError::Rpc {
                code: Code::ResourceExhausted,
                ..
            }
        ));
        // A garbage code value is ignored: the status is judged by its gRPC code.
        let st = status_with(Code::Unavailable, &[(ERROR_CODE_KEY, "x")]);
        assert!(matches!(
            ClientError::from_status(&st, "h:1"),
            ClientError::Transport { .. }
        ));
    }

    #[test]
    fn leader_hint() {
        let st = status_with(
            Code::FailedPrecondition,
            &[
                (ERROR_CODE_KEY, "1"),
                (LEADER_ID_KEY, "3"),
                (LEADER_ADDR_KEY, "10.0.0.3:50051"),
            ],
        );
        assert_eq!(
            LeaderHint::from_status(&st),
            Some(LeaderHint {
                id: Some(3),
                addr: Some("10.0.0.3:50051".into())
            })
        );
        let st = status_with(Code::FailedPrecondition, &[(ERROR_CODE_KEY, "1")]);
        assert_eq!(LeaderHint::from_status(&st), None);
        let st = status_with(Code::FailedPrecondition, &[(LEADER_ID_KEY, "nope")]);
        assert_eq!(LeaderHint::from_status(&st), None);
    }

    #[test]
    fn code_looks_through_retries_exhausted() {
        let err = ClientError::RetriesExhausted {
            attempts: 3,
            elapsed: Duration::from_secs(1),
            last: Box::new(ClientError::server(ErrorCode::LeaderNotAvailable, "x")),
        };
        assert_eq!(err.code(), Some(ErrorCode::LeaderNotAvailable));
        assert!(err.to_string().starts_with("gave up after 3 attempts"));
    }
}
