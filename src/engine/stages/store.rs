//! STORE: every staged package goes to every backend of the job's settings, create-only, read
//! back and compared. Nothing is stored without a record: the file's row is written first as an
//! intent (`stored_at` NULL), the object is put, and the row is confirmed after. A crash at any
//! instant leaves a confirmed file or an intent; running the stage again resolves the intent (an
//! object already there with the right checksum is ours), and for a job that ended instead the
//! sweeper deletes what the intent names.
use chrono::Utc;
use sea_orm::{sea_query::Expr, ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TryIntoModel};

use super::{job_settings, Outcome, Stage, StageResult, StagedPackage};
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
    async fn run(&self, engine: &Engine, job: &archive_job::Model) -> StageResult {
        let settings = job_settings(job)?;
        let staged = engine.staged(job).await?;
        let mut backends = Vec::new();
        for name in &settings.storage_backends {
            let b = storage_backend::Entity::find().filter(storage_backend::Column::Name.eq(name)).one(&engine.db).await.map_err(anyhow::Error::from)?;
            backends.push(b.ok_or_else(|| Failure::permanent(format!("storage backend {name:?} is gone")))?);
        }
        let total = (staged.len() * backends.len()).max(1);
        let (start, end) = JobStatus::Store.progress_range();
        let retention_until = settings.retention_days.map(|d| job.created_at + chrono::Duration::days(d as i64));
        let mut done = 0;
        for (t, p, path) in &staged {
            for b in &backends {
                if engine.interrupted(job).await? {
                    return Ok(Outcome::Again);
                }
                let file = match recorded(engine, job, t, b).await? {
                    Some(f) if f.stored_at.is_some() => None, // stored by an earlier run
                    Some(intent) => Some(intent),
                    None => Some(record_intent(engine, job, t, b, p, retention_until).await?),
                };
                if let Some(file) = file {
                    put(engine, job, t, b, p, path, &file).await?;
                    faults::point(|| "store:put".into());
                    confirm(engine, &file).await?;
                }
                done += 1;
                engine.jobs.raise_progress(job.id, JobStatus::Store, start + ((end - start) as usize * done / total) as i32).await?;
            }
        }
        Ok(Outcome::Done)
    }
}

/// The file row of this task's package on this backend, confirmed or not.
async fn recorded(engine: &Engine, job: &archive_job::Model, t: &archive_task::Model, b: &storage_backend::Model) -> Result<Option<archive_file::Model>, Failure> {
    Ok(archive_file::Entity::find()
        .filter(archive_file::Column::JobId.eq(job.id))
        .filter(archive_file::Column::TaskId.eq(t.id))
        .filter(archive_file::Column::StorageBackendId.eq(b.id))
        .filter(archive_file::Column::DeletedAt.is_null())
        .one(&engine.db)
        .await
        .map_err(anyhow::Error::from)?)
}

async fn record_intent(
    engine: &Engine,
    job: &archive_job::Model,
    t: &archive_task::Model,
    b: &storage_backend::Model,
    p: &StagedPackage,
    retention_until: Option<chrono::DateTime<Utc>>,
) -> Result<archive_file::Model, Failure> {
    // The key depends only on the job, the task and the name: a rerun puts the same key. A row
    // of an earlier attempt whose file was discarded (the job failed) becomes the new intent:
    // keys are unique per backend.
    let key = format!("{}/{}/{}/{}", job.created_at.format("%Y/%m"), job.id, t.id, p.file_name);
    let earlier = archive_file::Entity::find()
        .filter(archive_file::Column::StorageBackendId.eq(b.id))
        .filter(archive_file::Column::StorageKey.eq(&key))
        .one(&engine.db)
        .await
        .map_err(anyhow::Error::from)?;
    let mut row = match earlier {
        Some(e) if e.job_id == job.id && e.deleted_at.is_some() => e.into(),
        Some(_) => return Err(Failure::permanent(format!("{key} is recorded on {} for another file", b.name))),
        None => archive_file::ActiveModel { job_id: Set(job.id), storage_backend_id: Set(b.id), storage_key: Set(key), legal_hold: Set(false), ..Default::default() },
    };
    row.task_id = Set(Some(t.id));
    row.file_name = Set(p.file_name.clone());
    row.size_bytes = Set(p.size as i64);
    row.sha256 = Set(p.sha256.clone());
    row.media_type = Set(p.media_type.clone());
    row.retention_until = Set(retention_until);
    row.deleted_at = Set(None);
    row.deletion_reason = Set(None);
    row.created_at = Set(Utc::now());
    row.stored_at = Set(None);
    let row = row.save(&engine.db).await.map_err(anyhow::Error::from)?.try_into_model().map_err(anyhow::Error::from)?;
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
