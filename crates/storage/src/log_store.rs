//! [`LogStore`]: openraft log storage of one group, inside the shared [`NodeStore`].

use std::fmt;
use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::ops::Bound;
use std::ops::RangeBounds;

use openraft::alias::LogIdOf;
use openraft::alias::VoteOf;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::RaftTypeConfig;
use rocksdb::ReadOptions;
use rocksdb::WriteBatch;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::error::Cause;
use crate::error::Subject;
use crate::error::Verb;
use crate::keys;
use crate::GroupId;
use crate::NodeStore;
use crate::StorageError;

/// Raft log storage (log entries, vote, purged and committed log ids) of one group.
///
/// Durability:
/// - `append` writes the entries unsynced before returning (readable at once) and fires the
///   `IOFlushed` callback from the group-commit syncer after a WAL fsync covering them;
/// - `save_vote` returns after a WAL fsync covering the vote;
/// - `truncate_after`, `purge`, `save_committed` are unsynced. RocksDB recovers a prefix of
///   the WAL, so a lost truncate/purge is lost together with everything written after it.
///
/// Every write of this crate goes through the one RocksDB write path in call order, and
/// every completion is issued in that order, which is the serialization openraft requires.
pub struct LogStore<C> {
    store: NodeStore,
    group: GroupId,
    _config: PhantomData<fn() -> C>,
}

impl<C> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            store: self.store.clone(),
            group: self.group,
            _config: PhantomData,
        }
    }
}

impl<C> fmt::Debug for LogStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore")
            .field("group", &self.group)
            .field("path", &self.store.path())
            .finish()
    }
}

/// `[start, end)` of log indexes for a range; `end` `None` means unbounded. `None` for an
/// empty range.
fn index_bounds(range: &impl RangeBounds<u64>) -> Option<(u64, Option<u64>)> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    match end {
        Some(end) if end <= start => None,
        _ => Some((start, end)),
    }
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
{
    pub(crate) fn new(store: NodeStore, group: GroupId) -> Self {
        LogStore {
            store,
            group,
            _config: PhantomData,
        }
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    pub fn node_store(&self) -> &NodeStore {
        &self.store
    }

    fn err(&self, subject: Subject, verb: Verb, cause: impl Into<Cause>) -> StorageError {
        StorageError::new(self.group, subject, verb, cause)
    }

    fn get_value<T: DeserializeOwned>(
        &self,
        tag: u8,
        subject: Subject,
    ) -> Result<Option<T>, StorageError> {
        let bytes = self
            .store
            .db()
            .get_pinned(keys::tag_key(self.group, tag))
            .map_err(|e| self.err(subject, Verb::Read, e))?;
        match bytes {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes)
                .map(Some)
                .map_err(|e| self.err(subject, Verb::Decode, e)),
        }
    }

    fn put_value<T: Serialize>(
        &self,
        tag: u8,
        subject: Subject,
        value: &T,
    ) -> Result<(), StorageError> {
        let key = keys::tag_key(self.group, tag);
        let value = codec::encode(value).map_err(|e| self.err(subject, Verb::Encode, e))?;
        let user_bytes = (key.len() + value.len()) as u64;
        let mut batch = WriteBatch::default();
        batch.put(key, value);
        self.store
            .write_raw(batch, user_bytes)
            .map_err(|e| self.err(subject, Verb::Write, e))
    }

    fn decode_entry(&self, key: &[u8], value: &[u8]) -> Result<C::Entry, StorageError> {
        let index = keys::log_index_of(self.group, key).ok_or_else(|| {
            self.err(
                Subject::Logs,
                Verb::Decode,
                Cause::Corrupt(format!("key {key:?} is not a log key of this group")),
            )
        })?;
        let entry: C::Entry =
            codec::decode(value).map_err(|e| self.err(Subject::Log(index), Verb::Decode, e))?;
        if entry.index() != index {
            // Not a panic: this is bad bytes on disk, and the node must report it, not crash.
            tracing::error!(
                group = self.group,
                key_index = index,
                entry_index = entry.index(),
                "log entry stored under the wrong index"
            );
            return Err(self.err(
                Subject::Log(index),
                Verb::Decode,
                Cause::Corrupt(format!(
                    "entry with index {} stored under index {index}",
                    entry.index()
                )),
            ));
        }
        Ok(entry)
    }

    /// Entries with index in `[start, end)` (`end` `None`: to the last one), in order.
    fn read_entries(&self, start: u64, end: Option<u64>) -> Result<Vec<C::Entry>, StorageError> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(keys::log_key(self.group, start).to_vec());
        ro.set_iterate_upper_bound(keys::log_upper_bound(self.group, end));
        let mut it = self.store.db().raw_iterator_opt(ro);
        it.seek_to_first();
        let mut entries = Vec::new();
        while let Some((key, value)) = it.item() {
            entries.push(self.decode_entry(key, value)?);
            it.next();
        }
        it.status()
            .map_err(|e| self.err(Subject::Logs, Verb::Read, e))?;
        Ok(entries)
    }

    /// The log id of the last entry present, if any.
    fn last_entry_log_id(&self) -> Result<Option<LogIdOf<C>>, StorageError> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(keys::log_key(self.group, 0).to_vec());
        ro.set_iterate_upper_bound(keys::log_end(self.group).to_vec());
        let mut it = self.store.db().raw_iterator_opt(ro);
        it.seek_to_last();
        match it.item() {
            Some((key, value)) => Ok(Some(self.decode_entry(key, value)?.log_id())),
            None => it
                .status()
                .map(|()| None)
                .map_err(|e| self.err(Subject::Logs, Verb::Read, e)),
        }
    }

    fn do_get_log_state(&self) -> Result<LogState<C>, StorageError> {
        let last_purged_log_id: Option<LogIdOf<C>> =
            self.get_value(keys::TAG_PURGED, Subject::Purged)?;
        let last_log_id = match self.last_entry_log_id()? {
            Some(id) => Some(id),
            None => last_purged_log_id.clone(),
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    /// Write `entries` in one unsynced batch; returns how many.
    fn write_entries<I>(&self, entries: I) -> Result<usize, StorageError>
    where
        I: IntoIterator<Item = C::Entry>,
    {
        let mut batch = WriteBatch::default();
        let mut user_bytes = 0u64;
        let mut count = 0usize;
        let mut last_index = None;
        for entry in entries {
            let index = entry.index();
            let value = codec::encode(&entry)
                .map_err(|e| self.err(Subject::Log(index), Verb::Encode, e))?;
            let key = keys::log_key(self.group, index);
            user_bytes += (key.len() + value.len()) as u64;
            batch.put(key, value);
            count += 1;
            last_index = Some(index);
        }
        if count > 0 {
            self.store
                .write_raw(batch, user_bytes)
                .map_err(|e| self.err(Subject::Logs, Verb::Write, e))?;
        }
        tracing::trace!(group = self.group, count, last_index, "appended");
        Ok(count)
    }

    fn do_truncate_after(&self, last_log_id: Option<&LogIdOf<C>>) -> Result<(), StorageError> {
        let start = match last_log_id {
            None => 0,
            Some(id) => match id.index().checked_add(1) {
                Some(start) => start,
                None => return Ok(()), // nothing can follow u64::MAX
            },
        };
        let from = keys::log_key(self.group, start);
        let to = keys::log_end(self.group);
        let mut batch = WriteBatch::default();
        batch.delete_range(&from[..], &to[..]);
        let _removal = self.store.lock_log_removal();
        self.store
            .write_raw(batch, (from.len() + to.len()) as u64)
            .map_err(|e| self.err(Subject::Logs, Verb::Write, e))?;
        tracing::debug!(group = self.group, from_index = start, "truncated log");
        Ok(())
    }

    fn do_purge(&self, log_id: &LogIdOf<C>) -> Result<(), StorageError> {
        let purged_key = keys::tag_key(self.group, keys::TAG_PURGED);
        let purged_value =
            codec::encode(log_id).map_err(|e| self.err(Subject::Purged, Verb::Encode, e))?;
        let from = keys::log_key(self.group, 0).to_vec();
        let to = keys::log_upper_bound(self.group, log_id.index().checked_add(1));
        let user_bytes = (purged_key.len() + purged_value.len() + from.len() + to.len()) as u64;
        // One batch: the purge point is never behind the deletion, even across a crash.
        let mut batch = WriteBatch::default();
        batch.put(purged_key, purged_value);
        batch.delete_range(from, to);
        let _removal = self.store.lock_log_removal();
        self.store
            .write_raw(batch, user_bytes)
            .map_err(|e| self.err(Subject::Purged, Verb::Write, e))?;
        tracing::debug!(
            group = self.group,
            upto_index = log_id.index(),
            "purged log"
        );
        Ok(())
    }

    /// Replaces log entries that are still stored, unchanged in their log id, with
    /// `entries` (same index, same log id, new payload), and applies `state` in the
    /// same atomic write. For log compaction, which rewrites committed entries with
    /// fewer records.
    ///
    /// An entry is skipped (its index is returned) when it is no longer stored: purged
    /// (at or below the purged log id), truncated, or replaced by an entry of another
    /// log id. The check and the write are done under the lock that truncation, purge
    /// and group deletion also take, so a rewrite never brings back a removed entry.
    /// When the group itself is gone (no vote: deleted), nothing is written and every
    /// index is returned.
    ///
    /// Unsynced, like every write of this crate besides the vote.
    pub fn rewrite_entries(
        &self,
        entries: Vec<C::Entry>,
        state: crate::StateBatch,
    ) -> Result<Vec<u64>, StorageError> {
        let _removal = self.store.lock_log_removal();
        let db = self.store.db();
        let vote_key = keys::tag_key(self.group, keys::TAG_VOTE);
        let group_alive = db
            .get_pinned(vote_key)
            .map_err(|e| self.err(Subject::Vote, Verb::Read, e))?
            .is_some();
        if !group_alive {
            return Ok(entries.iter().map(|e| e.index()).collect());
        }
        let purged: Option<LogIdOf<C>> = self.get_value(keys::TAG_PURGED, Subject::Purged)?;
        let purged_upto = purged.map(|p| p.index());
        let (mut batch, mut user_bytes) = state.into_parts();
        let mut skipped = Vec::new();
        for entry in entries {
            let index = entry.index();
            if purged_upto.is_some_and(|p| index <= p) {
                skipped.push(index);
                continue;
            }
            let key = keys::log_key(self.group, index);
            let stored = db
                .get_pinned(key)
                .map_err(|e| self.err(Subject::Log(index), Verb::Read, e))?;
            let same = match stored {
                Some(bytes) => self.decode_entry(&key, &bytes)?.log_id() == entry.log_id(),
                None => false,
            };
            if !same {
                skipped.push(index);
                continue;
            }
            let value = codec::encode(&entry)
                .map_err(|e| self.err(Subject::Log(index), Verb::Encode, e))?;
            user_bytes += (key.len() + value.len()) as u64;
            batch.put(key, value);
        }
        if !batch.is_empty() {
            self.store
                .write_raw(batch, user_bytes)
                .map_err(|e| self.err(Subject::Logs, Verb::Write, e))?;
        }
        Ok(skipped)
    }

    fn do_save_committed(&self, committed: Option<&LogIdOf<C>>) -> Result<(), StorageError> {
        match committed {
            Some(id) => self.put_value(keys::TAG_COMMITTED, Subject::Committed, id),
            None => {
                let key = keys::tag_key(self.group, keys::TAG_COMMITTED);
                let mut batch = WriteBatch::default();
                batch.delete(key);
                self.store
                    .write_raw(batch, key.len() as u64)
                    .map_err(|e| self.err(Subject::Committed, Verb::Write, e))
            }
        }
    }
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig,
{
    async fn try_get_log_entries<RB>(&mut self, range: RB) -> Result<Vec<C::Entry>, io::Error>
    where
        RB: RangeBounds<u64> + Clone + Debug + OptionalSend,
    {
        match index_bounds(&range) {
            None => Ok(Vec::new()),
            Some((start, end)) => Ok(self.read_entries(start, end)?),
        }
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.get_value(keys::TAG_VOTE, Subject::Vote)?)
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        Ok(self.do_get_log_state()?)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        self.put_value(keys::TAG_VOTE, Subject::Vote, vote)?;
        self.store.sync_for(self.group).await?;
        tracing::debug!(group = self.group, %vote, "saved vote");
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        Ok(self.do_save_committed(committed.as_ref())?)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.get_value(keys::TAG_COMMITTED, Subject::Committed)?)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // On a write error the callback is dropped unfired; openraft sees the returned error.
        self.write_entries(entries)?;
        let group = self.group;
        self.store.after_sync(Box::new(move |outcome| {
            let result = outcome.map_err(|f| {
                io::Error::from(StorageError::new(
                    group,
                    Subject::Wal,
                    Verb::Sync,
                    f.into_cause(),
                ))
            });
            callback.io_completed(result);
        }));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        Ok(self.do_truncate_after(last_log_id.as_ref())?)
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        Ok(self.do_purge(&log_id)?)
    }
}

#[cfg(test)]
mod tests {
    use super::index_bounds;

    #[test]
    fn index_bounds_cover_all_range_forms() {
        assert_eq!(index_bounds(&(3..7)), Some((3, Some(7))));
        assert_eq!(index_bounds(&(3..=7)), Some((3, Some(8))));
        assert_eq!(index_bounds(&(3..)), Some((3, None)));
        assert_eq!(index_bounds(&(..)), Some((0, None)));
        assert_eq!(index_bounds(&(..=u64::MAX)), Some((0, None)));
        assert_eq!(index_bounds(&(5..5)), None);
        let (start, end) = (6, 5);
        assert_eq!(index_bounds(&(start..end)), None);
        assert_eq!(
            index_bounds(&(
                std::ops::Bound::Excluded(u64::MAX),
                std::ops::Bound::Unbounded
            )),
            None
        );
    }
}
