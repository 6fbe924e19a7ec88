//! The consumer-group coordinator: Kafka's group membership protocol
//! (join, sync, heartbeat, leave) run by the metadata leader.
//!
//! ```text
//!            join (new member / rejoin)          all known members joined
//!   Empty ─────────────► PreparingRebalance ───────────────────────────► CompletingRebalance
//!     ▲                    ▲      │  (or the rebalance timeout: the      │ leader's SyncGroup
//!     │ last member        │      │   ones that did not are removed)     ▼
//!     │ leaves / expires   └──────┴───── join, leave, session expiry ── Stable
//! ```
//!
//! Live state (who is waiting in a join, when each member was last heard
//! from) is kept in memory on the coordinator. Every completed join and sync
//! writes the generation's membership to the metadata group (`PutGroup`), so
//! a new metadata leader carries on with the same generation and
//! assignments, and commits are fenced by generation when applied. Offset
//! commits are batched: many requests go into one `CommitBatch` entry.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_metadata::CommittedOffset;
use cairn_metadata::GroupCommit;
use cairn_metadata::GroupError;
use cairn_metadata::GroupMember;
use cairn_metadata::GroupMeta;
use cairn_metadata::GroupPhase;
use cairn_metadata::MetaCommand;
use cairn_metadata::MetaResponse;
use cairn_raft::Request as RaftRequest;
use cairn_raft::Response as RaftResponse;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::ReadPolicy;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio::sync::Mutex;
use tokio::sync::MutexGuard;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::node::Node;

#[path = "coordinator_modern.rs"]
mod modern;
pub use modern::ConsumerGroupView;
pub use modern::ConsumerHeartbeatAnswer;

/// How often session expiry and rebalance deadlines are checked.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// The longest the coordinator waits for a metadata write (a new
/// generation, a commit batch) to apply before answering NOT_COORDINATOR.
pub(crate) const META_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Commit requests per metadata entry, at most.
const MAX_COMMITS_PER_ENTRY: usize = 2_000;
/// Commits queued for the next entries at most; a committer waits for room
/// beyond that (its request is still bounded by the client's timeout).
const MAX_QUEUED_COMMITS: usize = 4 * MAX_COMMITS_PER_ENTRY;
/// Commit entries proposed concurrently.
const COMMIT_ENTRIES_IN_FLIGHT: usize = 2;
/// Members of one consumer-protocol (KIP-848) group, at most.
pub(crate) const MAX_CONSUMER_GROUP_MEMBERS: usize = 1_000;
/// A rebalance waits at most this long, whatever the members ask for.
const MAX_REBALANCE_TIMEOUT: Duration = Duration::from_secs(300);

/// A JoinGroup as either door passes it.
#[derive(Debug, Clone)]
pub struct JoinArgs {
    pub group: String,
    /// Empty: a new member (the coordinator names it).
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub protocol_type: String,
    /// (protocol name, the member's metadata for it), preferred first.
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: u32,
    /// 0: the session timeout.
    pub rebalance_timeout_ms: u32,
    /// A static member's `group.instance.id` (KIP-345).
    pub group_instance_id: Option<String>,
}

/// A completed join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub generation: i32,
    pub protocol: String,
    pub leader: String,
    pub member_id: String,
    /// Every member's metadata for the chosen protocol: to the leader only.
    pub members: Vec<(String, Bytes)>,
    /// The static members among `members`: (member id, instance id).
    pub instance_ids: Vec<(String, String)>,
    /// The leader rejoined a stable group as a static member: it must not
    /// assign again (JoinGroup v9's `skip_assignment`; older leaders' new
    /// assignment is ignored, the stored one stands).
    pub skip_assignment: bool,
}

/// A member of a group at the generation it believes current.
#[derive(Debug, Clone)]
pub struct MemberRef {
    pub group: String,
    pub member_id: String,
    pub generation: i32,
    /// A static member's `group.instance.id`: the request is fenced
    /// (FENCED_INSTANCE_ID) when another member id holds it now.
    pub group_instance_id: Option<String>,
}

/// One committed offset of a group, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOffset {
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
    pub metadata: String,
    pub leader_epoch: Option<i32>,
}

/// A group as described (Kafka's DescribeGroups).
#[derive(Debug, Clone, Default)]
pub struct GroupDescription {
    pub group: String,
    /// Kafka's state name (`Stable`, `PreparingRebalance`, ...).
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub generation: i32,
    pub leader: String,
    pub members: Vec<MemberDescription>,
    pub offsets: Vec<StoredOffset>,
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as listed (Kafka's ListGroups).
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    pub members: u32,
    /// A consumer-protocol group (KIP-848; Kafka's group type "consumer"),
    /// else a classic one.
    pub consumer_protocol: bool,
}

/// Kafka's names for a group's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Empty,
    Preparing,
    Completing,
    Stable,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Empty => "Empty",
            Phase::Preparing => "PreparingRebalance",
            Phase::Completing => "CompletingRebalance",
            Phase::Stable => "Stable",
        }
    }
}

type JoinReply = oneshot::Sender<Result<Joined, ApiError>>;
type SyncReply = oneshot::Sender<Result<Vec<u8>, ApiError>>;

struct Member {
    info: GroupMember,
    last_seen: Instant,
    join_waiter: Option<JoinReply>,
    sync_waiter: Option<SyncReply>,
}

impl Member {
    fn alive(&self, now: Instant) -> bool {
        self.join_waiter.is_some()
            || now.duration_since(self.last_seen)
                < Duration::from_millis(u64::from(self.info.session_timeout_ms))
    }
}

struct Group {
    name: String,
    phase: Phase,
    generation: i32,
    protocol_type: String,
    protocol: String,
    leader: String,
    members: BTreeMap<String, Member>,
    /// When a rebalance (or a leader's sync) is given up on.
    deadline: Option<Instant>,
    /// A first rebalance waits this long for more members.
    not_before: Option<Instant>,
}

impl Group {
    fn new(name: &str) -> Self {
        Group {
            name: name.to_owned(),
            phase: Phase::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: String::new(),
            leader: String::new(),
            members: BTreeMap::new(),
            deadline: None,
            not_before: None,
        }
    }

    /// A group as stored, taken over by a new coordinator: its members get a
    /// full session to show up before they expire.
    fn from_stored(name: &str, meta: &GroupMeta, now: Instant) -> Self {
        let mut g = Group::new(name);
        g.generation = meta.generation;
        g.protocol_type = meta.protocol_type.clone();
        g.protocol = meta.protocol.clone();
        g.leader = meta.leader.clone();
        g.members = meta
            .members
            .iter()
            .map(|(id, info)| {
                (
                    id.clone(),
                    Member {
                        info: info.clone(),
                        last_seen: now,
                        join_waiter: None,
                        sync_waiter: None,
                    },
                )
            })
            .collect();
        g.phase = match meta.phase {
            GroupPhase::Empty => Phase::Empty,
            GroupPhase::Stable => Phase::Stable,
            // The leader's assignment never made it: everyone joins again.
            GroupPhase::AwaitingSync => Phase::Completing,
        };
        if g.phase == Phase::Completing {
            g.start_rebalance(now, Duration::ZERO);
        }
        g
    }

    fn stored(&self) -> GroupMeta {
        GroupMeta {
            generation: self.generation,
            phase: match self.phase {
                Phase::Empty => GroupPhase::Empty,
                Phase::Stable => GroupPhase::Stable,
                Phase::Preparing | Phase::Completing => GroupPhase::AwaitingSync,
            },
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members: self
                .members
                .iter()
                .map(|(id, m)| (id.clone(), m.info.clone()))
                .collect(),
        }
    }

    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| Duration::from_millis(u64::from(m.info.rebalance_timeout_ms)))
            .max()
            .unwrap_or(Duration::ZERO)
            .min(MAX_REBALANCE_TIMEOUT)
    }

    /// Every member must join again; pending syncs are told so.
    fn start_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        if self.phase == Phase::Preparing {
            return;
        }
        if self.phase == Phase::Empty && !initial_delay.is_zero() {
            self.not_before = Some(now + initial_delay);
        }
        self.phase = Phase::Preparing;
        self.deadline = Some(now + self.rebalance_timeout());
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(Err(ApiError::RebalanceInProgress(self.name.clone())));
            }
        }
        tracing::info!(group = %self.name, generation = self.generation, "rebalance started");
    }

    /// The protocol every member supports, preferring the members' own
    /// order (the one most members rank first).
    fn choose_protocol(&self) -> String {
        let supported_by_all = |name: &str| {
            self.members
                .values()
                .all(|m| m.info.protocols.iter().any(|(p, _)| p == name))
        };
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((p, _)) = m.info.protocols.iter().find(|(p, _)| supported_by_all(p)) {
                *votes.entry(p.as_str()).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(p, _)| p.to_owned())
            .unwrap_or_default()
    }

    fn ready_to_complete(&self, now: Instant) -> bool {
        if self.phase != Phase::Preparing {
            return false;
        }
        if self.deadline.is_some_and(|d| now >= d) {
            return true;
        }
        if self.not_before.is_some_and(|t| now < t) {
            return false;
        }
        self.members.values().all(|m| m.join_waiter.is_some())
    }

    /// What a JoinGroup tells the leader: every member's metadata for the
    /// group's protocol, and the static members' instance ids.
    #[allow(clippy::type_complexity)]
    fn join_members(&self) -> (Vec<(String, Bytes)>, Vec<(String, String)>) {
        let members = self
            .members
            .values()
            .map(|m| {
                (
                    m.info.member_id.clone(),
                    Bytes::copy_from_slice(m.info.metadata(&self.protocol)),
                )
            })
            .collect();
        let instance_ids = self
            .members
            .values()
            .filter_map(|m| {
                let i = m.info.group_instance_id.clone()?;
                Some((m.info.member_id.clone(), i))
            })
            .collect();
        (members, instance_ids)
    }

    /// The member id holding static instance `instance`.
    fn instance_holder(&self, instance: &str) -> Option<&str> {
        self.members
            .values()
            .find(|m| m.info.group_instance_id.as_deref() == Some(instance))
            .map(|m| m.info.member_id.as_str())
    }

    /// A request naming `member_id` and (a static member) `instance`: fenced
    /// when another member id holds the instance now (its successor
    /// rejoined), unknown when nobody does.
    fn check_instance(&self, member_id: &str, instance: Option<&str>) -> Result<(), ApiError> {
        let Some(instance) = instance else {
            return Ok(());
        };
        match self.instance_holder(instance) {
            Some(holder) if holder == member_id => Ok(()),
            Some(holder) => Err(ApiError::FencedInstanceId(format!(
                "instance {instance} of group {} is now member {holder}, not {member_id}",
                self.name
            ))),
            None => Err(ApiError::UnknownMember(format!(
                "no member of group {} has instance {instance}",
                self.name
            ))),
        }
    }

    /// A static member rejoining under a new id: `old`'s place, assignment
    /// and leadership pass to `new`; requests still naming `old` are
    /// fenced.
    fn replace_member(&mut self, old: &str, new: &str) {
        let Some(mut m) = self.members.remove(old) else {
            return;
        };
        let fenced = || ApiError::FencedInstanceId(format!("member {old} was replaced by {new}"));
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(Err(fenced()));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(Err(fenced()));
        }
        m.info.member_id = new.to_owned();
        self.members.insert(new.to_owned(), m);
        if self.leader == old {
            self.leader = new.to_owned();
        }
    }

    fn fail_waiters(&mut self, err: impl Fn() -> ApiError) {
        for m in self.members.values_mut() {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(Err(err()));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(Err(err()));
            }
        }
    }
}

/// Limits on what members may ask for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupLimits {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    /// Consumer-protocol (KIP-848) groups: how often members heartbeat,
    /// when a silent one is removed, and how many one group holds.
    pub consumer_heartbeat_interval_ms: u32,
    pub consumer_session_timeout_ms: u32,
    pub consumer_max_size: usize,
}

struct Groups {
    /// The metadata term the in-memory state belongs to; `None` when this
    /// node is not the coordinator.
    term: Option<u64>,
    map: HashMap<String, Group>,
    /// Consumer-protocol groups (KIP-848) with members.
    modern: HashMap<String, modern::ModernLive>,
}

struct PendingCommit {
    commit: GroupCommit,
    reply: oneshot::Sender<Result<(), ApiError>>,
}

pub(crate) struct Coordinator {
    groups: Mutex<Groups>,
    limits: GroupLimits,
    commits: mpsc::Sender<PendingCommit>,
    commit_rx: std::sync::Mutex<Option<mpsc::Receiver<PendingCommit>>>,
}

fn new_member_id(client_id: &str) -> String {
    use std::hash::BuildHasher;
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        cairn_clock::system_time()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let prefix = if client_id.is_empty() {
        "member"
    } else {
        client_id
    };
    format!("{prefix}-{:016x}", h.finish())
}

impl Coordinator {
    pub(crate) fn new(limits: GroupLimits) -> Self {
        let (tx, rx) = mpsc::channel(MAX_QUEUED_COMMITS);
        Coordinator {
            groups: Mutex::new(Groups {
                term: None,
                map: HashMap::new(),
                modern: HashMap::new(),
            }),
            limits,
            commits: tx,
            commit_rx: std::sync::Mutex::new(Some(rx)),
        }
    }

    fn not_coordinator(node: &Node) -> ApiError {
        ApiError::NotCoordinator {
            leader: node
                .meta_leader()
                .filter(|l| *l != node.id)
                .and_then(|l| node.node_info(l).map(|n| (l, n.grpc_addr))),
        }
    }

    /// The group state, if this node is the coordinator; (re)loads it from
    /// the metadata group after this node became the metadata leader.
    async fn lock(&self, node: &Node) -> Result<MutexGuard<'_, Groups>, ApiError> {
        // Leading is not enough: a metadata leader cut off from the others
        // stays `Leader` until it hears of a successor, and would answer
        // from a view that misses the successor's commits (consumers would
        // resume below offsets they committed). The lease says no
        // successor can exist yet (`lease.rs`, reliability finding 10).
        let term = {
            let metrics = node.meta.metrics();
            let m = metrics.borrow_watched();
            (m.state == openraft::ServerState::Leader).then_some(m.current_term)
        }
        .filter(|_| node.meta_lease_valid());
        let Some(term) = term else {
            let mut g = self.groups.lock().await;
            drop_state(&mut g, node);
            return Err(Self::not_coordinator(node));
        };
        let mut g = self.groups.lock().await;
        if g.term != Some(term) {
            drop_state(&mut g, node);
            // Everything committed before this term must be applied first.
            node.meta
                .ensure_linearizable(ReadPolicy::ReadIndex)
                .await
                .map_err(|_| Self::not_coordinator(node))?;
            let now = cairn_clock::now();
            g.map = node.meta_view.read(|s| {
                s.groups
                    .iter()
                    .filter(|(_, m)| !m.members.is_empty())
                    .map(|(name, m)| (name.clone(), Group::from_stored(name, m, now)))
                    .collect()
            });
            g.modern = node.meta_view.read(|s| {
                s.consumer_groups
                    .iter()
                    .filter(|(_, m)| !m.members.is_empty())
                    .map(|(name, m)| {
                        (
                            name.clone(),
                            modern::ModernLive::from_stored(m.clone(), now),
                        )
                    })
                    .collect()
            });
            g.term = Some(term);
            tracing::info!(
                term,
                groups = g.map.len(),
                "group coordinator taking over the stored groups"
            );
        }
        Ok(g)
    }

    async fn persist(&self, node: &Node, group: &Group) -> Result<(), ApiError> {
        let meta = group.stored();
        let instances: Vec<(String, String)> = meta
            .members
            .values()
            .filter_map(|m| Some((m.member_id.clone(), m.group_instance_id.clone()?)))
            .collect();
        // Only static members need the newer command.
        let cmd = if instances.is_empty() {
            MetaCommand::PutGroup {
                group: group.name.clone(),
                meta,
            }
        } else {
            MetaCommand::PutGroupWithInstances {
                group: group.name.clone(),
                meta,
                instances,
            }
        };
        self.write(node, cmd).await.map(|_| ())
    }

    /// Proposes `cmd` to the metadata group and waits for it to apply, at
    /// most [`META_WRITE_TIMEOUT`]: a leader cut off from its followers
    /// cannot commit, and callers hold the groups lock meanwhile.
    async fn write(&self, node: &Node, cmd: MetaCommand) -> Result<MetaResponse, ApiError> {
        let write = node.meta.client_write(RaftRequest::Meta(cmd));
        let Ok(result) = tokio::time::timeout(META_WRITE_TIMEOUT, write).await else {
            metrics::counter!("cairn_group_writes_timed_out_total").increment(1);
            return Err(Self::not_coordinator(node));
        };
        match result {
            Ok(r) => match r.data {
                RaftResponse::Meta(resp) => Ok(resp),
                other => Err(ApiError::Internal(format!(
                    "metadata group answered {other:?}"
                ))),
            },
            Err(_) => Err(Self::not_coordinator(node)),
        }
    }

    pub(crate) async fn join(&self, node: &Node, req: JoinArgs) -> Result<Joined, ApiError> {
        if req.group.is_empty() {
            return Err(ApiError::InvalidArgument("group must not be empty".into()));
        }
        if req.protocols.is_empty() || req.protocol_type.is_empty() {
            return Err(ApiError::InconsistentGroupProtocol(
                "a member must name a protocol type and at least one protocol".into(),
            ));
        }
        let l = self.limits;
        if req.session_timeout_ms < l.min_session_timeout_ms
            || req.session_timeout_ms > l.max_session_timeout_ms
        {
            return Err(ApiError::InvalidSessionTimeout(format!(
                "session timeout {} ms is outside [{}, {}] ms",
                req.session_timeout_ms, l.min_session_timeout_ms, l.max_session_timeout_ms
            )));
        }
        let rebalance_timeout_ms = if req.rebalance_timeout_ms == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        };
        let wait_limit = Duration::from_millis(u64::from(rebalance_timeout_ms))
            .min(MAX_REBALANCE_TIMEOUT)
            + Duration::from_secs(5);
        let rx = {
            let mut groups = self.lock(node).await?;
            if groups
                .modern
                .get(&req.group)
                .is_some_and(|g| !g.stored.members.is_empty())
            {
                return Err(ApiError::InconsistentGroupProtocol(format!(
                    "group {} uses the consumer group protocol (KIP-848); a classic member cannot join it",
                    req.group
                )));
            }
            let now = cairn_clock::now();
            // A group not in memory (empty, dropped by `tick`) goes on from
            // its stored generation: generations only grow, or a zombie
            // member of an earlier generation N could commit again once the
            // group is back at N (reliability finding 8).
            let stored_generation = node
                .meta_view
                .read(|s| s.groups.get(&req.group).map(|m| m.generation));
            let group = groups.map.entry(req.group.clone()).or_insert_with(|| {
                let mut g = Group::new(&req.group);
                g.generation = stored_generation.unwrap_or(0);
                g
            });
            let others = group
                .members
                .values()
                .filter(|m| m.info.member_id != req.member_id)
                .count();
            if others > 0 {
                if group.protocol_type != req.protocol_type {
                    return Err(ApiError::InconsistentGroupProtocol(format!(
                        "group {} uses protocol type {:?}, the member {:?}",
                        req.group, group.protocol_type, req.protocol_type
                    )));
                }
                let shared = req.protocols.iter().any(|p| {
                    group
                        .members
                        .values()
                        .filter(|m| m.info.member_id != req.member_id)
                        .all(|m| m.info.protocols.iter().any(|(n, _)| *n == p.0))
                });
                if !shared {
                    return Err(ApiError::InconsistentGroupProtocol(format!(
                        "none of the member's protocols is supported by every member of group {}",
                        req.group
                    )));
                }
            }
            let instance = req.group_instance_id.as_deref();
            // A static member back under a new id (it restarted): whether
            // it asks for what it had, so the group can go on without a
            // rebalance.
            let mut rejoined_unchanged = None;
            let member_id = if req.member_id.is_empty() {
                let id = new_member_id(&req.client_id);
                if let Some(old) = instance.and_then(|i| group.instance_holder(i)) {
                    let old = old.to_owned();
                    let unchanged = group.members.get(&old).is_some_and(|m| {
                        m.info.protocols.len() == req.protocols.len()
                            && m.info
                                .protocols
                                .iter()
                                .zip(&req.protocols)
                                .all(|((n, md), (rn, rmd))| n == rn && md[..] == rmd[..])
                    });
                    group.replace_member(&old, &id);
                    tracing::info!(group = %req.group, old = %old, new = %id, instance = ?instance, "static member rejoined");
                    rejoined_unchanged = Some(unchanged);
                }
                id
            } else {
                group.check_instance(&req.member_id, instance)?;
                if !group.members.contains_key(&req.member_id) {
                    return Err(ApiError::UnknownMember(format!(
                        "member {} is not in group {}; join as a new member",
                        req.member_id, req.group
                    )));
                }
                req.member_id.clone()
            };
            group.protocol_type = req.protocol_type.clone();
            let (tx, rx) = oneshot::channel();
            let info = GroupMember {
                member_id: member_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms,
                protocols: req
                    .protocols
                    .iter()
                    .map(|(name, metadata)| (name.clone(), metadata.to_vec()))
                    .collect(),
                assignment: Vec::new(),
                group_instance_id: req.group_instance_id.clone(),
            };
            let member = group.members.entry(member_id.clone()).or_insert(Member {
                info: info.clone(),
                last_seen: now,
                join_waiter: None,
                sync_waiter: None,
            });
            member.info = GroupMember {
                assignment: std::mem::take(&mut member.info.assignment),
                ..info
            };
            member.last_seen = now;
            // A static member back with the same protocols, in a stable
            // group: it takes its old assignment, nobody rebalances
            // (KIP-345); the leader is told not to assign again. Stored
            // first, so its commits are fenced right.
            if rejoined_unchanged == Some(true) && group.phase == Phase::Stable {
                if let Err(e) = self.persist(node, group).await {
                    group.start_rebalance(now, Duration::ZERO);
                    return Err(e);
                }
                let leader = group.leader == member_id;
                let (members, instance_ids) = if leader {
                    group.join_members()
                } else {
                    (Vec::new(), Vec::new())
                };
                return Ok(Joined {
                    generation: group.generation,
                    protocol: group.protocol.clone(),
                    leader: group.leader.clone(),
                    member_id,
                    members,
                    instance_ids,
                    skip_assignment: leader,
                });
            }
            let member = group.members.get_mut(&member_id).expect("just inserted");
            if let Some(old) = member.join_waiter.replace(tx) {
                let _ = old.send(Err(ApiError::RebalanceInProgress(format!(
                    "member {member_id} joined again"
                ))));
            }
            group.start_rebalance(now, l.initial_rebalance_delay);
            let name = group.name.clone();
            self.complete_if_ready(node, &mut groups, &name, now).await;
            rx
        };
        match tokio::time::timeout(wait_limit, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Self::not_coordinator(node)),
            Err(_) => Err(ApiError::RebalanceInProgress(format!(
                "the rebalance of group {} did not complete in time",
                req.group
            ))),
        }
    }

    /// Completes the group's join phase if every member joined (or the
    /// rebalance timed out): a new generation, stored, then answered.
    async fn complete_if_ready(&self, node: &Node, groups: &mut Groups, name: &str, now: Instant) {
        let Some(group) = groups.map.get_mut(name) else {
            return;
        };
        if !group.ready_to_complete(now) {
            return;
        }
        // Static members keep their place until their session expires
        // (KIP-345): a restarting one must not cost a second rebalance.
        let late: Vec<String> = group
            .members
            .iter()
            .filter(|(_, m)| m.join_waiter.is_none() && m.info.group_instance_id.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in &late {
            tracing::info!(group = %name, member = %id, "member did not join the rebalance in time; removed");
            group.members.remove(id);
        }
        group.generation += 1;
        group.deadline = None;
        group.not_before = None;
        if group.members.is_empty() {
            group.phase = Phase::Empty;
            group.leader.clear();
            group.protocol.clear();
        } else {
            group.phase = Phase::Completing;
            group.protocol = group.choose_protocol();
            if !group.members.contains_key(&group.leader) {
                group.leader = group.members.keys().next().cloned().unwrap_or_default();
            }
            for m in group.members.values_mut() {
                m.info.assignment.clear();
            }
            // The leader has this long to send the assignment.
            group.deadline = Some(now + group.rebalance_timeout());
        }
        if let Err(e) = self.persist(node, group).await {
            tracing::warn!(group = %name, error = %e, "could not store the new generation");
            group.fail_waiters(|| ApiError::NotCoordinator { leader: None });
            return;
        }
        tracing::info!(
            group = %name,
            generation = group.generation,
            members = group.members.len(),
            protocol = %group.protocol,
            "group rebalanced"
        );
        let (members, instance_ids) = group.join_members();
        for (id, m) in group.members.iter_mut() {
            if let Some(w) = m.join_waiter.take() {
                m.last_seen = now;
                let _ = w.send(Ok(Joined {
                    generation: group.generation,
                    protocol: group.protocol.clone(),
                    leader: group.leader.clone(),
                    member_id: id.clone(),
                    members: if *id == group.leader {
                        members.clone()
                    } else {
                        Vec::new()
                    },
                    instance_ids: if *id == group.leader {
                        instance_ids.clone()
                    } else {
                        Vec::new()
                    },
                    skip_assignment: false,
                }));
            }
        }
    }

    fn member_mut<'a>(groups: &'a mut Groups, who: &MemberRef) -> Result<&'a mut Group, ApiError> {
        let (group, member, generation) = (&who.group, &who.member_id, who.generation);
        let g = groups.map.get_mut(group).ok_or_else(|| {
            ApiError::UnknownMember(format!("member {member} is not in group {group}"))
        })?;
        g.check_instance(member, who.group_instance_id.as_deref())?;
        if !g.members.contains_key(member) {
            return Err(ApiError::UnknownMember(format!(
                "member {member} is not in group {group}"
            )));
        }
        if generation != g.generation {
            return Err(ApiError::IllegalGeneration(format!(
                "group {group} is at generation {}, the request names {generation}",
                g.generation
            )));
        }
        Ok(g)
    }

    /// The member's assignment; the leader's call carries every member's
    /// (member id, assignment).
    pub(crate) async fn sync(
        &self,
        node: &Node,
        req: MemberRef,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<Vec<u8>, ApiError> {
        let rx = {
            let mut groups = self.lock(node).await?;
            let now = cairn_clock::now();
            let g = Self::member_mut(&mut groups, &req)?;
            match g.phase {
                Phase::Empty | Phase::Preparing => {
                    return Err(ApiError::RebalanceInProgress(req.group.clone()))
                }
                Phase::Stable => {
                    let m = &mut g.members.get_mut(&req.member_id).expect("checked");
                    m.last_seen = now;
                    return Ok(m.info.assignment.clone());
                }
                Phase::Completing => {}
            }
            if req.member_id == g.leader {
                let mut given: HashMap<String, Vec<u8>> = assignments
                    .into_iter()
                    .map(|(member, assignment)| (member, assignment.to_vec()))
                    .collect();
                for (id, m) in g.members.iter_mut() {
                    m.info.assignment = given.remove(id).unwrap_or_default();
                }
                g.phase = Phase::Stable;
                g.deadline = None;
                if let Err(e) = self.persist(node, g).await {
                    g.phase = Phase::Completing;
                    return Err(e);
                }
                for (id, m) in g.members.iter_mut() {
                    if let Some(w) = m.sync_waiter.take() {
                        let _ = w.send(Ok(m.info.assignment.clone()));
                    }
                    if *id == req.member_id {
                        m.last_seen = now;
                    }
                }
                tracing::info!(group = %req.group, generation = g.generation, "group stable");
                return Ok(g
                    .members
                    .get(&req.member_id)
                    .map(|m| m.info.assignment.clone())
                    .unwrap_or_default());
            }
            let (tx, rx) = oneshot::channel();
            let m = g.members.get_mut(&req.member_id).expect("checked");
            m.last_seen = now;
            m.sync_waiter = Some(tx);
            rx
        };
        match tokio::time::timeout(MAX_REBALANCE_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Self::not_coordinator(node)),
            Err(_) => Err(ApiError::RebalanceInProgress(req.group)),
        }
    }

    pub(crate) async fn heartbeat(&self, node: &Node, req: MemberRef) -> Result<(), ApiError> {
        let mut groups = self.lock(node).await?;
        let g = Self::member_mut(&mut groups, &req)?;
        if let Some(m) = g.members.get_mut(&req.member_id) {
            m.last_seen = cairn_clock::now();
        }
        match g.phase {
            Phase::Preparing => Err(ApiError::RebalanceInProgress(req.group)),
            _ => Ok(()),
        }
    }

    /// A member leaves, named by its member id, or (a static member) by
    /// its instance id, with its member id or none.
    pub(crate) async fn leave(
        &self,
        node: &Node,
        group: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), ApiError> {
        let mut req = MemberRef {
            group: group.to_owned(),
            member_id: member_id.to_owned(),
            generation: 0,
            group_instance_id: group_instance_id.map(str::to_owned),
        };
        let mut groups = self.lock(node).await?;
        let now = cairn_clock::now();
        let Some(g) = groups.map.get_mut(&req.group) else {
            return Err(ApiError::UnknownMember(format!(
                "member {} is not in group {}",
                req.member_id, req.group
            )));
        };
        if let Some(instance) = group_instance_id {
            if req.member_id.is_empty() {
                // By instance alone (Kafka's admin RemoveMembersFromGroup).
                req.member_id = g.instance_holder(instance).unwrap_or_default().to_owned();
            }
            g.check_instance(&req.member_id, Some(instance))?;
        }
        let Some(mut m) = g.members.remove(&req.member_id) else {
            return Err(ApiError::UnknownMember(format!(
                "member {} is not in group {}",
                req.member_id, req.group
            )));
        };
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(Err(ApiError::UnknownMember(req.member_id.clone())));
        }
        tracing::info!(group = %req.group, member = %req.member_id, "member left");
        self.after_departure(node, &mut groups, &req.group, now)
            .await;
        Ok(())
    }

    /// After members left or expired: an empty group is stored as such, a
    /// non-empty one rebalances.
    async fn after_departure(&self, node: &Node, groups: &mut Groups, name: &str, now: Instant) {
        let Some(g) = groups.map.get_mut(name) else {
            return;
        };
        if g.members.is_empty() {
            g.generation += 1;
            g.phase = Phase::Empty;
            g.leader.clear();
            g.protocol.clear();
            g.deadline = None;
            if let Err(e) = self.persist(node, g).await {
                tracing::warn!(group = %name, error = %e, "could not store the empty group");
            }
        } else {
            g.start_rebalance(now, Duration::ZERO);
            self.complete_if_ready(node, groups, name, now).await;
        }
    }

    /// Removes the members of `g` whose session lapsed by `now`; whether
    /// any did (the caller then runs [`Self::after_departure`]).
    fn expire_members(g: &mut Group, now: Instant) -> bool {
        let expired: Vec<String> = g
            .members
            .iter()
            .filter(|(_, m)| !m.alive(now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %g.name, member = %id, "member session expired; removed");
            if let Some(mut m) = g.members.remove(id) {
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(Err(ApiError::UnknownMember(id.clone())));
                }
            }
        }
        !expired.is_empty()
    }

    /// Session expiry and rebalance deadlines; run every [`TICK`].
    pub(crate) async fn tick(&self, node: &Node) {
        if !node.is_meta_leader() {
            let mut g = self.groups.lock().await;
            drop_state(&mut g, node);
            return;
        }
        let Ok(mut groups) = self.lock(node).await else {
            return;
        };
        let now = cairn_clock::now();
        self.tick_modern(node, &mut groups, now).await;
        let names: Vec<String> = groups.map.keys().cloned().collect();
        for name in names {
            let Some(g) = groups.map.get_mut(&name) else {
                continue;
            };
            let expired = Self::expire_members(g, now);
            // A leader that never sent the assignment: start over.
            let sync_overdue = g.phase == Phase::Completing && g.deadline.is_some_and(|d| now >= d);
            if sync_overdue {
                g.phase = Phase::Stable;
                g.start_rebalance(now, Duration::ZERO);
            }
            if expired {
                self.after_departure(node, &mut groups, &name, now).await;
            } else {
                self.complete_if_ready(node, &mut groups, &name, now).await;
            }
            if groups
                .map
                .get(&name)
                .is_some_and(|g| g.phase == Phase::Empty && g.members.is_empty())
            {
                groups.map.remove(&name);
            }
        }
    }

    /// Checks a commit against the live membership, then queues it for the
    /// next batch; answers once it is applied (fenced again there).
    pub(crate) async fn commit(
        &self,
        node: &Node,
        group: String,
        generation: Option<i32>,
        member_id: String,
        group_instance_id: Option<&str>,
        offsets: Vec<(String, u32, CommittedOffset)>,
    ) -> Result<(), ApiError> {
        if group.is_empty() {
            return Err(ApiError::InvalidArgument("group must not be empty".into()));
        }
        {
            let mut groups = self.lock(node).await?;
            if let Some(live) = groups
                .modern
                .get(&group)
                .filter(|g| !g.stored.members.is_empty())
            {
                let Some(epoch) = generation.filter(|e| *e >= 0) else {
                    return Err(GroupError::NotEmpty {
                        members: live.stored.members.len(),
                        group,
                    }
                    .into());
                };
                let Some(m) = live.stored.members.get(&member_id) else {
                    return Err(ApiError::UnknownMember(format!(
                        "member {member_id} is not in group {group}"
                    )));
                };
                if m.member_epoch != epoch {
                    return Err(ApiError::StaleMemberEpoch(format!(
                        "member {member_id} of group {group} is at epoch {}, the commit names {epoch}",
                        m.member_epoch
                    )));
                }
            }
            match (groups.map.get_mut(&group), generation) {
                (Some(g), Some(gen)) => {
                    // A static member's replaced predecessor (KIP-345).
                    g.check_instance(&member_id, group_instance_id)?;
                    if !g.members.contains_key(&member_id) {
                        return Err(ApiError::UnknownMember(format!(
                            "member {member_id} is not in group {group}"
                        )));
                    }
                    if gen != g.generation {
                        return Err(ApiError::IllegalGeneration(format!(
                            "group {group} is at generation {}, the commit names {gen}",
                            g.generation
                        )));
                    }
                    if g.phase == Phase::Completing {
                        return Err(ApiError::RebalanceInProgress(group));
                    }
                    if let Some(m) = g.members.get_mut(&member_id) {
                        m.last_seen = cairn_clock::now();
                    }
                }
                (Some(g), None) if !g.members.is_empty() => {
                    return Err(GroupError::NotEmpty {
                        members: g.members.len(),
                        group,
                    }
                    .into())
                }
                // Fenced at apply against the stored membership.
                _ => {}
            }
        }
        let (tx, rx) = oneshot::channel();
        self.commits
            .send(PendingCommit {
                commit: GroupCommit {
                    group,
                    generation,
                    member_id,
                    offsets,
                },
                reply: tx,
            })
            .await
            .map_err(|_| ApiError::Internal("the commit batcher stopped".into()))?;
        rx.await
            .map_err(|_| ApiError::Internal("the commit batcher dropped a commit".into()))?
    }

    /// A group's committed offsets, read on the coordinator: every commit
    /// it acknowledged is applied there.
    pub(crate) async fn offsets(
        &self,
        node: &Node,
        group: &str,
    ) -> Result<Vec<StoredOffset>, ApiError> {
        let _groups = self.lock(node).await?;
        Ok(group_offsets(node, group))
    }

    pub(crate) async fn describe(
        &self,
        node: &Node,
        name: &str,
    ) -> Result<GroupDescription, ApiError> {
        let groups = self.lock(node).await?;
        let offsets = group_offsets(node, name);
        if let Some(live) = groups.modern.get(name) {
            let g = &live.stored;
            return Ok(GroupDescription {
                group: name.to_owned(),
                state: cairn_group::modern::state_name(g).to_owned(),
                protocol_type: "consumer".to_owned(),
                protocol: cairn_group::modern::group_assignor(g).to_owned(),
                generation: g.group_epoch,
                leader: String::new(),
                members: g
                    .members
                    .values()
                    .map(|m| MemberDescription {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: Bytes::new(),
                        assignment: Bytes::new(),
                    })
                    .collect(),
                offsets,
            });
        }
        let known = node
            .meta_view
            .read(|s| s.group_names().iter().any(|n| n == name));
        let Some(g) = groups.map.get(name) else {
            if !known {
                return Err(ApiError::UnknownGroup(name.to_owned()));
            }
            return Ok(GroupDescription {
                group: name.to_owned(),
                state: Phase::Empty.name().to_owned(),
                protocol_type: node.meta_view.read(|s| {
                    s.groups
                        .get(name)
                        .map(|m| m.protocol_type.clone())
                        .unwrap_or_default()
                }),
                generation: node
                    .meta_view
                    .read(|s| s.groups.get(name).map_or(0, |m| m.generation)),
                offsets,
                ..Default::default()
            });
        };
        Ok(GroupDescription {
            group: name.to_owned(),
            state: g.phase.name().to_owned(),
            protocol_type: g.protocol_type.clone(),
            protocol: g.protocol.clone(),
            generation: g.generation,
            leader: g.leader.clone(),
            members: g
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.info.member_id.clone(),
                    group_instance_id: m.info.group_instance_id.clone(),
                    client_id: m.info.client_id.clone(),
                    client_host: m.info.client_host.clone(),
                    metadata: Bytes::copy_from_slice(m.info.metadata(&g.protocol)),
                    assignment: m.info.assignment.clone().into(),
                })
                .collect(),
            offsets,
        })
    }

    pub(crate) async fn list(&self, node: &Node) -> Result<Vec<GroupSummary>, ApiError> {
        let groups = self.lock(node).await?;
        let stored = node.meta_view.read(|s| {
            s.group_names()
                .into_iter()
                .map(|n| {
                    let t = s
                        .groups
                        .get(&n)
                        .map(|m| m.protocol_type.clone())
                        .unwrap_or_default();
                    (n, t)
                })
                .collect::<BTreeMap<_, _>>()
        });
        let mut out: BTreeMap<String, GroupSummary> = stored
            .into_iter()
            .map(|(name, protocol_type)| {
                (
                    name.clone(),
                    GroupSummary {
                        group: name,
                        state: Phase::Empty.name().into(),
                        protocol_type,
                        members: 0,
                        consumer_protocol: false,
                    },
                )
            })
            .collect();
        for g in groups.map.values() {
            out.insert(
                g.name.clone(),
                GroupSummary {
                    group: g.name.clone(),
                    state: g.phase.name().into(),
                    protocol_type: g.protocol_type.clone(),
                    members: g.members.len() as u32,
                    consumer_protocol: false,
                },
            );
        }
        let stored_modern: Vec<(String, cairn_group::modern::ModernGroup)> =
            node.meta_view.read(|s| {
                s.consumer_groups
                    .iter()
                    .map(|(n, g)| (n.clone(), g.clone()))
                    .collect()
            });
        for (name, stored) in stored_modern {
            let g = groups.modern.get(&name).map_or(&stored, |l| &l.stored);
            let classic_live = groups.map.get(&name).is_some_and(|c| !c.members.is_empty());
            if classic_live {
                continue;
            }
            out.insert(
                name.clone(),
                GroupSummary {
                    group: name.clone(),
                    state: cairn_group::modern::state_name(g).into(),
                    protocol_type: "consumer".into(),
                    members: g.members.len() as u32,
                    consumer_protocol: true,
                },
            );
        }
        for (name, live) in &groups.modern {
            out.entry(name.clone()).or_insert_with(|| GroupSummary {
                group: name.clone(),
                state: cairn_group::modern::state_name(&live.stored).into(),
                protocol_type: "consumer".into(),
                members: live.stored.members.len() as u32,
                consumer_protocol: true,
            });
        }
        Ok(out.into_values().collect())
    }

    pub(crate) async fn delete(&self, node: &Node, name: &str) -> Result<(), ApiError> {
        let mut groups = self.lock(node).await?;
        // Members whose session lapsed are gone now, not at the next tick
        // (a static member that closed without leaving).
        let now = cairn_clock::now();
        if groups
            .map
            .get_mut(name)
            .is_some_and(|g| Self::expire_members(g, now))
        {
            self.after_departure(node, &mut groups, name, now).await;
        }
        if let Some(g) = groups.map.get(name) {
            if !g.members.is_empty() {
                return Err(GroupError::NotEmpty {
                    group: name.to_owned(),
                    members: g.members.len(),
                }
                .into());
            }
        }
        if let Some(g) = groups.modern.get(name) {
            if !g.stored.members.is_empty() {
                return Err(GroupError::NotEmpty {
                    group: name.to_owned(),
                    members: g.stored.members.len(),
                }
                .into());
            }
        }
        match self
            .write(
                node,
                MetaCommand::DeleteGroup {
                    group: name.to_owned(),
                },
            )
            .await?
        {
            MetaResponse::Ok => {
                groups.map.remove(name);
                groups.modern.remove(name);
                tracing::info!(group = %name, "group deleted");
                Ok(())
            }
            MetaResponse::GroupError(e) => Err(e.into()),
            other => Err(ApiError::Internal(format!("{other:?}"))),
        }
    }
}

impl Coordinator {
    /// Kafka's OffsetDelete: removes `group`'s committed offsets of
    /// `partitions`, except on topics an active member subscribes to (those
    /// come back as `false`: not deleted). A group of another protocol type
    /// than "consumer" with members keeps all its offsets (its
    /// subscriptions cannot be read).
    pub(crate) async fn delete_offsets(
        &self,
        node: &Node,
        name: &str,
        partitions: Vec<(String, u32)>,
    ) -> Result<Vec<((String, u32), bool)>, ApiError> {
        let groups = self.lock(node).await?;
        let known = node
            .meta_view
            .read(|s| s.group_names().iter().any(|n| n == name));
        let live = groups.map.get(name).filter(|g| !g.members.is_empty());
        let live_modern = groups
            .modern
            .get(name)
            .filter(|g| !g.stored.members.is_empty());
        if !known && live.is_none() && live_modern.is_none() {
            return Err(ApiError::UnknownGroup(name.to_owned()));
        }
        let modern_topics = live_modern.map(|g| {
            let topics = modern::topics_view(node);
            let ids: std::collections::BTreeSet<u64> = g
                .stored
                .members
                .values()
                .flat_map(|m| cairn_group::modern::subscribed(m, &topics))
                .collect();
            topics
                .into_iter()
                .filter(|(_, t)| ids.contains(&t.id))
                .map(|(n, _)| n)
                .collect::<std::collections::BTreeSet<String>>()
        });
        let subscribed = |topic: &str| {
            modern_topics.as_ref().is_some_and(|t| t.contains(topic))
                || live.is_some_and(|g| {
                    g.protocol_type != "consumer"
                        || g.members.values().any(|m| {
                            cairn_group::Subscription::decode(m.info.metadata(&g.protocol))
                                .map_or(true, |sub| sub.topics.iter().any(|t| t == topic))
                        })
                })
        };
        let answers: Vec<((String, u32), bool)> = partitions
            .into_iter()
            .map(|tp| {
                let free = !subscribed(&tp.0);
                (tp, free)
            })
            .collect();
        let delete: Vec<(String, u32)> = answers
            .iter()
            .filter(|(_, free)| *free)
            .map(|(tp, _)| tp.clone())
            .collect();
        if !delete.is_empty() {
            let cmd = MetaCommand::DeleteOffsets {
                group: name.to_owned(),
                partitions: delete,
            };
            match self.write(node, cmd).await? {
                MetaResponse::Ok => {}
                MetaResponse::GroupError(e) => return Err(e.into()),
                other => return Err(ApiError::Internal(format!("{other:?}"))),
            }
        }
        Ok(answers)
    }
}

fn drop_state(g: &mut Groups, node: &Node) {
    g.modern.clear();
    if g.term.take().is_some() || !g.map.is_empty() {
        for (_, mut group) in g.map.drain() {
            group.fail_waiters(|| Coordinator::not_coordinator(node));
        }
        tracing::info!("no longer the group coordinator");
    }
}

fn group_offsets(node: &Node, group: &str) -> Vec<StoredOffset> {
    node.meta_view.read(|s| {
        s.group_offsets
            .get(group)
            .map(|by_topic| {
                by_topic
                    .iter()
                    .flat_map(|(topic, parts)| {
                        parts.iter().map(move |(p, c)| StoredOffset {
                            topic: topic.clone(),
                            partition: *p,
                            offset: c.offset,
                            metadata: c.metadata.clone(),
                            leader_epoch: c.leader_epoch,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Drives session expiry and rebalance deadlines.
pub(crate) async fn tick_loop(node: Arc<Node>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        node.coordinator.tick(&node).await;
    }
}

/// Turns queued commits into `CommitBatch` entries: whatever queued while
/// earlier entries were in flight goes into the next one.
pub(crate) async fn commit_loop(node: Arc<Node>) {
    let Some(mut rx) = node
        .coordinator
        .commit_rx
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    else {
        return;
    };
    let in_flight = Arc::new(Semaphore::new(COMMIT_ENTRIES_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_COMMITS_PER_ENTRY {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let node = node.clone();
        tokio::spawn(async move {
            let (commits, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|p| (p.commit, p.reply)).unzip();
            metrics::histogram!("cairn_group_commits_per_entry").record(commits.len() as f64);
            // Only commits carrying leader epochs need the newer command.
            let with_epochs = commits
                .iter()
                .any(|c| c.offsets.iter().any(|(_, _, o)| o.leader_epoch.is_some()));
            let cmd = if with_epochs {
                MetaCommand::CommitBatchWithEpochs(
                    commits
                        .into_iter()
                        .map(|c| {
                            let epochs = c.offsets.iter().map(|(_, _, o)| o.leader_epoch).collect();
                            (c, epochs)
                        })
                        .collect(),
                )
            } else {
                MetaCommand::CommitBatch(commits)
            };
            let result = node.coordinator.write(&node, cmd).await;
            drop(permit);
            match result {
                Ok(MetaResponse::Commits(results)) if results.len() == replies.len() => {
                    for (reply, r) in replies.into_iter().zip(results) {
                        let _ = reply.send(r.map_err(ApiError::from));
                    }
                }
                Ok(other) => {
                    for reply in replies {
                        let _ = reply.send(Err(ApiError::Internal(format!(
                            "commit batch answered {other:?}"
                        ))));
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    let not_coordinator = matches!(e, ApiError::NotCoordinator { .. });
                    for reply in replies {
                        let _ = reply.send(Err(if not_coordinator {
                            Coordinator::not_coordinator(&node)
                        } else {
                            ApiError::Internal(msg.clone())
                        }));
                    }
                }
            }
        });
    }
}
