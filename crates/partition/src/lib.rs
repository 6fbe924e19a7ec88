//! A topic partition as a Raft group.
//!
//! ```text
//!   Raft log (cairn-storage, key [group][L][index])   <- the records, written once
//!        │ apply (committed entries only)
//!        ▼
//!   PartitionStateMachine  ──> offset index [group][S]["o"][base offset] -> raft index
//!        │                     meta        [group][S]["meta"]  (applied, next offset)
//!        ▼
//!   PartitionLog (reads) : offset -> index -> log entry -> batches with offsets set
//! ```
//!
//! Retention deletes whole entries from the front: the leader proposes
//! `Request::Trim`, every replica moves its log start and drops the index
//! rows below it, then cuts a snapshot just before the first retained entry
//! so that openraft purges the log below it (see `docs/adr/0004-retention.md`
//! and, for what a snapshot holds, `docs/adr/0008-partition-snapshots-replayed-and-chunked.md`).
//!
//! Offsets are assigned when an entry is applied, so every replica assigns the
//! same ones; the stored batches keep the base offset the client sent and get
//! their real base offset and leader epoch patched in when read.

mod compaction;
#[cfg(test)]
mod compaction_tests;
mod index;
mod log;
mod producers;
mod shared;
mod state_machine;
#[cfg(test)]
mod test_hex;

pub use compaction::CompactionConfig;
pub use compaction::CompactionError;
pub use compaction::CompactionStep;
pub use index::IndexEntry;
pub use log::FetchResult;
pub use log::FirstBatch;
pub use log::PartitionLog;
pub use log::ReadError;
pub use log::RetentionLimits;
pub use shared::PartitionShared;
pub use state_machine::PartitionSnapshotBuilder;
pub use state_machine::PartitionStateMachine;
