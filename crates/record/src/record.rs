//! A decoded record and its headers.

use bytes::Bytes;

use crate::{RecordBatchHeader, TimestampType};

/// One record header: a UTF-8 key and an optional (nullable) value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordHeader {
    /// Header key.
    pub key: String,
    /// Header value; `None` encodes as length −1.
    pub value: Option<Bytes>,
}

/// One decoded record of a v2 batch. Offsets and timestamps are stored as
/// deltas, exactly as on the wire; use [`Record::offset`] and
/// [`Record::timestamp`] with the batch header for absolute values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// Offset relative to the batch's `base_offset`.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's `base_timestamp`, in milliseconds.
    pub timestamp_delta: i64,
    /// Record key; `None` encodes as length −1.
    pub key: Option<Bytes>,
    /// Record value; `None` (a tombstone) encodes as length −1.
    pub value: Option<Bytes>,
    /// Record headers, in wire order.
    pub headers: Vec<RecordHeader>,
}

impl Record {
    /// Absolute offset: `batch.base_offset + offset_delta` (saturating).
    pub fn offset(&self, batch: &RecordBatchHeader) -> i64 {
        batch
            .base_offset
            .saturating_add(i64::from(self.offset_delta))
    }

    /// Absolute timestamp in milliseconds, as a Kafka consumer reports it:
    /// `batch.max_timestamp` for log-append-time batches, otherwise
    /// `batch.base_timestamp + timestamp_delta` (wrapping, like Java).
    pub fn timestamp(&self, batch: &RecordBatchHeader) -> i64 {
        match batch.timestamp_type() {
            TimestampType::LogAppendTime => batch.max_timestamp,
            TimestampType::CreateTime => batch.base_timestamp.wrapping_add(self.timestamp_delta),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_values() {
        let mut h = RecordBatchHeader {
            base_offset: 100,
            batch_length: 49,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: 2,
            base_timestamp: 1_000,
            max_timestamp: 5_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: 3,
        };
        let r = Record {
            offset_delta: 2,
            timestamp_delta: -10,
            key: None,
            value: None,
            headers: Vec::new(),
        };
        assert_eq!(r.offset(&h), 102);
        assert_eq!(r.timestamp(&h), 990);
        h.attributes = 0x08;
        assert_eq!(r.timestamp(&h), 5_000);
        h.base_offset = i64::MAX - 1;
        assert_eq!(r.offset(&h), i64::MAX);
    }
}
