//! Property test of compaction over a real RocksDB: random puts and deletes
//! per key, in random batches and codecs, written as Raft log entries and
//! applied by the partition state machine; compaction interleaved with more
//! writes and with restarts (store closed and reopened); every read checked
//! against a model.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use cairn_raft::Entry;
use cairn_raft::LogId;
use cairn_raft::ProduceCommand;
use cairn_raft::ProduceStamp;
use cairn_raft::Request;
use cairn_raft::TypeConfig;
use cairn_raft::Vote;
use cairn_record::Compression;
use cairn_record::RecordBatchBuilder;
use cairn_storage::LogStore;
use cairn_storage::NodeStore;
use cairn_storage::StoreOptions;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;
use openraft::vote::RaftLeaderIdExt;
use openraft::RaftTypeConfig;
use proptest::prelude::*;

use crate::CompactionConfig;
use crate::FirstBatch;
use crate::PartitionLog;
use crate::PartitionStateMachine;

const GROUP: u64 = 3;
const RETENTION_MS: i64 = 1_000;

/// A batch to write: its codec and its records (key, value or tombstone,
/// timestamp).
type TestBatch = (Compression, Vec<(u8, Option<u16>, i64)>);

#[derive(Debug, Clone)]
enum Op {
    /// Batches of (key, value or tombstone, timestamp), each with a codec.
    Write(Vec<TestBatch>),
    /// Compaction: that many steps, or until done.
    Compact(Option<u8>),
    Restart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    timestamp: i64,
}

fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let record = (
        0u8..6,
        proptest::option::weighted(0.75, any::<u16>()),
        0i64..3_000,
    );
    let batch = (codec(), proptest::collection::vec(record, 1..8));
    prop_oneof![
        6 => proptest::collection::vec(batch, 1..4).prop_map(Op::Write),
        2 => proptest::option::of(1u8..4).prop_map(Op::Compact),
        1 => Just(Op::Restart),
    ]
}

fn key_bytes(k: u8) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

fn value_bytes(v: u16) -> Vec<u8> {
    format!("value-{v}-{}", "x".repeat(usize::from(v % 50))).into_bytes()
}

fn log_id(index: u64) -> LogId {
    LogId::new(
        <TypeConfig as RaftTypeConfig>::LeaderId::new_committed(1, 1),
        index,
    )
}

/// A replica's store, state machine and reader, as a node holds them.
struct Harness {
    store: NodeStore,
    sm: PartitionStateMachine,
    log: PartitionLog,
    next_index: u64,
}

impl Harness {
    async fn open(path: &Path, next_index: u64) -> Harness {
        let opts = StoreOptions {
            write_buffer_mb: 4,
            block_cache_mb: 8,
            ..StoreOptions::default()
        };
        let store = NodeStore::open(path, opts).expect("open store");
        let mut raft_log: LogStore<TypeConfig> = store.log_store(GROUP);
        raft_log
            .save_vote(&Vote::new(1, 1))
            .await
            .expect("save vote");
        let (sm, shared) = PartitionStateMachine::open(store.clone(), GROUP).expect("open sm");
        let log = PartitionLog::new(store.clone(), shared);
        Harness {
            store,
            sm,
            log,
            next_index,
        }
    }

    async fn write(&mut self, batches: &[TestBatch]) -> Vec<Rec> {
        let (entry, written) = self.apply_unlogged(batches).await;
        self.replicate(entry).await;
        written
    }

    /// Applies an entry of `batches` that the Raft log does not hold yet:
    /// the state a replica is in after installing a snapshot, whose index
    /// rows name entries replicated after it. [`Harness::replicate`] then
    /// brings the entry.
    async fn apply_unlogged(&mut self, batches: &[TestBatch]) -> (Entry, Vec<Rec>) {
        let mut records = Vec::new();
        let mut written = Vec::new();
        let mut offset = self.log.high_watermark();
        let mut max_ts = i64::MIN;
        let mut count = 0u32;
        for (codec, recs) in batches {
            let mut b = RecordBatchBuilder::new().with_compression(*codec);
            for (k, v, ts) in recs {
                let key = key_bytes(*k);
                let value = v.map(value_bytes);
                b.push(*ts, Some(&key), value.as_deref(), &[]);
                written.push(Rec {
                    offset,
                    key,
                    value,
                    timestamp: *ts,
                });
                offset += 1;
                count += 1;
                max_ts = max_ts.max(*ts);
            }
            records.extend_from_slice(&b.build());
        }
        let entry = Entry::new_normal(
            log_id(self.next_index),
            Request::Produce(ProduceCommand {
                records: Bytes::from(records),
                record_count: count,
                max_timestamp_ms: max_ts,
                producer: None,
                // Rewritten entries keep their stamp (`..cmd.clone()`).
                stamp: Some(ProduceStamp {
                    append_time_ms: max_ts,
                    producer_id_expiration_ms: 86_400_000,
                }),
                mirror: None,
            }),
        );
        self.next_index += 1;
        self.sm
            .apply(futures::stream::iter(vec![Ok((entry.clone(), None))]))
            .await
            .expect("apply");
        (entry, written)
    }

    /// Appends `entry` to the Raft log.
    async fn replicate(&mut self, entry: Entry) {
        let mut raft_log: LogStore<TypeConfig> = self.store.log_store(GROUP);
        raft_log
            .append(vec![entry], IOFlushed::noop())
            .await
            .expect("append");
    }

    /// Runs compaction steps (`None`: until done) at `now`; returns whether
    /// it finished.
    async fn compact(&self, steps: Option<u8>, now: i64) -> bool {
        let mut config = CompactionConfig::new(RETENTION_MS);
        config.max_entries_per_step = 2;
        config.max_expired_per_step = 2;
        config.max_bytes_per_step = 256;
        config.max_offsets_per_pass = 20;
        let limit = steps.map_or(10_000, usize::from);
        for _ in 0..limit {
            let step = self.log.compact_step(&config, now).await.expect("compact");
            if step.done {
                return true;
            }
        }
        steps.is_some()
    }

    /// Every record readable from the log start, in order.
    async fn read_all(&self) -> Vec<Rec> {
        let mut out = Vec::new();
        let mut next = self.log.log_start();
        let hw = self.log.high_watermark();
        while next < hw {
            let fetched = self
                .log
                .read(next, 1 << 20, FirstBatch::Whole)
                .await
                .expect("read");
            let data = fetched.records;
            assert!(!data.is_empty(), "no batches at {next} below {hw}");
            for batch in cairn_record::split_batches(&data) {
                let batch = data.slice_ref(batch.expect("framing"));
                let (header, records) = cairn_record::decode_batch(&batch).expect("decode");
                for r in records {
                    let offset = r.offset(&header) as u64;
                    if offset >= next {
                        out.push(Rec {
                            offset,
                            key: r.key.as_deref().map(<[u8]>::to_vec).unwrap_or_default(),
                            value: r.value.as_deref().map(<[u8]>::to_vec),
                            timestamp: r.timestamp(&header),
                        });
                    }
                }
                next = next.max(header.next_offset() as u64);
            }
        }
        out
    }
}

/// Checks what a replica reads against everything written (`model`, in
/// offset order). `max_now`: the latest time compaction ran at; `final_now`:
/// compaction just ran to completion at that time.
fn check(
    read: &[Rec],
    model: &[Rec],
    cleaned: u64,
    max_now: Option<i64>,
    final_now: Option<i64>,
) -> Result<(), TestCaseError> {
    // Offsets strictly increase, and each record is the one written there.
    for pair in read.windows(2) {
        prop_assert!(pair[0].offset < pair[1].offset, "offsets not increasing");
    }
    for r in read {
        let written = model.get(r.offset as usize);
        prop_assert_eq!(Some(r), written, "record at offset {} changed", r.offset);
    }
    // Below the clean point, only the latest record (below it) of each key.
    let mut latest_below: BTreeMap<&[u8], u64> = BTreeMap::new();
    for m in model.iter().filter(|m| m.offset < cleaned) {
        latest_below.insert(&m.key, m.offset);
    }
    for r in read.iter().filter(|r| r.offset < cleaned) {
        prop_assert_eq!(
            latest_below.get(r.key.as_slice()),
            Some(&r.offset),
            "superseded record at {} below the clean point {}",
            r.offset,
            cleaned
        );
    }
    // The latest record of every key survives, unless it is a tombstone
    // that may have expired.
    let mut latest: BTreeMap<&[u8], &Rec> = BTreeMap::new();
    for m in model {
        latest.insert(&m.key, m);
    }
    for m in latest.values() {
        let may_expire =
            m.value.is_none() && max_now.is_some_and(|now| now - m.timestamp >= RETENTION_MS);
        if !may_expire {
            prop_assert!(
                read.iter().any(|r| r.offset == m.offset),
                "latest record of a key (offset {}) is gone",
                m.offset
            );
        }
    }
    if let Some(now) = final_now {
        // Compacted through: exactly the latest record per key, without
        // expired tombstones; replayed, the model map.
        let expected: Vec<&Rec> = {
            let mut v: Vec<&Rec> = latest
                .values()
                .copied()
                .filter(|m| m.value.is_some() || now - m.timestamp < RETENTION_MS)
                .collect();
            v.sort_by_key(|m| m.offset);
            v
        };
        let got: Vec<&Rec> = read.iter().collect();
        prop_assert_eq!(got, expected);
        let mut replay: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for r in read {
            replay.insert(r.key.clone(), r.value.clone());
        }
        let model_map: BTreeMap<Vec<u8>, Option<Vec<u8>>> = latest
            .values()
            .filter(|m| m.value.is_some() || now - m.timestamp < RETENTION_MS)
            .map(|m| (m.key.clone(), m.value.clone()))
            .collect();
        prop_assert_eq!(replay, model_map);
    }
    Ok(())
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut h = Harness::open(dir.path(), 1).await;
    let mut model: Vec<Rec> = Vec::new();
    let mut now = 1_500i64;
    let mut max_now = None;
    for op in ops {
        match op {
            Op::Write(batches) => model.extend(h.write(&batches).await),
            Op::Compact(steps) => {
                now += 150;
                max_now = Some(now);
                h.compact(steps, now).await;
            }
            Op::Restart => {
                let next = h.next_index;
                drop(h);
                h = Harness::open(dir.path(), next).await;
            }
        }
        let cleaned = h.log.cleaned_through().expect("clean point");
        check(&h.read_all().await, &model, cleaned, max_now, None)?;
    }
    now += 150;
    prop_assert!(h.compact(None, now).await, "compaction did not finish");
    let cleaned = h.log.cleaned_through().expect("clean point");
    prop_assert_eq!(cleaned, h.log.high_watermark());
    check(&h.read_all().await, &model, cleaned, Some(now), Some(now))?;
    // After a restart: the same, and compacting again changes nothing.
    let next = h.next_index;
    drop(h);
    let h = Harness::open(dir.path(), next).await;
    let before = h.read_all().await;
    check(&before, &model, cleaned, Some(now), Some(now))?;
    prop_assert!(h.compact(None, now).await);
    prop_assert_eq!(h.read_all().await, before);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn compaction_keeps_latest_per_key_and_offsets(ops in proptest::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(run(ops))?;
    }
}

/// A hand-written case: superseded values go, the latest stays, a fresh
/// tombstone stays and an old one goes, offsets stay.
#[tokio::test]
async fn small_example() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut h = Harness::open(dir.path(), 1).await;
    let mut model = h
        .write(&[(
            Compression::Zstd,
            vec![(1, Some(1), 10), (2, Some(2), 10), (1, Some(3), 10)],
        )])
        .await;
    model.extend(
        h.write(&[(Compression::None, vec![(2, None, 100), (3, None, 2_600)])])
            .await,
    );
    assert!(h.compact(None, 3_000).await);
    let read = h.read_all().await;
    let offsets: Vec<u64> = read.iter().map(|r| r.offset).collect();
    // key-1 keeps offset 2; key-2's tombstone (ts 100) expired; key-3's
    // (ts 2600) has not.
    assert_eq!(offsets, vec![2, 4]);
    assert_eq!(read[0], model[2]);
    assert_eq!(read[1], model[4]);
}

/// `min.compaction.lag.ms`: a record superseded by one written less than
/// the lag ago stays; once the newer one is older than the lag, it goes.
#[tokio::test]
async fn min_compaction_lag_keeps_recent_supersessions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut h = Harness::open(dir.path(), 1).await;
    h.write(&[(Compression::None, vec![(1, Some(1), 10)])])
        .await;
    h.write(&[(Compression::None, vec![(1, Some(2), 1_000)])])
        .await;
    let mut config = CompactionConfig::new(RETENTION_MS);
    config.min_compaction_lag_ms = 500;
    let offsets = |read: Vec<Rec>| read.iter().map(|r| r.offset).collect::<Vec<u64>>();
    // At 1200 the second value is 200 ms old: nothing is compacted.
    while !h
        .log
        .compact_step(&config, 1_200)
        .await
        .expect("compact")
        .done
    {}
    assert_eq!(offsets(h.read_all().await), vec![0, 1]);
    // At 1600 it is 600 ms old: the first value goes.
    while !h
        .log
        .compact_step(&config, 1_600)
        .await
        .expect("compact")
        .done
    {}
    assert_eq!(offsets(h.read_all().await), vec![1]);
}

/// Reliability finding 14: a replica that installed a snapshot holds index
/// rows of entries its log gets only later. Compaction used to scan past
/// such an entry ("purged meanwhile") and never came back: a value in it
/// outlived the tombstone that superseded it, and once the tombstone
/// expired the deleted key was back, on that replica only.
#[tokio::test]
async fn compaction_never_passes_an_entry_it_has_not_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut h = Harness::open(dir.path(), 1).await;
    // Key 1's value, indexed but not yet in this replica's log.
    let (pending, mut model) = h
        .apply_unlogged(&[(Compression::None, vec![(1, Some(1), 10)])])
        .await;
    assert!(h.compact(None, 50).await);
    let cleaned_before_the_entry_came = h.log.cleaned_through().expect("clean point");
    // The entry arrives; then key 1 is deleted, and the tombstone expires.
    h.replicate(pending).await;
    model.extend(h.write(&[(Compression::None, vec![(1, None, 100)])]).await);
    assert!(h.compact(None, 100 + RETENTION_MS + 1).await);
    let read = h.read_all().await;
    assert!(
        read.is_empty(),
        "key 1 was deleted and its tombstone expired, but the replica still serves {:?}",
        read.iter()
            .map(|r| (
                r.offset,
                r.value
                    .as_ref()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        cleaned_before_the_entry_came, 0,
        "the clean point passed an entry compaction could not read"
    );
    assert_eq!(model.len(), 2);
}
