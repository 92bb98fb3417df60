//! The work queue on apalis, in the application's own database: SQLite by default, PostgreSQL when
//! the database is PostgreSQL, sharing SeaORM's pool. Three queues with explicit names: one
//! advances a job by a stage, one archives one activity (so a job's activities spread over
//! workers), one renders one chunk of a large activity (so one activity spreads over workers).
//!
//! Queue messages only say what to look at; the state lives in our tables. A lost or duplicated
//! message is therefore harmless: handlers are idempotent and the sweeper re-sends what is due.
//!
//! Messages are written as rows of apalis's own table through any SeaORM connection, so that a
//! message can commit in the same transaction as the state it is about (a job is created and
//! queued in one commit). apalis's consumers read them as they read their own pushes. Idle
//! consumers are woken at once: on PostgreSQL by apalis's `NOTIFY` (its trigger on the jobs
//! table, delivered at commit), on SQLite — one process per database — by an in-process signal
//! given after the commit ([`Queue::wake`]). Polling every [`POLL`] is only the fallback, and what
//! makes delayed messages run.
use std::{
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use futures::Stream;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

pub const STAGE_QUEUE: &str = "archive-job-stages";
pub const TASK_QUEUE: &str = "archive-activity-tasks";
pub const CHUNK_QUEUE: &str = "archive-activity-chunks";

/// Advance a job: run its due stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageMessage {
    pub job_id: Uuid,
}

/// Archive one activity of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskMessage {
    pub job_id: Uuid,
    pub task_id: i64,
}

/// Render one chunk of a large activity's records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkMessage {
    pub job_id: Uuid,
    pub task_id: i64,
    pub chunk_id: i64,
}

/// Heartbeats every 5 s; a worker silent for 3 of them is dead and its messages go back to the queue.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
const MISSED_HEARTBEATS: usize = 3;
/// Infrastructure failures (the database unreachable) are retried a few times by apalis; anything
/// that outlives them is picked up again by the sweeper.
const MAX_ATTEMPTS: i32 = 5;
/// How often an idle worker looks for messages nobody woke it for: delayed ones, and pushes a
/// wake-up did not reach (another process on PostgreSQL when a notification is lost).
pub const POLL: Duration = Duration::from_millis(250);

pub fn sqlite_config(queue: &str) -> apalis_sqlite::Config {
    apalis_sqlite::Config::default().queue(queue).heartbeat_interval(HEARTBEAT).missed_heartbeats(MISSED_HEARTBEATS)
}

pub fn postgres_config(queue: &str) -> apalis_postgres::Config {
    apalis_postgres::Config::default().queue(queue).heartbeat_interval(HEARTBEAT).missed_heartbeats(MISSED_HEARTBEATS)
}

/// Which database the queue lives in, with the pool apalis's consumers use.
#[derive(Clone)]
pub enum Store {
    Sqlite(sea_orm::sqlx::SqlitePool),
    Postgres(sea_orm::sqlx::PgPool),
}

/// One in-process wake-up signal per queue.
#[derive(Default)]
struct Wakers {
    stages: Notify,
    tasks: Notify,
    chunks: Notify,
}

impl Wakers {
    fn of(&self, queue: &str) -> &Notify {
        match queue {
            STAGE_QUEUE => &self.stages,
            TASK_QUEUE => &self.tasks,
            _ => &self.chunks,
        }
    }
}

/// Messages written in a transaction: their consumers are woken once it has committed.
#[must_use = "wake the consumers after the commit"]
pub struct Pushed<'a> {
    queue: &'a Queue,
    name: &'static str,
}

impl Pushed<'_> {
    /// Call after the transaction that wrote the message committed.
    pub fn committed(self) {
        self.queue.wake(self.name);
    }
}

#[derive(Clone)]
pub struct Queue {
    db: DatabaseConnection,
    pub store: Store,
    wakers: Arc<Wakers>,
}

impl Queue {
    /// The queue in `db`'s database, its tables created if needed. On SQLite only the migrations
    /// run: `SqliteStorage::setup` would also switch the connection to `synchronous=OFF`.
    pub async fn open(db: &DatabaseConnection) -> anyhow::Result<Self> {
        let store = match db.get_database_backend() {
            DbBackend::Postgres => {
                let pool = db.get_postgres_connection_pool().clone();
                PostgresStorage::<()>::setup(&pool).await?;
                Store::Postgres(pool)
            }
            _ => {
                let pool = db.get_sqlite_connection_pool().clone();
                SqliteStorage::<()>::migrations().run(&pool).await?;
                Store::Sqlite(pool)
            }
        };
        Ok(Self { db: db.clone(), store, wakers: Arc::default() })
    }

    /// Asks a worker to advance `job_id`, now or after `delay`.
    pub async fn push_stage(&self, job_id: Uuid, delay: Option<Duration>) -> anyhow::Result<()> {
        self.push(STAGE_QUEUE, &StageMessage { job_id }, delay).await
    }

    /// As `push_stage` (now), within `conn`'s transaction: the message commits with the state it
    /// is about. Wake the consumers with [`Pushed::committed`] after the commit.
    pub async fn push_stage_in<C: ConnectionTrait>(&self, conn: &C, job_id: Uuid) -> anyhow::Result<Pushed<'_>> {
        enqueue(conn, STAGE_QUEUE, &StageMessage { job_id }, None).await?;
        Ok(Pushed { queue: self, name: STAGE_QUEUE })
    }

    /// Asks a worker to archive one activity of a job.
    pub async fn push_task(&self, job_id: Uuid, task_id: i64) -> anyhow::Result<()> {
        self.push(TASK_QUEUE, &TaskMessage { job_id, task_id }, None).await
    }

    /// Asks a worker to render one chunk of a large activity.
    pub async fn push_chunk(&self, job_id: Uuid, task_id: i64, chunk_id: i64) -> anyhow::Result<()> {
        self.push(CHUNK_QUEUE, &ChunkMessage { job_id, task_id, chunk_id }, None).await
    }

    async fn push<M: Serialize>(&self, queue: &'static str, msg: &M, delay: Option<Duration>) -> anyhow::Result<()> {
        enqueue(&self.db, queue, msg, delay).await?;
        // A delayed message is found by polling when it falls due; waking now would find nothing.
        if delay.is_none_or(|d| d.is_zero()) {
            self.wake(queue);
        }
        Ok(())
    }

    /// Wakes this process's consumer of `queue` (it looks for messages at once). A permit is kept
    /// when the consumer is busy, so a push made meanwhile is never missed.
    pub fn wake(&self, queue: &str) {
        self.wakers.of(queue).notify_one();
    }

    /// The wake-ups of this process's consumer of `queue`, as apalis's poll strategies take them.
    pub fn wakeups(&self, queue: &str) -> Pin<Box<dyn Stream<Item = ()> + Send + Sync>> {
        let (wakers, queue) = (self.wakers.clone(), queue.to_string());
        Box::pin(futures::stream::unfold((wakers, queue), |(wakers, queue)| async move {
            wakers.of(&queue).notified().await;
            Some(((), (wakers, queue)))
        }))
    }
}

/// Writes one message into apalis's table, as apalis's own push does (JSON arguments, a ULID
/// id, `Pending`, run at once or after `delay`), through `conn` — a transaction or the pool.
async fn enqueue<C: ConnectionTrait, M: Serialize>(conn: &C, queue: &str, msg: &M, delay: Option<Duration>) -> anyhow::Result<()> {
    let args = serde_json::to_vec(msg)?;
    let id = ulid::Ulid::generate().to_string();
    let run_at = (SystemTime::now() + delay.unwrap_or_default()).duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority) \
             VALUES ($1, $2, $3, 'Pending', 0, $4, to_timestamp($5), 0)"
        }
        _ => "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority) VALUES (?, ?, ?, 'Pending', 0, ?, ?, 0)",
    };
    let values: Vec<sea_orm::Value> = vec![args.into(), id.into(), queue.into(), MAX_ATTEMPTS.into(), run_at.into()];
    conn.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
    Ok(())
}
