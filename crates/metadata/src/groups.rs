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
///
/// Encoded in two shapes: in the Raft log (bincode, inside `PutGroup`) as it
/// always was, without `group_instance_id` (which `PutGroupWithInstances`
/// carries beside it); in the state snapshot (JSON) with it, when set.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// A static member's `group.instance.id` (KIP-345): it keeps its place
    /// (and assignment) across restarts, under a new member id each time.
    pub group_instance_id: Option<String>,
}

/// [`GroupMember`] as the Raft log stores it (bincode: fields by position,
/// never to change); [`GroupMember`]'s `Serialize` writes the same fields.
#[derive(Deserialize)]
struct StoredMember {
    member_id: String,
    client_id: String,
    client_host: String,
    session_timeout_ms: u32,
    rebalance_timeout_ms: u32,
    protocols: Vec<(String, Vec<u8>)>,
    assignment: Vec<u8>,
}

/// [`GroupMember`] in the state snapshot (JSON).
#[derive(Deserialize)]
struct SnapshotMember {
    #[serde(flatten)]
    stored: StoredMember,
    #[serde(default)]
    group_instance_id: Option<String>,
}

impl StoredMember {
    fn with_instance(self, group_instance_id: Option<String>) -> GroupMember {
        GroupMember {
            member_id: self.member_id,
            client_id: self.client_id,
            client_host: self.client_host,
            session_timeout_ms: self.session_timeout_ms,
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            protocols: self.protocols,
            assignment: self.assignment,
            group_instance_id,
        }
    }
}

impl Serialize for GroupMember {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let human = s.is_human_readable();
        let instance = self.group_instance_id.as_ref().filter(|_| human);
        let fields = 7 + usize::from(instance.is_some());
        let name = if human {
            "SnapshotMember"
        } else {
            "StoredMember"
        };
        let mut st = s.serialize_struct(name, fields)?;
        st.serialize_field("member_id", &self.member_id)?;
        st.serialize_field("client_id", &self.client_id)?;
        st.serialize_field("client_host", &self.client_host)?;
        st.serialize_field("session_timeout_ms", &self.session_timeout_ms)?;
        st.serialize_field("rebalance_timeout_ms", &self.rebalance_timeout_ms)?;
        st.serialize_field("protocols", &self.protocols)?;
        st.serialize_field("assignment", &self.assignment)?;
        if let Some(i) = instance {
            st.serialize_field("group_instance_id", i)?;
        }
        st.end()
    }
}

impl<'de> Deserialize<'de> for GroupMember {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let m = SnapshotMember::deserialize(d)?;
            Ok(m.stored.with_instance(m.group_instance_id))
        } else {
            Ok(StoredMember::deserialize(d)?.with_instance(None))
        }
    }
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
    /// A consumer-protocol member's commit names another epoch than the
    /// member is at (KIP-848: it retries with the epoch its heartbeat
    /// answers). Appended last.
    #[error("member {member:?} of group {group:?} is at epoch {current}, the request names {got}")]
    StaleMemberEpoch {
        group: String,
        member: String,
        current: i32,
        got: i32,
    },
}

/// Checks a commit against the stored membership: a consumer-protocol
/// group's while it has members (`modern`), else the classic one's.
pub fn check_commit(
    meta: Option<&GroupMeta>,
    modern: Option<&cairn_group::modern::ModernGroup>,
    c: &GroupCommit,
) -> Result<(), GroupError> {
    if let Some(g) = modern.filter(|g| !g.members.is_empty()) {
        let Some(got) = c.generation.filter(|e| *e >= 0) else {
            return Err(GroupError::NotEmpty {
                group: c.group.clone(),
                members: g.members.len(),
            });
        };
        let Some(m) = g.members.get(&c.member_id) else {
            return Err(GroupError::UnknownMember {
                group: c.group.clone(),
                member: c.member_id.clone(),
            });
        };
        if m.member_epoch != got {
            return Err(GroupError::StaleMemberEpoch {
                group: c.group.clone(),
                member: c.member_id.clone(),
                current: m.member_epoch,
                got,
            });
        }
        return Ok(());
    }
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

    #[test]
    fn golden_member_encodings_with_and_without_an_instance_id() {
        let mut m = GroupMember {
            member_id: "m".into(),
            client_id: "c".into(),
            client_host: "/h".into(),
            session_timeout_ms: 10,
            rebalance_timeout_ms: 20,
            protocols: vec![("range".into(), vec![1])],
            assignment: vec![2],
            group_instance_id: None,
        };
        // A dynamic member: the encoding from before static members.
        let golden = r#"{"member_id":"m","client_id":"c","client_host":"/h","session_timeout_ms":10,"rebalance_timeout_ms":20,"protocols":[["range",[1]]],"assignment":[2]}"#;
        assert_eq!(serde_json::to_string(&m).unwrap(), golden);
        assert_eq!(serde_json::from_str::<GroupMember>(golden).unwrap(), m);
        m.group_instance_id = Some("i-1".into());
        let golden = r#"{"member_id":"m","client_id":"c","client_host":"/h","session_timeout_ms":10,"rebalance_timeout_ms":20,"protocols":[["range",[1]]],"assignment":[2],"group_instance_id":"i-1"}"#;
        assert_eq!(serde_json::to_string(&m).unwrap(), golden);
        assert_eq!(serde_json::from_str::<GroupMember>(golden).unwrap(), m);
    }

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
                            group_instance_id: None,
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
        assert_eq!(check_commit(Some(&m), None, &commit(Some(3), "a")), Ok(()));
        assert!(matches!(
            check_commit(Some(&m), None, &commit(Some(2), "a")),
            Err(GroupError::IllegalGeneration { current: 3, .. })
        ));
        assert!(matches!(
            check_commit(Some(&m), None, &commit(Some(3), "zombie")),
            Err(GroupError::UnknownMember { .. })
        ));
        assert!(matches!(
            check_commit(Some(&m), None, &commit(None, "")),
            Err(GroupError::NotEmpty { members: 1, .. })
        ));
    }

    #[test]
    fn consumer_protocol_commits_are_fenced_by_member_epoch() {
        use cairn_group::modern::ModernGroup;
        use cairn_group::modern::ModernMember;
        let mut g = ModernGroup::default();
        g.members.insert(
            "a".into(),
            ModernMember {
                member_id: "a".into(),
                member_epoch: 4,
                ..ModernMember::default()
            },
        );
        assert_eq!(check_commit(None, Some(&g), &commit(Some(4), "a")), Ok(()));
        assert!(matches!(
            check_commit(None, Some(&g), &commit(Some(3), "a")),
            Err(GroupError::StaleMemberEpoch {
                current: 4,
                got: 3,
                ..
            })
        ));
        assert!(matches!(
            check_commit(None, Some(&g), &commit(Some(4), "b")),
            Err(GroupError::UnknownMember { .. })
        ));
        assert!(matches!(
            check_commit(None, Some(&g), &commit(None, "")),
            Err(GroupError::NotEmpty { members: 1, .. })
        ));
        // Once empty, the classic rules (a tool may commit) apply again.
        g.members.clear();
        assert_eq!(check_commit(None, Some(&g), &commit(None, "")), Ok(()));
    }

    #[test]
    fn tools_commit_to_empty_or_unknown_groups_only() {
        assert_eq!(check_commit(None, None, &commit(None, "")), Ok(()));
        assert_eq!(
            check_commit(Some(&meta(5, &[])), None, &commit(None, "")),
            Ok(())
        );
        assert!(check_commit(None, None, &commit(Some(1), "a")).is_err());
    }
}
