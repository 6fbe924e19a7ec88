//! The checker: finds every anomaly class of Jepsen's Kafka (queue) workload in a history
//! ([`check`]); [`check_compaction`] and [`check_group`] check the compaction and group
//! workloads' histories for their own classes.
//!
//! ```text
//!  History ──► Model (pair invokes/completions; sends, polls, consumer steps, known offsets)
//!                 │
//!                 ├─► lost_write  unseen  duplicate  inconsistent_offsets  nonmonotonic_poll
//!                 ├─► poll_skip  nonmonotonic_send  aborted_read  phantom_read  malformed
//!                 └─► Counts            History ──► Availability
//! ```
//!
//! The model of the system: keys map 1:1 to partitions, values are unique per key, and offsets
//! are dense per partition (no compaction, no transaction markers). Each file checks one
//! property and names it in its module doc.

mod aborted_read;
mod anomaly;
mod compaction;
mod counts;
mod duplicate;
mod inconsistent_offsets;
mod lost_write;
mod malformed;
mod model;
mod nonmonotonic_poll;
mod nonmonotonic_send;
mod offset_regression;
mod phantom_read;
mod poll_skip;
mod unseen;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use anomaly::{Anomaly, AnomalyKind};
pub use counts::{Counts, PartitionCounts};

use crate::availability::Availability;
use crate::history::History;
use model::Model;

/// Everything the checker found in one history.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CheckResult {
    /// No anomaly of any class (unseen included: a run ends with a full drain).
    pub valid: bool,
    /// Every anomaly, grouped by class in [`AnomalyKind::ALL`] order.
    pub anomalies: Vec<Anomaly>,
    pub counts: Counts,
    pub availability: Availability,
    /// The classes that were looked for (empty in results written before there were several
    /// workloads: the queue's).
    #[serde(default)]
    pub classes: Vec<AnomalyKind>,
}

impl CheckResult {
    /// How many anomalies of `kind` were found.
    pub fn count(&self, kind: AnomalyKind) -> usize {
        self.anomalies.iter().filter(|a| a.kind == kind).count()
    }

    /// Anomaly counts for every class looked for, zeros included.
    pub fn anomaly_counts(&self) -> BTreeMap<AnomalyKind, u64> {
        let classes: &[AnomalyKind] = if self.classes.is_empty() {
            &AnomalyKind::QUEUE
        } else {
            &self.classes
        };
        let mut counts: BTreeMap<AnomalyKind, u64> = classes.iter().map(|&k| (k, 0)).collect();
        for anomaly in &self.anomalies {
            *counts.entry(anomaly.kind).or_default() += 1;
        }
        counts
    }
}

/// Checks `history` for every anomaly class and measures availability.
pub fn check(history: &History) -> CheckResult {
    let model = Model::build(history);
    let mut anomalies = Vec::new();
    anomalies.extend(lost_write::check(&model));
    anomalies.extend(unseen::check(&model));
    anomalies.extend(duplicate::check(&model));
    anomalies.extend(inconsistent_offsets::check(&model));
    anomalies.extend(nonmonotonic_poll::check(&model));
    anomalies.extend(poll_skip::check(&model));
    anomalies.extend(nonmonotonic_send::check(&model));
    anomalies.extend(aborted_read::check(&model));
    anomalies.extend(phantom_read::check(&model));
    anomalies.extend(malformed::check(&model));
    result(history, &model, anomalies, &AnomalyKind::QUEUE)
}

/// Checks a compaction workload's history: every replica's final state of every key against
/// the writes (see `compaction.rs`), and the history's own rules.
pub fn check_compaction(history: &History) -> CheckResult {
    let model = Model::build(history);
    let mut anomalies = compaction::check(history, &model);
    anomalies.extend(malformed::check(&model));
    result(history, &model, anomalies, &AnomalyKind::COMPACTION)
}

/// Checks a group workload's history: where members resumed against the acknowledged commits
/// (see `offset_regression.rs`), and the history's own rules.
pub fn check_group(history: &History) -> CheckResult {
    let model = Model::build(history);
    let mut anomalies = offset_regression::check(history);
    anomalies.extend(malformed::check(&model));
    result(history, &model, anomalies, &AnomalyKind::GROUP)
}

fn result(
    history: &History,
    model: &Model,
    mut anomalies: Vec<Anomaly>,
    classes: &[AnomalyKind],
) -> CheckResult {
    // Stable: keeps each class's own order.
    anomalies.sort_by_key(|a| a.kind);
    CheckResult {
        valid: anomalies.is_empty(),
        anomalies,
        counts: Counts::new(history, model),
        availability: Availability::from_history(history),
        classes: classes.to_vec(),
    }
}

/// Test helper: asserts every anomaly of `history` is of `kind` and returns their ops.
#[cfg(test)]
pub(crate) fn only(history: &History, kind: AnomalyKind) -> Vec<Vec<u64>> {
    let result = check(history);
    for a in &result.anomalies {
        assert_eq!(a.kind, kind, "unexpected anomaly {a:?}");
    }
    assert_eq!(result.valid, result.anomalies.is_empty());
    result.anomalies.iter().map(|a| a.ops.clone()).collect()
}
