//! Byte-exact comparison with a batch produced by another Kafka client.

use bytes::Bytes;

use crate::{
    decode_batch, decode_records, set_partition_leader_epoch, validate_batch, Compression, Record,
    RecordBatchBuilder, RecordHeader, TimestampType,
};

/// Produced once by hand with kafka-python 3.0.12:
///
/// ```python
/// b = DefaultRecordBatchBuilder(magic=2, compression_type=0,
///         is_transactional=False, producer_id=-1, producer_epoch=-1,
///         base_sequence=-1, batch_size=1 << 20)
/// b.append(0, 1700000000000, b"key-1", b"value-1", [("h1", b"v1"), ("trace", None)])
/// b.append(1, 1700000000123, None, b"value-2 \x00\xff", [])
/// b.append(2, 1699999999990, b"k3", None, [("\u00e9t\u00e9", b"")])
/// bytes(b.build()).hex()
/// ```
const KAFKA_PYTHON_BATCH: &str = "\
    0000000000000000000000730000000002d428814f0000000000020000018bcfe568\
    000000018bcfe5687bffffffffffffffffffffffffffff000000033e0000000a6b65\
    792d310e76616c75652d31040468310476310a7472616365012200f6010201147661\
    6c75652d322000ff001e001304046b3301020ac3a974c3a900";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const T0: i64 = 1_700_000_000_000;

fn build_same() -> Bytes {
    let mut b = RecordBatchBuilder::new();
    b.push(
        T0,
        Some(b"key-1"),
        Some(b"value-1"),
        &[("h1", Some(b"v1")), ("trace", None)],
    );
    b.push(T0 + 123, None, Some(b"value-2 \x00\xff"), &[]);
    b.push(T0 - 10, Some(b"k3"), None, &[("été", Some(b""))]);
    b.build()
}

#[test]
fn kafka_python_batch_validates_and_decodes() {
    let buf = unhex(KAFKA_PYTHON_BATCH);
    assert_eq!(buf.len(), 127);
    let h = validate_batch(&buf).unwrap();
    assert_eq!(h.base_offset, 0);
    assert_eq!(h.batch_length, 115);
    // kafka-python writes 0 here; the Java client writes -1.
    assert_eq!(h.partition_leader_epoch, 0);
    assert_eq!(h.crc, 0xd428_814f);
    assert_eq!(h.compression(), Compression::None);
    assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
    assert!(!h.is_transactional() && !h.is_control());
    assert_eq!(h.last_offset_delta, 2);
    assert_eq!(h.base_timestamp, T0);
    assert_eq!(h.max_timestamp, T0 + 123);
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (-1, -1, -1)
    );
    assert_eq!(h.record_count(), 3);
    assert_eq!(h.total_size(), buf.len());

    let records = decode_records(&buf).unwrap();
    let b = |s: &[u8]| Some(Bytes::copy_from_slice(s));
    let expected = vec![
        Record {
            offset_delta: 0,
            timestamp_delta: 0,
            key: b(b"key-1"),
            value: b(b"value-1"),
            headers: vec![
                RecordHeader {
                    key: "h1".into(),
                    value: b(b"v1"),
                },
                RecordHeader {
                    key: "trace".into(),
                    value: None,
                },
            ],
        },
        Record {
            offset_delta: 1,
            timestamp_delta: 123,
            key: None,
            value: b(b"value-2 \x00\xff"),
            headers: vec![],
        },
        Record {
            offset_delta: 2,
            timestamp_delta: -10,
            key: b(b"k3"),
            value: None,
            headers: vec![RecordHeader {
                key: "été".into(),
                value: b(b""),
            }],
        },
    ];
    assert_eq!(records, expected);
    let (h2, zero_copy) = decode_batch(&Bytes::from(buf)).unwrap();
    assert_eq!(h2, h);
    assert_eq!(zero_copy, expected);
    let offsets: Vec<i64> = records.iter().map(|r| r.offset(&h)).collect();
    assert_eq!(offsets, [0, 1, 2]);
    let ts: Vec<i64> = records.iter().map(|r| r.timestamp(&h)).collect();
    assert_eq!(ts, [T0, T0 + 123, T0 - 10]);
}

#[test]
fn builder_matches_kafka_python_bytes() {
    let ours = build_same();
    let mut theirs = unhex(KAFKA_PYTHON_BATCH);
    // The only difference: kafka-python leaves partitionLeaderEpoch at 0,
    // while we (like the Java producer) write -1 (NO_PARTITION_LEADER_EPOCH).
    // The field is outside the CRC, so the CRC must match as is.
    assert_eq!(&ours[12..16], &(-1i32).to_be_bytes());
    assert_eq!(&theirs[12..16], &0i32.to_be_bytes());
    assert_eq!(&ours[..12], &theirs[..12]);
    assert_eq!(&ours[16..], &theirs[16..]);
    set_partition_leader_epoch(&mut theirs, -1).unwrap();
    assert_eq!(&ours[..], &theirs[..]);
    validate_batch(&ours).unwrap();
}
