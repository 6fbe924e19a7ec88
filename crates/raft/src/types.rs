//! The Raft type configuration shared by every group of a node.
//!
//! One [`TypeConfig`] serves both kinds of group, so one transport and one
//! log store carry them all: the metadata group proposes [`Request::Meta`],
//! partition groups propose [`Request::Produce`].

use bytes::Bytes;
use cairn_metadata::MetaCommand;
use cairn_metadata::MetaResponse;
use serde::Deserialize;
use serde::Serialize;

pub use cairn_metadata::GroupId;
pub use cairn_metadata::NodeId;

/// Snapshot bytes, for both kinds of group.
pub type SnapshotData = std::io::Cursor<Vec<u8>>;

openraft::declare_raft_types!(
    /// Raft types of every Cairn group.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// A command proposed to a group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Meta(MetaCommand),
    Produce(ProduceCommand),
    /// Retention (partition groups): every replica drops the records below
    /// `log_start` (rounded down to the start of the batch holding it).
    /// Appended last: variants are serialized by position.
    Trim {
        log_start: u64,
    },
}

impl std::fmt::Display for Request {
    // Shown in openraft's logs: never the record bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Meta(cmd) => write!(f, "meta:{}", meta_command_name(cmd)),
            Request::Produce(p) => write!(
                f,
                "produce:{}records/{}bytes",
                p.record_count,
                p.records.len()
            ),
            Request::Trim { log_start } => write!(f, "trim:{log_start}"),
        }
    }
}

fn meta_command_name(cmd: &MetaCommand) -> &'static str {
    match cmd {
        MetaCommand::InitCluster { .. } => "init_cluster",
        MetaCommand::RegisterNode(_) => "register_node",
        MetaCommand::CreateTopic { .. } => "create_topic",
        MetaCommand::DeleteTopic { .. } => "delete_topic",
        MetaCommand::ReassignPartition { .. } => "reassign_partition",
        MetaCommand::PutAcl(_) => "put_acl",
        MetaCommand::DeleteAcl(_) => "delete_acl",
        MetaCommand::CommitOffsets { .. } => "commit_offsets",
        MetaCommand::AlterTopicConfig { .. } => "alter_topic_config",
        MetaCommand::PutGroup { .. } => "put_group",
        MetaCommand::DeleteGroup { .. } => "delete_group",
        MetaCommand::CommitBatch(_) => "commit_batch",
        MetaCommand::AllocateProducerIds { .. } => "allocate_producer_ids",
        MetaCommand::DeleteOffsets { .. } => "delete_offsets",
        MetaCommand::CreatePartitions { .. } => "create_partitions",
    }
}

/// Record batches appended to a partition. The Raft log entry holding this
/// command *is* the partition's data: batches are stored exactly as the
/// client sent them (their base offsets are set when read back).
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct ProduceCommand {
    /// One or more concatenated Kafka RecordBatch v2 batches, validated by
    /// the leader before proposing.
    pub records: Bytes,
    /// Records in all batches.
    pub record_count: u32,
    /// Largest record timestamp in the batches (ms since epoch).
    pub max_timestamp_ms: i64,
    /// The idempotent producer that wrote the batches, if any.
    pub producer: Option<ProducerBatch>,
}

/// Idempotent-producer fields of a produce: a retried batch carries the same
/// producer id and sequence numbers, so the partition can drop the copy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
}

impl std::fmt::Debug for ProduceCommand {
    // Never print record bytes: they are patient data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProduceCommand")
            .field("bytes", &self.records.len())
            .field("record_count", &self.record_count)
            .finish()
    }
}

/// What applying a [`Request`] answered.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Meta(MetaResponse),
    Produce {
        base_offset: u64,
        high_watermark: u64,
        /// The batch was a retry of one already written at `base_offset`.
        duplicate: bool,
    },
    /// The producer's batch does not follow its last one (a gap, a sequence
    /// that went backwards past what is remembered, or a new epoch not
    /// starting at 0).
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    /// The request was sent to a group of the wrong kind.
    WrongGroup,
    /// A [`Request::Trim`] was applied: the partition's log start after it.
    Trimmed {
        log_start: u64,
    },
    /// The batch's producer epoch is older than the producer's current one:
    /// another producer with the same id and a newer epoch fenced it.
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
}

pub type Raft<SM> = openraft::Raft<TypeConfig, SM>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;
