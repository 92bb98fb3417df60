//! RFC 3161 timestamps: the query we send (`request`), the HTTP client behind a trait
//! (`client`), the checks every reply passes before it is accepted (`verify`, with the
//! signing-certificate attribute in `ess` and the trust path in `chain`).
//!
//! [`Tsa`] is the configured authority as the engine and the services use it: one call,
//! [`Tsa::stamp`], sends a query for a package hash and returns the verified token or why not.
pub mod chain;
pub mod client;
mod ess;
pub mod oids;
pub mod records;
pub mod request;
pub mod verify;

use std::{sync::Arc, time::Duration};

pub use chain::TrustAnchors;
pub use client::{HttpTsaClient, TsaClient, TsaError};
pub use request::{Expected, Query};
pub use verify::{verify_reply, Refusal, Verified};

use crate::config::{Settings, TimestampFailurePolicy};

/// The configured Time-Stamp Authority.
pub struct Tsa {
    /// The URL as recorded on tokens and shown on the policy (the configuration refuses
    /// credentials in it).
    pub url: String,
    pub client: Arc<dyn TsaClient>,
    pub anchors: TrustAnchors,
    pub failure_policy: TimestampFailurePolicy,
}

/// A token obtained and verified.
#[derive(Debug, Clone)]
pub struct Stamp {
    pub query: Query,
    pub reply_der: Vec<u8>,
    pub verified: Verified,
}

/// Why no verified token was obtained; both kinds are transient for a job (another try may
/// reach the TSA, or get a sound reply).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    #[error(transparent)]
    Tsa(#[from] TsaError),
    #[error("the TSA's reply was refused: {0}")]
    Refused(#[from] Refusal),
}

impl Tsa {
    /// The TSA of `settings`, `None` when no URL is configured. Reads the trust anchors file; a
    /// missing or unreadable one stops the start (the configuration check names it).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Option<Arc<Self>>> {
        let Some(url) = &settings.tsa_url else { return Ok(None) };
        let parsed = url::Url::parse(url)?;
        let anchors = load_anchors(settings)?;
        let auth = settings.tsa_username.clone().map(|u| (u, settings.tsa_password.clone().unwrap_or_else(|| String::new().into())));
        let client = HttpTsaClient::new(
            parsed,
            auth,
            Duration::from_secs(settings.tsa_connect_timeout_seconds.into()),
            Duration::from_secs(settings.tsa_timeout_seconds.into()),
        )?;
        Ok(Some(Arc::new(Self { url: url.clone(), client: Arc::new(client), anchors, failure_policy: settings.tsa_failure_policy })))
    }

    /// Timestamps the package whose SHA-256 is `sha256`: a fresh query, the TSA's reply, every
    /// check of `verify`.
    pub async fn stamp(&self, sha256: &[u8; 32]) -> Result<Stamp, StampError> {
        let query = request::build(sha256);
        let reply_der = self.client.timestamp(&query.der).await?;
        let expected = Expected { sha256: *sha256, nonce: query.nonce.clone() };
        let verified = verify_reply(&reply_der, &expected, &self.anchors)?;
        Ok(Stamp { query, reply_der, verified })
    }
}

/// The trust anchors of `settings` (required with a TSA URL; the configuration check says so).
pub fn load_anchors(settings: &Settings) -> anyhow::Result<TrustAnchors> {
    let path = settings.tsa_trust_anchors_file.as_ref().ok_or_else(|| anyhow::anyhow!("tsa_trust_anchors_file is required with tsa_url"))?;
    let pem = std::fs::read(path).map_err(|e| anyhow::anyhow!("reading the TSA trust anchors {}: {e}", path.display()))?;
    TrustAnchors::from_pem(&pem).map_err(|e| anyhow::anyhow!("the TSA trust anchors {} {e}", path.display()))
}

/// A package hash from its hex text, as files record it.
pub fn sha256_of_hex(hex_text: &str) -> Option<[u8; 32]> {
    hex::decode(hex_text.trim()).ok()?.try_into().ok()
}
