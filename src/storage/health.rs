//! Backend health as the database records it: the one path that probes a backend and records the
//! result (the manual `checkStorageBackend`, the periodic `storage-health` task, creation and
//! updates of a backend, and STORE before it writes), and the one rule whether a backend may be
//! written to.
use chrono::{DateTime, Utc};
use sea_orm::{sea_query::Expr, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use super::HealthReport;
use crate::{
    domain::{storage::redact_message, Failure, StorageDriverKind},
    entity::storage_backend,
};

/// Probes a backend (write, read, delete, and space where the driver tells). Never fails: a
/// backend that cannot even be opened is reported unreachable. The error passes the settings'
/// redaction, so no secret is recorded even if a driver let one slip.
pub async fn probe(driver: StorageDriverKind, settings: &serde_json::Value) -> HealthReport {
    let mut report = match super::open(driver, settings) {
        Ok(d) => d.health().await,
        Err(e) => HealthReport { reachable: false, free_bytes: None, used_bytes: None, error: Some(e.to_string()) },
    };
    report.error = report.error.map(|e| redact_message(driver, settings, &e));
    report
}

/// Probes the backend of this row and records the result, checked at `at` (the engine's clock).
pub async fn check(db: &DatabaseConnection, backend: &storage_backend::Model, at: DateTime<Utc>) -> Result<storage_backend::Model, DbErr> {
    let report = match backend.driver.parse::<StorageDriverKind>() {
        Ok(kind) => probe(kind, &backend.settings).await,
        Err(_) => HealthReport { reachable: false, error: Some(format!("unknown storage driver {:?}", backend.driver)), ..Default::default() },
    };
    record(db, backend.id, &report, at).await
}

/// Stores a health report on the backend's row (only the health columns: an update of the
/// backend running at the same time keeps its name, settings and switches).
pub async fn record(db: &DatabaseConnection, backend_id: i64, report: &HealthReport, at: DateTime<Utc>) -> Result<storage_backend::Model, DbErr> {
    use storage_backend::Column as C;
    storage_backend::Entity::update_many()
        .col_expr(C::HealthCheckedAt, Expr::val(Some(at)).into())
        .col_expr(C::HealthReachable, Expr::val(Some(report.reachable)).into())
        .col_expr(C::HealthFreeBytes, Expr::val(report.free_bytes.map(clamp)).into())
        .col_expr(C::HealthUsedBytes, Expr::val(report.used_bytes.map(clamp)).into())
        .col_expr(C::HealthError, Expr::val(report.error.clone()).into())
        .filter(C::Id.eq(backend_id))
        .exec(db)
        .await?;
    storage_backend::Entity::find_by_id(backend_id).one(db).await?.ok_or_else(|| DbErr::RecordNotFound(format!("storage backend {backend_id}")))
}

fn clamp(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// Whether packages may be written to this backend now. The rule, independent of the policy:
/// - a deleted backend is gone: permanent, the job fails;
/// - a disabled backend is transient: the job waits in RECOVERABLE_ERROR, retried with backoff,
///   until an operator enables it again (or its retries or deadline run out);
/// - a backend whose last health check failed is probed again here, so a backend that came back
///   is used at once; if it still fails, transient as well.
///
/// A backend never checked, or last found healthy, is written to: the write itself tells.
pub async fn writable(db: &DatabaseConnection, backend: &storage_backend::Model, now: DateTime<Utc>) -> Result<(), Failure> {
    usable(backend)?;
    if backend.health_reachable == Some(false) {
        let now_checked = check(db, backend, now).await.map_err(|e| Failure::transient(format!("recording the health of storage backend {}: {e}", backend.name)))?;
        if now_checked.health_reachable != Some(true) {
            let why = now_checked.health_error.unwrap_or_else(|| "unreachable".into());
            return Err(Failure::transient(format!("storage backend {} failed its health check ({why}); the job waits until it passes", backend.name)));
        }
        tracing::info!(backend = %backend.name, "storage backend passed its health check again");
    }
    Ok(())
}

/// The part of [`writable`] that needs no probe (deleted: permanent; disabled: transient), for
/// PRE_PROCESSING's early look.
pub fn usable(backend: &storage_backend::Model) -> Result<(), Failure> {
    if backend.deleted_at.is_some() {
        return Err(Failure::permanent(format!("storage backend {} was deleted", backend.name)));
    }
    if !backend.enabled {
        return Err(Failure::transient(format!("storage backend {} is disabled; the job waits until it is enabled", backend.name)));
    }
    Ok(())
}

/// The periodic `storage-health` task: probes every enabled backend and records the result,
/// stamped with the engine's clock. Idempotent, and harmless beside a concurrent run elsewhere
/// (the later report wins). One backend's failure is recorded, not raised: the task goes on.
pub async fn check_all(db: &DatabaseConnection, now: DateTime<Utc>) -> anyhow::Result<()> {
    let backends = storage_backend::Entity::find()
        .filter(storage_backend::Column::Enabled.eq(true))
        .filter(storage_backend::Column::DeletedAt.is_null())
        .all(db)
        .await?;
    for b in backends {
        let checked = check(db, &b, now).await?;
        if checked.health_reachable != Some(true) {
            tracing::warn!(backend = %b.name, error = checked.health_error.as_deref().unwrap_or(""), "storage backend failed its health check");
        } else if b.health_reachable == Some(false) {
            tracing::info!(backend = %b.name, "storage backend passed its health check again");
        }
    }
    Ok(())
}
