//! `cairn produce`: one record per stdin line.
//!
//! A reader thread reads lines (`\n` or `\r\n` stripped) into a bounded
//! channel; the sender collects them into a request of up to `--batch-size`
//! records or [`MAX_REQUEST_BYTES`], and sends it as soon as it is full or
//! stdin has nothing more ready. Requests are sent one at a time so that
//! records keep their line order within each partition. Failed lines are
//! reported by line number at the end, and make the command fail. If a
//! request still fails after the client's retry deadline (the cluster or a
//! partition is unavailable), the command stops reading stdin rather than
//! waiting out the deadline for every following request.

use std::io::{self, BufRead, BufReader};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use cairn_client::{Acks, Client, ClientError, OwnedRecord};
use tokio::sync::mpsc::{self, error::TryRecvError};

use crate::cli::ProduceArgs;
use crate::connect::client_config;

/// A request is sent once its records reach this many bytes (estimated),
/// which keeps batches below the server's default 1 MiB message limit.
pub const MAX_REQUEST_BYTES: usize = 900 * 1024;
/// Per-record overhead assumed in the size estimate.
const RECORD_OVERHEAD: usize = 24;
/// At most this many failure lines are printed.
const MAX_FAILURE_LINES: usize = 50;

/// How a line becomes a key and a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMode {
    /// No key.
    None,
    /// The same key for every record.
    Fixed(Bytes),
    /// Key and value split at the first occurrence of the separator.
    Separator(Vec<u8>),
}

impl KeyMode {
    /// The record for one line (without its newline).
    pub fn record(&self, line: Vec<u8>, partition: Option<u32>) -> Result<OwnedRecord, String> {
        let (key, value) = match self {
            KeyMode::None => (None, Bytes::from(line)),
            KeyMode::Fixed(k) => (Some(k.clone()), Bytes::from(line)),
            KeyMode::Separator(sep) => {
                let at = find(&line, sep).ok_or_else(|| "no key separator in line".to_owned())?;
                let line = Bytes::from(line);
                (Some(line.slice(..at)), line.slice(at + sep.len()..))
            }
        };
        Ok(OwnedRecord {
            partition,
            key,
            value: Some(value),
            ..Default::default()
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Removes a trailing `\n` or `\r\n`.
pub fn strip_newline(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

/// A line that was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFailure {
    /// 1-based line number.
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// Groups consecutive lines that failed for the same reason into
/// `line N: reason` / `lines N-M: reason`, at most `limit` of them (plus a
/// final "... and K more" line).
pub fn summarize_failures(failures: &[LineFailure], limit: usize) -> Vec<String> {
    let mut sorted: Vec<&LineFailure> = failures.iter().collect();
    sorted.sort_by_key(|f| f.line);
    let mut groups: Vec<(u64, u64, &str)> = Vec::new();
    for f in sorted {
        match groups.last_mut() {
            Some((_, end, reason)) if *end + 1 == f.line && *reason == f.reason => *end = f.line,
            _ => groups.push((f.line, f.line, &f.reason)),
        }
    }
    let mut out: Vec<String> = groups
        .iter()
        .take(limit)
        .map(|(start, end, reason)| {
            if start == end {
                format!("line {start}: {reason}")
            } else {
                format!("lines {start}-{end}: {reason}")
            }
        })
        .collect();
    if groups.len() > limit {
        out.push(format!("... and {} more", groups.len() - limit));
    }
    out
}

/// One line read from stdin.
type Line = io::Result<(u64, Vec<u8>)>;

/// Reads stdin on a plain thread (so that a blocked read never keeps the
/// runtime from shutting down).
fn spawn_reader() -> mpsc::Receiver<Line> {
    let (tx, rx) = mpsc::channel::<Line>(8192);
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(1 << 16, io::stdin().lock());
        let mut line_no = 0u64;
        loop {
            let mut buf = Vec::new();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    line_no += 1;
                    strip_newline(&mut buf);
                    if tx.blocking_send(Ok((line_no, buf))).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    rx
}

/// Records waiting to be sent, with their line numbers.
#[derive(Debug, Default)]
struct Pending {
    lines: Vec<u64>,
    records: Vec<OwnedRecord>,
    bytes: usize,
}

/// Running totals.
#[derive(Debug, Default)]
struct Totals {
    acked: u64,
    failures: Vec<LineFailure>,
    /// A request failed even after retrying until the deadline.
    gave_up: bool,
}

impl Totals {
    /// Marks `lines` as failed with `error`.
    fn fail(&mut self, lines: impl IntoIterator<Item = u64>, error: &ClientError, prefix: &str) {
        if matches!(error, ClientError::RetriesExhausted { .. }) {
            self.gave_up = true;
        }
        let reason = format!("{prefix}{error}");
        self.failures
            .extend(lines.into_iter().map(|line| LineFailure {
                line,
                reason: reason.clone(),
            }));
    }
}

async fn flush(
    client: &Client,
    topic: &str,
    acks: Acks,
    pending: &mut Pending,
    totals: &mut Totals,
) {
    if pending.records.is_empty() {
        return;
    }
    let batch = std::mem::take(pending);
    match client.produce_records(topic, &batch.records, acks).await {
        Ok(outcomes) => {
            for outcome in outcomes {
                match outcome.result {
                    Ok(_) => totals.acked += outcome.record_indices.len() as u64,
                    Err(e) => {
                        let lines = outcome
                            .record_indices
                            .iter()
                            .filter_map(|&i| batch.lines.get(i).copied());
                        totals.fail(lines, &e, &format!("partition {}: ", outcome.partition));
                    }
                }
            }
        }
        Err(e) => totals.fail(batch.lines.iter().copied(), &e, ""),
    }
}

/// Runs `cairn produce`.
pub async fn run(args: ProduceArgs) -> Result<()> {
    let mut config = client_config(&args.conn)?;
    config.compression = args.compression;
    let client = Client::connect_with(&args.conn.bootstrap, config)
        .await
        .with_context(|| format!("cannot connect to {}", args.conn.bootstrap.join(",")))?;
    // Fail fast (before reading stdin) if the topic does not exist.
    let partitions = client
        .partition_count(&args.topic)
        .await
        .with_context(|| format!("cannot produce to {}", args.topic))?;
    if let Some(p) = args.partition {
        if p >= partitions {
            bail!(
                "topic {} has {partitions} partitions; there is no partition {p}",
                args.topic
            );
        }
    }
    let mode = match (&args.key, &args.key_separator) {
        (Some(k), _) => KeyMode::Fixed(Bytes::from(k.clone().into_bytes())),
        (None, Some(sep)) => KeyMode::Separator(sep.clone().into_bytes()),
        (None, None) => KeyMode::None,
    };
    let batch_size = args.batch_size as usize;

    let mut lines = spawn_reader();
    let mut pending = Pending::default();
    let mut totals = Totals::default();
    let mut read_error = None;
    let mut total_lines = 0u64;
    loop {
        let item = if pending.records.is_empty() {
            lines.recv().await
        } else {
            match lines.try_recv() {
                Ok(item) => Some(item),
                Err(TryRecvError::Empty) => {
                    // Nothing more ready: send what we have.
                    flush(&client, &args.topic, args.acks, &mut pending, &mut totals).await;
                    if totals.gave_up {
                        break;
                    }
                    continue;
                }
                Err(TryRecvError::Disconnected) => None,
            }
        };
        let Some(item) = item else { break };
        let (line_no, line) = match item {
            Ok(l) => l,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        };
        total_lines = line_no;
        match mode.record(line, args.partition) {
            Ok(record) => {
                pending.bytes += record.key.as_ref().map_or(0, Bytes::len)
                    + record.value.as_ref().map_or(0, Bytes::len)
                    + RECORD_OVERHEAD;
                pending.lines.push(line_no);
                pending.records.push(record);
                if pending.records.len() >= batch_size || pending.bytes >= MAX_REQUEST_BYTES {
                    flush(&client, &args.topic, args.acks, &mut pending, &mut totals).await;
                }
                if totals.gave_up {
                    break;
                }
            }
            Err(reason) => totals.failures.push(LineFailure {
                line: line_no,
                reason,
            }),
        }
    }
    flush(&client, &args.topic, args.acks, &mut pending, &mut totals).await;

    for line in summarize_failures(&totals.failures, MAX_FAILURE_LINES) {
        eprintln!("failed: {line}");
    }
    if totals.gave_up {
        eprintln!("stopped after line {total_lines}: the cluster did not accept a request within the retry deadline; later lines were not read");
    }
    let verb = if args.acks == Acks::None {
        "sent (acks=0)"
    } else {
        "acknowledged"
    };
    eprintln!("{} records {verb}", totals.acked);
    if let Some(e) = read_error {
        return Err(e).context(format!("reading stdin after line {total_lines}"));
    }
    if totals.gave_up {
        bail!(
            "gave up after line {total_lines}: {} records acknowledged, {} failed, the rest not sent",
            totals.acked,
            totals.failures.len()
        );
    }
    if !totals.failures.is_empty() {
        bail!(
            "{} of {} records were not acknowledged",
            totals.failures.len(),
            totals.acked + totals.failures.len() as u64
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_the_line_ending() {
        for (input, expected) in [
            (&b"abc\n"[..], &b"abc"[..]),
            (b"abc\r\n", b"abc"),
            (b"abc", b"abc"),
            (b"\n", b""),
            (b"a\rb\n", b"a\rb"),
            (b"abc\r", b"abc\r"),
        ] {
            let mut v = input.to_vec();
            strip_newline(&mut v);
            assert_eq!(v, expected, "{input:?}");
        }
    }

    #[test]
    fn key_modes() {
        let r = KeyMode::None.record(b"v".to_vec(), None).unwrap();
        assert_eq!((r.key, r.value.as_deref()), (None, Some(&b"v"[..])));

        let r = KeyMode::Fixed(Bytes::from_static(b"k"))
            .record(b"v".to_vec(), Some(3))
            .unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.partition, Some(3));

        let sep = KeyMode::Separator(b"::".to_vec());
        let r = sep.record(b"user::a::b".to_vec(), None).unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"user"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"a::b"[..]));
        let r = sep.record(b"::".to_vec(), None).unwrap();
        assert_eq!(
            (r.key.as_deref(), r.value.as_deref()),
            (Some(&b""[..]), Some(&b""[..]))
        );
        assert!(sep.record(b"novalue".to_vec(), None).is_err());
    }

    #[test]
    fn only_exhausted_retries_stop_the_run() {
        let mut totals = Totals::default();
        let caller_fault = ClientError::Protocol("bad".into());
        totals.fail([1, 2], &caller_fault, "partition 0: ");
        assert!(!totals.gave_up);
        assert_eq!(totals.failures[1].line, 2);
        assert_eq!(
            totals.failures[1].reason,
            "partition 0: invalid response from server: bad"
        );
        let exhausted = ClientError::RetriesExhausted {
            attempts: 3,
            elapsed: std::time::Duration::from_secs(30),
            last: Box::new(caller_fault),
        };
        totals.fail([3], &exhausted, "");
        assert!(totals.gave_up);
    }

    #[test]
    fn failure_summary_groups_ranges() {
        let f = |line, reason: &str| LineFailure {
            line,
            reason: reason.into(),
        };
        let failures = vec![
            f(5, "x"),
            f(3, "x"),
            f(4, "x"),
            f(6, "y"),
            f(9, "y"),
            f(1, "z"),
        ];
        assert_eq!(
            summarize_failures(&failures, 10),
            vec!["line 1: z", "lines 3-5: x", "line 6: y", "line 9: y"]
        );
        assert_eq!(
            summarize_failures(&failures, 2),
            vec!["line 1: z", "lines 3-5: x", "... and 2 more"]
        );
        assert!(summarize_failures(&[], 5).is_empty());
    }
}
