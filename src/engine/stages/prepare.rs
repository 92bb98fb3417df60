//! PRE_PROCESSING: the staging area exists and the job's storage backends are still usable.
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{job_settings, Outcome, Stage, StageResult, Tasks};
use crate::{
    domain::{failure::io_failure, Failure},
    engine::Engine,
    entity::{archive_job, storage_backend},
};

pub struct Prepare;

#[async_trait::async_trait]
impl Stage for Prepare {
    async fn run(&self, engine: &Engine, job: &archive_job::Model, _tasks: &Tasks) -> StageResult {
        tokio::fs::create_dir_all(engine.staging(job.id)).await.map_err(|e| io_failure("creating the staging area", &e))?;
        let settings = job_settings(job)?;
        for name in &settings.storage_backends {
            let b = storage_backend::Entity::find().filter(storage_backend::Column::Name.eq(name)).one(&engine.db).await.map_err(anyhow::Error::from)?;
            match b {
                Some(b) if b.enabled => {}
                _ => return Err(Failure::permanent(format!("storage backend {name:?} does not exist or is disabled"))),
            }
        }
        Ok(Outcome::Done)
    }
}
