//! A producer workload with an oracle, and a checker that reads every
//! partition back: every acknowledged record exactly once, in order.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use anyhow::Result;
use cairn_client::Acks;
use cairn_client::Client;
use cairn_client::OffsetSpec;
use cairn_record::RecordBatchBuilder;

/// A batch the cluster acknowledged.
#[derive(Debug, Clone)]
pub struct Acked {
    pub partition: u32,
    pub base_offset: u64,
    pub values: Vec<String>,
}

#[derive(Debug, Default)]
pub struct History {
    pub acked: Vec<Acked>,
    /// Batches that were never acknowledged (their outcome is unknown).
    pub failed: Vec<Vec<String>>,
    pub retried_batches: u64,
    pub duplicates_reported: u64,
}

impl History {
    pub fn acked_records(&self) -> usize {
        self.acked.iter().map(|a| a.values.len()).sum()
    }
}

/// Runs `producers` concurrent idempotent producers, writing `total`
/// records in batches of `batch` across `partitions`, acks=all. `progress`
/// counts acknowledged records as they come.
pub async fn produce(
    client: &Client,
    topic: &str,
    partitions: u32,
    producers: u32,
    total: u64,
    batch: u32,
    progress: Arc<AtomicU64>,
) -> Result<History> {
    let history = Arc::new(Mutex::new(History::default()));
    let per_producer = total / u64::from(producers);
    let mut tasks = Vec::new();
    for p in 0..producers {
        let client = client.clone();
        let topic = topic.to_string();
        let history = history.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let producer_id = 1_000 + i64::from(p) + (rand::random::<u32>() as i64) * 1_000;
            let mut sequences: HashMap<u32, i32> = HashMap::new();
            let mut written = 0u64;
            let mut n = 0u32;
            while written < per_producer {
                let partition = (p + n) % partitions;
                n += 1;
                let count = (per_producer - written).min(u64::from(batch)) as u32;
                let seq = sequences.entry(partition).or_insert(0);
                let mut b = RecordBatchBuilder::new().with_producer(producer_id, 0, *seq);
                let mut values = Vec::with_capacity(count as usize);
                for i in 0..count {
                    let v = format!("p{p}-{:09}", written + u64::from(i));
                    b.push(0, None, Some(v.as_bytes()), &[]);
                    values.push(v);
                }
                *seq += count as i32;
                written += u64::from(count);
                let bytes = b.build();
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    match client
                        .produce(&topic, partition, bytes.clone(), Acks::All)
                        .await
                    {
                        Ok(r) => {
                            let mut h = history.lock().expect("history");
                            if attempts > 1 {
                                h.retried_batches += 1;
                            }
                            if r.duplicate {
                                h.duplicates_reported += 1;
                            }
                            h.acked.push(Acked {
                                partition,
                                base_offset: r.base_offset as u64,
                                values,
                            });
                            progress.fetch_add(u64::from(count), Ordering::Relaxed);
                            break;
                        }
                        Err(e) if Instant::now() < deadline => {
                            eprintln!(
                                "producer {p}: partition {partition}: {e}; retrying the same batch"
                            );
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => {
                            eprintln!("producer {p}: giving up on a batch: {e}");
                            history.lock().expect("history").failed.push(values);
                            break;
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let h = std::mem::take(&mut *history.lock().expect("history"));
    Ok(h)
}

/// Every record of every partition, from offset 0 to the high watermark.
pub async fn read_all(
    client: &Client,
    topic: &str,
    partitions: u32,
) -> Result<Vec<Vec<(u64, String)>>> {
    let mut out = Vec::new();
    for p in 0..partitions {
        let end = client
            .list_offsets(topic, p, OffsetSpec::Latest)
            .await?
            .offset as u64;
        let mut records = Vec::new();
        let mut offset = 0u64;
        while offset < end {
            let f = client.fetch_records(topic, p, offset, 4 << 20, 0).await?;
            if f.next_offset <= offset {
                bail!(
                    "partition {p}: fetch at {offset} made no progress (high watermark {})",
                    f.high_watermark
                );
            }
            for r in f.records {
                let value = r
                    .value
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .unwrap_or_default();
                records.push((r.offset as u64, value));
            }
            offset = f.next_offset;
        }
        out.push(records);
    }
    Ok(out)
}

/// Checks what was read against what was acknowledged.
pub fn check(history: &History, read: &[Vec<(u64, String)>]) -> Result<()> {
    let mut at: HashMap<&str, (u32, u64)> = HashMap::new();
    for (p, records) in read.iter().enumerate() {
        for (expected, (offset, value)) in records.iter().enumerate() {
            if *offset != expected as u64 {
                bail!("partition {p}: offset {offset} where {expected} was due; offsets must be contiguous");
            }
            if let Some(prev) = at.insert(value.as_str(), (p as u32, *offset)) {
                bail!("duplicate: {value} at {prev:?} and ({p}, {offset})");
            }
        }
    }
    let mut lost = Vec::new();
    for a in &history.acked {
        for (i, v) in a.values.iter().enumerate() {
            match at.get(v.as_str()) {
                Some(&(p, o)) if p == a.partition && o == a.base_offset + i as u64 => {}
                Some(found) => bail!(
                    "{v} acknowledged at ({}, {}) but read at {found:?}",
                    a.partition,
                    a.base_offset + i as u64
                ),
                None => lost.push(v.clone()),
            }
        }
    }
    if !lost.is_empty() {
        bail!(
            "{} acknowledged records lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
    }
    // Per producer and partition, values must appear in the order sent.
    for (p, records) in read.iter().enumerate() {
        let mut last: HashMap<&str, &str> = HashMap::new();
        for (_, value) in records {
            let producer = value.split('-').next().unwrap_or("");
            if let Some(prev) = last.insert(producer, value.as_str()) {
                if prev >= value.as_str() {
                    bail!("partition {p}: {value} after {prev}: reordered");
                }
            }
        }
    }
    Ok(())
}
