//! The client gRPC API (`cairn.v1.Cairn`).

use openraft::async_runtime::watch::WatchReceiver;
use std::sync::Arc;
use std::time::Duration;

use cairn_metadata::CommittedOffset;
use cairn_metadata::MetaCommand;
use cairn_metadata::MetaError;
use cairn_metadata::MetaResponse;
use cairn_metadata::Topic;
use cairn_proto::v1::cairn_server::Cairn;
use cairn_proto::v1::list_offsets_request::Spec;
use cairn_proto::v1::*;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::coordinator::JoinArgs;
use crate::coordinator::MemberRef;
use crate::coordinator::StoredOffset;
use crate::error::ApiError;
use crate::node::Node;
use crate::node::Proposal;
use crate::ops;

const DEFAULT_PRODUCE_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_FETCH_MAX_BYTES: usize = 1 << 20;

pub(crate) struct CairnService {
    pub(crate) node: Arc<Node>,
}

/// A stored offset as the gRPC API answers it.
fn offset_commit(o: StoredOffset) -> OffsetCommit {
    OffsetCommit {
        topic: o.topic,
        partition: o.partition,
        offset: o.offset,
        metadata: o.metadata,
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl CairnService {
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
                    reassignment: s.reassignment,
                    voters: s.voters,
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
                    draining: s.draining.contains(&n.id),
                })
                .collect()
        })
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
        let t = ops::create_topic(
            &self.node,
            ops::NewTopic {
                name: req.name,
                partitions: req.partitions,
                replication_factor: req.replication_factor,
                configs: req.configs.into_iter().collect(),
            },
        )
        .await?;
        Ok(Response::new(CreateTopicResponse {
            topic: Some(self.topic_metadata(&t)),
        }))
    }

    async fn delete_topic(
        &self,
        request: Request<DeleteTopicRequest>,
    ) -> Result<Response<DeleteTopicResponse>, Status> {
        ops::delete_topic(&self.node, &request.into_inner().name).await?;
        Ok(Response::new(DeleteTopicResponse {}))
    }

    async fn alter_topic_config(
        &self,
        request: Request<AlterTopicConfigRequest>,
    ) -> Result<Response<AlterTopicConfigResponse>, Status> {
        let req = request.into_inner();
        let configs = ops::alter_topic_config(
            &self.node,
            &req.name,
            req.set.into_iter().collect(),
            req.delete,
        )
        .await?;
        Ok(Response::new(AlterTopicConfigResponse {
            configs: configs.into_iter().collect(),
        }))
    }

    async fn create_partitions(
        &self,
        request: Request<CreatePartitionsRequest>,
    ) -> Result<Response<CreatePartitionsResponse>, Status> {
        let req = request.into_inner();
        let t = ops::create_partitions(&self.node, &req.topic, req.count).await?;
        Ok(Response::new(CreatePartitionsResponse {
            topic: Some(self.topic_metadata(&t)),
        }))
    }

    async fn reassign_partition(
        &self,
        request: Request<ReassignPartitionRequest>,
    ) -> Result<Response<ReassignPartitionResponse>, Status> {
        let req = request.into_inner();
        ops::locate(&self.node, &req.topic, req.partition)?;
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
        let acks = match Acks::try_from(req.acks).unwrap_or(Acks::All) {
            Acks::All => ops::Acks::All,
            Acks::Leader | Acks::None => ops::Acks::Leader,
        };
        let timeout_ms = if req.timeout_ms == 0 {
            DEFAULT_PRODUCE_TIMEOUT_MS
        } else {
            u64::from(req.timeout_ms)
        };
        let p = ops::produce(
            &self.node,
            &req.topic,
            req.partition,
            req.records,
            acks,
            timeout_ms,
        )
        .await?;
        Ok(Response::new(ProduceResponse {
            base_offset: p.base_offset.map_or(-1, |o| o as i64),
            high_watermark: p.high_watermark,
            duplicate: p.duplicate,
        }))
    }

    async fn fetch(
        &self,
        request: Request<FetchRequest>,
    ) -> Result<Response<FetchResponse>, Status> {
        let req = request.into_inner();
        let max_bytes = match req.max_bytes as usize {
            0 => DEFAULT_FETCH_MAX_BYTES,
            n => n,
        };
        let r = ops::fetch(
            &self.node,
            &req.topic,
            req.partition,
            req.offset,
            max_bytes,
            Duration::from_millis(u64::from(req.max_wait_ms)),
        )
        .await?;
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
        let spec = match req.spec {
            Some(Spec::Earliest(_)) => ops::OffsetSpec::Earliest,
            Some(Spec::Latest(_)) | None => ops::OffsetSpec::Latest,
            Some(Spec::TimestampMs(ts)) => ops::OffsetSpec::Timestamp(ts),
        };
        let (offset, timestamp_ms, _) =
            ops::list_offsets(&self.node, &req.topic, req.partition, spec).await?;
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
            removed_nodes: self
                .node
                .meta_view
                .read(|s| s.retired.iter().copied().collect()),
        }))
    }

    async fn decommission_node(
        &self,
        request: Request<DecommissionNodeRequest>,
    ) -> Result<Response<DecommissionNodeResponse>, Status> {
        let moves = ops::decommission_node(&self.node, request.into_inner().node).await?;
        Ok(Response::new(DecommissionNodeResponse {
            moves: moves
                .into_iter()
                .map(|m| PartitionMove {
                    topic: m.topic,
                    partition: m.partition,
                    replicas: m.replicas,
                })
                .collect(),
        }))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        ops::remove_node(&self.node, request.into_inner().node).await?;
        Ok(Response::new(RemoveNodeResponse {}))
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
        let offsets = self
            .node
            .coordinator
            .offsets(&self.node, &group)
            .await?
            .into_iter()
            .map(offset_commit)
            .collect();
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
        let req = request.into_inner();
        let joined = self
            .node
            .coordinator
            .join(
                &self.node,
                JoinArgs {
                    group: req.group,
                    member_id: req.member_id,
                    client_id: req.client_id,
                    client_host: host,
                    protocol_type: req.protocol_type,
                    protocols: req
                        .protocols
                        .into_iter()
                        .map(|p| (p.name, p.metadata))
                        .collect(),
                    session_timeout_ms: req.session_timeout_ms,
                    rebalance_timeout_ms: req.rebalance_timeout_ms,
                },
            )
            .await?;
        Ok(Response::new(JoinGroupResponse {
            generation: joined.generation,
            protocol: joined.protocol,
            leader: joined.leader,
            member_id: joined.member_id,
            members: joined
                .members
                .into_iter()
                .map(|(member_id, metadata)| GroupMemberMetadata {
                    member_id,
                    metadata,
                })
                .collect(),
        }))
    }

    async fn sync_group(
        &self,
        request: Request<SyncGroupRequest>,
    ) -> Result<Response<SyncGroupResponse>, Status> {
        let req = request.into_inner();
        let assignment = self
            .node
            .coordinator
            .sync(
                &self.node,
                MemberRef {
                    group: req.group,
                    member_id: req.member_id,
                    generation: req.generation,
                },
                req.assignments
                    .into_iter()
                    .map(|a| (a.member_id, a.assignment))
                    .collect(),
            )
            .await?;
        Ok(Response::new(SyncGroupResponse {
            assignment: assignment.into(),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let req = request.into_inner();
        self.node
            .coordinator
            .heartbeat(
                &self.node,
                MemberRef {
                    group: req.group,
                    member_id: req.member_id,
                    generation: req.generation,
                },
            )
            .await?;
        Ok(Response::new(HeartbeatResponse {}))
    }

    async fn leave_group(
        &self,
        request: Request<LeaveGroupRequest>,
    ) -> Result<Response<LeaveGroupResponse>, Status> {
        let req = request.into_inner();
        self.node
            .coordinator
            .leave(&self.node, &req.group, &req.member_id)
            .await?;
        Ok(Response::new(LeaveGroupResponse {}))
    }

    async fn list_groups(
        &self,
        _request: Request<ListGroupsRequest>,
    ) -> Result<Response<ListGroupsResponse>, Status> {
        let groups = self
            .node
            .coordinator
            .list(&self.node)
            .await?
            .into_iter()
            .map(|g| GroupListing {
                group: g.group,
                state: g.state,
                protocol_type: g.protocol_type,
                members: g.members,
            })
            .collect();
        Ok(Response::new(ListGroupsResponse { groups }))
    }

    async fn describe_group(
        &self,
        request: Request<DescribeGroupRequest>,
    ) -> Result<Response<DescribeGroupResponse>, Status> {
        let d = self
            .node
            .coordinator
            .describe(&self.node, &request.into_inner().group)
            .await?;
        Ok(Response::new(DescribeGroupResponse {
            group: d.group,
            state: d.state,
            protocol_type: d.protocol_type,
            protocol: d.protocol,
            generation: d.generation,
            leader: d.leader,
            members: d
                .members
                .into_iter()
                .map(|m| GroupMemberDescription {
                    member_id: m.member_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    metadata: m.metadata,
                    assignment: m.assignment,
                })
                .collect(),
            offsets: d.offsets.into_iter().map(offset_commit).collect(),
        }))
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
