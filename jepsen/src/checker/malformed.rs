//! **malformed-history**: the history keeps its own rules.
//!
//! Indexes increase; each process has at most one open operation and completes it with the same
//! `f`; sends carry a key and a value, unique per key, and an `ok` send an offset; faults are
//! named and healed only while open. A history that breaks these cannot be trusted to show
//! anomalies, so the run is invalid. The problems are found while the model is built.

use super::model::Model;
use super::{Anomaly, AnomalyKind};

pub(super) fn check(model: &Model) -> Vec<Anomaly> {
    model
        .problems
        .iter()
        .map(|p| {
            Anomaly::new(
                AnomalyKind::MalformedHistory,
                p.ops.clone(),
                p.description.clone(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::checker::{only, AnomalyKind::MalformedHistory};
    use crate::{HistoryBuilder, Op, OpF, OpKind};

    #[test]
    fn broken_pairing_is_malformed() {
        let mut b = HistoryBuilder::new();
        b.push(Op::new(0, 0, 1000, OpKind::Ok, OpF::Poll)); // 0: no invoke
        b.invoke_send(0, 0, 10); // 1
        b.invoke_send(0, 0, 11); // 2: 1 still open
        b.push(Op::new(0, 0, 0, OpKind::Ok, OpF::Poll)); // 3: completes a send as a poll
        b.invoke_send(1, 0, 12); // 4
        b.complete_send(1, OpKind::Ok, 0, 12, None); // 5: ok without offset
        b.heal("kill node 9"); // 6: never started
        b.send_info(2, 0, 12); // 7, 8: value sent twice
        assert_eq!(
            only(&b.build(), MalformedHistory),
            vec![
                vec![0],
                vec![1, 2],
                vec![2, 3],
                vec![4, 5],
                vec![6],
                vec![4, 7]
            ]
        );
    }
}
