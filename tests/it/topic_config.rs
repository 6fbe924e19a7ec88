//! Issue 4: `cairn topic alter-config` — configs change for a live topic,
//! take effect at once, and bad keys or values get a clear error and change
//! nothing.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};
use cairn_client::{Acks, ClientError, ErrorCode};
use cairn_record::RecordBatchBuilder;

use crate::cluster::{cairn_bin, TestCluster};

fn batch(size: usize) -> bytes::Bytes {
    let mut b = RecordBatchBuilder::new();
    b.push(1_700_000_000_000, None, Some(&vec![b'x'; size][..]), &[]);
    b.build()
}

fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> Option<ErrorCode> {
    match r {
        Err(ClientError::Server { code, .. }) => Some(code),
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_config_takes_effect_and_refuses_bad_input() -> Result<()> {
    let cluster = TestCluster::start(1).await?;
    let client = cluster.client().await?;
    let small = HashMap::from([("max.message.bytes".to_string(), "2048".to_string())]);
    client.create_topic("t", 1, 1, small).await?;
    ensure!(
        code(client.produce("t", 0, batch(4096), Acks::All).await)
            == Some(ErrorCode::MessageTooLarge)
    );

    eprintln!("--- raise max.message.bytes with the CLI: a 4 KiB record now fits");
    let out = Command::new(cairn_bin())
        .args([
            "topic",
            "alter-config",
            "t",
            "--set",
            "max.message.bytes=8192",
        ])
        .args(["--set", "retention.ms=3600000", "--format", "json"])
        .args(["--bootstrap", &cluster.bootstrap().join(",")])
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    ensure!(json["configs"]["max.message.bytes"] == "8192", "{json}");
    ensure!(json["configs"]["retention.ms"] == "3600000", "{json}");
    client.produce("t", 0, batch(4096), Acks::All).await?;
    let described = client.describe_topic("t").await?;
    ensure!(
        described
            .configs
            .get("max.message.bytes")
            .map(String::as_str)
            == Some("8192")
    );

    eprintln!("--- unknown keys and bad values are refused; nothing changes");
    for (set, delete) in [
        (vec![("no.such.key", "1")], vec![]),
        (vec![("retention.ms", "soon")], vec![]),
        (vec![], vec!["no.such.key"]),
    ] {
        let set = set
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let delete = delete.into_iter().map(str::to_string).collect();
        ensure!(
            code(client.alter_topic_config("t", set, delete).await)
                == Some(ErrorCode::InvalidConfig)
        );
    }
    ensure!(
        code(
            client
                .alter_topic_config("missing", HashMap::new(), vec![])
                .await
        ) == Some(ErrorCode::UnknownTopic)
    );
    let out = Command::new(cairn_bin())
        .args([
            "topic",
            "alter-config",
            "t",
            "--set",
            "cleanup.policy=sometimes",
        ])
        .args(["--bootstrap", &cluster.bootstrap().join(",")])
        .output()?;
    ensure!(!out.status.success(), "a bad value must fail the CLI");
    ensure!(String::from_utf8_lossy(&out.stderr).contains("cleanup.policy"));

    eprintln!("--- delete puts a key back to its default");
    let after = client
        .alter_topic_config("t", HashMap::new(), vec!["max.message.bytes".to_string()])
        .await?;
    ensure!(!after.contains_key("max.message.bytes") && after["retention.ms"] == "3600000");
    // The default (1 MiB) admits 4 KiB; the two records before are still there.
    let r = client.produce("t", 0, batch(4096), Acks::All).await?;
    ensure!(r.base_offset == 1, "offset {}", r.base_offset);
    Ok(())
}

/// Issue 4: the producer compresses batches with any of Kafka's codecs; the
/// broker stores them as sent; consumers (and ListOffsets by time) read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_batches_round_trip_through_the_cli_and_client() -> Result<()> {
    let cluster = TestCluster::start(1).await?;
    let client = cluster.client().await?;
    client.create_topic("z", 1, 1, HashMap::new()).await?;
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        let mut child = Command::new(cairn_bin())
            .args(["produce", "z", "--compression", codec, "--partition", "0"])
            .args(["--bootstrap", &cluster.bootstrap().join(",")])
            .stdin(std::process::Stdio::piped())
            .spawn()?;
        {
            use std::io::Write;
            let stdin = child.stdin.as_mut().expect("stdin");
            for i in 0..50 {
                writeln!(stdin, "{codec} record {i} potassium 4.{i}")?;
            }
        }
        ensure!(
            child.wait()?.success(),
            "produce --compression {codec} failed"
        );
    }
    // The RF1 partition now idles past its 500 ms leader lease: a sole voter
    // is its own quorum and must still serve reads (this failed once).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let got = client.fetch_records("z", 0, 0, 1 << 20, 0).await?;
    ensure!(
        got.records.len() == 200,
        "read {} records",
        got.records.len()
    );
    for (i, r) in got.records.iter().enumerate() {
        let want = format!(
            "{} record {} potassium 4.{}",
            codecs[i / 50],
            i % 50,
            i % 50
        );
        ensure!(
            r.offset == i as i64 && r.value.as_deref() == Some(want.as_bytes()),
            "record {i}: {r:?}"
        );
    }
    // ListOffsets by time looks inside compressed batches too.
    let ts = got.records[77].timestamp_ms;
    let at = client
        .list_offsets("z", 0, cairn_client::OffsetSpec::Timestamp(ts))
        .await?;
    ensure!(at.offset <= 77 && got.records[at.offset as usize].timestamp_ms >= ts);
    Ok(())
}
