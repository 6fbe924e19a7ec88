//! Log levels a running node can change: Kafka's BROKER_LOGGER config
//! resource (DescribeConfigs lists the loggers with their levels,
//! IncrementalAlterConfigs SETs a logger's level or DELETEs it back to the
//! root's). As in Kafka, a change holds for the node it was sent to until
//! it restarts; nothing is stored.
//!
//! Loggers are tracing targets (`cairn_broker`, `cairn_raft::network`,
//! `openraft`, ...), and `root` stands for every other. The binary that
//! sets up logging installs a [`LogLevels`] at start; without one (tests
//! that use the library alone) the resource answers that it cannot.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// What changes the levels of the process's log filter.
pub trait LogLevels: Send + Sync {
    /// The root level and each logger's own, as set now (lower case
    /// tracing levels: trace, debug, info, warn, error, off).
    fn levels(&self) -> (String, BTreeMap<String, String>);
    /// Sets (`Some`) or removes (`None`, back to the root's) loggers'
    /// levels; `root` sets the root level. All or nothing.
    fn apply(&self, changes: &[(String, Option<String>)]) -> Result<(), String>;
}

static INSTALLED: OnceLock<Box<dyn LogLevels>> = OnceLock::new();

/// Installs the process's log filter control (once; later calls are
/// ignored).
pub fn install(levels: Box<dyn LogLevels>) {
    let _ = INSTALLED.set(levels);
}

pub(crate) fn installed() -> Option<&'static dyn LogLevels> {
    INSTALLED.get().map(|b| b.as_ref())
}

/// The loggers listed even when nobody set their level: Cairn's crates and
/// the Raft library.
pub const LOGGERS: &[&str] = &[
    "cairn_acl",
    "cairn_broker",
    "cairn_cli",
    "cairn_group",
    "cairn_kafka",
    "cairn_metadata",
    "cairn_partition",
    "cairn_raft",
    "cairn_record",
    "cairn_server",
    "cairn_storage",
    "cairn_tls",
    "openraft",
];

/// The name of the root logger, as Kafka calls it.
pub const ROOT: &str = "root";

/// A Kafka (log4j) level as tracing's: TRACE, DEBUG, INFO, WARN, ERROR,
/// FATAL (as ERROR) and OFF, in any case.
pub fn tracing_level(kafka: &str) -> Option<&'static str> {
    Some(match kafka.trim().to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        "OFF" => "off",
        _ => return None,
    })
}

/// A logger name: a tracing target (letters, digits, `_`, `::`).
pub fn valid_logger(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name.split("::").all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_levels_and_logger_names() {
        assert_eq!(tracing_level("debug"), Some("debug"));
        assert_eq!(tracing_level("FATAL"), Some("error"));
        assert_eq!(tracing_level("verbose"), None);
        assert!(valid_logger("cairn_raft::network"));
        assert!(!valid_logger("cairn raft"));
        assert!(!valid_logger("a::"));
        assert!(!valid_logger("a=debug"));
    }
}
