//! `cairn-clock`: the one clock every server-side timer, lease, timeout and
//! timestamp reads.
//!
//! ```text
//!   monotonic: cairn_clock::now()  ──> tokio's clock (paused and driven by the simulator)
//!   wall:      cairn_clock::unix_millis() / system_time()
//!                 ├─ normally SystemTime::now()
//!                 └─ under simulation (this thread): epoch + simulated time elapsed
//! ```
//!
//! Sleeps, intervals and timeouts already go through tokio's timer, which
//! reads the same monotonic clock; [`Instant`] is tokio's, so a deadline made
//! here and a `tokio::time::sleep_until` agree. The server crates may not call
//! `std::time::Instant::now`, `Instant::elapsed` or `SystemTime::now`
//! (`clippy.toml` forbids them), so a simulated cluster in one process sees
//! one consistent, seeded time.

use std::cell::Cell;
use std::time::Duration;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

/// A point of the monotonic clock (tokio's, so pausable).
pub use tokio::time::Instant;

thread_local! {
    /// Under simulation: the wall-clock reading at `origin`.
    static SIMULATED: Cell<Option<(SystemTime, Instant)>> = const { Cell::new(None) };
}

/// Now, on the monotonic clock.
pub fn now() -> Instant {
    Instant::now()
}

/// Time since `since` on the monotonic clock (zero if `since` is later).
pub fn elapsed(since: Instant) -> Duration {
    now().saturating_duration_since(since)
}

/// Now, on the wall clock: the system's, or under simulation the simulated one.
pub fn system_time() -> SystemTime {
    match SIMULATED.with(Cell::get) {
        Some((epoch, origin)) => epoch + now().saturating_duration_since(origin),
        #[allow(clippy::disallowed_methods)]
        None => SystemTime::now(),
    }
}

/// Milliseconds since the Unix epoch on the wall clock.
pub fn unix_millis() -> i64 {
    system_time()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Makes this thread's wall clock simulated: it reads `epoch_ms` now and
/// advances with the monotonic clock (tokio's, which the simulator pauses
/// and drives). Until [`SimulatedWallClock`] is dropped.
pub fn simulate_wall_clock(epoch_ms: u64) -> SimulatedWallClock {
    let epoch = UNIX_EPOCH + Duration::from_millis(epoch_ms);
    let previous = SIMULATED.with(|s| s.replace(Some((epoch, now()))));
    SimulatedWallClock { previous }
}

/// Restores the thread's previous wall clock when dropped.
pub struct SimulatedWallClock {
    previous: Option<(SystemTime, Instant)>,
}

impl Drop for SimulatedWallClock {
    fn drop(&mut self) {
        SIMULATED.with(|s| s.set(self.previous.take()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn simulated_wall_clock_follows_paused_time_then_the_system_again() {
        let before = unix_millis();
        assert!(before > 1_600_000_000_000, "{before}");
        {
            let _sim = simulate_wall_clock(1_000);
            assert_eq!(unix_millis(), 1_000);
            tokio::time::advance(Duration::from_secs(3600)).await;
            assert_eq!(unix_millis(), 1_000 + 3_600_000);
        }
        assert!(unix_millis() >= before);
    }
}
