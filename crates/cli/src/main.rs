//! `cairn`: run a node, manage topics, produce, consume, inspect the
//! cluster and benchmark it.
//!
//! Errors are printed as one line on stderr (`error: ...`) with a non-zero
//! exit status.

mod acl_cmd;
mod audit_cmd;
mod bench;
mod cert_cmd;
mod cli;
mod cluster_cmd;
mod connect;
mod consume_cmd;
mod group_cmd;
mod logging;
mod mirror_cmd;
mod node_cmd;
mod offset_arg;
mod output;
mod produce_cmd;
mod record_view;
mod role_cmd;
mod server_cmd;
mod topic_cmd;
mod user_cmd;
mod views;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command};

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Server(args) => server_cmd::run(args).await,
        Command::Cert(args) => cert_cmd::run(args),
        command => {
            logging::init_client();
            match command {
                Command::Server(_) | Command::Cert(_) => unreachable!("handled above"),
                Command::Topic(args) => topic_cmd::run(args).await,
                Command::Produce(args) => produce_cmd::run(args).await,
                Command::Consume(args) => consume_cmd::run(args).await,
                Command::Group(args) => group_cmd::run(args).await,
                Command::Cluster(args) => cluster_cmd::run(args).await,
                Command::Node(args) => node_cmd::run(args).await,
                Command::Acl(args) => acl_cmd::run(args).await,
                Command::User(args) => user_cmd::run(args).await,
                Command::Role(args) => role_cmd::run(args).await,
                Command::Audit(args) => audit_cmd::run(args).await,
                Command::Mirror(args) => mirror_cmd::run(args).await,
                Command::Bench(args) => bench::run(args).await,
            }
        }
    }
}

/// Formats an error chain on one line.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_print_on_one_line() {
        let e = anyhow::anyhow!("inner\nproblem").context("cannot create topic t");
        assert_eq!(one_line(&e), "cannot create topic t: inner problem");
    }
}
