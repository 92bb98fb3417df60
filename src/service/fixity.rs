//! Fixity audits: whether the stored files are still the files that were stored.
//!
//! - The periodic `fixity` task re-reads, per storage backend, the files due for a check (never
//!   checked first, then those checked longest ago; a file is due once `fixity_period_seconds`
//!   have passed since its last check), at most `fixity_max_files_per_run` per backend per run and
//!   at most `fixity_max_bytes_per_second` from each backend.
//! - `verifyArchiveFile` is the same check of one file, on demand.
//!
//! Every verdict is stored on the file (`last_verified_at`, `last_verification`, detail) in one
//! transaction with, when it is not OK, a FIXITY_FAILED event on the file's job and a
//! `FIXITY_<RESULT>` audit entry; an on-demand check that finds the file intact is audited as
//! FILE_VERIFIED. A backend outage is no verdict (see `storage::fixity`): nothing is recorded and
//! the file stays due. Deleted files are never checked; files under legal hold are.
//!
//! Permissions: `verifyArchiveFile` needs `VIEW` in the file's course (else NOT_FOUND) and `AUDIT`
//! (admins and auditors; else FORBIDDEN): a check writes to the file's record and the audit log.
use chrono::{DateTime, Utc};
use sea_orm::{sea_query::Expr, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{
    audit::{self, Actor, Target},
    jobs::Outcome,
    retention::file_for,
    Access,
};
use crate::{
    auth::Capability,
    domain::{global_id, AuditAction, FixityResult},
    engine::Engine,
    entity::{archive_file, archive_job, storage_backend},
    error::{AppError, AppResult, UserError, UserErrorCode},
    events::JobEventKind,
    storage::{
        files,
        fixity::{self as reading, Reading, Throttle, Verdict},
    },
};

/// The name of the periodic task, and of the server when it checks there (`periodic:fixity`).
pub const TASK: &str = "fixity";
/// Files read from the database per query.
const BATCH: u64 = 100;

/// What one run of the periodic audit did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Verdicts recorded.
    pub checked: u64,
    /// Of those, not OK.
    pub failed: u64,
    /// Backends left for a later run because they did not answer.
    pub outages: u64,
}

impl std::ops::AddAssign for AuditReport {
    fn add_assign(&mut self, o: Self) {
        self.checked += o.checked;
        self.failed += o.failed;
        self.outages += o.outages;
    }
}

/// The periodic fixity audit: every live backend at once, each with its own rate limit and
/// budget, so that a slow or absent backend does not hold up the others.
///
/// Safe beside a concurrent run elsewhere (the periodic runner gives it one leader; beyond that,
/// a verdict is recorded only while the file is still due, under the file's row lock, so a file
/// is recorded once per period whoever checks it).
pub async fn sweep(engine: &Engine) -> anyhow::Result<AuditReport> {
    let db = &engine.db;
    let s = &engine.settings;
    // The setting is checked to at most 100 years at start; the bound keeps the arithmetic safe
    // for settings built in code too.
    let period = chrono::Duration::seconds(s.fixity_period_seconds.min(100 * 365 * 86_400) as i64);
    let due_before = engine.clock.now().checked_sub_signed(period).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let backends = storage_backend::Entity::find().filter(storage_backend::Column::DeletedAt.is_null()).order_by_asc(storage_backend::Column::Id).all(db).await?;
    let runs = backends.iter().map(|b| audit_backend(engine, b, due_before, u64::from(s.fixity_max_files_per_run), s.fixity_max_bytes_per_second));
    let mut report = AuditReport::default();
    for r in futures::future::join_all(runs).await {
        report += r?;
    }
    if report != AuditReport::default() {
        tracing::info!(checked = report.checked, failed = report.failed, outages = report.outages, "fixity audit");
    }
    Ok(report)
}

/// The due files of one backend, at most `budget` of them.
async fn audit_backend(engine: &Engine, backend: &storage_backend::Model, due_before: DateTime<Utc>, budget: u64, rate: u64) -> anyhow::Result<AuditReport> {
    let db = &engine.db;
    let mut report = AuditReport::default();
    let driver = match files::driver(backend) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(backend = %backend.name, error = %e, "fixity audit: cannot open the storage backend; its files wait for a later run");
            report.outages += 1;
            return Ok(report);
        }
    };
    let throttle = Throttle::new(rate);
    let actor = Actor::system(TASK);
    let mut left = budget;
    while left > 0 {
        let batch = due_files(db, backend.id, due_before, left.min(BATCH)).await?;
        if batch.is_empty() {
            break;
        }
        for f in batch {
            // Counted whatever comes of it, so that the run ends even if a file keeps coming back.
            left -= 1;
            let now = engine.clock.now();
            match reading::check(db, backend, driver.as_ref(), &f, &throttle, now).await {
                Reading::Outage(why) => {
                    tracing::warn!(backend = %backend.name, error = %why, "fixity audit: the storage backend does not answer; its files wait for a later run");
                    report.outages += 1;
                    return Ok(report);
                }
                Reading::Verdict(v) => {
                    if record(engine, &f, &backend.name, &v, now, &actor, Some(due_before)).await?.is_some() {
                        report.checked += 1;
                        report.failed += u64::from(v.result.is_failure());
                    }
                }
            }
        }
    }
    Ok(report)
}

/// Up to `limit` live stored files of the backend due for a check: never checked first (by id),
/// then those checked longest ago. Two queries, so that both databases order NULLs alike and the
/// partial index `ix_archive_file_fixity` serves each.
async fn due_files(db: &DatabaseConnection, backend_id: i64, due_before: DateTime<Utc>, limit: u64) -> Result<Vec<archive_file::Model>, sea_orm::DbErr> {
    use archive_file::Column as C;
    let live = || archive_file::Entity::find().filter(C::StorageBackendId.eq(backend_id)).filter(C::DeletedAt.is_null()).filter(C::StoredAt.is_not_null());
    let mut out = live().filter(C::LastVerifiedAt.is_null()).order_by_asc(C::Id).limit(limit).all(db).await?;
    let more = limit.saturating_sub(out.len() as u64);
    if more > 0 {
        out.extend(live().filter(C::LastVerifiedAt.lte(due_before)).order_by_asc(C::LastVerifiedAt).order_by_asc(C::Id).limit(more).all(db).await?);
    }
    Ok(out)
}

fn audit_action(result: FixityResult) -> AuditAction {
    match result {
        FixityResult::Ok => AuditAction::FileVerified,
        FixityResult::Mismatch => AuditAction::FixityMismatch,
        FixityResult::Missing => AuditAction::FixityMissing,
        FixityResult::Unreadable => AuditAction::FixityUnreadable,
    }
}

/// Stores a verdict on the file, checked at `at`, in one transaction with its event and audit
/// entry (see the module's comment). `due_before` (the periodic audit) records it only if the
/// file is still due, so that a file checked meanwhile elsewhere is recorded once. `None` when
/// nothing was recorded (the file was deleted, or checked, meanwhile).
async fn record(
    engine: &Engine,
    file: &archive_file::Model,
    backend_name: &str,
    v: &Verdict,
    at: DateTime<Utc>,
    actor: &Actor,
    due_before: Option<DateTime<Utc>>,
) -> anyhow::Result<Option<archive_file::Model>> {
    let db = &engine.db;
    let txn = crate::db::begin_write(db).await?;
    // The job's row and the file's, locked as the deletion path locks them: a deletion running
    // now either went first (the file is deleted: nothing to record) or waits for this.
    let Some((job, current)) = files::claim(db, &txn, file).await? else {
        txn.rollback().await?;
        return Ok(None);
    };
    let checked_since = due_before.is_some_and(|d| current.last_verified_at.is_some_and(|v| v > d));
    if current.deleted_at.is_some() || checked_since {
        txn.rollback().await?;
        return Ok(None);
    }
    archive_file::Entity::update_many()
        .col_expr(archive_file::Column::LastVerifiedAt, Expr::val(Some(at)).into())
        .col_expr(archive_file::Column::LastVerification, Expr::val(Some(v.result.to_string())).into())
        .col_expr(archive_file::Column::LastVerificationDetail, Expr::val(v.detail.clone()).into())
        .filter(archive_file::Column::Id.eq(file.id))
        .exec(&txn)
        .await?;
    let on_demand = due_before.is_none();
    if v.result.is_failure() || on_demand {
        let details = serde_json::json!({
            "jobId": global_id::encode("ArchiveJob", job.id),
            "fileName": current.file_name,
            "storageBackend": backend_name,
            "storageKey": current.storage_key,
            "result": v.result.to_string(),
            "detail": v.detail,
            "sizeBytes": current.size_bytes,
            "sha256": current.sha256,
            "previousResult": current.last_verification,
            "previousCheckAt": current.last_verified_at,
            "onDemand": on_demand,
        });
        audit::record(&txn, at, actor, audit_action(v.result), Target::new("ArchiveFile", files::file_global_id(file.id)), details).await?;
    }
    if v.result.is_failure() {
        let note = format!("fixity check of {} on {backend_name}: {} ({})", current.file_name, v.result, v.detail.as_deref().unwrap_or(""));
        engine.jobs.change_in_txn(&txn, job.id, archive_job::Entity::update_many(), JobEventKind::FixityFailed, &note).await?;
        tracing::warn!(file = file.id, job = %job.id, backend = %backend_name, result = %v.result, detail = v.detail.as_deref().unwrap_or(""), "fixity check failed");
    }
    txn.commit().await?;
    engine.jobs.events.committed();
    Ok(archive_file::Entity::find_by_id(file.id).one(db).await?)
}

fn user_error(code: UserErrorCode, message: impl Into<String>) -> Vec<UserError> {
    vec![UserError { field: vec!["fileId".into()], code, message: message.into() }]
}

/// `verifyArchiveFile`: checks one stored file now, records the verdict like the periodic audit
/// (audited with the caller as the actor), then re-verifies the file's timestamp tokens. The file
/// as it is afterwards; user errors for a deleted file or a backend that does not answer (then
/// nothing is recorded).
pub async fn verify_file(engine: &Engine, access: &Access, id: i64) -> AppResult<Outcome<archive_file::Model>> {
    let db = &engine.db;
    let f = file_for(db, access, id, Capability::Audit).await?;
    if f.deleted_at.is_some() {
        return Ok(Err(user_error(UserErrorCode::InvalidState, "the file is deleted; there is nothing stored to check")));
    }
    let unavailable = |why: &dyn std::fmt::Display| -> AppResult<Outcome<archive_file::Model>> {
        tracing::warn!(file = f.id, error = %why, "verifyArchiveFile: the storage backend does not answer");
        Ok(Err(user_error(UserErrorCode::StorageUnavailable, format!("could not read {} from its storage; nothing was recorded, try again", f.file_name))))
    };
    let (backend, driver) = match files::backend(db, f.storage_backend_id).await {
        Ok(found) => found,
        Err(e) => return unavailable(&e),
    };
    let now = engine.clock.now();
    let verdict = match reading::check(db, &backend, driver.as_ref(), &f, &Throttle::unlimited(), now).await {
        Reading::Verdict(v) => v,
        Reading::Outage(why) => return unavailable(&why),
    };
    let Some(checked) = record(engine, &f, &backend.name, &verdict, now, &Actor::of(access), None).await.map_err(AppError::Internal)? else {
        return Ok(Err(user_error(UserErrorCode::InvalidState, "the file was deleted meanwhile")));
    };
    reverify_timestamp_tokens(engine, &checked, &verdict).await?;
    // Re-read: the tokens' re-verification may have changed what the file shows.
    Ok(Ok(archive_file::Entity::find_by_id(id).one(db).await?.unwrap_or(checked)))
}

/// `verifyArchiveFile` re-verifies every RFC 3161 timestamp token of the file after the file
/// itself was re-read: each token's message imprint must equal the SHA-256 just read, and its
/// signature and chain must still hold; the outcomes are persisted on the tokens. When the object
/// could not be read to the end (or its size already differed) there is no hash to check the
/// tokens against: they keep their last result, and the file's verdict says what went wrong.
async fn reverify_timestamp_tokens(engine: &Engine, file: &archive_file::Model, verdict: &Verdict) -> AppResult<()> {
    let Some(read) = &verdict.read else { return Ok(()) };
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(&read.sha256, &mut sha256).map_err(|e| AppError::internal(format!("the SHA-256 read from storage is not hex: {e}")))?;
    super::timestamps::reverify_tokens(engine, file, &sha256).await?;
    Ok(())
}
