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
    /// A person checked a stored file on demand (`verifyArchiveFile`) and it was intact; the
    /// result is in the details. Failed checks are recorded as one of the `FIXITY_*` actions.
    FileVerified,
    /// A fixity check (periodic or on demand) found a stored file changed or damaged.
    FixityMismatch,
    /// A fixity check found a stored file's object gone from its backend.
    FixityMissing,
    /// A fixity check could not read a stored file although its backend answers.
    FixityUnreadable,
    /// A stored file timestamped by hand (`signArchiveFile`).
    FileTimestamped,
}
