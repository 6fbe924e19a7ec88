//! Property tests across the crate's modules.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;

use crate::{
    decode_records, murmur2, partition_for_key, set_base_offset, set_partition_leader_epoch,
    split_batches, split_batches_allow_partial, validate_batch, Record, RecordBatchBuilder,
    RecordBatchHeader, RecordHeader,
};

type Input = (
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

fn input() -> impl Strategy<Value = Input> {
    (
        // Mostly realistic timestamps, sometimes extreme ones.
        prop_oneof![4 => 1_600_000_000_000i64..1_800_000_000_000, 1 => any::<i64>()],
        proptest::option::of(vec(any::<u8>(), 0..40)),
        proptest::option::of(vec(any::<u8>(), 0..300)),
        vec(
            ("\\PC{0,8}", proptest::option::of(vec(any::<u8>(), 0..20))),
            0..4,
        ),
    )
}

fn build(inputs: &[Input]) -> Bytes {
    let mut b = RecordBatchBuilder::new();
    for (ts, k, v, hs) in inputs {
        let hs: Vec<(&str, Option<&[u8]>)> =
            hs.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        let before = b.size_estimate();
        let add = b.record_size(*ts, k.as_deref(), v.as_deref(), &hs);
        b.push(*ts, k.as_deref(), v.as_deref(), &hs);
        assert_eq!(b.size_estimate(), before + add);
    }
    let est = b.size_estimate();
    let out = b.build();
    assert_eq!(out.len(), est);
    out
}

fn valid_batch() -> impl Strategy<Value = Vec<u8>> {
    vec(input(), 1..6).prop_map(|i| build(&i).to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn build_validate_decode_round_trip(inputs in vec(input(), 1..20)) {
        let batch = build(&inputs);
        let h = validate_batch(&batch).unwrap();
        prop_assert_eq!(h.record_count() as usize, inputs.len());
        prop_assert_eq!(h.base_timestamp, inputs[0].0);
        prop_assert_eq!(h.max_timestamp, inputs.iter().map(|i| i.0).max().unwrap());
        let records = decode_records(&batch).unwrap();
        let expected: Vec<Record> = inputs
            .iter()
            .enumerate()
            .map(|(i, (ts, k, v, hs))| Record {
                offset_delta: i as i32,
                timestamp_delta: ts.wrapping_sub(inputs[0].0),
                key: k.clone().map(Bytes::from),
                value: v.clone().map(Bytes::from),
                headers: hs
                    .iter()
                    .map(|(k, v)| RecordHeader { key: k.clone(), value: v.clone().map(Bytes::from) })
                    .collect(),
            })
            .collect();
        prop_assert_eq!(&records, &expected);
        for (r, (ts, ..)) in records.iter().zip(&inputs) {
            prop_assert_eq!(r.timestamp(&h), *ts);
        }
    }

    #[test]
    fn single_byte_mutation_is_detected_unless_outside_crc(
        batch in valid_batch(),
        pos in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut m = batch.clone();
        let i = pos.index(m.len());
        m[i] ^= flip;
        let result = validate_batch(&m);
        if i < 8 || (12..16).contains(&i) {
            let h = result.unwrap();
            prop_assert_eq!(h, RecordBatchHeader::parse(&m).unwrap());
        } else {
            prop_assert!(result.is_err(), "mutation at {} went undetected", i);
            prop_assert!(decode_records(&m).is_err());
        }
    }

    #[test]
    fn multi_byte_mutation_and_resizing_is_detected(
        batch in valid_batch(),
        edits in vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
        cut in any::<prop::sample::Index>(),
        extra in vec(any::<u8>(), 0..4),
    ) {
        let mut m = batch.clone();
        for (pos, flip) in &edits {
            let i = pos.index(m.len());
            if i >= 21 {
                m[i] ^= flip;
            }
        }
        if m != batch {
            prop_assert!(validate_batch(&m).is_err());
        }
        let truncated = &batch[..cut.index(batch.len())];
        prop_assert!(validate_batch(truncated).is_err());
        prop_assert!(decode_records(truncated).is_err());
        if !extra.is_empty() {
            let mut longer = batch.clone();
            longer.extend_from_slice(&extra);
            prop_assert!(validate_batch(&longer).is_err());
        }
    }

    #[test]
    fn patching_outside_crc_keeps_batch_valid(batch in valid_batch(), off: i64, epoch: i32) {
        let mut m = batch.clone();
        set_base_offset(&mut m, off).unwrap();
        set_partition_leader_epoch(&mut m, epoch).unwrap();
        let h = validate_batch(&m).unwrap();
        prop_assert_eq!(h.base_offset, off);
        prop_assert_eq!(h.partition_leader_epoch, epoch);
        prop_assert_eq!(decode_records(&m).unwrap(), decode_records(&batch).unwrap());
    }

    #[test]
    fn split_concatenation(batches in vec(valid_batch(), 0..5), cut in any::<prop::sample::Index>()) {
        let all: Vec<u8> = batches.concat();
        let parts: Vec<&[u8]> = split_batches(&all).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(parts.len(), batches.len());
        for (p, b) in parts.iter().zip(&batches) {
            prop_assert_eq!(*p, &b[..]);
        }
        // Truncate anywhere: the lenient walk returns the complete prefix.
        let n = cut.index(all.len() + 1);
        let mut it = split_batches_allow_partial(&all[..n]);
        let got: Vec<&[u8]> = (&mut it).collect::<Result<_, _>>().unwrap();
        let mut complete = 0;
        let mut end = 0;
        for b in &batches {
            if end + b.len() <= n { end += b.len(); complete += 1; } else { break; }
        }
        prop_assert_eq!(got.len(), complete);
        prop_assert_eq!(it.position(), end);
        prop_assert_eq!(it.is_tail_partial(), end < n);
        prop_assert_eq!(it.partial_tail().map(<[u8]>::len), (end < n).then_some(n - end));
        let strict: Result<Vec<&[u8]>, _> = split_batches(&all[..n]).collect();
        prop_assert_eq!(strict.is_err(), end < n);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        let _ = RecordBatchHeader::parse(&bytes);
        let _ = validate_batch(&bytes);
        let _ = decode_records(&bytes);
        for b in split_batches(&bytes) { let _ = b.map(validate_batch); }
        for b in split_batches_allow_partial(&bytes) { let _ = b.map(decode_records); }
        let mut m = bytes.clone();
        let _ = set_base_offset(&mut m, 1);
        let _ = set_partition_leader_epoch(&mut m, 1);
        let _ = crate::assign_offsets(&mut m, 5, 1);
        let _ = partition_for_key(&bytes, 3);
        let _ = murmur2(&bytes);
    }

    /// Arbitrary bytes behind a plausible header with a correct CRC, so the
    /// record parser itself gets exercised on garbage.
    #[test]
    fn garbage_records_with_valid_crc_never_panic(
        body in vec(any::<u8>(), 0..120),
        count in 1i32..6,
    ) {
        let mut buf = vec![0u8; 61];
        buf.extend_from_slice(&body);
        let h = RecordBatchHeader {
            base_offset: 0,
            batch_length: (buf.len() - 12) as i32,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: count,
        };
        h.write_to(&mut buf);
        let crc = crate::validate::batch_crc(&buf);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
        let v = validate_batch(&buf);
        let d = decode_records(&buf);
        // Validation and decoding agree.
        prop_assert_eq!(v.err(), d.as_ref().err().cloned());
        if let Ok(records) = d {
            prop_assert_eq!(records.len(), count as usize);
        }
    }
}
