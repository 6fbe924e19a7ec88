//! In-place edits of the header fields that lie outside the CRC.

use crate::header::{BASE_OFFSET_OFFSET, PARTITION_LEADER_EPOCH_OFFSET};
use crate::{split_batches, RecordBatchHeader, RecordError};

fn field<const N: usize>(buf: &mut [u8], at: usize) -> Result<&mut [u8], RecordError> {
    let got = buf.len();
    buf.get_mut(at..at + N).ok_or(RecordError::Truncated {
        needed: at + N,
        got,
    })
}

/// Overwrites `baseOffset` (bytes 0..8) of the batch at the start of `buf`.
/// The field is outside the CRC, so a valid batch stays valid. Fails only if
/// `buf` is shorter than 8 bytes.
pub fn set_base_offset(buf: &mut [u8], offset: i64) -> Result<(), RecordError> {
    field::<8>(buf, BASE_OFFSET_OFFSET)?.copy_from_slice(&offset.to_be_bytes());
    Ok(())
}

/// Overwrites `partitionLeaderEpoch` (bytes 12..16) of the batch at the start
/// of `buf`. The field is outside the CRC, so a valid batch stays valid.
/// Fails only if `buf` is shorter than 16 bytes.
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) -> Result<(), RecordError> {
    field::<4>(buf, PARTITION_LEADER_EPOCH_OFFSET)?.copy_from_slice(&epoch.to_be_bytes());
    Ok(())
}

/// Broker-side offset assignment for a buffer of concatenated, complete
/// batches (a produce request's "records"): gives the first batch
/// `baseOffset = first_offset`, each following batch the offset after the
/// previous batch's last offset (`lastOffsetDelta` decides the span), and
/// sets every batch's `partitionLeaderEpoch` to `leader_epoch`. Returns the
/// next offset (the new log end offset).
///
/// Batches should have passed [`crate::validate_batch`] first; this only
/// parses headers. On error nothing has been modified.
pub fn assign_offsets(buf: &mut [u8], first_offset: i64, leader_epoch: i32) -> Result<i64, RecordError> {
    // First pass: check every header so a failure leaves `buf` untouched.
    let mut spans = Vec::new();
    for batch in split_batches(buf) {
        let batch = batch?;
        let header = RecordBatchHeader::parse(batch)?;
        if header.last_offset_delta < 0 {
            return Err(RecordError::BadRecordCount {
                records_count: header.records_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        spans.push((batch.len(), header.offset_count()));
    }
    let mut pos = 0;
    let mut next = first_offset;
    for (len, count) in spans {
        let batch = &mut buf[pos..pos + len];
        set_base_offset(batch, next)?;
        set_partition_leader_epoch(batch, leader_epoch)?;
        next = next.saturating_add(count);
        pos += len;
    }
    Ok(next)
}
