//! tracing-subscriber setup: logs go to stderr, filtered by `RUST_LOG`.

use anyhow::{bail, Result};
use tracing_subscriber::EnvFilter;

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

/// The server: `info` unless `RUST_LOG` says otherwise, as text or JSON lines.
pub fn init_server(log_format: &str) -> Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter("info"))
        .with_writer(std::io::stderr);
    let result = match log_format {
        "text" => builder.try_init(),
        "json" => builder.json().try_init(),
        other => bail!("log_format must be \"text\" or \"json\", not {other:?}"),
    };
    // Fails only if a subscriber is already set, which is harmless.
    let _ = result;
    Ok(())
}
