//! **poll-skip**: a consumer reads every record of a partition in order, skipping none.
//!
//! Offsets are dense in this workload. Within one consumer process and one partition, two
//! consecutive reads at offsets `a < b` skip records when some offset `c`, `a < c < b`, is known
//! (from any read or send ack in the history) to hold a record. An `assign` to position `n`
//! counts as having read `n - 1`, so starting past known records is a skip too; after an `info`
//! poll the position is unknown and the next read is not judged. Ops: the earlier
//! poll or assign and the later poll (one op when both reads are in the same poll).

use super::model::{ConsumerStep, Model};
use super::{Anomaly, AnomalyKind};

pub(super) fn check(model: &Model) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    for (&(process, partition), steps) in &model.consumer_steps {
        let Some(known) = model.known_offsets.get(&partition) else {
            continue;
        };
        let mut last: Option<(i64, u64)> = None;
        for &step in steps {
            match step {
                ConsumerStep::Reset { last: l, assign } => last = l.map(|o| (o, assign)),
                ConsumerStep::Read { offset, poll } => {
                    if let Some((prev, prev_op)) = last {
                        if offset > prev.saturating_add(1) {
                            let skipped: Vec<i64> =
                                known.range(prev + 1..offset).copied().collect();
                            if let Some(first) = skipped.first() {
                                anomalies.push(Anomaly::new(
                                    AnomalyKind::PollSkip,
                                    vec![prev_op, poll],
                                    format!(
                                        "process {process} partition {partition}: jumped from \
                                         offset {prev} (op {prev_op}) to {offset} (op {poll}), \
                                         skipping {} known record(s) from offset {first}",
                                        skipped.len()
                                    ),
                                ));
                            }
                        }
                    }
                    last = Some((offset, poll));
                }
            }
        }
    }
    anomalies.sort_by(|a, b| a.ops.cmp(&b.ops));
    anomalies
}

#[cfg(test)]
mod tests {
    use crate::checker::{only, AnomalyKind::PollSkip};
    use crate::HistoryBuilder;

    fn three_records() -> HistoryBuilder {
        let mut b = HistoryBuilder::new();
        b.send_ok(0, 0, 10, 0); // 0, 1
        b.send_ok(0, 0, 11, 1); // 2, 3
        b.send_ok(0, 0, 12, 2); // 4, 5
        b.poll(1001, &[(0, 0, 0, 10), (0, 1, 0, 11), (0, 2, 0, 12)]); // ok 7
        b
    }

    #[test]
    fn jumping_over_a_known_record_between_polls_is_a_skip() {
        let mut b = three_records();
        b.poll(1000, &[(0, 0, 0, 10)]); // ok 9
        b.poll(1000, &[(0, 2, 0, 12)]); // ok 11
        assert_eq!(only(&b.build(), PollSkip), vec![vec![9, 11]]);
    }

    #[test]
    fn jumping_within_one_poll_or_from_the_assigned_position_is_a_skip() {
        let mut b = three_records();
        b.poll(1000, &[(0, 0, 0, 10), (0, 2, 0, 12)]); // ok 9
        b.assign(1002, &[(0, 0)]); // ok 11
        b.poll(1002, &[(0, 1, 0, 11)]); // ok 13
        assert_eq!(only(&b.build(), PollSkip), vec![vec![9], vec![11, 13]]);
    }

    #[test]
    fn a_gap_with_no_known_record_is_not_a_skip() {
        let mut b = HistoryBuilder::new();
        b.send_ok(0, 0, 10, 0);
        b.send_info(0, 0, 11); // 2, 3: offset 1 unknown to anyone
        b.send_ok(0, 0, 12, 2);
        b.poll(1000, &[(0, 0, 0, 10), (0, 2, 0, 12)]);
        assert_eq!(only(&b.build(), PollSkip), Vec::<Vec<u64>>::new());
    }
}
