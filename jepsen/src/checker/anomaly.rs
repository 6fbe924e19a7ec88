//! What the checker reports: an anomaly class, the ops that show it, and a short description.

use serde::{Deserialize, Serialize};

/// The anomaly classes: the queue workload's, named as Jepsen's Kafka (queue) workload names
/// them, then the compaction and group workloads'.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// An acknowledged send never read although a later offset of its partition was.
    LostWrite,
    /// An acknowledged send never read, and nothing at or past its offset was read either.
    Unseen,
    /// One (key, value) at two or more offsets.
    Duplicate,
    /// One (partition, offset) holding two or more values.
    InconsistentOffsets,
    /// A consumer read an offset at or below the one it read before on that partition.
    NonmonotonicPoll,
    /// Offsets of one partition not strictly increasing within a single poll.
    IntNonmonotonicPoll,
    /// A consumer jumped over offsets known to hold records.
    PollSkip,
    /// A producer's later send on a key got an offset at or below an earlier one's.
    NonmonotonicSend,
    /// A value was read whose send definitely failed.
    AbortedRead,
    /// A value was read that no one ever sent.
    PhantomRead,
    /// The history itself breaks its format rules (e.g. a completion without an invoke).
    MalformedHistory,
    /// Compaction workload: a key whose last acknowledged write was a tombstone came back with
    /// a value on some replica.
    Resurrected,
    /// Compaction workload: a key's final value on some replica is neither its last
    /// acknowledged write nor a write of unknown outcome.
    WrongFinalValue,
    /// Compaction workload: replicas of a partition disagree (on a key's final value, or on
    /// the record at an offset), or hold a record at another offset than acknowledged.
    ReplicaDivergence,
    /// Group workload: a member resumed a partition below an offset the group had committed
    /// and acknowledged before the member looked.
    OffsetRegression,
}

impl AnomalyKind {
    /// Every class, of every workload.
    pub const ALL: [AnomalyKind; 15] = [
        AnomalyKind::LostWrite,
        AnomalyKind::Unseen,
        AnomalyKind::Duplicate,
        AnomalyKind::InconsistentOffsets,
        AnomalyKind::NonmonotonicPoll,
        AnomalyKind::IntNonmonotonicPoll,
        AnomalyKind::PollSkip,
        AnomalyKind::NonmonotonicSend,
        AnomalyKind::AbortedRead,
        AnomalyKind::PhantomRead,
        AnomalyKind::MalformedHistory,
        AnomalyKind::Resurrected,
        AnomalyKind::WrongFinalValue,
        AnomalyKind::ReplicaDivergence,
        AnomalyKind::OffsetRegression,
    ];

    /// The classes the queue workload's checker looks for.
    pub const QUEUE: [AnomalyKind; 11] = [
        AnomalyKind::LostWrite,
        AnomalyKind::Unseen,
        AnomalyKind::Duplicate,
        AnomalyKind::InconsistentOffsets,
        AnomalyKind::NonmonotonicPoll,
        AnomalyKind::IntNonmonotonicPoll,
        AnomalyKind::PollSkip,
        AnomalyKind::NonmonotonicSend,
        AnomalyKind::AbortedRead,
        AnomalyKind::PhantomRead,
        AnomalyKind::MalformedHistory,
    ];

    /// The classes the compaction workload's checker looks for.
    pub const COMPACTION: [AnomalyKind; 4] = [
        AnomalyKind::Resurrected,
        AnomalyKind::WrongFinalValue,
        AnomalyKind::ReplicaDivergence,
        AnomalyKind::MalformedHistory,
    ];

    /// The classes the group workload's checker looks for.
    pub const GROUP: [AnomalyKind; 2] =
        [AnomalyKind::OffsetRegression, AnomalyKind::MalformedHistory];

    /// The kebab-case name used in reports, e.g. `lost-write`.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::LostWrite => "lost-write",
            AnomalyKind::Unseen => "unseen",
            AnomalyKind::Duplicate => "duplicate",
            AnomalyKind::InconsistentOffsets => "inconsistent-offsets",
            AnomalyKind::NonmonotonicPoll => "nonmonotonic-poll",
            AnomalyKind::IntNonmonotonicPoll => "int-nonmonotonic-poll",
            AnomalyKind::PollSkip => "poll-skip",
            AnomalyKind::NonmonotonicSend => "nonmonotonic-send",
            AnomalyKind::AbortedRead => "aborted-read",
            AnomalyKind::PhantomRead => "phantom-read",
            AnomalyKind::MalformedHistory => "malformed-history",
            AnomalyKind::Resurrected => "resurrected",
            AnomalyKind::WrongFinalValue => "wrong-final-value",
            AnomalyKind::ReplicaDivergence => "replica-divergence",
            AnomalyKind::OffsetRegression => "offset-regression",
        }
    }
}

impl std::fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One anomaly. `ops` are history indexes in ascending order: for a send its invoke and its
/// completion, for a poll the `ok` completion that carries the reads, for an assign its `ok`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub ops: Vec<u64>,
    pub description: String,
}

impl Anomaly {
    pub(crate) fn new(kind: AnomalyKind, mut ops: Vec<u64>, description: String) -> Anomaly {
        ops.sort_unstable();
        ops.dedup();
        Anomaly {
            kind,
            ops,
            description,
        }
    }
}
