//! The S3-compatible driver, through `object_store`.
//!
//! Create-only and atomic:
//! - files up to `multipart_threshold_bytes` (default 16 MiB): one `PutObject` with
//!   `If-None-Match: *` (`PutMode::Create`); S3 publishes an object atomically when the request
//!   completes and answers 412 if the key exists.
//! - larger files are streamed (never held in memory) as a multipart upload to a private temporary
//!   key `<prefix>.tmp/<uuid>` (a multipart upload is invisible until completed; the temporary key
//!   can never collide with a valid key because key segments may not start with a dot). The
//!   temporary object is then copied to the final key with `copy_if_not_exists`, which
//!   `object_store` implements for S3 as a one-part `UploadPartCopy` completed with
//!   `If-None-Match: *`, and is deleted. `object_store` cannot complete an ordinary multipart
//!   upload conditionally, hence the detour. AWS limits one copied part to 5 GiB, so larger
//!   objects are refused up front (`max_object_bytes`). Give the bucket a lifecycle rule that
//!   expires `.tmp/` objects and aborts incomplete multipart uploads after a day: a crash between
//!   upload and copy leaves such garbage behind (never a visible partial object).
//! - a 412 can also be the answer to a retried request of our own that had succeeded; a single
//!   put therefore carries a random `x-amz-meta-archiving-write-id` that tells our object from
//!   someone else's.
//! - creators of one key within this process take turns (a per-key lock); across processes the
//!   store's atomic conditional writes decide. moto 5.2.5 honours `If-None-Match: *` on PutObject
//!   and on CompleteMultipartUpload, but checks and then writes without a lock: concurrent
//!   conditional completes can all "win" there (observed). AWS S3 does not have that flaw.
//!
//! Afterwards the object is read back and hashed; a bad object is deleted only if it provably is
//! ours (it carries our write id), never on a guess. On `AlreadyExists` a caller that wants to know
//! whether the existing object is the one it meant to store (a retry after a crash) compares
//! `checksum()` with its own hash. Secrets (access key id, secret key, session
//! token) are held in `SecretString`s, left out of `Debug` and scrubbed from every error message.
use std::{fmt, path::Path as FsPath, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{
    aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut, S3CopyIfNotExists},
    path::Path,
    Attribute, Attributes, BackoffConfig, ClientOptions, CopyMode, CopyOptions, GetOptions, GetRange, ObjectStore,
    ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{
    hash_stream, normalize_sha256, truncate_message, validate_key, GetObject, HealthReport, StorageDriver, StorageError,
    StoredObject,
};

const MIB: u64 = 1024 * 1024;
/// The smallest part S3 accepts (except the last).
const MIN_PART: u64 = 5 * MIB;
const WRITE_ID: &str = "archiving-write-id";
const READ_CHUNK: usize = 1024 * 1024;
const UPLOAD_CONCURRENCY: usize = 4;

/// Scrubs secrets out of messages.
#[derive(Clone, Default)]
struct Redactor(Arc<Vec<SecretString>>);

impl Redactor {
    fn redact(&self, msg: impl Into<String>) -> String {
        let mut msg = msg.into();
        for s in self.0.iter() {
            let s = s.expose_secret();
            if s.len() >= 4 {
                msg = msg.replace(s, "***");
            }
        }
        truncate_message(msg, 1000)
    }
}

pub struct S3Storage {
    store: AmazonS3,
    /// The same bucket with short timeouts and no retries, for the health probe (built when needed:
    /// building a client costs time, and most drivers are opened to serve one download).
    probe: AmazonS3Builder,
    bucket: String,
    endpoint: Option<String>,
    prefix: String,
    multipart_threshold: u64,
    part_size: usize,
    max_object: u64,
    redactor: Redactor,
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Storage")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .field("credentials", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Reads settings one field at a time so that a message never quotes a value (it could be a
/// secret in the wrong field).
struct Fields<'a>(&'a serde_json::Map<String, Value>);

impl Fields<'_> {
    fn string(&self, name: &str) -> Result<Option<String>, StorageError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(StorageError::Permanent(format!("S3 setting `{name}` must be a string"))),
        }
    }

    fn secret(&self, name: &str) -> Result<Option<SecretString>, StorageError> {
        Ok(self.string(name)?.map(SecretString::from))
    }

    fn boolean(&self, name: &str) -> Result<Option<bool>, StorageError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(StorageError::Permanent(format!("S3 setting `{name}` must be true or false"))),
        }
    }

    fn number(&self, name: &str) -> Result<Option<u64>, StorageError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| StorageError::Permanent(format!("S3 setting `{name}` must be a non-negative integer"))),
        }
    }
}

impl S3Storage {
    /// From settings:
    /// `{"bucket": "b", "region": "us-east-1", "endpoint": "http://127.0.0.1:9000",
    /// "access_key_id": "...", "secret_access_key": "...", "session_token": "...",
    /// "prefix": "optional/", "allow_http": false, "virtual_hosted_style": false,
    /// "multipart_threshold_bytes": 16777216, "part_size_bytes": 16777216,
    /// "max_object_bytes": 5368709120, "max_retries": 5, "request_timeout_secs": 300,
    /// "connect_timeout_secs": 10, "copy_if_not_exists": "multipart"}`.
    /// Only `bucket` is required. Without keys, `object_store`'s instance-metadata credentials apply.
    pub fn from_settings(settings: &Value) -> Result<Self, StorageError> {
        let map = settings.as_object().ok_or_else(|| StorageError::Permanent("S3 settings must be a JSON object".into()))?;
        let f = Fields(map);
        let bucket = f.string("bucket")?.ok_or_else(|| StorageError::Permanent("S3 settings need `bucket`".into()))?;
        let region = f.string("region")?.unwrap_or_else(|| "us-east-1".into());
        let endpoint = f.string("endpoint")?;
        if let Some(e) = &endpoint {
            let url = url::Url::parse(e).map_err(|_| StorageError::Permanent("S3 setting `endpoint` is not a URL".into()))?;
            if !url.username().is_empty() || url.password().is_some() {
                return Err(StorageError::Permanent("S3 setting `endpoint` must not contain credentials".into()));
            }
        }
        let key_id = f.secret("access_key_id")?;
        let secret = f.secret("secret_access_key")?;
        let token = f.secret("session_token")?;
        if key_id.is_some() != secret.is_some() {
            return Err(StorageError::Permanent("S3 settings need both `access_key_id` and `secret_access_key`, or neither".into()));
        }
        let prefix = match f.string("prefix")? {
            None => String::new(),
            Some(p) => {
                let p = p.trim_matches('/');
                if p.is_empty() {
                    String::new()
                } else {
                    validate_key(p).map_err(|_| StorageError::Permanent("S3 setting `prefix` is not a valid relative path".into()))?;
                    format!("{p}/")
                }
            }
        };
        let allow_http = f.boolean("allow_http")?.unwrap_or(false);
        let virtual_hosted = f.boolean("virtual_hosted_style")?.unwrap_or(false);
        let part_size = f.number("part_size_bytes")?.unwrap_or(16 * MIB).clamp(MIN_PART, 4096 * MIB);
        let multipart_threshold = f.number("multipart_threshold_bytes")?.unwrap_or(16 * MIB);
        let max_object = f.number("max_object_bytes")?.unwrap_or(5 * 1024 * MIB);
        let max_retries = f.number("max_retries")?.unwrap_or(5) as usize;
        let request_timeout = Duration::from_secs(f.number("request_timeout_secs")?.unwrap_or(300).max(1));
        let connect_timeout = Duration::from_secs(f.number("connect_timeout_secs")?.unwrap_or(10).max(1));
        let copy_if_not_exists = f.string("copy_if_not_exists")?;

        let redactor = Redactor(Arc::new([&key_id, &secret, &token].into_iter().flatten().cloned().collect()));
        let builder = |retry: RetryConfig, client: ClientOptions| -> AmazonS3Builder {
            let mut b = AmazonS3Builder::new()
                .with_bucket_name(&bucket)
                .with_region(&region)
                .with_client_options(client)
                .with_allow_http(allow_http)
                .with_virtual_hosted_style_request(virtual_hosted)
                .with_conditional_put(S3ConditionalPut::ETagMatch)
                .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
                .with_retry(retry);
            if let Some(c) = &copy_if_not_exists {
                b = b.with_config(AmazonS3ConfigKey::CopyIfNotExists, c);
            }
            if let Some(e) = &endpoint {
                b = b.with_endpoint(e);
            }
            if let (Some(k), Some(s)) = (&key_id, &secret) {
                b = b.with_access_key_id(k.expose_secret()).with_secret_access_key(s.expose_secret());
            }
            if let Some(t) = &token {
                b = b.with_token(t.expose_secret());
            }
            b
        };
        let build = |b: AmazonS3Builder| b.build().map_err(|e| StorageError::Permanent(redactor.redact(format!("invalid S3 settings: {e}"))));
        let store = build(builder(
            RetryConfig { backoff: BackoffConfig::default(), max_retries, retry_timeout: Duration::from_secs(180) },
            ClientOptions::new().with_timeout(request_timeout).with_connect_timeout(connect_timeout),
        ))?;
        let probe = builder(
            RetryConfig { backoff: BackoffConfig::default(), max_retries: 0, retry_timeout: Duration::from_secs(10) },
            ClientOptions::new().with_timeout(Duration::from_secs(15)).with_connect_timeout(Duration::from_secs(5)),
        );
        Ok(Self {
            store,
            probe,
            bucket,
            endpoint,
            prefix,
            multipart_threshold,
            part_size: part_size as usize,
            max_object,
            redactor,
        })
    }

    fn location(&self, key: &str) -> Result<Path, StorageError> {
        validate_key(key)?;
        self.reserved(key)
    }

    /// A path under the prefix without the key checks (for the driver's own `.tmp/` and `.health/`).
    fn reserved(&self, rel: &str) -> Result<Path, StorageError> {
        Path::parse(format!("{}{rel}", self.prefix)).map_err(|e| StorageError::Permanent(format!("invalid object path: {e}")))
    }

    /// The sum of the sizes of the objects under the prefix (the whole bucket without one), listed
    /// page by page; `None` when the listing fails (the probe itself decides reachability). S3
    /// tells no free space.
    async fn used_bytes(&self, store: &AmazonS3) -> Option<u64> {
        let prefix = self.prefix.trim_end_matches('/');
        let prefix = if prefix.is_empty() { None } else { Some(Path::parse(prefix).ok()?) };
        let mut total = 0u64;
        let mut listing = store.list(prefix.as_ref());
        while let Some(meta) = listing.next().await {
            match meta {
                Ok(m) => total = total.saturating_add(m.size),
                Err(e) => {
                    tracing::warn!(bucket = %self.bucket, error = %self.redactor.redact(e.to_string()), "S3: listing the objects for used bytes failed");
                    return None;
                }
            }
        }
        Some(total)
    }

    fn error(&self, e: object_store::Error) -> StorageError {
        map_error(&self.redactor, e)
    }

    /// Decides what an "already exists" answer means: someone else's object (`AlreadyExists`), our
    /// own from a retried request (`Ok`), or a conflicting concurrent write that left nothing
    /// (`Transient`, retry).
    async fn resolve_conflict(&self, location: &Path, write_id: Option<&str>) -> Result<(), StorageError> {
        match self.store.get_opts(location, GetOptions { head: true, ..Default::default() }).await {
            Ok(r) => {
                let theirs = r.attributes.get(&Attribute::Metadata(WRITE_ID.into())).map(|v| v.as_ref().to_string());
                match (write_id, theirs) {
                    (Some(ours), Some(theirs)) if ours == theirs => Ok(()),
                    _ => Err(StorageError::AlreadyExists),
                }
            }
            Err(object_store::Error::NotFound { .. }) => {
                Err(StorageError::Transient("the store reported a conflicting write but holds no object; retry".into()))
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// One conditional `PutObject`; returns the write id the object carries.
    async fn put_small(&self, location: &Path, file: &FsPath, expected: &str) -> Result<String, StorageError> {
        let data = tokio::fs::read(file).await.map_err(|e| source_error(file, e))?;
        let sha = super::sha256_hex(&data);
        if sha != expected {
            return Err(StorageError::Integrity(format!("the source has SHA-256 {sha}, expected {expected}")));
        }
        let write_id = uuid::Uuid::new_v4().simple().to_string();
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::Metadata(WRITE_ID.into()), write_id.clone().into());
        let opts = PutOptions { mode: PutMode::Create, attributes, ..Default::default() };
        match self.store.put_opts(location, PutPayload::from(Bytes::from(data)), opts).await {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => self.resolve_conflict(location, Some(&write_id)).await?,
            Err(e) => return Err(self.error(e)),
        }
        Ok(write_id)
    }

    /// Streams `file` into a multipart upload at `temp`, hashing it; completes the upload only if
    /// the hash is the expected one.
    async fn upload_temp(&self, temp: &Path, file: &FsPath, expected: &str) -> Result<(), StorageError> {
        let mut source = tokio::fs::File::open(file).await.map_err(|e| source_error(file, e))?;
        let upload = self.store.put_multipart(temp).await.map_err(|e| self.error(e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; READ_CHUNK];
        let streamed: Result<(), StorageError> = async {
            loop {
                let n = source.read(&mut buf).await.map_err(|e| source_error(file, e))?;
                if n == 0 {
                    return Ok(());
                }
                hasher.update(&buf[..n]);
                // Bounds memory: at most UPLOAD_CONCURRENCY parts in flight plus the one filling.
                writer.wait_for_capacity(UPLOAD_CONCURRENCY).await.map_err(|e| self.error(e))?;
                writer.write(&buf[..n]);
            }
        }
        .await;
        if let Err(e) = streamed {
            let _ = writer.abort().await;
            return Err(e);
        }
        let sha = hex::encode(hasher.finalize());
        if sha != expected {
            let _ = writer.abort().await;
            return Err(StorageError::Integrity(format!("the source has SHA-256 {sha}, expected {expected}")));
        }
        writer.finish().await.map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn put_large(&self, location: &Path, file: &FsPath, expected: &str) -> Result<(), StorageError> {
        let temp = self.reserved(&format!(".tmp/{}", uuid::Uuid::new_v4().simple()))?;
        let result = async {
            self.upload_temp(&temp, file, expected).await?;
            match self.store.copy_opts(&temp, location, CopyOptions { mode: CopyMode::Create, ..Default::default() }).await {
                Ok(()) => Ok(()),
                Err(object_store::Error::AlreadyExists { .. }) => self.resolve_conflict(location, None).await,
                Err(e) => Err(self.error(e)),
            }
        }
        .await;
        // Best effort: the temporary object is garbage whatever happened (lifecycle rules catch
        // what a crash leaves).
        if let Err(e) = self.store.delete(&temp).await {
            tracing::warn!(bucket = %self.bucket, temp = %temp, error = %self.redactor.redact(e.to_string()), "could not delete a temporary S3 object");
        }
        result
    }

    /// Reads the freshly created object back and compares size and SHA-256. On a mismatch the
    /// object is removed only if it is provably ours: it carries our write id (single puts). After
    /// a streamed put (the copy carries no metadata) ownership cannot be proven, so a bad object is
    /// left in place and reported. An object with another write id is someone else's: then the
    /// store did not honour create-only (a real S3 never does that), and the answer is
    /// `AlreadyExists`. A read failure is retried a few times before giving up as `Transient` (the
    /// object then stays: it is complete, only unverified; `checksum` can verify it later).
    async fn verify_created(&self, location: &Path, expected: &str, size: u64, write_id: Option<&str>) -> Result<StoredObject, StorageError> {
        let mut last = None;
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            let read = match self.store.get(location).await {
                Ok(r) => {
                    let found_id = r.attributes.get(&Attribute::Metadata(WRITE_ID.into())).map(|v| v.as_ref().to_string());
                    let redactor = self.redactor.clone();
                    hash_stream(r.into_stream().map_err(move |e| std::io::Error::other(redactor.redact(e.to_string()))).boxed())
                        .await
                        .map(|stored| (stored, found_id))
                        .map_err(|e| StorageError::Transient(format!("reading the object back: {e}")))
                }
                Err(e) => Err(self.error(e)),
            };
            match read {
                Ok((stored, found_id)) => {
                    let ours = match (write_id, found_id.as_deref()) {
                        (Some(mine), Some(found)) => Some(mine == found),
                        (Some(_), None) => Some(false),
                        (None, _) => None,
                    };
                    if ours == Some(false) {
                        tracing::error!(bucket = %self.bucket, key = %location, "S3: after a conditional create the key holds another writer's object");
                        return Err(StorageError::AlreadyExists);
                    }
                    if stored.sha256 == expected && stored.size == size {
                        return Ok(stored);
                    }
                    let what = format!("read back {} bytes with SHA-256 {}, expected {size} bytes with {expected}", stored.size, stored.sha256);
                    if ours == Some(true) {
                        let removed = self.store.delete(location).await;
                        return Err(StorageError::Integrity(format!(
                            "{what}; {}",
                            if removed.is_ok() { "the object was removed" } else { "removing the object failed" }
                        )));
                    }
                    return Err(StorageError::Integrity(format!("{what}; the object was left in place (it cannot be proven to be ours)")));
                }
                Err(e @ StorageError::Transient(_)) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }
}

/// A lock per object (endpoint, bucket and path) shared by every driver instance in this process.
/// Across processes create-only rests on the store's atomic conditional writes (AWS S3 guarantees
/// them); within one process, taking turns spares the losers a useless upload and keeps the
/// guarantee even on stores whose conditional writes race (moto's do: it checks, then writes).
fn key_lock(id: &str) -> Arc<tokio::sync::Mutex<()>> {
    use std::{
        collections::HashMap,
        sync::{Mutex, Weak},
    };
    static LOCKS: Mutex<Option<HashMap<String, Weak<tokio::sync::Mutex<()>>>>> = Mutex::new(None);
    let mut guard = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    if let Some(lock) = map.get(id).and_then(Weak::upgrade) {
        return lock;
    }
    map.retain(|_, w| w.strong_count() > 0);
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    map.insert(id.to_string(), Arc::downgrade(&lock));
    lock
}

fn source_error(file: &FsPath, e: std::io::Error) -> StorageError {
    let msg = format!("reading the source file {}: {e}", file.display());
    match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::IsADirectory => {
            StorageError::Permanent(msg)
        }
        _ => StorageError::Transient(msg),
    }
}

/// Shortens an S3 XML error body in a message to `Code: Message`.
fn tidy(text: &str) -> String {
    let Some(xml) = text.find("<?xml").or_else(|| text.find("<Error>")) else { return text.to_string() };
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text[xml..].find(&open)? + xml + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{}{code}: {message}", &text[..xml]),
        (Some(code), None) => format!("{}{code}", &text[..xml]),
        _ => text.to_string(),
    }
}

/// The HTTP status in an `object_store` error message ("... status code: 503 Service Unavailable ...").
fn status_in(text: &str) -> Option<u16> {
    let rest = &text[text.find("status code: ")? + "status code: ".len()..];
    rest.get(..3)?.parse().ok()
}

/// Maps an `object_store` error: network failures, timeouts, 5xx, 429 and 408 are `Transient`;
/// authentication, permissions, a missing bucket, bad settings and other 4xx are `Permanent`.
fn map_error(redactor: &Redactor, e: object_store::Error) -> StorageError {
    use object_store::Error as E;
    let text = tidy(&e.to_string());
    let msg = || redactor.redact(text.clone());
    match &e {
        E::NotFound { .. } if text.contains("NoSuchBucket") => StorageError::Permanent(msg()),
        E::NotFound { .. } => StorageError::NotFound,
        E::AlreadyExists { .. } | E::Precondition { .. } => StorageError::AlreadyExists,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => StorageError::Permanent(msg()),
        E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::InvalidPath { .. }
        | E::UnknownConfigurationKey { .. }
        | E::NotModified { .. } => StorageError::Permanent(msg()),
        E::JoinError { .. } => StorageError::Transient(msg()),
        _ => {
            let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            let mut request = false;
            while let Some(err) = cur {
                if err.downcast_ref::<object_store::client::HttpError>().is_some() || err.downcast_ref::<std::io::Error>().is_some() {
                    return StorageError::Transient(msg());
                }
                let t = err.to_string();
                if let Some(code) = status_in(&t) {
                    return if code >= 500 || code == 429 || code == 408 {
                        StorageError::Transient(msg())
                    } else if code == 416 {
                        StorageError::Permanent(redactor.redact(format!("range not satisfiable: {text}")))
                    } else {
                        StorageError::Permanent(msg())
                    };
                }
                if t.contains("Server returned error response") {
                    // A 200 carrying an S3 error body (InternalError, SlowDown).
                    return StorageError::Transient(msg());
                }
                request |= t.starts_with("Error performing");
                cur = err.source();
            }
            if request && !text.contains("redirect") {
                StorageError::Transient(msg())
            } else {
                StorageError::Permanent(msg())
            }
        }
    }
}

#[async_trait::async_trait]
impl StorageDriver for S3Storage {
    async fn put_file(&self, key: &str, path: &FsPath, expected_sha256: &str) -> Result<StoredObject, StorageError> {
        let location = self.location(key)?;
        let expected = normalize_sha256(expected_sha256)?;
        let size = tokio::fs::metadata(path).await.map_err(|e| source_error(path, e))?.len();
        if size > self.max_object {
            return Err(StorageError::Permanent(format!(
                "the file has {size} bytes; this S3 backend takes at most {} bytes per object (`max_object_bytes`)",
                self.max_object
            )));
        }
        // Creators of one key in this process take turns (see `key_lock`).
        let lock = key_lock(&format!("{}|{}|{location}", self.endpoint.as_deref().unwrap_or(""), self.bucket));
        let _turn = lock.lock().await;
        // Cheap early answer, so that a retried job does not upload gigabytes only to be refused;
        // the conditional write below is what guarantees create-only.
        if self.size(key).await?.is_some() {
            return Err(StorageError::AlreadyExists);
        }
        let write_id = if size <= self.multipart_threshold {
            Some(self.put_small(&location, path, &expected).await?)
        } else {
            self.put_large(&location, path, &expected).await?;
            None
        };
        self.verify_created(&location, &expected, size, write_id.as_deref()).await
    }

    async fn get(&self, key: &str, range: Option<(u64, Option<u64>)>) -> Result<GetObject, StorageError> {
        let location = self.location(key)?;
        let get_range = match range {
            None => None,
            Some((start, Some(end))) if end < start => return Err(StorageError::Permanent(format!("invalid range {start}-{end}"))),
            Some((start, Some(end))) => Some(GetRange::Bounded(start..end.saturating_add(1))),
            Some((start, None)) => Some(GetRange::Offset(start)),
        };
        let ranged = get_range.is_some();
        let result = self.store.get_opts(&location, GetOptions { range: get_range, ..Default::default() }).await.map_err(|e| self.error(e))?;
        let total_size = result.meta.size;
        let served = result.range.clone();
        let redactor = self.redactor.clone();
        let stream = result.into_stream().map_err(move |e| std::io::Error::other(redactor.redact(e.to_string()))).boxed();
        Ok(GetObject { total_size, range: ranged.then_some(served), stream })
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let location = self.location(key)?;
        match self.store.head(&location).await {
            Ok(meta) => Ok(Some(meta.size)),
            // (A HEAD cannot tell a missing bucket from a missing key: both are a bodiless 404.)
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let location = self.location(key)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn health(&self) -> HealthReport {
        let probe = async {
            let probe = self.probe.clone().build().map_err(|e| StorageError::Permanent(self.redactor.redact(format!("invalid S3 settings: {e}"))))?;
            let location = self.reserved(&format!(".health/probe-{}", uuid::Uuid::new_v4().simple()))?;
            let content = Bytes::from(format!("archiving-manager health probe {location}"));
            let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
            probe.put_opts(&location, PutPayload::from(content.clone()), opts).await.map_err(|e| self.error(e))?;
            let read = async { probe.get(&location).await?.bytes().await }.await;
            let deleted = probe.delete(&location).await;
            let read = read.map_err(|e| self.error(e))?;
            deleted.map_err(|e| self.error(e))?;
            if read != content {
                return Err(StorageError::Integrity("the health probe read back different bytes".into()));
            }
            Ok::<_, StorageError>(self.used_bytes(&probe).await)
        };
        match probe.await {
            Ok(used) => HealthReport { reachable: true, free_bytes: None, used_bytes: used, error: None },
            Err(e) => HealthReport { reachable: false, free_bytes: None, used_bytes: None, error: Some(self.redactor.redact(e.to_string())) },
        }
    }
}

/// The tests' moto helper (a real S3-compatible server on loopback), and the lookup of the pinned
/// Python tools it uses (as `super::py`).
#[cfg(test)]
#[path = "../../tests/common/py.rs"]
mod py;
#[cfg(test)]
#[path = "../../tests/common/moto.rs"]
mod test_moto;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_s3_settings_are_checked_without_quoting_values() {
        let secret = "sEcReT-value-1234567890";
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"bucket": 5}),
            serde_json::json!({"bucket": "b", "access_key_id": "AKIA"}),
            serde_json::json!({"bucket": "b", "endpoint": format!("http://user:{secret}@127.0.0.1:1")}),
            serde_json::json!({"bucket": "b", "allow_http": secret}),
            serde_json::json!({"bucket": "b", "max_retries": secret}),
            serde_json::json!({"bucket": "b", "prefix": "../x"}),
        ] {
            let err = S3Storage::from_settings(&bad).unwrap_err();
            assert!(matches!(err, StorageError::Permanent(_)), "{bad}: {err:?}");
            assert!(!format!("{err} {err:?}").contains(secret), "{err}");
        }
    }

    #[test]
    fn storage_s3_debug_hides_credentials() {
        let s = S3Storage::from_settings(&serde_json::json!({
            "bucket": "b", "endpoint": "http://127.0.0.1:1", "allow_http": true,
            "access_key_id": "AKIAEXAMPLEKEYID", "secret_access_key": "very-secret-key-value", "session_token": "session-token-value",
            "prefix": "/archives/"
        }))
        .unwrap();
        let dbg = format!("{s:?}");
        for secret in ["AKIAEXAMPLEKEYID", "very-secret-key-value", "session-token-value"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
        assert_eq!(s.prefix, "archives/");
        assert_eq!(s.location("2026/x.zip").unwrap().as_ref(), "archives/2026/x.zip");
        assert!(s.location("../x").is_err());
        assert_eq!(s.redactor.redact("key very-secret-key-value and AKIAEXAMPLEKEYID"), "key *** and ***");
    }

    #[test]
    fn storage_s3_error_bodies_are_shortened() {
        let raw = "Error performing PUT http://h/b/x in 4ms - Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>b</BucketName></Error>";
        assert_eq!(
            tidy(raw),
            "Error performing PUT http://h/b/x in 4ms - Server returned non-2xx status code: 404 Not Found: NoSuchBucket: The specified bucket does not exist"
        );
        assert_eq!(tidy("plain"), "plain");
    }

    #[test]
    fn storage_s3_status_codes_are_found() {
        assert_eq!(status_in("Error performing PUT http://x in 1ms - Server returned non-2xx status code: 503 Service Unavailable: "), Some(503));
        assert_eq!(status_in("no status"), None);
    }

    async fn text(s: &S3Storage, location: &Path) -> String {
        String::from_utf8(s.store.get(location).await.unwrap().bytes().await.unwrap().to_vec()).unwrap()
    }

    /// The conditional writes themselves, without the early existence check of `put_file`: moto
    /// refuses both a single put and the conditional copy of a streamed upload onto an existing
    /// key, and leaves the original alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn storage_s3_conditional_writes_refuse_existing_keys() {
        let moto = test_moto::MotoServer::start("conditional").await;
        let mut settings = moto.settings();
        settings["prefix"] = "p".into();
        settings["part_size_bytes"] = (5 * MIB).into();
        let s = S3Storage::from_settings(&settings).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            (p, super::super::sha256_hex(bytes))
        };
        let (orig, orig_sha) = write("orig", b"original");
        s.put_file("k/obj", &orig, &orig_sha).await.unwrap();
        let location = s.location("k/obj").unwrap();

        let (other, other_sha) = write("other", b"other");
        assert!(matches!(s.put_small(&location, &other, &other_sha).await, Err(StorageError::AlreadyExists)));
        assert!(matches!(s.put_small(&location, &orig, &orig_sha).await, Err(StorageError::AlreadyExists)), "identical bytes too");
        let big: Vec<u8> = (0..6 * MIB as usize + 7).map(|i| (i % 253) as u8).collect();
        let (big, big_sha) = write("big", &big);
        assert!(matches!(s.put_large(&location, &big, &big_sha).await, Err(StorageError::AlreadyExists)));
        assert_eq!(text(&s, &location).await, "original");

        // A streamed put of the wrong bytes is aborted before anything is published.
        let (_, wrong_sha) = write("x", b"x");
        assert!(matches!(s.put_large(&s.location("k/wrong").unwrap(), &big, &wrong_sha).await, Err(StorageError::Integrity(_))));

        // Nothing temporary is left, and no multipart upload is pending (moto's
        // ListMultipartUploads, unsigned).
        let temp_prefix = s.reserved(".tmp").unwrap();
        let left: Vec<_> = s.store.list(Some(&temp_prefix)).try_collect().await.unwrap();
        assert!(left.is_empty(), "{left:?}");
        let uploads = reqwest::Client::builder().no_proxy().build().unwrap();
        let uploads = uploads.get(format!("{}/{}?uploads", moto.endpoint(), moto.bucket)).send().await.unwrap().text().await.unwrap();
        assert!(uploads.contains("ListMultipartUploadsResult") && !uploads.contains("<Upload>"), "{uploads}");

        // A streamed put to a fresh key works and is verified.
        let fresh = s.location("k/big").unwrap();
        s.put_large(&fresh, &big, &big_sha).await.unwrap();
        let stored = s.verify_created(&fresh, &big_sha, 6 * MIB + 7, None).await.unwrap();
        assert_eq!(stored.sha256, big_sha);
        assert_eq!(fresh.as_ref(), "p/k/big");
    }

    /// A 412 for our own (retried) write is success; for someone else's it is `AlreadyExists`;
    /// with nothing there it is a conflict worth retrying.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn storage_s3_conflicts_are_told_apart_by_write_id() {
        let moto = test_moto::MotoServer::start("write-ids").await;
        let s = S3Storage::from_settings(&moto.settings()).unwrap();
        let location = s.location("w/obj").unwrap();
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::Metadata(WRITE_ID.into()), "ours".into());
        s.store.put_opts(&location, PutPayload::from_static(b"x"), PutOptions { attributes, ..Default::default() }).await.unwrap();
        s.resolve_conflict(&location, Some("ours")).await.unwrap();
        assert!(matches!(s.resolve_conflict(&location, Some("theirs")).await, Err(StorageError::AlreadyExists)));
        assert!(matches!(s.resolve_conflict(&location, None).await, Err(StorageError::AlreadyExists)));
        let absent = s.location("w/absent").unwrap();
        assert!(matches!(s.resolve_conflict(&absent, Some("ours")).await, Err(StorageError::Transient(_))));

        // The read-back removes a bad object only when it is provably ours.
        let x_sha = super::super::sha256_hex(b"x");
        let wrong = super::super::sha256_hex(b"y");
        assert!(matches!(s.verify_created(&location, &x_sha, 1, Some("theirs")).await, Err(StorageError::AlreadyExists)));
        assert_eq!(s.verify_created(&location, &x_sha, 1, Some("ours")).await.unwrap().sha256, x_sha);
        assert!(matches!(s.verify_created(&location, &wrong, 1, Some("theirs")).await, Err(StorageError::AlreadyExists)));
        assert!(matches!(s.verify_created(&location, &wrong, 1, None).await, Err(StorageError::Integrity(_))));
        assert_eq!(text(&s, &location).await, "x", "not provably ours: left in place");
        assert!(matches!(s.verify_created(&location, &wrong, 1, Some("ours")).await, Err(StorageError::Integrity(_))));
        assert!(matches!(s.store.head(&location).await, Err(object_store::Error::NotFound { .. })), "ours and bad: removed");
    }
}
