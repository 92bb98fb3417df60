//! Archive jobs as users handle them: create, cancel, retry, delete, list, inspect.
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use uuid::Uuid;

use super::{
    audit, catalog,
    pagination::{paginate, Key, Ordering},
    policy, switches, Access, Page, PageArgs,
};
use crate::{
    auth::{Capability, Scope},
    domain::{
        filename::FilenamePattern,
        policy::{MAX_JOB_TIMEOUT_SECONDS, MAX_RETENTION_DAYS},
        ActivityKind, AuditAction, JobOrigin, JobSettings, JobStatus, LogLevel, SettingsOverrides, TaskStatus,
    },
    engine::{drivers, Engine},
    entity::{activity, archive_file, archive_job, archive_job_transition, archive_task, course, job_event, job_log, storage_backend, timestamp_token},
    error::{AppError, AppResult, UserError, UserErrorCode},
    jobs::Patch,
    storage,
};

/// The most activities one job may hold.
pub const MAX_ACTIVITIES: usize = 500;

pub struct CreateJob {
    pub activity_ids: Vec<i64>,
    pub overrides: SettingsOverrides,
    /// Storage backends by id (the API's ids), resolved to names here.
    pub storage_backend_ids: Option<Vec<i64>>,
    pub origin: JobOrigin,
}

/// A use case's answer when the caller can fix the input: the errors instead of a result.
pub type Outcome<T> = Result<T, Vec<UserError>>;

fn user_error(field: &[&str], code: UserErrorCode, message: impl Into<String>) -> UserError {
    UserError { field: field.iter().map(|s| s.to_string()).collect(), code, message: message.into() }
}

/// Creates a job with one task per activity, all in one course, and queues it. Nothing is
/// created when anything is wrong.
pub async fn create(engine: &Engine, access: &Access, input: CreateJob) -> AppResult<Outcome<archive_job::Model>> {
    let db = &engine.db;
    access.require(Capability::Create)?;
    let mut ids = input.activity_ids.clone();
    let mut seen = HashSet::new();
    ids.retain(|id| seen.insert(*id));
    if ids.is_empty() {
        return Ok(Err(vec![user_error(&["activityIds"], UserErrorCode::Empty, "name at least one activity")]));
    }
    if ids.len() > MAX_ACTIVITIES {
        return Ok(Err(vec![user_error(&["activityIds"], UserErrorCode::TooMany, format!("at most {MAX_ACTIVITIES} activities per job"))]));
    }
    // Activities the caller cannot see do not exist for them.
    let found = catalog::activities_visible(db, access, &ids).await?;
    if found.len() != ids.len() {
        return Err(AppError::NotFound);
    }
    let activities: Vec<activity::Model> = ids.iter().map(|id| found[id].clone()).collect();
    let course_id = activities[0].course_id;
    if activities.iter().any(|a| a.course_id != course_id) {
        return Ok(Err(vec![user_error(&["activityIds"], UserErrorCode::MixedCourses, "all activities of a job must be in one course")]));
    }
    let course = course::Entity::find_by_id(course_id)
        .filter(access.filter_by_course(course::Column::Id, Capability::Create))
        .one(db)
        .await?
        .ok_or(AppError::Forbidden)?;
    let mut errors = Vec::new();
    let decisions = switches::activities(db, &activities).await?;
    for (i, a) in activities.iter().enumerate() {
        let d = decisions.get(&a.id).copied().unwrap_or_default();
        if !d.enabled {
            let by = switches::describe(db, &d).await?;
            errors.push(UserError { field: vec!["activityIds".into(), i.to_string()], code: UserErrorCode::ArchivingDisabled, message: format!("{}: archiving is switched off {by}", a.name) });
        }
    }
    let now = Utc::now();
    for (i, a) in activities.iter().enumerate() {
        let kind: ActivityKind = a.kind.parse().map_err(|_| AppError::internal(format!("activity {} has unknown kind", a.id)))?;
        let info = drivers::ActivityInfo { id: a.id, lms_id: a.lms_id.clone(), kind, name: a.name.clone(), closes_at: a.closes_at };
        if let Err(reason) = drivers::can_be_archived(&info, now) {
            errors.push(UserError { field: vec!["activityIds".into(), i.to_string()], code: UserErrorCode::NotArchivable, message: format!("{}: {reason}", a.name) });
        }
    }

    // Settings: the policy's, overridden where asked and allowed.
    let mut policy = policy::load(db).await?;
    if policy.storage_backends.is_empty() {
        // Named, so that a caller naming the default backend asks for what the policy gives.
        let default = storage_backend::Entity::find().filter(storage_backend::Column::IsDefault.eq(true)).filter(storage_backend::Column::Enabled.eq(true)).one(db).await?;
        let default = default.ok_or_else(|| AppError::internal("no enabled default storage backend"))?;
        policy.storage_backends = vec![default.id];
    }
    let mut overrides = input.overrides.clone();
    if let Some(bids) = &input.storage_backend_ids {
        errors.extend(check_backends(db, bids, &["storageBackendIds"]).await?);
        overrides.storage_backends = Some(bids.clone());
    }
    if let Some(p) = &overrides.filename_pattern {
        if let Err(e) = FilenamePattern::parse(p) {
            errors.push(user_error(&["filenamePattern"], UserErrorCode::InvalidFilenamePattern, e.to_string()));
        }
    }
    if let Some(t) = overrides.job_timeout_seconds {
        if t == 0 || t > MAX_JOB_TIMEOUT_SECONDS {
            errors.push(user_error(&["jobTimeoutSeconds"], UserErrorCode::Invalid, format!("must be from 1 to {MAX_JOB_TIMEOUT_SECONDS}")));
        }
    }
    if let Some(Some(d)) = overrides.retention_days {
        if d == 0 || d > MAX_RETENTION_DAYS {
            errors.push(user_error(&["retentionDays"], UserErrorCode::Invalid, format!("must be from 1 to {MAX_RETENTION_DAYS}, or keep forever")));
        }
    }
    let mut settings: JobSettings = match policy.resolve(&overrides) {
        Ok(s) => s,
        Err(locked) => {
            for f in locked {
                errors.push(user_error(&[f.api_name()], UserErrorCode::PolicyLocked, format!("the policy locks {}", f.api_name())));
            }
            return Ok(Err(errors));
        }
    };
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let rows = storage_backend::Entity::find().filter(storage_backend::Column::Id.is_in(settings.storage_backend_ids.clone())).all(db).await?;
    for id in &settings.storage_backend_ids {
        match rows.iter().find(|b| b.id == *id) {
            Some(b) => settings.storage_backends.push(b.name.clone()),
            None => errors.push(user_error(&["storageBackendIds"], UserErrorCode::NotFound, format!("the policy names storage backend {id}, which no longer exists"))),
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    settings.log_level = Some(settings.log_level.unwrap_or(engine.settings.job_log_level));

    // One transaction, so one commit on SQLite's single writer: the job, its tasks, its creation
    // log line and event, its move to QUEUED and its queue message.
    let job_id = Uuid::new_v4();
    let txn = db.begin().await?;
    let job = archive_job::ActiveModel {
        id: Set(job_id),
        course_id: Set(course.id),
        status: Set(JobStatus::Uninitialized.to_string()),
        progress: Set(0),
        origin: Set(input.origin.to_string()),
        requested_by: Set(access.principal.subject.clone()),
        settings: Set(serde_json::to_value(&settings).map_err(anyhow::Error::from)?),
        attempt: Set(1),
        completed_stage: Set(None),
        error: Set(None),
        cancel_requested: Set(false),
        sequence: Set(0),
        created_at: Set(now),
        started_at: Set(None),
        finished_at: Set(None),
        deadline: Set(None),
        next_retry_at: Set(None),
        updated_at: Set(now),
        lease_owner: Set(None),
        lease_until: Set(None),
        retries: Set(0),
        failed_stage: Set(None),
        legal_hold: Set(false),
        legal_hold_reason: Set(None),
        legal_hold_since: Set(None),
        legal_hold_by: Set(None),
    }
    .insert(&txn)
    .await?;
    for a in &activities {
        archive_task::ActiveModel {
            job_id: Set(job_id),
            activity_id: Set(a.id),
            driver: Set(a.kind.to_lowercase()),
            status: Set(TaskStatus::Created.to_string()),
            progress: Set(0),
            fingerprint: Set(None),
            error: Set(None),
            created_at: Set(now),
            started_at: Set(None),
            finished_at: Set(None),
            updated_at: Set(now),
            lease_owner: Set(None),
            lease_until: Set(None),
            records_total: Set(0),
            records_done: Set(0),
            failure_transient: Set(false),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
    }
    engine.jobs.log_in(&txn, job_id, None, LogLevel::Info, &format!("created by {} ({}) for {} activities", job.requested_by, job.origin, activities.len())).await?;
    engine.jobs.created_in(&txn, &job).await?;
    let (from, to) = (JobStatus::Uninitialized, JobStatus::Queued);
    let queued = engine.jobs.transition_in(&txn, job_id, from, to, Patch::default(), "", None).await?.ok_or_else(|| AppError::internal("a job just created could not be queued"))?;
    let pushed = engine.queue.push_stage_in(&txn, job_id).await?;
    txn.commit().await?;
    engine.jobs.transitioned(&queued, from, to);
    pushed.committed();
    Ok(Ok(queued))
}

/// Errors for storage backend ids that are unknown, disabled or repeated (`field` is the list's
/// path; each error names the position).
pub(super) async fn check_backends<C: sea_orm::ConnectionTrait>(db: &C, ids: &[i64], field: &[&str]) -> AppResult<Vec<UserError>> {
    let rows = storage_backend::Entity::find().filter(storage_backend::Column::Id.is_in(ids.to_vec())).all(db).await?;
    let mut errors = Vec::new();
    let at = |i: usize| field.iter().map(|s| s.to_string()).chain([i.to_string()]).collect::<Vec<_>>();
    let mut seen = HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        match rows.iter().find(|b| b.id == *id) {
            _ if !seen.insert(*id) => errors.push(UserError { field: at(i), code: UserErrorCode::Invalid, message: "named twice: each backend holds one copy".into() }),
            Some(b) if b.enabled => {}
            Some(b) => errors.push(UserError { field: at(i), code: UserErrorCode::Invalid, message: format!("storage backend {} is disabled", b.name) }),
            None => errors.push(UserError { field: at(i), code: UserErrorCode::NotFound, message: "no such storage backend".into() }),
        }
    }
    if ids.is_empty() {
        errors.push(UserError { field: field.iter().map(|s| s.to_string()).collect(), code: UserErrorCode::Empty, message: "name at least one storage backend, or leave the field out".into() });
    }
    Ok(errors)
}

/// A job the caller may see; NOT_FOUND otherwise.
pub async fn get(db: &DatabaseConnection, access: &Access, id: Uuid) -> AppResult<archive_job::Model> {
    access.require(Capability::View)?;
    archive_job::Entity::find_by_id(id)
        .filter(access.filter_by_course(archive_job::Column::CourseId, Capability::View))
        .one(db)
        .await?
        .ok_or(AppError::NotFound)
}

/// The job, checked for `cap` in its course: NOT_FOUND when invisible, FORBIDDEN when visible
/// but not allowed.
async fn get_for(db: &DatabaseConnection, access: &Access, id: Uuid, cap: Capability) -> AppResult<archive_job::Model> {
    let job = get(db, access, id).await?;
    if access.scope(cap) == Scope::Nowhere {
        return Err(AppError::Forbidden);
    }
    archive_job::Entity::find_by_id(id)
        .filter(access.filter_by_course(archive_job::Column::CourseId, cap))
        .one(db)
        .await?
        .ok_or(AppError::Forbidden)?;
    Ok(job)
}

fn status(job: &archive_job::Model) -> AppResult<JobStatus> {
    job.status.parse().map_err(|_| AppError::internal(format!("job {} has unknown status", job.id)))
}

/// Cancels a job: at once when it has not started, otherwise between two steps of its work.
pub async fn cancel(engine: &Engine, access: &Access, id: Uuid) -> AppResult<Outcome<archive_job::Model>> {
    let job = get_for(&engine.db, access, id, Capability::Create).await?;
    let s = status(&job)?;
    if s.is_final() {
        return Ok(Err(vec![user_error(&["id"], UserErrorCode::InvalidState, format!("the job is already {s}"))]));
    }
    if matches!(s, JobStatus::Uninitialized | JobStatus::Queued) {
        let patch = Patch { cancel_requested: Some(true), finished_at: Some(Utc::now()), ..Default::default() };
        let note = format!("canceled by {}", access.principal.subject);
        if engine.jobs.transition(id, s, JobStatus::Canceled, patch, &note).await?.is_some() {
            let tasks = archive_task::Entity::find().filter(archive_task::Column::JobId.eq(id)).all(&engine.db).await?;
            for t in tasks {
                engine.jobs.task_transition(&t, &[TaskStatus::Created, TaskStatus::Queued], TaskStatus::Canceled, |am| am.finished_at = Set(Some(Utc::now()))).await?;
            }
            return Ok(Ok(get(&engine.db, access, id).await?));
        }
    }
    engine.jobs.request_cancel(id, &access.principal.subject).await?;
    engine.queue.push_stage(id, None).await?;
    Ok(Ok(get(&engine.db, access, id).await?))
}

/// Runs a FAILURE or TIMEOUT job again as a new attempt, from the stage that failed.
pub async fn retry(engine: &Engine, access: &Access, id: Uuid) -> AppResult<Outcome<archive_job::Model>> {
    let job = get_for(&engine.db, access, id, Capability::Create).await?;
    let s = status(&job)?;
    if !matches!(s, JobStatus::Failure | JobStatus::Timeout) {
        return Ok(Err(vec![user_error(&["id"], UserErrorCode::InvalidState, format!("only FAILURE or TIMEOUT jobs can be retried; this one is {s}"))]));
    }
    let patch = Patch {
        attempt: Some(job.attempt + 1),
        retries: Some(0),
        progress_reset: Some(0),
        error: Some(None),
        next_retry_at: Some(None),
        deadline: Some(None),
        cancel_requested: Some(false),
        // A timed-out job failed in the stage it was in.
        failed_stage: Some(job.failed_stage.clone().or(job.completed_stage.as_deref().and_then(|c| c.parse::<JobStatus>().ok()).and_then(|c| c.next_stage()).map(|s| s.to_string()))),
        ..Default::default()
    };
    let note = format!("attempt {} requested by {}", job.attempt + 1, access.principal.subject);
    let Some(j) = engine.jobs.transition(id, s, JobStatus::Queued, patch, &note).await? else {
        return Ok(Err(vec![user_error(&["id"], UserErrorCode::InvalidState, "the job changed meanwhile; look again")]));
    };
    engine.queue.push_stage(id, None).await?;
    Ok(Ok(j))
}

/// Deletes a finished job. With `delete_files` its stored files are removed through the one
/// deletion path and the job becomes DELETED (its record stays). Without, only a job that stored
/// nothing may go, and its record is removed entirely. Refused while the job or a file of it is
/// under legal hold. Audited: JOB_DELETED, and FILE_DELETED per file.
pub async fn delete(engine: &Engine, access: &Access, id: Uuid, delete_files: bool) -> AppResult<Outcome<Option<archive_job::Model>>> {
    let db = &engine.db;
    let job = get_for(db, access, id, Capability::Delete).await?;
    let s = status(&job)?;
    if !s.is_final() {
        return Ok(Err(vec![user_error(&["id"], UserErrorCode::InvalidState, format!("the job is {s}: cancel it first"))]));
    }
    if s == JobStatus::Deleted {
        return Ok(Err(vec![user_error(&["id"], UserErrorCode::InvalidState, "the job is already deleted")]));
    }
    let files = archive_file::Entity::find().filter(archive_file::Column::JobId.eq(id)).filter(archive_file::Column::DeletedAt.is_null()).all(db).await?;
    if job.legal_hold || files.iter().any(|f| f.legal_hold) {
        return Ok(Err(vec![user_error(&["id"], UserErrorCode::LegalHold, "the job or a file of it is under legal hold")]));
    }
    let actor = audit::Actor::of(access);
    let now = engine.clock.now();
    let target = || audit::Target::new("ArchiveJob", crate::domain::global_id::encode("ArchiveJob", id));
    if !delete_files {
        if !files.is_empty() {
            return Ok(Err(vec![user_error(&["deleteFiles"], UserErrorCode::FilesExist, "the job has stored files: delete them with it (deleteFiles: true)")]));
        }
        engine.remove_staging(id).await;
        let txn = db.begin().await?;
        audit::record(&txn, now, &actor, AuditAction::JobDeleted, target(), serde_json::json!({ "status": s.to_string(), "recordRemoved": true })).await?;
        engine.jobs.removed_in(&txn, &job).await?;
        txn.commit().await?;
        engine.jobs.events.committed();
        return Ok(Ok(None));
    }
    let d = storage::files::Deletion::by_person(actor.clone(), crate::domain::DeletionReason::JobDeleted, None, now);
    let mut deleted = 0;
    for f in &files {
        match storage::files::delete(&engine.jobs, f, &d).await {
            Ok(storage::files::Deleted::Now(_)) => deleted += 1,
            Ok(storage::files::Deleted::Already(_)) => {}
            Ok(storage::files::Deleted::Held) => {
                return Ok(Err(vec![user_error(&["id"], UserErrorCode::LegalHold, format!("{} was put under legal hold meanwhile; the job's other files may be deleted", f.file_name))]));
            }
            Err(e) => {
                tracing::warn!(file = f.id, error = %e, "deleting a stored file failed");
                return Ok(Err(vec![user_error(&["id"], UserErrorCode::StorageUnavailable, format!("could not delete {} from its storage; nothing else was changed for it, try again", f.file_name))]));
            }
        }
    }
    engine.remove_staging(id).await;
    let note = format!("job deleted by {}", access.principal.subject);
    let txn = db.begin().await?;
    let Some(j) = engine.jobs.transition_in(&txn, id, s, JobStatus::Deleted, Patch::default(), &note, None).await? else {
        txn.rollback().await?;
        return Ok(Err(vec![user_error(&["id"], UserErrorCode::InvalidState, "the job changed meanwhile; look again")]));
    };
    let details = serde_json::json!({ "status": s.to_string(), "filesDeleted": deleted, "recordRemoved": false });
    audit::record(&txn, now, &actor, AuditAction::JobDeleted, target(), details).await?;
    txn.commit().await?;
    engine.jobs.transitioned(&j, s, JobStatus::Deleted);
    Ok(Ok(Some(j)))
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub statuses: Vec<JobStatus>,
    pub course_id: Option<i64>,
    pub activity_id: Option<i64>,
    pub origins: Vec<JobOrigin>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

/// Jobs in scope, newest first.
pub async fn list(db: &DatabaseConnection, access: &Access, f: &JobFilter, args: &PageArgs) -> AppResult<Page<archive_job::Model>> {
    access.require(Capability::View)?;
    let mut q = archive_job::Entity::find().filter(access.filter_by_course(archive_job::Column::CourseId, Capability::View));
    if !f.statuses.is_empty() {
        q = q.filter(archive_job::Column::Status.is_in(f.statuses.iter().map(|s| s.to_string())));
    }
    if let Some(c) = f.course_id {
        q = q.filter(archive_job::Column::CourseId.eq(c));
    }
    if let Some(a) = f.activity_id {
        q = q.filter(
            archive_job::Column::Id.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(archive_task::Column::JobId)
                    .from(archive_task::Entity)
                    .and_where(archive_task::Column::ActivityId.eq(a))
                    .to_owned(),
            ),
        );
    }
    if !f.origins.is_empty() {
        q = q.filter(archive_job::Column::Origin.is_in(f.origins.iter().map(|s| s.to_string())));
    }
    if let Some(t) = f.created_after {
        q = q.filter(archive_job::Column::CreatedAt.gte(t));
    }
    if let Some(t) = f.created_before {
        q = q.filter(archive_job::Column::CreatedAt.lt(t));
    }
    let order = Ordering::<archive_job::Entity> {
        key: archive_job::Column::CreatedAt,
        tie: archive_job::Column::Id,
        descending: true,
        key_of: |m| (Key::T(m.created_at), Key::U(m.id)),
    };
    paginate(db, q, &order, args).await
}

pub async fn tasks_of(db: &DatabaseConnection, job_ids: &[Uuid]) -> AppResult<std::collections::HashMap<Uuid, Vec<archive_task::Model>>> {
    let rows = archive_task::Entity::find().filter(archive_task::Column::JobId.is_in(job_ids.to_vec())).order_by_asc(archive_task::Column::Id).all(db).await?;
    let mut out: std::collections::HashMap<Uuid, Vec<_>> = std::collections::HashMap::new();
    for r in rows {
        out.entry(r.job_id).or_default().push(r);
    }
    Ok(out)
}

/// The archive files of jobs: only stored ones (an intent whose object may not exist is the
/// engine's business until it is confirmed).
pub async fn files_of(db: &DatabaseConnection, job_ids: &[Uuid]) -> AppResult<std::collections::HashMap<Uuid, Vec<archive_file::Model>>> {
    let rows = archive_file::Entity::find()
        .filter(archive_file::Column::JobId.is_in(job_ids.to_vec()))
        .filter(archive_file::Column::StoredAt.is_not_null())
        .order_by_asc(archive_file::Column::Id)
        .all(db)
        .await?;
    let mut out: std::collections::HashMap<Uuid, Vec<_>> = std::collections::HashMap::new();
    for r in rows {
        out.entry(r.job_id).or_default().push(r);
    }
    Ok(out)
}

/// A job's log, oldest first, from `min_level` up. Every stored entry is reachable by paging.
pub async fn logs(db: &DatabaseConnection, job_id: Uuid, min_level: LogLevel, args: &PageArgs) -> AppResult<Page<job_log::Model>> {
    let q = job_log::Entity::find().filter(job_log::Column::JobId.eq(job_id)).filter(job_log::Column::Level.gte(min_level as i16));
    let order = Ordering::<job_log::Entity> { key: job_log::Column::Id, tie: job_log::Column::Id, descending: false, key_of: |m| (Key::I(m.id), Key::I(m.id)) };
    paginate(db, q, &order, args).await
}

/// Jobs by id that the caller may see.
pub async fn visible(db: &DatabaseConnection, access: &Access, ids: &[Uuid]) -> AppResult<std::collections::HashMap<Uuid, archive_job::Model>> {
    if ids.is_empty() || access.require(Capability::View).is_err() {
        return Ok(Default::default());
    }
    let rows = archive_job::Entity::find()
        .filter(archive_job::Column::Id.is_in(ids.to_vec()))
        .filter(access.filter_by_course(archive_job::Column::CourseId, Capability::View))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|m| (m.id, m)).collect())
}

/// Tasks by id whose job the caller may see.
pub async fn tasks_visible(db: &DatabaseConnection, access: &Access, ids: &[i64]) -> AppResult<std::collections::HashMap<i64, archive_task::Model>> {
    if ids.is_empty() || access.require(Capability::View).is_err() {
        return Ok(Default::default());
    }
    let rows = archive_task::Entity::find()
        .filter(archive_task::Column::Id.is_in(ids.to_vec()))
        .filter(archive_task::Column::JobId.in_subquery(visible_job_ids(access)))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|m| (m.id, m)).collect())
}

/// Files by id whose job the caller may see.
pub async fn files_visible(db: &DatabaseConnection, access: &Access, ids: &[i64]) -> AppResult<std::collections::HashMap<i64, archive_file::Model>> {
    if ids.is_empty() || access.require(Capability::View).is_err() {
        return Ok(Default::default());
    }
    let rows = archive_file::Entity::find()
        .filter(archive_file::Column::Id.is_in(ids.to_vec()))
        .filter(archive_file::Column::StoredAt.is_not_null())
        .filter(archive_file::Column::JobId.in_subquery(visible_job_ids(access)))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|m| (m.id, m)).collect())
}

fn visible_job_ids(access: &Access) -> sea_orm::sea_query::SelectStatement {
    sea_orm::sea_query::Query::select()
        .column(archive_job::Column::Id)
        .from(archive_job::Entity)
        .cond_where(access.filter_by_course(archive_job::Column::CourseId, Capability::View))
        .to_owned()
}

/// The status changes of each job, oldest first, in one statement.
pub async fn transitions_of(db: &DatabaseConnection, job_ids: &[Uuid]) -> AppResult<std::collections::HashMap<Uuid, Vec<archive_job_transition::Model>>> {
    let rows = archive_job_transition::Entity::find()
        .filter(archive_job_transition::Column::JobId.is_in(job_ids.to_vec()))
        .order_by_asc(archive_job_transition::Column::Id)
        .all(db)
        .await?;
    let mut out: std::collections::HashMap<Uuid, Vec<_>> = std::collections::HashMap::new();
    for r in rows {
        out.entry(r.job_id).or_default().push(r);
    }
    Ok(out)
}

/// The RFC 3161 timestamps of each archive file, oldest first, in one statement.
pub async fn timestamps_of(db: &DatabaseConnection, file_ids: &[i64]) -> AppResult<std::collections::HashMap<i64, Vec<timestamp_token::Model>>> {
    let rows = timestamp_token::Entity::find()
        .filter(timestamp_token::Column::FileId.is_in(file_ids.to_vec()))
        .order_by_asc(timestamp_token::Column::Id)
        .all(db)
        .await?;
    let mut out: std::collections::HashMap<i64, Vec<_>> = std::collections::HashMap::new();
    for r in rows {
        out.entry(r.file_id).or_default().push(r);
    }
    Ok(out)
}

/// The jobs in scope that have not ended, newest first (at most `limit`): the current state a
/// dashboard starts from.
pub async fn unfinished(db: &DatabaseConnection, access: &Access, course_ids: Option<&HashSet<i64>>, limit: u64) -> AppResult<Vec<archive_job::Model>> {
    use sea_orm::QuerySelect;
    use strum::IntoEnumIterator;
    let open: Vec<String> = JobStatus::iter().filter(|s| !s.is_final()).map(|s| s.to_string()).collect();
    let mut q = archive_job::Entity::find()
        .filter(archive_job::Column::Status.is_in(open))
        .filter(access.filter_by_course(archive_job::Column::CourseId, Capability::View));
    if let Some(c) = course_ids {
        q = q.filter(archive_job::Column::CourseId.is_in(c.iter().copied()));
    }
    Ok(q.order_by_desc(archive_job::Column::CreatedAt).limit(limit).all(db).await?)
}

/// Where a subscriber resumes after a reconnect.
#[derive(Debug, Clone, Copy)]
pub enum Resume {
    /// One job's events after this sequence number.
    JobAfterSequence(Uuid, i64),
    /// Events (of jobs in these courses, or all visible) after this event id.
    AfterEvent(i64),
}

/// The logged events a resuming subscriber missed, oldest first, at most `limit` (more means
/// it is too far behind: it should start from the current state instead). Scoped like every
/// other read: only jobs of courses the caller may view.
pub async fn missed_events(db: &DatabaseConnection, access: &Access, resume: Resume, course_ids: Option<&HashSet<i64>>, limit: u64) -> AppResult<Vec<crate::events::JobEvent>> {
    use sea_orm::QuerySelect;
    let mut q = job_event::Entity::find().filter(access.filter_by_course(job_event::Column::CourseId, Capability::View));
    q = match resume {
        Resume::JobAfterSequence(job, seq) => q.filter(job_event::Column::JobId.eq(job)).filter(job_event::Column::Sequence.gt(seq)).order_by_asc(job_event::Column::Sequence),
        Resume::AfterEvent(id) => q.filter(job_event::Column::Id.gt(id)).order_by_asc(job_event::Column::Id),
    };
    if let Some(c) = course_ids {
        q = q.filter(job_event::Column::CourseId.is_in(c.iter().copied()));
    }
    let rows = q.limit(limit).all(db).await?;
    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.job_id).collect();
    ids.sort();
    ids.dedup();
    let jobs: std::collections::HashMap<Uuid, archive_job::Model> = archive_job::Entity::find().filter(archive_job::Column::Id.is_in(ids)).all(db).await?.into_iter().map(|j| (j.id, j)).collect();
    Ok(rows.into_iter().filter_map(|r| {
        let current = jobs.get(&r.job_id);
        crate::events::JobEvent::from_row(r, current)
    }).collect())
}

/// The id of the newest logged event: where a subscriber starting now would resume from.
pub async fn latest_event_id(db: &DatabaseConnection) -> AppResult<i64> {
    use sea_orm::QuerySelect;
    Ok(job_event::Entity::find().select_only().column_as(job_event::Column::Id.max(), "m").into_tuple::<Option<i64>>().one(db).await?.flatten().unwrap_or(0))
}
