//! **aborted-read**: a send that definitely failed is never read.
//!
//! A `fail` completion promises the record was not written; reading its value breaks that
//! promise (the client should have answered `info`). Ops: the send's invoke and fail, and the
//! first poll that read it.

use super::model::{Model, SendOutcome};
use super::{Anomaly, AnomalyKind};

pub(super) fn check(model: &Model) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    for send in &model.sends {
        if send.outcome != SendOutcome::Fail {
            continue;
        }
        let Some(&poll) = model.first_read.get(&(send.key, send.value)) else {
            continue;
        };
        let mut ops = send.ops();
        ops.push(poll);
        anomalies.push(Anomaly::new(
            AnomalyKind::AbortedRead,
            ops,
            format!(
                "key {} value {} failed but poll {poll} read it",
                send.key, send.value
            ),
        ));
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use crate::checker::{only, AnomalyKind::AbortedRead};
    use crate::HistoryBuilder;

    #[test]
    fn reading_a_failed_send_is_an_aborted_read() {
        let mut b = HistoryBuilder::new();
        b.send_ok(0, 0, 10, 0); // 0, 1
        b.send_fail(0, 0, 11); // 2, 3
        b.poll(1000, &[(0, 0, 0, 10), (0, 1, 0, 11)]); // ok 5
        b.poll(1001, &[(0, 0, 0, 10), (0, 1, 0, 11)]); // ok 7: reported once
        assert_eq!(only(&b.build(), AbortedRead), vec![vec![2, 3, 5]]);
    }
}
