//! Certificates and keys, loaded from PEM files and reloaded in place.

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::RwLock;
use std::time::Duration;
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::PrivateKeyDer;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::net::Conn;
use crate::net::ConnInfo;
use crate::PrincipalMapper;
use crate::HANDSHAKE_TIMEOUT;
use crate::MAX_CONCURRENT_HANDSHAKES;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("TLS: {0}")]
    Config(String),
    #[error("client certificates are checked against a CA: set tls_ca_file")]
    NoCa,
}

fn file_err(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Whether a listener asks its clients for a certificate (Kafka's
/// `ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// TLS: the server proves who it is, clients need no certificate.
    None,
    /// A certificate is asked for; a client without one is let in (as
    /// `User:ANONYMOUS` or by SASL), one with a bad one is refused.
    Requested,
    /// Mutual TLS: a client without a certificate from the CA is refused.
    Required,
}

/// The PEM files of a node's TLS material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The node's certificate chain (leaf first).
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA that client and peer certificates must chain to.
    pub ca: Option<PathBuf>,
}

impl TlsFiles {
    fn paths(&self) -> Vec<&Path> {
        let mut p = vec![self.cert.as_path(), self.key.as_path()];
        p.extend(self.ca.as_deref());
        p
    }

    /// What the files look like on disk now (modification time and size).
    fn stamp(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.paths()
            .iter()
            .map(|p| {
                let m = std::fs::metadata(p).ok()?;
                Some((m.modified().ok()?, m.len()))
            })
            .collect()
    }
}

/// One reading of the files.
struct Material {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Option<Arc<RootCertStore>>,
    /// Counts readings: a cached config older than this is rebuilt.
    generation: u64,
}

/// The CA certificates of a PEM file (at least one).
fn read_roots(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| file_err(ca, e))? {
        roots
            .add(c.map_err(|e| file_err(ca, e))?)
            .map_err(|e| file_err(ca, e))?;
    }
    if roots.is_empty() {
        return Err(file_err(ca, "no CA certificate in the file"));
    }
    Ok(roots)
}

/// The `ring` provider: AES-GCM and ChaCha20-Poly1305 suites, X25519 and
/// NIST P-256/P-384 key exchange. rustls 0.23.48 marks it deprecated for
/// lacking post-quantum key exchange (X25519MLKEM768, which its aws-lc-rs
/// provider has); ADR 0011 says why ring for now (build time, no CMake).
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

impl Material {
    fn read(files: &TlsFiles, generation: u64) -> Result<Material, TlsError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
            .map_err(|e| file_err(&files.cert, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| file_err(&files.cert, e))?;
        if certs.is_empty() {
            return Err(file_err(&files.cert, "no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_err(&files.key, e))?;
        let roots = match &files.ca {
            None => None,
            Some(ca) => Some(Arc::new(read_roots(ca)?)),
        };
        let m = Material {
            certs,
            key,
            roots,
            generation,
        };
        // A key that does not match the certificate is refused here, not
        // at the first handshake.
        m.server_config(ClientAuth::None, &[])?;
        Ok(m)
    }

    fn server_config(
        &self,
        auth: ClientAuth,
        alpn: &[&[u8]],
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let p = provider();
        let builder = rustls::ServerConfig::builder_with_provider(p.clone())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Requested | ClientAuth::Required => {
                let roots = self.roots.clone().ok_or(TlsError::NoCa)?;
                let v = WebPkiClientVerifier::builder_with_provider(roots, p);
                let v = if auth == ClientAuth::Requested {
                    v.allow_unauthenticated()
                } else {
                    v
                };
                builder.with_client_cert_verifier(
                    v.build().map_err(|e| TlsError::Config(e.to_string()))?,
                )
            }
        };
        let mut config = builder
            .with_single_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
        config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        // No TLS 1.3 session tickets: they arrive after the handshake, and
        // clients that poll their sockets for answers only (kafka-python)
        // take an unasked-for record as a broken connection. Clients keep
        // their connections, so resumption saves little; TLS 1.2 sessions
        // still resume by id.
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }

    fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let roots = self.roots.clone().ok_or(TlsError::NoCa)?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A node's TLS material, shared by its listeners and its RPC client.
pub struct CertStore {
    files: TlsFiles,
    current: RwLock<Arc<Material>>,
    /// The files' stamp at the last reading that was tried.
    seen: Mutex<Vec<Option<(SystemTime, u64)>>>,
    /// Where handshakes that authenticate are reported; unset: the log.
    audit_hook: RwLock<Option<AuditHook>>,
}

/// A handshake that authenticated a client, or failed to.
#[derive(Debug, Clone, Copy)]
pub struct Handshake<'a> {
    pub listener: &'a str,
    pub remote: Option<std::net::SocketAddr>,
    /// The mapped principal's name (`ANONYMOUS` when none).
    pub principal: &'a str,
    pub result: Result<(), &'a str>,
}

/// Receives every [`Handshake`] of the store's listeners.
pub type AuditHook = Arc<dyn Fn(Handshake<'_>) + Send + Sync>;

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("files", &self.files)
            .finish()
    }
}

impl CertStore {
    /// Reports the handshakes that authenticate (a client certificate asked
    /// for) to `hook` (the node's audit trail) instead of the log.
    pub fn set_audit_hook(&self, hook: AuditHook) {
        if let Ok(mut h) = self.audit_hook.write() {
            *h = Some(hook);
        }
    }

    fn audit(&self, h: Handshake<'_>) {
        let hook = self.audit_hook.read().ok().and_then(|g| g.clone());
        match hook {
            Some(hook) => hook(h),
            None => audit(h),
        }
    }

    /// Reads the files; an error names the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<Arc<CertStore>, TlsError> {
        let seen = files.stamp();
        let material = Material::read(&files, 1)?;
        Ok(Arc::new(CertStore {
            audit_hook: RwLock::new(None),
            files,
            current: RwLock::new(Arc::new(material)),
            seen: Mutex::new(seen),
        }))
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    fn material(&self) -> Arc<Material> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the files again and, if they are good, uses them for every
    /// handshake from now on; if not, keeps what is in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = self.files.stamp();
        let generation = self.material().generation + 1;
        match Material::read(&self.files, generation) {
            Ok(m) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(m);
                metrics::counter!("cairn_tls_reloads_total", "result" => "ok").increment(1);
                tracing::info!(cert = %self.files.cert.display(), generation, "TLS certificates reloaded");
                Ok(())
            }
            Err(e) => {
                metrics::counter!("cairn_tls_reloads_total", "result" => "error").increment(1);
                tracing::warn!(error = %e, "TLS certificates not reloaded; the ones in use stay");
                Err(e)
            }
        }
    }

    /// Reloads if a file changed since the last reading tried.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let now = self.files.stamp();
        let changed = *self.seen.lock().unwrap_or_else(PoisonError::into_inner) != now;
        changed.then(|| self.reload())
    }

    /// Watches the files (every `every`) and SIGHUP, reloading on either,
    /// until the returned task is aborted.
    pub fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(50)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                #[cfg(unix)]
                let hangup = async {
                    match hup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                #[cfg(not(unix))]
                let hangup = std::future::pending::<()>();
                tokio::select! {
                    _ = tick.tick() => {
                        let _ = store.reload_if_changed();
                    }
                    _ = hangup => {
                        tracing::info!("SIGHUP: reloading TLS certificates");
                        let _ = store.reload();
                    }
                }
            }
        })
    }

    /// A listener's side of TLS; fails now if the material cannot serve it
    /// (e.g. client certificates asked for but no CA).
    pub fn server(
        self: &Arc<Self>,
        listener: &'static str,
        auth: ClientAuth,
        alpn: &[&[u8]],
        principals: PrincipalMapper,
    ) -> Result<Arc<ServerTls>, TlsError> {
        self.server_side(listener, auth, alpn, principals, false)
    }

    fn server_side(
        self: &Arc<Self>,
        listener: &'static str,
        auth: ClientAuth,
        alpn: &[&[u8]],
        principals: PrincipalMapper,
        nodes_only: bool,
    ) -> Result<Arc<ServerTls>, TlsError> {
        let m = self.material();
        let config = m.server_config(auth, alpn)?;
        Ok(Arc::new(ServerTls {
            store: self.clone(),
            listener,
            auth,
            alpn: alpn.iter().map(|a| a.to_vec()).collect(),
            cache: Mutex::new((m.generation, config)),
            handshakes: Arc::new(Semaphore::new(MAX_CONCURRENT_HANDSHAKES)),
            nodes_only,
            principals,
        }))
    }

    /// The internal RPC's side: mutual TLS where the peer must show a node
    /// certificate (from the CA, with the serverAuth extended key usage
    /// that `cairn cert node` gives and client certificates lack).
    pub fn server_for_nodes(self: &Arc<Self>) -> Result<Arc<ServerTls>, TlsError> {
        self.server_side(
            "rpc",
            ClientAuth::Required,
            &[b"h2"],
            PrincipalMapper::default(),
            true,
        )
    }

    /// The internal RPC's client side: the node's certificate, the CA.
    pub fn client(self: &Arc<Self>) -> Result<Arc<ClientTls>, TlsError> {
        let m = self.material();
        let config = m.client_config()?;
        Ok(Arc::new(ClientTls {
            source: Source::Store {
                store: self.clone(),
                cache: Mutex::new((m.generation, config)),
            },
        }))
    }
}

/// Logs a handshake that authenticates (client certificates asked for),
/// as every authentication is audited (target `cairn_audit`), when no
/// [`AuditHook`] is set.
fn audit(h: Handshake<'_>) {
    let Handshake {
        listener,
        remote,
        principal,
        result,
    } = h;
    let client = remote.map(|a| a.to_string()).unwrap_or_default();
    let (outcome, reason) = match result {
        Ok(()) => ("ok", ""),
        Err(why) => ("failed", why),
    };
    tracing::info!(
        target: "cairn_audit",
        event = "authentication",
        listener,
        client = %client,
        mechanism = "TLS",
        principal = %format!("User:{principal}"),
        result = outcome,
        reason,
    );
}

/// A listener's TLS: the server config of the current material.
pub struct ServerTls {
    store: Arc<CertStore>,
    listener: &'static str,
    auth: ClientAuth,
    alpn: Vec<Vec<u8>>,
    cache: Mutex<(u64, Arc<rustls::ServerConfig>)>,
    handshakes: Arc<Semaphore>,
    /// Only node certificates get in (the internal RPC).
    nodes_only: bool,
    /// A client certificate's subject to its principal's name.
    principals: PrincipalMapper,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("listener", &self.listener)
            .field("auth", &self.auth)
            .finish()
    }
}

impl ServerTls {
    pub fn client_auth(&self) -> ClientAuth {
        self.auth
    }

    fn config(&self) -> Arc<rustls::ServerConfig> {
        let m = self.store.material();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.0 != m.generation {
            let alpn: Vec<&[u8]> = self.alpn.iter().map(Vec::as_slice).collect();
            match m.server_config(self.auth, &alpn) {
                Ok(c) => *cache = (m.generation, c),
                Err(e) => {
                    tracing::warn!(listener = self.listener, error = %e, "TLS: new certificates unusable here; keeping the old");
                    cache.0 = m.generation;
                }
            }
        }
        cache.1.clone()
    }

    /// Runs the server side of a handshake on an accepted connection (at
    /// most [`MAX_CONCURRENT_HANDSHAKES`] at once, each within
    /// [`HANDSHAKE_TIMEOUT`]).
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<Conn> {
        let remote = tcp.peer_addr().ok();
        let _permit = self
            .handshakes
            .acquire()
            .await
            .map_err(|_| std::io::Error::other("listener closed"))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config());
        let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
        let stream = match result {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                metrics::counter!("cairn_tls_handshakes_total", "listener" => self.listener, "result" => "error").increment(1);
                tracing::debug!(listener = self.listener, peer = ?remote, error = %e, "TLS handshake failed");
                if self.auth != ClientAuth::None {
                    self.store.audit(Handshake {
                        listener: self.listener,
                        remote,
                        principal: "ANONYMOUS",
                        result: Err(&e.to_string()),
                    });
                }
                return Err(e);
            }
            Err(_) => {
                metrics::counter!("cairn_tls_handshakes_total", "listener" => self.listener, "result" => "timeout").increment(1);
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ));
            }
        };
        let leaf = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first());
        if self.nodes_only
            && !leaf.is_some_and(|c| crate::principal::is_node_certificate(c.as_ref()))
        {
            metrics::counter!("cairn_tls_handshakes_total", "listener" => self.listener, "result" => "not_a_node").increment(1);
            tracing::warn!(listener = self.listener, peer = ?remote, "TLS: a certificate that is not a node's; connection refused");
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "not a node certificate",
            ));
        }
        metrics::counter!("cairn_tls_handshakes_total", "listener" => self.listener, "result" => "ok")
            .increment(1);
        let subject = leaf.and_then(|c| crate::subject_of(c.as_ref()));
        let principal = match &subject {
            None => None,
            Some(s) => match self.principals.map(s) {
                Some(p) => Some(p),
                None => {
                    metrics::counter!("cairn_tls_handshakes_total", "listener" => self.listener, "result" => "no_principal").increment(1);
                    tracing::warn!(listener = self.listener, peer = ?remote, subject = %s, "TLS: no ssl_principal_mapping_rules rule maps the certificate's subject; connection refused");
                    self.store.audit(Handshake {
                        listener: self.listener,
                        remote,
                        principal: s,
                        result: Err("no principal mapping rule applies"),
                    });
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        "no principal mapping rule applies",
                    ));
                }
            },
        };
        if self.auth != ClientAuth::None && !self.nodes_only {
            self.store.audit(Handshake {
                listener: self.listener,
                remote,
                principal: principal.as_deref().unwrap_or("ANONYMOUS"),
                result: Ok(()),
            });
        }
        Ok(Conn::tls(
            stream,
            ConnInfo {
                remote,
                tls: true,
                peer_subject: subject,
                principal,
            },
        ))
    }
}

/// The client side of TLS: the internal RPC's (the node's material,
/// reloaded) or a tool's (fixed files).
pub struct ClientTls {
    source: Source,
}

enum Source {
    Store {
        store: Arc<CertStore>,
        cache: Mutex<(u64, Arc<rustls::ClientConfig>)>,
    },
    Fixed(Arc<rustls::ClientConfig>),
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").finish()
    }
}

impl ClientTls {
    /// A client that trusts `ca` and, given `identity` (certificate, key),
    /// shows that certificate to servers that ask for one (mTLS).
    pub fn from_files(
        ca: &Path,
        identity: Option<(&Path, &Path)>,
    ) -> Result<Arc<ClientTls>, TlsError> {
        let roots = read_roots(ca)?;
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| file_err(cert, e))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| file_err(cert, e))?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(ClientTls {
            source: Source::Fixed(Arc::new(config)),
        }))
    }

    /// The rustls config for a new connection (the current material).
    pub fn rustls_config(&self) -> Arc<rustls::ClientConfig> {
        let (store, cache) = match &self.source {
            Source::Fixed(c) => return c.clone(),
            Source::Store { store, cache } => (store, cache),
        };
        let m = store.material();
        let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.0 != m.generation {
            match m.client_config() {
                Ok(c) => *cache = (m.generation, c),
                Err(e) => {
                    tracing::warn!(error = %e, "TLS: new certificates unusable for the internal RPC client; keeping the old");
                    cache.0 = m.generation;
                }
            }
        }
        cache.1.clone()
    }
}
