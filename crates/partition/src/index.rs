//! The offset index: one small row per applied batch.

/// Key suffix prefix of index rows within the group's state keyspace.
pub(crate) const INDEX_PREFIX: u8 = b'o';
/// Key suffix of the state machine's own row, first format (before retention).
pub(crate) const META_KEY_V1: &[u8] = b"meta";
/// Key suffix of the state machine's own row (with the retention fields and,
/// appended later in the same row, the producer clock).
pub(crate) const META_KEY: &[u8] = b"meta2";
/// Key suffix of the last snapshot (meta and bytes) as written before
/// snapshots were assembled on demand; deleted when found.
pub(crate) const SNAPSHOT_KEY: &[u8] = b"snapshot";
/// Key prefix of reject rows: `'r'` + Raft index (u64 BE) -> empty, one per
/// produce entry after the purge point that appended nothing (a producer
/// duplicate, out-of-order or fenced batch). A snapshot carries them so that
/// a replica installing it can number the retained batches from the entries
/// themselves (see `state_machine.rs`, `ReplaySnapshot`).
pub(crate) const REJECT_PREFIX: u8 = b'r';

/// The key of the reject row of Raft entry `raft_index`.
pub(crate) fn reject_key(raft_index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = REJECT_PREFIX;
    k[1..].copy_from_slice(&raft_index.to_be_bytes());
    k
}

/// Value length of index rows written before retention (no byte size).
const VALUE_LEN_V1: usize = 20;
/// Value length of index rows with the entry's byte size.
const VALUE_LEN: usize = 24;

/// Where the batch(es) starting at an offset live in the Raft log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub base_offset: u64,
    pub raft_index: u64,
    pub record_count: u32,
    pub max_timestamp_ms: i64,
    /// Bytes of record batches in the entry; `None` for rows written before
    /// the size was indexed (20-byte rows), read from the log when needed.
    pub bytes: Option<u32>,
}

impl IndexEntry {
    pub(crate) fn key(base_offset: u64) -> [u8; 9] {
        let mut k = [0u8; 9];
        k[0] = INDEX_PREFIX;
        k[1..].copy_from_slice(&base_offset.to_be_bytes());
        k
    }

    /// The row's value: 24 bytes, or the first format's 20 when the size is
    /// unknown (a row of an old entry carried over by a snapshot).
    pub(crate) fn encode_value(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(VALUE_LEN);
        v.extend_from_slice(&self.raft_index.to_be_bytes());
        v.extend_from_slice(&self.record_count.to_be_bytes());
        v.extend_from_slice(&self.max_timestamp_ms.to_be_bytes());
        if let Some(bytes) = self.bytes {
            v.extend_from_slice(&bytes.to_be_bytes());
        }
        v
    }

    pub(crate) fn decode(key: &[u8], value: &[u8]) -> Option<IndexEntry> {
        if key.len() != 9
            || key[0] != INDEX_PREFIX
            || (value.len() != VALUE_LEN_V1 && value.len() != VALUE_LEN)
        {
            return None;
        }
        let bytes = match value.get(20..24) {
            Some(b) => Some(u32::from_be_bytes(b.try_into().ok()?)),
            None => None,
        };
        Some(IndexEntry {
            base_offset: u64::from_be_bytes(key[1..9].try_into().ok()?),
            raft_index: u64::from_be_bytes(value[..8].try_into().ok()?),
            record_count: u32::from_be_bytes(value[8..12].try_into().ok()?),
            max_timestamp_ms: i64::from_be_bytes(value[12..20].try_into().ok()?),
            bytes,
        })
    }

    pub fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.record_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sorts_by_offset() {
        let e = IndexEntry {
            base_offset: 300,
            raft_index: 12,
            record_count: 7,
            max_timestamp_ms: -1,
            bytes: Some(4096),
        };
        assert_eq!(e.encode_value().len(), 24);
        assert_eq!(
            IndexEntry::decode(&IndexEntry::key(300), &e.encode_value()),
            Some(e)
        );
        // Rows of the first format (20 bytes) still decode, without a size.
        let old = IndexEntry { bytes: None, ..e };
        assert_eq!(old.encode_value().len(), 20);
        assert_eq!(
            IndexEntry::decode(&IndexEntry::key(300), &e.encode_value()[..20]),
            Some(old)
        );
        assert_eq!(IndexEntry::decode(&IndexEntry::key(300), &[0; 22]), None);
        assert!(IndexEntry::key(255) < IndexEntry::key(256));
        assert_eq!(IndexEntry::decode(b"x", &e.encode_value()), None);
    }
}
