//! Building a [`Client`] from the connection flags.

use std::time::Duration;

use anyhow::{Context, Result};
use cairn_client::{Client, ClientConfig};

use crate::cli::ConnectArgs;

/// The client configuration the flags ask for.
pub fn client_config(conn: &ConnectArgs) -> Result<ClientConfig> {
    let mut config = ClientConfig::default();
    config.retry.deadline = Duration::from_millis(conn.timeout_ms);
    config.bootstrap_deadline = Duration::from_millis(conn.connect_timeout_ms);
    config.tls = conn.tls_ca.as_ref().map(|ca| cairn_client::TlsSettings {
        ca_file: ca.clone(),
        identity: conn.tls_cert.clone().zip(conn.tls_key.clone()),
    });
    config.token = match conn.token.as_deref() {
        None => None,
        Some(t) => Some(cairn_client::BearerToken(match t.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {path}"))?
                .trim()
                .to_string(),
            None => t.to_string(),
        })),
    };
    Ok(config)
}

/// Connects to the cluster.
pub async fn connect(conn: &ConnectArgs) -> Result<Client> {
    Client::connect_with(&conn.bootstrap, client_config(conn)?)
        .await
        .with_context(|| format!("cannot connect to {}", conn.bootstrap.join(",")))
}
