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
    JobTimeoutMinutes,
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
