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

fn mac(key: &[u8], file_id: i64, expires: i64) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("{file_id}:{expires}").as_bytes());
    mac
}

/// `/downloads/<file_id>?expires=<unix seconds>&sig=<hex HMAC-SHA256 over "file_id:expires">`.
pub fn signed_path(key: &[u8], file_id: i64, expires: DateTime<Utc>) -> String {
    let expires = expires.timestamp();
    let sig = hex::encode(mac(key, file_id, expires).finalize().into_bytes());
    format!("/downloads/{file_id}?expires={expires}&sig={sig}")
}

/// True when `sig` signs `file_id:expires` under `key` (constant-time comparison) and `now` is
/// before `expires`.
pub fn verify(key: &[u8], file_id: i64, expires: i64, sig: &str, now: DateTime<Utc>) -> bool {
    if now.timestamp() >= expires {
        return false;
    }
    let Ok(sig) = hex::decode(sig) else { return false };
    mac(key, file_id, expires).verify_slice(&sig).is_ok()
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
