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
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait};

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
        // One connection: SQLite has one writer anyway, and with several connections writers
        // queued in SQLite's busy handler, which sleeps 1–100 ms between tries while the lock is
        // long free (queue bench, N = 500: 27.4 → 36.4 small jobs/s end to end, creation ceiling
        // 267 → 410/s). Statements now queue in the pool, in order and without sleeping. No code
        // path needs a second connection while it holds one (transactions run on their own
        // connection only; apalis's SQLite storage uses this pool the same way). A transaction
        // that waits on something else (the LMS sync) makes everything wait: the acquire timeout
        // is the busy timeout writers had before. WAL still keeps readers of other processes
        // (backups, `sqlite3`) beside the writer; busy_timeout is for those.
        // No ping before each use of the connection (sqlx's default): a file cannot go away
        // like a server, and on the one connection every ping was a round trip to its thread
        // that all other statements waited behind, about one per statement.
        opts.max_connections(1).min_connections(1).acquire_timeout(Duration::from_secs(30)).test_before_acquire(false).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true)
                .create_if_missing(true)
        });
    } else {
        // A ping before each use cost a round trip to the server per statement outside a
        // transaction; only a connection idle for a while (which a restart, a proxy or a
        // firewall may have cut) is pinged now. A cut one in use fails its statement, which
        // is retried like any database error.
        opts.max_connections(16).min_connections(1).test_before_acquire_if_idle_for(Duration::from_secs(5));
    }
    let mut db = Database::connect(opts).await.with_context(|| format!("connecting to the database ({})", redact_url(url)))?;
    let counter = StatementCounter::default();
    let c = counter.0.clone();
    db.set_metric_callback(move |_| {
        c.fetch_add(1, Ordering::Relaxed);
    });
    Ok((db, counter))
}

/// Begins a transaction that reads before it writes. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`): a deferred one would fail with "database is locked", without waiting,
/// when another process (`demo add-attempt` beside `serve`) commits between its first read and
/// its first write. On PostgreSQL it is an ordinary transaction.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() }).await
}

/// As [`connect`], waiting for a database that is not reachable yet (it is starting, or down for
/// a moment) instead of giving up: connection failures are retried with backoff up to 30 s
/// apart, logged each time. What waiting cannot fix (a bad URL, wrong credentials) fails at once.
pub async fn connect_patiently(url: &str) -> anyhow::Result<(DatabaseConnection, StatementCounter)> {
    let mut wait = Duration::from_secs(1);
    loop {
        match connect(url).await {
            Ok(c) => return Ok(c),
            Err(e) if is_unreachable(&e) => {
                tracing::warn!(error = %format!("{e:#}"), "the database is unreachable; trying again in {} s", wait.as_secs());
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether an error means "the database cannot be reached now" (worth waiting for).
fn is_unreachable(e: &anyhow::Error) -> bool {
    use sea_orm::{sqlx, DbErr, RuntimeErr};
    e.chain().any(|c| match c.downcast_ref::<DbErr>() {
        Some(DbErr::Conn(RuntimeErr::SqlxError(se))) => matches!(**se, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_)),
        _ => c.downcast_ref::<std::io::Error>().is_some(),
    })
}

/// Applies pending migrations. On PostgreSQL, processes starting together take turns (a session
/// advisory lock): two migrators at once collide on the catalog (`duplicate key … pg_type`).
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Migrator::up(db, None).await.context("applying database migrations");
    }
    const KEY: i64 = 7_340_432;
    let mut lock = db.get_postgres_connection_pool().acquire().await.context("connecting to the database")?;
    sea_orm::sqlx::query("SELECT pg_advisory_lock($1)").bind(KEY).execute(&mut *lock).await.context("waiting for other processes' migrations")?;
    let result = Migrator::up(db, None).await.context("applying database migrations");
    let _ = sea_orm::sqlx::query("SELECT pg_advisory_unlock($1)").bind(KEY).execute(&mut *lock).await;
    result
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

/// The file of a SQLite database URL (`sqlite://path?…`, `sqlite:path`); `None` for PostgreSQL
/// and in-memory databases.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && !path.starts_with(":memory:") && !rest.contains("mode=memory")).then(|| std::path::PathBuf::from(path))
}

/// Held by the one `serve` or `worker` process of a SQLite database: events and leases do not
/// cross processes there, so a second process would run jobs nobody sees. An advisory lock on a
/// file beside the database; the kernel releases it when the process ends, however it ends.
#[derive(Debug)]
pub struct SingleProcessLock {
    _file: std::fs::File,
}

impl SingleProcessLock {
    /// Takes the lock of the SQLite database `db_file`, or says which process holds it.
    pub fn acquire(db_file: &std::path::Path, data_dir: &std::path::Path) -> anyhow::Result<Self> {
        use std::io::{Read, Seek, Write};
        let path = {
            let mut p = db_file.as_os_str().to_owned();
            p.push(".lock");
            std::path::PathBuf::from(p)
        };
        let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).with_context(|| format!("opening the lock file {}", path.display()))?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            anyhow::bail!(
                "another archiving-manager process (pid {}) already uses the SQLite database {} in the data directory {}. \
                 With SQLite only one `serve` or `worker` process may run per data directory; stop the other one, \
                 or use PostgreSQL to run several processes",
                holder.trim(),
                db_file.display(),
                data_dir.display()
            );
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        file.sync_all()?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_files_are_found_in_urls() {
        assert_eq!(sqlite_file("sqlite:///tmp/a.db?mode=rwc"), Some("/tmp/a.db".into()));
        assert_eq!(sqlite_file("sqlite://data/a.db"), Some("data/a.db".into()));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://x@y/z"), None);
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let first = SingleProcessLock::acquire(&db, dir.path()).unwrap();
        // flock locks belong to the open file description: a second open in this process
        // conflicts like another process would.
        let err = SingleProcessLock::acquire(&db, dir.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())) && err.contains("PostgreSQL"), "{err}");
        drop(first);
        SingleProcessLock::acquire(&db, dir.path()).unwrap();
    }
}
