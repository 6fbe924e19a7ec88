//! Checking that a buffer holds exactly one well-formed batch.

use crate::decode::{walk_records, Discard};
use crate::header::ATTRIBUTES_OFFSET;
use crate::{Compression, RecordBatchHeader, RecordError};

/// CRC-32C of a batch: everything from `attributes` to the end.
pub(crate) fn batch_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES_OFFSET..).unwrap_or_default())
}

/// Header, length, CRC, codec id and record-count checks (no record walk),
/// as for a batch a producer sends: `recordsCount == lastOffsetDelta + 1 > 0`.
pub(crate) fn check_batch(buf: &[u8]) -> Result<RecordBatchHeader, RecordError> {
    check_batch_with(buf, false)
}

/// [`check_batch`]; with `compacted`, a batch that log compaction thinned
/// out passes too: `0 <= recordsCount <= lastOffsetDelta + 1` (its offset
/// span is kept, some or all of its records are gone).
pub(crate) fn check_batch_with(
    buf: &[u8],
    compacted: bool,
) -> Result<RecordBatchHeader, RecordError> {
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
    let span = i64::from(header.last_offset_delta) + 1;
    let count = i64::from(header.records_count);
    let bad = if compacted {
        header.last_offset_delta < 0 || count < 0 || count > span
    } else {
        count <= 0 || count != span
    };
    if bad {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::CRC_OFFSET;
    use crate::RecordBatchBuilder;

    fn sample() -> Vec<u8> {
        let mut b = RecordBatchBuilder::new();
        b.push(1_000, Some(b"k"), Some(b"v"), &[("h", None)]);
        b.push(1_001, None, None, &[]);
        b.build().to_vec()
    }

    fn fix_crc(buf: &mut [u8]) {
        let crc = batch_crc(buf);
        buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }

    fn put_i32(buf: &mut [u8], at: usize, v: i32) {
        buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    #[test]
    fn accepts_valid_batch() {
        let buf = sample();
        let h = validate_batch(&buf).unwrap();
        assert_eq!(h.records_count, 2);
        assert_eq!(h.total_size(), buf.len());
    }

    #[test]
    fn length_errors() {
        let buf = sample();
        assert_eq!(
            validate_batch(&buf[..buf.len() - 1]),
            Err(RecordError::Truncated {
                needed: buf.len(),
                got: buf.len() - 1
            })
        );
        assert_eq!(
            validate_batch(&buf[..10]),
            Err(RecordError::Truncated {
                needed: 61,
                got: 10
            })
        );
        let mut longer = buf.clone();
        longer.push(0);
        assert_eq!(
            validate_batch(&longer),
            Err(RecordError::LengthMismatch {
                declared: buf.len(),
                actual: buf.len() + 1
            })
        );
    }

    #[test]
    fn bad_magic() {
        let mut buf = sample();
        buf[16] = 1;
        assert_eq!(validate_batch(&buf), Err(RecordError::BadMagic(1)));
    }

    #[test]
    fn crc_mismatch_reports_both_values() {
        let mut buf = sample();
        let good = RecordBatchHeader::parse(&buf).unwrap().crc;
        let last = buf.len() - 1;
        buf[last] ^= 0x40;
        let actual = batch_crc(&buf);
        assert_ne!(actual, good);
        let err = validate_batch(&buf).unwrap_err();
        assert_eq!(
            err,
            RecordError::CrcMismatch {
                expected: good,
                actual
            }
        );
        assert!(err.to_string().contains(&format!("{good:#010x}")));
    }

    #[test]
    fn invalid_compression_id() {
        let mut buf = sample();
        buf[22] = 0x06;
        fix_crc(&mut buf);
        assert_eq!(
            validate_batch(&buf),
            Err(RecordError::InvalidCompression(6))
        );
    }

    #[test]
    fn compressed_batch_payload_is_not_inspected() {
        // Valid header and CRC, gzip codec, garbage payload: validates (the
        // broker never decompresses) but cannot be decoded.
        let mut buf = sample();
        buf[22] = 0x01;
        let last = buf.len() - 1;
        buf[last] = 0xff;
        fix_crc(&mut buf);
        assert!(validate_batch(&buf).is_ok());
        assert!(matches!(
            crate::decode_records(&buf),
            Err(RecordError::Decompression {
                codec: Compression::Gzip,
                ..
            })
        ));
    }

    #[test]
    fn bad_record_counts() {
        for (count, delta) in [(3, 1), (1, 1), (0, -1), (-5, -6), (i32::MIN, i32::MAX)] {
            let mut buf = sample();
            put_i32(&mut buf, 57, count);
            put_i32(&mut buf, 23, delta);
            fix_crc(&mut buf);
            assert_eq!(
                validate_batch(&buf),
                Err(RecordError::BadRecordCount {
                    records_count: count,
                    last_offset_delta: delta
                }),
                "count {count} delta {delta}"
            );
        }
    }

    #[test]
    fn records_must_fill_batch_exactly() {
        // Header claims one record but two are present.
        let mut buf = sample();
        put_i32(&mut buf, 57, 1);
        put_i32(&mut buf, 23, 0);
        fix_crc(&mut buf);
        assert_eq!(
            validate_batch(&buf),
            Err(RecordError::MalformedRecord {
                index: 1,
                reason: "bytes left after the last record"
            })
        );
        // Header claims three records but two are present.
        put_i32(&mut buf, 57, 3);
        put_i32(&mut buf, 23, 2);
        fix_crc(&mut buf);
        assert_eq!(
            validate_batch(&buf),
            Err(RecordError::MalformedRecord {
                index: 2,
                reason: "batch ends before recordsCount records"
            })
        );
    }
}
