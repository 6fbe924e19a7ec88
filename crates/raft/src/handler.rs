//! Receiving side of the transport: hands one decoded message to a group.

use bytes::Bytes;
use cairn_proto::internal::RaftKind;
use openraft::storage::RaftStateMachine;

use crate::codec;
use crate::network::SnapshotTransfer;
use crate::types::Raft;
use crate::types::Snapshot;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

/// Delivers one Raft message to `raft` and encodes its answer.
/// The error is a human-readable reason, sent back to the caller.
pub async fn handle_message<SM>(
    raft: &Raft<SM>,
    kind: RaftKind,
    body: &[u8],
) -> Result<Bytes, String>
where
    SM: RaftStateMachine<TypeConfig, SnapshotData = SnapshotData>,
{
    let bad = |e: codec::CodecError| format!("undecodable {kind:?} message: {e}");
    let encoded = match kind {
        RaftKind::AppendEntries => {
            let req = codec::decode(body).map_err(bad)?;
            let resp = raft.append_entries(req).await.map_err(|e| e.to_string())?;
            codec::encode(&resp)
        }
        RaftKind::Vote => {
            let req = codec::decode(body).map_err(bad)?;
            let resp = raft.vote(req).await.map_err(|e| e.to_string())?;
            codec::encode(&resp)
        }
        RaftKind::PreVote => {
            let req = codec::decode(body).map_err(bad)?;
            let resp = raft.pre_vote(req).await.map_err(|e| e.to_string())?;
            codec::encode(&resp)
        }
        RaftKind::FullSnapshot => {
            let t: SnapshotTransfer = codec::decode(body).map_err(bad)?;
            let snapshot = Snapshot {
                meta: t.meta,
                snapshot: std::io::Cursor::new(t.data),
            };
            let resp = raft
                .install_full_snapshot(t.vote, snapshot)
                .await
                .map_err(|e| e.to_string())?;
            codec::encode(&resp)
        }
        RaftKind::TransferLeader => {
            let req = codec::decode(body).map_err(bad)?;
            let resp = raft
                .handle_transfer_leader(req)
                .await
                .map_err(|e| e.to_string())?;
            codec::encode(&resp)
        }
        RaftKind::Unspecified => return Err("message kind not set".to_string()),
    };
    encoded
        .map(Bytes::from)
        .map_err(|e| format!("cannot encode reply: {e}"))
}
