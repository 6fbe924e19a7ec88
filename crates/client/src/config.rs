//! [`ClientConfig`]: timeouts and retry behaviour of a [`crate::Client`].

use std::path::PathBuf;
use std::time::Duration;

use crate::RetryPolicy;
use cairn_record::Compression;

/// Tunables of a [`crate::Client`]. `Default` gives sensible values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Backoff and overall deadline for retrying transient failures.
    pub retry: RetryPolicy,
    /// How long `Client::connect` keeps trying the bootstrap addresses.
    pub bootstrap_deadline: Duration,
    /// TCP connect timeout per node.
    pub connect_timeout: Duration,
    /// Per-attempt deadline of ordinary requests. Fetches get `max_wait_ms`
    /// on top, produces the produce timeout on top.
    pub request_timeout: Duration,
    /// How long the leader may wait for replication of a produce
    /// (`ProduceRequest.timeout_ms`).
    pub produce_timeout: Duration,
    /// Largest response accepted (fetches can be large).
    pub max_message_size: usize,
    /// Stamp a producer id and sequence numbers on the batches built by
    /// `produce_records`, so that retries are not written twice.
    pub idempotent: bool,
    /// Codec for the batches [`crate::Client::produce_records`] builds:
    /// none (default), gzip, snappy, lz4 or zstd. Consumers decode all.
    pub compression: Compression,
    /// How long a topic's partition count is trusted before it is asked for
    /// again (Kafka's `metadata.max.age.ms`, 5 minutes), so that a producer
    /// starts using partitions added to a topic.
    pub metadata_max_age: Duration,
    /// Connect over TLS (nodes with `grpc_tls` on): the CA to trust and,
    /// for `grpc_tls = "mtls"`, the client's certificate and key.
    pub tls: Option<TlsSettings>,
    /// A bearer token (a JWT) sent as `authorization: Bearer` on every
    /// request, for nodes with `oauth_jwks_file` set.
    pub token: Option<BearerToken>,
    /// Addresses to connect to instead of the ones nodes advertise
    /// (`advertised -> reachable`, both `host:port`): for clients that
    /// reach a cluster through a proxy or NAT, such as a mirror link
    /// through a WAN gateway. Addresses not named are used as they are.
    /// With TLS, the certificate is checked against the address dialled.
    pub address_map: std::collections::BTreeMap<String, String>,
}

/// A bearer token; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(pub String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

/// TLS to the nodes' gRPC API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The CA (PEM) the nodes' certificates chain to.
    pub ca_file: PathBuf,
    /// The client's certificate and key (PEM), shown when asked (mTLS).
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            retry: RetryPolicy::default(),
            bootstrap_deadline: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(15),
            produce_timeout: Duration::from_secs(10),
            max_message_size: 256 * 1024 * 1024,
            idempotent: true,
            compression: Compression::None,
            metadata_max_age: Duration::from_secs(300),
            tls: None,
            token: None,
            address_map: std::collections::BTreeMap::new(),
        }
    }
}
