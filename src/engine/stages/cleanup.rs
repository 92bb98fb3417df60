//! CLEANUP: the staging area goes; the job is complete.
use super::{Outcome, Stage, StageResult, Tasks};
use crate::{engine::Engine, entity::archive_job};

pub struct Cleanup;

#[async_trait::async_trait]
impl Stage for Cleanup {
    async fn run(&self, engine: &Engine, job: &archive_job::Model, _tasks: &Tasks) -> StageResult {
        engine.remove_staging(job.id).await;
        Ok(Outcome::Done)
    }
}
