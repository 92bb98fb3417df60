//! Checking a TimeStampResp (RFC 3161 §2.4.2) before it is accepted: a pure function of the
//! reply's DER, what the query asked for and the trust anchors, so that the pipeline, manual
//! signing and later re-verification apply exactly the same rules.
use chrono::{DateTime, Utc};
use cmpv2::status::PkiStatus;
use cms::{cert::CertificateChoices, content_info::ContentInfo, signed_data::{SignedData, SignerIdentifier, SignerInfo}};
use der::{
    asn1::{ObjectIdentifier, OctetString},
    Decode, Encode,
};
use spki::AlgorithmIdentifierOwned;
use x509_cert::{
    ext::pkix::{name::GeneralName, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier},
    Certificate,
};
use x509_tsp::{TimeStampResp, TstInfo};

use super::{chain, ess, oids, request::Expected, TrustAnchors};

/// A reply that passed every check: what the token asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub gen_time: DateTime<Utc>,
    /// The token's serial number, hex.
    pub serial: String,
    pub policy_oid: String,
    /// The TSA's name from the token, else the signer certificate's subject.
    pub tsa_name: String,
    /// `SHA-256`: the only imprint we ask for and accept.
    pub hash_algorithm: &'static str,
    /// The imprint, hex (the package's SHA-256).
    pub message_imprint: String,
    /// When the signer certificate expires: a token should be renewed (re-timestamped) before.
    pub signer_not_after: DateTime<Utc>,
    /// The validated path, signer first, trust anchor last, as PEM.
    pub chain_pem: String,
}

/// Why a reply was refused; its text goes to job logs and the API, so it names what failed
/// without repeating untrusted content at length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the TSA did not grant the request: status {status}{detail}")]
    NotGranted { status: String, detail: String },
    #[error("malformed reply: {0}")]
    Malformed(String),
    #[error("the token's message imprint is not the package's SHA-256")]
    ImprintMismatch,
    #[error("the token's imprint uses {0}, not SHA-256")]
    WrongHashAlgorithm(String),
    #[error("the token's nonce is not the one sent")]
    NonceMismatch,
    #[error("the token's signature is invalid: {0}")]
    BadSignature(String),
    #[error("the signer certificate may not sign timestamps: {0}")]
    NotTimestampingCertificate(String),
    #[error("the signing-certificate attribute is wrong: {0}")]
    SigningCertificate(String),
    #[error("the TSA certificate is not trusted: {0}")]
    Untrusted(String),
}

fn malformed(what: &'static str) -> impl Fn(der::Error) -> Refusal {
    move |e| Refusal::Malformed(format!("{what}: {e}"))
}

/// Checks `reply_der` against `expected` and `anchors`; see the module and docs/timestamps.md.
pub fn verify_reply(reply_der: &[u8], expected: &Expected, anchors: &TrustAnchors) -> Result<Verified, Refusal> {
    let resp = TimeStampResp::from_der(reply_der).map_err(malformed("not a TimeStampResp"))?;
    match resp.status.status {
        PkiStatus::Accepted | PkiStatus::GrantedWithMods => {}
        other => {
            let text: Vec<String> = resp.status.status_string.iter().flatten().map(|s| s.as_str().chars().take(200).collect()).collect();
            let mut detail = String::new();
            if !text.is_empty() {
                detail = format!(" ({})", text.join("; "));
            }
            if let Some(fi) = &resp.status.fail_info {
                detail.push_str(&format!(" failInfo {:?}", fi));
            }
            return Err(Refusal::NotGranted { status: format!("{other:?}"), detail });
        }
    }
    let token = resp.time_stamp_token.ok_or_else(|| Refusal::Malformed("a granted reply without a token".into()))?;
    verify_token(&token, expected, anchors)
}

/// The checks of a TimeStampToken (a CMS SignedData over a TSTInfo).
pub fn verify_token(token: &ContentInfo, expected: &Expected, anchors: &TrustAnchors) -> Result<Verified, Refusal> {
    if token.content_type != oids::SIGNED_DATA {
        return Err(Refusal::Malformed(format!("the token is {}, not SignedData", token.content_type)));
    }
    let sd: SignedData = token.content.decode_as().map_err(malformed("unreadable SignedData"))?;
    let encap = &sd.encap_content_info;
    if encap.econtent_type != oids::CT_TST_INFO {
        return Err(Refusal::Malformed(format!("the signed content is {}, not TSTInfo", encap.econtent_type)));
    }
    let econtent = encap.econtent.as_ref().ok_or_else(|| Refusal::Malformed("the token holds no TSTInfo".into()))?;
    let tst_der: OctetString = econtent.decode_as().map_err(malformed("the TSTInfo is not in an OCTET STRING"))?;
    let tst_der = tst_der.as_bytes();
    let tst = TstInfo::from_der(tst_der).map_err(malformed("unreadable TSTInfo"))?;

    // What was timestamped: our package, in answer to our query.
    if tst.message_imprint.hash_algorithm.oid != oids::SHA_256 {
        return Err(Refusal::WrongHashAlgorithm(tst.message_imprint.hash_algorithm.oid.to_string()));
    }
    if tst.message_imprint.hashed_message.as_bytes() != expected.sha256 {
        return Err(Refusal::ImprintMismatch);
    }
    if tst.nonce.as_ref().map(|n| n.as_bytes()) != Some(expected.nonce.as_slice()) {
        return Err(Refusal::NonceMismatch);
    }

    // Who signed it, and that the signature covers this TSTInfo.
    let [si] = sd.signer_infos.0.as_slice() else {
        return Err(Refusal::Malformed(format!("the token has {} signers, not one", sd.signer_infos.0.len())));
    };
    let certs: Vec<Certificate> = sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c.clone()),
            CertificateChoices::Other(_) => None,
        })
        .collect();
    let signer = find_signer(&si.sid, certs.iter().chain(anchors.certs()))
        .ok_or_else(|| Refusal::BadSignature("the signer certificate is not in the token (certReq was set)".into()))?
        .clone();
    check_signed_attributes(si, tst_der)?;
    check_signature(si, &signer)?;
    check_timestamping_usage(&signer)?;
    let attrs = si.signed_attrs.as_ref().map(|a| a.as_slice()).unwrap_or(&[]);
    ess::check(attrs, &signer).map_err(Refusal::SigningCertificate)?;

    // That the signer is trusted, as of the time it asserts.
    let at = tst.gen_time.to_unix_duration();
    let path = chain::validate(&signer, &certs, anchors, at).map_err(Refusal::Untrusted)?;
    let tsa_name = match &tst.tsa {
        Some(GeneralName::DirectoryName(n)) => {
            if *n != signer.tbs_certificate.subject {
                return Err(Refusal::Malformed(format!("the token names the TSA {n}, but {} signed it", chain::subject(&signer))));
            }
            n.to_string()
        }
        _ => chain::subject(&signer),
    };
    Ok(Verified {
        gen_time: time(at),
        serial: hex::encode(tst.serial_number.as_bytes()),
        policy_oid: tst.policy.to_string(),
        tsa_name,
        hash_algorithm: "SHA-256",
        message_imprint: hex::encode(expected.sha256),
        signer_not_after: time(signer.tbs_certificate.validity.not_after.to_unix_duration()),
        chain_pem: chain::to_pem(&path).map_err(Refusal::Malformed)?,
    })
}

fn time(d: std::time::Duration) -> DateTime<Utc> {
    DateTime::from_timestamp(d.as_secs().min(i64::MAX as u64) as i64, d.subsec_nanos()).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn find_signer<'a>(sid: &SignerIdentifier, mut certs: impl Iterator<Item = &'a Certificate>) -> Option<&'a Certificate> {
    certs.find(|c| match sid {
        SignerIdentifier::IssuerAndSerialNumber(is) => c.tbs_certificate.issuer == is.issuer && c.tbs_certificate.serial_number == is.serial_number,
        SignerIdentifier::SubjectKeyIdentifier(ski) => matches!(c.tbs_certificate.get::<SubjectKeyIdentifier>(), Ok(Some((_, s))) if s == *ski),
    })
}

/// The content-type attribute says TSTInfo and the message-digest attribute is the digest of
/// the TSTInfo: only then does a signature over the attributes cover the token's content.
fn check_signed_attributes(si: &SignerInfo, tst_der: &[u8]) -> Result<(), Refusal> {
    let attrs = si.signed_attrs.as_ref().ok_or_else(|| Refusal::BadSignature("no signed attributes".into()))?;
    let bad = Refusal::BadSignature;
    let ct = ess::single_value(attrs.as_slice(), oids::CONTENT_TYPE, "content-type").map_err(bad)?;
    let ct: ObjectIdentifier = ct.ok_or_else(|| bad("no content-type attribute".into()))?.decode_as().map_err(|e| bad(format!("unreadable content-type: {e}")))?;
    if ct != oids::CT_TST_INFO {
        return Err(bad(format!("the content-type attribute is {ct}, not TSTInfo")));
    }
    let md = ess::single_value(attrs.as_slice(), oids::MESSAGE_DIGEST, "message-digest").map_err(bad)?;
    let md: OctetString = md.ok_or_else(|| bad("no message-digest attribute".into()))?.decode_as().map_err(|e| bad(format!("unreadable message-digest: {e}")))?;
    let alg = si.digest_alg.oid;
    if alg == oids::SHA_1 {
        return Err(bad("SHA-1 digests are not accepted".into()));
    }
    let digest = oids::digest(&alg, tst_der).ok_or_else(|| bad(format!("unsupported digest algorithm {alg}")))?;
    if md.as_bytes() != digest.as_slice() {
        return Err(bad("the message-digest attribute does not match the TSTInfo".into()));
    }
    Ok(())
}

/// The signature over the DER of the signed attributes (as a SET OF, RFC 5652 §5.4).
fn check_signature(si: &SignerInfo, signer: &Certificate) -> Result<(), Refusal> {
    let attrs = si.signed_attrs.as_ref().ok_or_else(|| Refusal::BadSignature("no signed attributes".into()))?;
    let message = attrs.to_der().map_err(|e| Refusal::BadSignature(format!("cannot re-encode the signed attributes: {e}")))?;
    let alg = signature_algorithm(si)?;
    chain::verify_signature(&signer.tbs_certificate.subject_public_key_info, &alg, &message, si.signature.as_bytes()).map_err(Refusal::BadSignature)
}

/// The signature algorithm as one identifier. CMS signers (OpenSSL among them) often name only
/// `rsaEncryption` and leave the hash to the digest algorithm: combine the two then. A combined
/// identifier must agree with the digest algorithm.
fn signature_algorithm(si: &SignerInfo) -> Result<AlgorithmIdentifierOwned, Refusal> {
    let digest = si.digest_alg.oid;
    let sig = si.signature_algorithm.oid;
    let combined = match (sig, digest) {
        (oids::RSA_ENCRYPTION, oids::SHA_256) | (oids::SHA_256_WITH_RSA, oids::SHA_256) => oids::SHA_256_WITH_RSA,
        (oids::RSA_ENCRYPTION, oids::SHA_384) | (oids::SHA_384_WITH_RSA, oids::SHA_384) => oids::SHA_384_WITH_RSA,
        (oids::RSA_ENCRYPTION, oids::SHA_512) | (oids::SHA_512_WITH_RSA, oids::SHA_512) => oids::SHA_512_WITH_RSA,
        (oids::ECDSA_WITH_SHA_256, oids::SHA_256) => oids::ECDSA_WITH_SHA_256,
        (oids::ECDSA_WITH_SHA_384, oids::SHA_384) => oids::ECDSA_WITH_SHA_384,
        (oids::ECDSA_WITH_SHA_512, oids::SHA_512) => oids::ECDSA_WITH_SHA_512,
        _ => return Err(Refusal::BadSignature(format!("unsupported signature algorithm {sig} with digest {digest}"))),
    };
    let params = if combined == sig { si.signature_algorithm.parameters.clone() } else { Some(der::Any::null()) };
    Ok(AlgorithmIdentifierOwned { oid: combined, parameters: params })
}

/// RFC 3161 §2.3: the TSA's certificate carries extendedKeyUsage with id-kp-timeStamping as its
/// only purpose, and the extension is critical. A key usage, if present, allows signing.
fn check_timestamping_usage(signer: &Certificate) -> Result<(), Refusal> {
    let refuse = |m: &str| Refusal::NotTimestampingCertificate(format!("{}: {m}", chain::subject(signer)));
    match signer.tbs_certificate.get::<ExtendedKeyUsage>() {
        Ok(Some((true, eku))) if eku.0 == [oids::KP_TIME_STAMPING] => {}
        Ok(Some((false, _))) => return Err(refuse("the extendedKeyUsage extension is not critical")),
        Ok(Some(_)) => return Err(refuse("extendedKeyUsage must hold timeStamping and nothing else")),
        Ok(None) => return Err(refuse("no extendedKeyUsage timeStamping")),
        Err(e) => return Err(refuse(&format!("unreadable extendedKeyUsage: {e}"))),
    }
    match signer.tbs_certificate.get::<KeyUsage>() {
        Ok(Some((_, ku))) if !(ku.digital_signature() || ku.non_repudiation()) => Err(refuse("keyUsage allows neither digitalSignature nor nonRepudiation")),
        Err(e) => Err(refuse(&format!("unreadable keyUsage: {e}"))),
        _ => Ok(()),
    }
}
