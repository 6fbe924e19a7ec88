//! Receiving side of the transport: hands one decoded message to a group.

use bytes::Bytes;
use cairn_proto::internal::RaftKind;
use openraft::raft::SnapshotResponse;
use openraft::storage::RaftStateMachine;

use crate::codec;
use crate::network::SnapshotChunk;
use crate::snapshot_inbox::Received;
use crate::snapshot_inbox::SnapshotInbox;
use crate::types::GroupId;
use crate::types::Raft;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

/// Delivers one Raft message for `group` to `raft` and encodes its answer;
/// snapshot chunks go through `snapshots` until the last one is in.
/// The error is a human-readable reason, sent back to the caller.
pub async fn handle_message<SM>(
    raft: &Raft<SM>,
    group: GroupId,
    snapshots: &SnapshotInbox,
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
            let chunk: SnapshotChunk = codec::decode(body).map_err(bad)?;
            match snapshots.receive(group, chunk)? {
                Received::Partial => codec::encode(&None::<SnapshotResponse<TypeConfig>>),
                Received::Complete(vote, snapshot) => {
                    let resp = raft
                        .install_full_snapshot(vote, snapshot)
                        .await
                        .map_err(|e| e.to_string())?;
                    codec::encode(&Some(resp))
                }
            }
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
