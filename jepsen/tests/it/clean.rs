//! A history with every legitimate oddity a run produces is valid: sends of unknown outcome that
//! were and were not written, failed sends never read, consumers restarting, a fault window,
//! and a final drain.

use cairn_jepsen::{check, AnomalyKind, History, HistoryBuilder, OpKind};

fn clean_history() -> History {
    let mut b = HistoryBuilder::new();
    // --- two producers write to partitions 0 and 1
    b.send_ok(0, 0, 1, 0);
    b.send_ok(1, 1, 1, 0);
    b.send_ok(0, 0, 2, 1);
    // --- a consumer follows partition 0, in two partial polls
    b.assign(1000, &[(0, 0)]);
    b.poll(1000, &[(0, 0, 0, 1)]);
    b.poll(1000, &[(0, 1, 0, 2)]);
    // --- the leader of partition 0 is killed: a timeout that was written, one that was not,
    // and a definite failure; the two producers' sends overlap
    b.at_ms(100);
    b.fault("kill node 2");
    b.invoke_send(0, 0, 3);
    b.invoke_send(1, 0, 4);
    b.complete_send(0, OpKind::Info, 0, 3, None); // written at offset 2
    b.complete_send(1, OpKind::Info, 0, 4, None); // not written
    b.send_fail(0, 0, 5);
    b.invoke_poll(1000);
    b.complete_poll(1000, OpKind::Info, &[]); // the consumer may have moved
    b.send_ok(1, 1, 2, 1);
    b.at_ms(2_000);
    b.heal("kill node 2");
    // --- after the heal partition 0 takes writes again
    b.send_ok(0, 0, 6, 3);
    b.send_ok(1, 1, 3, 2);
    b.assign(1000, &[(0, 2)]);
    b.poll(1000, &[(0, 2, 0, 3), (0, 3, 0, 6)]);
    b.invoke_poll(1000);
    b.complete_poll(1000, OpKind::Fail, &[]);
    // --- final drain of both partitions from the start
    b.assign(1001, &[(0, 0), (1, 0)]);
    b.poll(1001, &[(0, 0, 0, 1), (0, 1, 0, 2), (1, 0, 1, 1)]);
    b.poll(
        1001,
        &[(0, 2, 0, 3), (1, 1, 1, 2), (0, 3, 0, 6), (1, 2, 1, 3)],
    );
    b.build()
}

#[test]
fn clean_history_is_valid() {
    let result = check(&clean_history());
    assert!(result.valid, "{:#?}", result.anomalies);
    assert!(result.anomaly_counts().values().all(|&n| n == 0));

    let c = &result.counts;
    assert_eq!(
        (
            c.sends_attempted,
            c.sends_ok,
            c.sends_fail,
            c.sends_info,
            c.sends_pending
        ),
        (9, 6, 1, 2, 0)
    );
    assert_eq!(c.sends_unknown_read, 1);
    assert_eq!((c.polls_ok, c.polls_not_ok), (5, 2));
    assert_eq!(c.reads, 11);
    assert_eq!(c.distinct_values_read, 7);
    assert_eq!(c.faults, 1);
    let p0 = &c.partitions[&0];
    assert_eq!(
        (p0.highest_acked_offset, p0.highest_read_offset),
        (Some(3), Some(3))
    );
    assert_eq!(p0.distinct_values_read, 4);

    let a = &result.availability;
    assert_eq!(a.faults.len(), 1);
    assert!(a.faults[0].all_recovered);
    assert!(a.liveness.satisfied(1_000_000));
}

#[test]
fn the_same_history_with_one_bad_read_is_not() {
    let mut history = clean_history();
    // The final drain reads the failed send 5 instead of 6 at offset 3.
    let last = history.ops.last_mut().unwrap();
    last.reads[2].value = 5;
    let result = check(&history);
    assert!(!result.valid);
    assert_eq!(result.count(AnomalyKind::AbortedRead), 1);
    assert_eq!(result.count(AnomalyKind::InconsistentOffsets), 1);
    assert_eq!(
        result.count(AnomalyKind::LostWrite),
        0,
        "6 was read by consumer 1000"
    );
}

#[test]
fn round_trip_through_a_file_keeps_the_verdict() {
    let history = clean_history();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    history.write_jsonl(&path).unwrap();
    let back = History::read_jsonl(&path).unwrap();
    assert_eq!(check(&back), check(&history));
}
