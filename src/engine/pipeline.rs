//! The pipeline around the stages (DESIGN §5): `advance` takes the job's lease (held by this
//! future: if it is dropped or the process dies, renewal stops and the lease expires), then runs
//! whatever is due — a stage (`stages`), a retry, a cancel, a timeout — persisting each stage's
//! completion with the transition to the next, until the job waits (for its tasks, a slot or a
//! retry) or ends. Transient failures are retried with backoff from the stage that failed, a
//! bounded number of times; then, and on permanent failures, the job fails.
use std::time::Duration;

use chrono::Utc;
use sea_orm::{ColumnTrait, Condition, TransactionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use strum::IntoEnumIterator;
use uuid::Uuid;

use super::{
    stages::{self, job_settings, Outcome},
    Engine,
};
use crate::{
    domain::{job::retry_delay, Failure, JobStatus, LogLevel, TaskStatus},
    entity::{archive_file, archive_job, archive_task},
    jobs::{Lease, LeaseGuard, Patch},
    storage,
};

impl Engine {
    /// Handles a stage message: takes the job's lease and runs what is due, then looks once more
    /// whether the job can go on (see `due_after_release`).
    pub async fn advance(&self, job_id: Uuid) -> anyhow::Result<()> {
        // Bounded: each round is a completed hand-off (the tasks ended, a slot freed), not a spin.
        for _ in 0..4 {
            let owner = self.owner();
            let Some(job) = Lease::claim_job(&self.db, job_id, &owner, self.lease_ttl()).await? else {
                // Another worker is on it; it looks again after it lets go, and so does this
                // message, later, in case that worker dies instead.
                self.queue.push_stage(job_id, Some(Duration::from_secs(1))).await?;
                return Ok(());
            };
            let guard = {
                let (db, owner, ttl) = (self.db.clone(), owner.clone(), self.lease_ttl());
                LeaseGuard::hold(ttl, move || {
                    let (db, owner) = (db.clone(), owner.clone());
                    Box::pin(async move { Lease::take_job(&db, job_id, &owner, ttl).await })
                })
            };
            let result = self.advance_leased(job, &guard).await;
            let lost = guard.lost();
            drop(guard);
            let released = Lease::release_job(&self.db, job_id, &owner).await?;
            result?;
            if lost || !self.due_after_release(job_id, released).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Whether a job this worker just let go of can go on now. What it waited for (its tasks, a
    /// slot, a cancel) may have arrived while it held the lease: the message that said so then
    /// found the lease taken and went back to the queue for a second. Looking here, after the
    /// release, closes that gap: anything committed before the release is seen now, anything
    /// after it finds the lease free. `released` is the job as the release left it, if known.
    async fn due_after_release(&self, job_id: Uuid, released: Option<archive_job::Model>) -> anyhow::Result<bool> {
        let known = match released {
            Some(job) => {
                let status = status_of(&job)?;
                Some((job, status))
            }
            None => self.load(job_id).await?,
        };
        let Some((job, status)) = known else { return Ok(false) };
        if status.is_final() {
            return Ok(false);
        }
        if job.cancel_requested && status != JobStatus::ErrorHandling {
            return Ok(true);
        }
        Ok(match status {
            JobStatus::ActivityArchiving => {
                let open = archive_task::Entity::find()
                    .filter(archive_task::Column::JobId.eq(job_id))
                    .filter(archive_task::Column::Status.is_in(TaskStatus::iter().filter(|s| !s.is_final()).map(|s| s.to_string())))
                    .count(&self.db)
                    .await?;
                open == 0
            }
            JobStatus::Queued => self.free_slots().await? > 0,
            _ => false,
        })
    }

    /// How many more jobs may become active now.
    async fn free_slots(&self) -> anyhow::Result<u64> {
        let active: Vec<String> = JobStatus::iter().filter(|s| s.is_active()).map(|s| s.to_string()).collect();
        let running = archive_job::Entity::find().filter(archive_job::Column::Status.is_in(active)).count(&self.db).await?;
        Ok((self.max_concurrent_jobs().await? as u64).saturating_sub(running))
    }

    /// Wakes the oldest queued jobs nobody holds, as many as there are free slots but at most
    /// `at_most`: a job that frees its slot wakes one (so a waiting job starts at once instead of
    /// polling for a slot); the sweeper wakes as many as fit. Waking more than the slots freed
    /// would only flood the queue with messages whose jobs find no slot.
    pub(super) async fn wake_queued(&self, at_most: u64) -> anyhow::Result<()> {
        let free = self.free_slots().await?.min(at_most);
        if free == 0 {
            return Ok(());
        }
        let unheld = Condition::any().add(archive_job::Column::LeaseUntil.is_null()).add(archive_job::Column::LeaseUntil.lt(Utc::now()));
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
        Ok(())
    }

    async fn load(&self, job_id: Uuid) -> anyhow::Result<Option<(archive_job::Model, JobStatus)>> {
        let Some(job) = archive_job::Entity::find_by_id(job_id).one(&self.db).await? else { return Ok(None) };
        let status = status_of(&job)?;
        Ok(Some((job, status)))
    }

    /// Runs what is due for `job` (as its lease was taken) until it waits or ends.
    async fn advance_leased(&self, job: archive_job::Model, lease: &LeaseGuard) -> anyhow::Result<()> {
        let job_id = job.id;
        // The job as the last step's own statement returned it (a transition's RETURNING): as
        // fresh as reading it again, a cancel committed before it included. `None`: read it.
        let mut known = Some(job);
        let tasks = stages::Tasks::default();
        // Each turn runs one step; a bound keeps a bug from spinning forever.
        for _ in 0..32 {
            if lease.lost() {
                return Ok(()); // another worker may have the job now; it goes on from here
            }
            let (job, status) = match known.take() {
                Some(job) => {
                    let status = status_of(&job)?;
                    (job, status)
                }
                None => match self.load(job_id).await? {
                    Some(loaded) => loaded,
                    None => return Ok(()),
                },
            };
            if status.is_final() {
                return Ok(());
            }
            let now = Utc::now();
            if status.is_active() && job.deadline.is_some_and(|d| now > d) {
                self.end(&job, status, JobStatus::Timeout, "the deadline passed").await?;
                return Ok(());
            }
            if job.cancel_requested && status != JobStatus::ErrorHandling {
                self.end(&job, status, JobStatus::Canceled, "canceled on request").await?;
                return Ok(());
            }
            match status {
                JobStatus::Uninitialized => {
                    known = self.jobs.transition(job_id, status, JobStatus::Queued, Patch::default(), "").await?;
                }
                JobStatus::Queued => {
                    known = self.claim_slot(&job).await?;
                    if known.is_none() {
                        // No slot: the job whose end frees one wakes this one (`wake_queued`),
                        // and the sweeper does if that message is lost.
                        return Ok(());
                    }
                }
                JobStatus::RecoverableError => {
                    let due = job.next_retry_at.unwrap_or(now);
                    if due > now {
                        self.queue.push_stage(job_id, Some((due - now).to_std().unwrap_or_default())).await?;
                        return Ok(());
                    }
                    match self.resume(&job).await {
                        Ok(moved) => known = moved,
                        Err(e) => self.stage_failed(&job, status, Failure::from(e)).await?,
                    }
                }
                JobStatus::ErrorHandling => {
                    self.discard_stored(&job, "the job failed").await?;
                    let patch = Patch { finished_at: Some(now), ..Default::default() };
                    if self.jobs.transition(job_id, status, JobStatus::Failure, patch, job.error.as_deref().unwrap_or("")).await?.is_some() {
                        self.wake_queued(1).await?;
                    }
                    return Ok(());
                }
                s => {
                    let Some(stage) = stages::of(s) else { return Ok(()) };
                    match stage.run(self, &job, &tasks).await {
                        Ok(Outcome::Done) => known = self.complete_stage(&job, s).await?,
                        Ok(Outcome::Waiting) => return Ok(()),
                        Ok(Outcome::Again) => {}
                        Err(f) => self.stage_failed(&job, s, f).await?,
                    }
                }
            }
        }
        anyhow::bail!("job {job_id} did not settle after 32 steps")
    }

    /// Records that `stage` is complete and moves the job to the next one; returns the job as
    /// moved (`None`: someone else moved it first).
    async fn complete_stage(&self, job: &archive_job::Model, stage: JobStatus) -> anyhow::Result<Option<archive_job::Model>> {
        let next = stage.next_stage().ok_or_else(|| anyhow::anyhow!("{stage} has no next stage"))?;
        let mut patch = Patch { completed_stage: Some(Some(stage.to_string())), progress_at_least: Some(next.progress_range().0), ..Default::default() };
        if next == JobStatus::Completed {
            patch.finished_at = Some(Utc::now());
            patch.error = Some(None);
        }
        let moved = self.jobs.transition(job.id, stage, next, patch, "").await?;
        if moved.is_some() && next == JobStatus::Completed {
            self.wake_queued(1).await?;
        }
        Ok(moved)
    }

    /// Takes one of the `max_concurrent_jobs` slots and starts the job, or resumes a new attempt
    /// at the stage that failed. Returns the job as started, `None` when no slot was free.
    async fn claim_slot(&self, job: &archive_job::Model) -> anyhow::Result<Option<archive_job::Model>> {
        let settings = job_settings(job)?;
        let resume_at = self.resume_stage(job).await?;
        if resume_at == JobStatus::ActivityArchiving {
            self.requeue_unfinished_tasks(job).await?;
        }
        let now = Utc::now();
        let patch = Patch {
            started_at: Some(now),
            deadline: Some(Some(now + chrono::Duration::seconds(settings.job_timeout_seconds as i64))),
            progress_at_least: Some(resume_at.progress_range().0),
            ..Default::default()
        };
        let note = if job.attempt > 1 { format!("attempt {} starts at {resume_at}", job.attempt) } else { String::new() };
        let slots = self.max_concurrent_jobs().await?;
        self.jobs.transition_within(job.id, JobStatus::Queued, resume_at, patch, &note, Some(slots)).await
    }

    /// Where a job (re)starts: the stage that failed last, unless what it needs from earlier
    /// stages is gone, in which case the activities are archived again.
    async fn resume_stage(&self, job: &archive_job::Model) -> anyhow::Result<JobStatus> {
        let Some(failed) = job.failed_stage.as_deref().and_then(|s| s.parse::<JobStatus>().ok()).filter(|s| s.is_stage()) else {
            return Ok(JobStatus::PreProcessing);
        };
        let position = |s: JobStatus| crate::domain::job::STAGES.iter().position(|x| *x == s);
        if position(failed) > position(JobStatus::ActivityArchiving) {
            let tasks = archive_task::Entity::find().filter(archive_task::Column::JobId.eq(job.id)).all(&self.db).await?;
            if !tasks.iter().all(|t| self.is_staged(job.id, t.id)) {
                return Ok(JobStatus::ActivityArchiving);
            }
            // A failed job's stored files were discarded: a stage after STORE needs them again.
            if position(failed) > position(JobStatus::Store) {
                let stored = archive_file::Entity::find()
                    .filter(archive_file::Column::JobId.eq(job.id))
                    .filter(archive_file::Column::DeletedAt.is_null())
                    .filter(archive_file::Column::StoredAt.is_not_null())
                    .count(&self.db)
                    .await?;
                let wanted = (tasks.len() * job_settings(job)?.storage_backends.len()) as u64;
                if stored < wanted {
                    return Ok(JobStatus::Store);
                }
            }
        }
        Ok(failed)
    }

    /// Back from RECOVERABLE_ERROR to the stage that failed; returns the job as moved.
    async fn resume(&self, job: &archive_job::Model) -> anyhow::Result<Option<archive_job::Model>> {
        let stage = self.resume_stage(job).await?;
        if stage == JobStatus::ActivityArchiving {
            self.requeue_unfinished_tasks(job).await?;
        }
        let note = format!("retry {} of {}", job.retries, self.settings.max_retries);
        self.jobs.transition(job.id, JobStatus::RecoverableError, stage, Patch { next_retry_at: Some(None), ..Default::default() }, &note).await
    }

    /// Tasks that did not finish (failed, canceled, or whose package is gone) start over.
    async fn requeue_unfinished_tasks(&self, job: &archive_job::Model) -> anyhow::Result<()> {
        let tasks = archive_task::Entity::find().filter(archive_task::Column::JobId.eq(job.id)).all(&self.db).await?;
        for t in tasks {
            if t.status != TaskStatus::Finished.to_string() || !self.is_staged(job.id, t.id) {
                let any: Vec<TaskStatus> = TaskStatus::iter().collect();
                self.jobs
                    .task_transition(&t, &any, TaskStatus::Created, |am| {
                        am.progress = Set(0);
                        am.records_done = Set(0);
                        am.error = Set(None);
                        am.failure_transient = Set(false);
                        am.finished_at = Set(None);
                    })
                    .await?;
                // Chunks are planned anew: the activity's record count may have changed.
                self.reset_chunks(job.id, t.id).await?;
            }
        }
        Ok(())
    }

    /// The retry policy: a transient failure is retried after an exponential, jittered delay
    /// until `max_retries`; anything else, or a retry too many, sends the job to ERROR_HANDLING.
    async fn stage_failed(&self, job: &archive_job::Model, stage: JobStatus, f: Failure) -> anyhow::Result<()> {
        let retries = job.retries as u32;
        if f.is_transient() && retries < self.settings.max_retries {
            let retry = retries + 1;
            let delay = retry_delay(
                Duration::from_secs(self.settings.retry_base_seconds as u64),
                Duration::from_secs(self.settings.retry_max_seconds as u64),
                retry,
                rand::random::<f64>(),
            );
            let patch = Patch {
                error: Some(Some(f.message.clone())),
                failed_stage: Some(Some(stage.to_string())),
                retries: Some(retry as i32),
                next_retry_at: Some(Some(Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default())),
                ..Default::default()
            };
            let note = format!("{}; retry {retry} of {} in {:.1} s", f.message, self.settings.max_retries, delay.as_secs_f64());
            if self.jobs.transition(job.id, stage, JobStatus::RecoverableError, patch, &note).await?.is_some() {
                self.queue.push_stage(job.id, Some(delay)).await?;
            }
        } else {
            let why = if f.is_transient() { format!("{} (gave up after {retries} retries)", f.message) } else { f.message };
            let patch = Patch { error: Some(Some(why.clone())), failed_stage: Some(Some(stage.to_string())), ..Default::default() };
            self.jobs.transition(job.id, stage, JobStatus::ErrorHandling, patch, &why).await?;
        }
        Ok(())
    }

    /// Ends a job early (cancel, timeout): stops its tasks, removes what it stored in this attempt,
    /// and (on cancel) its staging area. A timed-out job keeps its staging so a retry can resume.
    async fn end(&self, job: &archive_job::Model, from: JobStatus, to: JobStatus, note: &str) -> anyhow::Result<()> {
        let task_end = if to == JobStatus::Timeout { TaskStatus::Timeout } else { TaskStatus::Canceled };
        let patch = Patch { finished_at: Some(Utc::now()), error: (to == JobStatus::Timeout).then(|| Some(note.to_string())), ..Default::default() };
        // The job and its open tasks end in one commit: a reader never sees the job final while
        // a task still looks like it runs. Running task workers notice their task ended and stop.
        let txn = self.db.begin().await?;
        let Some(ended) = self.jobs.transition_in(&txn, job.id, from, to, patch, note, None).await? else {
            txn.rollback().await?;
            return Ok(());
        };
        self.jobs.end_open_tasks_in(&txn, job.id, task_end).await?;
        txn.commit().await?;
        self.jobs.transitioned(&ended, from, to);
        if from.is_active() {
            self.wake_queued(1).await?;
        }
        self.discard_stored(job, note).await?;
        if to == JobStatus::Canceled {
            self.remove_staging(job.id).await;
        }
        Ok(())
    }

    /// Removes what an unfinished job stored (confirmed files and intents alike), so no partial
    /// archive stays visible; the rows are kept, marked deleted, for the record. What cannot be
    /// deleted now is logged and left to the sweeper, which tries again.
    pub(super) async fn discard_stored(&self, job: &archive_job::Model, reason: &str) -> anyhow::Result<()> {
        let files = archive_file::Entity::find().filter(archive_file::Column::JobId.eq(job.id)).filter(archive_file::Column::DeletedAt.is_null()).all(&self.db).await?;
        let actor = crate::service::audit::Actor { subject: "system".into(), roles: Vec::new(), origin: "engine".into() };
        let mut d = storage::files::Deletion::by_server(actor, "engine", crate::domain::DeletionReason::JobDiscarded, self.clock.now());
        d.note = Some(reason.to_string());
        for f in files {
            match storage::files::delete(&self.jobs, &f, &d).await {
                Ok(storage::files::Deleted::Held) => {
                    self.jobs.log(job.id, f.task_id, LogLevel::Warn, &format!("{} stays in storage: it is under legal hold", f.file_name)).await?;
                }
                Ok(_) => {}
                Err(e) => self.jobs.log(job.id, f.task_id, LogLevel::Warn, &format!("could not delete {} from storage yet: {e}", f.file_name)).await?,
            }
        }
        Ok(())
    }
}

fn status_of(job: &archive_job::Model) -> anyhow::Result<JobStatus> {
    job.status.parse().map_err(|_| anyhow::anyhow!("job {} has unknown status {}", job.id, job.status))
}
