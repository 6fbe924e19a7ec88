//! Idempotent-producer state: the last batches of each producer id, so a
//! retried batch is recognised and not written twice.
//!
//! Replicated through the Raft log like everything in the state machine:
//! every replica sees the same batches in the same order, so a retry that
//! reaches a new leader after failover is caught there too.

use std::collections::HashMap;
use std::collections::VecDeque;

use cairn_raft::ProducerBatch;
use serde::Deserialize;
use serde::Serialize;

/// How many recent batches per producer are remembered (Kafka keeps 5).
const RECENT_BATCHES: usize = 5;

/// Key prefix of producer rows in the partition's state keyspace.
pub(crate) const PRODUCER_PREFIX: u8 = b'p';

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProducerState {
    pub epoch: i16,
    /// (first sequence, last sequence, base offset) of recent batches, oldest first.
    pub recent: VecDeque<(i32, i32, u64)>,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// New: write it.
    Append,
    /// A retry of a batch already written at this offset.
    Duplicate { base_offset: u64 },
    /// The batch does not follow the producer's last one: a gap, or a
    /// sequence that went backwards beyond the remembered batches, or a new
    /// epoch that does not start at sequence 0.
    OutOfOrder { expected: i32 },
    /// The batch carries an older epoch than the producer's: a fenced
    /// (zombie) producer sharing the id.
    Fenced { current: i16 },
}

#[derive(Default)]
pub(crate) struct Producers {
    states: HashMap<i64, ProducerState>,
}

impl Producers {
    pub(crate) fn key(producer_id: i64) -> [u8; 9] {
        let mut k = [0u8; 9];
        k[0] = PRODUCER_PREFIX;
        k[1..].copy_from_slice(&producer_id.to_be_bytes());
        k
    }

    pub(crate) fn load(&mut self, producer_id: i64, state: ProducerState) {
        self.states.insert(producer_id, state);
    }

    /// Every producer's state, for a snapshot.
    pub(crate) fn states(&self) -> Vec<(i64, ProducerState)> {
        let mut out: Vec<(i64, ProducerState)> =
            self.states.iter().map(|(id, s)| (*id, s.clone())).collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Kafka's rules (KIP-98, KIP-360): an unknown producer may start at any
    /// sequence (its state may have been trimmed away); an older epoch is
    /// fenced; a newer epoch starts at sequence 0; within an epoch a batch
    /// either repeats one of the last five (a retry) or starts right after
    /// the last one, wrapping from `i32::MAX` to 0.
    pub(crate) fn check(&self, b: &ProducerBatch) -> Verdict {
        let Some(state) = self.states.get(&b.producer_id) else {
            return Verdict::Append;
        };
        if b.epoch < state.epoch {
            return Verdict::Fenced {
                current: state.epoch,
            };
        }
        if b.epoch > state.epoch {
            return if b.first_sequence == 0 {
                Verdict::Append
            } else {
                Verdict::OutOfOrder { expected: 0 }
            };
        }
        if let Some((_, _, offset)) = state
            .recent
            .iter()
            .find(|(first, last, _)| *first == b.first_sequence && *last == b.last_sequence)
        {
            return Verdict::Duplicate {
                base_offset: *offset,
            };
        }
        match state.recent.back() {
            Some((_, last, _)) if b.first_sequence != next_after(*last) => Verdict::OutOfOrder {
                expected: next_after(*last),
            },
            _ => Verdict::Append,
        }
    }

    /// Records an appended batch; returns the producer's new state to persist.
    pub(crate) fn record(&mut self, b: &ProducerBatch, base_offset: u64) -> &ProducerState {
        let state = self.states.entry(b.producer_id).or_default();
        if b.epoch != state.epoch {
            state.epoch = b.epoch;
            state.recent.clear();
        }
        state
            .recent
            .push_back((b.first_sequence, b.last_sequence, base_offset));
        while state.recent.len() > RECENT_BATCHES {
            state.recent.pop_front();
        }
        state
    }
}

/// The sequence that follows `last`.
fn next_after(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: i32, last: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 7,
            epoch: 0,
            first_sequence: first,
            last_sequence: last,
        }
    }

    #[test]
    fn a_retried_batch_is_a_duplicate_with_its_original_offset() {
        let mut p = Producers::default();
        assert_eq!(p.check(&batch(0, 9)), Verdict::Append);
        p.record(&batch(0, 9), 100);
        assert_eq!(p.check(&batch(10, 19)), Verdict::Append);
        p.record(&batch(10, 19), 110);
        assert_eq!(
            p.check(&batch(0, 9)),
            Verdict::Duplicate { base_offset: 100 }
        );
        assert_eq!(
            p.check(&batch(10, 19)),
            Verdict::Duplicate { base_offset: 110 }
        );
        assert_eq!(p.check(&batch(5, 12)), Verdict::OutOfOrder { expected: 20 });
    }

    #[test]
    fn a_gap_is_out_of_order() {
        let mut p = Producers::default();
        p.record(&batch(0, 9), 0);
        assert_eq!(
            p.check(&batch(11, 19)),
            Verdict::OutOfOrder { expected: 10 }
        );
        assert_eq!(p.check(&batch(10, 19)), Verdict::Append);
    }

    #[test]
    fn an_unknown_producer_may_start_anywhere() {
        let p = Producers::default();
        assert_eq!(p.check(&batch(500, 509)), Verdict::Append);
    }

    #[test]
    fn sequences_wrap_after_the_largest() {
        let mut p = Producers::default();
        p.record(&batch(i32::MAX - 9, i32::MAX), 0);
        assert_eq!(p.check(&batch(0, 9)), Verdict::Append);
        assert_eq!(p.check(&batch(1, 9)), Verdict::OutOfOrder { expected: 0 });
    }

    #[test]
    fn an_older_epoch_is_fenced() {
        let mut p = Producers::default();
        let mut b = batch(0, 9);
        b.epoch = 3;
        p.record(&b, 0);
        let mut old = batch(10, 19);
        old.epoch = 2;
        assert_eq!(p.check(&old), Verdict::Fenced { current: 3 });
    }

    #[test]
    fn a_new_epoch_must_start_at_zero() {
        let mut p = Producers::default();
        p.record(&batch(0, 9), 0);
        let mut b = batch(10, 19);
        b.epoch = 1;
        assert_eq!(p.check(&b), Verdict::OutOfOrder { expected: 0 });
    }

    #[test]
    fn only_recent_batches_are_remembered() {
        let mut p = Producers::default();
        for i in 0..10 {
            p.record(&batch(i * 10, i * 10 + 9), i as u64 * 10);
        }
        assert_eq!(p.check(&batch(0, 9)), Verdict::OutOfOrder { expected: 100 });
        assert_eq!(
            p.check(&batch(90, 99)),
            Verdict::Duplicate { base_offset: 90 }
        );
    }

    #[test]
    fn a_new_epoch_starts_over() {
        let mut p = Producers::default();
        p.record(&batch(0, 9), 0);
        let mut b = batch(0, 9);
        b.epoch = 1;
        assert_eq!(p.check(&b), Verdict::Append);
        p.record(&b, 10);
        assert_eq!(p.check(&b), Verdict::Duplicate { base_offset: 10 });
    }
}
