//! Kafka connections: one task per connection reads and decodes frames
//! ahead of the one that answers them, in order, one at a time (as Kafka
//! serves a connection); at most `MAX_IN_FLIGHT` requests, and about
//! `MAX_QUEUED_BYTES` of them, wait decoded.
//!
//! Node-wide limits (configuration, docs/ops/configuration.md): at most
//! `kafka_max_connections` connections, `kafka_max_connections_per_ip` from
//! one address (one more is accepted and closed at once, counted in
//! `cairn_kafka_connections_refused_total`), `kafka_max_queued_request_bytes`
//! of requests read and not yet answered over all connections (reserved
//! from a frame's size prefix before its body is read, so a flood of large
//! requests waits in the clients' sockets, not in this node's memory), and
//! connections idle for `kafka_connections_max_idle_ms` are closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cairn_kafka::ApiResponse;
use cairn_kafka::KafkaError;
use cairn_kafka::Request;
use cairn_tls::Conn;
use cairn_tls::ServerTls;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::Semaphore;

use super::dispatch;
use super::fetch_session::FetchSessions;
use super::Session;
use cairn_broker::Broker;
use cairn_broker::Listener;
use cairn_broker::RequestContext;

/// Requests of one connection decoded and waiting for their turn.
const MAX_IN_FLIGHT: usize = 16;
/// Bytes of request frames of one connection read ahead of their answer
/// (at least one request of `kafka_max_request_bytes` always fits).
const MAX_QUEUED_BYTES: usize = 64 << 20;

/// The node-wide limits of the Kafka listener.
struct Limits {
    connections: Arc<Semaphore>,
    max_per_ip: u32,
    /// Connections per client address; at most `kafka_max_connections`
    /// entries (an entry lives as long as a connection from that address).
    per_ip: std::sync::Mutex<HashMap<IpAddr, u32>>,
    /// Bytes of requests read and not yet answered, over all connections.
    queued: Arc<Semaphore>,
    queued_max: usize,
    idle: Duration,
}

/// A connection's place in the limits, given back when it closes.
struct Slot {
    limits: Arc<Limits>,
    ip: IpAddr,
    _connection: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.limits.per_ip.lock() {
            if let Some(n) = m.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.ip);
                }
            }
        }
        metrics::gauge!("cairn_kafka_connections").decrement(1.0);
    }
}

impl Limits {
    fn new(broker: &Broker) -> Self {
        let c = broker.settings();
        let max_request = usize::try_from(c.kafka_max_request_bytes).unwrap_or(usize::MAX);
        let queued_max = usize::try_from(c.kafka_max_queued_request_bytes)
            .unwrap_or(usize::MAX)
            .max(max_request)
            .min(Semaphore::MAX_PERMITS);
        Limits {
            connections: Arc::new(Semaphore::new(c.kafka_max_connections as usize)),
            max_per_ip: c.kafka_max_connections_per_ip,
            per_ip: std::sync::Mutex::new(HashMap::new()),
            queued: Arc::new(Semaphore::new(queued_max)),
            queued_max,
            idle: Duration::from_millis(c.kafka_connections_max_idle_ms),
        }
    }

    /// A slot for a new connection from `ip`, or `None` when a limit is
    /// reached.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let permit = self.connections.clone().try_acquire_owned().ok()?;
        let mut m = self.per_ip.lock().ok()?;
        let n = m.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            if *n == 0 {
                m.remove(&ip);
            }
            return None;
        }
        *n += 1;
        metrics::gauge!("cairn_kafka_connections").increment(1.0);
        Some(Slot {
            limits: self.clone(),
            ip,
            _connection: permit,
        })
    }
}

/// Accepts Kafka clients until the task is aborted; with `tls`, each
/// connection's handshake runs in its own task (`SSL`, `SASL_SSL`).
pub(crate) async fn serve(listener: TcpListener, tls: Option<Arc<ServerTls>>, broker: Broker) {
    let fetch_sessions = Arc::new(FetchSessions::default());
    let limits = Arc::new(Limits::new(&broker));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                metrics::counter!("cairn_kafka_connections_total").increment(1);
                let Some(slot) = limits.admit(peer.ip()) else {
                    metrics::counter!("cairn_kafka_connections_refused_total").increment(1);
                    tracing::debug!(%peer, "kafka: connection limit reached; closing the new connection");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (broker, fetch_sessions, tls) =
                    (broker.clone(), fetch_sessions.clone(), tls.clone());
                tokio::spawn(async move {
                    let conn = match &tls {
                        None => Conn::plain(stream),
                        // A failed handshake is logged (and audited when
                        // it checks certificates) by `accept`.
                        Some(tls) => match tls.accept(stream).await {
                            Ok(c) => c,
                            Err(_) => return,
                        },
                    };
                    connection(conn, peer, broker, fetch_sessions, slot).await
                });
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
    /// With its share of the connection's and the node's read-ahead budget.
    Request(Box<Request>, [OwnedSemaphorePermit; 2]),
    /// An ApiVersions request of a version Cairn does not speak: answered
    /// with UNSUPPORTED_VERSION and the versions Cairn does speak, so the
    /// client can retry with one of them.
    UnsupportedApiVersions { correlation_id: i32 },
}

async fn connection(
    stream: Conn,
    peer: SocketAddr,
    broker: Broker,
    fetch_sessions: Arc<FetchSessions>,
    slot: Slot,
) {
    let limits = slot.limits.clone();
    // With SSL (no SASL), the client's certificate names the principal:
    // its subject through `ssl_principal_mapping_rules`, or ANONYMOUS
    // without one (Kafka's rule for the SSL protocol).
    let cert_principal = stream.info().principal.clone();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Incoming>(MAX_IN_FLIGHT);
    let max_bytes = broker.settings().kafka_max_request_bytes;
    // Frames are at most i32::MAX bytes (their size prefix), whatever the limit.
    let queued_max = MAX_QUEUED_BYTES
        .max(usize::try_from(max_bytes).unwrap_or(usize::MAX))
        .min(i32::MAX as usize);
    let queued = Arc::new(Semaphore::new(queued_max));
    let read = async move {
        let _slot = slot;
        loop {
            let size = match tokio::time::timeout(
                limits.idle,
                cairn_kafka::read_frame_size(&mut reader, max_bytes),
            )
            .await
            {
                Err(_) => {
                    metrics::counter!("cairn_kafka_idle_connections_closed_total").increment(1);
                    tracing::debug!(%peer, "kafka: idle connection closed");
                    return;
                }
                Ok(Ok(Some(size))) => size,
                Ok(Ok(None)) => return,
                Ok(Err(e)) => return refuse(peer, &e),
            };
            // Reserve the frame's bytes before reading (and allocating) it:
            // waits while this connection's, or all connections', requests
            // read ahead hold too many bytes.
            let own = u32::try_from(size.min(queued_max)).unwrap_or(u32::MAX);
            let Ok(own) = queued.clone().acquire_many_owned(own).await else {
                return;
            };
            let all = u32::try_from(size.min(limits.queued_max)).unwrap_or(u32::MAX);
            let Ok(all) = limits.queued.clone().acquire_many_owned(all).await else {
                return;
            };
            let frame = match cairn_kafka::read_frame_body(&mut reader, size).await {
                Ok(f) => f.freeze(),
                Err(e) => return refuse(peer, &e),
            };
            let incoming = match cairn_kafka::decode_request_bytes(frame) {
                Ok(r) => Incoming::Request(Box::new(r), [own, all]),
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
        let mut ctx = RequestContext::anonymous(Listener::Kafka, Some(peer));
        if !broker.settings().kafka_sasl() {
            if let Some(name) = &cert_principal {
                ctx = ctx.with_principal(cairn_broker::Principal::user(name.clone()));
            }
        }
        let mut session = Session {
            client_id: String::new(),
            client_host: peer.ip().to_string(),
            fetch_sessions,
            ctx,
            sasl: None,
            authenticated: false,
            mechanism: None,
            expires_at: None,
            close_after: false,
            delay_answer: None,
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
                    match dispatch(&broker, &mut session, *r).await {
                        Some(resp) => (correlation_id, version, resp),
                        None if session.close_after => return,
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
            if let Some(d) = session.delay_answer.take() {
                tokio::time::sleep(d).await;
            }
            if writer.write_all(&frame).await.is_err() || session.close_after {
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
