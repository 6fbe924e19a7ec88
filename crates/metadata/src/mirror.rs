//! Mirror links: what a target cluster copies from a source cluster, and
//! which of its topics are read-only mirrors. Pure: the link's pullers and
//! its metadata sync live in `cairn-broker` (`mirror.rs`).

use serde::Deserialize;
use serde::Serialize;

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
    /// Whether the source's ACL bindings are copied.
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
