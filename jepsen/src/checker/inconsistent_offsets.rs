//! **inconsistent-offsets**: each (partition, offset) holds one record.
//!
//! Every read and every send ack says which (key, value) sits at a (partition, offset); two
//! different ones at the same place mean replicas diverged or an ack lied. Reported with the
//! first op that showed each (key, value) there.

use std::collections::{BTreeMap, HashMap};

use super::model::{Model, SendOutcome};
use super::{Anomaly, AnomalyKind};

/// (partition, offset) -> (key, value) -> first op showing it there.
type Seen = HashMap<(u32, i64), BTreeMap<(u32, u64), u64>>;

pub(super) fn check(model: &Model) -> Vec<Anomaly> {
    let mut seen = Seen::new();
    for send in &model.sends {
        if let (SendOutcome::Ok { partition, offset }, Some(ok)) = (send.outcome, send.completion) {
            note(&mut seen, (partition, offset), (send.key, send.value), ok);
        }
    }
    for poll in &model.polls {
        for read in &poll.reads {
            note(
                &mut seen,
                (read.partition, read.offset),
                (read.key, read.value),
                poll.op,
            );
        }
    }
    let mut anomalies: Vec<Anomaly> = seen
        .into_iter()
        .filter(|(_, values)| values.len() > 1)
        .map(|((partition, offset), values)| {
            let held: Vec<String> = values
                .iter()
                .map(|((key, value), op)| format!("key {key} value {value} (op {op})"))
                .collect();
            Anomaly::new(
                AnomalyKind::InconsistentOffsets,
                values.values().copied().collect(),
                format!(
                    "partition {partition} offset {offset} holds {}",
                    held.join(", ")
                ),
            )
        })
        .collect();
    anomalies.sort_by(|a, b| a.ops.cmp(&b.ops));
    anomalies
}

fn note(seen: &mut Seen, at: (u32, i64), kv: (u32, u64), op: u64) {
    let first = seen.entry(at).or_default().entry(kv).or_insert(op);
    *first = (*first).min(op);
}

#[cfg(test)]
mod tests {
    use crate::checker::{only, AnomalyKind::InconsistentOffsets};
    use crate::HistoryBuilder;

    #[test]
    fn two_values_at_one_offset_are_inconsistent() {
        let mut b = HistoryBuilder::new();
        b.send_ok(0, 0, 10, 0); // 0, 1
        b.send_info(1, 0, 11); // 2, 3
        b.send_info(2, 0, 12); // 4, 5
        b.poll(1000, &[(0, 0, 0, 10), (0, 1, 0, 11)]); // ok 7
        b.poll(1001, &[(0, 0, 0, 10), (0, 1, 0, 12)]); // ok 9: replicas diverged
        assert_eq!(only(&b.build(), InconsistentOffsets), vec![vec![7, 9]]);
    }
}
