//! Re-reading a stored object to check its fixity: the one read path that the periodic audit and
//! `verifyArchiveFile` share. It streams the object through the one hashing path
//! ([`super::hash_stream`]), optionally throttled, and says what it found — it records nothing
//! (that is `service::fixity`'s part, in one transaction with the event and the audit entry).
//!
//! What counts as a verdict on the *file*, and what is only trouble with its *backend*:
//! - the object is there and reads to the end: `OK` or `MISMATCH` (size or SHA-256 differ);
//! - the backend says the object does not exist: `MISSING`;
//! - anything else went wrong (twice in a row): the backend is probed through the one health
//!   path, which records its result. When the probe passes, the backend works and this object
//!   does not: `UNREADABLE`. When it fails, that is an outage ([`Reading::Outage`]) and nothing
//!   is said about the file: a network hiccup or a backend down for maintenance must not mark
//!   thousands of intact files as damaged. The file stays due and is checked on a later run.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{stream::BoxStream, StreamExt};
use sea_orm::DatabaseConnection;

use super::{health, StorageDriver, StorageError, StoredObject};
use crate::{
    domain::{
        fixity::{compare, TokenBucket},
        storage::redact_message,
        FixityResult, StorageDriverKind,
    },
    entity::{archive_file, storage_backend},
};

/// Attempts to read an object before its backend is probed.
const ATTEMPTS: usize = 2;

/// A verdict on one file: what was found, why (when not OK), and what was read (when it was read
/// to the end), for the re-verification of the file's timestamp tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub result: FixityResult,
    pub detail: Option<String>,
    pub read: Option<StoredObject>,
}

/// What reading a stored object for a fixity check came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    Verdict(Verdict),
    /// The backend does not answer (its health probe failed): nothing is said about the file.
    Outage(String),
}

/// The byte-rate limit of one reader, shared by the objects it reads one after another (the
/// periodic audit keeps one per backend per run, so each backend is read at most at the rate).
#[derive(Clone)]
pub struct Throttle {
    bucket: Arc<Mutex<TokenBucket>>,
    start: tokio::time::Instant,
}

impl Throttle {
    /// `bytes_per_second` 0 = unlimited.
    pub fn new(bytes_per_second: u64) -> Self {
        Self { bucket: Arc::new(Mutex::new(TokenBucket::new(bytes_per_second))), start: tokio::time::Instant::now() }
    }

    pub fn unlimited() -> Self {
        Self::new(0)
    }

    /// How long to wait before passing on `bytes` more.
    fn wait_for(&self, bytes: usize) -> Duration {
        // A poisoned lock only means another reader panicked mid-arithmetic: the bucket is
        // still a number, keep using it.
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        b.take(bytes as u64, self.start.elapsed())
    }

    /// `stream`, each chunk passed on only when the bucket allows it.
    pub fn throttle(&self, stream: BoxStream<'static, std::io::Result<Bytes>>) -> BoxStream<'static, std::io::Result<Bytes>> {
        if self.bucket.lock().unwrap_or_else(|p| p.into_inner()).unlimited() {
            return stream;
        }
        let t = self.clone();
        stream
            .then(move |chunk| {
                let wait = chunk.as_ref().map_or(Duration::ZERO, |c| t.wait_for(c.len()));
                async move {
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    chunk
                }
            })
            .boxed()
    }
}

/// Reads the stored object of `file` on `backend` through `driver` and compares it with the
/// recorded size and SHA-256. A failed read leads to a health check of the backend, recorded at
/// `now` (see the module's comment). Messages pass the backend settings' redaction.
pub async fn check(
    db: &DatabaseConnection,
    backend: &storage_backend::Model,
    driver: &dyn StorageDriver,
    file: &archive_file::Model,
    throttle: &Throttle,
    now: DateTime<Utc>,
) -> Reading {
    let redact = |m: String| match backend.driver.parse::<StorageDriverKind>() {
        Ok(kind) => redact_message(kind, &backend.settings, &m),
        Err(_) => m,
    };
    let mut error = String::new();
    for _ in 0..ATTEMPTS {
        match read(driver, file, throttle).await {
            Ok(mut v) => {
                v.detail = v.detail.map(redact);
                return Reading::Verdict(v);
            }
            Err(e) => error = redact(e),
        }
    }
    match health::check(db, backend, now).await {
        Ok(b) if b.health_reachable == Some(true) => {
            Reading::Verdict(Verdict { result: FixityResult::Unreadable, detail: Some(error), read: None })
        }
        Ok(b) => Reading::Outage(format!("{error}; the backend failed its health check too ({})", b.health_error.unwrap_or_default())),
        Err(e) => Reading::Outage(format!("{error}; recording the backend's health failed: {e}")),
    }
}

/// One attempt: a verdict, or why the object could not be read.
async fn read(driver: &dyn StorageDriver, file: &archive_file::Model, throttle: &Throttle) -> Result<Verdict, String> {
    let expected = u64::try_from(file.size_bytes).unwrap_or(0);
    let obj = match driver.get(&file.storage_key, None).await {
        Ok(o) => o,
        Err(StorageError::NotFound) => {
            return Ok(Verdict { result: FixityResult::Missing, detail: Some("the object is not in its storage backend".into()), read: None })
        }
        Err(e) => return Err(format!("opening the object: {e}")),
    };
    if obj.total_size != expected {
        // A different size is a mismatch already: no need to spend the rate on reading it.
        let detail = format!("size {} bytes, recorded {expected} (not read further)", obj.total_size);
        return Ok(Verdict { result: FixityResult::Mismatch, detail: Some(detail), read: None });
    }
    let got = super::hash_stream(throttle.throttle(obj.stream)).await.map_err(|e| format!("reading the object: {e}"))?;
    let result = match compare(expected, &file.sha256, got.size, &got.sha256) {
        None => Verdict { result: FixityResult::Ok, detail: None, read: Some(got) },
        Some(d) => Verdict { result: FixityResult::Mismatch, detail: Some(d), read: Some(got) },
    };
    Ok(result)
}
