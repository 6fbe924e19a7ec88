//! Decoding `Fetch` responses into records.

use bytes::Bytes;
use cairn_proto::v1::FetchResponse;
use cairn_record::{decode_batch, split_batches_allow_partial, RecordHeader};

use crate::ClientError;

/// One record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// The record's offset in its partition.
    pub offset: i64,
    /// Timestamp in milliseconds since the epoch (create or log-append time).
    pub timestamp_ms: i64,
    /// Record key (`None`: null).
    pub key: Option<Bytes>,
    /// Record value (`None`: null).
    pub value: Option<Bytes>,
    /// Record headers, in order.
    pub headers: Vec<RecordHeader>,
}

/// The decoded result of one fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchedRecords {
    /// Records at or after the requested offset, in offset order. Records of
    /// control batches (transaction markers) are left out.
    pub records: Vec<ConsumedRecord>,
    /// The offset to fetch next: one past the last offset of the last
    /// complete batch, or the requested offset if no batch was returned.
    pub next_offset: u64,
    /// The partition's high watermark when the fetch was answered.
    pub high_watermark: u64,
    /// The partition's first retained offset when the fetch was answered.
    pub log_start_offset: u64,
}

impl FetchedRecords {
    /// Decodes a fetch answered for `from_offset`. Records below
    /// `from_offset` (the first batch may start before it) are skipped, and a
    /// truncated last batch is ignored.
    ///
    /// Fails on malformed batches and on compressed batches, which this
    /// client cannot decode yet.
    pub fn decode(resp: FetchResponse, from_offset: u64) -> Result<Self, ClientError> {
        let data = resp.records;
        let mut out = FetchedRecords {
            records: Vec::new(),
            next_offset: from_offset,
            high_watermark: resp.high_watermark,
            log_start_offset: resp.log_start_offset,
        };
        let min = i64::try_from(from_offset).unwrap_or(i64::MAX);
        for batch in split_batches_allow_partial(&data) {
            let batch = data.slice_ref(batch?);
            let (header, records) = decode_batch(&batch)?;
            if let Ok(next) = u64::try_from(header.next_offset()) {
                out.next_offset = out.next_offset.max(next);
            }
            if header.is_control() {
                continue;
            }
            for r in records {
                let offset = r.offset(&header);
                if offset < min {
                    continue;
                }
                out.records.push(ConsumedRecord {
                    offset,
                    timestamp_ms: r.timestamp(&header),
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_record::RecordBatchBuilder;

    /// A batch of `values` whose first offset is `base`.
    fn batch(base: i64, values: &[&str]) -> Vec<u8> {
        let mut b = RecordBatchBuilder::new();
        for v in values {
            b.push(10, None, Some(v.as_bytes()), &[]);
        }
        let mut bytes = b.build().to_vec();
        cairn_record::set_base_offset(&mut bytes, base).unwrap();
        bytes
    }

    #[test]
    fn skips_records_below_fetch_offset() {
        let mut records = batch(10, &["a", "b", "c"]);
        records.extend(batch(13, &["d"]));
        let resp = FetchResponse {
            high_watermark: 14,
            log_start_offset: 0,
            records: records.into(),
        };
        let f = FetchedRecords::decode(resp, 11).unwrap();
        let got: Vec<(i64, &[u8])> = f
            .records
            .iter()
            .map(|r| (r.offset, r.value.as_deref().unwrap()))
            .collect();
        assert_eq!(got, vec![(11, &b"b"[..]), (12, b"c"), (13, b"d")]);
        assert_eq!(f.next_offset, 14);
        assert_eq!(f.high_watermark, 14);
        assert_eq!(f.records[0].timestamp_ms, 10);
    }

    #[test]
    fn empty_and_truncated() {
        let f = FetchedRecords::decode(FetchResponse::default(), 5).unwrap();
        assert!(f.records.is_empty());
        assert_eq!(f.next_offset, 5);

        let mut records = batch(0, &["a"]);
        let second = batch(1, &["b"]);
        records.extend_from_slice(&second[..second.len() - 3]);
        let resp = FetchResponse {
            records: records.into(),
            ..Default::default()
        };
        let f = FetchedRecords::decode(resp, 0).unwrap();
        assert_eq!(f.records.len(), 1);
        assert_eq!(f.next_offset, 1);
    }

    #[test]
    fn corrupt_batch_is_an_error() {
        let mut records = batch(0, &["a"]);
        let last = records.len() - 1;
        records[last] ^= 0xff;
        let resp = FetchResponse {
            records: records.into(),
            ..Default::default()
        };
        assert!(matches!(
            FetchedRecords::decode(resp, 0),
            Err(ClientError::Record(_))
        ));
    }
}
