//! State-machine keyspace, group deletion, group listing, stats.

use std::ops::ControlFlow;

use cairn_storage::StateBatch;
use cairn_storage::NODE_GROUP;
use openraft::storage::RaftLogStorage;
use openraft::RaftLogReader;

use crate::common::*;

fn kv(k: &[u8], v: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (k.to_vec(), v.to_vec())
}

/// Offsets as 8-byte BE suffixes, as a Kafka index would store them.
fn off(o: u64) -> Vec<u8> {
    let mut s = b"idx/".to_vec();
    s.extend_from_slice(&o.to_be_bytes());
    s
}

#[tokio::test]
async fn state_keys_are_per_group_and_ordered() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = open(dir.path());
    let mut batch = StateBatch::new();
    for g in [1, 2, 3] {
        batch.put(g, b"a", format!("{g}a").as_bytes());
        batch.put(g, b"b", format!("{g}b").as_bytes());
        batch.put(g, b"c", format!("{g}c").as_bytes());
    }
    batch.put(NODE_GROUP, b"cluster_id", b"cairn-1");
    assert_eq!(batch.len(), 10);
    node.write(batch)?;

    assert_eq!(node.state_get(2, b"b")?, Some(b"2b".to_vec()));
    assert_eq!(node.state_get(4, b"b")?, None);
    assert_eq!(
        node.state_get(NODE_GROUP, b"cluster_id")?,
        Some(b"cairn-1".to_vec())
    );
    assert_eq!(
        node.state_scan(2, b"", b"\xff")?,
        vec![kv(b"a", b"2a"), kv(b"b", b"2b"), kv(b"c", b"2c")]
    );
    assert_eq!(node.state_scan(2, b"b", b"c")?, vec![kv(b"b", b"2b")]);
    assert_eq!(node.state_scan(2, b"c", b"b")?, vec![]);

    let mut seen = Vec::new();
    node.state_visit(3, b"a", None, |k, _| {
        seen.push(k.to_vec());
        if k == b"b" {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    assert_eq!(seen, [b"a".to_vec(), b"b".to_vec()]);

    let mut batch = StateBatch::new();
    batch.delete(2, b"a");
    batch.delete_range(3, b"a", b"c");
    node.write(batch)?;
    assert_eq!(
        node.state_scan(2, b"", b"\xff")?,
        vec![kv(b"b", b"2b"), kv(b"c", b"2c")]
    );
    assert_eq!(node.state_scan(3, b"", b"\xff")?, vec![kv(b"c", b"3c")]);
    assert_eq!(node.state_scan(1, b"", b"\xff")?.len(), 3);
    Ok(())
}

#[tokio::test]
async fn seek_prev_finds_the_largest_suffix_at_or_below() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = open(dir.path());
    let mut batch = StateBatch::new();
    for o in [100u64, 200, 300] {
        batch.put(5, &off(o), &o.to_le_bytes());
    }
    // Neighbours on both sides that must never be returned.
    batch.put(4, &off(150), b"group 4");
    batch.put(6, &off(50), b"group 6");
    node.write(batch)?;

    assert_eq!(
        node.state_seek_prev(5, &off(250))?,
        Some((off(200), 200u64.to_le_bytes().to_vec()))
    );
    assert_eq!(
        node.state_seek_prev(5, &off(200))?.map(|(k, _)| k),
        Some(off(200))
    );
    assert_eq!(
        node.state_seek_prev(5, &off(u64::MAX))?.map(|(k, _)| k),
        Some(off(300))
    );
    assert_eq!(node.state_seek_prev(5, &off(99))?, None);
    assert_eq!(node.state_seek_prev(6, &off(40))?, None);
    assert_eq!(node.state_seek_prev(7, &off(1000))?, None);
    Ok(())
}

#[tokio::test]
async fn delete_group_removes_only_that_group() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = open(dir.path());
    for g in [10, 11, 12] {
        let mut store: Store = node.log_store(g);
        append_durable(&mut store, (1..=5).map(|i| entry(1, i, b"x")).collect()).await?;
        store.save_vote(&vote(1, 1)).await?;
        store.purge(log_id(1, 2)).await?;
        let mut batch = StateBatch::new();
        batch.put(g, b"k", b"v");
        node.write(batch)?;
    }
    let mut batch = StateBatch::new();
    batch.put(20, b"state-only", b"v");
    node.write(batch)?;
    assert_eq!(node.groups()?, vec![10, 11, 12]);

    node.delete_group(11)?;
    assert_eq!(node.groups()?, vec![10, 12]);
    let mut gone: Store = node.log_store(11);
    let state = gone.get_log_state().await?;
    assert_eq!((state.last_purged_log_id, state.last_log_id), (None, None));
    assert_eq!(gone.read_vote().await?, None);
    assert_eq!(node.state_get(11, b"k")?, None);
    for g in [10, 12] {
        let mut store: Store = node.log_store(g);
        assert_eq!(store.try_get_log_entries(..).await?.len(), 3, "group {g}");
        assert_eq!(node.state_get(g, b"k")?, Some(b"v".to_vec()));
    }
    assert!(node.delete_group(NODE_GROUP).is_err());
    assert_eq!(node.state_get(20, b"state-only")?, Some(b"v".to_vec()));

    // Survives reopen (after a sync).
    node.sync().await?;
    drop((gone, node));
    let node = open(dir.path());
    assert_eq!(node.groups()?, vec![10, 12]);
    Ok(())
}

#[tokio::test]
async fn state_writes_survive_reopen_and_are_counted() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let node = open(dir.path());
        let mut batch = StateBatch::new();
        batch.put(1, b"key", &[7u8; 1000]);
        let user_bytes = batch.user_bytes();
        assert_eq!(user_bytes, (9 + 3 + 1000) as u64);
        node.write(batch)?;
        node.sync().await?;
        let stats = node.stats();
        assert_eq!(stats.user_bytes_written, user_bytes);
        assert!(stats.wal_bytes_written >= user_bytes, "{stats:?}");
        assert!(stats.db_bytes_written >= user_bytes, "{stats:?}");
        assert!(
            stats.write_amplification().is_some_and(|wa| wa >= 1.0),
            "{stats:?}"
        );
    }
    let node = open(dir.path());
    assert_eq!(node.state_get(1, b"key")?, Some(vec![7u8; 1000]));
    Ok(())
}
