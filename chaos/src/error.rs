use thiserror::Error;

/// What went wrong while injecting or healing a fault.
#[derive(Debug, Error)]
pub enum ChaosError {
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("no such fault: {0} (known: {1})")]
    UnknownFault(String, String),
    #[error("cannot choose a target: {0}")]
    NoTarget(String),
    #[error("node {0} is not one of this cluster's hosts")]
    UnknownNode(u64),
}
