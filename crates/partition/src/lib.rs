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

pub use compaction::CompactionConfig;
pub use compaction::CompactionError;
pub use compaction::CompactionStep;
pub use index::IndexEntry;
pub use log::FetchResult;
pub use log::PartitionLog;
pub use log::ReadError;
pub use shared::PartitionShared;
pub use state_machine::PartitionStateMachine;
