//! Log compaction of one partition replica (`cleanup.policy=compact`).
//!
//! Local to the replica, as in Kafka: every replica compacts its own copy of
//! the committed log; nothing of it goes through Raft. Only applied entries
//! are touched (offsets below the high watermark). Compaction goes in passes
//! of bounded steps:
//!
//! ```text
//!   state keyspace of the group (not replicated):
//!     "cleaned"                 -> u64 BE: everything below is compacted
//!     "scanned"                 -> u64 BE: scan point of the pass under way
//!     'k' key                   -> latest offset, timestamp, tombstone flag
//!     't' ts(u64 BE) offset(BE) -> key: tombstones waiting for expiry
//!     'x' offset(BE)            -> (): records waiting for removal
//! ```
//!
//! A pass first scans what is new since the last one, a chunk per step: for
//! each record the key map says which earlier record of the same key it
//! supersedes, and that record's offset joins the removal queue. Then it
//! queues the tombstones whose `delete.retention.ms` passed (a tombstone
//! stays as its key's latest record until then), and rewrites the entries
//! holding queued records, a chunk of entries per step, without them (same
//! raft index, same log id, same offsets: see `cairn_record::retain_records`).
//! Each step is one atomic RocksDB write (rewritten entries and state rows
//! together), so a crash keeps all or none of a step.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::ops::ControlFlow;

use bytes::Bytes;
use bytes::BytesMut;
use cairn_raft::Entry;
use cairn_raft::ProduceCommand;
use cairn_raft::Request;
use cairn_raft::TypeConfig;
use cairn_storage::LogStore;
use cairn_storage::StateBatch;
use cairn_storage::StorageError;
use openraft::EntryPayload;
use openraft::RaftLogReader;

use crate::index::IndexEntry;
use crate::log::PartitionLog;

/// State key of the clean point.
const CLEANED_KEY: &[u8] = b"cleaned";
/// State key of the scan point of the pass under way.
const SCANNED_KEY: &[u8] = b"scanned";
/// Prefix of removal-queue rows (offset BE, empty value).
const PENDING_PREFIX: u8 = b'x';
/// Queued offsets looked at per step at most.
const MAX_QUEUED_PER_STEP: usize = 65_536;
/// Prefix of key-map rows.
const KEY_PREFIX: u8 = b'k';
/// Prefix of tombstone-queue rows.
const TOMBSTONE_PREFIX: u8 = b't';

/// How a compaction step is bounded, and the topic's tombstone retention.
#[derive(Debug, Clone)]
pub struct CompactionConfig {
    /// `delete.retention.ms`: a tombstone is removed once its timestamp is
    /// this far in the past.
    pub delete_retention_ms: i64,
    /// Log entries scanned, or rewritten, per step at most.
    pub max_entries_per_step: usize,
    /// Record bytes scanned, or rewritten, per step at most (the first entry
    /// is taken whatever its size).
    pub max_bytes_per_step: usize,
    /// Expired tombstones removed per step at most.
    pub max_expired_per_step: usize,
    /// Offsets one pass scans at most before it rewrites.
    pub max_offsets_per_pass: u64,
    /// `min.compaction.lag.ms`: an entry whose newest record is younger
    /// than this is not scanned yet, so no record is superseded (removed)
    /// by a record written less than this long ago.
    pub min_compaction_lag_ms: i64,
}

impl CompactionConfig {
    pub fn new(delete_retention_ms: i64) -> Self {
        Self {
            delete_retention_ms,
            max_entries_per_step: 64,
            max_bytes_per_step: 1 << 20,
            max_expired_per_step: 1024,
            max_offsets_per_pass: 1 << 20,
            min_compaction_lag_ms: 0,
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionStep {
    /// Dirty entries scanned (and now clean).
    pub scanned_entries: usize,
    /// Entries rewritten with fewer records.
    pub rewritten_entries: usize,
    /// Records removed (superseded ones and expired tombstones).
    pub removed_records: usize,
    /// Tombstones removed because `delete.retention.ms` had passed.
    pub expired_tombstones: usize,
    /// Offsets taken off the removal queue.
    pub dequeued: usize,
    /// The clean point after the step.
    pub cleaned_through: u64,
    /// Nothing was left to do: no dirty entry, no expired tombstone.
    pub done: bool,
    /// The step stopped at an entry that is indexed but not in this
    /// replica's log yet (after a snapshot install): it goes on once the
    /// entry is replicated.
    pub waiting_for_entries: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("log read: {0}")]
    Read(#[from] std::io::Error),
    #[error("partition data is inconsistent: {0}")]
    Corrupt(String),
}

/// The latest record of a key, as the key map holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Latest {
    offset: u64,
    timestamp: i64,
    tombstone: bool,
}

impl Latest {
    fn encode(&self) -> [u8; 17] {
        let mut v = [0u8; 17];
        v[..8].copy_from_slice(&self.offset.to_be_bytes());
        v[8..16].copy_from_slice(&self.timestamp.to_be_bytes());
        v[16] = u8::from(self.tombstone);
        v
    }

    fn decode(v: &[u8]) -> Option<Latest> {
        if v.len() != 17 {
            return None;
        }
        Some(Latest {
            offset: u64::from_be_bytes(v[..8].try_into().ok()?),
            timestamp: i64::from_be_bytes(v[8..16].try_into().ok()?),
            tombstone: v[16] != 0,
        })
    }
}

fn key_row(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(KEY_PREFIX);
    k.extend_from_slice(key);
    k
}

/// Timestamps sort as unsigned big-endian once the sign bit is flipped.
fn sortable_ts(ts: i64) -> u64 {
    (ts as u64) ^ (1 << 63)
}

fn tombstone_row(timestamp: i64, offset: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = TOMBSTONE_PREFIX;
    k[1..9].copy_from_slice(&sortable_ts(timestamp).to_be_bytes());
    k[9..].copy_from_slice(&offset.to_be_bytes());
    k
}

fn pending_row(offset: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = PENDING_PREFIX;
    k[1..].copy_from_slice(&offset.to_be_bytes());
    k
}

fn decode_tombstone_row(k: &[u8]) -> Option<(i64, u64)> {
    if k.len() != 17 || k[0] != TOMBSTONE_PREFIX {
        return None;
    }
    let ts = u64::from_be_bytes(k[1..9].try_into().ok()?) ^ (1 << 63);
    Some((ts as i64, u64::from_be_bytes(k[9..].try_into().ok()?)))
}

fn produce_command(entry: &Entry) -> Result<&ProduceCommand, CompactionError> {
    match &entry.payload {
        EntryPayload::Normal(Request::Produce(cmd)) => Ok(cmd),
        _ => Err(CompactionError::Corrupt(format!(
            "raft entry {} is indexed but holds no records",
            entry.log_id.index
        ))),
    }
}

fn corrupt(e: cairn_record::RecordError) -> CompactionError {
    CompactionError::Corrupt(e.to_string())
}

/// Each batch of `records` with its real base offset (the entry's first
/// offset is `base`; each batch spans `lastOffsetDelta + 1` offsets).
fn batches_with_offsets(base: u64, records: &Bytes) -> Result<Vec<(u64, &[u8])>, CompactionError> {
    let mut out = Vec::new();
    let mut next = base;
    for batch in cairn_record::split_batches(records) {
        let batch = batch.map_err(corrupt)?;
        let header = cairn_record::RecordBatchHeader::parse(batch).map_err(corrupt)?;
        out.push((next, batch));
        next = next.saturating_add(u64::try_from(header.offset_count()).unwrap_or(0));
    }
    Ok(out)
}

/// `records` (the batches of the entry starting at offset `base`) without
/// the records at the offsets in `remove`; `None` if none of them is there.
fn without_offsets(
    base: u64,
    records: &Bytes,
    remove: &BTreeSet<u64>,
) -> Result<Option<Bytes>, CompactionError> {
    let mut out = BytesMut::with_capacity(records.len());
    let mut changed = false;
    for (first, batch) in batches_with_offsets(base, records)? {
        let header = cairn_record::RecordBatchHeader::parse(batch).map_err(corrupt)?;
        let end = first.saturating_add(u64::try_from(header.offset_count()).unwrap_or(0));
        if remove.range(first..end).next().is_none() {
            out.extend_from_slice(batch);
            continue;
        }
        let mut copy = batch.to_vec();
        cairn_record::set_base_offset(&mut copy, first as i64).map_err(corrupt)?;
        match cairn_record::retain_records(&copy, |r| !remove.contains(&(r.offset as u64)))
            .map_err(corrupt)?
        {
            Some(thinned) => {
                changed = true;
                out.extend_from_slice(&thinned);
            }
            None => out.extend_from_slice(batch),
        }
    }
    Ok(changed.then(|| out.freeze()))
}

/// The pending changes of one step, written atomically at its end.
#[derive(Default)]
struct StepChanges {
    /// Key map overlay: `None` removes the key's row.
    latest: HashMap<Bytes, Option<Latest>>,
    tombstones_added: BTreeMap<[u8; 17], Bytes>,
    tombstones_removed: BTreeSet<[u8; 17]>,
    /// Offsets of records to remove.
    remove: BTreeSet<u64>,
}

impl PartitionLog {
    /// Offsets below this have been compacted on this replica.
    pub fn cleaned_through(&self) -> Result<u64, CompactionError> {
        let stored = self.store.state_get(self.shared.group, CLEANED_KEY)?;
        Ok(match stored {
            Some(v) => u64::from_be_bytes(v.as_slice().try_into().map_err(|_| {
                CompactionError::Corrupt(format!("clean point is {} bytes, expected 8", v.len()))
            })?),
            None => 0,
        })
    }

    fn stored_latest(&self, key: &[u8]) -> Result<Option<Latest>, CompactionError> {
        match self.store.state_get(self.shared.group, &key_row(key))? {
            None => Ok(None),
            Some(v) => Latest::decode(&v).map(Some).ok_or_else(|| {
                CompactionError::Corrupt(format!("key map row of {} bytes", v.len()))
            }),
        }
    }

    fn latest_of(
        &self,
        changes: &StepChanges,
        key: &[u8],
    ) -> Result<Option<Latest>, CompactionError> {
        match changes.latest.get(key) {
            Some(v) => Ok(*v),
            None => self.stored_latest(key),
        }
    }

    /// Index rows with `from <= base offset < to`, at most `max`.
    fn rows_between(
        &self,
        from: u64,
        to: u64,
        max: usize,
    ) -> Result<Vec<IndexEntry>, CompactionError> {
        let mut rows = Vec::new();
        let mut bad = None;
        self.store.state_visit(
            self.shared.group,
            &IndexEntry::key(from),
            Some(&IndexEntry::key(to)),
            |k, v| match IndexEntry::decode(k, v) {
                Some(row) => {
                    rows.push(row);
                    if rows.len() >= max {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                }
                None => {
                    bad = Some(format!("bad index row under key {k:?}"));
                    ControlFlow::Break(())
                }
            },
        )?;
        match bad {
            Some(b) => Err(CompactionError::Corrupt(b)),
            None => Ok(rows),
        }
    }

    /// The index row of the entry holding `offset`, if it is still indexed.
    fn row_of(&self, offset: u64) -> Result<Option<IndexEntry>, CompactionError> {
        let found = self
            .store
            .state_seek_prev(self.shared.group, &IndexEntry::key(offset))?;
        Ok(found
            .and_then(|(k, v)| IndexEntry::decode(&k, &v))
            .filter(|row| row.base_offset <= offset && offset < row.next_offset()))
    }

    async fn load_entry(
        log: &mut LogStore<TypeConfig>,
        row: &IndexEntry,
    ) -> Result<Option<Entry>, CompactionError> {
        let entries = log
            .try_get_log_entries(row.raft_index..row.raft_index + 1)
            .await?;
        Ok(entries.into_iter().next())
    }

    /// Notes record (`key`, `latest`): the key's previous latest record is
    /// superseded.
    fn supersede(
        &self,
        changes: &mut StepChanges,
        key: Bytes,
        latest: Latest,
    ) -> Result<(), CompactionError> {
        if let Some(prev) = self.latest_of(changes, &key)? {
            changes.remove.insert(prev.offset);
            if prev.tombstone {
                let row = tombstone_row(prev.timestamp, prev.offset);
                if changes.tombstones_added.remove(&row).is_none() {
                    changes.tombstones_removed.insert(row);
                }
            }
        }
        if latest.tombstone {
            changes
                .tombstones_added
                .insert(tombstone_row(latest.timestamp, latest.offset), key.clone());
        }
        changes.latest.insert(key, Some(latest));
        Ok(())
    }

    fn stored_offset(&self, key: &[u8]) -> Result<Option<u64>, CompactionError> {
        match self.store.state_get(self.shared.group, key)? {
            None => Ok(None),
            Some(v) => Ok(Some(u64::from_be_bytes(v.as_slice().try_into().map_err(
                |_| CompactionError::Corrupt(format!("{key:?} is {} bytes, expected 8", v.len())),
            )?))),
        }
    }

    /// One bounded compaction step at time `now_ms` (ms since the epoch).
    /// Call it until [`CompactionStep::done`]. A pass has two phases:
    ///
    /// 1. scan: while there are dirty entries, scan the next chunk, update
    ///    the key map and queue the offsets of the records it supersedes;
    /// 2. rewrite: queue the tombstones whose `delete.retention.ms` passed,
    ///    then rewrite the entries holding queued offsets, a chunk of entries
    ///    per step, in log order. Once the queue is empty, the clean point
    ///    moves to where the scan ended.
    ///
    /// Deferring the rewrites to the end of the pass rewrites each entry at
    /// most once per pass, however many of its records the pass supersedes.
    pub async fn compact_step(
        &self,
        config: &CompactionConfig,
        now_ms: i64,
    ) -> Result<CompactionStep, CompactionError> {
        let group = self.shared.group;
        let high_watermark = self.high_watermark();
        let log_start = self.log_start();
        let cleaned = self.cleaned_through()?;
        let scanned = self
            .stored_offset(SCANNED_KEY)?
            .unwrap_or(cleaned)
            .max(log_start);
        let mut step = CompactionStep {
            cleaned_through: cleaned,
            ..CompactionStep::default()
        };
        let mut log: LogStore<TypeConfig> = self.store.log_store(group);
        let mut changes = StepChanges::default();
        let mut state = StateBatch::new();
        let mut rows =
            self.rows_between(scanned, high_watermark, config.max_entries_per_step.max(1))?;
        if config.min_compaction_lag_ms > 0 {
            // Entries within the lag stay dirty, and so does all after them
            // (the scan goes in log order).
            let newest = now_ms.saturating_sub(config.min_compaction_lag_ms);
            if let Some(i) = rows.iter().position(|r| r.max_timestamp_ms > newest) {
                rows.truncate(i);
            }
        }
        let mut rewritten = Vec::new();

        if !rows.is_empty() {
            // Phase 1: scan a dirty chunk.
            let mut bytes = 0usize;
            let mut scanned_to = scanned;
            for row in rows {
                if step.scanned_entries > 0 && bytes >= config.max_bytes_per_step {
                    break;
                }
                let Some(entry) = Self::load_entry(&mut log, &row).await? else {
                    if row.next_offset() <= self.log_start() {
                        // Purged meanwhile: nothing left to compact there.
                        scanned_to = row.next_offset();
                        step.scanned_entries += 1;
                        continue;
                    }
                    // Indexed but not in this replica's log yet: a replica
                    // that installed a snapshot holds the index rows of
                    // entries replicated after it. The scan waits here;
                    // passing it would leave the entry's records out of
                    // the key map for good (reliability finding 14).
                    step.waiting_for_entries = true;
                    break;
                };
                scanned_to = row.next_offset();
                step.scanned_entries += 1;
                let cmd = produce_command(&entry)?;
                bytes += cmd.records.len();
                for (first, batch) in batches_with_offsets(row.base_offset, &cmd.records)? {
                    let mut copy = batch.to_vec();
                    cairn_record::set_base_offset(&mut copy, first as i64).map_err(corrupt)?;
                    let (header, records) =
                        cairn_record::decode_batch(&Bytes::from(copy)).map_err(corrupt)?;
                    if header.is_control() {
                        continue;
                    }
                    for r in records {
                        // A record without a key cannot be superseded; it stays.
                        let Some(key) = r.key.clone() else { continue };
                        let latest = Latest {
                            offset: r.offset(&header) as u64,
                            timestamp: r.timestamp(&header),
                            tombstone: r.value.is_none(),
                        };
                        self.supersede(&mut changes, key, latest)?;
                    }
                }
            }
            state.put(group, SCANNED_KEY, &scanned_to.to_be_bytes());
        } else {
            // Phase 2a: tombstones whose delete.retention.ms passed join the queue.
            let cutoff = now_ms.saturating_sub(config.delete_retention_ms);
            let mut expired: Vec<([u8; 17], u64, Bytes)> = Vec::new();
            let mut bad = None;
            self.store.state_visit(
                group,
                &[TOMBSTONE_PREFIX],
                Some(&[TOMBSTONE_PREFIX + 1]),
                |k, v| match decode_tombstone_row(k) {
                    Some((ts, _)) if ts > cutoff => ControlFlow::Break(()),
                    Some((_, offset)) => {
                        let row: [u8; 17] = k.try_into().unwrap_or([0; 17]);
                        expired.push((row, offset, Bytes::copy_from_slice(v)));
                        if expired.len() >= config.max_expired_per_step.max(1) {
                            ControlFlow::Break(())
                        } else {
                            ControlFlow::Continue(())
                        }
                    }
                    None => {
                        bad = Some(format!("bad tombstone row {k:?}"));
                        ControlFlow::Break(())
                    }
                },
            )?;
            if let Some(b) = bad {
                return Err(CompactionError::Corrupt(b));
            }
            for (row, offset, key) in expired {
                changes.tombstones_removed.insert(row);
                if self
                    .latest_of(&changes, &key)?
                    .is_some_and(|l| l.offset == offset)
                {
                    changes.remove.insert(offset);
                    changes.latest.insert(key, None);
                    step.expired_tombstones += 1;
                }
            }

            // Phase 2b: rewrite the entries of the first queued offsets.
            let mut queued: Vec<u64> = Vec::new();
            let mut bad = None;
            self.store.state_visit(
                group,
                &[PENDING_PREFIX],
                Some(&[PENDING_PREFIX + 1]),
                |k, _| {
                    match k
                        .get(1..9)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_be_bytes)
                    {
                        Some(o) if k.len() == 9 => queued.push(o),
                        _ => {
                            bad = Some(format!("bad queue row {k:?}"));
                            return ControlFlow::Break(());
                        }
                    }
                    if queued.len() >= MAX_QUEUED_PER_STEP {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                },
            )?;
            if let Some(b) = bad {
                return Err(CompactionError::Corrupt(b));
            }
            let mut by_entry: BTreeMap<u64, (IndexEntry, BTreeSet<u64>)> = BTreeMap::new();
            let mut current: Option<IndexEntry> = None;
            for offset in queued {
                let row = match current.filter(|r| offset < r.next_offset()) {
                    Some(r) => Some(r),
                    None => self.row_of(offset)?,
                };
                let Some(row) = row else {
                    // No longer indexed (purged): nothing to rewrite.
                    state.delete(group, &pending_row(offset));
                    step.dequeued += 1;
                    continue;
                };
                if !by_entry.contains_key(&row.raft_index)
                    && by_entry.len() >= config.max_entries_per_step.max(1)
                {
                    break;
                }
                by_entry
                    .entry(row.raft_index)
                    .or_insert_with(|| (row, BTreeSet::new()))
                    .1
                    .insert(offset);
                current = Some(row);
            }
            // Entries in log order until the byte budget is used: one write
            // of about `max_bytes_per_step`, never a burst of the whole queue.
            let mut bytes = 0usize;
            for (_, (row, offsets)) in by_entry {
                if !rewritten.is_empty() && bytes >= config.max_bytes_per_step {
                    break;
                }
                let entry = Self::load_entry(&mut log, &row).await?;
                if entry.is_none() && row.next_offset() > self.log_start() {
                    // Not in this replica's log yet (see the scan): the
                    // queued records stay queued until it is.
                    step.waiting_for_entries = true;
                    break;
                }
                for offset in &offsets {
                    state.delete(group, &pending_row(*offset));
                }
                step.dequeued += offsets.len();
                let Some(entry) = entry else {
                    continue; // purged: nothing left to remove there
                };
                let cmd = produce_command(&entry)?;
                if let Some(records) = without_offsets(row.base_offset, &cmd.records, &offsets)? {
                    bytes += records.len();
                    step.removed_records += offsets.len();
                    let mut new_entry = entry.clone();
                    new_entry.payload = EntryPayload::Normal(Request::Produce(ProduceCommand {
                        records,
                        ..cmd.clone()
                    }));
                    rewritten.push(new_entry);
                }
            }
            if step.dequeued == 0
                && step.expired_tombstones == 0
                && !step.waiting_for_entries
                && cleaned != scanned
            {
                // The pass is complete: everything below the scan point is compacted.
                state.put(group, CLEANED_KEY, &scanned.to_be_bytes());
                step.cleaned_through = scanned;
            }
        }

        // One atomic write: entries, key map, tombstone and removal queues,
        // scan and clean points.
        for (key, latest) in &changes.latest {
            match latest {
                Some(l) => state.put(group, &key_row(key), &l.encode()),
                None => state.delete(group, &key_row(key)),
            }
        }
        for (row, key) in &changes.tombstones_added {
            state.put(group, row, key);
        }
        for row in &changes.tombstones_removed {
            state.delete(group, row);
        }
        for offset in &changes.remove {
            if *offset >= log_start {
                state.put(group, &pending_row(*offset), &[]);
            }
        }
        step.rewritten_entries = rewritten.len();
        step.done = step.scanned_entries == 0
            && step.expired_tombstones == 0
            && step.dequeued == 0
            && step.cleaned_through == cleaned;
        if !state.is_empty() || !rewritten.is_empty() {
            let skipped = log.rewrite_entries(rewritten, state)?;
            step.rewritten_entries -= skipped.len();
        }
        if !step.done {
            tracing::debug!(
                group,
                scanned = step.scanned_entries,
                dequeued = step.dequeued,
                rewritten = step.rewritten_entries,
                removed = step.removed_records,
                expired_tombstones = step.expired_tombstones,
                cleaned_through = step.cleaned_through,
                "compaction step"
            );
        }
        Ok(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sort_as_their_fields() {
        let rows = [
            tombstone_row(i64::MIN, 5),
            tombstone_row(-1, 0),
            tombstone_row(0, 3),
            tombstone_row(0, 4),
            tombstone_row(1_700_000_000_000, 0),
        ];
        let mut sorted = rows;
        sorted.sort();
        assert_eq!(sorted, rows);
        assert_eq!(decode_tombstone_row(&rows[1]), Some((-1, 0)));
        assert_eq!(decode_tombstone_row(&rows[4]), Some((1_700_000_000_000, 0)));
        let l = Latest {
            offset: 7,
            timestamp: -3,
            tombstone: true,
        };
        assert_eq!(Latest::decode(&l.encode()), Some(l));
        assert_eq!(Latest::decode(&[0; 3]), None);
    }
}
