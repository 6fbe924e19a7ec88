//! `cairn bench consume`: one task per partition reads from the earliest
//! offset with large fetches. Records are counted from the batch headers
//! (they are not decoded), and MB/s counts record batch bytes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use cairn_client::{Client, OffsetSpec};
use cairn_record::{split_batches_allow_partial, RecordBatchHeader};

use super::budget::RecordBudget;
use super::meter::Meter;
use super::report::ConsumeReport;
use crate::cli::{BenchConsumeArgs, Format};

/// How long a fetch may wait for new records.
const FETCH_WAIT_MS: u32 = 500;

/// What one fetch response holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCount {
    /// Records in `[from, end)` (control batches excluded).
    pub records: u64,
    /// Bytes of complete batches.
    pub bytes: u64,
    /// Offset after the last complete batch (at least `from`).
    pub next_offset: u64,
}

/// Counts the records at or after `from` (and before `end`, if given) in a
/// buffer of concatenated batches, from their headers alone.
pub fn count_batches(data: &[u8], from: u64, end: Option<u64>) -> Result<BatchCount> {
    let mut count = BatchCount {
        next_offset: from,
        ..Default::default()
    };
    for batch in split_batches_allow_partial(data) {
        let batch = batch?;
        let header = RecordBatchHeader::parse(batch)?;
        let base = u64::try_from(header.base_offset).unwrap_or(0);
        let next = u64::try_from(header.next_offset()).unwrap_or(0);
        count.bytes += batch.len() as u64;
        count.next_offset = count.next_offset.max(next);
        if header.is_control() {
            continue;
        }
        let lo = base.max(from);
        let hi = end.map_or(next, |e| next.min(e));
        count.records += hi.saturating_sub(lo);
    }
    Ok(count)
}

struct Shared {
    client: Client,
    topic: String,
    max_bytes: u32,
    budget: RecordBudget,
    meter: Arc<Meter>,
    fetches: AtomicU64,
    stop: AtomicBool,
}

async fn consumer_task(shared: Arc<Shared>, partition: u32, until_hw: bool) -> Result<()> {
    let topic = shared.topic.as_str();
    let earliest = shared
        .client
        .list_offsets(topic, partition, OffsetSpec::Earliest)
        .await
        .with_context(|| format!("partition {partition}: cannot look up the earliest offset"))?;
    let mut offset = u64::try_from(earliest.offset).unwrap_or(0);
    let end = if until_hw {
        let latest = shared
            .client
            .list_offsets(topic, partition, OffsetSpec::Latest)
            .await
            .with_context(|| format!("partition {partition}: cannot look up the high watermark"))?;
        Some(u64::try_from(latest.offset).unwrap_or(0))
    } else {
        None
    };
    while !shared.stop.load(Ordering::Relaxed) && end.is_none_or(|e| offset < e) {
        shared.meter.start_request();
        let resp = shared
            .client
            .fetch(topic, partition, offset, shared.max_bytes, FETCH_WAIT_MS)
            .await;
        shared.meter.end_request();
        shared.fetches.fetch_add(1, Ordering::Relaxed);
        let resp =
            resp.with_context(|| format!("partition {partition}: fetch at {offset} failed"))?;
        let count = count_batches(&resp.records, offset, end)
            .with_context(|| format!("partition {partition}: bad batch at {offset}"))?;
        offset = count.next_offset;
        let granted = shared.budget.claim(count.records);
        shared.meter.add(granted, count.bytes);
        if shared.budget.is_spent() {
            shared.stop.store(true, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Runs the consume benchmark.
pub async fn run(client: Client, args: BenchConsumeArgs) -> Result<()> {
    let partitions = client
        .partition_count(&args.topic)
        .await
        .with_context(|| format!("cannot read {}", args.topic))?;
    if args.records == Some(0) {
        bail!("--records must be at least 1");
    }
    eprintln!(
        "consuming {} ({partitions} partitions) from the earliest offsets{}",
        args.topic,
        match args.records {
            Some(n) => format!(" until {n} records"),
            None => " to the current high watermarks".to_owned(),
        }
    );
    let meter = Arc::new(Meter::default());
    let shared = Arc::new(Shared {
        client,
        topic: args.topic.clone(),
        max_bytes: args.fetch_max_bytes,
        budget: RecordBudget::new(args.records),
        meter: Arc::clone(&meter),
        fetches: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let start = Instant::now();
    let progress = meter.spawn_progress(start);
    let until_hw = args.records.is_none();
    let tasks: Vec<_> = (0..partitions)
        .map(|p| tokio::spawn(consumer_task(Arc::clone(&shared), p, until_hw)))
        .collect();
    let mut first_error = None;
    for t in tasks {
        let result = t
            .await
            .map_err(|e| anyhow!("consumer task: {e}"))
            .and_then(|r| r);
        if let Err(e) = result {
            shared.stop.store(true, Ordering::Relaxed);
            first_error.get_or_insert(e);
        }
    }
    let elapsed = start.elapsed();
    progress.abort();
    let reading = meter.read();
    let report = ConsumeReport {
        records: reading.records,
        bytes: reading.bytes,
        fetches: shared.fetches.load(Ordering::Relaxed),
        elapsed,
    };
    match args.format {
        Format::Text => print!("{}", report.text()),
        Format::Json => println!("{}", report.json()),
    }
    match first_error {
        Some(e) => Err(e.context("benchmark stopped on a failed fetch")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: i64, n: usize) -> Vec<u8> {
        let mut b = cairn_record::RecordBatchBuilder::new();
        for _ in 0..n {
            b.push(0, None, Some(b"v"), &[]);
        }
        let mut bytes = b.build().to_vec();
        cairn_record::set_base_offset(&mut bytes, base).unwrap();
        bytes
    }

    #[test]
    fn counts_from_headers() {
        let mut data = batch(10, 5);
        let first_len = data.len() as u64;
        data.extend(batch(15, 3));
        let total_len = data.len() as u64;
        let c = count_batches(&data, 12, None).unwrap();
        assert_eq!(
            c,
            BatchCount {
                records: 3 + 3,
                bytes: total_len,
                next_offset: 18
            }
        );
        let c = count_batches(&data, 12, Some(16)).unwrap();
        assert_eq!(c.records, 3 + 1);
        // Truncated tail: ignored.
        let c = count_batches(&data[..data.len() - 1], 10, None).unwrap();
        assert_eq!(
            c,
            BatchCount {
                records: 5,
                bytes: first_len,
                next_offset: 15
            }
        );
        assert_eq!(
            count_batches(&[], 7, None).unwrap(),
            BatchCount {
                records: 0,
                bytes: 0,
                next_offset: 7
            }
        );
    }
}
