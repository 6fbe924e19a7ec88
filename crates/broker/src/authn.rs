//! Authentication through the façade: SASL exchanges over the users the
//! metadata group stores (`scram.rs` does the mechanism), and the user
//! administration (Kafka's Describe/AlterUserScramCredentials, `cairn
//! user`). Every attempt is audited.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_metadata::MetaCommand;
use cairn_metadata::MetaResponse;
use cairn_metadata::ScramCredential;

use crate::acl::Operation;
use crate::audit::Audit;
use crate::audit::AuditKind;
use crate::audit::AuditResult;
use crate::context::Principal;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::facade::Broker;
use crate::node::Proposal;
use crate::scram::verify_plain;
use crate::scram::SaslError;
use crate::scram::ScramMechanism;
use crate::scram::ScramServer;
use crate::scram::MAX_ITERATIONS;
use crate::scram::MIN_ITERATIONS;

/// Longest user name accepted.
pub(crate) const MAX_USER_NAME: usize = 256;

#[derive(Debug)]
enum Mechanism {
    Plain,
    Scram(ScramServer),
    OAuthBearer,
}

/// One SASL exchange on one connection.
pub struct SaslExchange {
    broker: Broker,
    name: String,
    mechanism: Mechanism,
    steps: u32,
    /// The user the client's first SCRAM message names (for the audit of
    /// a failed final step).
    claimed: String,
}

/// What a SASL step answers.
#[derive(Debug)]
pub enum SaslStep {
    /// Send these bytes; the client sends another token.
    Continue(Vec<u8>),
    /// Authenticated: send these bytes; the connection is `principal` now,
    /// for `lifetime` if set (KIP-368: the client re-authenticates on the
    /// connection before it ends, or the connection is closed).
    Authenticated {
        reply: Vec<u8>,
        principal: Principal,
        lifetime: Option<std::time::Duration>,
    },
}

/// A new SCRAM credential from Kafka's AlterUserScramCredentials (the
/// client salts the password; the server derives the keys).
#[derive(Debug, Clone)]
pub struct ScramUpsertion {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

/// A user's credentials as described: (mechanism, iterations).
pub type UserCredentials = Vec<(ScramMechanism, u32)>;

fn audit_authentication(
    broker: &Broker,
    ctx: &RequestContext,
    mechanism: &str,
    user: &str,
    result: &Result<(), String>,
) {
    let (result, detail) = match result {
        Ok(()) => (AuditResult::Ok, String::new()),
        Err(why) => (AuditResult::Failed, why.clone()),
    };
    broker.audit(Audit {
        event: AuditKind::Authentication,
        principal: format!("User:{user}"),
        client: ctx.client,
        listener: ctx.listener.as_str(),
        operation: mechanism,
        resource_type: "",
        resource: "",
        result,
        detail,
    });
}

impl Broker {
    /// How long a SASL session lasts: a token's remaining life, bounded by
    /// `connections_max_reauth_ms` when set.
    pub(crate) fn reauth_after(
        &self,
        token: Option<std::time::Duration>,
    ) -> Option<std::time::Duration> {
        let max = self.settings().connections_max_reauth_ms;
        let max = (max > 0).then(|| std::time::Duration::from_millis(max));
        match (token, max) {
            (Some(t), Some(m)) => Some(t.min(m)),
            (t, m) => t.or(m),
        }
    }

    /// The principal of a gRPC request's bearer token (`authorization:
    /// Bearer <JWT>`), checked as OAUTHBEARER checks it; every attempt is
    /// audited.
    pub fn bearer_principal(
        &self,
        ctx: &RequestContext,
        token: &str,
    ) -> Result<Principal, ApiError> {
        let refused = |why: String| {
            audit_authentication(self, ctx, "BEARER", "", &Err(why));
            ApiError::AuthenticationFailed("invalid bearer token".to_string())
        };
        let oauth = self
            .oauth
            .clone()
            .ok_or_else(|| refused("bearer tokens are not configured (oauth_jwks_file)".into()))?;
        let checked = oauth.check(token).map_err(refused)?;
        audit_authentication(self, ctx, "BEARER", &checked.user, &Ok(()));
        Ok(Principal::user(checked.user))
    }

    /// The SASL mechanisms this node's Kafka listener offers.
    pub fn sasl_mechanisms(&self) -> Vec<String> {
        self.settings().sasl_mechanisms.clone()
    }

    /// Starts a SASL exchange with `mechanism` (Kafka's SaslHandshake).
    pub fn sasl_start(&self, mechanism: &str) -> Result<SaslExchange, ApiError> {
        if !self
            .settings()
            .sasl_mechanisms
            .iter()
            .any(|m| m == mechanism)
        {
            return Err(ApiError::UnsupportedSaslMechanism(mechanism.to_string()));
        }
        let m = match mechanism {
            "PLAIN" => Mechanism::Plain,
            "OAUTHBEARER" if self.oauth.is_some() => Mechanism::OAuthBearer,
            "OAUTHBEARER" => return Err(ApiError::UnsupportedSaslMechanism(mechanism.to_string())),
            other => Mechanism::Scram(ScramServer::new(
                ScramMechanism::parse(other)
                    .ok_or_else(|| ApiError::UnsupportedSaslMechanism(other.to_string()))?,
            )),
        };
        Ok(SaslExchange {
            broker: self.clone(),
            name: mechanism.to_string(),
            mechanism: m,
            steps: 0,
            claimed: String::new(),
        })
    }

    fn credential(&self, user: &str, m: ScramMechanism) -> Option<ScramCredential> {
        self.meta(|s| s.users.get(user).and_then(|c| c.get(m.name())).cloned())
    }

    /// A user's credentials (DESCRIBE on the cluster); `None` for all
    /// users. An unknown user named answers `None`.
    pub fn describe_users(
        &self,
        ctx: &RequestContext,
        users: Option<Vec<String>>,
    ) -> Result<Vec<(String, Option<UserCredentials>)>, ApiError> {
        self.authorize_cluster(ctx, Operation::DescribeUsers)?;
        Ok(self.meta(|s| {
            let describe = |creds: &std::collections::BTreeMap<String, ScramCredential>| {
                creds
                    .iter()
                    .filter_map(|(m, c)| Some((ScramMechanism::parse(m)?, c.iterations)))
                    .collect::<UserCredentials>()
            };
            match users {
                None => s
                    .users
                    .iter()
                    .map(|(u, c)| (u.clone(), Some(describe(c))))
                    .collect(),
                Some(names) => names
                    .into_iter()
                    .map(|u| {
                        let found = s.users.get(&u).map(describe);
                        (u, found)
                    })
                    .collect(),
            }
        }))
    }

    /// Every user's SCRAM credentials as stored (salt, iterations, stored
    /// and server keys; never a password), for a mirror link copying them
    /// to another cluster (CLUSTER_ACTION on the cluster). Every export is
    /// audited.
    pub fn export_users(
        &self,
        ctx: &RequestContext,
    ) -> Result<BTreeMap<String, BTreeMap<String, ScramCredential>>, ApiError> {
        self.authorize_cluster(ctx, Operation::ExportUsers)?;
        let users = self.meta(|s| s.users.clone());
        self.audit(Audit {
            event: AuditKind::User,
            principal: ctx.principal.to_string(),
            client: ctx.client,
            listener: ctx.listener.as_str(),
            operation: "ExportCredentials",
            resource_type: "user",
            resource: "*",
            result: AuditResult::Ok,
            detail: format!("{} users", users.len()),
        });
        Ok(users)
    }

    /// Deletes and sets users' SCRAM credentials (ALTER on the cluster);
    /// one answer per change, in order (deletions first).
    pub async fn alter_users(
        &self,
        ctx: &RequestContext,
        deletions: Vec<(String, ScramMechanism)>,
        upsertions: Vec<ScramUpsertion>,
    ) -> Result<Vec<(String, Result<(), ApiError>)>, ApiError> {
        self.authorize_cluster(ctx, Operation::AlterUsers)?;
        let mut out = Vec::with_capacity(deletions.len() + upsertions.len());
        for (user, m) in deletions {
            let cmd = MetaCommand::DeleteScramCredential {
                user: user.clone(),
                mechanism: m.name().to_string(),
            };
            let r = self
                .propose_user_change(ctx, &user, m, "DeleteCredential", cmd)
                .await;
            out.push((user, r));
        }
        for u in upsertions {
            let r = match check_upsertion(&u) {
                Err(e) => Err(e),
                Ok(()) => {
                    let credential = u.mechanism.credential_from_salted(
                        &u.salted_password,
                        &u.salt,
                        u.iterations,
                    );
                    let cmd = MetaCommand::PutScramCredential {
                        user: u.user.clone(),
                        mechanism: u.mechanism.name().to_string(),
                        credential,
                    };
                    self.propose_user_change(ctx, &u.user, u.mechanism, "SetCredential", cmd)
                        .await
                }
            };
            out.push((u.user, r));
        }
        Ok(out)
    }

    async fn propose_user_change(
        &self,
        ctx: &RequestContext,
        user: &str,
        m: ScramMechanism,
        what: &str,
        cmd: MetaCommand,
    ) -> Result<(), ApiError> {
        let r = self.propose(Proposal::Command(cmd)).await;
        let failed = match &r {
            Ok(MetaResponse::Ok) => None,
            Ok(other) => Some(format!("{other:?}")),
            Err(e) => Some(e.to_string()),
        };
        self.audit(Audit {
            event: AuditKind::User,
            principal: ctx.principal.to_string(),
            client: ctx.client,
            listener: ctx.listener.as_str(),
            operation: what,
            resource_type: "user",
            resource: user,
            result: if failed.is_none() {
                AuditResult::Ok
            } else {
                AuditResult::Failed
            },
            detail: match failed {
                None => m.name().to_string(),
                Some(f) => format!("{}: {f}", m.name()),
            },
        });
        match r? {
            MetaResponse::Ok => Ok(()),
            MetaResponse::Error(cairn_metadata::MetaError::UnknownUser(u)) => {
                Err(ApiError::UnknownUser(u))
            }
            MetaResponse::Error(e) => Err(ApiError::InvalidArgument(e.to_string())),
            other => Err(ApiError::Internal(format!("{other:?}"))),
        }
    }
}

fn check_upsertion(u: &ScramUpsertion) -> Result<(), ApiError> {
    if u.user.is_empty() || u.user.len() > MAX_USER_NAME {
        return Err(ApiError::InvalidArgument(format!(
            "a user name has 1 to {MAX_USER_NAME} bytes"
        )));
    }
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&u.iterations) {
        return Err(ApiError::InvalidArgument(format!(
            "SCRAM iterations must be in {MIN_ITERATIONS}..={MAX_ITERATIONS}, got {}",
            u.iterations
        )));
    }
    let want = match u.mechanism {
        ScramMechanism::Sha256 => 32,
        ScramMechanism::Sha512 => 64,
    };
    if u.salted_password.len() != want || u.salt.is_empty() {
        return Err(ApiError::InvalidArgument(format!(
            "a {} salted password has {want} bytes and the salt is not empty",
            u.mechanism.name()
        )));
    }
    Ok(())
}

impl SaslExchange {
    /// The mechanism's name.
    pub fn mechanism(&self) -> &str {
        &self.name
    }

    /// Takes the client's next token (Kafka's SaslAuthenticate).
    pub fn step(&mut self, ctx: &RequestContext, token: &[u8]) -> Result<SaslStep, ApiError> {
        self.steps += 1;
        let broker = self.broker.clone();
        let name = self.name.clone();
        let fail = |user: &str, e: SaslError| {
            audit_authentication(&broker, ctx, &name, user, &Err(e.to_string()));
            match e {
                SaslError::OutOfOrder => ApiError::IllegalSaslState(e.to_string()),
                _ => ApiError::AuthenticationFailed(format!(
                    "authentication with {name} failed (unknown user or wrong password)"
                )),
            }
        };
        match &mut self.mechanism {
            Mechanism::Plain => {
                if self.steps > 1 {
                    return Err(fail("", SaslError::OutOfOrder));
                }
                let lookup = |u: &str| {
                    [ScramMechanism::Sha512, ScramMechanism::Sha256]
                        .into_iter()
                        .find_map(|m| broker.credential(u, m).map(|c| (m, c)))
                };
                let claimed = plain_user(token);
                let user = verify_plain(token, lookup).map_err(|e| fail(&claimed, e))?;
                audit_authentication(&broker, ctx, &name, &user, &Ok(()));
                Ok(SaslStep::Authenticated {
                    reply: Vec::new(),
                    principal: Principal::user(user),
                    lifetime: broker.reauth_after(None),
                })
            }
            Mechanism::Scram(server) => {
                if self.steps == 1 {
                    let nonce = B64.encode(rand::random::<[u8; 18]>());
                    let m = ScramMechanism::parse(&name).expect("a SCRAM mechanism");
                    let claimed = scram_user(token);
                    let reply = server
                        .client_first(token, &nonce, |u| broker.credential(u, m))
                        .map_err(|e| fail(&claimed, e))?;
                    self.claimed = claimed;
                    Ok(SaslStep::Continue(reply))
                } else {
                    let (reply, user) = server
                        .client_final(token)
                        .map_err(|e| fail(&self.claimed, e))?;
                    audit_authentication(&broker, ctx, &name, &user, &Ok(()));
                    Ok(SaslStep::Authenticated {
                        reply,
                        principal: Principal::user(user),
                        lifetime: broker.reauth_after(None),
                    })
                }
            }
            Mechanism::OAuthBearer => {
                if self.steps > 1 {
                    return Err(fail("", SaslError::OutOfOrder));
                }
                let refuse = |why: String| {
                    audit_authentication(&broker, ctx, &name, "", &Err(why));
                    ApiError::AuthenticationFailed(
                        "authentication with OAUTHBEARER failed (invalid token)".to_string(),
                    )
                };
                let oauth = broker.oauth.clone().ok_or_else(|| refuse("off".into()))?;
                let (token, authzid) = crate::oauth::client_first(token).map_err(refuse)?;
                let checked = oauth.check(&token).map_err(refuse)?;
                if authzid.as_ref().is_some_and(|a| *a != checked.user) {
                    return Err(refuse(format!(
                        "authzid {authzid:?} is not the token's user {:?}",
                        checked.user
                    )));
                }
                audit_authentication(&broker, ctx, &name, &checked.user, &Ok(()));
                Ok(SaslStep::Authenticated {
                    reply: Vec::new(),
                    principal: Principal::user(checked.user),
                    lifetime: broker.reauth_after(Some(checked.lifetime)),
                })
            }
        }
    }
}

/// The user a PLAIN token claims, for the audit of a failed attempt.
fn plain_user(token: &[u8]) -> String {
    token
        .split(|b| *b == 0)
        .nth(1)
        .map(|u| {
            String::from_utf8_lossy(u)
                .chars()
                .take(MAX_USER_NAME)
                .collect()
        })
        .unwrap_or_default()
}

/// The user a SCRAM client-first message claims, for the audit.
fn scram_user(token: &[u8]) -> String {
    String::from_utf8_lossy(token)
        .split(',')
        .find_map(|a| {
            a.strip_prefix("n=")
                .map(|u| u.chars().take(MAX_USER_NAME).collect())
        })
        .unwrap_or_default()
}
