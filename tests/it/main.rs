//! Cluster tests: real `cairn` processes on loopback, real RocksDB, real TCP.
//!
//! Each test starts its own cluster on free ports in a temp dir; node logs
//! are printed when a test fails.

mod audit;
mod bad_input;
mod cluster;
mod compaction;
mod disk_full;
mod groups;
mod identity;
mod join;
mod kafka;
mod kafka_groups;
mod kafka_limits;
mod kafka_security;
mod kafka_txn;
mod list_offsets;
mod mirror;
mod oauth;
mod power_loss;
mod producer;
mod reassign;
mod replication;
mod retention;
mod stale_leader;
mod tls;
mod topic_config;
mod vote_hold;
mod workload;
