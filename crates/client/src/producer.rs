//! Idempotent produce: a producer id per client and sequence numbers per
//! partition, stamped into the batches that
//! [`crate::Client::produce_records`] builds.
//!
//! A retried batch carries the same producer id and sequences, so the
//! partition recognises it and answers with the original offset
//! (`ProduceResponse.duplicate`) instead of appending it again. The server
//! requires each producer's batches to follow one another without gaps per
//! partition (Kafka's rule), so sends to one partition are serialised: the
//! partition's sequence slot stays locked until the send has finished.
//!
//! A send that fails for good leaves a hole where its sequences were (it may
//! or may not have been written). The partition then starts over with the
//! next producer epoch at sequence 0, as Kafka's producer does (KIP-360), so
//! the next batch is not refused as out of order.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

use crate::owned_record::ProducerStamp;

/// Where one partition's batches of this client are: the producer id and
/// epoch they carry and the next sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SequenceState {
    producer_id: i64,
    epoch: i16,
    next: i32,
}

impl SequenceState {
    fn new(producer_id: i64) -> Self {
        SequenceState {
            producer_id,
            epoch: 0,
            next: 0,
        }
    }

    /// Starts over after a failed send: the next epoch at sequence 0; a new
    /// producer id once the epochs run out.
    fn restart(&mut self) {
        if self.epoch == i16::MAX {
            self.producer_id = random_producer_id();
            self.epoch = 0;
        } else {
            self.epoch += 1;
        }
        self.next = 0;
    }
}

/// One partition's sequence state, locked for a whole send.
pub(crate) type SequenceSlot = Arc<tokio::sync::Mutex<SequenceState>>;

/// Producer identity and per-partition sequence state of one client.
#[derive(Debug)]
pub(crate) struct ProducerSession {
    producer_id: i64,
    slots: Mutex<HashMap<(String, u32), SequenceSlot>>,
}

fn random_producer_id() -> i64 {
    let random = RandomState::new().build_hasher().finish();
    (random & (i64::MAX as u64)) as i64
}

impl ProducerSession {
    /// A session with a random non-negative producer id.
    pub(crate) fn new() -> Self {
        ProducerSession {
            producer_id: random_producer_id(),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The sequence slot of a partition; lock it for the whole send.
    pub(crate) fn slot(&self, topic: &str, partition: u32) -> SequenceSlot {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            slots
                .entry((topic.to_owned(), partition))
                .or_insert_with(|| {
                    Arc::new(tokio::sync::Mutex::new(SequenceState::new(
                        self.producer_id,
                    )))
                }),
        )
    }
}

/// A batch's reserved sequences: holds the partition's slot until the send
/// is done, so the partition's next batch follows in order. Unless marked
/// [`Reservation::sent`], dropping it (a failed or cancelled send, whose
/// batch may or may not have been written) starts the partition's next
/// batch on a new epoch at sequence 0.
#[derive(Debug)]
pub(crate) struct Reservation {
    slot: OwnedMutexGuard<SequenceState>,
    sent: bool,
}

impl Reservation {
    /// The send ended and its outcome is known (written or a duplicate):
    /// the next batch follows it.
    pub(crate) fn sent(mut self) {
        self.sent = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.sent {
            self.slot.restart();
        }
    }
}

/// Reserves the sequences of a batch of `count` records to `topic`/`partition`:
/// the stamp to build the batch with, and the reservation to [`settle`]
/// after the send.
/// `(None, None)` without a session (a non-idempotent client).
pub(crate) async fn reserve_sequences(
    session: Option<&ProducerSession>,
    topic: &str,
    partition: u32,
    count: usize,
) -> (Option<ProducerStamp>, Option<Reservation>) {
    let Some(session) = session else {
        return (None, None);
    };
    let mut slot = session.slot(topic, partition).lock_owned().await;
    let stamp = ProducerStamp {
        producer_id: slot.producer_id,
        epoch: slot.epoch,
        base_sequence: slot.next,
    };
    slot.next = next_sequence(slot.next, count);
    (Some(stamp), Some(Reservation { slot, sent: false }))
}

/// Settles a reservation by the send's outcome: a success lets the next
/// batch follow; a failure drops it, starting a new epoch.
pub(crate) fn settle<T, E>(reservation: Option<Reservation>, result: &Result<T, E>) {
    if let (Some(r), Ok(_)) = (reservation, result) {
        r.sent();
    }
}

/// The sequence after a batch of `count` records starting at `current`,
/// wrapping from `i32::MAX` to 0 like Kafka.
pub(crate) fn next_sequence(current: i32, count: usize) -> i32 {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let next = i64::from(current.max(0)).saturating_add(count);
    (next % (i64::from(i32::MAX) + 1)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_advance_and_wrap() {
        assert_eq!(next_sequence(0, 5), 5);
        assert_eq!(next_sequence(5, 1), 6);
        assert_eq!(next_sequence(i32::MAX - 1, 1), i32::MAX);
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
    }

    #[tokio::test]
    async fn slots_are_per_partition_and_shared() {
        let s = ProducerSession::new();
        assert!(s.producer_id >= 0);
        let (stamp, r) = reserve_sequences(Some(&s), "t", 0, 10).await;
        assert_eq!(stamp.map(|s| s.base_sequence), Some(0));
        settle(r, &Result::<(), ()>::Ok(()));
        let (stamp, r) = reserve_sequences(Some(&s), "t", 0, 1).await;
        assert_eq!(stamp.map(|s| s.base_sequence), Some(10));
        settle(r, &Result::<(), ()>::Ok(()));
        assert_eq!(s.slot("t", 0).lock().await.next, 11);
        assert_eq!(s.slot("t", 1).lock().await.next, 0);
        assert_eq!(s.slot("u", 0).lock().await.next, 0);
    }

    #[tokio::test]
    async fn a_failed_send_starts_a_new_epoch_at_zero() {
        let s = ProducerSession::new();
        let (first, r) = reserve_sequences(Some(&s), "t", 0, 5).await;
        settle(r, &Result::<(), ()>::Ok(()));
        let (second, r) = reserve_sequences(Some(&s), "t", 0, 5).await;
        settle(r, &Result::<(), ()>::Err(()));
        let (third, _r) = reserve_sequences(Some(&s), "t", 0, 5).await;
        let (first, second, third) = (first.unwrap(), second.unwrap(), third.unwrap());
        assert_eq!((first.epoch, first.base_sequence), (0, 0));
        assert_eq!((second.epoch, second.base_sequence), (0, 5));
        assert_eq!((third.epoch, third.base_sequence), (1, 0));
        assert_eq!(third.producer_id, first.producer_id);
    }

    #[tokio::test]
    async fn a_cancelled_send_starts_a_new_epoch_too() {
        let s = ProducerSession::new();
        let (_, r) = reserve_sequences(Some(&s), "t", 0, 5).await;
        drop(r);
        let (stamp, _r) = reserve_sequences(Some(&s), "t", 0, 5).await;
        let stamp = stamp.unwrap();
        assert_eq!((stamp.epoch, stamp.base_sequence), (1, 0));
    }

    #[test]
    fn epochs_run_out_into_a_new_producer_id() {
        let mut st = SequenceState {
            producer_id: 7,
            epoch: i16::MAX,
            next: 9,
        };
        st.restart();
        assert_eq!((st.epoch, st.next), (0, 0));
        assert_ne!(st.producer_id, 7);
    }
}
