//! How much the run did: operations by outcome, records read, offsets reached per partition.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::model::{Model, SendOutcome};
use crate::history::{History, OpF, OpKind};

/// Op counts of a history.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every line of the history.
    pub ops: u64,
    pub sends_attempted: u64,
    pub sends_ok: u64,
    pub sends_fail: u64,
    pub sends_info: u64,
    /// Sends invoked but never completed (counted as unknown outcomes, like `info`).
    pub sends_pending: u64,
    /// `info` or pending sends whose value was read: they were written after all.
    pub sends_unknown_read: u64,
    /// `ok` sends that retention deleted before any poll read them: not
    /// checked (runs with `--retention-bytes`).
    #[serde(default)]
    pub sends_ok_trimmed_unread: u64,
    pub polls_ok: u64,
    /// Polls that completed `fail` or `info`.
    pub polls_not_ok: u64,
    /// Records returned by `ok` polls, repeats included.
    pub reads: u64,
    /// Distinct (key, value) pairs read.
    pub distinct_values_read: u64,
    pub faults: u64,
    pub partitions: BTreeMap<u32, PartitionCounts>,
}

/// Per partition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionCounts {
    pub sends_ok: u64,
    pub highest_acked_offset: Option<i64>,
    pub highest_read_offset: Option<i64>,
    pub distinct_values_read: u64,
}

impl Counts {
    pub(super) fn new(history: &History, model: &Model) -> Counts {
        let mut counts = Counts {
            ops: history.ops.len() as u64,
            ..Counts::default()
        };
        for op in &history.ops {
            match (op.f, op.kind) {
                (OpF::Poll, OpKind::Fail | OpKind::Info) => counts.polls_not_ok += 1,
                (OpF::Fault, OpKind::Invoke) => counts.faults += 1,
                _ => {}
            }
        }
        for send in &model.sends {
            counts.sends_attempted += 1;
            let read = model.first_read.contains_key(&(send.key, send.value));
            match send.outcome {
                SendOutcome::Ok { partition, offset } => {
                    counts.sends_ok += 1;
                    let p = counts.partitions.entry(partition).or_default();
                    p.sends_ok += 1;
                    p.highest_acked_offset = p.highest_acked_offset.max(Some(offset));
                    if !read && model.trimmed(partition, offset) {
                        counts.sends_ok_trimmed_unread += 1;
                    }
                }
                SendOutcome::Fail => counts.sends_fail += 1,
                SendOutcome::Unknown if send.completion.is_some() => counts.sends_info += 1,
                SendOutcome::Unknown => counts.sends_pending += 1,
            }
            if read && matches!(send.outcome, SendOutcome::Unknown) {
                counts.sends_unknown_read += 1;
            }
        }
        let mut distinct: HashSet<(u32, u32, u64)> = HashSet::new();
        for poll in &model.polls {
            counts.polls_ok += 1;
            for read in &poll.reads {
                counts.reads += 1;
                let p = counts.partitions.entry(read.partition).or_default();
                p.highest_read_offset = p.highest_read_offset.max(Some(read.offset));
                if distinct.insert((read.partition, read.key, read.value)) {
                    p.distinct_values_read += 1;
                }
            }
        }
        counts.distinct_values_read = model.first_read.len() as u64;
        counts
    }
}
