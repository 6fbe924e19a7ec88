//! Value encoding: bincode 2 through serde, `standard()` config (varint integers).
//!
//! Decoding requires the whole value to be consumed; trailing bytes mean corruption.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Cause;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Cause> {
    Ok(bincode::serde::encode_to_vec(value, config())?)
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
        assert!(matches!(decode::<(u64, String)>(&[0xFF]), Err(Cause::Decode(_))));
    }
}
