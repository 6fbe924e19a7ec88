//! `cairn bench produce`: `concurrency` tasks, each sending one batch of
//! `batch_records` random records at a time, cycling through the partitions
//! from its own starting partition, and timing each request.
//!
//! Each task is an idempotent producer of its own (random producer id,
//! sequence numbers per partition), so retries after a leader change do not
//! write batches twice; with one request in flight per task, its sequences
//! reach each partition in order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use cairn_client::{Acks, Client};
use cairn_record::RecordBatchBuilder;
use hdrhistogram::Histogram;

use super::budget::RecordBudget;
use super::meter::Meter;
use super::pool::{next_seed, ValuePool};
use super::report::{Latency, ProduceReport};
use crate::cli::{BenchProduceArgs, Format};

/// Latencies above this (60 s) are recorded as this.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Default duration when neither --records nor --seconds is given.
const DEFAULT_SECONDS: u64 = 10;

fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map_err(|e| anyhow!("histogram: {e}"))
}

/// Everything the producer tasks share.
struct Shared {
    client: Client,
    topic: String,
    partitions: u32,
    acks: Acks,
    batch_records: u64,
    keys: Option<u64>,
    pool: ValuePool,
    budget: RecordBudget,
    deadline: Option<Instant>,
    meter: Arc<Meter>,
    stop: AtomicBool,
    first_error: Mutex<Option<String>>,
}

/// What one task measured.
struct TaskResult {
    histogram: Histogram<u64>,
    requests: u64,
}

/// The sequence after `count` records from `current`, wrapping like Kafka.
pub fn advance_sequence(current: i32, count: u64) -> i32 {
    let next = i64::from(current.max(0)) + i64::try_from(count).unwrap_or(i64::MAX / 2);
    (next % (i64::from(i32::MAX) + 1)) as i32
}

/// The partition a task sends its `round`-th request to.
pub fn partition_for(task: u32, round: u64, partitions: u32) -> u32 {
    if partitions == 0 {
        return 0;
    }
    ((u64::from(task) + round) % u64::from(partitions)) as u32
}

async fn producer_task(shared: Arc<Shared>, task: u32) -> Result<TaskResult> {
    let mut histogram = new_histogram()?;
    let mut requests = 0u64;
    let mut seed =
        0x9e37_79b9_7f4a_7c15u64 ^ (u64::from(task) + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let value_size = shared.pool.value(0).len();
    let mut round = 0u64;
    let producer_id = rand::random::<i64>() & i64::MAX;
    let mut sequences = vec![0i32; shared.partitions as usize];
    loop {
        if shared.stop.load(Ordering::Relaxed)
            || shared.deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        let count = shared.budget.claim(shared.batch_records);
        if count == 0 {
            break;
        }
        let partition = partition_for(task, round, shared.partitions);
        round += 1;
        let sequence = sequences.get_mut(partition as usize);
        let base_sequence = sequence.as_deref().copied().unwrap_or(0);
        if let Some(seq) = sequence {
            *seq = advance_sequence(*seq, count);
        }
        let mut builder = RecordBatchBuilder::with_capacity(count as usize * (value_size + 16))
            .with_producer(producer_id, 0, base_sequence);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for _ in 0..count {
            let key = shared
                .keys
                .map(|n| format!("key-{}", next_seed(&mut seed) % n));
            builder.push(
                now_ms,
                key.as_deref().map(str::as_bytes),
                Some(shared.pool.value(next_seed(&mut seed))),
                &[],
            );
        }
        let batch = builder.build();

        shared.meter.start_request();
        let started = Instant::now();
        let result = shared
            .client
            .produce(&shared.topic, partition, batch, shared.acks)
            .await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        shared.meter.end_request();
        match result {
            Ok(_) => {
                histogram.saturating_record(micros.clamp(1, MAX_LATENCY_US));
                requests += 1;
                shared.meter.add(count, count * value_size as u64);
            }
            Err(e) => {
                shared.meter.error();
                let mut first = shared.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| format!("partition {partition}: {e}"));
                // The client already retried transient failures: stop the run.
                shared.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
    Ok(TaskResult {
        histogram,
        requests,
    })
}

/// Runs the produce benchmark.
pub async fn run(client: Client, args: BenchProduceArgs) -> Result<()> {
    let partitions = super::ensure_topic(
        &client,
        &args.topic,
        args.partitions,
        args.replication_factor,
    )
    .await?;
    let seconds = match (args.records, args.seconds) {
        (None, None) => Some(DEFAULT_SECONDS),
        (_, s) => s,
    };
    eprintln!(
        "producing to {} ({partitions} partitions): {} of {}-byte records, {} records per request, concurrency {}, acks {}",
        args.topic,
        match (args.records, seconds) {
            (Some(n), _) => format!("{n} records"),
            (None, Some(s)) => format!("{s}s"),
            (None, None) => "unbounded".to_owned(),
        },
        args.record_size,
        args.batch_records,
        args.concurrency,
        args.acks.as_str_name(),
    );
    let meter = Arc::new(Meter::default());
    let start = Instant::now();
    let shared = Arc::new(Shared {
        client,
        topic: args.topic.clone(),
        partitions,
        acks: args.acks,
        batch_records: u64::from(args.batch_records),
        keys: args.keys,
        pool: ValuePool::new(args.record_size),
        budget: RecordBudget::new(args.records),
        deadline: seconds.map(|s| start + Duration::from_secs(s)),
        meter: Arc::clone(&meter),
        stop: AtomicBool::new(false),
        first_error: Mutex::new(None),
    });
    let progress = meter.spawn_progress(start);
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|t| tokio::spawn(producer_task(Arc::clone(&shared), t)))
        .collect();
    let mut histogram = new_histogram()?;
    let mut requests = 0;
    for t in tasks {
        let r = t.await.map_err(|e| anyhow!("producer task: {e}"))??;
        histogram
            .add(&r.histogram)
            .map_err(|e| anyhow!("merging histograms: {e}"))?;
        requests += r.requests;
    }
    let elapsed = start.elapsed();
    progress.abort();
    let reading = meter.read();
    let report = ProduceReport {
        records: reading.records,
        bytes: reading.bytes,
        requests,
        errors: reading.errors,
        elapsed,
        latency: Latency::from_histogram(&histogram),
    };
    match args.format {
        Format::Text => print!("{}", report.text()),
        Format::Json => println!("{}", report.json()),
    }
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(e) = first_error {
        bail!("benchmark stopped on a failed request: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_cycle_partitions_from_their_own_start() {
        let seq: Vec<u32> = (0..5).map(|r| partition_for(2, r, 3)).collect();
        assert_eq!(seq, vec![2, 0, 1, 2, 0]);
        assert_eq!(partition_for(7, 0, 3), 1);
        assert_eq!(partition_for(1, 0, 0), 0);
    }

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(advance_sequence(0, 64), 64);
        assert_eq!(advance_sequence(i32::MAX, 1), 0);
        assert_eq!(advance_sequence(i32::MAX - 10, 64), 53);
    }
}
