//! Walking and decoding the records of an uncompressed batch.

use std::ops::Range;

use bytes::Bytes;

use crate::cursor::{Cursor, ReadError};
use crate::header::BATCH_HEADER_SIZE;
use crate::validate::check_batch_with;
use crate::{Compression, Record, RecordBatchHeader, RecordError, RecordHeader};

/// Smallest possible encoded record: length, attributes, timestampDelta,
/// offsetDelta, keyLength, valueLength, headersCount — one byte each.
pub(crate) const MIN_RECORD_SIZE: usize = 7;

/// A record's fixed fields, with key/value as ranges into the batch.
pub(crate) struct RawRecord {
    pub(crate) timestamp_delta: i64,
    pub(crate) offset_delta: i32,
    pub(crate) key: Option<Range<usize>>,
    pub(crate) value: Option<Range<usize>>,
    pub(crate) header_count: usize,
    /// The whole record, length prefix included.
    pub(crate) span: Range<usize>,
}

/// Receives the records found by [`walk_records`].
pub(crate) trait RecordSink {
    /// A record starts; its headers follow through [`RecordSink::header`].
    fn record(&mut self, record: RawRecord);
    /// A header of the record most recently passed to [`RecordSink::record`].
    fn header(&mut self, key: &str, value: Option<Range<usize>>);
}

/// A sink that only checks structure.
pub(crate) struct Discard;

impl RecordSink for Discard {
    fn record(&mut self, _: RawRecord) {}
    fn header(&mut self, _: &str, _: Option<Range<usize>>) {}
}

fn malformed(index: usize, reason: &'static str) -> RecordError {
    RecordError::MalformedRecord { index, reason }
}

fn in_record(index: usize) -> impl Fn(ReadError) -> RecordError {
    move |e| match e {
        ReadError::Eof => malformed(index, "record is shorter than its fields"),
        ReadError::BadVarint(offset) => RecordError::InvalidVarint { offset },
    }
}

/// Reads a nullable byte field (varint length, −1 = null).
fn nullable(
    cur: &mut Cursor<'_>,
    index: usize,
    what: &'static str,
) -> Result<Option<Range<usize>>, RecordError> {
    let len = cur.varint().map_err(in_record(index))?;
    match len {
        -1 => Ok(None),
        len if len < 0 => Err(malformed(index, what)),
        // len >= 0, so the conversion is lossless.
        len => cur.skip(len as usize).map(Some).map_err(in_record(index)),
    }
}

/// Parses the records area of `batch` (an uncompressed batch whose header
/// has been checked), passing each record to `sink`. Fails unless exactly
/// `count` well-formed records fill the batch.
pub(crate) fn walk_records(
    batch: &[u8],
    count: u32,
    sink: &mut impl RecordSink,
) -> Result<(), RecordError> {
    let mut cur = Cursor::with_range(batch, BATCH_HEADER_SIZE, batch.len());
    for index in 0..count as usize {
        if cur.is_empty() {
            return Err(malformed(index, "batch ends before recordsCount records"));
        }
        let start = cur.position();
        let len = cur.varint().map_err(|e| match e {
            ReadError::Eof => malformed(index, "record length extends past the end of the batch"),
            ReadError::BadVarint(offset) => RecordError::InvalidVarint { offset },
        })?;
        if len < 0 {
            return Err(malformed(index, "negative record length"));
        }
        let body = cur
            .skip(len as usize)
            .map_err(|_| malformed(index, "record extends past the end of the batch"))?;
        let mut rc = Cursor::with_range(batch, body.start, body.end);
        let _attributes = rc.i8().map_err(in_record(index))?;
        let timestamp_delta = rc.varlong().map_err(in_record(index))?;
        let offset_delta = rc.varint().map_err(in_record(index))?;
        let key = nullable(&mut rc, index, "negative key length")?;
        let value = nullable(&mut rc, index, "negative value length")?;
        let header_count = rc.varint().map_err(in_record(index))?;
        if header_count < 0 {
            return Err(malformed(index, "negative header count"));
        }
        let header_count = header_count as usize;
        // Each header takes at least two bytes; this also bounds the
        // allocation a decoder makes for them.
        if header_count > rc.remaining() / 2 {
            return Err(malformed(index, "header count exceeds record size"));
        }
        sink.record(RawRecord {
            timestamp_delta,
            offset_delta,
            key,
            value,
            header_count,
            span: start..body.end,
        });
        for _ in 0..header_count {
            let key_len = rc.varint().map_err(in_record(index))?;
            if key_len < 0 {
                return Err(malformed(index, "null or negative header key length"));
            }
            let key = rc.skip(key_len as usize).map_err(in_record(index))?;
            let key = std::str::from_utf8(&batch[key])
                .map_err(|_| malformed(index, "header key is not valid UTF-8"))?;
            let value = nullable(&mut rc, index, "negative header value length")?;
            sink.header(key, value);
        }
        if !rc.is_empty() {
            return Err(malformed(
                index,
                "record length does not match its contents",
            ));
        }
    }
    if !cur.is_empty() {
        return Err(malformed(
            count as usize,
            "bytes left after the last record",
        ));
    }
    Ok(())
}

/// Collects records as [`Record`]s sharing the batch's `Bytes`.
struct Collect<'a> {
    batch: &'a Bytes,
    records: Vec<Record>,
}

impl RecordSink for Collect<'_> {
    fn record(&mut self, raw: RawRecord) {
        self.records.push(Record {
            offset_delta: raw.offset_delta,
            timestamp_delta: raw.timestamp_delta,
            key: raw.key.map(|r| self.batch.slice(r)),
            value: raw.value.map(|r| self.batch.slice(r)),
            headers: Vec::with_capacity(raw.header_count),
        });
    }

    fn header(&mut self, key: &str, value: Option<Range<usize>>) {
        let value = value.map(|r| self.batch.slice(r));
        if let Some(record) = self.records.last_mut() {
            record.headers.push(RecordHeader {
                key: key.to_owned(),
                value,
            });
        }
    }
}

/// Largest records section a compressed batch may decompress to (256 MiB).
pub const MAX_DECOMPRESSED_BYTES: usize = 256 * 1024 * 1024;

/// Validates `batch` (exactly one batch, as [`crate::validate_batch`]) and
/// decodes its header and records without copying: keys and values are
/// slices of `batch`. A compressed batch (gzip, snappy, lz4, zstd) is
/// decompressed once and its records slice that copy; one that expands past
/// [`MAX_DECOMPRESSED_BYTES`] fails with [`RecordError::Decompression`].
///
/// Unlike [`crate::validate_batch`], this also accepts a batch thinned out
/// by log compaction: fewer records than its offset span
/// (`recordsCount < lastOffsetDelta + 1`), possibly none at all. A consumer
/// skips the offsets such a batch no longer holds, as Kafka's clients do.
pub fn decode_batch(batch: &Bytes) -> Result<(RecordBatchHeader, Vec<Record>), RecordError> {
    let header = check_batch_with(batch, true)?;
    if header.records_count == 0 && batch.len() == BATCH_HEADER_SIZE {
        return Ok((header, Vec::new()));
    }
    let compression = header.compression();
    if compression != Compression::None {
        // Records of a compressed batch: the header followed by the
        // decompressed records section; keys and values slice that copy.
        let raw = crate::codec::decompress(
            compression,
            &batch[BATCH_HEADER_SIZE..],
            MAX_DECOMPRESSED_BYTES,
        )?;
        let mut plain = Vec::with_capacity(BATCH_HEADER_SIZE + raw.len());
        plain.extend_from_slice(&batch[..BATCH_HEADER_SIZE]);
        plain.extend_from_slice(&raw);
        let plain = Bytes::from(plain);
        let count = header.record_count();
        let max_fit = raw.len() / MIN_RECORD_SIZE;
        let mut sink = Collect {
            batch: &plain,
            records: Vec::with_capacity((count as usize).min(max_fit)),
        };
        walk_records(&plain, count, &mut sink)?;
        return Ok((header, sink.records));
    }
    let count = header.record_count();
    let max_fit = (batch.len() - BATCH_HEADER_SIZE) / MIN_RECORD_SIZE;
    let mut sink = Collect {
        batch,
        records: Vec::with_capacity((count as usize).min(max_fit)),
    };
    walk_records(batch, count, &mut sink)?;
    Ok((header, sink.records))
}

/// Validates `batch` (exactly one batch, as [`crate::validate_batch`]) and
/// decodes its records. Copies `batch` once; keys and values share that copy.
pub fn decode_records(batch: &[u8]) -> Result<Vec<Record>, RecordError> {
    decode_batch(&Bytes::copy_from_slice(batch)).map(|(_, records)| records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{CRC_OFFSET, LOG_OVERHEAD};
    use crate::validate::batch_crc;
    use crate::validate_batch;
    use crate::varint::{put_varint, put_varlong};

    /// Wraps raw record bytes in a valid header with `count` records.
    fn batch_with(records: &[u8], count: i32) -> Vec<u8> {
        let mut buf = vec![0u8; BATCH_HEADER_SIZE];
        buf.extend_from_slice(records);
        let h = RecordBatchHeader {
            base_offset: 0,
            batch_length: (buf.len() - LOG_OVERHEAD) as i32,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: count,
        };
        h.write_to(&mut buf);
        let crc = batch_crc(&buf);
        buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        buf
    }

    /// One record with the given body, length-prefixed.
    fn record(body: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        put_varint(&mut r, body.len() as i32);
        r.extend_from_slice(body);
        r
    }

    fn body(key_len: i32, key: &[u8], headers: &[(i32, &[u8], i32)]) -> Vec<u8> {
        let mut b = vec![0u8]; // attributes
        put_varlong(&mut b, 0);
        put_varint(&mut b, 0);
        put_varint(&mut b, key_len);
        b.extend_from_slice(key);
        put_varint(&mut b, -1); // null value
        put_varint(&mut b, headers.len() as i32);
        for (klen, k, vlen) in headers {
            put_varint(&mut b, *klen);
            b.extend_from_slice(k);
            put_varint(&mut b, *vlen);
        }
        b
    }

    fn err_of(records: &[u8], count: i32) -> RecordError {
        let buf = batch_with(records, count);
        let v = validate_batch(&buf).unwrap_err();
        assert_eq!(decode_records(&buf).unwrap_err(), v);
        v
    }

    #[test]
    fn minimal_record_decodes() {
        let buf = batch_with(&record(&body(-1, b"", &[])), 1);
        assert_eq!(record(&body(-1, b"", &[])).len(), MIN_RECORD_SIZE);
        let recs = decode_records(&buf).unwrap();
        assert_eq!(
            recs,
            vec![Record {
                offset_delta: 0,
                timestamp_delta: 0,
                key: None,
                value: None,
                headers: vec![]
            }]
        );
    }

    #[test]
    fn malformed_records() {
        let m = |index, reason| RecordError::MalformedRecord { index, reason };
        assert_eq!(
            err_of(&record(&body(-2, b"", &[])), 1),
            m(0, "negative key length")
        );
        assert_eq!(
            err_of(&record(&body(5, b"ab", &[])), 1),
            m(0, "record is shorter than its fields")
        );
        let mut long = body(-1, b"", &[]);
        long.push(0);
        assert_eq!(
            err_of(&record(&long), 1),
            m(0, "record length does not match its contents")
        );
        assert_eq!(
            err_of(&record(&body(-1, b"", &[(-1, b"", -1)])), 1),
            m(0, "null or negative header key length")
        );
        assert_eq!(
            err_of(&record(&body(-1, b"", &[(2, b"\xc3\x28", -1)])), 1),
            m(0, "header key is not valid UTF-8")
        );
        assert_eq!(
            err_of(&record(&body(-1, b"", &[(1, b"k", -3)])), 1),
            m(0, "negative header value length")
        );
        // Header count larger than the bytes could hold.
        let mut b = body(-1, b"", &[]);
        b.pop();
        put_varint(&mut b, 1000);
        assert_eq!(
            err_of(&record(&b), 1),
            m(0, "header count exceeds record size")
        );
        let mut b = body(-1, b"", &[]);
        b.pop();
        put_varint(&mut b, -1);
        assert_eq!(err_of(&record(&b), 1), m(0, "negative header count"));
        // Record length longer than the batch.
        let mut r = record(&body(-1, b"", &[]));
        r[0] = 0x40; // length 32
        assert_eq!(
            err_of(&r, 1),
            m(0, "record extends past the end of the batch")
        );
        r[0] = 0x01; // length -1
        assert_eq!(err_of(&r, 1), m(0, "negative record length"));
        // Second record broken.
        let mut two = record(&body(-1, b"", &[]));
        two.extend_from_slice(&record(&body(-9, b"", &[])));
        assert_eq!(err_of(&two, 2), m(1, "negative key length"));
    }

    #[test]
    fn invalid_varint_points_into_batch() {
        // Timestamp delta (record byte 2, after length and attributes) as an
        // 11-byte varlong.
        let mut b = vec![0u8];
        b.extend_from_slice(&[0xff; 11]);
        b.extend_from_slice(&[0, 1, 1, 0]);
        assert_eq!(
            err_of(&record(&b), 1),
            RecordError::InvalidVarint {
                offset: BATCH_HEADER_SIZE + 2
            }
        );
        // Over-long record length varint.
        let r = [0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0];
        assert_eq!(
            err_of(&r, 1),
            RecordError::InvalidVarint {
                offset: BATCH_HEADER_SIZE
            }
        );
    }

    #[test]
    fn decode_batch_shares_memory() {
        let mut b = crate::RecordBatchBuilder::new();
        b.push(5, Some(b"key"), Some(b"value"), &[]);
        let batch = b.build();
        let (_, recs) = decode_batch(&batch).unwrap();
        let v = recs[0].value.as_ref().unwrap();
        let range = batch.as_ptr() as usize..batch.as_ptr() as usize + batch.len();
        assert!(range.contains(&(v.as_ptr() as usize)));
    }
}
