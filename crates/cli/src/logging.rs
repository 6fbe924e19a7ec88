//! tracing-subscriber setup: logs go to stderr, filtered by `RUST_LOG`.
//! The server's filter can change while it runs (Kafka's BROKER_LOGGER
//! resource, `cairn_broker::log_levels`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::{bail, Result};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Registry;

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// Client commands: warnings and errors only unless `RUST_LOG` says more.
pub fn init_client() {
    // Fails only if a subscriber is already set, which is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter("warn"))
        .with_writer(std::io::stderr)
        .try_init();
}

/// The server: `info` unless `RUST_LOG` says otherwise, as text or JSON
/// lines; its levels can be changed at run time.
pub fn init_server(log_format: &str) -> Result<()> {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let levels = Levels::parse(&directives);
    let (layer, handle) = reload::Layer::new(EnvFilter::new(levels.directives()));
    let registry = tracing_subscriber::registry().with(layer);
    let result = match log_format {
        "text" => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        "json" => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        other => bail!("log_format must be \"text\" or \"json\", not {other:?}"),
    };
    // Fails only if a subscriber is already set, which is harmless.
    if result.is_ok() {
        cairn_broker::log_levels::install(Box::new(Reloadable {
            levels: Mutex::new(levels),
            handle,
        }));
    }
    Ok(())
}

/// The filter as a root level and per-target levels.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Levels {
    root: String,
    targets: BTreeMap<String, String>,
    /// Directives of `RUST_LOG` that are neither (span filters): kept as
    /// they are.
    other: Vec<String>,
}

impl Levels {
    fn parse(directives: &str) -> Levels {
        let mut l = Levels {
            root: "info".into(),
            targets: BTreeMap::new(),
            other: Vec::new(),
        };
        for d in directives
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            match d.split_once('=') {
                None if !d.contains('[') => l.root = d.to_ascii_lowercase(),
                Some((target, level))
                    if cairn_broker::log_levels::valid_logger(target) && !level.contains('[') =>
                {
                    l.targets.insert(target.into(), level.to_ascii_lowercase());
                }
                _ => l.other.push(d.into()),
            }
        }
        l
    }

    fn directives(&self) -> String {
        let mut out = vec![self.root.clone()];
        out.extend(self.targets.iter().map(|(t, l)| format!("{t}={l}")));
        out.extend(self.other.iter().cloned());
        out.join(",")
    }
}

struct Reloadable {
    levels: Mutex<Levels>,
    handle: reload::Handle<EnvFilter, Registry>,
}

impl cairn_broker::log_levels::LogLevels for Reloadable {
    fn levels(&self) -> (String, BTreeMap<String, String>) {
        let l = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        (l.root.clone(), l.targets.clone())
    }

    fn apply(&self, changes: &[(String, Option<String>)]) -> Result<(), String> {
        let mut l = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = l.clone();
        for (logger, level) in changes {
            match (logger.as_str(), level) {
                (cairn_broker::log_levels::ROOT, Some(level)) => next.root = level.clone(),
                (_, Some(level)) => {
                    next.targets.insert(logger.clone(), level.clone());
                }
                (_, None) => {
                    next.targets.remove(logger);
                }
            }
        }
        let filter = EnvFilter::try_new(next.directives()).map_err(|e| e.to_string())?;
        self.handle.reload(filter).map_err(|e| e.to_string())?;
        tracing::info!(directives = %next.directives(), "log levels changed");
        *l = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_directives_split_into_root_and_targets() {
        let l = Levels::parse("warn,cairn_raft=debug,openraft=INFO,[span]=trace");
        assert_eq!(l.root, "warn");
        assert_eq!(l.targets["cairn_raft"], "debug");
        assert_eq!(l.targets["openraft"], "info");
        assert_eq!(l.other, vec!["[span]=trace".to_string()]);
        assert_eq!(
            l.directives(),
            "warn,cairn_raft=debug,openraft=info,[span]=trace"
        );
        assert_eq!(Levels::parse("").directives(), "info");
    }
}
