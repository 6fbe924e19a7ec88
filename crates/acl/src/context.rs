//! Who asks, from where, through which door: what every [`crate::Broker`]
//! operation is given besides its arguments.

use cairn_clock::Instant;
use std::fmt;
use std::net::IpAddr;
use std::net::SocketAddr;

/// An authenticated identity, as Kafka writes it: `User:alice`. Until a
/// listener authenticates (SASL, mTLS), every client is `User:ANONYMOUS`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    /// `User` for every identity Cairn makes; kept for Kafka's
    /// `Type:name` form (`Group:`, custom builders).
    pub kind: String,
    pub name: String,
}

impl Principal {
    pub const ANONYMOUS: &'static str = "ANONYMOUS";

    pub fn user(name: impl Into<String>) -> Principal {
        Principal {
            kind: "User".to_string(),
            name: name.into(),
        }
    }

    pub fn anonymous() -> Principal {
        Principal::user(Self::ANONYMOUS)
    }

    pub fn is_anonymous(&self) -> bool {
        self.kind == "User" && self.name == Self::ANONYMOUS
    }

    /// Parses `Type:name` (Kafka's principal string); the name may hold
    /// colons.
    pub fn parse(s: &str) -> Option<Principal> {
        let (kind, name) = s.split_once(':')?;
        (!kind.is_empty() && !name.is_empty()).then(|| Principal {
            kind: kind.to_string(),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// The door a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    Kafka,
    Grpc,
    AdminHttp,
    /// The node itself (background loops, tests): never authorized
    /// against ACLs, never a client.
    Internal,
}

impl Listener {
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Kafka => "kafka",
            Listener::Grpc => "grpc",
            Listener::AdminHttp => "admin",
            Listener::Internal => "internal",
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a door knows of a request: the principal it authenticated, the
/// client's address, the listener, and by when the client stops waiting.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub principal: Principal,
    pub client: Option<SocketAddr>,
    pub listener: Listener,
    pub deadline: Option<Instant>,
}

impl RequestContext {
    /// An unauthenticated client of `listener` at `client`.
    pub fn anonymous(listener: Listener, client: Option<SocketAddr>) -> RequestContext {
        RequestContext {
            principal: Principal::anonymous(),
            client,
            listener,
            deadline: None,
        }
    }

    pub fn with_principal(mut self, principal: Principal) -> RequestContext {
        self.principal = principal;
        self
    }

    pub fn with_deadline(mut self, deadline: Instant) -> RequestContext {
        self.deadline = Some(deadline);
        self
    }

    /// The client's host as ACLs match it (`*` matches any).
    pub fn host(&self) -> Option<IpAddr> {
        self.client.map(|a| a.ip())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse_and_print_as_kafka_writes_them() {
        let p = Principal::parse("User:alice").unwrap();
        assert_eq!(p, Principal::user("alice"));
        assert_eq!(p.to_string(), "User:alice");
        assert_eq!(
            Principal::parse("User:CN=a,O=b:c").unwrap().name,
            "CN=a,O=b:c"
        );
        assert!(Principal::parse("alice").is_none());
        assert!(Principal::parse(":alice").is_none());
        assert!(Principal::anonymous().is_anonymous());
        assert!(!Principal::user("alice").is_anonymous());
    }
}
