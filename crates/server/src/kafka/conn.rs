//! Kafka connections: one task per connection reads and decodes frames
//! ahead of the one that answers them, in order, one at a time (as Kafka
//! serves a connection); at most `MAX_IN_FLIGHT` requests, and about
//! `MAX_QUEUED_BYTES` of them, wait decoded.

use std::net::SocketAddr;
use std::sync::Arc;

use cairn_kafka::ApiResponse;
use cairn_kafka::KafkaError;
use cairn_kafka::Request;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::Semaphore;

use super::dispatch;
use super::fetch_session::FetchSessions;
use super::Session;
use crate::node::Node;

/// Requests of one connection decoded and waiting for their turn.
const MAX_IN_FLIGHT: usize = 16;
/// Bytes of request frames of one connection read ahead of their answer
/// (at least one request of `kafka_max_request_bytes` always fits).
const MAX_QUEUED_BYTES: usize = 64 << 20;

/// Accepts Kafka clients until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, node: Arc<Node>) {
    let fetch_sessions = Arc::new(FetchSessions::default());
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                metrics::counter!("cairn_kafka_connections_total").increment(1);
                tokio::spawn(connection(
                    stream,
                    peer,
                    node.clone(),
                    fetch_sessions.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "kafka listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// What the reader hands the answering side.
enum Incoming {
    Request(Box<Request>, OwnedSemaphorePermit),
    /// An ApiVersions request of a version Cairn does not speak: answered
    /// with UNSUPPORTED_VERSION and the versions Cairn does speak, so the
    /// client can retry with one of them.
    UnsupportedApiVersions {
        correlation_id: i32,
    },
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    node: Arc<Node>,
    fetch_sessions: Arc<FetchSessions>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Incoming>(MAX_IN_FLIGHT);
    let max_bytes = node.config.kafka_max_request_bytes;
    // Frames are at most i32::MAX bytes (their size prefix), whatever the limit.
    let queued_max = MAX_QUEUED_BYTES
        .max(usize::try_from(max_bytes).unwrap_or(usize::MAX))
        .min(i32::MAX as usize);
    let queued = Arc::new(Semaphore::new(queued_max));
    let read = async move {
        loop {
            let frame = match cairn_kafka::read_frame(&mut reader, max_bytes).await {
                Ok(Some(f)) => f.freeze(),
                Ok(None) => return,
                Err(e) => return refuse(peer, &e),
            };
            // Waits while the requests read ahead hold too many bytes.
            let permits = u32::try_from(frame.len().min(queued_max)).unwrap_or(u32::MAX);
            let Ok(permit) = queued.clone().acquire_many_owned(permits).await else {
                return;
            };
            let incoming = match cairn_kafka::decode_request_bytes(frame) {
                Ok(r) => Incoming::Request(Box::new(r), permit),
                Err(KafkaError::UnsupportedVersion {
                    api_key,
                    correlation_id,
                    ..
                }) if api_key
                    == cairn_kafka::kafka_protocol::messages::ApiKey::ApiVersions as i16 =>
                {
                    Incoming::UnsupportedApiVersions { correlation_id }
                }
                Err(e) => return refuse(peer, &e),
            };
            if tx.send(incoming).await.is_err() {
                return;
            }
        }
    };
    let answer = async move {
        let mut session = Session {
            client_host: peer.ip().to_string(),
            fetch_sessions,
            ..Session::default()
        };
        while let Some(incoming) = rx.recv().await {
            let (correlation_id, version, response) = match incoming {
                Incoming::Request(r, _permit) => {
                    if let Some(id) = &r.header.client_id {
                        if session.client_id.as_str() != id.as_str() {
                            session.client_id = id.to_string();
                        }
                    }
                    let (correlation_id, version) = (r.correlation_id(), r.version());
                    let api = r.body.api_key();
                    tracing::trace!(%peer, client_id = %session.client_id, api = ?api, version, "kafka request");
                    match dispatch(&node, &mut session, *r).await {
                        Some(resp) => (correlation_id, version, resp),
                        None if api == cairn_kafka::kafka_protocol::messages::ApiKey::Produce => {
                            continue; // acks=0: Kafka sends nothing back
                        }
                        None => {
                            tracing::info!(%peer, client_id = %session.client_id, api = ?api, "kafka: request not served; closing the connection");
                            return;
                        }
                    }
                }
                Incoming::UnsupportedApiVersions { correlation_id } => (
                    correlation_id,
                    0,
                    ApiResponse::ApiVersions(cairn_kafka::api_versions_response(
                        cairn_kafka::kafka_protocol::ResponseError::UnsupportedVersion.code(),
                    )),
                ),
            };
            let frame = match cairn_kafka::encode_response(correlation_id, version, &response) {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(%peer, error = %e, "kafka: cannot encode a response; closing the connection");
                    return;
                }
            };
            if writer.write_all(&frame).await.is_err() {
                return;
            }
        }
    };
    // The reader ends on EOF or a bad frame, and the answering side then
    // writes what is queued before it; the answering side ends on a write
    // error or a request it will not serve, and the reader goes with it.
    let reader = tokio::spawn(read);
    answer.await;
    reader.abort();
}

fn refuse(peer: SocketAddr, e: &KafkaError) {
    metrics::counter!("cairn_kafka_refused_requests_total").increment(1);
    tracing::info!(%peer, error = %e, "kafka: closing the connection");
}
