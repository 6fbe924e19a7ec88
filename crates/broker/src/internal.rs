//! The internal gRPC service: Raft batches, heartbeats, forwarded metadata
//! writes and joins.

use std::sync::Arc;
use std::time::Duration;

use cairn_metadata::MetaCommand;
use cairn_metadata::NodeInfo;
use cairn_proto::internal::internal_client::InternalClient;
use cairn_proto::internal::internal_server::Internal;
use cairn_proto::internal::AppendAuditReply;
use cairn_proto::internal::AppendAuditRequest;
use cairn_proto::internal::JoinReply;
use cairn_proto::internal::JoinRequest;
use cairn_proto::internal::MetaProposeReply;
use cairn_proto::internal::MetaProposeRequest;
use cairn_proto::internal::NodeHeartbeat;
use cairn_proto::internal::NodeHeartbeatReply;
use cairn_proto::internal::RaftBatch;
use cairn_proto::internal::RaftBatchReply;
use cairn_proto::internal::RaftKind;
use cairn_proto::internal::RaftReply;
use cairn_raft::handle_message;
use futures::future::join_all;
use openraft::BasicNode;
use tonic::transport::Channel;
use tonic::transport::Endpoint;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::error::ApiError;
use crate::node::Node;
use crate::node::Proposal;
use crate::ops;

pub(crate) struct InternalService {
    pub(crate) node: Arc<Node>,
}

/// An internal-service client to an address (not yet a known node), over
/// mutual TLS when `tls` is given.
pub(crate) fn connect_addr(
    addr: &str,
    transport: &cairn_raft::Transport,
) -> Result<InternalClient<Channel>, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(10));
    let channel = transport.dial().channel(endpoint, transport.me(), addr);
    Ok(InternalClient::new(channel))
}

/// Hands a batch of audit records to `leader`, the leader of the audit
/// topic's `partition`.
pub(crate) async fn append_audit(
    node: &Node,
    leader: cairn_metadata::NodeId,
    partition: u32,
    records: bytes::Bytes,
) -> Result<(), ApiError> {
    let mut client = node
        .transport
        .client(leader)
        .map_err(|e| ApiError::LeaderNotAvailable {
            what: format!("audit partition {partition} (node {leader}: {e})"),
        })?;
    client
        .append_audit(AppendAuditRequest { partition, records })
        .await
        .map_err(|s| ApiError::LeaderNotAvailable {
            what: format!(
                "audit partition {partition} (node {leader}: {})",
                s.message()
            ),
        })?;
    Ok(())
}

#[tonic::async_trait]
impl Internal for InternalService {
    /// Appends another node's audit records (only cluster members reach
    /// this service; with `rpc_tls` on, only holders of a node certificate).
    async fn append_audit(
        &self,
        request: Request<AppendAuditRequest>,
    ) -> Result<Response<AppendAuditReply>, Status> {
        let r = request.into_inner();
        ops::produce(
            &self.node,
            crate::audit::AUDIT_TOPIC,
            r.partition,
            r.records,
            ops::Acks::All,
            10_000,
        )
        .await
        .map_err(Status::from)?;
        Ok(Response::new(AppendAuditReply {}))
    }

    /// The mirrored partitions this node leads, with their lag.
    async fn mirror_status(
        &self,
        _request: Request<cairn_proto::internal::MirrorStatusRequest>,
    ) -> Result<Response<cairn_proto::internal::MirrorStatusReply>, Status> {
        let partitions = serde_json::to_vec(&self.node.mirrors.local_status())
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(cairn_proto::internal::MirrorStatusReply {
            partitions: partitions.into(),
            mirror_topics: self
                .node
                .meta_view
                .read(|s| s.mirror_topics.keys().cloned().collect()),
        }))
    }

    async fn raft(&self, request: Request<RaftBatch>) -> Result<Response<RaftBatchReply>, Status> {
        let batch = request.into_inner();
        self.node
            .check_cluster(&batch.cluster_id)
            .map_err(Status::failed_precondition)?;
        if !self
            .node
            .admitted
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(Status::unavailable(format!(
                "node {} is joining and takes no Raft traffic until the cluster accepts it",
                self.node.id
            )));
        }
        let node = &self.node;
        let replies = join_all(batch.messages.into_iter().map(|m| async move {
            let kind = RaftKind::try_from(m.kind).unwrap_or(RaftKind::Unspecified);
            if kind == RaftKind::Vote && node.holding_votes() {
                // A restarted voter may have acknowledged a leader just
                // before it went down; that leader's lease still counts on
                // it (`lease.rs`). The candidate counts this as no vote.
                metrics::counter!("cairn_votes_held_after_start_total").increment(1);
                return RaftReply {
                    body: Default::default(),
                    error: format!(
                        "node {} started less than {} ms ago and grants no vote yet",
                        node.id,
                        crate::lease::VOTE_HOLD_AFTER_START.as_millis()
                    ),
                    group_missing: false,
                };
            }
            let result = if m.group == crate::node::meta_group() {
                handle_message(&node.meta, m.group, &node.snapshot_inbox, kind, &m.body).await
            } else {
                match node.replica(m.group) {
                    Some(r) => {
                        let result =
                            handle_message(&r.raft, m.group, &node.snapshot_inbox, kind, &m.body)
                                .await;
                        if result.is_ok()
                            && matches!(kind, RaftKind::AppendEntries | RaftKind::FullSnapshot)
                        {
                            r.note_leader_contact();
                        }
                        result
                    }
                    None => {
                        return RaftReply {
                            body: Default::default(),
                            error: format!("group {} has no replica on node {}", m.group, node.id),
                            group_missing: true,
                        }
                    }
                }
            };
            match result {
                Ok(body) => RaftReply {
                    body,
                    error: String::new(),
                    group_missing: false,
                },
                Err(error) => RaftReply {
                    body: Default::default(),
                    error,
                    group_missing: false,
                },
            }
        }))
        .await;
        Ok(Response::new(RaftBatchReply { replies }))
    }

    async fn heartbeat(
        &self,
        request: Request<NodeHeartbeat>,
    ) -> Result<Response<NodeHeartbeatReply>, Status> {
        let hb = request.into_inner();
        self.node
            .check_cluster(&hb.cluster_id)
            .map_err(Status::failed_precondition)?;
        self.node.record_heartbeat(hb.from, hb.led);
        // Our own leaderships travel in our own heartbeats to the caller;
        // the reply only proves we are alive.
        Ok(Response::new(NodeHeartbeatReply {
            from: self.node.id,
            cluster_id: self.node.transport.cluster_id(),
            led: Vec::new(),
        }))
    }

    async fn meta_propose(
        &self,
        request: Request<MetaProposeRequest>,
    ) -> Result<Response<MetaProposeReply>, Status> {
        let proposal: Proposal = serde_json::from_slice(&request.into_inner().command)
            .map_err(|e| Status::invalid_argument(format!("undecodable proposal: {e}")))?;
        let response = self.node.propose(proposal).await.map_err(Status::from)?;
        let bytes = serde_json::to_vec(&response).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(MetaProposeReply {
            response: bytes.into(),
        }))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        let join = request.into_inner();
        let info: NodeInfo = serde_json::from_slice(&join.node)
            .map_err(|e| Status::invalid_argument(format!("undecodable node info: {e}")))?;
        if !self.node.is_meta_leader() {
            let leader = self
                .node
                .meta_leader()
                .ok_or_else(|| Status::unavailable("no metadata leader yet"))?;
            let mut client = self
                .node
                .transport
                .client(leader)
                .map_err(|e| Status::unavailable(e.to_string()))?;
            return client.join(join).await;
        }
        if self
            .node
            .meta_view
            .read(|s| s.retired.contains(&join.node_id))
        {
            tracing::warn!(node = join.node_id, "join refused: the id was removed");
            return Err(Status::failed_precondition(format!(
                "node id {} was removed from the cluster and is never used again; start the new node with another --node-id",
                join.node_id
            )));
        }
        if let Some(why) = self.node.meta_view.read(|s| s.incarnation_conflict(&info)) {
            tracing::warn!(
                node = join.node_id,
                "join refused: the id is registered from another data dir"
            );
            return Err(Status::failed_precondition(why));
        }
        tracing::info!(node = join.node_id, rpc_addr = %join.rpc_addr, "node joining");
        self.node
            .transport
            .set_address(join.node_id, &join.rpc_addr);
        self.node
            .meta
            .add_learner(join.node_id, BasicNode::new(join.rpc_addr.clone()), false)
            .await
            .map_err(|e| Status::unavailable(format!("cannot add learner: {e}")))?;
        self.node
            .propose(Proposal::Command(MetaCommand::RegisterNode(info)))
            .await
            .map_err(Status::from)?;
        Ok(Response::new(JoinReply {
            cluster_id: self.node.transport.cluster_id(),
        }))
    }
}
