//! Choosing a partition for a record, the way Kafka's default partitioner
//! does: murmur2 of the key when there is one, otherwise one "sticky"
//! partition per call that advances round-robin from call to call.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};

/// Round-robin source of sticky partitions for keyless records.
#[derive(Debug)]
pub(crate) struct StickyCounter(AtomicU32);

impl StickyCounter {
    /// Starts at a random position, so that separate short-lived clients do
    /// not all write their keyless records to partition 0.
    pub(crate) fn new() -> Self {
        let seed = RandomState::new().build_hasher().finish();
        StickyCounter(AtomicU32::new(seed as u32))
    }

    /// The next sticky partition of `num_partitions` (0 if there are none).
    pub(crate) fn next(&self, num_partitions: u32) -> u32 {
        self.0
            .fetch_add(1, Ordering::Relaxed)
            .checked_rem(num_partitions)
            .unwrap_or(0)
    }
}

/// The partition of a record: the explicit one if given, else murmur2 of the
/// key, else the call's sticky partition.
pub(crate) fn choose_partition(
    explicit: Option<u32>,
    key: Option<&[u8]>,
    num_partitions: u32,
    sticky: u32,
) -> u32 {
    match (explicit, key) {
        (Some(p), _) => p,
        (None, Some(k)) => cairn_record::partition_for_key(k, num_partitions),
        (None, None) => sticky,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_records_follow_murmur2() {
        // Kafka: toPositive(murmur2("foobar" = -790332482)) % 10.
        let expected = ((-790_332_482i32 & 0x7fff_ffff) as u32) % 10;
        assert_eq!(choose_partition(None, Some(b"foobar"), 10, 3), expected);
        // Deterministic, and an empty key is a key.
        assert_eq!(
            choose_partition(None, Some(b""), 7, 3),
            choose_partition(None, Some(b""), 7, 5)
        );
    }

    #[test]
    fn explicit_and_keyless() {
        assert_eq!(choose_partition(Some(2), Some(b"foobar"), 10, 3), 2);
        assert_eq!(choose_partition(None, None, 10, 3), 3);
    }

    #[test]
    fn sticky_round_robin() {
        let c = StickyCounter(AtomicU32::new(u32::MAX - 1));
        assert_eq!(c.next(3), (u32::MAX - 1) % 3);
        assert_eq!(c.next(3), u32::MAX % 3);
        assert_eq!(c.next(3), 0, "wraps around");
        assert_eq!(c.next(3), 1);
        assert_eq!(c.next(0), 0);
        let c = StickyCounter::new();
        for _ in 0..100 {
            assert!(c.next(4) < 4);
        }
    }
}
