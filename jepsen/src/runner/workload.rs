//! The queue workload: producers send unique values per key (key k goes to
//! partition k); consumers are assigned every partition from offset 0 and
//! keep polling. Every operation goes into the history.
//!
//! The producer also serves the compaction workload ([`Shared::with_keys`]:
//! more keys than partitions, key k to partition k mod partitions, some
//! writes tombstones) and the group workload (as is).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_client::{
    Acks, Client, ClientConfig, ClientError, ErrorCode, OffsetSpec, OwnedRecord, RetryPolicy,
};
use cairn_jepsen::{OpF, OpKind, Read, FIRST_CONSUMER_PROCESS};
use rand::rngs::StdRng;
use rand::Rng;
use rand::SeedableRng;

use super::recorder::Recorder;

/// What the workload processes share.
pub struct Shared {
    pub recorder: Arc<Recorder>,
    pub bootstrap: Vec<String>,
    pub topic: String,
    pub partitions: u32,
    /// Keys written: key k goes to partition k mod `partitions`.
    pub keys: u32,
    /// The share of writes that are tombstones (null values).
    pub tombstone_ratio: f64,
    /// The next value per key: values are unique per key.
    pub next_value: Vec<AtomicU64>,
    /// The next producer process id (a producer whose send had an unknown
    /// outcome continues as a new process, as in Jepsen).
    pub next_producer: AtomicU64,
    pub stop_producers: AtomicBool,
    pub stop_consumers: AtomicBool,
    /// Pause between one producer's sends.
    pub send_interval: Duration,
    /// How long one operation may take before its outcome counts as unknown.
    pub op_timeout: Duration,
    /// Per partition: when (µs into the run) a send last completed ok.
    pub last_ok_send_us: Vec<AtomicU64>,
}

impl Shared {
    pub fn new(
        recorder: Arc<Recorder>,
        bootstrap: Vec<String>,
        topic: &str,
        partitions: u32,
        send_interval: Duration,
    ) -> Self {
        Self {
            recorder,
            bootstrap,
            topic: topic.to_string(),
            partitions,
            keys: partitions,
            tombstone_ratio: 0.0,
            next_value: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
            next_producer: AtomicU64::new(0),
            stop_producers: AtomicBool::new(false),
            stop_consumers: AtomicBool::new(false),
            send_interval,
            op_timeout: Duration::from_secs(5),
            last_ok_send_us: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Shared {
    /// Producers write `keys` keys (key k to partition k mod partitions), a
    /// `tombstone_ratio` share of the writes tombstones.
    pub fn with_keys(mut self, keys: u32, tombstone_ratio: f64) -> Self {
        self.keys = keys.max(1);
        self.tombstone_ratio = tombstone_ratio;
        self.next_value = (0..self.keys).map(|_| AtomicU64::new(0)).collect();
        self
    }
}

/// A client that gives up on an operation within the op timeout, so that
/// its outcome is recorded instead of retried forever.
pub async fn connect(bootstrap: &[String], op_timeout: Duration) -> Result<Client, ClientError> {
    let config = ClientConfig {
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            deadline: op_timeout,
        },
        connect_timeout: Duration::from_secs(1),
        // Shorter than the operation: a request stuck on a paused or cut-off
        // node is abandoned and retried (idempotently) at the new leader.
        request_timeout: (op_timeout / 3).max(Duration::from_millis(500)),
        produce_timeout: (op_timeout / 3).max(Duration::from_millis(500)),
        bootstrap_deadline: Duration::from_secs(3),
        ..ClientConfig::default()
    };
    Client::connect_with(bootstrap, config).await
}

/// Whether a failed send definitely did not write its record. Only errors
/// the server gives before a record can enter the log count; everything
/// else (timeouts, lost connections, a leader change mid-write) is unknown.
fn definitely_not_written(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Server {
            code: ErrorCode::UnknownTopic
                | ErrorCode::UnknownPartition
                | ErrorCode::MessageTooLarge
                | ErrorCode::CorruptMessage
                | ErrorCode::InvalidArgument
                // The state machine refused the batch: it never got offsets.
                | ErrorCode::OutOfOrderSequence,
            ..
        } | ClientError::NoBootstrap
            | ClientError::InvalidAddress { .. }
    )
}

/// One producer: sends until told to stop. After an unknown outcome it
/// drops its client and carries on as a new process.
pub async fn producer(shared: Arc<Shared>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let rec = &shared.recorder;
    'process: while !shared.stop_producers.load(Ordering::Relaxed) {
        let process = shared.next_producer.fetch_add(1, Ordering::Relaxed);
        let client = loop {
            match connect(&shared.bootstrap, shared.op_timeout).await {
                Ok(c) => break c,
                Err(_) if shared.stop_producers.load(Ordering::Relaxed) => break 'process,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        while !shared.stop_producers.load(Ordering::Relaxed) {
            let key = rng.random_range(0..shared.keys);
            let partition = key % shared.partitions;
            let tombstone =
                shared.tombstone_ratio > 0.0 && rng.random_bool(shared.tombstone_ratio.min(1.0));
            let value = shared.next_value[key as usize].fetch_add(1, Ordering::Relaxed);
            rec.record(process, OpKind::Invoke, OpF::Send, |op| {
                op.key = Some(key);
                op.value = Some(value);
                op.tombstone = tombstone;
                // The queue's keys are its partitions; with more keys, say which.
                if shared.keys != shared.partitions {
                    op.partition = Some(partition);
                }
            });
            let record = OwnedRecord {
                partition: Some(partition),
                key: Some(Bytes::from(key.to_string())),
                value: (!tombstone).then(|| Bytes::from(value.to_string())),
                ..OwnedRecord::default()
            };
            let sent = tokio::time::timeout(
                shared.op_timeout,
                client.produce_records(&shared.topic, &[record], Acks::All),
            )
            .await;
            let result = match sent {
                Err(_) => Err((OpKind::Info, "timeout".to_string())),
                Ok(Err(e)) => Err((kind_of(&e), e.to_string())),
                Ok(Ok(mut outcomes)) => match outcomes.pop().map(|o| o.result) {
                    Some(Ok(resp)) => Ok(resp.base_offset),
                    Some(Err(e)) => Err((kind_of(&e), e.to_string())),
                    None => Err((OpKind::Info, "no outcome".to_string())),
                },
            };
            match result {
                Ok(offset) => {
                    shared.last_ok_send_us[partition as usize]
                        .fetch_max(rec.now_us(), Ordering::Relaxed);
                    rec.record(process, OpKind::Ok, OpF::Send, |op| {
                        op.key = Some(key);
                        op.value = Some(value);
                        op.tombstone = tombstone;
                        op.partition = Some(partition);
                        op.offset = Some(offset);
                    });
                }
                Err((kind, error)) => {
                    rec.record(process, kind, OpF::Send, |op| {
                        op.key = Some(key);
                        op.value = Some(value);
                        op.tombstone = tombstone;
                        op.partition = Some(partition);
                        op.error = Some(error);
                    });
                    if kind == OpKind::Info {
                        continue 'process;
                    }
                }
            }
            tokio::time::sleep(shared.send_interval).await;
        }
    }
}

fn kind_of(e: &ClientError) -> OpKind {
    if definitely_not_written(e) {
        OpKind::Fail
    } else {
        OpKind::Info
    }
}

/// One consumer: assigned every partition from offset 0, polls them in
/// turn until told to stop. Returns its positions (next offset per
/// partition).
pub async fn consumer(shared: Arc<Shared>, index: u64, until_caught_up: bool) -> Vec<u64> {
    let rec = &shared.recorder;
    let process = FIRST_CONSUMER_PROCESS + index;
    let mut positions = vec![0u64; shared.partitions as usize];
    rec.record(process, OpKind::Invoke, OpF::Assign, |op| {
        op.positions = Some((0..shared.partitions).map(|p| (p, 0)).collect());
    });
    rec.record(process, OpKind::Ok, OpF::Assign, |op| {
        op.positions = Some((0..shared.partitions).map(|p| (p, 0)).collect());
    });
    let mut client = None;
    // For the final drain: where each partition ends, once known.
    let mut ends: Vec<Option<u64>> = vec![None; shared.partitions as usize];
    let mut p = 0u32;
    while !shared.stop_consumers.load(Ordering::Relaxed) {
        if until_caught_up
            && (0..shared.partitions as usize).all(|i| ends[i].is_some_and(|e| positions[i] >= e))
        {
            break;
        }
        let c = match &client {
            Some(c) => c,
            None => match connect(&shared.bootstrap, shared.op_timeout).await {
                Ok(c) => client.insert(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let pos = positions[p as usize];
        if until_caught_up && ends[p as usize].is_some_and(|e| pos >= e) {
            p = (p + 1) % shared.partitions;
            continue;
        }
        rec.record(process, OpKind::Invoke, OpF::Poll, |op| {
            op.partition = Some(p);
        });
        let fetched = tokio::time::timeout(
            shared.op_timeout,
            c.fetch_records(&shared.topic, p, pos, 256 * 1024, 100),
        )
        .await;
        match fetched {
            Ok(Ok(f)) => {
                let reads: Vec<Read> = f
                    .records
                    .iter()
                    .filter_map(|r| {
                        let key = std::str::from_utf8(r.key.as_deref()?).ok()?.parse().ok()?;
                        let value = std::str::from_utf8(r.value.as_deref()?)
                            .ok()?
                            .parse()
                            .ok()?;
                        Some(Read {
                            partition: p,
                            offset: r.offset,
                            key,
                            value,
                        })
                    })
                    .collect();
                positions[p as usize] = f.next_offset.max(pos);
                // Producers have stopped when draining: the high watermark
                // is where the partition ends.
                ends[p as usize] = Some(f.high_watermark);
                rec.record(process, OpKind::Ok, OpF::Poll, |op| {
                    op.partition = Some(p);
                    op.reads = reads;
                    op.log_start = Some(f.log_start_offset as i64);
                });
            }
            Ok(Err(e)) if e.code() == Some(ErrorCode::OffsetOutOfRange) => {
                // Retention deleted the records at the position: move to
                // the log start. The poll's outcome is `info` (the position
                // changed), so the next read is not judged as a skip.
                let start = c
                    .list_offsets(&shared.topic, p, OffsetSpec::Earliest)
                    .await
                    .ok()
                    .and_then(|r| u64::try_from(r.offset).ok())
                    .filter(|&s| s > pos);
                if let Some(start) = start {
                    positions[p as usize] = start;
                }
                rec.record(process, OpKind::Info, OpF::Poll, |op| {
                    op.partition = Some(p);
                    op.error = Some(e.to_string());
                    op.log_start = start.map(|s| s as i64);
                });
            }
            Ok(Err(e)) => {
                rec.record(process, OpKind::Fail, OpF::Poll, |op| {
                    op.partition = Some(p);
                    op.error = Some(e.to_string());
                });
            }
            Err(_) => {
                rec.record(process, OpKind::Fail, OpF::Poll, |op| {
                    op.partition = Some(p);
                    op.error = Some("timeout".to_string());
                });
            }
        }
        p = (p + 1) % shared.partitions;
    }
    positions
}
