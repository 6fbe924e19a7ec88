//! Cairn's Raft runtime: the type configuration, the batched multi-raft
//! transport, and node liveness.
//!
//! ```text
//!   openraft (per group) ──> GroupNetwork ──> Transport ──> one batched RPC per peer
//!   Internal/Raft (server) ──> handle_message ──> openraft (per group)
//! ```

mod codec;
mod handler;
mod liveness;
mod net;
mod network;
mod snapshot_inbox;
mod transport;
mod types;

pub use codec::decode;
pub use codec::decode_exact;
pub use codec::encode;
pub use codec::CodecError;
pub use handler::handle_message;
pub use liveness::LedInfo;
pub use liveness::Liveness;
pub use net::BoxIo;
pub use net::Connecting;
pub use net::Dial;
pub use net::Fate;
pub use net::MessageFaults;
pub use net::PeerConn;
pub use net::PeerIo;
pub use net::PeerNetwork;
pub use network::GroupNetwork;
pub use network::GroupNetworkFactory;
pub use network::SnapshotChunk;
pub use snapshot_inbox::Received;
pub use snapshot_inbox::SnapshotInbox;
pub use snapshot_inbox::MAX_SNAPSHOT_BYTES;
pub use snapshot_inbox::SNAPSHOT_CHUNK_BYTES;
pub use transport::Transport;
pub use transport::TransportError;
pub use types::*;
