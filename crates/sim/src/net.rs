//! The simulated network: in-process byte pipes between the nodes'
//! internal RPC endpoints, and the fate of single Raft messages.
//!
//! ```text
//!  node a ──connect(a, addr_b)──► SimNet ──► Pipe(a→b) ─► node b's listener
//!                                   │        Pipe(b→a) ◄─
//!                                   ├─ cut {a,b}: connects refused, open pipes reset
//!                                   ├─ down n (crashed): same, for every link of n
//!                                   ├─ freeze n until t (paused): nothing it sends or is sent moves before t
//!                                   └─ latency: each chunk is delivered after a seeded delay, in order
//! ```
//!
//! Every choice (latency, message fates) comes from one RNG seeded by the
//! run's seed; time is tokio's paused clock.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::Weak;
use std::task::Context;
use std::task::Poll;
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;
use cairn_raft::BoxIo;
use cairn_raft::Connecting;
use cairn_raft::Fate;
use cairn_raft::MessageFaults;
use cairn_raft::PeerConn;
use cairn_raft::PeerNetwork;
use rand::rngs::StdRng;
use rand::Rng;
use rand::SeedableRng;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;
use tokio::io::ReadBuf;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio::time::Sleep;

type NodeId = u64;

/// Connections a listener may have waiting to be accepted.
const ACCEPT_QUEUE: usize = 64;

/// How often single Raft messages meet each fate while message faults are on
/// (per mille).
#[derive(Debug, Clone, Copy)]
pub struct MessageOdds {
    pub drop: u32,
    pub drop_reply: u32,
    pub duplicate: u32,
    pub delay: u32,
}

impl MessageOdds {
    pub const NONE: MessageOdds = MessageOdds {
        drop: 0,
        drop_reply: 0,
        duplicate: 0,
        delay: 0,
    };
    pub const SOME: MessageOdds = MessageOdds {
        drop: 20,
        drop_reply: 10,
        duplicate: 20,
        delay: 30,
    };
}

struct State {
    /// Each node's running incarnation: a crashed incarnation's leftover
    /// tasks (there should be none) cannot reach anyone.
    incarnations: HashMap<NodeId, u32>,
    /// Connects refused to a leftover of a crashed incarnation.
    zombie_connects: u64,
    listeners: HashMap<String, (NodeId, mpsc::Sender<io::Result<PeerConn>>)>,
    cut: BTreeSet<(NodeId, NodeId)>,
    down: BTreeSet<NodeId>,
    frozen_until: HashMap<NodeId, Instant>,
    links: Vec<Weak<Link>>,
    rng: StdRng,
    latency: (Duration, Duration),
    odds: MessageOdds,
    /// Counters for the report.
    messages: u64,
    faulted_messages: u64,
}

/// The network of one simulated cluster.
#[derive(Clone)]
pub struct SimNet {
    state: Arc<Mutex<State>>,
}

impl SimNet {
    pub fn new(seed: u64) -> SimNet {
        SimNet {
            state: Arc::new(Mutex::new(State {
                incarnations: HashMap::new(),
                zombie_connects: 0,
                listeners: HashMap::new(),
                cut: BTreeSet::new(),
                down: BTreeSet::new(),
                frozen_until: HashMap::new(),
                links: Vec::new(),
                rng: StdRng::seed_from_u64(seed ^ 0x6e65_7477_6f72_6b21),
                latency: (Duration::from_micros(200), Duration::from_millis(2)),
                odds: MessageOdds::NONE,
                messages: 0,
                faulted_messages: 0,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cuts every link between `a` and `b` (both ways).
    pub fn cut(&self, a: NodeId, b: NodeId) {
        let mut s = self.lock();
        s.cut.insert((a, b));
        s.cut.insert((b, a));
        s.break_links(|l| (l.a == a && l.b == b) || (l.a == b && l.b == a));
    }

    /// Heals every cut.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    /// A crashed node: its listener is gone and every link of it resets.
    pub fn down(&self, n: NodeId) {
        let mut s = self.lock();
        s.down.insert(n);
        s.listeners.retain(|_, (node, _)| *node != n);
        s.break_links(|l| l.a == n || l.b == n);
    }

    /// Incarnation `incarnation` of node `n` is starting: the network it
    /// is to use. Only the latest incarnation of a node can connect.
    pub fn endpoint(&self, n: NodeId, incarnation: u32) -> Endpoint {
        let mut s = self.lock();
        s.down.remove(&n);
        s.incarnations.insert(n, incarnation);
        Endpoint {
            net: self.clone(),
            node: n,
            incarnation,
        }
    }

    /// Connects refused to leftovers of crashed incarnations.
    pub fn zombie_connects(&self) -> u64 {
        self.lock().zombie_connects
    }

    /// A paused node (a long GC, a stopped VM): nothing it sends or is sent
    /// moves until `until`; then everything queued arrives.
    pub fn freeze(&self, n: NodeId, until: Instant) {
        self.lock().frozen_until.insert(n, until);
    }

    /// Latency of each chunk: uniform in `[min, max]`.
    pub fn set_latency(&self, min: Duration, max: Duration) {
        self.lock().latency = (min, max.max(min));
    }

    pub fn set_message_odds(&self, odds: MessageOdds) {
        self.lock().odds = odds;
    }

    /// (messages sent, messages that met a fault).
    pub fn message_counts(&self) -> (u64, u64) {
        let s = self.lock();
        (s.messages, s.faulted_messages)
    }
}

impl State {
    fn break_links(&mut self, which: impl Fn(&Link) -> bool) {
        self.links.retain(|w| {
            let Some(l) = w.upgrade() else {
                return false;
            };
            if which(&l) {
                l.break_now();
                return false;
            }
            true
        });
    }

    fn sample_latency(&mut self) -> Duration {
        let (lo, hi) = self.latency;
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo).as_micros() as u64;
        lo + Duration::from_micros(self.rng.random_range(0..=span))
    }
}

/// One incarnation of a node's view of the network.
#[derive(Clone)]
pub struct Endpoint {
    net: SimNet,
    node: NodeId,
    incarnation: u32,
}

impl PeerNetwork for Endpoint {
    fn connect(&self, from: NodeId, addr: &str) -> Connecting {
        {
            let mut s = self.net.lock();
            if s.incarnations.get(&self.node) != Some(&self.incarnation) {
                s.zombie_connects += 1;
                tracing::debug!(
                    node = self.node,
                    incarnation = self.incarnation,
                    addr,
                    "a stopped incarnation tried to connect"
                );
                return Box::pin(async {
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        "a crashed incarnation",
                    ))
                });
            }
        }
        self.net.connect_now(from, addr)
    }

    fn listen(&self, node: NodeId, addr: &str) -> io::Result<mpsc::Receiver<io::Result<PeerConn>>> {
        self.net.listen_now(node, addr)
    }
}

impl MessageFaults for Endpoint {
    fn fate(&self, from: NodeId, to: NodeId, group: u64) -> Fate {
        self.net.fate(from, to, group)
    }
}

impl SimNet {
    fn connect_now(&self, from: NodeId, addr: &str) -> Connecting {
        let net = self.clone();
        let addr = addr.to_string();
        Box::pin(async move {
            // A connect takes a round trip.
            let rtt = {
                let mut s = net.lock();
                s.sample_latency() * 2
            };
            tokio::time::sleep(rtt).await;
            let mut s = net.lock();
            let Some((to, tx)) = s.listeners.get(&addr).cloned() else {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("nothing listens at {addr}"),
                ));
            };
            if s.down.contains(&from) || s.down.contains(&to) || s.cut.contains(&(from, to)) {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("node {from} cannot reach node {to}"),
                ));
            }
            let link = Arc::new(Link {
                a: from,
                b: to,
                net: Arc::downgrade(&net.state),
                pipes: [
                    Arc::new(Mutex::new(Pipe::default())),
                    Arc::new(Mutex::new(Pipe::default())),
                ],
            });
            s.links.push(Arc::downgrade(&link));
            drop(s);
            let client = End {
                link: link.clone(),
                me: from,
                peer: to,
                tx: 0,
                sleep: None,
            };
            let server = End {
                link,
                me: to,
                peer: from,
                tx: 1,
                sleep: None,
            };
            tx.try_send(Ok(PeerConn(Box::new(server))))
                .map_err(|_| io::Error::new(io::ErrorKind::ConnectionRefused, "backlog full"))?;
            Ok(Box::new(client) as BoxIo)
        })
    }

    fn listen_now(
        &self,
        node: NodeId,
        addr: &str,
    ) -> io::Result<mpsc::Receiver<io::Result<PeerConn>>> {
        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        let mut s = self.lock();
        s.down.remove(&node);
        s.listeners.insert(addr.to_string(), (node, tx));
        Ok(rx)
    }
}

impl SimNet {
    fn fate(&self, _from: NodeId, _to: NodeId, _group: u64) -> Fate {
        let mut s = self.lock();
        s.messages += 1;
        let odds = s.odds;
        let total = odds.drop + odds.drop_reply + odds.duplicate + odds.delay;
        if total == 0 {
            return Fate::Deliver;
        }
        let roll = s.rng.random_range(0..1000u32);
        let fate = if roll < odds.drop {
            Fate::Drop
        } else if roll < odds.drop + odds.drop_reply {
            Fate::DropReply
        } else if roll < odds.drop + odds.drop_reply + odds.duplicate {
            Fate::Duplicate
        } else if roll < total {
            Fate::Delay(Duration::from_millis(s.rng.random_range(1..300)))
        } else {
            Fate::Deliver
        };
        if fate != Fate::Deliver {
            s.faulted_messages += 1;
        }
        fate
    }
}

/// One direction of a connection: chunks in order, each with the time it
/// may be read.
#[derive(Default)]
struct Pipe {
    chunks: VecDeque<(Instant, Bytes)>,
    /// The reader's waker, woken by a write or a reset.
    reader: Option<Waker>,
    closed: bool,
    broken: bool,
}

/// A connection between nodes `a` (who connected) and `b`.
struct Link {
    a: NodeId,
    b: NodeId,
    net: Weak<Mutex<State>>,
    /// `pipes[0]`: a → b, `pipes[1]`: b → a.
    pipes: [Arc<Mutex<Pipe>>; 2],
}

impl Link {
    fn break_now(&self) {
        for p in &self.pipes {
            let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
            p.broken = true;
            if let Some(w) = p.reader.take() {
                w.wake();
            }
        }
    }
}

/// One end of a connection.
struct End {
    link: Arc<Link>,
    me: NodeId,
    peer: NodeId,
    /// Index of the pipe this end writes (the other it reads).
    tx: usize,
    sleep: Option<Pin<Box<Sleep>>>,
}

fn reset() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "link reset (simulated)")
}

impl End {
    /// No more bytes from this end: the reader sees the end of the stream.
    fn close(&self) {
        let mut p = self.link.pipes[self.tx]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        p.closed = true;
        if let Some(w) = p.reader.take() {
            w.wake();
        }
    }

    /// When a chunk written now by this end may be read, by the network's
    /// latency and either end being frozen.
    fn deliver_at(&self) -> Instant {
        let now = Instant::now();
        let Some(net) = self.link.net.upgrade() else {
            return now;
        };
        let mut s = net.lock().unwrap_or_else(|e| e.into_inner());
        let mut at = now + s.sample_latency();
        for n in [self.me, self.peer] {
            if let Some(until) = s.frozen_until.get(&n) {
                at = at.max(*until);
            }
        }
        at
    }
}

impl AsyncWrite for End {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let at = self.deliver_at();
        let mut p = self.link.pipes[self.tx]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if p.broken || p.closed {
            return Poll::Ready(Err(reset()));
        }
        // In order, as TCP: never before the chunk ahead of it.
        let at = p.chunks.back().map_or(at, |(last, _)| at.max(*last));
        p.chunks.push_back((at, Bytes::copy_from_slice(buf)));
        if let Some(w) = p.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.close();
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for End {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let pipe = self.link.pipes[1 - self.tx].clone();
        let mut p = pipe.lock().unwrap_or_else(|e| e.into_inner());
        if p.broken {
            return Poll::Ready(Err(reset()));
        }
        let now = Instant::now();
        let closed = p.closed;
        match p.chunks.front_mut() {
            Some((at, chunk)) if *at <= now => {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk.split_to(n));
                if chunk.is_empty() {
                    p.chunks.pop_front();
                }
                self.sleep = None;
                Poll::Ready(Ok(()))
            }
            Some((at, _)) => {
                let at = *at;
                p.reader = Some(cx.waker().clone());
                drop(p);
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    self.sleep = None;
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            None if closed => Poll::Ready(Ok(())),
            None => {
                p.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for End {
    fn drop(&mut self) {
        self.close();
    }
}
