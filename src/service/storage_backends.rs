//! Storage backends as records: the default local directory, listing. The drivers are in `storage/`.
use std::path::Path;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait};

use crate::{
    auth::Capability,
    domain::{StorageDriverKind, StorageTier},
    entity::storage_backend,
    error::{AppError, AppResult, UserError, UserErrorCode},
    service::{Access, Page, PageArgs},
    storage,
};

pub const DEFAULT_LOCAL: &str = "local";

/// Makes sure the default local-directory backend exists (pointing into the data directory).
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

pub async fn list(db: &DatabaseConnection, access: &Access, args: &PageArgs) -> AppResult<Page<storage_backend::Model>> {
    access.require(Capability::View)?;
    let all = storage_backend::Entity::find().order_by_asc(storage_backend::Column::Id).all(db).await?;
    Page::from_vec(all, args)
}

pub async fn by_ids(db: &DatabaseConnection, access: &Access, ids: &[i64]) -> AppResult<Vec<storage_backend::Model>> {
    if access.require(Capability::View).is_err() {
        return Ok(Vec::new());
    }
    Ok(storage_backend::Entity::find().filter(storage_backend::Column::Id.is_in(ids.to_vec())).all(db).await?)
}

/// Backends by id, unfiltered: only for navigation from an object already known to be visible
/// (an archive file of a visible job).
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
    let rows = storage_backend::Entity::find().filter(storage_backend::Column::Name.is_in(names.to_vec())).all(db).await?;
    Ok(names.iter().filter_map(|n| rows.iter().find(|b| &b.name == n).cloned()).collect())
}

pub struct NewBackend {
    pub name: String,
    pub driver: StorageDriverKind,
    pub tier: StorageTier,
    pub settings: serde_json::Value,
    pub is_default: bool,
}

fn invalid(field: &str, code: UserErrorCode, message: impl Into<String>) -> Vec<UserError> {
    vec![UserError { field: vec![field.to_string()], code, message: message.into() }]
}

/// Adds a backend after checking its settings open a driver; records a first health probe.
pub async fn create(db: &DatabaseConnection, access: &Access, new: NewBackend) -> AppResult<Result<storage_backend::Model, Vec<UserError>>> {
    if access.scope(Capability::Manage) != crate::auth::Scope::Everywhere {
        return Err(AppError::Forbidden);
    }
    let name = new.name.trim().to_string();
    if name.is_empty() || name.len() > 100 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Ok(Err(invalid("name", UserErrorCode::Invalid, "use 1 to 100 letters, digits, `-`, `_` or `.`")));
    }
    if storage_backend::Entity::find().filter(storage_backend::Column::Name.eq(&name)).one(db).await?.is_some() {
        return Ok(Err(invalid("name", UserErrorCode::Invalid, format!("a storage backend named {name} exists"))));
    }
    let driver = match storage::open(new.driver, &new.settings) {
        Ok(d) => d,
        // The driver's message names the bad setting, never a secret value.
        Err(e) => return Ok(Err(invalid("settings", UserErrorCode::Invalid, describe(&e)))),
    };
    let health = driver.health().await;
    let now = Utc::now();
    let txn = db.begin().await?;
    if new.is_default {
        storage_backend::Entity::update_many()
            .col_expr(storage_backend::Column::IsDefault, sea_orm::sea_query::Expr::val(false).into())
            .exec(&txn)
            .await?;
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
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(Ok(m))
}

/// Probes a backend and records the result.
pub async fn check(db: &DatabaseConnection, access: &Access, id: i64) -> AppResult<storage_backend::Model> {
    access.require(Capability::View)?;
    if access.scope(Capability::Manage) != crate::auth::Scope::Everywhere {
        return Err(AppError::Forbidden);
    }
    let b = storage_backend::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound)?;
    let health = match storage::files::driver(&b) {
        Ok(d) => d.health().await,
        Err(e) => storage::HealthReport { reachable: false, free_bytes: None, used_bytes: None, error: Some(e.message) },
    };
    let mut am: storage_backend::ActiveModel = b.into();
    am.health_checked_at = Set(Some(Utc::now()));
    am.health_reachable = Set(Some(health.reachable));
    am.health_free_bytes = Set(health.free_bytes.map(|b| b as i64));
    am.health_used_bytes = Set(health.used_bytes.map(|b| b as i64));
    am.health_error = Set(health.error);
    Ok(am.update(db).await?)
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
