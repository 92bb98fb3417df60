//! Storage backends as records: the default local directory, listing. The drivers are in `storage/`.
use std::path::Path;

use chrono::Utc;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set};

use crate::{
    auth::Capability,
    domain::{StorageDriverKind, StorageTier},
    entity::storage_backend,
    error::AppResult,
    service::{Access, Page, PageArgs},
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
