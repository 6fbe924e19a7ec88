//! Encoding records into a new uncompressed v2 batch.

use bytes::Bytes;

use crate::header::{
    ATTRIBUTES_OFFSET, BATCH_HEADER_SIZE, CRC_OFFSET, CURRENT_MAGIC, LOG_OVERHEAD,
};
use crate::varint::{put_varint, put_varlong, varint_size, varlong_size};
use crate::Compression;
use crate::RecordBatchHeader;

const TRANSACTIONAL_FLAG: i16 = 0x10;

/// Builds one uncompressed v2 record batch, as a producer sends it.
///
/// Records are encoded straight into the output buffer as they are pushed
/// (one growable allocation; [`RecordBatchBuilder::with_capacity`] sizes it
/// up front), and [`RecordBatchBuilder::build`] fills in the header and CRC
/// and hands the buffer over without copying.
///
/// Header fields written: `baseOffset` 0, `partitionLeaderEpoch` −1,
/// `baseTimestamp` = the first record's timestamp, `maxTimestamp` = the
/// largest, `lastOffsetDelta` = count − 1, CreateTime, no compression, and
/// producer id/epoch/base sequence −1 unless set with
/// [`RecordBatchBuilder::with_producer`].
///
/// # Panics
///
/// [`RecordBatchBuilder::push`] panics if a key, value or header is longer
/// than `i32::MAX` bytes or the batch would exceed `i32::MAX` records or
/// bytes — limits no Kafka batch can reach.
#[derive(Debug, Clone)]
pub struct RecordBatchBuilder {
    buf: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    compression: Compression,
}

impl Default for RecordBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

#[inline]
fn len_i32(len: usize) -> i32 {
    match i32::try_from(len) {
        Ok(n) => n,
        Err(_) => panic!("record field of {len} bytes exceeds the Kafka limit of i32::MAX"),
    }
}

/// Encoded size of a nullable byte field.
#[inline]
fn bytes_size(b: Option<&[u8]>) -> usize {
    match b {
        None => 1,
        Some(b) => varint_size(len_i32(b.len())) + b.len(),
    }
}

#[inline]
fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, len_i32(b.len()));
            out.extend_from_slice(b);
        }
    }
}

impl RecordBatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty builder whose buffer holds `bytes` bytes of records (plus
    /// the header) before reallocating. Use the expected batch size.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(BATCH_HEADER_SIZE.saturating_add(bytes));
        buf.resize(BATCH_HEADER_SIZE, 0);
        RecordBatchBuilder {
            buf,
            count: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            compression: Compression::None,
        }
    }

    /// Sets the idempotent-producer fields (defaults: −1, −1, −1).
    pub fn with_producer(
        mut self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Compresses the records section with `codec` at [`Self::build`]
    /// (default: none). Should compression fail, the batch is built
    /// uncompressed: still a valid batch.
    pub fn with_compression(mut self, codec: Compression) -> Self {
        self.compression = match codec {
            Compression::Unknown(_) => Compression::None,
            c => c,
        };
        self
    }

    /// Sets the transactional attribute bit (default: off).
    pub fn with_transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Number of records pushed so far.
    pub fn len(&self) -> usize {
        // count is never negative.
        self.count as usize
    }

    /// Whether no record has been pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size in bytes of the batch [`RecordBatchBuilder::build`] would return
    /// now: exact, header included. An empty builder reports the 61-byte
    /// header (although `build` then returns nothing), so
    /// `size_estimate() + record_size(..)` is always the size after a push.
    pub fn size_estimate(&self) -> usize {
        self.buf.len()
    }

    /// Exact number of bytes a record with these fields would add if pushed
    /// now, so callers can keep a batch under a size limit before pushing.
    pub fn record_size(
        &self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> usize {
        let body = self.body_size(timestamp_ms, key, value, headers);
        varint_size(len_i32(body)) + body
    }

    fn timestamp_delta(&self, timestamp_ms: i64) -> i64 {
        if self.count == 0 {
            0
        } else {
            timestamp_ms.wrapping_sub(self.base_timestamp)
        }
    }

    fn body_size(
        &self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> usize {
        let mut size = 1 // attributes
            + varlong_size(self.timestamp_delta(timestamp_ms))
            + varint_size(self.count)
            + bytes_size(key)
            + bytes_size(value)
            + varint_size(len_i32(headers.len()));
        for (k, v) in headers {
            size += bytes_size(Some(k.as_bytes())) + bytes_size(*v);
        }
        size
    }

    /// Appends a record with the given timestamp (ms), nullable key and
    /// value, and headers (UTF-8 key, nullable value). The record's offset
    /// delta is its index in the batch.
    pub fn push(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) {
        assert!(
            self.count < i32::MAX,
            "record batch exceeds i32::MAX records"
        );
        let body = self.body_size(timestamp_ms, key, value, headers);
        let body_len = len_i32(body);
        let total = varint_size(body_len) + body;
        assert!(
            self.buf.len() - LOG_OVERHEAD + total <= i32::MAX as usize,
            "record batch exceeds i32::MAX bytes"
        );
        let timestamp_delta = self.timestamp_delta(timestamp_ms);
        if self.count == 0 {
            self.base_timestamp = timestamp_ms;
            self.max_timestamp = timestamp_ms;
        } else if timestamp_ms > self.max_timestamp {
            self.max_timestamp = timestamp_ms;
        }

        let out = &mut self.buf;
        out.reserve(total);
        let start = out.len();
        put_varint(out, body_len);
        out.push(0); // record attributes: unused
        put_varlong(out, timestamp_delta);
        put_varint(out, self.count);
        put_bytes(out, key);
        put_bytes(out, value);
        put_varint(out, len_i32(headers.len()));
        for (k, v) in headers {
            put_bytes(out, Some(k.as_bytes()));
            put_bytes(out, *v);
        }
        debug_assert_eq!(out.len() - start, total);
        self.count += 1;
    }

    /// Finishes the batch: writes the header, computes the CRC-32C and
    /// returns the bytes (no copy). An empty builder returns empty `Bytes`
    /// (zero batches), since a v2 batch cannot hold zero records.
    pub fn build(self) -> Bytes {
        if self.count == 0 {
            return Bytes::new();
        }
        let mut buf = self.buf;
        let mut attributes = if self.transactional {
            TRANSACTIONAL_FLAG
        } else {
            0
        };
        if self.compression != Compression::None {
            if let Ok(packed) = crate::codec::compress(self.compression, &buf[BATCH_HEADER_SIZE..])
            {
                buf.truncate(BATCH_HEADER_SIZE);
                buf.extend_from_slice(&packed);
                attributes |= i16::from(self.compression.id());
            }
        }
        let header = RecordBatchHeader {
            base_offset: 0,
            // push() keeps the batch within i32::MAX bytes.
            batch_length: (buf.len() - LOG_OVERHEAD) as i32,
            partition_leader_epoch: -1,
            magic: CURRENT_MAGIC,
            crc: 0,
            attributes,
            last_offset_delta: self.count - 1,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            records_count: self.count,
        };
        header.write_to(&mut buf);
        let crc = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..]);
        buf[CRC_OFFSET..ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_records, validate_batch};

    #[test]
    fn compressed_batches_validate_and_decode_to_the_same_records() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut plain = RecordBatchBuilder::new();
            let mut packed = RecordBatchBuilder::new().with_compression(codec);
            for i in 0..200u32 {
                let value = format!("lab result {i}: potassium 4.{} mmol/L", i % 10);
                let key = i.to_string();
                plain.push(
                    1_700_000_000_000 + i64::from(i),
                    Some(key.as_bytes()),
                    Some(value.as_bytes()),
                    &[("h", Some(b"v"))],
                );
                packed.push(
                    1_700_000_000_000 + i64::from(i),
                    Some(key.as_bytes()),
                    Some(value.as_bytes()),
                    &[("h", Some(b"v"))],
                );
            }
            let (plain, packed) = (plain.build(), packed.build());
            assert!(
                packed.len() < plain.len() / 2,
                "{codec:?}: {} vs {}",
                packed.len(),
                plain.len()
            );
            let h = validate_batch(&packed).unwrap();
            assert_eq!(h.compression(), codec);
            assert_eq!(h.record_count(), 200);
            assert_eq!(
                decode_records(&packed).unwrap(),
                decode_records(&plain).unwrap(),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn empty_builder_builds_nothing() {
        let b = RecordBatchBuilder::default();
        assert!(b.is_empty());
        assert_eq!(b.len(), 0);
        assert_eq!(b.size_estimate(), BATCH_HEADER_SIZE);
        assert!(b.build().is_empty());
    }

    #[test]
    fn default_header_fields() {
        let mut b = RecordBatchBuilder::new();
        b.push(50, None, Some(b"x"), &[]);
        b.push(40, None, Some(b"y"), &[]);
        assert_eq!(b.len(), 2);
        let out = b.build();
        let h = validate_batch(&out).unwrap();
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.partition_leader_epoch, -1);
        assert_eq!(h.attributes, 0);
        assert_eq!(h.compression(), Compression::None);
        assert_eq!((h.base_timestamp, h.max_timestamp), (50, 50));
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (-1, -1, -1)
        );
        assert_eq!((h.last_offset_delta, h.records_count), (1, 2));
        let recs = decode_records(&out).unwrap();
        assert_eq!(recs[1].timestamp_delta, -10);
    }

    #[test]
    fn producer_and_transactional_fields() {
        let mut b = RecordBatchBuilder::with_capacity(1024)
            .with_producer(77, 3, 1_000)
            .with_transactional(true);
        b.push(1, Some(b"k"), None, &[("a", Some(b"b"))]);
        let h = validate_batch(&b.build()).unwrap();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (77, 3, 1_000)
        );
        assert!(h.is_transactional());
        assert!(!h.is_control());
    }

    #[test]
    fn with_capacity_avoids_reallocation() {
        let value = [7u8; 100];
        let fill = |b: &mut RecordBatchBuilder| {
            for i in 0..1000 {
                b.push(i, Some(b"key"), Some(&value), &[("h", None)]);
            }
        };
        let mut probe = RecordBatchBuilder::new();
        fill(&mut probe);
        let total = probe.size_estimate();

        let mut b = RecordBatchBuilder::with_capacity(total - BATCH_HEADER_SIZE);
        let ptr = b.buf.as_ptr();
        fill(&mut b);
        assert_eq!(b.size_estimate(), total);
        let out = b.build();
        assert_eq!(out.len(), total);
        assert_eq!(out.as_ptr(), ptr, "buffer was reallocated or copied");
        assert_eq!(decode_records(&out).unwrap().len(), 1000);
    }
}
