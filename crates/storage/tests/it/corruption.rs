//! Bad bytes on disk are reported as errors, never panics.

use std::io;
use std::path::Path;

use openraft::storage::RaftLogStorage;
use openraft::RaftLogReader;

use crate::common::*;

fn log_key(group: u64, index: u64) -> Vec<u8> {
    let mut key = group.to_be_bytes().to_vec();
    key.push(b'L');
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// Edit the closed store's RocksDB directly.
fn poke(path: &Path, f: impl FnOnce(&rocksdb::DB)) {
    let db = rocksdb::DB::open_default(path).expect("raw open");
    f(&db);
}

async fn store_with_entries(path: &Path, group: u64) -> anyhow::Result<()> {
    let node = open(path);
    let mut store: Store = node.log_store(group);
    append_durable(&mut store, (1..=5).map(|i| entry(1, i, b"good")).collect()).await?;
    Ok(())
}

fn assert_invalid_data(result: io::Result<impl std::fmt::Debug>) {
    match result {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}"),
        Ok(v) => panic!("expected a corruption error, got {v:?}"),
    }
}

#[tokio::test]
async fn garbage_entry_bytes_are_an_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    store_with_entries(dir.path(), 4).await?;
    poke(dir.path(), |db| {
        db.put(log_key(4, 3), b"\xff\xff\xff garbage").unwrap()
    });

    let node = open(dir.path());
    let mut store: Store = node.log_store(4);
    assert_invalid_data(store.try_get_log_entries(..).await);
    assert_invalid_data(store.try_get_log_entries(3..4).await);
    // Entries around the bad one still read.
    assert_eq!(store.try_get_log_entries(1..3).await?.len(), 2);
    assert_eq!(store.try_get_log_entries(4..).await?.len(), 2);
    // The error names the entry.
    let err = store.try_get_log_entries(3..=3).await.unwrap_err();
    assert!(err.to_string().contains("log entry 3 of group 4"), "{err}");
    Ok(())
}

#[tokio::test]
async fn garbage_last_entry_fails_get_log_state() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    store_with_entries(dir.path(), 4).await?;
    poke(dir.path(), |db| db.put(log_key(4, 5), b"").unwrap());
    let node = open(dir.path());
    let mut store: Store = node.log_store(4);
    assert_invalid_data(store.get_log_state().await);
    Ok(())
}

#[tokio::test]
async fn entry_under_the_wrong_index_is_an_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    store_with_entries(dir.path(), 4).await?;
    poke(dir.path(), |db| {
        let entry_2 = db.get(log_key(4, 2)).unwrap().unwrap();
        db.put(log_key(4, 6), entry_2).unwrap();
    });
    let node = open(dir.path());
    let mut store: Store = node.log_store(4);
    assert_invalid_data(store.try_get_log_entries(5..).await);
    assert_invalid_data(store.get_log_state().await);
    assert_eq!(store.try_get_log_entries(..6).await?.len(), 5);
    Ok(())
}

#[tokio::test]
async fn trailing_bytes_and_garbage_meta_are_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let node = open(dir.path());
        let mut store: Store = node.log_store(4);
        append_durable(&mut store, vec![entry(1, 1, b"x")]).await?;
        store.save_vote(&vote(1, 1)).await?;
    }
    poke(dir.path(), |db| {
        let mut bytes = db.get(log_key(4, 1)).unwrap().unwrap();
        bytes.push(0);
        db.put(log_key(4, 1), bytes).unwrap();
        let mut vote_key = 4u64.to_be_bytes().to_vec();
        vote_key.push(b'V');
        db.put(&vote_key, b"\xff").unwrap();
        let mut purged_key = 4u64.to_be_bytes().to_vec();
        purged_key.push(b'P');
        db.put(&purged_key, b"\xff\xff").unwrap();
    });
    let node = open(dir.path());
    let mut store: Store = node.log_store(4);
    assert_invalid_data(store.try_get_log_entries(..).await);
    assert_invalid_data(store.read_vote().await);
    assert_invalid_data(store.get_log_state().await);
    Ok(())
}
