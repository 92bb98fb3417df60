//! Talking to a Time-Stamp Authority over HTTP (RFC 3161 §3.4), behind a small trait so that the
//! pipeline, manual signing and tests share one seam.
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// Why no reply came back. Every case is worth retrying (DESIGN: a TSA outage is transient); the
/// text never holds the basic-auth password nor the URL's query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsaError {
    #[error("the TSA is unreachable: {0}")]
    Unreachable(String),
    #[error("the TSA answered HTTP {0}")]
    Status(u16),
    #[error("the TSA answered {0:?}, not application/timestamp-reply")]
    ContentType(String),
    #[error("the TSA's answer is larger than {0} bytes")]
    TooLarge(usize),
}

#[async_trait::async_trait]
pub trait TsaClient: Send + Sync {
    /// Sends a DER TimeStampReq; returns the DER TimeStampResp as received (unchecked).
    async fn timestamp(&self, query_der: &[u8]) -> Result<Vec<u8>, TsaError>;
}

/// A reply is a few kilobytes (a token and a certificate chain); more is not a TSA talking.
const MAX_REPLY: usize = 1024 * 1024;

/// The HTTP client of one TSA.
pub struct HttpTsaClient {
    http: reqwest::Client,
    url: url::Url,
    auth: Option<(String, SecretString)>,
}

impl HttpTsaClient {
    pub fn new(url: url::Url, auth: Option<(String, SecretString)>, connect_timeout: Duration, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            // A redirect would resend the query (and credentials) elsewhere: the configured URL is the TSA.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("archiving-manager/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, url, auth })
    }
}

/// The error's text with its causes, without the URL (which may carry a query the operator
/// considers private) and so without anything the request carried.
fn describe(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut text = what.to_string();
    let e = e.without_url();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[async_trait::async_trait]
impl TsaClient for HttpTsaClient {
    async fn timestamp(&self, query_der: &[u8]) -> Result<Vec<u8>, TsaError> {
        let mut req = self.http.post(self.url.clone()).header(reqwest::header::CONTENT_TYPE, "application/timestamp-query").body(query_der.to_vec());
        if let Some((user, password)) = &self.auth {
            req = req.basic_auth(user, Some(password.expose_secret()));
        }
        let mut res = req.send().await.map_err(|e| TsaError::Unreachable(describe(e)))?;
        if !res.status().is_success() {
            return Err(TsaError::Status(res.status().as_u16()));
        }
        let ct = res.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        if ct.split(';').next().map(str::trim) != Some("application/timestamp-reply") {
            return Err(TsaError::ContentType(ct.chars().take(100).collect()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| TsaError::Unreachable(describe(e)))? {
            if body.len() + chunk.len() > MAX_REPLY {
                return Err(TsaError::TooLarge(MAX_REPLY));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
