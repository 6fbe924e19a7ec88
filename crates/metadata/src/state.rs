use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use crate::command::MetaCommand;
use crate::command::MetaError;
use crate::command::MetaResponse;
use crate::command::PartitionMove;
use crate::groups::check_commit;
use crate::groups::GroupCommit;
use crate::groups::GroupError;
use crate::groups::GroupMeta;
use crate::mirror::merge_security;
use crate::mirror::MirrorLink;
use crate::mirror::MirroredSecurity;
use crate::mirror::SecurityView;
use crate::mirror::SourceSecurity;

/// A node's id: unique in a cluster, chosen by the operator, never 0.
pub type NodeId = u64;

/// A Raft group's id. Group 0 is the metadata group; partitions get 1, 2, ...
pub type GroupId = u64;

/// The Raft group that replicates this state.
pub const METADATA_GROUP: GroupId = 0;

/// A node of the cluster and the addresses it advertises.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: NodeId,
    /// Internal RPC (Raft, heartbeats).
    pub rpc_addr: String,
    /// Client gRPC API.
    pub grpc_addr: String,
    pub admin_addr: String,
    pub kafka_addr: String,
    pub rack: Option<String>,
    /// The random id of the node's data dir. A registration under the same
    /// id from another data dir (a wiped disk) is refused: that node has
    /// lost the Raft logs its id still votes with. Empty: registered by a
    /// version without it (the next registration records it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub incarnation: String,
}

/// Where one partition lives: its Raft group and its replicas. The first
/// replica is the preferred leader, and the one that bootstraps the group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PartitionAssignment {
    pub partition: u32,
    pub group: GroupId,
    pub replicas: Vec<NodeId>,
    /// The replicas the group was created with: only these may bootstrap
    /// (initialize) the Raft group; replicas added later join it.
    #[serde(default)]
    pub bootstrap: Vec<NodeId>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    pub id: u64,
    pub name: String,
    pub replication_factor: u32,
    pub partitions: Vec<PartitionAssignment>,
    pub configs: BTreeMap<String, String>,
}

/// An access-control entry, as Kafka names its parts (`TOPIC`, `LITERAL`,
/// `READ`, `ALLOW`); `cairn-broker`'s `acl.rs` parses and enforces it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclEntry {
    pub principal: String,
    pub host: String,
    pub resource_type: String,
    pub resource_name: String,
    pub pattern_type: String,
    pub operation: String,
    pub permission: String,
}

/// A role: a named set of ACL bindings (their `principal` left empty) that
/// every member principal gets, checked by the same authorizer as direct
/// bindings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Role {
    pub acls: Vec<AclEntry>,
    /// Principals (`User:alice`) granted the role.
    pub members: BTreeSet<String>,
}

/// A user's SCRAM credential for one mechanism (RFC 5802): what the server
/// needs to check a login, never the password or anything that logs in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

/// A committed offset.
///
/// Encoded in two shapes: in the Raft log (bincode, inside `CommitOffsets`
/// and `CommitBatch`) as it always was, without `leader_epoch` (which
/// `CommitBatchWithEpochs` carries beside it); in the state snapshot (JSON)
/// with it, when set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub metadata: String,
    pub commit_time_ms: i64,
    /// The leader epoch of the record at `offset - 1` as the committing
    /// client saw it (Kafka's `committed_leader_epoch`, KIP-320); absent
    /// when the client sent none. Stored as sent, answered by OffsetFetch.
    pub leader_epoch: Option<i32>,
}

/// [`CommittedOffset`] as decoded from either shape (`leader_epoch` only
/// in JSON).
#[derive(Deserialize)]
struct StoredOffset {
    offset: i64,
    metadata: String,
    commit_time_ms: i64,
}

#[derive(Deserialize)]
struct SnapshotOffset {
    #[serde(flatten)]
    stored: StoredOffset,
    #[serde(default)]
    leader_epoch: Option<i32>,
}

impl StoredOffset {
    fn with_epoch(self, leader_epoch: Option<i32>) -> CommittedOffset {
        CommittedOffset {
            offset: self.offset,
            metadata: self.metadata,
            commit_time_ms: self.commit_time_ms,
            leader_epoch,
        }
    }
}

impl Serialize for CommittedOffset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let epoch = self.leader_epoch.filter(|_| s.is_human_readable());
        let name = if epoch.is_some() {
            "SnapshotOffset"
        } else {
            "StoredOffset"
        };
        let mut st = s.serialize_struct(name, 3 + usize::from(epoch.is_some()))?;
        st.serialize_field("offset", &self.offset)?;
        st.serialize_field("metadata", &self.metadata)?;
        st.serialize_field("commit_time_ms", &self.commit_time_ms)?;
        if let Some(e) = epoch {
            st.serialize_field("leader_epoch", &e)?;
        }
        st.end()
    }
}

impl<'de> Deserialize<'de> for CommittedOffset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let o = SnapshotOffset::deserialize(d)?;
            Ok(o.stored.with_epoch(o.leader_epoch))
        } else {
            Ok(StoredOffset::deserialize(d)?.with_epoch(None))
        }
    }
}

/// Everything the metadata group replicates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataState {
    pub cluster_id: Option<String>,
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    pub topics: BTreeMap<String, Topic>,
    pub next_topic_id: u64,
    pub next_group_id: GroupId,
    pub acls: Vec<AclEntry>,
    /// group -> topic -> partition -> committed offset.
    pub group_offsets: BTreeMap<String, BTreeMap<String, BTreeMap<u32, CommittedOffset>>>,
    /// Consumer groups' stored membership (see [`crate::GroupMeta`]).
    #[serde(default)]
    pub groups: BTreeMap<String, GroupMeta>,
    /// The next producer id `AllocateProducerIds` hands out.
    #[serde(default)]
    pub next_producer_id: i64,
    /// Nodes being decommissioned: still members, but no replica is placed
    /// on them any more.
    #[serde(default)]
    pub draining: BTreeSet<NodeId>,
    /// Ids of nodes removed from the cluster, never registered again: a
    /// node that comes back under a removed id (an old process, or a wiped
    /// disk) could otherwise vote in a group it has no log of.
    #[serde(default)]
    pub retired: BTreeSet<NodeId>,
    /// Users (SASL/SCRAM): name -> mechanism (`SCRAM-SHA-256`,
    /// `SCRAM-SHA-512`) -> credential.
    #[serde(default)]
    pub users: BTreeMap<String, BTreeMap<String, ScramCredential>>,
    /// Roles by name.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    /// Mirror links by name.
    #[serde(default)]
    pub mirror_links: BTreeMap<String, MirrorLink>,
    /// Topics that are read-only mirrors -> the link they mirror.
    #[serde(default)]
    pub mirror_topics: BTreeMap<String, String>,
    /// link -> the bindings, roles and users its security sync put here.
    #[serde(default)]
    pub mirrored_security: BTreeMap<String, MirroredSecurity>,
    /// Dynamic broker configs (`broker_configs.rs`): scope -> key -> value;
    /// the scope is a node id, or "" for the cluster-wide default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Consumer-protocol groups (KIP-848) by name; their offsets are in
    /// `group_offsets` like the classic groups'.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consumer_groups: BTreeMap<String, cairn_group::modern::ModernGroup>,
}

/// Where a new cluster's producer ids start: a range of 2^32 ids chosen by
/// the cluster id. A mirror copies the source's idempotent-producer state
/// with its batches (so that a producer failing over does not write a
/// mirrored batch twice); clusters that hand out the same ids would make a
/// new producer here look like a stale one of the source's. Two clusters
/// share a range with probability 2^-30.
pub fn producer_id_base(cluster_id: &str) -> i64 {
    // FNV-1a: stable across versions and platforms (not std's hasher).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in cluster_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (((h >> 34) as i64) + 1) << 32
}

impl MetadataState {
    /// A dynamic broker config as `node` reads it: its own value, else the
    /// cluster-wide one, with whether it is the node's own.
    pub fn broker_config(&self, node: NodeId, key: &str) -> Option<(&str, bool)> {
        let own = self
            .broker_configs
            .get(&node.to_string())
            .and_then(|c| c.get(key))
            .map(|v| (v.as_str(), true));
        own.or_else(|| {
            self.broker_configs
                .get("")
                .and_then(|c| c.get(key))
                .map(|v| (v.as_str(), false))
        })
    }

    fn security_view(&mut self) -> SecurityView<'_> {
        SecurityView {
            acls: &mut self.acls,
            roles: &mut self.roles,
            users: &mut self.users,
        }
    }

    /// Whether a `SyncMirrorSecurity` of `security` for `link` would change
    /// anything (the sync proposes only then).
    pub fn mirror_security_differs(&self, link: &str, security: &SourceSecurity) -> bool {
        let owned = self
            .mirrored_security
            .get(link)
            .cloned()
            .unwrap_or_default();
        let (mut acls, mut roles, mut users) =
            (self.acls.clone(), self.roles.clone(), self.users.clone());
        let view = SecurityView {
            acls: &mut acls,
            roles: &mut roles,
            users: &mut users,
        };
        let now = merge_security(view, &owned, security.clone());
        now != owned || acls != self.acls || roles != self.roles || users != self.users
    }

    /// Applies one command. Deterministic: depends only on `self` and `cmd`.
    pub fn apply(&mut self, cmd: MetaCommand) -> MetaResponse {
        match cmd {
            MetaCommand::InitCluster { cluster_id } => match &self.cluster_id {
                None => {
                    if self.next_producer_id == 0 {
                        self.next_producer_id = producer_id_base(&cluster_id);
                    }
                    self.cluster_id = Some(cluster_id);
                    MetaResponse::Ok
                }
                Some(existing) if *existing == cluster_id => MetaResponse::Ok,
                Some(existing) => MetaResponse::Error(MetaError::ClusterIdMismatch {
                    existing: existing.clone(),
                    proposed: cluster_id,
                }),
            },
            MetaCommand::RegisterNode(node) => {
                if self.retired.contains(&node.id) {
                    return MetaResponse::Error(MetaError::NodeRetired(node.id));
                }
                if let Some(why) = self.incarnation_conflict(&node) {
                    return MetaResponse::Error(MetaError::NodeInUse(why));
                }
                self.nodes.insert(node.id, node);
                MetaResponse::Ok
            }
            MetaCommand::CreateTopic {
                name,
                replication_factor,
                configs,
                assignment,
            } => self.create_topic(name, replication_factor, configs, assignment),
            MetaCommand::DeleteTopic { name } => match self.topics.remove(&name) {
                Some(_) => {
                    self.mirror_topics.remove(&name);
                    MetaResponse::Ok
                }
                None => MetaResponse::Error(MetaError::UnknownTopic(name)),
            },
            MetaCommand::ReassignPartition {
                topic,
                partition,
                replicas,
            } => self.reassign(topic, partition, replicas),
            MetaCommand::PutAcl(acl) => {
                if !self.acls.contains(&acl) {
                    self.acls.push(acl);
                    self.acls.sort();
                }
                MetaResponse::Ok
            }
            MetaCommand::DeleteAcl(acl) => {
                self.acls.retain(|a| *a != acl);
                MetaResponse::Ok
            }
            MetaCommand::AlterTopicConfig { name, set, delete } => {
                let Some(topic) = self.topics.get_mut(&name) else {
                    return MetaResponse::Error(MetaError::UnknownTopic(name));
                };
                match crate::config::alter_topic_configs(&topic.configs, &set, &delete) {
                    Ok(next) => {
                        topic.configs = next.clone();
                        MetaResponse::TopicConfigs(next)
                    }
                    Err(e) => MetaResponse::Error(MetaError::InvalidArgument(e.to_string())),
                }
            }
            MetaCommand::CommitOffsets { group, offsets } => {
                self.store_offsets(group, offsets);
                MetaResponse::Ok
            }
            MetaCommand::AlterBrokerConfigs { scope, set, delete } => {
                if !scope.is_empty() && scope.parse::<NodeId>().is_err() {
                    return MetaResponse::Error(MetaError::InvalidArgument(format!(
                        "broker config scope {scope:?} is neither a node id nor the cluster (\"\")"
                    )));
                }
                if let Some(e) = set
                    .iter()
                    .find_map(|(k, v)| crate::validate_broker_config(k, v).err())
                {
                    return MetaResponse::Error(MetaError::InvalidArgument(e));
                }
                let configs = self.broker_configs.entry(scope.clone()).or_default();
                for key in &delete {
                    configs.remove(key);
                }
                configs.extend(set);
                let now = configs.clone();
                if now.is_empty() {
                    self.broker_configs.remove(&scope);
                }
                MetaResponse::TopicConfigs(now)
            }
            MetaCommand::PutGroup { group, meta } => {
                self.groups.insert(group, meta);
                MetaResponse::Ok
            }
            MetaCommand::PutGroupWithInstances {
                group,
                mut meta,
                instances,
            } => {
                for (member, instance) in instances {
                    if let Some(m) = meta.members.get_mut(&member) {
                        m.group_instance_id = Some(instance);
                    }
                }
                self.groups.insert(group, meta);
                MetaResponse::Ok
            }
            MetaCommand::PutConsumerGroup { group, meta } => {
                self.consumer_groups.insert(group, meta);
                MetaResponse::Ok
            }
            MetaCommand::DeleteGroup { group } => {
                let members = self.groups.get(&group).map_or(0, |g| g.members.len())
                    + self
                        .consumer_groups
                        .get(&group)
                        .map_or(0, |g| g.members.len());
                if members > 0 {
                    return MetaResponse::GroupError(GroupError::NotEmpty { group, members });
                }
                let modern = self.consumer_groups.remove(&group).is_some();
                let known = self.groups.remove(&group).is_some() || modern;
                let had_offsets = self.group_offsets.remove(&group).is_some();
                if known || had_offsets {
                    MetaResponse::Ok
                } else {
                    MetaResponse::GroupError(GroupError::UnknownGroup(group))
                }
            }
            MetaCommand::CommitBatch(commits) => {
                let results = commits
                    .into_iter()
                    .map(|c| self.commit(c))
                    .collect::<Vec<_>>();
                MetaResponse::Commits(results)
            }
            MetaCommand::CommitBatchWithEpochs(commits) => {
                let results = commits
                    .into_iter()
                    .map(|(mut c, epochs)| {
                        for ((_, _, o), e) in c.offsets.iter_mut().zip(epochs) {
                            o.leader_epoch = e;
                        }
                        self.commit(c)
                    })
                    .collect::<Vec<_>>();
                MetaResponse::Commits(results)
            }
            MetaCommand::DeleteOffsets { group, partitions } => {
                let known =
                    self.groups.contains_key(&group) || self.consumer_groups.contains_key(&group);
                let Some(by_topic) = self.group_offsets.get_mut(&group) else {
                    return if known {
                        MetaResponse::Ok
                    } else {
                        MetaResponse::GroupError(GroupError::UnknownGroup(group))
                    };
                };
                for (topic, partition) in partitions {
                    if let Some(parts) = by_topic.get_mut(&topic) {
                        parts.remove(&partition);
                        if parts.is_empty() {
                            by_topic.remove(&topic);
                        }
                    }
                }
                if by_topic.is_empty() {
                    self.group_offsets.remove(&group);
                }
                MetaResponse::Ok
            }
            MetaCommand::AllocateProducerIds { count } => {
                let first = self.next_producer_id;
                self.next_producer_id = first.saturating_add(i64::from(count));
                MetaResponse::ProducerIds { first }
            }
            MetaCommand::CreatePartitions {
                name,
                count,
                assignment,
            } => self.create_partitions(name, count, assignment),
            MetaCommand::DecommissionNode { node, moves } => self.decommission(node, moves),
            MetaCommand::RemoveNode { node } => self.remove_node(node),
            MetaCommand::PutScramCredential {
                user,
                mechanism,
                credential,
            } => {
                if user.is_empty() {
                    return MetaResponse::Error(MetaError::InvalidArgument(
                        "the user name is empty".into(),
                    ));
                }
                self.users
                    .entry(user)
                    .or_default()
                    .insert(mechanism, credential);
                MetaResponse::Ok
            }
            MetaCommand::PutRoleAcls { role, acls } => {
                if role.is_empty() {
                    return MetaResponse::Error(MetaError::InvalidArgument(
                        "the role name is empty".into(),
                    ));
                }
                let r = self.roles.entry(role).or_default();
                for mut acl in acls {
                    acl.principal.clear();
                    if !r.acls.contains(&acl) {
                        r.acls.push(acl);
                    }
                }
                r.acls.sort();
                MetaResponse::Ok
            }
            MetaCommand::DeleteRoleAcls { role, acls } => {
                let Some(r) = self.roles.get_mut(&role) else {
                    return MetaResponse::Error(MetaError::UnknownRole(role));
                };
                r.acls.retain(|a| {
                    !acls.iter().any(|d| {
                        let mut d = d.clone();
                        d.principal.clear();
                        d == *a
                    })
                });
                MetaResponse::Ok
            }
            MetaCommand::DeleteRole { role } => match self.roles.remove(&role) {
                Some(_) => MetaResponse::Ok,
                None => MetaResponse::Error(MetaError::UnknownRole(role)),
            },
            MetaCommand::GrantRole { role, principal } => match self.roles.get_mut(&role) {
                Some(r) => {
                    r.members.insert(principal);
                    MetaResponse::Ok
                }
                None => MetaResponse::Error(MetaError::UnknownRole(role)),
            },
            MetaCommand::PutMirrorLink(link) => match link.validate() {
                Ok(()) => {
                    self.mirror_links.insert(link.name.clone(), link);
                    MetaResponse::Ok
                }
                Err(why) => MetaResponse::Error(MetaError::InvalidArgument(why)),
            },
            MetaCommand::DeleteMirrorLink { name } => {
                if !self.mirror_links.contains_key(&name) {
                    return MetaResponse::Error(MetaError::UnknownMirrorLink(name));
                }
                let topics: Vec<&String> = self
                    .mirror_topics
                    .iter()
                    .filter(|(_, l)| **l == name)
                    .map(|(t, _)| t)
                    .collect();
                if !topics.is_empty() {
                    return MetaResponse::Error(MetaError::MirrorLinkInUse(format!(
                        "mirror link {name:?} is still mirrored by {topics:?}: promote or delete them first"
                    )));
                }
                self.mirror_links.remove(&name);
                // What it copied stays, as this cluster's own.
                self.mirrored_security.remove(&name);
                MetaResponse::Ok
            }
            MetaCommand::SyncMirrorSecurity { link, security } => {
                if !self.mirror_links.contains_key(&link) {
                    return MetaResponse::Error(MetaError::UnknownMirrorLink(link));
                }
                let owned = self.mirrored_security.remove(&link).unwrap_or_default();
                let now = merge_security(self.security_view(), &owned, security);
                if now != MirroredSecurity::default() {
                    self.mirrored_security.insert(link, now);
                }
                MetaResponse::Ok
            }
            MetaCommand::CreateMirrorTopic {
                link,
                name,
                replication_factor,
                configs,
                assignment,
            } => {
                if !self.mirror_links.contains_key(&link) {
                    return MetaResponse::Error(MetaError::UnknownMirrorLink(link));
                }
                let created =
                    self.create_topic(name.clone(), replication_factor, configs, assignment);
                if matches!(created, MetaResponse::TopicCreated(_)) {
                    self.mirror_topics.insert(name, link);
                }
                created
            }
            MetaCommand::SetMirrorTopics { topics, link } => {
                if let Some(l) = &link {
                    if !self.mirror_links.contains_key(l) {
                        return MetaResponse::Error(MetaError::UnknownMirrorLink(l.clone()));
                    }
                }
                if let Some(t) = topics.iter().find(|t| !self.topics.contains_key(*t)) {
                    return MetaResponse::Error(MetaError::UnknownTopic(t.clone()));
                }
                for t in topics {
                    match &link {
                        Some(l) => self.mirror_topics.insert(t, l.clone()),
                        None => self.mirror_topics.remove(&t),
                    };
                }
                MetaResponse::Ok
            }
            MetaCommand::RevokeRole { role, principal } => match self.roles.get_mut(&role) {
                Some(r) => {
                    r.members.remove(&principal);
                    MetaResponse::Ok
                }
                None => MetaResponse::Error(MetaError::UnknownRole(role)),
            },
            MetaCommand::DeleteScramCredential { user, mechanism } => {
                let Some(creds) = self.users.get_mut(&user) else {
                    return MetaResponse::Error(MetaError::UnknownUser(user));
                };
                if creds.remove(&mechanism).is_none() {
                    return MetaResponse::Error(MetaError::UnknownUser(format!(
                        "{user} ({mechanism})"
                    )));
                }
                if creds.is_empty() {
                    self.users.remove(&user);
                }
                MetaResponse::Ok
            }
        }
    }

    /// Why `node` may not register (or join) under its id, if it may not:
    /// the id is registered from another data dir. Both incarnations must
    /// be known to tell.
    pub fn incarnation_conflict(&self, node: &NodeInfo) -> Option<String> {
        let known = self.nodes.get(&node.id)?;
        (!known.incarnation.is_empty()
            && !node.incarnation.is_empty()
            && known.incarnation != node.incarnation)
            .then(|| {
                format!(
                    "node id {} is registered with another data directory (incarnation {}, this one {}): a node that lost its data must not come back under its old id; decommission and remove node {} and start this one with a new --node-id",
                    node.id, known.incarnation, node.incarnation, node.id
                )
            })
    }

    /// Why replicas cannot be placed on `n`, if they cannot: it is not a
    /// registered node, or it is being decommissioned.
    /// Why node `n` cannot take a new replica, if it cannot (not in the
    /// cluster, or being decommissioned).
    pub fn unplaceable(&self, n: NodeId) -> Option<String> {
        if !self.nodes.contains_key(&n) {
            Some(format!("node {n} is not in the cluster"))
        } else if self.draining.contains(&n) {
            Some(format!("node {n} is being decommissioned"))
        } else {
            None
        }
    }

    /// The partitions whose replicas name `node`, as (topic, partition).
    pub fn partitions_on(&self, node: NodeId) -> Vec<(String, u32)> {
        self.topics
            .values()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.replicas.contains(&node))
                    .map(|p| (t.name.clone(), p.partition))
            })
            .collect()
    }

    fn decommission(&mut self, node: NodeId, moves: Vec<PartitionMove>) -> MetaResponse {
        let refuse = |m: String| MetaResponse::Error(MetaError::NodeInUse(m));
        if self.retired.contains(&node) {
            return MetaResponse::Error(MetaError::NodeRetired(node));
        }
        if !self.nodes.contains_key(&node) {
            return MetaResponse::Error(MetaError::UnknownNode(node));
        }
        let mut held = self.partitions_on(node);
        held.sort();
        let mut moved: Vec<(String, u32)> = moves
            .iter()
            .map(|m| (m.topic.clone(), m.partition))
            .collect();
        moved.sort();
        if held != moved {
            return refuse(format!(
                "the moves do not match the partitions on node {node} (the metadata changed since they were planned): on it {held:?}, moved {moved:?}"
            ));
        }
        for m in &moves {
            let mut distinct = m.replicas.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if m.replicas.is_empty() || distinct.len() != m.replicas.len() {
                return refuse(format!(
                    "{}/{}: replicas {:?} must be distinct, at least one",
                    m.topic, m.partition, m.replicas
                ));
            }
            if let Some(why) = m.replicas.iter().find_map(|n| {
                if *n == node {
                    Some(format!("node {n} is the one being decommissioned"))
                } else {
                    self.unplaceable(*n)
                }
            }) {
                return refuse(format!("{}/{}: {why}", m.topic, m.partition));
            }
        }
        for m in &moves {
            if let Some(p) = self
                .topics
                .get_mut(&m.topic)
                .and_then(|t| t.partitions.get_mut(m.partition as usize))
            {
                p.replicas = m.replicas.clone();
            }
        }
        self.draining.insert(node);
        MetaResponse::Moved(moves)
    }

    fn remove_node(&mut self, node: NodeId) -> MetaResponse {
        if self.retired.contains(&node) {
            return MetaResponse::Ok;
        }
        if !self.nodes.contains_key(&node) {
            return MetaResponse::Error(MetaError::UnknownNode(node));
        }
        if !self.draining.contains(&node) {
            return MetaResponse::Error(MetaError::NodeInUse(format!(
                "node {node} is not being decommissioned; decommission it first"
            )));
        }
        let held = self.partitions_on(node);
        if !held.is_empty() {
            return MetaResponse::Error(MetaError::NodeInUse(format!(
                "node {node} still holds {held:?}"
            )));
        }
        self.nodes.remove(&node);
        self.draining.remove(&node);
        self.retired.insert(node);
        MetaResponse::Ok
    }

    fn commit(&mut self, c: GroupCommit) -> Result<(), GroupError> {
        check_commit(
            self.groups.get(&c.group),
            self.consumer_groups.get(&c.group),
            &c,
        )?;
        self.store_offsets(c.group, c.offsets);
        Ok(())
    }

    fn store_offsets(&mut self, group: String, offsets: Vec<(String, u32, CommittedOffset)>) {
        let by_topic = self.group_offsets.entry(group).or_default();
        for (topic, partition, committed) in offsets {
            by_topic
                .entry(topic)
                .or_default()
                .insert(partition, committed);
        }
    }

    /// Every group known: with stored membership or committed offsets.
    pub fn group_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .groups
            .keys()
            .chain(self.consumer_groups.keys())
            .chain(self.group_offsets.keys())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn create_topic(
        &mut self,
        name: String,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
        assignment: Vec<Vec<NodeId>>,
    ) -> MetaResponse {
        if self.topics.contains_key(&name) {
            return MetaResponse::Error(MetaError::TopicExists(name));
        }
        if assignment.is_empty() {
            return MetaResponse::Error(MetaError::InvalidArgument(
                "a topic needs at least one partition".to_string(),
            ));
        }
        if let Some(why) = assignment
            .iter()
            .flatten()
            .find_map(|n| self.unplaceable(*n))
        {
            return MetaResponse::Error(MetaError::InvalidArgument(format!(
                "the assignment cannot be used: {why}"
            )));
        }
        self.next_topic_id += 1;
        let mut partitions = Vec::with_capacity(assignment.len());
        for (i, replicas) in assignment.into_iter().enumerate() {
            self.next_group_id += 1;
            partitions.push(PartitionAssignment {
                partition: i as u32,
                group: self.next_group_id,
                bootstrap: replicas.clone(),
                replicas,
            });
        }
        let topic = Topic {
            id: self.next_topic_id,
            name: name.clone(),
            replication_factor,
            partitions,
            configs,
        };
        self.topics.insert(name, topic.clone());
        MetaResponse::TopicCreated(topic)
    }

    /// How many partitions growing topic `name` to `count` adds: refused
    /// unless the topic exists and the count grows (partitions are never
    /// removed). The one check behind every way of adding partitions.
    pub fn partitions_to_add(&self, name: &str, count: u32) -> Result<u32, MetaError> {
        let topic = self
            .topics
            .get(name)
            .ok_or_else(|| MetaError::UnknownTopic(name.to_string()))?;
        let existing = topic.partitions.len() as u32;
        if count <= existing {
            return Err(MetaError::InvalidPartitions(format!(
                "topic {name:?} has {existing} partitions; the count can only grow, {count} does not"
            )));
        }
        Ok(count - existing)
    }

    /// Adds partitions `count - assignment.len()` .. `count` to a topic,
    /// each with a new Raft group (ids are never reused).
    fn create_partitions(
        &mut self,
        name: String,
        count: u32,
        assignment: Vec<Vec<NodeId>>,
    ) -> MetaResponse {
        let added = match self.partitions_to_add(&name, count) {
            Ok(n) => n as usize,
            Err(e) => return MetaResponse::Error(e),
        };
        if let Some(why) = assignment
            .iter()
            .flatten()
            .find_map(|n| self.unplaceable(*n))
        {
            return MetaResponse::Error(MetaError::InvalidArgument(format!(
                "the assignment cannot be used: {why}"
            )));
        }
        let Some(topic) = self.topics.get_mut(&name) else {
            return MetaResponse::Error(MetaError::UnknownTopic(name));
        };
        let existing = topic.partitions.len();
        if added != assignment.len() {
            return MetaResponse::Error(MetaError::InvalidPartitions(format!(
                "topic {name:?} has {existing} partitions: {} new ones make {}, not {count}",
                assignment.len(),
                existing + assignment.len()
            )));
        }
        for replicas in &assignment {
            let mut distinct = replicas.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if replicas.is_empty() || distinct.len() != replicas.len() {
                return MetaResponse::Error(MetaError::InvalidArgument(format!(
                    "replicas {replicas:?}: a partition needs distinct replicas, at least one"
                )));
            }
        }
        for (i, replicas) in assignment.into_iter().enumerate() {
            self.next_group_id += 1;
            topic.partitions.push(PartitionAssignment {
                partition: (existing + i) as u32,
                group: self.next_group_id,
                bootstrap: replicas.clone(),
                replicas,
            });
        }
        MetaResponse::TopicCreated(topic.clone())
    }

    fn reassign(&mut self, topic: String, partition: u32, replicas: Vec<NodeId>) -> MetaResponse {
        let invalid = |m: String| MetaResponse::Error(MetaError::InvalidArgument(m));
        if replicas.is_empty() {
            return invalid("a partition needs at least one replica".into());
        }
        let mut seen = replicas.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != replicas.len() {
            return invalid(format!("replicas {replicas:?} name a node twice"));
        }
        if let Some(why) = replicas.iter().find_map(|n| self.unplaceable(*n)) {
            return invalid(why);
        }
        let Some(t) = self.topics.get_mut(&topic) else {
            return MetaResponse::Error(MetaError::UnknownTopic(topic));
        };
        let count = t.partitions.len();
        let Some(p) = t.partitions.get_mut(partition as usize) else {
            return invalid(format!(
                "topic {topic:?} has {count} partitions; partition {partition} does not exist"
            ));
        };
        p.replicas = replicas;
        MetaResponse::Ok
    }

    /// The partition whose Raft group is `group`, with its topic.
    pub fn partition_by_group(&self, group: GroupId) -> Option<(&Topic, &PartitionAssignment)> {
        self.topics.values().find_map(|t| {
            t.partitions
                .iter()
                .find(|p| p.group == group)
                .map(|p| (t, p))
        })
    }

    /// New replicas for every partition on `node`, for decommissioning it:
    /// in each, `node` is replaced where it stands (so a preferred leader is
    /// replaced by the new preferred leader) by the candidate holding the
    /// fewest replicas, preferring racks the partition does not use yet;
    /// ties go to the lower id. `candidates` are the nodes that may take
    /// replicas (the proposer passes the live ones); `node`, draining and
    /// unregistered nodes among them are skipped. Deterministic.
    pub fn plan_drain(
        &self,
        node: NodeId,
        candidates: &[NodeId],
    ) -> Result<Vec<PartitionMove>, MetaError> {
        let mut load = self.replica_load();
        let rack = |n: NodeId| self.nodes.get(&n).and_then(|i| i.rack.clone());
        let usable: Vec<NodeId> = candidates
            .iter()
            .copied()
            .filter(|n| *n != node && self.unplaceable(*n).is_none())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut moves = Vec::new();
        for t in self.topics.values() {
            for p in t.partitions.iter().filter(|p| p.replicas.contains(&node)) {
                let racks: BTreeSet<Option<String>> = p
                    .replicas
                    .iter()
                    .filter(|r| **r != node)
                    .map(|r| rack(*r))
                    .collect();
                let best = usable
                    .iter()
                    .filter(|n| !p.replicas.contains(*n))
                    .min_by_key(|n| {
                        let reuse = rack(**n).is_some() && racks.contains(&rack(**n));
                        (reuse, load.get(*n).copied().unwrap_or(0), **n)
                    })
                    .copied()
                    .ok_or_else(|| {
                        MetaError::NodeInUse(format!(
                            "{}/{} has {} replicas and no other live node can take node {node}'s: add a node first",
                            t.name,
                            p.partition,
                            p.replicas.len()
                        ))
                    })?;
                *load.entry(best).or_default() += 1;
                moves.push(PartitionMove {
                    topic: t.name.clone(),
                    partition: p.partition,
                    replicas: p
                        .replicas
                        .iter()
                        .map(|r| if *r == node { best } else { *r })
                        .collect(),
                });
            }
        }
        Ok(moves)
    }

    /// Replica count per node, over every partition.
    pub fn replica_load(&self) -> BTreeMap<NodeId, usize> {
        let mut load: BTreeMap<NodeId, usize> = self.nodes.keys().map(|id| (*id, 0)).collect();
        for p in self.topics.values().flat_map(|t| &t.partitions) {
            for r in &p.replicas {
                *load.entry(*r).or_default() += 1;
            }
        }
        load
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: NodeId) -> NodeInfo {
        NodeInfo {
            id,
            rpc_addr: format!("127.0.0.1:{}", 50052 + id),
            grpc_addr: String::new(),
            admin_addr: String::new(),
            kafka_addr: String::new(),
            rack: None,
            incarnation: String::new(),
        }
    }

    #[test]
    fn create_then_duplicate_topic_is_rejected() {
        let mut s = MetadataState::default();
        s.apply(MetaCommand::RegisterNode(node(1)));
        let create = MetaCommand::CreateTopic {
            name: "t".into(),
            replication_factor: 1,
            configs: BTreeMap::new(),
            assignment: vec![vec![1], vec![1]],
        };
        let MetaResponse::TopicCreated(t) = s.apply(create.clone()) else {
            panic!("topic not created")
        };
        assert_eq!(t.partitions.len(), 2);
        assert_ne!(t.partitions[0].group, t.partitions[1].group);
        assert_eq!(
            s.apply(create),
            MetaResponse::Error(MetaError::TopicExists("t".into()))
        );
    }

    #[test]
    fn alter_topic_config_merges_validates_and_changes_nothing_on_error() {
        let mut s = MetadataState::default();
        s.apply(MetaCommand::RegisterNode(node(1)));
        s.apply(MetaCommand::CreateTopic {
            name: "t".into(),
            replication_factor: 1,
            configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            assignment: vec![vec![1]],
        });
        let alter = |set: &[(&str, &str)], delete: &[&str]| MetaCommand::AlterTopicConfig {
            name: "t".into(),
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            delete: delete.iter().map(|k| k.to_string()).collect(),
        };
        let expected = BTreeMap::from([("max.message.bytes".to_string(), "2048".to_string())]);
        assert_eq!(
            s.apply(alter(&[("max.message.bytes", "2048")], &["retention.ms"])),
            MetaResponse::TopicConfigs(expected.clone())
        );
        for bad in [
            alter(&[("no.such.key", "1")], &[]),
            alter(&[("retention.ms", "soon")], &[]),
            alter(&[], &["no.such.key"]),
        ] {
            assert!(matches!(
                s.apply(bad),
                MetaResponse::Error(MetaError::InvalidArgument(_))
            ));
        }
        assert_eq!(
            s.topics["t"].configs, expected,
            "a refused alter changes nothing"
        );
        assert_eq!(
            s.apply(MetaCommand::AlterTopicConfig {
                name: "missing".into(),
                set: BTreeMap::new(),
                delete: vec![],
            }),
            MetaResponse::Error(MetaError::UnknownTopic("missing".into()))
        );
    }

    #[test]
    fn commit_batches_are_fenced_one_by_one_and_groups_delete_when_empty() {
        use crate::groups::GroupMember;
        use crate::groups::GroupPhase;
        let mut s = MetadataState::default();
        let member = GroupMember {
            member_id: "m1".into(),
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocols: vec![("range".into(), vec![])],
            assignment: vec![],
            group_instance_id: None,
        };
        s.apply(MetaCommand::PutGroup {
            group: "g".into(),
            meta: GroupMeta {
                generation: 2,
                phase: GroupPhase::Stable,
                members: [("m1".to_string(), member)].into(),
                ..GroupMeta::default()
            },
        });
        let c = |generation: Option<i32>, member: &str, offset: i64| GroupCommit {
            group: "g".into(),
            generation,
            member_id: member.into(),
            offsets: vec![(
                "t".into(),
                0,
                CommittedOffset {
                    offset,
                    metadata: String::new(),
                    commit_time_ms: 0,
                    leader_epoch: None,
                },
            )],
        };
        let MetaResponse::Commits(results) = s.apply(MetaCommand::CommitBatch(vec![
            c(Some(2), "m1", 10),
            c(Some(1), "m1", 99),
            c(None, "", 98),
        ])) else {
            panic!("commit batch answers commits")
        };
        assert_eq!(results[0], Ok(()));
        assert!(matches!(
            results[1],
            Err(GroupError::IllegalGeneration { .. })
        ));
        assert!(matches!(results[2], Err(GroupError::NotEmpty { .. })));
        assert_eq!(s.group_offsets["g"]["t"][&0].offset, 10);
        assert!(matches!(
            s.apply(MetaCommand::DeleteGroup { group: "g".into() }),
            MetaResponse::GroupError(GroupError::NotEmpty { .. })
        ));
        s.apply(MetaCommand::PutGroup {
            group: "g".into(),
            meta: GroupMeta {
                generation: 3,
                ..GroupMeta::default()
            },
        });
        assert_eq!(
            s.apply(MetaCommand::DeleteGroup { group: "g".into() }),
            MetaResponse::Ok
        );
        assert!(!s.group_offsets.contains_key("g") && !s.groups.contains_key("g"));
        assert!(matches!(
            s.apply(MetaCommand::DeleteGroup { group: "g".into() }),
            MetaResponse::GroupError(GroupError::UnknownGroup(_))
        ));
    }

    #[test]
    fn delete_offsets_removes_only_the_named_partitions() {
        let mut s = MetadataState::default();
        let at = |offset| CommittedOffset {
            offset,
            metadata: String::new(),
            commit_time_ms: 0,
            leader_epoch: None,
        };
        s.apply(MetaCommand::CommitOffsets {
            group: "g".into(),
            offsets: vec![
                ("t".into(), 0, at(5)),
                ("t".into(), 1, at(6)),
                ("u".into(), 0, at(7)),
            ],
        });
        let delete = |partitions: Vec<(&str, u32)>| MetaCommand::DeleteOffsets {
            group: "g".into(),
            partitions: partitions
                .into_iter()
                .map(|(t, p)| (t.to_string(), p))
                .collect(),
        };
        assert_eq!(s.apply(delete(vec![("t", 0), ("v", 9)])), MetaResponse::Ok);
        assert!(!s.group_offsets["g"]["t"].contains_key(&0));
        assert_eq!(s.group_offsets["g"]["t"][&1].offset, 6);
        assert_eq!(s.apply(delete(vec![("t", 1), ("u", 0)])), MetaResponse::Ok);
        assert!(!s.group_offsets.contains_key("g"));
        assert!(matches!(
            s.apply(delete(vec![("t", 1)])),
            MetaResponse::GroupError(GroupError::UnknownGroup(_))
        ));
    }

    #[test]
    fn group_ids_are_never_reused_after_delete() {
        let mut s = MetadataState::default();
        s.apply(MetaCommand::RegisterNode(node(1)));
        let create = |n: &str| MetaCommand::CreateTopic {
            name: n.into(),
            replication_factor: 1,
            configs: BTreeMap::new(),
            assignment: vec![vec![1]],
        };
        s.apply(create("a"));
        let first = s.topics["a"].partitions[0].group;
        s.apply(MetaCommand::DeleteTopic { name: "a".into() });
        s.apply(create("a"));
        assert!(s.topics["a"].partitions[0].group > first);
    }

    #[test]
    fn create_partitions_only_grows_with_fresh_groups() {
        let mut s = MetadataState::default();
        s.apply(MetaCommand::RegisterNode(node(1)));
        s.apply(MetaCommand::RegisterNode(node(2)));
        s.apply(MetaCommand::CreateTopic {
            name: "t".into(),
            replication_factor: 1,
            configs: BTreeMap::new(),
            assignment: vec![vec![1], vec![2]],
        });
        // Another topic in between: group ids keep counting up across topics.
        s.apply(MetaCommand::CreateTopic {
            name: "u".into(),
            replication_factor: 1,
            configs: BTreeMap::new(),
            assignment: vec![vec![1]],
        });
        let add =
            |name: &str, count: u32, assignment: Vec<Vec<NodeId>>| MetaCommand::CreatePartitions {
                name: name.into(),
                count,
                assignment,
            };
        let MetaResponse::TopicCreated(t) =
            s.apply(add("t", 5, vec![vec![1, 2], vec![2, 1], vec![1]]))
        else {
            panic!("partitions not added")
        };
        assert_eq!(t.partitions.len(), 5);
        let used: Vec<GroupId> = s
            .topics
            .values()
            .flat_map(|t| t.partitions.iter().map(|p| p.group))
            .collect();
        let mut distinct = used.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            used.len(),
            "a group id used twice: {used:?}"
        );
        for (i, p) in t.partitions.iter().enumerate() {
            assert_eq!(p.partition, i as u32);
        }
        assert_eq!(t.partitions[2].replicas, vec![1, 2]);
        assert_eq!(t.partitions[2].bootstrap, vec![1, 2]);
        assert!(t.partitions[2].group > s.topics["u"].partitions[0].group);

        let before = s.clone();
        for (cmd, invalid_partitions) in [
            // Not growing: the same count, or fewer.
            (add("t", 5, vec![]), true),
            (add("t", 3, vec![]), true),
            // A proposal made when the topic had fewer partitions.
            (add("t", 6, vec![vec![1], vec![2]]), true),
            (add("t", 6, vec![vec![7]]), false),
            (add("t", 6, vec![vec![1, 1]]), false),
            (add("t", 6, vec![vec![]]), false),
        ] {
            match s.apply(cmd) {
                MetaResponse::Error(MetaError::InvalidPartitions(_)) => assert!(invalid_partitions),
                MetaResponse::Error(MetaError::InvalidArgument(_)) => assert!(!invalid_partitions),
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        assert_eq!(
            s.apply(add("missing", 2, vec![vec![1]])),
            MetaResponse::Error(MetaError::UnknownTopic("missing".into()))
        );
        assert_eq!(s, before, "a refused command changes nothing");
    }

    #[test]
    fn assignment_to_unknown_node_is_rejected() {
        let mut s = MetadataState::default();
        s.apply(MetaCommand::RegisterNode(node(1)));
        let r = s.apply(MetaCommand::CreateTopic {
            name: "t".into(),
            replication_factor: 1,
            configs: BTreeMap::new(),
            assignment: vec![vec![7]],
        });
        assert!(matches!(
            r,
            MetaResponse::Error(MetaError::InvalidArgument(_))
        ));
        assert!(s.topics.is_empty());
    }

    #[test]
    fn cluster_id_is_set_once() {
        let mut s = MetadataState::default();
        assert_eq!(
            s.apply(MetaCommand::InitCluster {
                cluster_id: "a".into()
            }),
            MetaResponse::Ok
        );
        assert!(matches!(
            s.apply(MetaCommand::InitCluster {
                cluster_id: "b".into()
            }),
            MetaResponse::Error(MetaError::ClusterIdMismatch { .. })
        ));
        assert_eq!(s.cluster_id.as_deref(), Some("a"));
    }

    #[test]
    fn dynamic_broker_configs_merge_per_scope_and_fall_back_to_the_cluster() {
        let mut s = MetadataState::default();
        let alter =
            |scope: &str, set: &[(&str, &str)], delete: &[&str]| MetaCommand::AlterBrokerConfigs {
                scope: scope.into(),
                set: set
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                delete: delete.iter().map(|k| k.to_string()).collect(),
            };
        s.apply(alter("", &[("log.retention.ms", "1000")], &[]));
        s.apply(alter("2", &[("log.retention.ms", "2000")], &[]));
        assert_eq!(
            s.broker_config(1, "log.retention.ms"),
            Some(("1000", false))
        );
        assert_eq!(s.broker_config(2, "log.retention.ms"), Some(("2000", true)));
        assert_eq!(s.broker_config(2, "message.max.bytes"), None);
        // All or nothing: a read-only config or a bad value changes nothing.
        for bad in [
            alter("", &[("broker.id", "3")], &[]),
            alter("", &[("log.retention.ms", "x")], &[]),
        ] {
            assert!(matches!(
                s.apply(bad),
                MetaResponse::Error(MetaError::InvalidArgument(_))
            ));
        }
        assert!(matches!(
            s.apply(alter("node-2", &[("log.retention.ms", "1")], &[])),
            MetaResponse::Error(MetaError::InvalidArgument(_))
        ));
        // Deleting the node's own value falls back to the cluster's; an
        // empty scope is dropped.
        s.apply(alter("2", &[], &["log.retention.ms"]));
        assert_eq!(
            s.broker_config(2, "log.retention.ms"),
            Some(("1000", false))
        );
        assert!(!s.broker_configs.contains_key("2"));
        // Encoded in the snapshot only when set.
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["broker_configs"][""]["log.retention.ms"], "1000");
        assert!(
            serde_json::to_value(MetadataState::default()).unwrap()["broker_configs"].is_null()
        );
    }

    #[test]
    fn committed_offsets_encode_their_leader_epoch_only_when_sent() {
        let mut c = CommittedOffset {
            offset: 42,
            metadata: "m".into(),
            commit_time_ms: 7,
            leader_epoch: None,
        };
        // Without an epoch: the encoding from before epochs were kept.
        let golden = r#"{"offset":42,"metadata":"m","commit_time_ms":7}"#;
        assert_eq!(serde_json::to_string(&c).unwrap(), golden);
        assert_eq!(serde_json::from_str::<CommittedOffset>(golden).unwrap(), c);
        c.leader_epoch = Some(5);
        let golden = r#"{"offset":42,"metadata":"m","commit_time_ms":7,"leader_epoch":5}"#;
        assert_eq!(serde_json::to_string(&c).unwrap(), golden);
        assert_eq!(serde_json::from_str::<CommittedOffset>(golden).unwrap(), c);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut s = MetadataState::default();
        s.apply(MetaCommand::RegisterNode(node(1)));
        s.apply(MetaCommand::CommitOffsets {
            group: "g".into(),
            offsets: vec![(
                "t".into(),
                3,
                CommittedOffset {
                    offset: 42,
                    metadata: String::new(),
                    commit_time_ms: 1,
                    leader_epoch: None,
                },
            )],
        });
        let json = serde_json::to_vec(&s).unwrap();
        let back: MetadataState = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn producer_id_blocks_never_overlap() {
        let mut s = MetadataState::default();
        let a = s.apply(MetaCommand::AllocateProducerIds { count: 100 });
        let b = s.apply(MetaCommand::AllocateProducerIds { count: 10 });
        assert_eq!(a, MetaResponse::ProducerIds { first: 0 });
        assert_eq!(b, MetaResponse::ProducerIds { first: 100 });
        // A new cluster starts at a base of its own, from its id.
        let mut c = MetadataState::default();
        c.apply(MetaCommand::InitCluster {
            cluster_id: "c1".into(),
        });
        let base = producer_id_base("c1");
        assert!(base >= 1 << 32 && base % (1 << 32) == 0, "{base}");
        assert_ne!(base, producer_id_base("c2"));
        assert_eq!(
            c.apply(MetaCommand::AllocateProducerIds { count: 5 }),
            MetaResponse::ProducerIds { first: base }
        );
        // A state saved before producer ids existed starts them at 0.
        let mut json: serde_json::Value = serde_json::to_value(&s).unwrap();
        json.as_object_mut().unwrap().remove("next_producer_id");
        let old: MetadataState = serde_json::from_value(json).unwrap();
        assert_eq!(old.next_producer_id, 0);
        assert_eq!(s.next_producer_id, 110);
    }

    /// Four nodes, a topic of RF 3 over 3 partitions on nodes 1..3.
    fn four_nodes_one_topic() -> MetadataState {
        let mut s = MetadataState::default();
        for n in 1..=4 {
            s.apply(MetaCommand::RegisterNode(node(n)));
        }
        s.apply(MetaCommand::CreateTopic {
            name: "t".into(),
            replication_factor: 3,
            configs: BTreeMap::new(),
            assignment: vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]],
        });
        s
    }

    #[test]
    fn decommission_moves_every_partition_off_and_blocks_new_placements() {
        let mut s = four_nodes_one_topic();
        let moves = s.plan_drain(2, &[1, 2, 3, 4]).unwrap();
        assert_eq!(moves.len(), 3);
        // Node 2 is replaced where it stood, by node 4, the only candidate.
        assert_eq!(moves[0].replicas, vec![1, 4, 3]);
        assert_eq!(moves[1].replicas, vec![4, 3, 1]);
        assert_eq!(
            s.apply(MetaCommand::DecommissionNode {
                node: 2,
                moves: moves.clone()
            }),
            MetaResponse::Moved(moves)
        );
        assert!(s.partitions_on(2).is_empty());
        assert!(s.draining.contains(&2));
        // No new replica lands on a draining node, whatever the way.
        let reassign = s.apply(MetaCommand::ReassignPartition {
            topic: "t".into(),
            partition: 0,
            replicas: vec![1, 2, 3],
        });
        assert!(
            matches!(&reassign, MetaResponse::Error(MetaError::InvalidArgument(m)) if m.contains("decommissioned")),
            "{reassign:?}"
        );
        let create = s.apply(MetaCommand::CreateTopic {
            name: "u".into(),
            replication_factor: 1,
            configs: BTreeMap::new(),
            assignment: vec![vec![2]],
        });
        assert!(matches!(create, MetaResponse::Error(_)), "{create:?}");
        let grow = s.apply(MetaCommand::CreatePartitions {
            name: "t".into(),
            count: 4,
            assignment: vec![vec![2, 1, 3]],
        });
        assert!(matches!(grow, MetaResponse::Error(_)), "{grow:?}");
        // Removal retires the id: it never registers again.
        assert_eq!(
            s.apply(MetaCommand::RemoveNode { node: 2 }),
            MetaResponse::Ok
        );
        assert!(!s.nodes.contains_key(&2));
        assert!(s.retired.contains(&2));
        assert_eq!(
            s.apply(MetaCommand::RegisterNode(node(2))),
            MetaResponse::Error(MetaError::NodeRetired(2))
        );
        assert!(!s.nodes.contains_key(&2));
        // Removing twice is answered Ok (a retried request).
        assert_eq!(
            s.apply(MetaCommand::RemoveNode { node: 2 }),
            MetaResponse::Ok
        );
    }

    #[test]
    fn decommission_with_stale_moves_or_bad_targets_changes_nothing() {
        let mut s = four_nodes_one_topic();
        let moves = s.plan_drain(2, &[1, 2, 3, 4]).unwrap();
        let before = s.clone();
        // A partition left out: planned before the metadata changed.
        let r = s.apply(MetaCommand::DecommissionNode {
            node: 2,
            moves: moves[..2].to_vec(),
        });
        assert!(
            matches!(r, MetaResponse::Error(MetaError::NodeInUse(_))),
            "{r:?}"
        );
        // A move onto the node itself, or onto an unknown node.
        for bad in [vec![1, 2, 3], vec![1, 9, 3], vec![1, 1, 3]] {
            let mut m = moves.clone();
            m[0].replicas = bad;
            let r = s.apply(MetaCommand::DecommissionNode { node: 2, moves: m });
            assert!(
                matches!(r, MetaResponse::Error(MetaError::NodeInUse(_))),
                "{r:?}"
            );
        }
        assert_eq!(s, before);
        // Removal needs a decommission first.
        let r = s.apply(MetaCommand::RemoveNode { node: 2 });
        assert!(
            matches!(r, MetaResponse::Error(MetaError::NodeInUse(_))),
            "{r:?}"
        );
        assert_eq!(s, before);
        assert_eq!(
            s.apply(MetaCommand::RemoveNode { node: 7 }),
            MetaResponse::Error(MetaError::UnknownNode(7))
        );
    }

    #[test]
    fn a_drain_needs_a_node_to_move_to() {
        let s = four_nodes_one_topic();
        // Node 4 is down (not a candidate): the RF3 partitions have nowhere to go.
        let r = s.plan_drain(2, &[1, 2, 3]);
        assert!(
            matches!(r, Err(MetaError::NodeInUse(ref m)) if m.contains("add a node")),
            "{r:?}"
        );
    }

    #[test]
    fn a_drain_spreads_replicas_by_load_and_rack() {
        let mut s = MetadataState::default();
        for n in 1..=5 {
            let mut info = node(n);
            info.rack = Some(if n <= 3 { format!("r{n}") } else { "r1".into() });
            s.apply(MetaCommand::RegisterNode(info));
        }
        s.apply(MetaCommand::CreateTopic {
            name: "t".into(),
            replication_factor: 2,
            configs: BTreeMap::new(),
            assignment: vec![vec![2, 3], vec![2, 1], vec![2, 5]],
        });
        let moves = s.plan_drain(2, &[1, 3, 4, 5]).unwrap();
        // {_,3}: every candidate but 3; 4 (rack r1, load 0) before 1 (load 1).
        assert_eq!(moves[0].replicas, vec![4, 3]);
        // {_,1}: 3 is on a rack the partition does not use (r3); 4 and 5 share r1 with 1.
        assert_eq!(moves[1].replicas, vec![3, 1]);
        // {_,5}: rack r1 taken by 5: node 3 (r3) is the only other rack.
        assert_eq!(moves[2].replicas, vec![3, 5]);
    }

    /// The stored (JSON) encodings of the node commands and state fields:
    /// log entries and snapshots written by this version must be read by
    /// every later one.
    #[test]
    fn golden_node_command_encodings() {
        let cases = [
            (
                MetaCommand::DecommissionNode {
                    node: 2,
                    moves: vec![PartitionMove {
                        topic: "t".into(),
                        partition: 0,
                        replicas: vec![1, 4, 3],
                    }],
                },
                r#"{"DecommissionNode":{"node":2,"moves":[{"topic":"t","partition":0,"replicas":[1,4,3]}]}}"#,
            ),
            (
                MetaCommand::RemoveNode { node: 2 },
                r#"{"RemoveNode":{"node":2}}"#,
            ),
        ];
        for (cmd, golden) in cases {
            assert_eq!(serde_json::to_string(&cmd).unwrap(), golden);
            assert_eq!(serde_json::from_str::<MetaCommand>(golden).unwrap(), cmd);
        }
        let mut s = MetadataState::default();
        s.draining.insert(3);
        s.retired.insert(2);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["draining"], serde_json::json!([3]));
        assert_eq!(v["retired"], serde_json::json!([2]));
        // A state saved before decommissioning existed has neither.
        let mut old = v.clone();
        old.as_object_mut().unwrap().remove("draining");
        old.as_object_mut().unwrap().remove("retired");
        let old: MetadataState = serde_json::from_value(old).unwrap();
        assert!(old.draining.is_empty() && old.retired.is_empty());
    }

    /// Measures a consumer-protocol group's stored size (ADR 0014): `cargo
    /// test -p cairn-metadata consumer_group_entry_size -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn consumer_group_entry_size() {
        use cairn_group::modern::ModernGroup;
        use cairn_group::modern::ModernMember;
        for (members, per) in [(10u32, 10u32), (100, 10), (1000, 10)] {
            let mut g = ModernGroup::default();
            for m in 0..members {
                let parts: BTreeSet<u32> = (m * per..(m + 1) * per).collect();
                let id = format!("{:032x}", u128::from(m) * 0x9e37_79b9_7f4a_7c15);
                g.members.insert(
                    id.clone(),
                    ModernMember {
                        member_id: id,
                        client_id: "rdkafka".into(),
                        client_host: "/10.0.0.1".into(),
                        member_epoch: 7,
                        subscribed_topics: vec!["orders".into()],
                        assigned: BTreeMap::from([(1, parts.clone())]),
                        target: BTreeMap::from([(1, parts)]),
                        ..ModernMember::default()
                    },
                );
            }
            let cmd = MetaCommand::PutConsumerGroup {
                group: "g".into(),
                meta: g,
            };
            let json = serde_json::to_vec(&cmd).unwrap().len();
            eprintln!("{members} members x {per} partitions: {json} bytes as JSON");
        }
    }

    /// The stored encoding of a consumer-protocol group (KIP-848), in the
    /// log entry and in the state snapshot; a group with a member commits
    /// only at its member's epoch, and deleting it needs it empty.
    #[test]
    fn golden_consumer_group_encoding_and_fencing() {
        use cairn_group::modern::MemberState;
        use cairn_group::modern::ModernGroup;
        use cairn_group::modern::ModernMember;
        let member = ModernMember {
            member_id: "m".into(),
            instance_id: Some("i".into()),
            rack_id: None,
            client_id: "c".into(),
            client_host: "/h".into(),
            member_epoch: 3,
            previous_member_epoch: 2,
            state: MemberState::UnrevokedPartitions,
            rebalance_timeout_ms: 300,
            subscribed_topics: vec!["t".into()],
            subscribed_regex: None,
            server_assignor: Some("range".into()),
            assigned: BTreeMap::from([(7, BTreeSet::from([0, 1]))]),
            pending_revocation: BTreeMap::from([(7, BTreeSet::from([2]))]),
            target: BTreeMap::from([(7, BTreeSet::from([0, 1]))]),
        };
        let meta = ModernGroup {
            group_epoch: 4,
            assignment_epoch: 4,
            subscribed_metadata: BTreeMap::from([(7, 3)]),
            members: BTreeMap::from([("m".to_string(), member)]),
        };
        let cmd = MetaCommand::PutConsumerGroup {
            group: "g".into(),
            meta: meta.clone(),
        };
        let golden = r#"{"PutConsumerGroup":{"group":"g","meta":{"group_epoch":4,"assignment_epoch":4,"subscribed_metadata":{"7":3},"members":{"m":{"member_id":"m","instance_id":"i","rack_id":null,"client_id":"c","client_host":"/h","member_epoch":3,"previous_member_epoch":2,"state":"UnrevokedPartitions","rebalance_timeout_ms":300,"subscribed_topics":["t"],"subscribed_regex":null,"server_assignor":"range","assigned":{"7":[0,1]},"pending_revocation":{"7":[2]},"target":{"7":[0,1]}}}}}}"#;
        assert_eq!(serde_json::to_string(&cmd).unwrap(), golden);
        assert_eq!(serde_json::from_str::<MetaCommand>(golden).unwrap(), cmd);
        let mut s = MetadataState::default();
        assert_eq!(s.apply(cmd), MetaResponse::Ok);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["consumer_groups"]["g"]["group_epoch"], 4);
        assert_eq!(serde_json::from_value::<MetadataState>(v).unwrap(), s);
        let commit = |epoch: i32| GroupCommit {
            group: "g".into(),
            generation: Some(epoch),
            member_id: "m".into(),
            offsets: vec![],
        };
        let MetaResponse::Commits(r) =
            s.apply(MetaCommand::CommitBatch(vec![commit(3), commit(2)]))
        else {
            panic!("commits");
        };
        assert_eq!(r[0], Ok(()));
        assert!(matches!(r[1], Err(GroupError::StaleMemberEpoch { .. })));
        assert!(matches!(
            s.apply(MetaCommand::DeleteGroup { group: "g".into() }),
            MetaResponse::GroupError(GroupError::NotEmpty { members: 1, .. })
        ));
        s.apply(MetaCommand::PutConsumerGroup {
            group: "g".into(),
            meta: ModernGroup {
                members: BTreeMap::new(),
                ..meta
            },
        });
        assert_eq!(
            s.apply(MetaCommand::DeleteGroup { group: "g".into() }),
            MetaResponse::Ok
        );
        assert!(s.consumer_groups.is_empty());
    }

    #[test]
    fn golden_user_and_acl_encodings() {
        let cred = ScramCredential {
            salt: vec![1, 2],
            iterations: 4096,
            stored_key: vec![3],
            server_key: vec![4],
        };
        let cases = [
            (
                MetaCommand::PutScramCredential {
                    user: "alice".into(),
                    mechanism: "SCRAM-SHA-512".into(),
                    credential: cred.clone(),
                },
                r#"{"PutScramCredential":{"user":"alice","mechanism":"SCRAM-SHA-512","credential":{"salt":[1,2],"iterations":4096,"stored_key":[3],"server_key":[4]}}}"#,
            ),
            (
                MetaCommand::DeleteScramCredential {
                    user: "alice".into(),
                    mechanism: "SCRAM-SHA-512".into(),
                },
                r#"{"DeleteScramCredential":{"user":"alice","mechanism":"SCRAM-SHA-512"}}"#,
            ),
            (
                MetaCommand::PutAcl(AclEntry {
                    principal: "User:alice".into(),
                    host: "*".into(),
                    resource_type: "TOPIC".into(),
                    resource_name: "orders".into(),
                    pattern_type: "LITERAL".into(),
                    operation: "READ".into(),
                    permission: "ALLOW".into(),
                }),
                r#"{"PutAcl":{"principal":"User:alice","host":"*","resource_type":"TOPIC","resource_name":"orders","pattern_type":"LITERAL","operation":"READ","permission":"ALLOW"}}"#,
            ),
        ];
        for (cmd, golden) in cases {
            assert_eq!(serde_json::to_string(&cmd).unwrap(), golden);
            assert_eq!(serde_json::from_str::<MetaCommand>(golden).unwrap(), cmd);
        }
        // A state saved before users existed has none.
        let mut v = serde_json::to_value(MetadataState::default()).unwrap();
        v.as_object_mut().unwrap().remove("users");
        let old: MetadataState = serde_json::from_value(v).unwrap();
        assert!(old.users.is_empty());
    }

    /// A link's security sync: its stored encoding, and that it keeps what
    /// it copied equal to the source's without touching this cluster's own
    /// bindings, roles and users.
    #[test]
    fn a_mirror_security_sync_owns_what_it_copied_and_nothing_else() {
        let acl = |who: &str, topic: &str| AclEntry {
            principal: who.into(),
            host: "*".into(),
            resource_type: "TOPIC".into(),
            resource_name: topic.into(),
            pattern_type: "LITERAL".into(),
            operation: "READ".into(),
            permission: "ALLOW".into(),
        };
        let cred = |b: u8| ScramCredential {
            salt: vec![b],
            iterations: 4096,
            stored_key: vec![b, 1],
            server_key: vec![b, 2],
        };
        let creds = |b: u8| -> BTreeMap<String, ScramCredential> {
            [("SCRAM-SHA-256".to_string(), cred(b))].into()
        };
        let security =
            |acls: Vec<AclEntry>, users: Vec<(&str, u8)>, roles: Vec<&str>| SourceSecurity {
                acls,
                users: users
                    .into_iter()
                    .map(|(u, b)| (u.to_string(), creds(b)))
                    .collect(),
                roles: roles
                    .into_iter()
                    .map(|r| {
                        let role = Role {
                            acls: vec![acl("", "lab")],
                            members: ["User:carol".to_string()].into(),
                        };
                        (r.to_string(), role)
                    })
                    .collect(),
            };
        let sync = |security: SourceSecurity| MetaCommand::SyncMirrorSecurity {
            link: "dr".into(),
            security,
        };
        let golden = r#"{"SyncMirrorSecurity":{"link":"dr","security":{"acls":[],"roles":{},"users":{"bob":{"SCRAM-SHA-256":{"salt":[7],"iterations":4096,"stored_key":[7,1],"server_key":[7,2]}}}}}}"#;
        let one_user = sync(security(vec![], vec![("bob", 7)], vec![]));
        assert_eq!(serde_json::to_string(&one_user).unwrap(), golden);
        assert_eq!(
            serde_json::from_str::<MetaCommand>(golden).unwrap(),
            one_user
        );

        let mut s = MetadataState::default();
        assert_eq!(
            s.apply(one_user.clone()),
            MetaResponse::Error(MetaError::UnknownMirrorLink("dr".into()))
        );
        s.apply(MetaCommand::PutMirrorLink(MirrorLink {
            name: "dr".into(),
            source_bootstrap: vec!["a:1".into()],
            sync_acls: true,
            ..MirrorLink::default()
        }));
        // This cluster's own: a binding, a user alice, a role ops.
        s.apply(MetaCommand::PutAcl(acl("User:local", "orders")));
        s.apply(MetaCommand::PutScramCredential {
            user: "alice".into(),
            mechanism: "SCRAM-SHA-256".into(),
            credential: cred(1),
        });
        s.apply(MetaCommand::PutRoleAcls {
            role: "ops".into(),
            acls: vec![acl("", "orders")],
        });
        let first = security(
            vec![acl("User:bob", "orders"), acl("User:local", "orders")],
            vec![("bob", 7), ("alice", 9)],
            vec!["nurses", "ops"],
        );
        assert!(s.mirror_security_differs("dr", &first));
        assert_eq!(s.apply(sync(first.clone())), MetaResponse::Ok);
        assert!(!s.mirror_security_differs("dr", &first));
        assert_eq!(s.users["bob"], creds(7));
        // alice is this cluster's own: not overwritten, not owned.
        assert_eq!(s.users["alice"], creds(1));
        assert!(s.acls.contains(&acl("User:bob", "orders")));
        assert_eq!(s.roles["nurses"].members.len(), 1);
        assert_eq!(s.roles["ops"].acls, vec![acl("", "orders")]);
        let owned = &s.mirrored_security["dr"];
        assert_eq!(owned.users, ["bob".to_string()].into());
        assert_eq!(owned.roles, ["nurses".to_string()].into());
        assert_eq!(owned.acls, [acl("User:bob", "orders")].into());

        // The source changes bob's password, then drops everything: what
        // the link put here goes, this cluster's own stays.
        let changed = security(first.acls.clone(), vec![("bob", 8)], vec!["nurses"]);
        assert!(s.mirror_security_differs("dr", &changed));
        s.apply(sync(changed));
        assert_eq!(s.users["bob"], creds(8));
        s.apply(sync(SourceSecurity::default()));
        assert!(!s.users.contains_key("bob"));
        assert!(!s.roles.contains_key("nurses"));
        assert_eq!(s.acls, vec![acl("User:local", "orders")]);
        assert_eq!(s.users["alice"], creds(1));
        assert!(s.roles.contains_key("ops"));
        assert!(!s.mirrored_security.contains_key("dr"));

        // Deleting the link leaves what it copied as this cluster's own.
        s.apply(sync(first));
        assert!(s.users.contains_key("bob"));
        s.apply(MetaCommand::DeleteMirrorLink { name: "dr".into() });
        assert!(s.users.contains_key("bob"));
        assert!(s.mirrored_security.is_empty());
    }

    /// Mirror links and mirror topics: stored encodings, and what apply
    /// allows (a link in use is not deleted; promotion is all or nothing).
    #[test]
    fn mirror_links_and_topics() {
        let link = MirrorLink {
            name: "dr".into(),
            source_bootstrap: vec!["a:7070".into()],
            topics_include: vec!["*".into()],
            ..MirrorLink::default()
        };
        let golden = r#"{"PutMirrorLink":{"name":"dr","source_bootstrap":["a:7070"],"topics_include":["*"],"topics_exclude":[],"groups_include":[],"groups_exclude":[],"sync_acls":false,"tls_ca_file":null,"token_file":null,"tls_cert_file":null,"tls_key_file":null,"paused":false,"source_address_map":{}}}"#;
        let put = MetaCommand::PutMirrorLink(link.clone());
        assert_eq!(serde_json::to_string(&put).unwrap(), golden);
        assert_eq!(serde_json::from_str::<MetaCommand>(golden).unwrap(), put);
        let mapped = MetaCommand::PutMirrorLink(MirrorLink {
            source_address_map: [("10.0.1.1:50051".to_string(), "10.0.2.254:7001".to_string())]
                .into(),
            ..link.clone()
        });
        let golden_mapped = golden.replace(
            r#""source_address_map":{}"#,
            r#""source_address_map":{"10.0.1.1:50051":"10.0.2.254:7001"}"#,
        );
        assert_eq!(serde_json::to_string(&mapped).unwrap(), golden_mapped);
        assert_eq!(
            serde_json::from_str::<MetaCommand>(&golden_mapped).unwrap(),
            mapped
        );
        let create = MetaCommand::CreateMirrorTopic {
            link: "dr".into(),
            name: "orders".into(),
            replication_factor: 1,
            configs: BTreeMap::new(),
            assignment: vec![vec![1]],
        };
        assert_eq!(
            serde_json::to_string(&create).unwrap(),
            r#"{"CreateMirrorTopic":{"link":"dr","name":"orders","replication_factor":1,"configs":{},"assignment":[[1]]}}"#
        );
        let promote = MetaCommand::SetMirrorTopics {
            topics: vec!["orders".into()],
            link: None,
        };
        assert_eq!(
            serde_json::to_string(&promote).unwrap(),
            r#"{"SetMirrorTopics":{"topics":["orders"],"link":null}}"#
        );

        let mut s = MetadataState::default();
        s.apply(MetaCommand::RegisterNode(node(1)));
        assert_eq!(
            s.apply(create.clone()),
            MetaResponse::Error(MetaError::UnknownMirrorLink("dr".into()))
        );
        assert_eq!(s.apply(put), MetaResponse::Ok);
        assert!(matches!(s.apply(create), MetaResponse::TopicCreated(_)));
        assert_eq!(s.mirror_topics.get("orders"), Some(&"dr".to_string()));
        assert!(matches!(
            s.apply(MetaCommand::DeleteMirrorLink { name: "dr".into() }),
            MetaResponse::Error(MetaError::MirrorLinkInUse(_))
        ));
        // One unknown topic refuses the whole promotion.
        assert_eq!(
            s.apply(MetaCommand::SetMirrorTopics {
                topics: vec!["orders".into(), "nope".into()],
                link: None,
            }),
            MetaResponse::Error(MetaError::UnknownTopic("nope".into()))
        );
        assert!(s.mirror_topics.contains_key("orders"));
        assert_eq!(s.apply(promote), MetaResponse::Ok);
        assert!(s.mirror_topics.is_empty());
        assert_eq!(
            s.apply(MetaCommand::DeleteMirrorLink { name: "dr".into() }),
            MetaResponse::Ok
        );
        // A state saved before mirrors existed has none.
        let mut v = serde_json::to_value(MetadataState::default()).unwrap();
        v.as_object_mut().unwrap().remove("mirror_links");
        v.as_object_mut().unwrap().remove("mirror_topics");
        let old: MetadataState = serde_json::from_value(v).unwrap();
        assert!(old.mirror_links.is_empty() && old.mirror_topics.is_empty());
    }

    #[test]
    fn roles_hold_bindings_and_members() {
        let mut s = MetadataState::default();
        let acl = AclEntry {
            principal: "User:ignored".into(),
            host: "*".into(),
            resource_type: "TOPIC".into(),
            resource_name: "orders".into(),
            pattern_type: "LITERAL".into(),
            operation: "READ".into(),
            permission: "ALLOW".into(),
        };
        let grant = MetaCommand::GrantRole {
            role: "reader".into(),
            principal: "User:alice".into(),
        };
        assert!(matches!(
            s.apply(grant.clone()),
            MetaResponse::Error(MetaError::UnknownRole(_))
        ));
        let put = MetaCommand::PutRoleAcls {
            role: "reader".into(),
            acls: vec![acl.clone(), acl.clone()],
        };
        assert_eq!(s.apply(put.clone()), MetaResponse::Ok);
        assert_eq!(s.apply(put), MetaResponse::Ok);
        assert_eq!(s.roles["reader"].acls.len(), 1);
        assert_eq!(s.roles["reader"].acls[0].principal, "");
        assert_eq!(s.apply(grant), MetaResponse::Ok);
        assert!(s.roles["reader"].members.contains("User:alice"));
        assert_eq!(
            s.apply(MetaCommand::DeleteRoleAcls {
                role: "reader".into(),
                acls: vec![acl],
            }),
            MetaResponse::Ok
        );
        assert!(s.roles["reader"].acls.is_empty());
        assert_eq!(
            s.apply(MetaCommand::RevokeRole {
                role: "reader".into(),
                principal: "User:alice".into(),
            }),
            MetaResponse::Ok
        );
        assert_eq!(
            s.apply(MetaCommand::DeleteRole {
                role: "reader".into()
            }),
            MetaResponse::Ok
        );
        assert!(s.roles.is_empty());
        // Golden: the stored form of a grant.
        assert_eq!(
            serde_json::to_string(&MetaCommand::GrantRole {
                role: "r".into(),
                principal: "User:a".into()
            })
            .unwrap(),
            r#"{"GrantRole":{"role":"r","principal":"User:a"}}"#
        );
    }

    #[test]
    fn users_are_put_and_deleted_per_mechanism() {
        let mut s = MetadataState::default();
        let cred = ScramCredential {
            salt: vec![1],
            iterations: 4096,
            stored_key: vec![2],
            server_key: vec![3],
        };
        let put = |m: &str| MetaCommand::PutScramCredential {
            user: "alice".into(),
            mechanism: m.into(),
            credential: cred.clone(),
        };
        let del = |m: &str| MetaCommand::DeleteScramCredential {
            user: "alice".into(),
            mechanism: m.into(),
        };
        assert_eq!(s.apply(put("SCRAM-SHA-256")), MetaResponse::Ok);
        assert_eq!(s.apply(put("SCRAM-SHA-512")), MetaResponse::Ok);
        assert_eq!(s.users["alice"].len(), 2);
        assert_eq!(s.apply(del("SCRAM-SHA-256")), MetaResponse::Ok);
        assert!(matches!(
            s.apply(del("SCRAM-SHA-256")),
            MetaResponse::Error(MetaError::UnknownUser(_))
        ));
        assert_eq!(s.apply(del("SCRAM-SHA-512")), MetaResponse::Ok);
        assert!(s.users.is_empty());
        assert!(matches!(
            s.apply(MetaCommand::PutScramCredential {
                user: String::new(),
                mechanism: "SCRAM-SHA-256".into(),
                credential: cred.clone(),
            }),
            MetaResponse::Error(MetaError::InvalidArgument(_))
        ));
    }

    #[test]
    fn a_registered_id_from_another_data_dir_is_refused() {
        let mut s = MetadataState::default();
        let mut first = node(4);
        first.incarnation = "aaaa".into();
        assert_eq!(
            s.apply(MetaCommand::RegisterNode(first.clone())),
            MetaResponse::Ok
        );
        // The same data dir registers again (new addresses): fine.
        let mut moved = first.clone();
        moved.rpc_addr = "10.0.0.4:50052".into();
        assert_eq!(
            s.apply(MetaCommand::RegisterNode(moved.clone())),
            MetaResponse::Ok
        );
        // A wiped disk under the same id: refused, the registration kept.
        let mut wiped = first.clone();
        wiped.incarnation = "bbbb".into();
        let r = s.apply(MetaCommand::RegisterNode(wiped));
        assert!(
            matches!(&r, MetaResponse::Error(MetaError::NodeInUse(m)) if m.contains("another data directory")),
            "{r:?}"
        );
        assert_eq!(s.nodes[&4], moved);
        // A registration of a version without incarnations records one.
        let mut old = MetadataState::default();
        old.apply(MetaCommand::RegisterNode(node(4)));
        assert_eq!(
            old.apply(MetaCommand::RegisterNode(first.clone())),
            MetaResponse::Ok
        );
        assert_eq!(old.nodes[&4].incarnation, "aaaa");
        // The encoding of a node without one is unchanged.
        let v = serde_json::to_value(node(4)).unwrap();
        assert!(v.get("incarnation").is_none(), "{v}");
    }
}
