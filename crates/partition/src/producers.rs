//! Idempotent-producer state: the last batches of each producer id, so a
//! retried batch is recognised and not written twice.
//!
//! Replicated through the Raft log like everything in the state machine:
//! every replica sees the same batches in the same order, so a retry that
//! reaches a new leader after failover is caught there too.
//!
//! A producer's state expires `producer.id.expiration.ms` after its last
//! appended batch (Kafka's rule), so that the state of producers that went
//! away (every client start and every InitProducerId takes a new id) does
//! not pile up. Expiry is decided from the log alone: the leader stamps
//! each produce entry with its clock and the topic's expiration
//! (`cairn_raft::ProduceStamp`); the partition's producer clock is the
//! latest stamp applied (it never moves back), a producer's last-seen time
//! is that clock when its last batch was appended, and an entry's stamp
//! says when and by which expiration producers expire. Every replica
//! therefore expires the same producers at the same entry, and a snapshot
//! holds what replaying the log would.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::collections::VecDeque;

use cairn_raft::decode_exact;
use cairn_raft::CodecError;
use cairn_raft::ProducerBatch;
use serde::Deserialize;
use serde::Serialize;

/// How many recent batches per producer are remembered (Kafka keeps 5).
const RECENT_BATCHES: usize = 5;

/// At most this many producers are expired (or, for producers without a
/// last-seen time, given one) per applied entry: bounded work per apply.
/// An entry adds at most one producer, so the expired ones still leave
/// faster than new ones come; one not yet removed is already treated as
/// unknown ([`Producers::forget_if_expired`]).
pub(crate) const EXPIRE_PER_ENTRY: usize = 8;

/// Key prefix of producer rows in the partition's state keyspace.
pub(crate) const PRODUCER_PREFIX: u8 = b'p';

/// One producer's state. Stored (rows and snapshots) as the first format,
/// [`ProducerStateV1`], followed by `last_seen_ms`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProducerState {
    pub epoch: i16,
    /// (first sequence, last sequence, base offset) of recent batches, oldest first.
    pub recent: VecDeque<(i32, i32, u64)>,
    /// The partition's producer clock (ms since epoch) when the producer's
    /// last batch was appended. `None` for a producer written before
    /// entries carried a stamp; it is given the time of a later stamped
    /// entry (see [`Producers::expire`]).
    pub last_seen_ms: Option<i64>,
}

/// The first format of a producer's state, without a last-seen time: rows
/// and snapshots written before producer expiry. Also the layout of a
/// producer in a snapshot ([`ProducerState::split`]).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProducerStateV1 {
    pub epoch: i16,
    pub recent: VecDeque<(i32, i32, u64)>,
}

impl ProducerState {
    /// A stored row: the current format (the first one plus the last-seen
    /// time), else the first format. Each is decoded whole, so exactly one
    /// of them fits a row: the current one starts with the first one's
    /// bytes and has more.
    pub(crate) fn decode_row(bytes: &[u8]) -> Result<ProducerState, CodecError> {
        match decode_exact::<ProducerState>(bytes) {
            Ok(state) => Ok(state),
            Err(e) => match decode_exact::<ProducerStateV1>(bytes) {
                Ok(v1) => Ok(ProducerState::joined(v1, None)),
                Err(_) => Err(e),
            },
        }
    }

    /// The state as a snapshot holds it: the first format and, apart, the
    /// last-seen time.
    pub(crate) fn split(self) -> (ProducerStateV1, Option<i64>) {
        (
            ProducerStateV1 {
                epoch: self.epoch,
                recent: self.recent,
            },
            self.last_seen_ms,
        )
    }

    pub(crate) fn joined(v1: ProducerStateV1, last_seen_ms: Option<i64>) -> ProducerState {
        ProducerState {
            epoch: v1.epoch,
            recent: v1.recent,
            last_seen_ms,
        }
    }

    fn expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        self.last_seen_ms
            .is_some_and(|seen| now_ms.saturating_sub(seen) >= expiration_ms)
    }
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

/// A producer's state changed by [`Producers::expire`]: the new state to
/// store, or `None` when it expired (its row is deleted).
pub(crate) type Expired = (i64, Option<ProducerState>);

#[derive(Default)]
pub(crate) struct Producers {
    states: HashMap<i64, ProducerState>,
    /// (last seen, producer id) of every producer, oldest first; those
    /// without a time (`None`) before all others.
    by_last_seen: BTreeSet<(Option<i64>, i64)>,
}

impl Producers {
    pub(crate) fn key(producer_id: i64) -> [u8; 9] {
        let mut k = [0u8; 9];
        k[0] = PRODUCER_PREFIX;
        k[1..].copy_from_slice(&producer_id.to_be_bytes());
        k
    }

    pub(crate) fn load(&mut self, producer_id: i64, state: ProducerState) {
        self.remove(producer_id);
        self.by_last_seen.insert((state.last_seen_ms, producer_id));
        self.states.insert(producer_id, state);
    }

    fn remove(&mut self, producer_id: i64) -> Option<ProducerState> {
        let state = self.states.remove(&producer_id)?;
        self.by_last_seen.remove(&(state.last_seen_ms, producer_id));
        Some(state)
    }

    /// How many producers are held.
    pub(crate) fn len(&self) -> usize {
        self.states.len()
    }

    /// Every producer's state, for a snapshot.
    pub(crate) fn states(&self) -> Vec<(i64, ProducerState)> {
        let mut out: Vec<(i64, ProducerState)> =
            self.states.iter().map(|(id, s)| (*id, s.clone())).collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Applies the time of a stamped entry, `now_ms` (the producer clock,
    /// which never moves back): up to `limit` producers are dealt with,
    /// oldest first. One without a last-seen time (written before entries
    /// were stamped) gets `now_ms`, so it expires one expiration from now;
    /// one whose last batch is `expiration_ms` or more before `now_ms` is
    /// removed. Returns the changed producers, for the store.
    pub(crate) fn expire(&mut self, now_ms: i64, expiration_ms: i64, limit: usize) -> Vec<Expired> {
        let due: Vec<(Option<i64>, i64)> = self
            .by_last_seen
            .iter()
            .take(limit)
            .take_while(|(seen, _)| {
                seen.is_none_or(|seen| now_ms.saturating_sub(seen) >= expiration_ms)
            })
            .copied()
            .collect();
        let mut changed = Vec::with_capacity(due.len());
        for (seen, id) in due {
            let Some(mut state) = self.remove(id) else {
                continue;
            };
            if seen.is_none() {
                state.last_seen_ms = Some(now_ms);
                self.load(id, state.clone());
                changed.push((id, Some(state)));
            } else {
                changed.push((id, None));
            }
        }
        changed
    }

    /// Removes `producer_id`'s state if it expired by `now_ms`, whether or
    /// not [`expire`](Self::expire) got to it yet, so that an expired
    /// producer is unknown (may start at any sequence) at the same entry on
    /// every replica. True when it was removed.
    pub(crate) fn forget_if_expired(
        &mut self,
        producer_id: i64,
        now_ms: i64,
        expiration_ms: i64,
    ) -> bool {
        let expired = self
            .states
            .get(&producer_id)
            .is_some_and(|s| s.expired(now_ms, expiration_ms));
        if expired {
            self.remove(producer_id);
        }
        expired
    }

    /// Kafka's rules (KIP-98, KIP-360): an unknown producer may start at any
    /// sequence (its state may have been trimmed away or expired); an older
    /// epoch is fenced; a newer epoch starts at sequence 0; within an epoch
    /// a batch either repeats one of the last five (a retry) or starts right
    /// after the last one, wrapping from `i32::MAX` to 0.
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

    /// Records an appended batch, at producer clock `at_ms` (`None` before
    /// the first stamped entry); returns the producer's new state to
    /// persist. The last-seen time never moves back.
    pub(crate) fn record(
        &mut self,
        b: &ProducerBatch,
        base_offset: u64,
        at_ms: Option<i64>,
    ) -> &ProducerState {
        let mut state = self.remove(b.producer_id).unwrap_or_default();
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
        state.last_seen_ms = state.last_seen_ms.max(at_ms);
        self.by_last_seen
            .insert((state.last_seen_ms, b.producer_id));
        self.states
            .entry(b.producer_id)
            .insert_entry(state)
            .into_mut()
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
        p.record(&batch(0, 9), 100, None);
        assert_eq!(p.check(&batch(10, 19)), Verdict::Append);
        p.record(&batch(10, 19), 110, None);
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
        p.record(&batch(0, 9), 0, None);
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
        p.record(&batch(i32::MAX - 9, i32::MAX), 0, None);
        assert_eq!(p.check(&batch(0, 9)), Verdict::Append);
        assert_eq!(p.check(&batch(1, 9)), Verdict::OutOfOrder { expected: 0 });
    }

    #[test]
    fn an_older_epoch_is_fenced() {
        let mut p = Producers::default();
        let mut b = batch(0, 9);
        b.epoch = 3;
        p.record(&b, 0, None);
        let mut old = batch(10, 19);
        old.epoch = 2;
        assert_eq!(p.check(&old), Verdict::Fenced { current: 3 });
    }

    #[test]
    fn a_new_epoch_must_start_at_zero() {
        let mut p = Producers::default();
        p.record(&batch(0, 9), 0, None);
        let mut b = batch(10, 19);
        b.epoch = 1;
        assert_eq!(p.check(&b), Verdict::OutOfOrder { expected: 0 });
    }

    #[test]
    fn only_recent_batches_are_remembered() {
        let mut p = Producers::default();
        for i in 0..10 {
            p.record(&batch(i * 10, i * 10 + 9), i as u64 * 10, None);
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
        p.record(&batch(0, 9), 0, None);
        let mut b = batch(0, 9);
        b.epoch = 1;
        assert_eq!(p.check(&b), Verdict::Append);
        p.record(&b, 10, None);
        assert_eq!(p.check(&b), Verdict::Duplicate { base_offset: 10 });
    }

    fn from(id: i64, first: i32, last: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: id,
            ..batch(first, last)
        }
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_producer_expires_an_expiration_after_its_last_batch() {
        let mut p = Producers::default();
        p.record(&batch(0, 9), 0, Some(1000));
        p.record(&batch(10, 19), 10, Some(1000 + HOUR / 2));
        // Only the sweep's `now` says what expired: nothing yet.
        assert!(p.expire(1000 + HOUR, HOUR, 8).is_empty());
        assert!(!p.forget_if_expired(7, 1000 + HOUR / 2 + HOUR - 1, HOUR));
        assert_eq!(
            p.check(&batch(10, 19)),
            Verdict::Duplicate { base_offset: 10 }
        );
        assert_eq!(p.expire(1000 + HOUR / 2 + HOUR, HOUR, 8), vec![(7, None)]);
        assert_eq!(p.len(), 0);
        assert_eq!(p.check(&batch(10, 19)), Verdict::Append);
    }

    #[test]
    fn the_last_seen_time_never_moves_back() {
        let mut p = Producers::default();
        p.record(&batch(0, 9), 0, Some(5000));
        // A batch stamped by a leader whose clock is behind.
        p.record(&batch(10, 19), 10, Some(4000));
        // A batch of an entry without a stamp.
        let state = p.record(&batch(20, 29), 20, None);
        assert_eq!(state.last_seen_ms, Some(5000));
        assert!(p.expire(5000 + HOUR - 1, HOUR, 8).is_empty());
        assert!(!p.forget_if_expired(7, 5000 + HOUR - 1, HOUR));
        assert!(p.forget_if_expired(7, 5000 + HOUR, HOUR));
    }

    #[test]
    fn a_sweep_does_at_most_its_limit_oldest_first() {
        let mut p = Producers::default();
        for id in 0..20 {
            // Ids 0..20 seen at times 20, 19, ..., 1.
            p.record(&from(id, 0, 0), 0, Some(20 - id));
        }
        let expired: Vec<i64> = p
            .expire(100, 1, 8)
            .into_iter()
            .map(|(id, state)| {
                assert_eq!(state, None);
                id
            })
            .collect();
        assert_eq!(expired, (12..20).rev().collect::<Vec<_>>());
        assert_eq!(p.len(), 12);
        // Not yet swept, but expired: unknown to the check that follows.
        assert!(p.forget_if_expired(0, 100, 1));
        assert_eq!(p.len(), 11);
        // Ids 1..=11 are left, seen at 19..=9; nothing younger than the
        // expiration goes.
        assert_eq!(p.expire(100, 92, 8), vec![]);
        assert_eq!(p.expire(100, 91, 8), vec![(11, None)]);
    }

    #[test]
    fn producers_without_a_time_get_one_from_the_first_stamped_entries() {
        let mut p = Producers::default();
        // Written before entries had stamps (or loaded from such a row).
        p.record(&from(1, 0, 9), 0, None);
        p.load(2, ProducerState::joined(ProducerStateV1::default(), None));
        p.record(&from(3, 0, 9), 10, Some(500));
        // They never count as expired before they have a time...
        assert!(!p.forget_if_expired(1, i64::MAX, 1));
        // ... and get the sweep's time, two at most here, oldest first.
        let stamped = p.expire(1000, HOUR, 2);
        assert_eq!(
            stamped
                .iter()
                .map(|(id, s)| (*id, s.as_ref().and_then(|s| s.last_seen_ms)))
                .collect::<Vec<_>>(),
            vec![(1, Some(1000)), (2, Some(1000))]
        );
        // Producer 3 (seen at 500) expires an hour after 500, they an hour after 1000.
        assert_eq!(p.expire(500 + HOUR, HOUR, 8), vec![(3, None)]);
        assert_eq!(p.expire(1000 + HOUR - 1, HOUR, 8), vec![]);
        assert_eq!(p.expire(1000 + HOUR, HOUR, 8).len(), 2);
        assert_eq!(p.len(), 0);
    }

    use crate::test_hex::hex;
    use crate::test_hex::unhex;

    /// Producer rows as stored: the first format was written by Cairn
    /// before producer expiry (commit 58c05b8) and must still load.
    #[test]
    fn stored_producer_rows_keep_their_bytes() {
        let recent: VecDeque<(i32, i32, u64)> = [(0, 9, 100), (10, 19, 110)].into();
        let first_format = "060200126414266e";
        assert_eq!(
            ProducerState::decode_row(&unhex(first_format)).unwrap(),
            ProducerState {
                epoch: 3,
                recent: recent.clone(),
                last_seen_ms: None,
            }
        );
        for (state, stored) in [
            (
                ProducerState {
                    epoch: 3,
                    recent: recent.clone(),
                    last_seen_ms: Some(1_700_000_000_000),
                },
                // The first format's bytes, then Some(time).
                "060200126414266e01fd00d0ca9f17030000",
            ),
            (
                ProducerState {
                    epoch: 3,
                    recent,
                    last_seen_ms: None,
                },
                "060200126414266e00",
            ),
        ] {
            let bytes = cairn_raft::encode(&state).unwrap();
            assert_eq!(hex(&bytes), stored);
            assert_eq!(ProducerState::decode_row(&bytes).unwrap(), state);
        }
        // Neither format: a bad option tag, a truncated row.
        assert!(ProducerState::decode_row(&unhex("060200126414266e02")).is_err());
        assert!(ProducerState::decode_row(&unhex("0602")).is_err());
    }
}

/// Producers against a model that forgets every expired producer at once
/// (no bound on the work): the verdicts are the same whatever the times,
/// expiration and sweep size, with the state reloaded from its snapshot
/// form at any point, and what is held beyond the live producers stays
/// bounded. Times are the producer clock's, which never moves back.
#[cfg(test)]
mod prop_tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// A batch: producer, epoch, first sequence, length, time step.
        Batch(i64, i16, i32, i32, i64),
        /// The state goes through a snapshot (or a restart) and back.
        Reload,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            12 => (0i64..12, 0i16..2, 0i32..40, 1i32..4, prop_oneof![0i64..10, 0i64..200])
                .prop_map(|(id, e, f, n, dt)| Op::Batch(id, e, f, n, dt)),
            1 => Just(Op::Reload),
        ]
    }

    /// The model: per live producer, the state a [`Producers`] holding it
    /// alone would have; every expired one forgotten at once.
    #[derive(Default)]
    struct Model {
        states: HashMap<i64, ProducerState>,
    }

    impl Model {
        fn judge(&mut self, b: &ProducerBatch, now: i64, exp: i64, offset: u64) -> Verdict {
            self.states.retain(|_, s| !s.expired(now, exp));
            let mut alone = Producers::default();
            if let Some(state) = self.states.get(&b.producer_id) {
                alone.load(b.producer_id, state.clone());
            }
            let verdict = alone.check(b);
            if verdict == Verdict::Append {
                let state = alone.record(b, offset, Some(now)).clone();
                self.states.insert(b.producer_id, state);
            }
            verdict
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn bounded_expiry_answers_as_eager_expiry(
            ops in proptest::collection::vec(op(), 1..300),
            expiration in prop_oneof![1i64..20, 20i64..400],
            limit in 1usize..4,
        ) {
            let mut p = Producers::default();
            let mut model = Model::default();
            let mut now = 1_000i64;
            for (offset, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Batch(id, epoch, first, n, dt) => {
                        now += dt;
                        let b = ProducerBatch {
                            producer_id: id,
                            epoch,
                            first_sequence: first,
                            last_sequence: first + n - 1,
                        };
                        p.expire(now, expiration, limit);
                        p.forget_if_expired(id, now, expiration);
                        let verdict = p.check(&b);
                        if verdict == Verdict::Append {
                            p.record(&b, offset as u64, Some(now));
                        }
                        prop_assert_eq!(
                            verdict,
                            model.judge(&b, now, expiration, offset as u64)
                        );
                        // The live ones are held as the model holds them.
                        for (id, state) in &model.states {
                            prop_assert_eq!(p.states.get(id), Some(state));
                        }
                    }
                    Op::Reload => {
                        // Through the stored rows (a restart) and the
                        // snapshot's split form.
                        let mut reloaded = Producers::default();
                        for (id, state) in p.states() {
                            let row = cairn_raft::encode(&state).unwrap();
                            let (v1, seen) = ProducerState::decode_row(&row).unwrap().split();
                            reloaded.load(id, ProducerState::joined(v1, seen));
                        }
                        prop_assert_eq!(reloaded.states(), p.states());
                        p = reloaded;
                    }
                }
            }
            // Entries with no new producer: the sweeps get to every expired one.
            let behind = p.len() - model.states.len();
            for _ in 0..behind.div_ceil(limit) {
                p.expire(now, expiration, limit);
            }
            prop_assert_eq!(p.len(), model.states.len());
        }
    }
}
