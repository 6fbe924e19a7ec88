//! Issue 4: log compaction. A compacted topic on 3 nodes keeps the latest
//! record per key at its original offset; tombstones stay until
//! `delete.retention.ms`, then go; every replica compacts its own copy (a
//! new leader reads compacted), and it all holds across node restarts.
//! Records without a key are refused.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use anyhow::ensure;
use anyhow::Result;
use cairn_client::Acks;
use cairn_client::Client;
use cairn_client::ClientError;
use cairn_client::ErrorCode;
use cairn_client::FetchedRecords;
use cairn_record::Compression;
use cairn_record::RecordBatchBuilder;

use crate::cluster::TestCluster;

const TOPIC: &str = "profiles";

/// (offset, key, value) as read back.
type Seen = Vec<(u64, String, Option<String>)>;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Produces `records` (key, value or tombstone) as one batch; returns the
/// offset of each.
async fn produce(
    client: &Client,
    records: &[(String, Option<String>)],
    codec: Compression,
) -> Result<Vec<u64>> {
    let mut b = RecordBatchBuilder::new().with_compression(codec);
    for (k, v) in records {
        b.push(
            now_ms(),
            Some(k.as_bytes()),
            v.as_deref().map(str::as_bytes),
            &[],
        );
    }
    let resp = client.produce(TOPIC, 0, b.build(), Acks::All).await?;
    let base = resp.base_offset as u64;
    Ok((0..records.len() as u64).map(|i| base + i).collect())
}

/// Everything readable from offset 0, through the current leader.
async fn read_all(client: &Client) -> Result<Seen> {
    let mut out = Vec::new();
    let mut next = 0u64;
    loop {
        let resp = client.fetch(TOPIC, 0, next, 1 << 20, 0).await?;
        let hw = resp.high_watermark;
        let fetched = FetchedRecords::decode(resp, next)?;
        for r in &fetched.records {
            let text = |b: &Option<bytes::Bytes>| {
                b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
            };
            out.push((
                r.offset as u64,
                text(&r.key).unwrap_or_default(),
                text(&r.value),
            ));
        }
        if fetched.next_offset >= hw || fetched.next_offset == next {
            return Ok(out);
        }
        next = fetched.next_offset;
    }
}

/// Polls the leader until it reads exactly `expected`.
async fn wait_for_read(client: &Client, expected: &Seen, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::from("no read yet");
    while Instant::now() < deadline {
        match read_all(client).await {
            Ok(seen) if &seen == expected => return Ok(()),
            Ok(seen) => last = format!("{} records: {seen:?}", seen.len()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{what}: never read the compacted log {expected:?}; last: {last}")
}

/// The latest record per key, by offset, leaving out tombstones if
/// `drop_tombstones`.
fn latest(written: &[(u64, String, Option<String>)], drop_tombstones: bool) -> Seen {
    let mut by_key: BTreeMap<&str, &(u64, String, Option<String>)> = BTreeMap::new();
    for w in written {
        by_key.insert(&w.1, w);
    }
    let mut out: Seen = by_key
        .into_values()
        .filter(|w| !(drop_tombstones && w.2.is_none()))
        .cloned()
        .collect();
    out.sort();
    out
}

async fn leader_of(client: &Client) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(t) = client.describe_topic(TOPIC).await {
            if let Some(l) = t.partitions[0].leader {
                return Ok(l);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{TOPIC}/0 has no leader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topic_keeps_latest_per_key_across_restarts() -> Result<()> {
    let mut cluster = TestCluster::new(3)?.with_server_args(&["--compaction-interval-ms", "200"]);
    for i in 0..3 {
        cluster.start_node(i)?;
    }
    cluster.wait_ready(Duration::from_secs(30)).await?;
    let client = cluster.client().await?;
    let configs = HashMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("delete.retention.ms".to_string(), "3600000".to_string()),
    ]);
    client.create_topic(TOPIC, 1, 3, configs).await?;
    cluster
        .wait_fully_replicated(TOPIC, Duration::from_secs(30))
        .await?;

    eprintln!("--- a record without a key is refused");
    let mut keyless = RecordBatchBuilder::new();
    keyless.push(now_ms(), None, Some(b"v"), &[]);
    match client.produce(TOPIC, 0, keyless.build(), Acks::All).await {
        Err(ClientError::Server { code, message, .. }) => {
            ensure!(code == ErrorCode::InvalidArgument, "{code:?}: {message}");
            ensure!(message.contains("without key"), "{message}");
        }
        other => bail!("keyless record not refused: {other:?}"),
    }

    eprintln!("--- 5 rounds of values for 8 keys, in batches of all codecs; 2 keys deleted");
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut written: Vec<(u64, String, Option<String>)> = Vec::new();
    for round in 0..5 {
        let records: Vec<(String, Option<String>)> = (0..8)
            .map(|k| (format!("user-{k}"), Some(format!("v{round}-of-user-{k}"))))
            .collect();
        for chunk in records.chunks(3) {
            let offsets = produce(&client, chunk, codecs[round % codecs.len()]).await?;
            for (o, (k, v)) in offsets.into_iter().zip(chunk) {
                written.push((o, k.clone(), v.clone()));
            }
        }
    }
    let tombstones = [("user-2".to_string(), None), ("user-5".to_string(), None)];
    for (o, (k, v)) in produce(&client, &tombstones, Compression::None)
        .await?
        .into_iter()
        .zip(&tombstones)
    {
        written.push((o, k.clone(), v.clone()));
    }
    let all_before = read_all(&client).await?;
    let expected = latest(&written, false);
    ensure!(expected.len() == 8 && all_before.len() >= expected.len());

    eprintln!("--- compaction leaves the latest record per key, at its offset; tombstones stay");
    wait_for_read(&client, &expected, "leader").await?;

    let leader = leader_of(&client).await?;
    eprintln!("--- kill -9 the leader (node {leader}); the new leader compacted its own copy");
    cluster.kill(cluster.node_index(leader))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let l = leader_of(&client).await?;
        if l != leader {
            break;
        }
        ensure!(Instant::now() < deadline, "no new leader after the kill");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_read(&client, &expected, "new leader").await?;
    cluster.start_node(cluster.node_index(leader))?;
    cluster.wait_ready(Duration::from_secs(30)).await?;
    cluster
        .wait_fully_replicated(TOPIC, Duration::from_secs(30))
        .await?;

    eprintln!("--- more values after the restart: compaction resumes from its clean point");
    let more: Vec<(String, Option<String>)> = vec![
        ("user-0".into(), Some("after-restart".into())),
        ("user-5".into(), Some("back-again".into())),
    ];
    for (o, (k, v)) in produce(&client, &more, Compression::Lz4)
        .await?
        .into_iter()
        .zip(&more)
    {
        written.push((o, k.clone(), v.clone()));
    }
    let expected = latest(&written, false);
    wait_for_read(&client, &expected, "after restart").await?;

    eprintln!("--- rolling restart of every node; reads stay compacted");
    for i in 0..3 {
        cluster.kill(i)?;
        cluster.start_node(i)?;
        cluster.wait_ready(Duration::from_secs(30)).await?;
        cluster
            .wait_fully_replicated(TOPIC, Duration::from_secs(30))
            .await?;
        wait_for_read(
            &client,
            &expected,
            &format!("after restarting node {}", i + 1),
        )
        .await?;
    }

    eprintln!("--- delete.retention.ms=0: the remaining tombstone goes too");
    client
        .alter_topic_config(
            TOPIC,
            HashMap::from([("delete.retention.ms".to_string(), "0".to_string())]),
            Vec::new(),
        )
        .await?;
    let expected = latest(&written, true);
    ensure!(expected.iter().all(|r| r.2.is_some()) && expected.len() == 7);
    wait_for_read(&client, &expected, "tombstone expiry").await?;
    let hw = client.fetch(TOPIC, 0, 0, 1, 0).await?.high_watermark;
    ensure!(
        hw == written.len() as u64,
        "high watermark {hw}, wrote {} records: offsets must not change",
        written.len()
    );
    cluster.kill_all()?;
    Ok(())
}
