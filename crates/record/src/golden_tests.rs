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

/// Compressed batches produced once by hand with kafka-python 3.0.12 (codecs
/// from lz4 4.x, python-snappy with xerial framing, zstandard):
///
/// ```python
/// b = DefaultRecordBatchBuilder(magic=2, compression_type=CODEC, is_transactional=0,
///         producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
/// for i in range(20):
///     b.append(i, timestamp=1700000000000 + i, key=b"p-%d" % i,
///              value=b"admitted ward %d" % (i % 4), headers=[])
/// bytes(b.build()).hex()
/// ```
const KAFKA_PYTHON_GZIP: &str = "\
    0000000000000000000000e300000000020c20440c0001000000130000018bcfe568\
    000000018bcfe56813ffffffffffffffffffffffffffff000000141f8b0800a0a809\
    6b02ff6dcf4d0784501487f12349922449925c49bbe1767aff38d12c66318c11f3f5\
    e77fb6ddb3fe2d1e8f25a2e0f3b0cd71be5fd7f53ccdeff89ec69225cf030c371800\
    be0fe01b30200800e30d4640180226a51145805969c43160511a49025895469a0236\
    a5916580dd6930e5798841eb44988a4264702a4c6529c24e86a9aa4446a553d72293\
    d2691a9159e91823b2289db61559954ed7896c4aa7ef4576a7f30703ec4d25fe0100\
    00";
const KAFKA_PYTHON_SNAPPY: &str = "\
    0000000000000000000001480000000002f5364bfd0002000000130000018bcfe568\
    000000018bcfe56813ffffffffffffffffffffffffffff0000001482534e41505059\
    00000000010000000100000103fe03803000000006702d301e61646d697474656420\
    776172642030003000020206702d313a19002431003000040406702d323a19002432\
    003000060606702d333a19002433003000080806702d343a19000164140a0a06702d\
    353a19000164140c0c06702d363a19000164140e0e06702d373a1900016414101006\
    702d383a1900016414121206702d393a19002831003200141408702d31303a1a0014\
    320032001616011a3efc0014330032001818011a00323a340014300032001a1a011a\
    3efe000168041c1c011a3eff0014320032001e1e011a3e00010168042020011a3e01\
    010168042222011a3e02010168042424011a3e03010168042626011a3e0401043300";
const KAFKA_PYTHON_LZ4: &str = "\
    00000000000000000000014900000000023fce95690003000000130000018bcfe568\
    000000018bcfe56813ffffffffffffffffffffffffffff0000001404224d186840fe\
    01000000000000b901010000fb123000000006702d301e61646d6974746564207761\
    72642030003000020206702d311900ab31003000040406702d321900ab3200300006\
    0606702d331900ab33003000080806702d3419000064006b0a0a06702d3519000064\
    006b0c0c06702d3619000064006b0e0e06702d3719000064006b101006702d381900\
    0064006b121206702d391900ac31003200141408702d31fb00603200320016161a00\
    0cfc00603300320018181a000cfd0060300032001a1a1a000cfe00006800201c1c1a\
    000cff00006800201e1e1a000c00010068002020201a000c01010068002022221a00\
    0c02010068002024241a000c03010068002026261a00090401507264203300000000\
    00";
const KAFKA_PYTHON_ZSTD: &str = "\
    0000000000000000000000f10000000002397c23bd0004000000130000018bcfe568\
    000000018bcfe56813ffffffffffffffffffffffffffff0000001428b52ffd60fe00\
    b5050002491d1d60a5d301340396c5808520881170245bc69c1dda16231804f11622\
    4e01160455cf4339cef49ee45cd434e7c3c830e72f2fcbf9112acaf90cb55b929c2d\
    ed44904a3b8f83d24ec398b4b32824ed2488483b5bfb3e46edccfc9e593b87e17b08\
    b55310bedf87015c010f0b649960805d6eb5f3ff061e006004601124034103294080\
    2019081a4801816b0802f4055681bec02ad0175805faf658c5ff100ee60292029202\
    920259670800e810e810e850b89b4f";

#[test]
fn kafka_python_compressed_batches_decode() {
    let mut expected = RecordBatchBuilder::new();
    for i in 0..20i64 {
        let key = format!("p-{i}");
        let value = format!("admitted ward {}", i % 4);
        expected.push(T0 + i, Some(key.as_bytes()), Some(value.as_bytes()), &[]);
    }
    let expected = decode_records(&expected.build()).unwrap();
    for (codec, hex) in [
        (Compression::Gzip, KAFKA_PYTHON_GZIP),
        (Compression::Snappy, KAFKA_PYTHON_SNAPPY),
        (Compression::Lz4, KAFKA_PYTHON_LZ4),
        (Compression::Zstd, KAFKA_PYTHON_ZSTD),
    ] {
        let bytes = unhex(&hex.replace(char::is_whitespace, ""));
        let header = validate_batch(&bytes).unwrap();
        assert_eq!(header.compression(), codec);
        assert_eq!(decode_records(&bytes).unwrap(), expected, "{codec:?}");
    }
}

/// Prints this crate's compressed batches as hex, for checking with
/// kafka-python by hand (`cargo test -p cairn-record print_ours -- --ignored --nocapture`).
#[test]
#[ignore]
fn print_ours() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut b = RecordBatchBuilder::new().with_compression(codec);
        for i in 0..20i64 {
            let key = format!("p-{i}");
            let value = format!("admitted ward {}", i % 4);
            b.push(T0 + i, Some(key.as_bytes()), Some(value.as_bytes()), &[]);
        }
        let hex: String = b.build().iter().map(|x| format!("{x:02x}")).collect();
        println!("OURS {codec:?} {hex}");
    }
}
