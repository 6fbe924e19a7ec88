//! Incremental fetch sessions (KIP-227): a consumer that fetches the same
//! partitions over and over names them once; later requests carry only what
//! changed (a new fetch offset, a partition added or forgotten) and answers
//! carry only partitions with something new (records, a moved high
//! watermark or log start, an error).
//!
//! The cache is the node's, like a Kafka broker's, shared by its
//! connections; a session lives until the client closes it, replaces it, or
//! it is evicted (least recently used once [`MAX_SESSIONS`] are open, or idle
//! for [`IDLE_EVICTION`]). A client whose session is gone gets
//! FETCH_SESSION_ID_NOT_FOUND and starts a new one with a full request.
//!
//! Request metadata, as KIP-227 defines it:
//!
//! | session id | epoch | meaning                                                  |
//! |------------|-------|----------------------------------------------------------|
//! | 0          | -1    | no session (what librdkafka sends)                       |
//! | 0          | 0     | full request; open a session over its partitions         |
//! | id         | -1    | close session `id`; full request without a session       |
//! | id         | 0     | close session `id`; full request, open a new session     |
//! | id         | n > 0 | incremental request `n` of session `id`                  |

use cairn_clock::Instant;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::Duration;

use cairn_kafka::kafka_protocol::messages::fetch_request::FetchPartition;
use cairn_kafka::kafka_protocol::messages::fetch_response::FetchableTopicResponse;
use cairn_kafka::kafka_protocol::messages::TopicName;
use cairn_kafka::kafka_protocol::ResponseError;

use super::code;

/// Sessions one node keeps open (Kafka's
/// `max.incremental.fetch.session.cache.slots` default).
pub(crate) const MAX_SESSIONS: usize = 1000;
/// A session unused this long is dropped (Kafka's
/// `min.incremental.fetch.session.eviction.ms` default).
pub(crate) const IDLE_EVICTION: Duration = Duration::from_secs(120);

const INITIAL_EPOCH: i32 = 0;
const FINAL_EPOCH: i32 = -1;

/// The partitions of a fetch, grouped by topic, in request order.
pub(crate) type FetchTopics = Vec<(TopicName, Vec<FetchPartition>)>;

/// A partition of a session: what the client last asked for, and what it
/// was last told.
#[derive(Clone, Debug)]
struct Cached {
    topic: TopicName,
    fetch: FetchPartition,
    sent_high_watermark: i64,
    sent_log_start: i64,
}

impl Cached {
    fn new(topic: TopicName, fetch: FetchPartition) -> Self {
        Cached {
            topic,
            fetch,
            // Never sent: the first answer includes the partition.
            sent_high_watermark: i64::MIN,
            sent_log_start: i64::MIN,
        }
    }

    fn is(&self, topic: &TopicName, partition: i32) -> bool {
        self.fetch.partition == partition && &self.topic == topic
    }
}

#[derive(Debug)]
struct Session {
    /// The epoch the session's next request must carry.
    next_epoch: i32,
    partitions: Vec<Cached>,
    last_used: Instant,
}

impl Session {
    /// The partitions to read, grouped by consecutive topic.
    fn topics(&self) -> FetchTopics {
        let mut out: FetchTopics = Vec::new();
        for c in &self.partitions {
            match out.last_mut() {
                Some((topic, parts)) if *topic == c.topic => parts.push(c.fetch.clone()),
                _ => out.push((c.topic.clone(), vec![c.fetch.clone()])),
            }
        }
        out
    }

    /// Moves the partitions at `positions` to the back, keeping the order
    /// within the moved ones and within the others.
    fn move_to_back(&mut self, positions: &[usize]) {
        if positions.is_empty() {
            return;
        }
        let mut back = vec![false; self.partitions.len()];
        for &i in positions {
            if let Some(b) = back.get_mut(i) {
                *b = true;
            }
        }
        let mut kept = Vec::with_capacity(self.partitions.len());
        let mut moved = Vec::with_capacity(positions.len());
        for (c, b) in self.partitions.drain(..).zip(back) {
            if b {
                moved.push(c);
            } else {
                kept.push(c);
            }
        }
        kept.append(&mut moved);
        self.partitions = kept;
    }
}

/// How to serve one fetch request.
#[derive(Debug, PartialEq)]
pub(crate) enum Plan {
    /// Read what was asked, answer all of it, session id 0.
    Sessionless,
    /// Read what was asked, answer all of it, then [`FetchSessions::open`]
    /// a session over it.
    Full,
    /// Read every partition of session `id` (these), answer what changed
    /// ([`FetchSessions::changed`]).
    Incremental { id: i32, topics: FetchTopics },
    /// Answer with this top-level error and nothing else.
    Refuse(i16),
}

/// One node's fetch sessions.
#[derive(Default)]
pub(crate) struct FetchSessions {
    sessions: Mutex<HashMap<i32, Session>>,
}

fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl FetchSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many sessions are open.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Decides how to serve a request with this session metadata; an
    /// incremental request's added, changed and forgotten partitions are
    /// applied to its session here.
    pub(crate) fn plan(
        &self,
        session_id: i32,
        epoch: i32,
        topics: &FetchTopics,
        forgotten: &[(TopicName, Vec<i32>)],
    ) -> Plan {
        let mut sessions = self.lock();
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            if session_id != 0 {
                sessions.remove(&session_id);
            }
            return if epoch == FINAL_EPOCH {
                Plan::Sessionless
            } else {
                Plan::Full
            };
        }
        let Some(session) = sessions.get_mut(&session_id) else {
            return Plan::Refuse(code(ResponseError::FetchSessionIdNotFound));
        };
        if session.next_epoch != epoch {
            return Plan::Refuse(code(ResponseError::InvalidFetchSessionEpoch));
        }
        session.next_epoch = next_epoch(epoch);
        session.last_used = cairn_clock::now();
        for (topic, partitions) in topics {
            for p in partitions {
                match session
                    .partitions
                    .iter_mut()
                    .find(|c| c.is(topic, p.partition))
                {
                    Some(c) => c.fetch = p.clone(),
                    None => session
                        .partitions
                        .push(Cached::new(topic.clone(), p.clone())),
                }
            }
        }
        for (topic, partitions) in forgotten {
            session
                .partitions
                .retain(|c| !(c.topic == *topic && partitions.contains(&c.fetch.partition)));
        }
        if session.partitions.is_empty() {
            // Nothing left to fetch: the session ends (as in Kafka).
            sessions.remove(&session_id);
            return Plan::Sessionless;
        }
        Plan::Incremental {
            id: session_id,
            topics: session.topics(),
        }
    }

    /// Opens a session over a full request's partitions, which were just
    /// answered with `answers`; its id, or 0 when there is nothing to keep.
    pub(crate) fn open(&self, topics: &FetchTopics, answers: &[FetchableTopicResponse]) -> i32 {
        if topics.iter().all(|(_, p)| p.is_empty()) {
            return 0;
        }
        let mut sessions = self.lock();
        let now = cairn_clock::now();
        sessions.retain(|_, s| now.duration_since(s.last_used) < IDLE_EVICTION);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id)
            {
                sessions.remove(&oldest);
            }
        }
        let id = loop {
            let id = (rand::random::<u32>() >> 1) as i32;
            if id != 0 && !sessions.contains_key(&id) {
                break id;
            }
        };
        let mut session = Session {
            next_epoch: 1,
            partitions: Vec::new(),
            last_used: now,
        };
        for (topic, partitions) in topics {
            for p in partitions {
                if !session.partitions.iter().any(|c| c.is(topic, p.partition)) {
                    session
                        .partitions
                        .push(Cached::new(topic.clone(), p.clone()));
                }
            }
        }
        remember_sent(&mut session, answers);
        sessions.insert(id, session);
        id
    }

    /// The answers an incremental request gets: only partitions with
    /// records, an error, or a high watermark or log start the client has
    /// not been told yet. Remembers what it tells, and moves the partitions
    /// that got records to the back of the session, as Kafka's broker does:
    /// the next fetch reads the others first, so that under the fetch's
    /// byte limit (which only the first batch of an answer may pass) no
    /// partition is starved by those read before it.
    pub(crate) fn changed(
        &self,
        id: i32,
        answers: Vec<FetchableTopicResponse>,
    ) -> Vec<FetchableTopicResponse> {
        let mut sessions = self.lock();
        let mut session = sessions.get_mut(&id);
        let mut got_records = Vec::new();
        let out = answers
            .into_iter()
            .filter_map(|mut t| {
                t.partitions.retain(|p| {
                    let has_records = p.records.as_ref().is_some_and(|r| !r.is_empty());
                    let cached = session.as_deref_mut().and_then(|s| {
                        s.partitions
                            .iter()
                            .position(|c| c.is(&t.topic, p.partition_index))
                            .map(|i| (i, &mut s.partitions[i]))
                    });
                    let Some((i, c)) = cached else {
                        // Evicted meanwhile: say everything.
                        return true;
                    };
                    let moved = c.sent_high_watermark != p.high_watermark
                        || c.sent_log_start != p.log_start_offset;
                    c.sent_high_watermark = p.high_watermark;
                    c.sent_log_start = p.log_start_offset;
                    if has_records {
                        got_records.push(i);
                    }
                    has_records || moved || p.error_code != super::NONE
                });
                (!t.partitions.is_empty()).then_some(t)
            })
            .collect();
        if let Some(s) = session {
            s.move_to_back(&got_records);
        }
        out
    }
}

fn remember_sent(session: &mut Session, answers: &[FetchableTopicResponse]) {
    for t in answers {
        for p in &t.partitions {
            if let Some(c) = session
                .partitions
                .iter_mut()
                .find(|c| c.is(&t.topic, p.partition_index))
            {
                c.sent_high_watermark = p.high_watermark;
                c.sent_log_start = p.log_start_offset;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cairn_kafka::kafka_protocol::messages::fetch_response::PartitionData;

    use super::*;
    use crate::kafka::str_bytes;

    fn name(s: &str) -> TopicName {
        TopicName(str_bytes(s))
    }

    fn part(partition: i32, offset: i64) -> FetchPartition {
        FetchPartition::default()
            .with_partition(partition)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(1 << 20)
    }

    fn answer(topic: &str, parts: &[(i32, i64, usize)]) -> Vec<FetchableTopicResponse> {
        vec![FetchableTopicResponse::default()
            .with_topic(name(topic))
            .with_partitions(
                parts
                    .iter()
                    .map(|&(p, hw, records)| {
                        PartitionData::default()
                            .with_partition_index(p)
                            .with_high_watermark(hw)
                            .with_records(Some(vec![0u8; records].into()))
                    })
                    .collect(),
            )]
    }

    fn answered(out: &[FetchableTopicResponse]) -> Vec<i32> {
        out.iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
            .collect()
    }

    #[test]
    fn sessionless_and_full_requests() {
        let s = FetchSessions::default();
        let topics = vec![(name("t"), vec![part(0, 0)])];
        assert_eq!(s.plan(0, FINAL_EPOCH, &topics, &[]), Plan::Sessionless);
        assert_eq!(s.plan(0, INITIAL_EPOCH, &topics, &[]), Plan::Full);
        let id = s.open(&topics, &answer("t", &[(0, 5, 0)]));
        assert!(id > 0);
        assert_eq!(s.len(), 1);
        // A full request naming the session closes it.
        assert_eq!(s.plan(id, FINAL_EPOCH, &topics, &[]), Plan::Sessionless);
        assert_eq!(s.len(), 0);
        // Nothing to keep: no session.
        assert_eq!(s.open(&vec![], &[]), 0);
    }

    #[test]
    fn incremental_requests_update_the_session_and_answer_what_changed() {
        let s = FetchSessions::default();
        let topics = vec![(name("t"), vec![part(0, 0), part(1, 0)])];
        let id = s.open(&topics, &answer("t", &[(0, 5, 10), (1, 0, 0)]));

        // Epoch 1 moves partition 0 on; partition 1 is read from the cache.
        let Plan::Incremental { id: got, topics } =
            s.plan(id, 1, &vec![(name("t"), vec![part(0, 5)])], &[])
        else {
            panic!("expected an incremental plan");
        };
        assert_eq!(got, id);
        let offsets: Vec<(i32, i64)> = topics[0]
            .1
            .iter()
            .map(|p| (p.partition, p.fetch_offset))
            .collect();
        assert_eq!(offsets, [(0, 5), (1, 0)]);
        // Nothing new on 0, records on 1: only 1 is answered.
        let out = s.changed(id, answer("t", &[(0, 5, 0), (1, 3, 7)]));
        assert_eq!(answered(&out), [1]);
        // Then the high watermark of 0 moves: 0 is answered, 1 is not.
        assert!(matches!(
            s.plan(id, 2, &vec![], &[]),
            Plan::Incremental { .. }
        ));
        let out = s.changed(id, answer("t", &[(0, 9, 0), (1, 3, 0)]));
        assert_eq!(answered(&out), [0]);

        // Forgetting both ends the session.
        assert_eq!(
            s.plan(id, 3, &vec![], &[(name("t"), vec![0, 1])]),
            Plan::Sessionless
        );
        assert_eq!(s.len(), 0);
    }

    /// The partitions of an incremental plan, in the order they are read.
    fn planned(s: &FetchSessions, id: i32, epoch: i32) -> Vec<(String, i32)> {
        let Plan::Incremental { topics, .. } = s.plan(id, epoch, &vec![], &[]) else {
            panic!("expected an incremental plan");
        };
        topics
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(|p| (t.as_str().to_string(), p.partition)))
            .collect()
    }

    #[test]
    fn partitions_that_got_records_are_read_last_next_time() {
        let s = FetchSessions::default();
        let topics = vec![
            (name("t"), vec![part(0, 0), part(1, 0), part(2, 0)]),
            (name("u"), vec![part(0, 0)]),
        ];
        let id = s.open(&topics, &answer("t", &[(0, 0, 0), (1, 0, 0), (2, 0, 0)]));
        let t = |p| ("t".to_string(), p);
        let u = ("u".to_string(), 0);
        assert_eq!(planned(&s, id, 1), [t(0), t(1), t(2), u.clone()]);
        // Only the first partition fitted: it goes to the back.
        s.changed(id, answer("t", &[(0, 9, 100), (1, 9, 0), (2, 9, 0)]));
        assert_eq!(planned(&s, id, 2), [t(1), t(2), u.clone(), t(0)]);
        // Two got records: both go back, in the order they were read.
        let mut answers = answer("t", &[(1, 9, 100), (2, 9, 0)]);
        answers.extend(answer("u", &[(0, 9, 100)]));
        answers.extend(answer("t", &[(0, 9, 0)]));
        s.changed(id, answers);
        assert_eq!(planned(&s, id, 3), [t(2), t(0), t(1), u]);
    }

    #[test]
    fn added_partitions_are_answered_once_at_least() {
        let s = FetchSessions::default();
        let id = s.open(
            &vec![(name("t"), vec![part(0, 0)])],
            &answer("t", &[(0, 0, 0)]),
        );
        let Plan::Incremental { topics, .. } =
            s.plan(id, 1, &vec![(name("u"), vec![part(0, 0)])], &[])
        else {
            panic!("expected an incremental plan");
        };
        assert_eq!(topics.len(), 2);
        let mut answers = answer("t", &[(0, 0, 0)]);
        answers.extend(answer("u", &[(0, 0, 0)]));
        let out = s.changed(id, answers);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic, name("u"));
    }

    #[test]
    fn wrong_epochs_and_unknown_sessions_are_refused() {
        let s = FetchSessions::default();
        let topics = vec![(name("t"), vec![part(0, 0)])];
        let id = s.open(&topics, &answer("t", &[(0, 0, 0)]));
        assert_eq!(
            s.plan(id, 2, &vec![], &[]),
            Plan::Refuse(code(ResponseError::InvalidFetchSessionEpoch))
        );
        assert_eq!(
            s.plan(id.wrapping_add(1), 1, &vec![], &[]),
            Plan::Refuse(code(ResponseError::FetchSessionIdNotFound))
        );
        // The right epoch still works after a refusal.
        assert!(matches!(
            s.plan(id, 1, &vec![], &[]),
            Plan::Incremental { .. }
        ));
    }

    #[test]
    fn epochs_wrap_to_one() {
        assert_eq!(next_epoch(1), 2);
        assert_eq!(next_epoch(i32::MAX), 1);
    }

    #[test]
    fn a_full_cache_evicts_the_least_recently_used_session() {
        let s = FetchSessions::default();
        let topics = vec![(name("t"), vec![part(0, 0)])];
        let first = s.open(&topics, &[]);
        for _ in 1..MAX_SESSIONS {
            s.open(&topics, &[]);
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        // Touch the first: it is now the most recently used.
        assert!(matches!(
            s.plan(first, 1, &vec![], &[]),
            Plan::Incremental { .. }
        ));
        s.open(&topics, &[]);
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(matches!(
            s.plan(first, 2, &vec![], &[]),
            Plan::Incremental { .. }
        ));
    }
}
