//! TLS for Cairn's listeners (Kafka, gRPC, admin HTTP) and its internal RPC.
//!
//! - [`CertStore`]: a node's certificate, key and CA, read from PEM files
//!   and read again without a restart when a file changes or on SIGHUP
//!   ([`CertStore::watch`]). A reload that fails (a half-written file, a
//!   key that does not match the certificate) keeps the material in use.
//! - [`ServerTls`]: a listener's side, per [`ClientAuth`]; new connections
//!   take the material current at their handshake.
//! - [`ClientTls`] and [`TlsConnector`]: the internal RPC's client side,
//!   presenting the node's certificate and trusting only the cluster CA.
//! - [`Conn`] / [`incoming`]: one connection type for plaintext and TLS,
//!   carrying the peer's address and certificate subject to the door.
//! - [`PrincipalMapper`]: a client certificate's subject to a principal
//!   name, with Kafka's `ssl.principal.mapping.rules`.
//! - [`devca`]: a development CA and certificates (`cairn cert`).
//!
//! Only TLS 1.3 and 1.2 are offered, with the `ring` provider's suites
//! (AES-GCM and ChaCha20-Poly1305, ECDHE key exchange): no CBC, no RSA key
//! exchange, nothing below TLS 1.2 (docs/ops/security.md).

pub mod devca;
mod net;
mod principal;
mod store;

use std::time::Duration;

pub use net::incoming;
pub use net::Conn;
pub use net::ConnInfo;
pub use net::TlsConnector;
pub use principal::subject_of;
pub use principal::PrincipalMapper;
pub use principal::RuleError;
pub use store::AuditHook;
pub use store::CertStore;
pub use store::ClientAuth;
pub use store::ClientTls;
pub use store::Handshake;
pub use store::ServerTls;
pub use store::TlsError;
pub use store::TlsFiles;

/// A TLS handshake that has not finished after this long is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes one listener runs at once; more connections wait in the
/// kernel's accept queue (a flood of slow handshakes cannot take the
/// node's memory or CPU).
pub const MAX_CONCURRENT_HANDSHAKES: usize = 256;
/// Connections a gRPC or admin listener has accepted and handed on, queued
/// for the server to take.
const ACCEPTED_QUEUE: usize = 64;
