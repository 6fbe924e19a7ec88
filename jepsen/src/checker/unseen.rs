//! **unseen**: after the final drain every acknowledged send has been read.
//!
//! A send that completed `ok` at offset `o` of partition `p` is unseen when no poll read its
//! value and no poll read any offset `>= o` of `p` either (otherwise it is a lost write).
//! During a run this is normal lag; a run that ends with a full drain must have none.

use std::collections::HashMap;

use super::model::{Model, SendOutcome};
use super::{Anomaly, AnomalyKind};

pub(super) fn check(model: &Model) -> Vec<Anomaly> {
    let mut highest_read: HashMap<u32, i64> = HashMap::new();
    for poll in &model.polls {
        for read in &poll.reads {
            let highest = highest_read.entry(read.partition).or_insert(read.offset);
            *highest = (*highest).max(read.offset);
        }
    }
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
        let highest = highest_read.get(&partition).copied();
        if highest.is_some_and(|h| h >= offset) {
            continue; // lost, not unseen
        }
        let highest = highest.map_or_else(|| "nothing".to_string(), |h| format!("offset {h}"));
        anomalies.push(Anomaly::new(
            AnomalyKind::Unseen,
            send.ops(),
            format!(
                "key {} value {} acked at partition {partition} offset {offset} was never read \
                 (highest read: {highest})",
                send.key, send.value
            ),
        ));
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use crate::checker::{only, AnomalyKind::Unseen};
    use crate::HistoryBuilder;

    #[test]
    fn acked_record_past_every_read_is_unseen() {
        let mut b = HistoryBuilder::new();
        b.send_ok(0, 0, 10, 0); // 0, 1
        b.send_ok(0, 0, 11, 1); // 2, 3
        b.send_ok(1, 1, 20, 0); // 4, 5: partition never read at all
        b.poll(1000, &[(0, 0, 0, 10)]);
        assert_eq!(only(&b.build(), Unseen), vec![vec![2, 3], vec![4, 5]]);
    }
}
