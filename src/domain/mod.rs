//! Pure logic without I/O: the names and rules of the product. Depends on nothing else in the crate.
pub mod activity;
pub mod audit;
pub mod failure;
pub mod fixity;
pub mod filename;
pub mod global_id;
pub mod job;
pub mod policy;
pub mod retention;
pub mod storage;
pub mod switches;

pub use activity::{ActivityArchiveState, ActivityKind};
pub use audit::AuditAction;
pub use failure::{Failure, FailureClass};
pub use fixity::FixityResult;
pub use job::{JobOrigin, JobStatus, LogLevel, TaskStatus};
pub use policy::{ArchiveFormat, JobSettings, PolicyField, PolicyValues, ReportOptions, ReportOptionsPatch, SettingsOverrides};
pub use retention::{DeletionDecision, DeletionReason};
pub use storage::{StorageDriverKind, StorageTier};
