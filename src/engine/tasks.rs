//! One activity of a job, archived by the activity's driver into the job's staging area. Runs as
//! its own queue task, so a job's activities spread over workers. A large activity is archived in
//! chunks (`chunks`): the task plans them, waits, and assembles the package when they are done.
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use chrono::Utc;
use futures::FutureExt;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    chunks::{CancelOnly, ChunkPlan, CHUNKS_DIR},
    drivers::{self, ActivityInfo, ArchiveError, ArchiveRequest, CourseInfo},
    stages::{job_settings, StagedPackage, STAGED_META},
    Engine,
};
use crate::{
    domain::{ActivityKind, Failure, JobStatus, LogLevel, TaskStatus},
    entity::{activity, archive_content, archive_job, archive_task, course, person},
    jobs::{AbortOnDrop, Lease, LeaseGuard},
};

/// How often a running task writes its progress and looks for a cancel.
const TICK: Duration = Duration::from_millis(500);

/// The driver's view of progress and cancellation: cheap, synchronous, fed by background ticks.
pub(super) struct TaskProgress {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) tx: watch::Sender<(u64, u64)>,
}

impl drivers::Progress for TaskProgress {
    fn report(&self, done: u64, total: u64) {
        let _ = self.tx.send((done, total));
    }
    fn cancelled(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl Engine {
    /// Handles a task message.
    pub async fn run_task(&self, job_id: Uuid, task_id: i64) -> anyhow::Result<()> {
        let found = archive_task::Entity::find_by_id(task_id).find_also_related(archive_job::Entity).one(&self.db).await?;
        let Some((task, Some(job))) = found.filter(|(t, _)| t.job_id == job_id) else { return Ok(()) };
        if job.status != JobStatus::ActivityArchiving.to_string() || job.cancel_requested {
            return Ok(()); // stale message: the job moved on, or ended
        }
        if task.status.parse::<TaskStatus>().is_ok_and(|s| s.is_final()) {
            self.queue.push_stage(job_id, None).await?;
            return Ok(());
        }
        let owner = self.owner();
        if !Lease::take_task(&self.db, task_id, &owner, self.lease_ttl()).await? {
            return Ok(()); // another worker runs it; if it dies, its lease expires and the sweeper re-sends
        }
        let guard = {
            let (db, owner, ttl) = (self.db.clone(), owner.clone(), self.lease_ttl());
            LeaseGuard::hold(ttl, move || {
                let (db, owner) = (db.clone(), owner.clone());
                Box::pin(async move { Lease::take_task(&db, task_id, &owner, ttl).await })
            })
        };
        let result = self.run_task_leased(&job, task, &guard).await;
        drop(guard);
        Lease::release_task(&self.db, task_id, &owner).await?;
        // Whatever happened, the job decides what is next.
        self.queue.push_stage(job_id, None).await?;
        result
    }

    async fn run_task_leased(&self, job: &archive_job::Model, task: archive_task::Model, lease: &LeaseGuard) -> anyhow::Result<()> {
        // FINALIZING too: a worker that died while finalizing left a package it may not have
        // finished recording; the task is archived again (what a dead run left is not trusted).
        let from = [TaskStatus::Created, TaskStatus::Queued, TaskStatus::Running, TaskStatus::Finalizing];
        // A task in chunks is looked at again each time a chunk ends: it is already running.
        let waiting_for_chunks = task.status == TaskStatus::Running.to_string() && self.has_chunks(task.id).await?;
        let task = if waiting_for_chunks {
            task
        } else {
            match self.jobs.task_transition(&task, &from, TaskStatus::Running, |am| am.started_at = Set(Some(Utc::now()))).await? {
                Some(running) => running,
                None => return Ok(()),
            }
        };
        let request = self.archive_request(job, &task).await?;
        let out_dir = self.task_staging(job.id, task.id);
        tokio::fs::create_dir_all(&out_dir).await?;
        // A rerun after a crash builds the package again: what a dead run left is not trusted.
        let _ = tokio::fs::remove_file(out_dir.join(STAGED_META)).await;

        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = watch::channel((0u64, 0u64));
        let (job_id, task_id) = (job.id, task.id);
        let ticker = self.spawn_ticker(job.id, stop.clone(), lease.lost_flag(), rx, move |e, done, total| {
            async move {
                let _ = e.write_task_progress(job_id, task_id, done, total).await;
            }
            .boxed()
        });
        let progress = TaskProgress { stop: stop.clone(), tx };
        let outcome = match self.chunk_plan(job.id, &task, &request).await {
            Ok(ChunkPlan::Direct) => drivers::archive_activity(self.lms.as_ref(), &request, &out_dir, &progress).await,
            Ok(ChunkPlan::Assemble(chunks)) => {
                // The chunks' progress is the task's: assembling only copies.
                let assembled = self.assemble_chunks(job.id, &task, &request, &out_dir, chunks, &CancelOnly(&progress)).await;
                if assembled.is_ok() {
                    let _ = tokio::fs::remove_dir_all(out_dir.join(CHUNKS_DIR)).await;
                }
                assembled
            }
            Ok(ChunkPlan::Failed(f)) => Err(ArchiveError::Failed(f)),
            Err(e) => Err(ArchiveError::Failed(e.into())),
        };
        drop(ticker);

        if stop.load(Ordering::Relaxed) {
            // The job ended while the driver ran; its staging may already be cleaned up, and
            // what the driver wrote since must not bring it back.
            let _ = tokio::fs::remove_dir_all(&out_dir).await;
            let job_dir = self.staging(job.id);
            if let Ok(mut entries) = tokio::fs::read_dir(&job_dir).await {
                if entries.next_entry().await.ok().flatten().is_none() {
                    let _ = tokio::fs::remove_dir(&job_dir).await;
                }
            }
        }
        // Read only when a task stops early: whether it ends as CANCELED or TIMEOUT.
        let timed_out = || async {
            let job_now = archive_job::Entity::find_by_id(job.id).one(&self.db).await?;
            anyhow::Ok(job_now.and_then(|j| j.deadline).is_some_and(|d| Utc::now() > d))
        };
        let open = [TaskStatus::Running];
        match outcome {
            Ok(pkg) => {
                if stop.load(Ordering::Relaxed) {
                    return Ok(()); // finished just as the job was canceled: the job ends it
                }
                let Some(task) = self.jobs.task_transition(&task, &open, TaskStatus::Finalizing, |_| {}).await? else {
                    return Ok(()); // the job ended it meanwhile (a cancel, a timeout)
                };
                let staged = StagedPackage { file_name: pkg.file_name.clone(), media_type: pkg.media_type.clone(), size: pkg.size, sha256: pkg.sha256.clone() };
                // The record goes in after the package: its presence means the package is complete.
                let tmp = out_dir.join(format!(".{STAGED_META}.tmp"));
                tokio::fs::write(&tmp, serde_json::to_vec(&staged)?).await?;
                tokio::fs::rename(&tmp, out_dir.join(STAGED_META)).await?;
                self.record_contents(task.id, &pkg.contents).await?;
                let finished = Utc::now();
                let records = pkg.records as i32;
                let fp = pkg.fingerprint.clone();
                self.jobs.task_transition(&task, &[TaskStatus::Finalizing], TaskStatus::Finished, move |am| {
                    am.progress = Set(100);
                    am.fingerprint = Set(Some(fp));
                    am.finished_at = Set(Some(finished));
                    am.records_done = Set(records);
                    am.records_total = Set(records);
                })
                .await?;
                self.jobs.log(job.id, Some(task.id), LogLevel::Info, &format!("archived {} records into {} ({} bytes)", pkg.records, pkg.file_name, pkg.size)).await?;
            }
            Err(ArchiveError::Cancelled) => {
                let to = if timed_out().await? { TaskStatus::Timeout } else { TaskStatus::Canceled };
                self.jobs.task_transition(&task, &open, to, |am| am.finished_at = Set(Some(Utc::now()))).await?;
            }
            Err(ArchiveError::Failed(e)) if stop.load(Ordering::Relaxed) => {
                tracing::debug!(error = %e, "task failed while being stopped");
                let to = if timed_out().await? { TaskStatus::Timeout } else { TaskStatus::Canceled };
                self.jobs.task_transition(&task, &open, to, |am| am.finished_at = Set(Some(Utc::now()))).await?;
            }
            Err(ArchiveError::Failed(f)) => self.fail_task(&task, f).await?,
        }
        Ok(())
    }

    async fn fail_task(&self, task: &archive_task::Model, f: Failure) -> anyhow::Result<()> {
        self.jobs.log(task.job_id, Some(task.id), LogLevel::Error, &format!("archiving failed: {f}")).await?;
        self.jobs.task_transition(task, &[TaskStatus::Running], TaskStatus::Failed, move |am| {
            am.failure_transient = Set(f.is_transient());
            am.error = Set(Some(f.message));
            am.finished_at = Set(Some(Utc::now()));
        })
        .await?;
        Ok(())
    }

    /// While a task or chunk runs: raises `stop` when the job is canceled, ended or past its
    /// deadline, or when the work's lease is `lost`; hands the latest progress (once per tick, if
    /// it moved) to `on_progress`. Ends when the returned guard is dropped.
    pub(super) fn spawn_ticker<P>(&self, job_id: Uuid, stop: Arc<AtomicBool>, lost: Arc<AtomicBool>, mut rx: watch::Receiver<(u64, u64)>, on_progress: P) -> AbortOnDrop
    where
        P: Fn(Engine, u64, u64) -> futures::future::BoxFuture<'static, ()> + Send + 'static,
    {
        let engine = self.clone();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(TICK).await;
                if lost.load(Ordering::Relaxed) {
                    stop.store(true, Ordering::Relaxed);
                }
                if let Ok(Some(job)) = archive_job::Entity::find_by_id(job_id).one(&engine.db).await {
                    let past_deadline = job.deadline.is_some_and(|d| Utc::now() > d);
                    if job.cancel_requested || past_deadline || job.status != JobStatus::ActivityArchiving.to_string() {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                if rx.has_changed().unwrap_or(false) {
                    let (done, total) = *rx.borrow_and_update();
                    on_progress(engine.clone(), done, total).await;
                }
            }
        }))
    }

    pub(super) async fn write_task_progress(&self, job_id: Uuid, task_id: i64, done: u64, total: u64) -> anyhow::Result<()> {
        let pct = if total == 0 { 0 } else { ((done.min(total) * 100) / total) as i32 };
        archive_task::Entity::update_many()
            .col_expr(archive_task::Column::Progress, sea_orm::sea_query::Expr::val(pct).into())
            .col_expr(archive_task::Column::RecordsDone, sea_orm::sea_query::Expr::val(done as i32).into())
            .col_expr(archive_task::Column::RecordsTotal, sea_orm::sea_query::Expr::val(total as i32).into())
            .filter(archive_task::Column::Id.eq(task_id))
            .filter(archive_task::Column::Status.eq(TaskStatus::Running.to_string()))
            .exec(&self.db)
            .await?;
        // The job's progress within ACTIVITY_ARCHIVING is the mean of its tasks'.
        let tasks = archive_task::Entity::find().filter(archive_task::Column::JobId.eq(job_id)).all(&self.db).await?;
        let mean = tasks.iter().map(|t| t.progress as i64).sum::<i64>() / tasks.len().max(1) as i64;
        let (start, end) = JobStatus::ActivityArchiving.progress_range();
        self.jobs.raise_progress(job_id, JobStatus::ActivityArchiving, start + ((end - start) as i64 * mean / 100) as i32).await?;
        self.jobs.task_changed(job_id, task_id).await
    }

    pub(super) async fn archive_request(&self, job: &archive_job::Model, task: &archive_task::Model) -> anyhow::Result<ArchiveRequest> {
        let settings = job_settings(job)?;
        let (a, c) = activity::Entity::find_by_id(task.activity_id).find_also_related(course::Entity).one(&self.db).await?.ok_or_else(|| anyhow::anyhow!("activity {} is gone", task.activity_id))?;
        let c = c.ok_or_else(|| anyhow::anyhow!("course {} is gone", a.course_id))?;
        let kind: ActivityKind = a.kind.parse().map_err(|_| anyhow::anyhow!("activity {} has unknown kind {}", a.id, a.kind))?;
        Ok(ArchiveRequest {
            job_id: job.id,
            course: CourseInfo { lms_id: c.lms_id, short_name: c.short_name, full_name: c.full_name },
            activity: ActivityInfo { id: a.id, lms_id: a.lms_id, kind, name: a.name, closes_at: a.closes_at },
            origin: job.origin.clone(),
            requested_by: job.requested_by.clone(),
            archived_at: job.created_at,
            retention_until: settings.retention_days.map(|d| job.created_at + chrono::Duration::days(d as i64)),
            format: settings.format,
            filename_pattern: settings.filename_pattern,
            report_options: settings.report_options,
        })
    }

    /// Which person's data is in the task's package, replacing what an earlier run recorded.
    async fn record_contents(&self, task_id: i64, contents: &[drivers::ContentEntry]) -> anyhow::Result<()> {
        let mut ids: HashMap<String, i64> = HashMap::new();
        let wanted: Vec<String> = {
            let mut v: Vec<String> = contents.iter().map(|c| c.person_lms_id.clone()).collect();
            v.sort();
            v.dedup();
            v
        };
        for chunk in wanted.chunks(500) {
            for p in person::Entity::find().filter(person::Column::LmsId.is_in(chunk.to_vec())).all(&self.db).await? {
                ids.insert(p.lms_id, p.id);
            }
        }
        let txn = self.db.begin().await?;
        archive_content::Entity::delete_many().filter(archive_content::Column::TaskId.eq(task_id)).exec(&txn).await?;
        let rows: Vec<archive_content::ActiveModel> = contents
            .iter()
            .filter_map(|c| {
                let person_id = *ids.get(&c.person_lms_id)?;
                Some(archive_content::ActiveModel {
                    task_id: Set(task_id),
                    person_id: Set(person_id),
                    record_kind: Set(c.record_kind.to_string()),
                    lms_record_id: Set(c.lms_record_id.clone()),
                    path: Set(c.path.clone()),
                    ..Default::default()
                })
            })
            .collect();
        let unknown = contents.len() - rows.len();
        for chunk in rows.chunks(500) {
            archive_content::Entity::insert_many(chunk.to_vec()).exec(&txn).await?;
        }
        txn.commit().await?;
        if unknown > 0 {
            tracing::warn!(task = task_id, unknown, "records of persons the LMS sync does not know");
        }
        Ok(())
    }
}
