//! A userspace WAN between regions: a TCP proxy that delays, jitters,
//! rate-limits and cuts the traffic through it, changeable while it runs.
//! This machine's kernel has no `sch_netem`, so `tc netem` cannot do it.
//!
//! ```text
//!   client ──▶ listen ─┬─ up:   read ─▶ [deliver at t+delay±jitter] ─▶ token bucket ─▶ upstream
//!                      └─ down: write ◀─ token bucket ◀─ [deliver at …] ◀─ read ◀──── upstream
//! ```
//!
//! Each direction of each connection is a reader that stamps every chunk
//! with its delivery time (never earlier than the chunk before it: TCP does
//! not reorder) and a writer that waits for it and for the direction's
//! token bucket (shared by every connection of the proxy, as a link's
//! bandwidth is). A cut holds every byte (and accepts no connection) until
//! healed; `reset` closes every connection. Settings are read per chunk,
//! so a change applies to traffic from then on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// Chunks read and not yet delivered, per direction of a connection.
pub const WAN_QUEUE_CHUNKS: usize = 1024;
/// Bytes read at a time.
const CHUNK: usize = 64 * 1024;

/// How the WAN behaves; one-way figures (a round trip pays twice).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WanSettings {
    /// One-way delay.
    pub delay: Duration,
    /// Each chunk's delay varies by up to this much either way.
    pub jitter: Duration,
    /// Bytes per second each direction carries (0: unlimited).
    pub rate_bytes_per_s: u64,
    /// Nothing passes (bytes are held, new connections wait) until false.
    pub cut: bool,
}

impl WanSettings {
    /// A round trip of `rtt`, no jitter, no limit.
    pub fn rtt(rtt: Duration) -> WanSettings {
        WanSettings {
            delay: rtt / 2,
            ..WanSettings::default()
        }
    }
}

/// Changes a running proxy's settings.
#[derive(Clone)]
pub struct WanControl {
    settings: watch::Sender<WanSettings>,
    resets: watch::Sender<u64>,
}

impl WanControl {
    pub fn set(&self, s: WanSettings) {
        self.settings.send_replace(s);
    }

    pub fn settings(&self) -> WanSettings {
        *self.settings.borrow()
    }

    /// Cuts (true) or heals the link.
    pub fn cut(&self, cut: bool) {
        self.settings.send_modify(|s| s.cut = cut);
    }

    /// Closes every connection through the proxy now.
    pub fn reset(&self) {
        self.resets.send_modify(|n| *n += 1);
    }
}

/// A running proxy: `listen` forwards to `upstream`.
pub struct WanProxy {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    control: WanControl,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WanProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A direction's token bucket, shared by the proxy's connections.
struct Bucket {
    /// When the bytes sent so far will have drained at the rate.
    free_at: Mutex<Instant>,
}

impl Bucket {
    /// Waits until `bytes` may go at `rate` bytes/s.
    async fn take(&self, bytes: usize, rate: u64) {
        if rate == 0 {
            return;
        }
        let cost = Duration::from_secs_f64(bytes as f64 / rate as f64);
        let wait_until = {
            let Ok(mut free) = self.free_at.lock() else {
                return;
            };
            let now = Instant::now();
            // No credit saved up beyond one chunk's worth of idleness.
            let start = (*free).max(now);
            *free = start + cost;
            start
        };
        tokio::time::sleep_until(wait_until).await;
    }
}

impl WanProxy {
    /// Listens on `listen` (port 0: any) and forwards to `upstream`.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        settings: WanSettings,
    ) -> std::io::Result<WanProxy> {
        let listener = TcpListener::bind(listen).await?;
        let listen = listener.local_addr()?;
        let (settings_tx, settings_rx) = watch::channel(settings);
        let (resets_tx, resets_rx) = watch::channel(0u64);
        let up = Arc::new(Bucket {
            free_at: Mutex::new(Instant::now()),
        });
        let down = Arc::new(Bucket {
            free_at: Mutex::new(Instant::now()),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let mut settings = settings_rx.clone();
                // A cut link accepts nothing: the connection waits.
                if settings.wait_for(|s| !s.cut).await.is_err() {
                    return;
                }
                let settings = settings_rx.clone();
                let resets = resets_rx.clone();
                let (up, down) = (up.clone(), down.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let mut reset = resets.clone();
                    reset.mark_unchanged();
                    tokio::select! {
                        _ = pump(cr, sw, settings.clone(), up) => {}
                        _ = pump(sr, cw, settings, down) => {}
                        _ = reset.changed() => {}
                    }
                });
            }
        });
        Ok(WanProxy {
            listen,
            upstream,
            control: WanControl {
                settings: settings_tx,
                resets: resets_tx,
            },
            task,
        })
    }

    pub fn control(&self) -> WanControl {
        self.control.clone()
    }
}

/// One direction: read, stamp, wait, rate-limit, write. Ends when either
/// side closes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    settings: watch::Receiver<WanSettings>,
    bucket: Arc<Bucket>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(WAN_QUEUE_CHUNKS);
    let reader_settings = settings.clone();
    let reader = async move {
        let mut last = Instant::now();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let s = *reader_settings.borrow();
            let jitter = if s.jitter.is_zero() {
                0.0
            } else {
                let j = s.jitter.as_secs_f64();
                rand::rng().random_range(-j..=j)
            };
            let delay = (s.delay.as_secs_f64() + jitter).max(0.0);
            let at = (Instant::now() + Duration::from_secs_f64(delay)).max(last);
            last = at;
            if tx.send((at, buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        let mut settings = settings;
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if settings.wait_for(|s| !s.cut).await.is_err() {
                return;
            }
            let rate = settings.borrow().rate_bytes_per_s;
            bucket.take(chunk.len(), rate).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    // The writer drains what the reader queued before the close.
    let (_, _) = tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes every byte back.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(c: &mut TcpStream, bytes: usize) -> Duration {
        let start = std::time::Instant::now();
        let data = vec![7u8; bytes];
        c.write_all(&data).await.unwrap();
        let mut back = vec![0u8; bytes];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(back, data);
        start.elapsed()
    }

    #[tokio::test]
    async fn delay_rate_and_cut_apply_and_change_while_running() {
        let proxy = WanProxy::start(
            "127.0.0.1:0".parse().unwrap(),
            echo().await,
            WanSettings::rtt(Duration::from_millis(40)),
        )
        .await
        .unwrap();
        let ctl = proxy.control();
        let mut c = TcpStream::connect(proxy.listen).await.unwrap();
        c.set_nodelay(true).unwrap();
        // There and back through the proxy: 20 ms each way.
        let rtt = round_trip(&mut c, 10).await;
        assert!(rtt >= Duration::from_millis(40), "{rtt:?}");

        // Changed while running: no delay now.
        ctl.set(WanSettings::default());
        let fast = round_trip(&mut c, 10).await;
        assert!(fast < rtt, "{fast:?} vs {rtt:?}");

        // 500 KB at 1 MB/s: all but the first chunk wait their turn,
        // at least (500 KB - 64 KiB) / 1 MB/s.
        ctl.set(WanSettings {
            rate_bytes_per_s: 1_000_000,
            ..WanSettings::default()
        });
        let limited = round_trip(&mut c, 500_000).await;
        assert!(limited >= Duration::from_millis(430), "{limited:?}");

        // Cut: nothing comes back until healed.
        ctl.set(WanSettings::default());
        ctl.cut(true);
        c.write_all(b"held").await.unwrap();
        let mut buf = [0u8; 4];
        let held = tokio::time::timeout(Duration::from_millis(300), c.read_exact(&mut buf)).await;
        assert!(held.is_err(), "bytes crossed a cut link");
        ctl.cut(false);
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"held");

        // Reset closes the connection.
        ctl.reset();
        let mut one = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut one))
            .await
            .expect("closed after a reset");
        assert!(matches!(n, Ok(0) | Err(_)));
    }
}
