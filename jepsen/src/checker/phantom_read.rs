//! **phantom-read**: every record read was sent by someone.
//!
//! A (key, value) read that no send ever invoked came from nowhere: corruption, a read of
//! another topic's data, or a decoding bug. Ops: the first poll that read it.

use super::model::Model;
use super::{Anomaly, AnomalyKind};

pub(super) fn check(model: &Model) -> Vec<Anomaly> {
    let mut anomalies: Vec<Anomaly> = model
        .first_read
        .iter()
        .filter(|(kv, _)| !model.send_by_value.contains_key(kv))
        .map(|(&(key, value), &poll)| {
            Anomaly::new(
                AnomalyKind::PhantomRead,
                vec![poll],
                format!("poll {poll} read key {key} value {value}, which was never sent"),
            )
        })
        .collect();
    anomalies.sort_by(|a, b| (&a.ops, &a.description).cmp(&(&b.ops, &b.description)));
    anomalies
}

#[cfg(test)]
mod tests {
    use crate::checker::{only, AnomalyKind::PhantomRead};
    use crate::HistoryBuilder;

    #[test]
    fn reading_a_value_never_sent_is_a_phantom() {
        let mut b = HistoryBuilder::new();
        b.send_ok(0, 0, 10, 0); // 0, 1
        b.poll(1000, &[(0, 0, 0, 10), (0, 1, 0, 99)]); // ok 3
                                                       // Sent on key 0, read under key 1: also never sent.
        b.poll(1001, &[(1, 0, 1, 10)]); // ok 5
        assert_eq!(only(&b.build(), PhantomRead), vec![vec![3], vec![5]]);
    }
}
