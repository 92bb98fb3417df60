//! Storage drivers: where packages are kept (local directory, S3-compatible object storage).
//!
//! Every driver keeps the same promises (DESIGN §7), checked by `tests/storage_contract.rs`:
//! - **create-only**: an existing key is never overwritten, not even with identical bytes
//!   (`StorageError::AlreadyExists`);
//! - **atomic**: no reader ever sees a partial object under its final key;
//! - **verified**: after storing, the object is read back and its SHA-256 compared with the expected
//!   one; a bad object that *this call* created is removed again (`StorageError::Integrity`);
//! - secrets in the settings never appear in errors, `Debug` output or logs.
//!
//! Keys are relative paths like `2026/11/<job-id>/<file-name>`; see [`validate_key`].
use std::{ops::Range, path::Path, sync::Arc};

use bytes::Bytes;
use futures::{stream::BoxStream, StreamExt};
use sha2::{Digest, Sha256};

use crate::domain::{Failure, StorageDriverKind};

pub mod files;
pub mod fixity;
pub mod health;
pub mod local;
pub mod s3;

pub use local::LocalDirectory;
pub use s3::S3Storage;

/// What was stored: the verified size and SHA-256 (lower-case hex) of the object as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub size: u64,
    pub sha256: String,
}

/// An object being read: its total size, the byte range served (`None` = the whole object; the
/// end is exclusive) and the bytes.
pub struct GetObject {
    pub total_size: u64,
    pub range: Option<Range<u64>>,
    pub stream: BoxStream<'static, std::io::Result<Bytes>>,
}

impl std::fmt::Debug for GetObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetObject").field("total_size", &self.total_size).field("range", &self.range).finish_non_exhaustive()
    }
}

impl GetObject {
    /// The number of bytes the stream yields.
    pub fn len(&self) -> u64 {
        match &self.range {
            Some(r) => r.end - r.start,
            None => self.total_size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The outcome of a health check: a write/read/delete probe, plus free/used space where the backend
/// tells (local directory: free space of the file system and the bytes of the files under the
/// directory; S3: the bytes of the objects under the prefix, no free space).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthReport {
    pub reachable: bool,
    pub free_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub error: Option<String>,
}

/// Why a storage operation failed. Messages never carry secrets.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The key exists already; nothing was written.
    #[error("an object with this key exists already")]
    AlreadyExists,
    #[error("no such object")]
    NotFound,
    /// Worth retrying: network trouble, timeouts, 5xx, throttling, a full disk.
    #[error("temporary storage failure: {0}")]
    Transient(String),
    /// Retrying will not help: bad settings, credentials, bucket, key or range.
    #[error("storage failure: {0}")]
    Permanent(String),
    /// The bytes are not the expected ones (SHA-256 or size mismatch).
    #[error("integrity check failed: {0}")]
    Integrity(String),
}

impl StorageError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Transient(_))
    }

    /// The failure of an operation on backend `backend`, classified once for every caller: a
    /// mismatch after a put is retried (the put starts over), and so is a missing object (it may
    /// be a moment from being visible); a conflict is not.
    pub fn failure(self, backend: &str) -> Failure {
        let on = |m: String| format!("storage backend {backend}: {m}");
        match self {
            StorageError::Transient(m) | StorageError::Integrity(m) => Failure::transient(on(m)),
            StorageError::Permanent(m) => Failure::permanent(on(m)),
            StorageError::AlreadyExists => Failure::permanent(on("the object already exists".into())),
            StorageError::NotFound => Failure::transient(on("the object is missing".into())),
        }
    }
}

#[async_trait::async_trait]
pub trait StorageDriver: Send + Sync {
    /// Stores the local file under `key`: create-only and atomic; then reads it back and compares
    /// its SHA-256 with `expected_sha256` (`Integrity` error otherwise, and the bad object is
    /// removed only if this call created it). `AlreadyExists` leaves the existing object untouched;
    /// to tell "already archived by an earlier attempt" from a real conflict, compare
    /// [`StorageDriver::checksum`] with the expected hash.
    async fn put_file(&self, key: &str, path: &Path, expected_sha256: &str) -> Result<StoredObject, StorageError>;

    /// As [`StorageDriver::put_file`], for a source that nobody writes to again (a finished
    /// staged package: written under another name, renamed into place, then only read and
    /// eventually removed). A driver may then keep the file itself instead of a copy: the local
    /// directory, on the same file system, links it under the key (and makes it read-only, which
    /// the source then is too) instead of writing and syncing its bytes a second time. The
    /// promises are the same: create-only, atomic, and the stored bytes are the expected ones.
    async fn put_immutable_file(&self, key: &str, path: &Path, expected_sha256: &str) -> Result<StoredObject, StorageError> {
        self.put_file(key, path, expected_sha256).await
    }

    /// Streams an object, optionally a byte range: `(start, Some(end))` with an inclusive end (an
    /// end past the object is clamped to its last byte), or `(start, None)` up to the end. A start
    /// at or past the end of the object is a `Permanent` error ("range not satisfiable").
    async fn get(&self, key: &str, range: Option<(u64, Option<u64>)>) -> Result<GetObject, StorageError>;

    /// The size of an object, `None` when it does not exist.
    async fn size(&self, key: &str) -> Result<Option<u64>, StorageError>;

    /// Deletes an object. Deleting a missing object succeeds (idempotent, so retries are safe).
    async fn delete(&self, key: &str) -> Result<(), StorageError>;

    /// Write/read/delete probe under a reserved `.health/` prefix; never fails, reports instead.
    async fn health(&self) -> HealthReport;

    /// Reads an object completely and returns its size and SHA-256 (e.g. to check an object that
    /// `put_file` reported as `AlreadyExists`).
    async fn checksum(&self, key: &str) -> Result<StoredObject, StorageError> {
        let obj = self.get(key, None).await?;
        hash_stream(obj.stream).await.map_err(|e| StorageError::Transient(format!("reading the object back: {e}")))
    }
}

/// Builds a driver from a `storage_backend` row's driver kind and settings JSON.
///
/// - `LOCAL_DIRECTORY`: `{"path": "/abs/dir"}` (the directory is created if missing).
/// - `S3`: `{"bucket", "region", "endpoint", "access_key_id", "secret_access_key", "session_token",
///   "prefix", "allow_http", ...}`; see [`s3::S3Storage::from_settings`].
pub fn open(kind: StorageDriverKind, settings: &serde_json::Value) -> Result<Arc<dyn StorageDriver>, StorageError> {
    Ok(match kind {
        StorageDriverKind::LocalDirectory => Arc::new(LocalDirectory::from_settings(settings)?),
        StorageDriverKind::S3 => Arc::new(S3Storage::from_settings(settings)?),
    })
}

/// The longest key accepted (S3's limit is 1024 bytes, the prefix included).
pub const MAX_KEY_LEN: usize = 900;

/// Checks a key: a relative `/`-separated path whose segments are non-empty and do not start with
/// a dot (so `.`, `..` and the drivers' reserved names such as `.tmp-*`, `.tmp/` and `.health/`
/// are impossible), with no backslash and no control character. Defence in depth: the engine builds
/// keys itself.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let bad = |why: &str| Err(StorageError::Permanent(format!("invalid storage key {key:?}: {why}")));
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("too long");
    }
    if key.starts_with('/') {
        return bad("absolute");
    }
    if key.contains('\\') {
        return bad("contains a backslash");
    }
    if key.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return bad("empty path segment");
        }
        if segment == ".." || segment == "." {
            return bad("contains `..` or `.`");
        }
        if segment.starts_with('.') {
            return bad("a path segment starts with a dot (reserved)");
        }
    }
    Ok(())
}

/// Checks and normalizes an expected SHA-256 (64 hex digits) to lower case.
pub(crate) fn normalize_sha256(expected: &str) -> Result<String, StorageError> {
    if expected.len() == 64 && expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(expected.to_ascii_lowercase())
    } else {
        Err(StorageError::Permanent("the expected SHA-256 must be 64 hex digits".into()))
    }
}

/// SHA-256 of some bytes, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Size and SHA-256 of what a reader yields: the one way a local file is hashed (the local
/// driver's read-back, the engine's check of staged packages).
pub fn hash_reader(mut r: impl std::io::Read) -> std::io::Result<StoredObject> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let mut size = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(StoredObject { size, sha256: hex::encode(hasher.finalize()) })
}

/// [`hash_reader`] of the file at `path`, off the async threads.
pub async fn hash_path(path: &Path) -> std::io::Result<StoredObject> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || hash_reader(std::fs::File::open(path)?)).await.map_err(std::io::Error::other)?
}

/// Reads a stream to its end, hashing it.
pub async fn hash_stream(mut stream: BoxStream<'static, std::io::Result<Bytes>>) -> std::io::Result<StoredObject> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok(StoredObject { size, sha256: hex::encode(hasher.finalize()) })
}

/// The inclusive-end range of the trait as a half-open range within `total` bytes, or the
/// "not satisfiable" error.
pub(crate) fn resolve_range(range: (u64, Option<u64>), total: u64) -> Result<Range<u64>, StorageError> {
    let (start, end) = range;
    if let Some(end) = end {
        if end < start {
            return Err(StorageError::Permanent(format!("invalid range {start}-{end}")));
        }
    }
    if start >= total {
        return Err(StorageError::Permanent(format!("range not satisfiable: starts at {start}, object has {total} bytes")));
    }
    let end_excl = match end {
        Some(end) => end.saturating_add(1).min(total),
        None => total,
    };
    Ok(start..end_excl)
}

/// Bounds a message's length (error bodies of remote stores can be long).
pub(crate) fn truncate_message(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_keys_are_validated() {
        for ok in ["a", "2026/11/0f1e/quiz-12.zip", "a/b/c d é.tar.zst", "x/a..b"] {
            assert!(validate_key(ok).is_ok(), "{ok} should be accepted");
        }
        for bad in [
            "", "/abs", "a/../b", "..", "../x", "a/./b", "a//b", "a/", "a\\b", "a/.tmp-x", ".health/p", "a\0b", "a\nb",
        ] {
            assert!(matches!(validate_key(bad), Err(StorageError::Permanent(_))), "{bad:?} should be rejected");
        }
        assert!(validate_key(&"a".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn storage_ranges_resolve() {
        assert_eq!(resolve_range((0, Some(0)), 10).unwrap(), 0..1);
        assert_eq!(resolve_range((2, Some(5)), 10).unwrap(), 2..6);
        assert_eq!(resolve_range((2, None), 10).unwrap(), 2..10);
        assert_eq!(resolve_range((2, Some(100)), 10).unwrap(), 2..10);
        assert_eq!(resolve_range((9, Some(u64::MAX)), 10).unwrap(), 9..10);
        assert!(resolve_range((10, None), 10).is_err());
        assert!(resolve_range((0, None), 0).is_err());
        assert!(resolve_range((5, Some(4)), 10).is_err());
    }

    #[test]
    fn storage_sha256_is_normalized() {
        let h = sha256_hex(b"abc");
        assert_eq!(normalize_sha256(&h.to_uppercase()).unwrap(), h);
        assert!(normalize_sha256("abc").is_err());
        assert!(normalize_sha256(&"g".repeat(64)).is_err());
    }

    #[test]
    fn storage_messages_are_truncated_on_char_boundaries() {
        assert_eq!(truncate_message("ééé".into(), 3), "é…");
        assert_eq!(truncate_message("abc".into(), 5), "abc");
    }
}
