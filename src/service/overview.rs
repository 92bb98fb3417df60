//! The archiving overview: what is archived, what runs, what is stored, within the caller's scope.
use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, JoinType, QueryFilter, QueryOrder, QuerySelect, RelationTrait,
    sea_query::Expr,
};

use super::{catalog, Access};
use crate::{
    auth::Capability,
    domain::{ActivityArchiveState, FixityResult, JobStatus},
    entity::{archive_file, archive_job, storage_backend},
    error::AppResult,
};

#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub activities: HashMap<ActivityArchiveState, u64>,
    pub jobs: Vec<(JobStatus, u64)>,
    pub stored_files: u64,
    pub stored_bytes: u64,
    /// Stored files (not deleted) by the result of their last fixity check; `None`: not checked yet.
    pub fixity: HashMap<Option<FixityResult>, u64>,
    /// Every backend not deleted, with its last health check (global, whatever the scope).
    pub storage_backends: Vec<storage_backend::Model>,
}

#[derive(FromQueryResult)]
struct StatusCount {
    status: String,
    n: i64,
}

#[derive(FromQueryResult)]
struct FixityCount {
    last_verification: Option<String>,
    n: i64,
}

#[derive(FromQueryResult)]
struct Stored {
    files: i64,
    bytes: Option<i64>,
}

pub async fn overview(db: &DatabaseConnection, access: &Access, course_id: Option<i64>) -> AppResult<Overview> {
    access.require(Capability::View)?;
    let activities = catalog::count_activities_by_state(db, access, course_id).await?;

    let mut jobs_q = archive_job::Entity::find()
        .select_only()
        .column(archive_job::Column::Status)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .filter(access.filter_by_course(archive_job::Column::CourseId, Capability::View))
        .group_by(archive_job::Column::Status);
    if let Some(c) = course_id {
        jobs_q = jobs_q.filter(archive_job::Column::CourseId.eq(c));
    }
    let mut jobs: Vec<(JobStatus, u64)> = jobs_q
        .into_model::<StatusCount>()
        .all(db)
        .await?
        .into_iter()
        .filter_map(|r| Some((r.status.parse().ok()?, r.n as u64)))
        .collect();
    jobs.sort_by_key(|(s, _)| s.to_string());

    // SUM is NUMERIC on PostgreSQL: cast back to BIGINT so both databases return an integer.
    let mut stored_q = archive_file::Entity::find()
        .select_only()
        .column_as(Expr::cust("COUNT(*)"), "files")
        .column_as(Expr::cust("CAST(SUM(archive_file.size_bytes) AS BIGINT)"), "bytes")
        .join(JoinType::InnerJoin, archive_file::Relation::ArchiveJob.def())
        .filter(archive_file::Column::DeletedAt.is_null())
        .filter(archive_file::Column::StoredAt.is_not_null())
        .filter(access.filter_by_course(archive_job::Column::CourseId, Capability::View));
    if let Some(c) = course_id {
        stored_q = stored_q.filter(archive_job::Column::CourseId.eq(c));
    }
    let fixity = stored_q
        .clone()
        .select_only()
        .column(archive_file::Column::LastVerification)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .group_by(archive_file::Column::LastVerification)
        .into_model::<FixityCount>()
        .all(db)
        .await?
        .into_iter()
        // A result this server does not know (written by a newer version) counts as not checked.
        .fold(HashMap::<Option<FixityResult>, u64>::new(), |mut m, r| {
            *m.entry(r.last_verification.and_then(|v| v.parse::<FixityResult>().ok())).or_insert(0) += r.n as u64;
            m
        });
    let stored = stored_q.into_model::<Stored>().one(db).await?;
    let (stored_files, stored_bytes) = stored.map_or((0, 0), |s| (s.files as u64, s.bytes.unwrap_or(0) as u64));
    let storage_backends = storage_backend::Entity::find()
        .filter(storage_backend::Column::DeletedAt.is_null())
        .order_by_asc(storage_backend::Column::Id)
        .all(db)
        .await?;
    Ok(Overview { activities, jobs, stored_files, stored_bytes, fixity, storage_backends })
}
