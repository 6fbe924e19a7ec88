//! Consumer groups as the metadata group stores them: the membership of the
//! current generation (written by the coordinator at every rebalance) and
//! the committed offsets, fenced by generation at apply time.
//!
//! The coordinator (the metadata leader) keeps the live part — heartbeats,
//! pending joins — in memory; what is stored here is what a new coordinator
//! needs to carry on after a failover without a rebalance, and what makes a
//! stale member's commit fail on every replica alike.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use crate::state::CommittedOffset;

/// Where a group's membership stands, as stored.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GroupPhase {
    /// No members.
    #[default]
    Empty,
    /// A generation was formed; the leader's assignment is not in yet.
    AwaitingSync,
    /// Every member has its assignment.
    Stable,
}

/// One member of a group's current generation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    /// The member's protocols (name, metadata), in its order of preference.
    pub protocols: Vec<(String, Vec<u8>)>,
    /// Empty until the leader's SyncGroup.
    pub assignment: Vec<u8>,
}

impl GroupMember {
    /// The member's metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> &[u8] {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.as_slice())
            .unwrap_or_default()
    }
}

/// A group's stored membership.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct GroupMeta {
    pub generation: i32,
    pub phase: GroupPhase,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    pub members: BTreeMap<String, GroupMember>,
}

/// One commit request of a batch: a member's (with its generation), or a
/// tool's (`generation` `None`: only while the group has no members).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct GroupCommit {
    pub group: String,
    pub generation: Option<i32>,
    pub member_id: String,
    pub offsets: Vec<(String, u32, CommittedOffset)>,
}

/// Why a commit (or a group change) was refused.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("group {group:?} is at generation {current}, the request names {got}")]
    IllegalGeneration {
        group: String,
        current: i32,
        got: i32,
    },
    #[error("member {member:?} is not in group {group:?}")]
    UnknownMember { group: String, member: String },
    #[error("group {group:?} has {members} active member(s); stop them first")]
    NotEmpty { group: String, members: usize },
    #[error("group {0:?} does not exist")]
    UnknownGroup(String),
}

/// Checks a commit against the stored membership.
pub fn check_commit(meta: Option<&GroupMeta>, c: &GroupCommit) -> Result<(), GroupError> {
    let members = meta.map_or(0, |m| m.members.len());
    match c.generation {
        None if members == 0 => Ok(()),
        None => Err(GroupError::NotEmpty {
            group: c.group.clone(),
            members,
        }),
        Some(got) => {
            let current = meta.map_or(0, |m| m.generation);
            if got != current {
                return Err(GroupError::IllegalGeneration {
                    group: c.group.clone(),
                    current,
                    got,
                });
            }
            if !meta.is_some_and(|m| m.members.contains_key(&c.member_id)) {
                return Err(GroupError::UnknownMember {
                    group: c.group.clone(),
                    member: c.member_id.clone(),
                });
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(generation: i32, members: &[&str]) -> GroupMeta {
        GroupMeta {
            generation,
            phase: GroupPhase::Stable,
            members: members
                .iter()
                .map(|m| {
                    (
                        m.to_string(),
                        GroupMember {
                            member_id: m.to_string(),
                            client_id: String::new(),
                            client_host: String::new(),
                            session_timeout_ms: 10_000,
                            rebalance_timeout_ms: 30_000,
                            protocols: vec![("range".into(), vec![1])],
                            assignment: vec![],
                        },
                    )
                })
                .collect(),
            ..GroupMeta::default()
        }
    }

    fn commit(generation: Option<i32>, member: &str) -> GroupCommit {
        GroupCommit {
            group: "g".into(),
            generation,
            member_id: member.into(),
            offsets: vec![],
        }
    }

    #[test]
    fn commits_are_fenced_by_generation_and_member() {
        let m = meta(3, &["a"]);
        assert_eq!(check_commit(Some(&m), &commit(Some(3), "a")), Ok(()));
        assert!(matches!(
            check_commit(Some(&m), &commit(Some(2), "a")),
            Err(GroupError::IllegalGeneration { current: 3, .. })
        ));
        assert!(matches!(
            check_commit(Some(&m), &commit(Some(3), "zombie")),
            Err(GroupError::UnknownMember { .. })
        ));
        assert!(matches!(
            check_commit(Some(&m), &commit(None, "")),
            Err(GroupError::NotEmpty { members: 1, .. })
        ));
    }

    #[test]
    fn tools_commit_to_empty_or_unknown_groups_only() {
        assert_eq!(check_commit(None, &commit(None, "")), Ok(()));
        assert_eq!(check_commit(Some(&meta(5, &[])), &commit(None, "")), Ok(()));
        assert!(check_commit(None, &commit(Some(1), "a")).is_err());
    }
}
