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

    /// Probes a storage backend now (write, read, delete) and records the result.
    async fn check_storage_backend(&self, ctx: &Context<'_>, input: StorageBackendIdInput) -> Result<StorageBackend> {
        let id = ids::decode(&input.id, NodeType::StorageBackend)?;
        ctx.loaders().clear();
        let b = ctx.services().check_storage_backend(ctx.access()?, id).await?;
        Ok(StorageBackend::new(b))
    }
}
