//! The offset index: one small row per applied batch.

/// Key suffix prefix of index rows within the group's state keyspace.
pub(crate) const INDEX_PREFIX: u8 = b'o';
/// Key suffix of the state machine's own row.
pub(crate) const META_KEY: &[u8] = b"meta";

/// Where the batch(es) starting at an offset live in the Raft log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub base_offset: u64,
    pub raft_index: u64,
    pub record_count: u32,
    pub max_timestamp_ms: i64,
}

impl IndexEntry {
    pub(crate) fn key(base_offset: u64) -> [u8; 9] {
        let mut k = [0u8; 9];
        k[0] = INDEX_PREFIX;
        k[1..].copy_from_slice(&base_offset.to_be_bytes());
        k
    }

    pub(crate) fn encode_value(&self) -> [u8; 20] {
        let mut v = [0u8; 20];
        v[..8].copy_from_slice(&self.raft_index.to_be_bytes());
        v[8..12].copy_from_slice(&self.record_count.to_be_bytes());
        v[12..].copy_from_slice(&self.max_timestamp_ms.to_be_bytes());
        v
    }

    pub(crate) fn decode(key: &[u8], value: &[u8]) -> Option<IndexEntry> {
        if key.len() != 9 || key[0] != INDEX_PREFIX || value.len() != 20 {
            return None;
        }
        Some(IndexEntry {
            base_offset: u64::from_be_bytes(key[1..9].try_into().ok()?),
            raft_index: u64::from_be_bytes(value[..8].try_into().ok()?),
            record_count: u32::from_be_bytes(value[8..12].try_into().ok()?),
            max_timestamp_ms: i64::from_be_bytes(value[12..20].try_into().ok()?),
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
        };
        assert_eq!(
            IndexEntry::decode(&IndexEntry::key(300), &e.encode_value()),
            Some(e)
        );
        assert!(IndexEntry::key(255) < IndexEntry::key(256));
        assert_eq!(IndexEntry::decode(b"x", &e.encode_value()), None);
    }
}
