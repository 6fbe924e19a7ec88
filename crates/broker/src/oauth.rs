//! Bearer tokens: OAUTHBEARER on the Kafka listener (RFC 7628, KIP-255)
//! and `authorization: Bearer` on the gRPC API. A token is a JWT signed by
//! a key of the configured JWKS file (RSA or EC; symmetric keys are not
//! taken), from the configured issuer, for the configured audience, not
//! expired (a configured skew allowed). Its principal is `User:<claim>`
//! (`oauth_principal_claim`, `sub` by default); its expiry bounds the
//! session (KIP-368: the client re-authenticates before it, or the
//! connection is closed).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::Duration;
use std::time::SystemTime;

use jsonwebtoken::jwk::AlgorithmParameters;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::Algorithm;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::Validation;

use crate::ServerConfig;

/// The largest token taken, in bytes.
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A checked token.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) user: String,
    /// How long the token is still good.
    pub(crate) lifetime: Duration,
}

struct Key {
    id: Option<String>,
    key: DecodingKey,
    /// The algorithms this key may verify.
    algorithms: Vec<Algorithm>,
}

/// The JWKS file and what it held at its last reading.
struct Keys {
    stamp: Option<(SystemTime, u64)>,
    keys: Arc<Vec<Key>>,
}

pub(crate) struct OAuth {
    jwks: PathBuf,
    issuer: String,
    audience: String,
    claim: String,
    skew: Duration,
    keys: Mutex<Keys>,
}

fn stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn read_keys(path: &PathBuf) -> Result<Vec<Key>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let set: JwkSet =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a JWKS: {e}", path.display()))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let algorithms = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            AlgorithmParameters::EllipticCurve(_) => vec![Algorithm::ES256, Algorithm::ES384],
            AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
            // A shared secret in a key file every node reads would let
            // anyone who reads it mint tokens: not taken.
            AlgorithmParameters::OctetKey(_) => continue,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("{}: {e}", path.display()))?;
        keys.push(Key {
            id: jwk.common.key_id.clone(),
            key,
            algorithms,
        });
    }
    if keys.is_empty() {
        return Err(format!("{}: no public key", path.display()));
    }
    Ok(keys)
}

impl OAuth {
    /// With `oauth_jwks_file` set: reads it (an error names what is wrong).
    pub(crate) fn from_config(c: &ServerConfig) -> Result<Option<OAuth>, String> {
        let Some(jwks) = c.oauth_jwks_file.clone() else {
            return Ok(None);
        };
        let keys = read_keys(&jwks)?;
        Ok(Some(OAuth {
            issuer: c.oauth_issuer.clone().unwrap_or_default(),
            audience: c.oauth_audience.clone().unwrap_or_default(),
            claim: c.oauth_principal_claim.clone(),
            skew: Duration::from_millis(c.oauth_clock_skew_ms),
            keys: Mutex::new(Keys {
                stamp: stamp(&jwks),
                keys: Arc::new(keys),
            }),
            jwks,
        }))
    }

    /// The keys, read again if the file changed (a key rotation needs no
    /// restart); a file that no longer reads keeps the keys in use.
    fn keys(&self) -> Arc<Vec<Key>> {
        let mut k = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let now = stamp(&self.jwks);
        if now != k.stamp {
            k.stamp = now;
            match read_keys(&self.jwks) {
                Ok(keys) => {
                    tracing::info!(jwks = %self.jwks.display(), keys = keys.len(), "OAuth keys reloaded");
                    k.keys = Arc::new(keys);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "OAuth keys not reloaded; the ones in use stay")
                }
            }
        }
        k.keys.clone()
    }

    /// Checks a JWT; the reason it is refused otherwise (for the audit log,
    /// not the client).
    pub(crate) fn check(&self, token: &str) -> Result<Checked, String> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(format!("a token of more than {MAX_TOKEN_BYTES} bytes"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
        let keys = self.keys();
        let key = keys
            .iter()
            .filter(|k| k.algorithms.contains(&header.alg))
            .find(|k| match (&header.kid, &k.id) {
                (Some(want), Some(id)) => want == id,
                (Some(_), None) => false,
                (None, _) => true,
            })
            .ok_or_else(|| {
                format!(
                    "no key for kid {:?} and alg {:?} in the JWKS",
                    header.kid, header.alg
                )
            })?;
        let mut v = Validation::new(header.alg);
        v.leeway = self.skew.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &v)
            .map_err(|e| format!("token refused: {e}"))?;
        let user = data
            .claims
            .get(&self.claim)
            .and_then(|c| c.as_str())
            .filter(|u| !u.is_empty() && u.len() <= crate::authn::MAX_USER_NAME)
            .ok_or_else(|| format!("the token has no {:?} claim naming a user", self.claim))?
            .to_string();
        let exp = data.claims.get("exp").and_then(|e| e.as_u64()).unwrap_or(0);
        let now = cairn_clock::system_time()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let lifetime = Duration::from_secs(exp.saturating_sub(now));
        Ok(Checked { user, lifetime })
    }
}

/// The token of an OAUTHBEARER client-first message (RFC 7628 §3.1:
/// `n,[a=authzid],` then `\x01`-separated `key=value` pairs, one of them
/// `auth=Bearer <token>`, ending `\x01\x01`), and the authzid if given.
pub(crate) fn client_first(message: &[u8]) -> Result<(String, Option<String>), String> {
    let text = std::str::from_utf8(message).map_err(|_| "not UTF-8".to_string())?;
    let (gs2, rest) = text
        .split_once('\u{1}')
        .ok_or_else(|| "no key/value pairs".to_string())?;
    let mut header = gs2.splitn(3, ',');
    let flag = header.next().unwrap_or_default();
    if flag != "n" && flag != "y" {
        return Err(format!(
            "GS2 header {gs2:?}: channel binding is not supported"
        ));
    }
    let authzid = match header.next().unwrap_or_default() {
        "" => None,
        a => Some(
            a.strip_prefix("a=")
                .ok_or_else(|| format!("GS2 header {gs2:?}"))?
                .to_string(),
        ),
    };
    let token = rest
        .split('\u{1}')
        .find_map(|kv| kv.strip_prefix("auth="))
        .ok_or_else(|| "no auth= pair".to_string())?;
    let token = token
        .strip_prefix("Bearer ")
        .or_else(|| token.strip_prefix("bearer "))
        .ok_or_else(|| "auth= is not a Bearer token".to_string())?;
    Ok((token.trim().to_string(), authzid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_first_messages() {
        let (t, a) = client_first(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01").unwrap();
        assert_eq!((t.as_str(), a), ("abc.def.ghi", None));
        let (t, a) =
            client_first(b"n,a=alice,\x01host=x\x01auth=Bearer t\x01ext=1\x01\x01").unwrap();
        assert_eq!((t.as_str(), a.as_deref()), ("t", Some("alice")));
        for bad in [
            &b"n,,auth=Bearer t"[..],
            b"p=tls-unique,,\x01auth=Bearer t\x01\x01",
            b"n,,\x01auth=Basic t\x01\x01",
            b"n,,\x01host=x\x01\x01",
            b"\xff\xfe",
        ] {
            assert!(client_first(bad).is_err(), "{bad:?}");
        }
    }

    fn oauth(dir: &std::path::Path) -> OAuth {
        let jwks = dir.join("jwks.json");
        // An RSA key (RFC 7517 appendix A.1's public key).
        std::fs::write(
            &jwks,
            r#"{"keys":[{"kty":"RSA","kid":"k","alg":"RS256","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}]}"#,
        )
        .unwrap();
        OAuth {
            jwks: jwks.clone(),
            issuer: "iss".into(),
            audience: "aud".into(),
            claim: "sub".into(),
            skew: Duration::ZERO,
            keys: Mutex::new(Keys {
                stamp: stamp(&jwks),
                keys: Arc::new(read_keys(&jwks).unwrap()),
            }),
        }
    }

    #[test]
    fn symmetric_keys_are_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
        let e = read_keys(&jwks).err().expect("an oct key was taken");
        assert!(e.contains("no public key"), "{e}");
    }

    proptest::proptest! {
        /// Bounded fuzzing of what an OAUTHBEARER client sends: any bytes
        /// as the client-first message, any string as a token (also a
        /// well-formed `alg: none` or HS256 token), answer an error, never
        /// a panic and never a login.
        #[test]
        fn arbitrary_messages_and_tokens_never_log_in(
            message in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            token in "[A-Za-z0-9_.=-]{0,200}",
            body in "[a-z\":{},0-9]{0,60}",
        ) {
            let dir = tempfile::tempdir().unwrap();
            let o = oauth(dir.path());
            if let Ok((t, _)) = client_first(&message) {
                proptest::prop_assert!(o.check(&t).is_err());
            }
            proptest::prop_assert!(o.check(&token).is_err());
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            for alg in ["none", "HS256", "RS256"] {
                let forged = format!(
                    "{}.{}.{}",
                    b64.encode(format!(r#"{{"alg":"{alg}","kid":"k"}}"#)),
                    b64.encode(&body),
                    b64.encode(b"sig"),
                );
                proptest::prop_assert!(o.check(&forged).is_err());
            }
        }
    }
}
