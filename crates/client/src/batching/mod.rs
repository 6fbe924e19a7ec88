//! [`Producer`]: a batching, idempotent producer on top of a [`Client`].
//!
//! [`Producer::send`] puts a record in a per-partition buffer and returns a
//! [`DeliveryFuture`] at once. A background task sends each partition's
//! buffered records as one RecordBatch when `batch_size` bytes are buffered,
//! when the oldest has waited `linger`, or on [`Producer::flush`]. Batches are
//! compressed with the configured codec and carry the client's producer id
//! and per-partition sequence numbers, so a batch retried after a leader
//! change or a lost answer is never written twice.
//!
//! At most one batch per partition is in flight, which keeps the records of a
//! partition in `send` order across retries. All buffered and in-flight
//! records together may take `buffer_memory` bytes; a `send` that finds no
//! room waits up to `max_block` for a batch to complete (back-pressure), then
//! fails with [`ProducerError::BufferFull`].

mod accumulator;
mod sender;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use cairn_proto::v1::{Acks, ErrorCode};
use cairn_record::Compression;
use tokio::sync::{oneshot, Notify};
use tokio::task::{JoinHandle, JoinSet};

use crate::owned_record::now_ms;
use crate::partitioner::StickyCounter;
use crate::{Client, ClientError, OwnedRecord};
use accumulator::{record_size, Accumulator, Limits};

/// Tunables of a [`Producer`]. `Default` gives Kafka's defaults where Kafka
/// has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// How long a partition's batch waits for more records after its first
    /// one before it is sent (default 5 ms). Zero sends as soon as the
    /// partition has no batch in flight.
    pub linger: Duration,
    /// Bytes of records per partition batch (default 16384): a batch is sent
    /// once this many bytes are buffered for its partition, and never holds
    /// more (a larger record goes in a batch of its own). With one batch in
    /// flight per partition, a partition moves at most one batch per round
    /// trip: raise it (256 KiB-1 MiB) for records of 1 KiB and up.
    pub batch_size: usize,
    /// Bytes of records the producer holds, buffered or in flight, over all
    /// partitions (default 32 MiB). A record counts its key, value, headers
    /// and 21 bytes of overhead.
    pub buffer_memory: usize,
    /// Codec of the batches (default none).
    pub compression: Compression,
    /// Acknowledgement asked of the partition (default [`Acks::All`]). Only
    /// `Acks::All` reports offsets.
    pub acks: Acks,
    /// How long a record may take from `send` to its acknowledgement,
    /// retries included (default 120 s); then it fails with
    /// [`ProducerError::DeliveryTimeout`].
    pub delivery_timeout: Duration,
    /// How long [`Producer::send`] waits for buffer room (default 60 s); zero
    /// fails at once with [`ProducerError::BufferFull`] when the buffer is
    /// full.
    pub max_block: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger: Duration::from_millis(5),
            batch_size: 16_384,
            buffer_memory: 32 * 1024 * 1024,
            compression: Compression::None,
            acks: Acks::All,
            delivery_timeout: Duration::from_secs(120),
            max_block: Duration::from_secs(60),
        }
    }
}

/// Where a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The partition the record went to.
    pub partition: u32,
    /// The record's offset; `None` unless the producer uses [`Acks::All`]
    /// (the server reports offsets only for committed writes).
    pub offset: Option<u64>,
}

/// What a [`Producer`] call or a record's delivery can fail with.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerError {
    /// The buffer had no room for the record within `max_block`.
    #[error("producer buffer full ({buffer_memory} bytes) after waiting {max_block:?}")]
    BufferFull {
        /// The configured `buffer_memory`.
        buffer_memory: usize,
        /// The configured `max_block`.
        max_block: Duration,
    },

    /// The record alone is larger than `buffer_memory`.
    #[error("record of {size} bytes exceeds the producer buffer of {buffer_memory} bytes")]
    RecordTooLarge {
        /// The record's accounted size.
        size: usize,
        /// The configured `buffer_memory`.
        buffer_memory: usize,
    },

    /// The record was not acknowledged within `delivery_timeout` of its
    /// `send`. It may still have been written (its batch may have reached
    /// the leader before the answer was lost).
    #[error("record not delivered within {0:?}")]
    DeliveryTimeout(Duration),

    /// The producer was closed (for `send`) or dropped before the record was
    /// delivered.
    #[error("producer closed")]
    Closed,

    /// The client failed: unknown topic or partition, a non-retriable server
    /// error, or retries exhausted. Shared by all records of a batch.
    #[error(transparent)]
    Client(Arc<ClientError>),
}

impl ProducerError {
    /// The Cairn error code behind a [`ProducerError::Client`] failure.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ProducerError::Client(e) => e.code(),
            _ => None,
        }
    }
}

impl From<ClientError> for ProducerError {
    fn from(e: ClientError) -> Self {
        ProducerError::Client(Arc::new(e))
    }
}

type Outcome = Result<RecordMetadata, ProducerError>;

/// Resolves to where a record sent with [`Producer::send`] was written, or
/// why it was not.
#[derive(Debug)]
#[must_use = "a record's delivery can fail; await the future to know"]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Outcome>,
}

impl Future for DeliveryFuture {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ProducerError::Closed)))
    }
}

struct State {
    acc: Accumulator<oneshot::Sender<Outcome>>,
    /// `close` was called: `send` fails, everything buffered goes out.
    closing: bool,
    /// The background task ends once nothing is buffered or in flight.
    stopping: bool,
}

/// State shared by the producer handle, its background task and the tasks
/// sending batches.
struct Shared {
    client: Client,
    config: ProducerConfig,
    state: Mutex<State>,
    sticky: StickyCounter,
    /// Wakes the background task (a record arrived, a batch completed, a
    /// flush or close started).
    wake: Notify,
    /// Buffer room was freed, or the producer is closing.
    room: Notify,
    /// Records were completed (for `flush`).
    progress: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After records were completed and their bytes freed.
    fn completed(&self) {
        self.room.notify_waiters();
        self.progress.notify_waiters();
        self.wake.notify_one();
    }
}

/// A batching, idempotent producer: records are buffered per partition and
/// sent in compressed batches by a background task.
///
/// See the [module docs](self) for how batches form. Records of one
/// partition are written in the order their `send` calls returned. Keyed
/// records go to murmur2(key) like [`Client::produce_records`]; keyless
/// records without an explicit partition stick to one partition until its
/// batch is sent, then move to the next (like Kafka's sticky partitioner).
///
/// Call [`Producer::close`] before dropping it: dropping stops the background
/// task and aborts sends in progress, and the futures of undelivered records
/// resolve to [`ProducerError::Closed`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use cairn_client::{Client, Compression, OwnedRecord, Producer, ProducerConfig};
///
/// let client = Client::connect(&["127.0.0.1:50051".to_string()]).await?;
/// let producer = Producer::new(
///     client,
///     ProducerConfig {
///         linger: Duration::from_millis(10),
///         compression: Compression::Lz4,
///         ..ProducerConfig::default()
///     },
/// );
/// let mut deliveries = Vec::new();
/// for i in 0..1000 {
///     let record = OwnedRecord::with_key(format!("user-{}", i % 10), format!("event {i}"));
///     // Returns once the record is buffered; waits (up to max_block) when the
///     // buffer is full.
///     deliveries.push(producer.send("events", record).await?);
/// }
/// for delivery in deliveries {
///     let written = delivery.await?;
///     println!("partition {} offset {:?}", written.partition, written.offset);
/// }
/// producer.close().await;
/// # Ok(())
/// # }
/// ```
pub struct Producer {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// Starts a producer sending through `client`. Must be called within a
    /// Tokio runtime (it spawns the background task). `batch_size` and
    /// `buffer_memory` are raised to at least 1.
    ///
    /// The idempotence guarantees need `ClientConfig::idempotent` (the
    /// default); without it a retried batch may be written twice.
    pub fn new(client: Client, mut config: ProducerConfig) -> Producer {
        config.batch_size = config.batch_size.max(1);
        config.buffer_memory = config.buffer_memory.max(1);
        let limits = Limits {
            batch_size: config.batch_size,
            buffer_memory: config.buffer_memory,
            linger: config.linger,
        };
        let shared = Arc::new(Shared {
            client,
            config,
            state: Mutex::new(State {
                acc: Accumulator::new(limits),
                closing: false,
                stopping: false,
            }),
            sticky: StickyCounter::new(),
            wake: Notify::new(),
            room: Notify::new(),
            progress: Notify::new(),
        });
        let task = tokio::spawn(run(Arc::clone(&shared)));
        Producer {
            shared,
            task: Mutex::new(Some(task)),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ProducerConfig {
        &self.shared.config
    }

    /// Bytes of records buffered or in flight.
    pub fn buffered_bytes(&self) -> usize {
        self.shared.lock().acc.used()
    }

    /// Buffers `record` for `topic` and returns a future of its delivery.
    ///
    /// Returns once the record is buffered. When the buffer is full it waits
    /// up to `max_block` for room, then fails with
    /// [`ProducerError::BufferFull`]. Fails at once for an unknown topic, an
    /// explicit partition the topic does not have, a record larger than
    /// `buffer_memory`, or a closed producer. A record without a timestamp
    /// gets the current time.
    pub async fn send(
        &self,
        topic: &str,
        mut record: OwnedRecord,
    ) -> Result<DeliveryFuture, ProducerError> {
        let config = &self.shared.config;
        let size = record_size(&record);
        if size > config.buffer_memory {
            return Err(ProducerError::RecordTooLarge {
                size,
                buffer_memory: config.buffer_memory,
            });
        }
        let partitions = self.shared.client.partition_count(topic).await?;
        if let Some(p) = record.partition.filter(|&p| p >= partitions) {
            return Err(ClientError::server(
                ErrorCode::UnknownPartition,
                format!("topic {topic} has {partitions} partitions, no partition {p}"),
            )
            .into());
        }
        if partitions == 0 {
            return Err(ClientError::server(
                ErrorCode::UnknownPartition,
                format!("topic {topic} has no partitions"),
            )
            .into());
        }
        record.timestamp_ms.get_or_insert_with(now_ms);
        let deadline = Instant::now() + config.max_block;
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.shared.lock();
                if state.closing {
                    return Err(ProducerError::Closed);
                }
                if state.acc.has_room(size) {
                    let partition = state.acc.partition_for(topic, &record, partitions, || {
                        self.shared.sticky.next(partitions)
                    });
                    let (tx, rx) = oneshot::channel();
                    let wake = state
                        .acc
                        .append(topic, partition, record, tx, Instant::now());
                    drop(state);
                    if wake {
                        self.shared.wake.notify_one();
                    }
                    return Ok(DeliveryFuture { rx });
                }
            }
            if Instant::now() >= deadline
                || tokio::time::timeout_at(deadline.into(), room)
                    .await
                    .is_err()
            {
                // One last look: room may have been freed just now.
                let state = self.shared.lock();
                if state.closing {
                    return Err(ProducerError::Closed);
                }
                if !state.acc.has_room(size) {
                    return Err(ProducerError::BufferFull {
                        buffer_memory: config.buffer_memory,
                        max_block: config.max_block,
                    });
                }
            }
        }
    }

    /// Sends every record buffered so far without waiting for `linger`, and
    /// waits until each was delivered or failed. Records sent meanwhile do
    /// not hold it up.
    pub async fn flush(&self) {
        let target = self.shared.lock().acc.start_flush();
        self.shared.wake.notify_one();
        loop {
            let progress = self.shared.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            if self.shared.lock().acc.flushed(target) {
                return;
            }
            progress.await;
        }
    }

    /// Stops accepting records, delivers (or fails) everything buffered, and
    /// stops the background task. Later `send`s fail with
    /// [`ProducerError::Closed`].
    pub async fn close(&self) {
        self.shared.lock().closing = true;
        self.shared.room.notify_waiters();
        self.flush().await;
        self.shared.lock().stopping = true;
        self.shared.wake.notify_one();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            // The task only ends by returning (or by a panic, already reported).
            let _ = task.await;
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Aborting the background task drops its set of send tasks, which
        // aborts them too; the undelivered records' channels then close.
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// The background task: fails records past their delivery timeout, starts a
/// send for every ready batch, and sleeps until the next linger or timeout
/// ends or something changes.
async fn run(shared: Arc<Shared>) {
    let mut sends = JoinSet::new();
    let timeout = shared.config.delivery_timeout;
    loop {
        let (expired, ready, wakeup, stop) = {
            let mut state = shared.lock();
            let now = Instant::now();
            let expired = state.acc.expire(now, timeout);
            let closing = state.closing;
            let ready = state.acc.drain_ready(now, closing);
            let stop = state.stopping && state.acc.is_empty();
            (expired, ready, state.acc.next_wakeup(timeout), stop)
        };
        if !expired.is_empty() {
            tracing::debug!(
                records = expired.len(),
                "records expired in the buffer before they could be sent"
            );
            for r in expired {
                let _ = r.done.send(Err(ProducerError::DeliveryTimeout(timeout)));
            }
            shared.completed();
        }
        for batch in ready {
            sends.spawn(sender::send_batch(Arc::clone(&shared), batch));
        }
        if stop && sends.is_empty() {
            return;
        }
        tokio::select! {
            () = shared.wake.notified() => {}
            Some(_) = sends.join_next(), if !sends.is_empty() => {}
            () = sleep_until(wakeup) => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
