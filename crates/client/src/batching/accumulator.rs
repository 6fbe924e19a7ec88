//! The record accumulator of the batching [`crate::Producer`]: per-partition
//! queues of buffered records, the accounting of buffered bytes against
//! `buffer_memory`, and the decision which partitions have a batch ready.
//!
//! It is plain synchronous state (the producer keeps it behind a mutex) and
//! takes the current time as an argument, so that it can be tested without a
//! runtime or a cluster.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::partitioner::choose_partition;
use crate::OwnedRecord;

/// Bytes counted per record on top of its key, value and headers: the
/// largest encoding overhead of a record in a v2 batch (length, attributes,
/// timestamp and offset deltas, key and value lengths, header count).
pub(crate) const RECORD_OVERHEAD: usize = 21;

/// The bytes a record is accounted for, in batches and in the buffer.
pub(crate) fn record_size(r: &OwnedRecord) -> usize {
    let headers: usize = r
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 2)
        .sum();
    RECORD_OVERHEAD
        + r.key.as_ref().map_or(0, Bytes::len)
        + r.value.as_ref().map_or(0, Bytes::len)
        + headers
}

/// Sizes and times that decide when a batch is ready.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// A partition's batch is sent once it holds this many bytes; a batch
    /// never holds more, except a single larger record.
    pub batch_size: usize,
    /// Total bytes of buffered records, queued or in flight.
    pub buffer_memory: usize,
    /// How long the oldest record of a batch waits for more.
    pub linger: Duration,
}

/// One buffered record and what to tell when it is done (`T`: a channel in
/// the producer, anything in tests).
#[derive(Debug)]
pub(crate) struct Pending<T> {
    /// Global, increasing in `append` order.
    pub id: u64,
    pub size: usize,
    pub enqueued: Instant,
    pub record: OwnedRecord,
    pub done: T,
}

/// Records drained from one partition's queue, to be sent as one batch.
#[derive(Debug)]
pub(crate) struct Drained<T> {
    pub topic: String,
    pub partition: u32,
    /// In append order.
    pub records: Vec<Pending<T>>,
    /// Sum of the records' sizes.
    pub bytes: usize,
}

#[derive(Debug)]
struct PartitionQueue<T> {
    records: VecDeque<Pending<T>>,
    /// Sum of the queued records' sizes.
    bytes: usize,
    /// The first record id of the batch in flight, if one is.
    in_flight: Option<u64>,
}

impl<T> Default for PartitionQueue<T> {
    fn default() -> Self {
        PartitionQueue {
            records: VecDeque::new(),
            bytes: 0,
            in_flight: None,
        }
    }
}

#[derive(Debug)]
struct TopicQueues<T> {
    /// Indexed by partition.
    partitions: Vec<PartitionQueue<T>>,
    /// The partition keyless records currently go to.
    sticky: Option<u32>,
    /// The partition count last seen by `partition_for`.
    num_partitions: u32,
}

/// Per-partition queues and buffer accounting.
#[derive(Debug)]
pub(crate) struct Accumulator<T> {
    limits: Limits,
    topics: HashMap<String, TopicQueues<T>>,
    /// Bytes of records queued or in flight.
    used: usize,
    next_id: u64,
    /// Records with a smaller id are sent without waiting for `linger`.
    flush_upto: u64,
}

impl<T> Accumulator<T> {
    pub(crate) fn new(limits: Limits) -> Self {
        Accumulator {
            limits,
            topics: HashMap::new(),
            used: 0,
            next_id: 0,
            flush_upto: 0,
        }
    }

    /// Bytes of records queued or in flight.
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// Whether a record of `size` bytes fits in the buffer now.
    pub(crate) fn has_room(&self, size: usize) -> bool {
        self.used.saturating_add(size) <= self.limits.buffer_memory
    }

    /// The partition of `record` among `num_partitions`, chosen like
    /// [`crate::Client::produce_records`]: the explicit partition, else
    /// murmur2 of the key, else the topic's sticky partition (starting at
    /// `first_sticky`, moving on to the next partition each time a batch of
    /// the sticky partition is drained, like Kafka's sticky partitioner).
    pub(crate) fn partition_for(
        &mut self,
        topic: &str,
        record: &OwnedRecord,
        num_partitions: u32,
        first_sticky: impl FnOnce() -> u32,
    ) -> u32 {
        let sticky = if record.partition.is_none() && record.key.is_none() {
            let queues = self.topic_mut(topic);
            queues.num_partitions = num_partitions;
            match queues.sticky {
                Some(p) if p < num_partitions => p,
                _ => {
                    let p = first_sticky() % num_partitions.max(1);
                    queues.sticky = Some(p);
                    p
                }
            }
        } else {
            0
        };
        choose_partition(
            record.partition,
            record.key.as_deref(),
            num_partitions,
            sticky,
        )
    }

    fn topic_mut(&mut self, topic: &str) -> &mut TopicQueues<T> {
        if !self.topics.contains_key(topic) {
            self.topics.insert(
                topic.to_owned(),
                TopicQueues {
                    partitions: Vec::new(),
                    sticky: None,
                    num_partitions: 0,
                },
            );
        }
        self.topics.get_mut(topic).expect("just inserted")
    }

    /// Queues a record (the caller checked [`Accumulator::has_room`]).
    /// Returns whether the sender should look at the queues now: the queue
    /// was empty (a new linger timer starts) or just reached `batch_size`.
    pub(crate) fn append(
        &mut self,
        topic: &str,
        partition: u32,
        record: OwnedRecord,
        done: T,
        now: Instant,
    ) -> bool {
        let size = record_size(&record);
        let id = self.next_id;
        self.next_id += 1;
        self.used += size;
        let limits = self.limits;
        let queues = self.topic_mut(topic);
        let index = partition as usize;
        if queues.partitions.len() <= index {
            queues
                .partitions
                .resize_with(index + 1, PartitionQueue::default);
        }
        let q = &mut queues.partitions[index];
        let was_empty = q.records.is_empty();
        let was_full = q.bytes >= limits.batch_size;
        q.records.push_back(Pending {
            id,
            size,
            enqueued: now,
            record,
            done,
        });
        q.bytes += size;
        was_empty || (!was_full && q.bytes >= limits.batch_size) || limits.linger.is_zero()
    }

    /// Takes a batch from every partition that has no batch in flight and a
    /// ready one: `batch_size` bytes queued, the oldest record waited
    /// `linger`, a flush asked for its records, or `all` (closing). Marks
    /// those partitions in flight.
    pub(crate) fn drain_ready(&mut self, now: Instant, all: bool) -> Vec<Drained<T>> {
        let limits = self.limits;
        let flush_upto = self.flush_upto;
        let mut out = Vec::new();
        for (topic, queues) in &mut self.topics {
            for (partition, q) in (0u32..).zip(queues.partitions.iter_mut()) {
                if q.in_flight.is_some() {
                    continue;
                }
                let Some(front) = q.records.front() else {
                    continue;
                };
                let ready = all
                    || q.bytes >= limits.batch_size
                    || now.saturating_duration_since(front.enqueued) >= limits.linger
                    || front.id < flush_upto;
                if !ready {
                    continue;
                }
                q.in_flight = Some(front.id);
                let mut records = Vec::new();
                let mut bytes = 0usize;
                while let Some(next) = q.records.front() {
                    if !records.is_empty() && bytes + next.size > limits.batch_size {
                        break;
                    }
                    let next = q.records.pop_front().expect("front exists");
                    bytes += next.size;
                    records.push(next);
                }
                q.bytes -= bytes;
                if queues.sticky == Some(partition) {
                    queues.sticky = Some((partition + 1) % queues.num_partitions.max(1));
                }
                out.push(Drained {
                    topic: topic.clone(),
                    partition,
                    records,
                    bytes,
                });
            }
        }
        out
    }

    /// A drained batch of `bytes` is done (delivered or failed): frees its
    /// bytes, and the partition may send its next batch.
    pub(crate) fn complete(&mut self, topic: &str, partition: u32, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
        if let Some(q) = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(partition as usize))
        {
            q.in_flight = None;
        }
    }

    /// Removes the queued (not in flight) records that have waited
    /// `timeout` or longer, freeing their bytes.
    pub(crate) fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<Pending<T>> {
        let mut out = Vec::new();
        for queues in self.topics.values_mut() {
            for q in &mut queues.partitions {
                while q
                    .records
                    .front()
                    .is_some_and(|r| now.saturating_duration_since(r.enqueued) >= timeout)
                {
                    let r = q.records.pop_front().expect("front exists");
                    q.bytes -= r.size;
                    self.used = self.used.saturating_sub(r.size);
                    out.push(r);
                }
            }
        }
        out
    }

    /// When the queues next need a look, if no record arrives or completes
    /// before: the earliest end of a linger or of a delivery timeout.
    pub(crate) fn next_wakeup(&self, delivery_timeout: Duration) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for queues in self.topics.values() {
            for q in &queues.partitions {
                let Some(front) = q.records.front() else {
                    continue;
                };
                let mut at = front.enqueued + delivery_timeout;
                if q.in_flight.is_none() {
                    at = at.min(front.enqueued + self.limits.linger);
                }
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }

    /// Starts a flush: every record appended so far is ready at once.
    /// Returns the id to pass to [`Accumulator::flushed`].
    pub(crate) fn start_flush(&mut self) -> u64 {
        self.flush_upto = self.next_id;
        self.next_id
    }

    /// Whether every record appended before `target` was completed (no such
    /// record is queued or in flight).
    pub(crate) fn flushed(&self, target: u64) -> bool {
        self.topics.values().all(|t| {
            t.partitions.iter().all(|q| {
                q.in_flight.is_none_or(|id| id >= target)
                    && q.records.front().is_none_or(|r| r.id >= target)
            })
        })
    }

    /// Nothing queued and nothing in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.flushed(self.next_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn limits(batch_size: usize, buffer_memory: usize, linger_ms: u64) -> Limits {
        Limits {
            batch_size,
            buffer_memory,
            linger: Duration::from_millis(linger_ms),
        }
    }

    /// A record accounted as exactly `size` bytes.
    fn rec(partition: u32, size: usize) -> OwnedRecord {
        OwnedRecord {
            partition: Some(partition),
            ..OwnedRecord::from_value(vec![b'x'; size - RECORD_OVERHEAD])
        }
    }

    fn ids<T>(d: &Drained<T>) -> Vec<u64> {
        d.records.iter().map(|r| r.id).collect()
    }

    #[test]
    fn size_counts_key_value_and_headers() {
        let r = OwnedRecord {
            headers: vec![
                ("ab".into(), Some(Bytes::from_static(b"cde"))),
                ("f".into(), None),
            ],
            ..OwnedRecord::with_key("key", "value")
        };
        assert_eq!(
            record_size(&r),
            RECORD_OVERHEAD + 3 + 5 + (2 + 3 + 2) + (1 + 2)
        );
        assert_eq!(record_size(&OwnedRecord::default()), RECORD_OVERHEAD);
    }

    #[test]
    fn batches_by_size() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(limits(300, 10_000, 1_000));
        assert!(
            acc.append("t", 0, rec(0, 100), (), t0),
            "first record starts a linger"
        );
        assert!(!acc.append("t", 0, rec(0, 100), (), t0));
        assert!(
            acc.drain_ready(t0, false).is_empty(),
            "200 < batch_size, linger running"
        );
        assert!(
            acc.append("t", 0, rec(0, 100), (), t0),
            "reached batch_size"
        );
        assert!(!acc.append("t", 0, rec(0, 100), (), t0), "already full");
        let drained = acc.drain_ready(t0, false);
        assert_eq!(drained.len(), 1);
        assert_eq!(ids(&drained[0]), vec![0, 1, 2], "at most batch_size bytes");
        assert_eq!((drained[0].partition, drained[0].bytes), (0, 300));
        assert_eq!(acc.used(), 400, "in-flight bytes stay accounted");
        // One batch in flight per partition: the rest waits for completion.
        assert!(acc.drain_ready(t0 + 2_000 * MS, false).is_empty());
        acc.complete("t", 0, 300);
        assert_eq!(acc.used(), 100);
        assert!(
            acc.drain_ready(t0, false).is_empty(),
            "100 bytes, linger running"
        );
        let drained = acc.drain_ready(t0 + 1_000 * MS, false);
        assert_eq!(ids(&drained[0]), vec![3]);
    }

    #[test]
    fn a_large_record_is_a_batch_of_its_own() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(limits(100, 10_000, 1_000));
        acc.append("t", 0, rec(0, 50), (), t0);
        acc.append("t", 0, rec(0, 500), (), t0);
        let d = acc.drain_ready(t0, false);
        assert_eq!(ids(&d[0]), vec![0], "the large record does not join");
        acc.complete("t", 0, d[0].bytes);
        let d = acc.drain_ready(t0, false);
        assert_eq!((ids(&d[0]), d[0].bytes), (vec![1], 500));
    }

    #[test]
    fn linger_per_partition() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(limits(10_000, 10_000, 10));
        acc.append("t", 0, rec(0, 30), (), t0);
        acc.append("t", 1, rec(1, 30), (), t0 + 5 * MS);
        acc.append("u", 0, rec(0, 30), (), t0 + 5 * MS);
        assert_eq!(acc.next_wakeup(Duration::from_secs(60)), Some(t0 + 10 * MS));
        assert!(acc.drain_ready(t0 + 9 * MS, false).is_empty());
        let d = acc.drain_ready(t0 + 10 * MS, false);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].topic.as_str(), d[0].partition), ("t", 0));
        // Partition 0 is in flight: its linger no longer counts.
        assert_eq!(acc.next_wakeup(Duration::from_secs(60)), Some(t0 + 15 * MS));
        let mut d = acc.drain_ready(t0 + 15 * MS, false);
        d.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        let got: Vec<_> = d.iter().map(|d| (d.topic.as_str(), d.partition)).collect();
        assert_eq!(got, vec![("t", 1), ("u", 0)]);
    }

    #[test]
    fn zero_linger_is_ready_at_once() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(limits(10_000, 10_000, 0));
        assert!(acc.append("t", 0, rec(0, 30), (), t0));
        assert!(
            acc.append("t", 0, rec(0, 30), (), t0),
            "zero linger always wakes"
        );
        assert_eq!(ids(&acc.drain_ready(t0, false)[0]), vec![0, 1]);
    }

    #[test]
    fn buffer_accounting() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(limits(100, 250, 1_000));
        assert!(acc.has_room(250));
        assert!(!acc.has_room(251));
        acc.append("t", 0, rec(0, 100), (), t0);
        acc.append("t", 1, rec(1, 100), (), t0);
        assert_eq!(acc.used(), 200);
        assert!(acc.has_room(50));
        assert!(!acc.has_room(51));
        let d = acc.drain_ready(t0, false);
        assert_eq!(d.len(), 2);
        assert!(
            !acc.has_room(51),
            "in-flight records still hold their bytes"
        );
        acc.complete("t", 0, 100);
        assert!(acc.has_room(150));
        // Expiry frees queued records only, the oldest first.
        acc.append("t", 0, rec(0, 50), (), t0 + 10 * MS);
        acc.append("t", 0, rec(0, 50), (), t0 + 20 * MS);
        assert_eq!(acc.used(), 200);
        let expired = acc.expire(t0 + 1_015 * MS, Duration::from_secs(1));
        assert_eq!(expired.iter().map(|r| r.id).collect::<Vec<_>>(), vec![2]);
        assert_eq!(acc.used(), 150);
        acc.complete("t", 1, 100);
        assert_eq!(acc.used(), 50);
        let expired = acc.expire(t0 + 1_020 * MS, Duration::from_secs(1));
        assert_eq!(expired.len(), 1);
        assert_eq!(acc.used(), 0);
        assert!(acc.is_empty());
    }

    #[test]
    fn flush_makes_earlier_records_ready_and_tracks_them() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(limits(10_000, 10_000, 60_000));
        acc.append("t", 0, rec(0, 30), (), t0);
        acc.append("t", 1, rec(1, 30), (), t0);
        let target = acc.start_flush();
        assert!(!acc.flushed(target));
        acc.append("t", 2, rec(2, 30), (), t0);
        let mut d = acc.drain_ready(t0, false);
        d.sort_by_key(|d| d.partition);
        assert_eq!(
            d.iter().map(|d| d.partition).collect::<Vec<_>>(),
            vec![0, 1]
        );
        acc.complete("t", 0, 30);
        assert!(!acc.flushed(target), "partition 1 still in flight");
        acc.complete("t", 1, 30);
        assert!(
            acc.flushed(target),
            "the later record does not hold the flush"
        );
        assert!(!acc.is_empty());
        assert_eq!(
            acc.drain_ready(t0, true).len(),
            1,
            "closing drains everything"
        );
    }

    #[test]
    fn sticky_partition_moves_on_when_its_batch_is_drained() {
        let t0 = Instant::now();
        let mut acc: Accumulator<()> = Accumulator::new(limits(10_000, 10_000, 0));
        let keyless = OwnedRecord::from_value("v");
        let p = acc.partition_for("t", &keyless, 3, || 7);
        assert_eq!(p, 1, "starts at first_sticky mod partitions");
        assert_eq!(acc.partition_for("t", &keyless, 3, || unreachable!()), 1);
        let keyed = OwnedRecord::with_key("foobar", "v");
        assert_eq!(
            acc.partition_for("t", &keyed, 3, || unreachable!()),
            cairn_record::partition_for_key(b"foobar", 3)
        );
        let explicit = OwnedRecord {
            partition: Some(2),
            ..keyless.clone()
        };
        assert_eq!(acc.partition_for("t", &explicit, 3, || unreachable!()), 2);
        acc.append("t", 1, keyless.clone(), (), t0);
        assert_eq!(acc.drain_ready(t0, false).len(), 1);
        assert_eq!(acc.partition_for("t", &keyless, 3, || unreachable!()), 2);
        acc.append("t", 2, keyless.clone(), (), t0);
        acc.drain_ready(t0, false);
        assert_eq!(
            acc.partition_for("t", &keyless, 3, || unreachable!()),
            0,
            "wraps"
        );
    }
}
