//! The worker pool: apalis workers for the three queues under one Monitor, plus the sweeper.
use std::{future::Future, time::Duration};

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;

use super::Engine;
use crate::queue::{postgres_config, sqlite_config, ChunkMessage, Queue, StageMessage, TaskMessage, CHUNK_QUEUE, POLL, STAGE_QUEUE, TASK_QUEUE};

/// Stage messages are short (one stage, or a look at a waiting job); a few at once per process.
const STAGE_CONCURRENCY: usize = 4;

async fn on_stage(msg: StageMessage, engine: Data<Engine>) -> Result<(), BoxDynError> {
    engine.advance(msg.job_id).await.map_err(|e| {
        tracing::warn!(job = %msg.job_id, error = %format!("{e:#}"), "advancing a job failed");
        e.into()
    })
}

async fn on_task(msg: TaskMessage, engine: Data<Engine>) -> Result<(), BoxDynError> {
    engine.run_task(msg.job_id, msg.task_id).await.map_err(|e| {
        tracing::warn!(job = %msg.job_id, task = msg.task_id, error = %format!("{e:#}"), "running a task failed");
        e.into()
    })
}

async fn on_chunk(msg: ChunkMessage, engine: Data<Engine>) -> Result<(), BoxDynError> {
    engine.run_chunk(msg.job_id, msg.task_id, msg.chunk_id).await.map_err(|e| {
        tracing::warn!(job = %msg.job_id, task = msg.task_id, chunk = msg.chunk_id, error = %format!("{e:#}"), "running a chunk failed");
        e.into()
    })
}

/// Chunk messages are fetched one at a time (apalis fetches batches of 10 by default), so that
/// the chunks of one activity spread over the worker processes instead of one process taking them
/// all into its buffer.
///
/// Runs the workers until `shutdown` resolves; in-flight work gets 30 s to finish (whatever does
/// not is picked up again after a restart: every step is idempotent).
pub async fn run(engine: Engine, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let sweeper = engine.spawn_sweeper();
    let tasks = engine.settings.worker_concurrency as usize;
    // Names must be unique per restart: a restarted worker re-using its name is refused until
    // its old heartbeat expires, and the Monitor would spin.
    let name = |role: &str, r: usize| format!("{role}-{}-{r}", engine.process_id);
    let signal = async move {
        shutdown.await;
        Ok::<(), std::io::Error>(())
    };
    let monitor = Monitor::new().should_restart(|_, e| {
        tracing::warn!(error = %e, "a worker stopped; restarting it");
        true
    });
    let result = match engine.queue.clone() {
        Queue::Sqlite(pool) => {
            let (p1, p2, p3, e1, e2, e3) = (pool.clone(), pool.clone(), pool, engine.clone(), engine.clone(), engine.clone());
            let (n1, n2): (Vec<String>, Vec<String>) = ((0..1000).map(|r| name("stages", r)).collect(), (0..1000).map(|r| name("tasks", r)).collect());
            let n3: Vec<String> = (0..1000).map(|r| name("chunks", r)).collect();
            monitor
                .register(move |r| {
                    WorkerBuilder::new(n1[r % 1000].clone())
                        .backend(SqliteStorage::<StageMessage>::new(&p1).with_config(sqlite_config(STAGE_QUEUE)).poll_with_interval(POLL))
                        .data(e1.clone())
                        .concurrency(STAGE_CONCURRENCY)
                        .build(on_stage)
                })
                .register(move |r| {
                    WorkerBuilder::new(n2[r % 1000].clone())
                        .backend(SqliteStorage::<TaskMessage>::new(&p2).with_config(sqlite_config(TASK_QUEUE)).poll_with_interval(POLL))
                        .data(e2.clone())
                        .concurrency(tasks)
                        .build(on_task)
                })
                .register(move |r| {
                    WorkerBuilder::new(n3[r % 1000].clone())
                        .backend(SqliteStorage::<ChunkMessage>::new(&p3).with_config(sqlite_config(CHUNK_QUEUE).batch_size(1)).poll_with_interval(POLL))
                        .data(e3.clone())
                        .concurrency(tasks)
                        .build(on_chunk)
                })
                .shutdown_timeout(Duration::from_secs(30))
                .run_with_signal(signal)
                .await
        }
        Queue::Postgres(pool) => {
            let (p1, p2, p3, e1, e2, e3) = (pool.clone(), pool.clone(), pool, engine.clone(), engine.clone(), engine.clone());
            let (n1, n2): (Vec<String>, Vec<String>) = ((0..1000).map(|r| name("stages", r)).collect(), (0..1000).map(|r| name("tasks", r)).collect());
            let n3: Vec<String> = (0..1000).map(|r| name("chunks", r)).collect();
            monitor
                .register(move |r| {
                    WorkerBuilder::new(n1[r % 1000].clone())
                        .backend(PostgresStorage::<StageMessage>::new(&p1).with_config(postgres_config(STAGE_QUEUE)).with_pubsub().poll_with_interval(POLL))
                        .data(e1.clone())
                        .concurrency(STAGE_CONCURRENCY)
                        .build(on_stage)
                })
                .register(move |r| {
                    WorkerBuilder::new(n2[r % 1000].clone())
                        .backend(PostgresStorage::<TaskMessage>::new(&p2).with_config(postgres_config(TASK_QUEUE)).with_pubsub().poll_with_interval(POLL))
                        .data(e2.clone())
                        .concurrency(tasks)
                        .build(on_task)
                })
                .register(move |r| {
                    WorkerBuilder::new(n3[r % 1000].clone())
                        .backend(PostgresStorage::<ChunkMessage>::new(&p3).with_config(postgres_config(CHUNK_QUEUE).batch_size(1)).with_pubsub().poll_with_interval(POLL))
                        .data(e3.clone())
                        .concurrency(tasks)
                        .build(on_chunk)
                })
                .shutdown_timeout(Duration::from_secs(30))
                .run_with_signal(signal)
                .await
        }
    };
    sweeper.abort();
    result.map_err(|e| anyhow::anyhow!("workers stopped: {e}"))
}

#[allow(dead_code)]
fn _send_check(e: Engine) {
    fn is_send<T: Send>(_: T) {}
    is_send(e.run_task(uuid::Uuid::nil(), 0));
    is_send(e.clone().run_chunk(uuid::Uuid::nil(), 0, 0));
}
