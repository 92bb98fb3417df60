//! The stages of a job (DESIGN §2, §5), each behind [`Stage`]: it does its work for a job and
//! says whether the job may move on. The pipeline (`super::pipeline`) owns everything around
//! them: the lease, the transition to the next stage, retries, cancel and deadline. Every stage
//! is idempotent: run again after a crash, it gives the same result.
mod archiving;
mod cleanup;
mod prepare;
mod sign;
mod store;
mod verify;

use std::path::PathBuf;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};

use super::Engine;
use crate::{
    domain::{Failure, JobSettings, JobStatus},
    entity::{archive_job, archive_task},
};

/// What a stage's run says about the job.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The stage's work is complete: the job moves on to the next stage.
    Done,
    /// The job waits for work elsewhere (its tasks); a message will bring it back.
    Waiting,
    /// Something changed under the stage (a cancel, a move by another worker): look again.
    Again,
}

pub type StageResult = Result<Outcome, Failure>;

#[async_trait::async_trait]
pub trait Stage: Send + Sync {
    /// Runs the stage's work for `job`; `tasks` holds the job's tasks once a stage has read them.
    async fn run(&self, engine: &Engine, job: &archive_job::Model, tasks: &Tasks) -> StageResult;
}

/// The job's tasks, read once while a worker holds the job however many stages it runs: the
/// stages after ACTIVITY_ARCHIVING need only which tasks there are (ids, activities, order), and
/// a job's tasks are never added or removed. ACTIVITY_ARCHIVING reads their states afresh and
/// leaves them here when all have finished.
#[derive(Default)]
pub struct Tasks(tokio::sync::OnceCell<Vec<archive_task::Model>>);

impl Tasks {
    /// The job's tasks in id order.
    async fn get(&self, engine: &Engine, job_id: uuid::Uuid) -> anyhow::Result<&[archive_task::Model]> {
        let read = || async {
            let tasks = archive_task::Entity::find().filter(archive_task::Column::JobId.eq(job_id)).order_by_asc(archive_task::Column::Id).all(&engine.db).await?;
            anyhow::Ok(tasks)
        };
        Ok(self.0.get_or_try_init(read).await?.as_slice())
    }

    fn remember(&self, mut tasks: Vec<archive_task::Model>) {
        tasks.sort_by_key(|t| t.id);
        let _ = self.0.set(tasks);
    }
}

/// The stage that runs while a job is in `status`, if it is one.
pub fn of(status: JobStatus) -> Option<&'static dyn Stage> {
    Some(match status {
        JobStatus::PreProcessing => &prepare::Prepare,
        JobStatus::ActivityArchiving => &archiving::Archiving,
        JobStatus::PostProcessing => &verify::Verify,
        JobStatus::Store => &store::Store,
        JobStatus::Sign => &sign::Sign,
        JobStatus::Cleanup => &cleanup::Cleanup,
        _ => return None,
    })
}

pub fn job_settings(job: &archive_job::Model) -> anyhow::Result<JobSettings> {
    serde_json::from_value(job.settings.clone()).map_err(|e| anyhow::anyhow!("job {} has unreadable settings: {e}", job.id))
}

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

impl Engine {
    /// Where a task's package is built.
    pub(super) fn task_staging(&self, job_id: uuid::Uuid, task_id: i64) -> PathBuf {
        self.staging(job_id).join(task_id.to_string())
    }

    /// True when the package of `task_id` is complete in staging.
    pub(super) fn is_staged(&self, job_id: uuid::Uuid, task_id: i64) -> bool {
        self.task_staging(job_id, task_id).join(STAGED_META).is_file()
    }

    /// Every task's staged package with its path, in task order.
    async fn staged(&self, job: &archive_job::Model, tasks: &Tasks) -> Result<Vec<(archive_task::Model, StagedPackage, PathBuf)>, Failure> {
        let mut out = Vec::new();
        for t in tasks.get(self, job.id).await?.iter().cloned() {
            let dir = self.task_staging(job.id, t.id);
            let meta = tokio::fs::read(dir.join(STAGED_META)).await.map_err(|e| Failure::permanent(format!("the package of task {} is missing from staging: {e}", t.id)))?;
            let p: StagedPackage = serde_json::from_slice(&meta).map_err(|e| Failure::permanent(format!("unreadable package record of task {}: {e}", t.id)))?;
            let path = dir.join(&p.file_name);
            out.push((t, p, path));
        }
        Ok(out)
    }

    /// Whether the job was canceled or moved on since `job` was read: a long stage stops between
    /// steps and lets the pipeline look again.
    async fn interrupted(&self, job: &archive_job::Model) -> Result<bool, Failure> {
        let fresh = archive_job::Entity::find_by_id(job.id).one(&self.db).await.map_err(anyhow::Error::from)?;
        Ok(fresh.is_none_or(|j| j.cancel_requested || j.status != job.status))
    }
}
