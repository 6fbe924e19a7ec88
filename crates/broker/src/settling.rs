//! When a new topic may be shown: Kafka brokers learn a topic and its
//! partitions' leaders in the same metadata record, so a client never sees
//! a topic it just created without leaders. Here the topic arrives with the
//! metadata group and its leaders with the partition groups' elections and
//! heartbeats, a few hundred milliseconds apart; in between, a node would
//! answer `leader -1`, which some clients take as final (librdkafka's
//! watermark query fails with "Unknown partition").
//!
//! So a topic created after this node started is *settling* until this node
//! has seen a leader for every one of its partitions, at most
//! [`SETTLE_WINDOW`] after it first saw the topic. The Kafka door leaves a
//! settling topic out of "all topics", and a request naming it waits until
//! it has settled (`Broker::await_settled`): answering "unknown topic"
//! instead is not retried by every client (kafka-python's consumer waits
//! for its next periodic refresh, five minutes). Once settled, a topic stays
//! settled: a partition that loses its leader later is shown with
//! `leader -1`, as Kafka shows it.
//!
//! [`Settling::observe`] is a pure function of its state and the time given.

use cairn_clock::Instant;
use std::collections::HashMap;
use std::collections::HashSet;
use std::time::Duration;

/// The longest a topic is hidden for want of leaders: past it, it is shown
/// whatever its partitions' state (a real outage must be visible).
pub const SETTLE_WINDOW: Duration = Duration::from_secs(5);

/// How often a request waiting for a settling topic looks again.
pub(crate) const SETTLE_POLL: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub(crate) struct Settling {
    /// Topics with an id at or below this existed when the node started:
    /// never hidden.
    existed_below: u64,
    first_seen: HashMap<u64, Instant>,
    settled: HashSet<u64>,
}

impl Settling {
    /// `next_topic_id`: the metadata's topic id counter when the node
    /// started (the largest id given so far).
    pub(crate) fn new(next_topic_id: u64) -> Self {
        Self {
            existed_below: next_topic_id,
            first_seen: HashMap::new(),
            settled: HashSet::new(),
        }
    }

    /// Whether topic `id` is still settling at `now`, given whether every
    /// one of its partitions has a known leader.
    pub(crate) fn observe(&mut self, id: u64, all_led: bool, now: Instant) -> bool {
        if id <= self.existed_below || self.settled.contains(&id) {
            return false;
        }
        if all_led {
            self.first_seen.remove(&id);
            self.settled.insert(id);
            return false;
        }
        let first = *self.first_seen.entry(id).or_insert(now);
        if now.saturating_duration_since(first) < SETTLE_WINDOW {
            true
        } else {
            self.first_seen.remove(&id);
            self.settled.insert(id);
            false
        }
    }

    /// Whether the sets outgrew the `live` topics enough to [`Self::prune`].
    pub(crate) fn needs_prune(&self, live: usize) -> bool {
        self.settled.len() + self.first_seen.len() > 2 * live + 64
    }

    /// Forgets deleted topics (bounds the sets by the number of topics).
    pub(crate) fn prune(&mut self, exists: impl Fn(u64) -> bool) {
        self.settled.retain(|id| exists(*id));
        self.first_seen.retain(|id, _| exists(*id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_topic_settles_when_led_or_after_the_window() {
        let t0 = cairn_clock::now();
        let mut s = Settling::new(10);
        // Older topics are never hidden.
        assert!(!s.observe(10, false, t0));
        // A new one is hidden until every partition has a leader...
        assert!(s.observe(11, false, t0));
        assert!(s.observe(11, false, t0 + Duration::from_millis(200)));
        assert!(!s.observe(11, true, t0 + Duration::from_millis(300)));
        // ...and stays shown when a leader is lost later.
        assert!(!s.observe(11, false, t0 + Duration::from_millis(400)));
        // One that never gets leaders is shown after the window.
        assert!(s.observe(12, false, t0));
        assert!(s.observe(12, false, t0 + SETTLE_WINDOW - Duration::from_millis(1)));
        assert!(!s.observe(12, false, t0 + SETTLE_WINDOW));
        assert!(!s.observe(12, false, t0));
    }

    #[test]
    fn deleted_topics_are_forgotten() {
        let t0 = cairn_clock::now();
        let mut s = Settling::new(0);
        for id in 1..=200 {
            s.observe(id, id % 2 == 0, t0);
        }
        assert!(s.needs_prune(10));
        s.prune(|id| id <= 10);
        assert!(!s.needs_prune(10));
        assert!(s.settled.iter().all(|id| *id <= 10));
        assert!(s.first_seen.keys().all(|id| *id <= 10));
        // A live settling topic keeps its first sighting.
        assert!(s.observe(9, false, t0 + Duration::from_millis(10)));
    }
}
