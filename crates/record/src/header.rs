//! The fixed 61-byte header of a v2 record batch.

use crate::{Compression, RecordError, TimestampType};

/// Size of the v2 batch header, up to and including `recordsCount`.
pub const BATCH_HEADER_SIZE: usize = 61;
/// Bytes before the part counted by `batchLength` (`baseOffset` + `batchLength`).
pub const LOG_OVERHEAD: usize = 12;
/// The only supported magic value.
pub const CURRENT_MAGIC: i8 = 2;

/// Smallest legal `batchLength`: a header with no records.
pub(crate) const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32;

// Byte offsets of the header fields.
pub(crate) const BASE_OFFSET_OFFSET: usize = 0;
pub(crate) const BATCH_LENGTH_OFFSET: usize = 8;
pub(crate) const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub(crate) const MAGIC_OFFSET: usize = 16;
pub(crate) const CRC_OFFSET: usize = 17;
/// The CRC covers `buf[ATTRIBUTES_OFFSET..]`.
pub(crate) const ATTRIBUTES_OFFSET: usize = 21;
pub(crate) const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub(crate) const BASE_TIMESTAMP_OFFSET: usize = 27;
pub(crate) const MAX_TIMESTAMP_OFFSET: usize = 35;
pub(crate) const PRODUCER_ID_OFFSET: usize = 43;
pub(crate) const PRODUCER_EPOCH_OFFSET: usize = 51;
pub(crate) const BASE_SEQUENCE_OFFSET: usize = 53;
pub(crate) const RECORDS_COUNT_OFFSET: usize = 57;

const TIMESTAMP_TYPE_FLAG: i16 = 0x08;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;

/// The decoded header of a v2 record batch. Field names follow Kafka's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordBatchHeader {
    /// Offset of the first record (assigned by the broker; 0 from producers).
    pub base_offset: i64,
    /// Size of the batch after this field, i.e. total size − 12.
    pub batch_length: i32,
    /// Leader epoch stamped by the broker (−1 from producers).
    pub partition_leader_epoch: i32,
    /// Always 2 for a header that parsed.
    pub magic: i8,
    /// CRC-32C of everything from `attributes` to the end of the batch.
    pub crc: u32,
    /// Compression (bits 0-2), timestamp type (3), transactional (4), control (5).
    pub attributes: i16,
    /// Offset delta of the last record.
    pub last_offset_delta: i32,
    /// Timestamp of the first record; record timestamps are deltas to this.
    pub base_timestamp: i64,
    /// Largest record timestamp (or the log-append time).
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, −1 if none.
    pub producer_id: i64,
    /// Producer epoch, −1 if none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, −1 if none.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

#[inline]
fn be<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

impl RecordBatchHeader {
    /// Parses the header at the start of `buf`, which needs only the first
    /// [`BATCH_HEADER_SIZE`] bytes of the batch.
    ///
    /// Checks that the magic is 2 and that `batchLength` is at least large
    /// enough for the header; it does not check the CRC or the record count
    /// (see [`crate::validate_batch`]).
    pub fn parse(buf: &[u8]) -> Result<Self, RecordError> {
        if buf.len() < BATCH_HEADER_SIZE {
            return Err(RecordError::Truncated {
                needed: BATCH_HEADER_SIZE,
                got: buf.len(),
            });
        }
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != CURRENT_MAGIC {
            return Err(RecordError::BadMagic(magic));
        }
        let batch_length = i32::from_be_bytes(be(buf, BATCH_LENGTH_OFFSET));
        if batch_length < MIN_BATCH_LENGTH {
            return Err(RecordError::InvalidBatchLength(batch_length));
        }
        Ok(RecordBatchHeader {
            base_offset: i64::from_be_bytes(be(buf, BASE_OFFSET_OFFSET)),
            batch_length,
            partition_leader_epoch: i32::from_be_bytes(be(buf, PARTITION_LEADER_EPOCH_OFFSET)),
            magic,
            crc: u32::from_be_bytes(be(buf, CRC_OFFSET)),
            attributes: i16::from_be_bytes(be(buf, ATTRIBUTES_OFFSET)),
            last_offset_delta: i32::from_be_bytes(be(buf, LAST_OFFSET_DELTA_OFFSET)),
            base_timestamp: i64::from_be_bytes(be(buf, BASE_TIMESTAMP_OFFSET)),
            max_timestamp: i64::from_be_bytes(be(buf, MAX_TIMESTAMP_OFFSET)),
            producer_id: i64::from_be_bytes(be(buf, PRODUCER_ID_OFFSET)),
            producer_epoch: i16::from_be_bytes(be(buf, PRODUCER_EPOCH_OFFSET)),
            base_sequence: i32::from_be_bytes(be(buf, BASE_SEQUENCE_OFFSET)),
            records_count: i32::from_be_bytes(be(buf, RECORDS_COUNT_OFFSET)),
        })
    }

    /// Writes the header into `buf[..61]` exactly as stored (including the
    /// `crc` field as is; it is not recomputed).
    pub(crate) fn write_to(&self, buf: &mut [u8]) {
        let buf = &mut buf[..BATCH_HEADER_SIZE];
        buf[0..8].copy_from_slice(&self.base_offset.to_be_bytes());
        buf[8..12].copy_from_slice(&self.batch_length.to_be_bytes());
        buf[12..16].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        buf[16] = self.magic as u8;
        buf[17..21].copy_from_slice(&self.crc.to_be_bytes());
        buf[21..23].copy_from_slice(&self.attributes.to_be_bytes());
        buf[23..27].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        buf[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        buf[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        buf[43..51].copy_from_slice(&self.producer_id.to_be_bytes());
        buf[51..53].copy_from_slice(&self.producer_epoch.to_be_bytes());
        buf[53..57].copy_from_slice(&self.base_sequence.to_be_bytes());
        buf[57..61].copy_from_slice(&self.records_count.to_be_bytes());
    }

    /// Compression codec (attribute bits 0-2).
    pub fn compression(&self) -> Compression {
        Compression::from_attributes(self.attributes)
    }

    /// Timestamp type (attribute bit 3).
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_FLAG != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    /// Whether this is a control batch (commit/abort markers; bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// Number of records (`recordsCount`, negative values read as 0).
    pub fn record_count(&self) -> u32 {
        u32::try_from(self.records_count).unwrap_or(0)
    }

    /// Offset of the last record: `base_offset + last_offset_delta`
    /// (saturating, so hostile values cannot overflow).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Offset following the batch: `last_offset() + 1` (saturating). This is
    /// the log end offset after appending the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Number of offsets the batch spans: `last_offset_delta + 1`.
    pub fn offset_count(&self) -> i64 {
        i64::from(self.last_offset_delta) + 1
    }

    /// Total size of the batch in bytes: `batch_length + 12`.
    pub fn total_size(&self) -> usize {
        // `parse` guarantees batch_length >= 49; clamp anyway for
        // hand-built headers.
        usize::try_from(self.batch_length).unwrap_or(0) + LOG_OVERHEAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordBatchHeader {
        RecordBatchHeader {
            base_offset: 1000,
            batch_length: 49,
            partition_leader_epoch: 7,
            magic: 2,
            crc: 0xdead_beef,
            attributes: 0x0002 | 0x08 | 0x10 | 0x20,
            last_offset_delta: 4,
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_500,
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 17,
            records_count: 5,
        }
    }

    #[test]
    fn parse_write_round_trip() {
        let h = sample();
        let mut buf = [0u8; BATCH_HEADER_SIZE];
        h.write_to(&mut buf);
        assert_eq!(RecordBatchHeader::parse(&buf), Ok(h));
        assert_eq!(buf[16], 2);
        assert_eq!(&buf[17..21], &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn helpers() {
        let h = sample();
        assert_eq!(h.compression(), Compression::Snappy);
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert!(h.is_transactional());
        assert!(h.is_control());
        assert_eq!(h.record_count(), 5);
        assert_eq!(h.last_offset(), 1004);
        assert_eq!(h.next_offset(), 1005);
        assert_eq!(h.offset_count(), 5);
        assert_eq!(h.total_size(), 61);

        let plain = RecordBatchHeader {
            attributes: 0,
            base_offset: i64::MAX,
            records_count: -3,
            ..sample()
        };
        assert_eq!(plain.compression(), Compression::None);
        assert_eq!(plain.timestamp_type(), TimestampType::CreateTime);
        assert!(!plain.is_transactional());
        assert!(!plain.is_control());
        assert_eq!(plain.record_count(), 0);
        assert_eq!(plain.last_offset(), i64::MAX);
        assert_eq!(plain.next_offset(), i64::MAX);
    }

    #[test]
    fn parse_errors() {
        let mut buf = [0u8; BATCH_HEADER_SIZE];
        sample().write_to(&mut buf);
        assert_eq!(
            RecordBatchHeader::parse(&buf[..60]),
            Err(RecordError::Truncated {
                needed: 61,
                got: 60
            })
        );
        let mut bad = buf;
        bad[16] = 1;
        assert_eq!(
            RecordBatchHeader::parse(&bad),
            Err(RecordError::BadMagic(1))
        );
        let mut bad = buf;
        bad[8..12].copy_from_slice(&48i32.to_be_bytes());
        assert_eq!(
            RecordBatchHeader::parse(&bad),
            Err(RecordError::InvalidBatchLength(48))
        );
        bad[8..12].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            RecordBatchHeader::parse(&bad),
            Err(RecordError::InvalidBatchLength(-1))
        );
    }
}
