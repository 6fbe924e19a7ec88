//! The partition's Raft state machine: assigns offsets, keeps the index.

use std::io;
use std::sync::Arc;

use cairn_raft::decode;
use cairn_raft::encode;
use cairn_raft::GroupId;
use cairn_raft::LogId;
use cairn_raft::Request;
use cairn_raft::Response;
use cairn_raft::Snapshot;
use cairn_raft::SnapshotData;
use cairn_raft::SnapshotMeta;
use cairn_raft::StoredMembership;
use cairn_raft::TypeConfig;
use cairn_storage::NodeStore;
use cairn_storage::StateBatch;
use futures::Stream;
use futures::TryStreamExt;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use openraft::EntryPayload;
use openraft::RaftSnapshotBuilder;
use serde::Deserialize;
use serde::Serialize;

use crate::index::IndexEntry;
use crate::index::META_KEY;
use crate::producers::ProducerState;
use crate::producers::Producers;
use crate::producers::Verdict;
use crate::producers::PRODUCER_PREFIX;
use crate::shared::PartitionShared;

/// What the state machine persists besides the index, in one row.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct SmMeta {
    applied: Option<LogId>,
    membership: StoredMembership,
    next_offset: u64,
    log_start: u64,
}

/// Applies committed entries of one partition group.
///
/// Its writes are not synced: the Raft log is the source of truth, and
/// openraft re-applies everything after `applied` on restart. The meta row
/// and the index rows of one apply call go in one atomic write, so they
/// never disagree.
pub struct PartitionStateMachine {
    store: NodeStore,
    group: GroupId,
    meta: SmMeta,
    shared: Arc<PartitionShared>,
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    producers: Producers,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl PartitionStateMachine {
    /// Opens the state machine of `group`, loading what was applied before.
    pub fn open(
        store: NodeStore,
        group: GroupId,
    ) -> Result<(Self, Arc<PartitionShared>), io::Error> {
        let meta = match store.state_get(group, META_KEY).map_err(io_err)? {
            Some(bytes) => decode::<SmMeta>(&bytes).map_err(io_err)?,
            None => SmMeta::default(),
        };
        let shared = Arc::new(PartitionShared::new(group));
        shared.publish(meta.next_offset, meta.log_start);
        let mut producers = Producers::default();
        for (key, value) in store
            .state_scan(group, &[PRODUCER_PREFIX], &[PRODUCER_PREFIX + 1])
            .map_err(io_err)?
        {
            let id = key
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(i64::from_be_bytes)
                .ok_or_else(|| io_err(format!("bad producer key {key:?}")))?;
            producers.load(id, decode::<ProducerState>(&value).map_err(io_err)?);
        }
        let sm = Self {
            store,
            group,
            meta,
            shared: shared.clone(),
            snapshot: None,
            producers,
        };
        Ok((sm, shared))
    }

    fn snapshot_bytes(&self) -> Result<Vec<u8>, io::Error> {
        encode(&self.meta).map_err(io_err)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for PartitionStateMachine {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let data = self.snapshot_bytes()?;
        let meta = SnapshotMeta {
            last_log_id: self.meta.applied,
            last_membership: self.meta.membership.clone(),
        };
        self.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: std::io::Cursor::new(data),
        })
    }
}

impl RaftStateMachine<TypeConfig> for PartitionStateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.meta.applied, self.meta.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        let mut batch = StateBatch::new();
        let mut replies = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            self.meta.applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Response::WrongGroup,
                EntryPayload::Membership(m) => {
                    self.meta.membership = StoredMembership::new(Some(entry.log_id), m);
                    Response::WrongGroup
                }
                EntryPayload::Normal(Request::Produce(cmd)) => 'produce: {
                    if let Some(pb) = &cmd.producer {
                        match self.producers.check(pb) {
                            Verdict::Append => {}
                            Verdict::Duplicate { base_offset } => {
                                break 'produce Response::Produce {
                                    base_offset,
                                    high_watermark: self.meta.next_offset,
                                    duplicate: true,
                                };
                            }
                            Verdict::OutOfOrder { expected } => {
                                break 'produce Response::OutOfOrderSequence {
                                    producer_id: pb.producer_id,
                                    expected,
                                    got: pb.first_sequence,
                                };
                            }
                        }
                        let state = self.producers.record(pb, self.meta.next_offset);
                        batch.put(
                            self.group,
                            &Producers::key(pb.producer_id),
                            &encode(state).map_err(io_err)?,
                        );
                    }
                    let row = IndexEntry {
                        base_offset: self.meta.next_offset,
                        raft_index: entry.log_id.index,
                        record_count: cmd.record_count,
                        max_timestamp_ms: cmd.max_timestamp_ms,
                    };
                    batch.put(
                        self.group,
                        &IndexEntry::key(row.base_offset),
                        &row.encode_value(),
                    );
                    self.meta.next_offset = row.next_offset();
                    Response::Produce {
                        base_offset: row.base_offset,
                        high_watermark: self.meta.next_offset,
                        duplicate: false,
                    }
                }
                EntryPayload::Normal(Request::Meta(_)) => Response::WrongGroup,
            };
            if let Some(r) = responder {
                replies.push((r, response));
            }
        }
        batch.put(self.group, META_KEY, &encode(&self.meta).map_err(io_err)?);
        self.store.write(batch).map_err(io_err)?;
        self.shared
            .publish(self.meta.next_offset, self.meta.log_start);
        for (r, response) in replies {
            r.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        Self {
            store: self.store.clone(),
            group: self.group,
            meta: self.meta.clone(),
            shared: self.shared.clone(),
            snapshot: None,
            producers: Producers::default(),
        }
    }

    /// Installs a leader's snapshot: this replica's log then starts at the
    /// snapshot's next offset (records below it are not held here).
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let mut incoming: SmMeta = decode(snapshot.get_ref()).map_err(io_err)?;
        incoming.log_start = incoming.next_offset;
        tracing::warn!(
            group = self.group,
            next_offset = incoming.next_offset,
            "partition snapshot installed; records below its offset are not on this replica"
        );
        let mut batch = StateBatch::new();
        batch.delete_range(self.group, &IndexEntry::key(0), &IndexEntry::key(u64::MAX));
        batch.put(self.group, META_KEY, &encode(&incoming).map_err(io_err)?);
        self.store.write(batch).map_err(io_err)?;
        self.meta = incoming;
        self.shared
            .publish(self.meta.next_offset, self.meta.log_start);
        self.snapshot = Some((meta.clone(), snapshot.into_inner()));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self.snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: std::io::Cursor::new(data.clone()),
        }))
    }
}
