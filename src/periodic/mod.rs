//! Cluster-wide periodic work: each task runs once per interval across all processes, however
//! many `serve`/`worker` processes share the database, and a tick missed while every process was
//! down runs once when one comes back, not once per missed tick.
//!
//! Every process with workers runs the same runner. For each task, once its interval has passed
//! since the `periodic_run` row says it last started, a process tries to lead that run: on
//! PostgreSQL it must win `pg_try_advisory_xact_lock` for the task in a transaction that stays
//! open while the task runs (so a dead leader's lock goes with its connection), and it re-reads
//! the row under the lock; on SQLite there is only one process (a lock file sees to it). The
//! tasks themselves are idempotent: a run that dies half-way is simply run again.
//!
//! Tasks: the engine's `sweeper` (liveness of jobs, tasks, chunks and stored files), the
//! pruning of the event log, the health check of the storage backends (`storage-health`), the
//! `retention` sweep (`service::retention`) and the `fixity` audit (`service::fixity`). Later
//! capabilities (schedules, LMS sync) register here instead of running loops of their own.
use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use chrono::Utc;
use sea_orm::{
    sea_query::OnConflict, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Set, Statement, TransactionTrait,
};

use crate::{
    engine::Engine,
    entity::{job_event, periodic_run},
    health::{Liveness, QuietRepeats},
    jobs::AbortOnDrop,
};

/// How often the runner looks whether a task is due.
const TICK: Duration = Duration::from_millis(500);
/// The name under which the runner reports to [`Liveness`].
pub const PART: &str = "periodic";

type Run = Arc<dyn Fn(Engine) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send + Sync>;

/// One kind of periodic work.
#[derive(Clone)]
pub struct PeriodicTask {
    pub name: &'static str,
    pub every: Duration,
    run: Run,
}

impl PeriodicTask {
    pub fn new<F, Fut>(name: &'static str, every: Duration, run: F) -> Self
    where
        F: Fn(Engine) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Self { name, every, run: Arc::new(move |e| Box::pin(run(e))) }
    }
}

/// The tasks every worker process runs.
pub fn tasks(engine: &Engine) -> Vec<PeriodicTask> {
    let retention = Duration::from_secs(engine.settings.event_retention_days as u64 * 86_400);
    vec![
        PeriodicTask::new("sweeper", crate::engine::sweeper::INTERVAL, |e: Engine| async move { e.sweep().await }),
        PeriodicTask::new("event-log-pruning", Duration::from_secs(3600), move |e: Engine| async move { prune_events(&e.db, retention).await }),
        PeriodicTask::new("storage-health", Duration::from_secs(engine.settings.storage_health_interval_seconds as u64), |e: Engine| async move {
            crate::storage::health::check_all(&e.db, e.clock.now()).await
        }),
        PeriodicTask::new(crate::service::retention::TASK, Duration::from_secs(engine.settings.retention_interval_seconds), |e: Engine| async move {
            crate::service::retention::sweep(&e).await.map(|_| ())
        }),
        PeriodicTask::new(crate::service::fixity::TASK, Duration::from_secs(engine.settings.fixity_interval_seconds), |e: Engine| async move {
            crate::service::fixity::sweep(&e).await.map(|_| ())
        }),
    ]
}

/// Removes events older than `keep` (the log is for live delivery and resuming subscribers;
/// transitions and job logs keep the history). Real time, not the engine's clock: events are
/// stamped in real time, and a test that travels years ahead must not prune events the tailer
/// has yet to deliver.
pub async fn prune_events(db: &DatabaseConnection, keep: Duration) -> anyhow::Result<()> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let before = Utc::now() - chrono::Duration::from_std(keep)?;
    let res = job_event::Entity::delete_many().filter(job_event::Column::CreatedAt.lt(before)).exec(db).await?;
    if res.rows_affected > 0 {
        tracing::info!(removed = res.rows_affected, "pruned the job event log");
    }
    Ok(())
}

/// Runs the task `name` now, here, whether due or not: for tests that travel in time and then
/// want the tick that would follow, and for operators' "run now". The task must be idempotent
/// and safe beside a concurrent run elsewhere, as every periodic task is.
pub async fn run_now(engine: &Engine, name: &str) -> anyhow::Result<()> {
    let t = tasks(engine).into_iter().find(|t| t.name == name).ok_or_else(|| anyhow::anyhow!("no periodic task named {name:?}"))?;
    run(engine, &t, &engine.db).await
}

/// Runs `tasks` until the returned guard is dropped.
pub fn spawn(engine: Engine, tasks: Vec<PeriodicTask>, liveness: Liveness) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        liveness.started(PART);
        let mut quiet: Vec<QuietRepeats> = tasks.iter().map(|_| QuietRepeats::default()).collect();
        loop {
            for (t, quiet) in tasks.iter().zip(quiet.iter_mut()) {
                match lead(&engine, t).await {
                    Ok(()) => quiet.clear(),
                    Err(e) => {
                        let e = format!("{e:#}");
                        if quiet.worth_logging(&e) {
                            tracing::warn!(task = t.name, error = %e, "periodic task failed");
                        }
                    }
                }
            }
            liveness.beat(PART);
            tokio::time::sleep(TICK).await;
        }
    }))
}

/// Runs `t` if it is due and no other process runs it now.
async fn lead(engine: &Engine, t: &PeriodicTask) -> anyhow::Result<()> {
    let db = &engine.db;
    let last = periodic_run::Entity::find_by_id(t.name).one(db).await?;
    if last.as_ref().is_some_and(|r| engine.clock.now() < r.started_at + chrono::Duration::from_std(t.every).unwrap_or_default()) {
        return Ok(());
    }
    if db.get_database_backend() != DbBackend::Postgres {
        return run(engine, t, db).await;
    }
    let txn = db.begin().await?;
    let key = lock_key(t.name);
    let won = txn
        .query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, "SELECT pg_try_advisory_xact_lock($1) AS won", [key.into()]))
        .await?
        .map(|r| r.try_get::<bool>("", "won"))
        .transpose()?
        .unwrap_or(false);
    if !won {
        return Ok(()); // another process leads it right now
    }
    // Under the lock: did another process run it since we looked?
    let last = periodic_run::Entity::find_by_id(t.name).one(&txn).await?;
    if last.as_ref().is_some_and(|r| engine.clock.now() < r.started_at + chrono::Duration::from_std(t.every).unwrap_or_default()) {
        return Ok(());
    }
    let result = run(engine, t, db).await;
    txn.commit().await?;
    result
}

/// Records the start, runs the task, records the end.
async fn run(engine: &Engine, t: &PeriodicTask, db: &DatabaseConnection) -> anyhow::Result<()> {
    record(db, t.name, &engine.process_id, engine.clock.now(), None, None).await?;
    let result = (t.run)(engine.clone()).await;
    let error = result.as_ref().err().map(|e| format!("{e:#}"));
    record(db, t.name, &engine.process_id, engine.clock.now(), Some(engine.clock.now()), error).await?;
    result
}

async fn record(
    db: &DatabaseConnection,
    name: &str,
    process: &str,
    now: chrono::DateTime<Utc>,
    finished: Option<chrono::DateTime<Utc>>,
    error: Option<String>,
) -> anyhow::Result<()> {
    let mut row = periodic_run::ActiveModel { name: Set(name.to_string()), started_at: Set(now), finished_at: Set(None), process: Set(process.to_string()), error: Set(None) };
    let mut update = vec![periodic_run::Column::FinishedAt, periodic_run::Column::Process, periodic_run::Column::Error];
    if finished.is_some() {
        // The end of a run keeps the start it recorded.
        row.finished_at = Set(finished);
        row.error = Set(error);
    } else {
        update.push(periodic_run::Column::StartedAt);
    }
    periodic_run::Entity::insert(row).on_conflict(OnConflict::column(periodic_run::Column::Name).update_columns(update).to_owned()).exec(db).await?;
    Ok(())
}

/// A stable 64-bit advisory lock key per task name.
fn lock_key(name: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("archiving-manager periodic {name}"));
    i64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
}
