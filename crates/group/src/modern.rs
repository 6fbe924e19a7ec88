//! The consumer group protocol of KIP-848 (Kafka clients'
//! `group.protocol=consumer`): the coordinator assigns partitions itself
//! and hands each member its share through the member's heartbeats.
//!
//! Everything here is a pure function of the group as stored, the
//! request and the topics; the broker's coordinator does the I/O around it
//! (stores the group after every change before it answers, keeps the
//! liveness — sessions, revocation deadlines — in memory).
//!
//! ```text
//!   group epoch      grows at every change of members, subscriptions or
//!                    the subscribed topics' partitions
//!   target           computed by the assignor for a group epoch; the
//!                    assignment epoch says which
//!   member epoch     reaches the assignment epoch once the member gave up
//!                    every partition the target takes from it; partitions
//!                    another member still owns are handed out only after
//!                    that member released them
//!
//!        target takes partitions                 member stops owning them
//!   Stable ─────────────────────► UnrevokedPartitions ──────────────────┐
//!     ▲  ▲ all released                                                 │
//!     │  └────────────── UnreleasedPartitions ◄── some still owned ─────┤
//!     └──────────────────────────── none owned by others ───────────────┘
//! ```
//!
//! A partition is owned by at most one member at any epoch: it is given to
//! a member only when no other member has it assigned or pending
//! revocation. Offset commits are fenced by member epoch (the metadata
//! group checks them at apply), so a member that lost a partition cannot
//! commit for it once it moved on.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

/// A topic, by the metadata group's topic id (a topic deleted and created
/// again under its name has a new one).
pub type TopicId = u64;

/// Partitions by topic.
pub type Partitions = BTreeMap<TopicId, BTreeSet<u32>>;

/// The epoch a member sends to leave the group.
pub const LEAVE_EPOCH: i32 = -1;
/// The epoch a static member sends to leave for a while (a restart): it
/// keeps its place and partitions until its session expires.
pub const STATIC_LEAVE_EPOCH: i32 = -2;
/// The server-side assignors, by the names Kafka gives them.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];
/// The assignor of a group whose members name none.
pub const DEFAULT_ASSIGNOR: &str = "uniform";

/// Where a member stands towards its target.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MemberState {
    /// It has what the target gives it, at the target's epoch.
    #[default]
    Stable,
    /// It must give up `pending_revocation` first (its epoch waits).
    UnrevokedPartitions,
    /// At the target's epoch, but some of its target is still owned by
    /// members that have not released it.
    UnreleasedPartitions,
}

/// One member, as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ModernMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub rebalance_timeout_ms: i32,
    /// Sorted, no duplicates.
    pub subscribed_topics: Vec<String>,
    /// A regular expression a topic's whole name must match.
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// What it owns now.
    pub assigned: Partitions,
    /// What it must give up before its epoch moves on.
    pub pending_revocation: Partitions,
    /// What the assignor gave it at the assignment epoch.
    pub target: Partitions,
}

/// A group of the consumer protocol, as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ModernGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// The partition counts of the subscribed topics the target was
    /// computed from: a change bumps the group epoch.
    pub subscribed_metadata: BTreeMap<TopicId, u32>,
    pub members: BTreeMap<String, ModernMember>,
}

/// A topic as the assignor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: TopicId,
    pub partitions: u32,
}

/// Every topic, by name.
pub type Topics = BTreeMap<String, TopicInfo>;

/// A ConsumerGroupHeartbeat, as the coordinator passes it. `None` fields
/// were not sent (unchanged since the last heartbeat).
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    /// Chosen by the client (v1), or by the coordinator for a v0 join.
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topics: Option<Vec<String>>,
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now.
    pub owned: Option<Partitions>,
    pub client_id: String,
    pub client_host: String,
}

/// What a heartbeat is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub member_id: String,
    pub member_epoch: i32,
    /// Sent to a full request (a join) or when it changed.
    pub assignment: Option<Partitions>,
    /// The member must give up partitions: its revocation deadline starts.
    pub revoking: bool,
    /// A static member took the place of this (departed) member id.
    pub replaced: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    UnknownMember(String),
    #[error("{0}")]
    FencedMemberEpoch(String),
    #[error("{0}")]
    UnreleasedInstanceId(String),
    #[error("{0}")]
    FencedInstanceId(String),
    #[error("{0}")]
    UnsupportedAssignor(String),
    #[error("{0}")]
    GroupMaxSizeReached(String),
    #[error("{0}")]
    InvalidRegularExpression(String),
}

/// Kafka's name of a group's state.
pub fn state_name(g: &ModernGroup) -> &'static str {
    if g.members.is_empty() {
        "Empty"
    } else if g.group_epoch > g.assignment_epoch {
        "Assigning"
    } else if g
        .members
        .values()
        .all(|m| m.member_epoch == g.assignment_epoch && m.state == MemberState::Stable)
    {
        "Stable"
    } else {
        "Reconciling"
    }
}

/// The assignor the group uses: the one most members name (ties: the
/// first by name), else [`DEFAULT_ASSIGNOR`].
pub fn group_assignor(g: &ModernGroup) -> &str {
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in g.members.values() {
        if let Some(a) = m.server_assignor.as_deref() {
            *votes.entry(a).or_default() += 1;
        }
    }
    let mut best: Option<(&str, usize)> = None;
    for (a, n) in votes {
        if best.is_none_or(|(_, b)| n > b) {
            best = Some((a, n));
        }
    }
    best.map_or(DEFAULT_ASSIGNOR, |(a, _)| a)
}

fn compile(regex: &str) -> Result<regex::Regex, HeartbeatError> {
    // Kafka matches a topic's whole name (Java's `Matcher.matches`).
    regex::Regex::new(&format!("^(?:{regex})$")).map_err(|e| {
        HeartbeatError::InvalidRegularExpression(format!(
            "invalid regular expression {regex:?}: {e}"
        ))
    })
}

/// The topics `m` subscribes to that exist.
pub fn subscribed(m: &ModernMember, topics: &Topics) -> BTreeSet<TopicId> {
    let re = m.subscribed_regex.as_deref().and_then(|r| compile(r).ok());
    topics
        .iter()
        .filter(|(name, _)| {
            m.subscribed_topics.binary_search(name).is_ok()
                || re.as_ref().is_some_and(|re| re.is_match(name))
        })
        .map(|(_, t)| t.id)
        .collect()
}

/// Handles one heartbeat: joins, leaves, subscription changes, and moves
/// the member towards its target.
pub fn heartbeat(
    g: &mut ModernGroup,
    hb: Heartbeat,
    topics: &Topics,
    max_members: usize,
) -> Result<Answer, HeartbeatError> {
    if hb.member_id.is_empty() {
        return Err(HeartbeatError::InvalidRequest(
            "MemberId can't be empty.".into(),
        ));
    }
    if hb.member_epoch == LEAVE_EPOCH || hb.member_epoch == STATIC_LEAVE_EPOCH {
        return leave(g, &hb, topics);
    }
    if hb.member_epoch < 0 {
        return Err(HeartbeatError::InvalidRequest(format!(
            "member epoch {} is not a valid one",
            hb.member_epoch
        )));
    }
    if let Some(a) = hb.server_assignor.as_deref() {
        if !ASSIGNORS.contains(&a) {
            return Err(HeartbeatError::UnsupportedAssignor(format!(
                "assignor {a:?} is not one of {ASSIGNORS:?}"
            )));
        }
    }
    if let Some(re) = hb.subscribed_regex.as_deref().filter(|r| !r.is_empty()) {
        compile(re)?;
    }
    let mut replaced = None;
    let mut changed = false;
    if hb.member_epoch == 0 {
        if hb.subscribed_topics.is_none() && hb.subscribed_regex.is_none() {
            return Err(HeartbeatError::InvalidRequest(
                "SubscribedTopicNames or SubscribedTopicRegex must be set when joining.".into(),
            ));
        }
        if hb
            .owned
            .as_ref()
            .is_some_and(|o| o.values().any(|p| !p.is_empty()))
        {
            return Err(HeartbeatError::InvalidRequest(
                "TopicPartitions must be empty when (re-)joining.".into(),
            ));
        }
        if let Some(instance) = hb.instance_id.as_deref() {
            if let Some(holder) = instance_holder(g, instance) {
                if holder != hb.member_id {
                    let holder = holder.to_owned();
                    if g.members[&holder].member_epoch != STATIC_LEAVE_EPOCH {
                        return Err(HeartbeatError::UnreleasedInstanceId(format!(
                            "static member {instance} is still member {holder}; it must leave first"
                        )));
                    }
                    // A static member back after a restart: it takes its
                    // old place and partitions, nobody else moves.
                    let mut m = g.members.remove(&holder).expect("the holder");
                    m.member_id = hb.member_id.clone();
                    m.member_epoch = 0;
                    m.previous_member_epoch = 0;
                    m.state = MemberState::Stable;
                    g.members.insert(hb.member_id.clone(), m);
                    replaced = Some(holder);
                }
            }
        }
        if !g.members.contains_key(&hb.member_id) {
            if g.members.len() >= max_members {
                return Err(HeartbeatError::GroupMaxSizeReached(format!(
                    "the group has reached its maximum of {max_members} members"
                )));
            }
            g.members.insert(
                hb.member_id.clone(),
                ModernMember {
                    member_id: hb.member_id.clone(),
                    instance_id: hb.instance_id.clone(),
                    ..ModernMember::default()
                },
            );
            changed = true;
        }
    } else {
        let Some(m) = g.members.get(&hb.member_id) else {
            return Err(HeartbeatError::UnknownMember(format!(
                "member {} is not in the group",
                hb.member_id
            )));
        };
        if let Some(instance) = hb.instance_id.as_deref() {
            if m.instance_id.as_deref() != Some(instance) {
                return Err(HeartbeatError::FencedInstanceId(format!(
                    "member {} is not static member {instance}",
                    hb.member_id
                )));
            }
        }
        let fenced = || {
            HeartbeatError::FencedMemberEpoch(format!(
                "member {} is at epoch {}, the request names {}",
                hb.member_id, m.member_epoch, hb.member_epoch
            ))
        };
        if hb.member_epoch > m.member_epoch {
            return Err(fenced());
        }
        if hb.member_epoch < m.member_epoch {
            // The answer that moved it on was lost: it may go on if it
            // owns nothing it was not given.
            let subset = hb.owned.as_ref().is_some_and(|o| {
                o.iter().all(|(t, ps)| {
                    ps.is_empty() || m.assigned.get(t).is_some_and(|a| ps.is_subset(a))
                })
            });
            if hb.member_epoch != m.previous_member_epoch || !subset {
                return Err(fenced());
            }
        }
    }
    let m = g.members.get_mut(&hb.member_id).expect("the member");
    if let Some(mut t) = hb.subscribed_topics.clone() {
        t.sort();
        t.dedup();
        if t != m.subscribed_topics {
            m.subscribed_topics = t;
            changed = true;
        }
    }
    if let Some(re) = hb.subscribed_regex.clone() {
        let re = (!re.is_empty()).then_some(re);
        if re != m.subscribed_regex {
            m.subscribed_regex = re;
            changed = true;
        }
    }
    if let Some(a) = hb.server_assignor.clone() {
        if m.server_assignor.as_ref() != Some(&a) {
            m.server_assignor = Some(a);
            changed = true;
        }
    }
    if hb.rebalance_timeout_ms > 0 {
        m.rebalance_timeout_ms = hb.rebalance_timeout_ms;
    }
    if hb.rack_id.is_some() {
        m.rack_id = hb.rack_id.clone();
    }
    if hb.instance_id.is_some() {
        m.instance_id = hb.instance_id.clone();
    }
    m.client_id = hb.client_id.clone();
    m.client_host = hb.client_host.clone();
    refresh(g, topics, changed);
    let before = g.members[&hb.member_id].assigned.clone();
    let revoking = reconcile(g, &hb.member_id, hb.owned.as_ref());
    let m = &g.members[&hb.member_id];
    let full = hb.member_epoch == 0
        || (hb.rebalance_timeout_ms != -1
            && (hb.subscribed_topics.is_some() || hb.subscribed_regex.is_some())
            && hb.owned.is_some());
    Ok(Answer {
        member_id: hb.member_id.clone(),
        member_epoch: m.member_epoch,
        assignment: (full || m.assigned != before).then(|| m.assigned.clone()),
        revoking,
        replaced,
    })
}

fn instance_holder<'a>(g: &'a ModernGroup, instance: &str) -> Option<&'a str> {
    g.members
        .values()
        .find(|m| m.instance_id.as_deref() == Some(instance))
        .map(|m| m.member_id.as_str())
}

fn leave(g: &mut ModernGroup, hb: &Heartbeat, topics: &Topics) -> Result<Answer, HeartbeatError> {
    let Some(m) = g.members.get_mut(&hb.member_id) else {
        return Err(HeartbeatError::UnknownMember(format!(
            "member {} is not in the group",
            hb.member_id
        )));
    };
    if hb.member_epoch == STATIC_LEAVE_EPOCH {
        if m.instance_id.is_none() {
            return Err(HeartbeatError::InvalidRequest(format!(
                "member {} is not a static member; it leaves with epoch -1",
                hb.member_id
            )));
        }
        // Its place and partitions wait for it until its session ends.
        m.member_epoch = STATIC_LEAVE_EPOCH;
    } else {
        remove_member(g, &hb.member_id, topics);
    }
    Ok(Answer {
        member_id: hb.member_id.clone(),
        member_epoch: hb.member_epoch,
        assignment: None,
        revoking: false,
        replaced: None,
    })
}

/// Removes a member (it left, its session expired, or it did not revoke
/// in time): its partitions are free for the others.
pub fn remove_member(g: &mut ModernGroup, member_id: &str, topics: &Topics) -> bool {
    if g.members.remove(member_id).is_none() {
        return false;
    }
    refresh(g, topics, true);
    true
}

/// Bumps the group epoch (once) if `changed` (members or subscriptions)
/// or the subscribed topics' partitions changed, and computes a new target
/// when the group epoch moved past it.
pub fn refresh(g: &mut ModernGroup, topics: &Topics, changed: bool) {
    let subs: BTreeMap<String, BTreeSet<TopicId>> = g
        .members
        .iter()
        .map(|(id, m)| (id.clone(), subscribed(m, topics)))
        .collect();
    let by_id: BTreeMap<TopicId, u32> = topics.values().map(|t| (t.id, t.partitions)).collect();
    let metadata: BTreeMap<TopicId, u32> = subs
        .values()
        .flatten()
        .filter_map(|t| Some((*t, *by_id.get(t)?)))
        .collect();
    if changed || metadata != g.subscribed_metadata {
        g.subscribed_metadata = metadata;
        g.group_epoch += 1;
    }
    if g.group_epoch <= g.assignment_epoch {
        return;
    }
    let members: BTreeMap<String, (BTreeSet<TopicId>, Partitions)> = g
        .members
        .iter()
        .map(|(id, m)| (id.clone(), (subs[id].clone(), m.target.clone())))
        .collect();
    let targets = match group_assignor(g) {
        "range" => range(&members, &g.subscribed_metadata),
        _ => uniform(&members, &g.subscribed_metadata),
    };
    for (id, m) in g.members.iter_mut() {
        m.target = targets.get(id).cloned().unwrap_or_default();
    }
    g.assignment_epoch = g.group_epoch;
}

fn owned_by_others(g: &ModernGroup, me: &str) -> BTreeSet<(TopicId, u32)> {
    g.members
        .values()
        .filter(|m| m.member_id != me)
        .flat_map(|m| {
            m.assigned
                .iter()
                .chain(&m.pending_revocation)
                .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
        })
        .collect()
}

fn flatten(p: &Partitions) -> BTreeSet<(TopicId, u32)> {
    p.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
        .collect()
}

fn nest(s: impl IntoIterator<Item = (TopicId, u32)>) -> Partitions {
    let mut out = Partitions::new();
    for (t, p) in s {
        out.entry(t).or_default().insert(p);
    }
    out
}

/// Moves member `id` towards its target; whether it must now revoke.
fn reconcile(g: &mut ModernGroup, id: &str, owned: Option<&Partitions>) -> bool {
    let epoch = g.assignment_epoch;
    let m = &g.members[id];
    match m.state {
        MemberState::Stable if m.member_epoch == epoch => return false,
        MemberState::UnrevokedPartitions => {
            let still_owns = owned.is_none_or(|o| {
                flatten(o)
                    .intersection(&flatten(&m.pending_revocation))
                    .next()
                    .is_some()
            });
            if still_owns {
                return false;
            }
        }
        _ => {}
    }
    let others = owned_by_others(g, id);
    let m = g.members.get_mut(id).expect("the member");
    m.pending_revocation.clear();
    let assigned = flatten(&m.assigned);
    let target = flatten(&m.target);
    let revoke: BTreeSet<_> = assigned.difference(&target).copied().collect();
    if !revoke.is_empty() {
        m.assigned = nest(assigned.intersection(&target).copied());
        m.pending_revocation = nest(revoke);
        m.state = MemberState::UnrevokedPartitions;
        return true;
    }
    let given: BTreeSet<_> = target
        .iter()
        .filter(|p| assigned.contains(p) || !others.contains(p))
        .copied()
        .collect();
    m.state = if given.len() == target.len() {
        MemberState::Stable
    } else {
        MemberState::UnreleasedPartitions
    };
    m.assigned = nest(given);
    if m.member_epoch != epoch {
        m.previous_member_epoch = m.member_epoch;
        m.member_epoch = epoch;
    }
    false
}

/// The `uniform` assignor: every partition of a subscribed topic to one
/// member subscribed to it, as evenly as the subscriptions allow, each
/// member keeping as much of its previous target as balance permits.
pub fn uniform(
    members: &BTreeMap<String, (BTreeSet<TopicId>, Partitions)>,
    topics: &BTreeMap<TopicId, u32>,
) -> BTreeMap<String, Partitions> {
    let all: Vec<(TopicId, u32)> = topics
        .iter()
        .filter(|(t, _)| members.values().any(|(s, _)| s.contains(t)))
        .flat_map(|(t, n)| (0..*n).map(move |p| (*t, p)))
        .collect();
    let active = members.values().filter(|(s, _)| !s.is_empty()).count();
    let mut out: BTreeMap<String, BTreeSet<(TopicId, u32)>> = members
        .keys()
        .map(|id| (id.clone(), BTreeSet::new()))
        .collect();
    if active == 0 {
        return BTreeMap::new();
    }
    let quota = all.len().div_ceil(active);
    let mut owner: BTreeMap<(TopicId, u32), String> = BTreeMap::new();
    // Stickiness: what each had, up to its share.
    for (id, (subs, previous)) in members {
        for tp in flatten(previous) {
            let exists = topics.get(&tp.0).is_some_and(|n| tp.1 < *n);
            if exists && subs.contains(&tp.0) && !owner.contains_key(&tp) && out[id].len() < quota {
                owner.insert(tp, id.clone());
                out.get_mut(id).expect("a member").insert(tp);
            }
        }
    }
    let least = |out: &BTreeMap<String, BTreeSet<(TopicId, u32)>>, t: TopicId| {
        members
            .iter()
            .filter(|(_, (s, _))| s.contains(&t))
            .map(|(id, _)| (out[id].len(), id.clone()))
            .min()
    };
    for tp in &all {
        if owner.contains_key(tp) {
            continue;
        }
        if let Some((_, id)) = least(&out, tp.0) {
            owner.insert(*tp, id.clone());
            out.get_mut(&id).expect("a member").insert(*tp);
        }
    }
    // Balance: a partition moves to a member with at least two fewer.
    // Every move lowers the sum of squared counts, so this ends.
    loop {
        let mut moved = false;
        for tp in &all {
            let Some(from) = owner.get(tp).cloned() else {
                continue;
            };
            let Some((n, to)) = least(&out, tp.0) else {
                continue;
            };
            if out[&from].len() > n + 1 {
                out.get_mut(&from).expect("a member").remove(tp);
                out.get_mut(&to).expect("a member").insert(*tp);
                owner.insert(*tp, to);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    out.into_iter().map(|(id, s)| (id, nest(s))).collect()
}

/// The `range` assignor: each topic's partitions in contiguous ranges
/// over its subscribers in member id order, the first ones one more when
/// they do not divide evenly (co-partitioned topics line up).
pub fn range(
    members: &BTreeMap<String, (BTreeSet<TopicId>, Partitions)>,
    topics: &BTreeMap<TopicId, u32>,
) -> BTreeMap<String, Partitions> {
    let mut out: BTreeMap<String, Partitions> = BTreeMap::new();
    for (t, n) in topics {
        let subs: Vec<&String> = members
            .iter()
            .filter(|(_, (s, _))| s.contains(t))
            .map(|(id, _)| id)
            .collect();
        if subs.is_empty() {
            continue;
        }
        let k = subs.len() as u32;
        let (per, extra) = (n / k, n % k);
        let mut start = 0;
        for (i, id) in subs.into_iter().enumerate() {
            let count = per + u32::from((i as u32) < extra);
            if count > 0 {
                out.entry(id.clone())
                    .or_default()
                    .insert(*t, (start..start + count).collect());
            }
            start += count;
        }
    }
    out
}

#[cfg(test)]
#[path = "modern_tests.rs"]
mod tests;
