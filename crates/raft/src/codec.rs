//! bincode encoding of Raft messages on the wire.

use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("decode: {trailing} trailing bytes after a {read}-byte value")]
    Trailing { read: usize, trailing: usize },
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(
        value,
        bincode::config::standard(),
    )?)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, _) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())?;
    Ok(value)
}

/// [`decode`], and every byte must belong to the value: how to tell a
/// stored format from the one that extends it with more fields.
pub fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())?;
    if read != bytes.len() {
        return Err(CodecError::Trailing {
            read,
            trailing: bytes.len() - read,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_exact_refuses_trailing_bytes() {
        let mut bytes = encode(&(7u64, Some(3i64))).unwrap();
        assert_eq!(
            decode_exact::<(u64, Option<i64>)>(&bytes).unwrap(),
            (7, Some(3))
        );
        bytes.push(0);
        assert_eq!(decode::<(u64, Option<i64>)>(&bytes).unwrap(), (7, Some(3)));
        assert!(matches!(
            decode_exact::<(u64, Option<i64>)>(&bytes),
            Err(CodecError::Trailing {
                read: 3,
                trailing: 1
            })
        ));
    }
}
