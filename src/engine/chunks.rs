//! Large activities in chunks. An activity with more than `chunk_records` records is not archived
//! by its task alone: the task plans chunks of `chunk_records` records (`archive_chunk` rows),
//! queues one message per chunk on the chunk queue, and assembles the package chunk after chunk
//! while they are rendered. Any worker process renders a chunk (`run_chunk`, under a lease of its
//! own) into `staging/<job>/<task>/chunks/<idx>/`, then sends the task again. The assembly works
//! from the first chunk on and renders the chunks nobody has started straight into the package
//! (under the chunk's lease, like any worker), while the workers take the chunks from the last
//! one down: they meet in between, and what the assembly renders itself is never staged. A
//! FAILED chunk fails the task with its error (the job's retry logic applies; a retry deletes the
//! task's chunks and plans them anew).
//!
//! A chunk rendered into the package is FINISHED without files. If that package is lost before
//! it is complete (the assembling worker died), the next assembly finds such chunks as it finds
//! chunks whose files were lost, and has them rendered again.
use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use chrono::Utc;
use futures::FutureExt;
use sea_orm::{
    sea_query::Expr,
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    drivers::{self, ArchiveError, ArchiveRequest, ChunkSource, ChunkSpan, Progress},
    tasks::TaskProgress,
    Engine,
};
use crate::{
    domain::{Failure, JobStatus, LogLevel, TaskStatus},
    entity::{
        archive_chunk::{self, ChunkStatus},
        archive_job, archive_task,
    },
    jobs::{Lease, LeaseGuard},
};

/// The folder of a task's chunks, inside the task's staging folder.
pub(super) const CHUNKS_DIR: &str = "chunks";

/// What a task does next.
pub(super) enum ChunkPlan {
    /// A small activity: archive it directly, as one piece.
    Direct,
    /// Chunks are planned: assemble them, each as soon as it is done ([`Engine::assemble_chunks`]).
    Assemble(Vec<archive_chunk::Model>),
    /// A chunk failed: so does the task.
    Failed(Failure),
}

/// How often an assembly waiting for a chunk looks for its `done.json`, and how many looks make
/// one look at the chunk's row (for a failure, or finished files that are gone).
const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(50);
const POLLS_PER_ROW_CHECK: u32 = 10;

/// Progress for the assembly: only cancellation counts (the task's records are already done).
pub(super) struct CancelOnly<'a>(pub &'a dyn Progress);

impl Progress for CancelOnly<'_> {
    fn report(&self, _done: u64, _total: u64) {}
    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}

fn is(c: &archive_chunk::Model, s: ChunkStatus) -> bool {
    c.status == s.as_ref()
}

/// "chunk 3/20 (records 1500–1999)", records counted from 0 in the LMS's order.
fn describe(c: &archive_chunk::Model, of: u64) -> String {
    format!("chunk {}/{of} (records {}–{})", c.idx + 1, c.first_record, c.first_record + c.records - 1)
}

impl Engine {
    pub(super) async fn has_chunks(&self, task_id: i64) -> anyhow::Result<bool> {
        Ok(archive_chunk::Entity::find().filter(archive_chunk::Column::TaskId.eq(task_id)).count(&self.db).await? > 0)
    }

    async fn chunks_of(&self, task_id: i64) -> anyhow::Result<Vec<archive_chunk::Model>> {
        Ok(archive_chunk::Entity::find().filter(archive_chunk::Column::TaskId.eq(task_id)).order_by_asc(archive_chunk::Column::Idx).all(&self.db).await?)
    }

    fn chunk_dir(&self, job_id: Uuid, task_id: i64, idx: i32) -> PathBuf {
        self.staging(job_id).join(task_id.to_string()).join(CHUNKS_DIR).join(idx.to_string())
    }

    /// Decides how a running task goes on (see [`ChunkPlan`]); plans and queues the chunks of a
    /// large activity the first time.
    pub(super) async fn chunk_plan(&self, job_id: Uuid, task: &archive_task::Model, request: &ArchiveRequest) -> anyhow::Result<ChunkPlan> {
        let mut chunks = self.chunks_of(task.id).await?;
        if chunks.is_empty() {
            let total = self.lms.record_versions(&request.activity.lms_id).await?.len() as u64;
            let size = self.settings.chunk_records as u64;
            if total <= size {
                return Ok(ChunkPlan::Direct);
            }
            self.create_chunks(job_id, task, total, size).await?;
            chunks = self.chunks_of(task.id).await?;
        }
        let of = chunks.len() as u64;
        if let Some(f) = chunks.iter().find(|c| is(c, ChunkStatus::Failed)) {
            let error = format!("{}: {}", describe(f, of), f.error.as_deref().unwrap_or("failed"));
            return Ok(ChunkPlan::Failed(if f.failure_transient { Failure::transient(error) } else { Failure::permanent(error) }));
        }
        Ok(ChunkPlan::Assemble(chunks))
    }

    /// Builds the task's package from its chunks while they are rendered, wherever: chunk after
    /// chunk, each as soon as it is done. The task holds its lease meanwhile (a task whose
    /// worker dies is sent again by the sweeper and starts the assembly over); chunks have a
    /// queue and workers of their own, so a waiting task never keeps its chunks from running.
    pub(super) async fn assemble_chunks(
        &self,
        job_id: Uuid,
        task: &archive_task::Model,
        request: &ArchiveRequest,
        out_dir: &std::path::Path,
        chunks: Vec<archive_chunk::Model>,
        progress: &dyn Progress,
    ) -> Result<drivers::BuiltPackage, ArchiveError> {
        let spans: Vec<ChunkSpan> = chunks
            .iter()
            .map(|c| ChunkSpan { dir: self.chunk_dir(job_id, task.id, c.idx), first_record: c.first_record.max(0) as u64, records: c.records.max(0) as u64 })
            .collect();
        let feed = ChunkWaiter { engine: self, job_id, task_id: task.id, chunks: &chunks, spans: &spans, progress, claim: Mutex::new(None) };
        drivers::assemble_as_ready(self.lms.as_ref(), request, out_dir, &spans, &feed, progress).await
    }

    /// Inserts the chunk rows (those missing: a run that died half-way may have inserted some)
    /// and queues every chunk not finished.
    async fn create_chunks(&self, job_id: Uuid, task: &archive_task::Model, total: u64, size: u64) -> anyhow::Result<()> {
        let now = Utc::now();
        let count = total.div_ceil(size);
        let rows: Vec<archive_chunk::ActiveModel> = (0..count)
            .map(|i| archive_chunk::ActiveModel {
                task_id: Set(task.id),
                idx: Set(i as i32),
                first_record: Set((i * size) as i32),
                records: Set(size.min(total - i * size) as i32),
                records_done: Set(0),
                status: Set(ChunkStatus::Queued.to_string()),
                lease_owner: Set(None),
                lease_until: Set(None),
                worker: Set(None),
                error: Set(None),
                failure_transient: Set(false),
                created_at: Set(now),
                updated_at: Set(now),
                finished_at: Set(None),
                ..Default::default()
            })
            .collect();
        for batch in rows.chunks(500) {
            archive_chunk::Entity::insert_many(batch.to_vec()).on_conflict_do_nothing().exec(&self.db).await?;
        }
        self.write_task_progress(job_id, task.id, 0, total).await?;
        self.jobs.log(job_id, Some(task.id), LogLevel::Info, &format!("{total} records: archived in {count} chunks of up to {size} records")).await?;
        for c in self.chunks_of(task.id).await? {
            if !is(&c, ChunkStatus::Finished) {
                self.queue.push_chunk(job_id, task.id, c.id).await?;
            }
        }
        Ok(())
    }

    /// A finished chunk without files (the staging area was lost, or it went straight into a
    /// package that was not finished) is rendered again.
    async fn rerender_lost(&self, job_id: Uuid, c: &archive_chunk::Model, of: u64) -> anyhow::Result<()> {
        self.jobs.log(job_id, Some(c.task_id), LogLevel::Warn, &format!("{}: its staged files are gone, or it went into a package that was not finished; archiving it again", describe(c, of))).await?;
        archive_chunk::Entity::update_many()
            .col_expr(archive_chunk::Column::Status, Expr::val(ChunkStatus::Queued.to_string()).into())
            .col_expr(archive_chunk::Column::UpdatedAt, Expr::val(Utc::now()).into())
            .filter(archive_chunk::Column::Id.eq(c.id))
            .filter(archive_chunk::Column::Status.eq(ChunkStatus::Finished.to_string()))
            .exec(&self.db)
            .await?;
        self.queue.push_chunk(job_id, c.task_id, c.id).await
    }

    /// A task starts over (a retry): its chunks are planned anew, their files removed.
    pub async fn reset_chunks(&self, job_id: Uuid, task_id: i64) -> anyhow::Result<()> {
        archive_chunk::Entity::delete_many().filter(archive_chunk::Column::TaskId.eq(task_id)).exec(&self.db).await?;
        let _ = tokio::fs::remove_dir_all(self.staging(job_id).join(task_id.to_string()).join(CHUNKS_DIR)).await;
        Ok(())
    }

    /// Handles a chunk message.
    pub async fn run_chunk(&self, job_id: Uuid, task_id: i64, chunk_id: i64) -> anyhow::Result<()> {
        let Some(job) = archive_job::Entity::find_by_id(job_id).one(&self.db).await? else { return Ok(()) };
        if job.status != JobStatus::ActivityArchiving.to_string() || job.cancel_requested {
            return Ok(()); // stale message: the job moved on, or ended
        }
        let Some(named) = archive_chunk::Entity::find_by_id(chunk_id).one(&self.db).await? else { return Ok(()) }; // reset meanwhile
        if named.task_id != task_id {
            return Ok(());
        }
        let Some(task) = archive_task::Entity::find_by_id(task_id).one(&self.db).await? else { return Ok(()) };
        if task.status != TaskStatus::Running.to_string() {
            return Ok(());
        }
        let owner = self.owner();
        let Some(chunk) = self.claim_from_the_back(task_id, &owner).await? else {
            return Ok(()); // all taken; one that dies is sent again by the sweeper when its lease expires
        };
        let chunk_id = chunk.id;
        let guard = {
            let (engine, owner) = (self.clone(), owner.clone());
            LeaseGuard::hold(self.lease_ttl(), move || {
                let (engine, owner) = (engine.clone(), owner.clone());
                Box::pin(async move { ChunkLease::take(&engine, chunk_id, &owner).await })
            })
        };
        let result = self.run_chunk_leased(&job, &task, &chunk, &owner, &guard).await;
        drop(guard);
        ChunkLease::release(self, chunk_id, &owner).await?;
        // The task decides what is next: wait for the other chunks, assemble, or fail.
        self.queue.push_task(job_id, task_id).await?;
        result
    }

    async fn run_chunk_leased(&self, job: &archive_job::Model, task: &archive_task::Model, chunk: &archive_chunk::Model, owner: &str, lease: &LeaseGuard) -> anyhow::Result<()> {
        let request = self.archive_request(job, task).await?;
        let dir = self.chunk_dir(job.id, task.id, chunk.idx);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = watch::channel((0u64, 0u64));
        let (job_id, task_id, chunk_id, progress_owner) = (job.id, task.id, chunk.id, owner.to_string());
        let ticker = self.spawn_ticker(job.id, stop.clone(), lease.lost_flag(), rx, move |e, done, _| {
            let owner = progress_owner.clone();
            async move {
                let _ = archive_chunk::Entity::update_many()
                    .col_expr(archive_chunk::Column::RecordsDone, Expr::val(done as i32).into())
                    .filter(archive_chunk::Column::Id.eq(chunk_id))
                    .filter(archive_chunk::Column::LeaseOwner.eq(owner.as_str()))
                    .exec(&e.db)
                    .await;
                let _ = e.write_chunk_progress(job_id, task_id).await;
            }
            .boxed()
        });
        let progress = TaskProgress { stop: stop.clone(), tx };
        let outcome = drivers::archive_chunk(self.lms.as_ref(), &request, &dir, chunk.first_record as u64, chunk.records as u64, &progress).await;
        drop(ticker);
        let of = archive_chunk::Entity::find().filter(archive_chunk::Column::TaskId.eq(task.id)).count(&self.db).await?;
        match outcome {
            Err(ArchiveError::Cancelled) => self.remove_stopped_chunk(job.id, &dir).await, // the job ends it; its chunks with it
            Err(e) if stop.load(Ordering::Relaxed) => {
                tracing::debug!(error = %e, "chunk failed while being stopped");
                self.remove_stopped_chunk(job.id, &dir).await;
            }
            Ok(records) => {
                if self.end_chunk(chunk.id, owner, ChunkStatus::Finished, records as i32, None, false).await? {
                    self.jobs.log(job.id, Some(task.id), LogLevel::Info, &format!("{} archived by {}", describe(chunk, of), self.process_id)).await?;
                    self.write_chunk_progress(job.id, task.id).await?;
                }
            }
            Err(e) => {
                let transient = matches!(&e, ArchiveError::Failed(f) if f.is_transient());
                let error = e.to_string(); // the cause with its context
                self.jobs.log(job.id, Some(task.id), LogLevel::Error, &format!("{} failed: {error}", describe(chunk, of))).await?;
                self.end_chunk(chunk.id, owner, ChunkStatus::Failed, 0, Some(error), transient).await?;
            }
        }
        Ok(())
    }

    /// Takes the last chunk of the task that nobody renders: workers work from the back, the
    /// assembly from the front (it renders the chunks nobody has started itself, unstaged). A
    /// message names a chunk only to say that the task has work; every message renders at most
    /// one chunk, and there is a message for every chunk still to do, so none is left out.
    async fn claim_from_the_back(&self, task_id: i64, owner: &str) -> anyhow::Result<Option<archive_chunk::Model>> {
        let now = Utc::now();
        let free = |c: &archive_chunk::Model| is(c, ChunkStatus::Queued) || (is(c, ChunkStatus::Running) && c.lease_until.is_none_or(|u| u < now));
        for c in self.chunks_of(task_id).await?.into_iter().rev().filter(free) {
            if ChunkLease::take(self, c.id, owner).await? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// The job ended while the chunk ran: its staging may already be cleaned up, and what the
    /// chunk wrote must not bring it back. Parents go only when empty (other chunks may still be
    /// stopping; the last one takes them).
    async fn remove_stopped_chunk(&self, job_id: Uuid, dir: &std::path::Path) {
        let _ = tokio::fs::remove_dir_all(dir).await;
        let job_dir = self.staging(job_id);
        let mut parent = dir.parent();
        while let Some(p) = parent {
            if !p.starts_with(&job_dir) || tokio::fs::remove_dir(p).await.is_err() {
                break; // not empty, or gone already
            }
            parent = p.parent();
        }
    }

    /// Ends a chunk this worker holds; false when it was reset or taken over meanwhile.
    async fn end_chunk(&self, chunk_id: i64, owner: &str, to: ChunkStatus, records_done: i32, error: Option<String>, transient: bool) -> anyhow::Result<bool> {
        let now = Utc::now();
        let res = archive_chunk::Entity::update_many()
            .col_expr(archive_chunk::Column::Status, Expr::val(to.to_string()).into())
            .col_expr(archive_chunk::Column::RecordsDone, Expr::val(records_done).into())
            .col_expr(archive_chunk::Column::Worker, Expr::val(Some(self.process_id.clone())).into())
            .col_expr(archive_chunk::Column::Error, Expr::val(error).into())
            .col_expr(archive_chunk::Column::FailureTransient, Expr::val(transient).into())
            .col_expr(archive_chunk::Column::FinishedAt, Expr::val(Some(now)).into())
            .col_expr(archive_chunk::Column::UpdatedAt, Expr::val(now).into())
            .filter(archive_chunk::Column::Id.eq(chunk_id))
            .filter(archive_chunk::Column::Status.eq(ChunkStatus::Running.to_string()))
            .filter(archive_chunk::Column::LeaseOwner.eq(owner))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected > 0)
    }

    /// The task's progress is the sum over its chunks.
    async fn write_chunk_progress(&self, job_id: Uuid, task_id: i64) -> anyhow::Result<()> {
        let chunks = self.chunks_of(task_id).await?;
        let done: u64 = chunks.iter().map(|c| c.records_done.max(0) as u64).sum();
        let total: u64 = chunks.iter().map(|c| c.records.max(0) as u64).sum();
        self.write_task_progress(job_id, task_id, done, total).await
    }


    /// The sweeper's part for chunks of the jobs in `archiving` (ACTIVITY_ARCHIVING): chunks whose
    /// worker died or whose message was lost are sent again (at most once per lease period each),
    /// and tasks whose chunks have all ended get a look (the chunks' own messages for the task may
    /// have found it busy).
    pub(super) async fn sweep_chunks(&self, archiving: &[Uuid]) -> anyhow::Result<()> {
        if archiving.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let ttl = self.lease_ttl();
        let tasks = archive_task::Entity::find()
            .filter(archive_task::Column::JobId.is_in(archiving.to_vec()))
            .filter(archive_task::Column::Status.eq(TaskStatus::Running.to_string()))
            .all(&self.db)
            .await?;
        if tasks.is_empty() {
            return Ok(());
        }
        let dead = Condition::any().add(archive_chunk::Column::LeaseUntil.is_null()).add(archive_chunk::Column::LeaseUntil.lt(now));
        let due = archive_chunk::Entity::find()
            .filter(archive_chunk::Column::TaskId.is_in(tasks.iter().map(|t| t.id)))
            .filter(
                Condition::any()
                    .add(Condition::all().add(archive_chunk::Column::Status.eq(ChunkStatus::Queued.to_string())).add(archive_chunk::Column::UpdatedAt.lt(now - ttl * 2)))
                    .add(Condition::all().add(archive_chunk::Column::Status.eq(ChunkStatus::Running.to_string())).add(dead).add(archive_chunk::Column::UpdatedAt.lt(now - ttl))),
            )
            .all(&self.db)
            .await?;
        for c in due {
            // Touched, so that it is sent again only if it still waits a lease period from now.
            archive_chunk::Entity::update_many()
                .col_expr(archive_chunk::Column::UpdatedAt, Expr::val(now).into())
                .filter(archive_chunk::Column::Id.eq(c.id))
                .exec(&self.db)
                .await?;
            if let Some(t) = tasks.iter().find(|t| t.id == c.task_id) {
                self.queue.push_chunk(t.job_id, t.id, c.id).await?;
            }
        }
        for t in tasks.iter().filter(|t| t.lease_until.is_none()) {
            let chunks = self.chunks_of(t.id).await?;
            let ended = !chunks.is_empty() && chunks.iter().all(|c| is(c, ChunkStatus::Finished) || is(c, ChunkStatus::Failed));
            if ended {
                self.queue.push_task(t.job_id, t.id).await?;
            }
        }
        Ok(())
    }
}

/// The assembly's view of the chunks: a chunk is ready when its `done.json` is there and its
/// row says FINISHED (the files come first, the row after: both, and no rerun can replace them),
/// or when nobody renders it and the assembly could take its lease to render it itself.
struct ChunkWaiter<'a> {
    engine: &'a Engine,
    job_id: Uuid,
    task_id: i64,
    chunks: &'a [archive_chunk::Model],
    spans: &'a [ChunkSpan],
    progress: &'a dyn Progress,
    /// The chunk the assembly renders itself, while it does: its index, lease owner and renewal.
    claim: Mutex<Option<(usize, String, LeaseGuard)>>,
}

fn failed(e: anyhow::Error) -> ArchiveError {
    ArchiveError::Failed(Failure::transient(format!("{e:#}")))
}

impl ChunkWaiter<'_> {
    /// Takes the chunk's lease for the assembly, if nobody holds it.
    async fn claim(&self, idx: usize) -> Result<bool, ArchiveError> {
        let (engine, chunk_id, owner) = (self.engine, self.chunks[idx].id, self.engine.owner());
        if !ChunkLease::take(engine, chunk_id, &owner).await.map_err(failed)? {
            return Ok(false);
        }
        let guard = {
            let (engine, owner) = (engine.clone(), owner.clone());
            LeaseGuard::hold(engine.lease_ttl(), move || {
                let (engine, owner) = (engine.clone(), owner.clone());
                Box::pin(async move { ChunkLease::take(&engine, chunk_id, &owner).await })
            })
        };
        *self.claim.lock().expect("the claim lock is never poisoned") = Some((idx, owner, guard));
        Ok(true)
    }
}

#[async_trait::async_trait]
impl drivers::ChunkFeed for ChunkWaiter<'_> {
    async fn ready(&self, idx: usize) -> Result<ChunkSource, ArchiveError> {
        let (planned, dir, of) = (&self.chunks[idx], &self.spans[idx].dir, self.chunks.len() as u64);
        let mut polls = 0u32;
        loop {
            if self.progress.cancelled() {
                return Err(ArchiveError::Cancelled);
            }
            let complete = drivers::chunk::chunk_complete(dir);
            if complete || polls % POLLS_PER_ROW_CHECK == 0 {
                let row = archive_chunk::Entity::find_by_id(planned.id).one(&self.engine.db).await.map_err(|e| failed(e.into()))?;
                let Some(c) = row.filter(|c| c.task_id == self.task_id) else {
                    return Err(failed(anyhow::anyhow!("{} was planned anew meanwhile", describe(planned, of))));
                };
                if is(&c, ChunkStatus::Failed) {
                    let error = format!("{}: {}", describe(&c, of), c.error.as_deref().unwrap_or("failed"));
                    return Err(ArchiveError::Failed(if c.failure_transient { Failure::transient(error) } else { Failure::permanent(error) }));
                }
                if is(&c, ChunkStatus::Finished) {
                    if complete {
                        return Ok(ChunkSource::Staged);
                    }
                    self.engine.rerender_lost(self.job_id, &c, of).await.map_err(failed)?;
                }
                // Not complete and nobody's (or its worker died): rendering it here skips staging.
                if !complete && self.claim(idx).await? {
                    return Ok(ChunkSource::Render);
                }
            }
            polls = polls.wrapping_add(1);
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    async fn rendered(&self, idx: usize, records: Option<u64>) -> Result<(), ArchiveError> {
        let claim = self.claim.lock().expect("the claim lock is never poisoned").take();
        let Some((claimed, owner, guard)) = claim else { return Err(failed(anyhow::anyhow!("chunk {idx} was rendered without a claim"))) };
        debug_assert_eq!(claimed, idx);
        drop(guard);
        let (engine, c, of) = (self.engine, &self.chunks[idx], self.chunks.len() as u64);
        if let Some(records) = records {
            if engine.end_chunk(c.id, &owner, ChunkStatus::Finished, records as i32, None, false).await.map_err(failed)? {
                let message = format!("{} archived by {} straight into the package", describe(c, of), engine.process_id);
                engine.jobs.log(self.job_id, Some(self.task_id), LogLevel::Info, &message).await.map_err(failed)?;
                engine.write_chunk_progress(self.job_id, self.task_id).await.map_err(failed)?;
            }
        }
        // A chunk not finished goes back to QUEUED, for whoever runs the task next.
        ChunkLease::release(engine, c.id, &owner).await.map_err(failed)
    }
}

/// A chunk's lease, like a task's: taking it succeeds when it is free, expired or already ours,
/// and makes the chunk RUNNING.
struct ChunkLease;

impl ChunkLease {
    const COLS: (archive_chunk::Column, archive_chunk::Column) = (archive_chunk::Column::LeaseOwner, archive_chunk::Column::LeaseUntil);

    /// Takes (or renews) the chunk's lease and marks it RUNNING; only a chunk still to do.
    async fn take(engine: &Engine, chunk_id: i64, owner: &str) -> anyhow::Result<bool> {
        let open = [ChunkStatus::Queued.to_string(), ChunkStatus::Running.to_string()];
        let target = Condition::all().add(archive_chunk::Column::Id.eq(chunk_id)).add(archive_chunk::Column::Status.is_in(open));
        let also = vec![
            (archive_chunk::Column::Status, Expr::val(ChunkStatus::Running.to_string()).into()),
            (archive_chunk::Column::UpdatedAt, Expr::val(Utc::now()).into()),
        ];
        Lease::take::<archive_chunk::Entity>(&engine.db, target, Self::COLS, owner, engine.lease_ttl(), also).await
    }

    /// Lets go; a chunk left RUNNING (its run was stopped or failed to start) is QUEUED again,
    /// so that the sweeper sends it again if the job still wants it.
    async fn release(engine: &Engine, chunk_id: i64, owner: &str) -> anyhow::Result<()> {
        let running = archive_chunk::Column::Status.eq(ChunkStatus::Running.to_string());
        let requeue = Expr::case(running, Expr::val(ChunkStatus::Queued.to_string())).finally(Expr::col(archive_chunk::Column::Status)).into();
        Lease::release::<archive_chunk::Entity>(&engine.db, Condition::all().add(archive_chunk::Column::Id.eq(chunk_id)), Self::COLS, owner, vec![(archive_chunk::Column::Status, requeue)]).await
    }
}
