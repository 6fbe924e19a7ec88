//! The command line: [`Cli`] and its subcommands (clap derive).

use std::path::PathBuf;

use cairn_client::Acks;
use cairn_client::Compression;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value};

use crate::offset_arg::StartOffset;

/// Cairn: a Raft-replicated, Kafka-compatible event log.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Cairn node until SIGINT/SIGTERM.
    ///
    /// Settings layer as: defaults < --config file < CAIRN_* environment
    /// variables (e.g. CAIRN_NODE_ID) < flags.
    Server(ServerArgs),
    /// Create, list, describe and delete topics.
    Topic(TopicArgs),
    /// Produce stdin to a topic, one record per line.
    ///
    /// The line ending (\n or \r\n) is stripped. Exits non-zero, listing the
    /// failed line numbers, if any record was not acknowledged; prints "N
    /// records acknowledged" on stderr at the end.
    Produce(ProduceArgs),
    /// Print the records of a topic.
    ///
    /// Reads all partitions unless --partition is given, and runs until
    /// Ctrl-C unless --max-records or --exit-at-end is given.
    Consume(ConsumeArgs),
    /// Consumer groups: list, describe (members, lag), reset offsets, delete.
    Group(GroupArgs),
    /// Cluster-wide information.
    Cluster(ClusterArgs),
    /// Nodes: list them, decommission and remove one.
    Node(NodeArgs),
    /// ACLs (Kafka's): add, list and remove bindings. Enforced when the
    /// nodes run with acl_enabled (docs/ops/security.md).
    Acl(AclArgs),
    /// Roles: named sets of ACL bindings granted to principals.
    Role(RoleArgs),
    /// Users SASL authenticates (SCRAM-SHA-256/512, PLAIN): create, set a
    /// password, delete, list.
    User(UserArgs),
    /// Load generators that report throughput and latency.
    Bench(BenchArgs),
    /// A development CA and the node and client certificates it signs, for
    /// tests and quick starts (docs/ops/security.md).
    Cert(CertArgs),
    /// The audit trail (the topic __cairn_audit): who authenticated, what
    /// was refused, who touched a sensitive topic, every ACL, user, role
    /// and topic change. Reading it needs READ on the topic __cairn_audit.
    Audit(AuditArgs),
    /// Mirror links (cross-cluster DR, docs/dr.md): this cluster copies
    /// topics from a source cluster at the source's offsets; promote them
    /// to fail over.
    Mirror(MirrorArgs),
}

/// `cairn mirror`.
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// Connection flags (of the target cluster: the one that mirrors).
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Mirror command.
    #[command(subcommand)]
    pub command: MirrorCommand,
}

/// Mirror commands.
#[derive(Debug, Subcommand)]
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum MirrorCommand {
    /// Creates a link: topics of the source matching --topics (and not
    /// --exclude) become read-only mirror topics here, same partitions,
    /// offsets and configs.
    Create {
        /// The link's name.
        name: String,
        /// The source cluster's gRPC addresses (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        source: Vec<String>,
        /// Topic patterns to mirror (`*` matches any run of characters).
        #[arg(long, value_delimiter = ',', default_value = "*")]
        topics: Vec<String>,
        /// Topic patterns never mirrored.
        #[arg(long, value_delimiter = ',')]
        exclude: Vec<String>,
        /// Consumer groups whose committed offsets are copied (patterns).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Consumer groups never copied (patterns).
        #[arg(long, value_delimiter = ',')]
        exclude_groups: Vec<String>,
        /// Keep the source's security here too: its ACL bindings, roles and
        /// users (SCRAM credentials as stored, never a password). The link's
        /// principal needs DESCRIBE and CLUSTER_ACTION on the source's
        /// cluster.
        #[arg(long = "sync-security", alias = "sync-acls")]
        sync_acls: bool,
        /// CA (PEM file, on every node here) of the source's TLS certificates.
        #[arg(long)]
        source_ca: Option<String>,
        /// Client certificate and key (PEM files on every node) for mTLS to
        /// the source.
        #[arg(long, requires = "source_key")]
        source_cert: Option<String>,
        #[arg(long, requires = "source_cert")]
        source_key: Option<String>,
        /// A file (on every node here) holding the bearer token the link
        /// presents to the source.
        #[arg(long)]
        source_token_file: Option<String>,
        /// Connect to ADDR instead of the address a source node advertises
        /// (ADVERTISED=ADDR, both host:port; repeat or comma-separate): a
        /// source reached through a WAN gateway, proxy or NAT.
        #[arg(long, value_delimiter = ',', value_name = "ADVERTISED=ADDR")]
        source_address_map: Vec<String>,
    },
    /// Lists links and the topics mirroring them.
    List {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// One link: its config, its topics, its last sync failure.
    Describe {
        name: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Stops copying (mirror topics stay read-only).
    Pause { name: String },
    /// Copies again, from where each mirror topic's log ends.
    Resume { name: String },
    /// Deletes a link (refused while topics mirror it).
    Delete { name: String },
    /// Per mirrored partition: state, lag in records, bytes and ms.
    Status {
        /// Only this link.
        name: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Failover: makes the link's mirror topics writable and stops
    /// mirroring them.
    Promote {
        name: String,
        /// Only these topics (comma-separated); default: all of the link's.
        #[arg(long, value_delimiter = ',')]
        topics: Vec<String>,
    },
    /// Failback by re-seeding: this cluster's copies of the link's topics
    /// are DELETED and mirrored again from the source (records written
    /// here that the source does not have are discarded).
    Failback {
        name: String,
        /// Only these topics (comma-separated).
        #[arg(long, value_delimiter = ',')]
        topics: Vec<String>,
        /// Confirms that this cluster's copies are to be deleted.
        #[arg(long)]
        yes: bool,
    },
}

/// `cairn audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Audit command.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// Audit commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Prints audit events, oldest first, then exits (or, with --follow,
    /// keeps printing new ones until Ctrl-C).
    Tail {
        /// Only events of this principal (e.g. User:alice).
        #[arg(long)]
        principal: Option<String>,
        /// Only events about this topic.
        #[arg(long)]
        topic: Option<String>,
        /// Only events at or after this time: a duration ago (90s, 15m,
        /// 2h, 7d) or milliseconds since the epoch.
        #[arg(long, value_parser = parse_since)]
        since: Option<i64>,
        /// Print at most this many events (the last ones).
        #[arg(long)]
        limit: Option<usize>,
        /// Keep printing new events.
        #[arg(long)]
        follow: bool,
        /// Output format: one event a line as text, or JSON lines.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// `--since`: `90s`, `15m`, `2h`, `7d` ago, or epoch milliseconds.
pub fn parse_since(s: &str) -> Result<i64, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let unit = |c: char| match c {
        's' => Some(1_000),
        'm' => Some(60_000),
        'h' => Some(3_600_000),
        'd' => Some(86_400_000),
        _ => None,
    };
    match s.chars().last().and_then(unit) {
        Some(ms) => {
            let n: i64 = s[..s.len() - 1]
                .parse()
                .map_err(|_| format!("{s:?}: expected a number before the unit"))?;
            Ok(now - n.saturating_mul(ms))
        }
        None => s
            .parse()
            .map_err(|_| format!("{s:?}: expected 90s, 15m, 2h, 7d or epoch milliseconds")),
    }
}

/// How to reach the cluster (every client command).
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// gRPC addresses of one or more nodes, comma-separated (host:port).
    #[arg(
        long,
        global = true,
        env = "CAIRN_BOOTSTRAP",
        value_name = "HOST:PORT[,HOST:PORT]",
        default_value = "127.0.0.1:50051",
        value_delimiter = ','
    )]
    pub bootstrap: Vec<String>,
    /// How long a request keeps retrying leader changes and unreachable
    /// nodes before failing, in milliseconds.
    #[arg(long, global = true, value_name = "MS", default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// How long to keep trying the bootstrap addresses, in milliseconds.
    #[arg(long, global = true, value_name = "MS", default_value_t = 10_000)]
    pub connect_timeout_ms: u64,
    /// Connect over TLS, trusting this CA (PEM): for nodes with grpc_tls on.
    #[arg(long, global = true, env = "CAIRN_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// The client certificate (PEM) to show a node with grpc_tls = "mtls".
    #[arg(
        long,
        global = true,
        env = "CAIRN_TLS_CERT",
        value_name = "FILE",
        requires_all = ["tls_key", "tls_ca"]
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The key (PEM) of --tls-cert.
    #[arg(
        long,
        global = true,
        env = "CAIRN_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<std::path::PathBuf>,
    /// A bearer token (JWT) for nodes with oauth_jwks_file set; `@FILE`
    /// reads it from a file.
    #[arg(
        long,
        global = true,
        env = "CAIRN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

/// Output format of read commands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON document (JSON lines for streams).
    Json,
}

/// Log format of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The config value (`log_format`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// `cairn server`. Settings layer as: defaults < `--config` file <
/// `CAIRN_*` environment (e.g. `CAIRN_NODE_ID`) < flags.
#[derive(Debug, Clone, Default, Args)]
pub struct ServerArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This node's id (>= 1), unique in the cluster.
    #[arg(long, value_name = "N")]
    pub node_id: Option<u64>,
    /// Directory for this node's data.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Listen address of the client gRPC API.
    #[arg(long, value_name = "HOST:PORT")]
    pub grpc_addr: Option<String>,
    /// Listen address of the internal (node-to-node) RPC.
    #[arg(long, value_name = "HOST:PORT")]
    pub rpc_addr: Option<String>,
    /// Listen address of the HTTP admin endpoint (/metrics, /health).
    #[arg(long, value_name = "HOST:PORT")]
    pub admin_addr: Option<String>,
    /// Listen address of the Kafka API.
    #[arg(long, value_name = "HOST:PORT")]
    pub kafka_addr: Option<String>,
    /// gRPC address clients are told to use (default: --grpc-addr).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertised_grpc_addr: Option<String>,
    /// Internal RPC address peers are told to use (default: --rpc-addr).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertised_rpc_addr: Option<String>,
    /// Kafka address clients are told to use (default: --kafka-addr).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertised_kafka_addr: Option<String>,
    /// Rack (failure domain) of this node, for replica placement.
    #[arg(long, value_name = "RACK")]
    pub rack: Option<String>,
    /// Voters of the metadata group by internal RPC address, bootstrapping a
    /// new cluster: 1=host:port,2=host:port,3=host:port.
    #[arg(long, value_name = "ID=HOST:PORT,...")]
    pub voters: Option<String>,
    /// Join a running cluster through this node's internal RPC address.
    #[arg(long, value_name = "HOST:PORT")]
    pub join: Option<String>,
    /// Log format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// How often the log compactor runs over compacted topics, in ms (0: never).
    #[arg(long, value_name = "MS")]
    pub compaction_interval_ms: Option<u64>,
}

impl ServerArgs {
    /// The flags that were given, as configuration overrides keyed like the
    /// config file.
    pub fn overrides(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                map.insert(key.to_owned(), v);
            }
        };
        let string = |s: &Option<String>| s.clone().map(Value::String);
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| Value::String(p.to_string_lossy().into_owned()))
        };
        put("node_id", self.node_id.map(Value::from));
        put("data_dir", path(&self.data_dir));
        put("grpc_addr", string(&self.grpc_addr));
        put("rpc_addr", string(&self.rpc_addr));
        put("admin_addr", string(&self.admin_addr));
        put("kafka_addr", string(&self.kafka_addr));
        put("advertised_grpc_addr", string(&self.advertised_grpc_addr));
        put("advertised_rpc_addr", string(&self.advertised_rpc_addr));
        put("advertised_kafka_addr", string(&self.advertised_kafka_addr));
        put("rack", string(&self.rack));
        put("voters", string(&self.voters));
        put("join", string(&self.join));
        put(
            "log_format",
            self.log_format
                .map(|f| Value::String(f.as_str().to_owned())),
        );
        put(
            "compaction_interval_ms",
            self.compaction_interval_ms.map(Value::from),
        );
        map
    }
}

/// `cairn topic`.
#[derive(Debug, Args)]
pub struct TopicArgs {
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Topic command.
    #[command(subcommand)]
    pub command: TopicCommand,
}

/// Topic commands.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic and print it.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, short = 'p', value_name = "N")]
        partitions: u32,
        /// Replicas per partition.
        #[arg(long, short = 'r', value_name = "R")]
        replication_factor: u32,
        /// Topic configuration, repeatable (e.g. --config retention.ms=86400000).
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List topics.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a topic's configuration and partitions.
    Describe {
        /// Topic name.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Change a topic's configuration: `--delete` keys go back to the
    /// cluster default, `--set` keys take the value given. An unknown key or
    /// a bad value is refused and nothing changes. Prints the configs.
    AlterConfig {
        /// Topic name.
        name: String,
        /// Set a config, repeatable (e.g. --set retention.ms=86400000).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Remove a config (back to the default), repeatable.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Grow a topic to `--count` partitions (partitions are never removed).
    /// The new partitions' replicas are chosen as for a new topic. Keys map
    /// to partitions by the count, so keyed records may land in another
    /// partition than before. Prints the topic.
    AddPartitions {
        /// Topic name.
        name: String,
        /// The topic's partition count afterwards.
        #[arg(long, value_name = "N")]
        count: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Move a partition to other nodes: new replicas catch up as learners,
    /// then the partition's membership switches; replicas left out delete
    /// their copy.
    Reassign {
        /// Topic name.
        name: String,
        /// Partition to move.
        #[arg(long, short = 'p')]
        partition: u32,
        /// The new replicas, preferred leader first (e.g. 2,3,4).
        #[arg(long, value_delimiter = ',', required = true)]
        replicas: Vec<u64>,
    },
}

/// `cairn produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Topic to produce to.
    pub topic: String,
    /// Use this key for every record.
    #[arg(long, value_name = "KEY", conflicts_with = "key_separator")]
    pub key: Option<String>,
    /// Split each line at the first SEP into key and value (a line without
    /// SEP fails). For a tab, pass $'\t'.
    #[arg(long, value_name = "SEP", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub key_separator: Option<String>,
    /// Send every record to this partition instead of partitioning by key
    /// (murmur2, like Kafka; keyless records go to one partition per batch).
    #[arg(long, short = 'p', value_name = "P")]
    pub partition: Option<u32>,
    /// Acknowledgement: all (replicated to a majority), 1 (leader) or 0 (none).
    #[arg(long, value_name = "all|1|0", default_value = "all", value_parser = parse_acks)]
    pub acks: Acks,
    /// Most records per request.
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Compress batches: none, gzip, snappy, lz4 or zstd (Kafka's codecs).
    #[arg(long, value_name = "CODEC", default_value = "none", value_parser = parse_compression)]
    pub compression: Compression,
}

/// `cairn consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Topic to read.
    pub topic: String,
    /// Read only this partition (default: all partitions).
    #[arg(long, short = 'p', value_name = "P")]
    pub partition: Option<u32>,
    /// Where to start in each partition: earliest, latest or an offset.
    #[arg(long, value_name = "earliest|latest|N", default_value = "earliest")]
    pub offset: StartOffset,
    /// Stop after this many records (default: run until Ctrl-C).
    #[arg(long, short = 'n', value_name = "N")]
    pub max_records: Option<u64>,
    /// Stop once every partition has been read up to its high watermark as of
    /// the start.
    #[arg(long)]
    pub exit_at_end: bool,
    /// Print KEY<TAB>VALUE in text output.
    #[arg(long)]
    pub print_key: bool,
    /// Output format. text: each value on a line, bytes as they are
    /// (KEY<TAB>VALUE with --print-key; null prints as `null`). json: one
    /// object per line, {"partition", "offset", "timestamp", "key", "value",
    /// "headers": {name: value}, "encoding"}, where "encoding" is "utf8" if
    /// key, value and header values are all valid UTF-8 (then they are
    /// strings) and otherwise "base64" (then all of them are standard padded
    /// base64); null keys and values are JSON null.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// How long the server may hold a fetch waiting for new records, in ms.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub wait_ms: u32,
    /// Most bytes per fetch.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub fetch_max_bytes: u32,
    /// Consume as a member of this consumer group: the group spreads the
    /// topic's partitions over its members, and the position is committed
    /// after each batch printed (at least once). --offset and --partition
    /// do not apply; --reset says where to start without a committed offset.
    #[arg(long, short = 'g', value_name = "GROUP", conflicts_with_all = ["partition", "exit_at_end"])]
    pub group: Option<String>,
    /// With --group: where to start in a partition without a committed
    /// offset (or whose offset is no longer retained).
    #[arg(long, value_name = "earliest|latest|none", default_value = "earliest")]
    pub reset: cairn_client::OffsetReset,
    /// With --group: the member is removed after this long without a heartbeat.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub session_timeout_ms: u64,
    /// With --group: partition assignors offered, in order of preference.
    #[arg(long = "assignor", value_name = "range|roundrobin|cooperative-sticky", default_values_t = ["range".to_string(), "cooperative-sticky".to_string()])]
    pub assignors: Vec<String>,
    /// With --group: the client id shown by `cairn group describe`.
    #[arg(long, value_name = "ID", default_value = "cairn-cli")]
    pub client_id: String,
}

/// `cairn group`.
#[derive(Debug, Args)]
pub struct GroupArgs {
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Group command.
    #[command(subcommand)]
    pub command: GroupCommand,
}

/// Consumer-group commands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List groups with their state and member count.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a group's members and, per partition, the committed offset, the
    /// log end and the lag.
    Describe {
        /// Group id.
        group: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Set a group's committed offsets for a topic. The group must have no
    /// active members.
    ResetOffsets {
        /// Group id.
        group: String,
        /// Topic whose offsets to set.
        #[arg(long)]
        topic: String,
        /// Only this partition (default: all).
        #[arg(long, short = 'p', value_name = "P")]
        partition: Option<u32>,
        /// earliest | latest | offset N | timestamp MS (first record at or
        /// after MS milliseconds since the epoch).
        #[arg(long, num_args = 1..=2, value_names = ["WHERE", "VALUE"], required = true)]
        to: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete an empty group and its committed offsets.
    Delete {
        /// Group id.
        group: String,
    },
}

/// `cairn cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Cluster command.
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// Cluster commands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Nodes, metadata leader, and partitions without a leader or with
    /// unhealthy replicas.
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// `cairn node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Node command.
    #[command(subcommand)]
    pub command: NodeCommand,
}

/// Node commands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// The cluster's nodes: alive, metadata voter, draining; removed ids.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Moves every partition off a node (to the live nodes with the fewest
    /// replicas), waits until every partition's Raft membership has left it
    /// (progress on stderr), then removes it: its id is never used again and
    /// the node can be stopped. Only nodes that joined with --join (not
    /// metadata voters) can be decommissioned. Running it again resumes.
    Decommission {
        /// The node's id.
        node: u64,
        /// Start the moves and return; run the command again to finish.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds (the moves go on).
        #[arg(long, default_value_t = 600)]
        timeout_s: u64,
        /// Output format of the result.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// `cairn role`.
#[derive(Debug, Args)]
pub struct RoleArgs {
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Role command.
    #[command(subcommand)]
    pub command: RoleCommand,
}

/// Role commands.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Creates an empty role.
    Create {
        /// The role's name.
        name: String,
    },
    /// Adds bindings to a role (one per --operation; --principal is not
    /// used: the role's members get them).
    AddAcl {
        /// The role's name.
        name: String,
        #[command(flatten)]
        selector: AclSelector,
    },
    /// Removes bindings from a role.
    RemoveAcl {
        /// The role's name.
        name: String,
        #[command(flatten)]
        selector: AclSelector,
    },
    /// Grants a role to a principal (User:alice).
    Grant {
        /// The role's name.
        name: String,
        /// The principal.
        #[arg(long)]
        principal: String,
    },
    /// Revokes a role from a principal.
    Revoke {
        /// The role's name.
        name: String,
        /// The principal.
        #[arg(long)]
        principal: String,
    },
    /// Deletes a role; its members lose its bindings.
    Delete {
        /// The role's name.
        name: String,
    },
    /// Lists roles, their bindings and members.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// `cairn user`.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// User command.
    #[command(subcommand)]
    pub command: UserCommand,
}

/// How a password is given.
#[derive(Debug, Clone, Args)]
pub struct PasswordArgs {
    /// The password (visible in the process list: prefer --password-stdin).
    #[arg(long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// SCRAM mechanisms to store a credential for; PLAIN logins use them too.
    #[arg(long = "mechanism", value_delimiter = ',', default_values_t = ["SCRAM-SHA-256".to_string(), "SCRAM-SHA-512".to_string()])]
    pub mechanisms: Vec<String>,
    /// PBKDF2 iterations (4096..=16384, as Kafka).
    #[arg(long, default_value_t = 4096)]
    pub iterations: u32,
}

/// User commands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Creates a user (or replaces its credentials). The password is salted
    /// here; only the derived keys reach the cluster.
    Create {
        /// The user name (its principal is User:NAME).
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Sets a user's password (as create).
    SetPassword {
        /// The user name.
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Deletes a user (every mechanism).
    Delete {
        /// The user name.
        name: String,
    },
    /// Lists users and their SCRAM mechanisms.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// `cairn acl`.
#[derive(Debug, Args)]
pub struct AclArgs {
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// ACL command.
    #[command(subcommand)]
    pub command: AclCommand,
}

/// The resource and principal an ACL command names.
#[derive(Debug, Clone, Args)]
pub struct AclSelector {
    /// The principal, as Kafka writes it (User:alice; User:* for any).
    #[arg(long)]
    pub principal: Option<String>,
    /// The client host the binding applies to (an IP; * for any).
    #[arg(long)]
    pub host: Option<String>,
    /// A topic (with --prefixed: every topic whose name starts with it).
    #[arg(long, conflicts_with_all = ["group", "cluster", "transactional_id"])]
    pub topic: Option<String>,
    /// A consumer group.
    #[arg(long, conflicts_with_all = ["cluster", "transactional_id"])]
    pub group: Option<String>,
    /// The cluster.
    #[arg(long, conflicts_with = "transactional_id")]
    pub cluster: bool,
    /// A transactional id.
    #[arg(long)]
    pub transactional_id: Option<String>,
    /// The name is a prefix (Kafka's PREFIXED pattern type).
    #[arg(long)]
    pub prefixed: bool,
    /// Operations (READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
    /// DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, ALL, ...);
    /// repeat or separate with commas.
    #[arg(long = "operation", value_delimiter = ',')]
    pub operations: Vec<String>,
    /// A DENY binding (ALLOW without it).
    #[arg(long)]
    pub deny: bool,
}

/// ACL commands.
#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Adds one binding per --operation.
    Add {
        #[command(flatten)]
        selector: AclSelector,
    },
    /// Lists the bindings matching the flags given (all without flags).
    List {
        #[command(flatten)]
        selector: AclSelector,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Removes the bindings matching the flags given; at least a principal
    /// or a resource must be named.
    Remove {
        #[command(flatten)]
        selector: AclSelector,
        /// Output format of what was removed.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// `cairn bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Benchmark to run.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce random records as fast as the cluster acknowledges them.
    Produce(BenchProduceArgs),
    /// Read a topic from the start as fast as possible.
    Consume(BenchConsumeArgs),
    /// Consumer-group offset commits per second.
    Commit(BenchCommitArgs),
}

/// `cairn bench commit`.
#[derive(Debug, Clone, Args)]
pub struct BenchCommitArgs {
    /// Groups to spread the committing tasks over (named PREFIX-0, PREFIX-1, ...).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub groups: u32,
    /// Group name prefix.
    #[arg(long, value_name = "PREFIX", default_value = "bench-commit")]
    pub group_prefix: String,
    /// Topic named in the commits (it need not exist).
    #[arg(long, default_value = "bench-commit-topic")]
    pub topic: String,
    /// Partitions per commit request.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions_per_commit: u32,
    /// Concurrent committers (each sends one commit at a time).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Client connections the committers are spread over.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,
    /// How long to run.
    #[arg(long, value_name = "S", default_value_t = 10)]
    pub seconds: u64,
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `cairn bench produce`.
#[derive(Debug, Clone, Args)]
pub struct BenchProduceArgs {
    /// Topic to write to.
    #[arg(long)]
    pub topic: String,
    /// Create the topic with this many partitions if it does not exist.
    #[arg(long, value_name = "N")]
    pub partitions: Option<u32>,
    /// Replication factor when creating the topic.
    #[arg(long, value_name = "R", default_value_t = 1, requires = "partitions")]
    pub replication_factor: u32,
    /// Stop after this many records.
    #[arg(long, value_name = "N", conflicts_with = "seconds")]
    pub records: Option<u64>,
    /// Stop after this many seconds (default 10 unless --records is given).
    #[arg(long, value_name = "S")]
    pub seconds: Option<u64>,
    /// Value size of each record, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub record_size: usize,
    /// Records per produce request.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_records: u32,
    /// Give each record a random key out of N (`key-0` .. `key-{N-1}`),
    /// e.g. for a compacted topic; without it records have no key.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: Option<u64>,
    /// Concurrent requests (each task sends one request at a time, cycling
    /// through the partitions from its own starting point).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Acknowledgement: all, 1 or 0.
    #[arg(long, value_name = "all|1|0", default_value = "all", value_parser = parse_acks)]
    pub acks: Acks,
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `cairn bench consume`.
#[derive(Debug, Clone, Args)]
pub struct BenchConsumeArgs {
    /// Topic to read.
    #[arg(long)]
    pub topic: String,
    /// Stop after this many records (default: at the high watermarks as of
    /// the start). Waits for more records if the topic has fewer.
    #[arg(long, value_name = "N")]
    pub records: Option<u64>,
    /// Most bytes per fetch.
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub fetch_max_bytes: u32,
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Parses `KEY=VALUE`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Parses an acks level: `all` (or -1), `1` (or leader), `0` (or none).
pub fn parse_compression(s: &str) -> Result<Compression, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        _ => Err(format!(
            "expected none, gzip, snappy, lz4 or zstd, got {s:?}"
        )),
    }
}

pub fn parse_acks(s: &str) -> Result<Acks, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "all" | "-1" => Ok(Acks::All),
        "1" | "leader" => Ok(Acks::Leader),
        "0" | "none" => Ok(Acks::None),
        _ => Err(format!("expected all, 1 or 0, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cairn").chain(args.iter().copied()))
    }

    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn server_overrides_only_given_flags() {
        let cli = parse(&[
            "server",
            "--node-id",
            "2",
            "--data-dir",
            "/tmp/d",
            "--voters",
            "1=a:1,2=b:2",
            "--log-format",
            "json",
        ])
        .unwrap();
        let Command::Server(args) = cli.command else {
            panic!("expected server");
        };
        let o = args.overrides();
        assert_eq!(o.len(), 4, "{o:?}");
        assert_eq!(o["node_id"], Value::from(2u64));
        assert_eq!(o["data_dir"], Value::from("/tmp/d"));
        assert_eq!(o["voters"], Value::from("1=a:1,2=b:2"));
        assert_eq!(o["log_format"], Value::from("json"));

        let Command::Server(args) = parse(&["server"]).unwrap().command else {
            panic!("expected server");
        };
        assert!(args.overrides().is_empty());
        assert!(args.config.is_none());
    }

    #[test]
    fn bootstrap_is_global_and_comma_separated() {
        let cli = parse(&[
            "topic",
            "list",
            "--bootstrap",
            "a:1,b:2",
            "--format",
            "json",
        ])
        .unwrap();
        let Command::Topic(t) = cli.command else {
            panic!("expected topic");
        };
        assert_eq!(t.conn.bootstrap, vec!["a:1", "b:2"]);
        assert!(matches!(
            t.command,
            TopicCommand::List {
                format: Format::Json
            }
        ));
    }

    #[test]
    fn topic_create_configs() {
        let cli = parse(&[
            "topic", "create", "t", "-p", "3", "-r", "2", "--config", "a=1", "-c", "b=x=y",
        ])
        .unwrap();
        let Command::Topic(TopicArgs {
            command:
                TopicCommand::Create {
                    name,
                    partitions,
                    replication_factor,
                    configs,
                    ..
                },
            ..
        }) = cli.command
        else {
            panic!("expected topic create");
        };
        assert_eq!((name.as_str(), partitions, replication_factor), ("t", 3, 2));
        assert_eq!(
            configs,
            vec![("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
        assert!(
            parse(&["topic", "create", "t", "-p", "3", "-r", "1", "--config", "nokey"]).is_err()
        );
        assert!(
            parse(&["topic", "create", "t", "-r", "1"]).is_err(),
            "partitions required"
        );
    }

    #[test]
    fn produce_flags() {
        let cli = parse(&["produce", "t", "--key-separator", ":", "--acks", "1"]).unwrap();
        let Command::Produce(p) = cli.command else {
            panic!("expected produce");
        };
        assert_eq!(p.key_separator.as_deref(), Some(":"));
        assert_eq!(p.acks, Acks::Leader);
        assert_eq!(p.batch_size, 500);
        assert!(parse(&["produce", "t", "--key", "k", "--key-separator", ":"]).is_err());
        assert!(parse(&["produce", "t", "--acks", "2"]).is_err());
        assert!(parse(&["produce", "t", "--batch-size", "0"]).is_err());
        assert!(parse(&["produce", "t", "--key-separator", ""]).is_err());
    }

    #[test]
    fn consume_flags() {
        let cli = parse(&[
            "consume",
            "t",
            "--offset",
            "42",
            "-n",
            "10",
            "--exit-at-end",
        ])
        .unwrap();
        let Command::Consume(c) = cli.command else {
            panic!("expected consume");
        };
        assert_eq!(c.offset, StartOffset::Offset(42));
        assert_eq!(c.max_records, Some(10));
        assert!(c.exit_at_end);
        assert_eq!(c.format, Format::Text);
        assert!(parse(&["consume", "t", "--offset", "soon"]).is_err());
    }

    #[test]
    fn bench_flags() {
        let cli = parse(&[
            "bench",
            "produce",
            "--topic",
            "t",
            "--partitions",
            "6",
            "--replication-factor",
            "3",
            "--records",
            "1000",
            "--acks",
            "0",
        ])
        .unwrap();
        let Command::Bench(BenchArgs {
            command: BenchCommand::Produce(b),
            ..
        }) = cli.command
        else {
            panic!("expected bench produce");
        };
        assert_eq!(b.partitions, Some(6));
        assert_eq!(b.replication_factor, 3);
        assert_eq!(b.records, Some(1000));
        assert_eq!(b.acks, Acks::None);
        assert_eq!(
            (b.record_size, b.batch_records, b.concurrency),
            (1024, 64, 64)
        );
        assert!(parse(&[
            "bench",
            "produce",
            "--topic",
            "t",
            "--records",
            "1",
            "--seconds",
            "1"
        ])
        .is_err());
        assert!(parse(&["bench", "consume", "--topic", "t", "--format", "json"]).is_ok());
    }

    #[test]
    fn acks_and_key_value_parsers() {
        assert_eq!(parse_acks("ALL"), Ok(Acks::All));
        assert_eq!(parse_acks("-1"), Ok(Acks::All));
        assert_eq!(parse_acks("leader"), Ok(Acks::Leader));
        assert_eq!(parse_acks("0"), Ok(Acks::None));
        assert!(parse_acks("2").is_err());
        assert_eq!(parse_key_value("a=b"), Ok(("a".into(), "b".into())));
        assert_eq!(parse_key_value("a="), Ok(("a".into(), String::new())));
        assert!(parse_key_value("=b").is_err());
    }
}

/// `cairn cert`.
#[derive(Debug, Args)]
pub struct CertArgs {
    /// Certificate command.
    #[command(subcommand)]
    pub command: CertCommand,
}

/// Certificate commands. Files are PEM; keys are PKCS#8 ECDSA P-256 and
/// written readable by their owner only.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Makes a CA: DIR/ca.crt and DIR/ca.key.
    Ca {
        /// The directory to write into (made if missing).
        #[arg(long, value_name = "DIR")]
        dir: std::path::PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "Cairn development CA")]
        name: String,
        /// Days it is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Makes a node certificate signed by DIR's CA: DIR/NAME.crt, DIR/NAME.key
    /// (server and client authentication, for listeners and internal RPC).
    Node {
        /// The CA's directory (ca.crt, ca.key); the certificate goes there too.
        #[arg(long, value_name = "DIR")]
        dir: std::path::PathBuf,
        /// The file name and common name, e.g. node1.
        #[arg(long)]
        name: String,
        /// Host names and IP addresses clients and peers dial it by
        /// (subject alternative names), comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
        host: Vec<String>,
        /// Days it is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Makes a client certificate signed by DIR's CA (mTLS): DIR/NAME.crt,
    /// DIR/NAME.key, subject CN=NAME[,OU=OU],O=Cairn.
    Client {
        /// The CA's directory (ca.crt, ca.key); the certificate goes there too.
        #[arg(long, value_name = "DIR")]
        dir: std::path::PathBuf,
        /// The file name and common name, e.g. alice.
        #[arg(long)]
        name: String,
        /// An organizational unit in the subject.
        #[arg(long)]
        ou: Option<String>,
        /// Days it is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}
