//! In-place edits of the header fields that lie outside the CRC, and the
//! one edit inside it a broker makes (LogAppendTime), which recomputes it.

use crate::header::{
    ATTRIBUTES_OFFSET, BASE_OFFSET_OFFSET, CRC_OFFSET, MAX_TIMESTAMP_OFFSET,
    PARTITION_LEADER_EPOCH_OFFSET,
};
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

/// The timestamp-type bit of a batch's attributes: set, the batch's
/// records all carry `maxTimestamp` as their timestamp (LogAppendTime).
pub const TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;

/// Stamps every batch in `buf` (concatenated, complete batches) with the
/// broker's append time, as Kafka does for a topic with
/// `message.timestamp.type=LogAppendTime`: the timestamp-type attribute is
/// set, `maxTimestamp` becomes `append_time_ms` (consumers read it as every
/// record's timestamp) and the CRC is computed again. Control batches are
/// stamped too, as in Kafka. On error nothing has been modified.
pub fn set_log_append_time(buf: &mut [u8], append_time_ms: i64) -> Result<(), RecordError> {
    let mut spans = Vec::new();
    for batch in split_batches(buf) {
        let batch = batch?;
        RecordBatchHeader::parse(batch)?;
        spans.push(batch.len());
    }
    let mut pos = 0;
    for len in spans {
        let batch = &mut buf[pos..pos + len];
        let attributes = field::<2>(batch, ATTRIBUTES_OFFSET)?;
        let a = i16::from_be_bytes([attributes[0], attributes[1]]) | TIMESTAMP_TYPE_LOG_APPEND;
        attributes.copy_from_slice(&a.to_be_bytes());
        field::<8>(batch, MAX_TIMESTAMP_OFFSET)?.copy_from_slice(&append_time_ms.to_be_bytes());
        let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
        field::<4>(batch, CRC_OFFSET)?.copy_from_slice(&crc.to_be_bytes());
        pos += len;
    }
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
pub fn assign_offsets(
    buf: &mut [u8],
    first_offset: i64,
    leader_epoch: i32,
) -> Result<i64, RecordError> {
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

#[cfg(test)]
mod tests {
    #[test]
    fn log_append_time_stamps_every_batch_and_keeps_it_valid() {
        let mut one = crate::RecordBatchBuilder::new();
        one.push(1000, Some(b"k"), Some(b"v"), &[]);
        one.push(2000, None, Some(b"w"), &[]);
        let mut two = crate::RecordBatchBuilder::new();
        two.push(3000, None, Some(b"x"), &[]);
        let mut buf = one.build().to_vec();
        buf.extend_from_slice(&two.build());
        super::set_log_append_time(&mut buf, 9_999).unwrap();
        for batch in crate::split_batches(&buf) {
            let batch = batch.unwrap();
            let header = crate::validate_batch(batch).unwrap();
            assert_eq!(header.max_timestamp, 9_999);
            assert_ne!(header.attributes & super::TIMESTAMP_TYPE_LOG_APPEND, 0);
        }
        // A truncated buffer changes nothing.
        let mut cut = buf[..buf.len() - 1].to_vec();
        let before = cut.clone();
        assert!(super::set_log_append_time(&mut cut, 1).is_err());
        assert_eq!(cut, before);
    }

    use super::*;
    use crate::{validate_batch, RecordBatchBuilder};

    fn batch(n: usize) -> Vec<u8> {
        let mut b = RecordBatchBuilder::new();
        for i in 0..n {
            b.push(i as i64, Some(b"k"), Some(b"v"), &[]);
        }
        b.build().to_vec()
    }

    #[test]
    fn patches_keep_crc_valid() {
        let mut buf = batch(3);
        let before = validate_batch(&buf).unwrap();
        set_base_offset(&mut buf, 123_456_789_012).unwrap();
        set_partition_leader_epoch(&mut buf, 42).unwrap();
        let after = validate_batch(&buf).unwrap();
        assert_eq!(after.base_offset, 123_456_789_012);
        assert_eq!(after.partition_leader_epoch, 42);
        assert_eq!(after.crc, before.crc);
        assert_eq!(after.last_offset(), 123_456_789_014);
    }

    #[test]
    fn short_buffers_are_errors() {
        let mut short = [0u8; 7];
        assert_eq!(
            set_base_offset(&mut short, 1),
            Err(RecordError::Truncated { needed: 8, got: 7 })
        );
        let mut short = [0u8; 15];
        assert_eq!(
            set_partition_leader_epoch(&mut short, 1),
            Err(RecordError::Truncated {
                needed: 16,
                got: 15
            })
        );
        assert!(set_base_offset(&mut short, 1).is_ok());
    }

    #[test]
    fn assigns_consecutive_offsets() {
        let mut all = [batch(2), batch(1), batch(5)].concat();
        assert_eq!(assign_offsets(&mut all, 100, 7), Ok(108));
        let headers: Vec<_> = split_batches(&all)
            .map(|b| validate_batch(b.unwrap()).unwrap())
            .collect();
        let offsets: Vec<_> = headers
            .iter()
            .map(|h| (h.base_offset, h.last_offset()))
            .collect();
        assert_eq!(offsets, [(100, 101), (102, 102), (103, 107)]);
        assert!(headers.iter().all(|h| h.partition_leader_epoch == 7));
        let mut empty: [u8; 0] = [];
        assert_eq!(assign_offsets(&mut empty, 5, 0), Ok(5));
    }

    #[test]
    fn assign_offsets_leaves_buffer_untouched_on_error() {
        let mut all = [batch(2), batch(1)].concat();
        all.truncate(all.len() - 1);
        let copy = all.clone();
        assert!(matches!(
            assign_offsets(&mut all, 100, 7),
            Err(RecordError::Truncated { .. })
        ));
        assert_eq!(all, copy);
    }
}
