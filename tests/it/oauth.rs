//! Issue 13: OAUTHBEARER on the Kafka listener and bearer tokens on the
//! gRPC API. The test signs JWTs with its own key (ES256) whose public half
//! is the node's JWKS file. confluent-kafka logs in with a valid token and
//! is refused with an expired one and one for another audience; with
//! tokens that live 6 s it keeps producing for 14 s, re-authenticating on
//! its connection as each runs out (KIP-368). On gRPC, a good token names
//! the principal (the ACLs decide by it), a bad one is UNAUTHENTICATED.

use std::process::Command;
use std::process::Stdio;
use std::time::SystemTime;

use anyhow::ensure;
use anyhow::Context;
use anyhow::Result;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;
use serde_json::Value;

use crate::cluster::TestCluster;
use crate::kafka::python;
use crate::kafka::script;

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "cairn";

struct Signer {
    key: jsonwebtoken::EncodingKey,
    jwks: Value,
}

impl Signer {
    fn new() -> Result<Signer> {
        let pair = rcgen::KeyPair::generate()?;
        let raw = pair.public_key_raw();
        ensure!(
            raw.len() == 65 && raw[0] == 4,
            "an uncompressed P-256 point"
        );
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "test-key", "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
        }]});
        let key = jsonwebtoken::EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes())?;
        Ok(Signer { key, jwks })
    }

    /// A token for `sub` from ISSUER, for `aud`, expiring `exp_in` seconds
    /// from now (negative: in the past).
    fn token(&self, sub: &str, aud: &str, exp_in: i64) -> Result<String> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_secs() as i64;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("test-key".into());
        let claims =
            json!({"sub": sub, "iss": ISSUER, "aud": aud, "iat": now, "exp": now + exp_in});
        Ok(jsonwebtoken::encode(&header, &claims, &self.key)?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_and_grpc_bearer_tokens() -> Result<()> {
    let signer = Signer::new()?;
    let cluster = TestCluster::new(1)?;
    let jwks = cluster.dir.path().join("jwks.json");
    std::fs::write(&jwks, signer.jwks.to_string())?;
    let config = cluster.dir.path().join("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "kafka_security_protocol = \"SASL_PLAINTEXT\"\nsasl_mechanisms = [\"OAUTHBEARER\"]\n\
             oauth_jwks_file = {jwks:?}\noauth_issuer = {ISSUER:?}\noauth_audience = {AUDIENCE:?}\n\
             oauth_clock_skew_ms = 0\nacl_enabled = true\n\
             super_users = [\"User:ANONYMOUS\", \"User:admin\"]\n"
        ),
    )?;
    let cluster = cluster
        .with_server_args(&["--config", config.to_str().context("path")?])
        .started_for_test()
        .await?;
    let client = cluster.client().await?;
    client
        .create_topic("oauth-topic", 1, 1, Default::default())
        .await?;
    let mut acl = Command::new(crate::cluster::cairn_bin());
    acl.args([
        "acl",
        "add",
        "--principal",
        "User:alice",
        "--operation",
        "WRITE",
        "--topic",
    ])
    .args(["oauth-topic", "--bootstrap", &cluster.bootstrap().join(",")]);
    ensure!(acl.status()?.success(), "cairn acl add");

    let short: Vec<String> = (1..=8)
        .map(|i| signer.token("alice", AUDIENCE, 6 * i))
        .collect::<Result<_>>()?;
    let out = Command::new(python()?)
        .arg(script("koauth.py"))
        .args(["--bootstrap", &cluster.kafka_bootstrap()])
        .args(["--valid", &signer.token("alice", AUDIENCE, 3600)?])
        .args(["--expired", &signer.token("alice", AUDIENCE, -3600)?])
        .args(["--wrong-audience", &signer.token("alice", "other", 3600)?])
        .args(["--short", &short.join(",")])
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got: Value = serde_json::from_str(stdout.trim()).with_context(|| {
        format!(
            "koauth.py: {stdout} / {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            cluster.logs_tail(30)
        )
    })?;
    let want = json!({
        "valid": "ok",
        "expired": "refused",
        "wrong_audience": "refused",
        "reauth_failed": 0,
        "reauth_acked_some": true,
        "reauth_tokens_fetched_more_than_one": true,
    });
    for (k, v) in want.as_object().context("want")? {
        ensure!(
            got.get(k) == Some(v),
            "{k}: got {:?}, want {v}\nall: {got}\n{}",
            got.get(k),
            cluster.logs_tail(30)
        );
    }
    let log = std::fs::read_to_string(cluster.log_path(0))?;
    ensure!(
        !log.contains("SASL session expired"),
        "librdkafka did not re-authenticate in time:\n{}",
        cluster.logs_tail(30)
    );

    // gRPC: a bearer token names the principal; a bad one is refused.
    let grpc = |token: Option<String>| {
        let addr = cluster.specs[0].grpc.clone();
        async move {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
                .connect()
                .await?;
            let mut c = cairn_proto::v1::cairn_client::CairnClient::new(channel);
            let mut req = tonic::Request::new(cairn_proto::v1::ListAclsRequest::default());
            if let Some(t) = token {
                req.metadata_mut()
                    .insert("authorization", format!("Bearer {t}").parse()?);
            }
            anyhow::Ok(c.list_acls(req).await.map(|_| ()))
        }
    };
    ensure!(
        grpc(None).await?.is_ok(),
        "anonymous (a super-user here) refused"
    );
    ensure!(
        grpc(Some(signer.token("admin", AUDIENCE, 60)?))
            .await?
            .is_ok(),
        "admin's token refused"
    );
    let alice = grpc(Some(signer.token("alice", AUDIENCE, 60)?)).await?;
    ensure!(
        matches!(&alice, Err(s) if s.code() == tonic::Code::PermissionDenied),
        "alice (no DESCRIBE on the cluster) listed ACLs: {alice:?}"
    );
    let expired = grpc(Some(signer.token("admin", AUDIENCE, -60)?)).await?;
    ensure!(
        matches!(&expired, Err(s) if s.code() == tonic::Code::Unauthenticated),
        "an expired token: {expired:?}"
    );
    let wrong = grpc(Some(signer.token("admin", "other", 60)?)).await?;
    ensure!(
        matches!(&wrong, Err(s) if s.code() == tonic::Code::Unauthenticated),
        "a token for another audience: {wrong:?}"
    );
    Ok(())
}
