//! The stages of a job (DESIGN §2, §5). `advance` runs whatever stage is due, persists its
//! completion with the transition to the next, and goes on until the job waits (for its tasks, a
//! slot or a retry) or ends. Every stage is idempotent: a worker killed at any instant leaves the
//! job in a state from which running the same stage again gives the same result.
use std::{path::Path, time::Duration};

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use super::{
    state::{Lease, Patch},
    Engine,
};
use crate::{
    domain::{job::retry_delay, JobSettings, JobStatus, LogLevel, StorageDriverKind, TaskStatus},
    entity::{archive_file, archive_job, archive_task, storage_backend},
    storage::{self, StorageError},
};

/// A stage's failure: worth retrying, or not.
#[derive(Debug)]
pub enum StageError {
    Transient(String),
    Permanent(String),
}

impl From<anyhow::Error> for StageError {
    /// Unexpected errors (the database, the file system) are assumed to pass.
    fn from(e: anyhow::Error) -> Self {
        StageError::Transient(format!("{e:#}"))
    }
}

impl From<sea_orm::DbErr> for StageError {
    fn from(e: sea_orm::DbErr) -> Self {
        StageError::Transient(e.to_string())
    }
}

type StageResult = Result<(), StageError>;

/// What a finished activity task left in staging: the package and how to check it. Written after
/// the package itself, so its presence means the package is complete.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StagedPackage {
    pub file_name: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
}

pub const STAGED_META: &str = "package.json";

pub fn job_settings(job: &archive_job::Model) -> anyhow::Result<JobSettings> {
    serde_json::from_value(job.settings.clone()).map_err(|e| anyhow::anyhow!("job {} has unreadable settings: {e}", job.id))
}

/// SHA-256 (hex) and size of a file, read in chunks.
pub async fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf).await?;
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

impl Engine {
    /// Handles a stage message: takes the job's lease and runs what is due.
    pub async fn advance(&self, job_id: Uuid) -> anyhow::Result<()> {
        let owner = self.owner();
        if !Lease::take_job(&self.db, job_id, &owner, self.lease_ttl()).await? {
            // Another worker is on it. It may be about to let go: look again shortly.
            self.queue.push_stage(job_id, Some(Duration::from_secs(1))).await?;
            return Ok(());
        }
        let renewal = {
            let (db, owner, ttl) = (self.db.clone(), owner.clone(), self.lease_ttl());
            let every = Duration::from_secs((self.settings.lease_seconds as u64 / 3).max(1));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let _ = Lease::take_job(&db, job_id, &owner, ttl).await;
                }
            })
        };
        let result = self.advance_leased(job_id).await;
        renewal.abort();
        Lease::release_job(&self.db, job_id, &owner).await?;
        result
    }

    async fn load(&self, job_id: Uuid) -> anyhow::Result<Option<(archive_job::Model, JobStatus)>> {
        let Some(job) = archive_job::Entity::find_by_id(job_id).one(&self.db).await? else { return Ok(None) };
        let status: JobStatus = job.status.parse().map_err(|_| anyhow::anyhow!("job {job_id} has unknown status {}", job.status))?;
        Ok(Some((job, status)))
    }

    async fn advance_leased(&self, job_id: Uuid) -> anyhow::Result<()> {
        // Each turn runs one stage; a bound keeps a bug from spinning forever.
        for _ in 0..32 {
            let Some((job, status)) = self.load(job_id).await? else { return Ok(()) };
            if status.is_final() {
                return Ok(());
            }
            let now = Utc::now();
            if status.is_active() && job.deadline.is_some_and(|d| now > d) {
                self.end(&job, status, JobStatus::Timeout, "the deadline passed").await?;
                return Ok(());
            }
            if job.cancel_requested && status != JobStatus::ErrorHandling {
                self.end(&job, status, JobStatus::Canceled, "canceled on request").await?;
                return Ok(());
            }
            let outcome = match status {
                JobStatus::Uninitialized => {
                    self.transition(job_id, status, JobStatus::Queued, Patch::default(), "").await?;
                    Ok(())
                }
                JobStatus::Queued => {
                    if !self.claim_slot(&job).await? {
                        self.queue.push_stage(job_id, Some(Duration::from_secs(2))).await?;
                        return Ok(());
                    }
                    Ok(())
                }
                JobStatus::PreProcessing => self.pre_processing(&job).await,
                JobStatus::ActivityArchiving => match self.activity_archiving(&job).await {
                    Ok(true) => Ok(()),
                    Ok(false) => return Ok(()), // waiting for tasks; each task's end sends a message
                    Err(e) => Err(e),
                },
                JobStatus::PostProcessing => self.post_processing(&job).await,
                JobStatus::Store => self.store(&job).await,
                JobStatus::Sign => self.sign(&job).await,
                JobStatus::Cleanup => self.cleanup(&job).await,
                JobStatus::RecoverableError => {
                    let due = job.next_retry_at.unwrap_or(now);
                    if due > now {
                        let wait = (due - now).to_std().unwrap_or_default();
                        self.queue.push_stage(job_id, Some(wait)).await?;
                        return Ok(());
                    }
                    self.resume(&job).await.map_err(StageError::from)
                }
                JobStatus::ErrorHandling => {
                    self.discard_stored(&job, "the job failed").await?;
                    self.transition(job_id, status, JobStatus::Failure, Patch { finished_at: Some(now), ..Default::default() }, job.error.as_deref().unwrap_or("")).await?;
                    return Ok(());
                }
                _ => return Ok(()),
            };
            if let Err(e) = outcome {
                self.stage_failed(&job, status, e).await?;
            }
        }
        anyhow::bail!("job {job_id} did not settle after 32 steps")
    }

    /// Takes one of the `max_concurrent_jobs` slots and starts the job, or resumes a new attempt
    /// at the stage that failed.
    async fn claim_slot(&self, job: &archive_job::Model) -> anyhow::Result<bool> {
        let settings = job_settings(job)?;
        let resume_at = self.resume_stage(job).await?;
        if resume_at == JobStatus::ActivityArchiving {
            self.requeue_unfinished_tasks(job).await?;
        }
        let now = Utc::now();
        let patch = Patch {
            started_at: Some(now),
            deadline: Some(Some(now + chrono::Duration::seconds(settings.job_timeout_seconds as i64))),
            progress_at_least: Some(resume_at.progress_range().0),
            ..Default::default()
        };
        let note = if job.attempt > 1 { format!("attempt {} starts at {resume_at}", job.attempt) } else { String::new() };
        let moved = self.transition_within(job.id, JobStatus::Queued, resume_at, patch, &note, Some(self.settings.max_concurrent_jobs)).await?;
        if moved.is_some() && resume_at == JobStatus::ActivityArchiving {
            self.dispatch_tasks(job.id).await?;
        }
        Ok(moved.is_some())
    }

    /// Where a job (re)starts: the stage that failed last, unless what it needs from earlier
    /// stages is gone, in which case the activities are archived again.
    async fn resume_stage(&self, job: &archive_job::Model) -> anyhow::Result<JobStatus> {
        let Some(failed) = job.failed_stage.as_deref().and_then(|s| s.parse::<JobStatus>().ok()).filter(|s| s.is_stage()) else {
            return Ok(JobStatus::PreProcessing);
        };
        let after_archiving = crate::domain::job::STAGES.iter().position(|s| *s == failed) > Some(1);
        if after_archiving && !self.staged_packages_complete(job).await? {
            return Ok(JobStatus::ActivityArchiving);
        }
        Ok(failed)
    }

    async fn staged_packages_complete(&self, job: &archive_job::Model) -> anyhow::Result<bool> {
        let tasks = archive_task::Entity::find().filter(archive_task::Column::JobId.eq(job.id)).all(&self.db).await?;
        Ok(tasks.iter().all(|t| self.staging(job.id).join(t.id.to_string()).join(STAGED_META).is_file()))
    }

    /// Back from RECOVERABLE_ERROR to the stage that failed.
    async fn resume(&self, job: &archive_job::Model) -> anyhow::Result<()> {
        let stage = self.resume_stage(job).await?;
        if stage == JobStatus::ActivityArchiving {
            self.requeue_unfinished_tasks(job).await?;
        }
        let note = format!("retry {} of {}", job.retries, self.settings.max_retries);
        self.transition(job.id, JobStatus::RecoverableError, stage, Patch { next_retry_at: Some(None), ..Default::default() }, &note).await?;
        Ok(())
    }

    /// Tasks that did not finish (failed, canceled, or whose package is gone) start over.
    async fn requeue_unfinished_tasks(&self, job: &archive_job::Model) -> anyhow::Result<()> {
        let tasks = archive_task::Entity::find().filter(archive_task::Column::JobId.eq(job.id)).all(&self.db).await?;
        for t in tasks {
            let staged = self.staging(job.id).join(t.id.to_string()).join(STAGED_META).is_file();
            if t.status != TaskStatus::Finished.to_string() || !staged {
                let all: Vec<TaskStatus> = [TaskStatus::Created, TaskStatus::Queued, TaskStatus::Running, TaskStatus::Finalizing, TaskStatus::Finished, TaskStatus::Canceled, TaskStatus::Failed, TaskStatus::Timeout].to_vec();
                self.task_transition(&t, &all, TaskStatus::Created, |am| {
                    am.progress = Set(0);
                    am.records_done = Set(0);
                    am.error = Set(None);
                    am.failure_transient = Set(false);
                    am.finished_at = Set(None);
                })
                .await?;
                // Chunks are planned anew: the activity's record count may have changed.
                self.reset_chunks(job.id, t.id).await?;
            }
        }
        Ok(())
    }

    async fn stage_failed(&self, job: &archive_job::Model, stage: JobStatus, e: StageError) -> anyhow::Result<()> {
        let now = Utc::now();
        let (transient, msg) = match e {
            StageError::Transient(m) => (true, m),
            StageError::Permanent(m) => (false, m),
        };
        let retries = job.retries as u32;
        if transient && retries < self.settings.max_retries {
            let retry = retries + 1;
            let delay = retry_delay(
                Duration::from_secs(self.settings.retry_base_seconds as u64),
                Duration::from_secs(self.settings.retry_max_seconds as u64),
                retry,
                rand::random::<f64>(),
            );
            let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
            let patch = Patch {
                error: Some(Some(msg.clone())),
                failed_stage: Some(Some(stage.to_string())),
                retries: Some(retry as i32),
                next_retry_at: Some(Some(at)),
                ..Default::default()
            };
            let note = format!("{msg}; retry {retry} of {} in {:.1} s", self.settings.max_retries, delay.as_secs_f64());
            if self.transition(job.id, stage, JobStatus::RecoverableError, patch, &note).await?.is_some() {
                self.queue.push_stage(job.id, Some(delay)).await?;
            }
        } else {
            let why = if transient { format!("{msg} (gave up after {retries} retries)") } else { msg };
            let patch = Patch { error: Some(Some(why.clone())), failed_stage: Some(Some(stage.to_string())), ..Default::default() };
            self.transition(job.id, stage, JobStatus::ErrorHandling, patch, &why).await?;
        }
        Ok(())
    }

    /// Ends a job early (cancel, timeout): stops its tasks, removes what it stored in this attempt,
    /// and (on cancel) its staging area. A timed-out job keeps its staging so a retry can resume.
    async fn end(&self, job: &archive_job::Model, from: JobStatus, to: JobStatus, note: &str) -> anyhow::Result<()> {
        let task_end = if to == JobStatus::Timeout { TaskStatus::Timeout } else { TaskStatus::Canceled };
        let patch = Patch { finished_at: Some(Utc::now()), error: (to == JobStatus::Timeout).then(|| Some(note.to_string())), ..Default::default() };
        if self.transition(job.id, from, to, patch, note).await?.is_none() {
            return Ok(());
        }
        let tasks = archive_task::Entity::find().filter(archive_task::Column::JobId.eq(job.id)).all(&self.db).await?;
        for t in tasks {
            let open = [TaskStatus::Created, TaskStatus::Queued, TaskStatus::Running, TaskStatus::Finalizing];
            self.task_transition(&t, &open, task_end, |am| am.finished_at = Set(Some(Utc::now()))).await?;
        }
        self.discard_stored(job, note).await?;
        if to == JobStatus::Canceled {
            self.remove_staging(job.id).await;
        }
        Ok(())
    }

    pub async fn remove_staging(&self, job_id: Uuid) {
        let dir = self.staging(job_id);
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(job = %job_id, error = %e, "could not remove staging");
            }
        }
    }

    /// Removes what an unfinished job stored, so no partial archive stays visible; the rows are
    /// kept, marked deleted, for the record.
    async fn discard_stored(&self, job: &archive_job::Model, reason: &str) -> anyhow::Result<()> {
        let files = archive_file::Entity::find()
            .filter(archive_file::Column::JobId.eq(job.id))
            .filter(archive_file::Column::DeletedAt.is_null())
            .all(&self.db)
            .await?;
        for f in files {
            let driver = self.driver(f.storage_backend_id).await?;
            match driver.delete(&f.storage_key).await {
                Ok(()) | Err(StorageError::NotFound) => {}
                Err(e) => {
                    self.log(job.id, f.task_id, LogLevel::Warn, &format!("could not delete {} from storage: {e:?}", f.file_name)).await?;
                    continue;
                }
            }
            let mut am: archive_file::ActiveModel = f.into();
            am.deleted_at = Set(Some(Utc::now()));
            am.deletion_reason = Set(Some(reason.to_string()));
            am.update(&self.db).await?;
        }
        Ok(())
    }

    pub async fn driver(&self, backend_id: i64) -> anyhow::Result<std::sync::Arc<dyn storage::StorageDriver>> {
        let b = storage_backend::Entity::find_by_id(backend_id).one(&self.db).await?.ok_or_else(|| anyhow::anyhow!("storage backend {backend_id} is gone"))?;
        let kind: StorageDriverKind = b.driver.parse().map_err(|_| anyhow::anyhow!("storage backend {} has unknown driver", b.name))?;
        storage::open(kind, &b.settings).map_err(|e| anyhow::anyhow!("storage backend {}: {e:?}", b.name))
    }

    // ---------- the stages ----------

    async fn pre_processing(&self, job: &archive_job::Model) -> StageResult {
        tokio::fs::create_dir_all(self.staging(job.id)).await.map_err(|e| StageError::Transient(format!("creating staging: {e}")))?;
        let settings = job_settings(job)?;
        // The backends must still exist and be enabled.
        for name in &settings.storage_backends {
            let b = storage_backend::Entity::find().filter(storage_backend::Column::Name.eq(name)).one(&self.db).await?;
            match b {
                Some(b) if b.enabled => {}
                _ => return Err(StageError::Permanent(format!("storage backend {name:?} does not exist or is disabled"))),
            }
        }
        let next = JobStatus::ActivityArchiving;
        let patch = Patch { completed_stage: Some(Some(JobStatus::PreProcessing.to_string())), progress_at_least: Some(next.progress_range().0), ..Default::default() };
        if self.transition(job.id, JobStatus::PreProcessing, next, patch, "").await?.is_some() {
            self.dispatch_tasks(job.id).await?;
        }
        Ok(())
    }

    /// Queues every task that is not done or running.
    async fn dispatch_tasks(&self, job_id: Uuid) -> anyhow::Result<()> {
        let tasks = archive_task::Entity::find().filter(archive_task::Column::JobId.eq(job_id)).order_by_asc(archive_task::Column::Id).all(&self.db).await?;
        for t in tasks {
            if t.status == TaskStatus::Created.to_string() {
                self.task_transition(&t, &[TaskStatus::Created], TaskStatus::Queued, |_| {}).await?;
            }
            if t.status == TaskStatus::Created.to_string() || t.status == TaskStatus::Queued.to_string() {
                self.queue.push_task(job_id, t.id).await?;
            }
        }
        Ok(())
    }

    /// True when every activity is archived and the job moved on; false while tasks run.
    async fn activity_archiving(&self, job: &archive_job::Model) -> Result<bool, StageError> {
        let tasks = archive_task::Entity::find().filter(archive_task::Column::JobId.eq(job.id)).all(&self.db).await?;
        let status = |t: &archive_task::Model| t.status.parse::<TaskStatus>().unwrap_or(TaskStatus::Failed);
        if tasks.iter().any(|t| status(t) == TaskStatus::Created) {
            self.dispatch_tasks(job.id).await?;
            return Ok(false);
        }
        if !tasks.iter().all(|t| status(t).is_final()) {
            return Ok(false);
        }
        if let Some(failed) = tasks.iter().find(|t| status(t) != TaskStatus::Finished) {
            let msg = format!("archiving activity {} failed: {}", failed.activity_id, failed.error.as_deref().unwrap_or("without a reason"));
            let transient = tasks.iter().filter(|t| status(t) != TaskStatus::Finished).all(|t| t.failure_transient);
            return Err(if transient { StageError::Transient(msg) } else { StageError::Permanent(msg) });
        }
        let next = JobStatus::PostProcessing;
        let patch = Patch { completed_stage: Some(Some(JobStatus::ActivityArchiving.to_string())), progress_at_least: Some(next.progress_range().0), ..Default::default() };
        self.transition(job.id, JobStatus::ActivityArchiving, next, patch, "").await?;
        Ok(true)
    }

    async fn staged(&self, job: &archive_job::Model) -> Result<Vec<(archive_task::Model, StagedPackage, std::path::PathBuf)>, StageError> {
        let tasks = archive_task::Entity::find().filter(archive_task::Column::JobId.eq(job.id)).order_by_asc(archive_task::Column::Id).all(&self.db).await?;
        let mut out = Vec::new();
        for t in tasks {
            let dir = self.staging(job.id).join(t.id.to_string());
            let meta = tokio::fs::read(dir.join(STAGED_META)).await.map_err(|e| StageError::Permanent(format!("the package of task {} is missing from staging: {e}", t.id)))?;
            let p: StagedPackage = serde_json::from_slice(&meta).map_err(|e| StageError::Permanent(format!("unreadable package record of task {}: {e}", t.id)))?;
            let path = dir.join(&p.file_name);
            out.push((t, p, path));
        }
        Ok(out)
    }

    /// Checks every staged package against the checksum recorded when it was built.
    async fn post_processing(&self, job: &archive_job::Model) -> StageResult {
        for (t, p, path) in self.staged(job).await? {
            let (sha, size) = hash_file(&path).await.map_err(|e| StageError::Permanent(format!("reading the package of task {}: {e}", t.id)))?;
            if sha != p.sha256 || size != p.size {
                return Err(StageError::Permanent(format!("the package of task {} changed in staging (SHA-256 {sha}, expected {})", t.id, p.sha256)));
            }
            self.log(job.id, Some(t.id), LogLevel::Info, &format!("verified {} ({size} bytes, SHA-256 {sha})", p.file_name)).await?;
        }
        let next = JobStatus::Store;
        let patch = Patch { completed_stage: Some(Some(JobStatus::PostProcessing.to_string())), progress_at_least: Some(next.progress_range().0), ..Default::default() };
        self.transition(job.id, JobStatus::PostProcessing, next, patch, "").await?;
        Ok(())
    }

    /// Stores every package on every backend of the job's settings: create-only, read back and
    /// compared. A package already stored (a previous run of this stage died after storing it)
    /// is accepted when its checksum matches.
    async fn store(&self, job: &archive_job::Model) -> StageResult {
        let settings = job_settings(job)?;
        let staged = self.staged(job).await?;
        let mut backends = Vec::new();
        for name in &settings.storage_backends {
            let b = storage_backend::Entity::find().filter(storage_backend::Column::Name.eq(name)).one(&self.db).await?;
            backends.push(b.ok_or_else(|| StageError::Permanent(format!("storage backend {name:?} is gone")))?);
        }
        let total = (staged.len() * backends.len()).max(1);
        let (start, end) = JobStatus::Store.progress_range();
        let retention_until = settings.retention_days.map(|d| job.created_at + chrono::Duration::days(d as i64));
        let mut done = 0;
        for (t, p, path) in &staged {
            for b in &backends {
                let fresh = archive_job::Entity::find_by_id(job.id).one(&self.db).await?;
                if fresh.as_ref().is_some_and(|j| j.cancel_requested || j.status != JobStatus::Store.to_string()) {
                    return Ok(()); // canceled or moved on: the next turn of `advance` handles it
                }
                let exists = archive_file::Entity::find()
                    .filter(archive_file::Column::JobId.eq(job.id))
                    .filter(archive_file::Column::TaskId.eq(t.id))
                    .filter(archive_file::Column::StorageBackendId.eq(b.id))
                    .filter(archive_file::Column::DeletedAt.is_null())
                    .one(&self.db)
                    .await?
                    .is_some();
                if !exists {
                    let key = format!("{}/{}/{}/{}", job.created_at.format("%Y/%m"), job.id, t.id, p.file_name);
                    let kind: StorageDriverKind = b.driver.parse().map_err(|_| StageError::Permanent(format!("storage backend {} has an unknown driver", b.name)))?;
                    let driver = storage::open(kind, &b.settings).map_err(|e| storage_error(&b.name, e))?;
                    match driver.put_file(&key, path, &p.sha256).await {
                        Ok(stored) => {
                            self.log(job.id, Some(t.id), LogLevel::Info, &format!("stored {} on {} ({} bytes, read back and verified)", p.file_name, b.name, stored.size)).await?;
                        }
                        Err(StorageError::AlreadyExists) => {
                            // Ours from a run that died before recording it? Then it matches.
                            let found = driver.checksum(&key).await.map_err(|e| storage_error(&b.name, e))?;
                            if found.sha256 != p.sha256 {
                                return Err(StageError::Permanent(format!("{key} already exists on {} with other content", b.name)));
                            }
                            self.log(job.id, Some(t.id), LogLevel::Info, &format!("{} was already stored on {} and matches", p.file_name, b.name)).await?;
                        }
                        Err(e) => return Err(storage_error(&b.name, e)),
                    }
                    archive_file::ActiveModel {
                        job_id: Set(job.id),
                        task_id: Set(Some(t.id)),
                        storage_backend_id: Set(b.id),
                        storage_key: Set(key),
                        file_name: Set(p.file_name.clone()),
                        size_bytes: Set(p.size as i64),
                        sha256: Set(p.sha256.clone()),
                        media_type: Set(p.media_type.clone()),
                        retention_until: Set(retention_until),
                        legal_hold: Set(false),
                        deleted_at: Set(None),
                        deletion_reason: Set(None),
                        created_at: Set(Utc::now()),
                        ..Default::default()
                    }
                    .insert(&self.db)
                    .await?;
                }
                done += 1;
                self.raise_progress(job.id, JobStatus::Store, start + ((end - start) as usize * done / total) as i32).await?;
            }
        }
        let next = JobStatus::Sign;
        let patch = Patch { completed_stage: Some(Some(JobStatus::Store.to_string())), progress_at_least: Some(next.progress_range().0), ..Default::default() };
        self.transition(job.id, JobStatus::Store, next, patch, "").await?;
        Ok(())
    }

    /// RFC 3161 timestamps come with the Time-Stamp Authority client; until one is configured the
    /// stage records that the packages were not timestamped.
    async fn sign(&self, job: &archive_job::Model) -> StageResult {
        let settings = job_settings(job)?;
        if settings.timestamping {
            self.log(job.id, None, LogLevel::Warn, "timestamping was requested, but no Time-Stamp Authority is configured: the packages are not timestamped").await?;
        }
        let next = JobStatus::Cleanup;
        let patch = Patch { completed_stage: Some(Some(JobStatus::Sign.to_string())), progress_at_least: Some(next.progress_range().0), ..Default::default() };
        self.transition(job.id, JobStatus::Sign, next, patch, "").await?;
        Ok(())
    }

    async fn cleanup(&self, job: &archive_job::Model) -> StageResult {
        self.remove_staging(job.id).await;
        let patch = Patch {
            completed_stage: Some(Some(JobStatus::Cleanup.to_string())),
            progress_at_least: Some(100),
            finished_at: Some(Utc::now()),
            error: Some(None),
            ..Default::default()
        };
        self.transition(job.id, JobStatus::Cleanup, JobStatus::Completed, patch, "").await?;
        Ok(())
    }
}

fn storage_error(backend: &str, e: StorageError) -> StageError {
    match e {
        StorageError::Transient(m) | StorageError::Integrity(m) => StageError::Transient(format!("storage backend {backend}: {m}")),
        StorageError::Permanent(m) => StageError::Permanent(format!("storage backend {backend}: {m}")),
        StorageError::AlreadyExists => StageError::Permanent(format!("storage backend {backend}: the object already exists")),
        StorageError::NotFound => StageError::Transient(format!("storage backend {backend}: the object is missing")),
    }
}
