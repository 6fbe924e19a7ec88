//! **lost-write**: every acknowledged send is read, unless nothing at or past its offset was.
//!
//! A send that completed `ok` at offset `o` of partition `p` is lost when no poll ever read its
//! value although some poll read an offset `>= o` of `p`: the log moved past the record, and the
//! record is not in it. Reported with the send's invoke and ok and the earliest poll (in history
//! order) that read past it.

use std::collections::BTreeMap;

use super::model::{Model, SendOutcome};
use super::{Anomaly, AnomalyKind};

pub(super) fn check(model: &Model) -> Vec<Anomaly> {
    let witnesses = Witnesses::new(model);
    let mut anomalies = Vec::new();
    for send in &model.sends {
        let SendOutcome::Ok { partition, offset } = send.outcome else {
            continue;
        };
        if model.first_read.contains_key(&(send.key, send.value))
            || model.trimmed(partition, offset)
        {
            continue;
        }
        let Some((read_offset, poll)) = witnesses.first_at_or_after(partition, offset) else {
            continue;
        };
        let mut ops = send.ops();
        ops.push(poll);
        anomalies.push(Anomaly::new(
            AnomalyKind::LostWrite,
            ops,
            format!(
                "key {} value {} acked at partition {partition} offset {offset} was never read; \
                 poll {poll} read offset {read_offset}",
                send.key, send.value
            ),
        ));
    }
    anomalies
}

/// For each partition, answers "which poll first read an offset at or past `o`?".
struct Witnesses {
    /// partition -> (offset, earliest poll reading an offset >= this one), by offset.
    by_partition: BTreeMap<u32, Vec<(i64, u64)>>,
}

impl Witnesses {
    fn new(model: &Model) -> Witnesses {
        let mut first: BTreeMap<u32, BTreeMap<i64, u64>> = BTreeMap::new();
        for poll in &model.polls {
            for read in &poll.reads {
                first
                    .entry(read.partition)
                    .or_default()
                    .entry(read.offset)
                    .or_insert(poll.op);
            }
        }
        let by_partition = first
            .into_iter()
            .map(|(partition, offsets)| {
                let mut suffix: Vec<(i64, u64)> = offsets.into_iter().collect();
                // Turn "first poll reading this offset" into "first poll reading this offset or
                // a later one": a running minimum from the highest offset down.
                let mut earliest = u64::MAX;
                for entry in suffix.iter_mut().rev() {
                    earliest = earliest.min(entry.1);
                    entry.1 = earliest;
                }
                (partition, suffix)
            })
            .collect();
        Witnesses { by_partition }
    }

    /// (some offset read >= `offset`, earliest poll that read an offset >= `offset`).
    fn first_at_or_after(&self, partition: u32, offset: i64) -> Option<(i64, u64)> {
        let offsets = self.by_partition.get(&partition)?;
        let at = offsets.partition_point(|&(o, _)| o < offset);
        offsets.get(at).copied()
    }
}

#[cfg(test)]
mod tests {
    use crate::checker::{only, AnomalyKind::LostWrite};
    use crate::HistoryBuilder;

    #[test]
    fn acked_record_missing_below_a_read_offset_is_lost() {
        let mut b = HistoryBuilder::new();
        b.send_ok(0, 0, 10, 0); // 0, 1
        b.send_ok(0, 0, 11, 1); // 2, 3: never read
        b.send_ok(0, 0, 12, 2); // 4, 5
        b.poll(1000, &[(0, 0, 0, 10)]); // ok 7
        b.assign(1001, &[(0, 2)]); // ok 9
        b.poll(1001, &[(0, 2, 0, 12)]); // ok 11: read past offset 1
        b.poll(1002, &[(0, 2, 0, 12)]); // ok 13: later witness
        assert_eq!(only(&b.build(), LostWrite), vec![vec![2, 3, 11]]);
    }

    #[test]
    fn witness_is_the_earliest_poll_reading_at_or_past_the_offset() {
        let mut b = HistoryBuilder::new();
        b.send_ok(0, 0, 10, 0); // 0, 1: never read
        b.send_ok(0, 0, 11, 1); // 2, 3
        b.assign(1000, &[(0, 1)]); // ok 5
        b.poll(1000, &[(0, 1, 0, 11)]); // ok 7
        assert_eq!(only(&b.build(), LostWrite), vec![vec![0, 1, 7]]);
    }
}
