//! Trust in the TSA's certificate: the configured anchors (a PEM bundle), signature checks by
//! algorithm identifier, and the path from the signer to an anchor.
//!
//! No maintained crate validates a certification path for RFC 3161 (webpki only knows TLS server
//! and client usages), so the path is built here, deliberately small: every link's signature is
//! checked (through `x509-verify`), every certificate must be valid at the token's genTime (a
//! token stays provable after its certificate expired: what counts is that it was valid when the
//! time was asserted), issuers must be CAs allowed to sign certificates, path lengths are
//! honoured, and an unknown critical extension is refused rather than ignored. Revocation is not
//! checked (no CRL or OCSP fetching): see docs/timestamps.md.
use std::time::Duration;

use der::{referenced::OwnedToRef, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::{
    ext::pkix::{BasicConstraints, KeyUsage},
    Certificate,
};

use super::oids;

/// The longest path accepted, anchor included: deeper ones are not what a TSA uses.
const MAX_PATH: usize = 8;
/// Signature checks one path search may spend: a reply full of certificates with the same names
/// must not make the search explode (it is depth-first with backtracking).
const MAX_CHECKS: u32 = 64;

/// Extensions whose meaning this module knows; any other marked critical refuses the certificate.
const KNOWN_CRITICAL: &[der::oid::ObjectIdentifier] = &[
    oids::BASIC_CONSTRAINTS,
    oids::KEY_USAGE,
    oids::EXT_KEY_USAGE,
    oids::SUBJECT_ALT_NAME,
    oids::CERTIFICATE_POLICIES,
    oids::SUBJECT_KEY_IDENTIFIER,
    oids::AUTHORITY_KEY_IDENTIFIER,
];

/// The certificates a TSA's signer must chain to.
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    certs: Vec<Certificate>,
}

impl TrustAnchors {
    /// The certificates of a PEM bundle (at least one).
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let certs = Certificate::load_pem_chain(pem).map_err(|e| format!("not a PEM bundle of certificates: {e}"))?;
        if certs.is_empty() {
            return Err("holds no certificate".into());
        }
        Ok(Self { certs })
    }

    /// The anchors' subjects, for the API and logs.
    pub fn subjects(&self) -> Vec<String> {
        self.certs.iter().map(|c| c.tbs_certificate.subject.to_string()).collect()
    }

    pub fn certs(&self) -> &[Certificate] {
        &self.certs
    }
}

/// Seconds since the epoch of a certificate time.
fn unix(t: &x509_cert::time::Time) -> Duration {
    t.to_unix_duration()
}

pub fn subject(c: &Certificate) -> String {
    c.tbs_certificate.subject.to_string()
}

/// Checks `signature` over `message` with the key `spki` under the algorithm `alg` (RSA PKCS#1
/// v1.5 or ECDSA, SHA-256/384/512).
pub fn verify_signature(spki: &SubjectPublicKeyInfoOwned, alg: &AlgorithmIdentifierOwned, message: &[u8], signature: &[u8]) -> Result<(), String> {
    let key = x509_verify::VerifyingKey::new(spki.owned_to_ref()).map_err(|e| format!("unsupported public key: {e}"))?;
    let info = x509_verify::VerifyInfo::new(x509_verify::Message::new(message), x509_verify::Signature::new(alg, signature));
    key.verify(info).map_err(|e| match e {
        x509_verify::Error::Verification => "the signature does not verify".to_string(),
        e => format!("the signature cannot be checked ({}): {e}", alg.oid),
    })
}

/// Whether `issuer`'s key signed `cert`.
fn signed_by(cert: &Certificate, issuer: &Certificate) -> Result<(), String> {
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(format!("{}: the inner and outer signature algorithms differ", subject(cert)));
    }
    let tbs = cert.tbs_certificate.to_der().map_err(|e| format!("{}: cannot re-encode: {e}", subject(cert)))?;
    let sig = cert.signature.as_bytes().ok_or_else(|| format!("{}: the signature is not whole octets", subject(cert)))?;
    verify_signature(&issuer.tbs_certificate.subject_public_key_info, &cert.signature_algorithm, &tbs, sig)
        .map_err(|e| format!("the signature of {} by {}: {e}", subject(cert), subject(issuer)))
}

/// Whether `cert` is valid at `at` and has no critical extension we do not understand.
fn usable_at(cert: &Certificate, at: Duration) -> Result<(), String> {
    let v = &cert.tbs_certificate.validity;
    if at < unix(&v.not_before) || at > unix(&v.not_after) {
        return Err(format!("{} is not valid at the token's time (valid from {} to {})", subject(cert), v.not_before, v.not_after));
    }
    for e in cert.tbs_certificate.extensions.as_deref().unwrap_or(&[]) {
        if e.critical && !KNOWN_CRITICAL.contains(&e.extn_id) {
            return Err(format!("{} has an unsupported critical extension {}", subject(cert), e.extn_id));
        }
    }
    Ok(())
}

/// Whether `ca` may issue certificates with `below` intermediate CAs under it.
fn may_issue(ca: &Certificate, below: usize) -> Result<(), String> {
    let bc = ca.tbs_certificate.get::<BasicConstraints>().map_err(|e| format!("{}: unreadable basic constraints: {e}", subject(ca)))?;
    match bc {
        Some((_, bc)) if bc.ca => {
            if let Some(max) = bc.path_len_constraint {
                if below > max as usize {
                    return Err(format!("{} allows {max} intermediate CAs below it, the path has {below}", subject(ca)));
                }
            }
        }
        _ => return Err(format!("{} is not a CA certificate (basicConstraints cA is not set)", subject(ca))),
    }
    let ku = ca.tbs_certificate.get::<KeyUsage>().map_err(|e| format!("{}: unreadable key usage: {e}", subject(ca)))?;
    if let Some((_, ku)) = ku {
        if !ku.key_cert_sign() {
            return Err(format!("{} may not sign certificates (keyUsage lacks keyCertSign)", subject(ca)));
        }
    }
    Ok(())
}

/// The path from `leaf` to one of `anchors` (leaf first, anchor last), through the certificates
/// of `pool` in whatever order they come, each link checked, every certificate usable at `at`.
pub fn validate(leaf: &Certificate, pool: &[Certificate], anchors: &TrustAnchors, at: Duration) -> Result<Vec<Certificate>, String> {
    usable_at(leaf, at)?;
    // A pinned TSA certificate is its own anchor.
    if anchors.certs.iter().any(|a| a == leaf) {
        return Ok(vec![leaf.clone()]);
    }
    let mut path = vec![leaf.clone()];
    let mut why = None;
    let mut budget = MAX_CHECKS;
    if extend(&mut path, pool, anchors, at, &mut why, &mut budget) {
        return Ok(path);
    }
    Err(why.unwrap_or_else(|| {
        format!("no trusted certificate issued {} (issuer {}): the signer does not chain to the configured trust anchors", subject(leaf), leaf.tbs_certificate.issuer)
    }))
}

/// Depth-first search for an issuer of the last certificate of `path`: an anchor ends the path,
/// an intermediate from `pool` continues it. `why` keeps the last reason a candidate failed.
fn extend(path: &mut Vec<Certificate>, pool: &[Certificate], anchors: &TrustAnchors, at: Duration, why: &mut Option<String>, budget: &mut u32) -> bool {
    let Some(cur) = path.last().cloned() else { return false };
    let below = path.len() - 1;
    let issued = |c: &Certificate| c.tbs_certificate.subject == cur.tbs_certificate.issuer;
    for a in anchors.certs.iter().filter(|a| issued(a)) {
        if !spend(budget, why) {
            return false;
        }
        match signed_by(&cur, a).and_then(|_| usable_at(a, at)).and_then(|_| may_issue(a, below)) {
            Ok(()) => {
                path.push(a.clone());
                return true;
            }
            Err(e) => *why = Some(e),
        }
    }
    if path.len() + 1 >= MAX_PATH {
        *why = Some(format!("no path of at most {MAX_PATH} certificates to a trust anchor"));
        return false;
    }
    let candidates: Vec<&Certificate> = pool.iter().filter(|c| issued(c) && !path.contains(c)).collect();
    for c in candidates {
        if !spend(budget, why) {
            return false;
        }
        match signed_by(&cur, c).and_then(|_| usable_at(c, at)).and_then(|_| may_issue(c, below)) {
            Ok(()) => {
                path.push(c.clone());
                if extend(path, pool, anchors, at, why, budget) {
                    return true;
                }
                path.pop();
            }
            Err(e) => *why = Some(e),
        }
    }
    false
}

/// Takes one signature check from `budget`; false (with the reason in `why`) when none is left.
fn spend(budget: &mut u32, why: &mut Option<String>) -> bool {
    if *budget == 0 {
        *why = Some(format!("gave up after {MAX_CHECKS} signature checks: too many candidate issuers"));
        return false;
    }
    *budget -= 1;
    true
}

/// A path as PEM, leaf first: what `.pem` downloads serve.
pub fn to_pem(path: &[Certificate]) -> Result<String, String> {
    use der::EncodePem;
    let mut out = String::new();
    for c in path {
        out.push_str(&c.to_pem(der::pem::LineEnding::LF).map_err(|e| format!("cannot encode {} as PEM: {e}", subject(c)))?);
    }
    Ok(out)
}
