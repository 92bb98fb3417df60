//! The application assembled from its settings: database, keys, LMS source, schema. The CLI and
//! the test harness start it the same way.
use std::{future::Future, sync::Arc};

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::{
    auth::JwtKeys,
    config::{LmsKind, Settings},
    db::{self, StatementCounter},
    engine::{self, Engine},
    events::EventBus,
    graphql::{self, AppSchema, SpecExecutor},
    health::Liveness,
    jobs::JobStore,
    lms::{demo::DemoLms, LmsSource},
    queue::Queue,
    service::{storage_backends, subscriptions::Subscriptions, sync},
};

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: DatabaseConnection,
    pub statements: StatementCounter,
    pub jwt: Arc<JwtKeys>,
    pub lms: Arc<dyn LmsSource>,
    pub schema: SpecExecutor<AppSchema>,
    pub engine: Engine,
    /// Limits and shared work of live subscriptions (database budget, WebSockets per caller).
    pub subscriptions: Arc<Subscriptions>,
    /// The parts of this process (queue consumers, periodic runner) and how they are.
    pub liveness: Liveness,
    /// Held for the process's life on SQLite: one `serve`/`worker` per database.
    _single: Option<Arc<db::SingleProcessLock>>,
}

pub fn lms_source(settings: &Settings) -> Arc<dyn LmsSource> {
    match settings.lms {
        LmsKind::Demo => Arc::new(demo_lms(settings)),
    }
}

/// The demo LMS as configured; its later changes live in the data directory.
pub fn demo_lms(settings: &Settings) -> DemoLms {
    DemoLms::new(settings.demo_scale)
        .with_extra_courses(settings.demo_extra_courses)
        .with_record_delay(std::time::Duration::from_millis(settings.demo_record_delay_ms as u64))
        .with_changes_file(settings.data_dir.join("demo-changes.json"))
}

impl AppState {
    /// Opens and migrates the database, loads the keys and syncs the LMS.
    pub async fn init(settings: Settings) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating the data directory {}", settings.data_dir.display()))?;
        let single = match db::sqlite_file(&settings.database_url()) {
            Some(file) => Some(Arc::new(db::SingleProcessLock::acquire(&file, &settings.data_dir)?)),
            None => None,
        };
        let jwt = Arc::new(JwtKeys::from_settings(&settings)?);
        let (db, statements) = db::connect_patiently(&settings.database_url()).await?;
        db::migrate(&db).await?;
        storage_backends::ensure_default(&db, &settings.data_dir).await?;
        let lms = lms_source(&settings);
        let report = sync_with_retries(&db, lms.as_ref()).await.with_context(|| format!("syncing from the {} LMS", lms.name()))?;
        tracing::info!(lms = lms.name(), ?report, "synced from the LMS");
        let settings = Arc::new(settings);
        let bus = EventBus::start(&db).await.context("starting the event bus")?;
        let queue = Queue::open(&db).await.context("opening the job queue")?;
        let mut engine = Engine::new(JobStore::new(db.clone(), bus, settings.clone()), queue, settings.clone(), lms.clone());
        engine.tsa = crate::tsp::Tsa::from_settings(&settings).context("setting up the Time-Stamp Authority")?;
        let subscriptions = Arc::new(Subscriptions::new(db.clone(), engine.jobs.events.clone(), &settings));
        let schema = graphql::build(engine.clone(), subscriptions.clone());
        Ok(Self { settings, db, statements, jwt, lms, schema, engine, subscriptions, liveness: Liveness::default(), _single: single })
    }
}

/// Syncs the LMS, retrying when SQLite reports its lock taken: processes that start together (API
/// and workers) sync at once, and SQLite refuses a reading transaction's upgrade to a write with
/// "database is locked" instead of waiting. The sync is idempotent, so running it again is safe.
async fn sync_with_retries(db: &DatabaseConnection, lms: &dyn LmsSource) -> anyhow::Result<sync::SyncReport> {
    let mut attempt = 0;
    loop {
        match sync::sync_from_lms(db, lms).await {
            Err(e) if attempt < 10 && format!("{e:#}").contains("database is locked") => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
            }
            other => return other,
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes open requests.
pub async fn serve(state: AppState, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let app = crate::http::router(state);
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).with_graceful_shutdown(shutdown).await.context("serving HTTP")
}

/// Serves the API and runs the workers until `shutdown` resolves; both stop gracefully.
pub async fn serve_with_workers(state: AppState, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let workers = tokio::spawn(engine::worker::run(state.engine.clone(), state.liveness.clone(), stopped(rx.clone())));
    let api = serve(state, listener, stopped(rx)).await;
    let workers = workers.await.context("worker pool panicked")?;
    api.and(workers)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
