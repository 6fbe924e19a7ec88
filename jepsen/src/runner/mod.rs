//! The harness proper: hosts, workload, nemesis, history; the checker is
//! the library.

pub mod failover;
mod recorder;
pub mod run;
mod workload;
