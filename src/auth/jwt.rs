//! Bearer JWTs: verification with a pinned algorithm, issuer and audience; minting for the CLI.
use std::{
    fs,
    io::Write,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use base64::Engine;
use jsonwebtoken::{decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{Principal, Role};
use crate::config::{JwtAlgorithm, Settings};

/// The claims we read and write. Scopes are LMS ids.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub courses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

pub struct JwtKeys {
    algorithm: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

/// Name of the generated secret inside the data directory.
pub const SECRET_FILE: &str = "jwt-secret";

/// The configured HS256 secret, or the one generated on first start (owner-only permissions).
fn hs256_secret(settings: &Settings) -> anyhow::Result<SecretString> {
    if let Some(s) = &settings.jwt_secret {
        return Ok(s.clone());
    }
    let path = settings.data_dir.join(SECRET_FILE);
    if path.exists() {
        let s = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let s = s.trim().to_string();
        anyhow::ensure!(s.len() >= 32, "{} holds too short a secret: delete it to generate a new one", path.display());
        return Ok(SecretString::from(s));
    }
    fs::create_dir_all(&settings.data_dir).with_context(|| format!("creating {}", settings.data_dir.display()))?;
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    write_private(&path, secret.as_bytes())?;
    tracing::info!(path = %path.display(), "generated a new JWT secret");
    Ok(SecretString::from(secret))
}

/// Creates `path` readable by its owner only; refuses to replace an existing file.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl JwtKeys {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let (algorithm, decoding, encoding) = match settings.jwt_algorithm {
            JwtAlgorithm::HS256 => {
                let secret = hs256_secret(settings)?;
                let bytes = secret.expose_secret().as_bytes();
                (Algorithm::HS256, DecodingKey::from_secret(bytes), Some(EncodingKey::from_secret(bytes)))
            }
            alg @ (JwtAlgorithm::RS256 | JwtAlgorithm::EdDSA) => {
                let path = settings.jwt_public_key_file.as_ref().context("jwt_public_key_file is required")?;
                let pem = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let private = match &settings.jwt_private_key_file {
                    Some(p) => Some(fs::read(p).with_context(|| format!("reading {}", p.display()))?),
                    None => None,
                };
                let bad = |what: &str| format!("setting `{what}`: not a valid PEM key for {alg:?}");
                if alg == JwtAlgorithm::RS256 {
                    let enc = private.map(|k| EncodingKey::from_rsa_pem(&k)).transpose().with_context(|| bad("jwt_private_key_file"))?;
                    (Algorithm::RS256, DecodingKey::from_rsa_pem(&pem).with_context(|| bad("jwt_public_key_file"))?, enc)
                } else {
                    let enc = private.map(|k| EncodingKey::from_ed_pem(&k)).transpose().with_context(|| bad("jwt_private_key_file"))?;
                    (Algorithm::EdDSA, DecodingKey::from_ed_pem(&pem).with_context(|| bad("jwt_public_key_file"))?, enc)
                }
            }
        };
        // Only the configured algorithm is accepted: no `none`, no HS256-with-the-public-key confusion.
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&settings.jwt_issuer]);
        validation.set_audience(&[&settings.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        Ok(Self {
            algorithm,
            decoding,
            encoding,
            validation,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
        })
    }

    /// Verifies a bearer token. The error is a reason a client may see; it never echoes the token.
    pub fn verify(&self, token: &str) -> Result<Principal, String> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::ImmatureSignature => "token not yet valid",
                ErrorKind::InvalidIssuer => "token has the wrong issuer",
                ErrorKind::InvalidAudience => "token has the wrong audience",
                ErrorKind::InvalidAlgorithm => "token algorithm not accepted",
                ErrorKind::InvalidSignature => "token signature invalid",
                ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
                _ => "token invalid",
            }
            .to_string()
        })?;
        let c = data.claims;
        let roles = c
            .roles
            .iter()
            .map(|r| r.parse::<Role>().map_err(|_| "token names an unknown role".to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if c.sub.trim().is_empty() {
            return Err("token subject is empty".into());
        }
        Ok(Principal { subject: c.sub, roles, courses: c.courses, categories: c.categories })
    }

    /// Mints a token for `principal` valid for `ttl`. Needs a signing key (the HS256 secret, or
    /// `jwt_private_key_file` for RS256/EdDSA).
    pub fn mint(&self, principal: &Principal, ttl: Duration) -> anyhow::Result<String> {
        let key = self.encoding.as_ref().context(
            "no signing key: set jwt_private_key_file (ARCHIVING_JWT_PRIVATE_KEY_FILE) to mint RS256/EdDSA tokens",
        )?;
        let iat = now();
        let claims = Claims {
            sub: principal.subject.clone(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: iat + ttl.as_secs(),
            iat,
            nbf: Some(iat),
            roles: principal.roles.iter().map(|r| r.to_string()).collect(),
            courses: principal.courses.clone(),
            categories: principal.categories.clone(),
        };
        Ok(encode(&Header::new(self.algorithm), &claims, key)?)
    }
}
