//! Issue 4: the batching producer (`cairn_client::Producer`) against real
//! clusters: batches with every codec, back-pressure, and idempotent retries
//! through a leader kill -9.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cairn_client::{
    Compression, DeliveryFuture, OwnedRecord, Producer, ProducerConfig, ProducerError,
};

use crate::cluster::TestCluster;
use crate::workload;

/// Checks what the producer acknowledged against what the partitions hold:
/// `sent[i]` is the i-th value sent, `acked[i]` its reported partition and
/// offset. Every partition must hold exactly the acknowledged records, at
/// their offsets (contiguous from 0), in send order.
fn check_exactly_once(
    sent: &[String],
    acked: &[(u32, u64)],
    read: &[Vec<(u64, String)>],
) -> Result<()> {
    ensure!(sent.len() == acked.len());
    let mut expected: Vec<Vec<(u64, &str)>> = vec![Vec::new(); read.len()];
    for (value, &(p, offset)) in sent.iter().zip(acked) {
        expected[p as usize].push((offset, value.as_str()));
    }
    for (p, (want, got)) in expected.iter().zip(read).enumerate() {
        let offsets: Vec<u64> = want.iter().map(|(o, _)| *o).collect();
        let contiguous: Vec<u64> = (0..want.len() as u64).collect();
        ensure!(
            offsets == contiguous,
            "partition {p}: acknowledged offsets are not 0..{} in send order",
            want.len()
        );
        ensure!(
            got.len() == want.len(),
            "partition {p}: holds {} records, {} acknowledged",
            got.len(),
            want.len()
        );
        for ((wo, wv), (go, gv)) in want.iter().zip(got) {
            ensure!(
                wo == go && *wv == gv.as_str(),
                "partition {p}: offset {go} holds {gv:?}, expected {wv:?} at {wo}"
            );
        }
    }
    Ok(())
}

/// Awaits the futures in order, returning each record's (partition, offset).
async fn await_all(futures: Vec<DeliveryFuture>) -> Result<Vec<(u32, u64)>> {
    let mut out = Vec::with_capacity(futures.len());
    for (i, f) in futures.into_iter().enumerate() {
        let written = f.await.with_context(|| format!("record {i}"))?;
        let offset = written.offset.context("acks=all reports an offset")?;
        out.push((written.partition, offset));
    }
    Ok(out)
}

/// The codecs of the batches stored in a partition, and how many batches.
async fn stored_batches(
    client: &cairn_client::Client,
    topic: &str,
    partition: u32,
) -> Result<(Vec<Compression>, usize)> {
    let mut codecs = Vec::new();
    let mut count = 0;
    let mut offset = 0u64;
    loop {
        let resp = client.fetch(topic, partition, offset, 1 << 20, 0).await?;
        if resp.records.is_empty() || offset >= resp.high_watermark {
            return Ok((codecs, count));
        }
        for batch in cairn_record::split_batches(&resp.records) {
            let header = cairn_record::RecordBatchHeader::parse(batch?)?;
            if !codecs.contains(&header.compression()) {
                codecs.push(header.compression());
            }
            count += 1;
            offset = header.next_offset() as u64;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_with_every_codec_arrive_once_in_order() -> Result<()> {
    const PARTITIONS: u32 = 4;
    const RECORDS: usize = 10_000;
    let cluster = TestCluster::start(1).await?;
    let client = cluster.client().await?;
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let topic = format!("batched-{codec:?}").to_lowercase();
        client
            .create_topic(&topic, PARTITIONS, 1, HashMap::new())
            .await?;
        cluster
            .wait_fully_replicated(&topic, Duration::from_secs(30))
            .await?;
        let producer = Producer::new(
            client.clone(),
            ProducerConfig {
                linger: Duration::from_millis(10),
                compression: codec,
                ..ProducerConfig::default()
            },
        );
        let mut sent = Vec::with_capacity(RECORDS);
        let mut futures = Vec::with_capacity(RECORDS);
        for i in 0..RECORDS {
            let value = format!("{codec:?}-{i:06}-{}", "x".repeat(i % 97));
            // Mostly keyed (spread by murmur2), every 10th keyless (sticky).
            let record = if i % 10 == 0 {
                OwnedRecord::from_value(value.clone())
            } else {
                OwnedRecord::with_key(format!("key-{}", i % 37), value.clone())
            };
            futures.push(producer.send(&topic, record).await?);
            sent.push(value);
        }
        let acked = await_all(futures).await?;
        producer.close().await;
        ensure!(producer.buffered_bytes() == 0, "bytes left in the buffer");

        let read = workload::read_all(&client, &topic, PARTITIONS).await?;
        check_exactly_once(&sent, &acked, &read).with_context(|| format!("codec {codec:?}"))?;
        let mut batches = 0;
        for p in 0..PARTITIONS {
            ensure!(
                !read[p as usize].is_empty(),
                "{codec:?}: partition {p} got no records"
            );
            let (codecs, count) = stored_batches(&client, &topic, p).await?;
            ensure!(
                codecs == vec![codec],
                "{codec:?}: partition {p} holds {codecs:?}"
            );
            batches += count;
        }
        eprintln!("--- {codec:?}: {RECORDS} records in {batches} batches");
        ensure!(
            batches * 10 <= RECORDS,
            "{codec:?}: {batches} batches for {RECORDS} records: not batching"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_buffer_fails_or_blocks_sends() -> Result<()> {
    let mut cluster = TestCluster::start(1).await?;
    let client = cluster.client().await?;
    client
        .create_topic("pressure", 2, 1, HashMap::new())
        .await?;
    cluster
        .wait_fully_replicated("pressure", Duration::from_secs(30))
        .await?;
    let value = "v".repeat(1_000);
    let record = OwnedRecord::from_value(value.clone());
    // 1000-byte values plus 21 bytes of overhead: three fit, a fourth does not.
    let buffer_memory = 3 * 1_021 + 500;

    eprintln!("--- max_block 0: the fourth send fails at once while three are buffered");
    let producer = Producer::new(
        client.clone(),
        ProducerConfig {
            linger: Duration::from_secs(600),
            buffer_memory,
            max_block: Duration::ZERO,
            ..ProducerConfig::default()
        },
    );
    let mut futures = Vec::new();
    for _ in 0..3 {
        futures.push(producer.send("pressure", record.clone()).await?);
    }
    let started = Instant::now();
    match producer.send("pressure", record.clone()).await {
        Err(ProducerError::BufferFull { .. }) => {}
        other => bail!("expected BufferFull, got {other:?}"),
    }
    ensure!(
        started.elapsed() < Duration::from_secs(1),
        "max_block 0 waited"
    );
    ensure!(producer.buffered_bytes() == 3 * 1_021);
    match producer
        .send(
            "pressure",
            OwnedRecord::from_value("v".repeat(buffer_memory)),
        )
        .await
    {
        Err(ProducerError::RecordTooLarge { .. }) => {}
        other => bail!("expected RecordTooLarge, got {other:?}"),
    }
    // The linger is 10 minutes: only the flush sends them.
    producer.flush().await;
    ensure!(producer.buffered_bytes() == 0);
    let first = await_all(futures).await?;
    futures = vec![producer.send("pressure", record.clone()).await?];
    producer.close().await;
    let first_after_flush = await_all(futures).await?;
    match producer.send("pressure", record.clone()).await {
        Err(ProducerError::Closed) => {}
        other => bail!("expected Closed after close, got {other:?}"),
    }

    eprintln!("--- max_block 30 s: 120 sends wait for room and all succeed");
    let producer = Arc::new(Producer::new(
        client.clone(),
        ProducerConfig {
            linger: Duration::from_millis(5),
            batch_size: 2_048,
            buffer_memory,
            max_block: Duration::from_secs(30),
            ..ProducerConfig::default()
        },
    ));
    let max_seen = Arc::new(AtomicU64::new(0));
    let mut sent = Vec::new();
    let mut futures = Vec::new();
    for i in 0..120 {
        let v = format!("{i:04}{}", &value[4..]);
        let record = OwnedRecord {
            partition: Some(i % 2),
            ..OwnedRecord::from_value(v.clone())
        };
        futures.push(producer.send("pressure", record).await?);
        max_seen.fetch_max(producer.buffered_bytes() as u64, Ordering::Relaxed);
        sent.push(v);
    }
    let blocked = await_all(futures).await?;
    producer.close().await;
    ensure!(
        max_seen.load(Ordering::Relaxed) <= buffer_memory as u64,
        "buffer exceeded: {} > {buffer_memory}",
        max_seen.load(Ordering::Relaxed)
    );

    eprintln!("--- the partitions hold every record once, in send order");
    let mut all_sent: Vec<String> = vec![value.clone(); 4];
    all_sent.extend(sent);
    let mut all_acked = first;
    all_acked.extend(first_after_flush);
    all_acked.extend(blocked);
    let read = workload::read_all(&client, "pressure", 2).await?;
    check_exactly_once(&all_sent, &all_acked, &read)?;

    eprintln!("--- dropping a producer ends its task: a lingering record resolves to Closed");
    let producer = Producer::new(
        client.clone(),
        ProducerConfig {
            linger: Duration::from_secs(600),
            ..ProducerConfig::default()
        },
    );
    let lingering = producer.send("pressure", record.clone()).await?;
    drop(producer);
    match tokio::time::timeout(Duration::from_secs(10), lingering).await {
        Ok(Err(ProducerError::Closed)) => {}
        other => bail!("expected Closed soon after the drop, got {other:?}"),
    }

    eprintln!("--- with the only node killed, a record fails after delivery_timeout");
    let producer = Producer::new(
        client.clone(),
        ProducerConfig {
            delivery_timeout: Duration::from_secs(2),
            ..ProducerConfig::default()
        },
    );
    cluster.kill(0)?;
    let started = Instant::now();
    let delivery = producer.send("pressure", record.clone()).await?;
    match tokio::time::timeout(Duration::from_secs(20), delivery).await {
        Ok(Err(ProducerError::DeliveryTimeout(_))) => {}
        other => bail!("expected DeliveryTimeout, got {other:?}"),
    }
    ensure!(
        started.elapsed() < Duration::from_secs(10),
        "delivery_timeout 2 s took {:?}",
        started.elapsed()
    );
    ensure!(
        producer.buffered_bytes() == 0,
        "a failed record keeps its bytes"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acked_records_exactly_once_through_a_leader_kill() -> Result<()> {
    const TOPIC: &str = "produced";
    const PARTITIONS: u32 = 3;
    const RECORDS: usize = 30_000;
    let mut cluster = TestCluster::start(3).await?;
    let client = cluster.client().await?;
    client
        .create_topic(TOPIC, PARTITIONS, 3, HashMap::new())
        .await?;
    cluster
        .wait_fully_replicated(TOPIC, Duration::from_secs(30))
        .await?;

    let producer = Arc::new(Producer::new(
        client.clone(),
        ProducerConfig {
            linger: Duration::from_millis(5),
            compression: Compression::Lz4,
            ..ProducerConfig::default()
        },
    ));
    let acked_count = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<DeliveryFuture>();
    let sending = {
        let producer = Arc::clone(&producer);
        tokio::spawn(async move {
            let mut sent = Vec::with_capacity(RECORDS);
            for i in 0..RECORDS {
                let value = format!("r{i:06}");
                let record = OwnedRecord::with_key(format!("k{}", i % 101), value.clone());
                tx.send(producer.send(TOPIC, record).await?)?;
                sent.push(value);
                if i % 500 == 499 {
                    // Pace the sender so the kill lands mid-stream.
                    tokio::task::yield_now().await;
                }
            }
            anyhow::Ok(sent)
        })
    };
    let acking = {
        let acked_count = Arc::clone(&acked_count);
        tokio::spawn(async move {
            let mut acked = Vec::with_capacity(RECORDS);
            while let Some(f) = rx.recv().await {
                let written = f.await.with_context(|| format!("record {}", acked.len()))?;
                acked.push((
                    written.partition,
                    written.offset.context("acks=all reports an offset")?,
                ));
                acked_count.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(acked)
        })
    };

    let deadline = Instant::now() + Duration::from_secs(120);
    while acked_count.load(Ordering::Relaxed) < (RECORDS / 5) as u64 {
        ensure!(
            Instant::now() < deadline,
            "producer made too little progress"
        );
        ensure!(!acking.is_finished(), "acknowledgements stopped early");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let leader = client.describe_topic(TOPIC).await?.partitions[0]
        .leader
        .context("partition 0 has a leader")?;
    let at = acked_count.load(Ordering::Relaxed);
    eprintln!("--- kill -9 node {leader}, leader of {TOPIC}/0, at {at} of {RECORDS} acked");
    cluster.kill(cluster.node_index(leader))?;

    let sent = sending.await??;
    let acked = acking.await??;
    producer.close().await;
    ensure!(
        at < RECORDS as u64,
        "every record was acknowledged before the kill: nothing was tested"
    );
    eprintln!("--- all {} records acknowledged; reading back", acked.len());
    // The nodes' view of who leads follows their liveness view of the
    // killed node, which can lag the last acknowledgement: wait for it.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now_led = client.describe_topic(TOPIC).await?.partitions[0].leader;
        if now_led.is_some() && now_led != Some(leader) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "partition 0 still led by the killed node (or by none): {now_led:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let read = workload::read_all(&client, TOPIC, PARTITIONS).await?;
    check_exactly_once(&sent, &acked, &read)
}
