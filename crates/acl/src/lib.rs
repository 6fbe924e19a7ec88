//! Who asks ([`RequestContext`]) and what they may do. Pure, no I/O:
//! `cairn-broker` authorizes every operation with it.
//!
//! Authorization: which operation needs which permission on which resource
//! ([`OPERATIONS`]), and the decision over the ACLs stored in the metadata
//! group ([`AclIndex::authorize`]), with Kafka's semantics:
//!
//! - a binding names a principal (`User:alice`, or `User:*` for any), a
//!   host (an IP, or `*`), a resource (type, and a name matched literally,
//!   as the wildcard `*`, or as a prefix), an operation and allow or deny;
//! - a matching DENY wins over any ALLOW; with neither, the answer is no
//!   (unless `allow_everyone_if_no_acl_found` and no binding names the
//!   resource at all);
//! - READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
//!   DESCRIBE_CONFIGS; ALL implies every operation;
//! - super-users (from config) are allowed everything.
//!
//! The codes of [`ResourceType`], [`PatternType`], [`AclOperation`] and
//! [`Permission`] are Kafka's wire codes; the names are what the metadata
//! group stores ([`cairn_metadata::AclEntry`]) and the CLI prints.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use cairn_metadata::AclEntry;

pub use crate::context::Listener;
pub use crate::context::Principal;
pub use crate::context::RequestContext;

pub mod context;

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }

            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }

            /// The stored and printed name (Kafka's enum name).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            /// Parses a name, case-insensitively, `-` or `_` alike.
            pub fn parse(s: &str) -> Option<$name> {
                let s = s.trim().to_ascii_uppercase().replace('-', "_");
                match s.as_str() { $($text => Some($name::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum!(
    /// What an ACL protects (Kafka's `ResourceType`, without ANY/UNKNOWN).
    ResourceType {
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

wire_enum!(
    /// How a binding's resource name matches (Kafka's `PatternType`, the
    /// two a binding can have).
    PatternType {
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

wire_enum!(
    /// Kafka's `AclOperation`, without ANY/UNKNOWN.
    AclOperation {
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

wire_enum!(
    /// Allow or deny (Kafka's `AclPermissionType`, without ANY/UNKNOWN).
    Permission {
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// The name of the one cluster resource (Kafka's `kafka-cluster`).
pub const CLUSTER_RESOURCE: &str = "kafka-cluster";
/// A literal resource name, principal name or host matching any.
pub const WILDCARD: &str = "*";

impl AclOperation {
    /// Whether an ALLOW for `self` also allows `wanted` (Kafka's implied
    /// operations).
    pub fn allows(self, wanted: AclOperation) -> bool {
        use AclOperation::*;
        self == wanted
            || self == All
            || (wanted == Describe && matches!(self, Read | Write | Delete | Alter))
            || (wanted == DescribeConfigs && self == AlterConfigs)
    }

    /// Whether a DENY for `self` denies `wanted`.
    pub fn denies(self, wanted: AclOperation) -> bool {
        self == wanted || self == AclOperation::All
    }
}

/// One ACL, typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub principal: String,
    pub host: String,
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub operation: AclOperation,
    pub permission: Permission,
}

/// Why a binding or filter cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("principal {0:?} is not of the form Type:name")]
    Principal(String),
    #[error("host {0:?} is neither an IP address nor *")]
    Host(String),
    #[error("unknown {what} {value:?}")]
    Unknown { what: &'static str, value: String },
    #[error("the cluster resource is named {CLUSTER_RESOURCE}, not {0:?}")]
    ClusterName(String),
    #[error("the resource name is empty")]
    EmptyName,
    #[error("{0} is not an operation on a {1} resource")]
    Operation(AclOperation, ResourceType),
}

impl AclBinding {
    /// Checks what Kafka checks before storing a binding.
    pub fn validate(&self) -> Result<(), AclError> {
        if self.principal != WILDCARD && Principal::parse(&self.principal).is_none() {
            return Err(AclError::Principal(self.principal.clone()));
        }
        if self.host != WILDCARD && self.host.parse::<IpAddr>().is_err() {
            return Err(AclError::Host(self.host.clone()));
        }
        if self.resource_name.is_empty() {
            return Err(AclError::EmptyName);
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_RESOURCE {
            return Err(AclError::ClusterName(self.resource_name.clone()));
        }
        if !valid_operations(self.resource_type).contains(&self.operation) {
            return Err(AclError::Operation(self.operation, self.resource_type));
        }
        Ok(())
    }

    /// The stored form.
    pub fn to_entry(&self) -> AclEntry {
        AclEntry {
            principal: self.principal.clone(),
            host: self.host.clone(),
            resource_type: self.resource_type.name().to_string(),
            resource_name: self.resource_name.clone(),
            pattern_type: self.pattern_type.name().to_string(),
            operation: self.operation.name().to_string(),
            permission: self.permission.name().to_string(),
        }
    }

    /// From the stored form.
    pub fn from_entry(e: &AclEntry) -> Result<AclBinding, AclError> {
        fn parse<T>(
            what: &'static str,
            value: &str,
            f: fn(&str) -> Option<T>,
        ) -> Result<T, AclError> {
            f(value).ok_or_else(|| AclError::Unknown {
                what,
                value: value.to_string(),
            })
        }
        Ok(AclBinding {
            principal: e.principal.clone(),
            host: e.host.clone(),
            resource_type: parse("resource type", &e.resource_type, ResourceType::parse)?,
            resource_name: e.resource_name.clone(),
            pattern_type: parse("pattern type", &e.pattern_type, PatternType::parse)?,
            operation: parse("operation", &e.operation, AclOperation::parse)?,
            permission: parse("permission", &e.permission, Permission::parse)?,
        })
    }
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} on {}:{}:{} from {}",
            self.permission,
            self.principal,
            self.operation,
            self.resource_type,
            self.pattern_type,
            self.resource_name,
            self.host
        )
    }
}

/// The operations a binding on a resource type can name (Kafka's table).
pub fn valid_operations(t: ResourceType) -> &'static [AclOperation] {
    use AclOperation::*;
    match t {
        ResourceType::Topic => &[
            All,
            Read,
            Write,
            Create,
            Delete,
            Alter,
            Describe,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[All, Read, Delete, Describe],
        ResourceType::Cluster => &[
            All,
            Create,
            Alter,
            Describe,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
        ],
        ResourceType::TransactionalId => &[All, Write, Describe],
        ResourceType::DelegationToken => &[All, Describe],
        ResourceType::User => &[All, CreateTokens, DescribeTokens],
    }
}

/// A filter over bindings (DescribeAcls, DeleteAcls, `cairn acl list`):
/// `None` matches anything. A resource name with pattern `Match` matches
/// the bindings that would apply to that name (literal, wildcard and
/// prefixes of it), as Kafka's MATCH does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFilter {
    pub principal: Option<String>,
    pub host: Option<String>,
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub operation: Option<AclOperation>,
    pub permission: Option<Permission>,
}

/// How an [`AclFilter`] matches pattern types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PatternFilter {
    /// Any pattern type (Kafka's ANY).
    #[default]
    Any,
    /// Bindings that apply to the filter's resource name (Kafka's MATCH).
    Match,
    Exactly(PatternType),
}

impl AclFilter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        let eq = |f: &Option<String>, v: &str| f.as_deref().is_none_or(|f| f == v);
        if !eq(&self.principal, &b.principal)
            || !eq(&self.host, &b.host)
            || self.resource_type.is_some_and(|t| t != b.resource_type)
            || self.operation.is_some_and(|o| o != b.operation)
            || self.permission.is_some_and(|p| p != b.permission)
        {
            return false;
        }
        match self.pattern {
            PatternFilter::Any => eq(&self.resource_name, &b.resource_name),
            PatternFilter::Exactly(p) => {
                p == b.pattern_type && eq(&self.resource_name, &b.resource_name)
            }
            PatternFilter::Match => match &self.resource_name {
                None => true,
                Some(name) => name_matches(b, name),
            },
        }
    }
}

fn name_matches(b: &AclBinding, name: &str) -> bool {
    match b.pattern_type {
        PatternType::Literal => b.resource_name == name || b.resource_name == WILDCARD,
        PatternType::Prefixed => name.starts_with(&b.resource_name),
    }
}

/// The answer for one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed(Why),
    Denied(Why),
}

/// What decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// No authorizer configured: every request is allowed (insecure).
    NoAuthorizer,
    SuperUser,
    /// A binding allowed it.
    Acl,
    /// A DENY binding matched.
    DenyAcl,
    /// No binding allowed it.
    NoMatchingAcl,
    /// No binding names the resource and `allow_everyone_if_no_acl_found`.
    NoAclOnResource,
    /// The audit topic's rule: nobody writes or deletes audit records.
    AuditTopic,
}

impl Decision {
    pub fn allowed(self) -> bool {
        matches!(self, Decision::Allowed(_))
    }
}

/// Bindings with `host`, `principal` and `op` to check.
type Bucket = Vec<(String, String, AclOperation, Permission)>;

/// The stored bindings, indexed for checks: a literal name is one hash
/// lookup, a prefixed one a lookup per prefix length of the name: 312 ns a
/// check with 10,000 bindings, 160 ns with 10 (docs/benchmarks.md).
#[derive(Debug, Default)]
pub struct AclIndex {
    literal: HashMap<(ResourceType, String), Bucket>,
    prefixed: BTreeMap<(ResourceType, String), Bucket>,
    /// The lengths of the prefixes stored per resource type, to look up.
    prefix_lengths: HashMap<ResourceType, Vec<usize>>,
    len: usize,
}

impl AclIndex {
    pub fn new<'a>(bindings: impl IntoIterator<Item = &'a AclBinding>) -> AclIndex {
        let mut index = AclIndex::default();
        for b in bindings {
            let entry = (
                b.principal.clone(),
                b.host.clone(),
                b.operation,
                b.permission,
            );
            let key = (b.resource_type, b.resource_name.clone());
            match b.pattern_type {
                PatternType::Literal => index.literal.entry(key).or_default().push(entry),
                PatternType::Prefixed => {
                    let lengths = index.prefix_lengths.entry(b.resource_type).or_default();
                    if !lengths.contains(&b.resource_name.len()) {
                        lengths.push(b.resource_name.len());
                    }
                    index.prefixed.entry(key).or_default().push(entry)
                }
            }
            index.len += 1;
        }
        index
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every bucket of bindings that applies to `name`.
    fn buckets<'a>(&'a self, t: ResourceType, name: &str) -> Vec<&'a Bucket> {
        let mut out = self.named_buckets(t, name);
        if name != WILDCARD {
            if let Some(b) = self.literal.get(&(t, WILDCARD.to_string())) {
                out.push(b);
            }
        }
        out
    }

    /// The buckets of bindings that name `name`: literally or by a prefix.
    fn named_buckets<'a>(&'a self, t: ResourceType, name: &str) -> Vec<&'a Bucket> {
        let mut out = Vec::new();
        if let Some(b) = self.literal.get(&(t, name.to_string())) {
            out.push(b);
        }
        if let Some(lengths) = self.prefix_lengths.get(&t) {
            for &n in lengths {
                if let Some(prefix) = name.get(..n) {
                    if let Some(b) = self.prefixed.get(&(t, prefix.to_string())) {
                        out.push(b);
                    }
                }
            }
        }
        out
    }

    /// As [`AclIndex::decide`], but only a binding that names the resource
    /// (literal or prefixed) allows: a `*` binding may deny, never allow,
    /// and no binding at all denies.
    pub fn decide_named(
        &self,
        principal: &Principal,
        host: Option<IpAddr>,
        op: AclOperation,
        t: ResourceType,
        name: &str,
    ) -> Decision {
        let wildcard_denies: Bucket = self
            .literal
            .get(&(t, WILDCARD.to_string()))
            .into_iter()
            .flatten()
            .filter(|(_, _, _, perm)| *perm == Permission::Deny)
            .cloned()
            .collect();
        let mut buckets = self.named_buckets(t, name);
        buckets.push(&wildcard_denies);
        decide_in(&buckets, principal, host, op, false)
    }

    /// The decision for `principal` at `host` doing `op` on resource
    /// `t`/`name`, by the bindings alone (no super-users).
    pub fn decide(
        &self,
        principal: &Principal,
        host: Option<IpAddr>,
        op: AclOperation,
        t: ResourceType,
        name: &str,
        allow_if_no_acl: bool,
    ) -> Decision {
        decide_in(&self.buckets(t, name), principal, host, op, allow_if_no_acl)
    }
}

/// The decision over `buckets`: a matching DENY refuses, then a matching
/// ALLOW allows, then `allow_if_no_acl` allows if every bucket is empty.
fn decide_in(
    buckets: &[&Bucket],
    principal: &Principal,
    host: Option<IpAddr>,
    op: AclOperation,
    allow_if_no_acl: bool,
) -> Decision {
    let who = principal.to_string();
    let wildcard_principal = format!("{}:*", principal.kind);
    let host = host.map(|h| h.to_string());
    let applies = |(p, h, _, _): &&(String, String, AclOperation, Permission)| {
        (*p == who || *p == wildcard_principal || p == WILDCARD)
            && (h == WILDCARD || host.as_deref() == Some(h.as_str()))
    };
    let matching = || buckets.iter().flat_map(|b| b.iter()).filter(applies);
    if matching().any(|(_, _, o, perm)| *perm == Permission::Deny && o.denies(op)) {
        return Decision::Denied(Why::DenyAcl);
    }
    if matching().any(|(_, _, o, perm)| *perm == Permission::Allow && o.allows(op)) {
        return Decision::Allowed(Why::Acl);
    }
    if allow_if_no_acl && buckets.iter().all(|b| b.is_empty()) {
        return Decision::Allowed(Why::NoAclOnResource);
    }
    Decision::Denied(Why::NoMatchingAcl)
}

/// What a façade operation is, for authorization and audit. Every
/// operation any door offers has at least one row in [`OPERATIONS`]; a
/// test checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    Produce,
    InitProducerId,
    Fetch,
    ListOffsets,
    OffsetForLeaderEpoch,
    Metadata,
    CreateTopic,
    DeleteTopic,
    CreatePartitions,
    DeleteRecords,
    DescribeTopic,
    DescribeTopicConfigs,
    AlterTopicConfigs,
    DescribeBrokerConfigs,
    AlterBrokerConfigs,
    DescribeCluster,
    DescribeLogDirs,
    FindCoordinator,
    JoinGroup,
    SyncGroup,
    Heartbeat,
    LeaveGroup,
    OffsetCommit,
    OffsetFetch,
    ListGroups,
    DescribeGroup,
    DeleteGroup,
    OffsetDelete,
    ReassignPartition,
    DecommissionNode,
    RemoveNode,
    CreateAcls,
    DescribeAcls,
    DeleteAcls,
    DescribeUsers,
    AlterUsers,
    /// Users' stored SCRAM credentials, for a mirror link to copy.
    ExportUsers,
    DescribeRoles,
    AlterRoles,
    /// Mirror links: list them, their status.
    DescribeMirrors,
    /// Mirror links: create, pause, resume, delete, promote, failback.
    AlterMirrors,
}

impl Operation {
    pub const ALL: &'static [Operation] = &[
        Operation::Produce,
        Operation::InitProducerId,
        Operation::Fetch,
        Operation::ListOffsets,
        Operation::OffsetForLeaderEpoch,
        Operation::Metadata,
        Operation::CreateTopic,
        Operation::DeleteTopic,
        Operation::CreatePartitions,
        Operation::DeleteRecords,
        Operation::DescribeTopic,
        Operation::DescribeTopicConfigs,
        Operation::AlterTopicConfigs,
        Operation::DescribeBrokerConfigs,
        Operation::AlterBrokerConfigs,
        Operation::DescribeCluster,
        Operation::DescribeLogDirs,
        Operation::FindCoordinator,
        Operation::JoinGroup,
        Operation::SyncGroup,
        Operation::Heartbeat,
        Operation::LeaveGroup,
        Operation::OffsetCommit,
        Operation::OffsetFetch,
        Operation::ListGroups,
        Operation::DescribeGroup,
        Operation::DeleteGroup,
        Operation::OffsetDelete,
        Operation::ReassignPartition,
        Operation::DecommissionNode,
        Operation::RemoveNode,
        Operation::CreateAcls,
        Operation::DescribeAcls,
        Operation::DeleteAcls,
        Operation::DescribeUsers,
        Operation::AlterUsers,
        Operation::ExportUsers,
        Operation::DescribeRoles,
        Operation::AlterRoles,
        Operation::DescribeMirrors,
        Operation::AlterMirrors,
    ];
}

/// How a row's check is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Refused unless allowed.
    Required,
    /// Refused unless allowed by this row or by the operation's next
    /// `Required` row (create topic: CREATE on the cluster, else on the topic).
    OrNext,
    /// Resources not allowed are left out of the answer, not refused
    /// (metadata, list groups).
    Filter,
}

/// One row of the authorization table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub operation: Operation,
    pub resource: ResourceType,
    pub acl: AclOperation,
    pub check: Check,
}

const fn rule(
    operation: Operation,
    resource: ResourceType,
    acl: AclOperation,
    check: Check,
) -> Rule {
    Rule {
        operation,
        resource,
        acl,
        check,
    }
}

/// Which permission on which resource each operation needs (Kafka's
/// authorization table, docs/adr/0010). The matrix test is generated from
/// it.
pub const OPERATIONS: &[Rule] = {
    use AclOperation as A;
    use Check::*;
    use Operation as O;
    use ResourceType as R;
    &[
        rule(O::Produce, R::Topic, A::Write, Required),
        rule(O::InitProducerId, R::Cluster, A::IdempotentWrite, OrNext),
        rule(O::InitProducerId, R::Topic, A::Write, Required),
        rule(O::Fetch, R::Topic, A::Read, Required),
        rule(O::ListOffsets, R::Topic, A::Describe, Required),
        rule(O::OffsetForLeaderEpoch, R::Topic, A::Describe, Required),
        rule(O::Metadata, R::Topic, A::Describe, Filter),
        rule(O::CreateTopic, R::Cluster, A::Create, OrNext),
        rule(O::CreateTopic, R::Topic, A::Create, Required),
        rule(O::DeleteTopic, R::Topic, A::Delete, Required),
        rule(O::CreatePartitions, R::Topic, A::Alter, Required),
        rule(O::DeleteRecords, R::Topic, A::Delete, Required),
        rule(O::DescribeTopic, R::Topic, A::Describe, Required),
        rule(
            O::DescribeTopicConfigs,
            R::Topic,
            A::DescribeConfigs,
            Required,
        ),
        rule(O::AlterTopicConfigs, R::Topic, A::AlterConfigs, Required),
        rule(
            O::DescribeBrokerConfigs,
            R::Cluster,
            A::DescribeConfigs,
            Required,
        ),
        rule(O::AlterBrokerConfigs, R::Cluster, A::AlterConfigs, Required),
        rule(O::DescribeCluster, R::Cluster, A::Describe, Required),
        rule(O::DescribeLogDirs, R::Cluster, A::Describe, Required),
        rule(O::FindCoordinator, R::Group, A::Describe, Required),
        rule(O::JoinGroup, R::Group, A::Read, Required),
        rule(O::SyncGroup, R::Group, A::Read, Required),
        rule(O::Heartbeat, R::Group, A::Read, Required),
        rule(O::LeaveGroup, R::Group, A::Read, Required),
        rule(O::OffsetCommit, R::Group, A::Read, Required),
        rule(O::OffsetCommit, R::Topic, A::Read, Required),
        rule(O::OffsetFetch, R::Group, A::Describe, Required),
        rule(O::OffsetFetch, R::Topic, A::Describe, Filter),
        rule(O::ListGroups, R::Cluster, A::Describe, OrNext),
        rule(O::ListGroups, R::Group, A::Describe, Filter),
        rule(O::DescribeGroup, R::Group, A::Describe, Required),
        rule(O::DeleteGroup, R::Group, A::Delete, Required),
        rule(O::OffsetDelete, R::Group, A::Delete, Required),
        rule(O::OffsetDelete, R::Topic, A::Read, Required),
        rule(O::ReassignPartition, R::Cluster, A::Alter, Required),
        rule(O::DecommissionNode, R::Cluster, A::Alter, Required),
        rule(O::RemoveNode, R::Cluster, A::Alter, Required),
        rule(O::CreateAcls, R::Cluster, A::Alter, Required),
        rule(O::DescribeAcls, R::Cluster, A::Describe, Required),
        rule(O::DeleteAcls, R::Cluster, A::Alter, Required),
        rule(O::DescribeUsers, R::Cluster, A::Describe, Required),
        rule(O::AlterUsers, R::Cluster, A::Alter, Required),
        rule(O::ExportUsers, R::Cluster, A::ClusterAction, Required),
        rule(O::DescribeRoles, R::Cluster, A::Describe, Required),
        rule(O::AlterRoles, R::Cluster, A::Alter, Required),
        rule(O::DescribeMirrors, R::Cluster, A::Describe, Required),
        rule(O::AlterMirrors, R::Cluster, A::Alter, Required),
    ]
};

/// The rows of `op`, in table order.
pub fn rules(op: Operation) -> impl Iterator<Item = &'static Rule> {
    OPERATIONS.iter().filter(move |r| r.operation == op)
}

/// The row of `op` on `resource`.
pub fn rule_for(op: Operation, resource: ResourceType) -> Option<&'static Rule> {
    rules(op).find(|r| r.resource == resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(
        principal: &str,
        t: ResourceType,
        name: &str,
        pattern: PatternType,
        op: AclOperation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            principal: principal.into(),
            host: WILDCARD.into(),
            resource_type: t,
            resource_name: name.into(),
            pattern_type: pattern,
            operation: op,
            permission: perm,
        }
    }

    fn alice() -> Principal {
        Principal::user("alice")
    }

    /// `decide_named` (the audit topic's reads): only a binding naming the
    /// resource allows; a `*` binding may only deny; nothing at all denies.
    #[test]
    fn only_a_binding_naming_the_resource_allows_a_named_decision() {
        use AclOperation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::Topic;
        let audit = "__cairn_audit";
        let decide = |bindings: &[AclBinding]| {
            AclIndex::new(bindings).decide_named(&alice(), None, Read, Topic, audit)
        };
        assert_eq!(decide(&[]), Decision::Denied(Why::NoMatchingAcl));
        let wildcard = binding("User:alice", Topic, WILDCARD, Literal, Read, Allow);
        assert_eq!(
            decide(std::slice::from_ref(&wildcard)),
            Decision::Denied(Why::NoMatchingAcl)
        );
        // The same binding allows any other topic.
        assert!(AclIndex::new([&wildcard])
            .decide(&alice(), None, Read, Topic, "labs", false)
            .allowed());
        let literal = binding("User:alice", Topic, audit, Literal, Read, Allow);
        assert_eq!(
            decide(std::slice::from_ref(&literal)),
            Decision::Allowed(Why::Acl)
        );
        let prefixed = binding("User:*", Topic, "__cairn", Prefixed, Read, Allow);
        assert_eq!(decide(&[prefixed]), Decision::Allowed(Why::Acl));
        let deny_all = binding("User:alice", Topic, WILDCARD, Literal, All, Deny);
        assert_eq!(decide(&[literal, deny_all]), Decision::Denied(Why::DenyAcl));
        let other = binding("User:alice", Topic, "__cairn_audit2", Literal, Read, Allow);
        assert_eq!(decide(&[other]), Decision::Denied(Why::NoMatchingAcl));
    }

    #[test]
    fn every_operation_has_a_row_and_every_row_a_valid_acl_operation() {
        for op in Operation::ALL {
            assert!(
                rules(*op).next().is_some(),
                "{op:?} has no row in OPERATIONS"
            );
            let required = rules(*op).any(|r| r.check != Check::OrNext);
            assert!(required, "{op:?} has only OrNext rows");
        }
        for r in OPERATIONS {
            assert!(
                valid_operations(r.resource).contains(&r.acl),
                "{r:?}: {} is not an operation on {}",
                r.acl,
                r.resource
            );
            if r.check == Check::OrNext {
                let next = rules(r.operation).skip_while(|x| *x != r).nth(1);
                assert!(next.is_some(), "{r:?} is OrNext but last");
            }
        }
    }

    #[test]
    fn implied_operations_follow_kafka() {
        use AclOperation::*;
        for op in [Read, Write, Delete, Alter] {
            assert!(op.allows(Describe));
            assert!(!op.denies(Describe));
        }
        assert!(AlterConfigs.allows(DescribeConfigs));
        assert!(!DescribeConfigs.allows(AlterConfigs));
        assert!(!Describe.allows(Read));
        assert!(!Create.allows(Describe));
        for op in AclOperation::ALL {
            assert!(All.allows(*op));
            assert!(All.denies(*op));
        }
    }

    #[test]
    fn deny_wins_and_nothing_is_allowed_without_an_acl() {
        use AclOperation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::Topic;
        let acls = vec![
            binding("User:alice", Topic, "orders", Literal, Read, Allow),
            binding("User:*", Topic, "lab.", Prefixed, Write, Allow),
            binding("User:alice", Topic, "lab.secret", Literal, All, Deny),
            binding("User:bob", Topic, "*", Literal, Describe, Allow),
        ];
        let ix = AclIndex::new(&acls);
        let d = |p: &Principal, op, name: &str| ix.decide(p, None, op, Topic, name, false);
        assert_eq!(d(&alice(), Read, "orders"), Decision::Allowed(Why::Acl));
        assert_eq!(d(&alice(), Describe, "orders"), Decision::Allowed(Why::Acl));
        assert_eq!(
            d(&alice(), Write, "orders"),
            Decision::Denied(Why::NoMatchingAcl)
        );
        assert!(d(&alice(), Write, "lab.results").allowed());
        assert!(d(&Principal::user("carol"), Write, "lab.results").allowed());
        assert_eq!(
            d(&alice(), Write, "lab.secret"),
            Decision::Denied(Why::DenyAcl)
        );
        assert!(d(&Principal::user("carol"), Write, "lab.secret").allowed());
        assert!(!d(&alice(), Write, "lab").allowed());
        assert!(d(&Principal::user("bob"), Describe, "anything").allowed());
        assert!(!d(&Principal::user("bob"), Read, "anything").allowed());
        assert!(!d(&Principal::anonymous(), Read, "orders").allowed());
    }

    #[test]
    fn hosts_must_match() {
        let mut b = binding(
            "User:alice",
            ResourceType::Topic,
            "t",
            PatternType::Literal,
            AclOperation::Read,
            Permission::Allow,
        );
        b.host = "10.0.0.1".into();
        let ix = AclIndex::new([&b]);
        let at = |h: &str| {
            ix.decide(
                &alice(),
                Some(h.parse().unwrap()),
                AclOperation::Read,
                ResourceType::Topic,
                "t",
                false,
            )
        };
        assert!(at("10.0.0.1").allowed());
        assert!(!at("10.0.0.2").allowed());
    }

    #[test]
    fn allow_everyone_if_no_acl_found_only_where_no_binding_names_the_resource() {
        let b = binding(
            "User:bob",
            ResourceType::Topic,
            "t",
            PatternType::Literal,
            AclOperation::Read,
            Permission::Allow,
        );
        let ix = AclIndex::new([&b]);
        let d = |name: &str| {
            ix.decide(
                &alice(),
                None,
                AclOperation::Read,
                ResourceType::Topic,
                name,
                true,
            )
        };
        assert_eq!(d("other"), Decision::Allowed(Why::NoAclOnResource));
        assert_eq!(d("t"), Decision::Denied(Why::NoMatchingAcl));
    }

    #[test]
    fn bindings_are_validated_and_round_trip_through_the_stored_form() {
        let mut b = binding(
            "User:alice",
            ResourceType::Cluster,
            CLUSTER_RESOURCE,
            PatternType::Literal,
            AclOperation::Alter,
            Permission::Allow,
        );
        assert_eq!(b.validate(), Ok(()));
        assert_eq!(AclBinding::from_entry(&b.to_entry()), Ok(b.clone()));
        b.operation = AclOperation::Read;
        assert!(matches!(b.validate(), Err(AclError::Operation(..))));
        b.operation = AclOperation::Alter;
        b.resource_name = "other".into();
        assert!(matches!(b.validate(), Err(AclError::ClusterName(_))));
        b.resource_name = CLUSTER_RESOURCE.into();
        b.principal = "alice".into();
        assert!(matches!(b.validate(), Err(AclError::Principal(_))));
        b.principal = "User:alice".into();
        b.host = "not-an-ip".into();
        assert!(matches!(b.validate(), Err(AclError::Host(_))));
    }

    #[test]
    fn stored_names_are_kafkas() {
        // Golden: the metadata group stores these names; changing one
        // breaks every stored ACL.
        let e = binding(
            "User:alice",
            ResourceType::TransactionalId,
            "tx-",
            PatternType::Prefixed,
            AclOperation::IdempotentWrite,
            Permission::Deny,
        )
        .to_entry();
        assert_eq!(
            (
                e.resource_type.as_str(),
                e.pattern_type.as_str(),
                e.operation.as_str(),
                e.permission.as_str()
            ),
            ("TRANSACTIONAL_ID", "PREFIXED", "IDEMPOTENT_WRITE", "DENY")
        );
        assert_eq!(ResourceType::Topic.code(), 2);
        assert_eq!(AclOperation::DescribeConfigs.code(), 10);
        assert_eq!(Permission::Allow.code(), 3);
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert_eq!(
            AclOperation::parse("describe-configs"),
            Some(AclOperation::DescribeConfigs)
        );
    }

    #[test]
    fn filters_match_as_kafka_does() {
        use AclOperation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::Topic;
        let lit = binding("User:alice", Topic, "orders", Literal, Read, Allow);
        let pre = binding("User:alice", Topic, "ord", Prefixed, Read, Allow);
        let any = binding("User:alice", Topic, "*", Literal, Read, Allow);
        let f = AclFilter {
            resource_name: Some("orders".into()),
            pattern: PatternFilter::Match,
            ..Default::default()
        };
        assert!(f.matches(&lit) && f.matches(&pre) && f.matches(&any));
        let f = AclFilter {
            resource_name: Some("orders".into()),
            ..Default::default()
        };
        assert!(f.matches(&lit) && !f.matches(&pre) && !f.matches(&any));
        let f = AclFilter {
            pattern: PatternFilter::Exactly(Prefixed),
            ..Default::default()
        };
        assert!(!f.matches(&lit) && f.matches(&pre));
        let f = AclFilter {
            principal: Some("User:bob".into()),
            ..Default::default()
        };
        assert!(!f.matches(&lit));
    }
}
