//! POST_PROCESSING: every staged package still has the checksum recorded when it was built.
use super::{Outcome, Stage, StageResult, Tasks};
use crate::{
    domain::{Failure, LogLevel},
    engine::Engine,
    entity::archive_job,
    storage,
};

pub struct Verify;

#[async_trait::async_trait]
impl Stage for Verify {
    async fn run(&self, engine: &Engine, job: &archive_job::Model, tasks: &Tasks) -> StageResult {
        for (t, p, path) in engine.staged(job, tasks).await? {
            let found = storage::hash_path(&path).await.map_err(|e| Failure::permanent(format!("reading the package of task {}: {e}", t.id)))?;
            if found.sha256 != p.sha256 || found.size != p.size {
                return Err(Failure::permanent(format!("the package of task {} changed in staging (SHA-256 {}, expected {})", t.id, found.sha256, p.sha256)));
            }
            engine.jobs.log(job.id, Some(t.id), LogLevel::Info, &format!("verified {} ({} bytes, SHA-256 {})", p.file_name, found.size, found.sha256)).await?;
        }
        Ok(Outcome::Done)
    }
}
