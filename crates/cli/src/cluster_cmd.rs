//! `cairn cluster status`.

use anyhow::{Context, Result};

use crate::cli::{ClusterArgs, ClusterCommand, Format};
use crate::connect::connect;
use crate::views::{cluster_status_json, cluster_status_text};

/// Runs a cluster command.
pub async fn run(args: ClusterArgs) -> Result<()> {
    let client = connect(&args.conn).await?;
    match args.command {
        ClusterCommand::Status { format } => {
            let status = client
                .cluster_status()
                .await
                .context("cannot get cluster status")?;
            match format {
                Format::Text => print!("{}", cluster_status_text(&status)),
                Format::Json => println!("{}", cluster_status_json(&status)),
            }
        }
    }
    Ok(())
}
