//! **duplicate**: each (key, value) is at one offset at most.
//!
//! Values are unique per key, so a (key, value) seen at two or more different offsets — in
//! reads or in send acks — was written twice (e.g. a retried send that was not deduplicated).
//! Reported with the first op that showed each offset.

use std::collections::{BTreeMap, HashMap};

use super::model::{Model, SendOutcome};
use super::{Anomaly, AnomalyKind};

pub(super) fn check(model: &Model) -> Vec<Anomaly> {
    // (key, value) -> offset -> first op showing it there
    let mut seen: HashMap<(u32, u64), BTreeMap<i64, u64>> = HashMap::new();
    for send in &model.sends {
        if let (SendOutcome::Ok { offset, .. }, Some(ok)) = (send.outcome, send.completion) {
            note(&mut seen, (send.key, send.value), offset, ok);
        }
    }
    for poll in &model.polls {
        for read in &poll.reads {
            note(&mut seen, (read.key, read.value), read.offset, poll.op);
        }
    }
    let mut anomalies: Vec<Anomaly> = seen
        .into_iter()
        .filter(|(_, offsets)| offsets.len() > 1)
        .map(|((key, value), offsets)| {
            let at: Vec<String> = offsets
                .iter()
                .map(|(offset, op)| format!("{offset} (op {op})"))
                .collect();
            Anomaly::new(
                AnomalyKind::Duplicate,
                offsets.values().copied().collect(),
                format!("key {key} value {value} at offsets {}", at.join(", ")),
            )
        })
        .collect();
    anomalies.sort_by(|a, b| a.ops.cmp(&b.ops));
    anomalies
}

fn note(seen: &mut HashMap<(u32, u64), BTreeMap<i64, u64>>, kv: (u32, u64), offset: i64, op: u64) {
    let first = seen.entry(kv).or_default().entry(offset).or_insert(op);
    *first = (*first).min(op);
}

#[cfg(test)]
mod tests {
    use crate::checker::{only, AnomalyKind::Duplicate};
    use crate::HistoryBuilder;

    #[test]
    fn value_at_two_offsets_is_a_duplicate() {
        let mut b = HistoryBuilder::new();
        b.send_ok(0, 0, 10, 0); // 0, 1
        b.send_ok(0, 0, 11, 1); // 2, 3
        b.poll(1000, &[(0, 0, 0, 10), (0, 1, 0, 11), (0, 2, 0, 10)]); // ok 5
        b.poll(1001, &[(0, 0, 0, 10), (0, 1, 0, 11), (0, 2, 0, 10)]); // ok 7: same, reported once
        assert_eq!(only(&b.build(), Duplicate), vec![vec![1, 5]]);
    }
}
