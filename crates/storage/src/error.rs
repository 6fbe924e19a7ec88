//! [`StorageError`]: what was touched (group + [`Subject`]), how ([`Verb`]), and why ([`Cause`]).

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::GroupId;

/// What an operation touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// Opening the store (path checks, RocksDB open, format version).
    Open,
    /// The log entry at this index.
    Log(u64),
    /// A range of log entries (scan, truncate, purge, group deletion).
    Logs,
    /// The group's vote.
    Vote,
    /// The group's last purged log id.
    Purged,
    /// The group's committed log id.
    Committed,
    /// The group's state-machine keyspace.
    State,
    /// The write-ahead log (fsync).
    Wal,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Open => write!(f, "store"),
            Subject::Log(index) => write!(f, "log entry {index}"),
            Subject::Logs => write!(f, "log"),
            Subject::Vote => write!(f, "vote"),
            Subject::Purged => write!(f, "purged log id"),
            Subject::Committed => write!(f, "committed log id"),
            Subject::State => write!(f, "state"),
            Subject::Wal => write!(f, "WAL"),
        }
    }
}

/// How it was touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Read,
    Write,
    Sync,
    Encode,
    Decode,
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Verb::Read => "read",
            Verb::Write => "write",
            Verb::Sync => "sync",
            Verb::Encode => "encode",
            Verb::Decode => "decode",
        };
        f.write_str(s)
    }
}

/// Why it failed.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error("rocksdb: {0}")]
    RocksDb(#[from] rocksdb::Error),
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// Stored bytes are well-formed for RocksDB but wrong for Cairn (trailing bytes, an entry
    /// whose index differs from its key, a malformed key, ...).
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The path holds something that is not a Cairn store.
    #[error("{path} is not a Cairn store: {reason}")]
    NotAStore { path: PathBuf, reason: String },
    /// The store was written by an incompatible format version.
    #[error("store format version {found} is not supported (this build reads version {expected})")]
    FormatVersion { found: u32, expected: u32 },
    /// A WAL fsync failed. After the first failure the store is poisoned: every later sync
    /// reports the same error without retrying, because a retried fsync may falsely report
    /// success for data the kernel already dropped. Restart the process.
    #[error("WAL fsync failed{}: {error}", if *.poisoned { " earlier; store is poisoned" } else { "" })]
    WalSync {
        error: rocksdb::Error,
        poisoned: bool,
    },
    /// The group-commit syncer is gone (it only stops when the store is dropped or a
    /// completion callback panicked).
    #[error("the group-commit syncer has stopped")]
    SyncerStopped,
    /// A value to write encodes to more than [`crate::MAX_VALUE_BYTES`].
    #[error("value of {bytes} bytes exceeds the {max}-byte limit")]
    TooLarge { bytes: usize, max: usize },
    /// The caller asked for something this crate refuses to do.
    #[error("invalid request: {0}")]
    Invalid(&'static str),
}

/// An error of this crate: `{verb} {subject} of group {group}: {source}`.
#[derive(Debug, thiserror::Error)]
#[error("storage: {verb} {subject} of group {group} failed: {source}")]
pub struct StorageError {
    /// The Raft group whose keys were touched ([`crate::NODE_GROUP`] for node-level keys).
    pub group: GroupId,
    pub subject: Subject,
    pub verb: Verb,
    #[source]
    pub source: Cause,
}

impl StorageError {
    pub(crate) fn new(
        group: GroupId,
        subject: Subject,
        verb: Verb,
        source: impl Into<Cause>,
    ) -> Self {
        StorageError {
            group,
            subject,
            verb,
            source: source.into(),
        }
    }

    /// Whether the stored data could not be interpreted (as opposed to an I/O failure).
    pub fn is_corruption(&self) -> bool {
        matches!(self.source, Cause::Decode(_) | Cause::Corrupt(_))
    }
}

/// openraft's storage traits speak `io::Error`; the `StorageError` stays inside as the
/// error's payload, so nothing is lost (`get_ref()`/`into_inner()` + downcast recovers it).
impl From<StorageError> for io::Error {
    fn from(e: StorageError) -> Self {
        let kind = match &e.source {
            Cause::Io(inner) => inner.kind(),
            Cause::Decode(_) | Cause::Corrupt(_) => io::ErrorKind::InvalidData,
            Cause::Invalid(_) | Cause::TooLarge { .. } => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_group_subject_verb_and_cause() {
        let e = StorageError::new(
            7,
            Subject::Log(3),
            Verb::Decode,
            Cause::Corrupt("bad".into()),
        );
        assert_eq!(
            e.to_string(),
            "storage: decode log entry 3 of group 7 failed: corrupt data: bad"
        );
        assert!(e.is_corruption());
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::InvalidData);
        let back = io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<StorageError>())
            .map(|e| e.subject);
        assert_eq!(back, Some(Subject::Log(3)));
    }
}
