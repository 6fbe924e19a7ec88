//! Jepsen-style testing of Cairn as a queue: the history format, the checker, and the report.
//!
//! ```text
//!  runner (later) ──HistoryWriter──► history.jsonl ──History::read_jsonl──► check()
//!                                                                              │
//!                              verdict.json  report.txt  report.html ◄── write_report()
//! ```
//!
//! Pure logic: besides reading and writing those files, nothing here does I/O. The checker
//! follows the anomaly classes of Jepsen's Kafka workload (`jepsen.tests.kafka`), specialised to
//! a log whose offsets are dense and whose keys map 1:1 to partitions.

mod availability;
mod builder;
mod checker;
/// The DR drill's checker and report (`jepsen/run dr`).
pub mod dr;
mod history;
mod report;

pub use availability::{
    fault_windows, send_timelines, Availability, FaultAvailability, FaultWindow, Liveness,
    PartitionLiveness, PartitionUnavailability, SendTimeline, WriteGap,
};
pub use builder::HistoryBuilder;
pub use checker::{
    check, check_compaction, check_group, Anomaly, AnomalyKind, CheckResult, Counts,
    PartitionCounts,
};
pub use history::{
    History, HistoryError, HistoryWriter, IoVerb, KeyedRecord, Op, OpF, OpKind, Read,
    FIRST_CONSUMER_PROCESS, NEMESIS_PROCESS,
};
pub use report::{
    render_html, render_text, verdict, write_report, FaultSummary, RunMeta, Verdict,
    FIRST_ANOMALIES_PER_CLASS,
};
