//! Storage backends as records: the default local directory, listing, create, update, delete and
//! the health check. The drivers are in `storage/`, the health probe and the rule whether a
//! backend may be written to in `storage::health`.
//!
//! Settings are write-only: no answer carries them, and the audit log and messages see them only
//! through the one redaction (`domain::storage`). A deleted backend stays as a row (`deleted_at`,
//! secrets wiped) for the records of the files it held; every lookup here sees live backends only,
//! except navigation from a file to where it was stored.
use std::path::Path;

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::Expr, ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use serde_json::json;
use strum::IntoEnumIterator;

use crate::{
    auth::Capability,
    domain::{
        global_id,
        storage::{is_secret_setting, merge_settings, redact_message, settings_change},
        AuditAction, JobSettings, JobStatus, StorageDriverKind, StorageTier,
    },
    entity::{archive_file, archive_job, storage_backend},
    error::{AppError, AppResult, UserError, UserErrorCode},
    service::{
        audit::{self, Actor, Target},
        Access, Page, PageArgs,
    },
    storage,
};

pub const DEFAULT_LOCAL: &str = "local";

/// Makes sure the default local-directory backend exists (pointing into the data directory). Once
/// created it is not created again, not even after an operator deleted it.
pub async fn ensure_default(db: &DatabaseConnection, data_dir: &Path) -> anyhow::Result<()> {
    let exists = storage_backend::Entity::find().filter(storage_backend::Column::Name.eq(DEFAULT_LOCAL)).one(db).await?.is_some();
    if !exists {
        let dir = std::path::absolute(data_dir.join("archives")).unwrap_or_else(|_| data_dir.join("archives"));
        storage_backend::Entity::insert(storage_backend::ActiveModel {
            name: Set(DEFAULT_LOCAL.into()),
            driver: Set(StorageDriverKind::LocalDirectory.to_string()),
            tier: Set(StorageTier::Local.to_string()),
            settings: Set(serde_json::json!({ "path": dir })),
            enabled: Set(true),
            is_default: Set(true),
            created_at: Set(Utc::now()),
            ..Default::default()
        })
        .on_conflict_do_nothing()
        .exec(db)
        .await?;
    }
    Ok(())
}

/// The backends not deleted.
fn live() -> sea_orm::Select<storage_backend::Entity> {
    storage_backend::Entity::find().filter(storage_backend::Column::DeletedAt.is_null())
}

pub async fn list(db: &DatabaseConnection, access: &Access, args: &PageArgs) -> AppResult<Page<storage_backend::Model>> {
    access.require(Capability::View)?;
    let all = live().order_by_asc(storage_backend::Column::Id).all(db).await?;
    Page::from_vec(all, args)
}

pub async fn by_ids(db: &DatabaseConnection, access: &Access, ids: &[i64]) -> AppResult<Vec<storage_backend::Model>> {
    if access.require(Capability::View).is_err() {
        return Ok(Vec::new());
    }
    Ok(live().filter(storage_backend::Column::Id.is_in(ids.to_vec())).all(db).await?)
}

/// Backends by id, unfiltered (deleted ones too): only for navigation from an object already
/// known to be visible (an archive file of a visible job).
pub async fn by_id_related(db: &DatabaseConnection, ids: &[i64]) -> AppResult<std::collections::HashMap<i64, storage_backend::Model>> {
    let rows = storage_backend::Entity::find().filter(storage_backend::Column::Id.is_in(ids.to_vec())).all(db).await?;
    Ok(rows.into_iter().map(|m| (m.id, m)).collect())
}

/// The backends a policy names, in the policy's order; names without a backend are left out.
pub async fn by_names(db: &DatabaseConnection, access: &Access, names: &[String]) -> AppResult<Vec<storage_backend::Model>> {
    access.require(Capability::View)?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows = live().filter(storage_backend::Column::Name.is_in(names.to_vec())).all(db).await?;
    Ok(names.iter().filter_map(|n| rows.iter().find(|b| &b.name == n).cloned()).collect())
}

pub struct NewBackend {
    pub name: String,
    pub driver: StorageDriverKind,
    pub tier: StorageTier,
    pub settings: serde_json::Value,
    pub is_default: bool,
}

/// What `update` changes: `None` leaves a field as it is.
#[derive(Default)]
pub struct BackendChanges {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub tier: Option<StorageTier>,
    pub is_default: Option<bool>,
    /// The new settings as a whole, except that secrets left out keep their stored values
    /// (`domain::storage::merge_settings`).
    pub settings: Option<serde_json::Value>,
}

fn invalid(field: &str, code: UserErrorCode, message: impl Into<String>) -> Vec<UserError> {
    vec![UserError { field: vec![field.to_string()], code, message: message.into() }]
}

fn require_manage_everywhere(access: &Access) -> AppResult<()> {
    if access.scope(Capability::Manage) != crate::auth::Scope::Everywhere {
        return Err(AppError::Forbidden);
    }
    Ok(())
}

fn target(id: i64) -> Target {
    Target::new("StorageBackend", global_id::encode("StorageBackend", id))
}

fn kind_of(b: &storage_backend::Model) -> AppResult<StorageDriverKind> {
    b.driver.parse().map_err(|_| AppError::internal(format!("storage backend {} has an unknown driver", b.id)))
}

/// A name's form; `None` when it is fine.
fn check_name(name: &str) -> Option<Vec<UserError>> {
    if name.is_empty() || name.len() > 100 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Some(invalid("name", UserErrorCode::Invalid, "use 1 to 100 letters, digits, `-`, `_` or `.`"));
    }
    None
}

async fn name_taken(db: &DatabaseConnection, name: &str) -> AppResult<bool> {
    Ok(live().filter(storage_backend::Column::Name.eq(name)).one(db).await?.is_some())
}

/// Opens a driver on the settings as a check; a bad setting is a user error on `settings` whose
/// message names the setting, never a value (and passes the redaction all the same).
fn check_settings(kind: StorageDriverKind, settings: &serde_json::Value) -> Result<(), Vec<UserError>> {
    storage::open(kind, settings)
        .map(|_| ())
        .map_err(|e| invalid("settings", UserErrorCode::Invalid, redact_message(kind, settings, &describe(&e))))
}

/// Adds a backend after checking its settings open a driver; records a first health probe.
pub async fn create(db: &DatabaseConnection, access: &Access, now: DateTime<Utc>, new: NewBackend) -> AppResult<Result<storage_backend::Model, Vec<UserError>>> {
    require_manage_everywhere(access)?;
    let name = new.name.trim().to_string();
    if let Some(es) = check_name(&name) {
        return Ok(Err(es));
    }
    if name_taken(db, &name).await? {
        return Ok(Err(invalid("name", UserErrorCode::Invalid, format!("a storage backend named {name} exists"))));
    }
    if let Err(es) = check_settings(new.driver, &new.settings) {
        return Ok(Err(es));
    }
    let health = storage::health::probe(new.driver, &new.settings).await;
    let txn = db.begin().await?;
    if new.is_default {
        storage_backend::Entity::update_many().col_expr(storage_backend::Column::IsDefault, Expr::val(false).into()).exec(&txn).await?;
    }
    let m = storage_backend::ActiveModel {
        name: Set(name),
        driver: Set(new.driver.to_string()),
        tier: Set(new.tier.to_string()),
        settings: Set(new.settings),
        enabled: Set(true),
        is_default: Set(new.is_default),
        created_at: Set(now),
        health_checked_at: Set(Some(now)),
        health_reachable: Set(Some(health.reachable)),
        health_free_bytes: Set(health.free_bytes.map(|b| b as i64)),
        health_used_bytes: Set(health.used_bytes.map(|b| b as i64)),
        health_error: Set(health.error),
        deleted_at: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let details = json!({
        "name": m.name, "driver": m.driver, "tier": m.tier, "isDefault": m.is_default,
        "settings": m.redacted_settings(),
    });
    audit::record(&txn, now, &Actor::of(access), AuditAction::StorageBackendCreated, target(m.id), details).await?;
    txn.commit().await?;
    Ok(Ok(m))
}

/// Renames, switches, re-tiers or re-configures a backend. Changed settings are checked and
/// probed like new ones; the audit entry holds each changed field before and after, settings
/// with their secrets redacted.
pub async fn update(
    db: &DatabaseConnection,
    access: &Access,
    now: DateTime<Utc>,
    id: i64,
    changes: BackendChanges,
) -> AppResult<Result<storage_backend::Model, Vec<UserError>>> {
    require_manage_everywhere(access)?;
    let b = live().filter(storage_backend::Column::Id.eq(id)).one(db).await?.ok_or(AppError::NotFound)?;
    let kind = kind_of(&b)?;
    let mut am: storage_backend::ActiveModel = b.clone().into();
    let mut before = serde_json::Map::new();
    let mut after = serde_json::Map::new();
    let mut note = |field: &str, old: serde_json::Value, new: serde_json::Value| {
        before.insert(field.into(), old);
        after.insert(field.into(), new);
    };

    if let Some(name) = changes.name.map(|n| n.trim().to_string()).filter(|n| *n != b.name) {
        if let Some(es) = check_name(&name) {
            return Ok(Err(es));
        }
        if name_taken(db, &name).await? {
            return Ok(Err(invalid("name", UserErrorCode::Invalid, format!("a storage backend named {name} exists"))));
        }
        // Unfinished jobs hold backends by name: a rename under them would leave them pointing at
        // nothing. The policy holds ids, so it follows a rename.
        if let Some(why) = in_use(db, &b, false).await? {
            return Ok(Err(invalid("name", UserErrorCode::InvalidState, format!("cannot rename {}: {why}", b.name))));
        }
        note("name", json!(b.name), json!(name));
        am.name = Set(name);
    }
    let is_default = changes.is_default.unwrap_or(b.is_default);
    if b.is_default && !is_default {
        return Ok(Err(invalid("isDefault", UserErrorCode::InvalidState, "there is always one default backend: make another one the default instead")));
    }
    let enabled = changes.enabled.unwrap_or(b.enabled);
    if is_default && !enabled {
        return Ok(Err(invalid("enabled", UserErrorCode::InvalidState, "the default backend cannot be disabled: make another one the default first")));
    }
    if enabled != b.enabled {
        note("enabled", json!(b.enabled), json!(enabled));
        am.enabled = Set(enabled);
    }
    if is_default != b.is_default {
        note("isDefault", json!(b.is_default), json!(is_default));
        am.is_default = Set(is_default);
    }
    if let Some(tier) = changes.tier.map(|t| t.to_string()).filter(|t| *t != b.tier) {
        note("tier", json!(b.tier), json!(tier));
        am.tier = Set(tier);
    }
    if let Some(new) = changes.settings {
        if !new.is_object() {
            return Ok(Err(invalid("settings", UserErrorCode::Invalid, "settings must be a JSON object")));
        }
        let merged = merge_settings(kind, &b.settings, &new);
        if merged != b.settings {
            if let Err(es) = check_settings(kind, &merged) {
                return Ok(Err(es));
            }
            let health = storage::health::probe(kind, &merged).await;
            let change = settings_change(kind, &b.settings, &merged);
            note("settings", change["before"].clone(), change["after"].clone());
            am.settings = Set(merged);
            am.health_checked_at = Set(Some(now));
            am.health_reachable = Set(Some(health.reachable));
            am.health_free_bytes = Set(health.free_bytes.map(|b| b as i64));
            am.health_used_bytes = Set(health.used_bytes.map(|b| b as i64));
            am.health_error = Set(health.error);
        }
    }
    if after.is_empty() {
        return Ok(Ok(b)); // nothing changes, nothing to record
    }
    let txn = db.begin().await?;
    if is_default && !b.is_default {
        storage_backend::Entity::update_many()
            .col_expr(storage_backend::Column::IsDefault, Expr::val(false).into())
            .filter(storage_backend::Column::Id.ne(id))
            .exec(&txn)
            .await?;
    }
    let m = am.update(&txn).await?;
    let details = json!({ "name": m.name, "before": before, "after": after });
    audit::record(&txn, now, &Actor::of(access), AuditAction::StorageBackendUpdated, target(m.id), details).await?;
    txn.commit().await?;
    Ok(Ok(m))
}

/// Deletes a backend that holds nothing any more: refused while it holds files not deleted
/// (unconfirmed intents count: a put may be under way), while the policy names it, while it is
/// the default, or while an unfinished job will store to it. The row stays as the record of
/// where the deleted files were (`deleted_at`), its secrets wiped; the name is free again.
pub async fn delete(db: &DatabaseConnection, access: &Access, now: DateTime<Utc>, id: i64) -> AppResult<Result<storage_backend::Model, Vec<UserError>>> {
    require_manage_everywhere(access)?;
    let b = live().filter(storage_backend::Column::Id.eq(id)).one(db).await?.ok_or(AppError::NotFound)?;
    let kind = kind_of(&b)?;
    if b.is_default {
        return Ok(Err(invalid("id", UserErrorCode::InvalidState, format!("{} is the default backend: make another one the default first", b.name))));
    }
    let live_files = archive_file::Entity::find()
        .filter(archive_file::Column::StorageBackendId.eq(id))
        .filter(archive_file::Column::DeletedAt.is_null())
        .count(db)
        .await?;
    if live_files > 0 {
        return Ok(Err(invalid("id", UserErrorCode::FilesExist, format!("{} holds {live_files} archive file(s): delete them first", b.name))));
    }
    if let Some(why) = in_use(db, &b, true).await? {
        return Ok(Err(invalid("id", UserErrorCode::InvalidState, format!("cannot delete {}: {why}", b.name))));
    }
    let kept: serde_json::Map<String, serde_json::Value> = b
        .settings
        .as_object()
        .map(|m| m.iter().filter(|(k, _)| !is_secret_setting(kind, k)).map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let txn = db.begin().await?;
    let mut am: storage_backend::ActiveModel = b.clone().into();
    am.deleted_at = Set(Some(now));
    am.enabled = Set(false);
    am.settings = Set(serde_json::Value::Object(kept));
    let m = am.update(&txn).await?;
    let details = json!({ "name": b.name, "driver": b.driver, "tier": b.tier, "settings": b.redacted_settings() });
    audit::record(&txn, now, &Actor::of(access), AuditAction::StorageBackendDeleted, target(b.id), details).await?;
    txn.commit().await?;
    Ok(Ok(m))
}

/// Why a backend must stay as it is: the policy stores to it (it holds backend ids; asked only
/// with `policy`), or unfinished jobs store to it (their settings hold the name). Finished jobs
/// do not count: a failed job retried after the backend was renamed or deleted fails with
/// "does not exist".
async fn in_use(db: &DatabaseConnection, b: &storage_backend::Model, policy: bool) -> AppResult<Option<String>> {
    if policy && super::policy::load(db).await?.storage_backends.contains(&b.id) {
        return Ok(Some("the archiving policy stores to it (change the policy first)".into()));
    }
    let name = b.name.as_str();
    let finished: Vec<String> = JobStatus::iter().filter(|s| s.is_final()).map(|s| s.to_string()).collect();
    let unfinished = archive_job::Entity::find().filter(archive_job::Column::Status.is_not_in(finished)).all(db).await?;
    let using = unfinished
        .iter()
        .filter(|j| serde_json::from_value::<JobSettings>(j.settings.clone()).is_ok_and(|s| s.storage_backends.iter().any(|n| n == name)))
        .count();
    if using > 0 {
        return Ok(Some(format!("{using} unfinished job(s) store to it (wait until they finish)")));
    }
    Ok(None)
}

/// Probes a backend now and records the result (needs `manage`).
pub async fn check(db: &DatabaseConnection, access: &Access, now: DateTime<Utc>, id: i64) -> AppResult<storage_backend::Model> {
    require_manage_everywhere(access)?;
    let b = live().filter(storage_backend::Column::Id.eq(id)).one(db).await?.ok_or(AppError::NotFound)?;
    Ok(storage::health::check(db, &b, now).await?)
}

/// A storage error as a message for clients. Drivers keep secrets out of their messages.
fn describe(e: &storage::StorageError) -> String {
    use storage::StorageError::*;
    match e {
        Transient(m) | Permanent(m) | Integrity(m) => m.clone(),
        AlreadyExists => "the object already exists".into(),
        NotFound => "the object does not exist".into(),
    }
}
