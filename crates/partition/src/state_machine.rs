//! The partition's Raft state machine: assigns offsets, keeps the index.

use std::collections::BTreeMap;
use std::io;
use std::ops::ControlFlow;
use std::sync::Arc;

use cairn_raft::decode;
use cairn_raft::decode_exact;
use cairn_raft::encode;
use cairn_raft::GroupId;
use cairn_raft::LogId;
use cairn_raft::ProduceStamp;
use cairn_raft::ProducerBatch;
use cairn_raft::Request;
use cairn_raft::Response;
use cairn_raft::Snapshot;
use cairn_raft::SnapshotData;
use cairn_raft::SnapshotMeta;
use cairn_raft::StoredMembership;
use cairn_raft::TypeConfig;
use cairn_storage::LogStore;
use cairn_storage::NodeStore;
use cairn_storage::StateBatch;
use futures::Stream;
use futures::TryStreamExt;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use openraft::EntryPayload;
use openraft::RaftLogReader;
use openraft::RaftSnapshotBuilder;
use serde::Deserialize;
use serde::Serialize;

use crate::index::reject_key;
use crate::index::IndexEntry;
use crate::index::META_KEY;
use crate::index::META_KEY_V1;
use crate::index::SNAPSHOT_KEY;
use crate::producers::ProducerState;
use crate::producers::ProducerStateV1;
use crate::producers::Producers;
use crate::producers::Verdict;
use crate::producers::EXPIRE_PER_ENTRY;
use crate::producers::PRODUCER_PREFIX;
use crate::shared::PartitionShared;

/// What the state machine persists besides the index, in one row: the
/// third format, [`SmMetaV3`], followed by `purge_next_offset`,
/// `replay_next_offset` and `rejects_unknown_through`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
struct SmMeta {
    applied: Option<LogId>,
    membership: StoredMembership,
    next_offset: u64,
    log_start: u64,
    /// Set after installing a snapshot: the state already holds the effect
    /// of every entry up to this Raft index (the snapshot was built there),
    /// so those entries, replicated after the install, only move `applied`
    /// and are not judged again.
    preapplied_through: Option<u64>,
    /// Membership configs applied, oldest first, from the one in force at
    /// `purge` on: a snapshot must carry the membership as of its own index.
    memberships: Vec<StoredMembership>,
    /// Where the next snapshot is cut: the entry just before the first one
    /// holding retained records, with the membership in force there.
    purge: Option<PurgePoint>,
    /// The partition's clock for idempotent-producer expiry: the latest
    /// leader stamp of the produces applied (so it never moves back, even
    /// when a new leader's clock is behind); `None` before the first
    /// stamped produce.
    producer_clock_ms: Option<i64>,
    /// The partition's next offset as of the purge point: where a replica
    /// that installs the snapshot cut there numbers the batches of the
    /// entries after it. `None` for a purge point set before this was kept
    /// (or by a snapshot of the rows format): snapshots then carry rows.
    purge_next_offset: Option<u64>,
    /// While the entries up to `preapplied_through` are replayed after a
    /// snapshot of the replay format: the next offset of the replayed
    /// batches, whose index rows are re-created from the entries.
    replay_next_offset: Option<u64>,
    /// Entries up to this Raft index were applied without reject rows
    /// (replayed after a snapshot of the rows format): a snapshot whose
    /// window reaches below it carries rows.
    rejects_unknown_through: Option<u64>,
}

/// The third format of [`SmMeta`] (before snapshots were replayed from the
/// entries), at the same key.
#[derive(Deserialize)]
struct SmMetaV3 {
    applied: Option<LogId>,
    membership: StoredMembership,
    next_offset: u64,
    log_start: u64,
    preapplied_through: Option<u64>,
    memberships: Vec<StoredMembership>,
    purge: Option<PurgePoint>,
    producer_clock_ms: Option<i64>,
}

/// The second format of [`SmMeta`] (before producer expiry), at the same key.
#[derive(Deserialize)]
struct SmMetaV2 {
    applied: Option<LogId>,
    membership: StoredMembership,
    next_offset: u64,
    log_start: u64,
    preapplied_through: Option<u64>,
    memberships: Vec<StoredMembership>,
    purge: Option<PurgePoint>,
}

impl SmMeta {
    /// The row at [`META_KEY`]: the current format, else the third, else
    /// the second one. Each is decoded whole, so exactly one fits: each
    /// format is the one before with more after it.
    fn decode(bytes: &[u8]) -> Result<SmMeta, io::Error> {
        if let Ok(meta) = decode_exact::<SmMeta>(bytes) {
            return Ok(meta);
        }
        if let Ok(v3) = decode_exact::<SmMetaV3>(bytes) {
            return Ok(SmMeta {
                applied: v3.applied,
                membership: v3.membership,
                next_offset: v3.next_offset,
                log_start: v3.log_start,
                preapplied_through: v3.preapplied_through,
                memberships: v3.memberships,
                purge: v3.purge,
                producer_clock_ms: v3.producer_clock_ms,
                // Applied before reject rows were kept.
                rejects_unknown_through: v3.applied.map(|l| l.index),
                ..SmMeta::default()
            });
        }
        match decode_exact::<SmMetaV2>(bytes) {
            Ok(v2) => Ok(SmMeta {
                applied: v2.applied,
                membership: v2.membership,
                next_offset: v2.next_offset,
                log_start: v2.log_start,
                preapplied_through: v2.preapplied_through,
                memberships: v2.memberships,
                purge: v2.purge,
                rejects_unknown_through: v2.applied.map(|l| l.index),
                ..SmMeta::default()
            }),
            Err(e) => Err(io_err(format!("undecodable partition state row: {e}"))),
        }
    }
}

/// The first format of [`SmMeta`] (key `meta`), read once after an upgrade.
#[derive(Deserialize)]
struct SmMetaV1 {
    applied: Option<LogId>,
    membership: StoredMembership,
    next_offset: u64,
    log_start: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct PurgePoint {
    log_id: LogId,
    membership: StoredMembership,
}

/// A partition snapshot's content. Its Raft position
/// (`SnapshotMeta::last_log_id`) is always the purge point P, below every
/// retained record, so that the entries holding retained records are
/// replicated after it as log entries; its content is the state as of
/// `preapplied_through` = A (>= P). Two formats:
///
/// - [`ReplaySnapshot`], what Cairn sends: no index rows. The replica that
///   installs it re-creates them from the entries P+1..=A as they arrive,
///   numbering batches from the next offset at P and skipping the entries
///   the snapshot lists as rejected. Its size does not grow with the
///   retained batches, and it costs nothing to cut: it is assembled when a
///   replica needs it, from the state as it is then.
/// - [`PartitionSnapshot`], the rows format, written by Cairn before the
///   replay format: every retained index row. Still installed, and still
///   sent while the state needed for the replay format is not known (right
///   after an upgrade, until the purge point moves).
enum SnapshotContent {
    Rows(PartitionSnapshot),
    Replay(ReplaySnapshot),
}

/// Marks a snapshot of the replay format. A snapshot of the rows format
/// starts with a bincode varint, which never starts with 0xff.
const REPLAY_SNAPSHOT_MAGIC: [u8; 4] = [0xff, b'c', b'r', 1];

impl SnapshotContent {
    fn decode(bytes: &[u8]) -> Result<SnapshotContent, io::Error> {
        match bytes.strip_prefix(&REPLAY_SNAPSHOT_MAGIC[..]) {
            Some(rest) => decode_exact::<ReplaySnapshot>(rest)
                .map(SnapshotContent::Replay)
                .map_err(|e| io_err(format!("undecodable partition snapshot: {e}"))),
            None => PartitionSnapshot::decode(bytes).map(SnapshotContent::Rows),
        }
    }

    fn encode(&self) -> Result<Vec<u8>, io::Error> {
        match self {
            SnapshotContent::Rows(rows) => encode(rows).map_err(io_err),
            SnapshotContent::Replay(replay) => {
                let mut out = REPLAY_SNAPSHOT_MAGIC.to_vec();
                out.extend(encode(replay).map_err(io_err)?);
                Ok(out)
            }
        }
    }
}

/// The replay format of a partition snapshot (see [`SnapshotContent`]).
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct ReplaySnapshot {
    /// A: the state below is as of this Raft index.
    preapplied_through: u64,
    /// The next offset as of A.
    next_offset: u64,
    /// The log start as of A.
    log_start: u64,
    /// The next offset as of P: the base offset of the first batch
    /// appended by an entry after P.
    replay_from: u64,
    /// The produce entries in P+1..=A that appended nothing (by Raft index,
    /// ascending).
    rejected: Vec<u64>,
    producers: Vec<(i64, ProducerStateV1)>,
    /// The last-seen time of each of `producers`, in the same order.
    producers_last_seen: Vec<Option<i64>>,
    producer_clock_ms: Option<i64>,
}

/// The rows format of a partition snapshot (see [`SnapshotContent`]): the
/// retained index rows and the producers' state as of `preapplied_through`.
///
/// Encoded as the first format, [`PartitionSnapshotV1`], followed by the
/// producers' last-seen times and the producer clock; a snapshot of the
/// first format still installs (see [`PartitionSnapshot::decode`]).
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct PartitionSnapshot {
    preapplied_through: u64,
    next_offset: u64,
    log_start: u64,
    /// (base offset, raft index, record count, max timestamp, bytes).
    rows: Vec<(u64, u64, u32, i64, Option<u32>)>,
    producers: Vec<(i64, ProducerStateV1)>,
    /// The last-seen time of each of `producers`, in the same order.
    producers_last_seen: Vec<Option<i64>>,
    /// [`SmMeta::producer_clock_ms`].
    producer_clock_ms: Option<i64>,
}

/// The first format of [`PartitionSnapshot`], before producer expiry.
#[derive(Deserialize)]
struct PartitionSnapshotV1 {
    preapplied_through: u64,
    next_offset: u64,
    log_start: u64,
    rows: Vec<(u64, u64, u32, i64, Option<u32>)>,
    producers: Vec<(i64, ProducerStateV1)>,
}

impl PartitionSnapshot {
    /// The current format, else the first one. Each is decoded whole, so
    /// exactly one fits: the current one is the first one with more after it.
    fn decode(bytes: &[u8]) -> Result<PartitionSnapshot, io::Error> {
        let snapshot = match decode_exact::<PartitionSnapshot>(bytes) {
            Ok(s) => s,
            Err(e) => match decode_exact::<PartitionSnapshotV1>(bytes) {
                Ok(v1) => PartitionSnapshot {
                    preapplied_through: v1.preapplied_through,
                    next_offset: v1.next_offset,
                    log_start: v1.log_start,
                    rows: v1.rows,
                    producers_last_seen: vec![None; v1.producers.len()],
                    producers: v1.producers,
                    producer_clock_ms: None,
                },
                Err(_) => return Err(io_err(format!("undecodable partition snapshot: {e}"))),
            },
        };
        if snapshot.producers_last_seen.len() != snapshot.producers.len() {
            return Err(io_err(format!(
                "partition snapshot: {} producers but {} last-seen times",
                snapshot.producers.len(),
                snapshot.producers_last_seen.len()
            )));
        }
        Ok(snapshot)
    }

    /// The producers' states with their last-seen times.
    fn producer_states(&self) -> impl Iterator<Item = (i64, ProducerState)> + '_ {
        self.producers
            .iter()
            .zip(&self.producers_last_seen)
            .map(|((id, v1), seen)| (*id, ProducerState::joined(v1.clone(), *seen)))
    }
}

impl ReplaySnapshot {
    /// The producers' states with their last-seen times.
    fn producer_states(&self) -> Result<Vec<(i64, ProducerState)>, io::Error> {
        if self.producers_last_seen.len() != self.producers.len() {
            return Err(io_err(format!(
                "partition snapshot: {} producers but {} last-seen times",
                self.producers.len(),
                self.producers_last_seen.len()
            )));
        }
        Ok(self
            .producers
            .iter()
            .zip(&self.producers_last_seen)
            .map(|((id, v1), seen)| (*id, ProducerState::joined(v1.clone(), *seen)))
            .collect())
    }
}

/// How many membership configs are remembered for snapshots at most.
const MEMBERSHIP_HISTORY: usize = 16;

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
    producers: Producers,
}

/// What openraft gets when it asks for a snapshot to be built: only the
/// position (the purge point), made durable by the state machine itself
/// between two applies. openraft keeps only the meta of a built snapshot;
/// the content is assembled when a replica needs it
/// ([`RaftStateMachine::get_current_snapshot`]).
pub struct PartitionSnapshotBuilder {
    built: Result<Option<SnapshotMeta>, String>,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn is_at_or_below(m: &StoredMembership, index: u64) -> bool {
    m.log_id().as_ref().is_none_or(|l| l.index <= index)
}

impl PartitionStateMachine {
    /// Opens the state machine of `group`, loading what was applied before.
    pub fn open(
        store: NodeStore,
        group: GroupId,
    ) -> Result<(Self, Arc<PartitionShared>), io::Error> {
        let meta = match store.state_get(group, META_KEY).map_err(io_err)? {
            Some(bytes) => SmMeta::decode(&bytes)?,
            None => match store.state_get(group, META_KEY_V1).map_err(io_err)? {
                Some(bytes) => {
                    let v1 = decode::<SmMetaV1>(&bytes).map_err(io_err)?;
                    SmMeta {
                        applied: v1.applied,
                        memberships: vec![v1.membership.clone()],
                        membership: v1.membership,
                        next_offset: v1.next_offset,
                        log_start: v1.log_start,
                        rejects_unknown_through: v1.applied.map(|l| l.index),
                        ..SmMeta::default()
                    }
                }
                None => SmMeta::default(),
            },
        };
        if store
            .state_get(group, SNAPSHOT_KEY)
            .map_err(io_err)?
            .is_some()
        {
            // A snapshot persisted by an earlier version: snapshots are now
            // assembled from the state when needed.
            let mut batch = StateBatch::new();
            batch.delete(group, SNAPSHOT_KEY);
            store.write(batch).map_err(io_err)?;
        }
        let shared = Arc::new(PartitionShared::new(group));
        shared.publish(meta.next_offset, meta.log_start);
        shared.publish_purge(meta.purge.as_ref().map(|p| p.log_id.index));
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
            producers.load(id, ProducerState::decode_row(&value).map_err(io_err)?);
        }
        let sm = Self {
            store,
            group,
            meta,
            shared: shared.clone(),
            producers,
        };
        Ok((sm, shared))
    }

    /// The index row of the batch holding `offset`: rows written earlier in
    /// this apply call (`pending`) first, then the store.
    fn row_holding(
        &self,
        offset: u64,
        pending: &BTreeMap<u64, IndexEntry>,
    ) -> Result<Option<IndexEntry>, io::Error> {
        let stored = self
            .store
            .state_seek_prev(self.group, &IndexEntry::key(offset))
            .map_err(io_err)?
            .and_then(|(k, v)| IndexEntry::decode(&k, &v));
        let pending = pending.range(..=offset).next_back().map(|(_, e)| *e);
        let row = match (stored, pending) {
            (Some(a), Some(b)) if b.base_offset >= a.base_offset => Some(b),
            (Some(a), _) => Some(a),
            (None, b) => b,
        };
        Ok(row.filter(|r| r.base_offset <= offset && offset < r.next_offset()))
    }

    /// Applies a trim: the log start moves to `requested` (never past the
    /// log end, never backwards), as Kafka's DeleteRecords moves it to
    /// exactly the offset asked for; retention asks for a batch start.
    /// Storage is freed by whole batches: index rows of batches wholly
    /// below the new log start are deleted, the batch holding it (or the
    /// last batch, when the log start is the log end) stays, and the purge
    /// point moves to the Raft entry just before that batch. Reads never
    /// return a record below the log start: fetches at or above it return
    /// its batch whole and clients skip the records before their position,
    /// as with Kafka's batches.
    async fn trim(
        &mut self,
        batch: &mut StateBatch,
        pending: &BTreeMap<u64, IndexEntry>,
        requested: u64,
    ) -> Result<u64, io::Error> {
        let current = self.meta.log_start;
        if self.meta.next_offset <= current {
            return Ok(current);
        }
        let target = requested.min(self.meta.next_offset);
        if target <= current {
            return Ok(current);
        }
        // The batch to keep: the one holding the new log start, or the last
        // one (Kafka keeps the active segment).
        let keep = target.min(self.meta.next_offset - 1);
        let Some(row) = self.row_holding(keep, pending)? else {
            tracing::error!(
                group = self.group,
                offset = keep,
                "trim: no index row holds the offset; log start not moved"
            );
            return Ok(current);
        };
        batch.delete_range(
            self.group,
            &IndexEntry::key(0),
            &IndexEntry::key(row.base_offset),
        );
        self.meta.log_start = target;
        self.plan_purge(batch, row.raft_index, row.base_offset)
            .await?;
        tracing::info!(
            group = self.group,
            log_start = target,
            first_retained_batch = row.base_offset,
            first_retained_raft_index = row.raft_index,
            "partition log start moved"
        );
        Ok(target)
    }

    /// Moves the purge point to the entry before `first_retained` (whose
    /// batch starts at `first_offset`) when the membership in force there is
    /// known; the reject rows at or below it go.
    async fn plan_purge(
        &mut self,
        batch: &mut StateBatch,
        first_retained: u64,
        first_offset: u64,
    ) -> Result<(), io::Error> {
        let Some(upto) = first_retained.checked_sub(1) else {
            return Ok(());
        };
        if self
            .meta
            .purge
            .as_ref()
            .is_some_and(|p| p.log_id.index >= upto)
        {
            return Ok(());
        }
        let mut log: LogStore<TypeConfig> = self.store.log_store(self.group);
        let entries = log
            .try_get_log_entries(upto..upto + 1)
            .await
            .map_err(io_err)?;
        let Some(entry) = entries.into_iter().next() else {
            // Already purged here (a snapshot covers it).
            return Ok(());
        };
        let Some(pos) = self
            .meta
            .memberships
            .iter()
            .rposition(|m| is_at_or_below(m, upto))
        else {
            tracing::warn!(
                group = self.group,
                upto,
                "membership at the purge point is not remembered; log not purged this time"
            );
            return Ok(());
        };
        self.meta.memberships.drain(..pos);
        self.meta.purge = Some(PurgePoint {
            log_id: entry.log_id,
            membership: self.meta.memberships[0].clone(),
        });
        // Every entry up to `upto` holds batches below `first_offset`, and
        // the one after it starts there.
        self.meta.purge_next_offset = Some(first_offset);
        batch.delete_range(self.group, &reject_key(0), &reject_key(upto + 1));
        Ok(())
    }

    /// Moves the producer clock to a stamped produce's time (never back)
    /// and expires producer states by it: a bounded sweep of the oldest
    /// ones ([`Producers::expire`]), then the entry's own producer if it
    /// expired, so that its batch is judged as an unknown producer's. The
    /// changes go into `batch`. Returns how many producers were removed.
    fn expire_producers(
        &mut self,
        batch: &mut StateBatch,
        stamp: &ProduceStamp,
        own: Option<&ProducerBatch>,
    ) -> Result<usize, io::Error> {
        let now = self
            .meta
            .producer_clock_ms
            .map_or(stamp.append_time_ms, |c| c.max(stamp.append_time_ms));
        self.meta.producer_clock_ms = Some(now);
        let expiration = stamp.producer_id_expiration_ms;
        let mut removed = 0;
        for (id, state) in self.producers.expire(now, expiration, EXPIRE_PER_ENTRY) {
            match state {
                Some(state) => batch.put(
                    self.group,
                    &Producers::key(id),
                    &encode(&state).map_err(io_err)?,
                ),
                None => {
                    batch.delete(self.group, &Producers::key(id));
                    removed += 1;
                }
            }
        }
        if let Some(pb) = own {
            if self
                .producers
                .forget_if_expired(pb.producer_id, now, expiration)
            {
                batch.delete(self.group, &Producers::key(pb.producer_id));
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn remember_membership(&mut self, m: StoredMembership) {
        self.meta.membership = m.clone();
        self.meta.memberships.push(m);
        if self.meta.memberships.len() > MEMBERSHIP_HISTORY {
            self.meta.memberships.remove(0);
        }
    }

    /// Re-creates the index row of a produce entry replayed after a
    /// snapshot install (replay format): the entry appended its batch at
    /// the replay cursor unless the snapshot lists it as rejected. Rows
    /// below the log start (trimmed by A) are not written.
    fn replay_produce(
        &mut self,
        batch: &mut StateBatch,
        pending: &mut BTreeMap<u64, IndexEntry>,
        raft_index: u64,
        cmd: &cairn_raft::ProduceCommand,
    ) -> Result<(), io::Error> {
        let Some(next) = self.meta.replay_next_offset else {
            // A snapshot of the rows format: its rows are installed.
            return Ok(());
        };
        if self
            .store
            .state_get(self.group, &reject_key(raft_index))
            .map_err(io_err)?
            .is_some()
        {
            return Ok(());
        }
        let row = IndexEntry {
            // Mirrored batches keep their source offsets (a gap before
            // them stays a gap).
            base_offset: cmd.mirror.map_or(next, |at| at.base_offset),
            raft_index,
            record_count: cmd.record_count,
            max_timestamp_ms: cmd.max_timestamp_ms,
            bytes: Some(u32::try_from(cmd.records.len()).unwrap_or(u32::MAX)),
        };
        // A batch holding records at or after the log start is indexed (a
        // replay after a snapshot recreates the batch the log start lies in).
        if row.next_offset() > self.meta.log_start {
            batch.put(
                self.group,
                &IndexEntry::key(row.base_offset),
                &row.encode_value(),
            );
            pending.insert(row.base_offset, row);
        }
        self.meta.replay_next_offset = Some(row.next_offset());
        Ok(())
    }

    /// The rows of the state keyspace with `from <= key < to`, decoded; a
    /// row that does not decode is an error naming `what` rows.
    fn scan_rows<T>(
        &self,
        from: &[u8],
        to: &[u8],
        what: &str,
        decode_row: impl Fn(&[u8], &[u8]) -> Option<T>,
    ) -> Result<Vec<T>, io::Error> {
        let mut out = Vec::new();
        let mut corrupt = None;
        self.store
            .state_visit(self.group, from, Some(to), |k, v| match decode_row(k, v) {
                Some(row) => {
                    out.push(row);
                    ControlFlow::Continue(())
                }
                None => {
                    corrupt = Some(format!("bad {what} row under key {k:?}"));
                    ControlFlow::Break(())
                }
            })
            .map_err(io_err)?;
        match corrupt {
            Some(c) => Err(io_err(c)),
            None => Ok(out),
        }
    }

    /// Ends the replay after a snapshot install, at its `preapplied_through`:
    /// the replayed entries must have numbered their batches up to the
    /// snapshot's next offset, or this replica's index would point offsets
    /// at the wrong records.
    fn finish_replay(&mut self) -> Result<(), io::Error> {
        self.meta.preapplied_through = None;
        match self.meta.replay_next_offset.take() {
            Some(replayed) if replayed != self.meta.next_offset => Err(io_err(format!(
                "partition {}: the entries replayed after the snapshot end at offset {replayed}, \
                 the snapshot at {}",
                self.group, self.meta.next_offset
            ))),
            _ => Ok(()),
        }
    }

    /// The snapshot at the purge point, if there is one, as of now: made
    /// durable (the trimmed index and the purge point must survive a crash
    /// before openraft purges the log up to it). Costs one sync, whatever
    /// the number of retained batches.
    async fn cut_snapshot(&mut self) -> Result<Option<SnapshotMeta>, io::Error> {
        let Some(purge) = self.meta.purge.clone() else {
            return Ok(None);
        };
        self.store.sync().await.map_err(io_err)?;
        metrics::counter!("cairn_partition_snapshots_built_total").increment(1);
        Ok(Some(SnapshotMeta {
            last_log_id: Some(purge.log_id),
            last_membership: purge.membership,
        }))
    }

    /// The content of the snapshot at the purge point, as of now (between
    /// two applies): the replay format when the next offset at the purge
    /// point and every reject row after it are known, else the rows format.
    fn snapshot_content(&self) -> Result<Option<(SnapshotMeta, SnapshotContent)>, io::Error> {
        let Some(purge) = self.meta.purge.clone() else {
            return Ok(None);
        };
        let p = purge.log_id.index;
        let meta = SnapshotMeta {
            last_log_id: Some(purge.log_id),
            last_membership: purge.membership,
        };
        let applied = self.meta.applied.map_or(0, |l| l.index);
        let preapplied_through = applied.max(self.meta.preapplied_through.unwrap_or(0));
        let (producers, producers_last_seen) = self
            .producers
            .states()
            .into_iter()
            .map(|(id, state)| {
                let (v1, seen) = state.split();
                ((id, v1), seen)
            })
            .unzip();
        let rejects_known = self.meta.rejects_unknown_through.is_none_or(|u| u <= p);
        let content = match self.meta.purge_next_offset {
            Some(replay_from) if rejects_known => {
                let rejected = self.scan_rows(
                    &reject_key(p + 1),
                    &reject_key(preapplied_through.saturating_add(1)),
                    "reject",
                    |k, _| {
                        let b = k.get(1..9).filter(|_| k.len() == 9)?;
                        Some(u64::from_be_bytes(b.try_into().ok()?))
                    },
                )?;
                SnapshotContent::Replay(ReplaySnapshot {
                    preapplied_through,
                    next_offset: self.meta.next_offset,
                    log_start: self.meta.log_start,
                    replay_from,
                    rejected,
                    producers,
                    producers_last_seen,
                    producer_clock_ms: self.meta.producer_clock_ms,
                })
            }
            _ => {
                // From the batch holding the log start, which can begin
                // below it.
                let first = self
                    .row_holding(self.meta.log_start, &BTreeMap::new())?
                    .filter(|r| r.next_offset() > self.meta.log_start)
                    .map_or(self.meta.log_start, |r| r.base_offset);
                let rows = self.scan_rows(
                    &IndexEntry::key(first),
                    &IndexEntry::key(u64::MAX),
                    "index",
                    |k, v| {
                        let e = IndexEntry::decode(k, v)?;
                        Some((
                            e.base_offset,
                            e.raft_index,
                            e.record_count,
                            e.max_timestamp_ms,
                            e.bytes,
                        ))
                    },
                )?;
                SnapshotContent::Rows(PartitionSnapshot {
                    preapplied_through,
                    next_offset: self.meta.next_offset,
                    log_start: self.meta.log_start,
                    rows,
                    producers,
                    producers_last_seen,
                    producer_clock_ms: self.meta.producer_clock_ms,
                })
            }
        };
        Ok(Some((meta, content)))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for PartitionSnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let meta = match &self.built {
            Ok(Some(meta)) => meta.clone(),
            // Nothing trimmed yet: an empty snapshot at no log id, which
            // openraft ignores.
            Ok(None) => SnapshotMeta::default(),
            Err(e) => return Err(io_err(e)),
        };
        Ok(Snapshot {
            meta,
            snapshot: std::io::Cursor::new(Vec::new()),
        })
    }
}

impl RaftStateMachine<TypeConfig> for PartitionStateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = PartitionSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.meta.applied, self.meta.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        if let Some(hold) = self.store.hold_apply_path() {
            // Fault injection only (StoreOptions::hold_apply_while_exists).
            while hold.exists() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        let mut batch = StateBatch::new();
        let mut pending: BTreeMap<u64, IndexEntry> = BTreeMap::new();
        let mut replies = Vec::new();
        let mut expired = 0usize;
        while let Some((entry, responder)) = entries.try_next().await? {
            self.meta.applied = Some(entry.log_id);
            let preapplied = self
                .meta
                .preapplied_through
                .is_some_and(|a| entry.log_id.index <= a);
            let response = match entry.payload {
                EntryPayload::Blank => Response::WrongGroup,
                EntryPayload::Membership(m) => {
                    self.remember_membership(StoredMembership::new(Some(entry.log_id), m));
                    Response::WrongGroup
                }
                // The installed snapshot already holds this entry's effect
                // but for, in the replay format, its index row.
                EntryPayload::Normal(Request::Produce(cmd)) if preapplied => {
                    self.replay_produce(&mut batch, &mut pending, entry.log_id.index, &cmd)?;
                    Response::WrongGroup
                }
                EntryPayload::Normal(_) if preapplied => Response::WrongGroup,
                EntryPayload::Normal(Request::Produce(cmd)) => 'produce: {
                    if let Some(stamp) = &cmd.stamp {
                        expired +=
                            self.expire_producers(&mut batch, stamp, cmd.producer.as_ref())?;
                    }
                    // Unstamped (older) entries: the clock as it is.
                    let at_ms = self.meta.producer_clock_ms;
                    if let Some(at) = cmd.mirror {
                        // Mirrored batches go where the source has them, and
                        // only onto the log their puller saw: never over
                        // what is here, never past a gap the source does not
                        // have.
                        if at.log_end != self.meta.next_offset || at.base_offset < at.log_end {
                            batch.put(self.group, &reject_key(entry.log_id.index), &[]);
                            break 'produce Response::MirrorMismatch {
                                next_offset: self.meta.next_offset,
                            };
                        }
                        if self.meta.log_start == self.meta.next_offset {
                            // Nothing retained: the log starts where the
                            // source's does.
                            self.meta.log_start = at.base_offset;
                        }
                        self.meta.next_offset = at.base_offset;
                    }
                    if let Some(pb) = &cmd.producer {
                        // The source judged a mirrored batch already; its
                        // producer's state is kept so that, once the topic
                        // is promoted, the producer's retry of a mirrored
                        // batch is a duplicate here too.
                        let verdict = match cmd.mirror {
                            Some(_) => Verdict::Append,
                            None => self.producers.check(pb),
                        };
                        let refused = match verdict {
                            Verdict::Append => None,
                            Verdict::Duplicate { base_offset } => Some(Response::Produce {
                                base_offset,
                                high_watermark: self.meta.next_offset,
                                duplicate: true,
                            }),
                            Verdict::OutOfOrder { expected } => {
                                Some(Response::OutOfOrderSequence {
                                    producer_id: pb.producer_id,
                                    expected,
                                    got: pb.first_sequence,
                                })
                            }
                            Verdict::Fenced { current } => Some(Response::InvalidProducerEpoch {
                                producer_id: pb.producer_id,
                                epoch: pb.epoch,
                                current,
                            }),
                        };
                        if let Some(refused) = refused {
                            // Appends nothing: a replica replaying this
                            // entry after a snapshot must know.
                            batch.put(self.group, &reject_key(entry.log_id.index), &[]);
                            break 'produce refused;
                        }
                        let state = self.producers.record(pb, self.meta.next_offset, at_ms);
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
                        bytes: Some(u32::try_from(cmd.records.len()).unwrap_or(u32::MAX)),
                    };
                    batch.put(
                        self.group,
                        &IndexEntry::key(row.base_offset),
                        &row.encode_value(),
                    );
                    pending.insert(row.base_offset, row);
                    self.meta.next_offset = row.next_offset();
                    Response::Produce {
                        base_offset: row.base_offset,
                        high_watermark: self.meta.next_offset,
                        duplicate: false,
                    }
                }
                EntryPayload::Normal(Request::Trim { log_start }) => Response::Trimmed {
                    log_start: self.trim(&mut batch, &pending, log_start).await?,
                },
                EntryPayload::Normal(Request::Meta(_)) => Response::WrongGroup,
            };
            if let Some(r) = responder {
                replies.push((r, response));
            }
            if self
                .meta
                .preapplied_through
                .is_some_and(|a| entry.log_id.index >= a)
            {
                // The snapshot's state is reached: later entries are judged.
                self.finish_replay()?;
            }
        }
        batch.put(self.group, META_KEY, &encode(&self.meta).map_err(io_err)?);
        self.store.write(batch).map_err(io_err)?;
        if expired > 0 {
            tracing::debug!(
                group = self.group,
                expired,
                held = self.producers.len(),
                "idempotent producer states expired"
            );
            metrics::counter!("cairn_partition_producers_expired_total").increment(expired as u64);
        }
        self.shared
            .publish(self.meta.next_offset, self.meta.log_start);
        self.shared
            .publish_purge(self.meta.purge.as_ref().map(|p| p.log_id.index));
        for (r, response) in replies {
            r.send(response);
        }
        Ok(())
    }

    /// Cuts the snapshot here, between two applies (see
    /// [`PartitionSnapshotBuilder`]). Nothing to cut before a trim:
    /// refused, unless openraft insists (`force`, at startup).
    async fn try_create_snapshot_builder(&mut self, force: bool) -> Option<Self::SnapshotBuilder> {
        if self.meta.purge.is_none() && !force {
            return None;
        }
        let built = self.cut_snapshot().await.map_err(|e| {
            tracing::error!(group = self.group, error = %e, "partition snapshot failed");
            e.to_string()
        });
        Some(PartitionSnapshotBuilder { built })
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let built = self.cut_snapshot().await.map_err(|e| e.to_string());
        PartitionSnapshotBuilder { built }
    }

    /// Installs a snapshot from the leader; `applied` becomes its position
    /// P, and the state is the snapshot's as of A (`preapplied_through`).
    /// openraft then replicates the entries after P (they hold the retained
    /// records); those up to A are not judged again (see `apply`): they
    /// only re-create their index rows (replay format) or do nothing (rows
    /// format, whose rows are installed here).
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        let incoming = SnapshotContent::decode(&data)?;
        let at = meta.last_log_id.map_or(0, |l| l.index);
        let mut batch = StateBatch::new();
        batch.delete_range(self.group, &IndexEntry::key(0), &IndexEntry::key(u64::MAX));
        batch.delete_range(self.group, &[PRODUCER_PREFIX], &[PRODUCER_PREFIX + 1]);
        batch.delete_range(self.group, &reject_key(0), &reject_key(u64::MAX));
        let mut new_meta = SmMeta {
            applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            memberships: vec![meta.last_membership.clone()],
            purge: meta.last_log_id.map(|log_id| PurgePoint {
                log_id,
                membership: meta.last_membership.clone(),
            }),
            ..SmMeta::default()
        };
        let (states, rows) = match &incoming {
            SnapshotContent::Replay(s) => {
                for &index in &s.rejected {
                    if index <= at || index > s.preapplied_through {
                        return Err(io_err(format!(
                            "partition snapshot at {at} through {}: rejected entry {index} outside it",
                            s.preapplied_through
                        )));
                    }
                    batch.put(self.group, &reject_key(index), &[]);
                }
                let window = s.preapplied_through > at;
                new_meta.next_offset = s.next_offset;
                new_meta.log_start = s.log_start;
                new_meta.preapplied_through = window.then_some(s.preapplied_through);
                new_meta.producer_clock_ms = s.producer_clock_ms;
                new_meta.purge_next_offset = Some(s.replay_from);
                new_meta.replay_next_offset = window.then_some(s.replay_from);
                (s.producer_states()?, 0)
            }
            SnapshotContent::Rows(s) => {
                for &(base_offset, raft_index, record_count, max_timestamp_ms, bytes) in &s.rows {
                    let row = IndexEntry {
                        base_offset,
                        raft_index,
                        record_count,
                        max_timestamp_ms,
                        bytes,
                    };
                    batch.put(
                        self.group,
                        &IndexEntry::key(base_offset),
                        &row.encode_value(),
                    );
                }
                let window = s.preapplied_through > at;
                new_meta.next_offset = s.next_offset;
                new_meta.log_start = s.log_start;
                new_meta.preapplied_through = window.then_some(s.preapplied_through);
                new_meta.producer_clock_ms = s.producer_clock_ms;
                // Which entries of the window appended is not known here.
                new_meta.rejects_unknown_through = Some(s.preapplied_through);
                (s.producer_states().collect(), s.rows.len())
            }
        };
        let mut producers = Producers::default();
        for (id, state) in states {
            batch.put(
                self.group,
                &Producers::key(id),
                &encode(&state).map_err(io_err)?,
            );
            producers.load(id, state);
        }
        batch.put(self.group, META_KEY, &encode(&new_meta).map_err(io_err)?);
        self.store.write(batch).map_err(io_err)?;
        self.store.sync().await.map_err(io_err)?;
        tracing::info!(
            group = self.group,
            last_log_id = ?meta.last_log_id,
            log_start = new_meta.log_start,
            next_offset = new_meta.next_offset,
            preapplied_through = ?new_meta.preapplied_through,
            rows,
            bytes = data.len(),
            "partition snapshot installed"
        );
        metrics::counter!("cairn_partition_snapshots_installed_total").increment(1);
        self.meta = new_meta;
        self.producers = producers;
        self.shared
            .publish(self.meta.next_offset, self.meta.log_start);
        self.shared
            .publish_purge(self.meta.purge.as_ref().map(|p| p.log_id.index));
        Ok(())
    }

    /// The snapshot at the purge point, assembled now from the state (see
    /// [`SnapshotContent`]).
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let Some((meta, content)) = self.snapshot_content()? else {
            return Ok(None);
        };
        let data = content.encode()?;
        tracing::debug!(
            group = self.group,
            last_log_id = ?meta.last_log_id,
            bytes = data.len(),
            "partition snapshot assembled"
        );
        Ok(Some(Snapshot {
            meta,
            snapshot: std::io::Cursor::new(data),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use bytes::Bytes;
    use cairn_raft::Entry;
    use cairn_raft::MirrorAt;
    use cairn_raft::ProduceCommand;
    use cairn_raft::ProducerBatch;
    use cairn_storage::StoreOptions;
    use openraft::entry::RaftEntry;
    use openraft::storage::IOFlushed;
    use openraft::storage::RaftLogStorage;
    use openraft::type_config::TypeConfigExt;
    use openraft::vote::RaftLeaderIdExt;
    use openraft::RaftTypeConfig;

    use super::*;
    use crate::log::FirstBatch;
    use crate::log::PartitionLog;
    use crate::log::ReadError;
    use crate::log::RetentionLimits;

    const GROUP: GroupId = 7;

    fn log_id(index: u64) -> LogId {
        LogId::new(
            <TypeConfig as RaftTypeConfig>::LeaderId::new_committed(1, 1),
            index,
        )
    }

    fn membership(index: u64, voters: &[u64]) -> Entry {
        let m = openraft::Membership::<u64, openraft::BasicNode>::new_with_defaults(
            vec![voters.iter().copied().collect::<BTreeSet<u64>>()],
            [],
        );
        Entry::new_membership(log_id(index), m)
    }

    /// A produce of `records` records, 100 bytes, newest record at `ts`.
    fn produce(index: u64, records: u32, ts: i64, producer: Option<(i32, i32)>) -> Entry {
        Entry::new_normal(
            log_id(index),
            Request::Produce(ProduceCommand {
                records: Bytes::from(vec![0u8; 100]),
                record_count: records,
                max_timestamp_ms: ts,
                producer: producer.map(|(first, last)| ProducerBatch {
                    producer_id: 42,
                    epoch: 0,
                    first_sequence: first,
                    last_sequence: last,
                }),
                stamp: None,
                mirror: None,
            }),
        )
    }

    fn trim(index: u64, log_start: u64) -> Entry {
        Entry::new_normal(log_id(index), Request::Trim { log_start })
    }

    struct Replica {
        _dir: tempfile::TempDir,
        store: NodeStore,
        sm: PartitionStateMachine,
        log: PartitionLog,
    }

    fn open_replica() -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::open(
            dir.path(),
            StoreOptions {
                write_buffer_mb: 4,
                block_cache_mb: 8,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let (sm, shared) = PartitionStateMachine::open(store.clone(), GROUP).unwrap();
        let log = PartitionLog::new(store.clone(), shared);
        Replica {
            _dir: dir,
            store,
            sm,
            log,
        }
    }

    impl Replica {
        /// Appends `entries` to the Raft log (durably) and applies them.
        async fn append_and_apply(&mut self, entries: Vec<Entry>) {
            self.append(entries.clone()).await;
            self.apply(entries).await;
        }

        async fn append(&mut self, entries: Vec<Entry>) {
            let mut log: LogStore<TypeConfig> = self.store.log_store(GROUP);
            let (tx, rx) = TypeConfig::oneshot();
            log.append(entries, IOFlushed::signal(tx)).await.unwrap();
            rx.await.unwrap().unwrap();
        }

        /// Applies as a follower does (no client waiting for responses).
        async fn apply(&mut self, entries: Vec<Entry>) {
            let items: Vec<Result<EntryResponder<TypeConfig>, io::Error>> =
                entries.into_iter().map(|e| Ok((e, None))).collect();
            self.sm.apply(futures::stream::iter(items)).await.unwrap();
        }

        fn rows(&self) -> Vec<IndexEntry> {
            self.store
                .state_scan(GROUP, &IndexEntry::key(0), &IndexEntry::key(u64::MAX))
                .unwrap()
                .iter()
                .map(|(k, v)| IndexEntry::decode(k, v).unwrap())
                .collect()
        }

        /// The producers held in memory, by id.
        fn producers_in_memory(&self) -> Vec<(i64, ProducerState)> {
            self.sm.producers.states()
        }

        /// The producer rows in the store, by id.
        fn producers_in_store(&self) -> Vec<(i64, ProducerState)> {
            self.store
                .state_scan(GROUP, &[PRODUCER_PREFIX], &[PRODUCER_PREFIX + 1])
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    let id = i64::from_be_bytes(k[1..9].try_into().unwrap());
                    (id, ProducerState::decode_row(v).unwrap())
                })
                .collect()
        }

        /// The producers in the snapshot the state machine serves now.
        async fn producers_in_snapshot(&mut self) -> Vec<(i64, ProducerState)> {
            let snap = self.sm.get_current_snapshot().await.unwrap().unwrap();
            match SnapshotContent::decode(snap.snapshot.get_ref()).unwrap() {
                SnapshotContent::Replay(s) => s.producer_states().unwrap(),
                SnapshotContent::Rows(s) => s.producer_states().collect(),
            }
        }

        /// Cuts a snapshot as openraft does after a trim (the builder
        /// carries only its position), then assembles it as openraft asks
        /// for it to send to a replica.
        async fn snapshot(&mut self) -> Snapshot {
            let mut builder = self.sm.try_create_snapshot_builder(false).await.unwrap();
            let built = builder.build_snapshot().await.unwrap();
            let snap = self.sm.get_current_snapshot().await.unwrap().unwrap();
            assert_eq!(built.meta, snap.meta);
            snap
        }

        /// Closes and reopens the state machine on the same store, as a
        /// restart does.
        fn restart(&mut self) {
            let (sm, shared) = PartitionStateMachine::open(self.store.clone(), GROUP).unwrap();
            self.sm = sm;
            self.log = PartitionLog::new(self.store.clone(), shared);
        }
    }

    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 60 * MINUTE;
    /// Some wall-clock time (2023-11-14).
    const T0: i64 = 1_700_000_000_000;

    /// A produce of one batch of 10 records by producer `id` (epoch 0,
    /// sequences `seq`), stamped by its leader at `at_ms` with the topic's
    /// `producer.id.expiration.ms` = `expiration_ms`.
    fn produce_at(index: u64, at_ms: i64, expiration_ms: i64, id: i64, seq: (i32, i32)) -> Entry {
        Entry::new_normal(
            log_id(index),
            Request::Produce(ProduceCommand {
                records: Bytes::from(vec![0u8; 100]),
                record_count: 10,
                max_timestamp_ms: at_ms,
                producer: Some(ProducerBatch {
                    producer_id: id,
                    epoch: 0,
                    first_sequence: seq.0,
                    last_sequence: seq.1,
                }),
                stamp: Some(ProduceStamp {
                    append_time_ms: at_ms,
                    producer_id_expiration_ms: expiration_ms,
                }),
                mirror: None,
            }),
        )
    }

    /// Entries 1 (membership), 2..=6: five batches of 10 records at
    /// offsets 0, 10, 20, 30, 40.
    fn five_batches() -> Vec<Entry> {
        let mut v = vec![membership(1, &[1, 2, 3])];
        for i in 0..5u64 {
            v.push(produce(2 + i, 10, 1000 + i as i64, None));
        }
        v
    }

    #[tokio::test]
    async fn trim_moves_the_log_start_exactly_frees_whole_batches_and_never_goes_back() {
        let mut r = open_replica();
        r.append_and_apply(five_batches()).await;
        assert_eq!((r.log.log_start(), r.log.high_watermark()), (0, 50));
        assert_eq!(r.log.purge_wanted(), None);

        // 25 is inside the batch at 20 (raft index 4): the log starts at 25
        // (Kafka's DeleteRecords), the batch's row and entry stay.
        r.append_and_apply(vec![trim(7, 25)]).await;
        assert_eq!(r.log.log_start(), 25);
        assert_eq!(
            r.rows().iter().map(|e| e.base_offset).collect::<Vec<_>>(),
            vec![20, 30, 40]
        );
        // The snapshot is to be cut just before the first retained entry.
        assert_eq!(r.log.purge_wanted(), Some(3));
        assert!(matches!(
            r.log.read(24, 1 << 20, FirstBatch::Whole).await,
            Err(ReadError::OffsetOutOfRange { log_start: 25, .. })
        ));
        // A read at the log start finds its batch (at 20; clients skip
        // 20..25): the rows hold it.
        assert_eq!(r.rows().first().map(|e| e.base_offset), Some(20));

        // Never backwards.
        r.append_and_apply(vec![trim(8, 5)]).await;
        assert_eq!(r.log.log_start(), 25);
        assert_eq!(r.rows().len(), 3);
        // Up to the log end at most; the last batch's row stays.
        r.append_and_apply(vec![trim(9, 1000)]).await;
        assert_eq!(r.log.log_start(), 50);
        assert_eq!(r.rows().len(), 1);
        assert_eq!(r.log.purge_wanted(), Some(5));
        assert_eq!(r.log.high_watermark(), 50);

        // The trim survives a restart.
        drop(r.sm);
        let (sm, shared) = PartitionStateMachine::open(r.store.clone(), GROUP).unwrap();
        assert_eq!((shared.log_start(), shared.high_watermark()), (50, 50));
        assert_eq!(shared.purge_wanted(), Some(5));
        drop(sm);
    }

    /// A log start inside a batch (DeleteRecords) reaches a replica that
    /// installs a snapshot, in both formats, with the batch holding it: the
    /// records from the log start on are readable there too.
    #[tokio::test]
    async fn a_snapshot_keeps_the_batch_the_log_start_lies_in() {
        for rows_format in [false, true] {
            let mut leader = open_replica();
            let mut entries = five_batches();
            entries.push(trim(7, 25));
            entries.push(produce(8, 10, 1005, None));
            leader.append_and_apply(entries.clone()).await;
            assert_eq!(leader.log.log_start(), 25);
            let mut builder = leader.sm.try_create_snapshot_builder(false).await.unwrap();
            builder.build_snapshot().await.unwrap();
            if rows_format {
                leader.sm.meta.purge_next_offset = None;
            }
            let snap = leader.sm.get_current_snapshot().await.unwrap().unwrap();
            let content = SnapshotContent::decode(snap.snapshot.get_ref()).unwrap();
            assert_eq!(
                matches!(content, SnapshotContent::Rows(_)),
                rows_format,
                "the snapshot format asked for"
            );
            assert_eq!(snap.meta.last_log_id, Some(log_id(3)));

            let mut follower = open_replica();
            follower
                .sm
                .install_snapshot(&snap.meta, snap.snapshot)
                .await
                .unwrap();
            follower.append(entries[3..].to_vec()).await;
            follower.apply(entries[3..].to_vec()).await;
            assert_eq!(follower.log.log_start(), 25, "rows format: {rows_format}");
            assert_eq!(follower.log.high_watermark(), 60);
            assert_eq!(follower.rows(), leader.rows(), "rows format: {rows_format}");
            // The batch holding the log start is there: reads at 25 find it.
            assert_eq!(
                follower.rows().first().map(|e| e.base_offset),
                Some(20),
                "rows format: {rows_format}"
            );
        }
    }

    #[tokio::test]
    async fn a_trim_in_the_same_apply_as_its_batch_finds_it() {
        let mut r = open_replica();
        let mut entries = five_batches();
        entries.push(trim(7, 30));
        r.append_and_apply(entries).await;
        assert_eq!(r.log.log_start(), 30);
        assert_eq!(r.rows().first().map(|e| e.base_offset), Some(30));
    }

    #[tokio::test]
    async fn retention_picks_whole_batches_by_time_and_by_size() {
        let mut r = open_replica();
        r.append_and_apply(five_batches()).await;
        let limits = |age: Option<i64>, bytes: Option<u64>| RetentionLimits {
            now_ms: 2000,
            max_age_ms: age,
            max_bytes: bytes,
        };
        assert_eq!(
            r.log.retention_start(limits(None, None)).await.unwrap(),
            None
        );
        // Batches' newest records are at 1000..=1004; cutoff 1002 drops two.
        assert_eq!(
            r.log
                .retention_start(limits(Some(998), None))
                .await
                .unwrap(),
            Some(20)
        );
        // Everything is old: all but the last batch.
        assert_eq!(
            r.log.retention_start(limits(Some(0), None)).await.unwrap(),
            Some(40)
        );
        // 5 x 100 bytes held; 250 allowed keeps the newest two.
        assert_eq!(
            r.log
                .retention_start(limits(None, Some(250)))
                .await
                .unwrap(),
            Some(30)
        );
        assert_eq!(
            r.log
                .retention_start(limits(None, Some(500)))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            r.log.retention_start(limits(None, Some(0))).await.unwrap(),
            Some(40)
        );
        // Both: the larger deletion wins.
        assert_eq!(
            r.log
                .retention_start(limits(Some(998), Some(250)))
                .await
                .unwrap(),
            Some(30)
        );
    }

    /// A replica restarted half-way through the entries its snapshot already
    /// holds goes on skipping them: `preapplied_through` is persisted.
    #[tokio::test]
    async fn a_restart_during_the_replay_after_an_install_keeps_skipping() {
        let mut leader = open_replica();
        let mut entries = five_batches();
        entries.push(produce(7, 10, 1005, Some((0, 9))));
        entries.push(trim(8, 20));
        entries.push(produce(9, 10, 1006, Some((0, 9))));
        leader.append_and_apply(entries.clone()).await;
        // The retry at 9 was a duplicate: 6 batches, 60 records.
        assert_eq!(leader.log.high_watermark(), 60);
        let snap = leader.snapshot().await;
        assert_eq!(snap.meta.last_log_id, Some(log_id(3)));

        let mut follower = open_replica();
        follower
            .sm
            .install_snapshot(&snap.meta, snap.snapshot)
            .await
            .unwrap();
        // Entries 4..=9 follow; the node restarts after 4. Judged again,
        // the plain produces at 5 and 6 would append 20 more records.
        follower.append(entries[3..].to_vec()).await;
        follower.apply(entries[3..4].to_vec()).await;
        let (sm, shared) = PartitionStateMachine::open(follower.store.clone(), GROUP).unwrap();
        follower.sm = sm;
        follower.log = PartitionLog::new(follower.store.clone(), shared);
        follower.apply(entries[4..].to_vec()).await;
        assert_eq!(follower.log.high_watermark(), 60);
        assert_eq!(follower.log.log_start(), 20);
        assert_eq!(follower.rows(), leader.rows());
        let (applied, _) = follower.sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(9)));
        // Past the snapshot's state: judged again, like on the leader.
        leader
            .append_and_apply(vec![produce(10, 3, 1007, None)])
            .await;
        follower
            .append_and_apply(vec![produce(10, 3, 1007, None)])
            .await;
        assert_eq!(follower.rows(), leader.rows());
        assert_eq!(follower.log.high_watermark(), 63);
    }

    /// A follower that gets the snapshot replays the entries after its cut
    /// without judging them again, and ends in the leader's exact state,
    /// idempotent-producer dedup included.
    #[tokio::test]
    async fn snapshot_install_then_replay_matches_the_leader() {
        let mut leader = open_replica();
        let mut entries = vec![membership(1, &[1, 2, 3])];
        // Producer 42: batches seq 0-9, 10-19, 20-29; entry 5 is a retry of 10-19.
        entries.push(produce(2, 10, 1000, Some((0, 9))));
        entries.push(produce(3, 10, 1001, Some((10, 19))));
        entries.push(produce(4, 10, 1002, Some((20, 29))));
        entries.push(produce(5, 10, 1003, Some((10, 19))));
        entries.push(produce(6, 5, 1004, None));
        entries.push(trim(7, 10));
        entries.push(membership(8, &[1, 2, 4]));
        leader.append_and_apply(entries.clone()).await;
        // The retry at 5 was a duplicate: 4 batches, 35 records.
        assert_eq!(leader.log.log_start(), 10);
        assert_eq!(leader.log.high_watermark(), 35);
        assert_eq!(leader.log.purge_wanted(), Some(2));

        let snap = leader.snapshot().await;
        assert_eq!(snap.meta.last_log_id, Some(log_id(2)));
        // The membership as of the cut, not the newer one at 8.
        assert_eq!(snap.meta.last_membership.log_id(), &Some(log_id(1)));
        // Served after a restart too, the same.
        let (mut reopened, _) = PartitionStateMachine::open(leader.store.clone(), GROUP).unwrap();
        let again = reopened.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(again.meta, snap.meta);
        assert_eq!(again.snapshot.get_ref(), snap.snapshot.get_ref());

        // A new replica: snapshot first, then openraft sends entries 3..=8.
        let mut follower = open_replica();
        follower
            .sm
            .install_snapshot(&snap.meta, snap.snapshot)
            .await
            .unwrap();
        assert_eq!(follower.log.log_start(), 10);
        let (applied, m) = follower.sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(2)));
        assert_eq!(m.log_id(), &Some(log_id(1)));
        follower.append(entries[2..].to_vec()).await;
        follower.apply(entries[2..].to_vec()).await;
        let (applied, m) = follower.sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(8)));
        assert_eq!(m.log_id(), &Some(log_id(8)));
        assert_eq!(follower.rows(), leader.rows());
        assert_eq!(follower.log.high_watermark(), 35);
        // It serves the same snapshot onward (the reject of entry 5 came
        // with it).
        let onward = follower.sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(onward.meta, again.meta);
        assert_eq!(onward.snapshot.get_ref(), again.snapshot.get_ref());

        // From here on both judge new entries alike.
        let next = vec![
            produce(9, 10, 1005, Some((30, 39))),
            produce(10, 10, 1006, Some((20, 29))),
        ];
        leader.append_and_apply(next.clone()).await;
        follower.append_and_apply(next).await;
        // 30-39 appended at 35; the retry of 20-29 is a duplicate on both.
        assert_eq!(leader.log.high_watermark(), 45);
        assert_eq!(follower.log.high_watermark(), 45);
        assert_eq!(follower.rows(), leader.rows());
    }

    /// Batches of `records` records (real ones, so reads can patch them)
    /// mirrored from a source at `base`, by producer 42 with `seq`.
    fn mirrored(
        index: u64,
        log_end: u64,
        base: u64,
        records: u32,
        seq: Option<(i32, i32)>,
    ) -> Entry {
        let mut b = cairn_record::RecordBatchBuilder::new();
        for i in 0..records {
            b.push(1000 + i64::from(i), None, Some(b"v"), &[]);
        }
        Entry::new_normal(
            log_id(index),
            Request::Produce(ProduceCommand {
                records: b.build(),
                record_count: records,
                max_timestamp_ms: 1000 + i64::from(records) - 1,
                producer: seq.map(|(first, last)| ProducerBatch {
                    producer_id: 42,
                    epoch: 0,
                    first_sequence: first,
                    last_sequence: last,
                }),
                stamp: Some(ProduceStamp {
                    append_time_ms: T0,
                    producer_id_expiration_ms: HOUR,
                }),
                mirror: Some(MirrorAt {
                    base_offset: base,
                    log_end,
                }),
            }),
        )
    }

    /// Mirrored batches land at the source's offsets: the log starts where
    /// the source's first mirrored batch does, a gap stays a gap (reads
    /// inside it go on at the next batch), a second copy of a range is
    /// refused, and a follower replaying them after a snapshot numbers them
    /// the same.
    #[tokio::test]
    async fn mirrored_batches_keep_their_source_offsets() {
        let mut r = open_replica();
        let entries = vec![
            membership(1, &[1, 2, 3]),
            mirrored(2, 0, 100, 3, Some((0, 2))),
            // The same range again (a new leader pulled it too): refused.
            mirrored(3, 0, 100, 3, Some((0, 2))),
            // A pull that saw the log end elsewhere: refused.
            mirrored(4, 101, 103, 3, None),
            // A gap: the source trimmed 103..110 before it was mirrored.
            mirrored(5, 103, 110, 2, Some((3, 4))),
        ];
        r.append_and_apply(entries.clone()).await;
        assert_eq!(r.log.log_start(), 100);
        assert_eq!(r.log.high_watermark(), 112);
        let bases: Vec<u64> = r.rows().iter().map(|e| e.base_offset).collect();
        assert_eq!(bases, vec![100, 110]);
        assert!(matches!(
            r.log.read(0, 1 << 20, FirstBatch::Whole).await,
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        assert_eq!(
            read(&r, 100, 1 << 20, FirstBatch::Whole).await.0,
            vec![100, 110]
        );
        let (bases, _, next) = read(&r, 104, 1 << 20, FirstBatch::Whole).await;
        assert_eq!((bases, next), (vec![110], 112));

        // The mirrored producer's state is kept: its retry of the last
        // mirrored batch, produced here after a promotion, is a duplicate;
        // its next batch follows on.
        let retry = produce(6, 2, 2000, Some((3, 4)));
        r.append_and_apply(vec![retry]).await;
        assert_eq!(r.log.high_watermark(), 112);
        r.append_and_apply(vec![produce(7, 2, 2001, Some((5, 6)))])
            .await;
        assert_eq!(r.log.high_watermark(), 114);

        // Survives a restart.
        r.restart();
        assert_eq!((r.log.log_start(), r.log.high_watermark()), (100, 114));

        // A follower that gets a snapshot cut after entry 2 replays 3..=7
        // to the same rows.
        r.append_and_apply(vec![trim(8, 110)]).await;
        let snap = r.snapshot().await;
        let mut follower = open_replica();
        follower
            .sm
            .install_snapshot(&snap.meta, snap.snapshot)
            .await
            .unwrap();
        let cut = snap.meta.last_log_id.unwrap().index as usize;
        let mut rest: Vec<Entry> = entries[cut..].to_vec();
        rest.push(produce(6, 2, 2000, Some((3, 4))));
        rest.push(produce(7, 2, 2001, Some((5, 6))));
        rest.push(trim(8, 110));
        follower.append(rest.clone()).await;
        follower.apply(rest).await;
        assert_eq!(follower.rows(), r.rows());
        assert_eq!(follower.log.high_watermark(), 114);
    }

    /// `n` produce entries of 10 records (entries 2..=n+1), plain and
    /// idempotent in turn, but for a retry of the producer's last batch at
    /// the 100th and the 200th (duplicates, appending nothing).
    fn retained_batches(n: u64) -> Vec<Entry> {
        let mut v = vec![membership(1, &[1, 2, 3])];
        let mut seq = 0;
        for i in 0..n {
            let index = 2 + i;
            if i % 100 == 99 && i < 200 {
                // Two retries of the producer's last batch: duplicates.
                v.push(produce(index, 10, 1000, Some((seq - 10, seq - 1))));
            } else if i % 2 == 0 {
                v.push(produce(index, 10, 1000, Some((seq, seq + 9))));
                seq += 10;
            } else {
                v.push(produce(index, 10, 1000, None));
            }
        }
        v
    }

    /// Finding 5: a snapshot is assembled from the producers and the
    /// rejected entries, not from the retained index rows, so its size and
    /// its cost do not grow with the retained batches; a replica that
    /// installs it re-creates the rows from the entries, identical to the
    /// leader's.
    #[tokio::test]
    async fn a_snapshot_does_not_grow_with_the_retained_batches() {
        let mut sizes = Vec::new();
        for retained in [300u64, 4000] {
            let mut entries = retained_batches(retained + 2);
            let mut leader = open_replica();
            leader.append_and_apply(entries.clone()).await;
            // Trim the first two batches away: P = entry 3.
            let trim_at = entries.len() as u64 + 1;
            entries.push(trim(trim_at, 20));
            leader
                .append_and_apply(entries[entries.len() - 1..].to_vec())
                .await;
            assert_eq!(leader.log.log_start(), 20);
            let snap = leader.snapshot().await;
            assert_eq!(snap.meta.last_log_id, Some(log_id(3)));
            sizes.push(snap.snapshot.get_ref().len());

            let mut follower = open_replica();
            follower
                .sm
                .install_snapshot(&snap.meta, snap.snapshot)
                .await
                .unwrap();
            follower.append(entries[3..].to_vec()).await;
            follower.apply(entries[3..].to_vec()).await;
            assert_eq!(follower.rows().len(), leader.rows().len());
            assert_eq!(follower.rows(), leader.rows(), "{retained} retained");
            assert_eq!(follower.log.high_watermark(), leader.log.high_watermark());
        }
        assert_eq!(
            sizes[0], sizes[1],
            "snapshot bytes with 300 and with 4000 retained batches"
        );
    }

    /// Measures what a snapshot costs as the retained batches grow: cutting
    /// one (at every trim) and assembling the replay format (when a replica
    /// needs it), against assembling the rows format, which every trim
    /// built, persisted and synced before finding 5. Figures in
    /// docs/adr/0008-partition-snapshots-replayed-and-chunked.md; run:
    ///   cargo test --release -p cairn-partition --lib -- --ignored --nocapture snapshot_cost
    #[tokio::test]
    #[ignore]
    async fn snapshot_cost() {
        for n in [1_000u64, 100_000, 1_000_000] {
            let mut r = open_replica();
            let entries = retained_batches(n + 2);
            let next = entries.len() as u64 + 1;
            for chunk in entries.chunks(10_000) {
                r.append_and_apply(chunk.to_vec()).await;
            }
            r.append_and_apply(vec![trim(next, 20)]).await;
            let t = cairn_clock::now();
            let mut builder = r.sm.try_create_snapshot_builder(false).await.unwrap();
            builder.build_snapshot().await.unwrap();
            let cut = t.elapsed();
            let t = cairn_clock::now();
            let replay = r.sm.get_current_snapshot().await.unwrap().unwrap();
            let assembled = t.elapsed();
            r.sm.meta.purge_next_offset = None;
            let t = cairn_clock::now();
            let rows = r.sm.get_current_snapshot().await.unwrap().unwrap();
            let rows_assembled = t.elapsed();
            println!(
                "{n} retained batches: cut {cut:?}; replay format {} bytes assembled in {assembled:?}; \
                 rows format {} bytes assembled in {rows_assembled:?}",
                replay.snapshot.get_ref().len(),
                rows.snapshot.get_ref().len(),
            );
        }
    }

    /// A replica whose replay does not number the batches as the snapshot
    /// says (here: a snapshot that lost its list of rejected entries) stops
    /// with an error instead of pointing offsets at the wrong records.
    #[tokio::test]
    async fn a_replay_that_disagrees_with_its_snapshot_stops_the_replica() {
        let mut entries = retained_batches(150);
        let mut leader = open_replica();
        let trim_at = entries.len() as u64 + 1;
        entries.push(trim(trim_at, 20));
        leader.append_and_apply(entries.clone()).await;
        let snap = leader.snapshot().await;
        let SnapshotContent::Replay(mut content) =
            SnapshotContent::decode(snap.snapshot.get_ref()).unwrap()
        else {
            panic!("a snapshot of the rows format");
        };
        assert_eq!(content.rejected, vec![101]);
        content.rejected.clear();
        let data = SnapshotContent::Replay(content).encode().unwrap();

        let mut follower = open_replica();
        follower
            .sm
            .install_snapshot(&snap.meta, std::io::Cursor::new(data))
            .await
            .unwrap();
        follower.append(entries[3..].to_vec()).await;
        let items: Vec<Result<EntryResponder<TypeConfig>, io::Error>> = entries[3..]
            .iter()
            .cloned()
            .map(|e| Ok((e, None)))
            .collect();
        let err = follower
            .sm
            .apply(futures::stream::iter(items))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("replayed after the snapshot"),
            "{err}"
        );
    }

    /// A produce of one real record batch holding one record with a value
    /// of `value_bytes` bytes; its batch bytes.
    fn large_produce(index: u64, value_bytes: usize) -> (Entry, Bytes) {
        let mut b = cairn_record::RecordBatchBuilder::new();
        b.push(1000, None, Some(&vec![b'v'; value_bytes]), &[]);
        let records = b.build();
        let entry = Entry::new_normal(
            log_id(index),
            Request::Produce(ProduceCommand {
                records: records.clone(),
                record_count: 1,
                max_timestamp_ms: 1000,
                producer: None,
                stamp: None,
                mirror: None,
            }),
        );
        (entry, records)
    }

    /// The base offsets of the batches a read returned.
    fn base_offsets(records: &Bytes) -> Vec<i64> {
        cairn_record::split_batches(records)
            .map(|b| {
                cairn_record::RecordBatchHeader::parse(b.unwrap())
                    .unwrap()
                    .base_offset
            })
            .collect()
    }

    /// Three batches at offsets 0, 1, 2 of about 1 KB, 1 KB and 5 KB; their
    /// sizes.
    async fn three_sized_batches(r: &mut Replica) -> [usize; 3] {
        let (a, ra) = large_produce(2, 1000);
        let (b, rb) = large_produce(3, 1000);
        let (c, rc) = large_produce(4, 5000);
        r.append_and_apply(vec![membership(1, &[1, 2, 3]), a, b, c])
            .await;
        [ra.len(), rb.len(), rc.len()]
    }

    /// What `read` answers: the batches' base offsets and total bytes, and
    /// the next offset to read.
    async fn read(
        r: &Replica,
        offset: u64,
        max: usize,
        first: FirstBatch,
    ) -> (Vec<i64>, usize, u64) {
        let f = r.log.read(offset, max, first).await.unwrap();
        (base_offsets(&f.records), f.records.len(), f.next_offset)
    }

    /// The byte limits of a read, checked the same with index rows that
    /// carry each entry's size and with rows of the first format (none).
    async fn check_read_limits(r: &Replica, [a, b, c]: [usize; 3]) {
        use FirstBatch::*;
        // The first batch may be larger than the limit only when allowed.
        assert_eq!(read(r, 0, a - 1, Whole).await, (vec![0], a, 1));
        assert_eq!(read(r, 0, 1, Whole).await, (vec![0], a, 1));
        assert_eq!(read(r, 0, a - 1, WithinLimit).await, (vec![], 0, 0));
        assert_eq!(read(r, 0, 0, WithinLimit).await, (vec![], 0, 0));
        assert_eq!(read(r, 2, c - 1, WithinLimit).await, (vec![], 0, 2));
        assert_eq!(read(r, 2, c - 1, Whole).await, (vec![2], c, 3));
        assert_eq!(read(r, 2, c, WithinLimit).await, (vec![2], c, 3));
        // Exactly at the limit.
        assert_eq!(read(r, 0, a + b, WithinLimit).await, (vec![0, 1], a + b, 2));
        // A batch that would cross the limit is left for a later read,
        // after a first batch too.
        assert_eq!(read(r, 0, a + b - 1, WithinLimit).await, (vec![0], a, 1));
        assert_eq!(read(r, 0, a + b - 1, Whole).await, (vec![0], a, 1));
        assert_eq!(
            read(r, 0, a + b + c - 1, Whole).await,
            (vec![0, 1], a + b, 2)
        );
        assert_eq!(read(r, 1, b + c - 1, WithinLimit).await, (vec![1], b, 2));
        // Everything fits.
        assert_eq!(
            read(r, 0, a + b + c, WithinLimit).await,
            (vec![0, 1, 2], a + b + c, 3)
        );
        assert_eq!(
            read(r, 0, 1 << 20, Whole).await,
            (vec![0, 1, 2], a + b + c, 3)
        );
        // At the high watermark: nothing, whatever the limit.
        assert_eq!(read(r, 3, 0, Whole).await, (vec![], 0, 3));
    }

    #[tokio::test]
    async fn reads_return_the_first_batch_whole_only_when_allowed_and_never_cross_the_limit() {
        let mut r = open_replica();
        let sizes = three_sized_batches(&mut r).await;
        assert!(r.rows().iter().all(|row| row.bytes.is_some()));
        check_read_limits(&r, sizes).await;
    }

    #[tokio::test]
    async fn read_limits_hold_for_index_rows_without_sizes() {
        let mut r = open_replica();
        let sizes = three_sized_batches(&mut r).await;
        // Rewrite the rows in the first format (20 bytes, no size), as a
        // partition written before sizes were indexed holds them.
        let mut batch = StateBatch::new();
        for row in r.rows() {
            let old = IndexEntry { bytes: None, ..row };
            batch.put(
                GROUP,
                &IndexEntry::key(row.base_offset),
                &old.encode_value(),
            );
        }
        r.store.write(batch).unwrap();
        assert!(r.rows().iter().all(|row| row.bytes.is_none()));
        check_read_limits(&r, sizes).await;
    }

    /// Issue 12, finding 7: every new producer id (a client restart, an
    /// InitProducerId) left a producer state behind forever, in memory, in
    /// the store and in every snapshot. With `producer.id.expiration.ms`,
    /// only the producers seen within it are held.
    #[tokio::test]
    async fn expired_producers_leave_memory_the_store_and_snapshots() {
        let mut r = open_replica();
        let mut entries = vec![membership(1, &[1, 2, 3])];
        // A new producer id every minute for 500 minutes, one batch each;
        // the expiration is an hour.
        for i in 0..500u64 {
            let at = T0 + i as i64 * MINUTE;
            entries.push(produce_at(2 + i, at, HOUR, 1000 + i as i64, (0, 9)));
        }
        // A trim, so that a snapshot is cut.
        entries.push(trim(502, 4000));
        r.append_and_apply(entries).await;
        assert_eq!(r.log.high_watermark(), 5000);
        assert!(r.sm.try_create_snapshot_builder(false).await.is_some());

        // Live at the end (T0 + 499 min): the producers of the last hour,
        // minutes 440..=499.
        let live: Vec<i64> = (1440..1500).collect();
        let ids = |states: Vec<(i64, ProducerState)>| -> Vec<i64> {
            states.into_iter().map(|(id, _)| id).collect()
        };
        let in_memory = ids(r.producers_in_memory());
        let in_store = ids(r.producers_in_store());
        let in_snapshot = ids(r.producers_in_snapshot().await);
        assert_eq!(
            (in_memory.len(), in_store.len(), in_snapshot.len()),
            (live.len(), live.len(), live.len()),
            "producer states held (in memory, in the store, in the snapshot)"
        );
        assert_eq!(in_memory, live);
        assert_eq!(in_store, live);
        assert_eq!(in_snapshot, live);
        // And after a restart, from the store.
        r.restart();
        assert_eq!(ids(r.producers_in_memory()), live);
    }

    /// A live producer's retry is still a duplicate (and a gap still out of
    /// order); once expired, the producer is unknown: its batch is new,
    /// whatever its sequence (Kafka since KIP-360).
    #[tokio::test]
    async fn a_live_producers_retry_is_a_duplicate_and_an_expired_producers_batch_is_new() {
        let mut r = open_replica();
        r.append_and_apply(vec![membership(1, &[1, 2, 3])]).await;
        let mut index = 1;
        let mut next = |at: i64, id: i64, seq: (i32, i32)| {
            index += 1;
            produce_at(index, at, HOUR, id, seq)
        };
        // Producer 42 writes at T0, again half an hour later (its last seen
        // time moves).
        assert_eq!(hwm_after(&mut r, next(T0, 42, (0, 9))).await, 10);
        let t1 = T0 + HOUR / 2;
        assert_eq!(hwm_after(&mut r, next(t1, 42, (10, 19))).await, 20);
        // 1 ms short of an hour after its last batch (another producer's
        // batch moves the time): still known.
        let t2 = t1 + HOUR - 1;
        assert_eq!(hwm_after(&mut r, next(t2, 7, (0, 9))).await, 30);
        assert_eq!(
            hwm_after(&mut r, next(t2, 42, (10, 19))).await,
            30,
            "a retry of a live producer's last batch is a duplicate"
        );
        assert_eq!(
            hwm_after(&mut r, next(t2, 42, (30, 39))).await,
            30,
            "a gap in a live producer's sequence is refused"
        );
        // An hour after its last batch: expired, the same batch is new.
        assert_eq!(
            hwm_after(&mut r, next(t1 + HOUR, 42, (10, 19))).await,
            40,
            "an expired producer's batch is accepted as new"
        );
        // ... and it goes on from there, retries included.
        assert_eq!(hwm_after(&mut r, next(t1 + HOUR, 42, (20, 29))).await, 50);
        assert_eq!(hwm_after(&mut r, next(t1 + HOUR, 42, (20, 29))).await, 50);
        // Producer 7, expired too, may start at any sequence.
        assert_eq!(
            hwm_after(&mut r, next(t2 + HOUR, 7, (500, 509))).await,
            60,
            "an expired producer may start at any sequence"
        );
    }

    async fn hwm_after(r: &mut Replica, entry: Entry) -> u64 {
        r.append_and_apply(vec![entry]).await;
        r.log.high_watermark()
    }

    /// Expiry is decided from the entries alone: a replica that applies
    /// them in one go, one restarted half-way, and one that installs a
    /// snapshot half-way and replays the rest hold the same producers, in
    /// memory, in the store and in their next snapshot. The times in the
    /// entries are not monotonic (a new leader's clock may lag) and the
    /// expiration changes half-way (a topic config change).
    #[tokio::test]
    async fn replicas_agree_on_expired_producers_through_restarts_and_snapshots() {
        let mut entries = vec![membership(1, &[1, 2, 3])];
        let mut at = T0;
        let mut seqs: BTreeMap<i64, i32> = BTreeMap::new();
        let mut x: u64 = 12345;
        for i in 0..400u64 {
            // A small deterministic pseudo-random sequence.
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = x >> 33;
            at += match r % 10 {
                0 => -2 * MINUTE,
                1..=6 => (r % 7) as i64 * MINUTE,
                _ => 20 * MINUTE,
            };
            let expiration = if i < 200 { HOUR } else { 30 * MINUTE };
            let id = 100 + (r % 10) as i64;
            let next = seqs.entry(id).or_insert(0);
            // Mostly the next batch, sometimes a retry of the last one.
            let first = if r.is_multiple_of(5) && *next > 0 {
                *next - 10
            } else {
                *next
            };
            *next = (*next).max(first + 10);
            entries.push(produce_at(2 + i, at, expiration, id, (first, first + 9)));
            if i == 150 || i == 300 {
                entries.push(trim(0, u64::MAX));
            }
        }
        // Number the entries.
        for (n, e) in entries.iter_mut().enumerate() {
            e.log_id = log_id(n as u64 + 1);
        }
        let mid = 200;

        let mut whole = open_replica();
        whole.append_and_apply(entries.clone()).await;

        let mut restarted = open_replica();
        restarted.append_and_apply(entries[..mid].to_vec()).await;
        restarted.restart();
        restarted.append_and_apply(entries[mid..].to_vec()).await;

        let mut leader = open_replica();
        leader.append_and_apply(entries[..mid].to_vec()).await;
        let snap = leader.snapshot().await;
        let cut = snap.meta.last_log_id.unwrap().index as usize;
        let mut installed = open_replica();
        installed
            .sm
            .install_snapshot(&snap.meta, snap.snapshot)
            .await
            .unwrap();
        installed.append_and_apply(entries[cut..].to_vec()).await;

        let expected = whole.producers_in_memory();
        assert!(
            expected.len() < 10,
            "some producers expired: {}",
            expected.len()
        );
        // Some batches were retries refused as duplicates, not all.
        assert!((3000..4000).contains(&whole.log.high_watermark()));
        for (name, r) in [("restarted", &mut restarted), ("installed", &mut installed)] {
            assert_eq!(r.producers_in_memory(), expected, "{name}: in memory");
            assert_eq!(r.producers_in_store(), expected, "{name}: in the store");
            assert_eq!(r.rows(), whole.rows(), "{name}: index rows");
            r.restart();
            assert_eq!(r.producers_in_memory(), expected, "{name}: after a restart");
        }
        assert_eq!(whole.producers_in_store(), expected);
        // Their next snapshots, all cut after the last entry, agree too.
        let mut snapshots = Vec::new();
        for r in [&mut whole, &mut restarted, &mut installed] {
            assert!(r.sm.try_create_snapshot_builder(false).await.is_some());
            snapshots.push(r.producers_in_snapshot().await);
        }
        assert_eq!(snapshots[0], expected);
        assert_eq!(snapshots[1], expected);
        assert_eq!(snapshots[2], expected);
    }

    /// The producer clock never moves back: a batch stamped by a leader
    /// whose clock is behind counts as seen at the partition's latest time,
    /// so the producer does not expire early.
    #[tokio::test]
    async fn a_lagging_leaders_stamp_does_not_expire_producers_early() {
        let mut r = open_replica();
        r.append_and_apply(vec![membership(1, &[1, 2, 3])]).await;
        assert_eq!(
            hwm_after(&mut r, produce_at(2, T0, HOUR, 42, (0, 9))).await,
            10
        );
        // The next leader's clock is 10 minutes behind.
        let lagging = T0 - 10 * MINUTE;
        assert_eq!(
            hwm_after(&mut r, produce_at(3, lagging, HOUR, 9, (0, 9))).await,
            20
        );
        assert_eq!(r.sm.meta.producer_clock_ms, Some(T0));
        // Producer 9 was seen at T0, not ten minutes before: live until T0 + 1h.
        assert_eq!(
            hwm_after(&mut r, produce_at(4, T0 + HOUR - 1, HOUR, 9, (0, 9))).await,
            20,
            "still a duplicate"
        );
        assert_eq!(
            hwm_after(&mut r, produce_at(5, T0 + HOUR, HOUR, 9, (0, 9))).await,
            30,
            "expired an hour after the clock's time"
        );
        // The clock survives a restart.
        r.restart();
        assert_eq!(r.sm.meta.producer_clock_ms, Some(T0 + HOUR));
    }

    /// Producers written by entries without a stamp (before the upgrade)
    /// have no last-seen time: the first stamped entries give them theirs,
    /// so they live one more expiration, then go like any other.
    #[tokio::test]
    async fn producers_from_before_stamps_expire_an_expiration_after_the_first_stamp() {
        let mut r = open_replica();
        let mut entries = vec![membership(1, &[1, 2, 3])];
        // Producer 42 (the `produce` helper) writes without stamps.
        entries.push(produce(2, 10, 1000, Some((0, 9))));
        entries.push(produce(3, 10, 1001, Some((10, 19))));
        r.append_and_apply(entries).await;
        assert_eq!(r.producers_in_memory()[0].1.last_seen_ms, None);
        // A restart reads the rows back as they are.
        r.restart();
        assert_eq!(r.producers_in_memory()[0].1.last_seen_ms, None);
        // The first stamped entry, by another producer.
        assert_eq!(
            hwm_after(&mut r, produce_at(4, T0, HOUR, 7, (0, 9))).await,
            30
        );
        assert_eq!(
            r.producers_in_store(),
            r.producers_in_memory(),
            "the time given is stored"
        );
        assert_eq!(
            r.producers_in_memory()
                .iter()
                .map(|(id, s)| (*id, s.last_seen_ms))
                .collect::<Vec<_>>(),
            vec![(7, Some(T0)), (42, Some(T0))]
        );
        // A retry of 42's last batch just short of an hour later: a duplicate.
        assert_eq!(
            hwm_after(&mut r, produce_at(5, T0 + HOUR - 1, HOUR, 42, (10, 19))).await,
            30
        );
        assert_eq!(
            hwm_after(&mut r, produce_at(6, T0 + HOUR, HOUR, 1, (0, 9))).await,
            40
        );
        assert_eq!(
            r.producers_in_memory()
                .iter()
                .map(|(id, _)| *id)
                .collect::<Vec<_>>(),
            vec![1],
            "42 and 7 expired"
        );
    }

    use crate::test_hex::hex;
    use crate::test_hex::unhex;

    /// The state machine's row as stored. The second format was written by
    /// Cairn before producer expiry (commit 58c05b8) and must still load;
    /// the third is the same bytes followed by the producer clock (before
    /// snapshots were replayed, commit 3b955eb), the current one the third
    /// followed by the replay fields. A row of an older format says its
    /// entries were applied without reject rows. Log ids are those of store
    /// format 2 (the term alone, ADR 0016) in all three layouts.
    #[test]
    fn the_stored_state_row_keeps_its_bytes() {
        let lid = |i| {
            LogId::new(
                <TypeConfig as RaftTypeConfig>::LeaderId::new_committed(2, 1),
                i,
            )
        };
        let m = openraft::Membership::<u64, openraft::BasicNode>::new_with_defaults(
            vec![BTreeSet::from([1, 2, 3])],
            [],
        );
        let membership = StoredMembership::new(Some(lid(1)), m);
        let mut meta = SmMeta {
            applied: Some(lid(9)),
            membership: membership.clone(),
            next_offset: 120,
            log_start: 100,
            preapplied_through: Some(8),
            memberships: vec![membership.clone()],
            purge: Some(PurgePoint {
                log_id: lid(4),
                membership,
            }),
            producer_clock_ms: None,
            rejects_unknown_through: Some(9),
            ..SmMeta::default()
        };
        let second_format = "01020901020101030102030301096c6f63616c686f737402096c6f63616c686f737403096c6f63616c686f7374786401080101020101030102030301096c6f63616c686f737402096c6f63616c686f737403096c6f63616c686f737401020401020101030102030301096c6f63616c686f737402096c6f63616c686f737403096c6f63616c686f7374";
        assert_eq!(SmMeta::decode(&unhex(second_format)).unwrap(), meta);
        meta.producer_clock_ms = Some(1_700_000_000_000);
        let third_format = format!("{second_format}01fd00d0ca9f17030000");
        assert_eq!(SmMeta::decode(&unhex(&third_format)).unwrap(), meta);
        meta.purge_next_offset = Some(100);
        meta.replay_next_offset = Some(110);
        meta.rejects_unknown_through = None;
        let bytes = encode(&meta).unwrap();
        assert_eq!(hex(&bytes), format!("{third_format}0164016e00"));
        assert_eq!(SmMeta::decode(&bytes).unwrap(), meta);
        assert!(SmMeta::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    /// Partition snapshots as stored and sent. The first format was written
    /// by Cairn before producer expiry (commit 58c05b8) and must still
    /// install; the current one is the same bytes followed by the
    /// producers' last-seen times and the producer clock.
    #[test]
    fn stored_snapshots_keep_their_bytes() {
        let first_format = "0978640264050afd00d0ca9f1703000001fb2c016e060afd02d0ca9f1703000000020e060200126414266e5400010a0a77";
        let v1 = |epoch, recent: &[(i32, i32, u64)]| ProducerStateV1 {
            epoch,
            recent: recent.iter().copied().collect(),
        };
        let mut snapshot = PartitionSnapshot {
            preapplied_through: 9,
            next_offset: 120,
            log_start: 100,
            rows: vec![
                (100, 5, 10, 1_700_000_000_000, Some(300)),
                (110, 6, 10, 1_700_000_000_001, None),
            ],
            producers: vec![
                (7, v1(3, &[(0, 9, 100), (10, 19, 110)])),
                (42, v1(0, &[(5, 5, 119)])),
            ],
            producers_last_seen: vec![None, None],
            producer_clock_ms: None,
        };
        assert_eq!(
            PartitionSnapshot::decode(&unhex(first_format)).unwrap(),
            snapshot
        );
        snapshot.producers_last_seen = vec![Some(1_700_000_000_000), None];
        snapshot.producer_clock_ms = Some(1_700_000_000_005);
        let bytes = encode(&snapshot).unwrap();
        assert_eq!(
            hex(&bytes),
            format!("{first_format}0201fd00d0ca9f170300000001fd0ad0ca9f17030000")
        );
        assert_eq!(PartitionSnapshot::decode(&bytes).unwrap(), snapshot);
        assert_eq!(
            snapshot.producer_states().collect::<Vec<_>>(),
            vec![
                (
                    7,
                    ProducerState {
                        epoch: 3,
                        recent: [(0, 9, 100), (10, 19, 110)].into(),
                        last_seen_ms: Some(1_700_000_000_000),
                    }
                ),
                (
                    42,
                    ProducerState {
                        epoch: 0,
                        recent: [(5, 5, 119)].into(),
                        last_seen_ms: None,
                    }
                ),
            ]
        );
        // A count of times that does not match the producers is refused.
        snapshot.producers_last_seen.pop();
        assert!(PartitionSnapshot::decode(&encode(&snapshot).unwrap()).is_err());
    }

    /// A snapshot of the replay format as sent: the marker, then its fields.
    #[test]
    fn replay_snapshots_keep_their_bytes() {
        let snapshot = ReplaySnapshot {
            preapplied_through: 9,
            next_offset: 120,
            log_start: 100,
            replay_from: 90,
            rejected: vec![6, 8],
            producers: vec![(
                7,
                ProducerStateV1 {
                    epoch: 3,
                    recent: [(0, 9, 100), (10, 19, 110)].into(),
                },
            )],
            producers_last_seen: vec![Some(1_700_000_000_000)],
            producer_clock_ms: Some(1_700_000_000_005),
        };
        let golden =
            "ff6372010978645a020608010e060200126414266e0101fd00d0ca9f1703000001fd0ad0ca9f17030000";
        let bytes = SnapshotContent::Replay(snapshot).encode().unwrap();
        assert_eq!(hex(&bytes), golden);
        let SnapshotContent::Replay(back) = SnapshotContent::decode(&bytes).unwrap() else {
            panic!("decoded as the rows format");
        };
        assert_eq!(back.rejected, vec![6, 8]);
        assert_eq!(encode(&back).unwrap(), bytes[REPLAY_SNAPSHOT_MAGIC.len()..]);
        // A count of times that does not match the producers is refused.
        let mut bad = back;
        bad.producers_last_seen.clear();
        assert!(bad.producer_states().is_err());
    }

    /// A snapshot of the first format (from a leader not yet upgraded)
    /// installs: its producers have no time until the first stamped entry.
    #[tokio::test]
    async fn a_snapshot_of_the_first_format_installs() {
        let first_format = "0978640264050afd00d0ca9f1703000001fb2c016e060afd02d0ca9f1703000000020e060200126414266e5400010a0a77";
        let mut r = open_replica();
        let meta = SnapshotMeta {
            last_log_id: Some(log_id(4)),
            last_membership: StoredMembership::new(
                Some(log_id(1)),
                openraft::Membership::<u64, openraft::BasicNode>::new_with_defaults(
                    vec![BTreeSet::from([1, 2, 3])],
                    [],
                ),
            ),
        };
        r.sm.install_snapshot(&meta, std::io::Cursor::new(unhex(first_format)))
            .await
            .unwrap();
        assert_eq!(r.log.high_watermark(), 120);
        let held = r.producers_in_memory();
        assert_eq!(
            held.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![7, 42]
        );
        assert!(held.iter().all(|(_, s)| s.last_seen_ms.is_none()));
        assert_eq!(r.producers_in_store(), held);
        assert_eq!(r.sm.meta.producer_clock_ms, None);
        // Which entries after the cut appended is not known here: this
        // replica serves snapshots of the rows format, with its rows, until
        // its purge point moves past them.
        let served = r.sm.get_current_snapshot().await.unwrap().unwrap();
        let SnapshotContent::Rows(rows) =
            SnapshotContent::decode(served.snapshot.get_ref()).unwrap()
        else {
            panic!("a replay snapshot without the rejected entries");
        };
        assert_eq!(rows.rows.len(), 2);
    }
}
