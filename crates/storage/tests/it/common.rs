//! Test type config, a minimal in-memory state machine, and helpers.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;

use cairn_storage::LogStore;
use cairn_storage::NodeStore;
use cairn_storage::StoreOptions;
use futures::Stream;
use futures::TryStreamExt;
use openraft::alias::LogIdOf;
use openraft::alias::SnapshotMetaOf;
use openraft::alias::SnapshotOf;
use openraft::alias::StoredMembershipOf;
use openraft::entry::RaftEntry;
use openraft::storage::EntryResponder;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderIdExt;
use openraft::EntryPayload;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use openraft::RaftTypeConfig;
use serde::Deserialize;
use serde::Serialize;

/// Application request: opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request(pub Vec<u8>);

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Request({} bytes)", self.0.len())
    }
}

/// Application response: the index the request was applied at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response(pub u64);

openraft::declare_raft_types!(
    pub TestConfig:
        D = Request,
        R = Response,
);

pub type Entry = <TestConfig as RaftTypeConfig>::Entry;
pub type LogId = LogIdOf<TestConfig>;
pub type Vote = <TestConfig as RaftTypeConfig>::Vote;
pub type Store = LogStore<TestConfig>;

pub fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(
        <TestConfig as RaftTypeConfig>::LeaderId::new_committed(term, 1),
        index,
    )
}

pub fn entry(term: u64, index: u64, payload: &[u8]) -> Entry {
    Entry::new_normal(log_id(term, index), Request(payload.to_vec()))
}

pub fn vote(term: u64, node: u64) -> Vote {
    Vote::new(term, node)
}

pub fn open(path: &Path) -> NodeStore {
    NodeStore::open(path, small_options()).expect("open store")
}

/// Small memtables and caches so many stores can be open at once in tests.
pub fn small_options() -> StoreOptions {
    StoreOptions {
        write_buffer_mb: 4,
        block_cache_mb: 8,
        ..StoreOptions::default()
    }
}

/// An `IOFlushed` callback and a future of the result it is completed with.
pub fn flushed() -> (
    IOFlushed<TestConfig>,
    impl Future<Output = io::Result<()>> + Send,
) {
    let (tx, rx) = TestConfig::oneshot();
    let done = async move {
        rx.await
            .map_err(|_| io::Error::other("IOFlushed callback dropped without firing"))?
    };
    (IOFlushed::signal(tx), done)
}

/// Append and wait for the `IOFlushed` callback; its result is returned.
pub async fn append_durable(store: &mut Store, entries: Vec<Entry>) -> io::Result<()> {
    let (callback, done) = flushed();
    store.append(entries, callback).await?;
    done.await
}

/// Everything the store holds for a group: (last purged, last log id, entries' log ids).
pub async fn log_ids(store: &mut Store) -> io::Result<Vec<LogId>> {
    use openraft::RaftLogReader;
    Ok(store
        .try_get_log_entries(..)
        .await?
        .iter()
        .map(|e| e.log_id())
        .collect())
}

// ---- minimal in-memory state machine for openraft's suite ----

#[derive(Debug, Default)]
struct SmState {
    last_applied: Option<LogId>,
    last_membership: StoredMembershipOf<TestConfig>,
    data: BTreeMap<u64, Vec<u8>>,
    snapshot: Option<(SnapshotMetaOf<TestConfig>, Vec<u8>)>,
}

#[derive(Debug, Clone, Default)]
pub struct MemStateMachine(Arc<Mutex<SmState>>);

impl MemStateMachine {
    fn state(&self) -> io::Result<std::sync::MutexGuard<'_, SmState>> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("state machine mutex poisoned"))
    }
}

fn to_io(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl RaftSnapshotBuilder<TestConfig> for MemStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(
        &mut self,
    ) -> Result<SnapshotOf<TestConfig, Cursor<Vec<u8>>>, io::Error> {
        let mut state = self.state()?;
        let data = serde_json::to_vec(&state.data).map_err(to_io)?;
        let meta = SnapshotMetaOf::<TestConfig> {
            last_log_id: state.last_applied,
            last_membership: state.last_membership.clone(),
        };
        state.snapshot = Some((meta.clone(), data.clone()));
        Ok(SnapshotOf::<TestConfig, _> {
            meta,
            snapshot: Cursor::new(data),
        })
    }
}

impl RaftStateMachine<TestConfig> for MemStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembershipOf<TestConfig>), io::Error> {
        let state = self.state()?;
        Ok((state.last_applied, state.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TestConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let index = entry.log_id.index();
            {
                let mut state = self.state()?;
                state.last_applied = Some(entry.log_id);
                match &entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(Request(bytes)) => {
                        state.data.insert(index, bytes.clone());
                    }
                    EntryPayload::Membership(m) => {
                        state.last_membership =
                            StoredMembershipOf::<TestConfig>::new(Some(entry.log_id), m.clone());
                    }
                }
            }
            if let Some(responder) = responder {
                responder.send(Response(index));
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TestConfig>,
        snapshot: Cursor<Vec<u8>>,
    ) -> Result<(), io::Error> {
        let bytes = snapshot.into_inner();
        let data: BTreeMap<u64, Vec<u8>> = serde_json::from_slice(&bytes).map_err(to_io)?;
        let mut state = self.state()?;
        state.last_applied = meta.last_log_id;
        state.last_membership = meta.last_membership.clone();
        state.data = data;
        state.snapshot = Some((meta.clone(), bytes));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TestConfig, Cursor<Vec<u8>>>>, io::Error> {
        let state = self.state()?;
        Ok(state
            .snapshot
            .as_ref()
            .map(|(meta, data)| SnapshotOf::<TestConfig, _> {
                meta: meta.clone(),
                snapshot: Cursor::new(data.clone()),
            }))
    }
}
