//! A client certificate's subject, and the principal it maps to.
//!
//! The subject is written as Java's `X500Principal.getName()` writes it
//! (RFC 2253: the last RDN first, `,` between RDNs, no spaces), which is
//! what Kafka's `ssl.principal.mapping.rules` are written against, so rules
//! written for a Kafka cluster work here unchanged.

use regex::Regex;
use x509_parser::prelude::FromDer;
use x509_parser::prelude::X509Certificate;

/// The subject of a DER certificate in RFC 2253 form, e.g.
/// `CN=alice,OU=lab,O=Hospital,C=DE`; `None` if it does not parse.
pub fn subject_of(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut rdns: Vec<String> = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let mut parts = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let key = match oid.as_str() {
                "2.5.4.3" => "CN".to_string(),
                "2.5.4.6" => "C".to_string(),
                "2.5.4.7" => "L".to_string(),
                "2.5.4.8" => "ST".to_string(),
                "2.5.4.9" => "STREET".to_string(),
                "2.5.4.10" => "O".to_string(),
                "2.5.4.11" => "OU".to_string(),
                "0.9.2342.19200300.100.1.25" => "DC".to_string(),
                "0.9.2342.19200300.100.1.1" => "UID".to_string(),
                other => other.to_string(),
            };
            let value = match attr.as_str() {
                Ok(v) => escape(v),
                Err(_) => format!("#{}", hex(attr.attr_value().data)),
            };
            parts.push(format!("{key}={value}"));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// Whether a certificate is a node's: it may serve TLS (the serverAuth
/// extended key usage), as `cairn cert node` certificates do and client
/// certificates do not.
pub(crate) fn is_node_certificate(der: &[u8]) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return false;
    };
    matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.server_auth)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// RFC 2253 escaping of an attribute value.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[derive(Debug, Clone)]
enum Rule {
    /// The subject itself.
    Default,
    Pattern {
        regex: Regex,
        replacement: String,
        case: Option<char>,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("ssl_principal_mapping_rules {rules:?}: {reason}")]
pub struct RuleError {
    rules: String,
    reason: String,
}

/// Kafka's `ssl.principal.mapping.rules`: a comma-separated list of
/// `RULE:pattern/replacement/` (optionally `/L` or `/U` to lower- or
/// upper-case the result) and `DEFAULT`; the first rule whose pattern
/// matches the whole subject gives the principal's name.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl Default for PrincipalMapper {
    fn default() -> Self {
        PrincipalMapper {
            rules: vec![Rule::Default],
        }
    }
}

/// Reads up to the next unescaped `/`; `\/` stands for `/`.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, n)) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

impl PrincipalMapper {
    pub fn parse(rules: &str) -> Result<PrincipalMapper, RuleError> {
        let err = |reason: String| RuleError {
            rules: rules.to_string(),
            reason,
        };
        let braced = Regex::new(r"\$(\d+)").map_err(|e| err(e.to_string()))?;
        let mut out = Vec::new();
        let mut rest = rules.trim();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("DEFAULT") {
                out.push(Rule::Default);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("RULE:") {
                let (pattern, r) = until_slash(r)
                    .ok_or_else(|| err("a RULE has no '/' after its pattern".into()))?;
                let (replacement, r) = until_slash(r)
                    .ok_or_else(|| err("a RULE has no '/' after its replacement".into()))?;
                let (case, r) = match r.chars().next() {
                    Some(c @ ('L' | 'U')) => (Some(c), &r[1..]),
                    _ => (None, r),
                };
                let regex = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| err(format!("pattern {pattern:?}: {e}")))?;
                // Java's `$1` followed by a letter is group 1 then the
                // letter; the regex crate would read a group named `1x`.
                let replacement = braced.replace_all(&replacement, "$${$1}").into_owned();
                out.push(Rule::Pattern {
                    regex,
                    replacement,
                    case,
                });
                rest = r;
            } else {
                return Err(err(format!(
                    "expected RULE:pattern/replacement/[LU] or DEFAULT at {rest:?}"
                )));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(r) => rest = r.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(err(format!("expected ',' at {rest:?}"))),
            }
        }
        if out.is_empty() {
            return Err(err("no rule".into()));
        }
        Ok(PrincipalMapper { rules: out })
    }

    /// The principal's name for `subject`, or `None` when no rule applies
    /// (the client is then refused, as Kafka refuses it).
    pub fn map(&self, subject: &str) -> Option<String> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Some(subject.to_string()),
                Rule::Pattern {
                    regex,
                    replacement,
                    case,
                } => {
                    if !regex.is_match(subject) {
                        continue;
                    }
                    let name = regex.replace(subject, replacement.as_str()).into_owned();
                    let name = match case {
                        Some('L') => name.to_lowercase(),
                        Some('U') => name.to_uppercase(),
                        _ => name,
                    };
                    if !name.is_empty() {
                        return Some(name);
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_subject() {
        let m = PrincipalMapper::parse("DEFAULT").unwrap();
        assert_eq!(m.map("CN=a,O=b").as_deref(), Some("CN=a,O=b"));
    }

    #[test]
    fn kafka_documented_rules() {
        // The examples of Kafka's documentation for the setting.
        let m = PrincipalMapper::parse(
            r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT",
        )
        .unwrap();
        assert_eq!(
            m.map("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Some("serviceuser")
        );
        assert_eq!(
            m.map("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Some("adminuser@admin")
        );
        assert_eq!(m.map("OU=x,cn=Bob.Smith,O=y").as_deref(), Some("bob.smith"));
        assert_eq!(m.map("O=nocn").as_deref(), Some("O=nocn"));
    }

    #[test]
    fn no_matching_rule_refuses() {
        let m = PrincipalMapper::parse("RULE:^CN=(.*?),O=Cairn$/$1/U").unwrap();
        assert_eq!(m.map("CN=node1,O=Cairn").as_deref(), Some("NODE1"));
        assert_eq!(m.map("CN=x,O=Other"), None);
    }

    #[test]
    fn escaped_slash_and_group_followed_by_letters() {
        let m = PrincipalMapper::parse(r"RULE:^CN=(.*)$/svc\/$1x/").unwrap();
        assert_eq!(m.map("CN=a").as_deref(), Some("svc/ax"));
    }

    #[test]
    fn bad_rules_are_explained() {
        for bad in ["", "RULE:abc", "RULE:(/x/", "NOPE", "DEFAULT;DEFAULT"] {
            let e = PrincipalMapper::parse(bad).unwrap_err().to_string();
            assert!(e.contains("ssl_principal_mapping_rules"), "{bad}: {e}");
        }
    }

    proptest::proptest! {
        /// Bounded fuzzing of what a client's certificate and an operator's
        /// rules can hold: any bytes as a certificate, any string as rules
        /// or subject, answer a value or an error, never a panic.
        #[test]
        fn arbitrary_certificates_rules_and_subjects(
            der in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            rules in "(RULE:|DEFAULT|[/,$^()*.a-zA-Z0-9=]|\\\\){0,40}",
            subject in "[ -~]{0,80}",
        ) {
            let _ = subject_of(&der);
            let _ = is_node_certificate(&der);
            if let Ok(m) = PrincipalMapper::parse(&rules) {
                let _ = m.map(&subject);
            }
        }
    }

    #[test]
    fn escaping_follows_rfc_2253() {
        assert_eq!(escape("a,b"), r"a\,b");
        assert_eq!(escape("#x "), r"\#x\ ");
        assert_eq!(escape("plain"), "plain");
    }
}
