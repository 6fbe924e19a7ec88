//! Admin HTTP: `/metrics` (Prometheus), `/health`, `/ready`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper::Response;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::node::Node;

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
