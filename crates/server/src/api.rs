//! The client gRPC API (`cairn.v1.Cairn`).

use openraft::async_runtime::watch::WatchReceiver;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_metadata::alter_topic_configs;
use cairn_metadata::validate_topic_configs;
use cairn_metadata::validate_topic_name;
use cairn_metadata::CommittedOffset;
use cairn_metadata::MetaCommand;
use cairn_metadata::MetaError;
use cairn_metadata::MetaResponse;
use cairn_metadata::PartitionAssignment;
use cairn_metadata::Topic;
use cairn_metadata::TopicConfig;
use cairn_partition::ReadError;
use cairn_proto::v1::cairn_server::Cairn;
use cairn_proto::v1::list_offsets_request::Spec;
use cairn_proto::v1::*;
use cairn_raft::ProduceCommand;
use cairn_raft::ProducerBatch;
use cairn_raft::Request as RaftRequest;
use cairn_raft::Response as RaftResponse;
use openraft::error::ClientWriteError;
use openraft::error::RaftError;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::error::ApiError;
use crate::node::Node;
use crate::node::Proposal;
use crate::replica::Replica;

const DEFAULT_PRODUCE_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_FETCH_MAX_BYTES: usize = 1 << 20;
const FETCH_MAX_BYTES_LIMIT: usize = 64 << 20;
const FETCH_MAX_WAIT: Duration = Duration::from_secs(30);
const MAX_PARTITIONS: u32 = 10_000;

pub(crate) struct CairnService {
    pub(crate) node: Arc<Node>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What the leader learns from checking a produce request's batches.
#[derive(Debug)]
struct Validated {
    record_count: u32,
    max_timestamp_ms: i64,
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
            if decoded.iter().any(|r| r.key.is_none()) {
                return Err(ApiError::InvalidArgument(
                    "Compacted topic cannot accept message without key".into(),
                ));
            }
        }
        count += header.offset_count() as u64;
        max_ts = max_ts.max(header.max_timestamp);
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
        producer,
    })
}

impl CairnService {
    fn locate(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<(Topic, PartitionAssignment), ApiError> {
        let t = self.node.topic(topic)?;
        let p = t
            .partitions
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| ApiError::UnknownPartition {
                topic: topic.to_string(),
                partition,
                count: t.partitions.len(),
            })?;
        Ok((t, p))
    }

    /// The local replica of the partition, if it is the leader; else an
    /// error naming the leader.
    fn leader_replica(
        &self,
        topic: &str,
        p: &PartitionAssignment,
    ) -> Result<Arc<Replica>, ApiError> {
        let what = format!("{topic}/{}", p.partition);
        let local = self.node.replica(p.group);
        if let Some(r) = &local {
            if r.is_leader() {
                return Ok(r.clone());
            }
        }
        let leader = self
            .node
            .group_status(p.group)
            .leader
            .or_else(|| local.and_then(|r| r.raft.metrics().borrow_watched().current_leader));
        match leader {
            Some(l) if l != self.node.id => Err(ApiError::NotLeader {
                what,
                leader: self.node.node_info(l).map(|n| (l, n.grpc_addr)),
            }),
            _ => Err(ApiError::LeaderNotAvailable { what }),
        }
    }

    fn topic_metadata(&self, t: &Topic) -> TopicMetadata {
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let s = self.node.group_status(p.group);
                PartitionMetadata {
                    partition: p.partition,
                    leader: s.leader,
                    leader_epoch: s.term,
                    replicas: p.replicas.clone(),
                    healthy_replicas: s.healthy,
                    log_start_offset: s.log_start,
                    high_watermark: s.high_watermark,
                    raft_group: p.group,
                }
            })
            .collect();
        TopicMetadata {
            name: t.name.clone(),
            topic_id: t.id,
            replication_factor: t.replication_factor,
            partitions,
            configs: t.configs.clone().into_iter().collect(),
        }
    }

    fn nodes(&self) -> Vec<cairn_proto::v1::Node> {
        let voters: Vec<u64> = self
            .node
            .meta
            .metrics()
            .borrow_watched()
            .membership_config
            .voter_ids()
            .collect();
        self.node.meta_view.read(|s| {
            s.nodes
                .values()
                .map(|n| cairn_proto::v1::Node {
                    id: n.id,
                    grpc_addr: n.grpc_addr.clone(),
                    rpc_addr: n.rpc_addr.clone(),
                    admin_addr: n.admin_addr.clone(),
                    kafka_addr: n.kafka_addr.clone(),
                    rack: n.rack.clone().unwrap_or_default(),
                    alive: self.node.liveness.is_alive(n.id),
                    metadata_voter: voters.contains(&n.id),
                })
                .collect()
        })
    }

    async fn wait_for_leaders(&self, topic: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            let Ok(t) = self.node.topic(topic) else {
                return;
            };
            if t.partitions
                .iter()
                .all(|p| self.node.group_status(p.group).leader.is_some())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn map_write_error(
    what: &str,
    e: RaftError<cairn_raft::TypeConfig, ClientWriteError<cairn_raft::TypeConfig>>,
    node: &Node,
) -> ApiError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f))
        | RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => ApiError::NotLeader {
            what: what.to_string(),
            leader: f
                .leader_id
                .and_then(|l| node.node_info(l).map(|n| (l, n.grpc_addr))),
        },
        RaftError::Fatal(f @ openraft::error::Fatal::StorageError(_)) => {
            ApiError::Storage(f.to_string())
        }
        other => ApiError::Internal(other.to_string()),
    }
}

/// Writes and reads are served by a leader with a live lease only. A leader
/// cut off from its followers must not take writes it cannot commit, and a
/// deposed one that has not heard of its successor yet (cut off, then
/// healed) would answer reads with its stale high watermark. Renewing the
/// lease either confirms the leadership (one heartbeat round, only when the
/// lease is stale) or makes the followers' answers depose it; either way the
/// client is told at once to look for the leader elsewhere.
async fn require_lease(replica: &Replica, topic: &str, partition: u32) -> Result<(), ApiError> {
    replica.renew_lease_if_stale().await;
    if replica.lease_valid() {
        Ok(())
    } else {
        Err(ApiError::LeaderNotAvailable {
            what: format!("{topic}/{partition}"),
        })
    }
}

fn read_error(e: ReadError) -> ApiError {
    match e {
        ReadError::OffsetOutOfRange {
            offset,
            log_start,
            high_watermark,
        } => ApiError::OffsetOutOfRange {
            offset,
            log_start,
            high_watermark,
        },
        other => ApiError::Internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl Cairn for CairnService {
    async fn metadata(
        &self,
        request: Request<MetadataRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        let req = request.into_inner();
        let topics: Vec<Topic> = self.node.meta_view.read(|s| {
            if req.topics.is_empty() {
                s.topics.values().cloned().collect()
            } else {
                req.topics
                    .iter()
                    .filter_map(|n| s.topics.get(n).cloned())
                    .collect()
            }
        });
        if let Some(missing) = req
            .topics
            .iter()
            .find(|n| !topics.iter().any(|t| &t.name == *n))
        {
            return Err(ApiError::UnknownTopic(missing.clone()).into());
        }
        Ok(Response::new(MetadataResponse {
            cluster_id: self.node.transport.cluster_id(),
            metadata_leader: self.node.meta_leader(),
            nodes: self.nodes(),
            topics: topics.iter().map(|t| self.topic_metadata(t)).collect(),
        }))
    }

    async fn create_topic(
        &self,
        request: Request<CreateTopicRequest>,
    ) -> Result<Response<CreateTopicResponse>, Status> {
        let req = request.into_inner();
        validate_topic_name(&req.name).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        if req.partitions == 0 || req.partitions > MAX_PARTITIONS {
            return Err(ApiError::InvalidArgument(format!(
                "partitions must be 1..={MAX_PARTITIONS}, got {}",
                req.partitions
            ))
            .into());
        }
        if req.replication_factor == 0 {
            return Err(ApiError::InvalidReplicationFactor(
                "replication factor must be at least 1".into(),
            )
            .into());
        }
        let configs: BTreeMap<String, String> = req.configs.into_iter().collect();
        validate_topic_configs(&configs).map_err(|e| ApiError::InvalidConfig(e.to_string()))?;
        let proposal = Proposal::CreateTopic {
            name: req.name.clone(),
            partitions: req.partitions,
            replication_factor: req.replication_factor,
            configs,
        };
        match self.node.propose(proposal).await? {
            MetaResponse::TopicCreated(t) => {
                tracing::info!(topic = %t.name, partitions = t.partitions.len(), "topic created");
                self.wait_for_leaders(&t.name, Duration::from_secs(10))
                    .await;
                Ok(Response::new(CreateTopicResponse {
                    topic: Some(self.topic_metadata(&t)),
                }))
            }
            MetaResponse::Error(MetaError::TopicExists(n)) => Err(ApiError::TopicExists(n).into()),
            MetaResponse::Error(e) => Err(ApiError::InvalidArgument(e.to_string()).into()),
            other => Err(ApiError::Internal(format!(
                "topic creation answered without a topic: {other:?}"
            ))
            .into()),
        }
    }

    async fn delete_topic(
        &self,
        request: Request<DeleteTopicRequest>,
    ) -> Result<Response<DeleteTopicResponse>, Status> {
        let name = request.into_inner().name;
        match self
            .node
            .propose(Proposal::Command(MetaCommand::DeleteTopic {
                name: name.clone(),
            }))
            .await?
        {
            MetaResponse::Ok => {
                tracing::info!(topic = %name, "topic deleted");
                Ok(Response::new(DeleteTopicResponse {}))
            }
            MetaResponse::Error(MetaError::UnknownTopic(n)) => {
                Err(ApiError::UnknownTopic(n).into())
            }
            other => Err(ApiError::Internal(format!("{other:?}")).into()),
        }
    }

    async fn alter_topic_config(
        &self,
        request: Request<AlterTopicConfigRequest>,
    ) -> Result<Response<AlterTopicConfigResponse>, Status> {
        let req = request.into_inner();
        let set: BTreeMap<String, String> = req.set.into_iter().collect();
        // A clear error before proposing; the apply checks again.
        let current = self
            .node
            .meta_view
            .read(|s| s.topics.get(&req.name).map(|t| t.configs.clone()))
            .ok_or_else(|| ApiError::UnknownTopic(req.name.clone()))?;
        alter_topic_configs(&current, &set, &req.delete)
            .map_err(|e| ApiError::InvalidConfig(e.to_string()))?;
        let cmd = MetaCommand::AlterTopicConfig {
            name: req.name.clone(),
            set,
            delete: req.delete,
        };
        match self.node.propose(Proposal::Command(cmd)).await? {
            MetaResponse::TopicConfigs(configs) => {
                tracing::info!(topic = %req.name, "topic configs altered");
                Ok(Response::new(AlterTopicConfigResponse {
                    configs: configs.into_iter().collect(),
                }))
            }
            MetaResponse::Error(MetaError::UnknownTopic(n)) => {
                Err(ApiError::UnknownTopic(n).into())
            }
            MetaResponse::Error(MetaError::InvalidArgument(e)) => {
                Err(ApiError::InvalidConfig(e).into())
            }
            other => Err(ApiError::Internal(format!("{other:?}")).into()),
        }
    }

    async fn reassign_partition(
        &self,
        request: Request<ReassignPartitionRequest>,
    ) -> Result<Response<ReassignPartitionResponse>, Status> {
        let req = request.into_inner();
        self.locate(&req.topic, req.partition)?;
        let cmd = MetaCommand::ReassignPartition {
            topic: req.topic.clone(),
            partition: req.partition,
            replicas: req.replicas,
        };
        match self.node.propose(Proposal::Command(cmd)).await? {
            MetaResponse::Ok => {
                tracing::info!(topic = %req.topic, partition = req.partition, "partition reassigned");
                Ok(Response::new(ReassignPartitionResponse {}))
            }
            MetaResponse::Error(MetaError::UnknownTopic(n)) => {
                Err(ApiError::UnknownTopic(n).into())
            }
            MetaResponse::Error(e) => Err(ApiError::InvalidArgument(e.to_string()).into()),
            other => Err(ApiError::Internal(format!("{other:?}")).into()),
        }
    }

    async fn describe_topic(
        &self,
        request: Request<DescribeTopicRequest>,
    ) -> Result<Response<DescribeTopicResponse>, Status> {
        let t = self.node.topic(&request.into_inner().name)?;
        Ok(Response::new(DescribeTopicResponse {
            topic: Some(self.topic_metadata(&t)),
        }))
    }

    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<ProduceResponse>, Status> {
        let req = request.into_inner();
        let (topic, p) = self.locate(&req.topic, req.partition)?;
        let replica = self.leader_replica(&req.topic, &p)?;
        let max = TopicConfig::MaxMessageBytes.int_in(&topic.configs).max(1) as u64;
        let compacted =
            crate::tasks::is_compacted(TopicConfig::CleanupPolicy.value_in(&topic.configs));
        let Validated {
            record_count,
            max_timestamp_ms,
            producer,
        } = validate_records(&req.records, max, compacted)?;
        let records: Bytes = req.records;
        let bytes = records.len();
        let cmd = RaftRequest::Produce(ProduceCommand {
            records,
            record_count,
            max_timestamp_ms,
            producer,
        });
        let what = format!("{}/{}", req.topic, req.partition);
        require_lease(&replica, &req.topic, req.partition).await?;
        metrics::counter!("cairn_produce_bytes_total").increment(bytes as u64);
        metrics::counter!("cairn_produce_records_total").increment(u64::from(record_count));
        match Acks::try_from(req.acks).unwrap_or(Acks::All) {
            Acks::All => {
                let timeout_ms = if req.timeout_ms == 0 {
                    DEFAULT_PRODUCE_TIMEOUT_MS
                } else {
                    u64::from(req.timeout_ms)
                };
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
                    .map_err(|e| map_write_error(&what, e, &self.node))?;
                match resp.data {
                    RaftResponse::Produce {
                        base_offset,
                        high_watermark,
                        duplicate,
                    } => Ok(Response::new(ProduceResponse {
                        base_offset: base_offset as i64,
                        high_watermark,
                        duplicate,
                    })),
                    RaftResponse::OutOfOrderSequence {
                        producer_id,
                        expected,
                        got,
                    } => Err(ApiError::OutOfOrderSequence {
                        producer_id,
                        expected,
                        got,
                    }
                    .into()),
                    other => {
                        Err(ApiError::Internal(format!("partition answered {other:?}")).into())
                    }
                }
            }
            Acks::Leader | Acks::None => {
                replica
                    .raft
                    .client_write_ff(cmd, None)
                    .await
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                Ok(Response::new(ProduceResponse {
                    base_offset: -1,
                    high_watermark: replica.log.high_watermark(),
                    duplicate: false,
                }))
            }
        }
    }

    async fn fetch(
        &self,
        request: Request<FetchRequest>,
    ) -> Result<Response<FetchResponse>, Status> {
        let req = request.into_inner();
        let (_, p) = self.locate(&req.topic, req.partition)?;
        let replica = self.leader_replica(&req.topic, &p)?;
        let max_bytes = match req.max_bytes as usize {
            0 => DEFAULT_FETCH_MAX_BYTES,
            n => n.min(FETCH_MAX_BYTES_LIMIT),
        };
        if req.max_wait_ms > 0 && req.offset >= replica.log.high_watermark() {
            let wait = Duration::from_millis(u64::from(req.max_wait_ms)).min(FETCH_MAX_WAIT);
            replica.log.wait_for(req.offset, wait).await;
        }
        require_lease(&replica, &req.topic, req.partition).await?;
        let r = replica
            .log
            .read(req.offset, max_bytes)
            .await
            .map_err(read_error)?;
        metrics::counter!("cairn_fetch_bytes_total").increment(r.records.len() as u64);
        Ok(Response::new(FetchResponse {
            high_watermark: r.high_watermark,
            log_start_offset: r.log_start,
            records: r.records,
        }))
    }

    async fn list_offsets(
        &self,
        request: Request<ListOffsetsRequest>,
    ) -> Result<Response<ListOffsetsResponse>, Status> {
        let req = request.into_inner();
        let (_, p) = self.locate(&req.topic, req.partition)?;
        let replica = self.leader_replica(&req.topic, &p)?;
        require_lease(&replica, &req.topic, req.partition).await?;
        let (offset, timestamp_ms) = match req.spec {
            Some(Spec::Earliest(_)) => (replica.log.log_start() as i64, -1),
            Some(Spec::Latest(_)) | None => (replica.log.high_watermark() as i64, -1),
            Some(Spec::TimestampMs(ts)) => {
                match replica
                    .log
                    .offset_for_timestamp(ts)
                    .await
                    .map_err(read_error)?
                {
                    Some((o, t)) => (o as i64, t),
                    None => (-1, -1),
                }
            }
        };
        Ok(Response::new(ListOffsetsResponse {
            offset,
            timestamp_ms,
        }))
    }

    async fn cluster_status(
        &self,
        _request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let topics: Vec<Topic> = self
            .node
            .meta_view
            .read(|s| s.topics.values().cloned().collect());
        let mut leaderless = Vec::new();
        let mut under = Vec::new();
        let mut partition_count = 0;
        for t in &topics {
            for p in &t.partitions {
                partition_count += 1;
                let s = self.node.group_status(p.group);
                let r = PartitionRef {
                    topic: t.name.clone(),
                    partition: p.partition,
                    replicas: p.replicas.clone(),
                    healthy_replicas: s.healthy.clone(),
                    leader: s.leader,
                };
                if s.leader.is_none() {
                    leaderless.push(r);
                } else if s.healthy.len() < p.replicas.len() {
                    under.push(r);
                }
            }
        }
        Ok(Response::new(ClusterStatusResponse {
            cluster_id: self.node.transport.cluster_id(),
            metadata_leader: self.node.meta_leader(),
            nodes: self.nodes(),
            leaderless_partitions: leaderless,
            under_replicated_partitions: under,
            topic_count: topics.len() as u32,
            partition_count,
            answered_by: self.node.id,
        }))
    }

    async fn commit_offsets(
        &self,
        request: Request<CommitOffsetsRequest>,
    ) -> Result<Response<CommitOffsetsResponse>, Status> {
        let req = request.into_inner();
        let now = now_ms();
        let offsets = req
            .offsets
            .into_iter()
            .map(|o| {
                (
                    o.topic,
                    o.partition,
                    CommittedOffset {
                        offset: o.offset,
                        metadata: o.metadata,
                        commit_time_ms: now,
                    },
                )
            })
            .collect();
        self.node
            .coordinator
            .commit(
                &self.node,
                req.group,
                req.generation,
                req.member_id,
                offsets,
            )
            .await?;
        Ok(Response::new(CommitOffsetsResponse {}))
    }

    async fn fetch_offsets(
        &self,
        request: Request<FetchOffsetsRequest>,
    ) -> Result<Response<FetchOffsetsResponse>, Status> {
        let group = request.into_inner().group;
        let offsets = self.node.coordinator.offsets(&self.node, &group).await?;
        Ok(Response::new(FetchOffsetsResponse { offsets }))
    }

    async fn join_group(
        &self,
        request: Request<JoinGroupRequest>,
    ) -> Result<Response<JoinGroupResponse>, Status> {
        let host = request
            .remote_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let resp = self
            .node
            .coordinator
            .join(&self.node, request.into_inner(), host)
            .await?;
        Ok(Response::new(resp))
    }

    async fn sync_group(
        &self,
        request: Request<SyncGroupRequest>,
    ) -> Result<Response<SyncGroupResponse>, Status> {
        let assignment = self
            .node
            .coordinator
            .sync(&self.node, request.into_inner())
            .await?;
        Ok(Response::new(SyncGroupResponse {
            assignment: assignment.into(),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        self.node
            .coordinator
            .heartbeat(&self.node, request.into_inner())
            .await?;
        Ok(Response::new(HeartbeatResponse {}))
    }

    async fn leave_group(
        &self,
        request: Request<LeaveGroupRequest>,
    ) -> Result<Response<LeaveGroupResponse>, Status> {
        self.node
            .coordinator
            .leave(&self.node, request.into_inner())
            .await?;
        Ok(Response::new(LeaveGroupResponse {}))
    }

    async fn list_groups(
        &self,
        _request: Request<ListGroupsRequest>,
    ) -> Result<Response<ListGroupsResponse>, Status> {
        let groups = self.node.coordinator.list(&self.node).await?;
        Ok(Response::new(ListGroupsResponse { groups }))
    }

    async fn describe_group(
        &self,
        request: Request<DescribeGroupRequest>,
    ) -> Result<Response<DescribeGroupResponse>, Status> {
        let resp = self
            .node
            .coordinator
            .describe(&self.node, &request.into_inner().group)
            .await?;
        Ok(Response::new(resp))
    }

    async fn delete_group(
        &self,
        request: Request<DeleteGroupRequest>,
    ) -> Result<Response<DeleteGroupResponse>, Status> {
        self.node
            .coordinator
            .delete(&self.node, &request.into_inner().group)
            .await?;
        Ok(Response::new(DeleteGroupResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                Err(ApiError::InvalidArgument(m)) => {
                    assert!(m.contains("without key"), "{m}")
                }
                other => panic!("{codec:?}: expected a refusal, got {other:?}"),
            }
        }
    }
}
