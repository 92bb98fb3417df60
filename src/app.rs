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
    graphql::{self, AppSchema},
    lms::{demo::DemoLms, LmsSource},
    service::{storage_backends, sync},
};

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: DatabaseConnection,
    pub statements: StatementCounter,
    pub jwt: Arc<JwtKeys>,
    pub lms: Arc<dyn LmsSource>,
    pub schema: AppSchema,
}

pub fn lms_source(settings: &Settings) -> Arc<dyn LmsSource> {
    match settings.lms {
        LmsKind::Demo => Arc::new(DemoLms::new(settings.demo_scale)),
    }
}

impl AppState {
    /// Opens and migrates the database, loads the keys and syncs the LMS.
    pub async fn init(settings: Settings) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating the data directory {}", settings.data_dir.display()))?;
        let jwt = Arc::new(JwtKeys::from_settings(&settings)?);
        let (db, statements) = db::connect(&settings.database_url()).await?;
        db::migrate(&db).await?;
        storage_backends::ensure_default(&db, &settings.data_dir).await?;
        let lms = lms_source(&settings);
        let report = sync::sync_from_lms(&db, lms.as_ref()).await.with_context(|| format!("syncing from the {} LMS", lms.name()))?;
        tracing::info!(lms = lms.name(), ?report, "synced from the LMS");
        let schema = graphql::build(db.clone());
        Ok(Self { settings: Arc::new(settings), db, statements, jwt, lms, schema })
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes open requests.
pub async fn serve(state: AppState, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let app = crate::http::router(state);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await.context("serving HTTP")
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
