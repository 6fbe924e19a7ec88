//! The node's background loops: heartbeats, the election driver for
//! partition groups, the reconciler, self-registration, retention and log compaction.

use crate::election::election_step;
use crate::election::ElectionStep;
use crate::election::ElectionView;
use openraft::async_runtime::watch::WatchReceiver;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;

use cairn_clock::Instant;
use std::time::Duration;

use cairn_metadata::MetaCommand;
use cairn_metadata::PartitionAssignment;
use cairn_metadata::TopicConfig;
use cairn_partition::CompactionConfig;
use cairn_partition::RetentionLimits;
use cairn_proto::internal::LedGroup;
use cairn_proto::internal::NodeHeartbeat;
use cairn_raft::GroupId;
use cairn_storage::StateBatch;
use cairn_storage::NODE_GROUP;
use openraft::BasicNode;
use openraft::ServerState;
use rand::Rng;

use crate::node::Node;
use crate::node::Proposal;
use crate::node::HEARTBEAT_INTERVAL;
use crate::replica::partition_raft_config;
use crate::replica::Replica;
use crate::NodeId;

pub(crate) const CLUSTER_ID_KEY: &[u8] = b"cluster_id";

/// How often the election driver looks at every local follower replica.
const ELECTION_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Sends every peer one heartbeat per interval, naming the groups this node
/// leads; records the peers' answers.
pub(crate) async fn heartbeat_loop(node: Arc<Node>) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = node.heartbeat_now.notified() => {}
        }
        let led = node.led_groups();
        for peer in node.transport.known_nodes() {
            if peer == node.id {
                continue;
            }
            let Ok(mut client) = node.transport.client(peer) else {
                continue;
            };
            let request = NodeHeartbeat {
                from: node.id,
                cluster_id: node.transport.cluster_id(),
                led: led.clone(),
                grpc_addr: node.config.advertised_grpc(),
            };
            let node = node.clone();
            tokio::spawn(async move {
                let call = tokio::time::timeout(HEARTBEAT_INTERVAL * 5, client.heartbeat(request));
                match call.await {
                    Ok(Ok(reply)) => {
                        let reply = reply.into_inner();
                        if let Err(e) = node.check_cluster(&reply.cluster_id) {
                            tracing::error!(peer, error = %e, "peer belongs to another cluster");
                            return;
                        }
                        node.liveness.touch(reply.from);
                    }
                    Ok(Err(status)) => {
                        tracing::debug!(peer, code = ?status.code(), message = status.message(), "heartbeat refused");
                    }
                    Err(_) => tracing::debug!(peer, "heartbeat timed out"),
                }
            });
        }
    }
}

struct ElectionTrack {
    term: u64,
    term_changed: Instant,
    missing_since: Option<Instant>,
    was_leader: bool,
}

/// Partition groups run no election timers of their own. This loop starts
/// an election for a group whose leader is gone: no live node claims it in
/// heartbeats. Replicas wait in assignment order (the preferred leader
/// first) with jitter, and run a pre-vote first so that a replica cut off
/// from the others cannot disrupt a working leader.
pub(crate) async fn election_loop(node: Arc<Node>) {
    let mut tracks: HashMap<GroupId, ElectionTrack> = HashMap::new();
    let mut tick = tokio::time::interval(ELECTION_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let now = cairn_clock::now();
        let mut led = Vec::new();
        let mut gained = false;
        let mut to_elect = Vec::new();
        let replicas = node.all_replicas();
        if let Some(why) = failed_storage(&node, &replicas) {
            fail_stop(&why);
        }
        for r in &replicas {
            let (state, term, leader, voter) = {
                let rx = r.raft.metrics();
                let m = rx.borrow_watched();
                let voter = m.membership_config.voter_ids().any(|v| v == node.id);
                (m.state, m.current_term, m.current_leader, voter)
            };
            let t = tracks.entry(r.group).or_insert(ElectionTrack {
                term,
                term_changed: now,
                missing_since: None,
                was_leader: false,
            });
            if t.term != term {
                t.term = term;
                t.term_changed = now;
            }
            if state == ServerState::Leader {
                if let Some(s) = r.status_if_leader(&node.liveness) {
                    led.push(LedGroup {
                        group: r.group,
                        term: s.term,
                        high_watermark: s.high_watermark,
                        log_start: s.log_start,
                        healthy: s.healthy,
                        voters: s.voters,
                        reassignment: s.reassignment,
                    });
                }
                gained |= !t.was_leader;
                t.was_leader = true;
                t.missing_since = None;
                continue;
            }
            t.was_leader = false;
            if !voter || state == ServerState::Shutdown {
                continue;
            }
            let jitter = rand::rng().random_range(0..100u64);
            let view = ElectionView {
                claimed: node.liveness.live_leader(r.group, term).is_some(),
                fresh_leader: leader.is_some_and(|l| l != node.id && node.liveness.is_alive(l))
                    && t.term_changed.elapsed() < Duration::from_secs(1),
                since_leader_contact: r.since_leader_contact(),
                missing_for: t.missing_since.map(|s| now.duration_since(s)),
                delay: Duration::from_millis(100 + 200 * r.slot as u64 + jitter),
            };
            match election_step(&view) {
                ElectionStep::LeaderPresent => t.missing_since = None,
                ElectionStep::Wait => {
                    t.missing_since.get_or_insert(now);
                }
                ElectionStep::Elect => {
                    t.missing_since = Some(now);
                    to_elect.push(r.clone());
                }
            }
        }
        if let Ok(mut l) = node.led.write() {
            *l = led;
        }
        if gained {
            node.heartbeat_now.notify_one();
        }
        for r in to_elect {
            tracing::info!(group = r.group, topic = %r.topic, partition = r.partition, "no live leader; starting an election");
            metrics::counter!("cairn_partition_elections_started_total").increment(1);
            if let Err(e) = r.raft.trigger().elect(true).await {
                tracing::warn!(group = r.group, error = %e, "election trigger failed");
            }
        }
        let present: HashSet<GroupId> = replicas.iter().map(|r| r.group).collect();
        tracks.retain(|g, _| present.contains(g));
    }
}

/// Exit status of a node that stopped because its storage failed (EX_IOERR).
const EXIT_STORAGE_FAILED: i32 = 74;

/// The first Raft group of this node (metadata or partition) that stopped on
/// a storage error or a panic; a group shut down on purpose does not count.
fn failed_storage(node: &Node, replicas: &[Arc<Replica>]) -> Option<String> {
    let meta = node.meta.metrics().borrow_watched().running_state.clone();
    if let Err(f) = meta {
        if !matches!(f, openraft::error::Fatal::Stopped) {
            return Some(format!("metadata group: {f}"));
        }
    }
    replicas.iter().find_map(|r| {
        let m = r.raft.metrics().borrow_watched().running_state.clone();
        match m {
            Err(openraft::error::Fatal::Stopped) | Ok(()) => None,
            Err(f) => Some(format!(
                "{}/{} (group {}): {f}",
                r.topic, r.partition, r.group
            )),
        }
    })
}

/// Fail-stop: a node that cannot write (disk full, I/O error) must not keep
/// serving with some replicas dead and others alive. It exits; what it
/// acknowledged is on disk (every acknowledgement follows a sync), and it
/// catches up from the leaders when restarted once the disk is fixed.
fn fail_stop(why: &str) -> ! {
    tracing::error!(error = %why, exit_code = EXIT_STORAGE_FAILED, "storage failed; stopping this node");
    eprintln!("cairn: storage failed ({why}); stopping (exit {EXIT_STORAGE_FAILED}). Fix the disk and restart the node.");
    std::process::exit(EXIT_STORAGE_FAILED)
}

/// Keeps the local partition replicas equal to what the metadata assigns
/// to this node: opens missing ones, removes deleted ones.
pub(crate) async fn reconcile_loop(node: Arc<Node>) {
    let config = match partition_raft_config(node.plants) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "partition raft config invalid; reconciler stopped");
            return;
        }
    };
    let mut version = node.meta_view.subscribe();
    let mut stale_checked = false;
    // Groups with data on this node, assigned elsewhere by the metadata:
    // found at start, opened anyway (see below).
    let mut lingering: BTreeSet<GroupId> = BTreeSet::new();
    loop {
        let (assigned, addrs, next_group) = node.meta_view.read(|s| {
            let assigned: BTreeMap<GroupId, (String, PartitionAssignment)> = s
                .topics
                .values()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (p.group, (t.name.clone(), p.clone())))
                })
                .collect();
            let addrs: BTreeMap<NodeId, String> = s
                .nodes
                .values()
                .map(|n| (n.id, n.rpc_addr.clone()))
                .collect();
            (assigned, addrs, s.next_group_id)
        });
        // Data of groups deleted while this node was down: only groups no
        // topic has any more. A group the metadata moved elsewhere may
        // still count this node among its committed voters (the move is
        // carried out by the group's leader, and may not have happened, or
        // may never finish): deleting its log and vote then would let the
        // node come back empty as a voter and help elect a replica that
        // lacks acknowledged records (reliability finding 12). Such a
        // replica is opened, and removed below like any other once a
        // committed membership of its group excludes it.
        if !stale_checked && next_group > 0 {
            stale_checked = true;
            if let Ok(groups) = node.store.groups() {
                for g in groups {
                    if g == cairn_metadata::METADATA_GROUP || g == NODE_GROUP || g > next_group {
                        continue;
                    }
                    match assigned.get(&g) {
                        None => {
                            tracing::info!(group = g, "deleting data of a deleted partition");
                            if let Err(e) = node.store.delete_group(g) {
                                tracing::error!(group = g, error = %e, "cannot delete stale group");
                            }
                        }
                        Some((_, p)) if !p.replicas.contains(&node.id) => {
                            tracing::info!(group = g, "keeping a replica moved away while this node was down until its group's committed membership excludes it");
                            lingering.insert(g);
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        lingering.retain(|g| assigned.contains_key(g));
        let desired: BTreeMap<GroupId, &(String, PartitionAssignment)> = assigned
            .iter()
            .filter(|(g, (_, p))| p.replicas.contains(&node.id) || lingering.contains(g))
            .map(|(g, a)| (*g, a))
            .collect();
        for (group, (topic, p)) in &desired {
            if node.replica(*group).is_some() {
                continue;
            }
            let bootstrap = if p.bootstrap.is_empty() {
                &p.replicas
            } else {
                &p.bootstrap
            };
            match Replica::open(
                node.id,
                &node.store,
                &node.transport,
                config.clone(),
                *group,
                topic,
                p.partition,
                &p.replicas,
                bootstrap,
                &addrs,
            )
            .await
            {
                Ok(r) => {
                    tracing::info!(group, topic = %topic, partition = p.partition, "replica opened");
                    if let Ok(mut map) = node.replicas.write() {
                        map.insert(*group, Arc::new(r));
                    }
                }
                Err(e) => tracing::error!(group, error = %e, "cannot open replica"),
            }
        }
        // As leader, bring each group's Raft membership to its assignment.
        for r in node.all_replicas() {
            if let Some((_, p)) = assigned.get(&r.group) {
                sync_membership(&node, &r, &p.replicas, &addrs);
            }
        }
        // Remove replicas of partitions the metadata created and then deleted,
        // and replicas moved away once the group's leader's last *committed*
        // membership no longer counts this node among its voters.
        let gone: Vec<Arc<Replica>> = node
            .all_replicas()
            .into_iter()
            .filter(|r| {
                if r.group > next_group {
                    return false;
                }
                let Some((_, p)) = assigned.get(&r.group) else {
                    return true;
                };
                if p.replicas.contains(&node.id) {
                    return false;
                }
                let s = node.group_status(r.group);
                s.leader.is_some_and(|l| l != node.id)
                    && !s.voters.is_empty()
                    && !s.voters.contains(&node.id)
            })
            .collect();
        for r in gone {
            lingering.remove(&r.group);
            if let Ok(mut map) = node.replicas.write() {
                map.remove(&r.group);
            }
            let _ = r.raft.shutdown().await;
            match node.store.delete_group(r.group) {
                Ok(()) => {
                    tracing::info!(group = r.group, topic = %r.topic, partition = r.partition, "replica removed")
                }
                Err(e) => {
                    tracing::error!(group = r.group, error = %e, "cannot delete replica data")
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), version.changed()).await;
    }
}

/// A replica change a group's leader is carrying out.
pub(crate) struct MembershipChange {
    target: BTreeSet<NodeId>,
    pub(crate) task: tokio::task::AbortHandle,
}

/// A learner counts as caught up (and is made a voter) within this many
/// entries of the leader's log.
const LEARNER_CAUGHT_UP_LAG: u64 = 64;
/// How often a replica change looks at its learners' progress.
const LEARNER_POLL: Duration = Duration::from_millis(200);
/// The longest one membership write (a learner added, the voters changed)
/// may take to commit; the change is tried again after.
const MEMBERSHIP_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// On the group's leader: when its voters differ from the assignment, adds
/// the new replicas as learners, waits until they caught up, then makes the
/// assignment the voter set. One change per group at a time; a change to
/// another target replaces it (a new replica that never comes up does not
/// block the partition's later reassignments: reliability finding 13).
/// What the change waits for is kept on the replica, for `topic describe`.
fn sync_membership(
    node: &Arc<Node>,
    r: &Arc<Replica>,
    replicas: &[NodeId],
    addrs: &BTreeMap<NodeId, String>,
) {
    let target: BTreeSet<NodeId> = replicas.iter().copied().collect();
    let voters: Option<BTreeSet<NodeId>> = {
        let rx = r.raft.metrics();
        let m = rx.borrow_watched();
        // Learners left from a replaced change count as a difference too.
        let stray = m
            .membership_config
            .membership()
            .learner_ids()
            .any(|l| !target.contains(&l));
        (m.state == ServerState::Leader)
            .then(|| m.membership_config.voter_ids().collect::<BTreeSet<_>>())
            .filter(|v| *v != target || stray)
    };
    let Ok(mut changes) = node.membership_changes.lock() else {
        return;
    };
    let Some(voters) = voters else {
        // Not the leader (any change of ours stops; the new leader carries
        // it on), or nothing to change.
        if let Some(c) = changes.remove(&r.group) {
            c.task.abort();
        }
        set_status(r, String::new());
        return;
    };
    if let Some(c) = changes.get(&r.group) {
        if c.target == target && !c.task.is_finished() {
            return;
        }
        if !c.task.is_finished() {
            tracing::info!(group = r.group, from = ?c.target, to = ?target, "a newer reassignment replaces the one in progress");
            c.task.abort();
        }
    }
    let node2 = node.clone();
    let r2 = r.clone();
    let addrs = addrs.clone();
    let target2 = target.clone();
    let task = tokio::spawn(async move {
        let (node, r, target) = (node2, r2, target2);
        tracing::info!(group = r.group, topic = %r.topic, partition = r.partition, from = ?voters, to = ?target, "changing replicas");
        match change_replicas(&node, &r, &voters, &target, &addrs).await {
            Ok(()) => {
                tracing::info!(group = r.group, voters = ?target, "replicas changed");
                set_status(&r, String::new());
            }
            Err(e) => {
                tracing::warn!(group = r.group, error = %e, "replica change failed; will retry");
                set_status(&r, format!("to {target:?}: failed, will retry: {e}"));
            }
        }
    });
    changes.insert(
        r.group,
        MembershipChange {
            target,
            task: task.abort_handle(),
        },
    );
}

fn set_status(r: &Replica, status: String) {
    if let Ok(mut s) = r.reassignment.lock() {
        *s = status;
    }
}

/// The steps of one replica change; see [`sync_membership`].
async fn change_replicas(
    node: &Node,
    r: &Replica,
    voters: &BTreeSet<NodeId>,
    target: &BTreeSet<NodeId>,
    addrs: &BTreeMap<NodeId, String>,
) -> Result<(), String> {
    let new: Vec<NodeId> = target.difference(voters).copied().collect();
    for id in &new {
        set_status(r, format!("to {target:?}: adding node {id} as a learner"));
        let addr = addrs.get(id).cloned().unwrap_or_default();
        // openraft takes writes only within the leader's lease, and an idle
        // partition's lease lapses (no periodic heartbeats).
        r.renew_lease_if_stale().await;
        let add = r.raft.add_learner(*id, BasicNode::new(addr), false);
        match tokio::time::timeout(MEMBERSHIP_WRITE_TIMEOUT, add).await {
            Err(_) => return Err(format!("adding node {id} as a learner did not commit")),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(_)) => {}
        }
    }
    // Wait, as long as it takes, for the learners to catch up; a newer
    // reassignment aborts this task.
    loop {
        let lagging: Vec<String> = {
            let rx = r.raft.metrics();
            let m = rx.borrow_watched();
            if m.state != ServerState::Leader {
                return Err("no longer the leader".into());
            }
            let last = m.last_log_index.unwrap_or(0);
            new.iter()
                .filter_map(|id| {
                    let matched = m
                        .replication
                        .as_ref()
                        .and_then(|repl| repl.get(id).cloned())
                        .flatten()
                        .map(|l| l.index);
                    if matched.is_some_and(|i| i + LEARNER_CAUGHT_UP_LAG >= last) {
                        return None;
                    }
                    let why = if !node.liveness.is_alive(*id) {
                        "is down (no heartbeat)".to_string()
                    } else {
                        match matched {
                            Some(i) => format!("is catching up ({i} of {last} entries)"),
                            None => "has not answered yet".to_string(),
                        }
                    };
                    Some(format!("node {id} {why}"))
                })
                .collect()
        };
        if lagging.is_empty() {
            break;
        }
        set_status(r, format!("to {target:?}: waiting: {}", lagging.join(", ")));
        tokio::time::sleep(LEARNER_POLL).await;
    }
    if voters != target {
        set_status(r, format!("to {target:?}: changing the voters"));
        r.renew_lease_if_stale().await;
        let change = r.raft.change_membership(target.clone(), false);
        match tokio::time::timeout(MEMBERSHIP_WRITE_TIMEOUT, change).await {
            Err(_) => return Err("the voter change did not commit".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(_)) => {}
        }
    }
    // Learners of an earlier target that this one replaced.
    let stray: BTreeSet<NodeId> = r
        .raft
        .metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .learner_ids()
        .filter(|l| !target.contains(l))
        .collect();
    if !stray.is_empty() {
        set_status(r, format!("to {target:?}: removing learners {stray:?}"));
        r.renew_lease_if_stale().await;
        let remove = r
            .raft
            .change_membership(openraft::ChangeMembers::RemoveNodes(stray), false);
        match tokio::time::timeout(MEMBERSHIP_WRITE_TIMEOUT, remove).await {
            Err(_) => return Err("removing the learners did not commit".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(_)) => {}
        }
    }
    Ok(())
}

/// Gives the cluster its id (on the first metadata leader), registers this
/// node in the metadata, learns peers' addresses, and remembers the cluster
/// id in the data dir.
pub(crate) async fn registration_loop(node: Arc<Node>) {
    let mut version = node.meta_view.subscribe();
    loop {
        let (cluster_id, mine, nodes) = node.meta_view.read(|s| {
            (
                s.cluster_id.clone(),
                s.nodes.get(&node.id).cloned(),
                s.nodes
                    .values()
                    .map(|n| (n.id, n.rpc_addr.clone()))
                    .collect::<Vec<_>>(),
            )
        });
        for (id, addr) in nodes {
            node.transport.set_address(id, &addr);
        }
        match cluster_id {
            None if node.is_meta_leader() => {
                let id = format!("{:032x}", rand::random::<u128>());
                if let Err(e) = node
                    .propose(Proposal::Command(MetaCommand::InitCluster {
                        cluster_id: id,
                    }))
                    .await
                {
                    tracing::warn!(error = %e, "cannot set the cluster id yet");
                }
            }
            Some(id) if node.transport.cluster_id() != id => {
                let mut batch = StateBatch::new();
                batch.put(NODE_GROUP, CLUSTER_ID_KEY, id.as_bytes());
                let stored = match node.store.write(batch) {
                    Ok(()) => node.store.sync().await,
                    Err(e) => Err(e),
                };
                match stored {
                    Ok(()) => {
                        tracing::info!(cluster_id = %id, "cluster id recorded");
                        node.transport.set_cluster_id(&id);
                    }
                    Err(e) => tracing::error!(error = %e, "cannot record the cluster id"),
                }
            }
            _ => {}
        }
        let (retired_here, retired_learners) = node
            .meta_view
            .read(|s| (s.retired.contains(&node.id), s.retired.clone()));
        if node.is_meta_leader() {
            drop_retired_learners(&node, &retired_learners).await;
        }
        if retired_here {
            // Removed from the cluster: nothing to register, nothing to serve.
            // Its replicas go as their groups' committed memberships leave it.
            tracing::warn!(
                node = node.id,
                "this node was removed from the cluster; stop it (its id is never used again)"
            );
            let _ = tokio::time::timeout(Duration::from_secs(10), version.changed()).await;
            continue;
        }
        if node.meta_leader().is_some() && mine.as_ref() != Some(&node.info()) {
            if let Err(e) = node
                .propose(Proposal::Command(MetaCommand::RegisterNode(node.info())))
                .await
            {
                tracing::warn!(error = %e, "cannot register this node yet");
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), version.changed()).await;
    }
}

/// On the metadata leader: takes removed nodes out of the metadata group's
/// membership (they joined as learners), so that the leader stops sending
/// them entries.
async fn drop_retired_learners(node: &Node, retired: &std::collections::BTreeSet<NodeId>) {
    let members: Vec<NodeId> = node
        .meta
        .metrics()
        .borrow_watched()
        .membership_config
        .nodes()
        .map(|(id, _)| *id)
        .filter(|id| retired.contains(id))
        .collect();
    if members.is_empty() {
        return;
    }
    let gone: std::collections::BTreeSet<NodeId> = members.into_iter().collect();
    match tokio::time::timeout(
        Duration::from_secs(5),
        node.meta
            .change_membership(openraft::ChangeMembers::RemoveNodes(gone.clone()), false),
    )
    .await
    {
        Ok(Ok(_)) => tracing::info!(nodes = ?gone, "removed nodes dropped from the metadata group"),
        Ok(Err(e)) => {
            tracing::warn!(nodes = ?gone, error = %e, "cannot drop removed nodes from the metadata group yet")
        }
        Err(_) => {
            tracing::warn!(nodes = ?gone, "dropping removed nodes from the metadata group timed out")
        }
    }
}

/// The broker defaults of `retention.ms` and `retention.bytes`
/// (`log.retention.ms`, `log.retention.bytes`) as a node applies them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetentionDefaults {
    pub ms: i64,
    pub bytes: i64,
    /// The cluster-wide `log.cleanup.policy` deletes (the default).
    pub deletes: bool,
}

impl RetentionDefaults {
    pub(crate) fn of(node: &Node) -> Self {
        RetentionDefaults {
            ms: node.broker_default("log.retention.ms"),
            bytes: node.broker_default("log.retention.bytes"),
            deletes: policy_deletes(&node.cleanup_policy(&BTreeMap::new())),
        }
    }
}

/// Whether a `cleanup.policy` value deletes old records.
fn policy_deletes(policy: &str) -> bool {
    policy.split(',').any(|p| p.trim() == "delete")
}

/// A topic's delete-retention limits: its `retention.ms` / `retention.bytes`,
/// else the broker defaults; `None` when its `cleanup.policy` does not
/// include `delete` or neither limit is set.
pub(crate) fn retention_limits(
    defaults: RetentionDefaults,
    topic: &BTreeMap<String, String>,
    now_ms: i64,
) -> Option<RetentionLimits> {
    let deletes = match topic.get(TopicConfig::CleanupPolicy.key()) {
        Some(p) => policy_deletes(p),
        None => defaults.deletes,
    };
    if !deletes {
        return None;
    }
    let int = |key: TopicConfig, default: i64| {
        topic
            .get(key.key())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(default)
    };
    let ms = int(TopicConfig::RetentionMs, defaults.ms);
    let bytes = int(TopicConfig::RetentionBytes, defaults.bytes);
    let limits = RetentionLimits {
        now_ms,
        max_age_ms: (ms >= 0).then_some(ms),
        max_bytes: u64::try_from(bytes).ok(),
    };
    (limits.max_age_ms.is_some() || limits.max_bytes.is_some()).then_some(limits)
}

/// Retention, every `retention_check_interval_ms`: each partition this node
/// leads with a live lease deletes whole batches from its front by time
/// and by size (a replicated `Trim`); every local replica whose log start
/// moved then cuts a snapshot so that the deleted entries are purged from
/// the Raft log, i.e. from disk.
pub(crate) async fn retention_loop(node: Arc<Node>) {
    let period = Duration::from_millis(node.config.retention_check_interval_ms.max(10));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Per group: the purge point whose range was last compacted.
    let mut compacted: HashMap<GroupId, u64> = HashMap::new();
    loop {
        tick.tick().await;
        compact_purged(&node, &mut compacted).await;
        let configs: HashMap<String, BTreeMap<String, String>> = node.meta_view.read(|s| {
            s.topics
                .values()
                .map(|t| (t.name.clone(), t.configs.clone()))
                .collect()
        });
        let now_ms = cairn_clock::system_time()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let defaults = RetentionDefaults::of(&node);
        for r in node.all_replicas() {
            r.snapshot_if_trimmed().await;
            if !r.is_leader() {
                continue;
            }
            let Some(limits) = configs
                .get(&r.topic)
                .and_then(|c| retention_limits(defaults, c, now_ms))
            else {
                continue;
            };
            let start = match r.log.retention_start(limits).await {
                Ok(Some(start)) if start > r.log.log_start() => start,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(group = r.group, topic = %r.topic, partition = r.partition, error = %e, "retention check failed");
                    continue;
                }
            };
            let before = r.log.log_start();
            match r.propose_trim(start).await {
                Ok(log_start) => {
                    metrics::counter!("cairn_retention_trims_total").increment(1);
                    metrics::counter!("cairn_retention_records_deleted_total")
                        .increment(log_start.saturating_sub(before));
                    tracing::info!(group = r.group, topic = %r.topic, partition = r.partition, from = before, log_start, "retention deleted records");
                }
                Err(e) => {
                    tracing::debug!(group = r.group, topic = %r.topic, partition = r.partition, error = %e, "retention trim not applied")
                }
            }
        }
    }
}

/// A purge deletes log entries with a range tombstone; their bytes (blob
/// files) stay on disk until a compaction passes over the range. Compacts
/// the purged range of each group whose purge point moved, one at a time,
/// off the async threads.
async fn compact_purged(node: &Arc<Node>, compacted: &mut HashMap<GroupId, u64>) {
    let replicas = node.all_replicas();
    for r in &replicas {
        let Some(purged) = r.purged_index() else {
            continue;
        };
        if compacted.get(&r.group) == Some(&purged) {
            continue;
        }
        compacted.insert(r.group, purged);
        let store = node.store.clone();
        let group = r.group;
        let started = cairn_clock::now();
        match tokio::task::spawn_blocking(move || store.compact_log_below(group, purged + 1)).await
        {
            Ok(()) => {
                tracing::info!(
                    group,
                    purged,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "compacted the purged log range"
                )
            }
            Err(e) => {
                tracing::warn!(group, error = %e, "compaction of the purged log range failed")
            }
        }
    }
    let present: HashSet<GroupId> = replicas.iter().map(|r| r.group).collect();
    compacted.retain(|g, _| present.contains(g));
}

/// Whether a `cleanup.policy` value asks for compaction.
pub(crate) fn is_compacted(policy: &str) -> bool {
    policy.split(',').any(|p| p.trim() == "compact")
}

/// Log compaction (`cleanup.policy=compact` or `compact,delete`): every
/// `compaction_interval_ms`, compacts what is new in each local replica of a
/// compacted topic. Each replica compacts its own copy (as in Kafka). The
/// work goes in bounded steps (a few hundred entries, one atomic RocksDB
/// write each) on a blocking thread, with a pause as long as the step
/// between steps, so compaction takes at most about half of one core and
/// produce and fetch are never held up behind a whole pass.
pub(crate) async fn compaction_loop(node: Arc<Node>) {
    let interval_ms = node.config.compaction_interval_ms;
    if interval_ms == 0 {
        tracing::info!("log compaction is off (compaction_interval_ms = 0)");
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for r in node.all_replicas() {
            let Ok(topic) = node.topic(&r.topic) else {
                continue;
            };
            if !is_compacted(&node.cleanup_policy(&topic.configs)) {
                continue;
            }
            let mut config =
                CompactionConfig::new(TopicConfig::DeleteRetentionMs.int_in(&topic.configs));
            config.min_compaction_lag_ms = TopicConfig::MinCompactionLagMs
                .int_in(&topic.configs)
                .max(0);
            let started = cairn_clock::now();
            let (mut steps, mut scanned, mut rewritten, mut removed) =
                (0u64, 0usize, 0usize, 0usize);
            loop {
                let now_ms = cairn_clock::system_time()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                // RocksDB reads and writes block: run the step off the
                // runtime's worker threads.
                let step_started = cairn_clock::now();
                let log = r.log.clone();
                let step_config = config.clone();
                let handle = tokio::runtime::Handle::current();
                let result = tokio::task::spawn_blocking(move || {
                    handle.block_on(log.compact_step(&step_config, now_ms))
                })
                .await;
                let result = match result {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(group = r.group, error = %e, "compaction step panicked");
                        break;
                    }
                };
                match result {
                    Ok(step) => {
                        steps += 1;
                        scanned += step.scanned_entries;
                        rewritten += step.rewritten_entries;
                        removed += step.removed_records;
                        if step.done {
                            break;
                        }
                    }
                    Err(e) => {
                        metrics::counter!("cairn_compaction_errors_total").increment(1);
                        tracing::warn!(group = r.group, topic = %r.topic, partition = r.partition, error = %e, "compaction step failed; retrying next interval");
                        break;
                    }
                }
                // At most half of one core: pause as long as the step took.
                tokio::time::sleep(step_started.elapsed()).await;
            }
            metrics::counter!("cairn_compaction_steps_total").increment(steps);
            metrics::counter!("cairn_compaction_removed_records_total").increment(removed as u64);
            metrics::counter!("cairn_compaction_rewritten_entries_total")
                .increment(rewritten as u64);
            if scanned > 0 || removed > 0 {
                tracing::info!(
                    group = r.group,
                    topic = %r.topic,
                    partition = r.partition,
                    scanned_entries = scanned,
                    rewritten_entries = rewritten,
                    removed_records = removed,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "compacted"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn topic_retention_overrides_the_cluster_default() {
        let config = RetentionDefaults {
            ms: 1000,
            bytes: 5000,
            deletes: true,
        };
        let l = retention_limits(config, &topic(&[]), 7).unwrap();
        assert_eq!(
            (l.now_ms, l.max_age_ms, l.max_bytes),
            (7, Some(1000), Some(5000))
        );
        let l = retention_limits(
            config,
            &topic(&[("retention.ms", "-1"), ("retention.bytes", "10")]),
            7,
        )
        .unwrap();
        assert_eq!((l.max_age_ms, l.max_bytes), (None, Some(10)));
        assert!(retention_limits(
            config,
            &topic(&[("retention.ms", "-1"), ("retention.bytes", "-1")]),
            7
        )
        .is_none());
    }

    #[test]
    fn only_delete_policies_delete() {
        let config = RetentionDefaults {
            ms: 604_800_000,
            bytes: -1,
            deletes: true,
        };
        assert!(retention_limits(config, &topic(&[("cleanup.policy", "compact")]), 0).is_none());
        for p in ["delete", "compact,delete", "delete,compact"] {
            assert!(
                retention_limits(config, &topic(&[("cleanup.policy", p)]), 0).is_some(),
                "{p}"
            );
        }
    }

    #[test]
    fn cleanup_policies_that_compact() {
        for p in [
            "compact",
            "compact,delete",
            "delete,compact",
            "delete, compact",
        ] {
            assert!(is_compacted(p), "{p}");
        }
        for p in ["delete", "", "compaction"] {
            assert!(!is_compacted(p), "{p}");
        }
    }
}
