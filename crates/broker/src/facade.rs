//! [`Broker`]: the one door into the core. Every method is one operation
//! of [`crate::acl::Operation`]; it authorizes the request context against
//! that operation's rows of [`crate::acl::OPERATIONS`] first, then runs it
//! (`ops/`, the coordinator, the metadata group). The doors translate wire
//! formats only.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use bytes::Bytes;
use cairn_metadata::CommittedOffset;
use cairn_metadata::MetaCommand;
use cairn_metadata::MetaError;
use cairn_metadata::MetaResponse;
use cairn_metadata::MirrorLink;
use cairn_metadata::NodeId;
use cairn_metadata::PartitionMove;
use cairn_metadata::Topic;
use cairn_metadata::TopicConfig;
use cairn_partition::FetchResult;
use cairn_partition::FirstBatch;
use cairn_partition::ReadError;
use openraft::async_runtime::watch::WatchReceiver;
use tokio::sync::watch;

use crate::acl;
use crate::acl::AclBinding;
use crate::acl::AclFilter;
use crate::acl::AclIndex;
use crate::acl::AclOperation;
use crate::acl::Check;
use crate::acl::Decision;
use crate::acl::Operation;
use crate::acl::ResourceType;
use crate::acl::Why;
use crate::audit::Audit;
use crate::audit::AuditKind;
use crate::audit::AuditResult;
use crate::audit::AUDIT_TOPIC;
use crate::context::Principal;
use crate::context::RequestContext;
use crate::coordinator::GroupDescription;
use crate::coordinator::GroupSummary;
use crate::coordinator::JoinArgs;
use crate::coordinator::Joined;
use crate::coordinator::MemberRef;
use crate::coordinator::StoredOffset;
use crate::error::ApiError;
use crate::mirror::MirrorPartitionStatus;
use crate::node::Node;
use crate::node::Proposal;
use crate::ops;
use crate::replica::Replica;
use crate::settling::Settling;
use crate::settling::SETTLE_POLL;
use crate::views::ClusterView;
use crate::views::CoordinatorView;
use crate::views::LocalReplica;
use crate::views::NodeView;
use crate::views::PartitionView;
use crate::views::Readiness;
use crate::views::TopicView;
use crate::views::Topics;
use crate::ServerConfig;

/// The replication factor of a topic created without one (Kafka's
/// `default.replication.factor`), capped by the number of nodes.
pub const DEFAULT_REPLICATION_FACTOR: u32 = 3;

/// The door to one node's core. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    node: Arc<Node>,
    authz: Arc<Authorizer>,
    /// Bearer tokens (OAUTHBEARER, gRPC), with `oauth_jwks_file` set.
    pub(crate) oauth: Option<Arc<crate::oauth::OAuth>>,
    /// New topics not yet shown to Kafka clients (`settling.rs`).
    settling: Arc<std::sync::Mutex<Settling>>,
}

/// The ACL check, with the stored bindings indexed once per metadata
/// change.
struct Authorizer {
    enabled: bool,
    super_users: Vec<Principal>,
    allow_if_no_acl: bool,
    version: watch::Receiver<u64>,
    /// The index, the sensitive topics (`cairn.sensitive=true`), and the
    /// metadata version they were read at.
    index: RwLock<Option<Cached>>,
}

/// What the authorizer reads from the metadata, once per metadata change.
struct Cached {
    version: u64,
    index: Arc<AclIndex>,
    sensitive: Arc<HashSet<String>>,
}

/// A partition's leader replica, found for a read the context is allowed:
/// the Kafka door's fetch holds these across its waits.
#[derive(Clone)]
pub struct PartitionReader {
    replica: Arc<Replica>,
    topic: String,
    partition: u32,
}

/// One offset to commit.
#[derive(Debug, Clone)]
pub struct OffsetToCommit {
    pub topic: String,
    /// As the client sent it; refused when the topic has no such partition.
    pub partition: i32,
    pub offset: i64,
    pub metadata: String,
    /// Kafka's `committed_leader_epoch` (KIP-320), when the client sent one.
    pub leader_epoch: Option<i32>,
}

/// A role as described: name, bindings (principal empty), members.
pub type RoleView = (String, Vec<AclBinding>, Vec<String>);

/// A change to a role.
#[derive(Debug, Clone)]
pub enum RoleChange {
    AddAcls { role: String, acls: Vec<AclBinding> },
    RemoveAcls { role: String, acls: Vec<AclBinding> },
    Grant { role: String, principal: String },
    Revoke { role: String, principal: String },
    Delete { role: String },
}

impl RoleChange {
    /// The role changed, and what the audit trail says of the change.
    fn audited(&self) -> (String, String) {
        let list = |acls: &[AclBinding]| {
            acls.iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        };
        match self {
            RoleChange::AddAcls { role, acls } | RoleChange::RemoveAcls { role, acls } => {
                (role.clone(), list(acls))
            }
            RoleChange::Grant { role, principal } | RoleChange::Revoke { role, principal } => {
                (role.clone(), principal.clone())
            }
            RoleChange::Delete { role } => (role.clone(), String::new()),
        }
    }
}

/// Per-partition answers: `(topic, partition, result)`.
pub type PartitionResults = Vec<(String, i32, Result<(), ApiError>)>;

impl Broker {
    pub(crate) fn new(node: Arc<Node>, oauth: Option<Arc<crate::oauth::OAuth>>) -> Broker {
        let c = &node.config;
        let authz = Authorizer {
            enabled: c.acl_enabled,
            super_users: c
                .super_users
                .iter()
                .filter_map(|s| Principal::parse(s))
                .collect(),
            allow_if_no_acl: c.allow_everyone_if_no_acl_found,
            version: node.meta_view.subscribe(),
            index: RwLock::new(None),
        };
        let next_topic_id = node.meta_view.read(|s| s.next_topic_id);
        Broker {
            node,
            authz: Arc::new(authz),
            oauth,
            settling: Arc::new(std::sync::Mutex::new(Settling::new(next_topic_id))),
        }
    }

    // ---- node facts every door needs (no resource behind them) ----

    pub fn node_id(&self) -> NodeId {
        self.node.id
    }

    pub fn cluster_id(&self) -> String {
        self.node.transport.cluster_id()
    }

    /// This node's settings (listener limits, defaults shown in configs).
    pub fn settings(&self) -> &ServerConfig {
        &self.node.config
    }

    /// Whether ACLs are enforced.
    pub fn acl_enabled(&self) -> bool {
        self.authz.enabled
    }

    /// `/ready`: a metadata leader is known and this node is registered.
    pub fn readiness(&self) -> Readiness {
        let registered = self
            .node
            .meta_view
            .read(|s| s.nodes.contains_key(&self.node.id));
        match (self.node.meta_leader(), registered) {
            (Some(_), true) => Readiness::Ready,
            (None, _) => Readiness::NoMetadataLeader,
            (_, false) => Readiness::NotRegistered,
        }
    }

    /// Sets the node-level gauges `/metrics` shows.
    pub fn record_gauges(&self) {
        let node = &self.node;
        let replicas = node.all_replicas();
        let leaders = replicas.iter().filter(|r| r.is_leader()).count();
        metrics::gauge!("cairn_partition_replicas").set(replicas.len() as f64);
        metrics::gauge!("cairn_partition_leaders").set(leaders as f64);
        metrics::gauge!("cairn_metadata_leader").set(if node.is_meta_leader() { 1.0 } else { 0.0 });
        let s = node.store.stats();
        metrics::gauge!("cairn_storage_user_bytes_written").set(s.user_bytes_written as f64);
        metrics::gauge!("cairn_storage_wal_bytes_written").set(s.wal_bytes_written as f64);
        metrics::gauge!("cairn_storage_flush_bytes_written").set(s.flush_bytes_written as f64);
        metrics::gauge!("cairn_storage_compaction_bytes_written")
            .set(s.compaction_bytes_written as f64);
    }

    /// Runs `f` on the applied metadata.
    pub(crate) fn meta<T>(&self, f: impl FnOnce(&cairn_metadata::MetadataState) -> T) -> T {
        self.node.meta_view.read(f)
    }

    /// Proposes a metadata write (forwarded to the metadata leader).
    pub(crate) async fn propose(&self, p: Proposal) -> Result<MetaResponse, ApiError> {
        self.node.propose(p).await
    }

    // ---- audit ----

    /// Records an audit event (the log, the audit topic, the audit file).
    pub(crate) fn audit(&self, a: Audit<'_>) {
        self.node.audit.record(a);
    }

    /// Audits a change the context made (or tried: `result` is its outcome)
    /// and passes the outcome on.
    fn audit_change<T>(
        &self,
        ctx: &RequestContext,
        event: AuditKind,
        op: &str,
        resource: (&str, &str),
        detail: String,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let (outcome, detail) = match &result {
            Ok(_) => (AuditResult::Ok, detail),
            Err(e) if detail.is_empty() => (AuditResult::Failed, e.to_string()),
            Err(e) => (AuditResult::Failed, format!("{detail}: {e}")),
        };
        self.audit(Audit {
            event,
            principal: ctx.principal.to_string(),
            client: ctx.client,
            listener: ctx.listener.as_str(),
            operation: op,
            resource_type: resource.0,
            resource: resource.1,
            result: outcome,
            detail,
        });
        result
    }

    fn audit_decision(
        &self,
        ctx: &RequestContext,
        op: Operation,
        acl: AclOperation,
        t: ResourceType,
        name: &str,
        d: Decision,
    ) {
        let operation = format!("{op:?}");
        let resource_type = t.to_string().to_lowercase();
        self.audit(Audit {
            event: AuditKind::Authorization,
            principal: ctx.principal.to_string(),
            client: ctx.client,
            listener: ctx.listener.as_str(),
            operation: &operation,
            resource_type: &resource_type,
            resource: name,
            result: if d.allowed() {
                AuditResult::Allowed
            } else {
                AuditResult::Denied
            },
            detail: format!("{acl}: {d:?}"),
        });
    }

    // ---- authorization ----

    fn index(&self) -> Arc<AclIndex> {
        self.cached().0
    }

    /// The ACL index and the sensitive topics, rebuilt when the metadata
    /// changed since they were read.
    fn cached(&self) -> (Arc<AclIndex>, Arc<HashSet<String>>) {
        let version = *self.authz.version.borrow();
        if let Ok(guard) = self.authz.index.read() {
            if let Some(c) = guard.as_ref() {
                if c.version == version {
                    return (c.index.clone(), c.sensitive.clone());
                }
            }
        }
        // Direct bindings, and each role's bindings once per member.
        let (bindings, sensitive): (Vec<AclBinding>, HashSet<String>) =
            self.node.meta_view.read(|s| {
                let direct = s.acls.iter().filter_map(|e| AclBinding::from_entry(e).ok());
                let granted = s.roles.values().flat_map(|r| {
                    r.members.iter().flat_map(move |member| {
                        r.acls.iter().filter_map(move |e| {
                            let mut b = AclBinding::from_entry(e).ok()?;
                            b.principal = member.clone();
                            Some(b)
                        })
                    })
                });
                let sensitive = s
                    .topics
                    .values()
                    .filter(|t| TopicConfig::Sensitive.value_in(&t.configs) == "true")
                    .map(|t| t.name.clone())
                    .collect();
                (direct.chain(granted).collect(), sensitive)
            });
        let index = Arc::new(AclIndex::new(&bindings));
        let sensitive = Arc::new(sensitive);
        if let Ok(mut guard) = self.authz.index.write() {
            *guard = Some(Cached {
                version,
                index: index.clone(),
                sensitive: sensitive.clone(),
            });
        }
        (index, sensitive)
    }

    /// The decision for `ctx` doing `acl` on `t`/`name`.
    pub(crate) fn decide(
        &self,
        ctx: &RequestContext,
        acl: AclOperation,
        t: ResourceType,
        name: &str,
    ) -> Decision {
        self.decide_with(&self.index(), ctx, acl, t, name)
    }

    fn decide_with(
        &self,
        index: &AclIndex,
        ctx: &RequestContext,
        acl: AclOperation,
        t: ResourceType,
        name: &str,
    ) -> Decision {
        if t == ResourceType::Topic && name == AUDIT_TOPIC {
            return self.decide_audit_topic(index, ctx, acl);
        }
        if !self.authz.enabled {
            return Decision::Allowed(Why::NoAuthorizer);
        }
        if self.authz.super_users.contains(&ctx.principal) {
            return Decision::Allowed(Why::SuperUser);
        }
        index.decide(
            &ctx.principal,
            ctx.host(),
            acl,
            t,
            name,
            self.authz.allow_if_no_acl,
        )
    }

    /// The audit topic: nobody writes or deletes its records, ACLs or not;
    /// super-users may change its configs; reading and describing it need
    /// a binding that names it (a `*` binding only ever denies), whatever
    /// `allow_everyone_if_no_acl_found` says.
    fn decide_audit_topic(
        &self,
        index: &AclIndex,
        ctx: &RequestContext,
        acl: AclOperation,
    ) -> Decision {
        match acl {
            AclOperation::Write | AclOperation::Delete | AclOperation::All => {
                Decision::Denied(Why::AuditTopic)
            }
            _ if !self.authz.enabled => Decision::Allowed(Why::NoAuthorizer),
            _ if self.authz.super_users.contains(&ctx.principal) => {
                Decision::Allowed(Why::SuperUser)
            }
            AclOperation::Alter | AclOperation::AlterConfigs | AclOperation::Create => {
                Decision::Denied(Why::AuditTopic)
            }
            _ => index.decide_named(
                &ctx.principal,
                ctx.host(),
                acl,
                ResourceType::Topic,
                AUDIT_TOPIC,
            ),
        }
    }

    /// Whether `op` on resource `t`/`name` is allowed by its row of the
    /// table (an `OrNext` row's alternative is [`Broker::cluster_allows`]).
    fn allowed(&self, ctx: &RequestContext, op: Operation, t: ResourceType, name: &str) -> bool {
        self.allowed_logging_denial(ctx, op, t, name, true)
    }

    /// [`Broker::allowed`]; `log_denial` false for a filter (metadata of
    /// all topics leaves out what the context may not see, as Kafka's
    /// authorizer does, without auditing a refusal nobody asked for).
    fn allowed_logging_denial(
        &self,
        ctx: &RequestContext,
        op: Operation,
        t: ResourceType,
        name: &str,
        log_denial: bool,
    ) -> bool {
        let Some(rule) = acl::rule_for(op, t) else {
            // A door asked for a check the table lacks: a bug, refused.
            tracing::error!(operation = ?op, resource_type = %t, "no authorization rule");
            return false;
        };
        let (index, sensitive) = self.cached();
        let d = self.decide_with(&index, ctx, rule.acl, t, name);
        // Refusals are always audited; on a sensitive topic, every access.
        let sensitive = t == ResourceType::Topic && sensitive.contains(name);
        if (d.allowed() && sensitive) || (!d.allowed() && (log_denial || sensitive)) {
            self.audit_decision(ctx, op, rule.acl, t, name, d);
        }
        d.allowed()
    }

    /// What the context may do with a resource, as Kafka's authorized
    /// operations bit field (KIP-430: bit `n` for the ACL operation of code
    /// `n`): each operation Kafka defines for the resource type that the
    /// ACLs allow, so all of them with ACLs off. Describing is not an
    /// access: nothing is audited.
    pub fn authorized_operations(&self, ctx: &RequestContext, t: ResourceType, name: &str) -> i32 {
        use AclOperation as A;
        let ops: &[AclOperation] = match t {
            ResourceType::Topic => &[
                A::Read,
                A::Write,
                A::Create,
                A::Delete,
                A::Alter,
                A::Describe,
                A::DescribeConfigs,
                A::AlterConfigs,
            ],
            ResourceType::Group => &[A::Read, A::Delete, A::Describe],
            ResourceType::Cluster => &[
                A::Create,
                A::Alter,
                A::Describe,
                A::ClusterAction,
                A::DescribeConfigs,
                A::AlterConfigs,
                A::IdempotentWrite,
            ],
            _ => &[],
        };
        let index = self.index();
        ops.iter()
            .filter(|op| self.decide_with(&index, ctx, **op, t, name).allowed())
            .fold(0i32, |bits, op| bits | (1 << op.code()))
    }

    /// Refuses unless `op` on `t`/`name` is allowed.
    fn authorize(
        &self,
        ctx: &RequestContext,
        op: Operation,
        t: ResourceType,
        name: &str,
    ) -> Result<(), ApiError> {
        if self.allowed(ctx, op, t, name) {
            Ok(())
        } else {
            Err(unauthorized(ctx, op, t, name))
        }
    }

    /// An operation's `OrNext` row on the cluster allows it outright.
    fn cluster_allows(&self, ctx: &RequestContext, op: Operation) -> bool {
        acl::rule_for(op, ResourceType::Cluster).is_some_and(|r| {
            r.check == Check::OrNext
                && self
                    .decide(ctx, r.acl, ResourceType::Cluster, acl::CLUSTER_RESOURCE)
                    .allowed()
        })
    }

    pub(crate) fn authorize_cluster(
        &self,
        ctx: &RequestContext,
        op: Operation,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, op, ResourceType::Cluster, acl::CLUSTER_RESOURCE)
    }

    // ---- cluster and topics ----

    fn node_views(&self) -> Vec<NodeView> {
        let voters: Vec<u64> = self
            .node
            .meta
            .metrics()
            .borrow_watched()
            .membership_config
            .voter_ids()
            .collect();
        self.node.meta_view.read(|s| {
            s.nodes
                .values()
                .map(|n| NodeView {
                    info: n.clone(),
                    alive: n.id == self.node.id || self.node.liveness.is_alive(n.id),
                    metadata_voter: voters.contains(&n.id),
                    draining: s.draining.contains(&n.id),
                })
                .collect()
        })
    }

    fn topic_view(&self, t: Topic) -> TopicView {
        let partitions = t
            .partitions
            .iter()
            .map(|p| PartitionView {
                assignment: p.clone(),
                status: self.node.group_status(p.group),
            })
            .collect::<Vec<PartitionView>>();
        let all_led = partitions.iter().all(|p| p.status.leader.is_some());
        let settling = match self.settling.lock() {
            Ok(mut s) => s.observe(t.id, all_led, cairn_clock::now()),
            Err(_) => false,
        };
        TopicView {
            topic: t,
            partitions,
            settling,
        }
    }

    fn view(&self, topics: Vec<Topic>, denied: Vec<String>) -> ClusterView {
        if let Ok(mut s) = self.settling.lock() {
            if s.needs_prune(self.node.meta_view.read(|m| m.topics.len())) {
                let ids: HashSet<u64> = self
                    .node
                    .meta_view
                    .read(|m| m.topics.values().map(|t| t.id).collect());
                s.prune(|id| ids.contains(&id));
            }
        }
        ClusterView {
            cluster_id: self.node.transport.cluster_id(),
            metadata_leader: self.node.meta_leader(),
            answered_by: self.node.id,
            nodes: self.node_views(),
            removed: self
                .node
                .meta_view
                .read(|s| s.retired.iter().copied().collect()),
            topics: topics.into_iter().map(|t| self.topic_view(t)).collect(),
            denied,
        }
    }

    /// Waits until no topic of `view` is settling (`settling.rs`),
    /// refreshing each one's partitions as it goes, so that a client asking
    /// for a topic by name gets it with its leaders rather than "not there
    /// yet": kafka-python, for one, takes that answer as final until its
    /// next periodic refresh, five minutes later. Bounded by the settle
    /// window, past which no topic is settling; a topic deleted meanwhile
    /// leaves the view. The view was authorized when it was made: nothing
    /// is checked or audited again.
    pub async fn await_settled(&self, view: &mut ClusterView) {
        while view.topics.iter().any(|t| t.settling) {
            tokio::time::sleep(SETTLE_POLL).await;
            let mut topics = Vec::with_capacity(view.topics.len());
            for t in std::mem::take(&mut view.topics) {
                if !t.settling {
                    topics.push(t);
                } else if let Ok(now) = self.node.topic(&t.topic.name) {
                    topics.push(self.topic_view(now));
                }
            }
            view.topics = topics;
        }
    }

    /// Metadata: the nodes and the topics asked for that the context may
    /// describe. Unknown names are left out; named topics it may not
    /// describe are listed in `denied`, and with [`Topics::All`] they are
    /// left out silently (Kafka's behaviour).
    pub fn metadata(&self, ctx: &RequestContext, topics: Topics) -> ClusterView {
        let found: Vec<Topic> = self.node.meta_view.read(|s| match &topics {
            Topics::All => s.topics.values().cloned().collect(),
            Topics::Named(names) => names
                .iter()
                .filter_map(|n| s.topics.get(n).cloned())
                .collect(),
            Topics::None => Vec::new(),
        });
        let mut denied = Vec::new();
        let mut shown = Vec::with_capacity(found.len());
        for t in found {
            let all = topics == Topics::All;
            if self.allowed_logging_denial(
                ctx,
                Operation::Metadata,
                ResourceType::Topic,
                &t.name,
                !all,
            ) {
                shown.push(t);
            } else if !all {
                denied.push(t.name);
            }
        }
        self.view(shown, denied)
    }

    /// The whole cluster: every node and topic (cluster DESCRIBE).
    pub fn cluster_status(&self, ctx: &RequestContext) -> Result<ClusterView, ApiError> {
        self.authorize_cluster(ctx, Operation::DescribeCluster)?;
        let all = self
            .node
            .meta_view
            .read(|s| s.topics.values().cloned().collect());
        Ok(self.view(all, Vec::new()))
    }

    pub fn describe_topic(&self, ctx: &RequestContext, name: &str) -> Result<TopicView, ApiError> {
        self.authorize(ctx, Operation::DescribeTopic, ResourceType::Topic, name)?;
        Ok(self.topic_view(self.node.topic(name)?))
    }

    /// A topic's configs (those set) and this node's defaults for the rest
    /// (DESCRIBE_CONFIGS on the topic).
    pub fn describe_topic_configs(
        &self,
        ctx: &RequestContext,
        name: &str,
    ) -> Result<Topic, ApiError> {
        self.authorize(
            ctx,
            Operation::DescribeTopicConfigs,
            ResourceType::Topic,
            name,
        )?;
        self.node.topic(name)
    }

    /// This node's settings as a broker config resource (DESCRIBE_CONFIGS
    /// on the cluster).
    pub fn describe_broker_configs(&self, ctx: &RequestContext) -> Result<&ServerConfig, ApiError> {
        self.authorize_cluster(ctx, Operation::DescribeBrokerConfigs)?;
        Ok(&self.node.config)
    }

    /// The dynamic broker configs this node reads (key -> value, and
    /// whether it is set for this node rather than cluster-wide), or with
    /// `cluster_only` the cluster-wide ones alone (DESCRIBE_CONFIGS on the
    /// cluster).
    pub fn dynamic_broker_configs(
        &self,
        ctx: &RequestContext,
        cluster_only: bool,
    ) -> Result<BTreeMap<String, (String, bool)>, ApiError> {
        self.authorize_cluster(ctx, Operation::DescribeBrokerConfigs)?;
        let id = self.node.id.to_string();
        Ok(self.node.meta_view.read(|s| {
            let mut out: BTreeMap<String, (String, bool)> = s
                .broker_configs
                .get("")
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), (v.clone(), false)))
                .collect();
            if !cluster_only {
                for (k, v) in s.broker_configs.get(&id).into_iter().flatten() {
                    out.insert(k.clone(), (v.clone(), true));
                }
            }
            out
        }))
    }

    /// The dynamic broker configs this node falls back on, each with the
    /// value set for this node (`true`) before the cluster-wide one: the
    /// defaults of topic configs, which topic descriptions show as their
    /// synonyms (as Kafka's do), so no authorization beyond the topic's.
    pub fn broker_config_overrides(&self) -> BTreeMap<String, Vec<(String, bool)>> {
        let id = self.node.id.to_string();
        self.node.meta_view.read(|s| {
            let mut out: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
            for (scope, own) in [(id.as_str(), true), ("", false)] {
                for (k, v) in s.broker_configs.get(scope).into_iter().flatten() {
                    out.entry(k.clone()).or_default().push((v.clone(), own));
                }
            }
            out
        })
    }

    /// The dynamic broker configs set for `scope` (a node id, or "" for the
    /// cluster-wide ones), for a door computing a change (AlterConfigs):
    /// needs ALTER_CONFIGS on the cluster, as the change does.
    pub fn broker_configs_for_alter(
        &self,
        ctx: &RequestContext,
        scope: &str,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        self.authorize_cluster(ctx, Operation::AlterBrokerConfigs)?;
        Ok(self
            .node
            .meta_view
            .read(|s| s.broker_configs.get(scope).cloned().unwrap_or_default()))
    }

    /// Changes dynamic broker configs (Kafka's dynamic broker configs,
    /// `cairn_metadata::broker_configs`) of one node (`scope` its id) or of
    /// the cluster (`scope` ""): ALTER_CONFIGS on the cluster. A config
    /// that cannot change at runtime, or a bad value, is INVALID_CONFIG and
    /// nothing changes; `validate_only` checks without changing.
    pub async fn alter_broker_configs(
        &self,
        ctx: &RequestContext,
        scope: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        validate_only: bool,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        self.authorize_cluster(ctx, Operation::AlterBrokerConfigs)?;
        if !scope.is_empty() {
            let known = scope
                .parse::<NodeId>()
                .ok()
                .is_some_and(|id| self.node.meta_view.read(|s| s.nodes.contains_key(&id)));
            if !known {
                return Err(ApiError::InvalidArgument(format!(
                    "broker {scope:?} is not a node of this cluster"
                )));
            }
        }
        for key in delete.iter().filter(|k| !set.contains_key(*k)) {
            if cairn_metadata::dynamic_broker_config(key).is_none() {
                return Err(ApiError::InvalidConfig(format!(
                    "Cannot update these configs dynamically: [{key}]"
                )));
            }
        }
        for (k, v) in &set {
            cairn_metadata::validate_broker_config(k, v).map_err(ApiError::InvalidConfig)?;
        }
        if validate_only {
            return self.broker_configs_for_alter(ctx, scope);
        }
        let detail = format!("set={set:?} delete={delete:?}");
        let cmd = MetaCommand::AlterBrokerConfigs {
            scope: scope.to_string(),
            set,
            delete,
        };
        let r = match self.node.propose(crate::node::Proposal::Command(cmd)).await {
            Ok(MetaResponse::TopicConfigs(now)) => Ok(now),
            Ok(MetaResponse::Error(MetaError::InvalidArgument(e))) => {
                Err(ApiError::InvalidConfig(e))
            }
            Ok(other) => Err(ApiError::Internal(format!("{other:?}"))),
            Err(e) => Err(e),
        };
        let resource = if scope.is_empty() { "cluster" } else { scope };
        self.audit_change(
            ctx,
            AuditKind::Cluster,
            "AlterBrokerConfigs",
            ("broker", resource),
            detail,
            r,
        )
    }

    /// This node's loggers and their levels (Kafka's BROKER_LOGGER; levels
    /// in Kafka's upper case): DESCRIBE_CONFIGS on the cluster.
    pub fn describe_loggers(
        &self,
        ctx: &RequestContext,
    ) -> Result<Vec<(String, String)>, ApiError> {
        self.authorize_cluster(ctx, Operation::DescribeBrokerConfigs)?;
        let levels = crate::log_levels::installed().ok_or_else(|| {
            ApiError::InvalidArgument("this process's log levels cannot be changed".into())
        })?;
        let (root, own) = levels.levels();
        let mut out = vec![(
            crate::log_levels::ROOT.to_string(),
            root.to_ascii_uppercase(),
        )];
        let mut names: BTreeSet<String> = crate::log_levels::LOGGERS
            .iter()
            .map(|s| s.to_string())
            .collect();
        names.extend(own.keys().cloned());
        for name in names {
            let level = own.get(&name).unwrap_or(&root).to_ascii_uppercase();
            out.push((name, level));
        }
        Ok(out)
    }

    /// Sets loggers' levels on this node (`Some`: a Kafka level name) or
    /// takes them back to the root's (`None`), until it restarts: ALTER_CONFIGS
    /// on the cluster. A bad logger or level is INVALID_CONFIG and nothing
    /// changes; the root logger has a level, it cannot be removed.
    pub fn alter_loggers(
        &self,
        ctx: &RequestContext,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        self.authorize_cluster(ctx, Operation::AlterBrokerConfigs)?;
        let levels = crate::log_levels::installed().ok_or_else(|| {
            ApiError::InvalidArgument("this process's log levels cannot be changed".into())
        })?;
        let mut checked = Vec::with_capacity(changes.len());
        for (logger, level) in changes {
            if !crate::log_levels::valid_logger(&logger) {
                return Err(ApiError::InvalidConfig(format!(
                    "{logger:?} is not a logger (a tracing target such as cairn_raft or cairn_broker::coordinator)"
                )));
            }
            let level = match level {
                Some(l) => Some(
                    crate::log_levels::tracing_level(&l)
                        .ok_or_else(|| {
                            ApiError::InvalidConfig(format!(
                                "{l:?} is not a log level of TRACE, DEBUG, INFO, WARN, ERROR, FATAL, OFF"
                            ))
                        })?
                        .to_string(),
                ),
                None if logger == crate::log_levels::ROOT => {
                    return Err(ApiError::InvalidConfig(
                        "the root logger's level cannot be removed, only set".into(),
                    ))
                }
                None => None,
            };
            checked.push((logger, level));
        }
        if validate_only {
            return Ok(());
        }
        let detail = format!("{checked:?}");
        let r = levels.apply(&checked).map_err(ApiError::InvalidConfig);
        let node = self.node.id.to_string();
        self.audit_change(
            ctx,
            AuditKind::Cluster,
            "AlterLogLevels",
            ("broker", node.as_str()),
            detail,
            r,
        )
    }

    /// The replication factor of a topic created without one (Kafka's
    /// `default.replication.factor`): [`DEFAULT_REPLICATION_FACTOR`], or
    /// every node of a smaller cluster.
    pub fn default_replication_factor(&self, ctx: &RequestContext) -> u32 {
        let nodes = self.metadata(ctx, Topics::None).nodes.len() as u32;
        DEFAULT_REPLICATION_FACTOR.min(nodes.max(1))
    }

    /// Creates a topic a client asked about (Kafka's auto-creation, on
    /// Metadata): only with `auto_create_topics_enable`, with the default
    /// partition count and replication factor, under the same authorization
    /// and audit as CreateTopics. Answers the topic once created (or when
    /// another request created it first).
    pub async fn auto_create_topic(
        &self,
        ctx: &RequestContext,
        name: &str,
    ) -> Result<TopicView, ApiError> {
        if !self.settings().auto_create_topics_enable {
            return Err(ApiError::UnknownTopic(name.to_string()));
        }
        let new = ops::NewTopic {
            name: name.to_string(),
            partitions: self.settings().num_partitions,
            replication_factor: self.default_replication_factor(ctx),
            configs: Default::default(),
            assignment: None,
        };
        match self.create_topic(ctx, new, false).await {
            Ok(Some(t)) => Ok(t),
            Ok(None) | Err(ApiError::TopicExists(_)) => Ok(self.topic_view(self.node.topic(name)?)),
            Err(e) => Err(e),
        }
    }

    /// Creates a topic (CREATE on the cluster, or on the topic);
    /// `validate_only` checks it without creating it.
    pub async fn create_topic(
        &self,
        ctx: &RequestContext,
        new: ops::NewTopic,
        validate_only: bool,
    ) -> Result<Option<TopicView>, ApiError> {
        if new.name == AUDIT_TOPIC {
            // The nodes create it; nobody else may pick its settings.
            return Err(unauthorized(
                ctx,
                Operation::CreateTopic,
                ResourceType::Topic,
                &new.name,
            ));
        }
        if !self.cluster_allows(ctx, Operation::CreateTopic) {
            self.authorize(ctx, Operation::CreateTopic, ResourceType::Topic, &new.name)?;
        }
        if validate_only {
            ops::validate_new_topic(&new)?;
            if let Some(a) = &new.assignment {
                ops::check_assignment_nodes(&self.node, a)?;
            }
            if self.node.topic(&new.name).is_ok() {
                return Err(ApiError::TopicExists(new.name));
            }
            return Ok(None);
        }
        let name = new.name.clone();
        let detail = format!(
            "partitions={} replication_factor={} configs={:?}",
            new.partitions, new.replication_factor, new.configs
        );
        let t = ops::create_topic(&self.node, new).await;
        let t = self.audit_change(
            ctx,
            AuditKind::Topic,
            "CreateTopic",
            ("topic", &name),
            detail,
            t,
        )?;
        Ok(Some(self.topic_view(t)))
    }

    pub async fn delete_topic(&self, ctx: &RequestContext, name: &str) -> Result<(), ApiError> {
        self.authorize(ctx, Operation::DeleteTopic, ResourceType::Topic, name)?;
        let r = ops::delete_topic(&self.node, name).await;
        self.audit_change(
            ctx,
            AuditKind::Topic,
            "DeleteTopic",
            ("topic", name),
            String::new(),
            r,
        )
    }

    /// Removes `delete`, then sets `set`; answers the configs then set.
    /// `validate_only` checks without writing.
    pub async fn alter_topic_configs(
        &self,
        ctx: &RequestContext,
        name: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        validate_only: bool,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        self.authorize(ctx, Operation::AlterTopicConfigs, ResourceType::Topic, name)?;
        if validate_only {
            return ops::check_topic_config_change(&self.node, name, &set, &delete);
        }
        let detail = format!("set={set:?} delete={delete:?}");
        let r = ops::alter_topic_config(&self.node, name, set, delete).await;
        self.audit_change(
            ctx,
            AuditKind::Topic,
            "AlterTopicConfigs",
            ("topic", name),
            detail,
            r,
        )
    }

    /// The current configs of a topic, for a door computing a change
    /// (IncrementalAlterConfigs): needs ALTER_CONFIGS, as the change does.
    pub fn topic_configs_for_alter(
        &self,
        ctx: &RequestContext,
        name: &str,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        self.authorize(ctx, Operation::AlterTopicConfigs, ResourceType::Topic, name)?;
        Ok(self.node.topic(name)?.configs)
    }

    /// Grows a topic to `count` partitions; `assignment`, when given, names
    /// the new partitions' replicas (preferred leader first), else Cairn
    /// chooses them.
    pub async fn create_partitions(
        &self,
        ctx: &RequestContext,
        name: &str,
        count: u32,
        assignment: Option<Vec<Vec<NodeId>>>,
        validate_only: bool,
    ) -> Result<Option<TopicView>, ApiError> {
        self.authorize(ctx, Operation::CreatePartitions, ResourceType::Topic, name)?;
        if validate_only {
            ops::check_create_partitions(&self.node, name, count, assignment.as_deref())?;
            return Ok(None);
        }
        let t = ops::create_partitions(&self.node, name, count, assignment).await;
        let t = self.audit_change(
            ctx,
            AuditKind::Topic,
            "CreatePartitions",
            ("topic", name),
            format!("count={count}"),
            t,
        )?;
        Ok(Some(self.topic_view(t)))
    }

    /// Deletes a partition's records below `before` (`None`: the high
    /// watermark); answers the new log start.
    pub async fn delete_records(
        &self,
        ctx: &RequestContext,
        topic: &str,
        partition: u32,
        before: Option<u64>,
    ) -> Result<u64, ApiError> {
        self.authorize(ctx, Operation::DeleteRecords, ResourceType::Topic, topic)?;
        let r = ops::delete_records(&self.node, topic, partition, before).await;
        let detail = match before {
            Some(b) => format!("partition={partition} before={b}"),
            None => format!("partition={partition} before=high_watermark"),
        };
        self.audit_change(
            ctx,
            AuditKind::Topic,
            "DeleteRecords",
            ("topic", topic),
            detail,
            r,
        )
    }

    pub async fn reassign_partition(
        &self,
        ctx: &RequestContext,
        topic: &str,
        partition: u32,
        replicas: Vec<NodeId>,
    ) -> Result<(), ApiError> {
        self.authorize_cluster(ctx, Operation::ReassignPartition)?;
        ops::locate(&self.node, topic, partition)?;
        let detail = format!("partition={partition} replicas={replicas:?}");
        let cmd = MetaCommand::ReassignPartition {
            topic: topic.to_string(),
            partition,
            replicas,
        };
        let r = match self.node.propose(Proposal::Command(cmd)).await {
            Ok(MetaResponse::Ok) => {
                tracing::info!(topic = %topic, partition, "partition reassigned");
                Ok(())
            }
            Ok(MetaResponse::Error(MetaError::UnknownTopic(n))) => Err(ApiError::UnknownTopic(n)),
            Ok(MetaResponse::Error(e)) => Err(ApiError::InvalidArgument(e.to_string())),
            Ok(other) => Err(ApiError::Internal(format!("{other:?}"))),
            Err(e) => Err(e),
        };
        self.audit_change(
            ctx,
            AuditKind::Cluster,
            "ReassignPartition",
            ("topic", topic),
            detail,
            r,
        )
    }

    pub async fn decommission_node(
        &self,
        ctx: &RequestContext,
        id: NodeId,
    ) -> Result<Vec<PartitionMove>, ApiError> {
        self.authorize_cluster(ctx, Operation::DecommissionNode)?;
        let r = ops::decommission_node(&self.node, id).await;
        self.audit_change(
            ctx,
            AuditKind::Cluster,
            "DecommissionNode",
            ("node", &id.to_string()),
            String::new(),
            r,
        )
    }

    // ---- mirror links ----

    /// Every mirror link, the topics mirroring it, and its last sync
    /// failure.
    pub fn describe_mirror_links(
        &self,
        ctx: &RequestContext,
    ) -> Result<Vec<(MirrorLink, Vec<String>, String)>, ApiError> {
        self.authorize_cluster(ctx, Operation::DescribeMirrors)?;
        Ok(ops::mirror::list_links(&self.node))
    }

    pub async fn create_mirror_link(
        &self,
        ctx: &RequestContext,
        link: MirrorLink,
    ) -> Result<(), ApiError> {
        self.authorize_cluster(ctx, Operation::AlterMirrors)?;
        let name = link.name.clone();
        let detail = format!("source {:?}", link.source_bootstrap);
        let r = ops::mirror::create_link(&self.node, link).await;
        self.audit_change(
            ctx,
            AuditKind::Cluster,
            "CreateMirrorLink",
            ("mirror_link", &name),
            detail,
            r,
        )
    }

    /// Pauses (`true`) or resumes a link.
    pub async fn pause_mirror_link(
        &self,
        ctx: &RequestContext,
        name: &str,
        paused: bool,
    ) -> Result<(), ApiError> {
        self.authorize_cluster(ctx, Operation::AlterMirrors)?;
        let r = ops::mirror::set_paused(&self.node, name, paused).await;
        let op = if paused {
            "PauseMirrorLink"
        } else {
            "ResumeMirrorLink"
        };
        self.audit_change(
            ctx,
            AuditKind::Cluster,
            op,
            ("mirror_link", name),
            String::new(),
            r,
        )
    }

    pub async fn delete_mirror_link(
        &self,
        ctx: &RequestContext,
        name: &str,
    ) -> Result<(), ApiError> {
        self.authorize_cluster(ctx, Operation::AlterMirrors)?;
        let r = ops::mirror::delete_link(&self.node, name).await;
        self.audit_change(
            ctx,
            AuditKind::Cluster,
            "DeleteMirrorLink",
            ("mirror_link", name),
            String::new(),
            r,
        )
    }

    /// Every mirrored partition (of `link`, or of every link) with its lag.
    pub async fn mirror_status(
        &self,
        ctx: &RequestContext,
        link: Option<&str>,
    ) -> Result<Vec<MirrorPartitionStatus>, ApiError> {
        self.authorize_cluster(ctx, Operation::DescribeMirrors)?;
        ops::mirror::status(&self.node, link).await
    }

    /// Promotes the link's mirror topics (`topics`, or all): writable, no
    /// longer mirrored.
    pub async fn promote_mirror_topics(
        &self,
        ctx: &RequestContext,
        link: &str,
        topics: &[String],
    ) -> Result<Vec<String>, ApiError> {
        self.authorize_cluster(ctx, Operation::AlterMirrors)?;
        let r = ops::mirror::promote(&self.node, link, topics).await;
        let detail = match &r {
            Ok(t) => format!("topics {t:?}"),
            Err(_) => String::new(),
        };
        self.audit_change(
            ctx,
            AuditKind::Cluster,
            "PromoteMirrorTopics",
            ("mirror_link", link),
            detail,
            r,
        )
    }

    /// Failback by re-seeding: the link's topics here are deleted and
    /// mirrored again from the source. Answers the topics and the records
    /// discarded here.
    pub async fn failback_mirror_link(
        &self,
        ctx: &RequestContext,
        link: &str,
        topics: &[String],
    ) -> Result<(Vec<String>, u64), ApiError> {
        self.authorize_cluster(ctx, Operation::AlterMirrors)?;
        let r = ops::mirror::failback(&self.node, link, topics).await;
        let detail = match &r {
            Ok((t, n)) => format!("re-seeded {t:?}, {n} records discarded"),
            Err(_) => String::new(),
        };
        self.audit_change(
            ctx,
            AuditKind::Cluster,
            "FailbackMirrorLink",
            ("mirror_link", link),
            detail,
            r,
        )
    }

    pub async fn remove_node(&self, ctx: &RequestContext, id: NodeId) -> Result<(), ApiError> {
        self.authorize_cluster(ctx, Operation::RemoveNode)?;
        let r = ops::remove_node(&self.node, id).await;
        self.audit_change(
            ctx,
            AuditKind::Cluster,
            "RemoveNode",
            ("node", &id.to_string()),
            String::new(),
            r,
        )
    }

    /// This node's replicas of the partitions asked for (`None`: all), with
    /// their sizes (cluster DESCRIBE).
    pub fn describe_log_dirs(
        &self,
        ctx: &RequestContext,
        wanted: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<LocalReplica>, ApiError> {
        self.authorize_cluster(ctx, Operation::DescribeLogDirs)?;
        Ok(self
            .node
            .all_replicas()
            .into_iter()
            .filter(|r| {
                wanted.is_none_or(|w| {
                    w.iter()
                        .any(|(t, ps)| *t == r.topic && ps.contains(&(r.partition as i32)))
                })
            })
            .map(|r| LocalReplica {
                topic: r.topic.clone(),
                partition: r.partition,
                size_bytes: r.log.retained_bytes().unwrap_or(0),
                leader: r.is_leader(),
            })
            .collect())
    }

    // ---- produce and read ----

    pub async fn produce(
        &self,
        ctx: &RequestContext,
        topic: &str,
        partition: u32,
        records: Bytes,
        acks: ops::Acks,
        timeout_ms: u64,
    ) -> Result<ops::Produced, ApiError> {
        self.authorize(ctx, Operation::Produce, ResourceType::Topic, topic)?;
        ops::produce(&self.node, topic, partition, records, acks, timeout_ms).await
    }

    /// A producer id and epoch for an idempotent producer: IDEMPOTENT_WRITE
    /// on the cluster, or WRITE on some topic (Kafka 2.8+). A new producer
    /// gets a fresh id, unique across the cluster and restarts, at epoch 0;
    /// one that names its id and epoch (KIP-360, after an error) keeps the
    /// id with the next epoch.
    pub async fn init_producer_id(
        &self,
        ctx: &RequestContext,
        current: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ApiError> {
        if !self.cluster_allows(ctx, Operation::InitProducerId) && !self.may_write_some_topic(ctx) {
            return Err(unauthorized(
                ctx,
                Operation::InitProducerId,
                ResourceType::Cluster,
                acl::CLUSTER_RESOURCE,
            ));
        }
        if let Some((id, epoch)) = current {
            if id >= 0 && (0..i16::MAX - 1).contains(&epoch) {
                return Ok((id, epoch + 1));
            }
        }
        Ok((self.node.allocate_producer_id().await?, 0))
    }

    fn may_write_some_topic(&self, ctx: &RequestContext) -> bool {
        if !self.authz.enabled || self.authz.super_users.contains(&ctx.principal) {
            return true;
        }
        let names: Vec<String> = self
            .node
            .meta_view
            .read(|s| s.topics.keys().cloned().collect());
        names.iter().any(|n| {
            self.decide(ctx, AclOperation::Write, ResourceType::Topic, n)
                .allowed()
        })
    }

    /// Committed records of a partition from `offset` on (the gRPC door's
    /// fetch: one partition, waiting up to `max_wait` for new records).
    pub async fn fetch(
        &self,
        ctx: &RequestContext,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
        max_wait: Duration,
    ) -> Result<FetchResult, ApiError> {
        self.authorize(ctx, Operation::Fetch, ResourceType::Topic, topic)?;
        ops::fetch(&self.node, topic, partition, offset, max_bytes, max_wait).await
    }

    /// The leader replica of a partition, for reads `op` (fetch, offset
    /// for leader epoch) the context is allowed.
    pub fn reader(
        &self,
        ctx: &RequestContext,
        op: Operation,
        topic: &str,
        partition: u32,
    ) -> Result<PartitionReader, ApiError> {
        if !matches!(
            op,
            Operation::Fetch | Operation::ListOffsets | Operation::OffsetForLeaderEpoch
        ) {
            return Err(ApiError::Internal(format!("{op:?} is not a read")));
        }
        self.authorize(ctx, op, ResourceType::Topic, topic)?;
        let (_, replica) = ops::partition_leader(&self.node, topic, partition)?;
        Ok(PartitionReader {
            replica,
            topic: topic.to_string(),
            partition,
        })
    }

    /// `(offset, timestamp_ms, leader_epoch)` of a partition.
    pub async fn list_offsets(
        &self,
        ctx: &RequestContext,
        topic: &str,
        partition: u32,
        spec: ops::OffsetSpec,
    ) -> Result<(i64, i64, u64), ApiError> {
        self.authorize(ctx, Operation::ListOffsets, ResourceType::Topic, topic)?;
        ops::list_offsets(&self.node, topic, partition, spec).await
    }

    // ---- consumer groups ----

    /// The coordinator of `group` (the metadata leader with a live lease).
    pub fn find_coordinator(
        &self,
        ctx: &RequestContext,
        group: &str,
    ) -> Result<CoordinatorView, ApiError> {
        self.authorize(ctx, Operation::FindCoordinator, ResourceType::Group, group)?;
        let node = &self.node;
        let not_available = |why: &str| ApiError::CoordinatorNotAvailable(why.to_owned());
        let leader = node
            .meta_leader()
            .ok_or_else(|| not_available("no metadata leader right now; retry"))?;
        // This node leads but without a lease: it may be cut off, and a
        // successor may exist that it has not heard of.
        if leader == node.id && !node.meta_lease_valid() {
            return Err(not_available(
                "the metadata leader has no live lease; retry",
            ));
        }
        let kafka_addr = node
            .meta_view
            .read(|s| s.nodes.get(&leader).map(|n| n.kafka_addr.clone()))
            .ok_or_else(|| not_available("the coordinator's address is not known yet; retry"))?;
        Ok(CoordinatorView {
            node: leader,
            kafka_addr,
        })
    }

    pub async fn join_group(
        &self,
        ctx: &RequestContext,
        req: JoinArgs,
    ) -> Result<Joined, ApiError> {
        self.authorize(ctx, Operation::JoinGroup, ResourceType::Group, &req.group)?;
        self.node.coordinator.join(&self.node, req).await
    }

    pub async fn sync_group(
        &self,
        ctx: &RequestContext,
        who: MemberRef,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<Vec<u8>, ApiError> {
        self.authorize(ctx, Operation::SyncGroup, ResourceType::Group, &who.group)?;
        self.node
            .coordinator
            .sync(&self.node, who, assignments)
            .await
    }

    /// A consumer-protocol (KIP-848) heartbeat: READ on the group, as a
    /// JoinGroup.
    pub async fn consumer_group_heartbeat(
        &self,
        ctx: &RequestContext,
        group: &str,
        heartbeat: cairn_group::modern::Heartbeat,
    ) -> Result<crate::ConsumerHeartbeatAnswer, ApiError> {
        self.authorize(ctx, Operation::JoinGroup, ResourceType::Group, group)?;
        // As Kafka: a subscription naming a topic the principal may not
        // describe is refused whole (TOPIC_AUTHORIZATION_FAILED).
        for topic in heartbeat.subscribed_topics.iter().flatten() {
            self.authorize(ctx, Operation::DescribeTopic, ResourceType::Topic, topic)?;
        }
        self.node
            .coordinator
            .consumer_heartbeat(&self.node, group, heartbeat)
            .await
    }

    /// A consumer-protocol group (DESCRIBE on the group), with its topics
    /// by id and name (`topic_names`).
    pub async fn describe_consumer_group(
        &self,
        ctx: &RequestContext,
        group: &str,
    ) -> Result<crate::ConsumerGroupView, ApiError> {
        self.authorize(ctx, Operation::DescribeGroup, ResourceType::Group, group)?;
        self.node
            .coordinator
            .describe_consumer_group(&self.node, group)
            .await
    }

    /// The names of the topics with these ids (the metadata group's topic
    /// ids), those that exist: only what a request names is looked up (it
    /// is on the fetch and produce paths of Kafka clients that name topics
    /// by id).
    pub fn topic_names_of(&self, ids: &BTreeSet<u64>) -> BTreeMap<u64, String> {
        if ids.is_empty() {
            return BTreeMap::new();
        }
        self.node.meta_view.read(|s| {
            s.topics
                .iter()
                .filter(|(_, t)| ids.contains(&t.id))
                .map(|(n, t)| (t.id, n.clone()))
                .collect()
        })
    }

    /// The ids of the topics with these names, those that exist.
    pub fn topic_ids_of<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> BTreeMap<String, u64> {
        self.node.meta_view.read(|s| {
            names
                .into_iter()
                .filter_map(|n| Some((n.to_string(), s.topics.get(n)?.id)))
                .collect()
        })
    }

    pub async fn heartbeat(&self, ctx: &RequestContext, who: MemberRef) -> Result<(), ApiError> {
        self.authorize(ctx, Operation::Heartbeat, ResourceType::Group, &who.group)?;
        self.node.coordinator.heartbeat(&self.node, who).await
    }

    /// A member leaves: by member id, or a static member by its instance
    /// id (with its member id, or an empty one).
    pub async fn leave_group(
        &self,
        ctx: &RequestContext,
        group: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, Operation::LeaveGroup, ResourceType::Group, group)?;
        self.node
            .coordinator
            .leave(&self.node, group, member_id, group_instance_id)
            .await
    }

    /// Commits offsets for `group` (READ on the group; READ on each topic).
    /// `generation`: `None` for a commit from outside the group. A refused
    /// group is the `Err`; each partition has its own answer otherwise
    /// (unauthorized, unknown, or the commit's outcome). With
    /// `known_partitions_only` (the Kafka door, as Kafka) a partition the
    /// topic does not have is refused; the gRPC API stores offsets of any
    /// topic and partition, as it always has (`cairn bench commit`).
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_offsets(
        &self,
        ctx: &RequestContext,
        group: &str,
        generation: Option<i32>,
        member_id: &str,
        group_instance_id: Option<&str>,
        offsets: Vec<OffsetToCommit>,
        known_partitions_only: bool,
    ) -> Result<PartitionResults, ApiError> {
        self.authorize(ctx, Operation::OffsetCommit, ResourceType::Group, group)?;
        let now = now_ms();
        let mut results: PartitionResults = Vec::with_capacity(offsets.len());
        let mut commit = Vec::new();
        let mut allowed: BTreeMap<String, Result<Option<u32>, ApiError>> = BTreeMap::new();
        for o in offsets {
            let count = allowed
                .entry(o.topic.clone())
                .or_insert_with(|| {
                    self.authorize(ctx, Operation::OffsetCommit, ResourceType::Topic, &o.topic)?;
                    if known_partitions_only {
                        Ok(Some(self.node.topic(&o.topic)?.partitions.len() as u32))
                    } else {
                        Ok(None)
                    }
                })
                .clone();
            let known = count.and_then(|c| match c {
                Some(c) => known_partition(&o.topic, o.partition, c),
                None => u32::try_from(o.partition).map_err(|_| ApiError::UnknownPartition {
                    topic: o.topic.clone(),
                    partition: 0,
                    count: 0,
                }),
            });
            match known {
                Ok(p) => {
                    commit.push((
                        o.topic.clone(),
                        p,
                        CommittedOffset {
                            offset: o.offset,
                            metadata: o.metadata,
                            commit_time_ms: now,
                            leader_epoch: o.leader_epoch,
                        },
                    ));
                    results.push((o.topic, o.partition, Ok(())));
                }
                Err(e) => results.push((o.topic, o.partition, Err(e))),
            }
        }
        if commit.is_empty() {
            return Ok(results);
        }
        let outcome = self
            .node
            .coordinator
            .commit(
                &self.node,
                group.to_string(),
                generation,
                member_id.to_string(),
                group_instance_id,
                commit,
            )
            .await;
        if let Err(e) = outcome {
            for r in results.iter_mut().filter(|r| r.2.is_ok()) {
                r.2 = Err(e.clone());
            }
        }
        Ok(results)
    }

    /// Checks that an OffsetFetch naming a member (Kafka's v9: member id
    /// and epoch) comes from a current member of a consumer-protocol group:
    /// UNKNOWN_MEMBER_ID or STALE_MEMBER_EPOCH otherwise. Requests of classic
    /// groups, and those naming no member, pass.
    pub async fn check_offset_fetch_member(
        &self,
        ctx: &RequestContext,
        group: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, Operation::OffsetFetch, ResourceType::Group, group)?;
        self.node
            .coordinator
            .check_fetch_member(&self.node, group, member_id, member_epoch)
            .await
    }

    /// A group's committed offsets (DESCRIBE on the group), those of topics
    /// the context may not describe left out.
    pub async fn fetch_offsets(
        &self,
        ctx: &RequestContext,
        group: &str,
    ) -> Result<Vec<StoredOffset>, ApiError> {
        self.authorize(ctx, Operation::OffsetFetch, ResourceType::Group, group)?;
        let mut offsets = self.node.coordinator.offsets(&self.node, group).await?;
        let mut allowed: BTreeMap<String, bool> = BTreeMap::new();
        offsets.retain(|o| {
            *allowed.entry(o.topic.clone()).or_insert_with(|| {
                self.allowed(ctx, Operation::OffsetFetch, ResourceType::Topic, &o.topic)
            })
        });
        Ok(offsets)
    }

    /// Every group (DESCRIBE on the cluster), else those the context may
    /// describe.
    pub async fn list_groups(&self, ctx: &RequestContext) -> Result<Vec<GroupSummary>, ApiError> {
        let mut groups = self.node.coordinator.list(&self.node).await?;
        if !self.cluster_allows(ctx, Operation::ListGroups) {
            groups.retain(|g| {
                self.allowed(ctx, Operation::ListGroups, ResourceType::Group, &g.group)
            });
        }
        Ok(groups)
    }

    pub async fn describe_group(
        &self,
        ctx: &RequestContext,
        group: &str,
    ) -> Result<GroupDescription, ApiError> {
        self.authorize(ctx, Operation::DescribeGroup, ResourceType::Group, group)?;
        self.node.coordinator.describe(&self.node, group).await
    }

    pub async fn delete_group(&self, ctx: &RequestContext, group: &str) -> Result<(), ApiError> {
        self.authorize(ctx, Operation::DeleteGroup, ResourceType::Group, group)?;
        self.node.coordinator.delete(&self.node, group).await
    }

    /// Deletes a group's offsets of these partitions (DELETE on the group,
    /// READ on each topic); answers per partition whether it was deleted
    /// (false: the group still consumes it), or why not.
    pub async fn delete_offsets(
        &self,
        ctx: &RequestContext,
        group: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<(String, i32, Result<bool, ApiError>)>, ApiError> {
        self.authorize(ctx, Operation::OffsetDelete, ResourceType::Group, group)?;
        let mut out = Vec::with_capacity(partitions.len());
        let mut asked = Vec::new();
        let mut topics: BTreeMap<String, Result<u32, ApiError>> = BTreeMap::new();
        for (t, p) in partitions {
            let count = topics
                .entry(t.clone())
                .or_insert_with(|| {
                    self.authorize(ctx, Operation::OffsetDelete, ResourceType::Topic, &t)?;
                    Ok(self.node.topic(&t)?.partitions.len() as u32)
                })
                .clone();
            match count.and_then(|c| known_partition(&t, p, c)) {
                Ok(index) => asked.push((t, index)),
                Err(e) => out.push((t, p, Err(e))),
            }
        }
        if !asked.is_empty() {
            for ((t, p), deleted) in self
                .node
                .coordinator
                .delete_offsets(&self.node, group, asked)
                .await?
            {
                out.push((t, p as i32, Ok(deleted)));
            }
        }
        Ok(out)
    }

    // ---- ACLs ----

    /// Stores each binding (ALTER on the cluster); one answer each.
    pub async fn create_acls(
        &self,
        ctx: &RequestContext,
        bindings: Vec<AclBinding>,
    ) -> Result<Vec<Result<(), ApiError>>, ApiError> {
        self.authorize_cluster(ctx, Operation::CreateAcls)?;
        let mut out = Vec::with_capacity(bindings.len());
        for b in bindings {
            if let Err(e) = b.validate() {
                out.push(Err(ApiError::InvalidArgument(e.to_string())));
                continue;
            }
            let r = match self
                .node
                .propose(Proposal::Command(MetaCommand::PutAcl(b.to_entry())))
                .await
            {
                Ok(MetaResponse::Ok) => Ok(()),
                Ok(other) => Err(ApiError::Internal(format!("{other:?}"))),
                Err(e) => Err(e),
            };
            let binding = b.to_string();
            out.push(self.audit_change(
                ctx,
                AuditKind::Acl,
                "CreateAcls",
                ("acl", &binding),
                String::new(),
                r,
            ));
        }
        Ok(out)
    }

    /// The stored bindings matching `filter` (DESCRIBE on the cluster).
    pub fn describe_acls(
        &self,
        ctx: &RequestContext,
        filter: &AclFilter,
    ) -> Result<Vec<AclBinding>, ApiError> {
        self.authorize_cluster(ctx, Operation::DescribeAcls)?;
        Ok(self.stored_acls(filter))
    }

    fn stored_acls(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.node.meta_view.read(|s| {
            s.acls
                .iter()
                .filter_map(|e| AclBinding::from_entry(e).ok())
                .filter(|b| filter.matches(b))
                .collect()
        })
    }

    /// Deletes the bindings matching each filter (ALTER on the cluster);
    /// answers, per filter, the bindings deleted.
    pub async fn delete_acls(
        &self,
        ctx: &RequestContext,
        filters: Vec<AclFilter>,
    ) -> Result<Vec<Result<Vec<AclBinding>, ApiError>>, ApiError> {
        self.authorize_cluster(ctx, Operation::DeleteAcls)?;
        let mut out = Vec::with_capacity(filters.len());
        for f in filters {
            let mut deleted = Vec::new();
            let mut failed = None;
            for b in self.stored_acls(&f) {
                let r = match self
                    .node
                    .propose(Proposal::Command(MetaCommand::DeleteAcl(b.to_entry())))
                    .await
                {
                    Ok(MetaResponse::Ok) => Ok(()),
                    Ok(other) => Err(ApiError::Internal(format!("{other:?}"))),
                    Err(e) => Err(e),
                };
                let binding = b.to_string();
                match self.audit_change(
                    ctx,
                    AuditKind::Acl,
                    "DeleteAcls",
                    ("acl", &binding),
                    String::new(),
                    r,
                ) {
                    Ok(()) => deleted.push(b),
                    Err(e) => failed = Some(e),
                }
                if failed.is_some() {
                    break;
                }
            }
            out.push(match failed {
                Some(e) => Err(e),
                None => Ok(deleted),
            });
        }
        Ok(out)
    }

    // ---- roles ----

    /// Every role: its bindings (principal empty) and members (DESCRIBE on
    /// the cluster).
    pub fn describe_roles(&self, ctx: &RequestContext) -> Result<Vec<RoleView>, ApiError> {
        self.authorize_cluster(ctx, Operation::DescribeRoles)?;
        Ok(self.node.meta_view.read(|s| {
            s.roles
                .iter()
                .map(|(name, r)| {
                    let acls = r
                        .acls
                        .iter()
                        .filter_map(|e| AclBinding::from_entry(e).ok())
                        .collect();
                    (name.clone(), acls, r.members.iter().cloned().collect())
                })
                .collect()
        }))
    }

    /// Changes a role (ALTER on the cluster): adds or removes bindings,
    /// grants or revokes it, deletes it.
    pub async fn alter_role(
        &self,
        ctx: &RequestContext,
        change: RoleChange,
    ) -> Result<(), ApiError> {
        self.authorize_cluster(ctx, Operation::AlterRoles)?;
        let check = |acls: &[AclBinding]| -> Result<Vec<cairn_metadata::AclEntry>, ApiError> {
            acls.iter()
                .map(|b| {
                    let mut b = b.clone();
                    // A role's bindings name no principal; validate as if one.
                    b.principal = "User:role".into();
                    b.validate()
                        .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
                    b.principal.clear();
                    Ok(b.to_entry())
                })
                .collect()
        };
        let (what, cmd) = match &change {
            RoleChange::AddAcls { role, acls } => (
                "AddRoleAcls",
                MetaCommand::PutRoleAcls {
                    role: role.clone(),
                    acls: check(acls)?,
                },
            ),
            RoleChange::RemoveAcls { role, acls } => (
                "RemoveRoleAcls",
                MetaCommand::DeleteRoleAcls {
                    role: role.clone(),
                    acls: check(acls)?,
                },
            ),
            RoleChange::Grant { role, principal } | RoleChange::Revoke { role, principal } => {
                if Principal::parse(principal).is_none() {
                    return Err(ApiError::InvalidArgument(format!(
                        "{principal:?} is not a principal of the form User:name"
                    )));
                }
                let cmd = if matches!(change, RoleChange::Grant { .. }) {
                    MetaCommand::GrantRole {
                        role: role.clone(),
                        principal: principal.clone(),
                    }
                } else {
                    MetaCommand::RevokeRole {
                        role: role.clone(),
                        principal: principal.clone(),
                    }
                };
                (
                    if matches!(change, RoleChange::Grant { .. }) {
                        "GrantRole"
                    } else {
                        "RevokeRole"
                    },
                    cmd,
                )
            }
            RoleChange::Delete { role } => {
                ("DeleteRole", MetaCommand::DeleteRole { role: role.clone() })
            }
        };
        let r = match self.node.propose(Proposal::Command(cmd)).await {
            Ok(MetaResponse::Ok) => Ok(()),
            Ok(MetaResponse::Error(MetaError::UnknownRole(r))) => Err(ApiError::UnknownRole(r)),
            Ok(MetaResponse::Error(e)) => Err(ApiError::InvalidArgument(e.to_string())),
            Ok(other) => Err(ApiError::Internal(format!("{other:?}"))),
            Err(e) => Err(e),
        };
        let (role, detail) = change.audited();
        self.audit_change(ctx, AuditKind::Role, what, ("role", &role), detail, r)
    }

    // ---- the fault-injection harness ----

    /// This node's own replica of a partition, leader or not, for
    /// `/test/replica-log`; `None` unless `test_replica_reads` is set.
    pub fn test_replica(&self, topic: &str, partition: u32) -> Option<Option<PartitionReader>> {
        if !self.node.config.test_replica_reads {
            return None;
        }
        Some(
            self.node
                .all_replicas()
                .into_iter()
                .find(|r| r.topic == topic && r.partition == partition)
                .map(|replica| PartitionReader {
                    replica,
                    topic: topic.to_string(),
                    partition,
                }),
        )
    }
}

/// One Raft group's state on this node, as the simulator's invariants see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    /// `None` for the metadata group.
    pub partition: Option<(String, u32)>,
    pub term: u64,
    pub leader: bool,
    /// The replica's high watermark (0 for the metadata group).
    pub high_watermark: u64,
    /// The group's vote and log positions as openraft reports them.
    pub detail: String,
}

impl Broker {
    /// Every Raft group's term and role on this node (and each partition's
    /// high watermark); empty unless `test_replica_reads` is set.
    pub fn test_group_states(&self) -> Vec<GroupState> {
        if !self.node.config.test_replica_reads {
            return Vec::new();
        }
        let meta = self.node.meta.metrics().borrow_watched().clone();
        let mut states = vec![GroupState {
            partition: None,
            term: meta.current_term,
            leader: meta.state == openraft::ServerState::Leader,
            high_watermark: 0,
            detail: format!(
                "vote {} last log {:?} applied {:?} membership {:?}",
                meta.vote,
                meta.last_log_index,
                meta.last_applied.map(|l| l.index),
                meta.membership_config
                    .membership()
                    .voter_ids()
                    .collect::<Vec<_>>()
            ),
        }];
        for r in self.node.all_replicas() {
            states.push(GroupState {
                partition: Some((r.topic.clone(), r.partition)),
                term: r.term(),
                leader: r.is_leader(),
                high_watermark: r.log.high_watermark(),
                detail: String::new(),
            });
        }
        states
    }
}

impl PartitionReader {
    /// The leader's term (Kafka's leader epoch).
    pub fn term(&self) -> u64 {
        self.replica.term()
    }

    pub fn high_watermark(&self) -> u64 {
        self.replica.log.high_watermark()
    }

    pub fn log_start(&self) -> u64 {
        self.replica.log.log_start()
    }

    /// Offsets below this are compacted on this replica.
    pub fn cleaned_through(&self) -> Result<u64, String> {
        self.replica
            .log
            .cleaned_through()
            .map_err(|e| e.to_string())
    }

    /// Reads from `offset` as a client fetch does: with a live lease,
    /// checked again after the read.
    pub async fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        first: FirstBatch,
    ) -> Result<FetchResult, ApiError> {
        ops::read_partition(
            &self.replica,
            &self.topic,
            self.partition,
            offset,
            max_bytes,
            first,
        )
        .await
    }

    /// Reads this replica's own committed log, without the lease checks
    /// (the harness's `/test/replica-log` only).
    pub async fn read_local(
        &self,
        offset: u64,
        max_bytes: usize,
    ) -> Result<FetchResult, ReadError> {
        self.replica
            .log
            .read(offset, max_bytes, FirstBatch::Whole)
            .await
    }

    /// Waits until the log has records at or past `offset`, or `timeout`.
    pub async fn wait_for(&self, offset: u64, timeout: Duration) {
        self.replica.log.wait_for(offset, timeout).await;
    }

    /// The leader's term and high watermark, read as any read is (a live
    /// lease, an entry of its own term applied).
    pub async fn epoch_end(&self) -> Result<(u64, u64), ApiError> {
        ops::require_read_lease(&self.replica, &self.topic, self.partition).await?;
        Ok((self.replica.term(), self.replica.log.high_watermark()))
    }
}

/// `partition` as an index of a topic of `count` partitions.
fn known_partition(topic: &str, partition: i32, count: u32) -> Result<u32, ApiError> {
    u32::try_from(partition)
        .ok()
        .filter(|p| *p < count)
        .ok_or_else(|| ApiError::UnknownPartition {
            topic: topic.to_string(),
            partition: partition.max(0) as u32,
            count: count as usize,
        })
}

fn unauthorized(ctx: &RequestContext, op: Operation, t: ResourceType, name: &str) -> ApiError {
    let acl = acl::rule_for(op, t).map_or(AclOperation::All, |r| r.acl);
    ApiError::Unauthorized {
        principal: ctx.principal.to_string(),
        acl,
        resource_type: t,
        resource: name.to_string(),
    }
}

pub(crate) fn now_ms() -> i64 {
    cairn_clock::system_time()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
