//! **nonmonotonic-send**: one producer's acknowledged sends on one key get increasing offsets.
//!
//! A producer process sends one record at a time, so a send it invoked later that completed
//! `ok` must land after every earlier acknowledged send of that process on that key. Ops: both
//! sends (invoke and ok each); the earlier one is the highest offset acked before.

use std::collections::HashMap;

use super::model::{Model, Send, SendOutcome};
use super::{Anomaly, AnomalyKind};

pub(super) fn check(model: &Model) -> Vec<Anomaly> {
    // (process, key) -> the acked send with the highest offset so far
    let mut highest: HashMap<(u64, u32), (i64, &Send)> = HashMap::new();
    let mut anomalies = Vec::new();
    for send in &model.sends {
        let SendOutcome::Ok { offset, .. } = send.outcome else {
            continue;
        };
        match highest.get(&(send.process, send.key)) {
            Some(&(prev_offset, prev)) if offset <= prev_offset => {
                let mut ops = prev.ops();
                ops.extend(send.ops());
                anomalies.push(Anomaly::new(
                    AnomalyKind::NonmonotonicSend,
                    ops,
                    format!(
                        "process {} key {}: value {} acked at offset {offset} after value {} at \
                         offset {prev_offset}",
                        send.process, send.key, send.value, prev.value
                    ),
                ));
            }
            _ => {
                highest.insert((send.process, send.key), (offset, send));
            }
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use crate::checker::{only, AnomalyKind::NonmonotonicSend};
    use crate::HistoryBuilder;

    #[test]
    fn a_later_send_acked_below_an_earlier_one_is_nonmonotonic() {
        let mut b = HistoryBuilder::new();
        b.send_ok(0, 0, 10, 1); // 0, 1
        b.send_ok(0, 0, 11, 0); // 2, 3
        b.send_ok(1, 0, 12, 2); // 4, 5: another producer, in order
        b.poll(1000, &[(0, 0, 0, 11), (0, 1, 0, 10), (0, 2, 0, 12)]);
        assert_eq!(only(&b.build(), NonmonotonicSend), vec![vec![0, 1, 2, 3]]);
    }
}
