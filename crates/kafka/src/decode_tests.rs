//! The request decoder on hostile input: random bytes, every truncation and
//! every single-byte corruption of valid requests, huge array counts. It must
//! answer each with a request or a typed error, never a panic or an abort.

use bytes::BufMut;
use bytes::Bytes;
use bytes::BytesMut;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::StrBytes;
use proptest::prelude::*;

use crate::decode_request;
use crate::encode_response;
use crate::ApiRequest;
use crate::ApiResponse;
use crate::KafkaError;

/// A request frame (without the size prefix), as a client would send it.
fn frame(body: &ApiRequest, version: i16, correlation_id: i32) -> Bytes {
    let key = body.api_key();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("test")));
    let mut out = BytesMut::new();
    header
        .encode(&mut out, key.request_header_version(version))
        .unwrap();
    body.encode(&mut out, version).unwrap();
    out.freeze()
}

fn samples() -> Vec<(ApiRequest, i16)> {
    let topic = TopicName(StrBytes::from_static_str("orders"));
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic.clone())
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from_static(&[1, 2, 3, 4]))),
            ])]);
    let fetch = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic.clone())
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(42)
                .with_partition_max_bytes(1 << 20)])]);
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic.clone())),
    ]));
    let create = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(topic)
            .with_num_partitions(3)
            .with_replication_factor(3),
    ]);
    vec![
        (ApiRequest::ApiVersions(ApiVersionsRequest::default()), 3),
        (ApiRequest::Produce(produce.clone()), 3),
        (ApiRequest::Produce(produce), 9),
        (ApiRequest::Fetch(fetch.clone()), 4),
        (ApiRequest::Fetch(fetch), 12),
        (ApiRequest::Metadata(metadata.clone()), 1),
        (ApiRequest::Metadata(metadata), 12),
        (ApiRequest::CreateTopics(create), 7),
    ]
}

/// [`samples`], and the empty request of every API Cairn decodes at every
/// version it decodes: the corpus the corruption tests start from.
fn corpus() -> Vec<(ApiRequest, i16)> {
    let mut all = samples();
    for a in crate::SUPPORTED_APIS {
        let body = ApiRequest::default_for(a.key).expect("a decoded API has a default body");
        for v in a.min_version..=a.max_version {
            all.push((body.clone(), v));
        }
    }
    all
}

#[test]
fn every_api_at_every_version_decodes_what_was_sent() {
    for (body, version) in corpus() {
        let r = decode_request(&frame(&body, version, 7))
            .unwrap_or_else(|e| panic!("{:?} v{version}: {e}", body.api_key()));
        assert_eq!(r.body, body, "{:?} v{version}", body.api_key());
    }
}

#[test]
fn valid_requests_decode_to_what_was_sent() {
    for (body, version) in samples() {
        let r = decode_request(&frame(&body, version, 7)).unwrap();
        assert_eq!(r.body, body, "v{version}");
        assert_eq!((r.version(), r.correlation_id()), (version, 7));
    }
}

#[test]
fn unknown_apis_and_versions_are_typed_errors() {
    let mut f = BytesMut::new();
    f.put_i16(ApiKey::ElectLeaders as i16);
    f.put_i16(2);
    f.put_i32(9);
    f.put_i16(-1);
    assert!(matches!(
        decode_request(&f),
        Err(KafkaError::UnsupportedApi {
            correlation_id: 9,
            ..
        })
    ));
    let fetch_v18 = frame(&ApiRequest::Fetch(FetchRequest::default()), 18, 4);
    assert!(matches!(
        decode_request(&fetch_v18),
        Err(KafkaError::UnsupportedVersion {
            version: 18,
            correlation_id: 4,
            ..
        })
    ));
    assert!(matches!(
        decode_request(&[0, 3]),
        Err(KafkaError::FrameTooShort(2))
    ));
}

/// Patched in third_party/kafka-protocol (see CAIRN-PATCH.md): a Metadata v0
/// request declaring 54 million topics in 5 bytes made the decoder ask for
/// ~3.6 GiB up front, and an allocation failure aborts the process.
#[test]
fn huge_array_counts_are_refused_not_allocated() {
    for count in [0x033c_0c00_i32, i32::MAX] {
        let mut f = BytesMut::new();
        f.put_i16(ApiKey::Metadata as i16);
        f.put_i16(0);
        f.put_i32(1);
        f.put_i16(-1); // client id: null
        f.put_i32(count);
        f.put_u8(0);
        assert!(matches!(
            decode_request(&f),
            Err(KafkaError::Malformed { .. })
        ));
    }
    // The same through a compact (flexible-version) array: Metadata v12.
    let mut f = BytesMut::new();
    f.put_i16(ApiKey::Metadata as i16);
    f.put_i16(12);
    f.put_i32(1);
    f.put_i16(-1);
    f.put_u8(0); // header tagged fields
    f.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // u32::MAX
    assert!(matches!(
        decode_request(&f),
        Err(KafkaError::Malformed { .. })
    ));
}

#[test]
fn api_versions_answers_use_header_v0_and_others_their_own() {
    let body = ApiResponse::ApiVersions(crate::api_versions_response(0));
    let out = encode_response(5, 3, &body).unwrap();
    // size, correlation id, then the body: error code 0 right away (header
    // v0 has no tagged fields even though the body is flexible at v3).
    assert_eq!(&out[4..8], &5i32.to_be_bytes());
    assert_eq!(&out[8..10], &0i16.to_be_bytes());
    assert_eq!(
        i32::from_be_bytes(out[..4].try_into().unwrap()) as usize,
        out.len() - 4
    );
    let meta = ApiResponse::Metadata(MetadataResponse::default());
    let out = encode_response(5, 12, &meta).unwrap();
    assert_eq!(out[8], 0, "header v1: an empty tagged-field section");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_request(&bytes);
    }

    /// Random bodies behind a valid header of every API and version Cairn
    /// decodes: this is where the body decoders see garbage.
    #[test]
    fn random_bodies_never_panic(
        api in 0..crate::SUPPORTED_APIS.len(),
        version_pick in any::<u16>(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let a = crate::SUPPORTED_APIS[api];
        let span = (a.max_version - a.min_version + 1) as u16;
        let version = a.min_version + (version_pick % span) as i16;
        let mut f = BytesMut::new();
        f.put_i16(a.key as i16);
        f.put_i16(version);
        f.put_i32(1);
        f.put_slice(&body);
        let _ = decode_request(&f);
    }

    #[test]
    fn truncated_and_corrupted_requests_never_panic(
        pick in any::<usize>(),
        cut in any::<usize>(),
        flip in any::<(usize, u8)>(),
    ) {
        let all = corpus();
        let (body, version) = &all[pick % all.len()];
        let full = frame(body, *version, 1);
        let _ = decode_request(&full[..cut % (full.len() + 1)]);
        let mut bad = full.to_vec();
        let at = flip.0 % bad.len();
        bad[at] ^= flip.1 | 1;
        let _ = decode_request(&bad);
    }

    /// Several corruptions at once, and bytes spliced in or cut out, of
    /// every API's request: the lengths and counts inside a body go wrong
    /// together.
    #[test]
    fn spliced_requests_never_panic(
        pick in any::<usize>(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let all = corpus();
        let (body, version) = &all[pick % all.len()];
        let mut bad = frame(body, *version, 1).to_vec();
        for (at, byte, kind) in edits {
            let at = at % (bad.len() + 1);
            match kind {
                0 if at < bad.len() => bad[at] = byte,
                1 => bad.insert(at, byte),
                _ if at < bad.len() => { bad.remove(at); }
                _ => bad.push(byte),
            }
        }
        let _ = decode_request(&bad);
    }
}

/// xorshift64*: a seeded generator for [`mutated_requests_for_a_bounded_time`].
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that make lengths and counts go wrong.
const INTERESTING: &[&[u8]] = &[
    &[0xff, 0xff, 0xff, 0xff],
    &[0x7f, 0xff, 0xff, 0xff],
    &[0x80, 0x00, 0x00, 0x00],
    &[0x00, 0x00, 0x00, 0x00],
    &[0xff, 0xff],
    &[0x7f, 0xff],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
];

/// One random edit of `f`: a bit flipped, a byte set, inserted or removed,
/// an interesting value written over it, or a run of another frame spliced in.
fn mutate(f: &mut Vec<u8>, other: &[u8], rng: &mut Rng) {
    let at = rng.below(f.len() + 1);
    match rng.below(6) {
        0 if at < f.len() => f[at] ^= 1 << rng.below(8),
        1 if at < f.len() => f[at] = rng.next() as u8,
        2 => f.insert(at, rng.next() as u8),
        3 if at < f.len() => {
            f.remove(at);
        }
        4 => {
            let v = INTERESTING[rng.below(INTERESTING.len())];
            for (i, b) in v.iter().enumerate() {
                match f.get_mut(at + i) {
                    Some(x) => *x = *b,
                    None => f.push(*b),
                }
            }
        }
        _ => {
            let from = rng.below(other.len());
            let len = rng.below(other.len() - from + 1).min(64);
            f.splice(at..at, other[from..from + len].iter().copied());
        }
    }
}

/// A mutation fuzzer over the corpus of every API at every version, for a
/// bounded time (CAIRN_FUZZ_SECONDS, default 3 s; CI runs this). The seed
/// is printed; CAIRN_FUZZ_SEED replays the same inputs in the same order.
/// The coverage-guided fuzzer (crates/kafka/fuzz, `cluster/fuzz-kafka`) goes
/// deeper; this one needs no nightly toolchain.
#[test]
fn mutated_requests_for_a_bounded_time() {
    let secs: u64 = std::env::var("CAIRN_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("CAIRN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1;
    eprintln!("decoder fuzz: seed {seed}, {secs} s (replay: CAIRN_FUZZ_SEED={seed})");
    let frames: Vec<Vec<u8>> = corpus()
        .iter()
        .map(|(body, version)| frame(body, *version, 1).to_vec())
        .collect();
    let mut rng = Rng(seed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut inputs = 0u64;
    let mut decoded = 0u64;
    while std::time::Instant::now() < deadline {
        for _ in 0..256 {
            let mut f = frames[rng.below(frames.len())].clone();
            let other = &frames[rng.below(frames.len())];
            for _ in 0..1 + rng.below(8) {
                mutate(&mut f, other, &mut rng);
            }
            if decode_request(&f).is_ok() {
                decoded += 1;
            }
            inputs += 1;
        }
    }
    eprintln!("decoder fuzz: {inputs} inputs, {decoded} still decoded, no panic");
    assert!(inputs > 0);
}
