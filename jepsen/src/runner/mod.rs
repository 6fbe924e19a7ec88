//! The harness proper: hosts, workload, nemesis, history; the checker is
//! the library.

mod compaction;
pub mod dr;
pub mod failover;
mod group;
mod recorder;
pub mod run;
mod workload;
