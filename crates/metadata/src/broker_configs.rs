//! The Kafka broker configs that can change while the cluster runs
//! (AlterConfigs / IncrementalAlterConfigs on a BROKER resource, Kafka's
//! "dynamic" broker configs), as Cairn stores and applies them.
//!
//! A dynamic value is set for one node (the resource name is its id) or as
//! the cluster-wide default (the empty name); a node reads its own value,
//! else the cluster-wide one, else its static setting (config file,
//! environment, flags). Values live in the metadata group
//! ([`crate::MetadataState::broker_configs`]), so every node sees the same
//! ones and a restarted node keeps them. Every other broker config Cairn
//! describes is read-only here, as in Kafka.

use crate::topic_configs::Check;
use crate::topic_configs::ConfigDef;
use crate::topic_configs::ConfigType;
use crate::topic_configs::Effect;

const THROTTLE: &str = "replication is not throttled";

const fn def(
    key: &'static str,
    kind: ConfigType,
    default: &'static str,
    check: Check,
    effect: Effect,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        key,
        kind,
        default,
        check,
        synonym: None,
        effect,
        doc,
    }
}

/// Every dynamic broker config Cairn accepts, sorted by name. `default` is
/// Kafka's; a node's static setting stands in for it where one exists.
pub const DYNAMIC_BROKER_CONFIGS: &[ConfigDef] = &[
    def(
        "background.threads",
        ConfigType::Int,
        "10",
        Check::AtLeast(1),
        Effect::Inert("Cairn's runtime sizes its own thread pools"),
        "The number of threads for background tasks.",
    ),
    def(
        "follower.replication.throttled.rate",
        ConfigType::Long,
        "9223372036854775807",
        Check::AtLeast(0),
        Effect::Inert(THROTTLE),
        "The follower replication throttle, in bytes per second.",
    ),
    def(
        "leader.replication.throttled.rate",
        ConfigType::Long,
        "9223372036854775807",
        Check::AtLeast(0),
        Effect::Inert(THROTTLE),
        "The leader replication throttle, in bytes per second.",
    ),
    def(
        "log.cleanup.policy",
        ConfigType::List,
        "delete",
        Check::ListOf(&["compact", "delete"]),
        Effect::Honoured,
        "The default of cleanup.policy for topics that do not set it; cluster-wide only (a value set for one node is stored but not applied: every replica must compact alike).",
    ),
    def(
        "log.retention.bytes",
        ConfigType::Long,
        "-1",
        Check::AtLeast(-1),
        Effect::Honoured,
        "The default of retention.bytes (per partition) for topics that do not set it; -1: no size limit.",
    ),
    def(
        "log.retention.ms",
        ConfigType::Long,
        "604800000",
        Check::AtLeast(-1),
        Effect::Honoured,
        "The default of retention.ms for topics that do not set it; -1: no time limit.",
    ),
    def(
        "message.max.bytes",
        ConfigType::Int,
        "1048588",
        Check::AtLeast(0),
        Effect::Honoured,
        "The default of max.message.bytes for topics that do not set it.",
    ),
    def(
        "producer.id.expiration.ms",
        ConfigType::Int,
        "86400000",
        Check::AtLeast(1),
        Effect::Honoured,
        "The default of producer.id.expiration.ms for topics that do not set it.",
    ),
    def(
        "sasl.kerberos.min.time.before.relogin",
        ConfigType::Long,
        "60000",
        Check::AtLeast(0),
        Effect::Inert("Cairn has no Kerberos (GSSAPI) login"),
        "Login thread sleep time between refresh attempts.",
    ),
];

/// The dynamic broker config of `key`, if there is one.
pub fn dynamic_broker_config(key: &str) -> Option<&'static ConfigDef> {
    DYNAMIC_BROKER_CONFIGS.iter().find(|d| d.key == key)
}

/// Checks one dynamic broker config as Kafka checks it; a config that
/// cannot change at runtime is refused with Kafka's words.
pub fn validate_broker_config(key: &str, value: &str) -> Result<(), String> {
    let def = dynamic_broker_config(key)
        .ok_or_else(|| format!("Cannot update these configs dynamically: [{key}]"))?;
    def.validate(value).map_err(|e| format!("{key} {e}"))
}

/// docs/ops/kafka.md's dynamic broker config table, as this table makes it.
pub fn markdown_table() -> String {
    let mut out = String::from("| config | type | Kafka's default | here |\n|---|---|---|---|\n");
    for d in DYNAMIC_BROKER_CONFIGS {
        let here = match d.effect {
            Effect::Honoured => d.doc.to_string(),
            Effect::Inert(why) => format!("inert: {why}"),
        };
        out.push_str(&format!(
            "| `{}` | {:?} | `{}` | {} |\n",
            d.key, d.kind, d.default, here
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_its_defaults_are_valid() {
        let keys: Vec<&str> = DYNAMIC_BROKER_CONFIGS.iter().map(|d| d.key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted);
        for d in DYNAMIC_BROKER_CONFIGS {
            assert_eq!(d.validate(d.default), Ok(()), "{}", d.key);
        }
    }

    #[test]
    fn only_dynamic_configs_change_and_their_values_are_checked() {
        assert!(validate_broker_config("log.retention.ms", "3600000").is_ok());
        assert!(validate_broker_config("log.retention.ms", "-2").is_err());
        assert!(validate_broker_config("message.max.bytes", "4294967296").is_err());
        let e = validate_broker_config("broker.id", "7").unwrap_err();
        assert!(e.contains("Cannot update these configs dynamically"), "{e}");
    }
}

#[cfg(test)]
mod doc_tests {
    /// The table in docs/ops/kafka.md is this table: on a mismatch the
    /// test prints what belongs between the markers.
    #[test]
    fn the_docs_broker_config_table_is_the_codes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ops/kafka.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let (begin, end) = (
            "<!-- broker-configs: begin -->\n",
            "<!-- broker-configs: end -->",
        );
        let start = doc.find(begin).expect("begin marker") + begin.len();
        let stop = doc.find(end).expect("end marker");
        let want = super::markdown_table();
        assert!(
            doc[start..stop] == want,
            "docs/ops/kafka.md's broker config table differs; it should be:\n{want}"
        );
    }
}
