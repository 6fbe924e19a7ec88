//! [`Meter`]: shared counters of a benchmark and the once-a-second progress
//! line on stderr.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// Counters updated by the benchmark tasks.
#[derive(Debug, Default)]
pub struct Meter {
    records: AtomicU64,
    bytes: AtomicU64,
    in_flight: AtomicU64,
    errors: AtomicU64,
}

/// A consistent-enough reading of a [`Meter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// Records completed.
    pub records: u64,
    /// Payload bytes completed.
    pub bytes: u64,
    /// Requests in flight.
    pub in_flight: u64,
    /// Failed requests.
    pub errors: u64,
}

impl Meter {
    /// Counts completed records.
    pub fn add(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A request was sent.
    pub fn start_request(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request completed (either way).
    pub fn end_request(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// A request failed.
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn read(&self) -> Reading {
        Reading {
            records: self.records.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// Prints a progress line to stderr every second until aborted.
    pub fn spawn_progress(self: &Arc<Self>, start: Instant) -> JoinHandle<()> {
        let meter = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            ticker.tick().await;
            let mut last = Reading::default();
            let mut last_at = Instant::now();
            loop {
                ticker.tick().await;
                let now = Instant::now();
                let reading = meter.read();
                eprintln!(
                    "{}",
                    progress_line(now - start, now - last_at, &last, &reading)
                );
                last = reading;
                last_at = now;
            }
        })
    }
}

/// Records or bytes per second.
pub fn per_second(amount: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        amount as f64 / secs
    } else {
        0.0
    }
}

/// Bytes per second in MB/s (10^6 bytes).
pub fn mb_per_second(bytes: u64, elapsed: Duration) -> f64 {
    per_second(bytes, elapsed) / 1e6
}

/// The progress line: rates over the last interval, totals so far.
pub fn progress_line(
    elapsed: Duration,
    interval: Duration,
    last: &Reading,
    now: &Reading,
) -> String {
    let records = now.records.saturating_sub(last.records);
    let bytes = now.bytes.saturating_sub(last.bytes);
    let mut line = format!(
        "[{:>6.1}s] {:>10.0} records/s {:>9.2} MB/s  in-flight {:>4}  total {}",
        elapsed.as_secs_f64(),
        per_second(records, interval),
        mb_per_second(bytes, interval),
        now.in_flight,
        now.records
    );
    if now.errors > 0 {
        line.push_str(&format!("  errors {}", now.errors));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(per_second(100, Duration::from_millis(500)), 200.0);
        assert_eq!(per_second(100, Duration::ZERO), 0.0);
        assert_eq!(mb_per_second(3_000_000, Duration::from_secs(2)), 1.5);
    }

    #[test]
    fn meter_and_progress_line() {
        let m = Meter::default();
        m.start_request();
        m.add(10, 10_000);
        m.start_request();
        m.end_request();
        let r = m.read();
        assert_eq!(
            r,
            Reading {
                records: 10,
                bytes: 10_000,
                in_flight: 1,
                errors: 0
            }
        );
        let line = progress_line(
            Duration::from_secs(2),
            Duration::from_secs(1),
            &Reading::default(),
            &r,
        );
        assert_eq!(
            line,
            "[   2.0s]         10 records/s      0.01 MB/s  in-flight    1  total 10"
        );
        m.error();
        let line = progress_line(
            Duration::from_secs(2),
            Duration::from_secs(1),
            &r,
            &m.read(),
        );
        assert!(line.ends_with("errors 1"));
    }
}
