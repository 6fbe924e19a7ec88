//! [`NodeStore`]: the node's single RocksDB, shared by every Raft group on the node.

use std::fmt;
use std::fs;
use std::io;
use std::ops::ControlFlow;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use openraft::RaftTypeConfig;
use rocksdb::statistics::Ticker;
use rocksdb::Options;
use rocksdb::ReadOptions;
use rocksdb::WriteBatch;
use rocksdb::WriteOptions;
use rocksdb::DB;

use crate::error::Cause;
use crate::error::Subject;
use crate::error::Verb;
use crate::keys;
use crate::syncer::Completion;
use crate::syncer::SyncFailure;
use crate::syncer::Syncer;
use crate::GroupId;
use crate::LogStore;
use crate::StateBatch;
use crate::StorageError;
use crate::StoreOptions;
use crate::StoreStats;
use crate::NODE_GROUP;

/// On-disk format version written at creation under `NODE_GROUP`/`S`/`"format_version"`
/// (u32 BE). Bump it on any incompatible change of the key layout or value encoding.
///
/// - 1: the first format.
/// - 2: log ids and votes of standard Raft leader ids (a log id's leader is its term alone;
///   a vote's leader id is the term and the node voted for). Version 1 stores are refused:
///   their (term, node) log ids cannot be rewritten safely (ADR 0016).
pub const FORMAT_VERSION: u32 = 2;

const FORMAT_VERSION_SUFFIX: &[u8] = b"format_version";

/// A state-machine key and its value.
pub type StateEntry = (Vec<u8>, Vec<u8>);

/// The node's store: one RocksDB holding every Raft group, plus the group-commit syncer.
///
/// Cheap to clone (an `Arc`); the database closes and the syncer thread exits when the last
/// clone — including those inside [`LogStore`]s — is dropped.
///
/// Calls are blocking RocksDB calls (memtable writes, usually cached reads); only the WAL
/// fsync is moved off the caller, to the syncer thread.
#[derive(Clone)]
pub struct NodeStore {
    inner: Arc<Inner>,
}

struct Inner {
    // Declared first so it is dropped first: joining the thread releases its DB handle
    // before ours, so the DB is closed when `Inner` is gone (the path can be reopened).
    syncer: Syncer,
    db: Arc<DB>,
    /// Owner of the RocksDB statistics object read by `stats()`.
    rocks_opts: Options,
    user_bytes: AtomicU64,
    path: PathBuf,
    /// `StoreOptions::hold_apply_while_exists`.
    hold_apply: Option<PathBuf>,
    /// Held by every write that removes log entries (truncate, purge, group
    /// deletion) and by [`LogStore::rewrite_entries`], so that a rewrite
    /// checks and writes an entry with no removal in between: it never brings
    /// back an entry that was just removed.
    log_removal: std::sync::Mutex<()>,
}

impl fmt::Debug for NodeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn open_err(source: impl Into<Cause>) -> StorageError {
    StorageError::new(NODE_GROUP, Subject::Open, Verb::Read, source)
}

fn not_a_store(path: &Path, reason: &str) -> StorageError {
    open_err(Cause::NotAStore {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    })
}

/// What `open` found at the path.
enum Found {
    /// Nothing or an empty directory: create a store. `created` lists the directories made
    /// for it (deepest first), whose entries in their parents must be fsynced.
    Fresh { created: Vec<PathBuf> },
    /// A RocksDB database (ours or not: the format version tells).
    Database,
}

/// Classify `path`, creating missing directories; anything but "missing", "empty
/// directory" or "RocksDB database" is not ours to touch.
fn classify_path(path: &Path) -> Result<Found, StorageError> {
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let created: Vec<PathBuf> = path
                .ancestors()
                .take_while(|dir| !dir.as_os_str().is_empty() && !dir.exists())
                .map(Path::to_path_buf)
                .collect();
            fs::create_dir_all(path)
                .map_err(|e| StorageError::new(NODE_GROUP, Subject::Open, Verb::Write, e))?;
            Ok(Found::Fresh { created })
        }
        Err(e) => Err(open_err(e)),
        Ok(meta) if !meta.is_dir() => Err(not_a_store(path, "not a directory")),
        Ok(_) => {
            if path.join("CURRENT").is_file() {
                return Ok(Found::Database);
            }
            let mut entries = fs::read_dir(path).map_err(open_err)?;
            if entries.next().is_none() {
                Ok(Found::Fresh {
                    created: Vec::new(),
                })
            } else {
                Err(not_a_store(
                    path,
                    "non-empty directory without a RocksDB database",
                ))
            }
        }
    }
}

/// Make the entries of freshly created directories durable in their parents (RocksDB
/// fsyncs its own directory, not the path leading to it).
/// Whether files can be opened with O_DIRECT where the store lives (tmpfs,
/// for one, may refuse it; RocksDB would then fail at its first flush).
fn supports_direct_io(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .ancestors()
        .find(|p| p.is_dir())
        .unwrap_or_else(|| Path::new("."));
    let probe = dir.join(".cairn-direct-io-probe");
    let ok = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

fn sync_parents(created: &[PathBuf]) -> io::Result<()> {
    for dir in created {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn unsynced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(false);
    w.disable_wal(false);
    w
}

impl NodeStore {
    /// Open the store at `path`, creating it if `path` does not exist or is an empty
    /// directory.
    ///
    /// Fails with [`Cause::NotAStore`] for a file, a non-empty directory that holds no
    /// RocksDB database, or a RocksDB database without a Cairn format version; and with
    /// [`Cause::FormatVersion`] for a store of another format version.
    pub fn open(path: &Path, mut opts: StoreOptions) -> Result<NodeStore, StorageError> {
        let found = classify_path(path)?;
        if opts.direct_io_for_flush_and_compaction && !supports_direct_io(path) {
            tracing::warn!(
                path = %path.display(),
                "the filesystem does not support O_DIRECT; flushes and compactions go through the page cache"
            );
            opts.direct_io_for_flush_and_compaction = false;
        }
        let mut rocks_opts = opts.to_rocksdb();
        rocks_opts.create_if_missing(matches!(found, Found::Fresh { .. }));
        let db = Arc::new(DB::open(&rocks_opts, path).map_err(open_err)?);

        let version_key = keys::state_key(NODE_GROUP, FORMAT_VERSION_SUFFIX);
        match db.get(&version_key).map_err(open_err)? {
            Some(bytes) => {
                let found = <[u8; 4]>::try_from(bytes.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| {
                        StorageError::new(
                            NODE_GROUP,
                            Subject::Open,
                            Verb::Decode,
                            Cause::Corrupt(format!(
                                "format version is {} bytes, expected 4",
                                bytes.len()
                            )),
                        )
                    })?;
                if found != FORMAT_VERSION {
                    return Err(open_err(Cause::FormatVersion {
                        found,
                        expected: FORMAT_VERSION,
                    }));
                }
            }
            None => {
                let mut it = db.raw_iterator();
                it.seek_to_first();
                let has_keys = it.valid();
                it.status().map_err(open_err)?;
                drop(it);
                if has_keys {
                    return Err(not_a_store(
                        path,
                        "RocksDB database without a Cairn format version",
                    ));
                }
                let mut w = WriteOptions::default();
                w.set_sync(true);
                db.put_opt(&version_key, FORMAT_VERSION.to_be_bytes(), &w)
                    .map_err(|e| StorageError::new(NODE_GROUP, Subject::Open, Verb::Write, e))?;
                if let Found::Fresh { created } = &found {
                    sync_parents(created)
                        .map_err(|e| StorageError::new(NODE_GROUP, Subject::Open, Verb::Sync, e))?;
                }
                tracing::info!(path = %path.display(), format_version = FORMAT_VERSION, "created store");
            }
        }

        let sync_db = Arc::clone(&db);
        let hold = opts.hold_sync_while_exists.clone();
        let after = opts.after_fsync.clone();
        let fsync = move || {
            if let Some(hold) = &hold {
                while hold.exists() {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
            sync_db.flush_wal(true)?;
            if let Some(after) = &after {
                (after.0)();
            }
            Ok(())
        };
        let syncer = if let Some(delay) = opts.sync_in_runtime {
            Syncer::in_runtime(fsync, delay, opts.plant_ack_before_fsync)
        } else {
            Syncer::spawn(fsync).map_err(open_err)?
        };
        tracing::info!(path = %path.display(), "opened store");
        Ok(NodeStore {
            inner: Arc::new(Inner {
                syncer,
                db,
                rocks_opts,
                user_bytes: AtomicU64::new(0),
                path: path.to_path_buf(),
                hold_apply: opts.hold_apply_while_exists.clone(),
                log_removal: std::sync::Mutex::new(()),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Simulation only: a consistent copy of the store in `dir` (which must
    /// not exist) as its files are now, without flushing first: the live SST
    /// files, the MANIFEST as far as it names them, and every WAL file at
    /// its current size, written or not. RocksDB's background flushes and
    /// compactions may run meanwhile; the copy still opens. The simulator
    /// then cuts each WAL file to what was fsynced (a power loss).
    pub fn checkpoint_unflushed(&self, dir: &Path) -> Result<(), StorageError> {
        let err = |e: rocksdb::Error| StorageError::new(NODE_GROUP, Subject::Open, Verb::Write, e);
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.inner.db).map_err(err)?;
        checkpoint
            .create_checkpoint_with_log_size(dir, u64::MAX)
            .map_err(err)
    }

    /// Fault injection only: the file whose existence holds partition state
    /// machines before they apply (`StoreOptions::hold_apply_while_exists`).
    pub fn hold_apply_path(&self) -> Option<&Path> {
        self.inner.hold_apply.as_deref()
    }

    /// The Raft log storage of `group`. Any number of handles may exist; they share the
    /// store. One group must be driven by one Raft instance at a time.
    pub fn log_store<C: RaftTypeConfig>(&self, group: GroupId) -> LogStore<C> {
        LogStore::new(self.clone(), group)
    }

    /// Remove everything of `group` (log, vote, purged, committed, state) with one range
    /// tombstone. Not synced: call [`NodeStore::sync`] if the removal must survive a crash.
    /// Refuses [`NODE_GROUP`].
    pub fn delete_group(&self, group: GroupId) -> Result<(), StorageError> {
        if group == NODE_GROUP {
            return Err(StorageError::new(
                group,
                Subject::Logs,
                Verb::Write,
                Cause::Invalid("the node group cannot be deleted"),
            ));
        }
        let mut batch = WriteBatch::default();
        let (from, to) = (keys::group_start(group), keys::group_end(group));
        batch.delete_range(&from[..], &to[..]);
        let _removal = self.lock_log_removal();
        self.write_raw(batch, (from.len() + to.len()) as u64)
            .map_err(|e| StorageError::new(group, Subject::Logs, Verb::Write, e))?;
        tracing::info!(group, "deleted group");
        Ok(())
    }

    /// The value of `suffix` in `group`'s state keyspace.
    pub fn state_get(
        &self,
        group: GroupId,
        suffix: &[u8],
    ) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner
            .db
            .get(keys::state_key(group, suffix))
            .map_err(|e| StorageError::new(group, Subject::State, Verb::Read, e))
    }

    /// All `(suffix, value)` of `group`'s state keyspace with `from <= suffix < to`, in
    /// suffix order.
    pub fn state_scan(
        &self,
        group: GroupId,
        from: &[u8],
        to_exclusive: &[u8],
    ) -> Result<Vec<StateEntry>, StorageError> {
        let mut out = Vec::new();
        self.state_visit(group, from, Some(to_exclusive), |suffix, value| {
            out.push((suffix.to_vec(), value.to_vec()));
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// Visit `(suffix, value)` of `group`'s state keyspace with `from <= suffix < to` (`to`
    /// `None`: to the end of the keyspace) in order, without copying, until `f` breaks.
    pub fn state_visit<F>(
        &self,
        group: GroupId,
        from: &[u8],
        to: Option<&[u8]>,
        mut f: F,
    ) -> Result<(), StorageError>
    where
        F: FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    {
        let read_err = |cause: Cause| StorageError::new(group, Subject::State, Verb::Read, cause);
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(keys::state_key(group, from));
        ro.set_iterate_upper_bound(match to {
            Some(to) => keys::state_key(group, to),
            None => keys::state_end(group).to_vec(),
        });
        let mut it = self.inner.db.raw_iterator_opt(ro);
        it.seek_to_first();
        while let Some((key, value)) = it.item() {
            let suffix = keys::state_suffix_of(group, key).ok_or_else(|| {
                read_err(Cause::Corrupt(format!(
                    "key {key:?} outside the state keyspace"
                )))
            })?;
            if f(suffix, value).is_break() {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(|e| read_err(e.into()))
    }

    /// The entry of `group`'s state keyspace with the largest suffix `<= suffix_upper_inclusive`.
    pub fn state_seek_prev(
        &self,
        group: GroupId,
        suffix_upper_inclusive: &[u8],
    ) -> Result<Option<StateEntry>, StorageError> {
        let read_err = |cause: Cause| StorageError::new(group, Subject::State, Verb::Read, cause);
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(keys::state_key(group, b""));
        ro.set_iterate_upper_bound(keys::state_end(group).to_vec());
        let mut it = self.inner.db.raw_iterator_opt(ro);
        it.seek_for_prev(keys::state_key(group, suffix_upper_inclusive));
        match it.item() {
            Some((key, value)) => {
                let suffix = keys::state_suffix_of(group, key).ok_or_else(|| {
                    read_err(Cause::Corrupt(format!(
                        "key {key:?} outside the state keyspace"
                    )))
                })?;
                Ok(Some((suffix.to_vec(), value.to_vec())))
            }
            None => it.status().map(|()| None).map_err(|e| read_err(e.into())),
        }
    }

    /// Apply `batch` atomically, unsynced (WAL on, no fsync): it survives a process crash but
    /// not a machine crash until a later [`NodeStore::sync`] (or any append callback / vote
    /// save issued after this call) completes.
    pub fn write(&self, batch: StateBatch) -> Result<(), StorageError> {
        let (batch, user_bytes) = batch.into_parts();
        self.write_raw(batch, user_bytes)
            .map_err(|e| StorageError::new(NODE_GROUP, Subject::State, Verb::Write, e))
    }

    /// Wait until a WAL fsync covering every write made before this call has completed.
    /// Served by the group-commit syncer: concurrent callers (and appends) share fsyncs.
    pub async fn sync(&self) -> Result<(), StorageError> {
        self.sync_for(NODE_GROUP).await
    }

    /// Bytes written at each layer since open, and group-commit counters.
    pub fn stats(&self) -> StoreStats {
        let ticker = |t: Ticker| self.inner.rocks_opts.get_ticker_count(t);
        let property = |name: &str| {
            self.inner
                .db
                .property_int_value(name)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        StoreStats {
            user_bytes_written: self.inner.user_bytes.load(Ordering::Relaxed),
            db_bytes_written: ticker(Ticker::BytesWritten),
            wal_bytes_written: ticker(Ticker::WalFileBytes),
            flush_bytes_written: ticker(Ticker::FlushWriteBytes),
            compaction_bytes_written: ticker(Ticker::CompactWriteBytes),
            blob_bytes_written: ticker(Ticker::BlobDbBlobFileBytesWritten),
            compaction_bytes_read: ticker(Ticker::CompactReadBytes),
            live_sst_bytes: property("rocksdb.live-sst-files-size"),
            memtable_bytes: property("rocksdb.cur-size-all-mem-tables"),
            wal_syncs: self.inner.syncer.syncs(),
            rocksdb_wal_syncs: ticker(Ticker::WalFileSynced),
            sync_waiters: self.inner.syncer.waiters(),
        }
    }

    /// Groups that have any Raft log-store key (log entry, vote, purged or committed log
    /// id), in ascending order, for startup. Groups with only state-machine keys are not
    /// listed. Skips from group to group with seeks: the cost is per group, not per key.
    pub fn groups(&self) -> Result<Vec<GroupId>, StorageError> {
        let read_err =
            |cause: Cause| StorageError::new(NODE_GROUP, Subject::Logs, Verb::Read, cause);
        let mut it = self.inner.db.raw_iterator();
        let mut groups = Vec::new();
        it.seek_to_first();
        while let Some(key) = it.key() {
            let group = keys::group_of(key)
                .ok_or_else(|| read_err(Cause::Corrupt(format!("key {key:?} has no group"))))?;
            if group == NODE_GROUP {
                break;
            }
            // `key` is the group's first key. Tags sort C < L < P < S < V: a first key that
            // is not a state key is a log-store key; otherwise look past the state keyspace.
            let mut present = key.get(8).is_some_and(|&tag| tag != keys::TAG_STATE);
            if !present {
                it.seek(keys::state_end(group));
                present = it.key().is_some_and(|k| keys::group_of(k) == Some(group));
            }
            if present {
                groups.push(group);
            }
            it.seek(keys::group_end(group));
        }
        it.status().map_err(|e| read_err(e.into()))?;
        Ok(groups)
    }

    /// Compacts `group`'s log keyspace below index `end` (exclusive), so that
    /// RocksDB drops the entries a purge deleted and the blob files that only
    /// they referenced, instead of waiting for a compaction to pass there.
    /// Blocking: the compaction runs in the calling thread.
    pub fn compact_log_below(&self, group: GroupId, end: u64) {
        let from = keys::log_key(group, 0);
        let to = keys::log_key(group, end);
        self.inner.db.compact_range(Some(&from[..]), Some(&to[..]));
    }

    // ---- crate-internal, used by LogStore ----

    pub(crate) fn db(&self) -> &DB {
        &self.inner.db
    }

    /// See `Inner::log_removal`. A poisoned lock guards no data; it is taken anyway.
    pub(crate) fn lock_log_removal(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .log_removal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Unsynced write (WAL on, no fsync), counting `user_bytes`.
    pub(crate) fn write_raw(
        &self,
        batch: WriteBatch,
        user_bytes: u64,
    ) -> Result<(), rocksdb::Error> {
        self.inner.db.write_opt(batch, &unsynced())?;
        self.inner
            .user_bytes
            .fetch_add(user_bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Hand `completion` to the syncer; it runs after an fsync covering every write made
    /// before this call.
    pub(crate) fn after_sync(&self, completion: Completion) {
        self.inner.syncer.enqueue(completion);
    }

    pub(crate) async fn sync_for(&self, group: GroupId) -> Result<(), StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.after_sync(Box::new(move |outcome| {
            // The waiter may have given up; nothing to do then.
            let _ = tx.send(outcome);
        }));
        let outcome = rx.await.unwrap_or(Err(SyncFailure::Stopped));
        outcome.map_err(|f| StorageError::new(group, Subject::Wal, Verb::Sync, f.into_cause()))
    }
}
