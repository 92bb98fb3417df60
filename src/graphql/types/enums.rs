//! GraphQL enums mirroring the domain's; the names are part of the API.
use async_graphql::Enum;

use crate::{auth, domain};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::ActivityKind")]
pub enum ActivityKind {
    Quiz,
    Assign,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::ActivityArchiveState")]
pub enum ActivityArchiveState {
    NeverArchived,
    Archived,
    Changed,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::JobStatus")]
pub enum ArchiveJobStatus {
    Uninitialized,
    Queued,
    PreProcessing,
    ActivityArchiving,
    PostProcessing,
    Store,
    Sign,
    Cleanup,
    Completed,
    RecoverableError,
    ErrorHandling,
    Failure,
    Timeout,
    Canceled,
    Deleted,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::TaskStatus")]
pub enum ArchiveTaskStatus {
    Created,
    Queued,
    Running,
    Finalizing,
    Finished,
    Canceled,
    Failed,
    Timeout,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::JobOrigin")]
pub enum JobOrigin {
    /// Started by a person in the UI.
    Manual,
    /// Started by a schedule.
    Schedule,
    /// Started by a signal from the LMS.
    Signal,
    /// Started by another system through the API.
    Api,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::LogLevel")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ArchiveJobEventKind {
    /// The state when the subscription started.
    Snapshot,
    Created,
    StatusChanged,
    /// Progress moved; coalesced for slow clients.
    Progress,
    TaskChanged,
    /// A field changed without a status change (e.g. `cancelRequested`).
    Updated,
    /// The job's record was removed.
    Deleted,
    /// One of the job's stored files was deleted (see its `deletedAt`, `deletionReason`).
    FileDeleted,
    /// A fixity check found one of the job's stored files changed, missing or unreadable (see
    /// its `lastVerification`).
    FixityFailed,
    /// The job's packages could not be timestamped after its retries; the job log says why.
    TimestampFailed,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::error::UserErrorCode")]
pub enum UserErrorCode {
    /// A value is malformed or out of range.
    Invalid,
    /// A list that must not be empty is.
    Empty,
    TooMany,
    /// A referenced object does not exist.
    NotFound,
    MixedCourses,
    ArchivingDisabled,
    NotArchivable,
    InvalidFilenamePattern,
    PolicyLocked,
    /// The object is in a state that does not allow this.
    InvalidState,
    LegalHold,
    FilesExist,
    StorageUnavailable,
    /// Timestamping needs a Time-Stamp Authority, and none is configured.
    TsaNotConfigured,
    /// The Time-Stamp Authority gave no token that passed verification (the message says why).
    TimestampFailed,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::ArchiveFormat")]
pub enum ArchiveFormat {
    Zip,
    TarGz,
    TarZst,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::PolicyField")]
pub enum PolicyField {
    Format,
    FilenamePattern,
    RetentionDays,
    StorageBackends,
    Timestamping,
    JobTimeoutSeconds,
    AutoDelete,
    DeletionApproval,
    MaxConcurrentJobs,
    JobLogLevel,
    ReportOptions,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::StorageDriverKind", name = "StorageDriver")]
pub enum StorageDriver {
    LocalDirectory,
    S3,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::StorageTier")]
pub enum StorageTier {
    Local,
    RemoteFast,
    RemoteSlow,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "auth::Role")]
pub enum Role {
    Admin,
    Manager,
    Teacher,
    Auditor,
    Reporter,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "auth::Capability")]
pub enum Capability {
    View,
    Create,
    Delete,
    Download,
    Manage,
    Privacy,
    Audit,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum CourseOrderField {
    #[default]
    ShortName,
    FullName,
    /// The order courses were first seen in.
    Id,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum OrderDirection {
    #[default]
    Asc,
    Desc,
}

/// Why a stored file was deleted.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::DeletionReason")]
pub enum FileDeletionReason {
    /// Its retention ended; the policy deletes without approval (`deletedBy: system:retention`).
    RetentionExpired,
    /// Its retention ended and a person approved the pending deletion.
    DeletionApproved,
    /// Deleted by hand (`deleteArchiveFile`; see `deletionNote`).
    Manual,
    /// Deleted with its job (`deleteArchiveJob`).
    JobDeleted,
    /// Left by a job that ended without completing (canceled, failed, timed out).
    JobDiscarded,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::DeletionDecision")]
pub enum DeletionDecisionKind {
    Approved,
    /// The file is kept: retention does not propose or delete it again.
    Denied,
}

/// The outcome of the last fixity check of a stored file: its object re-read from its storage
/// and compared with the recorded size and SHA-256.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::FixityResult")]
pub enum FixityResult {
    /// Size and SHA-256 are the recorded ones.
    Ok,
    /// The object differs from what was stored (size or SHA-256): changed or damaged.
    Mismatch,
    /// The storage backend answers, but the object is gone.
    Missing,
    /// The storage backend answers, but this object cannot be read.
    Unreadable,
}
