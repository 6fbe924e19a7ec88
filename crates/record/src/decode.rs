//! Walking and decoding the records of an uncompressed batch.

use std::ops::Range;

use bytes::Bytes;

use crate::cursor::{Cursor, ReadError};
use crate::header::BATCH_HEADER_SIZE;
use crate::validate::check_batch;
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
        let mut rc = Cursor::with_range(cur.buf(), body.start, body.end);
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
            return Err(malformed(index, "record length does not match its contents"));
        }
    }
    if !cur.is_empty() {
        return Err(malformed(count as usize, "bytes left after the last record"));
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

/// Validates `batch` (exactly one batch, as [`crate::validate_batch`]) and
/// decodes its header and records without copying: keys and values are
/// slices of `batch`.
///
/// Compressed batches fail with [`RecordError::UnsupportedCompression`].
pub fn decode_batch(batch: &Bytes) -> Result<(RecordBatchHeader, Vec<Record>), RecordError> {
    let header = check_batch(batch)?;
    let compression = header.compression();
    if compression != Compression::None {
        return Err(RecordError::UnsupportedCompression(compression));
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
///
/// Compressed batches fail with [`RecordError::UnsupportedCompression`].
pub fn decode_records(batch: &[u8]) -> Result<Vec<Record>, RecordError> {
    decode_batch(&Bytes::copy_from_slice(batch)).map(|(_, records)| records)
}
