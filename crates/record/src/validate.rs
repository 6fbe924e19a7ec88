//! Checking that a buffer holds exactly one well-formed batch.

use crate::decode::{walk_records, Discard};
use crate::header::ATTRIBUTES_OFFSET;
use crate::{Compression, RecordBatchHeader, RecordError};

/// CRC-32C of a batch: everything from `attributes` to the end.
pub(crate) fn batch_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES_OFFSET..).unwrap_or_default())
}

/// Header, length, CRC, codec id and record-count checks (no record walk).
pub(crate) fn check_batch(buf: &[u8]) -> Result<RecordBatchHeader, RecordError> {
    let header = RecordBatchHeader::parse(buf)?;
    let declared = header.total_size();
    if buf.len() < declared {
        return Err(RecordError::Truncated {
            needed: declared,
            got: buf.len(),
        });
    }
    if buf.len() > declared {
        return Err(RecordError::LengthMismatch {
            declared,
            actual: buf.len(),
        });
    }
    let actual = batch_crc(buf);
    if actual != header.crc {
        return Err(RecordError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    if let Compression::Unknown(id) = header.compression() {
        return Err(RecordError::InvalidCompression(id));
    }
    if header.records_count <= 0
        || i64::from(header.records_count) != i64::from(header.last_offset_delta) + 1
    {
        return Err(RecordError::BadRecordCount {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Checks that `buf` is exactly one valid v2 record batch and returns its
/// header. In order, it checks:
///
/// 1. at least a 61-byte header, magic 2, `batchLength >= 49`
///    ([`RecordError::Truncated`], [`RecordError::BadMagic`],
///    [`RecordError::InvalidBatchLength`]);
/// 2. `buf.len() == batchLength + 12` ([`RecordError::Truncated`] if shorter,
///    [`RecordError::LengthMismatch`] if longer);
/// 3. the CRC-32C ([`RecordError::CrcMismatch`]);
/// 4. a defined compression codec ([`RecordError::InvalidCompression`]);
/// 5. `recordsCount == lastOffsetDelta + 1 > 0` ([`RecordError::BadRecordCount`]);
/// 6. for uncompressed batches, that exactly `recordsCount` well-formed
///    records fill the rest of the batch, with UTF-8 header keys
///    ([`RecordError::MalformedRecord`], [`RecordError::InvalidVarint`]) —
///    so anything that validates also decodes with [`crate::decode_records`].
///    Compressed payloads are not inspected.
///
/// `baseOffset` and `partitionLeaderEpoch` are outside the CRC and are not
/// checked; `maxTimestamp >= baseTimestamp` is not required (nor is it by
/// Kafka). Allocates nothing.
pub fn validate_batch(buf: &[u8]) -> Result<RecordBatchHeader, RecordError> {
    let header = check_batch(buf)?;
    if header.compression() == Compression::None {
        walk_records(buf, header.record_count(), &mut Discard)?;
    }
    Ok(header)
}
