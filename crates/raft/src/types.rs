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
    ///
    /// Leader ids are standard Raft's, one leader per term: a partition's
    /// term is its Kafka leader epoch, which must name one leader. openraft's
    /// default ((term, node) ids, a later candidate of a higher id may win
    /// the same term) let the simulator find two leaders of one partition
    /// in one term (docs/reliability.md, simulator finding 5; ADR 0016).
    /// Log ids carry the term only.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<Self::Term, Self::NodeId>,
);

/// A command proposed to a group.
///
/// Stored in the Raft log and sent to replicas as [`StoredRequest`]: a
/// produce with a [`ProduceStamp`] is a variant of its own there, so entries
/// written before stamps existed read as they are.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(from = "StoredRequest")]
pub enum Request {
    Meta(MetaCommand),
    Produce(ProduceCommand),
    /// Retention (partition groups): every replica drops the records below
    /// `log_start` (rounded down to the start of the batch holding it).
    Trim {
        log_start: u64,
    },
}

/// How a [`Request`] is encoded (bincode: variants by position, so never
/// reorder them; a new one goes last). Written through
/// [`StoredRequestRef`], its borrowing twin, so that encoding copies nothing.
#[derive(Deserialize)]
enum StoredRequest {
    Meta(MetaCommand),
    /// A produce without a stamp: every produce before producer expiry.
    Produce(StoredProduce),
    Trim {
        log_start: u64,
    },
    /// A produce stamped by its leader.
    StampedProduce(StoredProduce, ProduceStamp),
    /// Batches copied from a mirror link's source partition, at the source's
    /// offsets.
    MirroredProduce(StoredProduce, ProduceStamp, MirrorAt),
}

/// The fields of a [`ProduceCommand`] but its stamp, in their stored order.
#[derive(Deserialize)]
struct StoredProduce {
    records: Bytes,
    record_count: u32,
    max_timestamp_ms: i64,
    producer: Option<ProducerBatch>,
}

/// [`StoredRequest`], borrowed: the same variants in the same order.
#[derive(Serialize)]
#[serde(rename = "StoredRequest")]
enum StoredRequestRef<'a> {
    Meta(&'a MetaCommand),
    Produce(StoredProduceRef<'a>),
    Trim { log_start: u64 },
    StampedProduce(StoredProduceRef<'a>, &'a ProduceStamp),
    MirroredProduce(StoredProduceRef<'a>, &'a ProduceStamp, &'a MirrorAt),
}

/// [`StoredProduce`], borrowed.
#[derive(Serialize)]
#[serde(rename = "StoredProduce")]
struct StoredProduceRef<'a> {
    records: &'a Bytes,
    record_count: u32,
    max_timestamp_ms: i64,
    producer: Option<ProducerBatch>,
}

impl Serialize for Request {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let stored = match self {
            Request::Meta(m) => StoredRequestRef::Meta(m),
            Request::Produce(p) => {
                let fields = StoredProduceRef {
                    records: &p.records,
                    record_count: p.record_count,
                    max_timestamp_ms: p.max_timestamp_ms,
                    producer: p.producer,
                };
                match (&p.stamp, &p.mirror) {
                    (None, _) => StoredRequestRef::Produce(fields),
                    (Some(stamp), None) => StoredRequestRef::StampedProduce(fields, stamp),
                    (Some(stamp), Some(at)) => StoredRequestRef::MirroredProduce(fields, stamp, at),
                }
            }
            Request::Trim { log_start } => StoredRequestRef::Trim {
                log_start: *log_start,
            },
        };
        stored.serialize(serializer)
    }
}

impl From<StoredRequest> for Request {
    fn from(r: StoredRequest) -> Request {
        let produce = |p: StoredProduce, stamp: Option<ProduceStamp>, mirror| ProduceCommand {
            records: p.records,
            record_count: p.record_count,
            max_timestamp_ms: p.max_timestamp_ms,
            producer: p.producer,
            stamp,
            mirror,
        };
        match r {
            StoredRequest::Meta(m) => Request::Meta(m),
            StoredRequest::Produce(p) => Request::Produce(produce(p, None, None)),
            StoredRequest::Trim { log_start } => Request::Trim { log_start },
            StoredRequest::StampedProduce(p, stamp) => {
                Request::Produce(produce(p, Some(stamp), None))
            }
            StoredRequest::MirroredProduce(p, stamp, at) => {
                Request::Produce(produce(p, Some(stamp), Some(at)))
            }
        }
    }
}

impl std::fmt::Display for Request {
    // Shown in openraft's logs: never the record bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Meta(cmd) => write!(f, "meta:{}", meta_command_name(cmd)),
            Request::Produce(p) => match &p.mirror {
                None => write!(
                    f,
                    "produce:{}records/{}bytes",
                    p.record_count,
                    p.records.len()
                ),
                Some(at) => write!(
                    f,
                    "mirror:{}records/{}bytes@{}",
                    p.record_count,
                    p.records.len(),
                    at.base_offset
                ),
            },
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
        MetaCommand::DecommissionNode { .. } => "decommission_node",
        MetaCommand::RemoveNode { .. } => "remove_node",
        MetaCommand::PutScramCredential { .. } => "put_scram_credential",
        MetaCommand::DeleteScramCredential { .. } => "delete_scram_credential",
        MetaCommand::PutRoleAcls { .. } => "put_role_acls",
        MetaCommand::DeleteRoleAcls { .. } => "delete_role_acls",
        MetaCommand::DeleteRole { .. } => "delete_role",
        MetaCommand::GrantRole { .. } => "grant_role",
        MetaCommand::RevokeRole { .. } => "revoke_role",
        MetaCommand::PutMirrorLink(_) => "put_mirror_link",
        MetaCommand::DeleteMirrorLink { .. } => "delete_mirror_link",
        MetaCommand::CreateMirrorTopic { .. } => "create_mirror_topic",
        MetaCommand::SetMirrorTopics { .. } => "set_mirror_topics",
        MetaCommand::SyncMirrorSecurity { .. } => "sync_mirror_security",
        MetaCommand::PutGroupWithInstances { .. } => "put_group",
        MetaCommand::CommitBatchWithEpochs(_) => "commit_batch",
        MetaCommand::AlterBrokerConfigs { .. } => "alter_broker_configs",
        MetaCommand::PutConsumerGroup { .. } => "put_consumer_group",
    }
}

/// Record batches appended to a partition. The Raft log entry holding this
/// command *is* the partition's data: batches are stored exactly as the
/// client sent them (their base offsets are set when read back).
#[derive(Clone, PartialEq, Eq)]
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
    /// The leader's time and the topic's producer expiration; `None` in
    /// entries written before producer expiry.
    pub stamp: Option<ProduceStamp>,
    /// Mirrored batches (a mirror link's copy of its source partition):
    /// where they go. `None`: an ordinary produce, numbered from the
    /// partition's next offset.
    pub mirror: Option<MirrorAt>,
}

/// Where mirrored batches go: at the source's offsets, and only onto the log
/// their puller saw, so that two pulls of one range never both land and a
/// pull that lost its place never opens a gap.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct MirrorAt {
    /// The source's base offset of the first batch; the batches are
    /// offset-contiguous from it.
    pub base_offset: u64,
    /// The partition's next offset the puller saw: the entry is refused
    /// (appends nothing) unless the partition ends exactly there when it is
    /// applied. `base_offset > log_end` is a gap the source has (its
    /// retention deleted what was never copied): it stays a gap.
    pub log_end: u64,
}

/// What the leader adds to a produce so that every replica expires
/// idempotent-producer state alike: the partition state machine takes
/// "now", and a producer's last-seen time, from here, never from its own
/// clock.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProduceStamp {
    /// The leader's wall clock when it proposed the entry (ms since epoch).
    pub append_time_ms: i64,
    /// The topic's `producer.id.expiration.ms` then: a producer whose last
    /// appended batch is this much older than `append_time_ms` is
    /// forgotten.
    pub producer_id_expiration_ms: i64,
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
            .field("stamp", &self.stamp)
            .field("mirror", &self.mirror)
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
    /// Mirrored batches for a log that does not end where their puller saw
    /// it end (another pull won the race, or an earlier entry of the same
    /// pull was not appended): nothing was written.
    MirrorMismatch {
        next_offset: u64,
    },
}

pub type Raft<SM> = openraft::Raft<TypeConfig, SM>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_exact;
    use crate::encode;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn produce(stamp: Option<ProduceStamp>) -> Request {
        produce_at(stamp, None)
    }

    fn produce_at(stamp: Option<ProduceStamp>, mirror: Option<MirrorAt>) -> Request {
        Request::Produce(ProduceCommand {
            records: Bytes::from_static(b"abc"),
            record_count: 3,
            max_timestamp_ms: 1_700_000_000_000,
            producer: Some(ProducerBatch {
                producer_id: 42,
                epoch: 1,
                first_sequence: 10,
                last_sequence: 12,
            }),
            stamp,
            mirror,
        })
    }

    /// Requests as they are in the Raft logs on disk: the bytes of the first
    /// three were written by Cairn before produces carried a stamp (commit
    /// 58c05b8), and must read the same forever; a request without a stamp
    /// is still written so.
    #[test]
    fn stored_requests_keep_their_bytes() {
        let cases = [
            (produce(None), "010361626303fd00d0ca9f170300000154021418"),
            (Request::Trim { log_start: 300 }, "02fb2c01"),
            (
                Request::Meta(MetaCommand::InitCluster {
                    cluster_id: "c1".into(),
                }),
                "0000026331",
            ),
            // A mirror link (issue 14): every field, in order, always.
            (
                Request::Meta(MetaCommand::PutMirrorLink(cairn_metadata::MirrorLink {
                    name: "dr".into(),
                    source_bootstrap: vec!["a:1".into()],
                    topics_include: vec!["*".into()],
                    source_address_map: [("a:1".to_string(), "b:2".to_string())].into(),
                    ..Default::default()
                })),
                "00180264720103613a3101012a0000000000000000000103613a3103623a32",
            ),
            // A link's security sync (issue 14): one user, stored keys.
            (
                Request::Meta(MetaCommand::SyncMirrorSecurity {
                    link: "dr".into(),
                    security: cairn_metadata::SourceSecurity {
                        users: [(
                            "bob".to_string(),
                            [(
                                "SCRAM-SHA-256".to_string(),
                                cairn_metadata::ScramCredential {
                                    salt: vec![7],
                                    iterations: 4096,
                                    stored_key: vec![8],
                                    server_key: vec![9],
                                },
                            )]
                            .into(),
                        )]
                        .into(),
                        ..Default::default()
                    },
                }),
                "001c02647200000103626f62010d534352414d2d5348412d3235360107fb001001080109",
            ),
            // The stamped produce, variant 3: the same fields, then the stamp.
            (
                produce(Some(ProduceStamp {
                    append_time_ms: 1_700_000_000_123,
                    producer_id_expiration_ms: 86_400_000,
                })),
                "030361626303fd00d0ca9f170300000154021418fdf6d0ca9f17030000fc00b84c0a",
            ),
            // The mirrored produce, variant 4: a stamped produce, then where
            // it goes.
            (
                produce_at(
                    Some(ProduceStamp {
                        append_time_ms: 1_700_000_000_123,
                        producer_id_expiration_ms: 86_400_000,
                    }),
                    Some(MirrorAt {
                        base_offset: 70_000,
                        log_end: 69_990,
                    }),
                ),
                "040361626303fd00d0ca9f170300000154021418fdf6d0ca9f17030000fc00b84c0afc70110100fc66110100",
            ),
        ];
        for (request, stored) in cases {
            let bytes = encode(&request).unwrap();
            assert_eq!(hex(&bytes), stored, "{request}");
            assert_eq!(decode_exact::<Request>(&bytes).unwrap(), request);
        }
    }

    /// Group membership and committed offsets keep the bytes they had
    /// before static members and committed leader epochs (issue 15): the
    /// instance ids and epochs travel in the commands appended for them.
    #[test]
    fn group_commands_keep_their_bytes_and_carry_instances_and_epochs() {
        use cairn_metadata::CommittedOffset;
        use cairn_metadata::GroupCommit;
        use cairn_metadata::GroupMember;
        use cairn_metadata::GroupMeta;
        use cairn_metadata::GroupPhase;

        /// The shapes as they were stored before.
        #[derive(serde::Serialize)]
        struct OldMember {
            member_id: String,
            client_id: String,
            client_host: String,
            session_timeout_ms: u32,
            rebalance_timeout_ms: u32,
            protocols: Vec<(String, Vec<u8>)>,
            assignment: Vec<u8>,
        }
        #[derive(serde::Serialize)]
        struct OldOffset {
            offset: i64,
            metadata: String,
            commit_time_ms: i64,
        }

        let member = GroupMember {
            member_id: "m".into(),
            client_id: "c".into(),
            client_host: "/h".into(),
            session_timeout_ms: 10,
            rebalance_timeout_ms: 20,
            protocols: vec![("range".into(), vec![1])],
            assignment: vec![2],
            group_instance_id: Some("i-1".into()),
        };
        let old_member = OldMember {
            member_id: "m".into(),
            client_id: "c".into(),
            client_host: "/h".into(),
            session_timeout_ms: 10,
            rebalance_timeout_ms: 20,
            protocols: vec![("range".into(), vec![1])],
            assignment: vec![2],
        };
        assert_eq!(
            hex(&encode(&member).unwrap()),
            hex(&encode(&old_member).unwrap())
        );
        let offset = CommittedOffset {
            offset: 42,
            metadata: "x".into(),
            commit_time_ms: 7,
            leader_epoch: Some(5),
        };
        let old_offset = OldOffset {
            offset: 42,
            metadata: "x".into(),
            commit_time_ms: 7,
        };
        assert_eq!(
            hex(&encode(&offset).unwrap()),
            hex(&encode(&old_offset).unwrap())
        );

        let meta = GroupMeta {
            generation: 3,
            phase: GroupPhase::Stable,
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            leader: "m".into(),
            // As decoded: the instance id comes in `instances`.
            members: [(
                "m".to_string(),
                GroupMember {
                    group_instance_id: None,
                    ..member.clone()
                },
            )]
            .into(),
        };
        let put = Request::Meta(MetaCommand::PutGroupWithInstances {
            group: "g".into(),
            meta,
            instances: vec![("m".into(), "i-1".into())],
        });
        let bytes = encode(&put).unwrap();
        assert_eq!(
            hex(&bytes),
            "001d0167060208636f6e73756d65720572616e6765016d01016d016d0163022f680a14010572616e67650101010201016d03692d31"
        );
        assert_eq!(decode_exact::<Request>(&bytes).unwrap(), put);

        let commit = GroupCommit {
            group: "g".into(),
            generation: Some(3),
            member_id: "m".into(),
            // As decoded: the epoch comes beside the commit.
            offsets: vec![(
                "t".into(),
                0,
                CommittedOffset {
                    leader_epoch: None,
                    ..offset
                },
            )],
        };
        let batch = Request::Meta(MetaCommand::CommitBatchWithEpochs(vec![(
            commit,
            vec![Some(5)],
        )]));
        let bytes = encode(&batch).unwrap();
        assert_eq!(hex(&bytes), "001e0101670106016d010174005401780e01010a");
        assert_eq!(decode_exact::<Request>(&bytes).unwrap(), batch);
    }

    /// Log ids and votes as every store holds them (format version 2): a
    /// log id is (term, index), standard Raft's; a vote is the term, the
    /// node voted for (an option, as openraft 0.9 wrote it) and whether a
    /// quorum granted it. Version 1 had (term, node) in every log id.
    #[test]
    fn log_ids_and_votes_have_one_leader_per_term() {
        use openraft::vote::RaftLeaderId;
        use openraft::vote::RaftLeaderIdExt;
        use openraft::vote::RaftVote;
        let log_id = LogId::new(
            <TypeConfig as openraft::RaftTypeConfig>::LeaderId::new_committed(3, 2),
            9,
        );
        assert_eq!(hex(&encode(&log_id).unwrap()), "0309");
        assert_eq!(decode_exact::<LogId>(&[3, 9]).unwrap(), log_id);
        let vote = Vote::from_leader_id(
            <TypeConfig as openraft::RaftTypeConfig>::LeaderId::new(4, 2),
            true,
        );
        assert_eq!(hex(&encode(&vote).unwrap()), "04010201");
        assert_eq!(decode_exact::<Vote>(&[4, 1, 2, 1]).unwrap(), vote);
        // Two candidates of one term: neither vote is greater than the
        // other, so a voter that granted one refuses the other.
        let other = Vote::from_leader_id(
            <TypeConfig as openraft::RaftTypeConfig>::LeaderId::new(4, 3),
            false,
        );
        let first = Vote::from_leader_id(
            <TypeConfig as openraft::RaftTypeConfig>::LeaderId::new(4, 2),
            false,
        );
        assert_eq!(PartialOrd::partial_cmp(&first, &other), None);
    }

    /// An entry as the log store holds it: the request inside openraft's
    /// entry, decoded whole.
    #[test]
    fn a_stamped_produce_round_trips_in_an_entry() {
        use openraft::entry::RaftEntry;
        use openraft::vote::RaftLeaderIdExt;
        let log_id = LogId::new(
            <TypeConfig as openraft::RaftTypeConfig>::LeaderId::new_committed(3, 1),
            9,
        );
        let entry = Entry::new_normal(
            log_id,
            produce(Some(ProduceStamp {
                append_time_ms: 5,
                producer_id_expiration_ms: 6,
            })),
        );
        let back: Entry = decode_exact(&encode(&entry).unwrap()).unwrap();
        assert_eq!(back, entry);
    }
}
