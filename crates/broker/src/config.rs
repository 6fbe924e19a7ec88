//! Server configuration: defaults < TOML file < `CAIRN_*` env < flags.

use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;

use figment::providers::Env;
use figment::providers::Format;
use figment::providers::Serialized;
use figment::providers::Toml;
use figment::Figment;
use serde::Deserialize;
use serde::Serialize;

use cairn_tls::ClientAuth;
use cairn_tls::TlsFiles;

use crate::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("invalid --voters {value:?}: {reason} (expected 1=host:port,2=host:port,...)")]
    Voters { value: String, reason: String },
    #[error("audit_topic_partitions and audit_topic_replication_factor must be >= 1")]
    AuditTopic,
    #[error("node id must be >= 1")]
    NodeIdZero,
    #[error("--voters and --join are exclusive: a voter bootstraps the cluster, a joiner joins a running one")]
    VotersAndJoin,
    #[error(
        "node {0} is not in --voters and no --join is given: it could never reach the cluster"
    )]
    NotAVoter(NodeId),
    #[error("producer_id_expiration_ms must be >= 1, got {0}")]
    ProducerIdExpiration(i64),
    #[error("mirror_sync_interval_ms must be 100..=600000, got {0}")]
    MirrorSyncInterval(u64),
    #[error("group_consumer_heartbeat_interval_ms ({0}) must be at least 1 and below group_consumer_session_timeout_ms ({1})")]
    ConsumerHeartbeatInterval(u32, u32),
    #[error("num_partitions must be 1..=10000, got {0}")]
    NumPartitions(u32),
    #[error("kafka_security_protocol {0:?}: expected PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL")]
    SecurityProtocol(String),
    #[error("{key} {value:?}: expected {expected}")]
    TlsMode {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{0} needs tls_cert_file and tls_key_file (the node's certificate and key)")]
    TlsNoCertificate(&'static str),
    #[error("{0} checks client certificates: it needs tls_ca_file")]
    TlsNoCa(&'static str),
    #[error(transparent)]
    PrincipalMappingRules(#[from] cairn_tls::RuleError),
    #[error("sasl_mechanisms: unknown mechanism {0:?} (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)")]
    SaslMechanism(String),
    #[error("OAUTHBEARER needs oauth_jwks_file, oauth_issuer and oauth_audience")]
    OAuthIncomplete,
    #[error("super_users: {0:?} is not a principal of the form User:name")]
    SuperUser(String),
}

/// Every setting of a node. Field names are the TOML keys and, upper-cased
/// with the `CAIRN_` prefix, the environment variables.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerConfig {
    pub node_id: NodeId,
    pub data_dir: PathBuf,
    /// Client gRPC API.
    pub grpc_addr: String,
    /// Internal RPC: Raft, heartbeats, forwarded metadata writes.
    pub rpc_addr: String,
    /// HTTP: /metrics, /health, /ready.
    pub admin_addr: String,
    /// Kafka API (the Kafka wire protocol, docs/ops/kafka.md).
    pub kafka_addr: String,
    pub advertised_grpc_addr: Option<String>,
    pub advertised_rpc_addr: Option<String>,
    pub advertised_kafka_addr: Option<String>,
    pub rack: Option<String>,
    /// Metadata-group voters by internal RPC address: `1=host:port,2=host:port`.
    /// Unset: a single-node cluster of this node.
    pub voters: Option<String>,
    /// A running node's internal RPC address to join through (non-voter).
    pub join: Option<String>,
    pub log_format: String,
    /// Cluster-wide default of `max.message.bytes`.
    pub max_message_bytes: u64,
    /// How often the log compactor looks for new data in the partitions of
    /// compacted topics (`cleanup.policy=compact`) on this node, in ms
    /// (Kafka's `log.cleaner.backoff.ms`). 0 turns compaction off.
    pub compaction_interval_ms: u64,
    /// Cluster-wide default of `retention.ms` for topics that do not set
    /// it: batches whose newest record is older are deleted; -1: no limit.
    pub retention_ms: i64,
    /// Cluster-wide default of `retention.bytes` (per partition) for topics
    /// that do not set it; -1: no limit.
    pub retention_bytes: i64,
    /// How often each node checks the partitions it leads for records to
    /// delete, and cuts snapshots so that deleted records leave the disk.
    pub retention_check_interval_ms: u64,
    /// Cluster-wide default of `producer.id.expiration.ms` for topics that
    /// do not set it (Kafka's broker config of that name): a partition
    /// forgets an idempotent producer this long after its last batch.
    pub producer_id_expiration_ms: i64,
    /// How often the metadata leader syncs each mirror link: new topics and
    /// partitions, configs, security, and the chosen groups' committed
    /// offsets (so also how far a failed-over group may be behind).
    pub mirror_sync_interval_ms: u64,
    /// Fault-injection harness only (`jepsen/`): keep log writes in the
    /// process's memory until the group-commit sync writes and syncs them,
    /// so a kill -9 drops exactly what a power loss would drop from the page
    /// cache. Safe for acknowledged data (nothing is acknowledged before its
    /// sync) but it widens what a crash loses; leave it off in production.
    /// In this mode a file `test-hold-sync` in the data dir holds the
    /// node's fsyncs while it exists (a stalled disk).
    pub test_lose_unsynced_on_crash: bool,
    /// Fault-injection harness only (`jepsen/`): the admin HTTP server
    /// answers `/test/replica-log`, which returns this node's own copy of a
    /// partition's committed log (any replica, not only the leader), so the
    /// harness can compare the replicas. It bypasses ACLs: leave it off in
    /// production.
    pub test_replica_reads: bool,
    /// The metadata group snapshots its state every this many entries and
    /// keeps a tenth of them in its log after the snapshot; a node further
    /// behind is sent the snapshot.
    pub metadata_snapshot_entries: u64,
    /// Whether a Metadata request that allows it creates an unknown topic
    /// (Kafka's `auto.create.topics.enable`, true there). Off by default: a
    /// mistyped topic name must fail, not quietly become a new topic.
    pub auto_create_topics_enable: bool,
    /// Partitions of a topic created without a count: auto-created, or by a
    /// CreateTopics with `num_partitions` -1 (Kafka's `num.partitions`).
    pub num_partitions: u32,
    /// How long the first rebalance of an empty group waits for more
    /// members to join (Kafka's `group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: u64,
    /// The session timeouts consumers may ask for (Kafka's
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`).
    pub group_min_session_timeout_ms: u32,
    pub group_max_session_timeout_ms: u32,
    /// Consumer-protocol (KIP-848) groups: how often members heartbeat
    /// (Kafka's `group.consumer.heartbeat.interval.ms`) and when a silent
    /// member is removed (`group.consumer.session.timeout.ms`).
    pub group_consumer_heartbeat_interval_ms: u32,
    pub group_consumer_session_timeout_ms: u32,
    /// The largest Kafka request accepted, in bytes (Kafka's
    /// `socket.request.max.bytes`); a larger one closes the connection.
    pub kafka_max_request_bytes: u64,
    /// Kafka connections this node holds at most (Kafka's
    /// `max.connections`); one more is accepted and closed at once.
    pub kafka_max_connections: u32,
    /// Kafka connections from one client address at most (Kafka's
    /// `max.connections.per.ip`).
    pub kafka_max_connections_per_ip: u32,
    /// Bytes of Kafka requests all connections of this node together hold
    /// read but not yet answered (Kafka's `queued.max.request.bytes`); a
    /// connection waits to read its next request until it fits. Never less
    /// than `kafka_max_request_bytes`.
    pub kafka_max_queued_request_bytes: u64,
    /// A Kafka connection that sends no request for this long is closed
    /// (Kafka's `connections.max.idle.ms`).
    pub kafka_connections_max_idle_ms: u64,
    /// Snapshots go to other nodes in chunks of at most this many bytes,
    /// one message each (>= 1).
    pub raft_snapshot_chunk_bytes: usize,
    /// Enforce the ACLs stored in the metadata group (Kafka's
    /// `authorizer.class.name` set). Off: every request is allowed, as
    /// before security existed; insecure, docs/ops/security.md.
    pub acl_enabled: bool,
    /// Principals allowed everything, whatever the ACLs (Kafka's
    /// `super.users`), e.g. `["User:admin"]`.
    pub super_users: Vec<String>,
    /// With ACLs on: a resource no ACL names at all is open to everyone
    /// (Kafka's `allow.everyone.if.no.acl.found`). Off by default.
    pub allow_everyone_if_no_acl_found: bool,
    /// The Kafka listener's security protocol: `PLAINTEXT` (no
    /// authentication: every client is `User:ANONYMOUS`) or
    /// `SASL_PLAINTEXT` (clients authenticate with one of
    /// `sasl_mechanisms` before any other request).
    pub kafka_security_protocol: String,
    /// The SASL mechanisms the Kafka listener offers: `PLAIN`,
    /// `SCRAM-SHA-256`, `SCRAM-SHA-512` (Kafka's
    /// `sasl.enabled.mechanisms`). PLAIN sends the password itself: only
    /// over TLS once it exists.
    pub sasl_mechanisms: Vec<String>,
    /// The node's certificate chain, PEM (leaf first), for every listener
    /// with TLS on and for the internal RPC with `rpc_tls = "mtls"`.
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `tls_cert_file`, PEM (PKCS#8, PKCS#1 or SEC1).
    pub tls_key_file: Option<PathBuf>,
    /// The CA (PEM) that client certificates (mTLS) and peer nodes'
    /// certificates (internal RPC) must chain to.
    pub tls_ca_file: Option<PathBuf>,
    /// How often the three files are checked for a change, in ms; a change
    /// (or SIGHUP) reloads them for new connections without a restart.
    pub tls_reload_interval_ms: u64,
    /// With `kafka_security_protocol` `SSL` or `SASL_SSL`: whether Kafka
    /// clients show a certificate (Kafka's `ssl.client.auth`): `none`,
    /// `requested` or `required`. With `SSL`, a client's certificate
    /// subject (through `ssl_principal_mapping_rules`) is its principal.
    pub kafka_ssl_client_auth: String,
    /// The gRPC API's TLS: `off`, `tls`, or `mtls` (client certificates
    /// from `tls_ca_file` required; the subject is the principal).
    pub grpc_tls: String,
    /// The admin HTTP's TLS: `off`, `tls` or `mtls`.
    pub admin_tls: String,
    /// The internal RPC's TLS: `off` or `mtls` (every node shows a node
    /// certificate from `tls_ca_file`; nothing else gets in).
    pub rpc_tls: String,
    /// A client certificate's subject to a principal name (Kafka's
    /// `ssl.principal.mapping.rules`): `RULE:pattern/replacement/[LU]`
    /// and `DEFAULT`, comma-separated.
    pub ssl_principal_mapping_rules: String,
    /// The JSON Web Key Set (a file) whose keys sign the bearer tokens
    /// OAUTHBEARER and the gRPC API take; re-read when it changes.
    pub oauth_jwks_file: Option<PathBuf>,
    /// The `iss` a token must carry.
    pub oauth_issuer: Option<String>,
    /// The `aud` a token must carry.
    pub oauth_audience: Option<String>,
    /// The claim that names the principal (`User:<claim>`).
    pub oauth_principal_claim: String,
    /// How far a token's `exp` and `nbf` may be off this node's clock, in ms.
    pub oauth_clock_skew_ms: u64,
    /// A SASL session lasts at most this long before the client must
    /// re-authenticate on its connection (Kafka's
    /// `connections.max.reauth.ms`, KIP-368); 0: no limit but a token's
    /// expiry.
    pub connections_max_reauth_ms: u64,
    /// A failed SASL authentication is answered (and its connection
    /// closed) this long after it is decided (Kafka's
    /// `connection.failed.authentication.delay.ms`), which slows password
    /// guessing on one connection.
    pub connection_failed_authentication_delay_ms: u64,
    /// Whether audit events go to the replicated topic `__cairn_audit`;
    /// unset: when `acl_enabled` is.
    pub audit_topic: Option<bool>,
    /// Also append audit events, one JSON object a line, to this file.
    pub audit_log_file: Option<PathBuf>,
    /// The audit topic's partitions, when a node creates it.
    pub audit_topic_partitions: u32,
    /// The audit topic's replicas at most (fewer on a smaller cluster).
    pub audit_topic_replication_factor: u32,
    /// The audit topic's `retention.ms` when created (-1: kept forever).
    pub audit_retention_ms: i64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            data_dir: PathBuf::from("./cairn-data"),
            grpc_addr: "127.0.0.1:50051".to_string(),
            rpc_addr: "127.0.0.1:50052".to_string(),
            admin_addr: "127.0.0.1:9644".to_string(),
            kafka_addr: "127.0.0.1:9092".to_string(),
            advertised_grpc_addr: None,
            advertised_rpc_addr: None,
            advertised_kafka_addr: None,
            rack: None,
            voters: None,
            join: None,
            log_format: "text".to_string(),
            acl_enabled: false,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            kafka_security_protocol: "PLAINTEXT".to_string(),
            sasl_mechanisms: vec![
                "PLAIN".to_string(),
                "SCRAM-SHA-256".to_string(),
                "SCRAM-SHA-512".to_string(),
            ],
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_file: None,
            tls_reload_interval_ms: 10_000,
            kafka_ssl_client_auth: "none".to_string(),
            grpc_tls: "off".to_string(),
            admin_tls: "off".to_string(),
            rpc_tls: "off".to_string(),
            ssl_principal_mapping_rules: "DEFAULT".to_string(),
            oauth_jwks_file: None,
            oauth_issuer: None,
            oauth_audience: None,
            oauth_principal_claim: "sub".to_string(),
            oauth_clock_skew_ms: 30_000,
            connections_max_reauth_ms: 0,
            connection_failed_authentication_delay_ms: 100,
            audit_topic: None,
            audit_log_file: None,
            audit_topic_partitions: 1,
            audit_topic_replication_factor: 3,
            audit_retention_ms: -1,
            max_message_bytes: 1_048_588,
            compaction_interval_ms: 15_000,
            retention_ms: 604_800_000,
            retention_bytes: -1,
            retention_check_interval_ms: 5000,
            producer_id_expiration_ms: 86_400_000,
            mirror_sync_interval_ms: 2000,
            test_lose_unsynced_on_crash: false,
            test_replica_reads: false,
            metadata_snapshot_entries: 10_000,
            auto_create_topics_enable: false,
            num_partitions: 1,
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 1_000,
            group_max_session_timeout_ms: 1_800_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            group_consumer_session_timeout_ms: 45_000,
            kafka_max_request_bytes: cairn_kafka::DEFAULT_MAX_REQUEST_BYTES,
            kafka_max_connections: 10_000,
            kafka_max_connections_per_ip: 10_000,
            kafka_max_queued_request_bytes: 512 << 20,
            kafka_connections_max_idle_ms: 600_000,
            raft_snapshot_chunk_bytes: cairn_raft::SNAPSHOT_CHUNK_BYTES,
        }
    }
}

impl ServerConfig {
    /// Layers the defaults, `file`, `CAIRN_*` variables and `overrides`
    /// (the flags that were given), later ones winning.
    pub fn load(
        file: Option<&Path>,
        overrides: serde_json::Map<String, serde_json::Value>,
    ) -> Result<ServerConfig, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(ServerConfig::default()));
        if let Some(file) = file {
            fig = fig.merge(Toml::file_exact(file));
        }
        fig = fig
            .merge(Env::prefixed("CAIRN_").ignore(&["BOOTSTRAP", "TLS_CA", "TLS_CERT", "TLS_KEY"]))
            .merge(Serialized::globals(serde_json::Value::Object(overrides)));
        let config: ServerConfig = fig.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(ConfigError::NodeIdZero);
        }
        if self.voters.is_some() && self.join.is_some() {
            return Err(ConfigError::VotersAndJoin);
        }
        let voters = self.voter_map()?;
        if self.join.is_none() && !voters.contains_key(&self.node_id) {
            return Err(ConfigError::NotAVoter(self.node_id));
        }
        if self.producer_id_expiration_ms < 1 {
            return Err(ConfigError::ProducerIdExpiration(
                self.producer_id_expiration_ms,
            ));
        }
        if !(100..=600_000).contains(&self.mirror_sync_interval_ms) {
            return Err(ConfigError::MirrorSyncInterval(
                self.mirror_sync_interval_ms,
            ));
        }
        if self.group_consumer_heartbeat_interval_ms < 1
            || self.group_consumer_heartbeat_interval_ms >= self.group_consumer_session_timeout_ms
        {
            return Err(ConfigError::ConsumerHeartbeatInterval(
                self.group_consumer_heartbeat_interval_ms,
                self.group_consumer_session_timeout_ms,
            ));
        }
        if !(1..=10_000).contains(&self.num_partitions) {
            return Err(ConfigError::NumPartitions(self.num_partitions));
        }
        if !matches!(
            self.kafka_security_protocol.as_str(),
            "PLAINTEXT" | "SASL_PLAINTEXT" | "SSL" | "SASL_SSL"
        ) {
            return Err(ConfigError::SecurityProtocol(
                self.kafka_security_protocol.clone(),
            ));
        }
        if let Some(m) = self.sasl_mechanisms.iter().find(|m| {
            !matches!(
                m.as_str(),
                "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" | "OAUTHBEARER"
            )
        }) {
            return Err(ConfigError::SaslMechanism(m.clone()));
        }
        if self.sasl_mechanisms.iter().any(|m| m == "OAUTHBEARER")
            && (self.oauth_jwks_file.is_none()
                || self.oauth_issuer.is_none()
                || self.oauth_audience.is_none())
        {
            return Err(ConfigError::OAuthIncomplete);
        }
        if let Some(p) = self
            .super_users
            .iter()
            .find(|p| crate::context::Principal::parse(p).is_none())
        {
            return Err(ConfigError::SuperUser(p.clone()));
        }
        if self.audit_topic_partitions == 0 || self.audit_topic_replication_factor == 0 {
            return Err(ConfigError::AuditTopic);
        }
        self.validate_tls()
    }

    /// `audit_log_file`, a relative path taken as inside `data_dir`.
    pub fn audit_log_path(&self) -> Option<PathBuf> {
        self.audit_log_file.as_ref().map(|p| {
            if p.is_relative() {
                self.data_dir.join(p)
            } else {
                p.clone()
            }
        })
    }

    /// Whether audit events go to the audit topic.
    pub fn audit_to_topic(&self) -> bool {
        self.audit_topic.unwrap_or(self.acl_enabled)
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        let mode = |key: &'static str, value: &str, allowed: &[&str], expected| {
            if allowed.contains(&value) {
                Ok(())
            } else {
                Err(ConfigError::TlsMode {
                    key,
                    value: value.to_string(),
                    expected,
                })
            }
        };
        mode(
            "kafka_ssl_client_auth",
            &self.kafka_ssl_client_auth,
            &["none", "requested", "required"],
            "none, requested or required",
        )?;
        mode(
            "grpc_tls",
            &self.grpc_tls,
            &["off", "tls", "mtls"],
            "off, tls or mtls",
        )?;
        mode(
            "admin_tls",
            &self.admin_tls,
            &["off", "tls", "mtls"],
            "off, tls or mtls",
        )?;
        mode("rpc_tls", &self.rpc_tls, &["off", "mtls"], "off or mtls")?;
        cairn_tls::PrincipalMapper::parse(&self.ssl_principal_mapping_rules)?;
        for (key, auth) in [
            ("kafka_security_protocol", self.kafka_tls()),
            ("grpc_tls", self.grpc_client_auth()),
            ("admin_tls", self.admin_client_auth()),
            ("rpc_tls", self.rpc_mtls().then_some(ClientAuth::Required)),
        ] {
            let Some(auth) = auth else { continue };
            if self.tls_cert_file.is_none() || self.tls_key_file.is_none() {
                return Err(ConfigError::TlsNoCertificate(key));
            }
            if auth != ClientAuth::None && self.tls_ca_file.is_none() {
                return Err(ConfigError::TlsNoCa(key));
            }
        }
        Ok(())
    }

    /// Whether Kafka clients must authenticate (SASL) first.
    pub fn kafka_sasl(&self) -> bool {
        matches!(
            self.kafka_security_protocol.as_str(),
            "SASL_PLAINTEXT" | "SASL_SSL"
        )
    }

    /// The Kafka listener's TLS, if on: whether it asks for certificates.
    pub fn kafka_tls(&self) -> Option<ClientAuth> {
        matches!(self.kafka_security_protocol.as_str(), "SSL" | "SASL_SSL").then(|| {
            match self.kafka_ssl_client_auth.as_str() {
                "required" => ClientAuth::Required,
                "requested" => ClientAuth::Requested,
                _ => ClientAuth::None,
            }
        })
    }

    fn listener_auth(mode: &str) -> Option<ClientAuth> {
        match mode {
            "tls" => Some(ClientAuth::None),
            "mtls" => Some(ClientAuth::Required),
            _ => None,
        }
    }

    /// The gRPC API's TLS, if on.
    pub fn grpc_client_auth(&self) -> Option<ClientAuth> {
        Self::listener_auth(&self.grpc_tls)
    }

    /// The admin HTTP's TLS, if on.
    pub fn admin_client_auth(&self) -> Option<ClientAuth> {
        Self::listener_auth(&self.admin_tls)
    }

    /// Whether the internal RPC runs over mutual TLS.
    pub fn rpc_mtls(&self) -> bool {
        self.rpc_tls == "mtls"
    }

    /// The node's TLS files, if any listener needs them.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        let any = self.kafka_tls().is_some()
            || self.grpc_client_auth().is_some()
            || self.admin_client_auth().is_some()
            || self.rpc_mtls();
        if !any {
            return None;
        }
        Some(TlsFiles {
            cert: self.tls_cert_file.clone()?,
            key: self.tls_key_file.clone()?,
            ca: self.tls_ca_file.clone(),
        })
    }

    pub fn advertised_rpc(&self) -> String {
        self.advertised_rpc_addr
            .clone()
            .unwrap_or_else(|| self.rpc_addr.clone())
    }

    pub fn advertised_grpc(&self) -> String {
        self.advertised_grpc_addr
            .clone()
            .unwrap_or_else(|| self.grpc_addr.clone())
    }

    pub fn advertised_kafka(&self) -> String {
        self.advertised_kafka_addr
            .clone()
            .unwrap_or_else(|| self.kafka_addr.clone())
    }

    /// The metadata group's voters. Without `voters` and `join`: this node alone.
    pub fn voter_map(&self) -> Result<BTreeMap<NodeId, String>, ConfigError> {
        let Some(spec) = &self.voters else {
            if self.join.is_some() {
                return Ok(BTreeMap::new());
            }
            return Ok(BTreeMap::from([(self.node_id, self.advertised_rpc())]));
        };
        let err = |reason: String| ConfigError::Voters {
            value: spec.clone(),
            reason,
        };
        let mut out = BTreeMap::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, addr) = part
                .split_once('=')
                .ok_or_else(|| err(format!("{part:?} has no '='")))?;
            let id: NodeId = id
                .trim()
                .parse()
                .map_err(|_| err(format!("{id:?} is not a node id")))?;
            if id == 0 {
                return Err(err("node id 0 is not allowed".into()));
            }
            let addr = addr.trim();
            if !addr.contains(':') {
                return Err(err(format!("{addr:?} is not host:port")));
            }
            if out.insert(id, addr.to_string()).is_some() {
                return Err(err(format!("node {id} is listed twice")));
            }
        }
        if out.is_empty() {
            return Err(err("no voters".into()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(pairs: &[(&str, serde_json::Value)]) -> serde_json::Map<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn defaults_make_a_single_node_cluster() {
        let c = ServerConfig::load(None, flags(&[])).unwrap();
        assert_eq!(c.grpc_addr, "127.0.0.1:50051");
        assert_eq!(c.retention_ms, 604_800_000);
        assert_eq!(c.retention_bytes, -1);
        assert_eq!(c.retention_check_interval_ms, 5000);
        assert_eq!(c.producer_id_expiration_ms, 86_400_000);
        assert_eq!(
            c.voter_map().unwrap(),
            BTreeMap::from([(1, "127.0.0.1:50052".to_string())])
        );
    }

    #[test]
    fn file_then_flags_override() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cairn.toml");
        std::fs::write(
            &file,
            "node_id = 2\ngrpc_addr = \"127.0.0.1:6000\"\nvoters = \"1=a:1,2=b:2\"\nretention_bytes = 1073741824\n",
        )
        .unwrap();
        let c = ServerConfig::load(
            Some(&file),
            flags(&[("grpc_addr", "127.0.0.1:7000".into())]),
        )
        .unwrap();
        assert_eq!(c.node_id, 2);
        assert_eq!(c.grpc_addr, "127.0.0.1:7000");
        assert_eq!(c.retention_bytes, 1 << 30);
    }

    #[test]
    fn bad_voters_are_explained() {
        let e = ServerConfig::load(None, flags(&[("voters", "1=a:1,x=b".into())])).unwrap_err();
        assert!(e.to_string().contains("not a node id"), "{e}");
        let e = ServerConfig::load(None, flags(&[("voters", "2=a:1".into())])).unwrap_err();
        assert!(matches!(e, ConfigError::NotAVoter(1)), "{e}");
    }

    #[test]
    fn tls_settings_are_checked() {
        let e = ServerConfig::load(None, flags(&[("grpc_tls", "yes".into())])).unwrap_err();
        assert!(e.to_string().contains("off, tls or mtls"), "{e}");
        let e = ServerConfig::load(None, flags(&[("rpc_tls", "tls".into())])).unwrap_err();
        assert!(e.to_string().contains("off or mtls"), "{e}");
        let e = ServerConfig::load(
            None,
            flags(&[("kafka_security_protocol", "SASL_SSL".into())]),
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::TlsNoCertificate(_)), "{e}");
        let tls = [
            ("tls_cert_file", "/c.pem".into()),
            ("tls_key_file", "/k.pem".into()),
        ];
        let mut f = tls.to_vec();
        f.push(("admin_tls", "mtls".into()));
        let e = ServerConfig::load(None, flags(&f)).unwrap_err();
        assert!(matches!(e, ConfigError::TlsNoCa("admin_tls")), "{e}");
        let mut f = tls.to_vec();
        f.push(("ssl_principal_mapping_rules", "RULE:x".into()));
        let e = ServerConfig::load(None, flags(&f)).unwrap_err();
        assert!(e.to_string().contains("ssl_principal_mapping_rules"), "{e}");
        let mut f = tls.to_vec();
        f.push(("kafka_security_protocol", "SSL".into()));
        let c = ServerConfig::load(None, flags(&f)).unwrap();
        assert_eq!(c.kafka_tls(), Some(ClientAuth::None));
        assert!(!c.kafka_sasl());
        assert!(c.tls_files().is_some());
        assert!(ServerConfig::default().tls_files().is_none());
    }

    #[test]
    fn producer_id_expiration_must_be_positive() {
        let c = ServerConfig::load(
            None,
            flags(&[("producer_id_expiration_ms", 3_600_000.into())]),
        )
        .unwrap();
        assert_eq!(c.producer_id_expiration_ms, 3_600_000);
        let e = ServerConfig::load(None, flags(&[("producer_id_expiration_ms", 0.into())]))
            .unwrap_err();
        assert!(matches!(e, ConfigError::ProducerIdExpiration(0)), "{e}");
    }

    #[test]
    fn the_default_partition_count_is_bounded() {
        let c = ServerConfig::load(None, flags(&[("num_partitions", 6.into())])).unwrap();
        assert_eq!(c.num_partitions, 6);
        for bad in [0u32, 10_001] {
            let e = ServerConfig::load(None, flags(&[("num_partitions", bad.into())])).unwrap_err();
            assert!(
                matches!(e, ConfigError::NumPartitions(b) if b == bad),
                "{e}"
            );
        }
    }

    #[test]
    fn the_mirror_sync_interval_is_bounded() {
        let c =
            ServerConfig::load(None, flags(&[("mirror_sync_interval_ms", 500.into())])).unwrap();
        assert_eq!(c.mirror_sync_interval_ms, 500);
        for bad in [0u64, 99, 600_001] {
            let e = ServerConfig::load(None, flags(&[("mirror_sync_interval_ms", bad.into())]))
                .unwrap_err();
            assert!(
                matches!(e, ConfigError::MirrorSyncInterval(b) if b == bad),
                "{e}"
            );
        }
    }
}
