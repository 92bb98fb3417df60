//! The safety net, run by the periodic runner on one process at a time: it re-sends what is due
//! but may have lost its message, and removes what ended jobs left behind. It covers every
//! non-final state: queued jobs waiting for a slot; active jobs nobody holds (in any stage — a
//! dead worker's lease expired, a retry fell due, a deadline passed); tasks whose worker died
//! while QUEUED, RUNNING or FINALIZING; chunks whose worker died; tasks whose chunks are done;
//! stored files (and unconfirmed intents) of jobs that ended without completing; staging areas of
//! jobs that need them no more. Every rule is idempotent, and duplicates are harmless: leases make
//! the work happen once.
use std::time::Duration;

use chrono::Utc;
use sea_orm::{
    sea_query::Query, ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect,
};
use strum::IntoEnumIterator;

use super::Engine;
use crate::{
    domain::{DeletionReason, JobStatus, LogLevel, TaskStatus},
    entity::{archive_file, archive_job, archive_task},
    service::audit::Actor,
    storage,
};

pub const INTERVAL: Duration = Duration::from_secs(2);

/// Jobs whose stored files must not stay: they ended without completing.
const DISCARDED: [JobStatus; 3] = [JobStatus::Canceled, JobStatus::Failure, JobStatus::Timeout];
/// Jobs whose staging area is of no more use (failed and timed-out jobs keep theirs for a retry).
const NO_STAGING: [JobStatus; 3] = [JobStatus::Canceled, JobStatus::Completed, JobStatus::Deleted];

impl Engine {
    pub async fn sweep(&self) -> anyhow::Result<()> {
        let archiving = self.sweep_jobs().await?;
        // Chunks of large activities whose worker died or whose message was lost, and tasks whose
        // chunks have all ended.
        self.sweep_chunks(&archiving).await?;
        self.sweep_tasks(&archiving).await?;
        self.sweep_files().await?;
        self.sweep_staging().await?;
        Ok(())
    }

    /// Sends a message for every job that is due and held by nobody; returns the jobs in
    /// ACTIVITY_ARCHIVING.
    async fn sweep_jobs(&self) -> anyhow::Result<Vec<uuid::Uuid>> {
        let now = Utc::now();
        let active: Vec<String> = JobStatus::iter().filter(|s| s.is_active()).map(|s| s.to_string()).collect();
        let unheld = Condition::any().add(archive_job::Column::LeaseUntil.is_null()).add(archive_job::Column::LeaseUntil.lt(now));

        // Active jobs nobody works on (a message was lost, a worker died, a retry fell due, a
        // deadline passed). A job waiting for its tasks needs a look only when they are all done.
        let jobs = archive_job::Entity::find()
            .filter(archive_job::Column::Status.is_in(active))
            .filter(unheld)
            .filter(Condition::any().add(archive_job::Column::Status.ne(JobStatus::RecoverableError.to_string())).add(archive_job::Column::NextRetryAt.lte(now)))
            .all(&self.db)
            .await?;
        let archiving: Vec<uuid::Uuid> = jobs.iter().filter(|j| j.status == JobStatus::ActivityArchiving.to_string()).map(|j| j.id).collect();
        let open_tasks: Vec<uuid::Uuid> = if archiving.is_empty() {
            Vec::new()
        } else {
            archive_task::Entity::find()
                .filter(archive_task::Column::JobId.is_in(archiving.clone()))
                .filter(archive_task::Column::Status.is_in(TaskStatus::iter().filter(|s| !s.is_final()).map(|s| s.to_string())))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|t| t.job_id)
                .collect()
        };
        for j in &jobs {
            let waiting_for_tasks = j.status == JobStatus::ActivityArchiving.to_string() && open_tasks.contains(&j.id);
            if !waiting_for_tasks || j.cancel_requested || j.deadline.is_some_and(|d| d < now) {
                self.queue.push_stage(j.id, None).await?;
            }
        }

        // Queued (and never-started) jobs, oldest first, as many as there are free slots.
        self.wake_queued(u64::MAX).await?;
        Ok(archiving)
    }

    /// Tasks of jobs in ACTIVITY_ARCHIVING whose worker died (lease expired while RUNNING or
    /// FINALIZING, or a RUNNING task without chunks that nobody holds) or whose message was lost
    /// (QUEUED for two lease periods).
    async fn sweep_tasks(&self, archiving: &[uuid::Uuid]) -> anyhow::Result<()> {
        if archiving.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let stale = now - self.lease_ttl() * 2;
        let unheld = Condition::any().add(archive_task::Column::LeaseUntil.is_null()).add(archive_task::Column::LeaseUntil.lt(now));
        let working = [TaskStatus::Running.to_string(), TaskStatus::Finalizing.to_string()];
        let tasks = archive_task::Entity::find()
            .filter(archive_task::Column::JobId.is_in(archiving.to_vec()))
            .filter(
                Condition::any()
                    .add(Condition::all().add(archive_task::Column::Status.is_in(working)).add(unheld))
                    .add(Condition::all().add(archive_task::Column::Status.eq(TaskStatus::Queued.to_string())).add(archive_task::Column::UpdatedAt.lt(stale))),
            )
            .all(&self.db)
            .await?;
        for t in tasks {
            // A RUNNING task without a lease may be waiting for its chunks: `sweep_chunks` looks
            // after those.
            let waits_for_chunks = t.status == TaskStatus::Running.to_string() && t.lease_until.is_none() && self.has_chunks(t.id).await?;
            if !waits_for_chunks {
                self.queue.push_task(t.job_id, t.id).await?;
            }
        }
        Ok(())
    }

    /// Stored files and unconfirmed intents of jobs that ended without completing: removed
    /// through the one deletion path (a crash during the job's own clean-up leaves them here).
    async fn sweep_files(&self) -> anyhow::Result<()> {
        let ended = Query::select()
            .column(archive_job::Column::Id)
            .from(archive_job::Entity)
            .and_where(archive_job::Column::Status.is_in(DISCARDED.iter().map(|s| s.to_string())))
            .to_owned();
        // A legal hold keeps even a partial archive: not looked at until it is released.
        let held_jobs = Query::select().column(archive_job::Column::Id).from(archive_job::Entity).and_where(archive_job::Column::LegalHold.eq(true)).to_owned();
        let files = archive_file::Entity::find()
            .filter(archive_file::Column::DeletedAt.is_null())
            .filter(archive_file::Column::LegalHold.eq(false))
            .filter(archive_file::Column::JobId.in_subquery(ended))
            .filter(archive_file::Column::JobId.not_in_subquery(held_jobs))
            .limit(100)
            .all(&self.db)
            .await?;
        let mut d = storage::files::Deletion::by_server(Actor::system("sweeper"), "sweeper", DeletionReason::JobDiscarded, self.clock.now());
        d.note = Some("the job ended without completing".into());
        for f in files {
            match storage::files::delete(&self.jobs, &f, &d).await {
                Ok(storage::files::Deleted::Now(_)) => self.jobs.log(f.job_id, f.task_id, LogLevel::Info, &format!("removed {} from storage, which the job left behind", f.file_name)).await?,
                Ok(_) => {}
                Err(e) => tracing::warn!(job = %f.job_id, file = f.id, error = %e, "could not remove a file an ended job left behind"),
            }
        }
        Ok(())
    }

    /// Staging areas of canceled, completed and deleted jobs: a task or chunk that was mid-write
    /// when its job ended may leave files after the job's own clean-up.
    async fn sweep_staging(&self) -> anyhow::Result<()> {
        let Ok(mut dirs) = tokio::fs::read_dir(self.settings.staging_dir()).await else { return Ok(()) };
        let mut ids = Vec::new();
        while let Ok(Some(d)) = dirs.next_entry().await {
            if let Some(id) = d.file_name().to_str().and_then(|n| uuid::Uuid::parse_str(n).ok()) {
                ids.push(id);
            }
        }
        for batch in ids.chunks(500) {
            let done = archive_job::Entity::find()
                .filter(archive_job::Column::Id.is_in(batch.to_vec()))
                .filter(archive_job::Column::Status.is_in(NO_STAGING.iter().map(|s| s.to_string())))
                .all(&self.db)
                .await?;
            for j in done {
                self.remove_staging(j.id).await;
            }
        }
        Ok(())
    }
}
