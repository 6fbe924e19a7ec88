//! [`StoreOptions`]: RocksDB tuning for one node-wide store.

use rocksdb::statistics::StatsLevel;
use rocksdb::BlockBasedOptions;
use rocksdb::Cache;
use rocksdb::DBCompressionType;
use rocksdb::DBRecoveryMode;
use rocksdb::Options;

const MIB: usize = 1024 * 1024;

/// Tuning knobs of the node's RocksDB. Defaults target a small (2-core) machine.
///
/// Fixed choices (not knobs):
/// - one column family (the default one) for everything: a log append, a purge point + its
///   range delete, and a state-machine batch each commit atomically in one `WriteBatch`, and
///   there is one memtable to size instead of one per keyspace;
/// - WAL recovery mode `PointInTimeRecovery`: after a crash the store is a prefix of the
///   writes, so an unsynced truncate or purge is either fully there or fully absent, in order;
/// - WAL writes go to the OS on every write (`manual_wal_flush` off), so a process crash
///   loses nothing; only an fsync ([`crate::NodeStore::sync`]) survives a machine crash
///   (unless [`StoreOptions::buffer_unsynced_wal`] is set, for fault injection);
/// - L0 uncompressed (flushes are on the write path), LZ4 below (cheap on CPU; Kafka batches
///   are often already compressed by producers);
/// - dynamic level sizing, 10-bit bloom filters (point reads of vote / purged / committed /
///   state keys), `bytes_per_sync`/`wal_bytes_per_sync` of 1 MiB to spread writeback instead
///   of paying it all in the group-commit fsync;
/// - statistics enabled (tickers only, no histograms or timers) for [`crate::NodeStore::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Size of one memtable. Default 64 MiB.
    pub write_buffer_mb: usize,
    /// Memtables (active + immutable) kept before writes stall. Default 3.
    pub max_write_buffer_number: i32,
    /// Background flush + compaction threads. Default 2 (one per core).
    pub max_background_jobs: i32,
    /// Upper bound of live WAL files before RocksDB forces a flush. Default 256 MiB.
    pub max_total_wal_mb: u64,
    /// Shared block cache for reads. Default 128 MiB.
    pub block_cache_mb: usize,
    /// Target size of an SST file in L1. Default 64 MiB.
    pub target_file_size_mb: u64,
    /// Values at least this large (record-batch log entries) are written to blob files at
    /// flush and never rewritten by compaction, which then only moves keys. `0` keeps
    /// every value in the SST files. Default 4 KiB.
    pub min_blob_size_bytes: u64,
    /// Fault injection only: buffer WAL writes in the process (`manual_wal_flush`) until
    /// the group-commit sync, so that killing the process loses every unsynced write, as
    /// a power loss loses the page cache. Default off.
    pub buffer_unsynced_wal: bool,
    /// Fault injection only: while this file exists, the group-commit sync waits before
    /// its fsync, as a stalled disk would. Writes go on; nothing they wait for completes.
    /// Lets a test make a leader's own log lag its followers'. Default none.
    pub hold_sync_while_exists: Option<std::path::PathBuf>,
    /// Fault injection only: while this file exists, partition state machines wait before
    /// applying committed entries, as a slow one would. The Raft log goes on. Lets a test
    /// elect a leader whose state machine lags its log. Default none.
    pub hold_apply_while_exists: Option<std::path::PathBuf>,
    /// Flushes and compactions write with O_DIRECT, bypassing the page cache: no kernel copy
    /// of every byte flushed, and freshly flushed batches do not evict what readers use.
    /// Default on (ADR 0003: produce 67 -> 82 MB/s on the 2-core benchmark box).
    pub direct_io_for_flush_and_compaction: bool,
    /// Simulation only: no group-commit thread; fsyncs run on the writer's
    /// tokio runtime, each taking as long (simulated) as the function says
    /// and serving every request queued meanwhile (zero: at once), so
    /// a simulated cluster's paused clock never runs on while a real thread
    /// works. Default none (the thread).
    pub sync_in_runtime: Option<SyncDelay>,
    /// Simulation only: called after every WAL fsync that succeeded (the
    /// simulator records how much of each WAL file is durable). Default none.
    pub after_fsync: Option<FsyncHook>,
    /// A bug planted on purpose, for the simulator to find: writes are
    /// reported durable without any fsync (with `sync_in_runtime`). Default off.
    pub plant_ack_before_fsync: bool,
}

/// How long each simulated fsync takes ([`StoreOptions::sync_in_runtime`]).
#[derive(Clone)]
pub struct SyncDelay(pub std::sync::Arc<dyn Fn() -> std::time::Duration + Send + Sync>);

impl std::fmt::Debug for SyncDelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncDelay")
    }
}

impl PartialEq for SyncDelay {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SyncDelay {}

/// Called after each successful WAL fsync ([`StoreOptions::after_fsync`]).
#[derive(Clone)]
pub struct FsyncHook(pub std::sync::Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for FsyncHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FsyncHook")
    }
}

impl PartialEq for FsyncHook {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for FsyncHook {}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            write_buffer_mb: 64,
            max_write_buffer_number: 3,
            max_background_jobs: 2,
            max_total_wal_mb: 256,
            block_cache_mb: 128,
            target_file_size_mb: 64,
            min_blob_size_bytes: 4096,
            buffer_unsynced_wal: false,
            hold_sync_while_exists: None,
            hold_apply_while_exists: None,
            direct_io_for_flush_and_compaction: true,
            sync_in_runtime: None,
            after_fsync: None,
            plant_ack_before_fsync: false,
        }
    }
}

impl StoreOptions {
    /// RocksDB options for these knobs. `create_if_missing` is left to the caller.
    pub(crate) fn to_rocksdb(&self) -> Options {
        let mut opts = Options::default();
        opts.set_write_buffer_size(self.write_buffer_mb.max(1) * MIB);
        opts.set_max_write_buffer_number(self.max_write_buffer_number.max(2));
        opts.set_max_background_jobs(self.max_background_jobs.max(1));
        opts.set_max_total_wal_size(self.max_total_wal_mb.max(1) * MIB as u64);
        opts.set_target_file_size_base(self.target_file_size_mb.max(1) * MIB as u64);
        opts.set_level_compaction_dynamic_level_bytes(true);
        opts.set_compression_per_level(&[
            DBCompressionType::None,
            DBCompressionType::Lz4,
            DBCompressionType::Lz4,
            DBCompressionType::Lz4,
            DBCompressionType::Lz4,
            DBCompressionType::Lz4,
            DBCompressionType::Lz4,
        ]);
        opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
        opts.set_manual_wal_flush(self.buffer_unsynced_wal);
        opts.set_bytes_per_sync(MIB as u64);
        opts.set_wal_bytes_per_sync(MIB as u64);
        opts.set_keep_log_file_num(10);
        opts.set_use_direct_io_for_flush_and_compaction(self.direct_io_for_flush_and_compaction);
        if self.min_blob_size_bytes > 0 {
            opts.set_enable_blob_files(true);
            opts.set_min_blob_size(self.min_blob_size_bytes);
            opts.set_blob_file_size(256 * MIB as u64);
            // Blob files whose entries were purged are reclaimed by compaction.
            opts.set_enable_blob_gc(true);
        }

        let mut table = BlockBasedOptions::default();
        let cache = Cache::new_lru_cache(self.block_cache_mb.max(1) * MIB);
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        opts.set_block_based_table_factory(&table);

        opts.enable_statistics();
        opts.set_statistics_level(StatsLevel::ExceptHistogramOrTimers);
        opts
    }
}
