//! How `cairn consume` prints a record.
//!
//! - text: the value's bytes as they are, one record per line
//!   (`KEY<TAB>VALUE` with `--print-key`); a null key or value prints `null`.
//! - json: one object per line; see [`record_json`].

use std::io::{self, Write};

use cairn_client::ConsumedRecord;
use serde_json::{json, Map, Value};

use crate::output::base64;

/// Writes a record in text form, followed by a newline.
pub fn write_text(out: &mut impl Write, r: &ConsumedRecord, print_key: bool) -> io::Result<()> {
    if print_key {
        out.write_all(r.key.as_deref().unwrap_or(b"null"))?;
        out.write_all(b"\t")?;
    }
    out.write_all(r.value.as_deref().unwrap_or(b"null"))?;
    out.write_all(b"\n")
}

/// The JSON form of a record:
/// `{"partition", "offset", "timestamp", "key", "value", "headers", "encoding"}`.
///
/// If the key, the value and every header value are valid UTF-8 (or null),
/// they are strings and `"encoding"` is `"utf8"`; otherwise all of them are
/// base64 and `"encoding"` is `"base64"`. Header names are always strings;
/// of repeated header names the last one wins.
pub fn record_json(partition: u32, r: &ConsumedRecord) -> Value {
    let all_utf8 = [r.key.as_deref(), r.value.as_deref()]
        .into_iter()
        .chain(r.headers.iter().map(|h| h.value.as_deref()))
        .flatten()
        .all(|b| std::str::from_utf8(b).is_ok());
    let encode = |b: Option<&[u8]>| -> Value {
        match b {
            None => Value::Null,
            Some(b) if all_utf8 => Value::String(String::from_utf8_lossy(b).into_owned()),
            Some(b) => Value::String(base64(b)),
        }
    };
    let mut headers = Map::new();
    for h in &r.headers {
        headers.insert(h.key.clone(), encode(h.value.as_deref()));
    }
    json!({
        "partition": partition,
        "offset": r.offset,
        "timestamp": r.timestamp_ms,
        "key": encode(r.key.as_deref()),
        "value": encode(r.value.as_deref()),
        "headers": headers,
        "encoding": if all_utf8 { "utf8" } else { "base64" },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use cairn_client::RecordHeader;

    fn rec(key: Option<&'static [u8]>, value: Option<&'static [u8]>) -> ConsumedRecord {
        ConsumedRecord {
            offset: 5,
            timestamp_ms: 1_700_000_000_000,
            key: key.map(Bytes::from_static),
            value: value.map(Bytes::from_static),
            headers: vec![RecordHeader {
                key: "h".into(),
                value: Some(Bytes::from_static(b"hv")),
            }],
        }
    }

    #[test]
    fn text_lines() {
        let mut out = Vec::new();
        write_text(&mut out, &rec(Some(b"k"), Some(b"v")), false).unwrap();
        write_text(&mut out, &rec(Some(b"k"), Some(b"v")), true).unwrap();
        write_text(&mut out, &rec(None, None), true).unwrap();
        assert_eq!(out, b"v\nk\tv\nnull\tnull\n");
    }

    #[test]
    fn json_utf8() {
        let v = record_json(2, &rec(None, Some("é".as_bytes())));
        assert_eq!(
            v,
            json!({"partition": 2, "offset": 5, "timestamp": 1_700_000_000_000i64,
                   "key": null, "value": "é", "headers": {"h": "hv"}, "encoding": "utf8"})
        );
    }

    #[test]
    fn json_binary_switches_everything_to_base64() {
        let v = record_json(0, &rec(Some(b"k"), Some(&[0xff, 0x00])));
        assert_eq!(v["encoding"], "base64");
        assert_eq!(v["key"], "aw==");
        assert_eq!(v["value"], "/wA=");
        assert_eq!(v["headers"]["h"], "aHY=");
    }
}
