//! SIGN: RFC 3161 timestamps come with the Time-Stamp Authority client; until one is configured
//! the stage records that the packages were not timestamped.
use super::{job_settings, Outcome, Stage, StageResult, Tasks};
use crate::{domain::LogLevel, engine::Engine, entity::archive_job};

pub struct Sign;

#[async_trait::async_trait]
impl Stage for Sign {
    async fn run(&self, engine: &Engine, job: &archive_job::Model, _tasks: &Tasks) -> StageResult {
        if job_settings(job)?.timestamping {
            let msg = "timestamping was requested, but no Time-Stamp Authority is configured: the packages are not timestamped";
            engine.jobs.log(job.id, None, LogLevel::Warn, msg).await?;
        }
        Ok(Outcome::Done)
    }
}
