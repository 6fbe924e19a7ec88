//! Issue 2: ListOffsets earliest, latest and by timestamp. By timestamp the
//! answer is the exact record, as Kafka gives it: the first offset whose
//! record timestamp is at or after the one asked for, even inside a batch.

use std::collections::HashMap;

use anyhow::ensure;
use anyhow::Result;
use cairn_client::Acks;
use cairn_client::OffsetSpec;
use cairn_record::RecordBatchBuilder;

use crate::cluster::TestCluster;

/// A batch of `count` records stamped `first_ms`, `first_ms + 10`, ...
fn batch(first_ms: i64, count: i64) -> bytes::Bytes {
    let mut b = RecordBatchBuilder::new();
    for i in 0..count {
        b.push(first_ms + 10 * i, None, Some(b"v"), &[]);
    }
    b.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_timestamp_finds_the_record() -> Result<()> {
    let cluster = TestCluster::start(1).await?;
    let client = cluster.client().await?;
    client.create_topic("t", 1, 1, HashMap::new()).await?;
    // Offsets 0..5 at 1000..1040 ms, offsets 5..10 at 2000..2040 ms.
    client.produce("t", 0, batch(1_000, 5), Acks::All).await?;
    client.produce("t", 0, batch(2_000, 5), Acks::All).await?;

    let at = |ts| client.list_offsets("t", 0, OffsetSpec::Timestamp(ts));
    let cases = [
        (0, 0, 1_000),
        (1_000, 0, 1_000),
        (1_001, 1, 1_010),
        (1_025, 3, 1_030),
        (1_040, 4, 1_040),
        (1_041, 5, 2_000),
        (2_031, 9, 2_040),
        (2_041, -1, -1),
    ];
    for (ts, offset, timestamp_ms) in cases {
        let r = at(ts).await?;
        ensure!(
            (r.offset, r.timestamp_ms) == (offset, timestamp_ms),
            "timestamp {ts}: got offset {} at {}, want {offset} at {timestamp_ms}",
            r.offset,
            r.timestamp_ms
        );
    }
    let earliest = client.list_offsets("t", 0, OffsetSpec::Earliest).await?;
    let latest = client.list_offsets("t", 0, OffsetSpec::Latest).await?;
    ensure!(earliest.offset == 0 && latest.offset == 10);
    Ok(())
}
