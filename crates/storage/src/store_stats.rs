//! [`StoreStats`]: write volume at each layer, for write amplification.

/// Bytes written at each layer since the store was opened (RocksDB statistics are per
/// process, not persisted), plus group-commit counters.
///
/// Write amplification = `(wal + flush + blob + compaction) / user`; see
/// [`StoreStats::write_amplification`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Key + value bytes this crate handed to RocksDB writes (log entries, votes, purge and
    /// committed ids, state batches, deletes count their keys).
    pub user_bytes_written: u64,
    /// `rocksdb.bytes.written`: bytes of all write batches, including RocksDB's per-record
    /// framing.
    pub db_bytes_written: u64,
    /// `rocksdb.wal.bytes`: bytes appended to the write-ahead log.
    pub wal_bytes_written: u64,
    /// `rocksdb.flush.write.bytes`: bytes of SST files written by memtable flushes.
    pub flush_bytes_written: u64,
    /// `rocksdb.compact.write.bytes`: bytes of SST files written by compactions.
    pub compaction_bytes_written: u64,
    /// `rocksdb.blobdb.blob.file.bytes.written`: bytes of blob files (large values, written
    /// at flush instead of into SST files).
    pub blob_bytes_written: u64,
    /// `rocksdb.compact.read.bytes`: bytes read by compactions.
    pub compaction_bytes_read: u64,
    /// Total size of live SST files (`rocksdb.live-sst-files-size`).
    pub live_sst_bytes: u64,
    /// Size of all memtables (`rocksdb.cur-size-all-mem-tables`).
    pub memtable_bytes: u64,
    /// WAL fsyncs performed by the group-commit syncer.
    pub wal_syncs: u64,
    /// `rocksdb.wal.synced`: WAL syncs as counted by RocksDB itself.
    pub rocksdb_wal_syncs: u64,
    /// Waiters (append callbacks and `sync()` calls) completed by those fsyncs.
    pub sync_waiters: u64,
}

impl StoreStats {
    /// `(wal + flush + blob + compaction written) / user bytes`, or `None` before any user write.
    pub fn write_amplification(&self) -> Option<f64> {
        if self.user_bytes_written == 0 {
            return None;
        }
        let device = self.wal_bytes_written
            + self.flush_bytes_written
            + self.blob_bytes_written
            + self.compaction_bytes_written;
        Some(device as f64 / self.user_bytes_written as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_amplification_sums_device_writes() {
        assert_eq!(StoreStats::default().write_amplification(), None);
        let s = StoreStats {
            user_bytes_written: 100,
            wal_bytes_written: 110,
            flush_bytes_written: 90,
            compaction_bytes_written: 200,
            ..StoreStats::default()
        };
        assert_eq!(s.write_amplification(), Some(4.0));
    }
}
