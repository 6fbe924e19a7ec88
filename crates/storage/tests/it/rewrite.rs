//! `LogStore::rewrite_entries`: in-place replacement of committed entries
//! (log compaction) that never brings back a purged, truncated or deleted
//! entry.

use cairn_storage::StateBatch;
use openraft::storage::RaftLogStorage;
use openraft::RaftLogReader;

use crate::common::*;

async fn payloads(store: &mut Store) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
    Ok(store
        .try_get_log_entries(..)
        .await?
        .into_iter()
        .map(|e| match e.payload {
            openraft::EntryPayload::Normal(Request(b)) => (e.log_id.index, b),
            _ => (e.log_id.index, Vec::new()),
        })
        .collect())
}

#[tokio::test]
async fn rewrites_present_entries_with_state_and_skips_removed_ones() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = open(dir.path());
    let mut store: Store = node.log_store(1);
    store.save_vote(&vote(1, 1)).await?;
    append_durable(
        &mut store,
        (1..=6)
            .map(|i| entry(1, i, format!("old{i}").as_bytes()))
            .collect(),
    )
    .await?;
    store.purge(log_id(1, 2)).await?;
    store.truncate_after(Some(log_id(1, 5))).await?;

    let mut state = StateBatch::new();
    state.put(1, b"cleaned", b"5");
    let skipped = store.rewrite_entries(
        vec![
            entry(1, 1, b"new1"), // purged
            entry(1, 3, b"new3"),
            entry(2, 4, b"new4"), // another log id at this index
            entry(1, 5, b"new5"),
            entry(1, 6, b"new6"), // truncated
        ],
        state,
    )?;
    assert_eq!(skipped, vec![1, 4, 6]);
    assert_eq!(
        payloads(&mut store).await?,
        vec![
            (3, b"new3".to_vec()),
            (4, b"old4".to_vec()),
            (5, b"new5".to_vec())
        ]
    );
    assert_eq!(node.state_get(1, b"cleaned")?, Some(b"5".to_vec()));
    Ok(())
}

#[tokio::test]
async fn a_deleted_group_is_not_brought_back() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = open(dir.path());
    let mut store: Store = node.log_store(7);
    store.save_vote(&vote(1, 1)).await?;
    append_durable(&mut store, vec![entry(1, 1, b"a"), entry(1, 2, b"b")]).await?;
    node.delete_group(7)?;
    let mut state = StateBatch::new();
    state.put(7, b"cleaned", b"2");
    let skipped = store.rewrite_entries(vec![entry(1, 2, b"c")], state)?;
    assert_eq!(skipped, vec![2]);
    assert!(payloads(&mut store).await?.is_empty());
    assert_eq!(node.state_get(7, b"cleaned")?, None);
    assert!(!node.groups()?.contains(&7));
    Ok(())
}
