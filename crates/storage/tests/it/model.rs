//! Model-based test: random append / truncate / purge / vote / committed / restart over
//! three groups of one DB, checked against an in-memory model after every step.

use std::collections::BTreeMap;

use cairn_storage::NodeStore;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::LogState;
use openraft::RaftLogReader;
use proptest::prelude::*;

use crate::common::*;

const GROUPS: [u64; 3] = [0, 1, 1000];

#[derive(Debug, Clone)]
enum Op {
    /// Append `count` entries; `new_term` starts a new term first; `wait` for the callback.
    Append {
        g: usize,
        count: usize,
        new_term: bool,
        wait: bool,
    },
    /// Truncate after a point chosen by `pick` among [purged, entries...].
    Truncate {
        g: usize,
        pick: usize,
    },
    /// Purge up to an entry chosen by `pick`.
    Purge {
        g: usize,
        pick: usize,
    },
    SaveVote {
        g: usize,
        term: u64,
    },
    SaveCommitted {
        g: usize,
        pick: usize,
    },
    /// Read `[from, from + len)` relative to the first present index.
    Read {
        g: usize,
        from: u64,
        len: u64,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let g = 0..GROUPS.len();
    prop_oneof![
        6 => (g.clone(), 1..5usize, proptest::bool::weighted(0.2), any::<bool>())
            .prop_map(|(g, count, new_term, wait)| Op::Append { g, count, new_term, wait }),
        2 => (g.clone(), any::<usize>()).prop_map(|(g, pick)| Op::Truncate { g, pick }),
        2 => (g.clone(), any::<usize>()).prop_map(|(g, pick)| Op::Purge { g, pick }),
        1 => (g.clone(), 0..10u64).prop_map(|(g, term)| Op::SaveVote { g, term }),
        1 => (g.clone(), any::<usize>()).prop_map(|(g, pick)| Op::SaveCommitted { g, pick }),
        2 => (g.clone(), 0..12u64, 0..12u64).prop_map(|(g, from, len)| Op::Read { g, from, len }),
        1 => Just(Op::Restart),
    ]
}

#[derive(Debug, Default, Clone)]
struct GroupModel {
    term: u64,
    /// index -> (log id, payload)
    entries: BTreeMap<u64, (LogId, Vec<u8>)>,
    purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

impl GroupModel {
    fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .values()
            .next_back()
            .map(|(id, _)| *id)
            .or(self.purged)
    }
    fn next_index(&self) -> u64 {
        self.last_log_id().map_or(1, |id| id.index() + 1)
    }
}

fn payload(group: u64, index: u64, term: u64) -> Vec<u8> {
    format!("g{group}/i{index}/t{term}").into_bytes()
}

async fn check_group(store: &mut Store, model: &GroupModel) -> Result<(), TestCaseError> {
    let state = store
        .get_log_state()
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let want = LogState::<TestConfig> {
        last_purged_log_id: model.purged,
        last_log_id: model.last_log_id(),
    };
    prop_assert_eq!(state, want);

    let entries = store
        .try_get_log_entries(..)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let got: Vec<(LogId, Vec<u8>)> = entries
        .iter()
        .map(|e| {
            let bytes = match &e.payload {
                openraft::EntryPayload::Normal(Request(b)) => b.clone(),
                other => format!("{other:?}").into_bytes(),
            };
            (e.log_id(), bytes)
        })
        .collect();
    let want: Vec<(LogId, Vec<u8>)> = model.entries.values().cloned().collect();
    prop_assert_eq!(got, want);

    prop_assert_eq!(
        store
            .read_vote()
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?,
        model.vote
    );
    prop_assert_eq!(
        store
            .read_committed()
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?,
        model.committed
    );
    Ok(())
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut node: NodeStore = open(dir.path());
    let mut models: Vec<GroupModel> = vec![GroupModel::default(); GROUPS.len()];

    for op in ops {
        let touched: Vec<usize> = match &op {
            Op::Restart => (0..GROUPS.len()).collect(),
            Op::Append { g, .. }
            | Op::Truncate { g, .. }
            | Op::Purge { g, .. }
            | Op::SaveVote { g, .. }
            | Op::SaveCommitted { g, .. }
            | Op::Read { g, .. } => vec![*g],
        };
        match op {
            Op::Append {
                g,
                count,
                new_term,
                wait,
            } => {
                let m = &mut models[g];
                if new_term || m.term == 0 {
                    m.term += 1;
                }
                let start = m.next_index();
                let entries: Vec<Entry> = (start..start + count as u64)
                    .map(|i| entry(m.term, i, &payload(GROUPS[g], i, m.term)))
                    .collect();
                for i in start..start + count as u64 {
                    m.entries
                        .insert(i, (log_id(m.term, i), payload(GROUPS[g], i, m.term)));
                }
                let mut store: Store = node.log_store(GROUPS[g]);
                if wait {
                    append_durable(&mut store, entries)
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                } else {
                    store
                        .append(entries, IOFlushed::noop())
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
            }
            Op::Truncate { g, pick } => {
                let m = &mut models[g];
                // Candidates: truncate everything (only before any purge), the purge point,
                // or any present entry.
                let mut candidates: Vec<Option<LogId>> = Vec::new();
                match &m.purged {
                    None => candidates.push(None),
                    Some(p) => candidates.push(Some(*p)),
                }
                candidates.extend(m.entries.values().map(|(id, _)| Some(*id)));
                let target = candidates[pick % candidates.len()];
                let keep_upto = target.as_ref().map(|id| id.index());
                m.entries.retain(|&i, _| keep_upto.is_some_and(|k| i <= k));
                let mut store: Store = node.log_store(GROUPS[g]);
                store
                    .truncate_after(target)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Op::Purge { g, pick } => {
                let m = &mut models[g];
                if m.entries.is_empty() {
                    continue;
                }
                let ids: Vec<LogId> = m.entries.values().map(|(id, _)| *id).collect();
                let target = ids[pick % ids.len()];
                m.entries.retain(|&i, _| i > target.index());
                m.purged = Some(target);
                let mut store: Store = node.log_store(GROUPS[g]);
                store
                    .purge(target)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Op::SaveVote { g, term } => {
                let v = vote(term, GROUPS[g] + 1);
                models[g].vote = Some(v);
                let mut store: Store = node.log_store(GROUPS[g]);
                store
                    .save_vote(&v)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Op::SaveCommitted { g, pick } => {
                let m = &mut models[g];
                let mut candidates: Vec<Option<LogId>> = vec![None];
                candidates.extend(m.entries.values().map(|(id, _)| Some(*id)));
                let c = candidates[pick % candidates.len()];
                m.committed = c;
                let mut store: Store = node.log_store(GROUPS[g]);
                store
                    .save_committed(c)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Op::Read { g, from, len } => {
                let m = &models[g];
                let first = m.entries.keys().next().copied().unwrap_or(0);
                let (lo, hi) = (first + from, first + from + len);
                let mut store: Store = node.log_store(GROUPS[g]);
                let got: Vec<LogId> = store
                    .try_get_log_entries(lo..hi)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?
                    .iter()
                    .map(|e| e.log_id())
                    .collect();
                let want: Vec<LogId> = m.entries.range(lo..hi).map(|(_, (id, _))| *id).collect();
                prop_assert_eq!(got, want, "range {}..{}", lo, hi);
            }
            Op::Restart => {
                drop(node);
                node = open(dir.path());
            }
        }
        for g in touched {
            let mut store: Store = node.log_store(GROUPS[g]);
            check_group(&mut store, &models[g]).await?;
        }
    }

    // Finally, every group after one more restart.
    drop(node);
    let node = open(dir.path());
    let mut with_data: Vec<u64> = Vec::new();
    for (g, m) in models.iter().enumerate() {
        let mut store: Store = node.log_store(GROUPS[g]);
        check_group(&mut store, m).await?;
        if !m.entries.is_empty() || m.vote.is_some() || m.purged.is_some() || m.committed.is_some()
        {
            with_data.push(GROUPS[g]);
        }
    }
    // `groups()` finds exactly the groups with a log-store key.
    prop_assert_eq!(
        node.groups()
            .map_err(|e| TestCaseError::fail(e.to_string()))?,
        with_data
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn log_store_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops))?;
    }
}
