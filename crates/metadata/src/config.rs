use std::collections::BTreeMap;

use crate::topic_configs::topic_config_def;
use crate::topic_configs::TOPIC_CONFIGS;

/// The topic configs Cairn honours (reads), with Kafka's names and
/// defaults; every other Kafka topic config is accepted and inert
/// ([`crate::topic_configs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicConfig {
    MaxMessageBytes,
    RetentionMs,
    RetentionBytes,
    CleanupPolicy,
    DeleteRetentionMs,
    MinInsyncReplicas,
    /// Kafka's broker config `producer.id.expiration.ms`, per topic here:
    /// how long after its last batch an idempotent producer's state is
    /// kept by each partition.
    ProducerIdExpirationMs,
    /// Cairn's own: the topic holds sensitive data (patient records), so
    /// every authorization decision on it, allowed or not, is audited.
    Sensitive,
    /// `CreateTime` keeps the producer's timestamps; `LogAppendTime` stamps
    /// each batch with the leader's append time.
    MessageTimestampType,
    /// How far in the past (before) or future (after) of the leader's clock
    /// a CreateTime batch's timestamps may be (INVALID_TIMESTAMP beyond).
    MessageTimestampBeforeMaxMs,
    MessageTimestampAfterMaxMs,
    /// The codec batches are stored with: `producer` keeps the producer's,
    /// `uncompressed`, `gzip`, `snappy`, `lz4`, `zstd` recompress to it.
    CompressionType,
    /// The least time a record stays before compaction may remove it.
    MinCompactionLagMs,
}

impl TopicConfig {
    pub const ALL: [TopicConfig; 13] = [
        TopicConfig::MaxMessageBytes,
        TopicConfig::RetentionMs,
        TopicConfig::RetentionBytes,
        TopicConfig::CleanupPolicy,
        TopicConfig::DeleteRetentionMs,
        TopicConfig::MinInsyncReplicas,
        TopicConfig::ProducerIdExpirationMs,
        TopicConfig::Sensitive,
        TopicConfig::MessageTimestampType,
        TopicConfig::MessageTimestampBeforeMaxMs,
        TopicConfig::MessageTimestampAfterMaxMs,
        TopicConfig::CompressionType,
        TopicConfig::MinCompactionLagMs,
    ];

    pub fn key(self) -> &'static str {
        match self {
            TopicConfig::MaxMessageBytes => "max.message.bytes",
            TopicConfig::RetentionMs => "retention.ms",
            TopicConfig::RetentionBytes => "retention.bytes",
            TopicConfig::CleanupPolicy => "cleanup.policy",
            TopicConfig::DeleteRetentionMs => "delete.retention.ms",
            TopicConfig::MinInsyncReplicas => "min.insync.replicas",
            TopicConfig::ProducerIdExpirationMs => "producer.id.expiration.ms",
            TopicConfig::Sensitive => "cairn.sensitive",
            TopicConfig::MessageTimestampType => "message.timestamp.type",
            TopicConfig::MessageTimestampBeforeMaxMs => "message.timestamp.before.max.ms",
            TopicConfig::MessageTimestampAfterMaxMs => "message.timestamp.after.max.ms",
            TopicConfig::CompressionType => "compression.type",
            TopicConfig::MinCompactionLagMs => "min.compaction.lag.ms",
        }
    }

    pub fn default_value(self) -> &'static str {
        match self {
            TopicConfig::MaxMessageBytes => "1048588",
            TopicConfig::RetentionMs => "604800000",
            TopicConfig::RetentionBytes => "-1",
            TopicConfig::CleanupPolicy => "delete",
            TopicConfig::DeleteRetentionMs => "86400000",
            TopicConfig::MinInsyncReplicas => "1",
            TopicConfig::ProducerIdExpirationMs => "86400000",
            TopicConfig::Sensitive => "false",
            TopicConfig::MessageTimestampType => "CreateTime",
            TopicConfig::MessageTimestampBeforeMaxMs | TopicConfig::MessageTimestampAfterMaxMs => {
                "9223372036854775807"
            }
            TopicConfig::CompressionType => "producer",
            TopicConfig::MinCompactionLagMs => "0",
        }
    }

    pub fn from_key(key: &str) -> Option<TopicConfig> {
        Self::ALL.into_iter().find(|c| c.key() == key)
    }

    /// The topic's value for this key, or the default.
    pub fn value_in(self, configs: &BTreeMap<String, String>) -> &str {
        configs
            .get(self.key())
            .map(String::as_str)
            .unwrap_or(self.default_value())
    }

    /// The topic's value parsed as an integer (validated on the way in).
    pub fn int_in(self, configs: &BTreeMap<String, String>) -> i64 {
        self.value_in(configs)
            .parse()
            .unwrap_or_else(|_| self.default_value().parse().unwrap_or(0))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown topic config {key:?}; known keys: {known}")]
    UnknownKey { key: String, known: String },
    #[error("invalid value for {key}: {reason}")]
    InvalidValue { key: String, reason: String },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: String },
}

/// Every key must be a Kafka (or Cairn) topic config
/// ([`crate::topic_configs::TOPIC_CONFIGS`]) and its value valid as Kafka
/// checks it; `min.compaction.lag.ms` may not exceed `max.compaction.lag.ms`.
pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (key, value) in configs {
        let def = topic_config_def(key).ok_or_else(|| unknown(key))?;
        def.validate(value)
            .map_err(|reason| ConfigError::InvalidValue {
                key: key.clone(),
                reason,
            })?;
    }
    let lag = |key: &str| configs.get(key).and_then(|v| v.trim().parse::<i64>().ok());
    let (min, max) = (
        lag("min.compaction.lag.ms").unwrap_or(0),
        lag("max.compaction.lag.ms").unwrap_or(i64::MAX),
    );
    if min > max {
        return Err(ConfigError::InvalidValue {
            key: "min.compaction.lag.ms".into(),
            reason: format!("{min} is more than max.compaction.lag.ms {max}"),
        });
    }
    Ok(())
}

fn unknown(key: &str) -> ConfigError {
    ConfigError::UnknownKey {
        key: key.to_string(),
        known: TOPIC_CONFIGS
            .iter()
            .map(|d| d.key)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Kafka's rules: 1-249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
/// A topic's configs after removing the keys in `delete` and setting those in
/// `set` (deletes first, so a key in both ends up set). Every key named must be
/// a known topic config and the result must validate; nothing changes
/// otherwise. Deleting a key that is not set is not an error.
pub fn alter_topic_configs(
    current: &BTreeMap<String, String>,
    set: &BTreeMap<String, String>,
    delete: &[String],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut next = current.clone();
    for key in delete {
        if topic_config_def(key).is_none() {
            return Err(unknown(key));
        }
        next.remove(key);
    }
    for (k, v) in set {
        next.insert(k.clone(), v.clone());
    }
    validate_topic_configs(&next)?;
    Ok(next)
}

pub fn validate_topic_name(name: &str) -> Result<(), ConfigError> {
    let err = |reason: &str| {
        Err(ConfigError::InvalidTopicName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return err("empty");
    }
    if name.len() > 249 {
        return err("longer than 249 characters");
    }
    if name == "." || name == ".." {
        return err("'.' and '..' are not allowed");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return err("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic_configs::Effect;

    #[test]
    fn unknown_and_invalid_keys_are_rejected() {
        let mut c = BTreeMap::new();
        c.insert("retention.ms".to_string(), "1000".to_string());
        assert!(validate_topic_configs(&c).is_ok());
        c.insert("retention.ms".to_string(), "soon".to_string());
        assert!(matches!(
            validate_topic_configs(&c),
            Err(ConfigError::InvalidValue { .. })
        ));
        let mut c = BTreeMap::new();
        c.insert("retention.msx".to_string(), "1".to_string());
        assert!(matches!(
            validate_topic_configs(&c),
            Err(ConfigError::UnknownKey { .. })
        ));
    }

    #[test]
    fn producer_id_expiration_is_a_positive_integer_of_one_day_by_default() {
        let c = TopicConfig::from_key("producer.id.expiration.ms");
        assert_eq!(c, Some(TopicConfig::ProducerIdExpirationMs));
        assert_eq!(
            TopicConfig::ProducerIdExpirationMs.int_in(&BTreeMap::new()),
            86_400_000
        );
        for (value, ok) in [
            ("1", true),
            ("3600000", true),
            ("0", false),
            ("-1", false),
            ("1d", false),
        ] {
            let c = BTreeMap::from([("producer.id.expiration.ms".to_string(), value.to_string())]);
            assert_eq!(validate_topic_configs(&c).is_ok(), ok, "{value}");
        }
    }

    #[test]
    fn the_honoured_configs_are_the_tables_honoured_ones() {
        let honoured: Vec<&str> = TOPIC_CONFIGS
            .iter()
            .filter(|d| d.effect == Effect::Honoured)
            .map(|d| d.key)
            .collect();
        let mut known: Vec<&str> = TopicConfig::ALL.map(TopicConfig::key).to_vec();
        known.sort();
        assert_eq!(honoured, known);
        for c in TopicConfig::ALL {
            assert_eq!(
                topic_config_def(c.key()).unwrap().default,
                c.default_value()
            );
        }
    }

    #[test]
    fn every_kafka_topic_config_is_accepted_and_checked() {
        let c = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(validate_topic_configs(&c(&[
            ("compression.type", "zstd"),
            ("segment.ms", "3600000"),
            ("message.timestamp.type", "LogAppendTime"),
            ("unclean.leader.election.enable", "false"),
        ]))
        .is_ok());
        assert!(matches!(
            validate_topic_configs(&c(&[("compression.type", "brotli")])),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(matches!(
            validate_topic_configs(&c(&[
                ("min.compaction.lag.ms", "10"),
                ("max.compaction.lag.ms", "5")
            ])),
            Err(ConfigError::InvalidValue { .. })
        ));
        let altered = alter_topic_configs(
            &c(&[("segment.ms", "1000")]),
            &c(&[("compression.type", "lz4")]),
            &["segment.ms".to_string()],
        )
        .unwrap();
        assert_eq!(altered, c(&[("compression.type", "lz4")]));
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("clinical.patient.admitted").is_ok());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
