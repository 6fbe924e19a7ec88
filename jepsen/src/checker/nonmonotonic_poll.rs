//! **nonmonotonic-poll** and **int-nonmonotonic-poll**: a consumer's offsets on a partition
//! strictly increase.
//!
//! Within one consumer process and one partition, each read offset must be greater than the
//! previous one read since the last `assign` of that partition (or `info` poll, after which the
//! position is unknown); an `assign` to position `n` counts as having read `n - 1`. A repeat or
//! step back between two polls is `nonmonotonic-poll` (ops: the earlier poll or assign, then
//! the poll); inside one poll it is `int-nonmonotonic-poll` (ops: that poll).

use super::model::{ConsumerStep, Model};
use super::{Anomaly, AnomalyKind};

pub(super) fn check(model: &Model) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    for (&(process, partition), steps) in &model.consumer_steps {
        // (offset, op that established it, whether that op was an assign)
        let mut last: Option<(i64, u64, bool)> = None;
        for &step in steps {
            match step {
                ConsumerStep::Reset { last: l, assign } => last = l.map(|o| (o, assign, true)),
                ConsumerStep::Read { offset, poll } => {
                    if let Some((prev, prev_op, from_assign)) = last {
                        if offset <= prev {
                            anomalies.push(anomaly(
                                process,
                                partition,
                                offset,
                                (prev, prev_op, from_assign),
                                poll,
                            ));
                        }
                    }
                    last = Some((offset, poll, false));
                }
            }
        }
    }
    anomalies.sort_by(|a, b| (a.kind, &a.ops).cmp(&(b.kind, &b.ops)));
    anomalies
}

fn anomaly(
    process: u64,
    partition: u32,
    offset: i64,
    prev: (i64, u64, bool),
    poll: u64,
) -> Anomaly {
    let (prev_offset, prev_op, from_assign) = prev;
    if from_assign {
        return Anomaly::new(
            AnomalyKind::NonmonotonicPoll,
            vec![prev_op, poll],
            format!(
                "process {process} partition {partition}: poll {poll} read offset {offset}, \
                 before position {} set by assign {prev_op}",
                prev_offset + 1
            ),
        );
    }
    if prev_op == poll {
        return Anomaly::new(
            AnomalyKind::IntNonmonotonicPoll,
            vec![poll],
            format!(
                "process {process} partition {partition}: poll {poll} read offset {offset} \
                 after offset {prev_offset}"
            ),
        );
    }
    Anomaly::new(
        AnomalyKind::NonmonotonicPoll,
        vec![prev_op, poll],
        format!(
            "process {process} partition {partition}: poll {poll} read offset {offset} after \
             poll {prev_op} read offset {prev_offset}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use crate::checker::only;
    use crate::checker::AnomalyKind::{IntNonmonotonicPoll, NonmonotonicPoll};
    use crate::HistoryBuilder;

    fn two_records() -> HistoryBuilder {
        let mut b = HistoryBuilder::new();
        b.send_ok(0, 0, 10, 0); // 0, 1
        b.send_ok(0, 0, 11, 1); // 2, 3
        b
    }

    #[test]
    fn reading_an_offset_again_in_a_later_poll_is_nonmonotonic() {
        let mut b = two_records();
        b.poll(1000, &[(0, 0, 0, 10), (0, 1, 0, 11)]); // ok 5
        b.poll(1000, &[(0, 1, 0, 11)]); // ok 7
        assert_eq!(only(&b.build(), NonmonotonicPoll), vec![vec![5, 7]]);
    }

    #[test]
    fn reading_before_the_assigned_position_is_nonmonotonic() {
        let mut b = two_records();
        b.assign(1000, &[(0, 1)]); // ok 5
        b.poll(1000, &[(0, 0, 0, 10), (0, 1, 0, 11)]); // ok 7
        assert_eq!(only(&b.build(), NonmonotonicPoll), vec![vec![5, 7]]);
    }

    #[test]
    fn going_back_within_one_poll_is_int_nonmonotonic() {
        let mut b = two_records();
        b.poll(1000, &[(0, 0, 0, 10), (0, 1, 0, 11), (0, 1, 0, 11)]); // ok 5
        assert_eq!(only(&b.build(), IntNonmonotonicPoll), vec![vec![5]]);
    }

    #[test]
    fn assign_resets_the_position() {
        let mut b = two_records();
        b.poll(1000, &[(0, 0, 0, 10), (0, 1, 0, 11)]);
        b.assign(1000, &[(0, 0)]);
        b.poll(1000, &[(0, 0, 0, 10), (0, 1, 0, 11)]);
        // An assign with an unknown outcome forgets the position.
        b.invoke_poll(1001);
        b.complete_poll(1001, crate::OpKind::Ok, &[(0, 1, 0, 11)]);
        let mut assign = crate::Op::new(0, 0, 1001, crate::OpKind::Invoke, crate::OpF::Assign);
        assign.positions = Some(vec![(0, 0)]);
        b.push(assign.clone());
        assign.kind = crate::OpKind::Info;
        b.push(assign);
        b.poll(1001, &[(0, 1, 0, 11)]);
        // Each partition is tracked on its own.
        b.send_ok(0, 1, 20, 0);
        b.poll(1002, &[(0, 1, 0, 11), (1, 0, 1, 20)]);
        assert_eq!(only(&b.build(), NonmonotonicPoll), Vec::<Vec<u64>>::new());
    }
}
