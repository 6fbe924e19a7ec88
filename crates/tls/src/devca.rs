//! A development CA: a self-signed CA and the node and client certificates
//! it signs (`cairn cert`), for tests and quick starts. ECDSA P-256 keys,
//! PKCS#8 PEM (what Kafka's Java client reads as `ssl.keystore.type=PEM`).
//! Production clusters use their organisation's CA (docs/ops/security.md).

use rcgen::BasicConstraints;
use rcgen::Certificate;
use rcgen::CertificateParams;
use rcgen::DistinguishedName;
use rcgen::DnType;
use rcgen::ExtendedKeyUsagePurpose;
use rcgen::IsCa;
use rcgen::KeyPair;
use rcgen::KeyUsagePurpose;

use crate::TlsError;

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A node: server on its listeners, client and server on the internal
    /// RPC (both extended key usages).
    Node,
    /// A client (mTLS): client authentication only.
    Client,
}

fn err(e: rcgen::Error) -> TlsError {
    TlsError::Config(format!("certificate generation: {e}"))
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days.max(1)));
}

/// A new self-signed CA named `name`, valid for `days`.
pub fn new_ca(name: &str, days: u32) -> Result<Issued, TlsError> {
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Cairn development CA");
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, days);
    let cert = params.self_signed(&key).map_err(err)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn issuer(ca: &Issued) -> Result<(Certificate, KeyPair), TlsError> {
    let key = KeyPair::from_pem(&ca.key_pem).map_err(err)?;
    let params = CertificateParams::from_ca_cert_pem(&ca.cert_pem).map_err(err)?;
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert, key))
}

/// A certificate signed by `ca` for `common_name` (and `organizational_unit`
/// if given), with `sans` (DNS names or IP addresses) as subject
/// alternative names, valid for `days`.
pub fn issue(
    ca: &Issued,
    kind: Kind,
    common_name: &str,
    organizational_unit: Option<&str>,
    sans: &[String],
    days: u32,
) -> Result<Issued, TlsError> {
    let (ca_cert, ca_key) = issuer(ca)?;
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(sans.to_vec()).map_err(err)?;
    // Most significant first, as CAs encode it, so that the subject reads
    // `CN=...,OU=...,O=Cairn` in RFC 2253 (the order mapping rules expect).
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Cairn");
    if let Some(ou) = organizational_unit {
        dn.push(DnType::OrganizationalUnitName, ou);
    }
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match kind {
        Kind::Node => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Kind::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, days);
    let cert = params.signed_by(&key, &ca_cert, &ca_key).map_err(err)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
