//! A topic's `compression.type` on the broker side: a batch the producer
//! compressed with another codec (or not at all) is stored with the
//! topic's.
//!
//! Only the records section changes codec: every header field (offsets,
//! producer id, epoch and sequence, timestamps, the other attribute bits)
//! stays, the batch length and CRC are computed anew. The records
//! themselves are copied byte for byte.

use crate::header::BATCH_HEADER_SIZE;
use crate::validate::check_batch_with;
use crate::{Compression, RecordBatchHeader, RecordError, MAX_DECOMPRESSED_BYTES};

/// `batch` (one complete batch) with its records compressed with `to`;
/// `None` when it already is (or is a control or empty batch, which keep
/// their encoding).
pub fn recompress(batch: &[u8], to: Compression) -> Result<Option<Vec<u8>>, RecordError> {
    let header = check_batch_with(batch, true)?;
    let from = header.compression();
    if from == to || header.is_control() || header.records_count == 0 {
        return Ok(None);
    }
    if let Compression::Unknown(id) = to {
        return Err(RecordError::InvalidCompression(id));
    }
    let raw: std::borrow::Cow<'_, [u8]> = if from == Compression::None {
        std::borrow::Cow::Borrowed(&batch[BATCH_HEADER_SIZE..])
    } else {
        std::borrow::Cow::Owned(crate::codec::decompress(
            from,
            &batch[BATCH_HEADER_SIZE..],
            MAX_DECOMPRESSED_BYTES,
        )?)
    };
    let payload: std::borrow::Cow<'_, [u8]> = if to == Compression::None {
        raw
    } else {
        std::borrow::Cow::Owned(crate::codec::compress(to, &raw)?)
    };
    let out_header = RecordBatchHeader {
        attributes: (header.attributes & !Compression::ATTRIBUTE_MASK) | i16::from(to.id()),
        ..header
    };
    crate::compact::seal_batch(out_header, &payload).map(Some)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{decode_batch, validate_batch, RecordBatchBuilder};

    #[test]
    fn every_codec_to_every_other_keeps_records_and_header() {
        let codecs = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ];
        for from in codecs {
            let mut b = RecordBatchBuilder::new()
                .with_producer(7, 3, 40)
                .with_compression(from);
            for i in 0..20i64 {
                let v = format!("value {i} {}", "y".repeat(30));
                b.push(
                    500 + i,
                    Some(b"k"),
                    Some(v.as_bytes()),
                    &[("h", Some(b"x"))],
                );
            }
            let original = b.build();
            let (h0, r0) = decode_batch(&original).unwrap();
            for to in codecs {
                let Some(out) = recompress(&original, to).unwrap() else {
                    assert_eq!(from, to);
                    continue;
                };
                let out = Bytes::from(out);
                validate_batch(&out).unwrap();
                let (h1, r1) = decode_batch(&out).unwrap();
                assert_eq!(h1.compression(), to);
                assert_eq!(r1, r0, "{from:?} -> {to:?}");
                assert_eq!(
                    (h1.producer_id, h1.producer_epoch, h1.base_sequence),
                    (h0.producer_id, h0.producer_epoch, h0.base_sequence)
                );
                assert_eq!(
                    (h1.base_timestamp, h1.max_timestamp, h1.last_offset_delta),
                    (h0.base_timestamp, h0.max_timestamp, h0.last_offset_delta)
                );
            }
        }
    }
}
