//! [`OwnedRecord`], the producer-side record, and building batches of them.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cairn_record::Compression;
use cairn_record::RecordBatchBuilder;

use crate::partitioner::choose_partition;

/// A record to produce with [`crate::Client::produce_records`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Send to this partition instead of choosing one from the key.
    pub partition: Option<u32>,
    /// Record key; also selects the partition (Kafka murmur2) unless
    /// `partition` is set. `None` is a null key.
    pub key: Option<Bytes>,
    /// Record value; `None` is a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Record headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Create time in milliseconds since the epoch; `None` means now.
    pub timestamp_ms: Option<i64>,
}

impl OwnedRecord {
    /// A record with just a value.
    pub fn from_value(value: impl Into<Bytes>) -> Self {
        OwnedRecord {
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// A record with a key and a value.
    pub fn with_key(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        OwnedRecord {
            key: Some(key.into()),
            value: Some(value.into()),
            ..Default::default()
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Record indices per partition, in input order. `sticky` is the partition
/// for keyless records without an explicit partition.
pub(crate) fn group_by_partition(
    records: &[OwnedRecord],
    num_partitions: u32,
    sticky: u32,
) -> BTreeMap<u32, Vec<usize>> {
    let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let p = choose_partition(r.partition, r.key.as_deref(), num_partitions, sticky);
        groups.entry(p).or_default().push(i);
    }
    groups
}

/// Idempotent-producer fields of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerStamp {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

/// Builds one batch of `records[indices]`, in order.
pub(crate) fn build_batch(
    records: &[OwnedRecord],
    indices: &[usize],
    now_ms: i64,
    stamp: Option<ProducerStamp>,
    compression: Compression,
) -> Bytes {
    let capacity: usize = indices
        .iter()
        .filter_map(|&i| records.get(i))
        .map(|r| r.key.as_ref().map_or(0, Bytes::len) + r.value.as_ref().map_or(0, Bytes::len) + 16)
        .sum();
    let mut builder = RecordBatchBuilder::with_capacity(capacity).with_compression(compression);
    if let Some(s) = stamp {
        builder = builder.with_producer(s.producer_id, s.epoch, s.base_sequence);
    }
    let mut headers: Vec<(&str, Option<&[u8]>)> = Vec::new();
    for r in indices.iter().filter_map(|&i| records.get(i)) {
        headers.clear();
        headers.extend(r.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())));
        builder.push(
            r.timestamp_ms.unwrap_or(now_ms),
            r.key.as_deref(),
            r.value.as_deref(),
            &headers,
        );
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_order_and_use_sticky_for_keyless() {
        let records = vec![
            OwnedRecord::from_value("a"),
            OwnedRecord::with_key("foobar", "b"),
            OwnedRecord {
                partition: Some(0),
                ..OwnedRecord::from_value("c")
            },
            OwnedRecord::from_value("d"),
        ];
        let foobar = cairn_record::partition_for_key(b"foobar", 4);
        let groups = group_by_partition(&records, 4, 1);
        let mut expected: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        expected.entry(1).or_default().extend([0, 3]);
        expected.entry(foobar).or_default().push(1);
        expected.entry(0).or_default().push(2);
        // Recompute with the same rules when foobar collides with 0 or 1.
        let mut merged: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (p, idx) in expected {
            merged.entry(p).or_default().extend(idx);
        }
        for v in merged.values_mut() {
            v.sort_unstable();
        }
        assert_eq!(groups, merged);
    }

    #[test]
    fn batch_round_trips() {
        let records = vec![
            OwnedRecord {
                headers: vec![
                    ("h".into(), Some(Bytes::from_static(b"v"))),
                    ("n".into(), None),
                ],
                timestamp_ms: Some(1_000),
                ..OwnedRecord::with_key("k", "v0")
            },
            OwnedRecord::from_value("skipped"),
            OwnedRecord {
                key: None,
                value: None,
                ..Default::default()
            },
        ];
        let batch = build_batch(&records, &[0, 2], 5_000, None, Compression::None);
        let (header, decoded) = cairn_record::decode_batch(&batch).unwrap();
        assert_eq!(header.records_count, 2);
        assert_eq!(header.producer_id, -1);
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(decoded[0].value.as_deref(), Some(&b"v0"[..]));
        assert_eq!(decoded[0].headers.len(), 2);
        assert_eq!(decoded[0].headers[1].value, None);
        assert_eq!(decoded[0].timestamp(&header), 1_000);
        assert_eq!(decoded[1].value, None);
        assert_eq!(decoded[1].timestamp(&header), 5_000);

        let stamp = ProducerStamp {
            producer_id: 42,
            epoch: 0,
            base_sequence: 7,
        };
        let batch = build_batch(&records, &[1], 5_000, Some(stamp), Compression::Lz4);
        let (header, _) = cairn_record::decode_batch(&batch).unwrap();
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (42, 0, 7)
        );
    }
}
