//! [`Consumer`]: a member of a consumer group that reads the partitions the
//! group assigns it, tracks its position in each, and commits them.
//!
//! It speaks Kafka's group protocol through the coordinator: join, the
//! leader computes the assignment with the chosen assignor (`range`,
//! `roundrobin`, `cooperative-sticky`), sync, then heartbeats from a
//! background task. A heartbeat answered `REBALANCE_IN_PROGRESS` (or a fenced
//! generation) makes the next [`Consumer::poll`] join again. Commits carry
//! the member's generation, so a member that was rebalanced out cannot
//! overwrite its successor's offsets.
//!
//! Delivery is at least once: [`Consumer::poll`] returns records and moves the
//! position past them; committing (automatically every
//! `auto_commit_interval`, or with [`Consumer::commit`]) stores the
//! position. Records returned after the last commit are read again by
//! whoever owns the partition next.
//!
//! With `cooperative-sticky`, a rebalance only takes away the partitions
//! that move (the member revokes them, then joins again); with the eager
//! assignors every member gives up everything before it joins.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cairn_group::{
    assignor_by_name, decode_assignment, encode_assignment, MemberSubscription, Subscription,
    TopicPartition, CONSUMER_PROTOCOL_TYPE, NO_GENERATION,
};
use cairn_proto::v1::{ErrorCode, GroupProtocol, JoinGroupRequest, MemberAssignment, OffsetCommit};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::{Client, ClientError, ConsumedRecord, FetchedRecords, OffsetSpec};

/// Where a consumer starts in a partition that has no committed offset, or
/// whose committed offset is no longer in the log (Kafka's
/// `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The first retained offset.
    Earliest,
    /// The end of the partition: only records written from now on.
    Latest,
    /// No reset: [`Consumer::poll`] fails with [`ConsumerError::NoOffset`].
    None,
}

impl std::str::FromStr for OffsetReset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "earliest" => Ok(OffsetReset::Earliest),
            "latest" => Ok(OffsetReset::Latest),
            "none" => Ok(OffsetReset::None),
            other => Err(format!(
                "unknown offset reset {other:?}: earliest, latest or none"
            )),
        }
    }
}

/// Settings of a [`Consumer`]; Kafka's names in parentheses.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The group to join (`group.id`).
    pub group_id: String,
    /// Shown in `cairn group describe` (`client.id`).
    pub client_id: String,
    /// Removed from the group after this long without a heartbeat
    /// (`session.timeout.ms`). Default 10 s.
    pub session_timeout: Duration,
    /// Default 3 s (`heartbeat.interval.ms`).
    pub heartbeat_interval: Duration,
    /// How long a rebalance waits for this member to join again
    /// (`max.poll.interval.ms`). Default 30 s.
    pub rebalance_timeout: Duration,
    /// Commit the positions every `auto_commit_interval` from
    /// [`Consumer::poll`], and before partitions are given up
    /// (`enable.auto.commit`). Default true.
    pub auto_commit: bool,
    /// Default 5 s (`auto.commit.interval.ms`).
    pub auto_commit_interval: Duration,
    /// Default [`OffsetReset::Latest`] (`auto.offset.reset`).
    pub offset_reset: OffsetReset,
    /// Assignors offered, in order of preference (`partition.assignment.strategy`).
    /// Default `["range", "cooperative-sticky"]`, Kafka's default.
    pub assignors: Vec<String>,
    /// Most records one poll returns (`max.poll.records`). Default 500.
    pub max_poll_records: usize,
    /// Bytes per partition per fetch (`max.partition.fetch.bytes`). Default 1 MiB.
    pub fetch_max_bytes: u32,
    /// How long a fetch waits for new records (`fetch.max.wait.ms`). Default 500 ms.
    pub fetch_max_wait: Duration,
}

impl ConsumerConfig {
    /// Defaults for `group_id`.
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerConfig {
            group_id: group_id.into(),
            client_id: "cairn-consumer".into(),
            session_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(3),
            rebalance_timeout: Duration::from_secs(30),
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            offset_reset: OffsetReset::Latest,
            assignors: vec!["range".into(), "cooperative-sticky".into()],
            max_poll_records: 500,
            fetch_max_bytes: 1 << 20,
            fetch_max_wait: Duration::from_millis(500),
        }
    }
}

/// What happened to a consumer's partitions, drained with
/// [`Consumer::take_events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerEvent {
    /// Partitions this member now reads.
    Assigned(Vec<TopicPartition>),
    /// Partitions this member gave up (after committing them, with auto commit).
    Revoked(Vec<TopicPartition>),
    /// A position was reset per the reset policy: no committed offset, or
    /// the committed / current one fell below the log start (retention).
    OffsetReset {
        partition: TopicPartition,
        /// The position before (`None`: there was no committed offset).
        from: Option<u64>,
        to: u64,
    },
}

/// A record with the partition it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: u32,
    pub record: ConsumedRecord,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The reset policy is `none` and a partition has no usable offset.
    #[error("no committed offset for {partition} (or it is out of range) and the reset policy is none; position it with seek")]
    NoOffset { partition: TopicPartition },
    /// A commit was refused because this member is no longer in the
    /// generation (it was rebalanced out); it joins again on the next poll.
    #[error("commit refused: the member was rebalanced out of group {group} ({source})")]
    CommitFenced { group: String, source: ClientError },
    /// The leader could not assign partitions with the chosen protocol.
    #[error("group {group}: {reason}")]
    Assignment { group: String, reason: String },
    #[error("the consumer is not subscribed to any topic")]
    NotSubscribed,
}

/// Membership shared with the heartbeat task.
#[derive(Debug, Default)]
struct Membership {
    member_id: String,
    generation: i32,
    /// The generation a heartbeat found stale: join again.
    rejoin_for: Option<i32>,
}

/// A consumer-group member. See the module docs.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use cairn_client::{Client, Consumer, ConsumerConfig, OffsetReset};
///
/// let client = Client::connect(&["127.0.0.1:50051".to_string()]).await?;
/// let mut config = ConsumerConfig::new("billing");
/// config.offset_reset = OffsetReset::Earliest;
/// config.auto_commit = false;
/// let mut consumer = Consumer::new(client, config);
/// consumer.subscribe(&["lab-results"]);
/// loop {
///     let records = consumer.poll(Duration::from_secs(1)).await?;
///     for r in &records {
///         println!("{}/{} @{}", r.topic, r.partition, r.record.offset);
///     }
///     consumer.commit().await?; // after processing: at least once
/// }
/// # }
/// ```
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    topics: Vec<String>,
    membership: Arc<Mutex<Membership>>,
    wake: Arc<Notify>,
    /// Assigned partitions and the next offset to read (`None`: not yet known).
    positions: BTreeMap<TopicPartition, Option<u64>>,
    /// The last committed position per partition, to skip empty commits.
    committed: HashMap<TopicPartition, u64>,
    events: Vec<ConsumerEvent>,
    protocol: String,
    joined: bool,
    last_commit: Instant,
    heartbeat: Option<JoinHandle<()>>,
}

fn lock(m: &Mutex<Membership>) -> std::sync::MutexGuard<'_, Membership> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn is_fenced(e: &ClientError) -> bool {
    matches!(
        e.code(),
        Some(
            ErrorCode::IllegalGeneration
                | ErrorCode::UnknownMemberId
                | ErrorCode::RebalanceInProgress
        )
    )
}

impl Consumer {
    /// A consumer that has not joined yet; [`Consumer::subscribe`], then
    /// [`Consumer::poll`].
    pub fn new(client: Client, config: ConsumerConfig) -> Self {
        Consumer {
            client,
            config,
            topics: Vec::new(),
            membership: Arc::new(Mutex::new(Membership {
                generation: NO_GENERATION,
                ..Membership::default()
            })),
            wake: Arc::new(Notify::new()),
            positions: BTreeMap::new(),
            committed: HashMap::new(),
            events: Vec::new(),
            protocol: String::new(),
            joined: false,
            last_commit: Instant::now(),
            heartbeat: None,
        }
    }

    /// Subscribes to `topics` (replacing any earlier subscription); the next
    /// poll joins the group with it.
    pub fn subscribe<T: AsRef<str>>(&mut self, topics: &[T]) {
        let mut t: Vec<String> = topics.iter().map(|t| t.as_ref().to_owned()).collect();
        t.sort();
        t.dedup();
        if t != self.topics {
            self.topics = t;
            self.joined = false;
        }
    }

    /// The partitions assigned to this member.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    /// The next offset this member reads from `tp`, if known.
    pub fn position(&self, tp: &TopicPartition) -> Option<u64> {
        self.positions.get(tp).copied().flatten()
    }

    /// This member's id and generation (`None` before the first join).
    pub fn generation(&self) -> Option<(String, i32)> {
        let m = lock(&self.membership);
        (m.generation >= 0).then(|| (m.member_id.clone(), m.generation))
    }

    /// Moves the position of an assigned partition; the next poll reads from
    /// `offset`.
    pub fn seek(&mut self, tp: &TopicPartition, offset: u64) -> Result<(), ConsumerError> {
        match self.positions.get_mut(tp) {
            Some(p) => {
                *p = Some(offset);
                Ok(())
            }
            None => Err(ConsumerError::Assignment {
                group: self.config.group_id.clone(),
                reason: format!("{tp} is not assigned to this member"),
            }),
        }
    }

    /// Drains what happened to this member's partitions since the last call.
    pub fn take_events(&mut self) -> Vec<ConsumerEvent> {
        std::mem::take(&mut self.events)
    }

    /// Records from the assigned partitions, waiting up to `timeout` for
    /// some; joins (or rejoins) the group first when needed, and commits when
    /// auto commit is due.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ConsumerError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.ensure_joined().await?;
            if self.config.auto_commit
                && self.last_commit.elapsed() >= self.config.auto_commit_interval
            {
                if let Err(e) = self.commit().await {
                    warn!(group = %self.config.group_id, error = %e, "auto commit failed");
                }
            }
            self.resolve_positions().await?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let left = deadline - now;
            if self.positions.is_empty() {
                let _ = tokio::time::timeout(
                    left.min(self.config.heartbeat_interval),
                    self.wake.notified(),
                )
                .await;
                continue;
            }
            let records = self
                .fetch_round(left.min(self.config.fetch_max_wait))
                .await?;
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
        }
    }

    /// Commits the positions of every assigned partition (only those that
    /// moved since the last commit).
    pub async fn commit(&mut self) -> Result<(), ConsumerError> {
        let offsets: Vec<(TopicPartition, u64)> = self
            .positions
            .iter()
            .filter_map(|(tp, p)| p.map(|p| (tp.clone(), p)))
            .filter(|(tp, p)| self.committed.get(tp) != Some(p))
            .collect();
        self.commit_offsets(offsets).await
    }

    /// Commits the given offsets (the next offset to read per partition).
    pub async fn commit_offsets(
        &mut self,
        offsets: Vec<(TopicPartition, u64)>,
    ) -> Result<(), ConsumerError> {
        self.last_commit = Instant::now();
        if offsets.is_empty() {
            return Ok(());
        }
        let (member_id, generation) = {
            let m = lock(&self.membership);
            (m.member_id.clone(), m.generation)
        };
        let request = offsets
            .iter()
            .map(|(tp, o)| OffsetCommit {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset: *o as i64,
                metadata: String::new(),
            })
            .collect();
        match self
            .client
            .commit_member_offsets(&self.config.group_id, generation, &member_id, request)
            .await
        {
            Ok(()) => {
                for (tp, o) in offsets {
                    self.committed.insert(tp, o);
                }
                Ok(())
            }
            Err(e) if is_fenced(&e) => {
                lock(&self.membership).rejoin_for = Some(generation);
                Err(ConsumerError::CommitFenced {
                    group: self.config.group_id.clone(),
                    source: e,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Commits (with auto commit) and leaves the group at once, so its
    /// partitions move without waiting for the session timeout.
    pub async fn close(mut self) -> Result<(), ConsumerError> {
        if self.config.auto_commit && self.joined {
            if let Err(e) = self.commit().await {
                warn!(group = %self.config.group_id, error = %e, "final commit failed");
            }
        }
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let member_id = lock(&self.membership).member_id.clone();
        if !member_id.is_empty() {
            self.client
                .leave_group(&self.config.group_id, &member_id)
                .await?;
        }
        Ok(())
    }

    fn needs_join(&self) -> bool {
        let m = lock(&self.membership);
        !self.joined || m.member_id.is_empty() || m.rejoin_for == Some(m.generation)
    }

    async fn revoke(&mut self, partitions: Vec<TopicPartition>) {
        if partitions.is_empty() {
            return;
        }
        if self.config.auto_commit {
            let offsets: Vec<(TopicPartition, u64)> = partitions
                .iter()
                .filter_map(|tp| self.position(tp).map(|p| (tp.clone(), p)))
                .filter(|(tp, p)| self.committed.get(tp) != Some(p))
                .collect();
            if let Err(e) = self.commit_offsets(offsets).await {
                warn!(group = %self.config.group_id, error = %e, "commit before revoking failed");
            }
        }
        for tp in &partitions {
            self.positions.remove(tp);
            self.committed.remove(tp);
        }
        info!(group = %self.config.group_id, partitions = partitions.len(), "partitions revoked");
        self.events.push(ConsumerEvent::Revoked(partitions));
    }

    async fn ensure_joined(&mut self) -> Result<(), ConsumerError> {
        if self.topics.is_empty() {
            return Err(ConsumerError::NotSubscribed);
        }
        while self.needs_join() {
            let cooperative = self.protocol == "cooperative-sticky";
            if !cooperative {
                let all = self.assignment();
                self.revoke(all).await;
            }
            let (member_id, generation) = {
                let m = lock(&self.membership);
                (m.member_id.clone(), m.generation)
            };
            let subscription = Subscription {
                topics: self.topics.clone(),
                owned: self.assignment(),
                generation,
            }
            .encode();
            let req = JoinGroupRequest {
                group: self.config.group_id.clone(),
                member_id,
                client_id: self.config.client_id.clone(),
                protocol_type: CONSUMER_PROTOCOL_TYPE.into(),
                protocols: self
                    .config
                    .assignors
                    .iter()
                    .map(|name| GroupProtocol {
                        name: name.clone(),
                        metadata: subscription.clone().into(),
                    })
                    .collect(),
                session_timeout_ms: self.config.session_timeout.as_millis() as u32,
                rebalance_timeout_ms: self.config.rebalance_timeout.as_millis() as u32,
            };
            let joined = match self.client.join_group(req).await {
                Ok(j) => j,
                Err(e) if e.code() == Some(ErrorCode::UnknownMemberId) => {
                    lock(&self.membership).member_id.clear();
                    continue;
                }
                Err(e) if e.code() == Some(ErrorCode::RebalanceInProgress) => continue,
                Err(e) => return Err(e.into()),
            };
            {
                let mut m = lock(&self.membership);
                m.member_id = joined.member_id.clone();
                m.generation = joined.generation;
                m.rejoin_for = None;
            }
            let assignments = if joined.leader == joined.member_id {
                self.assign(&joined.protocol, &joined.members).await?
            } else {
                Vec::new()
            };
            let bytes = match self
                .client
                .sync_group(
                    &self.config.group_id,
                    joined.generation,
                    &joined.member_id,
                    assignments,
                    self.config.rebalance_timeout,
                )
                .await
            {
                Ok(b) => b,
                Err(e) if is_fenced(&e) => {
                    if e.code() == Some(ErrorCode::UnknownMemberId) {
                        lock(&self.membership).member_id.clear();
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let target: BTreeSet<TopicPartition> = decode_assignment(&bytes)
                .map_err(|e| ConsumerError::Assignment {
                    group: self.config.group_id.clone(),
                    reason: e.to_string(),
                })?
                .into_iter()
                .collect();
            self.protocol = joined.protocol.clone();
            let revoked: Vec<TopicPartition> = self
                .positions
                .keys()
                .filter(|tp| !target.contains(*tp))
                .cloned()
                .collect();
            let added: Vec<TopicPartition> = target
                .iter()
                .filter(|tp| !self.positions.contains_key(*tp))
                .cloned()
                .collect();
            self.joined = true;
            self.start_heartbeat();
            if !revoked.is_empty() {
                self.revoke(revoked).await;
                if self.protocol == "cooperative-sticky" {
                    // Give the revoked partitions up to their new owner.
                    lock(&self.membership).rejoin_for = Some(joined.generation);
                }
            }
            for tp in &added {
                self.positions.insert(tp.clone(), None);
            }
            info!(
                group = %self.config.group_id,
                generation = joined.generation,
                protocol = %joined.protocol,
                assigned = target.len(),
                "joined group"
            );
            if !added.is_empty() {
                self.events.push(ConsumerEvent::Assigned(added));
            }
        }
        Ok(())
    }

    /// The leader's part: every member's partitions.
    async fn assign(
        &self,
        protocol: &str,
        members: &[cairn_proto::v1::GroupMemberMetadata],
    ) -> Result<Vec<MemberAssignment>, ConsumerError> {
        let err = |reason: String| ConsumerError::Assignment {
            group: self.config.group_id.clone(),
            reason,
        };
        let assignor = assignor_by_name(protocol)
            .ok_or_else(|| err(format!("unknown assignor {protocol:?}")))?;
        let mut subs = Vec::with_capacity(members.len());
        let mut topics = BTreeSet::new();
        for m in members {
            let s = Subscription::decode(&m.metadata).map_err(|e| err(e.to_string()))?;
            topics.extend(s.topics.iter().cloned());
            subs.push(
                MemberSubscription::new(m.member_id.clone(), s.topics)
                    .owning(s.owned, s.generation),
            );
        }
        let topics: Vec<String> = topics.into_iter().collect();
        let meta = self.client.metadata(&topics).await;
        let mut counts = BTreeMap::new();
        match meta {
            Ok(meta) => {
                for t in meta.topics {
                    counts.insert(t.name, t.partitions.len() as u32);
                }
            }
            // One unknown topic fails the whole request: ask one by one.
            Err(_) => {
                for t in &topics {
                    if let Ok(n) = self.client.partition_count(t).await {
                        counts.insert(t.clone(), n);
                    }
                }
            }
        }
        let assignment = assignor.assign(&subs, &counts);
        debug!(group = %self.config.group_id, members = subs.len(), "assigned partitions as leader");
        Ok(assignment
            .into_iter()
            .map(|(member_id, tps)| MemberAssignment {
                member_id,
                assignment: encode_assignment(&tps).into(),
            })
            .collect())
    }

    fn start_heartbeat(&mut self) {
        if self.heartbeat.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let client = self.client.clone();
        let group = self.config.group_id.clone();
        let membership = self.membership.clone();
        let wake = self.wake.clone();
        let interval = self.config.heartbeat_interval;
        let limit = self.config.session_timeout / 2;
        self.heartbeat = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let (member_id, generation) = {
                    let m = lock(&membership);
                    (m.member_id.clone(), m.generation)
                };
                if member_id.is_empty() || generation < 0 {
                    continue;
                }
                let r =
                    tokio::time::timeout(limit, client.heartbeat(&group, generation, &member_id))
                        .await;
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) if is_fenced(&e) => {
                        debug!(group = %group, generation, error = %e, "heartbeat: join again");
                        let mut m = lock(&membership);
                        if m.generation == generation {
                            m.rejoin_for = Some(generation);
                            if e.code() == Some(ErrorCode::UnknownMemberId) {
                                m.member_id.clear();
                            }
                        }
                        drop(m);
                        wake.notify_one();
                    }
                    Ok(Err(e)) => warn!(group = %group, error = %e, "heartbeat failed"),
                    Err(_) => warn!(group = %group, "heartbeat timed out"),
                }
            }
        }));
    }

    /// Positions of newly assigned partitions: the committed offset, or the
    /// reset policy.
    async fn resolve_positions(&mut self) -> Result<(), ConsumerError> {
        let unknown: Vec<TopicPartition> = self
            .positions
            .iter()
            .filter(|(_, p)| p.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let committed: HashMap<(String, u32), i64> = self
            .client
            .fetch_offsets(&self.config.group_id)
            .await?
            .into_iter()
            .map(|o| ((o.topic, o.partition), o.offset))
            .collect();
        for tp in unknown {
            match committed.get(&(tp.topic.clone(), tp.partition)) {
                Some(o) if *o >= 0 => {
                    let o = *o as u64;
                    self.committed.insert(tp.clone(), o);
                    self.positions.insert(tp, Some(o));
                }
                _ => {
                    let to = self.reset(&tp).await?;
                    self.events.push(ConsumerEvent::OffsetReset {
                        partition: tp.clone(),
                        from: None,
                        to,
                    });
                    self.positions.insert(tp, Some(to));
                }
            }
        }
        Ok(())
    }

    async fn reset(&self, tp: &TopicPartition) -> Result<u64, ConsumerError> {
        let spec = match self.config.offset_reset {
            OffsetReset::Earliest => OffsetSpec::Earliest,
            OffsetReset::Latest => OffsetSpec::Latest,
            OffsetReset::None => {
                return Err(ConsumerError::NoOffset {
                    partition: tp.clone(),
                })
            }
        };
        let r = self
            .client
            .list_offsets(&tp.topic, tp.partition, spec)
            .await?;
        Ok(r.offset.max(0) as u64)
    }

    /// One fetch from every assigned partition at once; answers as soon as
    /// one partition has records (taking whatever else is ready by then).
    async fn fetch_round(&mut self, wait: Duration) -> Result<Vec<ConsumerRecord>, ConsumerError> {
        let wait_ms = wait.as_millis() as u32;
        let max_bytes = self.config.fetch_max_bytes;
        let mut pending: FuturesUnordered<_> = self
            .positions
            .iter()
            .filter_map(|(tp, p)| p.map(|p| (tp.clone(), p)))
            .map(|(tp, offset)| {
                let client = self.client.clone();
                async move {
                    let r = client
                        .fetch_records(&tp.topic, tp.partition, offset, max_bytes, wait_ms)
                        .await;
                    (tp, offset, r)
                }
            })
            .collect();
        let mut out = Vec::new();
        let mut grace: Option<tokio::time::Instant> = None;
        loop {
            let next = match grace {
                Some(g) => match tokio::time::timeout_at(g, pending.next()).await {
                    Ok(n) => n,
                    Err(_) => break,
                },
                None => pending.next().await,
            };
            let Some((tp, offset, result)) = next else {
                break;
            };
            match result {
                Ok(fetched) => {
                    self.take_records(&tp, offset, fetched, &mut out);
                    if !out.is_empty() && grace.is_none() {
                        grace = Some(tokio::time::Instant::now() + Duration::from_millis(5));
                    }
                }
                Err(e) if e.code() == Some(ErrorCode::OffsetOutOfRange) => {
                    let to = self.reset(&tp).await?;
                    warn!(
                        group = %self.config.group_id,
                        topic = %tp.topic,
                        partition = tp.partition,
                        from = offset,
                        to,
                        "position out of range (retention?); reset per policy"
                    );
                    self.events.push(ConsumerEvent::OffsetReset {
                        partition: tp.clone(),
                        from: Some(offset),
                        to,
                    });
                    self.positions.insert(tp, Some(to));
                }
                Err(e)
                    if !e.is_retriable() && !matches!(e, ClientError::RetriesExhausted { .. }) =>
                {
                    return Err(e.into())
                }
                Err(e) => {
                    debug!(topic = %tp.topic, partition = tp.partition, error = %e, "fetch failed; retrying on the next poll");
                }
            }
            if out.len() >= self.config.max_poll_records {
                break;
            }
        }
        Ok(out)
    }

    fn take_records(
        &mut self,
        tp: &TopicPartition,
        offset: u64,
        fetched: FetchedRecords,
        out: &mut Vec<ConsumerRecord>,
    ) {
        // The partition may have been revoked or seeked meanwhile.
        if self.position(tp) != Some(offset) {
            return;
        }
        let room = self.config.max_poll_records.saturating_sub(out.len());
        let mut next = fetched.next_offset;
        if fetched.records.len() > room {
            next = fetched.records[room].offset as u64;
        }
        for record in fetched.records.into_iter().take(room) {
            out.push(ConsumerRecord {
                topic: tp.topic.clone(),
                partition: tp.partition,
                record,
            });
        }
        self.positions.insert(tp.clone(), Some(next.max(offset)));
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}
