//! Stored files as the database records them. The one way to open a backend's driver from its
//! row, and the one path that deletes a stored file — used by cancel, failure, job deletion, the
//! sweeper's clean-up of unconfirmed intents, `deleteArchiveFile`, retention and approved
//! deletions (and later GDPR erasure).
//!
//! The deletion path writes its audit entry itself (through `service::audit`, the one writer of
//! the log), because the entry must commit with the deletion it records, whoever asked for it.
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::Expr, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QuerySelect, Set, TransactionTrait,
};

use super::{StorageDriver, StorageError};
use crate::{
    domain::{global_id, AuditAction, DeletionDecision, DeletionReason, Failure, JobStatus, StorageDriverKind},
    entity::{archive_file, archive_job, storage_backend, timestamp_token},
    events::JobEventKind,
    jobs::{JobStore, Patch},
    service::audit::{self, Actor, Target},
};

/// The driver of a backend row.
pub fn driver(backend: &storage_backend::Model) -> Result<Arc<dyn StorageDriver>, Failure> {
    let kind: StorageDriverKind = backend.driver.parse().map_err(|_| Failure::permanent(format!("storage backend {} has an unknown driver {:?}", backend.name, backend.driver)))?;
    super::open(kind, &backend.settings).map_err(|e| e.failure(&backend.name))
}

/// The live (not deleted) backend with this name: jobs hold their backends by name.
pub async fn backend_named(db: &DatabaseConnection, name: &str) -> Result<Option<storage_backend::Model>, Failure> {
    storage_backend::Entity::find()
        .filter(storage_backend::Column::Name.eq(name))
        .filter(storage_backend::Column::DeletedAt.is_null())
        .one(db)
        .await
        .map_err(|e| Failure::transient(format!("loading storage backend {name:?}: {e}")))
}

/// The row and driver of the backend with this id.
pub async fn backend(db: &DatabaseConnection, backend_id: i64) -> Result<(storage_backend::Model, Arc<dyn StorageDriver>), Failure> {
    let b = storage_backend::Entity::find_by_id(backend_id)
        .one(db)
        .await
        .map_err(|e| Failure::transient(format!("loading storage backend {backend_id}: {e}")))?
        .ok_or_else(|| Failure::permanent(format!("storage backend {backend_id} is gone")))?;
    let d = driver(&b)?;
    Ok((b, d))
}

/// One deletion: why, who or what, when.
#[derive(Debug, Clone)]
pub struct Deletion {
    pub reason: DeletionReason,
    /// Recorded on the file as `deleted_by`: a token subject, or `system:<task>`.
    pub by: String,
    pub actor: Actor,
    /// The reason a person gave.
    pub note: Option<String>,
    /// The engine's clock: what retention takes as now.
    pub at: DateTime<Utc>,
}

impl Deletion {
    /// A deletion a person asked for.
    pub fn by_person(actor: Actor, reason: DeletionReason, note: Option<String>, at: DateTime<Utc>) -> Self {
        Self { reason, by: actor.subject.clone(), actor, note, at }
    }

    /// A deletion the server does on its own, in `task` (`retention`, `sweeper`, `engine`).
    pub fn by_server(actor: Actor, task: &str, reason: DeletionReason, at: DateTime<Utc>) -> Self {
        Self { reason, by: crate::domain::retention::system_actor(task), actor, note: None, at }
    }
}

/// What [`delete`] did.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// Deleted by this call; the row as it is now.
    Now(archive_file::Model),
    /// Deleted before (by another process or an earlier call): nothing done, nothing recorded.
    Already(archive_file::Model),
    /// Under legal hold, its own or its job's: nothing done.
    Held,
}

/// The global id of a file, as the API and the audit log name it.
pub fn file_global_id(id: i64) -> String {
    global_id::encode("ArchiveFile", id)
}

/// Deletes a stored file (or an unconfirmed intent) through the one path:
///
/// 1. claims the job's and the file's rows (PostgreSQL: `FOR UPDATE`, job first, as everyone who
///    changes both does, so two deleters of one file queue and the second finds it deleted;
///    SQLite: the transaction has the one connection to itself);
/// 2. refuses while the file or its job is under legal hold ([`Deleted::Held`]);
/// 3. deletes the object (a missing object counts as deleted);
/// 4. in the same transaction: marks the row deleted (`deleted_at` by the engine's clock,
///    `deletion_reason`, `deleted_by`, `deletion_note`), clears the DER data of its timestamp
///    tokens (their rows stay as the record), writes the audit entry (FILE_DELETED, after
///    DELETION_APPROVED for an approved deletion), emits FILE_DELETED on the job and, when this
///    was the job's last file and the reason closes jobs, moves the job to DELETED.
///
/// On failure nothing is recorded, so the caller can try again. The row stays, for the record.
pub async fn delete(jobs: &JobStore, file: &archive_file::Model, d: &Deletion) -> Result<Deleted, Failure> {
    let db = &jobs.db;
    // The driver first: on SQLite the transaction below holds the only connection.
    let (b, driver) = backend(db, file.storage_backend_id).await?;
    let txn = db.begin().await.map_err(|e| transient(file, e))?;
    let (job, current) = match claim(db, &txn, file).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            txn.rollback().await.ok();
            return Err(Failure::permanent(format!("archive file {} or its job is gone", file.id)));
        }
        Err(e) => return Err(transient(file, e)),
    };
    if current.deleted_at.is_some() {
        txn.rollback().await.ok();
        return Ok(Deleted::Already(current));
    }
    if current.legal_hold || job.legal_hold {
        txn.rollback().await.ok();
        return Ok(Deleted::Held);
    }
    match driver.delete(&current.storage_key).await {
        Ok(()) | Err(StorageError::NotFound) => {}
        Err(e) => {
            txn.rollback().await.ok();
            return Err(e.failure(&b.name).context(format!("deleting {}", current.file_name)));
        }
    }
    let (updated, closed) = record(jobs, &txn, &job, &current, &b.name, d).await.map_err(|e| transient(file, e))?;
    txn.commit().await.map_err(|e| transient(file, e))?;
    jobs.events.committed();
    if let Some((from, j)) = closed {
        jobs.transitioned(&j, from, JobStatus::Deleted);
    }
    Ok(Deleted::Now(updated))
}

fn transient(file: &archive_file::Model, e: impl std::fmt::Display) -> Failure {
    Failure::transient(format!("recording the deletion of {}: {e}", file.file_name))
}

/// The job's and the file's rows, locked on PostgreSQL: the job first, as everyone who changes
/// both claims them (deletion, fixity records), so that they never deadlock.
pub(crate) async fn claim(db: &DatabaseConnection, txn: &DatabaseTransaction, file: &archive_file::Model) -> Result<Option<(archive_job::Model, archive_file::Model)>, sea_orm::DbErr> {
    let pg = db.get_database_backend() == DbBackend::Postgres;
    let mut jq = archive_job::Entity::find_by_id(file.job_id);
    let mut fq = archive_file::Entity::find_by_id(file.id);
    if pg {
        jq = jq.lock_exclusive();
        fq = fq.lock_exclusive();
    }
    let Some(job) = jq.one(txn).await? else { return Ok(None) };
    Ok(fq.one(txn).await?.map(|f| (job, f)))
}

/// The database side of a deletion whose object is gone, within `txn`.
async fn record(
    jobs: &JobStore,
    txn: &DatabaseTransaction,
    job: &archive_job::Model,
    file: &archive_file::Model,
    backend_name: &str,
    d: &Deletion,
) -> anyhow::Result<(archive_file::Model, Option<(JobStatus, archive_job::Model)>)> {
    let mut am: archive_file::ActiveModel = file.clone().into();
    am.deleted_at = Set(Some(d.at));
    am.deletion_reason = Set(Some(d.reason.to_string()));
    am.deleted_by = Set(Some(d.by.clone()));
    am.deletion_note = Set(d.note.clone());
    let approved = d.reason == DeletionReason::DeletionApproved;
    if approved {
        am.deletion_decision = Set(Some(DeletionDecision::Approved.to_string()));
        am.deletion_decided_by = Set(Some(d.by.clone()));
        am.deletion_decided_at = Set(Some(d.at));
        am.deletion_decision_reason = Set(d.note.clone());
    }
    let updated = am.update(txn).await?;
    let tokens = timestamp_token::Entity::update_many()
        .col_expr(timestamp_token::Column::QueryDer, Expr::val(Vec::<u8>::new()).into())
        .col_expr(timestamp_token::Column::ReplyDer, Expr::val(Vec::<u8>::new()).into())
        .col_expr(timestamp_token::Column::ChainPem, Expr::val(None::<String>).into())
        .col_expr(timestamp_token::Column::DataRemovedAt, Expr::val(Some(d.at)).into())
        .filter(timestamp_token::Column::FileId.eq(file.id))
        .filter(timestamp_token::Column::DataRemovedAt.is_null())
        .exec(txn)
        .await?
        .rows_affected;
    let target = || Target::new("ArchiveFile", file_global_id(file.id));
    let job_id = global_id::encode("ArchiveJob", job.id);
    if approved {
        let details = serde_json::json!({ "jobId": job_id, "fileName": file.file_name, "reason": d.note, "retentionUntil": file.retention_until });
        audit::record(txn, d.at, &d.actor, AuditAction::DeletionApproved, target(), details).await?;
    }
    let details = serde_json::json!({
        "jobId": job_id,
        "fileName": file.file_name,
        "storageBackend": backend_name,
        "storageKey": file.storage_key,
        "sha256": file.sha256,
        "sizeBytes": file.size_bytes,
        "retentionUntil": file.retention_until,
        "reason": d.reason.to_string(),
        "note": d.note,
        "deletedBy": d.by,
        "timestampTokensCleared": tokens,
    });
    audit::record(txn, d.at, &d.actor, AuditAction::FileDeleted, target(), details).await?;
    let note = format!("deleted {} from {backend_name} ({}, by {})", file.file_name, d.reason, d.by);
    jobs.change_in_txn(txn, job.id, archive_job::Entity::update_many(), JobEventKind::FileDeleted, &note).await?;
    let mut closed = None;
    let status: JobStatus = job.status.parse().map_err(|_| anyhow::anyhow!("job {} has unknown status", job.id))?;
    if d.reason.closes_job() && status.can_become(JobStatus::Deleted) && live_files(txn, job.id).await? == 0 {
        let moved = jobs.transition_in(txn, job.id, status, JobStatus::Deleted, Patch::default(), "every stored file of the job is deleted", None).await?;
        closed = moved.map(|j| (status, j));
    }
    Ok((updated, closed))
}

/// The files of a job not deleted (stored or intents).
pub async fn live_files<C: ConnectionTrait>(c: &C, job_id: uuid::Uuid) -> Result<u64, sea_orm::DbErr> {
    archive_file::Entity::find().filter(archive_file::Column::JobId.eq(job_id)).filter(archive_file::Column::DeletedAt.is_null()).count(c).await
}
