//! The crate's error type.

use thiserror::Error;

use crate::Compression;

/// Everything that can go wrong while reading or checking a record batch.
///
/// Every variant describes a property of the input bytes; none of them is
/// produced by a bug in the caller, so they are safe to report back to a
/// client (e.g. as Kafka's `CORRUPT_MESSAGE` / `INVALID_RECORD`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    /// The buffer ends before the structure being read does.
    #[error("truncated record batch: needed {needed} bytes, got {got}")]
    Truncated {
        /// Bytes required to read the structure.
        needed: usize,
        /// Bytes available.
        got: usize,
    },

    /// The magic byte is not 2 (only RecordBatch v2 is supported).
    #[error("unsupported record batch magic {0} (only magic 2 is supported)")]
    BadMagic(i8),

    /// The `batchLength` field is too small to hold a v2 batch header.
    #[error("invalid batchLength {0} (a v2 batch needs at least 49)")]
    InvalidBatchLength(i32),

    /// The buffer holds more bytes than the batch's `batchLength` declares
    /// (the buffer must hold exactly one batch).
    #[error(
        "batch length mismatch: header declares {declared} bytes in total, buffer has {actual}"
    )]
    LengthMismatch {
        /// Total size declared by the header (`batchLength + 12`).
        declared: usize,
        /// Size of the buffer.
        actual: usize,
    },

    /// The CRC-32C stored in the header does not match the data.
    #[error("record batch CRC mismatch: header says {expected:#010x}, data has {actual:#010x}")]
    CrcMismatch {
        /// CRC stored in the batch header.
        expected: u32,
        /// CRC computed over the batch.
        actual: u32,
    },

    /// The compression bits of the attributes name no known codec (5-7).
    #[error("invalid compression codec id {0}")]
    InvalidCompression(u8),

    /// The batch is compressed with a codec this crate cannot decode.
    #[error("unsupported compression {0:?}: only uncompressed batches can be decoded")]
    UnsupportedCompression(Compression),

    /// A compressed records section could not be compressed or decompressed.
    #[error("{codec:?} records: {reason}")]
    Decompression { codec: Compression, reason: String },

    /// `recordsCount` is not positive or disagrees with `lastOffsetDelta`.
    #[error("bad record count {records_count} for lastOffsetDelta {last_offset_delta} (expected lastOffsetDelta + 1 > 0)")]
    BadRecordCount {
        /// The `recordsCount` header field.
        records_count: i32,
        /// The `lastOffsetDelta` header field.
        last_offset_delta: i32,
    },

    /// A varint/varlong is longer than 5/10 bytes or overflows.
    #[error("invalid varint at byte {offset} of the batch")]
    InvalidVarint {
        /// Position of the varint's first byte, from the start of the batch.
        offset: usize,
    },

    /// A record inside an (uncompressed) batch is malformed.
    #[error("malformed record #{index}: {reason}")]
    MalformedRecord {
        /// Index of the record within the batch (0-based).
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}
