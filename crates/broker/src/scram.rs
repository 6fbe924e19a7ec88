//! SASL for the Kafka listener: SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802,
//! RFC 7677, as Kafka speaks them) and PLAIN (RFC 4616) checked against
//! the same stored SCRAM credentials. Pure: credentials come from a lookup
//! the caller gives, nonces from the caller's RNG.
//!
//! ```text
//!   client-first  n,,n=alice,r=<client nonce>
//!   server-first  r=<client nonce><server nonce>,s=<salt>,i=<iterations>
//!   client-final  c=biws,r=<nonce>,p=<client proof>
//!   server-final  v=<server signature>
//! ```
//!
//! The server keeps only `StoredKey = H(HMAC(SaltedPassword, "Client Key"))`
//! and `ServerKey = HMAC(SaltedPassword, "Server Key")`: neither lets anyone
//! log in, and a client proves it knows the password without sending it.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_metadata::ScramCredential;
use hmac::Hmac;
use hmac::Mac;
use sha2::Digest;
use sha2::Sha256;
use sha2::Sha512;

/// Kafka's bounds on SCRAM iterations.
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;

/// A SCRAM hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn parse(name: &str) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's `ScramMechanism` code (DescribeUserScramCredentials).
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, i)`: PBKDF2 with this hash.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }

    /// The stored credential for a salted password (what Kafka's
    /// AlterUserScramCredentials carries: clients salt the password).
    pub fn credential_from_salted(
        self,
        salted_password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        let client_key = self.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            iterations,
            stored_key: self.hash(&client_key),
            server_key: self.hmac(salted_password, b"Server Key"),
        }
    }

    pub fn credential(self, password: &str, salt: &[u8], iterations: u32) -> ScramCredential {
        let salted = self.salted_password(password.as_bytes(), salt, iterations);
        self.credential_from_salted(&salted, salt, iterations)
    }
}

/// Why authentication failed. The client is told only that it did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("malformed SASL message: {0}")]
    Malformed(&'static str),
    #[error("unknown user or wrong password")]
    BadCredentials,
    #[error("a SASL exchange step came out of order")]
    OutOfOrder,
}

/// Checks a PLAIN token (`authzid NUL authcid NUL password`) against the
/// user's stored credential; answers the user. An authzid other than the
/// user is refused (no impersonation).
pub fn verify_plain(
    token: &[u8],
    lookup: impl Fn(&str) -> Option<(ScramMechanism, ScramCredential)>,
) -> Result<String, SaslError> {
    let mut parts = token.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed(
            "PLAIN wants authzid NUL user NUL password",
        ));
    };
    let user = std::str::from_utf8(user).map_err(|_| SaslError::Malformed("user is not UTF-8"))?;
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err(SaslError::BadCredentials);
    }
    let (m, cred) = lookup(user).ok_or(SaslError::BadCredentials)?;
    let candidate = m.credential(
        std::str::from_utf8(password).map_err(|_| SaslError::Malformed("password is not UTF-8"))?,
        &cred.salt,
        cred.iterations,
    );
    if constant_time_eq(&candidate.stored_key, &cred.stored_key) {
        Ok(user.to_string())
    } else {
        Err(SaslError::BadCredentials)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The server side of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
}

#[derive(Debug)]
enum State {
    AwaitingClientFirst,
    AwaitingClientFinal {
        user: String,
        credential: ScramCredential,
        nonce: String,
        client_first_bare: String,
        server_first: String,
    },
    Done,
}

/// `n=name` with SCRAM's escapes (`=2C` is `,`, `=3D` is `=`).
fn unescape(name: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(SaslError::Malformed("bad escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        ScramServer {
            mechanism,
            state: State::AwaitingClientFirst,
        }
    }

    /// Takes the client-first message; answers the server-first one.
    /// `server_nonce` must be fresh and random (printable, no comma).
    pub fn client_first(
        &mut self,
        msg: &[u8],
        server_nonce: &str,
        lookup: impl Fn(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, SaslError> {
        if !matches!(self.state, State::AwaitingClientFirst) {
            return Err(SaslError::OutOfOrder);
        }
        self.state = State::Done;
        let msg = std::str::from_utf8(msg).map_err(|_| SaslError::Malformed("not UTF-8"))?;
        // gs2-header: "n,," or "y,," (no channel binding), optional a=authzid.
        let mut fields = msg.splitn(3, ',');
        let cbind = fields.next().unwrap_or("");
        let authzid = fields.next().ok_or(SaslError::Malformed("no gs2 header"))?;
        let bare = fields
            .next()
            .ok_or(SaslError::Malformed("no client-first-bare"))?;
        if cbind != "n" && cbind != "y" {
            return Err(SaslError::Malformed("channel binding is not supported"));
        }
        let mut user = None;
        let mut nonce = None;
        for attr in bare.split(',') {
            if let Some(v) = attr.strip_prefix("n=") {
                user = Some(unescape(v)?);
            } else if let Some(v) = attr.strip_prefix("r=") {
                nonce = Some(v.to_string());
            } else if attr.starts_with("m=") {
                return Err(SaslError::Malformed(
                    "mandatory extensions are not supported",
                ));
            }
        }
        let user = user.ok_or(SaslError::Malformed("no user name"))?;
        let client_nonce = nonce
            .filter(|n| !n.is_empty())
            .ok_or(SaslError::Malformed("no client nonce"))?;
        if let Some(a) = authzid.strip_prefix("a=") {
            if unescape(a)? != user {
                return Err(SaslError::BadCredentials);
            }
        }
        let credential = lookup(&user).ok_or(SaslError::BadCredentials)?;
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        self.state = State::AwaitingClientFinal {
            user,
            credential,
            nonce,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
        };
        Ok(server_first.into_bytes())
    }

    /// Takes the client-final message; answers the server-final one and
    /// the authenticated user.
    pub fn client_final(&mut self, msg: &[u8]) -> Result<(Vec<u8>, String), SaslError> {
        let State::AwaitingClientFinal {
            user,
            credential,
            nonce,
            client_first_bare,
            server_first,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(SaslError::OutOfOrder);
        };
        let msg = std::str::from_utf8(msg).map_err(|_| SaslError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or(SaslError::Malformed("no proof"))?;
        let mut got_nonce = None;
        for attr in without_proof.split(',') {
            if let Some(v) = attr.strip_prefix("r=") {
                got_nonce = Some(v);
            }
        }
        // RFC 5802 wants the nonce exactly; librdkafka before 2.x sends its
        // own nonce twice (its nonce, then the server's, which starts with
        // it), and Kafka's broker accepts a nonce that ends with the
        // server's. So does Cairn: the proof still covers the whole message.
        if !got_nonce.is_some_and(|n| n.ends_with(nonce.as_str())) {
            return Err(SaslError::BadCredentials);
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| SaslError::Malformed("proof is not base64"))?;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let m = self.mechanism;
        let client_signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(SaslError::BadCredentials);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        if !constant_time_eq(&m.hash(&client_key), &credential.stored_key) {
            return Err(SaslError::BadCredentials);
        }
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        Ok((
            format!("v={}", B64.encode(server_signature)).into_bytes(),
            user,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example: user "user", password "pencil".
    #[test]
    fn the_rfc_7677_exchange_verifies() {
        let m = ScramMechanism::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = m.credential("pencil", &salt, 4096);
        let mut s = ScramServer::new(m);
        let first = s
            .client_first(
                b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
                |u| (u == "user").then(|| cred.clone()),
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(first).unwrap(),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let (last, user) = s
            .client_final(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(user, "user");
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn a_wrong_proof_an_unknown_user_and_steps_out_of_order_fail() {
        let m = ScramMechanism::Sha512;
        let cred = m.credential("secret", b"salty", 4096);
        let mut s = ScramServer::new(m);
        assert_eq!(
            s.client_first(b"n,,n=bob,r=abc", "xyz", |_| None),
            Err(SaslError::BadCredentials)
        );
        let mut s = ScramServer::new(m);
        s.client_first(b"n,,n=alice,r=abc", "xyz", |_| Some(cred.clone()))
            .unwrap();
        assert_eq!(
            s.client_final(b"c=biws,r=abcxyz,p=AAAA"),
            Err(SaslError::BadCredentials)
        );
        assert_eq!(
            s.client_final(b"c=biws,r=abcxyz,p=AAAA"),
            Err(SaslError::OutOfOrder)
        );
        let mut s = ScramServer::new(m);
        assert_eq!(s.client_final(b"c=biws"), Err(SaslError::OutOfOrder));
        let mut s = ScramServer::new(m);
        assert!(matches!(
            s.client_first(b"p=tls-unique,,n=a,r=b", "c", |_| Some(cred.clone())),
            Err(SaslError::Malformed(_))
        ));
    }

    #[test]
    fn plain_is_checked_against_the_scram_credential() {
        let m = ScramMechanism::Sha256;
        let cred = m.credential("pw", b"salt", 4096);
        let lookup = |u: &str| (u == "alice").then(|| (m, cred.clone()));
        assert_eq!(verify_plain(b"\0alice\0pw", lookup), Ok("alice".into()));
        assert_eq!(
            verify_plain(b"alice\0alice\0pw", lookup),
            Ok("alice".into())
        );
        assert_eq!(
            verify_plain(b"\0alice\0wrong", lookup),
            Err(SaslError::BadCredentials)
        );
        assert_eq!(
            verify_plain(b"bob\0alice\0pw", lookup),
            Err(SaslError::BadCredentials)
        );
        assert_eq!(
            verify_plain(b"\0carol\0pw", lookup),
            Err(SaslError::BadCredentials)
        );
        assert!(matches!(
            verify_plain(b"alice-pw", lookup),
            Err(SaslError::Malformed(_))
        ));
    }

    /// librdkafka 2.0 (Debian's kcat) repeats its nonce in the client-final
    /// message; Kafka accepts that, and so must Cairn.
    #[test]
    fn a_client_nonce_sent_twice_is_accepted_as_kafka_does() {
        let m = ScramMechanism::Sha256;
        let cred = m.credential("pw", b"salt", 4096);
        let mut s = ScramServer::new(m);
        let first = s
            .client_first(b"n,,n=alice,r=cn", "sn", |_| Some(cred.clone()))
            .unwrap();
        let first = String::from_utf8(first).unwrap();
        let without_proof = "c=biws,r=cncnsn";
        let auth = format!("n=alice,r=cn,{first},{without_proof}");
        let salted = m.salted_password(b"pw", b"salt", 4096);
        let client_key = m.hmac(&salted, b"Client Key");
        let signature = m.hmac(&cred.stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let last = format!("{without_proof},p={}", B64.encode(proof));
        assert_eq!(s.client_final(last.as_bytes()).unwrap().1, "alice");
        // A nonce that does not end with the server's is refused.
        let mut s = ScramServer::new(m);
        s.client_first(b"n,,n=alice,r=cn", "sn", |_| Some(cred.clone()))
            .unwrap();
        assert_eq!(
            s.client_final(b"c=biws,r=cnXX,p=AAAA"),
            Err(SaslError::BadCredentials)
        );
    }

    proptest::proptest! {
        /// Whatever a client sends, the SASL parsers answer an error or a
        /// step, never a panic, and never a login without the password.
        #[test]
        fn arbitrary_tokens_never_panic_or_log_in(
            first in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            last in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            user in "[a-z=,]{0,12}",
            nonce in "[!-+--~]{1,20}",
        ) {
            let m = ScramMechanism::Sha256;
            let cred = m.credential("pw", b"salt", 4096);
            let mut s = ScramServer::new(m);
            let _ = s.client_first(&first, "srv", |_| Some(cred.clone()));
            proptest::prop_assert!(s.client_final(&last).is_err());
            let mut s = ScramServer::new(m);
            let msg = format!("n,,n={user},r={nonce}");
            if s.client_first(msg.as_bytes(), "srv", |_| Some(cred.clone())).is_ok() {
                proptest::prop_assert!(s.client_final(&last).is_err());
            }
            let lookup = |_: &str| Some((m, cred.clone()));
            if let Ok(u) = verify_plain(&first, lookup) {
                // Only a token carrying the password logs in.
                proptest::prop_assert!(first.ends_with(b"\0pw"), "{u} logged in");
            }
        }
    }

    #[test]
    fn user_names_are_unescaped() {
        assert_eq!(unescape("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert!(unescape("a=2").is_err());
    }
}
