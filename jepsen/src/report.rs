//! The report of a run, written to its directory:
//!
//! - `verdict.json`: [`Verdict`], for machines (valid, counts, availability, first anomalies);
//! - `report.txt`: a summary a human reads in 30 seconds;
//! - `report.html`: one self-contained page with an inline SVG timeline (no scripts).

mod html;
mod text;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::availability::{Liveness, WriteGap};
use crate::checker::{Anomaly, AnomalyKind, CheckResult, Counts};
use crate::history::History;

pub use html::render_html;
pub use text::render_text;

/// How many anomalies of each class the verdict lists (all are counted), so that thousands of
/// one class do not hide the first of another.
pub const FIRST_ANOMALIES_PER_CLASS: usize = 20;

/// What the runner knows about the run that the history does not say.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct RunMeta {
    pub seed: u64,
    /// Nemesis kinds enabled, e.g. "kill", "partition", "pause".
    pub nemeses: Vec<String>,
    pub time_limit_s: u64,
    pub nodes: Vec<u64>,
    /// The fault schedule, one free-text line per step.
    pub fault_schedule: Vec<String>,
    /// Anything a reader should know, e.g. "clock jumps: not possible on this host because ...".
    pub notes: Vec<String>,
    /// When set, the run is invalid unless every partition got an ok send and a read within
    /// this bound after the last heal ([`Liveness::satisfied`]).
    pub liveness_bound_ms: Option<u64>,
    /// When set, the run is invalid if any fault kept some partition from
    /// taking a write for longer than this (an availability regression bound).
    #[serde(default)]
    pub max_unavailable_ms: Option<u64>,
}

/// One fault and the unavailability it caused across partitions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FaultSummary {
    pub name: String,
    pub start_us: u64,
    pub end_us: Option<u64>,
    pub max_unavailable_us: u64,
    pub median_unavailable_us: u64,
    pub all_recovered: bool,
}

/// `verdict.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Verdict {
    /// No anomaly, and liveness held if a bound was given.
    pub valid: bool,
    /// None when [`RunMeta::liveness_bound_ms`] is unset.
    pub liveness_ok: Option<bool>,
    /// None when [`RunMeta::max_unavailable_ms`] is unset.
    #[serde(default)]
    pub availability_ok: Option<bool>,
    /// Every class, zeros included.
    pub anomaly_counts: BTreeMap<AnomalyKind, u64>,
    pub anomalies_total: u64,
    pub counts: Counts,
    pub faults: Vec<FaultSummary>,
    pub longest_write_gaps: Vec<WriteGap>,
    pub liveness: Liveness,
    /// The first [`FIRST_ANOMALIES_PER_CLASS`] anomalies of each class, by class.
    pub first_anomalies: Vec<Anomaly>,
    pub meta: RunMeta,
}

/// Sums up a check for `verdict.json`.
pub fn verdict(result: &CheckResult, meta: &RunMeta) -> Verdict {
    let availability = &result.availability;
    let liveness_ok = meta.liveness_bound_ms.map(|bound_ms| {
        availability
            .liveness
            .satisfied(bound_ms.saturating_mul(1_000))
    });
    let availability_ok = meta.max_unavailable_ms.map(|bound_ms| {
        availability
            .faults
            .iter()
            .all(|f| f.max_unavailable_us <= bound_ms.saturating_mul(1_000))
    });
    Verdict {
        valid: result.valid && liveness_ok != Some(false) && availability_ok != Some(false),
        liveness_ok,
        availability_ok,
        anomaly_counts: result.anomaly_counts(),
        anomalies_total: result.anomalies.len() as u64,
        counts: result.counts.clone(),
        faults: availability
            .faults
            .iter()
            .map(|f| FaultSummary {
                name: f.fault.name.clone(),
                start_us: f.fault.start_us,
                end_us: f.fault.end_us,
                max_unavailable_us: f.max_unavailable_us,
                median_unavailable_us: f.median_unavailable_us,
                all_recovered: f.all_recovered,
            })
            .collect(),
        longest_write_gaps: availability.longest_write_gaps.clone(),
        liveness: availability.liveness.clone(),
        first_anomalies: first_per_class(&result.anomalies, FIRST_ANOMALIES_PER_CLASS),
        meta: meta.clone(),
    }
}

/// Writes `verdict.json`, `report.txt` and `report.html` into `dir` (created if missing).
pub fn write_report(
    dir: &Path,
    history: &History,
    result: &CheckResult,
    meta: &RunMeta,
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let verdict = verdict(result, meta);
    let json = serde_json::to_string_pretty(&verdict).map_err(io::Error::other)?;
    std::fs::write(dir.join("verdict.json"), json + "\n")?;
    std::fs::write(dir.join("report.txt"), render_text(&verdict))?;
    std::fs::write(dir.join("report.html"), render_html(history, result, meta))?;
    Ok(())
}

/// The first `n` anomalies of each class, in their order.
pub(crate) fn first_per_class(anomalies: &[Anomaly], n: usize) -> Vec<Anomaly> {
    let mut taken: BTreeMap<AnomalyKind, usize> = BTreeMap::new();
    anomalies
        .iter()
        .filter(|a| {
            let count = taken.entry(a.kind).or_insert(0);
            *count += 1;
            *count <= n
        })
        .cloned()
        .collect()
}

/// Seconds with two decimals, e.g. "1.50 s".
pub(crate) fn secs(us: u64) -> String {
    format!("{:.2} s", us as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check, HistoryBuilder};

    fn meta() -> RunMeta {
        RunMeta {
            seed: 42,
            nemeses: vec!["kill".into()],
            time_limit_s: 60,
            nodes: vec![1, 2, 3],
            fault_schedule: vec!["1.0 s kill node 2".into(), "2.0 s start node 2".into()],
            notes: vec!["clock jumps: not possible on this host".into()],
            liveness_bound_ms: Some(10_000),
            max_unavailable_ms: None,
        }
    }

    #[test]
    fn an_availability_bound_fails_a_fault_that_stalls_writes() {
        let mut b = HistoryBuilder::new();
        b.at_ms(0);
        b.send_ok(0, 0, 1, 0);
        b.at_ms(1_000);
        b.fault("isolate node 1");
        b.at_ms(7_000);
        b.heal("isolate node 1");
        b.send_ok(0, 0, 2, 1);
        b.poll(1000, &[(0, 0, 0, 1), (0, 1, 0, 2)]);
        let history = b.build();
        let result = check(&history);
        assert!(result.valid, "{:?}", result.anomalies);
        let strict = RunMeta {
            max_unavailable_ms: Some(5_000),
            liveness_bound_ms: None,
            ..meta()
        };
        let v = verdict(&result, &strict);
        assert_eq!(v.availability_ok, Some(false));
        assert!(!v.valid);
        let loose = RunMeta {
            max_unavailable_ms: Some(10_000),
            ..strict
        };
        assert!(verdict(&result, &loose).valid);
    }

    fn small_history() -> History {
        let mut b = HistoryBuilder::new();
        b.send_ok(0, 0, 1, 0);
        b.fault("kill node 2");
        b.send_info(1, 1, 2);
        b.send_fail(0, 0, 3);
        b.heal("kill node 2");
        b.send_ok(0, 0, 4, 1);
        b.send_ok(1, 1, 5, 0);
        b.poll(1000, &[(0, 0, 0, 1), (0, 1, 0, 4), (1, 0, 1, 5)]);
        b.build()
    }

    #[test]
    fn writes_all_three_files() {
        let history = small_history();
        let result = check(&history);
        assert!(result.valid, "{:?}", result.anomalies);
        let dir = tempfile::tempdir().unwrap();
        write_report(dir.path(), &history, &result, &meta()).unwrap();

        let json = std::fs::read_to_string(dir.path().join("verdict.json")).unwrap();
        let v: Verdict = serde_json::from_str(&json).unwrap();
        assert!(v.valid);
        assert_eq!(v.liveness_ok, Some(true));
        assert_eq!(v.anomaly_counts.len(), AnomalyKind::QUEUE.len());
        assert_eq!(v.faults.len(), 1);
        assert!(json.contains("\"lost-write\": 0"), "{json}");

        let text = std::fs::read_to_string(dir.path().join("report.txt")).unwrap();
        assert!(text.starts_with("VALID"), "{text}");
        assert!(text.contains("kill node 2"));

        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(html.contains("<svg") && html.contains("kill node 2"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn anomalies_or_missed_liveness_make_the_verdict_invalid() {
        let mut b = HistoryBuilder::new();
        b.send_ok(0, 0, 1, 0);
        b.poll(1000, &[(0, 0, 0, 9)]);
        let result = check(&b.build());
        let v = verdict(&result, &meta());
        assert!(!v.valid);
        assert!(v.anomaly_counts[&AnomalyKind::PhantomRead] == 1);
        assert!(render_text(&v).starts_with("INVALID"));

        let mut slow = meta();
        slow.liveness_bound_ms = Some(0);
        let result = check(&small_history());
        let v = verdict(&result, &slow);
        assert_eq!((v.valid, v.liveness_ok), (false, Some(false)));
    }

    #[test]
    fn html_of_a_long_history_stays_small() {
        // 100k ops over 10 minutes on 6 partitions.
        let mut b = HistoryBuilder::new();
        b.step_us(6_000);
        let mut offsets = [0i64; 6];
        for i in 0..25_000u64 {
            let key = (i % 6) as u32;
            if i % 50 == 7 {
                b.send_info(i % 4, key, i);
            } else {
                b.send_ok(i % 4, key, i, offsets[key as usize]);
                offsets[key as usize] += 1;
            }
            b.poll(1000, &[]);
            let fault = format!("kill node {}", (i / 5000) % 3 + 1);
            if i % 5000 == 0 {
                b.fault(&fault);
            }
            if i % 5000 == 2500 {
                b.heal(&fault);
            }
        }
        let history = b.build();
        let result = check(&history);
        // Every ok send is unseen (nothing reads): the verdict lists only the first ones.
        let v = verdict(&result, &meta());
        assert_eq!(v.anomalies_total, 25_000 - 500);
        assert_eq!(v.first_anomalies.len(), FIRST_ANOMALIES_PER_CLASS);
        let html = render_html(&history, &result, &meta());
        assert!(html.len() < 3_000_000, "html is {} bytes", html.len());
    }
}
