use async_graphql::{Enum, Json, Object};

use crate::{domain, entity::audit_log, graphql::scalars::DateTime};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::AuditAction")]
pub enum AuditAction {
    PolicyUpdated,
    CategoryArchivingSet,
    ActivityKindArchivingSet,
    StorageBackendCreated,
    StorageBackendUpdated,
    StorageBackendDeleted,
    JobDeleted,
    FileDeleted,
    LegalHoldSet,
    LegalHoldReleased,
    DeletionPending,
    DeletionApproved,
    DeletionDenied,
    FileVerified,
    FixityMismatch,
    FixityMissing,
    FixityUnreadable,
    /// A stored file timestamped by hand (`signArchiveFile`).
    FileTimestamped,
}

/// One destructive or policy action: who, what, when, from where. Entries are never changed.
pub struct AuditLogEntry {
    pub model: audit_log::Model,
}

#[Object]
impl AuditLogEntry {
    /// Increases with every entry: entries are listed newest first by it.
    async fn sequence(&self) -> i64 {
        self.model.id
    }
    async fn at(&self) -> DateTime {
        DateTime(self.model.created_at)
    }
    /// The token's subject, or `system` for what the server did on its own.
    async fn actor(&self) -> &str {
        &self.model.actor
    }
    /// The actor's roles when it acted.
    async fn actor_roles(&self) -> Vec<String> {
        self.model.actor_roles.split(',').filter(|r| !r.is_empty()).map(str::to_string).collect()
    }
    /// The client's address for an API call, `cli`, or `periodic:<task>`.
    async fn origin(&self) -> Option<&str> {
        self.model.origin.as_deref()
    }
    async fn action(&self) -> Option<AuditAction> {
        self.model.action.parse::<domain::AuditAction>().ok().map(Into::into)
    }
    /// The GraphQL type of the object acted on (`ArchiveFile`, `Policy`, …).
    async fn target_type(&self) -> &str {
        &self.model.target_type
    }
    /// Its global id, where it has one.
    async fn target_id(&self) -> Option<&str> {
        self.model.target_id.as_deref()
    }
    /// What changed (object ids, values before and after, the reason given). Never a secret.
    async fn details(&self) -> Json<serde_json::Value> {
        Json(self.model.details.clone())
    }
}
