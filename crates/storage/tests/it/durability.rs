//! What was acknowledged is there after reopening the store.

use openraft::storage::RaftLogStorage;
use openraft::RaftLogReader;

use crate::common::*;

#[tokio::test]
async fn appended_entries_survive_reopen() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let node = open(dir.path());
        let mut store: Store = node.log_store(5);
        append_durable(
            &mut store,
            (1..=10).map(|i| entry(1, i, b"payload")).collect(),
        )
        .await?;
        append_durable(&mut store, vec![entry(2, 11, b"last")]).await?;
    }
    let node = open(dir.path());
    let mut store: Store = node.log_store(5);
    let state = store.get_log_state().await?;
    assert_eq!(state.last_purged_log_id, None);
    assert_eq!(state.last_log_id, Some(log_id(2, 11)));
    let ids = log_ids(&mut store).await?;
    let mut want: Vec<_> = (1..=10).map(|i| log_id(1, i)).collect();
    want.push(log_id(2, 11));
    assert_eq!(ids, want);
    let last = store.try_get_log_entries(11..12).await?;
    assert_eq!(
        last[0].payload,
        openraft::EntryPayload::Normal(Request(b"last".to_vec()))
    );
    Ok(())
}

#[tokio::test]
async fn saved_vote_survives_reopen() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let syncs_before_vote;
    {
        let node = open(dir.path());
        let mut store: Store = node.log_store(1);
        syncs_before_vote = node.stats().rocksdb_wal_syncs;
        store.save_vote(&vote(4, 2)).await?;
        // save_vote returned only after RocksDB synced the WAL.
        assert!(node.stats().rocksdb_wal_syncs > syncs_before_vote);
        assert_eq!(node.stats().sync_waiters, 1);
    }
    let node = open(dir.path());
    let mut store: Store = node.log_store(1);
    assert_eq!(store.read_vote().await?, Some(vote(4, 2)));
    assert_eq!(node.log_store::<TestConfig>(2).read_vote().await?, None);
    Ok(())
}

#[tokio::test]
async fn purge_survives_reopen_consistently() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let node = open(dir.path());
        let mut store: Store = node.log_store(9);
        append_durable(&mut store, (1..=20).map(|i| entry(1, i, b"p")).collect()).await?;
        store.purge(log_id(1, 12)).await?;
        node.sync().await?;
    }
    let node = open(dir.path());
    let mut store: Store = node.log_store(9);
    let state = store.get_log_state().await?;
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 12)));
    assert_eq!(state.last_log_id, Some(log_id(1, 20)));
    assert_eq!(
        log_ids(&mut store).await?,
        (13..=20).map(|i| log_id(1, i)).collect::<Vec<_>>()
    );
    assert!(store.try_get_log_entries(..=12).await?.is_empty());

    // Purging everything leaves last_log_id at the purge point.
    store.purge(log_id(1, 20)).await?;
    drop(store);
    drop(node);
    let node = open(dir.path());
    let mut store: Store = node.log_store(9);
    let state = store.get_log_state().await?;
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 20)));
    assert_eq!(state.last_log_id, Some(log_id(1, 20)));
    assert!(log_ids(&mut store).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn truncate_and_committed_survive_reopen() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let node = open(dir.path());
        let mut store: Store = node.log_store(2);
        append_durable(&mut store, (1..=10).map(|i| entry(1, i, b"t")).collect()).await?;
        store.truncate_after(Some(log_id(1, 6))).await?;
        append_durable(&mut store, vec![entry(3, 7, b"new")]).await?;
        store.save_committed(Some(log_id(1, 5))).await?;
        node.sync().await?;
    }
    let node = open(dir.path());
    let mut store: Store = node.log_store(2);
    let mut want: Vec<_> = (1..=6).map(|i| log_id(1, i)).collect();
    want.push(log_id(3, 7));
    assert_eq!(log_ids(&mut store).await?, want);
    assert_eq!(store.read_committed().await?, Some(log_id(1, 5)));
    store.save_committed(None).await?;
    assert_eq!(store.read_committed().await?, None);
    Ok(())
}
