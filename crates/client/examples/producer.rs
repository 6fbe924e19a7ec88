//! Sends records through the batching [`cairn_client::Producer`] and prints
//! the throughput.
//!
//! ```text
//! cargo run --release -p cairn-client --example producer -- \
//!     [--bootstrap 127.0.0.1:50051] [--topic producer-bench] [--partitions 6] \
//!     [--replication-factor 3] [--records 200000] [--size 1024] \
//!     [--linger-ms 5] [--batch-size 16384] [--compression none|gzip|snappy|lz4|zstd]
//! ```
//!
//! The topic is created if it does not exist. Records are keyless (the sticky
//! partitioner spreads them) with `--size` random-looking bytes each.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cairn_client::{
    Client, Compression, DeliveryFuture, ErrorCode, OwnedRecord, Producer, ProducerConfig,
};

struct Args {
    bootstrap: Vec<String>,
    topic: String,
    partitions: u32,
    replication_factor: u32,
    records: usize,
    size: usize,
    linger: Duration,
    batch_size: usize,
    compression: Compression,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        bootstrap: vec!["127.0.0.1:50051".into()],
        topic: "producer-bench".into(),
        partitions: 6,
        replication_factor: 3,
        records: 200_000,
        size: 1024,
        linger: Duration::from_millis(5),
        batch_size: 16_384,
        compression: Compression::None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--bootstrap" => a.bootstrap = value.split(',').map(str::to_owned).collect(),
            "--topic" => a.topic = value,
            "--partitions" => a.partitions = num(&value)? as u32,
            "--replication-factor" => a.replication_factor = num(&value)? as u32,
            "--records" => a.records = num(&value)? as usize,
            "--size" => a.size = num(&value)? as usize,
            "--linger-ms" => a.linger = Duration::from_millis(num(&value)?),
            "--batch-size" => a.batch_size = num(&value)? as usize,
            "--compression" => {
                a.compression = match value.as_str() {
                    "none" => Compression::None,
                    "gzip" => Compression::Gzip,
                    "snappy" => Compression::Snappy,
                    "lz4" => Compression::Lz4,
                    "zstd" => Compression::Zstd,
                    other => return Err(format!("unknown codec {other}")),
                }
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let client = Client::connect(&args.bootstrap).await?;
    match client
        .create_topic(
            &args.topic,
            args.partitions,
            args.replication_factor,
            HashMap::new(),
        )
        .await
    {
        Err(e) if e.code() != Some(ErrorCode::TopicAlreadyExists) => return Err(e.into()),
        _ => {}
    }
    // Incompressible-ish values, different per record.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let values: Vec<bytes::Bytes> = (0..1024)
        .map(|_| {
            (0..args.size)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % 64) as u8 + b'0'
                })
                .collect::<Vec<u8>>()
                .into()
        })
        .collect();

    let producer = Producer::new(
        client,
        ProducerConfig {
            linger: args.linger,
            batch_size: args.batch_size,
            compression: args.compression,
            ..ProducerConfig::default()
        },
    );
    let start = Instant::now();
    // Await deliveries in a second task so that sending is never held up.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<DeliveryFuture>();
    let acker = tokio::spawn(async move {
        let mut failed = 0usize;
        while let Some(delivery) = rx.recv().await {
            if let Err(e) = delivery.await {
                if failed == 0 {
                    eprintln!("first failure: {e}");
                }
                failed += 1;
            }
        }
        failed
    });
    for i in 0..args.records {
        let record = OwnedRecord::from_value(values[i % values.len()].clone());
        tx.send(producer.send(&args.topic, record).await?)?;
    }
    drop(tx);
    let failed = acker.await?;
    let elapsed = start.elapsed().as_secs_f64();
    producer.close().await;
    let ok = args.records - failed;
    println!(
        "{ok} records of {} bytes acknowledged ({failed} failed) in {elapsed:.2} s: \
         {:.0} records/s, {:.2} MB/s (linger {:?}, batch size {}, {:?})",
        args.size,
        ok as f64 / elapsed,
        (ok * args.size) as f64 / elapsed / 1e6,
        args.linger,
        args.batch_size,
        args.compression,
    );
    Ok(())
}
