//! Admin HTTP: `/metrics` (Prometheus), `/health`, `/ready`; with
//! `test_replica_reads` (fault-injection harness only) also
//! `/test/replica-log`, this node's own copy of a partition's log.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper::Response;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use cairn_broker::views::Readiness;
use cairn_broker::Broker;

/// Bytes of record batches one `/test/replica-log` answer holds at most
/// (but for its first batch, which is returned whole).
const REPLICA_LOG_MAX_BYTES: usize = 1 << 20;

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

async fn handle(
    broker: Broker,
    prometheus: Option<PrometheusHandle>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match req.uri().path() {
        "/metrics" => match &prometheus {
            Some(h) => {
                broker.record_gauges();
                respond(StatusCode::OK, h.render())
            }
            None => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "metrics recorder not installed\n".into(),
            ),
        },
        "/health" => respond(StatusCode::OK, "ok\n".into()),
        "/test/replica-log" if broker.settings().test_replica_reads => {
            replica_log(&broker, req.uri().query().unwrap_or("")).await
        }
        "/ready" => match broker.readiness() {
            Readiness::Ready => respond(StatusCode::OK, "ready\n".into()),
            Readiness::NoMetadataLeader => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "no metadata leader\n".into(),
            ),
            Readiness::NotRegistered => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "node not registered yet\n".into(),
            ),
        },
        _ => respond(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /health, /ready\n".into(),
        ),
    })
}

/// `GET /test/replica-log?topic=T&partition=P&offset=O` (only with
/// `test_replica_reads`): the committed record batches of this node's
/// replica of the partition from the batch holding offset `O` on, raw
/// (Kafka RecordBatch v2, as a fetch returns them), up to
/// [`REPLICA_LOG_MAX_BYTES`]. Served by any replica, leader or follower,
/// from its local log up to its own high watermark, without the lease
/// checks of a client fetch: it shows what this copy holds, which is what
/// the harness compares across replicas (e.g. after log compaction, which
/// each replica does on its own). Headers: `x-cairn-high-watermark`,
/// `x-cairn-log-start`, `x-cairn-next-offset` (where to read on from) and
/// `x-cairn-cleaned-through` (offsets below it are compacted on this
/// replica). 404 when this node has no replica of the partition.
async fn replica_log(broker: &Broker, query: &str) -> Response<Full<Bytes>> {
    let mut topic = None;
    let mut partition = None;
    let mut offset = Some(0u64);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("topic", v)) => topic = Some(v.to_owned()),
            Some(("partition", v)) => partition = v.parse::<u32>().ok(),
            Some(("offset", v)) => offset = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    let (Some(topic), Some(partition), Some(offset)) = (topic, partition, offset) else {
        return respond(
            StatusCode::BAD_REQUEST,
            "usage: /test/replica-log?topic=T&partition=P&offset=O\n".into(),
        );
    };
    let Some(Some(replica)) = broker.test_replica(&topic, partition) else {
        return respond(
            StatusCode::NOT_FOUND,
            format!(
                "node {} has no replica of {topic}/{partition}\n",
                broker.node_id()
            ),
        );
    };
    let cleaned = match replica.cleaned_through() {
        Ok(c) => c,
        Err(e) => return respond(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    };
    match replica.read_local(offset, REPLICA_LOG_MAX_BYTES).await {
        Ok(r) => {
            let mut resp = Response::new(Full::new(r.records));
            let headers = resp.headers_mut();
            for (name, value) in [
                ("x-cairn-high-watermark", r.high_watermark),
                ("x-cairn-log-start", r.log_start),
                ("x-cairn-next-offset", r.next_offset),
                ("x-cairn-cleaned-through", cleaned),
            ] {
                headers.insert(name, HeaderValue::from(value));
            }
            resp
        }
        Err(cairn_broker::ReadError::OffsetOutOfRange { .. }) => respond(
            StatusCode::RANGE_NOT_SATISFIABLE,
            format!(
                "offset {offset} is outside [{}, {}] on node {}\n",
                replica.log_start(),
                replica.high_watermark(),
                broker.node_id()
            ),
        ),
        Err(e) => respond(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<std::sync::Arc<cairn_tls::ServerTls>>,
    broker: Broker,
    prometheus: Option<PrometheusHandle>,
) {
    let mut conns = cairn_tls::incoming(listener, tls);
    while let Some(stream) = futures::StreamExt::next(&mut conns).await {
        let Ok(stream) = stream else {
            continue;
        };
        let broker = broker.clone();
        let prometheus = prometheus.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(broker.clone(), prometheus.clone(), req));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "admin connection");
            }
        });
    }
}
