//! Mirror links: what a target cluster copies from a source cluster, and
//! which of its topics are read-only mirrors. Pure: the link's pullers and
//! its metadata sync live in `cairn-broker` (`mirror.rs`).

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use crate::state::AclEntry;
use crate::state::Role;
use crate::state::ScramCredential;

/// A mirror link, stored in the metadata group of the target cluster: the
/// source's client (gRPC) addresses and credentials, and what to copy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorLink {
    pub name: String,
    /// The source cluster's gRPC addresses (`host:port`), any of its nodes.
    pub source_bootstrap: Vec<String>,
    /// Topic name patterns to mirror (`*` matches any run of characters);
    /// empty: none.
    pub topics_include: Vec<String>,
    /// Topic name patterns never mirrored, even if included.
    pub topics_exclude: Vec<String>,
    /// Consumer groups whose committed offsets are copied (patterns).
    pub groups_include: Vec<String>,
    pub groups_exclude: Vec<String>,
    /// Whether the source's security is copied: its ACL bindings, roles
    /// and users (their SCRAM salted keys; never a password). Kept equal
    /// to the source's: what the source drops is dropped here too
    /// ([`SourceSecurity`]).
    pub sync_acls: bool,
    /// A PEM CA bundle file (on every target node) to verify the source's
    /// TLS certificates with; `None`: plaintext.
    pub tls_ca_file: Option<String>,
    /// A file (on every target node) holding the bearer token the link
    /// presents to the source; `None`: anonymous (or mTLS only).
    pub token_file: Option<String>,
    /// A client certificate and key (PEM files) for mTLS to the source.
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    /// A paused link copies nothing; its topics stay read-only mirrors.
    pub paused: bool,
    /// Addresses the target connects to instead of those the source's nodes
    /// advertise (`advertised -> reachable`): a source reached through a
    /// WAN gateway, proxy or NAT. Empty: none. (Always stored: the Raft
    /// log's encoding, bincode, cannot skip a field.)
    #[serde(default)]
    pub source_address_map: std::collections::BTreeMap<String, String>,
}

/// Whether `name` matches `pattern`, where `*` matches any run of
/// characters (none included) and everything else matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p = pattern.as_bytes();
    let n = name.as_bytes();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

fn selected(include: &[String], exclude: &[String], name: &str) -> bool {
    include.iter().any(|p| glob_match(p, name)) && !exclude.iter().any(|p| glob_match(p, name))
}

impl MirrorLink {
    /// Whether the link mirrors the source topic `name`. Internal topics
    /// (`__…`: consumer offsets, the audit trail) are never mirrored.
    pub fn mirrors_topic(&self, name: &str) -> bool {
        !name.starts_with("__") && selected(&self.topics_include, &self.topics_exclude, name)
    }

    /// Whether the link copies the committed offsets of group `name`.
    pub fn mirrors_group(&self, name: &str) -> bool {
        selected(&self.groups_include, &self.groups_exclude, name)
    }

    /// Checks a link before it is stored.
    pub fn validate(&self) -> Result<(), String> {
        crate::config::validate_topic_name(&self.name)
            .map_err(|e| format!("bad link name: {e}"))?;
        if self.source_bootstrap.is_empty() {
            return Err("a mirror link needs the source's bootstrap addresses".into());
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err("a client certificate needs its key, and the key its certificate".into());
        }
        Ok(())
    }
}

/// The security a link copies from its source, as one snapshot: ACL
/// bindings, roles, and users' SCRAM credentials (what checks a login, never
/// a password).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceSecurity {
    pub acls: Vec<AclEntry>,
    pub roles: BTreeMap<String, Role>,
    /// user -> mechanism -> credential.
    pub users: BTreeMap<String, BTreeMap<String, ScramCredential>>,
}

/// What a link's security sync put here: the link owns these, and drops
/// them when its source does. Bindings, roles and users this cluster had
/// of its own are never touched (a user of the same name here wins), and
/// when the link is deleted what it owned becomes this cluster's own.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MirroredSecurity {
    pub acls: BTreeSet<AclEntry>,
    pub roles: BTreeSet<String>,
    pub users: BTreeSet<String>,
}

/// The security a sync may change: this cluster's bindings, roles, users.
pub(crate) struct SecurityView<'a> {
    pub acls: &'a mut Vec<AclEntry>,
    pub roles: &'a mut BTreeMap<String, Role>,
    pub users: &'a mut BTreeMap<String, BTreeMap<String, ScramCredential>>,
}

/// Makes what `owned` says the link put here equal to `source`, leaving
/// everything else alone; answers what the link owns afterwards. Pure.
pub(crate) fn merge_security(
    view: SecurityView<'_>,
    owned: &MirroredSecurity,
    source: SourceSecurity,
) -> MirroredSecurity {
    let mut now = MirroredSecurity::default();
    let wanted: BTreeSet<AclEntry> = source.acls.into_iter().collect();
    view.acls
        .retain(|a| !owned.acls.contains(a) || wanted.contains(a));
    for a in wanted {
        if owned.acls.contains(&a) || !view.acls.contains(&a) {
            if !view.acls.contains(&a) {
                view.acls.push(a.clone());
            }
            now.acls.insert(a);
        }
    }
    view.acls.sort();
    view.roles
        .retain(|r, _| !owned.roles.contains(r) || source.roles.contains_key(r));
    for (name, mut role) in source.roles {
        if owned.roles.contains(&name) || !view.roles.contains_key(&name) {
            for a in &mut role.acls {
                a.principal.clear();
            }
            role.acls.sort();
            role.acls.dedup();
            view.roles.insert(name.clone(), role);
            now.roles.insert(name);
        }
    }
    view.users
        .retain(|u, _| !owned.users.contains(u) || source.users.contains_key(u));
    for (name, creds) in source.users {
        if name.is_empty() || creds.is_empty() {
            continue;
        }
        if owned.users.contains(&name) || !view.users.contains_key(&name) {
            view.users.insert(name.clone(), creds);
            now.users.insert(name);
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_runs_of_any_characters() {
        assert!(glob_match("*", "orders"));
        assert!(glob_match("*", ""));
        assert!(glob_match("adt.*", "adt.a01"));
        assert!(!glob_match("adt.*", "lab.adt"));
        assert!(glob_match("*.orders.*", "eu.orders.v2"));
        assert!(!glob_match("*.orders.*", "eu.orders"));
        assert!(glob_match("a*b*c", "aXXbYc"));
        assert!(!glob_match("a*b*c", "aXXbYd"));
        assert!(glob_match("orders", "orders"));
        assert!(!glob_match("orders", "orders2"));
    }

    #[test]
    fn a_link_mirrors_what_it_includes_and_not_what_it_excludes() {
        let link = MirrorLink {
            name: "dr".into(),
            source_bootstrap: vec!["a:1".into()],
            topics_include: vec!["*".into()],
            topics_exclude: vec!["tmp.*".into()],
            groups_include: vec!["billing-*".into()],
            ..MirrorLink::default()
        };
        assert!(link.mirrors_topic("orders"));
        assert!(!link.mirrors_topic("tmp.scratch"));
        assert!(!link.mirrors_topic("__cairn_audit"));
        assert!(link.mirrors_group("billing-eu"));
        assert!(!link.mirrors_group("lab"));
        assert!(link.validate().is_ok());
        assert!(MirrorLink::default().validate().is_err());
    }
}
