//! The Cairn node's client doors, around its core ([`cairn_broker`]).
//!
//! ```text
//!   Kafka :9092 (kafka/)   gRPC :50051 (api.rs)   admin HTTP :9644 (admin.rs)
//!            │                     │                        │
//!            └──────── RequestContext + plain types ────────┘
//!                                  │
//!                     cairn_broker::Broker (authorize · audit · ops)
//! ```
//!
//! A door sees only [`cairn_broker::Broker`] and the plain types it takes
//! and answers; the node, its replicas and the coordinator are private to
//! `cairn-broker`, so no handler can reach around the authorization.

mod admin;
mod api;
mod kafka;

pub use cairn_broker::ConfigError;
pub use cairn_broker::NodeId;
pub use cairn_broker::ServerConfig;
pub use cairn_broker::ServerError;
pub use cairn_broker::HOLD_APPLY_FILE;
pub use cairn_broker::HOLD_READ_FILE;
pub use cairn_broker::HOLD_SYNC_FILE;
use cairn_proto::v1::cairn_server::CairnServer;
use tokio::net::TcpListener;

async fn bind(addr: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.to_string(),
            source,
        })
}

fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed");
            None
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs a node until SIGINT or SIGTERM.
pub async fn run(config: ServerConfig) -> Result<(), ServerError> {
    let prometheus = install_metrics();
    let grpc_listener = bind(&config.grpc_addr).await?;
    let admin_listener = bind(&config.admin_addr).await?;
    let kafka_listener = bind(&config.kafka_addr).await?;
    tracing::info!(
        node_id = config.node_id,
        grpc = %config.grpc_addr,
        rpc = %config.rpc_addr,
        admin = %config.admin_addr,
        kafka = %config.kafka_addr,
        data_dir = %config.data_dir.display(),
        acl_enabled = config.acl_enabled,
        "cairn node starting"
    );
    if !config.acl_enabled {
        tracing::warn!("ACLs are off: every client may do everything (docs/ops/security.md)");
    }
    let principals = cairn_tls::PrincipalMapper::parse(&config.ssl_principal_mapping_rules)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let (kafka_auth, grpc_auth, admin_auth) = (
        config.kafka_tls(),
        config.grpc_client_auth(),
        config.admin_client_auth(),
    );
    let mut running = cairn_broker::start(config).await?;
    let broker = running.broker();
    let store = running.tls();
    let listener_tls =
        |name: &'static str, auth: Option<cairn_tls::ClientAuth>, alpn: &[&[u8]]| match (
            auth, &store,
        ) {
            (Some(auth), Some(store)) => store
                .server(name, auth, alpn, principals.clone())
                .map(Some)
                .map_err(|e| ServerError::Tls(format!("{name} listener: {e}"))),
            _ => Ok(None),
        };
    let kafka_tls = listener_tls("kafka", kafka_auth, &[])?;
    let grpc_tls = listener_tls("grpc", grpc_auth, &[b"h2"])?;
    let admin_tls = listener_tls("admin", admin_auth, &[b"http/1.1"])?;

    let api = CairnServer::new(api::CairnService {
        broker: broker.clone(),
    })
    .max_decoding_message_size(64 << 20)
    .max_encoding_message_size(128 << 20);
    let api_server = tokio::spawn(
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .initial_connection_window_size(Some(16 << 20))
            .initial_stream_window_size(Some(8 << 20))
            .add_service(api)
            .serve_with_incoming(cairn_tls::incoming(grpc_listener, grpc_tls)),
    );
    let admin_server = tokio::spawn(admin::serve(
        admin_listener,
        admin_tls,
        broker.clone(),
        prometheus,
    ));
    let kafka_server = tokio::spawn(kafka::serve(kafka_listener, kafka_tls, broker.clone()));

    let result = async {
        running.join().await?;
        tokio::select! {
            _ = shutdown_signal() => Ok(()),
            e = running.stopped() => Err(e),
            r = api_server => match r {
                Ok(Err(e)) => Err(ServerError::Raft(format!("client API server stopped: {e}"))),
                _ => Err(ServerError::Raft("client API server stopped".into())),
            },
        }
    }
    .await;
    tracing::info!("shutting down");
    admin_server.abort();
    kafka_server.abort();
    running.shutdown().await;
    result
}
