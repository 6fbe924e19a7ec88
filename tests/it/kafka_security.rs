//! Issue 13: authentication and authorization on the Kafka listener, with
//! real clients. One node with `kafka_security_protocol = SASL_PLAINTEXT`
//! and ACLs on; users made with `cairn user create` (the password salted in
//! the CLI), then tests/kafka/ksecurity.py: kafka-python (SCRAM-SHA-512)
//! creates topics and ACLs, confluent-kafka (SCRAM-SHA-256) produces and
//! consumes as `alice` where the ACLs allow and is refused where they do
//! not, a wrong password, an unknown user and no credentials get nothing,
//! aiokafka logs in with PLAIN, kcat with SCRAM, confluent-kafka's
//! AdminClient creates a user through AlterUserScramCredentials, and a
//! non-admin may not. Then the Java client (Kafka's reference
//! implementation, tests/kafka/JavaSecurity.java) does the same with
//! Admin.alterUserScramCredentials / createAcls / describeAcls / deleteAcls.

use std::io::Write;
use std::process::Command;
use std::process::Stdio;

use anyhow::ensure;
use anyhow::Context;
use anyhow::Result;
use serde_json::json;
use serde_json::Value;

use crate::cluster::cairn_bin;
use crate::cluster::TestCluster;
use crate::kafka::compile_java;
use crate::kafka::python;
use crate::kafka::script;

/// `cairn user create NAME --password-stdin` against the cluster.
fn create_user(cluster: &TestCluster, name: &str, password: &str) -> Result<()> {
    create_user_on(&cluster.bootstrap().join(","), name, password)
}

/// `cairn user create NAME --password-stdin` against the nodes `bootstrap`.
pub(crate) fn create_user_on(bootstrap: &str, name: &str, password: &str) -> Result<()> {
    let mut child = Command::new(cairn_bin())
        .args([
            "user",
            "create",
            name,
            "--password-stdin",
            "--bootstrap",
            bootstrap,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    writeln!(child.stdin.take().context("stdin")?, "{password}")?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "cairn user create {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_users_and_acls_with_real_kafka_clients() -> Result<()> {
    let cluster = TestCluster::new(1)?
        .with_env("CAIRN_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
        .with_env("CAIRN_ACL_ENABLED", "true")
        // The gRPC API does not authenticate yet: its anonymous clients are
        // the operators here (docs/ops/security.md).
        .with_env("CAIRN_SUPER_USERS", "[\"User:admin\",\"User:ANONYMOUS\"]")
        .started_for_test()
        .await?;
    create_user(&cluster, "admin", "admin-secret")?;
    create_user(&cluster, "alice", "alice-secret")?;
    let listed = Command::new(cairn_bin())
        .args(["user", "list", "--format", "json", "--bootstrap"])
        .arg(cluster.bootstrap().join(","))
        .output()?;
    let listed: Value = serde_json::from_slice(&listed.stdout)
        .with_context(|| String::from_utf8_lossy(&listed.stderr).into_owned())?;
    ensure!(
        listed["users"].as_array().map(|u| u.len()) == Some(2),
        "users: {listed}"
    );

    let out = Command::new(python()?)
        .arg(script("ksecurity.py"))
        .args(["--bootstrap", &cluster.kafka_bootstrap()])
        .args(["--admin-password", "admin-secret"])
        .args(["--alice-password", "alice-secret"])
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got: Value = serde_json::from_str(stdout.trim()).with_context(|| {
        // librdkafka logs every failed login: the end is what matters.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr
            .lines()
            .filter(|l| !l.contains("|FAIL|"))
            .collect::<Vec<_>>()
            .join("\n");
        format!("ksecurity.py: {stdout} / {tail}\n{}", cluster.logs_tail(40))
    })?;
    let want = json!({
        "admin_create_topics": "ok",
        "admin_create_acls": 3,
        "admin_describe_acls": 3,
        "alice_produce_scram256": "ok",
        "alice_consume_scram256": 10,
        "alice_produce_unauthorized_topic": "TOPIC_AUTHORIZATION_FAILED",
        "alice_consume_unauthorized_group": "GROUP_AUTHORIZATION_FAILED",
        "wrong_password": "_AUTHENTICATION",
        "unknown_user": "_AUTHENTICATION",
        "no_credentials": "refused",
        "aiokafka_plain": "ok",
        "kcat_consume": 11,
        "carol_described": [["SCRAM_SHA_512", 8192]],
        "carol_login": "ok",
        "alice_alter_users": "CLUSTER_AUTHORIZATION_FAILED",
        "admin_delete_acls": 3,
        "alice_produce_after_acls_deleted": "TOPIC_AUTHORIZATION_FAILED",
    });
    let mut wrong = Vec::new();
    for (k, v) in want.as_object().context("want")? {
        if got.get(k) != Some(v) {
            wrong.push(format!("{k}: got {:?}, want {v}", got.get(k)));
        }
    }
    ensure!(
        wrong.is_empty(),
        "{}\nall: {got}\n{}",
        wrong.join("\n"),
        cluster.logs_tail(40)
    );
    audit_log(&cluster)?;
    java_client(&cluster)?;
    roles_from_the_cli(&cluster)?;
    Ok(())
}

/// The node's `cairn_audit` lines: logins, refusals everywhere, and every
/// decision on `secure` (created with `cairn.sensitive=true`), none of the
/// allowed ones on `other`.
fn audit_log(cluster: &TestCluster) -> Result<()> {
    let text = std::fs::read_to_string(cluster.log_path(0))?;
    let lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains("cairn_audit"))
        .map(strip_ansi)
        .collect();
    let count = |parts: &[&str]| {
        lines
            .iter()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .count()
    };
    let alice_allowed_secure =
        count(&["result=Allowed", "principal=User:alice", "resource=secure"]);
    let alice_denied_other = count(&["result=Denied", "principal=User:alice", "resource=other"]);
    let allowed_other = count(&["result=Allowed", "resource=other"]);
    let failed_logins = count(&["event=Authentication", "result=Failed"]);
    let logins = count(&["event=Authentication", "result=Ok", "User:alice"]);
    ensure!(
        alice_allowed_secure > 0
            && alice_denied_other > 0
            && allowed_other == 0
            && failed_logins > 0
            && logins > 0,
        "audit: allowed on secure {alice_allowed_secure}, denied on other {alice_denied_other}, \
         allowed on other {allowed_other}, failed logins {failed_logins}, alice's logins {logins}"
    );
    Ok(())
}

/// A log line without its terminal colours.
pub(crate) fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `cairn role`: create, add bindings, grant, list, revoke, delete.
fn roles_from_the_cli(cluster: &TestCluster) -> Result<()> {
    let bootstrap = cluster.bootstrap().join(",");
    let cairn = |args: &[&str]| -> Result<String> {
        let mut all = args.to_vec();
        all.extend(["--bootstrap", &bootstrap]);
        crate::tls::cairn(&all)
    };
    cairn(&["role", "create", "lab-readers"])?;
    cairn(&[
        "role",
        "add-acl",
        "lab-readers",
        "--topic",
        "lab.",
        "--prefixed",
        "--operation",
        "READ,DESCRIBE",
    ])?;
    cairn(&["role", "grant", "lab-readers", "--principal", "User:alice"])?;
    let listed: Value = serde_json::from_str(&cairn(&["role", "list", "--format", "json"])?)?;
    let role = &listed["roles"][0];
    ensure!(
        role["role"] == "lab-readers"
            && role["members"] == json!(["User:alice"])
            && role["acls"].as_array().map(|a| a.len()) == Some(2)
            && role["acls"][0]["pattern_type"] == "PREFIXED",
        "roles: {listed}"
    );
    cairn(&["role", "revoke", "lab-readers", "--principal", "User:alice"])?;
    cairn(&["role", "delete", "lab-readers"])?;
    let listed: Value = serde_json::from_str(&cairn(&["role", "list", "--format", "json"])?)?;
    ensure!(listed["roles"] == json!([]), "roles after delete: {listed}");
    Ok(())
}

/// tests/kafka/JavaSecurity.java against the same node; skipped, saying so,
/// on a machine without a JDK.
fn java_client(cluster: &TestCluster) -> Result<()> {
    let Some((_classes, run_path)) = compile_java("JavaSecurity.java")? else {
        return Ok(());
    };
    let out = Command::new("java")
        .arg("-cp")
        .arg(&run_path)
        .arg("JavaSecurity")
        .args(["--bootstrap", &cluster.kafka_bootstrap()])
        .args(["--admin-password", "admin-secret"])
        .stdin(Stdio::null())
        .output()
        .context("run java JavaSecurity")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("{}")).with_context(|| {
            format!(
                "JavaSecurity printed {stdout:?} ({}); stderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let want = json!({
        "dave_described": "SCRAM_SHA_256/4096",
        "acls_described": 2,
        "dave_send": "ok",
        "dave_read": 1,
        "dave_send_unauthorized": "TopicAuthorizationException",
        "wrong_password": "SaslAuthenticationException",
        "acls_deleted": 2,
        "dave_send_after_delete": "TopicAuthorizationException",
    });
    ensure!(got == want, "Java client: got {got}, want {want}");
    Ok(())
}

/// One Kafka request frame: header v1 (api key, version, correlation id,
/// client id "t") and `body`.
pub(crate) fn frame(api_key: i16, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&api_key.to_be_bytes());
    payload.extend_from_slice(&version.to_be_bytes());
    payload.extend_from_slice(&correlation.to_be_bytes());
    payload.extend_from_slice(&1i16.to_be_bytes());
    payload.push(b't');
    payload.extend_from_slice(body);
    let mut out = (payload.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&payload);
    out
}

pub(crate) async fn read_frame(s: &mut tokio::net::TcpStream) -> Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut size = [0u8; 4];
    s.read_exact(&mut size).await?;
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).await?;
    Ok(body)
}

/// SaslHandshake v1 (PLAIN), then SaslAuthenticate v0 with `user` and
/// `password` on `s`: the SaslAuthenticate answer.
pub(crate) async fn plain_login(
    s: &mut tokio::net::TcpStream,
    user: &str,
    password: &str,
) -> Result<Vec<u8>> {
    use tokio::io::AsyncWriteExt;
    let mut body = 5i16.to_be_bytes().to_vec();
    body.extend_from_slice(b"PLAIN");
    s.write_all(&frame(17, 1, 1, &body)).await?;
    let answer = read_frame(s).await?;
    ensure!(answer[4..6] == [0, 0], "SaslHandshake refused: {answer:?}");
    let token = format!("\0{user}\0{password}");
    let mut body = (token.len() as i32).to_be_bytes().to_vec();
    body.extend_from_slice(token.as_bytes());
    s.write_all(&frame(36, 0, 2, &body)).await?;
    read_frame(s).await
}

/// A failed SASL login is answered only after
/// `connection_failed_authentication_delay_ms` (Kafka's
/// `connection.failed.authentication.delay.ms`), then the connection closes:
/// one connection cannot guess passwords faster than that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_login_is_answered_after_the_configured_delay() -> Result<()> {
    use tokio::io::AsyncReadExt;
    let cluster = TestCluster::new(1)?
        .with_env("CAIRN_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
        .with_env("CAIRN_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS", "700")
        .started_for_test()
        .await?;
    let mut s = tokio::net::TcpStream::connect(&cluster.specs[0].kafka).await?;
    // A wrong password for a user that does not exist.
    let sent = std::time::Instant::now();
    let answer = plain_login(&mut s, "mallory", "guess").await?;
    let waited = sent.elapsed();
    ensure!(
        i16::from_be_bytes([answer[4], answer[5]]) == 58,
        "not SASL_AUTHENTICATION_FAILED: {answer:?}"
    );
    ensure!(
        waited >= std::time::Duration::from_millis(700),
        "the failed login was answered after {waited:?}, before the 700 ms delay"
    );
    let mut rest = Vec::new();
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .context("the connection stayed open")??;
    ensure!(n == 0, "more after the refusal: {rest:?}");
    Ok(())
}

/// A request frame (size prefix, header, body) of `body` at `version`.
pub(crate) fn request_frame(
    body: &cairn_kafka::ApiRequest,
    version: i16,
    correlation: i32,
) -> Result<Vec<u8>> {
    use cairn_kafka::kafka_protocol::messages::RequestHeader;
    use cairn_kafka::kafka_protocol::protocol::Encodable;
    use cairn_kafka::kafka_protocol::protocol::StrBytes;
    let key = body.api_key();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("matrix")));
    let mut out = bytes::BytesMut::new();
    header
        .encode(&mut out, key.request_header_version(version))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    body.encode(&mut out, version)
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut framed = (out.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&out);
    Ok(framed)
}

/// Whether the node closes `s` without another byte (within 5 s).
async fn closed_silently(s: &mut tokio::net::TcpStream) -> Result<bool> {
    use tokio::io::AsyncReadExt;
    let mut rest = Vec::new();
    match tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut rest)).await {
        Ok(Ok(0)) => Ok(true),
        Ok(Ok(_)) => Ok(false),
        // A reset is a close too.
        Ok(Err(_)) => Ok(rest.is_empty()),
        Err(_) => Ok(false),
    }
}

/// The Kafka door's matrix, generated from the APIs the codec decodes
/// (`cairn_kafka::SUPPORTED_APIS`): on a SASL listener, every API but the
/// login's own (ApiVersions, SaslHandshake, SaslAuthenticate), at its
/// lowest and highest version, is answered by closing the connection, with
/// no credentials and after a wrong password. Valid users without an ACL,
/// with a DENY, with the ACL and through a role are the façade's matrix
/// (crates/broker/tests/authorization.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kafka_api_is_refused_without_a_login() -> Result<()> {
    use cairn_kafka::kafka_protocol::messages::ApiKey;
    use tokio::io::AsyncWriteExt;
    let cluster = TestCluster::new(1)?
        .with_env("CAIRN_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
        .with_env("CAIRN_ACL_ENABLED", "true")
        .with_env("CAIRN_SUPER_USERS", "[\"User:ANONYMOUS\"]")
        .with_env("CAIRN_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS", "0")
        .started_for_test()
        .await?;
    create_user(&cluster, "alice", "alice-secret")?;
    let addr = cluster.specs[0].kafka.clone();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for a in cairn_kafka::SUPPORTED_APIS {
        if matches!(
            a.key,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        ) {
            continue;
        }
        let body = cairn_kafka::ApiRequest::default_for(a.key).context("a default body")?;
        for version in [a.min_version, a.max_version] {
            // No credentials.
            let mut s = tokio::net::TcpStream::connect(&addr).await?;
            s.write_all(&request_frame(&body, version, 1)?).await?;
            if !closed_silently(&mut s).await? {
                wrong.push(format!(
                    "{:?} v{version} without a login was answered",
                    a.key
                ));
            }
            // A wrong password first.
            let mut s = tokio::net::TcpStream::connect(&addr).await?;
            // The refusal of the login is sent and the request is written
            // before or after the node closes: either way no answer to it.
            let refusal = plain_login(&mut s, "alice", "wrong").await?;
            ensure!(
                i16::from_be_bytes([refusal[4], refusal[5]]) == 58,
                "not SASL_AUTHENTICATION_FAILED: {refusal:?}"
            );
            let _ = s.write_all(&request_frame(&body, version, 3)?).await;
            if !closed_silently(&mut s).await? {
                wrong.push(format!(
                    "{:?} v{version} after a wrong password was answered",
                    a.key
                ));
            }
            checked += 1;
        }
    }
    ensure!(checked > 40, "only {checked} API versions checked");
    ensure!(
        wrong.is_empty(),
        "{}\n{}",
        wrong.join("\n"),
        cluster.logs_tail(20)
    );
    // The node serves on: alice logs in and lists topics.
    let mut s = tokio::net::TcpStream::connect(&addr).await?;
    let ok = plain_login(&mut s, "alice", "alice-secret").await?;
    ensure!(ok[4..6] == [0, 0], "alice's login refused: {ok:?}");
    let metadata = cairn_kafka::ApiRequest::default_for(ApiKey::Metadata).context("metadata")?;
    s.write_all(&request_frame(&metadata, 12, 4)?).await?;
    let answer = read_frame(&mut s).await?;
    ensure!(
        answer[..4] == 4i32.to_be_bytes(),
        "no Metadata answer: {answer:?}"
    );
    Ok(())
}
