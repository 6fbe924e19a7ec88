//! Reads of a partition: committed batches by offset, offsets by time.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytes::BytesMut;
use cairn_raft::Request;
use cairn_raft::TypeConfig;
use cairn_storage::LogStore;
use cairn_storage::NodeStore;
use openraft::EntryPayload;
use openraft::RaftLogReader;

use crate::index::IndexEntry;
use crate::shared::PartitionShared;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("offset {offset} is out of range [{log_start}, {high_watermark}]")]
    OffsetOutOfRange {
        offset: u64,
        log_start: u64,
        high_watermark: u64,
    },
    #[error("storage: {0}")]
    Storage(String),
    #[error("partition data is inconsistent: {0}")]
    Corrupt(String),
}

/// Committed record batches of one fetch.
#[derive(Debug, Clone)]
pub struct FetchResult {
    pub records: Bytes,
    pub high_watermark: u64,
    pub log_start: u64,
    /// The offset after the last batch in `records` (the offset read from
    /// when there is none): below the high watermark when the byte limit
    /// left batches for a later read.
    pub next_offset: u64,
}

/// How a read's byte limit treats the first batch it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstBatch {
    /// Returned whole even when larger than the limit, so that a batch
    /// larger than any limit can still be read. Kafka (KIP-74) allows this
    /// for the first batch of a fetch's answer only.
    Whole,
    /// Held to the limit like every other batch: when it does not fit,
    /// nothing is returned (the rest of a fetch whose answer already
    /// holds records).
    WithinLimit,
}

/// A topic's delete-retention limits, as the leader's retention task applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionLimits {
    /// Now, in ms since the epoch.
    pub now_ms: i64,
    /// `retention.ms`: batches whose newest record is older are deleted.
    pub max_age_ms: Option<i64>,
    /// `retention.bytes`: the oldest batches are deleted while the
    /// partition holds more.
    pub max_bytes: Option<u64>,
}

/// Read access to one partition replica's committed records.
#[derive(Clone)]
pub struct PartitionLog {
    pub(crate) store: NodeStore,
    pub(crate) shared: Arc<PartitionShared>,
}

impl PartitionLog {
    pub fn new(store: NodeStore, shared: Arc<PartitionShared>) -> Self {
        Self { store, shared }
    }

    pub fn high_watermark(&self) -> u64 {
        self.shared.high_watermark()
    }

    pub fn log_start(&self) -> u64 {
        self.shared.log_start()
    }

    /// The key of the first index row holding a record at or after the log
    /// start: the row of the batch holding the log start, which begins
    /// below it when DeleteRecords moved the log start into a batch.
    fn first_row_key(&self) -> Result<[u8; 9], ReadError> {
        let log_start = self.log_start();
        let base = self
            .store
            .state_seek_prev(self.shared.group, &IndexEntry::key(log_start))
            .map_err(|e| ReadError::Storage(e.to_string()))?
            .and_then(|(k, v)| IndexEntry::decode(&k, &v))
            .filter(|e| e.next_offset() > log_start)
            .map_or(log_start, |e| e.base_offset);
        Ok(IndexEntry::key(base))
    }

    /// The Raft index up to which the log holds only deleted records (see
    /// [`PartitionShared::purge_wanted`]).
    pub fn purge_wanted(&self) -> Option<u64> {
        self.shared.purge_wanted()
    }

    /// Waits until the high watermark passes `offset` or `max_wait` elapses.
    pub async fn wait_for(&self, offset: u64, max_wait: Duration) {
        let mut rx = self.shared.subscribe();
        let _ = tokio::time::timeout(max_wait, rx.wait_for(|hw| *hw > offset)).await;
    }

    fn index_rows(&self, from: u64, limit_bytes: usize) -> Result<Vec<IndexEntry>, ReadError> {
        let group = self.shared.group;
        let hw = self.high_watermark();
        let storage = |e: cairn_storage::StorageError| ReadError::Storage(e.to_string());
        // The batch holding `from` starts at the largest indexed offset <= from.
        let start = match self
            .store
            .state_seek_prev(group, &IndexEntry::key(from))
            .map_err(storage)?
        {
            Some((k, v)) => IndexEntry::decode(&k, &v)
                .map(|e| e.base_offset)
                .unwrap_or(from),
            None => from,
        };
        let mut rows = Vec::new();
        let mut corrupt = None;
        // Rows are ~1 per batch; bound their number by the byte budget too.
        let max_rows = (limit_bytes / 64).clamp(1, 4096);
        self.store
            .state_visit(
                group,
                &IndexEntry::key(start),
                Some(&IndexEntry::key(hw)),
                |k, v| match IndexEntry::decode(k, v) {
                    Some(e) => {
                        rows.push(e);
                        if rows.len() >= max_rows {
                            ControlFlow::Break(())
                        } else {
                            ControlFlow::Continue(())
                        }
                    }
                    None => {
                        corrupt = Some(format!("bad index row under key {k:?}"));
                        ControlFlow::Break(())
                    }
                },
            )
            .map_err(storage)?;
        if let Some(c) = corrupt {
            return Err(ReadError::Corrupt(c));
        }
        Ok(rows)
    }

    /// Committed batches from the one holding `offset` on, whole batches
    /// (log entries) only, in at most `max_bytes` (but for the first one
    /// when `first` is [`FirstBatch::Whole`]). A batch that would cross the
    /// limit is left for a later read. The size an index row records is
    /// checked before the entry is read; it is an upper bound (compaction
    /// only shrinks entries), so a compacted entry may be left for a later
    /// read though it would fit. Rows of the first format have no size:
    /// their entry is read, and dropped again if it does not fit.
    pub async fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        first: FirstBatch,
    ) -> Result<FetchResult, ReadError> {
        let high_watermark = self.high_watermark();
        let log_start = self.log_start();
        if offset < log_start || offset > high_watermark {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start,
                high_watermark,
            });
        }
        let mut out = BytesMut::new();
        let mut next_offset = offset;
        if offset < high_watermark {
            let rows = self.index_rows(offset, max_bytes)?;
            let mut log: LogStore<TypeConfig> = self.store.log_store(self.shared.group);
            for row in rows {
                if row.next_offset() <= offset {
                    continue;
                }
                let whole = first == FirstBatch::Whole && out.is_empty();
                let fits = |len: usize| whole || len <= max_bytes;
                if let Some(bytes) = row.bytes {
                    if !fits(out.len().saturating_add(bytes as usize)) {
                        break;
                    }
                }
                let start = out.len();
                self.append_batches(&mut log, &row, &mut out).await?;
                if !fits(out.len()) {
                    // An old row without a size, found too large once read.
                    out.truncate(start);
                    break;
                }
                next_offset = row.next_offset();
                if out.len() >= max_bytes {
                    break;
                }
            }
        }
        Ok(FetchResult {
            records: out.freeze(),
            high_watermark,
            log_start,
            next_offset,
        })
    }

    /// Where retention would move the log start: the base offset of the
    /// first batch to keep, or `None` when nothing is to be deleted. Only
    /// whole batches (Raft entries) are deleted, oldest first; by time up
    /// to the first batch that is not old enough, by size until what is
    /// left fits. The batch holding the newest record is always kept, as
    /// Kafka keeps the active segment. Visits every retained index row.
    pub async fn retention_start(&self, limits: RetentionLimits) -> Result<Option<u64>, ReadError> {
        if limits.max_age_ms.is_none() && limits.max_bytes.is_none() {
            return Ok(None);
        }
        let group = self.shared.group;
        let hw = self.high_watermark();
        let cutoff = limits
            .max_age_ms
            .map(|age| limits.now_ms.saturating_sub(age));
        // By time alone, the scan stops at the first batch that is not old
        // enough (usually the first one); by size it visits every row.
        let stop_at_young = limits.max_bytes.is_none();
        let mut rows = Vec::new();
        let first = self.first_row_key()?;
        self.store
            .state_visit(group, &first, Some(&IndexEntry::key(hw)), |k, v| {
                let Some(e) = IndexEntry::decode(k, v) else {
                    return ControlFlow::Continue(());
                };
                rows.push(e);
                if stop_at_young && cutoff.is_some_and(|c| e.max_timestamp_ms >= c) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .map_err(|e| ReadError::Storage(e.to_string()))?;
        let Some(last) = rows.len().checked_sub(1) else {
            return Ok(None);
        };
        let mut drop = 0;
        if let Some(cutoff) = cutoff {
            drop = rows[..last]
                .iter()
                .take_while(|r| r.max_timestamp_ms < cutoff)
                .count();
        }
        if let Some(max_bytes) = limits.max_bytes {
            let mut sizes = Vec::with_capacity(rows.len());
            let mut log: LogStore<TypeConfig> = self.store.log_store(group);
            for row in &rows {
                let size = match row.bytes {
                    Some(b) => u64::from(b),
                    None => self.entry_bytes(&mut log, row).await?,
                };
                sizes.push(size);
            }
            let mut retained: u64 = sizes.iter().sum();
            let mut by_size = 0;
            while by_size < last && retained > max_bytes {
                retained -= sizes[by_size];
                by_size += 1;
            }
            drop = drop.max(by_size);
        }
        Ok((drop > 0).then(|| rows[drop].base_offset))
    }

    /// Bytes of record batches in the log entry of `row` (rows written
    /// before sizes were indexed).
    async fn entry_bytes(
        &self,
        log: &mut LogStore<TypeConfig>,
        row: &IndexEntry,
    ) -> Result<u64, ReadError> {
        let mut out = BytesMut::new();
        self.append_batches(log, row, &mut out).await?;
        Ok(out.len() as u64)
    }

    /// Bytes of record batches from the log start to the high watermark, as
    /// the index records them.
    pub fn retained_bytes(&self) -> Result<u64, ReadError> {
        let mut total = 0u64;
        let first = self.first_row_key()?;
        self.store
            .state_visit(
                self.shared.group,
                &first,
                Some(&IndexEntry::key(self.high_watermark())),
                |k, v| {
                    if let Some(e) = IndexEntry::decode(k, v) {
                        total += u64::from(e.bytes.unwrap_or(0));
                    }
                    ControlFlow::Continue(())
                },
            )
            .map_err(|e| ReadError::Storage(e.to_string()))?;
        Ok(total)
    }

    /// Copies the batches of one log entry into `out`, setting their base
    /// offsets and leader epoch.
    async fn append_batches(
        &self,
        log: &mut LogStore<TypeConfig>,
        row: &IndexEntry,
        out: &mut BytesMut,
    ) -> Result<(), ReadError> {
        let entries = log
            .try_get_log_entries(row.raft_index..row.raft_index + 1)
            .await
            .map_err(|e| ReadError::Storage(e.to_string()))?;
        let Some(entry) = entries.into_iter().next() else {
            return Err(ReadError::Corrupt(format!(
                "offset {} indexes raft entry {}, which is not in the log",
                row.base_offset, row.raft_index
            )));
        };
        let EntryPayload::Normal(Request::Produce(cmd)) = entry.payload else {
            return Err(ReadError::Corrupt(format!(
                "raft entry {} holds no records",
                row.raft_index
            )));
        };
        let epoch = entry.log_id.leader_id.term as i32;
        let start = out.len();
        out.extend_from_slice(&cmd.records);
        cairn_record::assign_offsets(&mut out[start..], row.base_offset as i64, epoch)
            .map_err(|e| ReadError::Corrupt(e.to_string()))?;
        Ok(())
    }

    /// The largest record timestamp from the log start to the high
    /// watermark, as the index records it per batch; `None` when empty.
    pub fn max_timestamp(&self) -> Result<Option<i64>, ReadError> {
        let first = self.first_row_key()?;
        let mut max = None::<i64>;
        self.store
            .state_visit(
                self.shared.group,
                &first,
                Some(&IndexEntry::key(self.high_watermark())),
                |k, v| {
                    if let Some(e) = IndexEntry::decode(k, v) {
                        max = Some(max.map_or(e.max_timestamp_ms, |m| m.max(e.max_timestamp_ms)));
                    }
                    ControlFlow::Continue(())
                },
            )
            .map_err(|e| ReadError::Storage(e.to_string()))?;
        Ok(max)
    }

    /// The first offset holding a record with timestamp >= `ts`, and that
    /// record's timestamp, as Kafka answers ListOffsets by time; `None`
    /// when there is none. The index finds the first batch whose max
    /// timestamp reaches `ts`; its records are then searched one by one
    /// (a compressed batch is decompressed for that).
    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(u64, i64)>, ReadError> {
        let group = self.shared.group;
        let hw = self.high_watermark();
        let mut found = None;
        let first = self.first_row_key()?;
        self.store
            .state_visit(
                group,
                &first,
                Some(&IndexEntry::key(hw)),
                |k, v| match IndexEntry::decode(k, v) {
                    Some(e) if e.max_timestamp_ms >= ts => {
                        found = Some(e);
                        ControlFlow::Break(())
                    }
                    _ => ControlFlow::Continue(()),
                },
            )
            .map_err(|e| ReadError::Storage(e.to_string()))?;
        let Some(row) = found else {
            return Ok(None);
        };
        let mut log: LogStore<TypeConfig> = self.store.log_store(group);
        let mut buf = BytesMut::new();
        self.append_batches(&mut log, &row, &mut buf).await?;
        let buf = buf.freeze();
        let corrupt = |e: cairn_record::RecordError| ReadError::Corrupt(e.to_string());
        for batch in cairn_record::split_batches(&buf) {
            let bytes = buf.slice_ref(batch.map_err(corrupt)?);
            let header = cairn_record::RecordBatchHeader::parse(&bytes).map_err(corrupt)?;
            if header.max_timestamp < ts {
                continue;
            }
            // The broker checks a batch's framing and CRC, not whether its
            // compressed records decode: for one that does not, answer the
            // batch's first offset.
            let Ok((header, records)) = cairn_record::decode_batch(&bytes) else {
                let first = (header.base_offset as u64).max(self.log_start());
                return Ok(Some((first, header.max_timestamp)));
            };
            // Records below the log start (DeleteRecords inside a batch)
            // are gone.
            let log_start = self.log_start() as i64;
            if let Some(r) = records
                .iter()
                .find(|r| r.offset(&header) >= log_start && r.timestamp(&header) >= ts)
            {
                return Ok(Some((r.offset(&header) as u64, r.timestamp(&header))));
            }
        }
        // The index row said a record reaches `ts`; fall back to the row.
        Ok(Some((
            row.base_offset.max(self.log_start()),
            row.max_timestamp_ms,
        )))
    }
}
