//! Handshakes over real TCP on loopback: TLS, mTLS, a foreign CA, plaintext
//! to a TLS listener, and a certificate reload without a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_tls::devca;
use cairn_tls::CertStore;
use cairn_tls::ClientAuth;
use cairn_tls::ClientTls;
use cairn_tls::TlsFiles;
use rustls_pki_types::ServerName;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;

fn write(
    dir: &Path,
    name: &str,
    issued: &devca::Issued,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &issued.cert_pem).unwrap();
    std::fs::write(&key, &issued.key_pem).unwrap();
    (cert, key)
}

struct Fixture {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    ca: devca::Issued,
    store: Arc<CertStore>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let ca = devca::new_ca("test CA", 1).unwrap();
    std::fs::write(dir.join("ca.crt"), &ca.cert_pem).unwrap();
    let node = devca::issue(
        &ca,
        devca::Kind::Node,
        "node1",
        None,
        &["localhost".into(), "127.0.0.1".into()],
        1,
    )
    .unwrap();
    let (cert, key) = write(&dir, "node", &node);
    let store = CertStore::load(TlsFiles {
        cert,
        key,
        ca: Some(dir.join("ca.crt")),
    })
    .unwrap();
    Fixture {
        _dir: tmp,
        dir,
        ca,
        store,
    }
}

/// Serves one echo connection per accept; answers with the peer subject
/// the handshake saw, then echoes.
async fn serve(store: &Arc<CertStore>, auth: ClientAuth) -> std::net::SocketAddr {
    let tls = store
        .server("test", auth, &[], cairn_tls::PrincipalMapper::default())
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = tls.accept(tcp).await else {
                    return;
                };
                let subject = conn.info().peer_subject.clone().unwrap_or_default();
                let _ = conn.write_all(format!("{subject}\n").as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    addr
}

async fn call(
    addr: std::net::SocketAddr,
    client: &Arc<ClientTls>,
) -> anyhow::Result<(String, Vec<u8>)> {
    let config = cairn_tls_test_config(client);
    let tcp = TcpStream::connect(addr).await?;
    let mut s = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("127.0.0.1")?, tcp)
        .await
        .context("handshake")?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.context("read")?;
    let leaf = s
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    Ok((String::from_utf8_lossy(&out).trim().to_string(), leaf))
}

fn cairn_tls_test_config(client: &Arc<ClientTls>) -> Arc<rustls::ClientConfig> {
    client.rustls_config()
}

#[tokio::test]
async fn tls_without_client_certificates() {
    let f = fixture();
    let addr = serve(&f.store, ClientAuth::None).await;
    let client = ClientTls::from_files(&f.dir.join("ca.crt"), None).unwrap();
    let (subject, _) = call(addr, &client).await.unwrap();
    assert_eq!(subject, "");
}

#[tokio::test]
async fn mtls_gives_the_subject_and_refuses_strangers() {
    let f = fixture();
    let addr = serve(&f.store, ClientAuth::Required).await;
    let alice = devca::issue(&f.ca, devca::Kind::Client, "alice", Some("lab"), &[], 1).unwrap();
    let (cert, key) = write(&f.dir, "alice", &alice);
    let client = ClientTls::from_files(&f.dir.join("ca.crt"), Some((&cert, &key))).unwrap();
    let (subject, _) = call(addr, &client).await.unwrap();
    assert_eq!(subject, "CN=alice,OU=lab,O=Cairn");

    // No certificate: refused.
    let anon = ClientTls::from_files(&f.dir.join("ca.crt"), None).unwrap();
    assert!(
        call(addr, &anon).await.is_err(),
        "a client without a certificate got in"
    );

    // A certificate from another CA: refused.
    let other_ca = devca::new_ca("other CA", 1).unwrap();
    let mallory = devca::issue(&other_ca, devca::Kind::Client, "mallory", None, &[], 1).unwrap();
    let (cert, key) = write(&f.dir, "mallory", &mallory);
    let stranger = ClientTls::from_files(&f.dir.join("ca.crt"), Some((&cert, &key))).unwrap();
    assert!(
        call(addr, &stranger).await.is_err(),
        "a foreign CA's client got in"
    );
}

#[tokio::test]
async fn plaintext_to_a_tls_listener_is_refused() {
    let f = fixture();
    let addr = serve(&f.store, ClientAuth::None).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // A Kafka ApiVersions request in clear text.
    tcp.write_all(&[0, 0, 0, 10, 0, 18, 0, 3, 0, 0, 0, 1, 0, 0])
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    assert!(
        !out.windows(2).any(|w| w == [0, 18]),
        "the listener answered plaintext: {out:?}"
    );
}

#[tokio::test]
async fn certificates_reload_without_a_restart() {
    let f = fixture();
    let addr = serve(&f.store, ClientAuth::None).await;
    let client = ClientTls::from_files(&f.dir.join("ca.crt"), None).unwrap();
    let (_, before) = call(addr, &client).await.unwrap();

    // A half-written replacement (a key that is not the certificate's) is
    // refused and the old material stays in use.
    let next = devca::issue(
        &f.ca,
        devca::Kind::Node,
        "node1-renewed",
        None,
        &["127.0.0.1".into()],
        1,
    )
    .unwrap();
    std::fs::write(f.dir.join("node.crt"), &next.cert_pem).unwrap();
    assert!(f.store.reload().is_err(), "a mismatched key was accepted");
    let (_, still) = call(addr, &client).await.unwrap();
    assert_eq!(still, before);

    std::fs::write(f.dir.join("node.key"), &next.key_pem).unwrap();
    assert!(f
        .store
        .reload_if_changed()
        .expect("a change was seen")
        .is_ok());
    let (_, after) = call(addr, &client).await.unwrap();
    assert_ne!(after, before, "the old certificate is still served");
    assert_eq!(
        cairn_tls::subject_of(&after).unwrap(),
        "CN=node1-renewed,O=Cairn"
    );
}
