//! Stored files as the database records them. The one way to open a backend's driver from its
//! row, and the one path that deletes a stored file — used by cancel, failure, job deletion, the
//! sweeper's clean-up of unconfirmed intents, and later retention and GDPR erasure.
use std::sync::Arc;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, Set};

use super::{StorageDriver, StorageError};
use crate::{
    domain::{Failure, StorageDriverKind},
    entity::{archive_file, storage_backend},
};

/// The driver of a backend row.
pub fn driver(backend: &storage_backend::Model) -> Result<Arc<dyn StorageDriver>, Failure> {
    let kind: StorageDriverKind = backend.driver.parse().map_err(|_| Failure::permanent(format!("storage backend {} has an unknown driver {:?}", backend.name, backend.driver)))?;
    super::open(kind, &backend.settings).map_err(|e| e.failure(&backend.name))
}

/// The row and driver of the backend with this id.
pub async fn backend(db: &DatabaseConnection, backend_id: i64) -> Result<(storage_backend::Model, Arc<dyn StorageDriver>), Failure> {
    let b = storage_backend::Entity::find_by_id(backend_id)
        .one(db)
        .await
        .map_err(|e| Failure::transient(format!("loading storage backend {backend_id}: {e}")))?
        .ok_or_else(|| Failure::permanent(format!("storage backend {backend_id} is gone")))?;
    let d = driver(&b)?;
    Ok((b, d))
}

/// Deletes a file's object from its backend (a missing object counts as deleted) and marks its
/// row deleted with `reason`; the row stays, for the record. Works for unconfirmed intents too.
/// On failure nothing is marked, so the caller can try again.
pub async fn delete(db: &DatabaseConnection, file: &archive_file::Model, reason: &str) -> Result<archive_file::Model, Failure> {
    let (b, driver) = backend(db, file.storage_backend_id).await?;
    match driver.delete(&file.storage_key).await {
        Ok(()) | Err(StorageError::NotFound) => {}
        Err(e) => return Err(e.failure(&b.name).context(format!("deleting {}", file.file_name))),
    }
    let mut am: archive_file::ActiveModel = file.clone().into();
    am.deleted_at = Set(Some(Utc::now()));
    am.deletion_reason = Set(Some(reason.to_string()));
    am.update(db).await.map_err(|e| Failure::transient(format!("recording the deletion of {}: {e}", file.file_name)))
}
