//! Runs with `--retention-bytes`: records below the log start were deleted. An acknowledged
//! record deleted before any poll read it is counted, not judged; everything at or above the
//! log start is checked as before.

use cairn_jepsen::{check, AnomalyKind, History, HistoryBuilder, OpKind};

/// Partition 0 holds values 1..=5 at offsets 0..=4. A consumer reads offsets 0 and 1, then
/// finds its position deleted and moves to the log start, 3 (an `info` poll carrying it), and
/// reads 3 and 4. Offset 2 (value 3) was never read. With `log_start` set the history is
/// valid; `last_reads` are what the consumer reads after the move.
fn trimmed_history(log_start: Option<i64>, last_reads: &[(u32, i64, u32, u64)]) -> History {
    let mut b = HistoryBuilder::new();
    for (offset, value) in (0..5).zip(1..) {
        b.send_ok(0, 0, value, offset);
    }
    b.assign(1000, &[(0, 0)]);
    b.poll(1000, &[(0, 0, 0, 1), (0, 1, 0, 2)]);
    b.invoke_poll(1000);
    let moved = b.complete_poll(1000, OpKind::Info, &[]);
    b.poll(1000, last_reads);
    let mut history = b.build();
    let op = history
        .ops
        .iter_mut()
        .find(|op| op.index == moved)
        .expect("the info poll");
    op.partition = Some(0);
    op.log_start = log_start;
    history
}

const AFTER_THE_MOVE: &[(u32, i64, u32, u64)] = &[(0, 3, 0, 4), (0, 4, 0, 5)];

#[test]
fn a_record_deleted_before_any_read_is_counted_not_judged() {
    let result = check(&trimmed_history(Some(3), AFTER_THE_MOVE));
    assert!(result.valid, "{:#?}", result.anomalies);
    assert_eq!(result.counts.sends_ok_trimmed_unread, 1);
}

#[test]
fn without_a_log_start_the_unread_record_is_lost() {
    let result = check(&trimmed_history(None, AFTER_THE_MOVE));
    assert!(!result.valid);
    assert_eq!(result.count(AnomalyKind::LostWrite), 1);
    assert_eq!(result.counts.sends_ok_trimmed_unread, 0);
}

#[test]
fn a_record_at_or_above_the_log_start_is_still_checked() {
    // The log start reported was 2, so offset 2 still held value 3: nobody read it although
    // offset 3 was read.
    let result = check(&trimmed_history(Some(2), AFTER_THE_MOVE));
    assert!(!result.valid);
    assert_eq!(result.count(AnomalyKind::LostWrite), 1);
    // A wrong value above the log start is an inconsistent read as before.
    let result = check(&trimmed_history(Some(3), &[(0, 3, 0, 5)]));
    assert!(!result.valid);
    assert!(result.count(AnomalyKind::InconsistentOffsets) >= 1);
}
