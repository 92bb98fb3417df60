//! The global archiving policy: defaults in code, overridden by stored settings; changed by
//! `update` (needs `manage`), each change in the audit log with the values before and after.
use chrono::{DateTime, Utc};
use sea_orm::{sea_query::OnConflict, DatabaseConnection, EntityTrait, Set, TransactionTrait};
use serde_json::json;

use super::{
    audit::{self, Actor, Target},
    jobs::{check_backends, Outcome},
};
use crate::{
    auth::Capability,
    domain::{
        filename::FilenamePattern,
        policy::{MAX_CONCURRENT_JOBS, MAX_JOB_TIMEOUT_SECONDS, MAX_RETENTION_DAYS},
        ArchiveFormat, AuditAction, LogLevel, PolicyField, PolicyValues, ReportOptionsPatch,
    },
    entity::policy_setting,
    error::{AppResult, UserError, UserErrorCode},
    service::Access,
};

pub async fn load(db: &DatabaseConnection) -> AppResult<PolicyValues> {
    Ok(crate::engine::policy::load(db).await?)
}

pub async fn get(db: &DatabaseConnection, access: &Access) -> AppResult<PolicyValues> {
    access.require(Capability::View)?;
    load(db).await
}

/// A field a job can override: a new value and/or lock, each left as is when `None`.
#[derive(Debug, Clone, Default)]
pub struct Lockable<T> {
    pub value: Option<T>,
    pub locked: Option<bool>,
}

/// What to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PolicyUpdate {
    pub format: Option<Lockable<ArchiveFormat>>,
    pub filename_pattern: Option<Lockable<String>>,
    /// `Some(None)`: keep forever. Numbers arrive as the caller sent them and are checked here.
    pub retention_days: Option<Lockable<Option<i64>>>,
    /// Backend ids; empty: the default backend.
    pub storage_backends: Option<Lockable<Vec<i64>>>,
    pub timestamping: Option<Lockable<bool>>,
    pub job_timeout_seconds: Option<Lockable<i64>>,
    /// Applied to the policy's current report options.
    pub report_options: Option<Lockable<ReportOptionsPatch>>,
    pub auto_delete: Option<bool>,
    pub deletion_approval: Option<bool>,
    /// `Some(None)`: back to the server setting.
    pub max_concurrent_jobs: Option<Option<i64>>,
    /// `Some(None)`: back to the server setting.
    pub job_log_level: Option<Option<LogLevel>>,
}

/// `n` when it is from 1 to `max`.
fn in_range(n: i64, max: u32) -> Option<u32> {
    u32::try_from(n).ok().filter(|n| (1..=max).contains(n))
}

fn err(field: &[&str], code: UserErrorCode, message: impl Into<String>) -> UserError {
    UserError { field: field.iter().map(|s| s.to_string()).collect(), code, message: message.into() }
}

/// Applies `update` to `p`, collecting what is invalid.
async fn apply<C: sea_orm::ConnectionTrait>(db: &C, p: &mut PolicyValues, u: PolicyUpdate) -> AppResult<Vec<UserError>> {
    let mut errors = Vec::new();
    fn set<T>(p: &mut PolicyValues, f: PolicyField, s: &Lockable<T>, put: impl FnOnce(&mut PolicyValues, &T)) {
        if let Some(v) = &s.value {
            put(p, v);
        }
        if let Some(l) = s.locked {
            p.locked.retain(|x| *x != f);
            if l {
                p.locked.push(f);
            }
        }
    }
    if let Some(s) = &u.format {
        set(p, PolicyField::Format, s, |p, v| p.format = *v);
    }
    if let Some(s) = &u.filename_pattern {
        if let Some(v) = &s.value {
            if let Err(e) = FilenamePattern::parse(v) {
                errors.push(err(&["filenamePattern", "value"], UserErrorCode::InvalidFilenamePattern, e.to_string()));
            }
        }
        set(p, PolicyField::FilenamePattern, s, |p, v| p.filename_pattern = v.clone());
    }
    if let Some(s) = &u.retention_days {
        let days = match s.value {
            Some(Some(d)) => match in_range(d, MAX_RETENTION_DAYS) {
                Some(d) => Some(Some(Some(d))),
                None => {
                    errors.push(err(&["retentionDays", "value"], UserErrorCode::Invalid, format!("must be from 1 to {MAX_RETENTION_DAYS}, or keep forever")));
                    None
                }
            },
            Some(None) => Some(Some(None)),
            None => Some(None),
        };
        if let Some(value) = days {
            set(p, PolicyField::RetentionDays, &Lockable { value, locked: s.locked }, |p, v| p.retention_days = *v);
        }
    }
    if let Some(s) = &u.storage_backends {
        if let Some(ids) = &s.value {
            // Empty is allowed here: it means the default backend.
            if !ids.is_empty() {
                errors.extend(check_backends(db, ids, &["storageBackendIds", "value"]).await?);
            }
        }
        set(p, PolicyField::StorageBackends, s, |p, v| p.storage_backends = v.clone());
    }
    if let Some(s) = &u.timestamping {
        set(p, PolicyField::Timestamping, s, |p, v| p.timestamping = *v);
    }
    if let Some(s) = &u.job_timeout_seconds {
        let value = s.value.map(|t| in_range(t, MAX_JOB_TIMEOUT_SECONDS));
        if value == Some(None) {
            errors.push(err(&["jobTimeoutSeconds", "value"], UserErrorCode::Invalid, format!("must be from 1 to {MAX_JOB_TIMEOUT_SECONDS}")));
        }
        set(p, PolicyField::JobTimeoutSeconds, &Lockable { value: value.flatten(), locked: s.locked }, |p, v| p.job_timeout_seconds = *v);
    }
    if let Some(s) = &u.report_options {
        set(p, PolicyField::ReportOptions, s, |p, v| p.report_options = v.apply(p.report_options));
    }
    if let Some(v) = u.auto_delete {
        p.auto_delete = v;
    }
    if let Some(v) = u.deletion_approval {
        p.deletion_approval = v;
    }
    match u.max_concurrent_jobs {
        Some(Some(n)) => match in_range(n, MAX_CONCURRENT_JOBS) {
            Some(n) => p.max_concurrent_jobs = Some(n),
            None => errors.push(err(&["maxConcurrentJobs"], UserErrorCode::Invalid, format!("must be from 1 to {MAX_CONCURRENT_JOBS}, or null for the server setting"))),
        },
        Some(None) => p.max_concurrent_jobs = None,
        None => {}
    }
    if let Some(v) = u.job_log_level {
        p.job_log_level = v;
    }
    Ok(errors)
}

/// Changes the policy (needs `manage`). Nothing is changed when anything is invalid. Each changed
/// field is one stored setting, written with the audit entry in one transaction; jobs created
/// before keep the settings they were created with.
pub async fn update(db: &DatabaseConnection, access: &Access, now: DateTime<Utc>, u: PolicyUpdate) -> AppResult<Outcome<PolicyValues>> {
    access.require(Capability::Manage)?;
    let txn = db.begin().await?;
    let before = crate::engine::policy::load(&txn).await?;
    let mut after = before.clone();
    let errors = apply(&txn, &mut after, u).await?;
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let mut changes = serde_json::Map::new();
    for f in PolicyValues::fields() {
        let (old, new) = ((before.value(f), before.is_locked(f)), (after.value(f), after.is_locked(f)));
        if old == new {
            continue;
        }
        policy_setting::Entity::insert(policy_setting::ActiveModel {
            key: Set(f.to_string()),
            value: Set(new.0.clone()),
            locked: Set(new.1),
            updated_at: Set(now),
            updated_by: Set(Some(access.principal.subject.clone())),
        })
        .on_conflict(
            OnConflict::column(policy_setting::Column::Key)
                .update_columns([policy_setting::Column::Value, policy_setting::Column::Locked, policy_setting::Column::UpdatedAt, policy_setting::Column::UpdatedBy])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        let shown = |(v, l): (serde_json::Value, bool)| if f.lockable() { json!({ "value": v, "locked": l }) } else { json!({ "value": v }) };
        changes.insert(f.api_name().to_string(), json!({ "before": shown(old), "after": shown(new) }));
    }
    if !changes.is_empty() {
        audit::record(&txn, now, &Actor::of(access), AuditAction::PolicyUpdated, Target::global("Policy"), json!({ "changes": changes })).await?;
    }
    txn.commit().await?;
    Ok(Ok(after))
}
