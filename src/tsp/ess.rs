//! The signing-certificate attribute (RFC 2634 ESSCertID, RFC 5035 ESSCertIDv2): binds the
//! signature to one certificate, so that a certificate with the same key but other contents (a
//! different name, usage or validity) cannot be passed off as the signer.
use der::{
    asn1::{Any, OctetString},
    Decode, Encode, Sequence,
};
use spki::AlgorithmIdentifierOwned;
use x509_cert::{
    attr::Attribute,
    ext::pkix::name::{GeneralName, GeneralNames},
    serial_number::SerialNumber,
    Certificate,
};

use super::oids;

#[derive(Clone, Debug, Sequence)]
struct IssuerSerial {
    issuer: GeneralNames,
    serial_number: SerialNumber,
}

#[derive(Clone, Debug, Sequence)]
struct EssCertId {
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

#[derive(Clone, Debug, Sequence)]
struct SigningCertificate {
    certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

#[derive(Clone, Debug, Sequence)]
struct EssCertIdV2 {
    /// DEFAULT id-sha256 when absent.
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

#[derive(Clone, Debug, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

/// The single value of the attribute `oid` among `attrs`, if present.
pub fn single_value<'a>(attrs: &'a [Attribute], oid: der::oid::ObjectIdentifier, what: &str) -> Result<Option<&'a Any>, String> {
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let Some(attr) = found.next() else { return Ok(None) };
    if found.next().is_some() || attr.values.len() != 1 {
        return Err(format!("the {what} attribute must occur once with one value"));
    }
    Ok(attr.values.iter().next())
}

/// Checks that the signing-certificate attribute (v2 preferred, v1 accepted) names `signer`:
/// its first entry's hash is that of the certificate, and its issuer and serial, when given,
/// are the certificate's.
pub fn check(attrs: &[Attribute], signer: &Certificate) -> Result<(), String> {
    let cert_der = signer.to_der().map_err(|e| format!("cannot re-encode the signer certificate: {e}"))?;
    if let Some(v) = single_value(attrs, oids::SIGNING_CERTIFICATE_V2, "signing-certificate-v2")? {
        let sc = SigningCertificateV2::from_der(&v.to_der().map_err(|e| e.to_string())?).map_err(|e| format!("unreadable signing-certificate-v2 attribute: {e}"))?;
        let first = sc.certs.first().ok_or("the signing-certificate-v2 attribute names no certificate")?;
        let alg = first.hash_algorithm.as_ref().map(|a| a.oid).unwrap_or(oids::SHA_256);
        let hash = oids::digest(&alg, &cert_der).ok_or_else(|| format!("the signing-certificate-v2 attribute uses an unsupported hash {alg}"))?;
        if first.cert_hash.as_bytes() != hash.as_slice() {
            return Err("the signing-certificate-v2 attribute does not match the signer certificate".into());
        }
        return issuer_serial_matches(first.issuer_serial.as_ref(), signer);
    }
    if let Some(v) = single_value(attrs, oids::SIGNING_CERTIFICATE, "signing-certificate")? {
        let sc = SigningCertificate::from_der(&v.to_der().map_err(|e| e.to_string())?).map_err(|e| format!("unreadable signing-certificate attribute: {e}"))?;
        let first = sc.certs.first().ok_or("the signing-certificate attribute names no certificate")?;
        let hash = oids::digest(&oids::SHA_1, &cert_der).expect("SHA-1 is supported");
        if first.cert_hash.as_bytes() != hash.as_slice() {
            return Err("the signing-certificate attribute does not match the signer certificate".into());
        }
        return issuer_serial_matches(first.issuer_serial.as_ref(), signer);
    }
    Err("the signature has no signing-certificate (ESSCertID or ESSCertIDv2) attribute".into())
}

fn issuer_serial_matches(is: Option<&IssuerSerial>, signer: &Certificate) -> Result<(), String> {
    let Some(is) = is else { return Ok(()) };
    let tbs = &signer.tbs_certificate;
    let issuer_named = is.issuer.iter().any(|n| matches!(n, GeneralName::DirectoryName(d) if *d == tbs.issuer));
    if is.serial_number != tbs.serial_number || !issuer_named {
        return Err("the signing-certificate attribute names another issuer or serial number than the signer certificate's".into());
    }
    Ok(())
}
