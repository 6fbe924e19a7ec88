//! The compaction workload's properties: **resurrected**, **wrong-final-value** and
//! **replica-divergence**.
//!
//! Writers send keyed records over a small key space to a compacted topic (`cleanup.policy=
//! compact`); some are tombstones (null values). Every write carries a value unique per key
//! (`value`; a tombstone's `value` names the write, its record's value is null). At the end the
//! runner reads every replica's own copy of every partition (`replica-read`), after compaction
//! has run. A replica's *final state* of a key is the value of its last record for that key (by
//! offset); none when its last record is a tombstone or it holds no record of the key (an
//! expired tombstone is removed with everything before it).
//!
//! For each replica and key, the final state must be the last acknowledged write of the key
//! (the one at the highest acknowledged offset), or the write of a send whose outcome is unknown
//! (it may have landed after the last acknowledged one); with no acknowledged write, none is
//! allowed too. Otherwise:
//!
//! - **resurrected**: the last acknowledged write of the key is a tombstone, yet the replica
//!   holds a value for it (an earlier value came back, as when a tombstone is removed before the
//!   records it deleted);
//! - **wrong-final-value**: any other final state that is not allowed (an older value, a lost
//!   last write, a value whose send failed, a value never sent).
//!
//! **replica-divergence**: replicas of a partition must agree on every key's final state, and a
//! record any two replicas both hold at one offset must be the same record; a replica holding a
//! record at another offset than the one its send was acknowledged at diverges from the
//! acknowledged log.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::model::{Model, SendOutcome};
use super::{Anomaly, AnomalyKind};
use crate::history::{History, KeyedRecord, OpF, OpKind};

/// One write of the compaction workload.
#[derive(Debug, Clone, Copy)]
struct Write {
    value: u64,
    tombstone: bool,
    invoke: u64,
    completion: Option<u64>,
    outcome: SendOutcome,
}

impl Write {
    /// What a replica's final state is if this write is the key's last record.
    fn state(&self) -> Option<u64> {
        (!self.tombstone).then_some(self.value)
    }

    fn ops(&self) -> Vec<u64> {
        let mut ops = vec![self.invoke];
        ops.extend(self.completion);
        ops
    }

    fn describe(&self) -> String {
        let what = if self.tombstone {
            format!("tombstone #{}", self.value)
        } else {
            format!("value {}", self.value)
        };
        match self.outcome {
            SendOutcome::Ok { offset, .. } => format!("{what} (acknowledged at offset {offset})"),
            SendOutcome::Fail => format!("{what} (send failed)"),
            SendOutcome::Unknown => format!("{what} (outcome unknown)"),
        }
    }
}

/// One replica's copy of a partition as the final read found it.
struct ReplicaCopy<'h> {
    node: u64,
    partition: u32,
    /// The `ok` op of the read.
    op: u64,
    records: &'h [KeyedRecord],
}

impl ReplicaCopy<'_> {
    /// key -> (offset of its last record, its final state).
    fn final_states(&self) -> BTreeMap<u32, (i64, Option<u64>)> {
        let mut out = BTreeMap::new();
        for r in self.records {
            let e = out.entry(r.key).or_insert((r.offset, r.value));
            if r.offset >= e.0 {
                *e = (r.offset, r.value);
            }
        }
        out
    }
}

fn show(state: Option<u64>) -> String {
    state.map_or_else(|| "none".to_string(), |v| format!("value {v}"))
}

pub(super) fn check(history: &History, model: &Model) -> Vec<Anomaly> {
    let by_index: HashMap<u64, usize> = history
        .ops
        .iter()
        .enumerate()
        .map(|(pos, op)| (op.index, pos))
        .collect();
    // key -> its writes; key -> its partition.
    let mut writes: BTreeMap<u32, Vec<Write>> = BTreeMap::new();
    let mut partition_of: BTreeMap<u32, u32> = BTreeMap::new();
    for send in &model.sends {
        let Some(invoke) = by_index.get(&send.invoke).map(|&p| &history.ops[p]) else {
            continue;
        };
        let completion = send
            .completion
            .and_then(|c| by_index.get(&c))
            .map(|&p| &history.ops[p]);
        let partition = match send.outcome {
            SendOutcome::Ok { partition, .. } => Some(partition),
            _ => invoke.partition.or(completion.and_then(|c| c.partition)),
        };
        if let Some(p) = partition {
            partition_of.entry(send.key).or_insert(p);
        }
        writes.entry(send.key).or_default().push(Write {
            value: send.value,
            tombstone: invoke.tombstone,
            invoke: send.invoke,
            completion: send.completion,
            outcome: send.outcome,
        });
    }
    let copies: Vec<ReplicaCopy> = history
        .ops
        .iter()
        .filter(|op| op.f == OpF::ReplicaRead && op.kind == OpKind::Ok)
        .filter_map(|op| {
            Some(ReplicaCopy {
                node: op.node?,
                partition: op.partition?,
                op: op.index,
                records: &op.records,
            })
        })
        .collect();

    let mut anomalies = Vec::new();
    for copy in &copies {
        anomalies.extend(final_state_anomalies(copy, &writes, &partition_of));
        anomalies.extend(misplaced_records(copy, &writes));
    }
    anomalies.extend(divergence(&copies));
    anomalies
}

/// Keys whose final state on `copy` is not one the history allows.
fn final_state_anomalies(
    copy: &ReplicaCopy,
    writes: &BTreeMap<u32, Vec<Write>>,
    partition_of: &BTreeMap<u32, u32>,
) -> Vec<Anomaly> {
    let finals = copy.final_states();
    let keys: BTreeSet<u32> = partition_of
        .iter()
        .filter(|(_, &p)| p == copy.partition)
        .map(|(&k, _)| k)
        .chain(finals.keys().copied())
        .collect();
    let none = Vec::new();
    let mut out = Vec::new();
    for key in keys {
        let ws = writes.get(&key).unwrap_or(&none);
        let actual = finals.get(&key).and_then(|&(_, state)| state);
        let last_acked = ws
            .iter()
            .filter_map(|w| match w.outcome {
                SendOutcome::Ok { offset, .. } => Some((offset, w)),
                _ => None,
            })
            .max_by_key(|(offset, _)| *offset)
            .map(|(_, w)| w);
        let allowed = |state: Option<u64>| {
            last_acked.map_or(state.is_none(), |w| w.state() == state)
                || ws
                    .iter()
                    .any(|w| w.outcome == SendOutcome::Unknown && w.state() == state)
        };
        if allowed(actual) {
            continue;
        }
        let source = actual.and_then(|v| ws.iter().find(|w| !w.tombstone && w.value == v));
        let mut ops = vec![copy.op];
        ops.extend(last_acked.map(Write::ops).unwrap_or_default());
        ops.extend(source.map(Write::ops).unwrap_or_default());
        let got = match (actual, source) {
            (Some(_), Some(w)) => w.describe(),
            (Some(v), None) => format!("value {v}, which was never sent"),
            (None, _) if finals.contains_key(&key) => "a tombstone".to_string(),
            (None, _) => "no record".to_string(),
        };
        let expected = last_acked.map_or_else(
            || "no value (no write was acknowledged)".to_string(),
            |w| w.describe(),
        );
        let kind = if last_acked.is_some_and(|w| w.tombstone) && actual.is_some() {
            AnomalyKind::Resurrected
        } else {
            AnomalyKind::WrongFinalValue
        };
        out.push(Anomaly::new(
            kind,
            ops,
            format!(
                "node {} partition {} key {key}: final state is {got}; the last acknowledged \
                 write is {expected}",
                copy.node, copy.partition
            ),
        ));
    }
    out
}

/// Records a replica holds at another offset than their send was acknowledged at.
fn misplaced_records(copy: &ReplicaCopy, writes: &BTreeMap<u32, Vec<Write>>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for r in copy.records {
        // A tombstone's record carries no value: it cannot be matched to one write.
        let Some(v) = r.value else {
            continue;
        };
        let Some(w) = writes
            .get(&r.key)
            .and_then(|ws| ws.iter().find(|w| !w.tombstone && w.value == v))
        else {
            continue;
        };
        if let SendOutcome::Ok { offset, .. } = w.outcome {
            if offset != r.offset {
                let mut ops = vec![copy.op];
                ops.extend(w.ops());
                out.push(Anomaly::new(
                    AnomalyKind::ReplicaDivergence,
                    ops,
                    format!(
                        "node {} partition {} holds key {} value {} at offset {}, acknowledged \
                         at offset {offset}",
                        copy.node, copy.partition, r.key, w.value, r.offset
                    ),
                ));
            }
        }
    }
    out
}

/// Replicas of one partition that disagree on a key's final state or on an offset's record.
fn divergence(copies: &[ReplicaCopy]) -> Vec<Anomaly> {
    let mut by_partition: BTreeMap<u32, Vec<&ReplicaCopy>> = BTreeMap::new();
    for c in copies {
        by_partition.entry(c.partition).or_default().push(c);
    }
    let mut out = Vec::new();
    for (partition, cs) in by_partition {
        let finals: Vec<BTreeMap<u32, (i64, Option<u64>)>> =
            cs.iter().map(|c| c.final_states()).collect();
        let keys: BTreeSet<u32> = finals.iter().flat_map(|f| f.keys().copied()).collect();
        for key in keys {
            let states: Vec<Option<u64>> = finals
                .iter()
                .map(|f| f.get(&key).and_then(|&(_, s)| s))
                .collect();
            if states.windows(2).all(|w| w[0] == w[1]) {
                continue;
            }
            let shown: Vec<String> = cs
                .iter()
                .zip(&states)
                .map(|(c, s)| format!("node {}: {}", c.node, show(*s)))
                .collect();
            out.push(Anomaly::new(
                AnomalyKind::ReplicaDivergence,
                cs.iter().map(|c| c.op).collect(),
                format!(
                    "partition {partition} key {key}: replicas disagree on the final state ({})",
                    shown.join(", ")
                ),
            ));
        }
        // offset -> (node, record) of the first replica holding it.
        let mut at: BTreeMap<i64, (&ReplicaCopy, KeyedRecord)> = BTreeMap::new();
        for c in &cs {
            for r in c.records {
                match at.get(&r.offset) {
                    None => {
                        at.insert(r.offset, (c, *r));
                    }
                    Some((first, theirs)) if theirs != r => out.push(Anomaly::new(
                        AnomalyKind::ReplicaDivergence,
                        vec![first.op, c.op],
                        format!(
                            "partition {partition} offset {}: node {} holds key {} {}, node {} \
                             holds key {} {}",
                            r.offset,
                            first.node,
                            theirs.key,
                            show(theirs.value),
                            c.node,
                            r.key,
                            show(r.value)
                        ),
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checker::AnomalyKind::{self, ReplicaDivergence, Resurrected, WrongFinalValue};
    use crate::checker::{check_compaction, CheckResult};
    use crate::{History, HistoryBuilder, OpKind};

    fn kinds(result: &CheckResult) -> Vec<AnomalyKind> {
        result.anomalies.iter().map(|a| a.kind).collect()
    }

    fn only(history: &History, kind: AnomalyKind) -> Vec<String> {
        let result = check_compaction(history);
        for a in &result.anomalies {
            assert_eq!(a.kind, kind, "unexpected anomaly {a:?}");
        }
        assert_eq!(result.valid, result.anomalies.is_empty());
        result
            .anomalies
            .iter()
            .map(|a| a.description.clone())
            .collect()
    }

    /// Key 1 on partition 1: value 10 at 0, value 11 at 1, tombstone 12 at 2; key 5 on
    /// partition 1: value 50 at 3.
    fn writes() -> HistoryBuilder {
        let mut b = HistoryBuilder::new();
        b.kv_write(0, 1, 1, 10, false, OpKind::Ok, Some(0));
        b.kv_write(0, 1, 1, 11, false, OpKind::Ok, Some(1));
        b.kv_write(1, 1, 1, 12, true, OpKind::Ok, Some(2));
        b.kv_write(1, 1, 5, 50, false, OpKind::Ok, Some(3));
        b
    }

    #[test]
    fn compacted_replicas_that_agree_are_valid() {
        let mut b = writes();
        // Compacted, the tombstone kept; and compacted with the tombstone expired.
        b.replica_read(1, 1, 4, &[(2, 1, None), (3, 5, Some(50))]);
        b.replica_read(2, 1, 4, &[(3, 5, Some(50))]);
        // Not compacted at all: the last record per key decides.
        b.replica_read(
            3,
            1,
            4,
            &[
                (0, 1, Some(10)),
                (1, 1, Some(11)),
                (2, 1, None),
                (3, 5, Some(50)),
            ],
        );
        let result = check_compaction(&b.build());
        assert!(result.valid, "{:?}", result.anomalies);
    }

    #[test]
    fn a_value_back_after_its_tombstone_is_resurrected() {
        let mut b = writes();
        // The tombstone and value 11 were removed, value 10 was not.
        b.replica_read(1, 1, 4, &[(0, 1, Some(10)), (3, 5, Some(50))]);
        b.replica_read(2, 1, 4, &[(0, 1, Some(10)), (3, 5, Some(50))]);
        let found = only(&b.build(), Resurrected);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("key 1") && found[0].contains("value 10"));
    }

    #[test]
    fn an_older_value_or_a_lost_last_write_is_wrong() {
        let mut b = writes();
        // Key 5's only write is lost.
        b.replica_read(1, 1, 4, &[(2, 1, None)]);
        let found = only(&b.build(), WrongFinalValue);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("key 5") && found[0].contains("no record"));

        let older = |value: u64| {
            let mut b = HistoryBuilder::new();
            b.kv_write(0, 0, 4, 1, false, OpKind::Ok, Some(0));
            b.kv_write(0, 0, 4, 2, false, OpKind::Ok, Some(1));
            b.kv_write(0, 0, 4, 3, false, OpKind::Fail, None);
            b.replica_read(1, 0, 2, &[(0, 4, Some(value))]);
            only(&b.build(), WrongFinalValue)
        };
        let found = older(1);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("value 1 (acknowledged at offset 0)"));
        let found = older(3);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("send failed"));
        let found = older(99);
        assert!(found[0].contains("never sent"), "{found:?}");
    }

    #[test]
    fn an_unknown_write_may_be_the_final_value() {
        let mut b = writes();
        b.kv_write(2, 1, 1, 13, false, OpKind::Info, None);
        b.kv_write(2, 1, 5, 51, true, OpKind::Info, None);
        b.replica_read(1, 1, 6, &[(4, 1, Some(13)), (5, 5, None)]);
        let result = check_compaction(&b.build());
        assert!(result.valid, "{:?}", result.anomalies);
    }

    #[test]
    fn replicas_that_disagree_diverge() {
        let mut b = writes();
        b.kv_write(2, 1, 1, 13, false, OpKind::Info, None);
        // Both final states are allowed, but they differ.
        b.replica_read(1, 1, 5, &[(4, 1, Some(13)), (3, 5, Some(50))]);
        b.replica_read(2, 1, 4, &[(2, 1, None), (3, 5, Some(50))]);
        assert_eq!(only(&b.build(), ReplicaDivergence).len(), 1);

        // One offset, two records.
        let mut b = writes();
        b.replica_read(1, 1, 4, &[(2, 1, None), (3, 5, Some(50))]);
        b.replica_read(2, 1, 4, &[(2, 5, Some(50)), (3, 5, Some(50))]);
        let result = check_compaction(&b.build());
        assert!(kinds(&result).contains(&ReplicaDivergence), "{result:?}");
        assert!(!result.valid);
    }

    #[test]
    fn a_record_at_another_offset_than_acknowledged_diverges() {
        let mut b = writes();
        b.replica_read(1, 1, 4, &[(2, 1, None), (7, 5, Some(50))]);
        let found = only(&b.build(), ReplicaDivergence);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("offset 7") && found[0].contains("offset 3"));
    }

    #[test]
    fn queue_classes_are_not_checked() {
        // No polls at all: the queue checker would call every write unseen.
        let mut b = writes();
        b.replica_read(1, 1, 4, &[(2, 1, None), (3, 5, Some(50))]);
        let result = check_compaction(&b.build());
        assert!(result.valid);
        assert!(!result.anomaly_counts().contains_key(&AnomalyKind::Unseen));
        assert!(result.anomaly_counts().contains_key(&Resurrected));
    }
}
