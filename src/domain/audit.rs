//! The actions the audit log records: everything destructive and every change of the rules.
use strum::{AsRefStr, Display, EnumIter, EnumString};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, AsRefStr, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditAction {
    PolicyUpdated,
    CategoryArchivingSet,
    ActivityKindArchivingSet,
    StorageBackendCreated,
    StorageBackendUpdated,
    StorageBackendDeleted,
    /// A job deleted (its record removed, or kept as DELETED with its files gone).
    JobDeleted,
    /// One stored file removed: by hand, by job deletion, by retention, by erasure.
    FileDeleted,
    LegalHoldSet,
    LegalHoldReleased,
    /// A file's retention ended and approval mode holds it for a decision.
    DeletionPending,
    DeletionApproved,
    DeletionDenied,
    /// A stored file timestamped by hand (`signArchiveFile`).
    FileTimestamped,
}
