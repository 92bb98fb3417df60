//! Mutations of storage backends.
use async_graphql::{Context, InputObject, Json, Object, Result, SimpleObject, ID};

use crate::{
    graphql::{
        context::ContextExt,
        ids::{self, NodeType},
        types::*,
    },
    service::storage_backends,
};

#[derive(InputObject)]
pub struct CreateStorageBackendInput {
    /// Unique name, used in policies and job settings.
    name: String,
    driver: StorageDriver,
    #[graphql(default_with = "StorageTier::RemoteFast")]
    tier: StorageTier,
    /// Driver settings. LOCAL_DIRECTORY: `{"path": "/abs/dir"}`. S3: `{"bucket", "region",
    /// "endpoint", "access_key_id", "secret_access_key", "prefix", "allow_http"}`. Never returned.
    settings: Json<serde_json::Value>,
    #[graphql(default)]
    is_default: bool,
}

#[derive(SimpleObject)]
pub struct StorageBackendPayload {
    storage_backend: Option<StorageBackend>,
    user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct StorageBackendIdInput {
    id: ID,
}

#[derive(InputObject)]
pub struct UpdateStorageBackendInput {
    id: ID,
    /// A new name. Refused while the policy or an unfinished job names the backend.
    name: Option<String>,
    /// `false`: no package is written here any more; jobs that would wait (RECOVERABLE_ERROR).
    /// The default backend cannot be disabled.
    enabled: Option<bool>,
    tier: Option<StorageTier>,
    /// `true` makes it the default (the previous one stops being it). There is always one
    /// default: `false` on the default is refused.
    is_default: Option<bool>,
    /// The new settings as a whole. Secrets are write-only: a secret key left out keeps its
    /// stored value, `null` removes it. Changed settings are checked and probed like new ones.
    settings: Option<Json<serde_json::Value>>,
}

#[derive(SimpleObject)]
pub struct DeleteStorageBackendPayload {
    /// The deleted backend (with `deletedAt`), or `null` when refused.
    storage_backend: Option<StorageBackend>,
    user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct StorageMutations;

#[Object]
impl StorageMutations {
    /// Adds a storage backend (needs `manage`). Its settings are checked by a health probe; the
    /// secrets in them are never returned.
    async fn create_storage_backend(&self, ctx: &Context<'_>, input: CreateStorageBackendInput) -> Result<StorageBackendPayload> {
        let new = storage_backends::NewBackend {
            name: input.name,
            driver: input.driver.into(),
            tier: input.tier.into(),
            settings: input.settings.0,
            is_default: input.is_default,
        };
        ctx.loaders().clear();
        Ok(match ctx.services().create_storage_backend(ctx.access()?, new).await? {
            Ok(b) => StorageBackendPayload { storage_backend: Some(StorageBackend::new(b)), user_errors: vec![] },
            Err(es) => StorageBackendPayload { storage_backend: None, user_errors: es.into_iter().map(Into::into).collect() },
        })
    }

    /// Changes a storage backend (needs `manage`): name, enabled, tier, default, settings. Audited
    /// with each changed value before and after, secrets redacted.
    async fn update_storage_backend(&self, ctx: &Context<'_>, input: UpdateStorageBackendInput) -> Result<StorageBackendPayload> {
        let id = ids::decode(&input.id, NodeType::StorageBackend)?;
        let changes = storage_backends::BackendChanges {
            name: input.name,
            enabled: input.enabled,
            tier: input.tier.map(Into::into),
            is_default: input.is_default,
            settings: input.settings.map(|s| s.0),
        };
        ctx.loaders().clear();
        Ok(match ctx.services().update_storage_backend(ctx.access()?, id, changes).await? {
            Ok(b) => StorageBackendPayload { storage_backend: Some(StorageBackend::new(b)), user_errors: vec![] },
            Err(es) => StorageBackendPayload { storage_backend: None, user_errors: es.into_iter().map(Into::into).collect() },
        })
    }

    /// Deletes a storage backend (needs `manage`). Refused (`userErrors`) while it holds archive
    /// files not deleted (`FILES_EXIST`), while it is the default, the policy names it or an
    /// unfinished job stores to it (`INVALID_STATE`). The records of files it held keep naming it.
    async fn delete_storage_backend(&self, ctx: &Context<'_>, input: StorageBackendIdInput) -> Result<DeleteStorageBackendPayload> {
        let id = ids::decode(&input.id, NodeType::StorageBackend)?;
        ctx.loaders().clear();
        Ok(match ctx.services().delete_storage_backend(ctx.access()?, id).await? {
            Ok(b) => DeleteStorageBackendPayload { storage_backend: Some(StorageBackend::new(b)), user_errors: vec![] },
            Err(es) => DeleteStorageBackendPayload { storage_backend: None, user_errors: es.into_iter().map(Into::into).collect() },
        })
    }

    /// Probes a storage backend now (write, read, delete) and records the result.
    async fn check_storage_backend(&self, ctx: &Context<'_>, input: StorageBackendIdInput) -> Result<StorageBackend> {
        let id = ids::decode(&input.id, NodeType::StorageBackend)?;
        ctx.loaders().clear();
        let b = ctx.services().check_storage_backend(ctx.access()?, id).await?;
        Ok(StorageBackend::new(b))
    }
}
