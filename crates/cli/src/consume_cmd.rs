//! `cairn consume`: prints the records of one or all partitions.
//!
//! One task per partition long-polls its leader and hands decoded records to
//! the printer, which stops after `--max-records`, on Ctrl-C, or (with
//! `--exit-at-end`) once every partition was read up to the high watermark
//! it had at the start.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use cairn_client::{
    Client, ConsumedRecord, Consumer, ConsumerConfig, ConsumerError, ConsumerEvent, ErrorCode,
    OffsetSpec,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::cli::{ConsumeArgs, Format};
use crate::connect::connect;
use crate::offset_arg::StartOffset;
use crate::record_view::{record_json, write_text};

/// What a partition task reports.
enum Event {
    Records {
        partition: u32,
        records: Vec<ConsumedRecord>,
    },
    Done,
    Failed(anyhow::Error),
}

/// Settings shared by the partition tasks.
#[derive(Debug, Clone)]
struct FetchPlan {
    topic: String,
    start: StartOffset,
    exit_at_end: bool,
    wait_ms: u32,
    max_bytes: u32,
}

/// Converts a `ListOffsets` answer (−1: none) to an offset.
fn listed_offset(offset: i64) -> u64 {
    u64::try_from(offset).unwrap_or(0)
}

/// The offset to start `partition` at.
async fn resolve_start(
    client: &Client,
    topic: &str,
    partition: u32,
    start: StartOffset,
) -> Result<u64> {
    let spec = match start {
        StartOffset::Offset(n) => return Ok(n),
        StartOffset::Earliest => OffsetSpec::Earliest,
        StartOffset::Latest => OffsetSpec::Latest,
    };
    let resp = client
        .list_offsets(topic, partition, spec)
        .await
        .with_context(|| format!("cannot look up the {start} offset of partition {partition}"))?;
    Ok(listed_offset(resp.offset))
}

/// Drops records at or beyond `end` (the stop offset of `--exit-at-end`).
pub fn clip_to_end(records: &mut Vec<ConsumedRecord>, end: Option<u64>) {
    if let Some(end) = end {
        records.retain(|r| u64::try_from(r.offset).is_ok_and(|o| o < end));
    }
}

/// Reads one partition until done or failed, sending what it reads to `tx`.
async fn read_partition(client: Client, plan: FetchPlan, partition: u32, tx: mpsc::Sender<Event>) {
    let event = match read_partition_inner(&client, &plan, partition, &tx).await {
        Ok(()) => Event::Done,
        Err(e) => Event::Failed(e.context(format!("partition {partition}"))),
    };
    let _ = tx.send(event).await;
}

async fn read_partition_inner(
    client: &Client,
    plan: &FetchPlan,
    partition: u32,
    tx: &mpsc::Sender<Event>,
) -> Result<()> {
    let topic = plan.topic.as_str();
    let mut offset = resolve_start(client, topic, partition, plan.start).await?;
    let end = if plan.exit_at_end {
        let resp = client
            .list_offsets(topic, partition, OffsetSpec::Latest)
            .await
            .with_context(|| {
                format!("cannot look up the high watermark of partition {partition}")
            })?;
        Some(listed_offset(resp.offset))
    } else {
        None
    };
    let wait = Duration::from_millis(u64::from(plan.wait_ms));
    loop {
        if end.is_some_and(|end| offset >= end) {
            return Ok(());
        }
        let started = Instant::now();
        let fetched = match client
            .fetch_records(topic, partition, offset, plan.max_bytes, plan.wait_ms)
            .await
        {
            Ok(f) => f,
            Err(e) if e.code() == Some(ErrorCode::OffsetOutOfRange) => {
                let earliest = client
                    .list_offsets(topic, partition, OffsetSpec::Earliest)
                    .await?;
                let earliest = listed_offset(earliest.offset);
                if offset < earliest {
                    tracing::warn!(
                        partition,
                        offset,
                        earliest,
                        "offset no longer retained, skipping ahead"
                    );
                    offset = earliest;
                    continue;
                }
                return Err(anyhow!(e).context(format!("cannot fetch offset {offset}")));
            }
            Err(e) => return Err(anyhow!(e).context(format!("cannot fetch offset {offset}"))),
        };
        let progressed = fetched.next_offset > offset;
        offset = offset.max(fetched.next_offset);
        let mut records = fetched.records;
        clip_to_end(&mut records, end);
        if !records.is_empty()
            && tx
                .send(Event::Records { partition, records })
                .await
                .is_err()
        {
            return Ok(());
        }
        if !progressed && started.elapsed() < wait / 2 {
            // The server answered an empty fetch early: do not spin.
            tokio::time::sleep(wait.min(Duration::from_millis(100))).await;
        }
    }
}

/// Writes records, returning `Ok(false)` once `remaining` reached zero.
fn print_records(
    out: &mut impl Write,
    format: Format,
    print_key: bool,
    partition: u32,
    records: &[ConsumedRecord],
    remaining: &mut Option<u64>,
) -> io::Result<bool> {
    for r in records {
        if *remaining == Some(0) {
            return Ok(false);
        }
        match format {
            Format::Text => write_text(out, r, print_key)?,
            Format::Json => {
                serde_json::to_writer(&mut *out, &record_json(partition, r))?;
                out.write_all(b"\n")?;
            }
        }
        if let Some(n) = remaining.as_mut() {
            *n -= 1;
        }
    }
    Ok(*remaining != Some(0))
}

/// Runs `cairn consume`.
pub async fn run(args: ConsumeArgs) -> Result<()> {
    let client = connect(&args.conn).await?;
    if let Some(group) = args.group.clone() {
        return run_group(client, group, args).await;
    }
    let partitions: Vec<u32> = match args.partition {
        Some(p) => vec![p],
        None => {
            let n = client
                .partition_count(&args.topic)
                .await
                .with_context(|| format!("cannot consume {}", args.topic))?;
            (0..n).collect()
        }
    };
    let plan = FetchPlan {
        topic: args.topic.clone(),
        start: args.offset,
        exit_at_end: args.exit_at_end,
        wait_ms: args.wait_ms,
        max_bytes: args.fetch_max_bytes,
    };
    let (tx, mut rx) = mpsc::channel::<Event>(2 * partitions.len().max(1));
    let mut tasks = JoinSet::new();
    for &p in &partitions {
        tasks.spawn(read_partition(client.clone(), plan.clone(), p, tx.clone()));
    }
    drop(tx);

    let mut remaining = args.max_records;
    let mut running = partitions.len();
    let mut out = io::BufWriter::new(io::stdout());
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let result = loop {
        if running == 0 || remaining == Some(0) {
            break Ok(());
        }
        let event = tokio::select! {
            e = rx.recv() => e,
            _ = &mut ctrl_c => break Ok(()),
        };
        match event {
            None => break Ok(()),
            Some(Event::Done) => running -= 1,
            Some(Event::Failed(e)) => break Err(e),
            Some(Event::Records { partition, records }) => {
                let more = print_records(
                    &mut out,
                    args.format,
                    args.print_key,
                    partition,
                    &records,
                    &mut remaining,
                )
                .and_then(|more| out.flush().map(|()| more));
                match more {
                    Ok(true) => {}
                    Ok(false) => break Ok(()),
                    // The reader went away (e.g. `| head`): stop quietly.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                    Err(e) => break Err(anyhow!(e).context("cannot write to stdout")),
                }
            }
        }
    };
    tasks.abort_all();
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            return Err(anyhow!(e).context("cannot write to stdout"))
        }
        _ => {}
    }
    result
}

/// `cairn consume --group`: a group member that prints what it is given and
/// commits after each batch printed.
async fn run_group(client: Client, group: String, args: ConsumeArgs) -> Result<()> {
    let mut config = ConsumerConfig::new(group.clone());
    config.client_id = args.client_id.clone();
    config.offset_reset = args.reset;
    config.auto_commit = false;
    config.session_timeout = Duration::from_millis(args.session_timeout_ms);
    config.heartbeat_interval = config.session_timeout / 3;
    config.assignors = args.assignors.clone();
    config.fetch_max_bytes = args.fetch_max_bytes;
    config.fetch_max_wait = Duration::from_millis(u64::from(args.wait_ms));
    let mut consumer = Consumer::new(client, config);
    consumer.subscribe(&[args.topic.as_str()]);
    let mut remaining = args.max_records;
    let mut out = io::BufWriter::new(io::stdout());
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let result = loop {
        if remaining == Some(0) {
            break Ok(());
        }
        let polled = tokio::select! {
            r = consumer.poll(Duration::from_secs(1)) => r,
            _ = &mut ctrl_c => break Ok(()),
        };
        let records = match polled {
            Ok(r) => r,
            Err(e) => break Err(anyhow!(e).context(format!("consuming as group {group}"))),
        };
        for event in consumer.take_events() {
            match event {
                ConsumerEvent::Assigned(tps) => {
                    tracing::info!(partitions = %names(&tps), "assigned")
                }
                ConsumerEvent::Revoked(tps) => tracing::info!(partitions = %names(&tps), "revoked"),
                ConsumerEvent::OffsetReset {
                    partition,
                    from,
                    to,
                } => tracing::warn!(
                    %partition,
                    from = from.map_or(-1, |f| f as i64),
                    to,
                    "position reset per --reset"
                ),
            }
        }
        let mut done = false;
        for r in &records {
            let more = print_records(
                &mut out,
                args.format,
                args.print_key,
                r.partition,
                std::slice::from_ref(&r.record),
                &mut remaining,
            );
            match more {
                Ok(true) => {}
                Ok(false) => {
                    done = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(anyhow!(e).context("cannot write to stdout")),
            }
        }
        if let Err(e) = out.flush() {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(anyhow!(e).context("cannot write to stdout"));
        }
        // Printed, then committed: at least once.
        match consumer.commit().await {
            Ok(()) => {}
            Err(ConsumerError::CommitFenced { .. }) => {
                tracing::warn!(group = %group, "commit refused after a rebalance; rejoining")
            }
            Err(e) => break Err(anyhow!(e).context("cannot commit")),
        }
        if done {
            break Ok(());
        }
    };
    if let Err(e) = consumer.close().await {
        tracing::warn!(error = %e, "leaving the group failed");
    }
    result
}

fn names(tps: &[cairn_client::TopicPartition]) -> String {
    tps.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn rec(offset: i64) -> ConsumedRecord {
        ConsumedRecord {
            offset,
            timestamp_ms: 0,
            key: None,
            value: Some(Bytes::from(offset.to_string())),
            headers: vec![],
        }
    }

    #[test]
    fn clips_records_at_end() {
        let mut records = vec![rec(3), rec(4), rec(5)];
        clip_to_end(&mut records, None);
        assert_eq!(records.len(), 3);
        clip_to_end(&mut records, Some(5));
        assert_eq!(
            records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![3, 4]
        );
    }

    #[test]
    fn prints_until_max_records() {
        let mut out = Vec::new();
        let mut remaining = Some(2);
        let more = print_records(
            &mut out,
            Format::Text,
            false,
            0,
            &[rec(1), rec(2), rec(3)],
            &mut remaining,
        )
        .unwrap();
        assert!(!more);
        assert_eq!(out, b"1\n2\n");
        assert_eq!(remaining, Some(0));

        let mut out = Vec::new();
        let mut unlimited = None;
        assert!(
            print_records(&mut out, Format::Json, false, 4, &[rec(7)], &mut unlimited).unwrap()
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["partition"], 4);
        assert_eq!(v["offset"], 7);
        assert_eq!(v["value"], "7");
    }

    #[test]
    fn listed_offsets() {
        assert_eq!(listed_offset(-1), 0);
        assert_eq!(listed_offset(42), 42);
    }
}
