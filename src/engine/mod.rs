//! What workers run: the job pipeline, activity drivers, packaging, post-processing.
//!
//! A job advances one stage at a time (`pipeline`, with the stages behind one trait in
//! `stages`), each stage's completion persisted with the transition to the next, under a lease
//! held by the work's own future so that one worker works on it at a time. Activities are
//! archived as separate queue tasks (`tasks`), so a job's activities run in parallel across
//! workers; a large activity's records are split into chunks (`chunks`), queue tasks of their
//! own. The `sweeper` (a periodic task) re-sends what is due when a message was lost or a worker
//! died, and removes what ended jobs left behind.
pub mod chunks;
pub mod drivers;
pub mod package;
pub mod pipeline;
pub mod policy;
pub mod stages;
pub mod sweeper;
pub mod tasks;
pub mod worker;

use std::{path::PathBuf, sync::Arc};

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{clock::Clock, config::Settings, jobs::JobStore, lms::LmsSource, queue::Queue};

/// Everything the engine needs, shared by the API (which creates and cancels jobs) and workers.
#[derive(Clone)]
pub struct Engine {
    pub db: DatabaseConnection,
    /// The one writer of job and task state, logs and events.
    pub jobs: JobStore,
    pub queue: Queue,
    pub settings: Arc<Settings>,
    pub lms: Arc<dyn LmsSource>,
    /// Names this process in leases and worker names.
    pub process_id: String,
    /// What retention, health checks, schedules and the periodic runner take as now.
    pub clock: Clock,
    /// The Time-Stamp Authority, when one is configured (`tsa_url`).
    pub tsa: Option<Arc<crate::tsp::Tsa>>,
}

impl Engine {
    pub fn new(jobs: JobStore, queue: Queue, settings: Arc<Settings>, lms: Arc<dyn LmsSource>) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        let process_id = format!("{host}-{}-{}", std::process::id(), &Uuid::new_v4().simple().to_string()[..8]);
        Self { db: jobs.db.clone(), jobs, queue, settings, lms, process_id, clock: Clock::system(), tsa: None }
    }

    pub fn lease_ttl(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.settings.lease_seconds as i64)
    }

    /// A lease owner id for one piece of work.
    fn owner(&self) -> String {
        format!("{}/{}", self.process_id, &Uuid::new_v4().simple().to_string()[..8])
    }

    /// Where a job's packages are built.
    pub fn staging(&self, job_id: Uuid) -> PathBuf {
        self.settings.staging_dir().join(job_id.to_string())
    }

    pub async fn remove_staging(&self, job_id: Uuid) {
        let dir = self.staging(job_id);
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(job = %job_id, error = %e, "could not remove staging");
            }
        }
    }
}
