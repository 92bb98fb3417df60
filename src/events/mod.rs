//! Readers of the durable event log (`job_event`, written by `jobs` in the same transaction as
//! each change). One tailer per process reads new rows once, with the jobs they name in the same
//! query, and broadcasts them to every local subscriber, so the database load of live progress
//! does not grow with the number of subscribers. Across processes only the event id travels: on
//! PostgreSQL the writer NOTIFYs it inside its transaction (delivered on commit), on SQLite (one
//! process) the writer wakes the tailer after its commit. A poll every second covers a lost
//! NOTIFY (e.g. while the database connection was down).
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde::{Deserialize, Serialize};
use strum::{AsRefStr, Display, EnumString};
use tokio::sync::{broadcast, Notify};

use crate::entity::{archive_job, job_event};

/// The NOTIFY channel; its payload is the event id.
pub const CHANNEL: &str = "archiving_job_events";
/// Events buffered per receiver before a slow one lags (it then reloads the current state).
const CAPACITY: usize = 1024;
/// The longest the tailer waits when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);
/// How long a hole in the ids (a transaction that took an id and has not committed yet) holds
/// back later events before it is taken for a rollback. An event committed later than that is
/// still in the log (resuming subscribers get it), only not pushed live.
const GAP_PATIENCE: Duration = Duration::from_secs(3);
/// Rows read per look.
const BATCH: u64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Display, EnumString, AsRefStr)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum JobEventKind {
    Created,
    StatusChanged,
    Progress,
    TaskChanged,
    /// A field of the job changed without a status change (e.g. a cancel was requested).
    Updated,
    Deleted,
    /// One of the job's stored files was deleted (retention, by hand, with the job, discarded).
    FileDeleted,
    /// A fixity check found one of the job's stored files changed, missing or unreadable.
    FixityFailed,
    /// The job's packages could not be timestamped after its retries (the job log says why;
    /// the failure policy decided whether the job failed or completed unsigned).
    TimestampFailed,
}

/// A change of a job as subscribers see it: the job with the status, progress and sequence of
/// the moment of the change; its other fields as they were when the event was read.
#[derive(Debug, Clone)]
pub struct JobEvent {
    /// The event's id in the log; increases with commit order within a process's view.
    pub id: i64,
    pub kind: JobEventKind,
    pub job: archive_job::Model,
    pub task_id: Option<i64>,
}

impl JobEvent {
    /// Builds the event of a log row, given the job's current record (`None` when it is gone).
    pub fn from_row(row: job_event::Model, current: Option<&archive_job::Model>) -> Option<Self> {
        let mut job = match (current, &row.snapshot) {
            (Some(j), _) => j.clone(),
            (None, Some(s)) => serde_json::from_value(s.clone()).ok()?,
            (None, None) => return None, // the job was removed and the event says nothing more
        };
        job.status = row.status;
        job.progress = row.progress;
        job.sequence = row.sequence;
        let kind = row.kind.parse().ok()?;
        Some(Self { id: row.id, kind, job, task_id: row.task_id })
    }
}

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<JobEvent>>,
    wake: Arc<Notify>,
    postgres: bool,
}

impl EventBus {
    /// A bus for `db`: starts the tailer (and on PostgreSQL the LISTEN task that wakes it).
    pub async fn start(db: &DatabaseConnection) -> anyhow::Result<Self> {
        let (tx, _) = broadcast::channel(CAPACITY);
        let postgres = db.get_database_backend() == DbBackend::Postgres;
        let wake = Arc::new(Notify::new());
        if postgres {
            let pool = db.get_postgres_connection_pool().clone();
            let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            let wake = wake.clone();
            tokio::spawn(async move {
                loop {
                    // recv reconnects by itself after a lost connection; the tailer's poll
                    // covers what was sent meanwhile.
                    match listener.recv().await {
                        Ok(_) => wake.notify_one(),
                        Err(e) => {
                            tracing::warn!(error = %e, "job event listener failed; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            });
        }
        let last = job_event::Entity::find().select_only().column_as(job_event::Column::Id.max(), "m").into_tuple::<Option<i64>>().one(db).await?.flatten().unwrap_or(0);
        tokio::spawn(Tailer { db: db.clone(), tx: tx.clone(), wake: wake.clone(), last, gap_since: None }.run());
        Ok(Self { tx, wake, postgres })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<JobEvent>> {
        self.tx.subscribe()
    }

    /// Announces event `id` as part of the transaction `conn`: on PostgreSQL a NOTIFY that every
    /// process receives once the transaction commits. On SQLite the writer calls
    /// [`EventBus::committed`] after its commit instead.
    pub async fn announce<C: ConnectionTrait>(&self, conn: &C, id: i64) -> anyhow::Result<()> {
        if self.postgres {
            conn.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, "SELECT pg_notify($1, $2)", [CHANNEL.into(), id.to_string().into()])).await?;
        }
        Ok(())
    }

    /// Wakes this process's tailer: events were committed.
    pub fn committed(&self) {
        self.wake.notify_one();
    }
}

struct Tailer {
    db: DatabaseConnection,
    tx: broadcast::Sender<Arc<JobEvent>>,
    wake: Arc<Notify>,
    /// The last id delivered (or skipped).
    last: i64,
    /// Since when the next id has been missing while later ones exist.
    gap_since: Option<Instant>,
}

impl Tailer {
    async fn run(mut self) {
        let mut quiet = crate::health::QuietRepeats::default();
        loop {
            let _ = tokio::time::timeout(POLL, self.wake.notified()).await;
            loop {
                match self.step().await {
                    Ok(more) => {
                        quiet.clear();
                        if !more {
                            break;
                        }
                    }
                    Err(e) => {
                        let e = format!("{e:#}");
                        if quiet.worth_logging(&e) {
                            tracing::warn!(error = %e, "reading the job event log failed; retrying");
                        }
                        break;
                    }
                }
            }
        }
    }

    /// Reads and delivers what is new; true when there may be more right away.
    async fn step(&mut self) -> anyhow::Result<bool> {
        // The jobs come with their events (one statement per look, not two): this runs after
        // nearly every commit.
        let rows = job_event::Entity::find()
            .find_also_related(archive_job::Entity)
            .filter(job_event::Column::Id.gt(self.last))
            .order_by_asc(job_event::Column::Id)
            .limit(BATCH)
            .all(&self.db)
            .await?;
        if rows.is_empty() {
            self.gap_since = None;
            return Ok(false);
        }
        // Deliver in id order up to the first hole; a hole that stays is a rolled-back writer.
        let mut usable = 0;
        let mut expected = self.last + 1;
        for (r, _) in &rows {
            if r.id != expected {
                break;
            }
            usable += 1;
            expected += 1;
        }
        if usable == 0 {
            let since = *self.gap_since.get_or_insert_with(Instant::now);
            if since.elapsed() < GAP_PATIENCE {
                return Ok(false);
            }
            usable = 1; // give up on the hole: take the next row as it is
        }
        self.gap_since = None;
        let full = rows.len() as u64 == BATCH;
        for (r, current) in rows.into_iter().take(usable) {
            self.last = r.id;
            if let Some(e) = JobEvent::from_row(r, current.as_ref()) {
                let _ = self.tx.send(Arc::new(e));
            }
        }
        Ok(full)
    }
}
