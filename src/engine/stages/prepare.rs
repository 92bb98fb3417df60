//! PRE_PROCESSING: the staging area exists and the job's storage backends are still usable (not
//! deleted: else the job fails; enabled: else it waits, see `storage::health`).

use super::{job_settings, Outcome, Stage, StageResult, Tasks};
use crate::{
    domain::{failure::io_failure, Failure},
    engine::Engine,
    entity::archive_job,
    storage,
};

pub struct Prepare;

#[async_trait::async_trait]
impl Stage for Prepare {
    async fn run(&self, engine: &Engine, job: &archive_job::Model, _tasks: &Tasks) -> StageResult {
        tokio::fs::create_dir_all(engine.staging(job.id)).await.map_err(|e| io_failure("creating the staging area", &e))?;
        let settings = job_settings(job)?;
        for name in &settings.storage_backends {
            match storage::files::backend_named(&engine.db, name).await? {
                Some(b) => storage::health::usable(&b)?,
                None => return Err(Failure::permanent(format!("storage backend {name:?} does not exist"))),
            }
        }
        Ok(Outcome::Done)
    }
}
