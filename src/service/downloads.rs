//! Short-lived signed download URLs: `/downloads/<file_id>?expires=<unix>&sig=<hex>`, where `sig` is
//! HMAC-SHA256 over `"<file_id>:<expires>"` with a server-wide key. The key lives in the
//! `server_secret` table (created once; every process of a deployment reads the same one) and is
//! cached in memory per database. The URL itself is the permission: whoever resolves
//! `ArchiveFile.downloadUrl` must hold `download`; the GET then needs no token.
use std::{
    any::Any,
    collections::HashSet,
    sync::{Arc, Mutex},
};

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set};
use sha2::Sha256;
use uuid::Uuid;

use crate::{
    auth::{Capability, Scope},
    entity::{archive_file, archive_job, server_secret},
    error::AppResult,
    service::Access,
};

/// The `server_secret` row holding the key.
pub const KEY_NAME: &str = "download-url-key";
/// How long a download URL stays valid by default.
pub const DEFAULT_TTL: TimeDelta = TimeDelta::minutes(10);

type HmacSha256 = Hmac<Sha256>;

/// Identity of a connection pool (its connect options, shared by every clone of the connection),
/// held so that the address cannot be reused by another pool while cached.
type PoolId = Arc<dyn Any + Send + Sync>;

static CACHE: Mutex<Vec<(PoolId, Arc<Vec<u8>>)>> = Mutex::new(Vec::new());

fn pool_id(db: &DatabaseConnection) -> Option<PoolId> {
    use sea_orm::DatabaseConnectionType as T;
    match &db.inner {
        T::SqlxSqlitePoolConnection(_) => Some(db.get_sqlite_connection_pool().connect_options() as PoolId),
        T::SqlxPostgresPoolConnection(_) => Some(db.get_postgres_connection_pool().connect_options() as PoolId),
        _ => None,
    }
}

fn same_pool(a: &PoolId, b: &PoolId) -> bool {
    std::ptr::eq(Arc::as_ptr(a) as *const (), Arc::as_ptr(b) as *const ())
}

/// The URL signing key of this database: created (32 random bytes) the first time, then read back
/// so that concurrent processes agree on the one that won; cached in memory afterwards.
pub async fn signing_key(db: &DatabaseConnection) -> anyhow::Result<Vec<u8>> {
    let id = pool_id(db);
    if let Some(id) = &id {
        let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, key)) = cache.iter().find(|(p, _)| same_pool(p, id)) {
            return Ok(key.as_ref().clone());
        }
    }
    let key = load_or_create(db).await?;
    if let Some(id) = id {
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if !cache.iter().any(|(p, _)| same_pool(p, &id)) {
            cache.push((id, Arc::new(key.clone())));
        }
    }
    Ok(key)
}

async fn load_or_create(db: &DatabaseConnection) -> anyhow::Result<Vec<u8>> {
    if let Some(row) = server_secret::Entity::find_by_id(KEY_NAME).one(db).await.context("reading the download URL key")? {
        return decode_key(&row.value);
    }
    let fresh: [u8; 32] = rand::random();
    server_secret::Entity::insert(server_secret::ActiveModel {
        name: Set(KEY_NAME.to_string()),
        value: Set(hex::encode(fresh)),
        created_at: Set(Utc::now()),
    })
    .on_conflict_do_nothing()
    .exec(db)
    .await
    .context("storing the download URL key")?;
    let row = server_secret::Entity::find_by_id(KEY_NAME)
        .one(db)
        .await
        .context("reading the download URL key")?
        .context("the download URL key vanished after it was stored")?;
    decode_key(&row.value)
}

fn decode_key(value: &str) -> anyhow::Result<Vec<u8>> {
    let key = hex::decode(value.trim()).ok().filter(|k| k.len() >= 32);
    key.context("the stored download URL key is malformed (expected at least 32 bytes as hex)")
}

/// The MAC over `"<subject>:<expires>"`. A file's subject is its id; a token part's is
/// `<id>.<ext>` (never a bare number), so a URL for one can never pass for the other.
fn mac(key: &[u8], subject: &str, expires: i64) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("{subject}:{expires}").as_bytes());
    mac
}

fn sign(key: &[u8], subject: &str, expires: i64) -> String {
    hex::encode(mac(key, subject, expires).finalize().into_bytes())
}

/// `/downloads/<file_id>?expires=<unix seconds>&sig=<hex HMAC-SHA256 over "file_id:expires">`.
pub fn signed_path(key: &[u8], file_id: i64, expires: DateTime<Utc>) -> String {
    let expires = expires.timestamp();
    let sig = sign(key, &file_id.to_string(), expires);
    format!("/downloads/{file_id}?expires={expires}&sig={sig}")
}

/// True when `sig` signs `file_id:expires` under `key` (constant-time comparison) and `now` is
/// before `expires`.
pub fn verify(key: &[u8], file_id: i64, expires: i64, sig: &str, now: DateTime<Utc>) -> bool {
    verify_subject(key, &file_id.to_string(), expires, sig, now)
}

fn verify_subject(key: &[u8], subject: &str, expires: i64, sig: &str, now: DateTime<Utc>) -> bool {
    if now.timestamp() >= expires {
        return false;
    }
    let Ok(sig) = hex::decode(sig) else { return false };
    mac(key, subject, expires).verify_slice(&sig).is_ok()
}

/// The parts of a timestamp token that can be downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPart {
    /// The TimeStampReq as sent (`.tsq`).
    Query,
    /// The TimeStampResp as received (`.tsr`).
    Reply,
    /// The certificate path the token was verified against, PEM (`.pem`).
    Chain,
}

impl TokenPart {
    pub fn extension(self) -> &'static str {
        match self {
            Self::Query => "tsq",
            Self::Reply => "tsr",
            Self::Chain => "pem",
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Self::Query => "application/timestamp-query",
            Self::Reply => "application/timestamp-reply",
            Self::Chain => "application/pem-certificate-chain",
        }
    }

    /// The part named `<id>.<ext>`.
    pub fn parse(name: &str) -> Option<(i64, Self)> {
        let (id, ext) = name.split_once('.')?;
        let part = [Self::Query, Self::Reply, Self::Chain].into_iter().find(|p| p.extension() == ext)?;
        Some((id.parse().ok().filter(|i: &i64| *i > 0)?, part))
    }
}

/// `/downloads/timestamps/<token_id>.<ext>?expires=…&sig=<HMAC over "<token_id>.<ext>:expires">`.
pub fn signed_token_path(key: &[u8], token_id: i64, part: TokenPart, expires: DateTime<Utc>) -> String {
    let name = format!("{token_id}.{}", part.extension());
    let expires = expires.timestamp();
    let sig = sign(key, &name, expires);
    format!("/downloads/timestamps/{name}?expires={expires}&sig={sig}")
}

/// As [`verify`], for a token part's URL.
pub fn verify_token_part(key: &[u8], token_id: i64, part: TokenPart, expires: i64, sig: &str, now: DateTime<Utc>) -> bool {
    verify_subject(key, &format!("{token_id}.{}", part.extension()), expires, sig, now)
}

/// A signed path for `file_id` valid for [`DEFAULT_TTL`] from `now`, with its expiry.
pub async fn download_path(db: &DatabaseConnection, file_id: i64, now: DateTime<Utc>) -> anyhow::Result<(String, DateTime<Utc>)> {
    let key = signing_key(db).await?;
    let expires = now + DEFAULT_TTL;
    Ok((signed_path(&key, file_id, expires), expires))
}

/// The jobs among `job_ids` whose files the caller may download, in at most one statement (none
/// when the caller's `download` capability holds everywhere or nowhere).
pub async fn downloadable_jobs(db: &DatabaseConnection, access: &Access, job_ids: &[Uuid]) -> AppResult<HashSet<Uuid>> {
    match access.scope(Capability::Download) {
        Scope::Nowhere => Ok(HashSet::new()),
        Scope::Everywhere => Ok(job_ids.iter().copied().collect()),
        Scope::Within { .. } => Ok(archive_job::Entity::find()
            .select_only()
            .column(archive_job::Column::Id)
            .filter(archive_job::Column::Id.is_in(job_ids.to_vec()))
            .filter(access.filter_by_course(archive_job::Column::CourseId, Capability::Download))
            .into_tuple::<Uuid>()
            .all(db)
            .await?
            .into_iter()
            .collect()),
    }
}

/// A file that can be downloaded: stored (confirmed) and not deleted. The signed URL naming it is
/// the permission, checked before this is called.
pub async fn stored_file(db: &DatabaseConnection, file_id: i64) -> anyhow::Result<Option<archive_file::Model>> {
    let file = archive_file::Entity::find_by_id(file_id).one(db).await.context("loading the archive file")?;
    Ok(file.filter(|f| f.deleted_at.is_none() && f.stored_at.is_some()))
}

/// A token part as served: its bytes and the file name to save it under (`<package>.<ext>`, so
/// that `openssl ts -verify -data <package> -in <package>.tsr` works as downloaded). `None` when
/// the token is gone, its data was removed with its file, or it has no such part.
pub async fn token_part(db: &DatabaseConnection, token_id: i64, part: TokenPart) -> anyhow::Result<Option<(Vec<u8>, String)>> {
    use crate::entity::timestamp_token;
    let Some((token, Some(file))) = timestamp_token::Entity::find_by_id(token_id).find_also_related(archive_file::Entity).one(db).await.context("loading the token")? else {
        return Ok(None);
    };
    if token.data_removed_at.is_some() || file.deleted_at.is_some() {
        return Ok(None);
    }
    let bytes = match part {
        TokenPart::Query => token.query_der,
        TokenPart::Reply => token.reply_der,
        TokenPart::Chain => token.chain_pem.map(String::into_bytes).unwrap_or_default(),
    };
    Ok((!bytes.is_empty()).then(|| (bytes, format!("{}.{}", file.file_name, part.extension()))))
}

/// Signs download URLs with one key read once: one per request, however many files it names.
#[derive(Clone)]
pub struct Signer {
    key: Arc<Vec<u8>>,
    public_url: String,
}

impl Signer {
    pub async fn load(db: &DatabaseConnection, public_url: String) -> anyhow::Result<Self> {
        Ok(Self { key: Arc::new(signing_key(db).await?), public_url })
    }

    /// The absolute URL of `file_id`, valid for [`DEFAULT_TTL`] from `now`.
    pub fn url(&self, file_id: i64, now: DateTime<Utc>) -> String {
        format!("{}{}", self.public_url, signed_path(&self.key, file_id, now + DEFAULT_TTL))
    }

    /// The absolute URL of a timestamp token's `part`, valid for [`DEFAULT_TTL`] from `now`.
    pub fn token_url(&self, token_id: i64, part: TokenPart, now: DateTime<Utc>) -> String {
        format!("{}{}", self.public_url, signed_token_path(&self.key, token_id, part, now + DEFAULT_TTL))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn parts(path: &str) -> (i64, i64, String) {
        let (p, q) = path.split_once('?').unwrap();
        let id = p.strip_prefix("/downloads/").unwrap().parse().unwrap();
        let mut expires = 0;
        let mut sig = String::new();
        for kv in q.split('&') {
            match kv.split_once('=').unwrap() {
                ("expires", v) => expires = v.parse().unwrap(),
                ("sig", v) => sig = v.to_string(),
                other => panic!("unexpected {other:?}"),
            }
        }
        (id, expires, sig)
    }

    #[test]
    fn downloads_signed_paths_verify() {
        let now = Utc::now();
        let path = signed_path(KEY, 42, now + DEFAULT_TTL);
        let (id, expires, sig) = parts(&path);
        assert_eq!(id, 42);
        assert_eq!(expires, (now + DEFAULT_TTL).timestamp());
        assert_eq!(sig.len(), 64);
        assert!(verify(KEY, 42, expires, &sig, now));
        assert!(verify(KEY, 42, expires, &sig.to_uppercase(), now), "hex is case-insensitive");
    }

    #[test]
    fn downloads_expired_urls_fail() {
        let now = Utc::now();
        let (_, expires, sig) = parts(&signed_path(KEY, 42, now + DEFAULT_TTL));
        assert!(!verify(KEY, 42, expires, &sig, now + DEFAULT_TTL));
        assert!(!verify(KEY, 42, expires, &sig, now + DEFAULT_TTL + TimeDelta::seconds(1)));
        // An expiry moved into the future is a forgery.
        assert!(!verify(KEY, 42, expires + 3600, &sig, now + DEFAULT_TTL));
    }

    #[test]
    fn downloads_forged_urls_fail() {
        let now = Utc::now();
        let (_, expires, sig) = parts(&signed_path(KEY, 42, now + DEFAULT_TTL));
        let mut forged = sig.clone().into_bytes();
        forged[10] = if forged[10] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).unwrap();
        assert!(!verify(KEY, 42, expires, &forged, now));
        assert!(!verify(KEY, 43, expires, &sig, now), "another file id");
        assert!(!verify(b"another key, also 32 bytes long!", 42, expires, &sig, now), "another key");
        for junk in ["", "zz", &sig[..62], &format!("{sig}00"), "not hex at all"] {
            assert!(!verify(KEY, 42, expires, junk, now), "{junk:?}");
        }
    }

    #[test]
    fn downloads_token_part_urls_verify_only_for_their_part() {
        let now = Utc::now();
        let path = signed_token_path(KEY, 7, TokenPart::Reply, now + DEFAULT_TTL);
        let (p, q) = path.split_once('?').unwrap();
        assert_eq!(p, "/downloads/timestamps/7.tsr");
        let expires = (now + DEFAULT_TTL).timestamp();
        let sig = q.split("sig=").nth(1).unwrap();
        assert!(verify_token_part(KEY, 7, TokenPart::Reply, expires, sig, now));
        assert!(!verify_token_part(KEY, 7, TokenPart::Query, expires, sig, now), "another part");
        assert!(!verify_token_part(KEY, 8, TokenPart::Reply, expires, sig, now), "another token");
        assert!(!verify(KEY, 7, expires, sig, now), "not a file URL");
        assert!(!verify_token_part(KEY, 7, TokenPart::Reply, expires, sig, now + DEFAULT_TTL), "expired");
        assert_eq!(TokenPart::parse("7.tsq"), Some((7, TokenPart::Query)));
        for bad in ["7", "7.zip", "x.tsr", "-1.tsr", "0.pem", ".tsr"] {
            assert_eq!(TokenPart::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn downloads_signing_key_is_created_once_per_database() {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| format!("sqlite://{}?mode=rwc", dir.path().join(name).display());
        let (db, _) = crate::db::connect(&open("a.db")).await.unwrap();
        crate::db::migrate(&db).await.unwrap();
        // Concurrent first uses agree on one key.
        let (k1, k2) = tokio::join!(load_or_create(&db), load_or_create(&db));
        let (k1, k2) = (k1.unwrap(), k2.unwrap());
        assert_eq!(k1, k2);
        assert_eq!(k1.len(), 32);
        assert_eq!(signing_key(&db).await.unwrap(), k1);
        assert_eq!(signing_key(&db.clone()).await.unwrap(), k1, "cached for clones of the connection");

        // A second connection to the same database reads the same key; another database has its own.
        let (same, _) = crate::db::connect(&open("a.db")).await.unwrap();
        assert_eq!(signing_key(&same).await.unwrap(), k1);
        let (other, _) = crate::db::connect(&open("b.db")).await.unwrap();
        crate::db::migrate(&other).await.unwrap();
        assert_ne!(signing_key(&other).await.unwrap(), k1);

        let (path, expires) = download_path(&db, 7, Utc::now()).await.unwrap();
        let (id, exp, sig) = parts(&path);
        assert_eq!((id, exp), (7, expires.timestamp()));
        assert!(verify(&k1, 7, exp, &sig, Utc::now()));
    }
}
