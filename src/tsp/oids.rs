//! The object identifiers RFC 3161 checking needs, in one place (const-oid's database lacks a
//! few, such as id-ct-TSTInfo).
use const_oid::db::{rfc5280, rfc5911, rfc5912};
use der::oid::ObjectIdentifier;

pub const SHA_1: ObjectIdentifier = rfc5912::ID_SHA_1;
pub const SHA_256: ObjectIdentifier = rfc5912::ID_SHA_256;
pub const SHA_384: ObjectIdentifier = rfc5912::ID_SHA_384;
pub const SHA_512: ObjectIdentifier = rfc5912::ID_SHA_512;

pub const RSA_ENCRYPTION: ObjectIdentifier = rfc5912::RSA_ENCRYPTION;
pub const SHA_256_WITH_RSA: ObjectIdentifier = rfc5912::SHA_256_WITH_RSA_ENCRYPTION;
pub const SHA_384_WITH_RSA: ObjectIdentifier = rfc5912::SHA_384_WITH_RSA_ENCRYPTION;
pub const SHA_512_WITH_RSA: ObjectIdentifier = rfc5912::SHA_512_WITH_RSA_ENCRYPTION;
pub const ECDSA_WITH_SHA_256: ObjectIdentifier = rfc5912::ECDSA_WITH_SHA_256;
pub const ECDSA_WITH_SHA_384: ObjectIdentifier = rfc5912::ECDSA_WITH_SHA_384;
pub const ECDSA_WITH_SHA_512: ObjectIdentifier = rfc5912::ECDSA_WITH_SHA_512;

pub const SIGNED_DATA: ObjectIdentifier = rfc5911::ID_SIGNED_DATA;
pub const CONTENT_TYPE: ObjectIdentifier = rfc5911::ID_CONTENT_TYPE;
pub const MESSAGE_DIGEST: ObjectIdentifier = rfc5911::ID_MESSAGE_DIGEST;
/// id-ct-TSTInfo (RFC 3161 §2.4.2).
pub const CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
pub const SIGNING_CERTIFICATE: ObjectIdentifier = rfc5911::ID_AA_SIGNING_CERTIFICATE;
pub const SIGNING_CERTIFICATE_V2: ObjectIdentifier = rfc5911::ID_AA_SIGNING_CERTIFICATE_V_2;

pub const KP_TIME_STAMPING: ObjectIdentifier = rfc5280::ID_KP_TIME_STAMPING;
pub const BASIC_CONSTRAINTS: ObjectIdentifier = rfc5280::ID_CE_BASIC_CONSTRAINTS;
pub const KEY_USAGE: ObjectIdentifier = rfc5280::ID_CE_KEY_USAGE;
pub const EXT_KEY_USAGE: ObjectIdentifier = rfc5280::ID_CE_EXT_KEY_USAGE;
pub const SUBJECT_ALT_NAME: ObjectIdentifier = rfc5280::ID_CE_SUBJECT_ALT_NAME;
pub const CERTIFICATE_POLICIES: ObjectIdentifier = rfc5280::ID_CE_CERTIFICATE_POLICIES;
pub const SUBJECT_KEY_IDENTIFIER: ObjectIdentifier = rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER;
pub const AUTHORITY_KEY_IDENTIFIER: ObjectIdentifier = rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER;

/// The digest of `data` under the hash algorithm `oid`, if it is one we accept here.
pub fn digest(oid: &ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest;
    Some(match *oid {
        SHA_1 => sha1::Sha1::digest(data).to_vec(),
        SHA_256 => sha2::Sha256::digest(data).to_vec(),
        SHA_384 => sha2::Sha384::digest(data).to_vec(),
        SHA_512 => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    })
}
