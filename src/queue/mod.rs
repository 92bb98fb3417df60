//! The work queue on apalis, in the application's own database: SQLite by default, PostgreSQL when
//! the database is PostgreSQL, sharing SeaORM's pool. Three queues with explicit names: one
//! advances a job by a stage, one archives one activity (so a job's activities spread over
//! workers), one renders one chunk of a large activity (so one activity spreads over workers).
//!
//! Queue messages only say what to look at; the state lives in our tables. A lost or duplicated
//! message is therefore harmless: handlers are idempotent and the sweeper re-sends what is due.
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use sea_orm::{DatabaseConnection, DbBackend};
use serde::{Deserialize, Serialize};
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
const MAX_ATTEMPTS: usize = 5;
/// How often an idle worker looks for new messages (PostgreSQL also wakes it by NOTIFY).
pub const POLL: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub enum Queue {
    Sqlite(sea_orm::sqlx::SqlitePool),
    Postgres(sea_orm::sqlx::PgPool),
}

pub fn sqlite_config(queue: &str) -> apalis_sqlite::Config {
    apalis_sqlite::Config::default().queue(queue).heartbeat_interval(HEARTBEAT).missed_heartbeats(MISSED_HEARTBEATS)
}

pub fn postgres_config(queue: &str) -> apalis_postgres::Config {
    apalis_postgres::Config::default().queue(queue).heartbeat_interval(HEARTBEAT).missed_heartbeats(MISSED_HEARTBEATS)
}

impl Queue {
    /// The queue in `db`'s database, its tables created if needed. On SQLite only the migrations
    /// run: `SqliteStorage::setup` would also switch the connection to `synchronous=OFF`.
    pub async fn open(db: &DatabaseConnection) -> anyhow::Result<Self> {
        Ok(match db.get_database_backend() {
            DbBackend::Postgres => {
                let pool = db.get_postgres_connection_pool().clone();
                PostgresStorage::<()>::setup(&pool).await?;
                Queue::Postgres(pool)
            }
            _ => {
                let pool = db.get_sqlite_connection_pool().clone();
                SqliteStorage::<()>::migrations().run(&pool).await?;
                Queue::Sqlite(pool)
            }
        })
    }

    /// Asks a worker to advance `job_id`, now or after `delay`.
    pub async fn push_stage(&self, job_id: Uuid, delay: Option<Duration>) -> anyhow::Result<()> {
        let mut b = TaskBuilder::new(StageMessage { job_id }).max_attempts(MAX_ATTEMPTS);
        if let Some(d) = delay {
            b = b.run_after(d);
        }
        match self {
            Queue::Sqlite(p) => SqliteStorage::new(p).with_config(sqlite_config(STAGE_QUEUE)).push_task(b.build()).await?,
            Queue::Postgres(p) => PostgresStorage::new(p).with_config(postgres_config(STAGE_QUEUE)).push_task(b.build()).await?,
        }
        Ok(())
    }

    /// Asks a worker to archive one activity of a job.
    pub async fn push_task(&self, job_id: Uuid, task_id: i64) -> anyhow::Result<()> {
        let b = TaskBuilder::new(TaskMessage { job_id, task_id }).max_attempts(MAX_ATTEMPTS);
        match self {
            Queue::Sqlite(p) => SqliteStorage::new(p).with_config(sqlite_config(TASK_QUEUE)).push_task(b.build()).await?,
            Queue::Postgres(p) => PostgresStorage::new(p).with_config(postgres_config(TASK_QUEUE)).push_task(b.build()).await?,
        }
        Ok(())
    }

    /// Asks a worker to render one chunk of a large activity.
    pub async fn push_chunk(&self, job_id: Uuid, task_id: i64, chunk_id: i64) -> anyhow::Result<()> {
        let b = TaskBuilder::new(ChunkMessage { job_id, task_id, chunk_id }).max_attempts(MAX_ATTEMPTS);
        match self {
            Queue::Sqlite(p) => SqliteStorage::new(p).with_config(sqlite_config(CHUNK_QUEUE)).push_task(b.build()).await?,
            Queue::Postgres(p) => PostgresStorage::new(p).with_config(postgres_config(CHUNK_QUEUE)).push_task(b.build()).await?,
        }
        Ok(())
    }
}
