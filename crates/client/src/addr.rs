//! Node address parsing.
//!
//! Addresses are kept in the canonical form `host:port` (the form the server
//! advertises); `http://host:port` is accepted as input. There is no TLS yet,
//! so other schemes are rejected.

use crate::ClientError;

/// Canonicalises `addr` to `host:port`.
pub(crate) fn normalize_addr(addr: &str) -> Result<String, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidAddress {
        addr: addr.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = addr.trim();
    let rest = match trimmed.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => {
            return Err(invalid(&format!(
                "unsupported scheme {scheme:?} (only plain http is supported)"
            )))
        }
        None => trimmed,
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| invalid("expected host:port"))?;
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    if host.contains('/') || host.contains(char::is_whitespace) {
        return Err(invalid("malformed host"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(invalid("IPv6 hosts must be bracketed, e.g. [::1]:50051"));
    }
    let port: u16 = port.parse().map_err(|_| invalid("port is not a number"))?;
    if port == 0 {
        return Err(invalid("port 0"));
    }
    Ok(format!("{host}:{port}"))
}

/// The URI tonic connects to for a canonical address.
pub(crate) fn uri_for(addr: &str) -> String {
    format!("http://{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_host_port_and_http() {
        assert_eq!(
            normalize_addr("127.0.0.1:50051").unwrap(),
            "127.0.0.1:50051"
        );
        assert_eq!(normalize_addr(" node-1:7 ").unwrap(), "node-1:7");
        assert_eq!(normalize_addr("http://node-1:7/").unwrap(), "node-1:7");
        assert_eq!(normalize_addr("[::1]:50051").unwrap(), "[::1]:50051");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "node",
            ":50051",
            "node:",
            "node:http",
            "node:70000",
            "node:0",
            "https://node:1",
            "::1:50051",
            "a/b:1",
        ] {
            assert!(
                matches!(normalize_addr(bad), Err(ClientError::InvalidAddress { .. })),
                "{bad:?} should be rejected"
            );
        }
    }
}
