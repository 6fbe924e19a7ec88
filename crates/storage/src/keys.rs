//! Key encoding: `[group_id: u64 BE][tag: u8][suffix]`.
//!
//! Every key of the store starts with the 8-byte big-endian group id, so all keys of one
//! group are contiguous and groups sort numerically. The tag byte picks the keyspace inside
//! the group; every tag is `< 0xFF`, so `[group][0xFF]` is an exclusive upper bound of a
//! group's whole keyspace (this works for [`NODE_GROUP`] too, without overflow).

use crate::GroupId;
#[cfg(doc)]
use crate::NODE_GROUP;

/// Committed log id of the group.
pub(crate) const TAG_COMMITTED: u8 = b'C';
/// Log entry; followed by the log index as u64 BE.
pub(crate) const TAG_LOG: u8 = b'L';
/// Last purged log id of the group.
pub(crate) const TAG_PURGED: u8 = b'P';
/// State-machine keyspace; followed by an opaque suffix.
pub(crate) const TAG_STATE: u8 = b'S';
/// Vote of the group.
pub(crate) const TAG_VOTE: u8 = b'V';
/// Larger than every tag: `[group][TAG_END]` bounds a group's keyspace.
const TAG_END: u8 = 0xFF;

/// Length of a log entry key: group + tag + index.
pub(crate) const LOG_KEY_LEN: usize = 8 + 1 + 8;

/// `[group][tag]`: the key of a single-valued group key (vote, purged, committed), and the
/// first key of a multi-valued keyspace (log, state).
pub(crate) fn tag_key(group: GroupId, tag: u8) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..8].copy_from_slice(&group.to_be_bytes());
    key[8] = tag;
    key
}

/// Exclusive upper bound of everything under `[group][tag]`.
pub(crate) fn tag_end(group: GroupId, tag: u8) -> [u8; 9] {
    debug_assert!(tag < TAG_END);
    tag_key(group, tag + 1)
}

/// First key of the group (inclusive).
pub(crate) fn group_start(group: GroupId) -> [u8; 8] {
    group.to_be_bytes()
}

/// Exclusive upper bound of the group's whole keyspace.
pub(crate) fn group_end(group: GroupId) -> [u8; 9] {
    tag_key(group, TAG_END)
}

/// Key of log entry `index` of `group`.
pub(crate) fn log_key(group: GroupId, index: u64) -> [u8; LOG_KEY_LEN] {
    let mut key = [0u8; LOG_KEY_LEN];
    key[..9].copy_from_slice(&tag_key(group, TAG_LOG));
    key[9..].copy_from_slice(&index.to_be_bytes());
    key
}

/// Exclusive upper bound of the group's log keyspace.
pub(crate) fn log_end(group: GroupId) -> [u8; 9] {
    tag_end(group, TAG_LOG)
}

/// Exclusive upper bound for log entries with index `< end`, or the end of the log keyspace
/// when `end` is `None` (unbounded).
pub(crate) fn log_upper_bound(group: GroupId, end: Option<u64>) -> Vec<u8> {
    match end {
        Some(end) => log_key(group, end).to_vec(),
        None => log_end(group).to_vec(),
    }
}

/// Key of state-machine entry `suffix` of `group`.
pub(crate) fn state_key(group: GroupId, suffix: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + suffix.len());
    key.extend_from_slice(&tag_key(group, TAG_STATE));
    key.extend_from_slice(suffix);
    key
}

/// Exclusive upper bound of the group's state keyspace.
pub(crate) fn state_end(group: GroupId) -> [u8; 9] {
    tag_end(group, TAG_STATE)
}

/// The group a key belongs to, if the key is long enough to have one.
pub(crate) fn group_of(key: &[u8]) -> Option<GroupId> {
    let bytes: [u8; 8] = key.get(..8)?.try_into().ok()?;
    Some(GroupId::from_be_bytes(bytes))
}

/// The log index of a log key of `group`; `None` if `key` is not such a key.
pub(crate) fn log_index_of(group: GroupId, key: &[u8]) -> Option<u64> {
    if key.len() != LOG_KEY_LEN || key[..9] != tag_key(group, TAG_LOG) {
        return None;
    }
    let bytes: [u8; 8] = key[9..].try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// The suffix of a state key of `group`; `None` if `key` is not such a key.
pub(crate) fn state_suffix_of(group: GroupId, key: &[u8]) -> Option<&[u8]> {
    key.strip_prefix(&tag_key(group, TAG_STATE)[..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NODE_GROUP;

    #[test]
    fn log_keys_sort_by_group_then_index() {
        let keys = [
            log_key(0, 0).to_vec(),
            log_key(0, 1).to_vec(),
            log_key(0, 256).to_vec(),
            log_key(0, u64::MAX).to_vec(),
            log_key(1, 0).to_vec(),
            log_key(NODE_GROUP - 1, 5).to_vec(),
        ];
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys);
    }

    #[test]
    fn tags_of_a_group_sit_between_group_bounds() {
        for group in [0, 1, 7, NODE_GROUP - 1, NODE_GROUP] {
            let start = group_start(group).to_vec();
            let end = group_end(group).to_vec();
            for key in [
                tag_key(group, TAG_COMMITTED).to_vec(),
                log_key(group, 0).to_vec(),
                log_key(group, u64::MAX).to_vec(),
                tag_key(group, TAG_PURGED).to_vec(),
                state_key(group, b""),
                state_key(group, &[0xFF; 32]),
                tag_key(group, TAG_VOTE).to_vec(),
            ] {
                assert!(start <= key && key < end, "group {group} key {key:?}");
            }
            if group != NODE_GROUP {
                assert!(end <= group_start(group + 1).to_vec());
            }
        }
    }

    #[test]
    fn log_and_state_ranges_do_not_overlap_other_tags() {
        let g = 42;
        assert!(log_key(g, u64::MAX).to_vec() < log_end(g).to_vec());
        assert!(log_end(g).to_vec() <= tag_key(g, TAG_PURGED).to_vec());
        assert!(tag_key(g, TAG_COMMITTED).to_vec() < log_key(g, 0).to_vec());
        assert!(state_key(g, &[0xFF; 64]) < state_end(g).to_vec());
        assert!(state_end(g).to_vec() <= tag_key(g, TAG_VOTE).to_vec());
    }

    #[test]
    fn parse_round_trips() {
        assert_eq!(log_index_of(9, &log_key(9, 1234)), Some(1234));
        assert_eq!(log_index_of(8, &log_key(9, 1234)), None);
        assert_eq!(log_index_of(9, &tag_key(9, TAG_LOG)), None);
        assert_eq!(group_of(&log_key(9, 1)), Some(9));
        assert_eq!(group_of(b"short"), None);
        assert_eq!(state_suffix_of(3, &state_key(3, b"abc")), Some(&b"abc"[..]));
        assert_eq!(state_suffix_of(4, &state_key(3, b"abc")), None);
    }
}
