//! openraft's own conformance suite against `LogStore`.

use std::sync::Arc;
use std::sync::Mutex;

use cairn_storage::GroupId;
use cairn_storage::NodeStore;
use cairn_storage::StateBatch;
use openraft::storage::RaftLogStorage;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;
use openraft::type_config::TypeConfigExt;
use openraft::RaftLogReader;
use openraft::StorageError;
use tempfile::TempDir;

use crate::common::*;

fn build_err(e: &(impl std::error::Error + 'static)) -> StorageError<TestConfig> {
    StorageError::read(TestConfig::err_from_error(e))
}

/// Opens a fresh store per test; seeds `neighbours` (other groups of the same DB) and, when
/// the test is done, checks that they were not touched.
struct Builder {
    group: GroupId,
    neighbours: Vec<GroupId>,
    /// Neighbour checks done and failures seen, shared with the guards.
    report: Arc<Mutex<(usize, Vec<String>)>>,
}

/// Keeps the temp dir alive for the test; on drop, verifies the neighbours.
struct Guard {
    node: NodeStore,
    neighbours: Vec<GroupId>,
    report: Arc<Mutex<(usize, Vec<String>)>>,
    _dir: TempDir,
}

async fn seed_neighbour(node: &NodeStore, group: GroupId) -> std::io::Result<()> {
    let mut store: Store = node.log_store(group);
    let entries = (1..=20)
        .map(|i| entry(1, i, format!("n{group}-{i}").as_bytes()))
        .collect();
    append_durable(&mut store, entries).await?;
    store.save_vote(&vote(3, 1)).await?;
    store.purge(log_id(1, 4)).await?;
    store.save_committed(Some(log_id(1, 10))).await?;
    let mut batch = StateBatch::new();
    batch.put(group, b"k", b"v");
    node.write(batch)?;
    Ok(())
}

async fn check_neighbour(node: &NodeStore, group: GroupId) -> Result<(), String> {
    let mut store: Store = node.log_store(group);
    let state = store.get_log_state().await.map_err(|e| e.to_string())?;
    if state.last_purged_log_id != Some(log_id(1, 4)) || state.last_log_id != Some(log_id(1, 20)) {
        return Err(format!("group {group}: log state changed: {state:?}"));
    }
    let ids = log_ids(&mut store).await.map_err(|e| e.to_string())?;
    let want: Vec<_> = (5..=20).map(|i| log_id(1, i)).collect();
    if ids != want {
        return Err(format!("group {group}: entries changed: {ids:?}"));
    }
    if store.read_vote().await.map_err(|e| e.to_string())? != Some(vote(3, 1)) {
        return Err(format!("group {group}: vote changed"));
    }
    if store.read_committed().await.map_err(|e| e.to_string())? != Some(log_id(1, 10)) {
        return Err(format!("group {group}: committed changed"));
    }
    if node
        .state_get(group, b"k")
        .map_err(|e| e.to_string())?
        .as_deref()
        != Some(&b"v"[..])
    {
        return Err(format!("group {group}: state changed"));
    }
    Ok(())
}

impl Drop for Guard {
    fn drop(&mut self) {
        for &group in &self.neighbours {
            // The reads do no async I/O; a local executor is enough inside drop.
            let result = futures::executor::block_on(check_neighbour(&self.node, group));
            let mut report = self.report.lock().unwrap();
            report.0 += 1;
            if let Err(e) = result {
                report.1.push(e);
            }
        }
    }
}

impl StoreBuilder<TestConfig, Store, MemStateMachine, Guard> for Builder {
    async fn build(&self) -> Result<(Guard, Store, MemStateMachine), StorageError<TestConfig>> {
        let dir = tempfile::tempdir().map_err(|e| build_err(&e))?;
        let node = NodeStore::open(dir.path(), small_options()).map_err(|e| build_err(&e))?;
        for &n in &self.neighbours {
            seed_neighbour(&node, n).await.map_err(|e| build_err(&e))?;
        }
        let store = node.log_store(self.group);
        let guard = Guard {
            node,
            neighbours: self.neighbours.clone(),
            report: Arc::clone(&self.report),
            _dir: dir,
        };
        Ok((guard, store, MemStateMachine::default()))
    }
}

async fn run_suite(
    group: GroupId,
    neighbours: Vec<GroupId>,
) -> anyhow::Result<(usize, Vec<String>)> {
    let report = Arc::new(Mutex::new((0, Vec::new())));
    let builder = Builder {
        group,
        neighbours,
        report: Arc::clone(&report),
    };
    Suite::test_all(builder).await?;
    let report = report.lock().unwrap().clone();
    Ok(report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_group_0() -> anyhow::Result<()> {
    let (checks, failures) = run_suite(0, vec![]).await?;
    assert_eq!((checks, failures), (0, Vec::<String>::new()));
    Ok(())
}

/// Group 7 in a DB where groups 6 and 8 (right below and above in key order) hold a log,
/// vote, purge point, committed id and state: every suite test must leave them untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_group_7_next_to_other_groups() -> anyhow::Result<()> {
    let (checks, failures) = run_suite(7, vec![6, 8]).await?;
    assert!(failures.is_empty(), "{failures:#?}");
    // Every build was checked, for both neighbours (the suite builds > 40 stores).
    assert!(checks > 80, "only {checks} neighbour checks ran");
    Ok(())
}
