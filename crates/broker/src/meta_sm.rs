//! The metadata group's state machine: [`MetadataState`] in memory, with
//! snapshots persisted in the node's store.
//!
//! On restart the last snapshot is loaded and openraft re-applies the log
//! after it, so nothing but the snapshot needs to be written on apply.

use std::io;
use std::sync::Arc;
use std::sync::RwLock;

use cairn_metadata::MetaCommand;
use cairn_metadata::MetadataState;
use cairn_metadata::METADATA_GROUP;
use cairn_raft::decode;
use cairn_raft::encode;
use cairn_raft::LogId;
use cairn_raft::Request;
use cairn_raft::Response;
use cairn_raft::Snapshot;
use cairn_raft::SnapshotData;
use cairn_raft::SnapshotMeta;
use cairn_raft::StoredMembership;
use cairn_raft::TypeConfig;
use cairn_storage::NodeStore;
use cairn_storage::StateBatch;
use futures::Stream;
use futures::TryStreamExt;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use openraft::EntryPayload;
use openraft::RaftSnapshotBuilder;
use tokio::sync::watch;

const SNAPSHOT_KEY: &[u8] = b"snapshot";

/// The applied metadata, shared with every reader on the node.
pub struct MetaView {
    state: RwLock<MetadataState>,
    version: watch::Sender<u64>,
}

impl MetaView {
    fn new(state: MetadataState) -> Self {
        Self {
            state: RwLock::new(state),
            version: watch::Sender::new(0),
        }
    }

    /// Runs `f` on the current state.
    pub fn read<T>(&self, f: impl FnOnce(&MetadataState) -> T) -> T {
        match self.state.read() {
            Ok(s) => f(&s),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Bumped after every applied batch of entries that changed more than
    /// consumer groups (nodes, topics, assignments: what the reconciler and
    /// the registration loop act on), so offset commits wake no one.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn write<T>(&self, notify: bool, f: impl FnOnce(&mut MetadataState) -> T) -> T {
        let out = match self.state.write() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        };
        if notify {
            self.version.send_modify(|v| *v += 1);
        }
        out
    }
}

pub struct MetaStateMachine {
    store: NodeStore,
    view: Arc<MetaView>,
    applied: Option<LogId>,
    membership: StoredMembership,
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl MetaStateMachine {
    pub fn open(store: NodeStore) -> Result<(Self, Arc<MetaView>), io::Error> {
        let snapshot: Option<(SnapshotMeta, Vec<u8>)> = match store
            .state_get(METADATA_GROUP, SNAPSHOT_KEY)
            .map_err(io_err)?
        {
            Some(bytes) => Some(decode(&bytes).map_err(io_err)?),
            None => None,
        };
        let (state, applied, membership) = match &snapshot {
            Some((meta, data)) => (
                serde_json::from_slice(data).map_err(io_err)?,
                meta.last_log_id,
                meta.last_membership.clone(),
            ),
            None => (MetadataState::default(), None, StoredMembership::default()),
        };
        let view = Arc::new(MetaView::new(state));
        Ok((
            Self {
                store,
                view: view.clone(),
                applied,
                membership,
                snapshot,
            },
            view,
        ))
    }
}

/// Stores a snapshot and syncs it: logs up to it may be purged after this.
async fn persist_snapshot(
    store: &NodeStore,
    meta: &SnapshotMeta,
    data: &[u8],
) -> Result<(), io::Error> {
    let mut batch = StateBatch::new();
    batch.put(
        METADATA_GROUP,
        SNAPSHOT_KEY,
        &encode(&(meta.clone(), data.to_vec())).map_err(io_err)?,
    );
    store.write(batch).map_err(io_err)?;
    store.sync().await.map_err(io_err)?;
    Ok(())
}

/// Builds a snapshot of the state exactly as it was when openraft asked for
/// the builder: a copy taken then, labelled with the last entry applied
/// then. openraft builds it in a task of its own while later entries keep
/// applying to the live view; serializing the live view would label a
/// state holding entries A+1..A+k as A, and a node restarted from it (or
/// a follower installing it) would apply those entries twice (reliability
/// finding 7). The copy is taken in the state-machine worker, between two
/// applies, so nothing can interleave; it costs one clone of the state,
/// less than the serialization every snapshot pays anyway.
pub struct MetaSnapshotBuilder {
    store: NodeStore,
    state: MetadataState,
    applied: Option<LogId>,
    membership: StoredMembership,
}

impl RaftSnapshotBuilder<TypeConfig> for MetaSnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let data = serde_json::to_vec(&self.state).map_err(io_err)?;
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
        };
        persist_snapshot(&self.store, &meta, &data).await?;
        Ok(Snapshot {
            meta,
            snapshot: std::io::Cursor::new(data),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MetaStateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = MetaSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        let mut replies = Vec::new();
        let mut commands = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            self.applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Normal(Request::Meta(cmd)) => commands.push((cmd, responder)),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    if let Some(r) = responder {
                        replies.push((r, Response::WrongGroup));
                    }
                }
                EntryPayload::Blank
                | EntryPayload::Normal(Request::Produce(_) | Request::Trim { .. }) => {
                    if let Some(r) = responder {
                        replies.push((r, Response::WrongGroup));
                    }
                }
            }
        }
        if !commands.is_empty() {
            let notify = commands.iter().any(|(cmd, _)| {
                !matches!(
                    cmd,
                    MetaCommand::CommitOffsets { .. }
                        | MetaCommand::CommitBatch(_)
                        | MetaCommand::CommitBatchWithEpochs(_)
                        | MetaCommand::PutGroup { .. }
                        | MetaCommand::PutGroupWithInstances { .. }
                        | MetaCommand::DeleteGroup { .. }
                        | MetaCommand::AllocateProducerIds { .. }
                )
            });
            self.view.write(notify, |state| {
                for (cmd, responder) in commands {
                    let resp = state.apply(cmd);
                    if let Some(r) = responder {
                        replies.push((r, Response::Meta(resp)));
                    }
                }
            });
        }
        for (r, resp) in replies {
            r.send(resp);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        MetaSnapshotBuilder {
            store: self.store.clone(),
            state: self.view.read(MetadataState::clone),
            applied: self.applied,
            membership: self.membership.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        let state: MetadataState = serde_json::from_slice(&data).map_err(io_err)?;
        persist_snapshot(&self.store, meta, &data).await?;
        self.snapshot = Some((meta.clone(), data));
        self.view.write(true, |s| *s = state);
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    /// The last snapshot persisted. Read from the store, not `self.snapshot`:
    /// snapshots are built by a builder copy of this state machine, so the
    /// in-memory field would keep answering an older one (whose log openraft
    /// may already have purged) until a restart.
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        if let Some(bytes) = self
            .store
            .state_get(METADATA_GROUP, SNAPSHOT_KEY)
            .map_err(io_err)?
        {
            self.snapshot = Some(decode(&bytes).map_err(io_err)?);
        }
        Ok(self.snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: std::io::Cursor::new(data.clone()),
        }))
    }
}

#[cfg(test)]
#[path = "meta_sm_tests.rs"]
mod tests;
