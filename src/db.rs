//! Opening the database: SQLite (embedded default) or PostgreSQL, migrated on start.
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

/// Counts the SQL statements a connection runs; the tests use it to prove that data loaders keep a
/// query's statement count independent of page size.
#[derive(Debug, Clone, Default)]
pub struct StatementCounter(Arc<AtomicU64>);

impl StatementCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub async fn connect(url: &str) -> anyhow::Result<(DatabaseConnection, StatementCounter)> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false).acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        // WAL lets readers run beside the one writer; busy_timeout makes writers queue instead of failing.
        opts.max_connections(8).min_connections(1).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true)
                .create_if_missing(true)
        });
    } else {
        opts.max_connections(16).min_connections(1);
    }
    let mut db = Database::connect(opts).await.with_context(|| format!("connecting to the database ({})", redact_url(url)))?;
    let counter = StatementCounter::default();
    let c = counter.0.clone();
    db.set_metric_callback(move |_| {
        c.fetch_add(1, Ordering::Relaxed);
    });
    Ok((db, counter))
}

pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await.context("applying database migrations")
}

/// True when the database answers and every migration is applied.
pub async fn is_ready(db: &DatabaseConnection) -> bool {
    db.ping().await.is_ok() && matches!(Migrator::get_pending_migrations(db).await, Ok(p) if p.is_empty())
}

/// The URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
