//! Issue 4: retention. Deletion by size and by time removes whole batches
//! from the front; a reader that falls below the log start is told so and
//! resumes there; a replica that joins after the purge gets the retained
//! records by snapshot + log; a restart keeps the log start and the data.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use anyhow::ensure;
use anyhow::Context;
use anyhow::Result;
use cairn_client::Acks;
use cairn_client::Client;
use cairn_client::ClientError;
use cairn_client::ErrorCode;
use cairn_client::FetchedRecords;
use cairn_client::OffsetSpec;
use cairn_client::OwnedRecord;
use tokio::sync::Notify;

use crate::cluster::cairn_bin;
use crate::cluster::metric;
use crate::cluster::TestCluster;

/// Records per produced batch.
const BATCH: u64 = 20;

fn value(offset: u64) -> String {
    // ~100 bytes, naming its own offset: a single-partition topic written
    // in order assigns offset i to the i-th record.
    format!("v-{offset:06}-{}", "x".repeat(90))
}

/// Produces batches `from..from + count` (BATCH records each), one by one.
async fn produce_batches(client: &Client, topic: &str, from: u64, count: u64) -> Result<()> {
    for b in from..from + count {
        let records: Vec<OwnedRecord> = (b * BATCH..(b + 1) * BATCH)
            .map(|o| OwnedRecord::from_value(value(o)))
            .collect();
        for o in client.produce_records(topic, &records, Acks::All).await? {
            o.result.with_context(|| format!("batch {b}"))?;
        }
    }
    Ok(())
}

/// Checks that `records` are exactly the offsets `from..to`, in order, each
/// with its own value.
fn check_exact(records: &[(u64, String)], from: u64, to: u64) -> Result<()> {
    ensure!(
        records.len() as u64 == to - from,
        "expected offsets {from}..{to}, got {} records (first {:?}, last {:?})",
        records.len(),
        records.first().map(|r| r.0),
        records.last().map(|r| r.0)
    );
    for (i, (offset, v)) in records.iter().enumerate() {
        let want = from + i as u64;
        ensure!(*offset == want, "offset {offset} where {want} was due");
        ensure!(*v == value(want), "offset {offset} holds a wrong value");
    }
    Ok(())
}

/// Reads `from..to` (to: the high watermark when called).
async fn read_from(client: &Client, topic: &str, from: u64) -> Result<Vec<(u64, String)>> {
    let (_, end) = bounds(client, topic).await?;
    let mut out = Vec::new();
    let mut offset = from;
    while offset < end {
        let f = client.fetch_records(topic, 0, offset, 1 << 20, 0).await?;
        ensure!(f.next_offset > offset, "fetch at {offset} made no progress");
        for r in f.records {
            let v = r
                .value
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default();
            out.push((r.offset as u64, v));
        }
        offset = f.next_offset;
    }
    Ok(out)
}

/// The log start and every record from it to the high watermark. Retention
/// may move the log start while this reads; it then starts over from the
/// new one (the log start only moves forward).
async fn read_retained(client: &Client, topic: &str) -> Result<(u64, Vec<(u64, String)>)> {
    for _ in 0..10 {
        let (start, _) = bounds(client, topic).await?;
        match read_from(client, topic, start).await {
            Ok(records) => return Ok((start, records)),
            Err(e)
                if matches!(
                    e.downcast_ref::<ClientError>(),
                    Some(ClientError::Server {
                        code: ErrorCode::OffsetOutOfRange,
                        ..
                    })
                ) => {}
            Err(e) => return Err(e),
        }
    }
    bail!("the log start kept moving while reading {topic}")
}

/// (log start, high watermark) as the leader answers ListOffsets
/// (DescribeTopic reports what the last heartbeat carried).
async fn bounds(client: &Client, topic: &str) -> Result<(u64, u64)> {
    let start = client.list_offsets(topic, 0, OffsetSpec::Earliest).await?;
    let end = client.list_offsets(topic, 0, OffsetSpec::Latest).await?;
    Ok((start.offset as u64, end.offset as u64))
}

/// Bytes of record batches from the log start to the high watermark, as
/// fetches return them (the stored batches with offsets filled in).
async fn retained_bytes(client: &Client, topic: &str) -> Result<u64> {
    let (start, end) = bounds(client, topic).await?;
    let mut total = 0u64;
    let mut offset = start;
    while offset < end {
        let raw = client.fetch(topic, 0, offset, 1 << 20, 0).await?;
        total += raw.records.len() as u64;
        let f = FetchedRecords::decode(raw, offset)?;
        ensure!(f.next_offset > offset, "fetch at {offset} made no progress");
        offset = f.next_offset;
    }
    Ok(total)
}

/// Polls `cond` every 100 ms until it holds or `timeout` passes.
async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut cond: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match cond().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) if Instant::now() >= deadline => return Err(e.context(what.to_string())),
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn configs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What the concurrent reader saw.
#[derive(Default, Debug)]
struct ReaderLog {
    /// Records read before it fell below the log start.
    before: Vec<(u64, String)>,
    /// The offset it asked for, and the error message, when told it was
    /// below the log start.
    out_of_range: Vec<(u64, String)>,
    /// Where it resumed (the log start it was told).
    resumed_at: Option<u64>,
    /// Records read after resuming.
    after: Vec<(u64, String)>,
}

/// Reads one batch at a time from offset 0. After `pause_after` records it
/// says so through `paused` and waits for `go`; from then on, on OFFSET_OUT_OF_RANGE it resumes at the
/// log start the partition reports, and it stops at `end`.
async fn reader(
    client: Client,
    topic: String,
    pause_after: u64,
    paused_at: Arc<Notify>,
    go: Arc<Notify>,
    end: u64,
) -> Result<ReaderLog> {
    let mut log = ReaderLog::default();
    let mut offset = 0u64;
    let mut paused = false;
    while offset < end {
        if !paused && offset >= pause_after {
            paused = true;
            paused_at.notify_one();
            go.notified().await;
        }
        match client.fetch_records(&topic, 0, offset, 1, 2000).await {
            Ok(f) => {
                let records = f.records.into_iter().map(|r| {
                    let v = r
                        .value
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .unwrap_or_default();
                    (r.offset as u64, v)
                });
                if log.resumed_at.is_some() {
                    log.after.extend(records);
                } else {
                    log.before.extend(records);
                }
                offset = offset.max(f.next_offset);
            }
            Err(ClientError::Server {
                code: ErrorCode::OffsetOutOfRange,
                message,
            }) => {
                log.out_of_range.push((offset, message));
                ensure!(log.out_of_range.len() < 3, "out of range again: {log:?}");
                let (start, _) = bounds(&client, &topic).await?;
                ensure!(
                    start > offset,
                    "told out of range at {offset}, log start {start}"
                );
                log.resumed_at = Some(start);
                offset = start;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(log)
}

/// By size, on three nodes: whole batches go from the front until the
/// partition holds at most retention.bytes; a reader that was consuming
/// from 0 saw every record up to where it fell behind, is then told it is
/// below the log start (with the log start in the message), resumes there
/// and sees every retained record exactly once. Every replica cuts a
/// snapshot (so it purges its log), and a restart of all nodes keeps the
/// log start and the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_size_keeps_a_concurrent_reader_correct_and_survives_restart() -> Result<()> {
    let mut cluster = TestCluster::new(3)?.with_env("CAIRN_RETENTION_CHECK_INTERVAL_MS", "200");
    for i in 0..3 {
        cluster.start_node(i)?;
    }
    cluster.wait_ready(Duration::from_secs(30)).await?;
    let client = cluster.client().await?;
    const LIMIT: u64 = 20_000;
    client
        .create_topic(
            "sized",
            1,
            3,
            configs(&[("retention.bytes", "20000"), ("retention.ms", "-1")]),
        )
        .await?;
    cluster
        .wait_fully_replicated("sized", Duration::from_secs(30))
        .await?;

    const BATCHES: u64 = 50;
    let end = BATCHES * BATCH;
    let go = Arc::new(Notify::new());
    let paused = Arc::new(Notify::new());
    let reading = tokio::spawn(reader(
        cluster.client().await?,
        "sized".to_string(),
        3 * BATCH,
        paused.clone(),
        go.clone(),
        end,
    ));
    eprintln!(
        "--- produce 3 batches of {BATCH} records (~2.4 KB each) while the reader reads them"
    );
    produce_batches(&client, "sized", 0, 3).await?;
    tokio::time::timeout(Duration::from_secs(30), paused.notified())
        .await
        .context("the reader did not read the first 3 batches")?;
    eprintln!(
        "--- produce {} more batches, the reader paused",
        BATCHES - 3
    );
    produce_batches(&client, "sized", 3, BATCHES - 3).await?;

    eprintln!("--- retention brings the partition down to {LIMIT} bytes");
    wait_until(
        "retained bytes <= limit",
        Duration::from_secs(30),
        || async { Ok(retained_bytes(&client, "sized").await? <= LIMIT) },
    )
    .await?;
    let (start, hw) = bounds(&client, "sized").await?;
    ensure!(hw == end, "high watermark {hw}, produced {end}");
    ensure!(start % BATCH == 0, "log start {start} is not a batch start");
    ensure!(
        start > 3 * BATCH,
        "log start {start} did not pass the reader"
    );
    let retained = retained_bytes(&client, "sized").await?;
    let one_batch = retained / ((hw - start) / BATCH);
    ensure!(
        retained + one_batch + 200 > LIMIT,
        "deleted too much: {retained} bytes retained of {LIMIT} allowed (batches of ~{one_batch})"
    );
    eprintln!("--- log start {start}, high watermark {hw}, {retained} bytes retained");

    eprintln!("--- the reader resumes below the log start");
    go.notify_one();
    let log = reading.await??;
    check_exact(&log.before, 0, 3 * BATCH)?;
    ensure!(log.out_of_range.len() == 1, "{:?}", log.out_of_range);
    let (asked, message) = &log.out_of_range[0];
    ensure!(*asked == 3 * BATCH, "asked {asked}");
    ensure!(
        message.contains(&format!("out of range [{start}, {hw}]")),
        "the error does not name the log start: {message}"
    );
    ensure!(
        log.resumed_at == Some(start),
        "resumed at {:?}",
        log.resumed_at
    );
    check_exact(&log.after, start, end)?;

    eprintln!("--- every replica cut a snapshot below the log start (its log is purged)");
    for spec in &cluster.specs {
        let admin = spec.admin.clone();
        wait_until(
            &format!("a snapshot on node {}", spec.id),
            Duration::from_secs(30),
            || {
                let admin = admin.clone();
                async move { Ok(metric(&admin, "cairn_partition_snapshots_built_total")? >= 1.0) }
            },
        )
        .await?;
    }

    eprintln!("--- restart every node: log start and data stay");
    cluster.kill_all()?;
    for i in 0..3 {
        cluster.start_node(i)?;
    }
    cluster.wait_ready(Duration::from_secs(30)).await?;
    cluster
        .wait_fully_replicated("sized", Duration::from_secs(30))
        .await?;
    let client = cluster.client().await?;
    ensure!(bounds(&client, "sized").await? == (start, hw));
    check_exact(&read_from(&client, "sized", start).await?, start, end)?;
    produce_batches(&client, "sized", BATCHES, 2).await?;
    let (start2, records) = read_retained(&client, "sized").await?;
    ensure!(start2 >= start);
    check_exact(&records, start2, end + 2 * BATCH)?;
    Ok(())
}

/// By time: once its newest record is older than retention.ms a batch
/// goes, except the last one; new records are readable after that, and
/// `cairn topic describe` shows the new log start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_time_deletes_all_but_the_last_batch() -> Result<()> {
    let mut cluster = TestCluster::new(1)?.with_env("CAIRN_RETENTION_CHECK_INTERVAL_MS", "200");
    cluster.start_node(0)?;
    cluster.wait_ready(Duration::from_secs(30)).await?;
    let client = cluster.client().await?;
    client
        .create_topic("timed", 1, 1, configs(&[("retention.ms", "2000")]))
        .await?;
    cluster
        .wait_fully_replicated("timed", Duration::from_secs(30))
        .await?;
    let produced_at = Instant::now();
    produce_batches(&client, "timed", 0, 5).await?;
    let (start, hw) = bounds(&client, "timed").await?;
    ensure!(
        start == 0 || produced_at.elapsed() >= Duration::from_secs(2),
        "deleted before retention.ms passed: log start {start}"
    );
    ensure!(hw == 5 * BATCH);

    eprintln!("--- after 2 s all but the last batch go");
    wait_until("log start 80", Duration::from_secs(20), || async {
        Ok(bounds(&client, "timed").await?.0 == 4 * BATCH)
    })
    .await?;
    // The last batch is kept however old it gets.
    let last = 4 * BATCH;
    check_exact(&read_from(&client, "timed", last).await?, last, hw)?;
    let below = client.fetch_records("timed", 0, last - 1, 1 << 20, 0).await;
    ensure!(
        matches!(
            below,
            Err(ClientError::Server {
                code: ErrorCode::OffsetOutOfRange,
                ..
            })
        ),
        "{below:?}"
    );

    eprintln!("--- cairn topic describe shows it (as of the leader's last heartbeat)");
    let bootstrap = cluster.bootstrap().join(",");
    let describe = |json: bool| {
        let mut cmd = Command::new(cairn_bin());
        cmd.args(["topic", "describe", "timed", "--bootstrap", &bootstrap]);
        if json {
            cmd.args(["--format", "json"]);
        }
        cmd.output()
    };
    wait_until(
        "describe --format json shows log start 80",
        Duration::from_secs(10),
        || async {
            let out = describe(true)?;
            ensure!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            Ok(json["partitions"][0]["log_start_offset"] == last)
        },
    )
    .await?;
    let out = describe(false)?;
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with('0'))
        .context("no partition row")?;
    let cells: Vec<&str> = row.split_whitespace().collect();
    ensure!(
        cells.len() >= 2 && cells[cells.len() - 2] == "80" && cells[cells.len() - 1] == "100",
        "log start / high watermark not shown: {text}"
    );

    eprintln!("--- retention.ms raised to an hour: new records stay, and are readable");
    client
        .alter_topic_config("timed", configs(&[("retention.ms", "3600000")]), Vec::new())
        .await?;
    // The leader's retention task reads the configs from its metadata view:
    // wait until that node knows the new value (its describe answers so).
    wait_until(
        "the new retention.ms is known",
        Duration::from_secs(10),
        || async {
            let t = client.describe_topic("timed").await?;
            Ok(t.configs.get("retention.ms").map(String::as_str) == Some("3600000"))
        },
    )
    .await?;
    produce_batches(&client, "timed", 5, 2).await?;
    ensure!(bounds(&client, "timed").await? == (last, 7 * BATCH));
    check_exact(&read_from(&client, "timed", last).await?, last, 7 * BATCH)?;
    Ok(())
}

/// After a purge, the partition moves to a node that never had it: the
/// leader's log no longer holds the first entries, so the new replica gets
/// a snapshot (counted in its metrics) and then the retained entries; once
/// it leads, it serves exactly the retained records at the same offsets.
/// The snapshot travels in chunks (of 4 bytes here, to have several).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_after_a_purge_serves_exactly_the_retained_records() -> Result<()> {
    let mut cluster = TestCluster::new(2)?
        .with_env("CAIRN_RETENTION_CHECK_INTERVAL_MS", "200")
        .with_env("CAIRN_RAFT_SNAPSHOT_CHUNK_BYTES", "4");
    for i in 0..2 {
        cluster.start_node(i)?;
    }
    cluster.wait_ready(Duration::from_secs(30)).await?;
    let client = cluster.client().await?;
    client
        .create_topic(
            "moved",
            1,
            1,
            configs(&[("retention.bytes", "10000"), ("retention.ms", "-1")]),
        )
        .await?;
    cluster
        .wait_fully_replicated("moved", Duration::from_secs(30))
        .await?;
    let from = client.describe_topic("moved").await?.partitions[0].replicas[0];
    let to = if from == 1 { 2 } else { 1 };
    let from_admin = cluster.specs[cluster.node_index(from)].admin.clone();
    let to_admin = cluster.specs[cluster.node_index(to)].admin.clone();

    produce_batches(&client, "moved", 0, 20).await?;
    wait_until(
        "log start moved and purged",
        Duration::from_secs(30),
        || {
            let client = &client;
            let admin = from_admin.clone();
            async move {
                Ok(bounds(client, "moved").await?.0 > 0
                    && metric(&admin, "cairn_partition_snapshots_built_total")? >= 1.0)
            }
        },
    )
    .await?;
    let (start, hw) = bounds(&client, "moved").await?;
    let retained = read_from(&client, "moved", start).await?;
    check_exact(&retained, start, hw)?;
    ensure!(metric(&to_admin, "cairn_partition_snapshots_installed_total")? == 0.0);

    eprintln!("--- move {start}..{hw} from node {from} to node {to}");
    client.reassign_partition("moved", 0, &[to]).await?;
    let what = format!("node {to} leads the partition");
    wait_until(&what, Duration::from_secs(60), || async {
        let p = client.describe_topic("moved").await?.partitions[0].clone();
        Ok(p.leader == Some(to) && p.replicas == vec![to])
    })
    .await?;
    ensure!(
        metric(&to_admin, "cairn_partition_snapshots_installed_total")? >= 1.0,
        "node {to} got the partition without a snapshot: the log was not purged"
    );
    let sent = metric(&from_admin, "cairn_raft_snapshots_sent_total")?;
    let chunks = metric(&from_admin, "cairn_raft_snapshot_chunks_sent_total")?;
    ensure!(
        sent >= 1.0 && chunks > sent,
        "node {from} sent {sent} snapshots in {chunks} chunks"
    );
    ensure!(bounds(&client, "moved").await? == (start, hw));
    let moved = read_from(&client, "moved", start).await?;
    ensure!(moved == retained, "node {to} serves other records");
    ensure!(
        matches!(
            client
                .fetch_records("moved", 0, start - 1, 1 << 20, 0)
                .await,
            Err(ClientError::Server {
                code: ErrorCode::OffsetOutOfRange,
                ..
            })
        ),
        "below the log start is not out of range on node {to}"
    );
    eprintln!("--- writes go on through node {to}; retention goes on there too");
    produce_batches(&client, "moved", 20, 2).await?;
    let (start2, records) = read_retained(&client, "moved").await?;
    ensure!(start2 >= start, "log start went back to {start2}");
    check_exact(&records, start2, 22 * BATCH)?;
    Ok(())
}
