//! `cairn-storage`: one RocksDB per node holding every Raft group's log, vote and
//! state-machine keys, with group-commit WAL fsyncs.
//!
//! A node runs thousands of Raft groups (one per topic partition, plus metadata group 0).
//! They all live in one RocksDB, in the default column family, separated by a key prefix —
//! not a column family per group, which would mean thousands of memtables and WAL-pinning
//! column families.
//!
//! # Key layout
//!
//! ```text
//!  ┌──────────────────────┬──────┬────────────────────┐
//!  │ group_id: u64 BE (8) │ tag  │ suffix             │
//!  └──────────────────────┴──────┴────────────────────┘
//!   tag  suffix            value (bincode 2 / serde, standard config)
//!   'C'  -                 committed log id
//!   'L'  index: u64 BE     log entry (the only copy of the payload)
//!   'P'  -                 last purged log id
//!   'S'  opaque bytes      state-machine keyspace of the group (opaque here)
//!   'V'  -                 vote
//!
//!  group u64::MAX = NODE_GROUP holds node-level keys, e.g. 'S' "format_version"
//!  (u32 BE, checked on open) or 'S' "cluster_id".
//! ```
//!
//! Big-endian group ids and indexes make RocksDB's byte order the numeric order, so a
//! group's log is one contiguous key range: reads use iterator bounds, truncate and purge
//! are single range tombstones, and `delete_group` is one range tombstone over
//! `[group] .. [group][0xFF]`.
//!
//! # Durability
//!
//! Writes are unsynced RocksDB writes (WAL on, no fsync) — visible at once, durable after
//! the next WAL fsync. Fsyncs are done by one syncer thread per store which takes every
//! waiter queued (append callbacks and [`NodeStore::sync`] callers, of all groups) and
//! completes them all after one `flush_wal(true)`. See [`LogStore`] for the per-operation
//! contract and the syncer module for the group commit.
//!
//! # Values
//!
//! Every value is encoded once (the entry payload exists nowhere else) and is capped at
//! [`MAX_VALUE_BYTES`] (64 MiB) on write; reads decode with the same limit, so a corrupt
//! length prefix is an error instead of a giant allocation. Undecodable bytes, trailing
//! bytes, or an entry whose index differs from its key are reported as errors
//! ([`StorageError::is_corruption`], `io::ErrorKind::InvalidData` through openraft), never
//! as panics.
//!
//! # Metrics
//!
//! `cairn_storage_syncs_total` (counter), `cairn_storage_sync_seconds` (histogram, fsync
//! duration), `cairn_storage_sync_batch_size` (histogram, waiters per fsync).

mod codec;
mod error;
mod keys;
mod log_store;
mod node_store;
mod options;
mod state_batch;
mod store_stats;
mod syncer;

pub use codec::MAX_VALUE_BYTES;
pub use error::Cause;
pub use error::StorageError;
pub use error::Subject;
pub use error::Verb;
pub use log_store::LogStore;
pub use node_store::NodeStore;
pub use node_store::StateEntry;
pub use node_store::FORMAT_VERSION;
pub use options::FsyncHook;
pub use options::StoreOptions;
pub use options::SyncDelay;
pub use state_batch::StateBatch;
pub use store_stats::StoreStats;

/// Identifier of a Raft group on this node.
pub type GroupId = u64;

/// Pseudo-group of node-level keys (never a Raft group).
pub const NODE_GROUP: GroupId = u64::MAX;
