//! Group commit: one WAL fsync serves many appends of many groups.

use openraft::storage::RaftLogStorage;
use openraft::RaftLogReader;

use crate::common::*;

const GROUPS: u64 = 8;
const APPENDS_PER_GROUP: u64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_of_many_groups_share_fsyncs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = open(dir.path());
    let before = node.stats();
    assert_eq!((before.wal_syncs, before.sync_waiters), (0, 0));

    let mut tasks = Vec::new();
    for group in 0..GROUPS {
        let mut store: Store = node.log_store(group);
        tasks.push(tokio::spawn(async move {
            // Like openraft: issue appends back to back, collect the callbacks.
            let mut callbacks = Vec::new();
            for i in 1..=APPENDS_PER_GROUP {
                let (callback, done) = flushed();
                let payload = vec![group as u8; 100];
                store.append(vec![entry(1, i, &payload)], callback).await?;
                callbacks.push(done);
            }
            for done in callbacks {
                done.await?;
            }
            anyhow::Ok(store)
        }));
    }
    let mut stores = Vec::new();
    for task in tasks {
        stores.push(task.await??);
    }

    let appends = GROUPS * APPENDS_PER_GROUP;
    let stats = node.stats();
    assert_eq!(
        stats.sync_waiters, appends,
        "every callback was served by the syncer"
    );
    assert!(stats.wal_syncs >= 1);
    assert!(
        stats.wal_syncs < appends,
        "{} fsyncs for {appends} appends: no group commit",
        stats.wal_syncs
    );
    assert!(
        stats.rocksdb_wal_syncs >= stats.wal_syncs,
        "RocksDB counted fewer WAL syncs: {stats:?}"
    );

    for (group, store) in stores.iter_mut().enumerate() {
        let entries = store.try_get_log_entries(..).await?;
        assert_eq!(entries.len() as u64, APPENDS_PER_GROUP, "group {group}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sync_calls_share_fsyncs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = open(dir.path());
    let calls = 200u64;
    let results = futures::future::join_all((0..calls).map(|_| node.sync())).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stats = node.stats();
    assert_eq!(stats.sync_waiters, calls);
    assert!(
        stats.wal_syncs < calls,
        "{} fsyncs for {calls} sync() calls",
        stats.wal_syncs
    );
    Ok(())
}

/// The callback of an append never fires before an fsync happened.
#[tokio::test]
async fn append_callback_fires_after_an_fsync() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = open(dir.path());
    let mut store: Store = node.log_store(3);
    let (callback, done) = flushed();
    store.append(vec![entry(1, 1, b"x")], callback).await?;
    // Readable as soon as append returns, whether or not it is durable yet.
    assert_eq!(store.try_get_log_entries(1..2).await?.len(), 1);
    done.await?;
    let stats = node.stats();
    assert!(
        stats.wal_syncs >= 1 && stats.rocksdb_wal_syncs >= 1,
        "{stats:?}"
    );
    assert_eq!(stats.sync_waiters, 1);
    Ok(())
}
