//! **offset-regression** (group workload): a group member resumed a partition below an offset
//! the group had committed, and had been told so, before the member started looking.
//!
//! Members of one consumer group poll a topic and commit their positions (`commit`, with
//! `positions`: partition -> next offset to read). When a partition is assigned to a member
//! (after a join or a rebalance) the member resumes from the group's committed offset; the
//! `ok` completion of that poll lists where it resumed in `positions`. Every commit acknowledged
//! before that poll was invoked must be visible to it: the member must not resume below the
//! highest such commit. (A commit whose outcome is unknown, or acknowledged only while the poll
//! ran, may or may not be seen; a commit that failed is not counted.)

use std::collections::{BTreeMap, HashMap};

use super::{Anomaly, AnomalyKind};
use crate::history::{History, Op, OpF, OpKind};

/// The highest acknowledged commit of a partition so far: (offset, invoke, ok).
type Acked = BTreeMap<u32, (i64, u64, u64)>;

enum Open<'h> {
    Commit(&'h Op),
    /// A poll, with the commits acknowledged before it was invoked.
    Poll {
        invoke: u64,
        acked: Acked,
    },
    Other,
}

pub(super) fn check(history: &History) -> Vec<Anomaly> {
    let mut acked: Acked = BTreeMap::new();
    let mut open: HashMap<u64, Open> = HashMap::new();
    let mut anomalies = Vec::new();
    for op in &history.ops {
        if op.f == OpF::Fault {
            continue;
        }
        if op.is_invoke() {
            let o = match op.f {
                OpF::Commit => Open::Commit(op),
                OpF::Poll => Open::Poll {
                    invoke: op.index,
                    acked: acked.clone(),
                },
                _ => Open::Other,
            };
            open.insert(op.process, o);
            continue;
        }
        // Completions without an invoke are malformed-history's business.
        match (open.remove(&op.process), op.kind) {
            (Some(Open::Commit(invoke)), OpKind::Ok) if op.f == OpF::Commit => {
                let positions = op.positions.as_ref().or(invoke.positions.as_ref());
                for &(partition, offset) in positions.into_iter().flatten() {
                    let e = acked
                        .entry(partition)
                        .or_insert((offset, invoke.index, op.index));
                    if offset > e.0 {
                        *e = (offset, invoke.index, op.index);
                    }
                }
            }
            (
                Some(Open::Poll {
                    invoke,
                    acked: seen,
                }),
                OpKind::Ok,
            ) if op.f == OpF::Poll => {
                for &(partition, resumed) in op.positions.iter().flatten() {
                    let Some(&(committed, c_invoke, c_ok)) = seen.get(&partition) else {
                        continue;
                    };
                    if resumed < committed {
                        anomalies.push(Anomaly::new(
                            AnomalyKind::OffsetRegression,
                            vec![c_invoke, c_ok, invoke, op.index],
                            format!(
                                "process {} resumed partition {partition} at offset {resumed}, \
                                 below offset {committed} whose commit (op {c_ok}) was \
                                 acknowledged before the poll began",
                                op.process
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use crate::checker::check_group;
    use crate::checker::AnomalyKind::OffsetRegression;
    use crate::{HistoryBuilder, OpKind};

    fn regressions(b: HistoryBuilder) -> Vec<Vec<u64>> {
        let result = check_group(&b.build());
        for a in &result.anomalies {
            assert_eq!(a.kind, OffsetRegression, "unexpected anomaly {a:?}");
        }
        assert_eq!(result.valid, result.anomalies.is_empty());
        result.anomalies.iter().map(|a| a.ops.clone()).collect()
    }

    #[test]
    fn resuming_at_or_above_the_last_acked_commit_is_fine() {
        let mut b = HistoryBuilder::new();
        b.resume(1000, &[(0, 0), (1, 0)]);
        b.commit(1000, OpKind::Ok, &[(0, 40), (1, 7)]);
        b.commit(1000, OpKind::Ok, &[(0, 55)]);
        b.resume(1001, &[(0, 55), (1, 9)]);
        assert!(regressions(b).is_empty());
    }

    #[test]
    fn resuming_below_an_acked_commit_is_a_regression() {
        let mut b = HistoryBuilder::new();
        b.commit(1000, OpKind::Ok, &[(0, 40), (1, 7)]); // ops 0, 1
        b.commit(1000, OpKind::Ok, &[(0, 55)]); // ops 2, 3
        b.resume(1001, &[(0, 40), (1, 7)]); // ops 4, 5
        assert_eq!(regressions(b), vec![vec![2, 3, 4, 5]]);
    }

    #[test]
    fn a_reset_to_the_start_after_a_commit_is_a_regression() {
        let mut b = HistoryBuilder::new();
        b.commit(1000, OpKind::Ok, &[(2, 12)]);
        b.resume(1000, &[(2, 0)]);
        assert_eq!(regressions(b).len(), 1);
    }

    #[test]
    fn unacknowledged_or_concurrent_commits_do_not_count() {
        let mut b = HistoryBuilder::new();
        b.commit(1000, OpKind::Ok, &[(0, 10)]);
        // Unknown and failed commits of higher offsets.
        b.commit(1000, OpKind::Info, &[(0, 20)]);
        b.commit(1002, OpKind::Fail, &[(0, 30)]);
        // A commit acknowledged only while the resuming poll ran.
        b.invoke_poll(1001);
        b.commit(1002, OpKind::Ok, &[(0, 25)]);
        let mut ok = crate::Op::new(0, 0, 1001, OpKind::Ok, crate::OpF::Poll);
        ok.positions = Some(vec![(0, 10)]);
        b.push(ok);
        assert!(regressions(b).is_empty());
    }

    #[test]
    fn a_lower_commit_after_a_higher_one_does_not_lower_the_bar() {
        let mut b = HistoryBuilder::new();
        b.commit(1000, OpKind::Ok, &[(0, 50)]);
        b.commit(1001, OpKind::Ok, &[(0, 20)]);
        b.resume(1002, &[(0, 20)]);
        assert_eq!(regressions(b).len(), 1);
    }
}
