//! Mirror links between two real clusters (issue 14): offsets, batches and
//! records identical on both sides, nothing lost or doubled when the
//! target's or the source's leader is killed mid-stream, read-only until
//! promoted, group offsets copied, failback by re-seeding.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use anyhow::ensure;
use anyhow::Context;
use anyhow::Result;
use bytes::Bytes;
use cairn_client::proto::MirrorLinkConfig;
use cairn_client::Acks;
use cairn_client::Client;
use cairn_client::ErrorCode;
use cairn_client::OwnedRecord;

use crate::cluster::cairn_bin;
use crate::cluster::TestCluster;

const TOPIC: &str = "orders";
const PARTITIONS: u32 = 2;

fn link(name: &str, source: &TestCluster) -> MirrorLinkConfig {
    MirrorLinkConfig {
        name: name.into(),
        source_bootstrap: source.bootstrap(),
        topics_include: vec!["orders*".into()],
        groups_include: vec!["billing".into()],
        ..MirrorLinkConfig::default()
    }
}

/// Produces `n` records (keys `prefix-i`) in batches of `per_batch`,
/// acks=all; answers how many were acknowledged.
async fn produce(client: &Client, prefix: &str, n: usize, per_batch: usize) -> Result<usize> {
    let mut acked = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(per_batch) {
        let records: Vec<OwnedRecord> = chunk
            .iter()
            .map(|i| OwnedRecord {
                partition: Some(*i as u32 % PARTITIONS),
                key: Some(Bytes::from(format!("{prefix}-{i}"))),
                value: Some(Bytes::from(format!("value {i} of {prefix}"))),
                headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
                timestamp_ms: Some(1_700_000_000_000 + *i as i64),
            })
            .collect();
        for o in client.produce_records(TOPIC, &records, Acks::All).await? {
            if o.result.is_ok() {
                acked += o.record_indices.len();
            }
        }
    }
    Ok(acked)
}

/// Every batch of a partition from offset 0: (base offset, offset count,
/// record count, CRC). The CRC covers everything of a batch but its base
/// offset and leader epoch: equal CRCs are equal records, timestamps,
/// keys, values, headers, producer ids and sequences.
async fn batches(
    client: &Client,
    topic: &str,
    partition: u32,
) -> Result<Vec<(i64, i64, i32, u32)>> {
    let hw = client
        .list_offsets(topic, partition, cairn_client::OffsetSpec::Latest)
        .await?
        .offset as u64;
    let mut out = Vec::new();
    let mut next = client
        .list_offsets(topic, partition, cairn_client::OffsetSpec::Earliest)
        .await?
        .offset as u64;
    while next < hw {
        let resp = client.fetch(topic, partition, next, 1 << 20, 0).await?;
        for b in cairn_record::split_batches(&resp.records) {
            let h = cairn_record::RecordBatchHeader::parse(b?)?;
            if h.base_offset as u64 + h.offset_count() as u64 <= next {
                continue;
            }
            out.push((h.base_offset, h.offset_count(), h.records_count, h.crc));
            next = (h.base_offset + h.offset_count()) as u64;
        }
    }
    Ok(out)
}

async fn high_watermarks(client: &Client, topic: &str) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        out.push(
            client
                .list_offsets(topic, p, cairn_client::OffsetSpec::Latest)
                .await?
                .offset as u64,
        );
    }
    Ok(out)
}

/// Waits until the target's partitions end where the source's do.
async fn wait_mirrored(source: &Client, target: &Client, timeout: Duration) -> Result<Vec<u64>> {
    let deadline = Instant::now() + timeout;
    let want = high_watermarks(source, TOPIC).await?;
    loop {
        match high_watermarks(target, TOPIC).await {
            Ok(have) if have == want => return Ok(want),
            Ok(have) if Instant::now() > deadline => {
                bail!("the mirror ends at {have:?}, the source at {want:?}")
            }
            Err(e) if Instant::now() > deadline => return Err(e),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Kafka DeleteRecords v0 of `topic`/`partition` below `offset` at the
/// partition's leader in `cluster`: the partition's error code.
async fn kafka_delete_records(
    cluster: &TestCluster,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<i16> {
    use crate::kafka_security::frame;
    use crate::kafka_security::read_frame;
    use tokio::io::AsyncWriteExt;
    let mut body = 1i32.to_be_bytes().to_vec();
    body.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&offset.to_be_bytes());
    body.extend_from_slice(&5000i32.to_be_bytes());
    let leader = leader(&cluster.client().await?, partition as usize).await?;
    let addresses = cluster.kafka_bootstrap();
    let address = addresses
        .split(',')
        .nth(cluster.node_index(leader))
        .context("the leader's Kafka address")?;
    let mut s = tokio::net::TcpStream::connect(address).await?;
    s.write_all(&frame(21, 0, 7, &body)).await?;
    let answer = read_frame(&mut s).await?;
    // correlation, throttle, topics count, name, partitions count,
    // partition, low watermark, error code.
    let at = 4 + 4 + 4 + 2 + topic.len() + 4 + 4 + 8;
    let code = answer
        .get(at..at + 2)
        .context("short DeleteRecords answer")?;
    Ok(i16::from_be_bytes([code[0], code[1]]))
}

/// Two one-node clusters, A and B, their clients, and the topic in A.
async fn two_regions() -> Result<(TestCluster, TestCluster, Client, Client)> {
    let a = TestCluster::start(1).await?;
    let b = TestCluster::start(1).await?;
    let ca = a.client().await?;
    let cb = b.client().await?;
    ca.create_topic(TOPIC, PARTITIONS, 1, HashMap::new())
        .await?;
    Ok((a, b, ca, cb))
}

/// Produces rounds of `per_round` records to `client` until `stop`;
/// answers how many were acknowledged.
fn spawn_writer(
    client: &Client,
    stop: &Arc<AtomicBool>,
    per_round: usize,
    per_batch: usize,
) -> tokio::task::JoinHandle<usize> {
    let (client, stop) = (client.clone(), stop.clone());
    tokio::spawn(async move {
        let mut round = 0;
        let mut acked = 0;
        while !stop.load(Ordering::Relaxed) {
            acked += produce(&client, &format!("w{round}"), per_round, per_batch)
                .await
                .unwrap_or(0);
            round += 1;
        }
        acked
    })
}

async fn leader(client: &Client, partition: usize) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(t) = client.describe_topic(TOPIC).await {
            if let Some(l) = t.partitions.get(partition).and_then(|p| p.leader) {
                return Ok(l);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{TOPIC}/{partition} has no leader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_keeps_the_sources_offsets_through_leader_kills_and_promotes() -> Result<()> {
    let mut source = TestCluster::start(3).await?;
    let mut target = TestCluster::start(3).await?;
    let src = source.client().await?;
    let dst = target.client().await?;
    src.create_topic(
        TOPIC,
        PARTITIONS,
        3,
        HashMap::from([("retention.ms".to_string(), "-1".to_string())]),
    )
    .await?;
    assert_eq!(produce(&src, "a", 400, 20).await?, 400);
    src.commit_offsets(
        "billing",
        vec![cairn_client::proto::OffsetCommit {
            topic: TOPIC.into(),
            partition: 0,
            offset: 123,
            metadata: "m".into(),
        }],
    )
    .await?;

    dst.create_mirror_link(link("dr", &source)).await?;
    wait_mirrored(&src, &dst, Duration::from_secs(60))
        .await
        .context("first copy")?;
    // Configs came along; the topic is read-only here.
    let t = dst.describe_topic(TOPIC).await?;
    assert_eq!(
        t.configs.get("retention.ms").map(String::as_str),
        Some("-1")
    );
    let refused = dst
        .produce_records(
            TOPIC,
            &[OwnedRecord {
                partition: Some(0),
                value: Some(Bytes::from_static(b"nope")),
                ..OwnedRecord::default()
            }],
            Acks::All,
        )
        .await?;
    let e = refused[0]
        .result
        .as_ref()
        .expect_err("a mirror topic is read-only");
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");
    assert!(e.to_string().contains("read-only mirror"), "{e}");
    // Kafka's DeleteRecords on a mirror topic is refused too: the log start
    // stays where the source's is.
    assert_eq!(kafka_delete_records(&target, TOPIC, 0, 10).await?, 42);
    assert_eq!(
        dst.list_offsets(TOPIC, 0, cairn_client::OffsetSpec::Earliest)
            .await?
            .offset,
        0
    );

    // Producers keep writing to the source while the target's leader of
    // partition 0 and the source's leader of partition 1 are killed -9 and
    // restarted.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(&src, &stop, 40, 10);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = target.node_index(leader(&dst, 0).await?);
    target.kill(t0)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    target.start_node(t0)?;
    let s1 = source.node_index(leader(&src, 1).await?);
    source.kill(s1)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    source.start_node(s1)?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await?;
    assert!(acked > 0, "the writer got nothing acknowledged");
    source.wait_ready(Duration::from_secs(30)).await?;
    target.wait_ready(Duration::from_secs(30)).await?;

    let ends = wait_mirrored(&src, &dst, Duration::from_secs(60))
        .await
        .context("after the kills")?;
    for p in 0..PARTITIONS {
        let a = batches(&src, TOPIC, p).await?;
        let b = batches(&dst, TOPIC, p).await?;
        assert!(!a.is_empty());
        assert_eq!(
            a, b,
            "partition {p}: the mirror's batches differ from the source's"
        );
    }

    // Group offsets were copied (no members here).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let offsets = dst.fetch_offsets("billing").await.unwrap_or_default();
        if offsets
            .iter()
            .any(|o| o.topic == TOPIC && o.partition == 0 && o.offset == 123)
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("group offsets not mirrored: {offsets:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Status, through the CLI, says caught up with no lag.
    let out = std::process::Command::new(cairn_bin())
        .args(["mirror", "status", "dr", "--format", "json", "--bootstrap"])
        .arg(target.bootstrap().join(","))
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let parts = status["partitions"].as_array().context("partitions")?;
    assert_eq!(parts.len(), PARTITIONS as usize, "{status}");
    for p in parts {
        assert_eq!(p["lag_records"], 0, "{status}");
        assert_eq!(
            p["high_watermark"].as_u64(),
            Some(ends[p["partition"].as_u64().unwrap() as usize]),
            "{status}"
        );
    }

    // A link with mirror topics is not deleted; promoted, the topic takes
    // writes after the source's last offset.
    let e = dst.delete_mirror_link("dr").await.unwrap_err();
    assert!(e.to_string().contains("promote or delete"), "{e}");
    assert_eq!(
        dst.promote_mirror_topics("dr", &[]).await?,
        vec![TOPIC.to_string()]
    );
    // The promotion answers once every live node applied it: the first
    // produce after it is taken, whichever node leads the partition.
    let written = dst
        .produce_records(
            TOPIC,
            &[OwnedRecord {
                partition: Some(0),
                value: Some(Bytes::from_static(b"after promotion")),
                ..OwnedRecord::default()
            }],
            Acks::All,
        )
        .await?;
    let base = match &written[0].result {
        Ok(r) => r.base_offset,
        Err(e) => bail!("produce right after promotion: {e}"),
    };
    assert_eq!(base as u64, ends[0]);
    dst.delete_mirror_link("dr").await?;
    Ok(())
}

/// Failback: the old primary, back, is re-seeded from the promoted side and
/// ends with exactly its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failback_reseeds_the_old_primary_from_the_promoted_side() -> Result<()> {
    let (a, b, ca, cb) = two_regions().await?;
    produce(&ca, "a", 100, 10).await?;
    cb.create_mirror_link(link("from-a", &a)).await?;
    wait_mirrored(&ca, &cb, Duration::from_secs(60)).await?;
    // Region A goes on alone for a while (its last writes never reach B),
    // then B is promoted and written to.
    cb.pause_mirror_link("from-a", true).await?;
    produce(&ca, "lost", 10, 5).await?;
    cb.promote_mirror_topics("from-a", &[]).await?;
    produce(&cb, "b", 30, 5).await?;

    // A becomes B's mirror: its diverged copy is discarded.
    ca.create_mirror_link(link("from-b", &b)).await?;
    let r = ca.failback_mirror_link("from-b", &[]).await?;
    assert_eq!(r.reseeded, vec![TOPIC.to_string()]);
    assert_eq!(r.records_discarded, 110);
    wait_mirrored(&cb, &ca, Duration::from_secs(60)).await?;
    for p in 0..PARTITIONS {
        assert_eq!(batches(&cb, TOPIC, p).await?, batches(&ca, TOPIC, p).await?);
    }

    // A primary again (a planned switch: B's producers stopped, A caught
    // up): A's copies are promoted and written to, and B becomes A's mirror
    // again through the link it had.
    ca.promote_mirror_topics("from-b", &[]).await?;
    produce(&ca, "a-again", 20, 5).await?;
    let r = cb.failback_mirror_link("from-a", &[]).await?;
    assert_eq!(r.reseeded, vec![TOPIC.to_string()]);
    // B paused its link to A before its promotion: resumed, it copies again.
    cb.pause_mirror_link("from-a", false).await?;
    wait_mirrored(&ca, &cb, Duration::from_secs(60)).await?;
    for p in 0..PARTITIONS {
        assert_eq!(batches(&ca, TOPIC, p).await?, batches(&cb, TOPIC, p).await?);
    }
    Ok(())
}

/// Whether a PLAIN login as `user` succeeds at `cluster`'s Kafka listener.
async fn logs_in(cluster: &TestCluster, user: &str, password: &str) -> Result<bool> {
    let mut s = tokio::net::TcpStream::connect(cluster.kafka_bootstrap()).await?;
    let answer = crate::kafka_security::plain_login(&mut s, user, password).await?;
    Ok(answer[4..6] == [0, 0])
}

/// Waits until `check` holds, or fails naming `what`.
async fn wait_until<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A link with security sync keeps the target's copy of the source's users,
/// ACL bindings and roles equal to the source's: a user created in A logs
/// in to B with the same password, a password changed or a user, binding or
/// role dropped in A is changed or dropped in B, and B's own users and
/// bindings are never touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_copies_users_acls_and_roles_and_drops_what_the_source_drops() -> Result<()> {
    use cairn_client::proto::alter_role_request::Change;
    use cairn_client::proto::AclBinding;
    use cairn_client::proto::AclFilter;
    use cairn_client::proto::AclList;
    use cairn_client::proto::AlterRoleRequest;
    use cairn_client::proto::ScramDeletion;
    let a = TestCluster::start(1).await?;
    let b = TestCluster::new(1)?
        .with_env("CAIRN_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
        .started_for_test()
        .await?;
    let ca = a.client().await?;
    let cb = b.client().await?;
    let user = |bootstrap: Vec<String>, name: &str, password: &str| {
        crate::kafka_security::create_user_on(&bootstrap.join(","), name, password)
    };
    let binding = |who: &str, topic: &str| AclBinding {
        principal: who.into(),
        host: "*".into(),
        resource_type: "TOPIC".into(),
        resource_name: topic.into(),
        pattern_type: "LITERAL".into(),
        operation: "READ".into(),
        permission: "ALLOW".into(),
    };
    user(a.bootstrap(), "alice", "alice-1")?;
    user(a.bootstrap(), "carol", "carol-1")?;
    ca.create_acls(vec![binding("User:alice", "orders")])
        .await?;
    ca.alter_role(AlterRoleRequest {
        role: "nurses".into(),
        change: Some(Change::AddAcls(AclList {
            acls: vec![binding("", "lab")],
        })),
    })
    .await?;
    // B's own: a user of the same name as A's carol, and a binding.
    user(b.bootstrap(), "carol", "carol-in-b")?;
    cb.create_acls(vec![binding("User:local", "orders")])
        .await?;

    cb.create_mirror_link(MirrorLinkConfig {
        sync_acls: true,
        ..link("dr", &a)
    })
    .await?;
    wait_until("alice logs in to B with A's password", || {
        logs_in(&b, "alice", "alice-1")
    })
    .await?;
    ensure!(!logs_in(&b, "alice", "wrong").await?);
    // B's carol is B's own: A's does not replace it.
    ensure!(logs_in(&b, "carol", "carol-in-b").await?);
    ensure!(!logs_in(&b, "carol", "carol-1").await?);
    let acls = cb.list_acls(AclFilter::default()).await?;
    ensure!(acls.contains(&binding("User:alice", "orders")), "{acls:?}");
    ensure!(acls.contains(&binding("User:local", "orders")), "{acls:?}");
    let roles = cb.list_roles().await?;
    ensure!(roles.iter().any(|r| r.role == "nurses"), "{roles:?}");

    // A changes alice's password, drops its binding and role, then alice.
    user(a.bootstrap(), "alice", "alice-2")?;
    wait_until("alice's new password works in B", || {
        logs_in(&b, "alice", "alice-2")
    })
    .await?;
    ensure!(!logs_in(&b, "alice", "alice-1").await?);
    ca.delete_acls(AclFilter {
        principal: "User:alice".into(),
        ..AclFilter::default()
    })
    .await?;
    ca.alter_role(AlterRoleRequest {
        role: "nurses".into(),
        change: Some(Change::Delete(true)),
    })
    .await?;
    ca.alter_users(
        ["SCRAM-SHA-256", "SCRAM-SHA-512"]
            .map(|m| ScramDeletion {
                user: "alice".into(),
                mechanism: m.into(),
            })
            .to_vec(),
        vec![],
    )
    .await?;
    wait_until(
        "alice, her binding and the role are gone from B",
        || async {
            let acls = cb.list_acls(AclFilter::default()).await?;
            let roles = cb.list_roles().await?;
            let users = cb.describe_users(vec![]).await?;
            Ok(!acls.contains(&binding("User:alice", "orders"))
                && !roles.iter().any(|r| r.role == "nurses")
                && !users.iter().any(|u| u.user == "alice"))
        },
    )
    .await?;
    ensure!(!logs_in(&b, "alice", "alice-2").await?);
    // B's own are still there.
    ensure!(logs_in(&b, "carol", "carol-in-b").await?);
    let acls = cb.list_acls(AclFilter::default()).await?;
    ensure!(acls.contains(&binding("User:local", "orders")), "{acls:?}");
    Ok(())
}

/// A network cut between the regions mid-stream: the link reaches the
/// source only through the WAN emulator (40 ms round trip), which first
/// holds every byte for 3 s (pulls in flight stall, then their stale
/// answers arrive) and then closes every connection at once. The mirror
/// falls behind while cut and then ends with exactly the source's batches:
/// nothing lost, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_resumes_exactly_after_network_cuts_between_regions() -> Result<()> {
    use cairn_chaos::WanProxy;
    use cairn_chaos::WanSettings;
    let (a, _b, ca, cb) = two_regions().await?;
    let mut proxies = Vec::new();
    let mut address_map = HashMap::new();
    for advertised in a.bootstrap() {
        let p = WanProxy::start(
            "127.0.0.1:0".parse()?,
            advertised.parse()?,
            WanSettings::rtt(Duration::from_millis(40)),
        )
        .await?;
        address_map.insert(advertised, p.listen.to_string());
        proxies.push(p);
    }
    cb.create_mirror_link(MirrorLinkConfig {
        source_bootstrap: address_map.values().cloned().collect(),
        source_address_map: address_map.clone(),
        ..link("dr", &a)
    })
    .await?;
    produce(&ca, "before", 100, 10).await?;
    wait_mirrored(&ca, &cb, Duration::from_secs(60))
        .await
        .context("first copy")?;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(&ca, &stop, 20, 5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Cut: every byte held, no new connection.
    for p in &proxies {
        p.control().cut(true);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (source_end, mirror_end) = (
        high_watermarks(&ca, TOPIC).await?,
        high_watermarks(&cb, TOPIC).await?,
    );
    ensure!(
        mirror_end.iter().sum::<u64>() < source_end.iter().sum::<u64>(),
        "the cut did not hold the mirror back: {mirror_end:?} vs {source_end:?}"
    );
    for p in &proxies {
        p.control().cut(false);
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Reset: every connection closed mid-stream.
    for p in &proxies {
        p.control().reset();
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await?;
    ensure!(acked > 0, "the writer got nothing acknowledged");

    wait_mirrored(&ca, &cb, Duration::from_secs(60))
        .await
        .context("after the cuts")?;
    for p in 0..PARTITIONS {
        let source = batches(&ca, TOPIC, p).await?;
        ensure!(!source.is_empty());
        ensure!(
            source == batches(&cb, TOPIC, p).await?,
            "partition {p}: the mirror's batches differ from the source's"
        );
    }
    Ok(())
}
