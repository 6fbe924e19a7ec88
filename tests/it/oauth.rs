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

/// A one-node cluster's config file: `signer`'s keys as the JWKS file,
/// ISSUER and AUDIENCE, ACLs on, and `more` settings.
fn oauth_config(cluster: &TestCluster, signer: &Signer, more: &str) -> Result<std::path::PathBuf> {
    let jwks = cluster.dir.path().join("jwks.json");
    std::fs::write(&jwks, signer.jwks.to_string())?;
    let config = cluster.dir.path().join("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "oauth_jwks_file = {jwks:?}\noauth_issuer = {ISSUER:?}\noauth_audience = {AUDIENCE:?}\n\
             acl_enabled = true\n{more}"
        ),
    )?;
    Ok(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_and_grpc_bearer_tokens() -> Result<()> {
    let signer = Signer::new()?;
    let cluster = TestCluster::new(1)?;
    let config = oauth_config(
        &cluster,
        &signer,
        "kafka_security_protocol = \"SASL_PLAINTEXT\"\nsasl_mechanisms = [\"OAUTHBEARER\"]\n\
         oauth_clock_skew_ms = 0\nsuper_users = [\"User:ANONYMOUS\", \"User:admin\"]\n",
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

/// The RPCs of the public gRPC service, read from its contract: a new RPC
/// is in the matrix below at once.
fn grpc_methods() -> Result<Vec<String>> {
    let proto = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../proto/proto/cairn/v1/cairn.proto"),
    )?;
    let methods: Vec<String> = proto
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rpc "))
        .filter_map(|l| l.split('(').next())
        .map(|m| m.trim().to_string())
        .collect();
    ensure!(methods.len() > 20, "RPCs found in cairn.proto: {methods:?}");
    Ok(methods)
}

/// One call of `method` with an empty request (every request message
/// decodes from no bytes) and, if given, an `authorization` header.
async fn call_raw(
    channel: &tonic::transport::Channel,
    method: &str,
    authorization: Option<&str>,
) -> Result<Result<(), tonic::Status>> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await?;
    let mut req = tonic::Request::new(());
    req.set_timeout(std::time::Duration::from_secs(10));
    if let Some(a) = authorization {
        req.metadata_mut().insert("authorization", a.parse()?);
    }
    let path =
        tonic::codegen::http::uri::PathAndQuery::try_from(format!("/cairn.v1.Cairn/{method}"))?;
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    Ok(grpc.unary(req, path, codec).await.map(|_| ()))
}

/// The gRPC door's matrix, generated from the service's contract: every
/// RPC with a malformed, an expired, a wrongly signed and a wrong-audience
/// token is UNAUTHENTICATED before anything runs; with no credentials
/// (ANONYMOUS, not a super-user here) every RPC is PERMISSION_DENIED but
/// Metadata and ListGroups, which answer only what ANONYMOUS may see:
/// nothing, and a request the door cannot read, which is INVALID_ARGUMENT
/// for the admin too. Valid users without an ACL, with a DENY, with the ACL and
/// through a role are the façade's matrix (crates/broker/tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grpc_rpc_refuses_bad_tokens_and_unauthorized_anonymous_callers() -> Result<()> {
    let signer = Signer::new()?;
    let stranger = Signer::new()?;
    let cluster = TestCluster::new(1)?;
    let config = oauth_config(&cluster, &signer, "super_users = [\"User:admin\"]\n")?;
    // The test's client is the admin, by token through the client library;
    // it makes a topic and a group for ANONYMOUS not to see.
    let cluster = cluster
        .with_server_args(&["--config", config.to_str().context("path")?])
        .with_client_token(signer.token("admin", AUDIENCE, 600)?)
        .started_for_test()
        .await?;
    let client = cluster.client().await?;
    client
        .create_topic("hidden", 1, 1, Default::default())
        .await?;
    client
        .commit_offsets(
            "hidden-group",
            vec![cairn_proto::v1::OffsetCommit {
                topic: "hidden".into(),
                partition: 0,
                offset: 0,
                metadata: String::new(),
            }],
        )
        .await?;

    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.specs[0].grpc))?
            .connect()
            .await?;
    let bad_tokens = [
        "Basic YWRtaW46cHc=".to_string(),
        "Bearer not-a-jwt".to_string(),
        format!("Bearer {}", signer.token("admin", AUDIENCE, -600)?),
        format!("Bearer {}", signer.token("admin", "other", 600)?),
        format!("Bearer {}", stranger.token("admin", AUDIENCE, 600)?),
    ];
    let admin_bearer = format!("Bearer {}", signer.token("admin", AUDIENCE, 600)?);
    let mut wrong = Vec::new();
    let methods = grpc_methods()?;
    for m in &methods {
        for bad in &bad_tokens {
            match call_raw(&channel, m, Some(bad)).await? {
                Err(s) if s.code() == tonic::Code::Unauthenticated => {}
                other => wrong.push(format!("{m} with {:.20}..: {other:?}", bad)),
            }
        }
        let anonymous = call_raw(&channel, m, None).await?;
        let filters = matches!(m.as_str(), "Metadata" | "ListGroups");
        match anonymous {
            Err(s) if s.code() == tonic::Code::PermissionDenied && !filters => {}
            Ok(()) if filters => {}
            // A request the door cannot read (an empty AlterRole names no
            // change) is refused as such, to the admin as well: it tells
            // ANONYMOUS nothing.
            Err(s) if s.code() == tonic::Code::InvalidArgument => {
                let admin = call_raw(&channel, m, Some(&admin_bearer)).await?;
                if !matches!(&admin, Err(a) if a.code() == tonic::Code::InvalidArgument) {
                    wrong.push(format!(
                        "{m} without credentials: {s:?}, but the admin: {admin:?}"
                    ));
                }
            }
            other => wrong.push(format!("{m} without credentials: {other:?}")),
        }
    }
    ensure!(wrong.is_empty(), "{}", wrong.join("\n"));
    // What the two filters answer ANONYMOUS: nothing.
    let mut c = cairn_proto::v1::cairn_client::CairnClient::new(channel);
    let md = c
        .metadata(cairn_proto::v1::MetadataRequest::default())
        .await?
        .into_inner();
    ensure!(
        md.topics.is_empty(),
        "ANONYMOUS sees topics: {:?}",
        md.topics
    );
    let groups = c
        .list_groups(cairn_proto::v1::ListGroupsRequest::default())
        .await?
        .into_inner();
    ensure!(
        groups.groups.is_empty(),
        "ANONYMOUS sees groups: {:?}",
        groups.groups
    );
    Ok(())
}
