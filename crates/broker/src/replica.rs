//! One local replica of a partition: its Raft group and its reader.

use openraft::async_runtime::watch::WatchReceiver;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_partition::PartitionLog;
use cairn_partition::PartitionStateMachine;
use cairn_raft::GroupId;
use cairn_raft::Liveness;
use cairn_raft::Raft;
use cairn_raft::Transport;
use cairn_storage::NodeStore;
use openraft::BasicNode;
use openraft::Config;
use openraft::ServerState;
use openraft::SnapshotPolicy;

use crate::error::ServerError;
use crate::node::network;
use crate::node::GroupStatus;
use crate::NodeId;

/// A follower counts as healthy while it is alive and this close to the
/// leader's last log index.
const HEALTHY_LAG_ENTRIES: u64 = 1000;

use crate::lease::PARTITION_ELECTION_TIMEOUT_MAX_MS;
use crate::lease::PARTITION_ELECTION_TIMEOUT_MIN_MS;
use crate::lease::PARTITION_LEASE as LEASE;
use crate::lease::PARTITION_LEASE_RENEW_AFTER as LEASE_RENEW_AFTER;

/// openraft settings of partition groups: no per-group timers at all.
/// Heartbeats are node-level and elections are triggered by the node's
/// election driver (see `tasks.rs`), so a thousand idle groups cost nothing.
pub(crate) fn partition_raft_config(plants: crate::Plants) -> Result<Arc<Config>, ServerError> {
    let config = Config {
        cluster_name: "cairn-partition".to_string(),
        enable_tick: false,
        enable_heartbeat: false,
        enable_elect: false,
        heartbeat_interval: 100,
        // The maximum is also the follower's leader lease: a vote request
        // is refused for this long after the last message from a leader
        // (`lease.rs` relates it to the leader's lease).
        election_timeout_min: PARTITION_ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: PARTITION_ELECTION_TIMEOUT_MAX_MS,
        // Snapshots are cut on demand, after retention moved the log start
        // (tasks.rs), just below the first retained entry; everything they
        // cover is purged at once.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        max_payload_entries: 512,
        // A restarted leader must win a new election, in a new term, before
        // it appends. openraft's default lets it carry on in its old term;
        // but a leader sends entries before its own fsync, so after a power
        // loss it may have lost entries a follower kept, and re-using their
        // log ids (same index, same term) for new entries makes the logs
        // diverge where Raft's log matching cannot see it: an acknowledged
        // record replaced on one replica (reliability finding 5).
        enable_leader_restore: Some(plants.leader_restore),
        ..Default::default()
    };
    config
        .validate()
        .map(Arc::new)
        .map_err(|e| ServerError::Raft(e.to_string()))
}

pub struct Replica {
    pub group: GroupId,
    pub topic: String,
    pub partition: u32,
    /// Position of this node in the assignment: 0 is the preferred leader.
    pub slot: usize,
    pub raft: Raft<PartitionStateMachine>,
    pub log: PartitionLog,
    /// When a leader's message (entries, heartbeat, snapshot) last reached
    /// this replica: its promise not to elect anyone, itself included,
    /// within the refusal window (`lease.rs`).
    leader_contact: std::sync::Mutex<Option<cairn_clock::Instant>>,
    /// On the leader: the replica change it is carrying out and what it
    /// waits for (empty: none). Shown by `cairn topic describe`.
    pub(crate) reassignment: std::sync::Mutex<String>,
    /// Test mode only: reads wait while this file exists
    /// ([`crate::HOLD_READ_FILE`]).
    hold_read: Option<std::path::PathBuf>,
}

impl Replica {
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn open(
        me: NodeId,
        store: &NodeStore,
        transport: &Arc<Transport>,
        config: Arc<Config>,
        group: GroupId,
        topic: &str,
        partition: u32,
        replicas: &[NodeId],
        bootstrap: &[NodeId],
        addrs: &BTreeMap<NodeId, String>,
    ) -> Result<Replica, ServerError> {
        let (sm, shared) = PartitionStateMachine::open(store.clone(), group)
            .map_err(|e| ServerError::Raft(format!("partition group {group}: {e}")))?;
        let log = PartitionLog::new(store.clone(), shared);
        let raft = Raft::new(
            me,
            config,
            network(transport, group),
            store.log_store(group),
            sm,
        )
        .await
        .map_err(|e| ServerError::Raft(format!("partition group {group}: {e}")))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ServerError::Raft(e.to_string()))?;
        // Only the replicas a group was created with bootstrap it; a replica
        // added by a reassignment is brought in by the leader.
        if !initialized && bootstrap.contains(&me) {
            // The preferred leader bootstraps the group (openraft starts an
            // election right after initializing). The others do the same
            // only if it has not reached them after a while, e.g. because
            // the preferred leader was down when the topic was created.
            let members: BTreeMap<NodeId, BasicNode> = bootstrap
                .iter()
                .map(|id| {
                    (
                        *id,
                        BasicNode::new(addrs.get(id).cloned().unwrap_or_default()),
                    )
                })
                .collect();
            let slot = replicas
                .iter()
                .position(|r| *r == me)
                .unwrap_or(replicas.len());
            let raft = raft.clone();
            tokio::spawn(async move {
                if slot > 0 {
                    tokio::time::sleep(Duration::from_secs(3 * slot as u64)).await;
                    if raft.is_initialized().await.unwrap_or(true) {
                        return;
                    }
                }
                if let Err(e) = raft.initialize(members).await {
                    tracing::debug!(group, error = %e, "partition group initialize");
                }
            });
        }
        Ok(Replica {
            group,
            topic: topic.to_string(),
            partition,
            slot: replicas
                .iter()
                .position(|r| *r == me)
                .unwrap_or(replicas.len()),
            raft,
            log,
            leader_contact: std::sync::Mutex::new(None),
            reassignment: std::sync::Mutex::new(String::new()),
            hold_read: store
                .hold_apply_path()
                .map(|p| p.with_file_name(crate::HOLD_READ_FILE)),
        })
    }

    /// Fault injection only (`test_lose_unsynced_on_crash`): waits while
    /// [`crate::HOLD_READ_FILE`] exists, as a read stalled by a slow disk.
    pub(crate) async fn hold_read_for_tests(&self) {
        if let Some(hold) = &self.hold_read {
            if hold.exists() {
                metrics::gauge!("cairn_test_reads_held").increment(1.0);
                while hold.exists() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                metrics::gauge!("cairn_test_reads_held").decrement(1.0);
            }
        }
    }

    /// Notes that a leader's message was just handled by this replica.
    pub(crate) fn note_leader_contact(&self) {
        if let Ok(mut t) = self.leader_contact.lock() {
            *t = Some(cairn_clock::now());
        }
    }

    /// How long ago a leader's message was last handled by this replica.
    /// openraft lets a candidate vote for itself without checking; the
    /// election driver looks at this first (`election.rs`), so a replica
    /// that acknowledged a leader does not help depose it while that
    /// leader's lease may run.
    pub(crate) fn since_leader_contact(&self) -> Option<Duration> {
        self.leader_contact
            .lock()
            .ok()
            .and_then(|t| *t)
            .map(|t| t.elapsed())
    }

    /// A leader accepts writes only while a quorum acknowledged it within
    /// its lease (400 ms, `lease.rs`). Partition groups send no periodic heartbeats, so
    /// an idle leader's lease lapses; this renews it with one heartbeat
    /// round before a write, and waits for the acknowledgement.
    pub(crate) async fn renew_lease_if_stale(&self) {
        let stale = {
            let rx = self.raft.metrics();
            let m = rx.borrow_watched();
            // A sole voter is its own quorum: there is nobody to ask (and
            // waiting for an answer cost every write 500 ms on one node).
            m.state == ServerState::Leader
                && !m.membership_config.voter_ids().all(|v| v == m.id)
                && m.last_quorum_acked
                    .as_ref()
                    .is_none_or(|t| openraft::Instant::elapsed(&**t) > LEASE_RENEW_AFTER)
        };
        if !stale {
            return;
        }
        metrics::counter!("cairn_partition_lease_renewals_total").increment(1);
        if self.raft.trigger().heartbeat().await.is_err() {
            return;
        }
        let _ = self
            .raft
            .wait(Some(LEASE))
            .metrics(
                |m| {
                    m.state != ServerState::Leader
                        || m.last_quorum_acked
                            .as_ref()
                            .is_some_and(|t| openraft::Instant::elapsed(&**t) < LEASE_RENEW_AFTER)
                },
                "leader lease renewed",
            )
            .await;
    }

    /// Whether this replica leads with a live lease: a quorum acknowledged
    /// it within the last 400 ms (`lease.rs`). A leader cut off from its followers loses
    /// this within half a second and stops taking writes. A group whose only
    /// voter is this node is its own quorum: its lease never lapses (an idle
    /// one has no acknowledgement to renew it by).
    pub(crate) fn lease_valid(&self) -> bool {
        let rx = self.raft.metrics();
        let m = rx.borrow_watched();
        let sole_voter = m.membership_config.voter_ids().all(|v| v == m.id);
        m.state == ServerState::Leader
            && (sole_voter
                || m.last_quorum_acked
                    .as_ref()
                    .is_some_and(|t| openraft::Instant::elapsed(&**t) < LEASE))
    }

    /// Whether this replica has applied an entry of its current term: a new
    /// leader has then applied everything its predecessors committed, so
    /// its high watermark is the partition's (before that it can lag, and a
    /// consumer at the true end would be told its offset is out of range).
    pub(crate) fn applied_own_term(&self) -> bool {
        let rx = self.raft.metrics();
        let m = rx.borrow_watched();
        m.last_applied
            .as_ref()
            .is_some_and(|l| l.leader_id.term == m.current_term)
    }

    /// Whether a majority of the group's voters (this node included) are
    /// alive as seen by node-level heartbeats. A leader that sees no quorum
    /// is cut off: it no longer names itself leader to clients.
    pub(crate) fn sees_quorum(&self, liveness: &Liveness) -> bool {
        let rx = self.raft.metrics();
        let m = rx.borrow_watched();
        let voters: Vec<NodeId> = m.membership_config.voter_ids().collect();
        let alive = voters
            .iter()
            .filter(|v| **v == m.id || liveness.is_alive(**v))
            .count();
        alive * 2 > voters.len()
    }

    /// On every replica: when retention moved the log start past entries
    /// the last snapshot does not cover, asks openraft for a snapshot; it
    /// is cut just before the first retained entry, and openraft purges the
    /// log up to it (`max_in_snapshot_log_to_keep = 0`).
    pub(crate) async fn snapshot_if_trimmed(&self) {
        let Some(upto) = self.log.purge_wanted() else {
            return;
        };
        let covered = self
            .raft
            .metrics()
            .borrow_watched()
            .snapshot
            .map(|l| l.index);
        if covered.is_some_and(|c| c >= upto) {
            return;
        }
        tracing::debug!(group = self.group, upto, covered = ?covered, "snapshot for retention");
        if let Err(e) = self.raft.trigger().snapshot().await {
            tracing::warn!(group = self.group, error = %e, "snapshot trigger failed");
        }
    }

    /// The last log index openraft purged, if any.
    pub(crate) fn purged_index(&self) -> Option<u64> {
        self.raft.metrics().borrow_watched().purged.map(|l| l.index)
    }

    /// On the leader: proposes the log start `log_start` to every replica.
    pub(crate) async fn propose_trim(&self, log_start: u64) -> Result<u64, String> {
        self.renew_lease_if_stale().await;
        if !self.lease_valid() {
            return Err("not the leader with a live lease".into());
        }
        let write = self
            .raft
            .client_write(cairn_raft::Request::Trim { log_start });
        match tokio::time::timeout(Duration::from_secs(5), write).await {
            Err(_) => Err("trim not committed within 5 s".into()),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(resp)) => match resp.data {
                cairn_raft::Response::Trimmed { log_start } => Ok(log_start),
                other => Err(format!("partition answered {other:?}")),
            },
        }
    }

    /// The Raft term this replica is in: the partition's leader epoch as
    /// the Kafka API shows it.
    pub(crate) fn term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().state == ServerState::Leader
    }

    /// This replica's view of its group when it is the leader.
    pub(crate) fn status_if_leader(&self, liveness: &Liveness) -> Option<GroupStatus> {
        let rx = self.raft.metrics();
        let m = rx.borrow_watched();
        if m.state != ServerState::Leader {
            return None;
        }
        let last = m.last_log_index.unwrap_or(0);
        let mut healthy = vec![m.id];
        if let Some(repl) = &m.replication {
            for (node, matched) in repl {
                let matched = matched.as_ref().map(|l| l.index).unwrap_or(0);
                if *node != m.id
                    && liveness.is_alive(*node)
                    && matched + HEALTHY_LAG_ENTRIES >= last
                {
                    healthy.push(*node);
                }
            }
        }
        healthy.sort_unstable();
        // The *committed* membership: a replica removes itself only once a
        // committed configuration excludes it. The effective one changes
        // when the leader appends a new configuration, before it commits;
        // if it never does, the replica is still a voter (finding 12).
        let voters = m.committed_membership_config.voter_ids().collect();
        Some(GroupStatus {
            voters,
            leader: Some(m.id),
            term: m.current_term,
            high_watermark: self.log.high_watermark(),
            log_start: self.log.log_start(),
            healthy,
            reassignment: self
                .reassignment
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default(),
        })
    }
}
