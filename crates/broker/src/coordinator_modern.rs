//! The consumer group protocol of KIP-848 on the same coordinator as the
//! classic one: ConsumerGroupHeartbeat and ConsumerGroupDescribe.
//!
//! The decisions (joins, epochs, targets, who may own what) are
//! `cairn_group::modern`'s pure functions; here is the I/O around them:
//! the group is stored in the metadata group (`PutConsumerGroup`) after
//! every change and before the member is answered, so a new coordinator
//! carries on with the same epochs and assignments, and commits are fenced
//! by member epoch at apply. Liveness (when each member was last heard
//! from, how long a member has to revoke) is kept in memory, as the
//! classic groups' is; a new coordinator gives every member a full
//! session.

use std::collections::HashMap;

use cairn_group::modern;
use cairn_group::modern::Heartbeat;
use cairn_group::modern::MemberState;
use cairn_group::modern::ModernGroup;
use cairn_group::modern::Partitions;
use cairn_group::modern::TopicInfo;
use cairn_group::modern::Topics;
use cairn_metadata::MetaCommand;
use tokio::time::Instant;

use super::Coordinator;
use super::Groups;
use crate::error::ApiError;
use crate::node::Node;
use std::time::Duration;

/// A consumer-protocol group on its coordinator.
pub(crate) struct ModernLive {
    pub(crate) stored: ModernGroup,
    last_seen: HashMap<String, Instant>,
    /// Members that must revoke partitions, and by when (their rebalance
    /// timeout): a member that does not is removed.
    revoke_by: HashMap<String, Instant>,
}

impl ModernLive {
    pub(crate) fn from_stored(stored: ModernGroup, now: Instant) -> Self {
        let last_seen = stored.members.keys().map(|id| (id.clone(), now)).collect();
        ModernLive {
            stored,
            last_seen,
            revoke_by: HashMap::new(),
        }
    }
}

/// What a ConsumerGroupHeartbeat is answered.
#[derive(Debug, Clone)]
pub struct ConsumerHeartbeatAnswer {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's partitions, by topic id; `None`: unchanged.
    pub assignment: Option<Partitions>,
}

/// A consumer-protocol group as described.
#[derive(Debug, Clone)]
pub struct ConsumerGroupView {
    pub group: String,
    /// Kafka's state name: Empty, Assigning, Reconciling, Stable.
    pub state: String,
    pub assignor: String,
    pub meta: ModernGroup,
}

/// Every topic as the assignors see it.
pub(crate) fn topics_view(node: &Node) -> Topics {
    node.meta_view.read(|s| {
        s.topics
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    TopicInfo {
                        id: t.id,
                        partitions: t.partitions.len() as u32,
                    },
                )
            })
            .collect()
    })
}

fn view(name: &str, meta: ModernGroup) -> ConsumerGroupView {
    ConsumerGroupView {
        group: name.to_owned(),
        state: modern::state_name(&meta).to_owned(),
        assignor: modern::group_assignor(&meta).to_owned(),
        meta,
    }
}

impl Coordinator {
    async fn store_modern(&self, node: &Node, name: &str, g: &ModernGroup) -> Result<(), ApiError> {
        self.write(
            node,
            MetaCommand::PutConsumerGroup {
                group: name.to_owned(),
                meta: g.clone(),
            },
        )
        .await
        .map(|_| ())
    }

    /// One ConsumerGroupHeartbeat: a join (epoch 0), a leave (-1, or -2
    /// for a static member's restart), or a member reporting what it owns
    /// and learning its assignment.
    pub(crate) async fn consumer_heartbeat(
        &self,
        node: &Node,
        group: &str,
        hb: Heartbeat,
    ) -> Result<ConsumerHeartbeatAnswer, ApiError> {
        if group.is_empty() {
            return Err(ApiError::ConsumerGroup(
                modern::HeartbeatError::InvalidRequest("GroupId can't be empty.".into()),
            ));
        }
        let mut groups = self.lock(node).await?;
        if groups.map.get(group).is_some_and(|g| !g.members.is_empty()) {
            return Err(ApiError::WrongGroupType(format!(
                "group {group} is a classic group with members; it is not a consumer group"
            )));
        }
        let now = cairn_clock::now();
        let topics = topics_view(node);
        let l = self.limits;
        let live = groups.modern.entry(group.to_owned()).or_insert_with(|| {
            let stored = node
                .meta_view
                .read(|s| s.consumer_groups.get(group).cloned())
                .unwrap_or_default();
            ModernLive::from_stored(stored, now)
        });
        let before = live.stored.clone();
        let member_id = hb.member_id.clone();
        let epoch = hb.member_epoch;
        let answer = match modern::heartbeat(&mut live.stored, hb, &topics, l.consumer_max_size) {
            Ok(a) => a,
            Err(e) => {
                live.stored = before;
                return Err(ApiError::ConsumerGroup(e));
            }
        };
        if epoch == modern::LEAVE_EPOCH {
            live.last_seen.remove(&member_id);
            live.revoke_by.remove(&member_id);
            tracing::info!(group, member = %member_id, "consumer left");
        } else {
            live.last_seen.insert(member_id.clone(), now);
            if let Some(old) = &answer.replaced {
                live.last_seen.remove(old);
                live.revoke_by.remove(old);
                tracing::info!(group, old = %old, new = %member_id, "static consumer rejoined");
            }
            let revoking = live
                .stored
                .members
                .get(&member_id)
                .is_some_and(|m| m.state == MemberState::UnrevokedPartitions);
            if answer.revoking {
                let timeout = live
                    .stored
                    .members
                    .get(&member_id)
                    .map_or(0, |m| m.rebalance_timeout_ms);
                let timeout = Duration::from_millis(u64::try_from(timeout).unwrap_or(0))
                    .min(super::MAX_REBALANCE_TIMEOUT);
                live.revoke_by.insert(member_id.clone(), now + timeout);
            } else if !revoking {
                live.revoke_by.remove(&member_id);
            }
        }
        if live.stored != before {
            if before.group_epoch != live.stored.group_epoch {
                tracing::info!(
                    group,
                    group_epoch = live.stored.group_epoch,
                    members = live.stored.members.len(),
                    "consumer group epoch"
                );
            }
            let stored = live.stored.clone();
            if let Err(e) = self.store_modern(node, group, &stored).await {
                if let Some(live) = groups.modern.get_mut(group) {
                    live.stored = before;
                }
                return Err(e);
            }
        }
        Ok(ConsumerHeartbeatAnswer {
            member_id: answer.member_id,
            member_epoch: answer.member_epoch,
            heartbeat_interval_ms: i32::try_from(l.consumer_heartbeat_interval_ms)
                .unwrap_or(i32::MAX),
            assignment: answer.assignment,
        })
    }

    /// Removes consumer-protocol members whose session lapsed or that did
    /// not revoke in time; stores what changed.
    pub(super) async fn tick_modern(&self, node: &Node, groups: &mut Groups, now: Instant) {
        let session = Duration::from_millis(u64::from(self.limits.consumer_session_timeout_ms));
        let names: Vec<String> = groups.modern.keys().cloned().collect();
        let mut topics = None;
        for name in names {
            let Some(live) = groups.modern.get_mut(&name) else {
                continue;
            };
            let gone: Vec<(String, &'static str)> = live
                .stored
                .members
                .keys()
                .filter_map(|id| {
                    let lapsed = live
                        .last_seen
                        .get(id)
                        .is_none_or(|t| now.duration_since(*t) >= session);
                    let overdue = live.revoke_by.get(id).is_some_and(|d| now >= *d);
                    if lapsed {
                        Some((id.clone(), "session expired"))
                    } else if overdue {
                        Some((id.clone(), "did not revoke its partitions in time"))
                    } else {
                        None
                    }
                })
                .collect();
            if gone.is_empty() {
                if live.stored.members.is_empty() {
                    groups.modern.remove(&name);
                }
                continue;
            }
            let topics = topics.get_or_insert_with(|| topics_view(node));
            let before = live.stored.clone();
            for (id, why) in &gone {
                modern::remove_member(&mut live.stored, id, topics);
                live.last_seen.remove(id);
                live.revoke_by.remove(id);
                tracing::info!(group = %name, member = %id, why, "consumer removed");
            }
            let stored = live.stored.clone();
            if let Err(e) = self.store_modern(node, &name, &stored).await {
                tracing::warn!(group = %name, error = %e, "could not store the consumer group");
                if let Some(live) = groups.modern.get_mut(&name) {
                    live.stored = before;
                }
            }
        }
    }

    /// ConsumerGroupDescribe: a consumer-protocol group, or why not.
    pub(crate) async fn describe_consumer_group(
        &self,
        node: &Node,
        name: &str,
    ) -> Result<ConsumerGroupView, ApiError> {
        let groups = self.lock(node).await?;
        if let Some(live) = groups.modern.get(name) {
            return Ok(view(name, live.stored.clone()));
        }
        if let Some(stored) = node
            .meta_view
            .read(|s| s.consumer_groups.get(name).cloned())
        {
            return Ok(view(name, stored));
        }
        let classic = groups.map.contains_key(name)
            || node
                .meta_view
                .read(|s| s.group_names().iter().any(|n| n == name));
        if classic {
            return Err(ApiError::WrongGroupType(format!(
                "group {name} is not a consumer group"
            )));
        }
        Err(ApiError::UnknownGroup(name.to_owned()))
    }
}

impl Coordinator {
    /// OffsetFetch v9 naming a member: of a consumer-protocol group with
    /// members, it must be one at its current epoch.
    pub(crate) async fn check_fetch_member(
        &self,
        node: &Node,
        group: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), ApiError> {
        if member_id.is_empty() && member_epoch < 0 {
            return Ok(());
        }
        let groups = self.lock(node).await?;
        let Some(live) = groups
            .modern
            .get(group)
            .filter(|g| !g.stored.members.is_empty())
        else {
            return Ok(());
        };
        let Some(m) = live.stored.members.get(member_id) else {
            return Err(ApiError::UnknownMember(format!(
                "member {member_id} is not in group {group}"
            )));
        };
        if m.member_epoch != member_epoch {
            return Err(ApiError::StaleMemberEpoch(format!(
                "member {member_id} of group {group} is at epoch {}, the request names {member_epoch}",
                m.member_epoch
            )));
        }
        Ok(())
    }
}
