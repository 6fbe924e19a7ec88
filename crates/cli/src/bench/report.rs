//! Final benchmark reports, as text or JSON.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::meter::{mb_per_second, per_second};

/// Ack latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest request.
    pub max_us: u64,
}

impl Latency {
    /// Percentiles of a histogram of microseconds (all zero when empty).
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Result of `cairn bench produce`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProduceReport {
    /// Records acknowledged.
    pub records: u64,
    /// Value bytes acknowledged.
    pub bytes: u64,
    /// Produce requests acknowledged.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Per-request ack latency.
    pub latency: Latency,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl ProduceReport {
    /// Human-readable summary.
    pub fn text(&self) -> String {
        let l = &self.latency;
        format!(
            "produced {} records ({:.1} MB) in {:.2}s: {:.0} records/s, {:.2} MB/s, {} requests, {} errors\n\
             ack latency ms: p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}\n",
            self.records,
            self.bytes as f64 / 1e6,
            self.elapsed.as_secs_f64(),
            per_second(self.records, self.elapsed),
            mb_per_second(self.bytes, self.elapsed),
            self.requests,
            self.errors,
            ms(l.p50_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.max_us),
        )
    }

    /// Machine-readable summary.
    pub fn json(&self) -> Value {
        json!({
            "records": self.records,
            "bytes": self.bytes,
            "requests": self.requests,
            "errors": self.errors,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "records_per_s": per_second(self.records, self.elapsed),
            "mb_per_s": mb_per_second(self.bytes, self.elapsed),
            "latency_us": {
                "p50": self.latency.p50_us,
                "p99": self.latency.p99_us,
                "p999": self.latency.p999_us,
                "max": self.latency.max_us,
            },
        })
    }
}

/// Result of `cairn bench consume`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumeReport {
    /// Records read.
    pub records: u64,
    /// Record batch bytes read.
    pub bytes: u64,
    /// Fetch requests made.
    pub fetches: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl ConsumeReport {
    /// Human-readable summary.
    pub fn text(&self) -> String {
        format!(
            "consumed {} records ({:.1} MB) in {:.2}s: {:.0} records/s, {:.2} MB/s, {} fetches\n",
            self.records,
            self.bytes as f64 / 1e6,
            self.elapsed.as_secs_f64(),
            per_second(self.records, self.elapsed),
            mb_per_second(self.bytes, self.elapsed),
            self.fetches,
        )
    }

    /// Machine-readable summary.
    pub fn json(&self) -> Value {
        json!({
            "records": self.records,
            "bytes": self.bytes,
            "fetches": self.fetches,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "records_per_s": per_second(self.records, self.elapsed),
            "mb_per_s": mb_per_second(self.bytes, self.elapsed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        assert_eq!(Latency::from_histogram(&h), Latency::default());
        for us in 1..=1000u64 {
            h.record(us).unwrap();
        }
        let l = Latency::from_histogram(&h);
        assert!((499..=501).contains(&l.p50_us), "{l:?}");
        assert!((989..=991).contains(&l.p99_us), "{l:?}");
        assert!((998..=1000).contains(&l.p999_us), "{l:?}");
        assert_eq!(l.max_us, 1000);
    }

    #[test]
    fn produce_report_formats() {
        let r = ProduceReport {
            records: 2000,
            bytes: 2_000_000,
            requests: 20,
            errors: 0,
            elapsed: Duration::from_secs(2),
            latency: Latency {
                p50_us: 1500,
                p99_us: 4000,
                p999_us: 9000,
                max_us: 12_345,
            },
        };
        let text = r.text();
        assert!(
            text.starts_with("produced 2000 records (2.0 MB) in 2.00s: 1000 records/s, 1.00 MB/s")
        );
        assert!(text.contains("p50 1.500  p99 4.000  p99.9 9.000  max 12.345"));
        let j = r.json();
        assert_eq!(j["records_per_s"], 1000.0);
        assert_eq!(j["latency_us"]["p999"], 9000);
    }

    #[test]
    fn consume_report_formats() {
        let r = ConsumeReport {
            records: 10,
            bytes: 5_000_000,
            fetches: 3,
            elapsed: Duration::from_millis(500),
        };
        assert_eq!(
            r.text(),
            "consumed 10 records (5.0 MB) in 0.50s: 20 records/s, 10.00 MB/s, 3 fetches\n"
        );
        assert_eq!(r.json()["mb_per_s"], 10.0);
    }
}
