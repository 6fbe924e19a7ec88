//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions,
//! DeleteRecords, DescribeConfigs, AlterConfigs, IncrementalAlterConfigs,
//! DescribeLogDirs. Each goes through the same `Broker` operations (and so
//! the same authorization and validation) as the gRPC API and `cairn topic`.

use std::collections::BTreeMap;

use cairn_kafka::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use cairn_kafka::kafka_protocol::messages::create_topics_response::CreatableTopicConfigs;
use cairn_kafka::kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use cairn_kafka::kafka_protocol::messages::delete_records_response::DeleteRecordsPartitionResult;
use cairn_kafka::kafka_protocol::messages::delete_records_response::DeleteRecordsTopicResult;
use cairn_kafka::kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use cairn_kafka::kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use cairn_kafka::kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use cairn_kafka::kafka_protocol::messages::describe_configs_response::DescribeConfigsSynonym;
use cairn_kafka::kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsPartition;
use cairn_kafka::kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsResult;
use cairn_kafka::kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsTopic;
use cairn_kafka::kafka_protocol::messages::*;
use cairn_kafka::kafka_protocol::ResponseError;
use cairn_metadata::dynamic_broker_config;
use cairn_metadata::topic_config_def;
use cairn_metadata::topic_configs::ConfigDef;
use cairn_metadata::topic_configs::ConfigType;
use cairn_metadata::Topic;
use cairn_metadata::DYNAMIC_BROKER_CONFIGS;
use cairn_metadata::TOPIC_CONFIGS;

use super::code;
use super::metadata::topic_uuid;
use super::str_bytes;
use cairn_broker::views::Topics;
use cairn_broker::Broker;
use cairn_broker::BrokerError as ApiError;
use cairn_broker::NewTopic;
use cairn_broker::RequestContext;
use cairn_broker::ServerConfig;

/// Kafka's config resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
/// Kafka's config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_DYNAMIC_BROKER_LOGGER: i8 = 6;
/// Kafka's config type STRING.
const TYPE_STRING: i8 = 2;

fn error_message(e: &ApiError) -> Option<cairn_kafka::kafka_protocol::protocol::StrBytes> {
    Some(str_bytes(e.to_string()))
}

/// One config of a topic as Kafka shows it.
struct EffectiveConfig {
    def: &'static ConfigDef,
    value: String,
    /// SOURCE_TOPIC when set on the topic, SOURCE_STATIC_BROKER when this
    /// node's setting stands in for Kafka's default, else SOURCE_DEFAULT.
    source: i8,
    /// Where the value could come from, most specific first (Kafka's
    /// synonyms): the topic's own, this node's setting, the default.
    synonyms: Vec<(&'static str, String, i8)>,
}

/// This node's static setting that stands in for Kafka's default of a
/// broker config, if it has one.
fn static_broker_default(config: &ServerConfig, broker_key: &str) -> Option<String> {
    match broker_key {
        "log.retention.ms" => Some(config.retention_ms.to_string()),
        "log.retention.bytes" => Some(config.retention_bytes.to_string()),
        "message.max.bytes" => Some(config.max_message_bytes.to_string()),
        "producer.id.expiration.ms" => Some(config.producer_id_expiration_ms.to_string()),
        _ => None,
    }
}

/// Where a broker config's value could come from on this node, most
/// specific first (Kafka's synonyms, without the default): the dynamic
/// value set for this node, the cluster-wide one, the static setting.
fn broker_synonyms(
    config: &ServerConfig,
    dynamic: &BTreeMap<String, Vec<(String, bool)>>,
    broker_key: &'static str,
) -> Vec<(&'static str, String, i8)> {
    let mut out = Vec::new();
    for (value, own) in dynamic.get(broker_key).into_iter().flatten() {
        let source = if *own {
            SOURCE_DYNAMIC_BROKER
        } else {
            SOURCE_DYNAMIC_DEFAULT_BROKER
        };
        out.push((broker_key, value.clone(), source));
    }
    if let Some(v) = static_broker_default(config, broker_key) {
        out.push((broker_key, v, SOURCE_STATIC_BROKER));
    }
    out
}

/// Every topic config Kafka defines (and Cairn's own), as the topic has it.
fn effective_configs(
    config: &ServerConfig,
    dynamic: &BTreeMap<String, Vec<(String, bool)>>,
    t: &Topic,
) -> Vec<EffectiveConfig> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let mut synonyms = Vec::new();
            if let Some(v) = t.configs.get(def.key) {
                synonyms.push((def.key, v.clone(), SOURCE_TOPIC));
            }
            let synonym = def.synonym.unwrap_or(def.key);
            if let Some(broker_key) = def.synonym {
                synonyms.extend(
                    broker_synonyms(config, dynamic, broker_key)
                        .into_iter()
                        .filter(|(_, v, source)| {
                            *source != SOURCE_STATIC_BROKER || v != def.default
                        }),
                );
            }
            synonyms.push((synonym, def.default.to_string(), SOURCE_DEFAULT));
            let (_, value, source) = synonyms[0].clone();
            EffectiveConfig {
                def,
                value,
                source,
                synonyms,
            }
        })
        .collect()
}

/// This node's settings under the names of the Kafka broker configs they
/// stand for (from its config file, environment and flags); the dynamic
/// ones among them can be overridden while the cluster runs.
fn broker_configs(c: &ServerConfig) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("broker.id", c.node_id.to_string()),
        ("listeners", format!("PLAINTEXT://{}", c.kafka_addr)),
        (
            "advertised.listeners",
            format!(
                "PLAINTEXT://{}",
                c.advertised_kafka_addr.as_deref().unwrap_or(&c.kafka_addr)
            ),
        ),
        ("log.dirs", c.data_dir.display().to_string()),
        ("log.retention.ms", c.retention_ms.to_string()),
        ("log.retention.bytes", c.retention_bytes.to_string()),
        (
            "log.retention.check.interval.ms",
            c.retention_check_interval_ms.to_string(),
        ),
        ("message.max.bytes", c.max_message_bytes.to_string()),
        (
            "producer.id.expiration.ms",
            c.producer_id_expiration_ms.to_string(),
        ),
        (
            "socket.request.max.bytes",
            c.kafka_max_request_bytes.to_string(),
        ),
        (
            "group.initial.rebalance.delay.ms",
            c.group_initial_rebalance_delay_ms.to_string(),
        ),
        (
            "group.min.session.timeout.ms",
            c.group_min_session_timeout_ms.to_string(),
        ),
        (
            "group.max.session.timeout.ms",
            c.group_max_session_timeout_ms.to_string(),
        ),
        (
            "default.replication.factor",
            cairn_broker::DEFAULT_REPLICATION_FACTOR.to_string(),
        ),
        ("num.partitions", c.num_partitions.to_string()),
        (
            "auto.create.topics.enable",
            c.auto_create_topics_enable.to_string(),
        ),
    ];
    if let Some(rack) = &c.rack {
        out.push(("broker.rack", rack.clone()));
    }
    out
}

/// One broker config as DescribeConfigs shows it.
struct BrokerEntry {
    key: &'static str,
    value: String,
    source: i8,
    read_only: bool,
    kind: i8,
    doc: &'static str,
    synonyms: Vec<(&'static str, String, i8)>,
}

/// This node's broker configs: its settings under the Kafka names they
/// stand for (read-only) and the dynamic configs
/// (`cairn_metadata::broker_configs`), each from the most specific place
/// that sets it: a value set for this node, the cluster-wide value, the
/// node's setting, Kafka's default. `dynamic`: the dynamic values this node
/// reads (value, set for this node); with `cluster_only`, only those.
fn broker_entries(
    config: &ServerConfig,
    dynamic: &BTreeMap<String, (String, bool)>,
    cluster_only: bool,
) -> Vec<BrokerEntry> {
    let dynamic_source = |own: bool| {
        if own {
            SOURCE_DYNAMIC_BROKER
        } else {
            SOURCE_DYNAMIC_DEFAULT_BROKER
        }
    };
    if cluster_only {
        return DYNAMIC_BROKER_CONFIGS
            .iter()
            .filter_map(|def| {
                let (value, own) = dynamic.get(def.key)?;
                let source = dynamic_source(*own);
                Some(BrokerEntry {
                    key: def.key,
                    value: value.clone(),
                    source,
                    read_only: false,
                    kind: def.kind as i8,
                    doc: def.doc,
                    synonyms: vec![(def.key, value.clone(), source)],
                })
            })
            .collect();
    }
    let mut keys: Vec<(&'static str, Option<String>)> = broker_configs(config)
        .into_iter()
        .map(|(k, v)| (k, Some(v)))
        .collect();
    for def in DYNAMIC_BROKER_CONFIGS {
        if !keys.iter().any(|(k, _)| *k == def.key) {
            keys.push((def.key, None));
        }
    }
    keys.sort_by_key(|(k, _)| *k);
    keys.into_iter()
        .map(|(key, static_value)| {
            let def = dynamic_broker_config(key);
            let mut synonyms = Vec::new();
            if let Some((v, own)) = dynamic.get(key) {
                synonyms.push((key, v.clone(), dynamic_source(*own)));
            }
            match (static_value, def) {
                (Some(v), _) => synonyms.push((key, v, SOURCE_STATIC_BROKER)),
                (None, Some(def)) => synonyms.push((key, def.default.to_string(), SOURCE_DEFAULT)),
                (None, None) => {}
            }
            let (_, value, source) = synonyms[0].clone();
            BrokerEntry {
                key,
                value,
                source,
                read_only: def.is_none(),
                kind: def.map_or(ConfigType::String, |d| d.kind) as i8,
                doc: def.map_or("", |d| d.doc),
                synonyms,
            }
        })
        .collect()
}

/// The configs a CreateTopics entry sets.
fn creatable_configs(t: &create_topics_request::CreatableTopic) -> BTreeMap<String, String> {
    t.configs
        .iter()
        .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
        .collect()
}

fn new_topic(
    broker: &Broker,
    ctx: &RequestContext,
    t: &create_topics_request::CreatableTopic,
) -> Result<NewTopic, ApiError> {
    if !t.assignments.is_empty() {
        return assigned_topic(t);
    }
    let partitions = match t.num_partitions {
        -1 => broker.settings().num_partitions,
        n => {
            u32::try_from(n).map_err(|_| ApiError::InvalidPartitions(format!("{n} partitions")))?
        }
    };
    let replication_factor = match t.replication_factor {
        -1 => broker.default_replication_factor(ctx),
        n => u32::try_from(n)
            .map_err(|_| ApiError::InvalidReplicationFactor(format!("replication factor {n}")))?,
    };
    let configs = creatable_configs(t);
    Ok(NewTopic {
        name: t.name.0.to_string(),
        partitions,
        replication_factor,
        configs,
        assignment: None,
    })
}

/// A topic whose replicas the client names (Kafka's manual assignment):
/// partitions 0..n each once. A partition count or replication factor sent
/// besides (Kafka wants -1) must agree with the assignment.
fn assigned_topic(t: &create_topics_request::CreatableTopic) -> Result<NewTopic, ApiError> {
    let mut by_partition: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
    for a in &t.assignments {
        let replicas = a
            .broker_ids
            .iter()
            .map(|b| u64::try_from(b.0))
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|_| ApiError::InvalidReplicaAssignment(format!("{:?}", a.broker_ids)))?;
        if by_partition.insert(a.partition_index, replicas).is_some() {
            return Err(ApiError::InvalidReplicaAssignment(format!(
                "partition {} is assigned twice",
                a.partition_index
            )));
        }
    }
    let count = by_partition.len() as i32;
    if by_partition.keys().copied().ne(0..count) {
        return Err(ApiError::InvalidReplicaAssignment(format!(
            "partitions must be numbered 0 to {}, got {:?}",
            count - 1,
            by_partition.keys().collect::<Vec<_>>()
        )));
    }
    let assignment: Vec<Vec<u64>> = by_partition.into_values().collect();
    let rf = assignment[0].len() as i16;
    if ![-1, count].contains(&t.num_partitions) || ![-1, rf].contains(&t.replication_factor) {
        return Err(ApiError::InvalidArgument(format!(
            "with a replica assignment of {count} partitions and {rf} replicas, num_partitions and replication_factor must be -1 (got {} and {})",
            t.num_partitions, t.replication_factor
        )));
    }
    let configs = creatable_configs(t);
    Ok(NewTopic {
        name: t.name.0.to_string(),
        partitions: assignment.len() as u32,
        replication_factor: assignment[0].len() as u32,
        configs,
        assignment: Some(assignment),
    })
}

pub(crate) async fn create_topics(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let answer = CreatableTopicResult::default().with_name(t.name.clone());
        let created = match new_topic(broker, ctx, &t) {
            Err(e) => Err(e),
            Ok(new) => {
                let (partitions, rf) = (new.partitions, new.replication_factor);
                match broker.create_topic(ctx, new, req.validate_only).await {
                    Err(e) => Err(e),
                    Ok(None) => Ok((partitions, rf, None)),
                    Ok(Some(view)) => Ok((
                        view.topic.partitions.len() as u32,
                        view.topic.replication_factor,
                        Some(view.topic),
                    )),
                }
            }
        };
        results.push(match created {
            Ok((partitions, rf, topic)) => {
                let mut answer = answer
                    .with_num_partitions(partitions as i32)
                    .with_replication_factor(rf as i16);
                if let Some(topic) = topic {
                    answer = answer.with_topic_id(topic_uuid(&topic));
                    if version >= 5 {
                        answer = answer.with_configs(Some(
                            effective_configs(
                                broker.settings(),
                                &broker.broker_config_overrides(),
                                &topic,
                            )
                            .into_iter()
                            .map(|c| {
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(c.def.key))
                                    .with_value(Some(str_bytes(c.value)))
                                    .with_config_source(c.source)
                            })
                            .collect(),
                        ));
                    }
                }
                answer
            }
            Err(e) => answer
                .with_error_code(e.kafka_code())
                .with_error_message(error_message(&e))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub(crate) async fn delete_topics(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // Up to version 5 topics are named in `topic_names`; from 6 on in
    // `topics`, by name or by id.
    let asked: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(asked.len());
    for (name, id) in asked {
        // By id, a topic is found among those the principal may describe.
        let name = name.or_else(|| {
            broker
                .metadata(ctx, Topics::All)
                .topics
                .into_iter()
                .find(|t| topic_uuid(&t.topic) == id)
                .map(|t| t.topic.name)
        });
        let answer = DeletableTopicResult::default().with_topic_id(id);
        responses.push(match name {
            None => answer.with_error_code(code(ResponseError::UnknownTopicId)),
            Some(name) => {
                let answer = answer.with_name(Some(TopicName(str_bytes(name.clone()))));
                match broker.delete_topic(ctx, &name).await {
                    Ok(()) => answer,
                    Err(e) => answer
                        .with_error_code(e.kafka_code())
                        .with_error_message(error_message(&e)),
                }
            }
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// One topic of a CreatePartitions: its new partition count, checked, and
/// the partitions added unless `validate_only`. Replicas are those of the
/// manual assignment (one list per new partition, as Kafka), else chosen
/// as for a new topic.
async fn create_partitions_of(
    broker: &Broker,
    ctx: &RequestContext,
    t: &create_partitions_request::CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), ApiError> {
    let assignment = match &t.assignments {
        Some(a) if !a.is_empty() => Some(
            a.iter()
                .map(|p| {
                    p.broker_ids
                        .iter()
                        .map(|b| {
                            u64::try_from(b.0).map_err(|_| {
                                ApiError::InvalidReplicaAssignment(format!("broker id {}", b.0))
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        _ => None,
    };
    let name = t.name.as_str();
    let count = u32::try_from(t.count)
        .map_err(|_| ApiError::InvalidPartitions(format!("{} partitions", t.count)))?;
    broker
        .create_partitions(ctx, name, count, assignment, validate_only)
        .await
        .map(|_| ())
}

/// CreatePartitions: grows topics through the same operation as `cairn
/// topic add-partitions`. A topic named twice in one request is refused
/// (INVALID_REQUEST), as Kafka does.
pub(crate) async fn create_partitions(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut named: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &req.topics {
        *named.entry(t.name.as_str()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let result = if named[t.name.as_str()] > 1 {
            Err(ApiError::InvalidArgument(format!(
                "topic {:?} is named more than once",
                t.name.as_str()
            )))
        } else {
            create_partitions_of(broker, ctx, t, req.validate_only).await
        };
        let (error, message) = error_fields(result);
        results.push(
            CreatePartitionsTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(error)
                .with_error_message(message),
        );
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// DeleteRecords: the replicated trim retention uses; the log start moves
/// to exactly the offset asked for, answered as the low watermark.
pub(crate) async fn delete_records(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let answer =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            // -1: the high watermark; any other negative offset is out of
            // range, as Kafka answers.
            let before = u64::try_from(p.offset).ok();
            let result = match u32::try_from(p.partition_index) {
                Err(_) => Err(code(ResponseError::UnknownTopicOrPartition)),
                Ok(_) if before.is_none() && p.offset != -1 => {
                    Err(code(ResponseError::OffsetOutOfRange))
                }
                Ok(partition) => broker
                    .delete_records(ctx, t.name.as_str(), partition, before)
                    .await
                    .map_err(|e| e.kafka_code()),
            };
            partitions.push(match result {
                Ok(low) => answer.with_low_watermark(low as i64),
                Err(e) => answer.with_error_code(e).with_low_watermark(-1),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

pub(crate) fn describe_configs(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let (r_synonyms, r_docs) = (req.include_synonyms, req.include_documentation);
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let answer = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match r.resource_type {
                RESOURCE_TOPIC => {
                    match broker.describe_topic_configs(ctx, r.resource_name.as_str()) {
                        Err(e) => answer
                            .with_error_code(e.kafka_code())
                            .with_error_message(error_message(&e)),
                        Ok(t) => answer.with_configs(
                            effective_configs(
                                broker.settings(),
                                &broker.broker_config_overrides(),
                                &t,
                            )
                            .into_iter()
                            .filter(|c| {
                                r.configuration_keys
                                    .as_ref()
                                    .is_none_or(|keys| keys.iter().any(|w| w.as_str() == c.def.key))
                            })
                            .map(|c| {
                                let synonyms = match r_synonyms {
                                    false => Vec::new(),
                                    true => c
                                        .synonyms
                                        .into_iter()
                                        .map(|(name, value, source)| {
                                            DescribeConfigsSynonym::default()
                                                .with_name(str_bytes(name))
                                                .with_value(Some(str_bytes(value)))
                                                .with_source(source)
                                        })
                                        .collect(),
                                };
                                DescribeConfigsResourceResult::default()
                                    .with_name(str_bytes(c.def.key))
                                    .with_value(Some(str_bytes(c.value)))
                                    .with_config_source(c.source)
                                    .with_config_type(c.def.kind as i8)
                                    .with_documentation(r_docs.then(|| str_bytes(c.def.doc)))
                                    .with_synonyms(synonyms)
                            })
                            .collect(),
                        ),
                    }
                }
                // A broker's configs are asked of that broker (Kafka's
                // clients send the request there); the empty name is the
                // cluster-wide default, answered with this node's.
                RESOURCE_BROKER
                    if r.resource_name.is_empty()
                        || r.resource_name.as_str() == broker.node_id().to_string() =>
                {
                    // The empty name: the cluster-wide dynamic configs only,
                    // as Kafka answers.
                    let cluster_only = r.resource_name.is_empty();
                    let dynamic = match broker.dynamic_broker_configs(ctx, cluster_only) {
                        Ok(d) => d,
                        Err(e) => {
                            return answer
                                .with_error_code(e.kafka_code())
                                .with_error_message(error_message(&e))
                        }
                    };
                    answer.with_configs(
                        broker_entries(broker.settings(), &dynamic, cluster_only)
                            .into_iter()
                            .filter(|e| {
                                r.configuration_keys
                                    .as_ref()
                                    .is_none_or(|keys| keys.iter().any(|w| w.as_str() == e.key))
                            })
                            .map(|e| {
                                let synonyms = match r_synonyms {
                                    false => Vec::new(),
                                    true => e
                                        .synonyms
                                        .iter()
                                        .map(|(name, value, source)| {
                                            DescribeConfigsSynonym::default()
                                                .with_name(str_bytes(*name))
                                                .with_value(Some(str_bytes(value.clone())))
                                                .with_source(*source)
                                        })
                                        .collect(),
                                };
                                DescribeConfigsResourceResult::default()
                                    .with_name(str_bytes(e.key))
                                    .with_value(Some(str_bytes(e.value)))
                                    .with_read_only(e.read_only)
                                    .with_config_source(e.source)
                                    .with_config_type(e.kind)
                                    .with_documentation(r_docs.then(|| str_bytes(e.doc)))
                                    .with_synonyms(synonyms)
                            })
                            .collect(),
                    )
                }
                RESOURCE_BROKER_LOGGER
                    if r.resource_name.as_str() == broker.node_id().to_string() =>
                {
                    match broker.describe_loggers(ctx) {
                        Err(e) => answer
                            .with_error_code(e.kafka_code())
                            .with_error_message(error_message(&e)),
                        Ok(loggers) => answer.with_configs(
                            loggers
                                .into_iter()
                                .filter(|(name, _)| {
                                    r.configuration_keys.as_ref().is_none_or(|keys| {
                                        keys.iter().any(|w| w.as_str() == name.as_str())
                                    })
                                })
                                .map(|(name, level)| {
                                    DescribeConfigsResourceResult::default()
                                        .with_name(str_bytes(name))
                                        .with_value(Some(str_bytes(level)))
                                        .with_config_source(SOURCE_DYNAMIC_BROKER_LOGGER)
                                        .with_config_type(TYPE_STRING)
                                })
                                .collect(),
                        ),
                    }
                }
                RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => answer
                    .with_error_code(code(ResponseError::InvalidRequest))
                    .with_error_message(Some(str_bytes(format!(
                        "this is broker {}; ask broker {} for its configs",
                        broker.node_id(),
                        r.resource_name
                    )))),
                _ => answer
                    .with_error_code(code(ResponseError::InvalidRequest))
                    .with_error_message(Some(str_bytes(
                        "only topic, broker and broker logger configs exist",
                    ))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// A config change of one topic: the keys to set and to remove.
struct ConfigChange {
    set: BTreeMap<String, String>,
    delete: Vec<String>,
}

/// Applies (or with `validate_only` checks) one topic's config change.
async fn alter_topic(
    broker: &Broker,
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    change: Result<ConfigChange, ApiError>,
    validate_only: bool,
) -> Result<(), ApiError> {
    if resource_type == RESOURCE_BROKER {
        let change = change?;
        return broker
            .alter_broker_configs(ctx, name, change.set, change.delete, validate_only)
            .await
            .map(|_| ());
    }
    if resource_type != RESOURCE_TOPIC {
        return Err(ApiError::InvalidArgument(
            "only topic configs can be altered through the Kafka API".into(),
        ));
    }
    let change = change?;
    broker
        .alter_topic_configs(ctx, name, change.set, change.delete, validate_only)
        .await
        .map(|_| ())
}

/// The error code and message of a result, as Kafka answers them.
fn error_fields(
    result: Result<(), ApiError>,
) -> (i16, Option<cairn_kafka::kafka_protocol::protocol::StrBytes>) {
    match result {
        Ok(()) => (super::NONE, None),
        Err(e) => (e.kafka_code(), error_message(&e)),
    }
}

/// One resource's answer to AlterConfigs or IncrementalAlterConfigs (two
/// distinct types of the same shape).
macro_rules! config_answer {
    ($ty:ty, $resource:expr, $result:expr) => {{
        let (error, message) = error_fields($result);
        <$ty>::default()
            .with_error_code(error)
            .with_error_message(message)
            .with_resource_type($resource.resource_type)
            .with_resource_name($resource.resource_name)
    }};
}

/// AlterConfigs: the topic's configs become exactly those given (Kafka's
/// legacy, non-incremental semantics): keys not named are removed.
pub(crate) async fn alter_configs(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let name = r.resource_name.to_string();
        let current = match r.resource_type {
            RESOURCE_BROKER => broker.broker_configs_for_alter(ctx, &name),
            _ => broker.topic_configs_for_alter(ctx, &name),
        };
        let change = current.map(|current| {
            let set: BTreeMap<String, String> = r
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            let delete = current
                .keys()
                .filter(|k| !set.contains_key(*k))
                .cloned()
                .collect();
            ConfigChange { set, delete }
        });
        let result = alter_topic(
            broker,
            ctx,
            r.resource_type,
            &name,
            change,
            req.validate_only,
        )
        .await;
        responses.push(config_answer!(
            alter_configs_response::AlterConfigsResourceResponse,
            r,
            result
        ));
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// Kafka's incremental config operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// IncrementalAlterConfigs: SET and DELETE (APPEND and SUBTRACT apply to
/// list configs, which Cairn's topic configs are not).
pub(crate) async fn incremental_alter_configs(
    broker: &Broker,
    ctx: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let name = r.resource_name.to_string();
        if r.resource_type == RESOURCE_BROKER_LOGGER {
            let result = alter_loggers(broker, ctx, &name, &r.configs, req.validate_only);
            responses.push(config_answer!(
                incremental_alter_configs_response::AlterConfigsResourceResponse,
                r,
                result
            ));
            continue;
        }
        let change = incremental_change(broker, ctx, r.resource_type, &name, &r.configs);
        let result = alter_topic(
            broker,
            ctx,
            r.resource_type,
            &name,
            change,
            req.validate_only,
        )
        .await;
        responses.push(config_answer!(
            incremental_alter_configs_response::AlterConfigsResourceResponse,
            r,
            result
        ));
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// One resource's IncrementalAlterConfigs operations, in order, as keys to
/// set and to delete. APPEND and SUBTRACT (list configs only, such as
/// `cleanup.policy`) work on the topic's value (or the default), so they
/// read it first, with the ALTER_CONFIGS the change needs.
fn incremental_change(
    broker: &Broker,
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    ops: &[incremental_alter_configs_request::AlterableConfig],
) -> Result<ConfigChange, ApiError> {
    let mut set = BTreeMap::new();
    let mut delete = Vec::new();
    let mut current: Option<BTreeMap<String, String>> = None;
    for c in ops {
        let key = c.name.to_string();
        match (c.config_operation, &c.value) {
            (OP_SET, Some(v)) => {
                delete.retain(|k| *k != key);
                set.insert(key, v.to_string());
            }
            (OP_DELETE, _) => {
                set.remove(&key);
                delete.push(key);
            }
            (op @ (OP_APPEND | OP_SUBTRACT), Some(v))
                if resource_type == RESOURCE_TOPIC || resource_type == RESOURCE_BROKER =>
            {
                let def = match resource_type {
                    RESOURCE_TOPIC => topic_config_def(&key),
                    _ => dynamic_broker_config(&key),
                }
                .filter(|d| d.kind == ConfigType::List)
                .ok_or_else(|| {
                    ApiError::InvalidConfig(format!(
                        "APPEND and SUBTRACT apply to list configs only, not {key}"
                    ))
                })?;
                if current.is_none() {
                    current = Some(match resource_type {
                        RESOURCE_TOPIC => broker.topic_configs_for_alter(ctx, name)?,
                        _ => broker.broker_configs_for_alter(ctx, name)?,
                    });
                }
                let base = match (set.get(&key), delete.contains(&key)) {
                    (Some(v), _) => v.clone(),
                    (None, true) => def.default.to_string(),
                    (None, false) => current
                        .as_ref()
                        .and_then(|c| c.get(&key).cloned())
                        .unwrap_or_else(|| def.default.to_string()),
                };
                let mut items = list_items(&base);
                for item in list_items(v.as_str()) {
                    match op {
                        OP_APPEND if !items.contains(&item) => items.push(item),
                        OP_SUBTRACT => items.retain(|i| *i != item),
                        _ => {}
                    }
                }
                delete.retain(|k| *k != key);
                set.insert(key, items.join(","));
            }
            (op, _) => {
                return Err(ApiError::InvalidConfig(format!(
                    "config operation {op} on {key} is not supported (SET and APPEND/SUBTRACT need a value)"
                )))
            }
        }
    }
    Ok(ConfigChange { set, delete })
}

/// IncrementalAlterConfigs on BROKER_LOGGER: SET a logger's level, DELETE
/// it back to the root's, on this node only (the resource names it).
fn alter_loggers(
    broker: &Broker,
    ctx: &RequestContext,
    name: &str,
    ops: &[incremental_alter_configs_request::AlterableConfig],
    validate_only: bool,
) -> Result<(), ApiError> {
    if name != broker.node_id().to_string() {
        return Err(ApiError::InvalidArgument(format!(
            "this is broker {}; ask broker {name} to change its log levels",
            broker.node_id()
        )));
    }
    let mut changes = Vec::with_capacity(ops.len());
    for c in ops {
        let logger = c.name.to_string();
        match (c.config_operation, &c.value) {
            (OP_SET, Some(v)) => changes.push((logger, Some(v.to_string()))),
            (OP_DELETE, _) => changes.push((logger, None)),
            (op, _) => {
                return Err(ApiError::InvalidConfig(format!(
                    "config operation {op} on logger {logger} is not supported: loggers take SET and DELETE"
                )))
            }
        }
    }
    broker.alter_loggers(ctx, changes, validate_only)
}

/// A list config's items (comma-separated, blanks dropped).
fn list_items(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(String::from)
        .collect()
}

/// DescribeLogDirs: one log dir (the node's data dir) holding this node's
/// replicas, with their retained bytes as the partition index records them.
pub(crate) fn describe_log_dirs(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect()
    });
    let replicas = match broker.describe_log_dirs(ctx, wanted.as_deref()) {
        Ok(r) => r,
        Err(e) => return DescribeLogDirsResponse::default().with_error_code(e.kafka_code()),
    };
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for r in replicas {
        by_topic.entry(r.topic).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(r.partition as i32)
                .with_partition_size(r.size_bytes as i64),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(str_bytes(name)))
                .with_partitions(partitions)
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(broker.settings().data_dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(-1)
        .with_usable_bytes(-1)])
}
