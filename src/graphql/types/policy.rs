use async_graphql::{Context, Object, Result};

use super::{enums, StorageBackend};
use crate::{domain::PolicyValues, graphql::context::ContextExt};

/// The global archiving defaults. A locked field cannot be overridden when a job is created.
pub struct Policy {
    pub values: PolicyValues,
}

#[Object]
impl Policy {
    async fn format(&self) -> enums::ArchiveFormat {
        self.values.format.into()
    }
    /// Pattern of package file names, with `${variable}` placeholders.
    async fn filename_pattern(&self) -> &str {
        &self.values.filename_pattern
    }
    /// Days an archive is kept; `null`: kept until deleted by hand.
    async fn retention_days(&self) -> Option<u32> {
        self.values.retention_days
    }
    /// Whether packages are timestamped by a Time-Stamp Authority (RFC 3161).
    async fn timestamping(&self) -> bool {
        self.values.timestamping
    }
    /// Seconds a job may run before it ends in TIMEOUT.
    async fn job_timeout_seconds(&self) -> u32 {
        self.values.job_timeout_seconds
    }
    /// Whether files past their retention are deleted without a person starting it.
    async fn auto_delete(&self) -> bool {
        self.values.auto_delete
    }
    /// With `autoDelete`: expired files wait for approval in the list of pending deletions.
    async fn deletion_approval(&self) -> bool {
        self.values.deletion_approval
    }
    /// Where packages are stored; empty: the default backend.
    async fn storage_backends(&self, ctx: &Context<'_>) -> Result<Vec<StorageBackend>> {
        let rows = ctx.services().storage_backends_named(ctx.access()?, &self.values.storage_backends).await?;
        Ok(rows.into_iter().map(StorageBackend::new).collect())
    }
    /// The fields a job cannot override.
    async fn locked(&self) -> Vec<enums::PolicyField> {
        self.values.locked.iter().map(|f| (*f).into()).collect()
    }
}
