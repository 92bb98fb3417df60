//! Retention and deletion of stored files as users and the server handle them: deleting one file
//! by hand, legal holds on jobs and files, approval mode's pending deletions and decisions, and
//! the periodic retention sweep. Every deletion goes through `storage::files::delete`, which
//! refuses held files and records the deletion, its audit entry and its job event together.
//!
//! Permissions: deleting a file, listing and deciding pending deletions, and *setting* a legal
//! hold need `DELETE` in the file's or job's course (whoever may delete may also protect);
//! *releasing* a hold needs `MANAGE` (admins), so that a hold cannot be lifted by those it
//! restrains.
use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::{Expr, Query, SelectStatement},
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::{
    audit::{self, Actor, Target},
    jobs::Outcome,
    pagination::{paginate, Key, Ordering},
    policy, Access, Page, PageArgs,
};
use crate::{
    auth::{Capability, Scope},
    domain::{
        global_id,
        retention::{system_actor, ExpiryAction},
        AuditAction, DeletionDecision, DeletionReason, JobStatus,
    },
    engine::Engine,
    entity::{archive_file, archive_job},
    error::{AppError, AppResult, UserError, UserErrorCode},
    events::JobEventKind,
    storage::files::{self, Deleted, Deletion},
};

/// Files the retention sweep handles per query.
pub const BATCH: u64 = 100;
/// The most files one decision names.
pub const MAX_DECISIONS: usize = 100;
/// The longest reason accepted (reasons go into the audit log).
pub const MAX_REASON: usize = 2000;
/// The name of the periodic task, and of the server when it deletes there (`system:retention`).
pub const TASK: &str = "retention";

fn user_error(field: &[&str], code: UserErrorCode, message: impl Into<String>) -> UserError {
    UserError { field: field.iter().map(|s| s.to_string()).collect(), code, message: message.into() }
}

/// The ids of the jobs in courses where `cap` holds.
fn job_ids_where(access: &Access, cap: Capability) -> SelectStatement {
    Query::select().column(archive_job::Column::Id).from(archive_job::Entity).cond_where(access.filter_by_course(archive_job::Column::CourseId, cap)).to_owned()
}

fn held_job_ids() -> SelectStatement {
    Query::select().column(archive_job::Column::Id).from(archive_job::Entity).and_where(archive_job::Column::LegalHold.eq(true)).to_owned()
}

/// A stored file the caller may see, checked for `cap` in its job's course: NOT_FOUND when
/// invisible, FORBIDDEN when visible but not allowed.
pub(super) async fn file_for(db: &DatabaseConnection, access: &Access, id: i64, cap: Capability) -> AppResult<archive_file::Model> {
    access.require(Capability::View)?;
    let f = archive_file::Entity::find_by_id(id)
        .filter(archive_file::Column::StoredAt.is_not_null())
        .filter(archive_file::Column::JobId.in_subquery(job_ids_where(access, Capability::View)))
        .one(db)
        .await?
        .ok_or(AppError::NotFound)?;
    allowed_in_job(db, access, f.job_id, cap).await?;
    Ok(f)
}

async fn allowed_in_job(db: &DatabaseConnection, access: &Access, job_id: Uuid, cap: Capability) -> AppResult<()> {
    if access.scope(cap) == Scope::Nowhere {
        return Err(AppError::Forbidden);
    }
    let n = archive_job::Entity::find_by_id(job_id).filter(access.filter_by_course(archive_job::Column::CourseId, cap)).count(db).await?;
    if n == 0 {
        return Err(AppError::Forbidden);
    }
    Ok(())
}

/// A reason as given: trimmed, `None` when blank, an error when too long.
fn reason_of(reason: Option<&str>) -> Result<Option<String>, UserError> {
    let r = reason.map(str::trim).filter(|r| !r.is_empty());
    match r {
        Some(r) if r.chars().count() > MAX_REASON => Err(user_error(&["reason"], UserErrorCode::Invalid, format!("at most {MAX_REASON} characters"))),
        r => Ok(r.map(str::to_string)),
    }
}

/// `deleteArchiveFile`: deletes one stored file now, with the reason the caller gives.
pub async fn delete_file(engine: &Engine, access: &Access, id: i64, reason: &str) -> AppResult<Outcome<archive_file::Model>> {
    let f = file_for(&engine.db, access, id, Capability::Delete).await?;
    let note = match reason_of(Some(reason)) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(Err(vec![user_error(&["reason"], UserErrorCode::Empty, "say why the file is deleted")])),
        Err(e) => return Ok(Err(vec![e])),
    };
    if f.deleted_at.is_some() {
        return Ok(Err(vec![user_error(&["id"], UserErrorCode::InvalidState, "the file is already deleted")]));
    }
    let d = Deletion::by_person(Actor::of(access), DeletionReason::Manual, Some(note), engine.clock.now());
    Ok(match files::delete(&engine.jobs, &f, &d).await {
        Ok(Deleted::Now(m)) => Ok(m),
        Ok(Deleted::Already(_)) => Err(vec![user_error(&["id"], UserErrorCode::InvalidState, "the file is already deleted")]),
        Ok(Deleted::Held) => Err(vec![user_error(&["id"], UserErrorCode::LegalHold, "the file or its job is under legal hold")]),
        Err(e) => {
            tracing::warn!(file = f.id, error = %e, "deleting a stored file failed");
            Err(vec![user_error(&["id"], UserErrorCode::StorageUnavailable, format!("could not delete {} from its storage; nothing was changed, try again", f.file_name))])
        }
    })
}

/// What a legal hold is put on or lifted from.
#[derive(Debug, Clone, Copy)]
pub enum HoldTarget {
    Job(Uuid),
    File(i64),
}

/// The object after `set_legal_hold`.
#[derive(Debug, Clone)]
pub enum HoldSubject {
    Job(archive_job::Model),
    File(archive_file::Model),
}

/// `setLegalHold`: puts a hold (with a reason) on a job or a file, or releases it.
pub async fn set_legal_hold(engine: &Engine, access: &Access, target: HoldTarget, hold: bool, reason: Option<&str>) -> AppResult<Outcome<HoldSubject>> {
    let db = &engine.db;
    let cap = if hold { Capability::Delete } else { Capability::Manage };
    let reason = match reason_of(reason) {
        Ok(r) => r,
        Err(e) => return Ok(Err(vec![e])),
    };
    if hold && reason.is_none() {
        return Ok(Err(vec![user_error(&["reason"], UserErrorCode::Empty, "say why the hold is set")]));
    }
    let now = engine.clock.now();
    let actor = Actor::of(access);
    let (since, by) = if hold { (Some(now), Some(actor.subject.clone())) } else { (None, None) };
    let action = if hold { AuditAction::LegalHoldSet } else { AuditAction::LegalHoldReleased };
    let verb = if hold { "set" } else { "released" };
    match target {
        HoldTarget::Job(id) => {
            let job = super::jobs::get(db, access, id).await?;
            allowed_in_job(db, access, id, cap).await?;
            let update = archive_job::Entity::update_many()
                .col_expr(archive_job::Column::LegalHold, Expr::val(hold).into())
                .col_expr(archive_job::Column::LegalHoldReason, Expr::val(reason.clone()).into())
                .col_expr(archive_job::Column::LegalHoldSince, Expr::val(since).into())
                .col_expr(archive_job::Column::LegalHoldBy, Expr::val(by).into())
                .filter(archive_job::Column::LegalHold.eq(!hold))
                .filter(archive_job::Column::Status.ne(JobStatus::Deleted.to_string()));
            let note = format!("legal hold {verb} by {}", actor.subject);
            let txn = db.begin().await?;
            let Some(changed) = engine.jobs.change_in_txn(&txn, id, update, JobEventKind::Updated, &note).await? else {
                txn.rollback().await?;
                let now_job = super::jobs::get(db, access, id).await?;
                let why = if now_job.status == JobStatus::Deleted.to_string() {
                    "the job is deleted"
                } else if hold {
                    "the job is already under legal hold"
                } else {
                    "the job is not under legal hold"
                };
                return Ok(Err(vec![user_error(&["id"], UserErrorCode::InvalidState, why)]));
            };
            let details = serde_json::json!({
                "reason": reason,
                "before": { "legalHold": job.legal_hold, "legalHoldReason": job.legal_hold_reason },
                "after": { "legalHold": hold, "legalHoldReason": changed.legal_hold_reason },
            });
            audit::record(&txn, now, &actor, action, Target::new("ArchiveJob", global_id::encode("ArchiveJob", id)), details).await?;
            txn.commit().await?;
            engine.jobs.events.committed();
            Ok(Ok(HoldSubject::Job(changed)))
        }
        HoldTarget::File(id) => {
            let f = file_for(db, access, id, cap).await?;
            if f.deleted_at.is_some() {
                return Ok(Err(vec![user_error(&["id"], UserErrorCode::InvalidState, "the file is deleted")]));
            }
            let txn = db.begin().await?;
            // The job's row first, as the deletion path claims it first: the two never deadlock.
            let note = format!("legal hold on {} {verb} by {}", f.file_name, actor.subject);
            engine.jobs.change_in_txn(&txn, f.job_id, archive_job::Entity::update_many(), JobEventKind::Updated, &note).await?;
            let moved = archive_file::Entity::update_many()
                .col_expr(archive_file::Column::LegalHold, Expr::val(hold).into())
                .col_expr(archive_file::Column::LegalHoldReason, Expr::val(reason.clone()).into())
                .col_expr(archive_file::Column::LegalHoldSince, Expr::val(since).into())
                .col_expr(archive_file::Column::LegalHoldBy, Expr::val(by).into())
                .filter(archive_file::Column::Id.eq(id))
                .filter(archive_file::Column::LegalHold.eq(!hold))
                .filter(archive_file::Column::DeletedAt.is_null())
                .exec(&txn)
                .await?;
            if moved.rows_affected == 0 {
                txn.rollback().await?;
                let now_file = file_for(db, access, id, Capability::View).await?;
                let why = if now_file.deleted_at.is_some() {
                    "the file is deleted"
                } else if hold {
                    "the file is already under legal hold"
                } else {
                    "the file is not under legal hold"
                };
                return Ok(Err(vec![user_error(&["id"], UserErrorCode::InvalidState, why)]));
            }
            let details = serde_json::json!({
                "jobId": global_id::encode("ArchiveJob", f.job_id),
                "fileName": f.file_name,
                "reason": reason,
                "before": { "legalHold": f.legal_hold, "legalHoldReason": f.legal_hold_reason },
                "after": { "legalHold": hold, "legalHoldReason": reason },
            });
            audit::record(&txn, now, &actor, action, Target::new("ArchiveFile", files::file_global_id(id)), details).await?;
            txn.commit().await?;
            engine.jobs.events.committed();
            let f = archive_file::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound)?;
            Ok(Ok(HoldSubject::File(f)))
        }
    }
}

/// `pendingDeletions`: files whose retention ended and wait for a decision (approval mode), in
/// the caller's `DELETE` scope, oldest first. Held files are left out until released.
pub async fn pending(db: &DatabaseConnection, access: &Access, args: &PageArgs) -> AppResult<Page<archive_file::Model>> {
    access.require(Capability::Delete)?;
    let q = archive_file::Entity::find()
        .filter(archive_file::Column::DeletionPendingSince.is_not_null())
        .filter(archive_file::Column::DeletionDecision.is_null())
        .filter(archive_file::Column::DeletedAt.is_null())
        .filter(archive_file::Column::LegalHold.eq(false))
        .filter(archive_file::Column::JobId.in_subquery(job_ids_where(access, Capability::Delete)))
        .filter(archive_file::Column::JobId.not_in_subquery(held_job_ids()));
    let order = Ordering::<archive_file::Entity> { key: archive_file::Column::Id, tie: archive_file::Column::Id, descending: false, key_of: |m| (Key::I(m.id), Key::I(m.id)) };
    paginate(db, q, &order, args).await
}

/// What a bulk decision did: the files decided (as they are now) and why others were not.
#[derive(Debug, Default)]
pub struct Decided {
    pub files: Vec<archive_file::Model>,
    pub errors: Vec<UserError>,
}

/// `decidePendingDeletions`: approves (deletes through the one path) or denies (keeps, for good)
/// pending deletions. The whole input is checked first; when any file cannot be decided nothing
/// is done. A deletion that fails in storage is reported for its file; the others go ahead.
pub async fn decide(engine: &Engine, access: &Access, ids: &[i64], approve: bool, reason: Option<&str>) -> AppResult<Decided> {
    let db = &engine.db;
    access.require(Capability::Delete)?;
    let fail = |e: UserError| Ok(Decided { files: vec![], errors: vec![e] });
    if ids.is_empty() {
        return fail(user_error(&["fileIds"], UserErrorCode::Empty, "name at least one file"));
    }
    if ids.len() > MAX_DECISIONS {
        return fail(user_error(&["fileIds"], UserErrorCode::TooMany, format!("at most {MAX_DECISIONS} files per decision")));
    }
    let reason = match reason_of(reason) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if !approve && reason.is_none() {
        return fail(user_error(&["reason"], UserErrorCode::Empty, "say why the files are kept"));
    }
    let found: std::collections::HashMap<i64, archive_file::Model> = archive_file::Entity::find()
        .filter(archive_file::Column::Id.is_in(ids.to_vec()))
        .filter(archive_file::Column::StoredAt.is_not_null())
        .filter(archive_file::Column::JobId.in_subquery(job_ids_where(access, Capability::Delete)))
        .all(db)
        .await?
        .into_iter()
        .map(|f| (f.id, f))
        .collect();
    let job_ids: Vec<Uuid> = found.values().map(|f| f.job_id).collect();
    let held_jobs: std::collections::HashSet<Uuid> =
        archive_job::Entity::find().filter(archive_job::Column::Id.is_in(job_ids)).filter(archive_job::Column::LegalHold.eq(true)).all(db).await?.into_iter().map(|j| j.id).collect();
    let mut errors = Vec::new();
    let mut chosen = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        if !seen.insert(*id) {
            continue;
        }
        let field = ["fileIds".to_string(), i.to_string()];
        let err = |code, message: &str| UserError { field: field.to_vec(), code, message: message.into() };
        match found.get(id) {
            None => errors.push(err(UserErrorCode::NotFound, "no such file in your scope")),
            Some(f) if f.deleted_at.is_some() || f.deletion_pending_since.is_none() || f.deletion_decision.is_some() => {
                errors.push(err(UserErrorCode::InvalidState, &format!("{} is not waiting for a decision", f.file_name)))
            }
            Some(f) if f.legal_hold || held_jobs.contains(&f.job_id) => errors.push(err(UserErrorCode::LegalHold, &format!("{} is under legal hold", f.file_name))),
            Some(f) => chosen.push((i, f.clone())),
        }
    }
    if !errors.is_empty() {
        return Ok(Decided { files: vec![], errors });
    }
    let actor = Actor::of(access);
    let now = engine.clock.now();
    let mut out = Decided::default();
    for (i, f) in chosen {
        let field = vec!["fileIds".to_string(), i.to_string()];
        if approve {
            let d = Deletion::by_person(actor.clone(), DeletionReason::DeletionApproved, reason.clone(), now);
            match files::delete(&engine.jobs, &f, &d).await {
                Ok(Deleted::Now(m)) => out.files.push(m),
                Ok(Deleted::Already(_)) => out.errors.push(UserError { field, code: UserErrorCode::InvalidState, message: format!("{} was deleted meanwhile", f.file_name) }),
                Ok(Deleted::Held) => out.errors.push(UserError { field, code: UserErrorCode::LegalHold, message: format!("{} was put under legal hold meanwhile", f.file_name) }),
                Err(e) => {
                    tracing::warn!(file = f.id, error = %e, "an approved deletion failed");
                    out.errors.push(UserError { field, code: UserErrorCode::StorageUnavailable, message: format!("could not delete {} from its storage; it still waits, try again", f.file_name) });
                }
            }
        } else {
            match deny(engine, &actor, &f, reason.as_deref().unwrap_or_default(), now).await? {
                Some(m) => out.files.push(m),
                None => out.errors.push(UserError { field, code: UserErrorCode::InvalidState, message: format!("{} was decided or deleted meanwhile", f.file_name) }),
            }
        }
    }
    Ok(out)
}

/// Records a denial: the file stays and is not proposed again. `None` when it was decided,
/// deleted or held meanwhile.
async fn deny(engine: &Engine, actor: &Actor, f: &archive_file::Model, reason: &str, now: DateTime<Utc>) -> AppResult<Option<archive_file::Model>> {
    let db = &engine.db;
    let txn = db.begin().await?;
    let note = format!("deletion of {} denied by {}", f.file_name, actor.subject);
    // The job's row first, as the deletion path claims it first.
    engine.jobs.change_in_txn(&txn, f.job_id, archive_job::Entity::update_many(), JobEventKind::Updated, &note).await?;
    let moved = archive_file::Entity::update_many()
        .col_expr(archive_file::Column::DeletionDecision, Expr::val(Some(DeletionDecision::Denied.to_string())).into())
        .col_expr(archive_file::Column::DeletionDecidedBy, Expr::val(Some(actor.subject.clone())).into())
        .col_expr(archive_file::Column::DeletionDecidedAt, Expr::val(Some(now)).into())
        .col_expr(archive_file::Column::DeletionDecisionReason, Expr::val(Some(reason.to_string())).into())
        .filter(archive_file::Column::Id.eq(f.id))
        .filter(archive_file::Column::DeletionPendingSince.is_not_null())
        .filter(archive_file::Column::DeletionDecision.is_null())
        .filter(archive_file::Column::DeletedAt.is_null())
        .exec(&txn)
        .await?;
    if moved.rows_affected == 0 {
        txn.rollback().await?;
        return Ok(None);
    }
    let details = serde_json::json!({
        "jobId": global_id::encode("ArchiveJob", f.job_id),
        "fileName": f.file_name,
        "reason": reason,
        "retentionUntil": f.retention_until,
    });
    audit::record(&txn, now, actor, AuditAction::DeletionDenied, Target::new("ArchiveFile", files::file_global_id(f.id)), details).await?;
    txn.commit().await?;
    engine.jobs.events.committed();
    Ok(archive_file::Entity::find_by_id(f.id).one(db).await?)
}

/// What one run of the retention sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub deleted: u64,
    pub pending: u64,
    /// Files that could not be deleted now (storage trouble); the next run tries again.
    pub failed: u64,
}

/// The periodic retention sweep: acts on stored files of completed jobs whose retention ended
/// (`retention_until <= now` by the engine's clock), not held, not denied, in batches — deletes
/// them, or lists them for approval, or leaves them, as the current policy says. Safe beside a
/// concurrent run: deletions claim their rows, and a file becomes pending once.
pub async fn sweep(engine: &Engine) -> anyhow::Result<SweepReport> {
    let db = &engine.db;
    let now = engine.clock.now();
    let policy = match policy::load(db).await {
        Ok(p) => p,
        Err(AppError::Internal(e)) => return Err(e.context("loading the policy")),
        Err(other) => anyhow::bail!("loading the policy: {:?}", other.code()),
    };
    let action = ExpiryAction::of(&policy);
    let mut report = SweepReport::default();
    if action == ExpiryAction::Keep {
        return Ok(report);
    }
    let actor = Actor::system(TASK);
    let mut after = 0i64;
    loop {
        let mut q = archive_file::Entity::find()
            .filter(archive_file::Column::Id.gt(after))
            .filter(archive_file::Column::DeletedAt.is_null())
            .filter(archive_file::Column::StoredAt.is_not_null())
            .filter(archive_file::Column::RetentionUntil.lte(now))
            .filter(archive_file::Column::LegalHold.eq(false))
            .filter(archive_file::Column::DeletionDecision.is_null())
            .filter(archive_file::Column::JobId.in_subquery(
                Query::select().column(archive_job::Column::Id).from(archive_job::Entity).and_where(archive_job::Column::Status.eq(JobStatus::Completed.to_string())).to_owned(),
            ))
            .filter(archive_file::Column::JobId.not_in_subquery(held_job_ids()));
        if action == ExpiryAction::AskForApproval {
            q = q.filter(archive_file::Column::DeletionPendingSince.is_null());
        }
        let batch = q.order_by_asc(archive_file::Column::Id).limit(BATCH).all(db).await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        if action == ExpiryAction::AskForApproval {
            report.pending += mark_pending(engine, &actor, &batch, now).await?;
        } else {
            let d = Deletion::by_server(actor.clone(), TASK, DeletionReason::RetentionExpired, now);
            for f in &batch {
                match files::delete(&engine.jobs, f, &d).await {
                    Ok(Deleted::Now(_)) => report.deleted += 1,
                    Ok(_) => {}
                    Err(e) => {
                        report.failed += 1;
                        tracing::warn!(file = f.id, job = %f.job_id, error = %e, "retention: could not delete an expired file; the next run tries again");
                    }
                }
            }
        }
    }
    if report != SweepReport::default() {
        tracing::info!(deleted = report.deleted, pending = report.pending, failed = report.failed, by = %system_actor(TASK), "retention sweep");
    }
    Ok(report)
}

/// Marks expired files as waiting for a decision, each once (with its DELETION_PENDING entry).
async fn mark_pending(engine: &Engine, actor: &Actor, batch: &[archive_file::Model], now: DateTime<Utc>) -> anyhow::Result<u64> {
    let txn = engine.db.begin().await?;
    let mut n = 0;
    for f in batch {
        let moved = archive_file::Entity::update_many()
            .col_expr(archive_file::Column::DeletionPendingSince, Expr::val(Some(now)).into())
            .filter(archive_file::Column::Id.eq(f.id))
            .filter(archive_file::Column::DeletionPendingSince.is_null())
            .filter(archive_file::Column::DeletedAt.is_null())
            .exec(&txn)
            .await?;
        if moved.rows_affected == 1 {
            let details = serde_json::json!({ "jobId": global_id::encode("ArchiveJob", f.job_id), "fileName": f.file_name, "retentionUntil": f.retention_until });
            audit::record(&txn, now, actor, AuditAction::DeletionPending, Target::new("ArchiveFile", files::file_global_id(f.id)), details).await?;
            n += 1;
        }
    }
    txn.commit().await?;
    Ok(n)
}

/// The sweep and the deletion path without GraphQL, on a fresh SQLite database.
#[cfg(test)]
mod tests {
    use chrono::Duration;
    use sea_orm::{ActiveModelTrait, Set};

    use super::*;
    use crate::{app::AppState, config::Settings, entity::audit_log, storage::files::Deleted};

    async fn start() -> (AppState, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::default();
        settings.data_dir = dir.path().to_path_buf();
        settings.database_url = Some(format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()));
        settings.jwt_secret = Some("unit-test-secret-0123456789-0123456789".to_string().into());
        (AppState::init(settings).await.unwrap(), dir)
    }

    /// A completed job with one stored file (object in the default backend) per retention date.
    async fn job_with_files(state: &AppState, dir: &std::path::Path, until: &[DateTime<Utc>]) -> (archive_job::Model, Vec<archive_file::Model>) {
        let db = &state.db;
        let course = crate::entity::course::Entity::find().one(db).await.unwrap().unwrap();
        let backend = crate::entity::storage_backend::Entity::find().one(db).await.unwrap().unwrap();
        let driver = files::driver(&backend).unwrap();
        let job = crate::fixtures::completed_job(course.id, Utc::now()).insert(db).await.unwrap();
        let mut out = Vec::new();
        for (i, u) in until.iter().enumerate() {
            let src = dir.join(format!("p{i}"));
            std::fs::write(&src, format!("package {i}")).unwrap();
            let sha = crate::storage::sha256_hex(format!("package {i}").as_bytes());
            let key = format!("t/{}/{i}.zip", job.id);
            driver.put_file(&key, &src, &sha).await.unwrap();
            let mut am = crate::fixtures::stored_file(job.id, backend.id, key, format!("{i}.zip"), 9, Utc::now());
            am.retention_until = Set(Some(*u));
            out.push(am.insert(db).await.unwrap());
        }
        (job, out)
    }

    async fn exists(state: &AppState, f: &archive_file::Model) -> bool {
        let (_, d) = files::backend(&state.db, f.storage_backend_id).await.unwrap();
        d.size(&f.storage_key).await.unwrap().is_some()
    }

    #[tokio::test]
    async fn the_sweep_deletes_only_expired_unheld_files_and_closes_the_job_with_the_last() {
        let (state, dir) = start().await;
        let e = &state.engine;
        let now = Utc::now() + Duration::days(10);
        e.clock.set(now);
        let (job, fs) = job_with_files(&state, dir.path(), &[now - Duration::days(1), now, now + Duration::seconds(1)]).await;
        // The expired one at `now` is held: only the first goes.
        archive_file::Entity::update_many().col_expr(archive_file::Column::LegalHold, Expr::val(true).into()).filter(archive_file::Column::Id.eq(fs[1].id)).exec(&state.db).await.unwrap();
        assert_eq!(sweep(e).await.unwrap(), SweepReport { deleted: 1, pending: 0, failed: 0 });
        assert!(!exists(&state, &fs[0]).await && exists(&state, &fs[1]).await && exists(&state, &fs[2]).await);
        let f0 = archive_file::Entity::find_by_id(fs[0].id).one(&state.db).await.unwrap().unwrap();
        assert_eq!(f0.deletion_reason.as_deref(), Some("RETENTION_EXPIRED"));
        assert_eq!(f0.deleted_by.as_deref(), Some("system:retention"));
        assert_eq!(f0.deleted_at, Some(now));

        archive_file::Entity::update_many().col_expr(archive_file::Column::LegalHold, Expr::val(false).into()).filter(archive_file::Column::Id.eq(fs[1].id)).exec(&state.db).await.unwrap();
        e.clock.set(now + Duration::seconds(1));
        assert_eq!(sweep(e).await.unwrap().deleted, 2);
        let j = archive_job::Entity::find_by_id(job.id).one(&state.db).await.unwrap().unwrap();
        assert_eq!(j.status, "DELETED");
        assert_eq!(sweep(e).await.unwrap(), SweepReport::default(), "nothing left to do");
        assert_eq!(audit_log::Entity::find().filter(audit_log::Column::Action.eq("FILE_DELETED")).count(&state.db).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_file_is_deleted_and_recorded_once_and_a_held_job_keeps_its_files() {
        let (state, dir) = start().await;
        let e = &state.engine;
        let (job, fs) = job_with_files(&state, dir.path(), &[Utc::now()]).await;
        let d = Deletion::by_server(Actor::system("test"), "test", DeletionReason::Manual, e.clock.now());
        archive_job::Entity::update_many().col_expr(archive_job::Column::LegalHold, Expr::val(true).into()).filter(archive_job::Column::Id.eq(job.id)).exec(&state.db).await.unwrap();
        assert!(matches!(files::delete(&e.jobs, &fs[0], &d).await.unwrap(), Deleted::Held));
        assert!(exists(&state, &fs[0]).await);
        archive_job::Entity::update_many().col_expr(archive_job::Column::LegalHold, Expr::val(false).into()).filter(archive_job::Column::Id.eq(job.id)).exec(&state.db).await.unwrap();
        assert!(matches!(files::delete(&e.jobs, &fs[0], &d).await.unwrap(), Deleted::Now(_)));
        assert!(matches!(files::delete(&e.jobs, &fs[0], &d).await.unwrap(), Deleted::Already(_)));
        assert!(!exists(&state, &fs[0]).await);
        assert_eq!(audit_log::Entity::find().count(&state.db).await.unwrap(), 1);
        let j = archive_job::Entity::find_by_id(job.id).one(&state.db).await.unwrap().unwrap();
        assert_eq!(j.status, "DELETED", "MANUAL closes a job with its last file");
    }
}
