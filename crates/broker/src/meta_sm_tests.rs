//! The metadata state machine's snapshots (reliability finding 7).

use std::collections::BTreeSet;

use cairn_metadata::MetaCommand;
use cairn_raft::Entry;
use cairn_raft::LogId;
use cairn_raft::Request;
use cairn_raft::TypeConfig;
use cairn_storage::NodeStore;
use cairn_storage::StoreOptions;
use openraft::entry::RaftEntry;
use openraft::storage::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;
use openraft::vote::RaftLeaderIdExt;
use openraft::RaftTypeConfig;

use super::MetaStateMachine;

fn log_id(index: u64) -> LogId {
    LogId::new(
        <TypeConfig as RaftTypeConfig>::LeaderId::new_committed(1, 1),
        index,
    )
}

fn command(index: u64, cmd: MetaCommand) -> Entry {
    Entry::new_normal(log_id(index), Request::Meta(cmd))
}

fn open_store(dir: &std::path::Path) -> NodeStore {
    NodeStore::open(
        dir,
        StoreOptions {
            write_buffer_mb: 4,
            block_cache_mb: 8,
            ..StoreOptions::default()
        },
    )
    .expect("open store")
}

/// Applies `entries` as a follower does: nobody waits for the answers.
async fn apply(sm: &mut MetaStateMachine, entries: Vec<Entry>) {
    let stream = futures::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
    sm.apply(stream).await.expect("apply");
}

/// The repro: a snapshot builder taken at A, an entry applied at
/// A+1 before the snapshot is built, then a restart from that snapshot
/// re-applies A+1. The producer-id counter must count that block once.
#[tokio::test]
async fn a_snapshot_holds_exactly_the_entries_up_to_its_label() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(dir.path());
    let (mut sm, _view) = MetaStateMachine::open(store.clone()).expect("open");
    let members = openraft::Membership::<u64, openraft::BasicNode>::new_with_defaults(
        vec![BTreeSet::from([1u64])],
        [],
    );
    apply(
        &mut sm,
        vec![
            Entry::new_membership(log_id(1), members),
            command(
                2,
                MetaCommand::InitCluster {
                    cluster_id: "c".into(),
                },
            ),
        ],
    )
    .await;

    // openraft takes the builder in the state-machine worker, then builds
    // in a task of its own while the worker goes on applying.
    let mut builder = sm.get_snapshot_builder().await;
    let alloc = command(3, MetaCommand::AllocateProducerIds { count: 1000 });
    apply(&mut sm, vec![alloc.clone()]).await;
    let snapshot = builder.build_snapshot().await.expect("build");
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(2)));

    // Restart: the snapshot is loaded and the log after it re-applied.
    drop(sm);
    let (mut sm, view) = MetaStateMachine::open(store).expect("reopen");
    let (applied, _) = sm.applied_state().await.expect("applied state");
    assert_eq!(applied, Some(log_id(2)), "the snapshot's label");
    apply(&mut sm, vec![alloc]).await;
    let next = view.read(|s| s.next_producer_id) - cairn_metadata::producer_id_base("c");
    assert_eq!(
        next, 1000,
        "one block of 1000 producer ids was allocated, but the counter is at {next}: \
         the snapshot labelled 2 already held entry 3"
    );
}
