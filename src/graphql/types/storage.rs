use async_graphql::{Object, SimpleObject, ID};

use super::enums;
use crate::{
    domain,
    entity::storage_backend,
    error::AppError,
    graphql::{ids, scalars::{BigInt, DateTime}},
};

/// Where archive packages are stored. Its settings (paths, credentials) never leave the server:
/// they are write-only (`createStorageBackend`, `updateStorageBackend`).
#[derive(Clone)]
pub struct StorageBackend {
    pub model: storage_backend::Model,
}

/// The last health check of a storage backend.
#[derive(SimpleObject)]
pub struct StorageHealth {
    checked_at: DateTime,
    reachable: bool,
    free_bytes: Option<BigInt>,
    used_bytes: Option<BigInt>,
    error: Option<String>,
}

impl StorageBackend {
    pub fn new(model: storage_backend::Model) -> Self {
        Self { model }
    }
}

#[Object]
impl StorageBackend {
    pub async fn id(&self) -> ID {
        ids::encode(ids::NodeType::StorageBackend, self.model.id)
    }
    async fn name(&self) -> &str {
        &self.model.name
    }
    async fn driver(&self) -> async_graphql::Result<enums::StorageDriver> {
        let d: domain::StorageDriverKind = self.model.driver.parse().map_err(|_| AppError::internal("unknown storage driver"))?;
        Ok(d.into())
    }
    async fn tier(&self) -> async_graphql::Result<enums::StorageTier> {
        let t: domain::StorageTier = self.model.tier.parse().map_err(|_| AppError::internal("unknown storage tier"))?;
        Ok(t.into())
    }
    async fn enabled(&self) -> bool {
        self.model.enabled
    }
    /// Whether packages go here when a policy names no backend.
    async fn is_default(&self) -> bool {
        self.model.is_default
    }
    /// When it was deleted; `null` while it is in use. A deleted backend is reached only from the
    /// files it held.
    async fn deleted_at(&self) -> Option<DateTime> {
        self.model.deleted_at.map(DateTime)
    }
    /// `null` until the first health check. Checked every `storage_health_interval_seconds`, by
    /// `checkStorageBackend`, and before a job writes to a backend whose last check failed.
    async fn health(&self) -> Option<StorageHealth> {
        let m = &self.model;
        m.health_checked_at.map(|at| StorageHealth {
            checked_at: DateTime(at),
            reachable: m.health_reachable.unwrap_or(false),
            free_bytes: m.health_free_bytes.map(|b| BigInt(b.max(0) as u64)),
            used_bytes: m.health_used_bytes.map(|b| BigInt(b.max(0) as u64)),
            error: m.health_error.clone(),
        })
    }
}
