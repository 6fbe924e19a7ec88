//! Value encoding: bincode 2 through serde, `standard()` config (varint integers).
//!
//! Decoding requires the whole value to be consumed; trailing bytes mean corruption.
//!
//! Values are capped at [`MAX_VALUE_BYTES`] on encode and decoded with the same byte limit.
//! Without a limit, a corrupt length prefix of a string or byte buffer makes bincode
//! allocate that length up front (`vec![0; len]`), which aborts the process for huge
//! lengths. With it, a decode never claims more than any value this crate can have written
//! (through serde, bincode only claims string and byte-buffer lengths, which are part of
//! the encoded bytes).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Cause;

/// Largest encoded value (log entry, vote, log id) this crate writes or reads: 64 MiB.
pub const MAX_VALUE_BYTES: usize = 64 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_VALUE_BYTES>()
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Cause> {
    let bytes = bincode::serde::encode_to_vec(value, config())?;
    if bytes.len() > MAX_VALUE_BYTES {
        return Err(Cause::TooLarge {
            bytes: bytes.len(),
            max: MAX_VALUE_BYTES,
        });
    }
    Ok(bytes)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Cause> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, config())?;
    if read != bytes.len() {
        return Err(Cause::Corrupt(format!(
            "{} trailing bytes after a {}-byte value",
            bytes.len() - read,
            read
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes() {
        let v = (7u64, String::from("x"), Some(3u32));
        let mut bytes = encode(&v).unwrap();
        assert_eq!(decode::<(u64, String, Option<u32>)>(&bytes).unwrap(), v);
        bytes.push(0);
        assert!(matches!(
            decode::<(u64, String, Option<u32>)>(&bytes),
            Err(Cause::Corrupt(_))
        ));
        assert!(matches!(
            decode::<(u64, String)>(&[0xFF]),
            Err(Cause::Decode(_))
        ));
    }

    /// A corrupt length prefix must be an error, not a huge allocation (which would abort).
    #[test]
    fn huge_length_prefixes_are_errors() {
        // varint marker 253 = u64 follows (little endian).
        let mut bytes = vec![253];
        bytes.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        bytes.extend_from_slice(b"abc");
        assert!(matches!(decode::<String>(&bytes), Err(Cause::Decode(_))));
        assert!(matches!(decode::<Vec<u8>>(&bytes), Err(Cause::Decode(_))));

        let mut just_over = vec![253];
        just_over.extend_from_slice(&(MAX_VALUE_BYTES as u64 + 1).to_le_bytes());
        assert!(matches!(
            decode::<String>(&just_over),
            Err(Cause::Decode(_))
        ));
    }

    #[test]
    fn values_over_the_cap_are_refused_on_encode() {
        let big = "x".repeat(MAX_VALUE_BYTES);
        assert!(matches!(encode(&big), Err(Cause::TooLarge { .. })));
        let fits = vec![1u8; 1 << 20];
        assert_eq!(decode::<Vec<u8>>(&encode(&fits).unwrap()).unwrap(), fits);
    }
}
