//! [`StateBatch`]: an atomic batch of state-machine writes over any number of groups.

use rocksdb::WriteBatch;

use crate::keys;
use crate::GroupId;

/// A batch of writes to groups' state-machine keyspaces (`[group]['S'][suffix]`), applied
/// atomically by [`crate::NodeStore::write`].
///
/// Suffixes are opaque to this crate. `NODE_GROUP`/`"format_version"` is reserved.
#[derive(Default)]
pub struct StateBatch {
    batch: WriteBatch,
    user_bytes: u64,
}

impl StateBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Set `suffix` of `group`'s state keyspace to `value`.
    pub fn put(&mut self, group: GroupId, suffix: &[u8], value: &[u8]) {
        let key = keys::state_key(group, suffix);
        self.user_bytes += (key.len() + value.len()) as u64;
        self.batch.put(key, value);
    }

    /// Remove `suffix` from `group`'s state keyspace.
    pub fn delete(&mut self, group: GroupId, suffix: &[u8]) {
        let key = keys::state_key(group, suffix);
        self.user_bytes += key.len() as u64;
        self.batch.delete(key);
    }

    /// Remove every suffix in `[from, to)` from `group`'s state keyspace (one range
    /// tombstone, whatever the number of keys).
    pub fn delete_range(&mut self, group: GroupId, from: &[u8], to: &[u8]) {
        let from = keys::state_key(group, from);
        let to = keys::state_key(group, to);
        self.user_bytes += (from.len() + to.len()) as u64;
        self.batch.delete_range(from, to);
    }

    /// Number of operations in the batch.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Key + value bytes handed to this batch (what [`crate::StoreStats::user_bytes_written`]
    /// counts for it).
    pub fn user_bytes(&self) -> u64 {
        self.user_bytes
    }

    pub(crate) fn into_parts(self) -> (WriteBatch, u64) {
        (self.batch, self.user_bytes)
    }
}

impl std::fmt::Debug for StateBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateBatch")
            .field("ops", &self.batch.len())
            .field("user_bytes", &self.user_bytes)
            .finish()
    }
}
