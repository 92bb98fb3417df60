//! Job events: every transition and progress change of a job, for subscriptions (and later
//! webhooks and e-mail). In one process a broadcast channel carries them; on PostgreSQL they are
//! sent with NOTIFY inside the transaction that made the change, so every `serve` and `worker`
//! process (the sender included) receives them through LISTEN, and only once the change is committed.
use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::entity::archive_job;

/// The NOTIFY channel.
pub const CHANNEL: &str = "archiving_job_events";
/// Events buffered per receiver before a slow one lags (it then reloads the current state).
const CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobEventKind {
    Created,
    StatusChanged,
    Progress,
    TaskChanged,
    /// A field of the job changed without a status change (e.g. a cancel was requested).
    Updated,
    Deleted,
}

/// A change of a job, with the job as it was right after the change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobEvent {
    pub kind: JobEventKind,
    pub job: archive_job::Model,
    pub task_id: Option<i64>,
}

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<JobEvent>>,
    postgres: bool,
}

impl EventBus {
    /// A bus for `db`; on PostgreSQL it starts the LISTEN task that feeds the local channel.
    pub async fn start(db: &DatabaseConnection) -> anyhow::Result<Self> {
        let (tx, _) = broadcast::channel(CAPACITY);
        let postgres = db.get_database_backend() == DbBackend::Postgres;
        if postgres {
            let pool = db.get_postgres_connection_pool().clone();
            let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            let tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    // recv reconnects by itself after a lost connection.
                    match listener.recv().await {
                        Ok(n) => match serde_json::from_str::<JobEvent>(n.payload()) {
                            Ok(e) => {
                                let _ = tx.send(Arc::new(e));
                            }
                            Err(e) => tracing::warn!(error = %e, "undecodable job event"),
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "job event listener failed; retrying");
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        }
                    }
                }
            });
        }
        Ok(Self { tx, postgres })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<JobEvent>> {
        self.tx.subscribe()
    }

    /// Sends `event` as part of the transaction `conn` (PostgreSQL), or returns it so that the
    /// caller delivers it with `deliver` after the commit (SQLite).
    pub async fn emit<C: ConnectionTrait>(&self, conn: &C, event: JobEvent) -> anyhow::Result<Option<JobEvent>> {
        if self.postgres {
            let payload = serde_json::to_string(&event)?;
            conn.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, "SELECT pg_notify($1, $2)", [CHANNEL.into(), payload.into()]))
                .await?;
            Ok(None)
        } else {
            Ok(Some(event))
        }
    }

    /// Delivers events `emit` handed back, once their transaction committed.
    pub fn deliver(&self, events: impl IntoIterator<Item = JobEvent>) {
        for e in events {
            let _ = self.tx.send(Arc::new(e));
        }
    }
}
