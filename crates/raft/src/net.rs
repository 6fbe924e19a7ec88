//! The seam under node-to-node traffic: how a node's internal RPC reaches
//! its peers and takes their connections.
//!
//! ```text
//!   Transport / InternalClient ──channel()──► PeerNetwork::connect(from, addr) ──► byte stream
//!   internal RPC server ◄──PeerConn── PeerNetwork::listen(node, addr)
//! ```
//!
//! A real node uses TCP (optionally TLS) and no [`PeerNetwork`]; the
//! simulator (`cairn-sim`) gives every node the same in-process network,
//! which delays, cuts and partitions the byte streams, and a
//! [`MessageFaults`] that drops, duplicates and delays single Raft messages.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::task::Poll;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;
use tokio::io::ReadBuf;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

use crate::types::GroupId;
use crate::types::NodeId;

/// A byte stream between two nodes.
pub trait PeerIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PeerIo for T {}

/// An opened connection.
pub type BoxIo = Box<dyn PeerIo>;
/// A connection being opened.
pub type Connecting = Pin<Box<dyn Future<Output = io::Result<BoxIo>> + Send>>;

/// A network between the nodes other than the host's TCP stack.
pub trait PeerNetwork: Send + Sync + 'static {
    /// Opens a connection from node `from` to the listener at `addr`.
    fn connect(&self, from: NodeId, addr: &str) -> Connecting;
    /// Starts taking connections for `node` at `addr`: each arrives on the
    /// returned queue.
    fn listen(
        &self,
        node: NodeId,
        addr: &str,
    ) -> io::Result<tokio::sync::mpsc::Receiver<io::Result<PeerConn>>>;
}

/// What becomes of one Raft message (the simulator's choice per message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Delivered as it is.
    Deliver,
    /// Lost on the way: never reaches the peer; the sender times out.
    Drop,
    /// Reaches the peer, but its reply is lost: the sender times out.
    DropReply,
    /// Reaches the peer twice; the sender sees the first reply.
    Duplicate,
    /// Sent only after this long, so later messages may overtake it.
    Delay(Duration),
}

/// Chooses the fate of each Raft message sent (fault injection only).
pub trait MessageFaults: Send + Sync + 'static {
    fn fate(&self, from: NodeId, to: NodeId, group: GroupId) -> Fate;
}

/// An accepted connection of a [`PeerNetwork`], as the RPC server takes it.
pub struct PeerConn(pub BoxIo);

impl AsyncRead for PeerConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for PeerConn {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// Dials through a [`PeerNetwork`] (tonic's connector).
#[derive(Clone)]
struct Dialer {
    net: Arc<dyn PeerNetwork>,
    from: NodeId,
    addr: String,
}

impl tower_service::Service<http::Uri> for Dialer {
    type Response = TokioIo<BoxIo>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<BoxIo>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let connecting = self.net.connect(self.from, &self.addr);
        Box::pin(async move { connecting.await.map(TokioIo::new) })
    }
}

/// How a node opens connections to its peers.
#[derive(Clone, Default)]
pub enum Dial {
    /// Plain TCP.
    #[default]
    Tcp,
    /// TCP with mutual TLS.
    Tls(cairn_tls::TlsConnector),
    /// An in-process network (the simulator).
    Network(Arc<dyn PeerNetwork>),
}

impl Dial {
    /// A lazily connecting channel from node `from` to `addr`, with
    /// `endpoint`'s settings (made for `http://{addr}`).
    pub fn channel(&self, endpoint: Endpoint, from: NodeId, addr: &str) -> Channel {
        match self {
            Dial::Tcp => endpoint.connect_lazy(),
            Dial::Tls(tls) => endpoint.connect_with_connector_lazy(tls.clone()),
            Dial::Network(net) => endpoint.connect_with_connector_lazy(Dialer {
                net: net.clone(),
                from,
                addr: addr.to_string(),
            }),
        }
    }

    /// The TLS connector, if connections run over TLS.
    pub fn tls(&self) -> Option<&cairn_tls::TlsConnector> {
        match self {
            Dial::Tls(t) => Some(t),
            _ => None,
        }
    }
}
