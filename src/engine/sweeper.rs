//! The safety net: every few seconds, each process re-sends what is due but may have lost its
//! message: queued jobs waiting for a slot, active jobs nobody holds (a dead worker's lease
//! expired, a retry fell due, a deadline passed), tasks and chunks whose worker died, and tasks
//! whose chunks are done. Duplicates are
//! harmless: leases make the work happen once.
use std::time::Duration;

use chrono::Utc;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use strum::IntoEnumIterator;

use super::Engine;
use crate::{
    domain::{JobStatus, TaskStatus},
    entity::{archive_job, archive_task},
};

pub const INTERVAL: Duration = Duration::from_secs(2);

impl Engine {
    pub async fn sweep(&self) -> anyhow::Result<()> {
        let now = Utc::now();
        let active: Vec<String> = JobStatus::iter().filter(|s| s.is_active()).map(|s| s.to_string()).collect();
        let unheld = Condition::any().add(archive_job::Column::LeaseUntil.is_null()).add(archive_job::Column::LeaseUntil.lt(now));

        // Active jobs nobody works on (a message was lost, a worker died, a retry fell due, a
        // deadline passed). A job waiting for its tasks needs a look only when they are all done.
        let jobs = archive_job::Entity::find()
            .filter(archive_job::Column::Status.is_in(active.clone()))
            .filter(unheld.clone())
            .filter(
                Condition::any()
                    .add(archive_job::Column::Status.ne(JobStatus::RecoverableError.to_string()))
                    .add(archive_job::Column::NextRetryAt.lte(now)),
            )
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
        let running = archive_job::Entity::find().filter(archive_job::Column::Status.is_in(active)).all(&self.db).await?.len() as u64;
        let free = (self.settings.max_concurrent_jobs as u64).saturating_sub(running);
        if free > 0 {
            let waiting = archive_job::Entity::find()
                .filter(archive_job::Column::Status.is_in([JobStatus::Queued.to_string(), JobStatus::Uninitialized.to_string()]))
                .filter(unheld)
                .order_by_asc(archive_job::Column::CreatedAt)
                .limit(free)
                .all(&self.db)
                .await?;
            for j in waiting {
                self.queue.push_stage(j.id, None).await?;
            }
        }

        // Chunks of large activities whose worker died or whose message was lost, and tasks whose
        // chunks have all ended. A task waiting for its chunks holds no lease, so the rule below
        // does not take it for dead.
        self.sweep_chunks(&archiving).await?;

        // Staging of canceled jobs: a task or chunk that was mid-write when its job ended may
        // leave files after the job's own cleanup.
        if let Ok(mut dirs) = tokio::fs::read_dir(self.settings.staging_dir()).await {
            let mut ids = Vec::new();
            while let Ok(Some(d)) = dirs.next_entry().await {
                if let Some(id) = d.file_name().to_str().and_then(|n| uuid::Uuid::parse_str(n).ok()) {
                    ids.push(id);
                }
            }
            if !ids.is_empty() {
                let canceled = archive_job::Entity::find()
                    .filter(archive_job::Column::Id.is_in(ids))
                    .filter(archive_job::Column::Status.eq(JobStatus::Canceled.to_string()))
                    .all(&self.db)
                    .await?;
                for j in canceled {
                    self.remove_staging(j.id).await;
                }
            }
        }

        // Tasks whose worker died (lease expired while running), or whose message was lost.
        let stale = now - chrono::Duration::seconds(self.settings.lease_seconds as i64 * 2);
        let tasks = archive_task::Entity::find()
            .filter(
                Condition::any()
                    .add(Condition::all().add(archive_task::Column::Status.eq(TaskStatus::Running.to_string())).add(archive_task::Column::LeaseUntil.lt(now)))
                    .add(Condition::all().add(archive_task::Column::Status.eq(TaskStatus::Queued.to_string())).add(archive_task::Column::UpdatedAt.lt(stale))),
            )
            .all(&self.db)
            .await?;
        for t in tasks {
            if jobs.iter().any(|j| j.id == t.job_id && j.status == JobStatus::ActivityArchiving.to_string()) {
                self.queue.push_task(t.job_id, t.id).await?;
            }
        }
        Ok(())
    }

    /// Sweeps until the process stops.
    pub fn spawn_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = engine.sweep().await {
                    tracing::warn!(error = %format!("{e:#}"), "sweep failed");
                }
                tokio::time::sleep(INTERVAL).await;
            }
        })
    }
}
