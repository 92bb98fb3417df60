//! GraphQL object types. Each wraps a model and resolves fields through services and loaders.
mod activity;
mod audit;
mod category;
mod course;
mod enums;
mod job;
mod overview;
mod policy;
mod storage;
mod viewer;

use async_graphql::{
    connection::{Connection, Edge, EmptyFields},
    Interface, Object, OutputType,
};

pub use activity::Activity;
pub use audit::{AuditAction, AuditLogEntry};
pub use category::CourseCategory;
pub use course::Course;
pub use enums::*;
pub use job::{ArchiveFile, ArchiveJob, ArchiveJobEvent, ArchiveTask, JobLogEntry, TimestampToken};
pub use overview::ArchivingOverview;
pub use policy::{ActivityKindArchiving, ArchivingSwitchOrigin, ArchivingSwitchSource, Policy, ReportOptions, ReportOptionsInput};
pub use storage::StorageBackend;
pub use viewer::Viewer;

use crate::{
    error::{AppError, AppResult},
    service::Page,
};

/// Everything with a global id.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "async_graphql::ID", desc = "Opaque global id."))]
pub enum Node {
    Course(Course),
    CourseCategory(CourseCategory),
    Activity(Activity),
    StorageBackend(StorageBackend),
    ArchiveJob(ArchiveJob),
    ArchiveTask(ArchiveTask),
    ArchiveFile(ArchiveFile),
}

/// Something in a mutation's input the caller can fix.
#[derive(async_graphql::SimpleObject)]
pub struct UserError {
    /// Path to the input field, e.g. `["activityIds", "2"]`; `null` when no single field is at fault.
    pub field: Option<Vec<String>>,
    pub code: UserErrorCode,
    pub message: String,
}

impl From<crate::error::UserError> for UserError {
    fn from(e: crate::error::UserError) -> Self {
        Self { field: (!e.field.is_empty()).then_some(e.field), code: e.code.into(), message: e.message }
    }
}

/// The extra field every connection has.
pub struct ConnectionTotal(Option<u64>);

#[Object]
impl ConnectionTotal {
    /// How many items the connection holds across all pages.
    async fn total_count(&self) -> async_graphql::Result<u64> {
        // The service counts only when the selection asks for totalCount; if it did not count,
        // answering 0 would be a lie.
        self.0.ok_or_else(|| AppError::internal("totalCount was not computed").into())
    }
}

pub type Conn<T> = Connection<String, T, ConnectionTotal, EmptyFields>;

pub fn connection<M, T: OutputType>(page: Page<M>, wrap: impl Fn(M) -> T) -> AppResult<Conn<T>> {
    let mut c = Connection::with_additional_fields(page.has_previous, page.has_next, ConnectionTotal(page.total));
    c.edges.extend(page.items.into_iter().map(|(cursor, m)| Edge::new(cursor, wrap(m))));
    Ok(c)
}
