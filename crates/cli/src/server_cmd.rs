//! `cairn server`: loads the layered configuration and runs a node.

use anyhow::Result;

use crate::cli::ServerArgs;
use crate::logging;

/// Runs a node until SIGINT/SIGTERM.
pub async fn run(args: ServerArgs) -> Result<()> {
    let config = cairn_server::ServerConfig::load(args.config.as_deref(), args.overrides())?;
    logging::init_server(&config.log_format)?;
    cairn_server::run(config).await?;
    Ok(())
}
