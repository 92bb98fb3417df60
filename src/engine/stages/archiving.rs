//! ACTIVITY_ARCHIVING: each activity is archived by its own queue task (`engine::tasks`); the
//! stage queues the tasks not yet queued and is done when every task finished. A failed task
//! fails the stage, transiently only when every failed task failed transiently.
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::{Outcome, Stage, StageResult, Tasks};
use crate::{
    domain::{Failure, TaskStatus},
    engine::Engine,
    entity::{archive_job, archive_task},
};

pub struct Archiving;

#[async_trait::async_trait]
impl Stage for Archiving {
    async fn run(&self, engine: &Engine, job: &archive_job::Model, known: &Tasks) -> StageResult {
        let tasks = archive_task::Entity::find().filter(archive_task::Column::JobId.eq(job.id)).all(&engine.db).await.map_err(anyhow::Error::from)?;
        let status = |t: &archive_task::Model| t.status.parse::<TaskStatus>().unwrap_or(TaskStatus::Failed);
        if tasks.iter().any(|t| status(t) == TaskStatus::Created) {
            dispatch(engine, job.id, tasks).await?;
            return Ok(Outcome::Waiting);
        }
        if !tasks.iter().all(|t| status(t).is_final()) {
            return Ok(Outcome::Waiting); // each task's end sends the job a message
        }
        let failed: Vec<&archive_task::Model> = tasks.iter().filter(|t| status(t) != TaskStatus::Finished).collect();
        if let Some(first) = failed.first() {
            let msg = format!("archiving activity {} failed: {}", first.activity_id, first.error.as_deref().unwrap_or("without a reason"));
            return Err(if failed.iter().all(|t| t.failure_transient) { Failure::transient(msg) } else { Failure::permanent(msg) });
        }
        known.remember(tasks);
        Ok(Outcome::Done)
    }
}

/// Queues those of `tasks` (the job's, just read) that are not done or running, in id order.
async fn dispatch(engine: &Engine, job_id: Uuid, mut tasks: Vec<archive_task::Model>) -> anyhow::Result<()> {
    tasks.sort_by_key(|t| t.id);
    for t in tasks {
        if t.status == TaskStatus::Created.to_string() {
            engine.jobs.task_transition(&t, &[TaskStatus::Created], TaskStatus::Queued, |_| {}).await?;
        }
        if t.status == TaskStatus::Created.to_string() || t.status == TaskStatus::Queued.to_string() {
            engine.queue.push_task(job_id, t.id).await?;
        }
    }
    Ok(())
}
