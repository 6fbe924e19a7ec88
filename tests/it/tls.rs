//! Issue 13: TLS on every listener. Certificates come from `cairn cert`.
//!
//! - Three nodes with the internal RPC on mutual TLS, the gRPC API on mTLS,
//!   the admin HTTP on TLS and Kafka on SASL_SSL: the cluster forms, the
//!   CLI works with a client certificate and not without, confluent-kafka
//!   and kafka-python (SCRAM-SHA-512 over TLS) produce and consume, a
//!   plaintext client and one that does not trust the CA get nothing, a
//!   node with another CA's certificate cannot join, a client certificate
//!   of the cluster's own CA cannot speak the internal RPC, sslscan finds
//!   nothing below TLS 1.2 and no weak suite, and a renewed certificate is
//!   served without a restart.
//! - One node with Kafka on SSL and client certificates required: the
//!   certificate's subject, through `ssl_principal_mapping_rules`, is the
//!   principal the ACLs name.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use anyhow::ensure;
use anyhow::Context;
use anyhow::Result;
use cairn_client::TlsSettings;
use serde_json::json;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::cluster::cairn_bin;
use crate::cluster::TestCluster;
use crate::kafka::python;
use crate::kafka::script;

/// Runs `cairn ARGS`; its stdout, or an error with its stderr.
pub(crate) fn cairn(args: &[&str]) -> Result<String> {
    let out = Command::new(cairn_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    ensure!(
        out.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A CA in `dir` with a node certificate (`node`) and client certificates.
fn make_certs(dir: &Path, clients: &[&str]) -> Result<()> {
    let d = dir.to_str().context("path")?;
    cairn(&["cert", "ca", "--dir", d])?;
    cairn(&["cert", "node", "--dir", d, "--name", "node"])?;
    for c in clients {
        cairn(&["cert", "client", "--dir", d, "--name", c])?;
    }
    Ok(())
}

/// `cairn ... --tls-ca CA [--tls-cert C --tls-key K] --bootstrap B`.
fn cairn_tls(
    cluster: &TestCluster,
    certs: &Path,
    as_client: Option<&str>,
    args: &[&str],
) -> Result<String> {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.push("--tls-ca".into());
    all.push(certs.join("ca.crt").display().to_string());
    if let Some(c) = as_client {
        all.push("--tls-cert".into());
        all.push(certs.join(format!("{c}.crt")).display().to_string());
        all.push("--tls-key".into());
        all.push(certs.join(format!("{c}.key")).display().to_string());
    }
    all.push("--bootstrap".into());
    all.push(cluster.bootstrap().join(","));
    all.push("--connect-timeout-ms".into());
    all.push("3000".into());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    cairn(&refs)
}

fn admin_tls(certs: &Path) -> TlsSettings {
    TlsSettings {
        ca_file: certs.join("ca.crt"),
        identity: Some((certs.join("admin.crt"), certs.join("admin.key"))),
    }
}

const PRINCIPAL_RULES: &str = r"RULE:^CN=([^,]+),.*$/$1/,DEFAULT";

fn write_config(path: &Path, certs: &Path, extra: &str) -> Result<()> {
    let text = format!(
        "tls_cert_file = {cert:?}\ntls_key_file = {key:?}\ntls_ca_file = {ca:?}\n\
         tls_reload_interval_ms = 300\nacl_enabled = true\nsuper_users = [\"User:admin\"]\n\
         ssl_principal_mapping_rules = {rules:?}\n{extra}",
        cert = certs.join("node.crt"),
        key = certs.join("node.key"),
        ca = certs.join("ca.crt"),
        rules = PRINCIPAL_RULES,
    );
    std::fs::write(path, text)?;
    Ok(())
}

/// The leaf certificate a TLS listener shows, trusting `ca`.
async fn served_certificate(addr: &str, ca: &Path) -> Result<Vec<u8>> {
    let client = cairn_tls::ClientTls::from_files(ca, None)?;
    let tcp = TcpStream::connect(addr).await?;
    let host = addr.rsplit_once(':').context("host:port")?.0.to_string();
    let s = tokio_rustls::TlsConnector::from(client.rustls_config())
        .connect(rustls_pki_types::ServerName::try_from(host)?, tcp)
        .await?;
    let leaf = s
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .context("no certificate")?;
    Ok(leaf.as_ref().to_vec())
}

/// An HTTP/1.1 GET over TLS (trusting `ca`); the response's status line.
async fn https_get(addr: &str, ca: &Path, path: &str) -> Result<String> {
    let text = https_body(addr, ca, path).await?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// A plaintext HTTP GET: what comes back within 5 s (nothing, from a TLS
/// listener, or a TLS alert, never an HTTP answer).
async fn plain_http_get(addr: &str) -> Result<Vec<u8>> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    Ok(out)
}

/// A counter's value in a Prometheus text exposition, summed over the
/// series whose labels contain every one of `labels`.
fn counter(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// An HTTP/1.1 GET over TLS (trusting `ca`); the whole response.
async fn https_body(addr: &str, ca: &Path, path: &str) -> Result<String> {
    let client = cairn_tls::ClientTls::from_files(ca, None)?;
    let mut config = (*client.rustls_config()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(rustls_pki_types::ServerName::try_from("127.0.0.1")?, tcp)
        .await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Runs sslscan on `addr` (if installed; CI installs it) and checks that
/// only TLS 1.2 and 1.3 are offered, with no weak suite.
fn sslscan(addr: &str) -> Result<()> {
    let out = match Command::new("sslscan")
        .args(["--no-colour", "--no-heartbleed", addr])
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => o,
        Err(_) => {
            eprintln!(
                "SKIPPED: the TLS scan: no `sslscan` (cluster/install-kafka-clients installs it)"
            );
            return Ok(());
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    for old in ["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(old))
            .with_context(|| format!("sslscan says nothing of {old}:\n{text}"))?;
        ensure!(line.contains("disabled"), "{old} offered: {line}\n{text}");
    }
    for new in ["TLSv1.2", "TLSv1.3"] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(new))
            .with_context(|| format!("sslscan says nothing of {new}:\n{text}"))?;
        ensure!(
            line.contains("enabled"),
            "{new} not offered: {line}\n{text}"
        );
    }
    let accepted: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("Preferred") || l.starts_with("Accepted"))
        .collect();
    ensure!(!accepted.is_empty(), "sslscan found no suite:\n{text}");
    for l in &accepted {
        let weak = [
            "CBC", "RC4", "3DES", "DES-", "NULL", "EXP", "MD5", "anon", "SHA ",
        ]
        .iter()
        .any(|w| l.contains(w))
            || !(l.contains("GCM") || l.contains("CHACHA20"));
        ensure!(!weak, "weak suite offered: {l}\n{text}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_with_tls_everywhere() -> Result<()> {
    let cluster = TestCluster::new(4)?.with_voters(3);
    let certs = cluster.dir.path().join("certs");
    make_certs(&certs, &["admin"])?;
    // Another CA, and a node certificate of it: an intruder.
    let other = certs.join("other");
    make_certs(&other, &[])?;
    let config = cluster.dir.path().join("cairn.toml");
    write_config(
        &config,
        &certs,
        "rpc_tls = \"mtls\"\ngrpc_tls = \"mtls\"\nadmin_tls = \"tls\"\n\
         kafka_security_protocol = \"SASL_SSL\"\nsasl_mechanisms = [\"SCRAM-SHA-512\"]\n",
    )?;
    let mut cluster = cluster
        .with_server_args(&["--config", config.to_str().context("path")?])
        .with_client_tls(admin_tls(&certs));
    for i in 0..3 {
        cluster.start_node(i)?;
    }
    cluster.wait_ready(Duration::from_secs(40)).await?;

    // The CLI, over mTLS as admin; refused without its certificate, and
    // without TLS.
    let mut child = Command::new(cairn_bin())
        .args(["user", "create", "admin", "--password-stdin", "--tls-ca"])
        .arg(certs.join("ca.crt"))
        .arg("--tls-cert")
        .arg(certs.join("admin.crt"))
        .arg("--tls-key")
        .arg(certs.join("admin.key"))
        .arg("--bootstrap")
        .arg(cluster.bootstrap().join(","))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    writeln!(child.stdin.take().context("stdin")?, "admin-secret")?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "user create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cairn_tls(
        &cluster,
        &certs,
        Some("admin"),
        &[
            "topic",
            "create",
            "tls-topic",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
        ],
    )?;
    ensure!(
        cairn_tls(&cluster, &certs, None, &["cluster", "status"]).is_err(),
        "the gRPC API let a client without a certificate in"
    );
    ensure!(
        cairn(&[
            "cluster",
            "status",
            "--connect-timeout-ms",
            "2000",
            "--bootstrap",
            &cluster.bootstrap().join(",")
        ])
        .is_err(),
        "the gRPC API answered plaintext"
    );
    cluster
        .wait_fully_replicated("tls-topic", Duration::from_secs(30))
        .await?;

    // Real Kafka clients over SASL_SSL.
    let got = ktls(
        &cluster,
        &certs,
        &["sasl_ssl", "--admin-password", "admin-secret"],
    )?;
    expect(
        &got,
        json!({
            "confluent_produce": "ok",
            "confluent_consume": 10,
            "kafka_python_consume": 15,
            "wrong_password": "refused",
            "plaintext_client": "refused",
            "untrusted_ca": "refused",
        }),
        &cluster,
    )?;

    // The admin HTTP over TLS; not in clear text.
    let admin = cluster.specs[0].admin.clone();
    let status = https_get(&admin, &certs.join("ca.crt"), "/health").await?;
    ensure!(status.contains("200"), "https /health: {status}");
    let plain = plain_http_get(&admin).await?;
    ensure!(
        !String::from_utf8_lossy(&plain).contains("HTTP/1.1"),
        "the admin HTTP answered plaintext"
    );

    // The internal RPC: a client certificate of the cluster's own CA is
    // not a node's; it cannot speak Raft. A node certificate can (the
    // check itself works).
    let rpc = cluster.specs[0].rpc.clone();
    ensure!(
        internal_heartbeat(&rpc, &certs, "admin").await.is_err(),
        "a client certificate spoke the internal RPC"
    );
    internal_heartbeat(&rpc, &certs, "node")
        .await
        .context("a node certificate cannot speak the internal RPC")?;

    // A node with another CA's certificate cannot join.
    let before = rpc_handshake_failures(&cluster, &certs).await?;
    let intruder_log = cluster.dir.path().join("intruder.log");
    let log = std::fs::File::create(&intruder_log)?;
    let mut intruder = cluster
        .command(3)
        .env("CAIRN_TLS_CERT_FILE", other.join("node.crt"))
        .env("CAIRN_TLS_KEY_FILE", other.join("node.key"))
        .env("CAIRN_TLS_CA_FILE", other.join("ca.crt"))
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while rpc_handshake_failures(&cluster, &certs).await? <= before {
        ensure!(
            Instant::now() < deadline,
            "node 1 saw no refused handshake from the intruder"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = cluster.client().await?.cluster_status().await?;
    let _ = intruder.kill();
    let _ = intruder.wait();
    ensure!(
        status.nodes.iter().all(|n| n.id != 4),
        "the intruder joined: {:?}",
        status.nodes
    );

    // sslscan on the Kafka (SASL_SSL) and admin (TLS) listeners.
    sslscan(&cluster.specs[0].kafka)?;
    sslscan(&admin)?;

    // A renewed certificate is served without a restart: the key first
    // (a moment where key and certificate do not match: refused, the old
    // pair stays), then the certificate.
    let ca = certs.join("ca.crt");
    let before = served_certificate(&cluster.specs[0].kafka, &ca).await?;
    let renewed = cluster.dir.path().join("renewed");
    std::fs::create_dir_all(&renewed)?;
    std::fs::copy(certs.join("ca.crt"), renewed.join("ca.crt"))?;
    std::fs::copy(certs.join("ca.key"), renewed.join("ca.key"))?;
    cairn(&[
        "cert",
        "node",
        "--dir",
        renewed.to_str().context("path")?,
        "--name",
        "node-renewed",
    ])?;
    replace(&renewed.join("node-renewed.key"), &certs.join("node.key"))?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    ensure!(
        served_certificate(&cluster.specs[0].kafka, &ca).await? == before,
        "a key that does not match its certificate was taken"
    );
    replace(&renewed.join("node-renewed.crt"), &certs.join("node.crt"))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = served_certificate(&cluster.specs[0].kafka, &ca).await?;
        if cairn_tls::subject_of(&now).as_deref() == Some("CN=node-renewed,O=Cairn") {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the renewed certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The cluster carries on over the renewed certificates.
    cairn_tls(&cluster, &certs, Some("admin"), &["cluster", "status"])?;
    Ok(())
}

/// Moves `from` over `to` in one step (as a certificate manager would).
fn replace(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp)?;
    std::fs::rename(&tmp, to)?;
    Ok(())
}

async fn rpc_handshake_failures(cluster: &TestCluster, certs: &Path) -> Result<f64> {
    let metrics = https_body(&cluster.specs[0].admin, &certs.join("ca.crt"), "/metrics").await?;
    Ok(counter(
        &metrics,
        "cairn_tls_handshakes_total",
        &["listener=\"rpc\"", "result=\"error\""],
    ))
}

/// An internal RPC heartbeat to `rpc`, showing certificate `name` of `certs`.
async fn internal_heartbeat(rpc: &str, certs: &Path, name: &str) -> Result<()> {
    let tls = cairn_tls::ClientTls::from_files(
        &certs.join("ca.crt"),
        Some((
            &certs.join(format!("{name}.crt")),
            &certs.join(format!("{name}.key")),
        )),
    )?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{rpc}"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .connect_with_connector(cairn_tls::TlsConnector::new(tls))
        .await?;
    let mut client = cairn_proto::internal::internal_client::InternalClient::new(channel);
    client
        .heartbeat(cairn_proto::internal::NodeHeartbeat {
            from: 99,
            cluster_id: String::new(),
            led: vec![],
            grpc_addr: String::new(),
        })
        .await?;
    Ok(())
}

/// Runs tests/kafka/ktls.py `args` against the cluster's Kafka listener
/// (trusting `certs`/ca.crt); the JSON document it prints.
fn ktls(cluster: &TestCluster, certs: &Path, args: &[&str]) -> Result<Value> {
    let out = Command::new(python()?)
        .arg(script("ktls.py"))
        .args(args)
        .args(["--bootstrap", &cluster.kafka_bootstrap()])
        .arg("--ca")
        .arg(certs.join("ca.crt"))
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).with_context(|| {
        format!(
            "ktls.py: {stdout} / {}\n{}",
            tail(&String::from_utf8_lossy(&out.stderr)),
            cluster.logs_tail(30)
        )
    })
}

fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("|FAIL|")).collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn expect(got: &Value, want: Value, cluster: &TestCluster) -> Result<()> {
    let mut wrong = Vec::new();
    for (k, v) in want.as_object().context("want")? {
        if got.get(k) != Some(v) {
            wrong.push(format!("{k}: got {:?}, want {v}", got.get(k)));
        }
    }
    if !wrong.is_empty() {
        bail!(
            "{}\nall: {got}\n{}",
            wrong.join("\n"),
            cluster.logs_tail(30)
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_mtls_principals_and_acls() -> Result<()> {
    let cluster = TestCluster::new(1)?;
    let certs = cluster.dir.path().join("certs");
    make_certs(&certs, &["admin", "alice"])?;
    // A client certificate from another CA.
    let other = certs.join("other");
    make_certs(&other, &["stranger"])?;
    std::fs::copy(other.join("stranger.crt"), certs.join("stranger.crt"))?;
    std::fs::copy(other.join("stranger.key"), certs.join("stranger.key"))?;
    let config = cluster.dir.path().join("cairn.toml");
    write_config(
        &config,
        &certs,
        "grpc_tls = \"mtls\"\nkafka_security_protocol = \"SSL\"\nkafka_ssl_client_auth = \"required\"\n",
    )?;
    let cluster = cluster
        .with_server_args(&["--config", config.to_str().context("path")?])
        .with_client_tls(admin_tls(&certs))
        .started_for_test()
        .await?;
    // alice (CN=alice,O=Cairn maps to User:alice) may use lab.* topics and
    // the group lab.
    for (resource, ops) in [
        (vec!["--topic", "lab.", "--prefixed"], "WRITE,READ"),
        (vec!["--group", "lab"], "READ"),
    ] {
        let mut args = vec![
            "acl",
            "add",
            "--principal",
            "User:alice",
            "--operation",
            ops,
        ];
        args.extend(resource);
        cairn_tls(&cluster, &certs, Some("admin"), &args)?;
    }
    let got = ktls(
        &cluster,
        &certs,
        &["mtls", "--dir", certs.to_str().context("path")?],
    )?;
    expect(
        &got,
        json!({
            "admin_create_topics": "ok",
            "alice_produce": "ok",
            "alice_consume": 10,
            "alice_produce_billing": "TOPIC_AUTHORIZATION_FAILED",
            // The group "lab" committed 10 (confluent-kafka): 5 are left.
            "kafka_python_alice": 5,
            "no_certificate": "refused",
            "stranger_certificate": "refused",
        }),
        &cluster,
    )?;
    // Every certificate login is audited, the refused ones too.
    let log = std::fs::read_to_string(cluster.log_path(0))?;
    let audit: Vec<String> = log
        .lines()
        .map(crate::kafka_security::strip_ansi)
        .filter(|l| l.contains("cairn_audit") && l.contains("operation=TLS"))
        .collect();
    ensure!(
        audit
            .iter()
            .any(|l| l.contains("User:alice") && l.contains("result=Ok")),
        "no audited TLS login of alice:\n{}",
        audit.join("\n")
    );
    ensure!(
        audit.iter().any(|l| l.contains("result=Failed")),
        "no audited failed TLS login:\n{}",
        audit.join("\n")
    );
    Ok(())
}
