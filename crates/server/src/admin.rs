//! Admin HTTP: `/metrics` (Prometheus), `/health`, `/ready`; with
//! `test_replica_reads` (fault-injection harness only) also
//! `/test/replica-log`, this node's own copy of a partition's log.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use cairn_partition::FirstBatch;
use cairn_partition::ReadError;
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

use crate::node::Node;

/// Bytes of record batches one `/test/replica-log` answer holds at most
/// (but for its first batch, which is returned whole).
const REPLICA_LOG_MAX_BYTES: usize = 1 << 20;

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

fn record_gauges(node: &Node) {
    let replicas = node.all_replicas();
    let leaders = replicas.iter().filter(|r| r.is_leader()).count();
    metrics::gauge!("cairn_partition_replicas").set(replicas.len() as f64);
    metrics::gauge!("cairn_partition_leaders").set(leaders as f64);
    metrics::gauge!("cairn_metadata_leader").set(if node.is_meta_leader() { 1.0 } else { 0.0 });
    let s = node.store.stats();
    metrics::gauge!("cairn_storage_user_bytes_written").set(s.user_bytes_written as f64);
    metrics::gauge!("cairn_storage_wal_bytes_written").set(s.wal_bytes_written as f64);
    metrics::gauge!("cairn_storage_flush_bytes_written").set(s.flush_bytes_written as f64);
    metrics::gauge!("cairn_storage_compaction_bytes_written")
        .set(s.compaction_bytes_written as f64);
}

async fn handle(
    node: Arc<Node>,
    prometheus: Option<PrometheusHandle>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match req.uri().path() {
        "/metrics" => match &prometheus {
            Some(h) => {
                record_gauges(&node);
                respond(StatusCode::OK, h.render())
            }
            None => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "metrics recorder not installed\n".into(),
            ),
        },
        "/health" => respond(StatusCode::OK, "ok\n".into()),
        "/test/replica-log" if node.config.test_replica_reads => {
            replica_log(&node, req.uri().query().unwrap_or("")).await
        }
        "/ready" => {
            let registered = node.meta_view.read(|s| s.nodes.contains_key(&node.id));
            match (node.meta_leader(), registered) {
                (Some(_), true) => respond(StatusCode::OK, "ready\n".into()),
                (None, _) => respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no metadata leader\n".into(),
                ),
                (_, false) => respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "node not registered yet\n".into(),
                ),
            }
        }
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
async fn replica_log(node: &Node, query: &str) -> Response<Full<Bytes>> {
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
    let Some(replica) = node
        .all_replicas()
        .into_iter()
        .find(|r| r.topic == topic && r.partition == partition)
    else {
        return respond(
            StatusCode::NOT_FOUND,
            format!("node {} has no replica of {topic}/{partition}\n", node.id),
        );
    };
    let cleaned = match replica.log.cleaned_through() {
        Ok(c) => c,
        Err(e) => return respond(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    };
    match replica
        .log
        .read(offset, REPLICA_LOG_MAX_BYTES, FirstBatch::Whole)
        .await
    {
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
        Err(ReadError::OffsetOutOfRange { .. }) => respond(
            StatusCode::RANGE_NOT_SATISFIABLE,
            format!(
                "offset {offset} is outside [{}, {}] on node {}\n",
                replica.log.log_start(),
                replica.log.high_watermark(),
                node.id
            ),
        ),
        Err(e) => respond(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

pub(crate) async fn serve(
    listener: TcpListener,
    node: Arc<Node>,
    prometheus: Option<PrometheusHandle>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let node = node.clone();
        let prometheus = prometheus.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(node.clone(), prometheus.clone(), req));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "admin connection");
            }
        });
    }
}
