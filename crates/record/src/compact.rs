//! Log compaction of one batch: dropping records while keeping the batch's
//! offsets.
//!
//! A thinned-out batch keeps its `baseOffset`, `lastOffsetDelta` (so its
//! offset span, and with it every later offset, is unchanged), producer id,
//! epoch and base sequence, attributes, and both header timestamps. Kept
//! records are copied byte for byte, so their offset and timestamp deltas
//! still hold. A compressed batch is decompressed, thinned out and
//! recompressed with the same codec. A batch left without records becomes an
//! empty batch: the 61-byte header with `recordsCount` 0 and no compression,
//! as Kafka's log cleaner writes it.

use std::ops::Range;

use crate::decode::{walk_records, RawRecord, RecordSink};
use crate::header::{ATTRIBUTES_OFFSET, BATCH_HEADER_SIZE, CRC_OFFSET, LOG_OVERHEAD};
use crate::validate::check_batch_with;
use crate::{Compression, RecordBatchHeader, RecordError, TimestampType, MAX_DECOMPRESSED_BYTES};

/// Compression bits of the attributes.
const COMPRESSION_MASK: i16 = 0x07;

/// One record as [`retain_records`] shows it to its `keep` callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedRecord<'a> {
    /// Absolute offset (the batch's `baseOffset` plus the record's delta).
    pub offset: i64,
    /// Absolute timestamp, as a consumer would report it.
    pub timestamp: i64,
    /// The key; `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Whether the value is null (a tombstone).
    pub tombstone: bool,
}

struct Spans(Vec<RawRecord>);

impl RecordSink for Spans {
    fn record(&mut self, record: RawRecord) {
        self.0.push(record);
    }
    fn header(&mut self, _: &str, _: Option<Range<usize>>) {}
}

/// Rebuilds `batch` (one complete batch, possibly already compacted) without
/// the records for which `keep` returns false, keeping its offsets as the
/// module documentation describes. Returns `None` when every record is kept
/// (nothing to rewrite). Control batches are returned unchanged (`None`).
///
/// The batch's own `baseOffset` is used for [`RetainedRecord::offset`]; the
/// caller sets it first if the stored value is not the real one.
pub fn retain_records<F>(batch: &[u8], mut keep: F) -> Result<Option<Vec<u8>>, RecordError>
where
    F: FnMut(&RetainedRecord<'_>) -> bool,
{
    let header = check_batch_with(batch, true)?;
    if header.is_control() || header.records_count == 0 {
        return Ok(None);
    }
    let codec = header.compression();
    let plain: std::borrow::Cow<'_, [u8]> = if codec == Compression::None {
        std::borrow::Cow::Borrowed(batch)
    } else {
        let raw =
            crate::codec::decompress(codec, &batch[BATCH_HEADER_SIZE..], MAX_DECOMPRESSED_BYTES)?;
        let mut plain = Vec::with_capacity(BATCH_HEADER_SIZE + raw.len());
        plain.extend_from_slice(&batch[..BATCH_HEADER_SIZE]);
        plain.extend_from_slice(&raw);
        std::borrow::Cow::Owned(plain)
    };
    let mut spans = Spans(Vec::new());
    walk_records(&plain, header.record_count(), &mut spans)?;

    let mut kept = Vec::with_capacity(plain.len() - BATCH_HEADER_SIZE);
    let mut kept_count: i32 = 0;
    for raw in &spans.0 {
        let view = RetainedRecord {
            offset: header
                .base_offset
                .saturating_add(i64::from(raw.offset_delta)),
            timestamp: match header.timestamp_type() {
                TimestampType::LogAppendTime => header.max_timestamp,
                TimestampType::CreateTime => {
                    header.base_timestamp.wrapping_add(raw.timestamp_delta)
                }
            },
            key: raw.key.clone().map(|r| &plain[r]),
            tombstone: raw.value.is_none(),
        };
        if keep(&view) {
            kept.extend_from_slice(&plain[raw.span.clone()]);
            kept_count += 1;
        }
    }
    if kept_count == header.records_count {
        return Ok(None);
    }
    let mut out_header = RecordBatchHeader {
        records_count: kept_count,
        ..header
    };
    let payload = if kept_count == 0 {
        out_header.attributes &= !COMPRESSION_MASK;
        Vec::new()
    } else if codec == Compression::None {
        kept
    } else {
        crate::codec::compress(codec, &kept)?
    };
    seal_batch(out_header, &payload).map(Some)
}

/// A batch of `header` (its length set here) and records section
/// `payload`, with its CRC computed.
pub(crate) fn seal_batch(
    mut header: RecordBatchHeader,
    payload: &[u8],
) -> Result<Vec<u8>, RecordError> {
    let total = BATCH_HEADER_SIZE + payload.len();
    header.batch_length =
        i32::try_from(total - LOG_OVERHEAD).map_err(|_| RecordError::InvalidBatchLength(-1))?;
    let mut out = vec![0u8; BATCH_HEADER_SIZE];
    out.extend_from_slice(payload);
    header.write_to(&mut out);
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{assign_offsets, decode_batch, validate_batch, RecordBatchBuilder};

    fn batch(codec: Compression, n: i64) -> Vec<u8> {
        let mut b = RecordBatchBuilder::new()
            .with_producer(9, 2, 100)
            .with_compression(codec);
        for i in 0..n {
            let key = format!("k{}", i % 3);
            let value = format!("value {i} {}", "x".repeat(40));
            let value = (i % 5 != 4).then_some(value);
            b.push(
                1_000 + i,
                Some(key.as_bytes()),
                value.as_deref().map(str::as_bytes),
                &[("h", Some(b"v"))],
            );
        }
        let mut out = b.build().to_vec();
        crate::set_base_offset(&mut out, 500).unwrap();
        out
    }

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn dropping_records_keeps_offsets_header_and_codec() {
        for codec in CODECS {
            let original = batch(codec, 20);
            let (h0, r0) = decode_batch(&Bytes::from(original.clone())).unwrap();
            let out = retain_records(&original, |r| r.offset % 2 == 0)
                .unwrap()
                .expect("records were dropped");
            let (h1, r1) = decode_batch(&Bytes::from(out.clone())).unwrap();
            assert_eq!(h1.compression(), codec);
            assert_eq!(h1.records_count, 10);
            assert_eq!(
                (h1.base_offset, h1.last_offset_delta, h1.attributes),
                (h0.base_offset, h0.last_offset_delta, h0.attributes)
            );
            assert_eq!(
                (h1.producer_id, h1.producer_epoch, h1.base_sequence),
                (9, 2, 100)
            );
            assert_eq!(
                (h1.base_timestamp, h1.max_timestamp),
                (h0.base_timestamp, h0.max_timestamp)
            );
            let expected: Vec<_> = r0
                .iter()
                .filter(|r| r.offset(&h0) % 2 == 0)
                .map(|r| {
                    (
                        r.offset(&h0),
                        r.timestamp(&h0),
                        r.key.clone(),
                        r.value.clone(),
                    )
                })
                .collect();
            let got: Vec<_> = r1
                .iter()
                .map(|r| {
                    (
                        r.offset(&h1),
                        r.timestamp(&h1),
                        r.key.clone(),
                        r.value.clone(),
                    )
                })
                .collect();
            assert_eq!(got, expected, "{codec:?}");
            // The offset span is unchanged: the next batch keeps its offsets.
            let mut two = [out.clone(), original.clone()].concat();
            assert_eq!(assign_offsets(&mut two, 0, 1), Ok(40));
            // A produce still has to send whole batches.
            assert!(validate_batch(&out).is_err());
            // Compacting again with the same rule changes nothing.
            assert_eq!(retain_records(&out, |r| r.offset % 2 == 0), Ok(None));
        }
    }

    #[test]
    fn a_batch_without_records_left_is_an_empty_header() {
        for codec in CODECS {
            let original = batch(codec, 7);
            let out = retain_records(&original, |_| false).unwrap().unwrap();
            assert_eq!(out.len(), BATCH_HEADER_SIZE);
            let (h, records) = decode_batch(&Bytes::from(out.clone())).unwrap();
            assert!(records.is_empty());
            assert_eq!((h.records_count, h.last_offset_delta), (0, 6));
            assert_eq!(h.compression(), Compression::None);
            assert_eq!(h.next_offset(), 507);
            assert_eq!(retain_records(&out, |_| false), Ok(None));
        }
    }

    #[test]
    fn keeping_everything_rewrites_nothing_and_sees_every_record() {
        let original = batch(Compression::Lz4, 10);
        let mut seen = Vec::new();
        let out = retain_records(&original, |r| {
            seen.push((
                r.offset,
                r.timestamp,
                r.tombstone,
                r.key.map(<[u8]>::to_vec),
            ));
            true
        });
        assert_eq!(out, Ok(None));
        assert_eq!(seen.len(), 10);
        assert_eq!(seen[4], (504, 1_004, true, Some(b"k1".to_vec())));
        assert_eq!(seen[5], (505, 1_005, false, Some(b"k2".to_vec())));
    }

    #[test]
    fn corrupt_batches_are_errors() {
        let mut original = batch(Compression::None, 3);
        let last = original.len() - 1;
        original[last] ^= 1;
        assert!(matches!(
            retain_records(&original, |_| false),
            Err(RecordError::CrcMismatch { .. })
        ));
    }
}
