//! Kafka's batch compression codecs: the records section of a v2 batch
//! (everything after the 61-byte header) compressed as a whole.
//!
//! - gzip: a gzip stream;
//! - snappy: Java's xerial framing (magic header, then length-prefixed raw
//!   snappy blocks), as the Java client writes it; raw snappy (as some
//!   clients write it) is also read;
//! - lz4: the LZ4 frame format;
//! - zstd: a zstd frame.

use std::io::Read;
use std::io::Write;

use crate::Compression;
use crate::RecordError;

/// Xerial snappy stream header: magic, version 1, min compatible version 1.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;
/// Raw bytes per xerial block (the Java client's default).
const XERIAL_BLOCK: usize = 32 * 1024;

fn failed(codec: Compression, what: impl std::fmt::Display) -> RecordError {
    RecordError::Decompression {
        codec,
        reason: what.to_string(),
    }
}

/// Compresses `raw` with `codec` (`None` copies it).
pub fn compress(codec: Compression, raw: &[u8]) -> Result<Vec<u8>, RecordError> {
    let err = |e: std::io::Error| failed(codec, e);
    match codec {
        Compression::None => Ok(raw.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(raw).map_err(err)?;
            enc.finish().map_err(err)
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + raw.len() / 2);
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(&1u32.to_be_bytes());
            let mut enc = snap::raw::Encoder::new();
            for block in raw.chunks(XERIAL_BLOCK) {
                let c = enc.compress_vec(block).map_err(|e| failed(codec, e))?;
                out.extend_from_slice(&(c.len() as u32).to_be_bytes());
                out.extend_from_slice(&c);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
            enc.write_all(raw).map_err(err)?;
            enc.finish().map_err(|e| failed(codec, e))
        }
        Compression::Zstd => zstd::bulk::compress(raw, 3).map_err(err),
        Compression::Unknown(id) => Err(RecordError::InvalidCompression(id)),
    }
}

/// Decompresses `data`, refusing to produce more than `limit` bytes (a
/// small batch must not expand into gigabytes).
pub fn decompress(codec: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    let too_big = || failed(codec, format!("expands past {limit} bytes"));
    let read_all = |mut r: Box<dyn Read + '_>| -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::new();
        let n = (&mut r)
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| failed(codec, e))?;
        if n > limit {
            return Err(too_big());
        }
        Ok(out)
    };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => read_all(Box::new(flate2::read::GzDecoder::new(data))),
        Compression::Lz4 => read_all(Box::new(lz4_flex::frame::FrameDecoder::new(data))),
        Compression::Zstd => {
            let dec = zstd::stream::read::Decoder::new(data).map_err(|e| failed(codec, e))?;
            read_all(Box::new(dec))
        }
        Compression::Snappy => {
            if data.len() >= XERIAL_HEADER_LEN && data[..8] == XERIAL_MAGIC {
                let mut out = Vec::new();
                let mut rest = &data[XERIAL_HEADER_LEN..];
                let mut dec = snap::raw::Decoder::new();
                while !rest.is_empty() {
                    let (len, tail) = rest
                        .split_first_chunk::<4>()
                        .ok_or_else(|| failed(codec, "truncated xerial block length"))?;
                    let len = u32::from_be_bytes(*len) as usize;
                    let block = tail
                        .get(..len)
                        .ok_or_else(|| failed(codec, "truncated xerial block"))?;
                    let size = snap::raw::decompress_len(block).map_err(|e| failed(codec, e))?;
                    if out.len() + size > limit {
                        return Err(too_big());
                    }
                    out.extend_from_slice(
                        &dec.decompress_vec(block).map_err(|e| failed(codec, e))?,
                    );
                    rest = &tail[len..];
                }
                Ok(out)
            } else {
                let size = snap::raw::decompress_len(data).map_err(|e| failed(codec, e))?;
                if size > limit {
                    return Err(too_big());
                }
                snap::raw::Decoder::new()
                    .decompress_vec(data)
                    .map_err(|e| failed(codec, e))
            }
        }
        Compression::Unknown(id) => Err(RecordError::InvalidCompression(id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips_and_shrinks_repetitive_data() {
        let raw: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 97).to_be_bytes())
            .collect();
        for codec in CODECS {
            let c = compress(codec, &raw).unwrap();
            assert!(c.len() < raw.len() / 4, "{codec:?}: {} bytes", c.len());
            assert_eq!(decompress(codec, &c, raw.len()).unwrap(), raw, "{codec:?}");
        }
    }

    #[test]
    fn expansion_past_the_limit_and_garbage_are_errors() {
        let raw = vec![0u8; 1 << 20];
        for codec in CODECS {
            let c = compress(codec, &raw).unwrap();
            assert!(matches!(
                decompress(codec, &c, 1000),
                Err(RecordError::Decompression { .. })
            ));
            assert!(
                decompress(codec, b"\x00\x01garbage!", 1 << 20).is_err(),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn raw_snappy_without_xerial_framing_is_read() {
        let raw = b"patient admitted ward 3 patient admitted ward 3".repeat(20);
        let c = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        assert_eq!(decompress(Compression::Snappy, &c, 1 << 20).unwrap(), raw);
    }
}
