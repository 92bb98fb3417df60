//! The test harness: starts the whole app in-process on SQLite or on a fresh PostgreSQL database,
//! serves it on a loopback port, and talks to it over HTTP like a client.
#![allow(dead_code)]

use std::{net::SocketAddr, time::Duration};

use archiving_manager::{
    app::{self, AppState},
    auth::{Principal, Role},
    config::Settings,
};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// A 40-character secret for the tests' HS256 tokens.
pub const SECRET: &str = "test-secret-0123456789-0123456789-abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Base URL of the PostgreSQL server the tests create their databases on.
pub fn postgres_base() -> String {
    std::env::var("ARCHIVING_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub data_dir: tempfile::TempDir,
    pub backend: Backend,
    pub database_url: String,
    http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    pg_database: Option<String>,
}

/// Creates a fresh PostgreSQL database for one test; panics with instructions when the server is missing.
pub async fn fresh_postgres_database() -> (String, String) {
    let base = postgres_base();
    let admin = Database::connect(format!("{base}/postgres")).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {base} ({e}). Start it (on Debian: `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) \
             or point ARCHIVING_TEST_POSTGRES_URL at a server where the user may create databases."
        )
    });
    let name = format!("am_test_{}", uuid::Uuid::new_v4().simple());
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
    admin.close().await.ok();
    (format!("{base}/{name}"), name)
}

/// Drops a test database when the test ends, however it ends.
pub struct DropDatabase(pub String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        drop_database(self.0.clone());
    }
}

fn drop_database(name: String) {
    // Drops happen outside any async context we could await in: use a thread of its own.
    let base = postgres_base();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            if let Ok(admin) = Database::connect(format!("{base}/postgres")).await {
                let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
            }
        });
    })
    .join();
}

pub fn settings_for(data_dir: &std::path::Path, database_url: String) -> Settings {
    let mut s = Settings::default();
    s.data_dir = data_dir.to_path_buf();
    s.database_url = Some(database_url);
    s.jwt_secret = Some(SECRET.to_string().into());
    s.listen = "127.0.0.1:0".parse().unwrap();
    // Quick retries and short leases keep failure tests short; the logic is the same.
    s.retry_base_seconds = 1;
    s.retry_max_seconds = 4;
    s.lease_seconds = 5;
    s
}

impl TestApp {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts the app with settings adjusted by `tweak`.
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::launch(backend, tweak, true).await
    }

    /// The API without workers: nothing runs in the background (for counting statements).
    pub async fn start_api_only(backend: Backend) -> Self {
        Self::launch(backend, |_| {}, false).await
    }

    async fn launch(backend: Backend, tweak: impl FnOnce(&mut Settings), workers: bool) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let (url, pg_database) = match backend {
            Backend::Sqlite => (format!("sqlite://{}?mode=rwc", data_dir.path().join("test.db").display()), None),
            Backend::Postgres => {
                let (url, name) = fresh_postgres_database().await;
                (url, Some(name))
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut settings = settings_for(data_dir.path(), url.clone());
        settings.public_url = Some(format!("http://{addr}"));
        tweak(&mut settings);
        let state = AppState::init(settings).await.expect("app starts");
        let (tx, rx) = oneshot::channel::<()>();
        let st = state.clone();
        let server = tokio::spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            let served = if workers { app::serve_with_workers(st, listener, stop).await } else { app::serve(st, listener, stop).await };
            served.expect("server runs");
        });
        Self {
            addr,
            state,
            data_dir,
            backend,
            database_url: url,
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            shutdown: Some(tx),
            server: Some(server),
            pg_database,
        }
    }

    /// The server's clock: tests move it instead of waiting.
    pub fn clock(&self) -> &archiving_manager::clock::Clock {
        &self.state.engine.clock
    }

    /// Runs the periodic task `name` now (after moving the clock, the tick that would follow).
    pub async fn run_periodic(&self, name: &str) {
        archiving_manager::periodic::run_now(&self.state.engine, name).await.unwrap_or_else(|e| panic!("periodic task {name}: {e:#}"));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A token signed with the test secret.
    pub fn token(&self, roles: &[Role], courses: &[&str], categories: &[&str]) -> String {
        let p = Principal {
            subject: format!("test-{}", roles.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("+")),
            roles: roles.to_vec(),
            courses: courses.iter().map(|s| s.to_string()).collect(),
            categories: categories.iter().map(|s| s.to_string()).collect(),
        };
        self.state.jwt.mint(&p, Duration::from_secs(3600)).unwrap()
    }

    pub fn admin(&self) -> String {
        self.token(&[Role::Admin], &[], &[])
    }

    /// POSTs a GraphQL request; returns the whole response body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.gql_raw(token.map(|t| format!("Bearer {t}")).as_deref(), query, variables).await
    }

    /// As `gql`, with the Authorization header given verbatim.
    pub async fn gql_raw(&self, authorization: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self.http.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        let res = req.send().await.expect("request sent");
        assert!(res.status().is_success(), "HTTP {}", res.status());
        res.json().await.expect("JSON body")
    }

    /// The global id of the storage backend named `name`.
    pub async fn storage_backend_id(&self, name: &str) -> Value {
        let d = self.data(&self.admin(), "{ storageBackends { edges { node { id name } } } }", json!({})).await;
        let edges = d["storageBackends"]["edges"].as_array().unwrap().clone();
        edges.iter().find(|e| e["node"]["name"] == name).unwrap_or_else(|| panic!("no storage backend {name}: {d}"))["node"]["id"].clone()
    }

    /// The `data` of a response that must have no errors.
    pub async fn data(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.gql(Some(token), query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }
}

/// The `extensions.code` of every error in a response.
pub fn error_codes(body: &Value) -> Vec<String> {
    body["errors"].as_array().map(|es| es.iter().map(|e| e["extensions"]["code"].as_str().unwrap_or("").to_string()).collect()).unwrap_or_default()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.abort();
        }
        if let Some(name) = self.pg_database.take() {
            drop_database(name);
        }
    }
}

/// Runs an `async fn(TestApp)` as two tests, `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::TestApp::start($crate::common::Backend::Sqlite).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::TestApp::start($crate::common::Backend::Postgres).await).await
            }
        }
    )+};
}
pub mod jobs;
/// Runs an `async fn(Backend)` as two tests, `NAME::sqlite` and `NAME::postgres`, for tests that
/// start their own processes or settings instead of a ready `TestApp`.
#[macro_export]
macro_rules! with_each_backend {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )+};
}
pub mod moto;
pub mod py;
pub mod ws;
pub mod bagit;
pub mod pgcluster;
pub mod procs;
pub mod tsa;
