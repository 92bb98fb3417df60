//! The worker pool: one apalis consumer per queue, each under a supervisor of ours, plus the
//! periodic runner.
//!
//! A consumer's liveness is known at all times ([`Liveness`], which `/readyz` reads): it beats
//! with each apalis heartbeat (written to the queue's `Workers` table); a consumer whose future
//! ends — with an error such as a lost database, or silently — is logged at ERROR with the cause
//! and restarted with backoff (1 s doubling to 30 s), under a new name since apalis refuses a name
//! whose heartbeat has not expired; one whose heartbeats stop while its future still runs is
//! taken for stalled, dropped and restarted. Dropping a consumer drops its in-flight handlers,
//! whose lease guards stop renewing, so their work is taken over once the leases expire.
use std::{future::Future, panic::AssertUnwindSafe, time::Duration};

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use futures::FutureExt;
use tokio::sync::watch;

use super::Engine;
use crate::{
    health::Liveness,
    periodic,
    queue::{postgres_config, sqlite_config, ChunkMessage, StageMessage, Store, TaskMessage, CHUNK_QUEUE, HEARTBEAT, POLL, STAGE_QUEUE, TASK_QUEUE},
};

/// Stage messages are short (one stage, or a look at a waiting job) and wait on the database,
/// not the CPU: with 4 at once, small jobs queued up behind the stage consumer while the database
/// had room (17 jobs/s end to end against 240 creations/s on SQLite, whatever the task
/// concurrency). The database pool bounds what runs at once anyway.
const STAGE_CONCURRENCY: usize = 16;
/// A consumer silent for this long is stalled.
pub const STALLED_AFTER: Duration = Duration::from_secs(HEARTBEAT.as_secs() * 3);
/// How long in-flight work may take to finish on shutdown; what does not is picked up again
/// after a restart (every step is idempotent).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The name under which a queue's consumer reports to [`Liveness`] and in the log.
pub fn part(queue: &str) -> String {
    format!("consumer {queue}")
}

/// Runs `work`, turning a panic into an error: one bad message must not take its consumer down.
async fn guarded(what: &str, work: impl Future<Output = anyhow::Result<()>>) -> Result<(), BoxDynError> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %format!("{e:#}"), "{what} failed");
            Err(e.into())
        }
        Err(_) => {
            tracing::error!("{what} panicked");
            Err(format!("{what} panicked").into())
        }
    }
}

async fn on_stage(msg: StageMessage, engine: Data<Engine>) -> Result<(), BoxDynError> {
    guarded(&format!("advancing job {}", msg.job_id), engine.advance(msg.job_id)).await
}

async fn on_task(msg: TaskMessage, engine: Data<Engine>) -> Result<(), BoxDynError> {
    guarded(&format!("task {} of job {}", msg.task_id, msg.job_id), engine.run_task(msg.job_id, msg.task_id)).await
}

async fn on_chunk(msg: ChunkMessage, engine: Data<Engine>) -> Result<(), BoxDynError> {
    guarded(&format!("chunk {} of task {}", msg.chunk_id, msg.task_id), engine.run_chunk(msg.job_id, msg.task_id, msg.chunk_id)).await
}

/// Builds and runs one consumer until `stop` fires; the same for every queue and backend.
macro_rules! consume {
    ($name:expr, $storage:expr, $engine:expr, $live:expr, $part:expr, $concurrency:expr, $handler:expr, $stop:expr) => {{
        let (live, part) = ($live.clone(), $part.clone());
        WorkerBuilder::new($name)
            .backend($storage)
            .data($engine.clone())
            .concurrency($concurrency)
            .on_event(move |_, ev| {
                if matches!(ev, Event::HeartBeat | Event::Start) {
                    live.beat(&part);
                }
            })
            .build($handler)
            .run_until($stop)
            .boxed()
    }};
}

/// Runs the workers and the periodic tasks until `shutdown` resolves.
pub async fn run(engine: Engine, liveness: Liveness, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let periodic = periodic::spawn(engine.clone(), periodic::tasks(&engine), liveness.clone());
    let tasks = engine.settings.worker_concurrency as usize;
    // (queue, worker name prefix, concurrency, messages fetched at once)
    let consumers = [(STAGE_QUEUE, "stages", STAGE_CONCURRENCY, STAGE_CONCURRENCY), (TASK_QUEUE, "tasks", tasks, 10), (CHUNK_QUEUE, "chunks", tasks, 1)];
    let mut running = Vec::new();
    for (queue, role, concurrency, batch) in consumers {
        let (engine, live, stop) = (engine.clone(), liveness.clone(), stop_rx.clone());
        running.push(tokio::spawn(supervise(queue, live.clone(), stop.clone(), move |run| {
            // A name per run: a restarted consumer re-using its name is refused until the old
            // heartbeat expires.
            let name = format!("{role}-{}-{run}", engine.process_id);
            let part = part(queue);
            let mut stop = stop.clone();
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
                Ok::<(), std::io::Error>(())
            };
            // Chunk messages are fetched one at a time (apalis fetches batches of 10 by default),
            // so that the chunks of one activity spread over the worker processes instead of
            // one process taking them all into its buffer.
            // Woken at once when this process pushes (and on PostgreSQL by apalis's NOTIFY of
            // any process's push); the interval is the fallback and runs delayed messages.
            let wake = || Strategy::new().stream(engine.queue.wakeups(queue)).interval(POLL);
            match (&engine.queue.store, queue) {
                (Store::Sqlite(p), STAGE_QUEUE) => consume!(name, SqliteStorage::<StageMessage>::new(p).with_config(sqlite_config(queue).batch_size(batch)).poll_with_strategy(wake()), engine, live, part, concurrency, on_stage, stopped),
                (Store::Sqlite(p), TASK_QUEUE) => consume!(name, SqliteStorage::<TaskMessage>::new(p).with_config(sqlite_config(queue).batch_size(batch)).poll_with_strategy(wake()), engine, live, part, concurrency, on_task, stopped),
                (Store::Sqlite(p), _) => consume!(name, SqliteStorage::<ChunkMessage>::new(p).with_config(sqlite_config(queue).batch_size(batch)).poll_with_strategy(wake()), engine, live, part, concurrency, on_chunk, stopped),
                (Store::Postgres(p), STAGE_QUEUE) => consume!(name, PostgresStorage::<StageMessage>::new(p).with_config(postgres_config(queue).batch_size(batch)).with_pubsub().poll_with_strategy(wake()), engine, live, part, concurrency, on_stage, stopped),
                (Store::Postgres(p), TASK_QUEUE) => consume!(name, PostgresStorage::<TaskMessage>::new(p).with_config(postgres_config(queue).batch_size(batch)).with_pubsub().poll_with_strategy(wake()), engine, live, part, concurrency, on_task, stopped),
                (Store::Postgres(p), _) => consume!(name, PostgresStorage::<ChunkMessage>::new(p).with_config(postgres_config(queue).batch_size(batch)).with_pubsub().poll_with_strategy(wake()), engine, live, part, concurrency, on_chunk, stopped),
            }
        })));
    }
    let mut stop = stop_rx.clone();
    let _ = stop.wait_for(|s| *s).await;
    let all = futures::future::join_all(running);
    if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
        tracing::warn!("workers did not finish within {} s; their work is taken over after a restart", SHUTDOWN_GRACE.as_secs());
    }
    drop(periodic);
    Ok(())
}

/// Keeps one consumer running until `stop` fires: restarts it with backoff whenever it ends or
/// stalls, and says why each time.
async fn supervise<F>(queue: &'static str, liveness: Liveness, mut stop: watch::Receiver<bool>, start: F)
where
    F: Fn(u32) -> futures::future::BoxFuture<'static, Result<(), WorkerError>>,
{
    let part = part(queue);
    let mut failures: u32 = 0;
    for run in 0u32.. {
        if *stop.borrow() {
            break;
        }
        liveness.started(&part);
        let began = tokio::time::Instant::now();
        let work = start(run);
        let watchdog = async {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if liveness.silent_for(&part).is_some_and(|s| s > STALLED_AFTER) && !*stop.borrow() {
                    return;
                }
            }
        };
        let kill = liveness.kill_switch(&part);
        let why = tokio::select! {
            ended = work => match ended {
                _ if *stop.borrow() => break,
                Ok(()) => "it stopped without an error".to_string(),
                Err(e) => format!("it failed: {e}"),
            },
            _ = watchdog => format!("no heartbeat for {} s: taken for stalled", STALLED_AFTER.as_secs()),
            _ = kill.notified() => "it was stopped on request".to_string(),
        };
        // A consumer that ran for a while before failing starts its backoff afresh.
        if began.elapsed() > Duration::from_secs(60) {
            failures = 0;
        }
        failures += 1;
        let backoff = Duration::from_secs(1u64 << (failures - 1).min(5)).min(Duration::from_secs(30));
        tracing::error!(consumer = queue, restarts = failures, "queue consumer {queue} stopped: {why}; restarting in {} s", backoff.as_secs());
        liveness.stopped(&part, &why);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    liveness.stopped(&part, "shut down");
}
