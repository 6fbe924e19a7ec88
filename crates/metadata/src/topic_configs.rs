//! Every topic config Kafka defines, as Cairn accepts, stores and describes
//! it (docs/ops/kafka.md's config table is checked against this table).
//!
//! A config is either honoured (the code reads it through
//! [`crate::TopicConfig`]) or inert: accepted, validated as Kafka validates
//! it, stored and described, with no effect here, for a reason given in the
//! table (most concern Kafka's segment files, page-cache flushing or tiered
//! storage, which Cairn's storage does not have).

/// Kafka's config types, with their DescribeConfigs codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// The values a config takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    /// An integer of the config's type, at least this.
    AtLeast(i64),
    /// An integer in this range (both ends included).
    Between(i64, i64),
    /// A number between 0 and 1.
    Fraction,
    Bool,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A comma-separated list, each item one of these strings.
    ListOf(&'static [&'static str]),
    /// A comma-separated list of `partition:broker` pairs, or `*`.
    ThrottledReplicas,
}

/// What setting a config does here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Honoured,
    /// Accepted and stored, no effect, for this reason.
    Inert(&'static str),
}

/// One topic config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfigDef {
    pub key: &'static str,
    pub kind: ConfigType,
    /// Kafka's default (a node setting may stand in for it: the synonym).
    pub default: &'static str,
    pub check: Check,
    /// The broker config that supplies the default, as Kafka names it.
    pub synonym: Option<&'static str>,
    pub effect: Effect,
    pub doc: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";
const SEGMENTS: &str = "Cairn keeps a partition's log in RocksDB, not in segment files";
const FLUSH: &str = "every write is fsynced before it is acknowledged (Raft), whatever this says";
const TIERED: &str = "Cairn has no tiered storage";
const COMPRESSION_LEVEL: &str =
    "a recompressed batch (compression.type) uses the codec's default level";
const THROTTLE: &str = "replication is not throttled";

const fn def(
    key: &'static str,
    kind: ConfigType,
    default: &'static str,
    check: Check,
    synonym: Option<&'static str>,
    effect: Effect,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        key,
        kind,
        default,
        check,
        synonym,
        effect,
        doc,
    }
}

/// Every topic config, by key.
pub const TOPIC_CONFIGS: &[ConfigDef] = {
    use Check::*;
    use ConfigType::*;
    use Effect::*;
    &[
        def(
            "cairn.sensitive",
            Boolean,
            "false",
            // Exactly as the auditor reads it: a `TRUE` it would not
            // recognise is refused, never silently unaudited.
            OneOf(&["true", "false"]),
            None,
            Honoured,
            "Cairn's own: the topic holds sensitive data, so every authorization decision on it is audited.",
        ),
        def(
            "cleanup.policy",
            List,
            "delete",
            ListOf(&["compact", "delete"]),
            Some("log.cleanup.policy"),
            Honoured,
            "delete: records older than retention.ms or beyond retention.bytes are deleted; compact: only the latest record of each key is kept.",
        ),
        def(
            "compression.gzip.level",
            Int,
            "-1",
            Between(-1, 9),
            None,
            Inert(COMPRESSION_LEVEL),
            "The gzip level used when compression.type is gzip.",
        ),
        def(
            "compression.lz4.level",
            Int,
            "9",
            Between(1, 17),
            None,
            Inert(COMPRESSION_LEVEL),
            "The lz4 level used when compression.type is lz4.",
        ),
        def(
            "compression.type",
            String,
            "producer",
            OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
            Some("compression.type"),
            Honoured,
            "The compression codec of the topic's batches; producer keeps the producer's.",
        ),
        def(
            "compression.zstd.level",
            Int,
            "3",
            Between(-131072, 22),
            None,
            Inert(COMPRESSION_LEVEL),
            "The zstd level used when compression.type is zstd.",
        ),
        def(
            "delete.retention.ms",
            Long,
            "86400000",
            AtLeast(0),
            Some("log.cleaner.delete.retention.ms"),
            Honoured,
            "How long a tombstone is kept on a compacted topic.",
        ),
        def(
            "file.delete.delay.ms",
            Long,
            "60000",
            AtLeast(0),
            Some("log.segment.delete.delay.ms"),
            Inert(SEGMENTS),
            "How long to wait before deleting a segment file.",
        ),
        def(
            "flush.messages",
            Long,
            LONG_MAX,
            AtLeast(1),
            Some("log.flush.interval.messages"),
            Inert(FLUSH),
            "Records written between forced fsyncs.",
        ),
        def(
            "flush.ms",
            Long,
            LONG_MAX,
            AtLeast(0),
            Some("log.flush.interval.ms"),
            Inert(FLUSH),
            "Time between forced fsyncs.",
        ),
        def(
            "follower.replication.throttled.replicas",
            List,
            "",
            ThrottledReplicas,
            None,
            Inert(THROTTLE),
            "Replicas whose follower-side replication is throttled.",
        ),
        def(
            "index.interval.bytes",
            Int,
            "4096",
            AtLeast(0),
            Some("log.index.interval.bytes"),
            Inert(SEGMENTS),
            "How often an offset index entry is added.",
        ),
        def(
            "leader.replication.throttled.replicas",
            List,
            "",
            ThrottledReplicas,
            None,
            Inert(THROTTLE),
            "Replicas whose leader-side replication is throttled.",
        ),
        def(
            "local.retention.bytes",
            Long,
            "-2",
            AtLeast(-2),
            Some("log.local.retention.bytes"),
            Inert(TIERED),
            "Bytes kept locally when tiered storage is on.",
        ),
        def(
            "local.retention.ms",
            Long,
            "-2",
            AtLeast(-2),
            Some("log.local.retention.ms"),
            Inert(TIERED),
            "Time kept locally when tiered storage is on.",
        ),
        def(
            "max.compaction.lag.ms",
            Long,
            LONG_MAX,
            AtLeast(1),
            Some("log.cleaner.max.compaction.lag.ms"),
            Inert("compaction runs every compaction_interval_ms on every compacted partition with records to clean"),
            "The longest a record may stay uncompacted.",
        ),
        def(
            "max.message.bytes",
            Int,
            "1048588",
            AtLeast(0),
            Some("message.max.bytes"),
            Honoured,
            "The largest record batch the topic accepts.",
        ),
        def(
            "message.downconversion.enable",
            Boolean,
            "true",
            Bool,
            Some("log.message.downconversion.enable"),
            Inert("removed in Kafka 4.0; Cairn never down-converts (it speaks magic v2 only)"),
            "Whether old consumers get down-converted batches.",
        ),
        def(
            "message.format.version",
            String,
            "3.0-IV1",
            OneOf(&[]),
            Some("log.message.format.version"),
            Inert("removed in Kafka 4.0; every batch is magic v2"),
            "The message format version (any value is accepted).",
        ),
        def(
            "message.timestamp.after.max.ms",
            Long,
            LONG_MAX,
            AtLeast(0),
            Some("log.message.timestamp.after.max.ms"),
            Honoured,
            "How far in the future a CreateTime timestamp may be.",
        ),
        def(
            "message.timestamp.before.max.ms",
            Long,
            LONG_MAX,
            AtLeast(0),
            Some("log.message.timestamp.before.max.ms"),
            Honoured,
            "How far in the past a CreateTime timestamp may be.",
        ),
        def(
            "message.timestamp.difference.max.ms",
            Long,
            LONG_MAX,
            AtLeast(0),
            Some("log.message.timestamp.difference.max.ms"),
            Inert("removed in Kafka 4.0 for the before/after pair"),
            "The largest difference between a record's timestamp and the broker's clock.",
        ),
        def(
            "message.timestamp.type",
            String,
            "CreateTime",
            OneOf(&["CreateTime", "LogAppendTime"]),
            Some("log.message.timestamp.type"),
            Honoured,
            "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's.",
        ),
        def(
            "min.cleanable.dirty.ratio",
            Double,
            "0.5",
            Fraction,
            Some("log.cleaner.min.cleanable.ratio"),
            Inert("compaction runs every compaction_interval_ms on every compacted partition with records to clean"),
            "How much of a log must be uncompacted before the cleaner runs.",
        ),
        def(
            "min.compaction.lag.ms",
            Long,
            "0",
            AtLeast(0),
            Some("log.cleaner.min.compaction.lag.ms"),
            Honoured,
            "The least time a record stays uncompacted.",
        ),
        def(
            "min.insync.replicas",
            Int,
            "1",
            AtLeast(1),
            Some("min.insync.replicas"),
            Honoured,
            "With acks=all, the fewest replicas that must have a write (a Raft majority always must).",
        ),
        def(
            "preallocate",
            Boolean,
            "false",
            Bool,
            Some("log.preallocate"),
            Inert(SEGMENTS),
            "Whether segment files are preallocated.",
        ),
        def(
            "producer.id.expiration.ms",
            Long,
            "86400000",
            AtLeast(1),
            Some("producer.id.expiration.ms"),
            Honoured,
            "How long after its last batch a partition forgets an idempotent producer (a broker config in Kafka, per topic here).",
        ),
        def(
            "remote.log.copy.disable",
            Boolean,
            "false",
            Bool,
            None,
            Inert(TIERED),
            "Stops copying to tiered storage.",
        ),
        def(
            "remote.log.delete.on.disable",
            Boolean,
            "false",
            Bool,
            None,
            Inert(TIERED),
            "Deletes tiered data when tiered storage is turned off.",
        ),
        def(
            "remote.storage.enable",
            Boolean,
            "false",
            Bool,
            None,
            Inert(TIERED),
            "Turns tiered storage on.",
        ),
        def(
            "retention.bytes",
            Long,
            "-1",
            AtLeast(-1),
            Some("log.retention.bytes"),
            Honoured,
            "The most bytes a partition keeps before its oldest records are deleted; -1: no limit.",
        ),
        def(
            "retention.ms",
            Long,
            "604800000",
            AtLeast(-1),
            Some("log.retention.ms"),
            Honoured,
            "How long records are kept; -1: forever.",
        ),
        def(
            "segment.bytes",
            Int,
            "1073741824",
            AtLeast(1048576),
            Some("log.segment.bytes"),
            Inert(SEGMENTS),
            "The size of a segment file.",
        ),
        def(
            "segment.index.bytes",
            Int,
            "10485760",
            AtLeast(4),
            Some("log.index.size.max.bytes"),
            Inert(SEGMENTS),
            "The size of a segment's offset index.",
        ),
        def(
            "segment.jitter.ms",
            Long,
            "0",
            AtLeast(0),
            Some("log.roll.jitter.ms"),
            Inert(SEGMENTS),
            "Random jitter subtracted from segment.ms.",
        ),
        def(
            "segment.ms",
            Long,
            "604800000",
            AtLeast(1),
            Some("log.roll.ms"),
            Inert("retention deletes record batches as they age, at any batch, not segment by segment"),
            "How long before a segment is rolled.",
        ),
        def(
            "unclean.leader.election.enable",
            Boolean,
            "false",
            Bool,
            Some("unclean.leader.election.enable"),
            Inert("a Raft leader is always elected from a majority that holds every committed write: never unclean"),
            "Whether an out-of-sync replica may become leader, losing data.",
        ),
    ]
};

/// The config of `key`, if Kafka (or Cairn) defines it.
pub fn topic_config_def(key: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.key == key)
}

impl ConfigDef {
    /// Checks `value` as Kafka checks this config.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        let int = |lo: i64, hi: i64| {
            let v: i64 = match self.kind {
                ConfigType::Int => value
                    .parse::<i32>()
                    .map(i64::from)
                    .map_err(|_| format!("must be a 32-bit integer, got {value:?}"))?,
                _ => value
                    .parse::<i64>()
                    .map_err(|_| format!("must be an integer, got {value:?}"))?,
            };
            match (v < lo, v > hi) {
                (true, _) => Err(format!("must be >= {lo}, got {v}")),
                (_, true) => Err(format!("must be <= {hi}, got {v}")),
                _ => Ok(()),
            }
        };
        match self.check {
            Check::AtLeast(lo) => int(lo, i64::MAX),
            Check::Between(lo, hi) => int(lo, hi),
            Check::Fraction => match value.trim().parse::<f64>() {
                Ok(v) if (0.0..=1.0).contains(&v) => Ok(()),
                _ => Err(format!("must be a number from 0 to 1, got {value:?}")),
            },
            Check::Bool => match value.trim().to_ascii_lowercase().as_str() {
                "true" | "false" => Ok(()),
                _ => Err(format!("must be true or false, got {value:?}")),
            },
            Check::OneOf([]) => Ok(()),
            Check::OneOf(allowed) => match allowed.contains(&value) {
                true => Ok(()),
                false => Err(format!(
                    "must be one of {}, got {value:?}",
                    allowed.join(", ")
                )),
            },
            Check::ListOf(allowed) => {
                let items: Vec<&str> = value.split(',').map(str::trim).collect();
                match items.iter().all(|i| allowed.contains(i)) {
                    true => Ok(()),
                    false => Err(format!(
                        "must be a comma-separated list of {}, got {value:?}",
                        allowed.join(", ")
                    )),
                }
            }
            Check::ThrottledReplicas => {
                let v = value.trim();
                let pair = |p: &str| {
                    let mut it = p.trim().split(':');
                    let ok = |s: Option<&str>| s.is_some_and(|s| s.trim().parse::<u32>().is_ok());
                    ok(it.next()) && ok(it.next()) && it.next().is_none()
                };
                match v.is_empty() || v == "*" || v.split(',').all(pair) {
                    true => Ok(()),
                    false => Err(format!(
                        "must be *, or a list of partition:broker pairs, got {value:?}"
                    )),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_unique_and_its_defaults_are_valid() {
        let keys: Vec<&str> = TOPIC_CONFIGS.iter().map(|d| d.key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted);
        for d in TOPIC_CONFIGS {
            assert_eq!(d.validate(d.default), Ok(()), "{}", d.key);
        }
    }

    #[test]
    fn values_are_checked_as_kafka_checks_them() {
        let check = |key: &str, value: &str| topic_config_def(key).unwrap().validate(value);
        assert!(check("compression.type", "zstd").is_ok());
        assert!(check("compression.type", "brotli").is_err());
        assert!(check("cleanup.policy", "compact,delete").is_ok());
        assert!(check("cleanup.policy", "compact, delete").is_ok());
        assert!(check("cleanup.policy", "shred").is_err());
        assert!(check("segment.bytes", "1048575").is_err());
        assert!(check("segment.bytes", "4294967296").is_err());
        assert!(check("min.cleanable.dirty.ratio", "0.9").is_ok());
        assert!(check("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(check("compression.zstd.level", "-5").is_ok());
        assert!(check("compression.lz4.level", "0").is_err());
        assert!(check("preallocate", "TRUE").is_ok());
        assert!(check("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(check("message.timestamp.type", "AppendTime").is_err());
        assert!(check("leader.replication.throttled.replicas", "0:1,1:2").is_ok());
        assert!(check("leader.replication.throttled.replicas", "*").is_ok());
        assert!(check("leader.replication.throttled.replicas", "0-1").is_err());
        assert!(topic_config_def("retention.msx").is_none());
        // Honoured configs are read as written: what a reader would not
        // parse is refused, not accepted and then ignored.
        assert!(check("cairn.sensitive", "true").is_ok());
        assert!(check("cairn.sensitive", "TRUE").is_err());
        assert!(check("cairn.sensitive", " true").is_err());
        assert!(check("retention.ms", " 3600000").is_err());
    }
}

/// docs/ops/kafka.md's topic config table, as this table makes it.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| config | type | default | broker synonym | here |\n|---|---|---|---|---|\n",
    );
    for d in TOPIC_CONFIGS {
        let here = match d.effect {
            Effect::Honoured => "honoured".to_string(),
            Effect::Inert(why) => format!("inert: {why}"),
        };
        out.push_str(&format!(
            "| `{}` | {:?} | `{}` | {} | {} |\n",
            d.key,
            d.kind,
            d.default,
            d.synonym.map(|s| format!("`{s}`")).unwrap_or_default(),
            here
        ));
    }
    out
}

#[cfg(test)]
mod doc_tests {
    /// The table in docs/ops/kafka.md is this table: on a mismatch the
    /// test prints what belongs between the markers.
    #[test]
    fn the_docs_config_table_is_the_codes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ops/kafka.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let (begin, end) = (
            "<!-- topic-configs: begin -->\n",
            "<!-- topic-configs: end -->",
        );
        let start = doc.find(begin).expect("begin marker") + begin.len();
        let stop = doc.find(end).expect("end marker");
        let want = super::markdown_table();
        assert!(
            doc[start..stop] == want,
            "docs/ops/kafka.md's topic config table differs; it should be:\n{want}"
        );
    }
}
