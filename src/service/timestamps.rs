//! RFC 3161 timestamps of stored files as users reach them: manual signing (`signArchiveFile`,
//! also re-timestamping: older tokens are kept), re-verification of a file's tokens (called by
//! `verifyArchiveFile`), and the files whose TSA certificate expires soon.
//!
//! Permissions: signing needs `MANAGE` (it spends the TSA's service and adds evidence to an
//! archive: an administrator's decision); listing needs `VIEW` in the files' courses.
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    sea_query::{Query, SelectStatement},
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait,
};

use super::{
    audit::{self, Actor, Target},
    jobs::Outcome,
    pagination::{paginate, Key, Ordering},
    retention, Access, Page, PageArgs,
};
use crate::{
    auth::Capability,
    domain::{global_id, AuditAction},
    engine::Engine,
    entity::{archive_file, archive_job, timestamp_token},
    error::{AppError, AppResult, UserError, UserErrorCode},
    events::JobEventKind,
    storage::files,
    tsp::{self, records},
};

/// The TSA settings the policy shows: never the credentials, only whether there are any.
#[derive(Debug, Clone)]
pub struct AuthorityView {
    pub url: Option<String>,
    pub trust_anchor_subjects: Vec<String>,
    pub failure_policy: crate::config::TimestampFailurePolicy,
    pub basic_auth: bool,
    pub connect_timeout_seconds: u32,
    pub timeout_seconds: u32,
    pub max_retries: u32,
}

impl AuthorityView {
    pub fn of(engine: &Engine) -> Self {
        let s = &engine.settings;
        Self {
            url: engine.tsa.as_ref().map(|t| t.url.clone()),
            trust_anchor_subjects: engine.tsa.as_ref().map(|t| t.anchors.subjects()).unwrap_or_default(),
            failure_policy: s.tsa_failure_policy,
            basic_auth: s.tsa_username.is_some(),
            connect_timeout_seconds: s.tsa_connect_timeout_seconds,
            timeout_seconds: s.tsa_timeout_seconds,
            max_retries: s.max_retries,
        }
    }
}

/// The longest look-ahead of `filesToRetimestamp`, in days.
pub const MAX_WITHIN_DAYS: i64 = 36_500;

fn user_error(code: UserErrorCode, message: impl Into<String>) -> UserError {
    UserError { field: vec!["fileId".into()], code, message: message.into() }
}

/// `signArchiveFile`: a new token for the stored file `file_id` from the configured TSA,
/// verified, stored beside any older ones; audit-logged and emitted as a job UPDATED event.
pub async fn sign_file(engine: &Engine, access: &Access, file_id: i64) -> AppResult<Outcome<(archive_file::Model, timestamp_token::Model)>> {
    let db = &engine.db;
    let f = retention::file_for(db, access, file_id, Capability::Manage).await?;
    if f.deleted_at.is_some() {
        return Ok(Err(vec![user_error(UserErrorCode::InvalidState, "the file is deleted")]));
    }
    let Some(tsa) = engine.tsa.clone() else {
        return Ok(Err(vec![user_error(UserErrorCode::TsaNotConfigured, "no Time-Stamp Authority is configured (tsa_url)")]));
    };
    let sha = tsp::sha256_of_hex(&f.sha256).ok_or_else(|| AppError::internal("a stored file with a malformed SHA-256 record"))?;
    let stamp = match tsa.stamp(&sha).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(file_id, error = %e, "manual timestamping failed");
            return Ok(Err(vec![user_error(UserErrorCode::TimestampFailed, e.to_string())]));
        }
    };
    let actor = Actor::of(access);
    let now = engine.clock.now();
    let earlier = timestamp_token::Entity::find().filter(timestamp_token::Column::FileId.eq(f.id)).all(db).await?.len();
    let txn = db.begin().await?;
    // The job's row first, as the deletion path claims it first: the two never deadlock.
    let note = format!("{} timestamped by {} at the request of {} (serial {}; {earlier} earlier token(s) kept)", f.file_name, stamp.verified.tsa_name, actor.subject, stamp.verified.serial);
    engine.jobs.change_in_txn(&txn, f.job_id, archive_job::Entity::update_many(), JobEventKind::Updated, &note).await?;
    let token = records::insert(&txn, &[f.id], &tsa.url, &stamp, &actor.subject, now).await?.pop().ok_or_else(|| AppError::internal("no token stored"))?;
    let details = serde_json::json!({
        "jobId": global_id::encode("ArchiveJob", f.job_id),
        "fileName": f.file_name,
        "tsaUrl": tsa.url,
        "genTime": stamp.verified.gen_time.to_rfc3339(),
        "serialNumber": stamp.verified.serial,
        "earlierTokens": earlier,
    });
    audit::record(&txn, now, &actor, AuditAction::FileTimestamped, Target::new("ArchiveFile", files::file_global_id(f.id)), details).await?;
    txn.commit().await?;
    engine.jobs.events.committed();
    Ok(Ok((f, token)))
}

/// Re-verifies every token of `file` against `sha256` (the file's hash as just read from storage
/// by the caller) with the configured trust anchors; each outcome is persisted (`verified`,
/// `failureReason`, `verifiedAt`) and the tokens are returned as they now are. Without configured
/// anchors no token can be trusted, and each says so.
pub async fn reverify_tokens(engine: &Engine, file: &archive_file::Model, sha256: &[u8; 32]) -> AppResult<Vec<timestamp_token::Model>> {
    let now = engine.clock.now();
    let anchors = engine.tsa.as_ref().map(|t| &t.anchors).ok_or("no trust anchors are configured (tsa_trust_anchors_file)");
    Ok(records::reverify_file(&engine.db, file.id, sha256, anchors, now).await?)
}

/// The verified tokens whose TSA certificate expires by `limit`.
fn expiring_by(limit: DateTime<Utc>) -> SelectStatement {
    Query::select()
        .column(timestamp_token::Column::FileId)
        .from(timestamp_token::Entity)
        .and_where(timestamp_token::Column::Verified.eq(true))
        .and_where(timestamp_token::Column::DataRemovedAt.is_null())
        .and_where(timestamp_token::Column::SignerNotAfter.lte(limit))
        .to_owned()
}

/// Files with a verified token that outlives `limit`.
fn renewed_after(limit: DateTime<Utc>) -> SelectStatement {
    Query::select()
        .column(timestamp_token::Column::FileId)
        .from(timestamp_token::Entity)
        .and_where(timestamp_token::Column::Verified.eq(true))
        .and_where(timestamp_token::Column::SignerNotAfter.gt(limit))
        .to_owned()
}

/// `filesToRetimestamp`: stored files in the caller's `VIEW` scope whose verified tokens all
/// rest on TSA certificates that expire within `within_days` (none of them renewed by a newer
/// token), so that they can be re-timestamped (`signArchiveFile`) while the old token still
/// verifies. Oldest file first.
pub async fn expiring(db: &DatabaseConnection, access: &Access, within_days: i64, now: DateTime<Utc>, args: &PageArgs) -> AppResult<Page<archive_file::Model>> {
    access.require(Capability::View)?;
    if !(0..=MAX_WITHIN_DAYS).contains(&within_days) {
        return Err(AppError::bad_input(format!("withinDays must be between 0 and {MAX_WITHIN_DAYS}")));
    }
    let limit = now + Duration::days(within_days);
    let in_scope = Query::select().column(archive_job::Column::Id).from(archive_job::Entity).cond_where(access.filter_by_course(archive_job::Column::CourseId, Capability::View)).to_owned();
    let q = archive_file::Entity::find()
        .filter(archive_file::Column::DeletedAt.is_null())
        .filter(archive_file::Column::StoredAt.is_not_null())
        .filter(archive_file::Column::JobId.in_subquery(in_scope))
        .filter(archive_file::Column::Id.in_subquery(expiring_by(limit)))
        .filter(archive_file::Column::Id.not_in_subquery(renewed_after(limit)));
    let order = Ordering::<archive_file::Entity> { key: archive_file::Column::Id, tie: archive_file::Column::Id, descending: false, key_of: |m| (Key::I(m.id), Key::I(m.id)) };
    paginate(db, q, &order, args).await
}
