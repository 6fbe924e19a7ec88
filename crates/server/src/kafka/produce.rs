//! Produce and InitProducerId. Batches go to `Broker::produce` exactly as the
//! producer sent them (any codec; a topic whose `compression.type` names a
//! codec has its batches recompressed to it by the broker).

use cairn_kafka::kafka_protocol::messages::produce_request::PartitionProduceData;
use cairn_kafka::kafka_protocol::messages::produce_response::BatchIndexAndErrorMessage;
use cairn_kafka::kafka_protocol::messages::produce_response::PartitionProduceResponse;
use cairn_kafka::kafka_protocol::messages::produce_response::TopicProduceResponse;
use cairn_kafka::kafka_protocol::messages::InitProducerIdRequest;
use cairn_kafka::kafka_protocol::messages::InitProducerIdResponse;
use cairn_kafka::kafka_protocol::messages::ProduceRequest;
use cairn_kafka::kafka_protocol::messages::ProduceResponse;
use cairn_kafka::kafka_protocol::messages::ProducerId;
use cairn_kafka::kafka_protocol::ResponseError;
use futures::future::join_all;

use super::code;
use super::str_bytes;
use cairn_broker::Acks;
use cairn_broker::Broker;
use cairn_broker::BrokerError;
use cairn_broker::RequestContext;

/// A produce request's timeout when it names none.
const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// Answers a Produce; `None` for acks=0, which Kafka never answers.
///
/// acks=1 is served as acks=-1: Cairn assigns offsets when a batch is
/// committed (on a majority), so there is no earlier point at which the
/// leader could name the offset. The producer waits a little longer and
/// gets the stronger guarantee.
pub(crate) async fn produce(
    broker: &Broker,
    ctx: &RequestContext,
    req: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let acks = match req.acks {
        0 => Acks::None,
        _ => Acks::All,
    };
    let refused = if req.transactional_id.is_some() {
        Some(code(ResponseError::TransactionalIdAuthorizationFailed))
    } else if !(-1..=1).contains(&req.acks) {
        Some(code(ResponseError::InvalidRequiredAcks))
    } else {
        None
    };
    let timeout_ms = match req.timeout_ms {
        t if t > 0 => t as u64,
        _ => DEFAULT_TIMEOUT_MS,
    };
    // Version 13 names topics by id (KIP-516).
    let by_id = (version >= 13).then(|| {
        let ids = req
            .topic_data
            .iter()
            .filter_map(|t| super::metadata::topic_id_of(t.topic_id))
            .collect();
        broker.topic_names_of(&ids)
    });
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for t in req.topic_data {
        let (name, refused) = match &by_id {
            Some(names) => {
                match super::metadata::topic_id_of(t.topic_id).and_then(|id| names.get(&id)) {
                    Some(n) => (n.clone(), refused),
                    None => (String::new(), Some(code(ResponseError::UnknownTopicId))),
                }
            }
            None => (t.name.0.to_string(), refused),
        };
        let answers = join_all(t.partition_data.into_iter().map(|p| {
            let name = name.clone();
            async move {
                match refused {
                    Some(error) => partition_error(p.index, error, None),
                    None => produce_partition(broker, ctx, &name, p, acks, timeout_ms).await,
                }
            }
        }))
        .await;
        topics.push(
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id)
                .with_partition_responses(answers),
        );
    }
    (acks != Acks::None).then(|| ProduceResponse::default().with_responses(topics))
}

fn partition_error(index: i32, error: i16, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error)
        .with_base_offset(-1)
        .with_error_message(message.map(str_bytes))
}

async fn produce_partition(
    broker: &Broker,
    ctx: &RequestContext,
    topic: &str,
    p: PartitionProduceData,
    acks: Acks,
    timeout_ms: u64,
) -> PartitionProduceResponse {
    let Ok(partition) = u32::try_from(p.index) else {
        return partition_error(p.index, code(ResponseError::UnknownTopicOrPartition), None);
    };
    let Some(records) = p.records else {
        return partition_error(p.index, code(ResponseError::CorruptMessage), None);
    };
    match broker
        .produce(ctx, topic, partition, records, acks, timeout_ms)
        .await
    {
        // A duplicate (an idempotent producer's retry) is a success carrying
        // the offset the batch was first written at, as in Kafka.
        Ok(done) => PartitionProduceResponse::default()
            .with_index(p.index)
            .with_base_offset(done.base_offset.map_or(-1, |o| o as i64)),
        Err(e) => {
            tracing::debug!(topic, partition, error = %e, "kafka produce refused");
            let answer = partition_error(p.index, e.kafka_code(), Some(e.to_string()));
            match e {
                // KIP-467 (Produce v8+): which records, and why.
                BrokerError::InvalidRecord { records, .. } => answer.with_record_errors(
                    records
                        .into_iter()
                        .map(|(batch_index, why)| {
                            BatchIndexAndErrorMessage::default()
                                .with_batch_index(batch_index)
                                .with_batch_index_error_message(Some(str_bytes(why)))
                        })
                        .collect(),
                ),
                _ => answer,
            }
        }
    }
}

/// A producer id for an idempotent producer, unique across the cluster and
/// restarts, at epoch 0. A producer that names its id and epoch (KIP-360,
/// after an error) keeps the id with the next epoch. Transactions are not
/// supported yet.
pub(crate) async fn init_producer_id(
    broker: &Broker,
    ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let answer = InitProducerIdResponse::default();
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        return answer.with_error_code(code(ResponseError::TransactionalIdAuthorizationFailed));
    }
    let current = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    match broker.init_producer_id(ctx, current).await {
        Ok((id, epoch)) => answer
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(e) => {
            tracing::warn!(error = %e, "kafka: no producer id");
            answer
                .with_producer_id(ProducerId(-1))
                .with_error_code(match e {
                    BrokerError::LeaderNotAvailable { .. } => {
                        code(ResponseError::CoordinatorNotAvailable)
                    }
                    other => other.kafka_code(),
                })
        }
    }
}
