//! Kafka RecordBatch v2 ("magic 2") codec and Kafka's murmur2 partitioner.
//!
//! Pure library, no I/O. The broker only needs the header, validation and
//! in-place patching of `baseOffset`/`partitionLeaderEpoch`; clients build
//! batches with [`RecordBatchBuilder`] and read them with [`decode_records`].
//! Compressed batches (gzip, snappy, lz4, zstd) are built and decoded too.
//!
//! # Batch layout (big-endian)
//!
//! ```text
//!  offset size field
//!  ------ ---- -------------------------------------------------------------
//!       0    8 baseOffset            i64   ┐ "log overhead" (12 bytes),
//!       8    4 batchLength           i32   ┘ batchLength = total size − 12
//!      12    4 partitionLeaderEpoch  i32     (not covered by the CRC)
//!      16    1 magic                 i8 = 2
//!      17    4 crc                   u32     CRC-32C of bytes 21..end
//!      21    2 attributes            i16   ┐ bits 0-2 compression
//!      23    4 lastOffsetDelta       i32   │ (0 none, 1 gzip, 2 snappy,
//!      27    8 baseTimestamp         i64   │  3 lz4, 4 zstd), bit 3
//!      35    8 maxTimestamp          i64   │ timestamp type, bit 4
//!      43    8 producerId            i64   │ transactional, bit 5 control
//!      51    2 producerEpoch         i16   │
//!      53    4 baseSequence          i32   │ covered by the CRC
//!      57    4 recordsCount          i32   │
//!      61    … records               ───   ┘ (compressed as a whole if
//!                                            the codec is not none)
//!
//!  record:  length varint | attributes i8 | timestampDelta varlong |
//!           offsetDelta varint | keyLength varint (−1 = null) | key |
//!           valueLength varint (−1 = null) | value | headersCount varint |
//!           headers: keyLength varint | key (UTF-8) |
//!                    valueLength varint (−1 = null) | value
//! ```
//!
//! Varints are zig-zag encoded base-128 (at most 5 bytes; varlongs 10).
//!
//! # Example
//!
//! ```
//! use cairn_record::{decode_batch, partition_for_key, set_base_offset, validate_batch,
//!     RecordBatchBuilder};
//!
//! let mut builder = RecordBatchBuilder::new();
//! builder.push(1_700_000_000_000, Some(b"user-1"), Some(b"hello"), &[("trace", None)]);
//! builder.push(1_700_000_000_005, None, Some(b"world"), &[]);
//! let mut batch = builder.build().to_vec();
//!
//! // Broker side: validate, then stamp the offset (CRC stays valid).
//! let header = validate_batch(&batch)?;
//! assert_eq!(header.record_count(), 2);
//! set_base_offset(&mut batch, 500)?;
//!
//! // Consumer side.
//! let (header, records) = decode_batch(&batch.into())?;
//! assert_eq!(records[1].offset(&header), 501);
//! assert_eq!(records[1].value.as_deref(), Some(&b"world"[..]));
//! assert!(partition_for_key(b"user-1", 6) < 6);
//! # Ok::<(), cairn_record::RecordError>(())
//! ```
//!
//! # Untrusted input
//!
//! Every function that reads bytes returns [`RecordError`] on bad input and
//! never panics; allocations are bounded by the input size.

mod batch_iter;
mod builder;
mod codec;
mod compact;
mod compression;
mod cursor;
mod decode;
mod error;
mod header;
mod murmur2;
mod patch;
mod recompress;
mod record;
mod validate;
mod varint;

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod prop_tests;

pub use batch_iter::{split_batches, split_batches_allow_partial, BatchIter};
pub use builder::RecordBatchBuilder;
pub use codec::{compress, decompress};
pub use compact::{retain_records, RetainedRecord};
pub use compression::{Compression, TimestampType};
pub use decode::{decode_batch, decode_records, MAX_DECOMPRESSED_BYTES};
pub use error::RecordError;
pub use header::{RecordBatchHeader, BATCH_HEADER_SIZE, CURRENT_MAGIC, LOG_OVERHEAD};
pub use murmur2::{murmur2, partition_for_key};
pub use patch::{
    assign_offsets, set_base_offset, set_log_append_time, set_partition_leader_epoch,
    TIMESTAMP_TYPE_LOG_APPEND,
};
pub use recompress::recompress;
pub use record::{Record, RecordHeader};
pub use validate::validate_batch;
