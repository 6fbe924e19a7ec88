//! Reads: records by offset, and offsets by position or time.

use std::time::Duration;

use cairn_partition::FetchResult;
use cairn_partition::FirstBatch;

use super::partition_leader;
use super::read_error;
use super::require_lease;
use super::require_read_lease;
use crate::error::ApiError;
use crate::node::Node;
use crate::replica::Replica;

/// The largest fetch answered, whatever the client asks for.
pub const FETCH_MAX_BYTES_LIMIT: usize = 64 << 20;
/// The longest a fetch waits for records.
pub const FETCH_MAX_WAIT: Duration = Duration::from_secs(30);

/// Where to look up an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first record at or after this time (ms since the epoch).
    Timestamp(i64),
    /// The (first) record with the largest timestamp (ListOffsets v7+).
    MaxTimestamp,
}

/// Committed batches of one partition from `offset` on, in at most
/// `max_bytes` but for the first batch, which is returned whole (so that
/// a batch larger than the limit can be read at all), waiting up to
/// `max_wait` for the first record past the high watermark. Served by the
/// leader with a live lease only.
pub(crate) async fn fetch(
    node: &Node,
    topic: &str,
    partition: u32,
    offset: u64,
    max_bytes: usize,
    max_wait: Duration,
) -> Result<FetchResult, ApiError> {
    let (_, replica) = partition_leader(node, topic, partition)?;
    if !max_wait.is_zero() && offset >= replica.log.high_watermark() {
        replica
            .log
            .wait_for(offset, max_wait.min(FETCH_MAX_WAIT))
            .await;
    }
    read_partition(
        &replica,
        topic,
        partition,
        offset,
        max_bytes,
        FirstBatch::Whole,
    )
    .await
}

/// The read part of [`fetch`], on a replica already found to lead: the
/// Kafka door checks the leader epoch, waits across partitions and says
/// whether the first batch may pass `max_bytes` (only while its answer is
/// still empty) itself.
pub(crate) async fn read_partition(
    replica: &Replica,
    topic: &str,
    partition: u32,
    offset: u64,
    max_bytes: usize,
    first: FirstBatch,
) -> Result<FetchResult, ApiError> {
    require_read_lease(replica, topic, partition).await?;
    replica.hold_read_for_tests().await;
    let r = replica
        .log
        .read(offset, max_bytes.min(FETCH_MAX_BYTES_LIMIT), first)
        .await
        .map_err(read_error)?;
    still_leading(replica, topic, partition).await?;
    metrics::counter!("cairn_fetch_bytes_total").increment(r.records.len() as u64);
    Ok(r)
}

/// An offset of a partition: `(offset, timestamp_ms, leader_epoch)`. By
/// timestamp, `(-1, -1)` when no record is that recent; the timestamp is -1
/// for earliest and latest.
pub(crate) async fn list_offsets(
    node: &Node,
    topic: &str,
    partition: u32,
    spec: OffsetSpec,
) -> Result<(i64, i64, u64), ApiError> {
    let (_, replica) = partition_leader(node, topic, partition)?;
    require_read_lease(&replica, topic, partition).await?;
    replica.hold_read_for_tests().await;
    let epoch = replica.term();
    let (offset, timestamp_ms) = match spec {
        OffsetSpec::Earliest => (replica.log.log_start() as i64, -1),
        OffsetSpec::Latest => (replica.log.high_watermark() as i64, -1),
        OffsetSpec::Timestamp(ts) => {
            match replica
                .log
                .offset_for_timestamp(ts)
                .await
                .map_err(read_error)?
            {
                Some((o, t)) => (o as i64, t),
                None => (-1, -1),
            }
        }
        OffsetSpec::MaxTimestamp => {
            let found = match replica.log.max_timestamp().map_err(read_error)? {
                Some(max) => replica
                    .log
                    .offset_for_timestamp(max)
                    .await
                    .map_err(read_error)?,
                None => None,
            };
            match found {
                Some((o, t)) => (o as i64, t),
                None => (-1, -1),
            }
        }
    };
    still_leading(&replica, topic, partition).await?;
    Ok((offset, timestamp_ms, epoch))
}

/// After a read: the leader must still hold its lease, renewed if it went
/// stale meanwhile. A read that stalled past the lease (a slow disk, a
/// frozen process) may have been overtaken by a successor's writes; its
/// answer, though consistent with the moment the lease was checked, would
/// tell the reader the partition ends earlier than it does by the time the
/// answer leaves. A quorum acknowledging a heartbeat sent after the read
/// proves no successor existed before it ended; without that, the reader
/// is told to retry (reliability finding 11).
async fn still_leading(replica: &Replica, topic: &str, partition: u32) -> Result<(), ApiError> {
    let r = require_lease(replica, topic, partition).await;
    if r.is_err() {
        metrics::counter!("cairn_reads_outlived_lease_total").increment(1);
    }
    r
}
