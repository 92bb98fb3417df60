//! The TimeStampReq (RFC 3161 §2.4.1) we send: version 1, a SHA-256 message imprint of the
//! package, a random positive nonce (so a replayed or cached reply is caught) and `certReq` true
//! (so the reply carries the TSA's certificate and can be checked without fetching anything).
use der::{
    asn1::{Int, OctetString},
    Decode, Encode,
};
use spki::AlgorithmIdentifierOwned;
use x509_tsp::{MessageImprint, TimeStampReq, TspVersion};

use super::oids::SHA_256;

/// A query as sent: its DER and the nonce the reply must echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub der: Vec<u8>,
    /// The nonce's INTEGER content octets (positive, minimal).
    pub nonce: Vec<u8>,
}

/// What a reply is checked against: the package hash and the nonce of the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub sha256: [u8; 32],
    pub nonce: Vec<u8>,
}

/// A query for the package whose SHA-256 is `sha256`, with a fresh random nonce.
pub fn build(sha256: &[u8; 32]) -> Query {
    build_with_nonce(sha256, rand::random::<u64>())
}

/// As [`build`] with the nonce's random bits given. The top bit is cleared (the INTEGER stays
/// positive without a leading zero octet) and the next one set (always eight octets, so the
/// encoding is minimal whatever the random value): 62 random bits.
pub fn build_with_nonce(sha256: &[u8; 32], random: u64) -> Query {
    let value = (random & !(1 << 63)) | (1 << 62);
    let nonce = value.to_be_bytes().to_vec();
    let req = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifierOwned { oid: SHA_256, parameters: None },
            hashed_message: OctetString::new(sha256.to_vec()).expect("32 octets fit an OCTET STRING"),
        },
        req_policy: None,
        nonce: Some(Int::new(&nonce).expect("8 octets fit an INTEGER")),
        cert_req: true,
        extensions: None,
    };
    let der = req.to_der().expect("a TimeStampReq of fixed-size parts encodes");
    Query { der, nonce }
}

/// What a stored query asked for: the imprint and nonce to check its reply against again.
pub fn expected_of(query_der: &[u8]) -> Result<Expected, String> {
    let req = TimeStampReq::from_der(query_der).map_err(|e| format!("the stored query does not parse: {e}"))?;
    if req.message_imprint.hash_algorithm.oid != SHA_256 {
        return Err(format!("the stored query's imprint is not SHA-256 ({})", req.message_imprint.hash_algorithm.oid));
    }
    let sha256: [u8; 32] = req.message_imprint.hashed_message.as_bytes().try_into().map_err(|_| "the stored query's imprint is not 32 octets".to_string())?;
    let nonce = req.nonce.map(|n| n.as_bytes().to_vec()).ok_or_else(|| "the stored query has no nonce".to_string())?;
    Ok(Expected { sha256, nonce })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsp_request_is_v1_sha256_with_a_positive_nonce_and_cert_req() {
        let hash = [7u8; 32];
        for random in [0, u64::MAX, 1 << 63, 12345] {
            let q = build_with_nonce(&hash, random);
            let req = TimeStampReq::from_der(&q.der).unwrap();
            assert_eq!(req.version, TspVersion::V1);
            assert!(req.cert_req);
            assert_eq!(req.message_imprint.hash_algorithm.oid, SHA_256);
            assert_eq!(req.message_imprint.hashed_message.as_bytes(), &hash);
            let n = req.nonce.unwrap();
            assert_eq!(n.as_bytes(), q.nonce.as_slice());
            assert_eq!(q.nonce.len(), 8);
            assert!(q.nonce[0] & 0x80 == 0 && q.nonce[0] & 0x40 != 0, "positive and minimal: {:02x?}", q.nonce);
            assert_eq!(expected_of(&q.der).unwrap(), Expected { sha256: hash, nonce: q.nonce.clone() });
        }
        assert_ne!(build(&hash).nonce, build(&hash).nonce, "fresh nonces");
        assert!(expected_of(b"junk").is_err());
    }
}
