//! openraft's network for one group, over the node's shared [`Transport`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_proto::internal::RaftKind;
use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::ReplicationClosed;
use openraft::error::StreamingError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetworkFactory;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::BasicNode;
use openraft::OptionalSend;
use openraft::RaftNetworkV2;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::snapshot_inbox::chunks;
use crate::transport::Transport;
use crate::transport::TransportError;
use crate::types::GroupId;
use crate::types::NodeId;
use crate::types::Snapshot;
use crate::types::SnapshotData;
use crate::types::SnapshotMeta;
use crate::types::TypeConfig;
use crate::types::Vote;

/// Makes [`GroupNetwork`]s for one group.
#[derive(Clone)]
pub struct GroupNetworkFactory {
    transport: Arc<Transport>,
    group: GroupId,
}

impl GroupNetworkFactory {
    pub fn new(transport: Arc<Transport>, group: GroupId) -> Self {
        Self { transport, group }
    }
}

impl RaftNetworkFactory<TypeConfig> for GroupNetworkFactory {
    type Network = GroupNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        if !node.addr.is_empty() {
            self.transport.set_address(target, &node.addr);
        }
        GroupNetwork {
            transport: self.transport.clone(),
            group: self.group,
            target,
        }
    }
}

/// One group's messages to one target node.
pub struct GroupNetwork {
    transport: Arc<Transport>,
    group: GroupId,
    target: NodeId,
}

/// One piece of a snapshot on the wire (`RaftKind::FullSnapshot`): a
/// snapshot goes as chunks of at most [`crate::SNAPSHOT_CHUNK_BYTES`] (or
/// the node's `raft_snapshot_chunk_bytes`), in order,
/// each answered before the next is sent; the receiver puts them together
/// ([`crate::SnapshotInbox`]). The answer to every chunk but the last is
/// `None`, to the last the receiver's `SnapshotResponse`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SnapshotChunk {
    pub vote: Vote,
    pub meta: SnapshotMeta,
    /// The whole snapshot's length in bytes.
    pub total: u64,
    /// Where `data` starts within the snapshot.
    pub offset: u64,
    pub data: Vec<u8>,
}

impl GroupNetwork {
    async fn rpc<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        kind: RaftKind,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let body = codec::encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let reply = self
            .transport
            .call(self.target, self.group, kind, Bytes::from(body), timeout)
            .await
            .map_err(to_rpc_error)?;
        codec::decode(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

fn to_rpc_error(e: TransportError) -> RPCError<TypeConfig> {
    match e {
        TransportError::Timeout { .. } => RPCError::Network(NetworkError::new(&e)),
        _ => RPCError::Unreachable(Unreachable::new(&e)),
    }
}

impl RaftNetworkV2<TypeConfig> for GroupNetwork {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(RaftKind::AppendEntries, &rpc, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(RaftKind::Vote, &rpc, option.hard_ttl()).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(RaftKind::PreVote, &rpc, option.hard_ttl()).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let data = snapshot.snapshot.into_inner();
        let total = data.len() as u64;
        let timeout = option.hard_ttl().max(Duration::from_secs(30));
        let mut cancel = std::pin::pin!(cancel);
        let mut answer = None;
        let pieces = chunks(&data, self.transport.snapshot_chunk_bytes());
        metrics::counter!("cairn_raft_snapshot_chunks_sent_total").increment(pieces.len() as u64);
        for (offset, piece) in pieces {
            let chunk = SnapshotChunk {
                vote,
                meta: snapshot.meta.clone(),
                total,
                offset,
                data: piece.to_vec(),
            };
            let sent = tokio::select! {
                closed = &mut cancel => return Err(StreamingError::Closed(closed)),
                sent = self.rpc::<_, Option<SnapshotResponse<TypeConfig>>>(
                    RaftKind::FullSnapshot,
                    &chunk,
                    timeout,
                ) => sent,
            };
            answer = sent.map_err(|e| match e {
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                RPCError::Network(n) => StreamingError::Network(n),
                other => StreamingError::Network(NetworkError::new(&other)),
            })?;
        }
        metrics::counter!("cairn_raft_snapshots_sent_total").increment(1);
        metrics::counter!("cairn_raft_snapshot_bytes_sent_total").increment(total);
        answer.ok_or_else(|| {
            StreamingError::Network(NetworkError::new(&std::io::Error::other(
                "the receiver did not answer the snapshot's last chunk",
            )))
        })
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(RaftKind::TransferLeader, &req, option.hard_ttl())
            .await
    }
}
