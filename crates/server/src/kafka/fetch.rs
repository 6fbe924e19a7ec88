//! Fetch, ListOffsets, OffsetForLeaderEpoch: reads, served by each
//! partition's leader with a live lease (`cairn_broker::PartitionReader`).
//!
//! Leader epochs are Raft terms. A request naming a `current_leader_epoch`
//! older than the leader's term is FENCED_LEADER_EPOCH, a newer one
//! UNKNOWN_LEADER_EPOCH (the client's metadata is ahead of this node's).
//!
//! Fetch requests of version 7 and later may use incremental fetch sessions
//! (KIP-227, `fetch_session`).

use std::time::Duration;

use cairn_broker::acl::Operation;
use cairn_broker::Broker;
use cairn_broker::BrokerError as ApiError;
use cairn_broker::FirstBatch;
use cairn_broker::OffsetSpec;
use cairn_broker::PartitionReader;
use cairn_broker::RequestContext;
use cairn_broker::FETCH_MAX_BYTES_LIMIT;
use cairn_broker::FETCH_MAX_WAIT;
use cairn_kafka::kafka_protocol::messages::fetch_response::FetchableTopicResponse;
use cairn_kafka::kafka_protocol::messages::fetch_response::PartitionData;
use cairn_kafka::kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use cairn_kafka::kafka_protocol::messages::list_offsets_response::ListOffsetsTopicResponse;
use cairn_kafka::kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use cairn_kafka::kafka_protocol::messages::offset_for_leader_epoch_response::OffsetForLeaderTopicResult;
use cairn_kafka::kafka_protocol::messages::FetchRequest;
use cairn_kafka::kafka_protocol::messages::FetchResponse;
use cairn_kafka::kafka_protocol::messages::ListOffsetsRequest;
use cairn_kafka::kafka_protocol::messages::ListOffsetsResponse;
use cairn_kafka::kafka_protocol::messages::OffsetForLeaderEpochRequest;
use cairn_kafka::kafka_protocol::messages::OffsetForLeaderEpochResponse;
use cairn_kafka::kafka_protocol::messages::TopicName;
use cairn_kafka::kafka_protocol::ResponseError;
use futures::future::select_all;
use futures::FutureExt;

use super::code;
use super::fetch_session::FetchSessions;
use super::fetch_session::FetchTopics;
use super::fetch_session::Plan;

/// A fetch's `max_bytes` when it names none (Kafka's `fetch.max.bytes`).
const DEFAULT_FETCH_MAX_BYTES: usize = 50 << 20;

/// Why a partition cannot be read: a Kafka error code.
type Refusal = i16;

/// The leader replica of `topic`/`partition` for read `op`, if the
/// principal may and the client's idea of its leader epoch (`-1`: none) is
/// the current one.
fn leader_at_epoch(
    broker: &Broker,
    ctx: &RequestContext,
    op: Operation,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
) -> Result<PartitionReader, Refusal> {
    let partition =
        u32::try_from(partition).map_err(|_| code(ResponseError::UnknownTopicOrPartition))?;
    let reader = broker
        .reader(ctx, op, topic, partition)
        .map_err(|e| e.kafka_code())?;
    check_epoch(reader.term(), current_leader_epoch)?;
    Ok(reader)
}

fn check_epoch(term: u64, current_leader_epoch: i32) -> Result<(), Refusal> {
    if current_leader_epoch < 0 {
        return Ok(());
    }
    match (current_leader_epoch as u64).cmp(&term) {
        std::cmp::Ordering::Less => Err(code(ResponseError::FencedLeaderEpoch)),
        std::cmp::Ordering::Greater => Err(code(ResponseError::UnknownLeaderEpoch)),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

fn refused(partition: i32, error: i16) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(error)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(Default::default()))
}

/// What one pass over the partitions of a fetch found.
struct Pass {
    responses: Vec<FetchableTopicResponse>,
    /// Record bytes in `responses`.
    total: usize,
    /// Partitions read to their end: the fetch offset each waits past.
    waiting: Vec<(PartitionReader, u64)>,
    /// Whether the byte limits left records for a later fetch.
    more: bool,
}

/// One pass over the partitions of a fetch: what each has now, in at most
/// `max_bytes` and each partition's `partition_max_bytes` (KIP-74). Only the
/// first batch of the answer may be larger (so that no batch is too large
/// to be read); after it, a batch that does not fit is left for a later
/// fetch, and later partitions get only what still fits.
async fn read_all(
    broker: &Broker,
    ctx: &RequestContext,
    topics: &FetchTopics,
    max_bytes: usize,
) -> Pass {
    let mut pass = Pass {
        responses: Vec::with_capacity(topics.len()),
        total: 0,
        waiting: Vec::new(),
        more: false,
    };
    for (name, partitions) in topics {
        let mut answers = Vec::with_capacity(partitions.len());
        for p in partitions {
            let replica = match leader_at_epoch(
                broker,
                ctx,
                Operation::Fetch,
                name.as_str(),
                p.partition,
                p.current_leader_epoch,
            ) {
                Ok(r) => r,
                Err(e) => {
                    answers.push(refused(p.partition, e));
                    continue;
                }
            };
            let Ok(offset) = u64::try_from(p.fetch_offset) else {
                answers.push(refused(p.partition, code(ResponseError::OffsetOutOfRange)));
                continue;
            };
            let budget =
                (p.partition_max_bytes.max(0) as usize).min(max_bytes.saturating_sub(pass.total));
            let first = if pass.total == 0 {
                FirstBatch::Whole
            } else {
                FirstBatch::WithinLimit
            };
            match replica.read(offset, budget, first).await {
                Ok(r) => {
                    pass.total += r.records.len();
                    if r.next_offset < r.high_watermark {
                        pass.more = true;
                    } else if r.records.is_empty() {
                        pass.waiting.push((replica.clone(), offset));
                    }
                    answers.push(
                        PartitionData::default()
                            .with_partition_index(p.partition)
                            .with_high_watermark(r.high_watermark as i64)
                            .with_last_stable_offset(r.high_watermark as i64)
                            .with_log_start_offset(r.log_start as i64)
                            .with_aborted_transactions(Some(vec![]))
                            .with_records(Some(r.records)),
                    );
                }
                Err(e) => answers.push(fetch_error(p.partition, &replica, e)),
            }
        }
        pass.responses.push(
            FetchableTopicResponse::default()
                .with_topic(name.clone())
                .with_partitions(answers),
        );
    }
    pass
}

fn fetch_error(partition: i32, replica: &PartitionReader, e: ApiError) -> PartitionData {
    let mut answer = refused(partition, e.kafka_code());
    if let ApiError::OffsetOutOfRange { .. } = e {
        answer = answer
            .with_high_watermark(replica.high_watermark() as i64)
            .with_last_stable_offset(replica.high_watermark() as i64)
            .with_log_start_offset(replica.log_start() as i64);
    }
    answer
}

/// Fetch: reads every partition asked for (or, in an incremental fetch
/// session, every partition of the session); while fewer than `min_bytes`
/// came back and `max_wait_ms` has not passed, waits for any of them to
/// get new records and reads again.
pub(crate) async fn fetch(
    broker: &Broker,
    ctx: &RequestContext,
    sessions: &FetchSessions,
    req: FetchRequest,
    version: i16,
) -> FetchResponse {
    // The whole answer, not each partition, is held to the node's limit.
    let max_bytes = match req.max_bytes {
        n if n > 0 => n as usize,
        _ => DEFAULT_FETCH_MAX_BYTES,
    }
    .min(FETCH_MAX_BYTES_LIMIT);
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(FETCH_MAX_WAIT);
    let min_bytes = req.min_bytes.max(0) as usize;
    let mut req = req;
    // Version 13 and later name topics by id (KIP-516): they are served by
    // name, as the fetch sessions keep them, and answered by id.
    let by_id = (version >= 13).then(|| {
        let ids = req
            .topics
            .iter()
            .map(|t| t.topic_id)
            .chain(req.forgotten_topics_data.iter().map(|t| t.topic_id))
            .filter_map(super::metadata::topic_id_of)
            .collect();
        broker.topic_names_of(&ids)
    });
    let mut unknown_ids = Vec::new();
    if let Some(names) = &by_id {
        let name_of = |id: uuid::Uuid| {
            super::metadata::topic_id_of(id)
                .and_then(|id| names.get(&id))
                .map(|n| TopicName(super::str_bytes(n.clone())))
        };
        req.topics.retain_mut(|t| match name_of(t.topic_id) {
            Some(name) => {
                t.topic = name;
                true
            }
            None => {
                unknown_ids.push(
                    FetchableTopicResponse::default()
                        .with_topic_id(t.topic_id)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| refused(p.partition, code(ResponseError::UnknownTopicId)))
                                .collect(),
                        ),
                );
                false
            }
        });
        req.forgotten_topics_data
            .retain_mut(|t| match name_of(t.topic_id) {
                Some(name) => {
                    t.topic = name;
                    true
                }
                None => false,
            });
    }
    let asked: FetchTopics = req
        .topics
        .into_iter()
        .map(|t| (t.topic, t.partitions))
        .collect();
    let mut answer = fetch_by_name(
        broker,
        ctx,
        sessions,
        req.session_id,
        req.session_epoch,
        req.forgotten_topics_data,
        asked,
        version,
        (max_bytes, min_bytes, wait),
    )
    .await;
    if by_id.is_some() {
        // An incremental session answers topics of earlier requests too.
        let ids = broker.topic_ids_of(answer.responses.iter().map(|t| t.topic.as_str()));
        for t in answer.responses.iter_mut() {
            match ids.get(t.topic.as_str()) {
                Some(id) => t.topic_id = super::metadata::topic_uuid_of(*id),
                // Deleted meanwhile: its id is no more.
                None => {
                    for p in t.partitions.iter_mut() {
                        p.error_code = code(ResponseError::UnknownTopicId);
                    }
                }
            }
        }
        answer.responses.extend(unknown_ids);
    }
    answer
}

/// Fetch with the topics named (whatever the version named them by).
#[allow(clippy::too_many_arguments)]
async fn fetch_by_name(
    broker: &Broker,
    ctx: &RequestContext,
    sessions: &FetchSessions,
    session_id: i32,
    session_epoch: i32,
    forgotten: Vec<cairn_kafka::kafka_protocol::messages::fetch_request::ForgottenTopic>,
    asked: FetchTopics,
    version: i16,
    (max_bytes, min_bytes, wait): (usize, usize, Duration),
) -> FetchResponse {
    let plan = if version >= 7 {
        let forgotten: Vec<(TopicName, Vec<i32>)> = forgotten
            .into_iter()
            .map(|t| (t.topic, t.partitions))
            .collect();
        sessions.plan(session_id, session_epoch, &asked, &forgotten)
    } else {
        Plan::Sessionless
    };
    let kind = match &plan {
        Plan::Sessionless => "none",
        Plan::Full => "full",
        Plan::Incremental { .. } => "incremental",
        Plan::Refuse(_) => "refused",
    };
    metrics::counter!("cairn_kafka_fetch_requests_total", "session" => kind).increment(1);
    let answer = FetchResponse::default();
    match plan {
        Plan::Refuse(error) => answer.with_error_code(error),
        Plan::Sessionless => {
            answer.with_responses(read_until(broker, ctx, &asked, max_bytes, min_bytes, wait).await)
        }
        Plan::Full => {
            let responses = read_until(broker, ctx, &asked, max_bytes, min_bytes, wait).await;
            let id = sessions.open(&asked, &responses);
            metrics::gauge!("cairn_kafka_fetch_sessions").set(sessions.len() as f64);
            answer.with_session_id(id).with_responses(responses)
        }
        Plan::Incremental { id, topics } => {
            let responses = read_until(broker, ctx, &topics, max_bytes, min_bytes, wait).await;
            answer
                .with_session_id(id)
                .with_responses(sessions.changed(id, responses))
        }
    }
}

/// Reads `topics` until `min_bytes` came back, the limits left records out,
/// `wait` passed, a partition failed, or none is waiting at its end.
async fn read_until(
    broker: &Broker,
    ctx: &RequestContext,
    topics: &FetchTopics,
    max_bytes: usize,
    min_bytes: usize,
    wait: Duration,
) -> Vec<FetchableTopicResponse> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let pass = read_all(broker, ctx, topics, max_bytes).await;
        let now = tokio::time::Instant::now();
        let failed = pass
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|p| p.error_code != super::NONE);
        // Records left out by the limits cannot come later in this
        // fetch: answer now, the client asks for them next.
        if pass.total >= min_bytes.max(1)
            || pass.more
            || now >= deadline
            || failed
            || pass.waiting.is_empty()
        {
            return pass.responses;
        }
        // Too little yet: wait for a partition at its end to get records.
        let left = deadline - now;
        let waits = pass
            .waiting
            .iter()
            .map(|(r, offset)| r.wait_for(*offset, left).boxed());
        select_all(waits).await;
    }
}

/// ListOffsets: -2 the log start, -1 the high watermark (also the last
/// stable offset: Cairn has no transactions), else the first record at or
/// after the timestamp. Version 4 and later carry the leader epoch.
pub(crate) async fn list_offsets(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut answers = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let answer =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            let result = match leader_at_epoch(
                broker,
                ctx,
                Operation::ListOffsets,
                t.name.as_str(),
                p.partition_index,
                p.current_leader_epoch,
            ) {
                Err(e) => Err(e),
                Ok(_) => {
                    // -3 (v7): the largest timestamp; -4 (v8, earliest
                    // local) is the earliest: no tiered storage here; -5
                    // (v9, latest tiered) names no offset (-1).
                    let spec = match p.timestamp {
                        -2 | -4 => Some(OffsetSpec::Earliest),
                        -1 => Some(OffsetSpec::Latest),
                        -3 => Some(OffsetSpec::MaxTimestamp),
                        -5 => None,
                        ts => Some(OffsetSpec::Timestamp(ts)),
                    };
                    let Some(spec) = spec else {
                        answers.push(answer.with_offset(-1).with_timestamp(-1));
                        continue;
                    };
                    broker
                        .list_offsets(ctx, t.name.as_str(), p.partition_index as u32, spec)
                        .await
                        .map_err(|e| e.kafka_code())
                }
            };
            answers.push(match result {
                Ok((offset, timestamp, epoch)) => {
                    let answer = answer.with_offset(offset).with_timestamp(timestamp);
                    if version >= 4 {
                        answer.with_leader_epoch(i32::try_from(epoch).unwrap_or(i32::MAX))
                    } else {
                        answer
                    }
                }
                Err(e) => answer.with_error_code(e).with_offset(-1).with_timestamp(-1),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(answers),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// OffsetForLeaderEpoch: the end offset of a leader epoch. Committed records
/// are never truncated under Raft and consumers read only committed ones, so
/// for every epoch up to the current term the answer is the high watermark:
/// it never makes a consumer believe its position was truncated. A later
/// epoch than the current term is unknown (-1, -1), as in Kafka.
pub(crate) async fn offset_for_leader_epoch(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let answer = EpochEndOffset::default().with_partition(p.partition);
            partitions.push(
                match epoch_end_offset(
                    broker,
                    ctx,
                    t.topic.as_str(),
                    p.partition,
                    p.current_leader_epoch,
                )
                .await
                {
                    Err(e) => answer
                        .with_error_code(e)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1),
                    Ok((term, _)) if p.leader_epoch < 0 || p.leader_epoch as u64 > term => {
                        answer.with_leader_epoch(-1).with_end_offset(-1)
                    }
                    Ok((_, high_watermark)) => answer
                        .with_leader_epoch(p.leader_epoch)
                        .with_end_offset(high_watermark as i64),
                },
            );
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// The leader's term and high watermark, read as any read is: with a live
/// lease, once the leader has applied an entry of its own term.
async fn epoch_end_offset(
    broker: &Broker,
    ctx: &RequestContext,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
) -> Result<(u64, u64), Refusal> {
    let replica = leader_at_epoch(
        broker,
        ctx,
        Operation::OffsetForLeaderEpoch,
        topic,
        partition,
        current_leader_epoch,
    )?;
    replica.epoch_end().await.map_err(|e| e.kafka_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_epochs_are_checked_against_the_term() {
        assert_eq!(check_epoch(5, -1), Ok(()));
        assert_eq!(check_epoch(5, 5), Ok(()));
        assert_eq!(
            check_epoch(5, 4),
            Err(code(ResponseError::FencedLeaderEpoch))
        );
        assert_eq!(
            check_epoch(5, 6),
            Err(code(ResponseError::UnknownLeaderEpoch))
        );
    }
}
