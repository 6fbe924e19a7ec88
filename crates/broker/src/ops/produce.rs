//! Produce: check the batches, then propose them to the partition's Raft
//! group as they are (the entry is the data).

use std::time::Duration;

use bytes::Bytes;
use cairn_metadata::TopicConfig;
use cairn_raft::ProduceCommand;
use cairn_raft::ProduceStamp;
use cairn_raft::ProducerBatch;
use cairn_raft::Request as RaftRequest;
use cairn_raft::Response as RaftResponse;
use openraft::error::ClientWriteError;
use openraft::error::RaftError;

use super::map_write_error;
use super::require_lease;
use super::writable_partition_leader;
use crate::error::ApiError;
use crate::node::Node;

/// When the producer hears back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Once the batches are committed (fsynced on a majority) and applied:
    /// the answer carries the base offset.
    All,
    /// Once the leader accepted the proposal; no offset is known yet.
    Leader,
    /// Not at all (the Kafka door sends no response).
    None,
}

/// The answer to a produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// Offset of the first record; `None` unless `Acks::All`.
    pub base_offset: Option<u64>,
    pub high_watermark: u64,
    /// An idempotent producer's retry of batches already written at
    /// `base_offset`: nothing new was written.
    pub duplicate: bool,
}

/// What the leader learns from checking a produce request's batches.
#[derive(Debug)]
struct Validated {
    record_count: u32,
    max_timestamp_ms: i64,
    /// The smallest first-record timestamp of the batches.
    min_base_timestamp_ms: i64,
    producer: Option<ProducerBatch>,
}

/// Checks every batch of a produce request: CRC, framing, size; and for a
/// compacted topic, that every record has a key (as Kafka, which refuses a
/// keyless record there: compaction keeps the latest record *per key*).
fn validate_records(
    records: &[u8],
    max_message_bytes: u64,
    compacted: bool,
) -> Result<Validated, ApiError> {
    if records.is_empty() {
        return Err(ApiError::InvalidArgument(
            "produce request holds no record batch".into(),
        ));
    }
    let mut count: u64 = 0;
    let mut max_ts = i64::MIN;
    let mut min_base_ts = i64::MAX;
    let mut producer: Option<ProducerBatch> = None;
    for batch in cairn_record::split_batches(records) {
        let batch = batch.map_err(|e| ApiError::CorruptMessage(e.to_string()))?;
        if batch.len() as u64 > max_message_bytes {
            return Err(ApiError::MessageTooLarge {
                size: batch.len(),
                max: max_message_bytes,
            });
        }
        let header = cairn_record::validate_batch(batch)
            .map_err(|e| ApiError::CorruptMessage(e.to_string()))?;
        if compacted && !header.is_control() {
            // Only compacted topics pay for decoding (and decompressing).
            let (_, decoded) = cairn_record::decode_batch(&Bytes::copy_from_slice(batch))
                .map_err(|e| ApiError::CorruptMessage(e.to_string()))?;
            let keyless: Vec<(i32, String)> = decoded
                .iter()
                .enumerate()
                .filter(|(_, r)| r.key.is_none())
                .map(|(i, _)| {
                    (
                        i32::try_from(i).unwrap_or(i32::MAX),
                        "Compacted topic cannot accept message without key".to_string(),
                    )
                })
                .collect();
            if !keyless.is_empty() {
                return Err(ApiError::InvalidRecord {
                    message: format!(
                        "Compacted topic cannot accept message without key ({} of {} records)",
                        keyless.len(),
                        decoded.len()
                    ),
                    records: keyless,
                });
            }
        }
        count += header.offset_count() as u64;
        max_ts = max_ts.max(header.max_timestamp);
        min_base_ts = min_base_ts.min(header.base_timestamp);
        if header.producer_id >= 0 {
            let last_sequence = header.base_sequence.wrapping_add(header.last_offset_delta);
            producer = Some(match producer {
                None => ProducerBatch {
                    producer_id: header.producer_id,
                    epoch: header.producer_epoch,
                    first_sequence: header.base_sequence,
                    last_sequence,
                },
                Some(p)
                    if p.producer_id == header.producer_id && p.epoch == header.producer_epoch =>
                {
                    ProducerBatch { last_sequence, ..p }
                }
                Some(_) => {
                    return Err(ApiError::InvalidArgument(
                        "the batches of one produce request must come from one producer".into(),
                    ))
                }
            });
        }
    }
    let record_count = u32::try_from(count)
        .map_err(|_| ApiError::InvalidArgument("too many records in one request".into()))?;
    Ok(Validated {
        record_count,
        max_timestamp_ms: max_ts,
        min_base_timestamp_ms: min_base_ts,
        producer,
    })
}

/// The leader's clock, stamped into every produce it proposes: the time
/// every replica uses to expire idempotent-producer state (their own clocks
/// never decide it).
fn wall_clock_ms() -> i64 {
    cairn_clock::system_time()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How a topic treats record timestamps (`message.timestamp.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimestampPolicy {
    LogAppendTime,
    /// The producer's timestamps, at most `before_ms` in the past and
    /// `after_ms` in the future of the leader's clock.
    CreateTime {
        before_ms: i64,
        after_ms: i64,
    },
}

fn timestamp_policy(configs: &std::collections::BTreeMap<String, String>) -> TimestampPolicy {
    if TopicConfig::MessageTimestampType.value_in(configs) == "LogAppendTime" {
        return TimestampPolicy::LogAppendTime;
    }
    TimestampPolicy::CreateTime {
        before_ms: TopicConfig::MessageTimestampBeforeMaxMs.int_in(configs),
        after_ms: TopicConfig::MessageTimestampAfterMaxMs.int_in(configs),
    }
}

/// Kafka's CreateTime bounds: a batch whose first record is older than
/// `before_ms`, or whose newest is more than `after_ms` ahead of `now_ms`, is
/// refused (INVALID_TIMESTAMP). The header's first and largest timestamps
/// stand for the records'.
fn check_timestamps(
    now_ms: i64,
    min_ts: i64,
    max_ts: i64,
    before_ms: i64,
    after_ms: i64,
) -> Result<(), ApiError> {
    if now_ms.saturating_sub(min_ts) > before_ms {
        return Err(ApiError::InvalidTimestamp(format!(
            "timestamp {min_ts} is more than message.timestamp.before.max.ms = {before_ms} before the broker's time {now_ms}"
        )));
    }
    if max_ts.saturating_sub(now_ms) > after_ms {
        return Err(ApiError::InvalidTimestamp(format!(
            "timestamp {max_ts} is more than message.timestamp.after.max.ms = {after_ms} after the broker's time {now_ms}"
        )));
    }
    Ok(())
}

/// The codec a topic's `compression.type` stores batches with; `None`:
/// the producer's (`producer`).
fn stored_codec(compression_type: &str) -> Option<cairn_record::Compression> {
    use cairn_record::Compression;
    match compression_type {
        "uncompressed" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// `records` (validated batches) with every batch in `codec`.
fn recompress_all(records: &Bytes, codec: cairn_record::Compression) -> Result<Bytes, ApiError> {
    let mut out: Option<Vec<u8>> = None;
    let mut done = 0;
    let mut batches = cairn_record::split_batches(records);
    loop {
        let start = batches.position();
        let Some(batch) = batches.next() else {
            break;
        };
        let batch = batch.map_err(|e| ApiError::CorruptMessage(e.to_string()))?;
        let end = start + batch.len();
        if let Some(new) = cairn_record::recompress(batch, codec)
            .map_err(|e| ApiError::CorruptMessage(e.to_string()))?
        {
            let buf = out.get_or_insert_with(|| Vec::with_capacity(records.len()));
            buf.extend_from_slice(&records[done..start]);
            buf.extend_from_slice(&new);
            done = end;
        }
    }
    Ok(match out {
        None => records.clone(),
        Some(mut buf) => {
            buf.extend_from_slice(&records[done..]);
            Bytes::from(buf)
        }
    })
}

/// The topic's `producer.id.expiration.ms`, else the node's default.
pub(crate) fn producer_id_expiration_ms(
    node_default: i64,
    topic: &std::collections::BTreeMap<String, String>,
) -> i64 {
    topic
        .get(TopicConfig::ProducerIdExpirationMs.key())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(node_default)
        .max(1)
}

/// Appends `records` (one or more RecordBatch v2, as the producer sent them)
/// to a partition. `timeout_ms` bounds the wait for `Acks::All`.
pub(crate) async fn produce(
    node: &Node,
    topic_name: &str,
    partition: u32,
    records: Bytes,
    acks: Acks,
    timeout_ms: u64,
) -> Result<Produced, ApiError> {
    let (topic, replica) = writable_partition_leader(node, topic_name, partition)?;
    // The topic's max.message.bytes, else the broker default
    // (message.max.bytes, dynamic or the node's setting).
    let max = topic
        .configs
        .get(TopicConfig::MaxMessageBytes.key())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or_else(|| node.broker_default("message.max.bytes"))
        .max(1) as u64;
    let compacted = crate::tasks::is_compacted(&node.cleanup_policy(&topic.configs));
    let Validated {
        record_count,
        mut max_timestamp_ms,
        min_base_timestamp_ms,
        producer,
    } = validate_records(&records, max, compacted)?;
    let append_time_ms = wall_clock_ms();
    let mut records = records;
    match timestamp_policy(&topic.configs) {
        TimestampPolicy::LogAppendTime => {
            // Kafka's LogAppendTime: the leader's clock, in every batch.
            let mut stamped = records.to_vec();
            cairn_record::set_log_append_time(&mut stamped, append_time_ms)
                .map_err(|e| ApiError::CorruptMessage(e.to_string()))?;
            records = Bytes::from(stamped);
            max_timestamp_ms = append_time_ms;
        }
        TimestampPolicy::CreateTime {
            before_ms,
            after_ms,
        } => {
            check_timestamps(
                append_time_ms,
                min_base_timestamp_ms,
                max_timestamp_ms,
                before_ms,
                after_ms,
            )?;
        }
    }
    if let Some(codec) = stored_codec(TopicConfig::CompressionType.value_in(&topic.configs)) {
        records = recompress_all(&records, codec)?;
    }
    let bytes = records.len();
    let cmd = RaftRequest::Produce(ProduceCommand {
        records,
        record_count,
        max_timestamp_ms,
        producer,
        stamp: Some(ProduceStamp {
            append_time_ms,
            producer_id_expiration_ms: producer_id_expiration_ms(
                node.broker_default("producer.id.expiration.ms"),
                &topic.configs,
            ),
        }),
        mirror: None,
    });
    let what = format!("{topic_name}/{partition}");
    require_lease(&replica, topic_name, partition).await?;
    metrics::counter!("cairn_produce_bytes_total").increment(bytes as u64);
    metrics::counter!("cairn_produce_records_total").increment(u64::from(record_count));
    if acks != Acks::All {
        replica
            .raft
            .client_write_ff(cmd, None)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        return Ok(Produced {
            base_offset: None,
            high_watermark: replica.log.high_watermark(),
            duplicate: false,
        });
    }
    let write = async {
        match replica.raft.client_write(cmd.clone()).await {
            // The lease lapsed between the check and the write: renew, retry once.
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))
                if f.leader_id.is_none() && replica.is_leader() =>
            {
                replica.renew_lease_if_stale().await;
                replica.raft.client_write(cmd).await
            }
            other => other,
        }
    };
    let resp = tokio::time::timeout(Duration::from_millis(timeout_ms), write)
        .await
        .map_err(|_| ApiError::Timeout(timeout_ms))?
        .map_err(|e| map_write_error(&what, e, node))?;
    match resp.data {
        RaftResponse::Produce {
            base_offset,
            high_watermark,
            duplicate,
        } => Ok(Produced {
            base_offset: Some(base_offset),
            high_watermark,
            duplicate,
        }),
        RaftResponse::OutOfOrderSequence {
            producer_id,
            expected,
            got,
        } => Err(ApiError::OutOfOrderSequence {
            producer_id,
            expected,
            got,
        }),
        RaftResponse::InvalidProducerEpoch {
            producer_id,
            epoch,
            current,
        } => Err(ApiError::InvalidProducerEpoch {
            producer_id,
            epoch,
            current,
        }),
        other => Err(ApiError::Internal(format!("partition answered {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topics_producer_id_expiration_overrides_the_node_default() {
        let topic = |v: &str| {
            std::collections::BTreeMap::from([(
                "producer.id.expiration.ms".to_string(),
                v.to_string(),
            )])
        };
        let none = std::collections::BTreeMap::new();
        assert_eq!(producer_id_expiration_ms(86_400_000, &none), 86_400_000);
        assert_eq!(
            producer_id_expiration_ms(86_400_000, &topic("60000")),
            60_000
        );
        // Validated on the way in; never below 1 ms however it got there.
        assert_eq!(producer_id_expiration_ms(86_400_000, &topic("0")), 1);
        assert_eq!(producer_id_expiration_ms(5, &topic("x")), 5);
    }

    #[test]
    fn produce_validation_rejects_bad_input() {
        let mut b = cairn_record::RecordBatchBuilder::new();
        b.push(1, Some(b"k"), Some(b"v"), &[]);
        let batch = b.build();
        assert_eq!(
            validate_records(&batch, 1 << 20, true)
                .unwrap()
                .record_count,
            1
        );
        assert!(matches!(
            validate_records(&[], 1 << 20, false),
            Err(ApiError::InvalidArgument(_))
        ));
        assert!(matches!(
            validate_records(&batch, 10, false),
            Err(ApiError::MessageTooLarge { .. })
        ));
        let mut bad = batch.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(matches!(
            validate_records(&bad, 1 << 20, false),
            Err(ApiError::CorruptMessage(_))
        ));
    }

    #[test]
    fn create_time_bounds_refuse_timestamps_too_old_or_too_new() {
        let configs = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert_eq!(
            timestamp_policy(&configs(&[("message.timestamp.type", "LogAppendTime")])),
            TimestampPolicy::LogAppendTime
        );
        let TimestampPolicy::CreateTime {
            before_ms,
            after_ms,
        } = timestamp_policy(&configs(&[
            ("message.timestamp.before.max.ms", "1000"),
            ("message.timestamp.after.max.ms", "500"),
        ]))
        else {
            panic!("CreateTime expected")
        };
        let now = 1_000_000;
        assert!(check_timestamps(now, now - 1000, now + 500, before_ms, after_ms).is_ok());
        assert!(matches!(
            check_timestamps(now, now - 1001, now, before_ms, after_ms),
            Err(ApiError::InvalidTimestamp(_))
        ));
        assert!(matches!(
            check_timestamps(now, now, now + 501, before_ms, after_ms),
            Err(ApiError::InvalidTimestamp(_))
        ));
        // The defaults allow anything, even a timestamp of 0 or far ahead.
        let TimestampPolicy::CreateTime {
            before_ms,
            after_ms,
        } = timestamp_policy(&configs(&[]))
        else {
            panic!("CreateTime expected")
        };
        assert!(check_timestamps(now, 0, i64::MAX, before_ms, after_ms).is_ok());
    }

    #[test]
    fn compacted_topics_refuse_records_without_a_key() {
        for codec in [
            cairn_record::Compression::None,
            cairn_record::Compression::Lz4,
        ] {
            let mut b = cairn_record::RecordBatchBuilder::new().with_compression(codec);
            b.push(1, Some(b"k"), Some(b"v"), &[]);
            b.push(2, None, Some(b"v"), &[]);
            let batch = b.build();
            assert_eq!(
                validate_records(&batch, 1 << 20, false)
                    .unwrap()
                    .record_count,
                2
            );
            match validate_records(&batch, 1 << 20, true) {
                Err(ApiError::InvalidRecord { message, records }) => {
                    assert!(message.contains("without key"), "{message}");
                    // The second record (index 1 in its batch) is named.
                    assert_eq!(records.len(), 1);
                    assert_eq!(records[0].0, 1);
                }
                other => panic!("{codec:?}: expected a refusal, got {other:?}"),
            }
        }
    }
}
