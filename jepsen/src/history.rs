//! The history: every client and nemesis operation of a run, in the order the runner saw them.
//!
//! Stored as JSON lines, one [`Op`] per line:
//!
//! ```text
//! {"index":0,"time_us":10,"process":0,"type":"invoke","f":"send","key":1,"value":7}
//! {"index":1,"time_us":9000,"process":0,"type":"ok","f":"send","key":1,"value":7,"partition":1,"offset":42}
//! {"index":2,"time_us":9100,"process":18446744073709551615,"type":"invoke","f":"fault","fault":"kill node 2"}
//! ```
//!
//! Every operation is an `invoke` followed later by exactly one completion from the same process:
//! `ok`; `fail` (definitely did not happen); or `info` (unknown outcome: a timed-out send may or
//! may not have been written). Faults are the exception: the nemesis ([`NEMESIS_PROCESS`])
//! invokes a fault when it starts and completes it with `info` (same `fault` text) when healed,
//! and several faults may be open at once.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The process id the nemesis uses for fault operations.
pub const NEMESIS_PROCESS: u64 = u64::MAX;

/// First process id of consumers; producers count up from 0.
pub const FIRST_CONSUMER_PROCESS: u64 = 1000;

/// Whether an op starts an operation or completes it, and how.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Invoke,
    /// Completed: it happened.
    Ok,
    /// Completed: it definitely did not happen.
    Fail,
    /// Completed with an unknown outcome (e.g. a timeout).
    Info,
}

/// The function an op performs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum OpF {
    /// Produce one record with `key` and `value`.
    Send,
    /// Fetch records; the `ok` completion lists them in `reads`.
    Poll,
    /// A consumer (re)starts at `positions` (partition -> next offset to read).
    Assign,
    /// A nemesis fault, named by `fault`.
    Fault,
    /// Group workload: a member commits `positions` (partition -> next offset to read) for
    /// the group.
    Commit,
    /// Compaction workload: the final read of one replica's copy of a partition (`node`,
    /// `partition`); the `ok` completion lists the records it holds in `records` and its
    /// high watermark in `offset`.
    #[serde(rename = "replica-read")]
    ReplicaRead,
}

/// One record returned by a poll.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Read {
    pub partition: u32,
    pub offset: i64,
    pub key: u32,
    pub value: u64,
}

/// One record a replica holds, as the compaction workload's final read finds it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyedRecord {
    pub offset: i64,
    pub key: u32,
    /// The value the write carried; `None` for a tombstone (a null value).
    pub value: Option<u64>,
}

/// One line of the history.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Op {
    /// Position in the history.
    pub index: u64,
    /// Microseconds since the run started.
    pub time_us: u64,
    /// Client process id: producers 0.., consumers 1000..; the nemesis is [`NEMESIS_PROCESS`].
    pub process: u64,
    #[serde(rename = "type")]
    pub kind: OpKind,
    pub f: OpF,
    /// Send: the key, which is also the partition the record goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<u32>,
    /// Send: the value, unique per key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<u64>,
    /// Send (compaction workload): the record is a tombstone, its value null; `value` still
    /// names the write uniquely.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tombstone: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// Send `ok`: the offset the record was assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// The node that served the operation, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
    /// Poll `ok`: the records read, in the order the consumer received them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<Read>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Fault ops: what the fault is, e.g. "kill node 2", "partition [1] | [2,3]".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// Assign: partition -> next offset the consumer reads from. Poll `ok` (group workload):
    /// where the member resumed on partitions assigned to it during that poll. Commit: the
    /// offsets committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions: Option<Vec<(u32, i64)>>,
    /// Poll: the partition's log start, as the answer reported (`ok`), or
    /// where the consumer moved after its position fell below the log
    /// start (`info`, error "offset out of range"). Records below it were
    /// deleted by retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_start: Option<i64>,
    /// Replica-read `ok`: every record the replica holds, in offset order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<KeyedRecord>,
}

impl Op {
    /// An op with every optional field empty.
    pub fn new(index: u64, time_us: u64, process: u64, kind: OpKind, f: OpF) -> Op {
        Op {
            index,
            time_us,
            process,
            kind,
            f,
            key: None,
            value: None,
            tombstone: false,
            partition: None,
            offset: None,
            node: None,
            reads: Vec::new(),
            error: None,
            fault: None,
            positions: None,
            log_start: None,
            records: Vec::new(),
        }
    }

    pub fn is_invoke(&self) -> bool {
        self.kind == OpKind::Invoke
    }
}

/// Reading or writing a history file failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history {path}: {verb} failed: {source}")]
    Io {
        path: PathBuf,
        verb: IoVerb,
        #[source]
        source: std::io::Error,
    },
    #[error("history {path} line {line}: not an op: {source}")]
    Parse {
        path: PathBuf,
        line: u64,
        #[source]
        source: serde_json::Error,
    },
}

/// What a failed history I/O was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoVerb {
    Open,
    Read,
    Create,
    Write,
    Flush,
}

impl std::fmt::Display for IoVerb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = match self {
            IoVerb::Open => "open",
            IoVerb::Read => "read",
            IoVerb::Create => "create",
            IoVerb::Write => "write",
            IoVerb::Flush => "flush",
        };
        f.write_str(verb)
    }
}

/// A whole history in memory, in history order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    pub fn new(ops: Vec<Op>) -> History {
        History { ops }
    }

    /// Reads a JSON-lines history; blank lines are skipped.
    pub fn read_jsonl(path: &Path) -> Result<History, HistoryError> {
        let io_err = |verb, source| HistoryError::Io {
            path: path.to_path_buf(),
            verb,
            source,
        };
        let file = File::open(path).map_err(|e| io_err(IoVerb::Open, e))?;
        let mut ops = Vec::new();
        for (line_no, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| io_err(IoVerb::Read, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let op = serde_json::from_str(&line).map_err(|source| HistoryError::Parse {
                path: path.to_path_buf(),
                line: line_no as u64 + 1,
                source,
            })?;
            ops.push(op);
        }
        Ok(History { ops })
    }

    /// Writes the history as JSON lines, replacing the file.
    pub fn write_jsonl(&self, path: &Path) -> Result<(), HistoryError> {
        let mut writer = HistoryWriter::create(path)?;
        for op in &self.ops {
            writer.append(op)?;
        }
        writer.flush()
    }

    /// The time of the last op, or 0 for an empty history.
    pub fn end_us(&self) -> u64 {
        self.ops.iter().map(|op| op.time_us).max().unwrap_or(0)
    }
}

/// Appends ops to a history file as they happen. Buffered: call [`HistoryWriter::flush`] at
/// checkpoints and at the end (dropping the writer flushes too, but ignores errors).
#[derive(Debug)]
pub struct HistoryWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl HistoryWriter {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> Result<HistoryWriter, HistoryError> {
        let file = File::create(path).map_err(|source| HistoryError::Io {
            path: path.to_path_buf(),
            verb: IoVerb::Create,
            source,
        })?;
        Ok(HistoryWriter {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        })
    }

    pub fn append(&mut self, op: &Op) -> Result<(), HistoryError> {
        let io_err = |source| HistoryError::Io {
            path: self.path.clone(),
            verb: IoVerb::Write,
            source,
        };
        serde_json::to_writer(&mut self.out, op).map_err(|e| io_err(e.into()))?;
        self.out.write_all(b"\n").map_err(io_err)
    }

    pub fn flush(&mut self) -> Result<(), HistoryError> {
        self.out.flush().map_err(|source| HistoryError::Io {
            path: self.path.clone(),
            verb: IoVerb::Flush,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HistoryBuilder;

    #[test]
    fn jsonl_round_trip_keeps_every_field() {
        let mut b = HistoryBuilder::new();
        b.send_ok(0, 1, 7, 3);
        b.send_fail(1, 2, 8);
        b.poll(1000, &[(1, 3, 1, 7)]);
        b.assign(1000, &[(1, 0), (2, 5)]);
        b.fault("partition [1] | [2,3]");
        b.heal("partition [1] | [2,3]");
        let mut history = b.build();
        history.ops[1].node = Some(2);
        history.ops[3].error = Some("timeout".into());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        history.write_jsonl(&path).unwrap();
        assert_eq!(History::read_jsonl(&path).unwrap(), history);
    }

    #[test]
    fn wire_format_uses_type_and_omits_empty_fields() {
        let mut op = Op::new(3, 10, 0, OpKind::Invoke, OpF::Send);
        op.key = Some(1);
        op.value = Some(9);
        let line = serde_json::to_string(&op).unwrap();
        assert_eq!(
            line,
            r#"{"index":3,"time_us":10,"process":0,"type":"invoke","f":"send","key":1,"value":9}"#
        );
        let positions = r#"{"index":0,"time_us":0,"process":1000,"type":"ok","f":"assign","positions":[[0,4]]}"#;
        let op: Op = serde_json::from_str(positions).unwrap();
        assert_eq!(op.positions, Some(vec![(0, 4)]));
    }

    #[test]
    fn parse_error_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let good = r#"{"index":0,"time_us":0,"process":0,"type":"invoke","f":"poll"}"#;
        std::fs::write(&path, format!("{good}\n\n{{\"index\":1}}\n")).unwrap();
        match History::read_jsonl(&path) {
            Err(HistoryError::Parse { line, .. }) => assert_eq!(line, 3),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn writer_appends_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let mut writer = HistoryWriter::create(&path).unwrap();
        writer
            .append(&Op::new(0, 0, 0, OpKind::Invoke, OpF::Poll))
            .unwrap();
        writer
            .append(&Op::new(1, 5, 0, OpKind::Ok, OpF::Poll))
            .unwrap();
        writer.flush().unwrap();
        assert_eq!(History::read_jsonl(&path).unwrap().ops.len(), 2);
    }
}
