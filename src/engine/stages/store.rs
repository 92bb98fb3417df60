//! STORE: every staged package goes to every backend of the job's settings, create-only, read
//! back and compared. Nothing is stored without a record: the file's row is written first as an
//! intent (`stored_at` NULL), the object is put, and the row is confirmed after. A crash at any
//! instant leaves a confirmed file or an intent; running the stage again resolves the intent (an
//! object already there with the right checksum is ours), and for a job that ended instead the
//! sweeper deletes what the intent names.
//!
//! A disabled backend, or one whose health check fails, is not written to: the job waits
//! (`storage::health::writable` has the rule).
use chrono::Utc;
use sea_orm::{sea_query::Expr, ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TryIntoModel};

use super::{job_settings, Outcome, Stage, StageResult, StagedPackage, Tasks};
use crate::{
    domain::{Failure, JobStatus, LogLevel},
    engine::Engine,
    entity::{archive_file, archive_job, archive_task, storage_backend},
    faults,
    storage::{self, StorageError},
};

pub struct Store;

#[async_trait::async_trait]
impl Stage for Store {
    async fn run(&self, engine: &Engine, job: &archive_job::Model, tasks: &Tasks) -> StageResult {
        let settings = job_settings(job)?;
        let staged = engine.staged(job, tasks).await?;
        let mut backends = Vec::new();
        for name in &settings.storage_backends {
            let b = storage::files::backend_named(&engine.db, name).await?;
            backends.push(b.ok_or_else(|| Failure::permanent(format!("storage backend {name:?} is gone")))?);
        }
        let total = (staged.len() * backends.len()).max(1);
        let (start, end) = JobStatus::Store.progress_range();
        let retention_until = settings.retention_days.map(|d| job.created_at + chrono::Duration::days(d as i64));
        // The job's file rows, read once: which packages are stored, which are only intents, and
        // the rows of an earlier attempt whose keys a put reuses.
        let files = archive_file::Entity::find().filter(archive_file::Column::JobId.eq(job.id)).all(&engine.db).await.map_err(anyhow::Error::from)?;
        let mut done = 0;
        // Backends found writable in this run (checked before their first put, not before
        // backends that already hold everything).
        let mut writable = std::collections::HashSet::new();
        for (t, p, path) in &staged {
            for b in &backends {
                // Between two puts: before the first, `job` is as fresh as a read here would be.
                if done > 0 && engine.interrupted(job).await? {
                    return Ok(Outcome::Again);
                }
                let recorded = files.iter().find(|f| f.task_id == Some(t.id) && f.storage_backend_id == b.id && f.deleted_at.is_none());
                let file = match recorded {
                    Some(f) if f.stored_at.is_some() => None, // stored by an earlier run
                    Some(intent) => Some(intent.clone()),
                    None => Some(record_intent(engine, job, t, b, p, retention_until, &files).await?),
                };
                if let Some(file) = file {
                    if writable.insert(b.id) {
                        storage::health::writable(&engine.db, b, engine.clock.now()).await?;
                    }
                    put(engine, job, t, b, p, path, &file).await?;
                    faults::point(|| "store:put".into());
                    confirm(engine, &file).await?;
                }
                done += 1;
                // After the last put, the move to the next stage raises the progress.
                if done < total {
                    engine.jobs.raise_progress(job.id, JobStatus::Store, start + ((end - start) as usize * done / total) as i32).await?;
                }
            }
        }
        Ok(Outcome::Done)
    }
}

async fn record_intent(
    engine: &Engine,
    job: &archive_job::Model,
    t: &archive_task::Model,
    b: &storage_backend::Model,
    p: &StagedPackage,
    retention_until: Option<chrono::DateTime<Utc>>,
    files: &[archive_file::Model],
) -> Result<archive_file::Model, Failure> {
    // The key depends only on the job, the task and the name: a rerun puts the same key. A row
    // of an earlier attempt whose file was discarded (the job failed) becomes the new intent:
    // keys are unique per backend.
    let key = format!("{}/{}/{}/{}", job.created_at.format("%Y/%m"), job.id, t.id, p.file_name);
    // The key names the job: a row with it is among the job's `files`, or another job's by
    // mistake, which the insert below finds (keys are unique per backend).
    let earlier = files.iter().find(|f| f.storage_backend_id == b.id && f.storage_key == key).cloned();
    let mut row = match earlier {
        Some(e) if e.job_id == job.id && e.deleted_at.is_some() => e.into(),
        Some(_) => return Err(Failure::permanent(format!("{key} is recorded on {} for another file", b.name))),
        None => archive_file::ActiveModel { job_id: Set(job.id), storage_backend_id: Set(b.id), storage_key: Set(key.clone()), legal_hold: Set(false), ..Default::default() },
    };
    row.task_id = Set(Some(t.id));
    row.file_name = Set(p.file_name.clone());
    row.size_bytes = Set(p.size as i64);
    row.sha256 = Set(p.sha256.clone());
    row.media_type = Set(p.media_type.clone());
    row.retention_until = Set(retention_until);
    // A reused row starts over as a new file; its old deletion stays in the audit log.
    row.deleted_at = Set(None);
    row.deletion_reason = Set(None);
    row.deleted_by = Set(None);
    row.deletion_note = Set(None);
    row.deletion_pending_since = Set(None);
    row.deletion_decision = Set(None);
    row.deletion_decided_by = Set(None);
    row.deletion_decided_at = Set(None);
    row.deletion_decision_reason = Set(None);
    row.created_at = Set(Utc::now());
    row.stored_at = Set(None);
    let row = match row.save(&engine.db).await {
        Ok(row) => row.try_into_model().map_err(anyhow::Error::from)?,
        Err(e) => {
            let taken = archive_file::Entity::find()
                .filter(archive_file::Column::StorageBackendId.eq(b.id))
                .filter(archive_file::Column::StorageKey.eq(&key))
                .one(&engine.db)
                .await
                .map_err(anyhow::Error::from)?;
            if taken.is_some_and(|f| f.job_id != job.id) {
                return Err(Failure::permanent(format!("{key} is recorded on {} for another file", b.name)));
            }
            return Err(anyhow::Error::from(e).into());
        }
    };
    faults::point(|| "store:intent".into());
    Ok(row)
}

/// Puts the package under the intent's key; an object already there is accepted only when it
/// is byte for byte the package (ours, from a run that died before confirming).
async fn put(engine: &Engine, job: &archive_job::Model, t: &archive_task::Model, b: &storage_backend::Model, p: &StagedPackage, path: &std::path::Path, file: &archive_file::Model) -> Result<(), Failure> {
    let driver = storage::files::driver(b)?;
    // A staged package is never written again (built under another name, renamed into place,
    // removed at CLEANUP): the local directory may keep the file itself instead of a copy.
    match driver.put_immutable_file(&file.storage_key, path, &p.sha256).await {
        Ok(stored) => {
            engine.jobs.log(job.id, Some(t.id), LogLevel::Info, &format!("stored {} on {} ({} bytes, SHA-256 verified)", p.file_name, b.name, stored.size)).await?;
        }
        Err(StorageError::AlreadyExists) => {
            let found = driver.checksum(&file.storage_key).await.map_err(|e| e.failure(&b.name))?;
            if found.sha256 != p.sha256 {
                return Err(Failure::permanent(format!("{} already exists on {} with other content", file.storage_key, b.name)));
            }
            engine.jobs.log(job.id, Some(t.id), LogLevel::Info, &format!("{} was already stored on {} and matches", p.file_name, b.name)).await?;
        }
        Err(e) => return Err(e.failure(&b.name)),
    }
    Ok(())
}

async fn confirm(engine: &Engine, file: &archive_file::Model) -> Result<(), Failure> {
    archive_file::Entity::update_many()
        .col_expr(archive_file::Column::StoredAt, Expr::val(Some(Utc::now())).into())
        .filter(archive_file::Column::Id.eq(file.id))
        .exec(&engine.db)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(())
}
