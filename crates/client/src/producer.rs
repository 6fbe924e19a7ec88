//! Idempotent produce: a producer id per client and sequence numbers per
//! partition, stamped into the batches that
//! [`crate::Client::produce_records`] builds.
//!
//! A retried batch carries the same producer id and sequences, so the
//! partition recognises it and answers with the original offset
//! (`ProduceResponse.duplicate`) instead of appending it again. The server
//! requires each producer's sequences to increase per partition, so sends to
//! one partition are serialised: the partition's sequence slot stays locked
//! until the send has finished.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

use crate::owned_record::ProducerStamp;

/// The producer epoch used (there is no producer-id allocation or fencing
/// yet, so it never changes).
pub(crate) const PRODUCER_EPOCH: i16 = 0;

/// The next sequence number of one partition, locked for a whole send.
pub(crate) type SequenceSlot = Arc<tokio::sync::Mutex<i32>>;

/// Producer identity and per-partition sequence state of one client.
#[derive(Debug)]
pub(crate) struct ProducerSession {
    producer_id: i64,
    slots: Mutex<HashMap<(String, u32), SequenceSlot>>,
}

impl ProducerSession {
    /// A session with a random non-negative producer id.
    pub(crate) fn new() -> Self {
        let random = RandomState::new().build_hasher().finish();
        ProducerSession {
            producer_id: (random & (i64::MAX as u64)) as i64,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// This client's producer id.
    pub(crate) fn producer_id(&self) -> i64 {
        self.producer_id
    }

    /// The next-sequence slot of a partition; lock it for the whole send.
    pub(crate) fn slot(&self, topic: &str, partition: u32) -> SequenceSlot {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            slots
                .entry((topic.to_owned(), partition))
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(0))),
        )
    }
}

/// Reserves the sequences of a batch of `count` records to `topic`/`partition`:
/// the stamp to build the batch with, and the partition's slot, locked until
/// the caller drops it (after the send) so the next batch follows in order.
/// `(None, None)` without a session (a non-idempotent client).
pub(crate) async fn reserve_sequences(
    session: Option<&ProducerSession>,
    topic: &str,
    partition: u32,
    count: usize,
) -> (Option<ProducerStamp>, Option<OwnedMutexGuard<i32>>) {
    let Some(session) = session else {
        return (None, None);
    };
    let mut next = session.slot(topic, partition).lock_owned().await;
    let stamp = ProducerStamp {
        producer_id: session.producer_id(),
        epoch: PRODUCER_EPOCH,
        base_sequence: *next,
    };
    *next = next_sequence(*next, count);
    (Some(stamp), Some(next))
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
        assert!(s.producer_id() >= 0);
        let a = s.slot("t", 0);
        *a.lock().await = 10;
        assert_eq!(*s.slot("t", 0).lock().await, 10);
        assert_eq!(*s.slot("t", 1).lock().await, 0);
        assert_eq!(*s.slot("u", 0).lock().await, 0);
    }
}
