//! The binary as operators run it: `serve`, `serve --no-workers` and `worker` processes sharing one
//! database, a GraphQL client for them, and the checks every run must pass however it was
//! disturbed (issue 7): every job final, one package per task and backend, nothing unreferenced in
//! storage, SHA-256 as recorded, no staging left.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use archiving_manager::{
    auth::{JwtKeys, Principal, Role},
    domain::{JobSettings, JobStatus},
    entity::{archive_file, archive_job, archive_task, storage_backend},
};
use sea_orm::EntityTrait;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{Backend, DropDatabase, SECRET};

pub const BIN: &str = env!("CARGO_BIN_EXE_archiving-manager");

/// A process of the binary. Dropping it kills it (SIGKILL), so a failing test leaves none behind.
pub struct Proc(pub Child);

impl Proc {
    /// SIGKILL, and reap: the process is gone when this returns.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// How the process ended, or `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn spawn(args: &[&str], data: &Path, db_url: &str, port: u16) -> Proc {
    spawn_with(args, data, db_url, port, &[])
}

/// As `spawn`, with more (or overriding) settings.
pub fn spawn_with(args: &[&str], data: &Path, db_url: &str, port: u16, env: &[(&str, &str)]) -> Proc {
    let child = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ARCHIVING_DATA_DIR", data)
        .env("ARCHIVING_DATABASE_URL", db_url)
        .env("ARCHIVING_JWT_SECRET", SECRET)
        .env("ARCHIVING_LISTEN", format!("127.0.0.1:{port}"))
        .env("ARCHIVING_DEMO_RECORD_DELAY_MS", "25")
        .env("ARCHIVING_LEASE_SECONDS", "5")
        .env("ARCHIVING_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the binary");
    Proc(child)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn admin_token(data: &Path) -> String {
    let mut s = super::settings_for(data, "sqlite::memory:".into());
    s.jwt_secret = Some(SECRET.to_string().into());
    let keys = JwtKeys::from_settings(&s).unwrap();
    keys.mint(&Principal { subject: "ops".into(), roles: vec![Role::Admin], courses: vec![], categories: vec![] }, Duration::from_secs(3600)).unwrap()
}

/// The database of a multi-process test: a SQLite file in `data`, or a fresh database on the
/// shared PostgreSQL server (dropped with the guard).
pub async fn database_for(backend: Backend, data: &Path) -> (String, Option<DropDatabase>) {
    match backend {
        Backend::Sqlite => (format!("sqlite://{}?mode=rwc", data.join("am.db").display()), None),
        Backend::Postgres => {
            let (url, name) = super::fresh_postgres_database().await;
            (url, Some(DropDatabase(name)))
        }
    }
}

/// What the job queries ask for: enough to see where a job is and what it stored.
const JOB_FIELDS: &str = "status error retries tasks { status recordsDone recordsTotal } files { fileName sha256 sizeBytes deletedAt storageBackend { name } }";

/// A GraphQL client of one API process, as an admin.
pub struct Api {
    pub http: reqwest::Client,
    pub port: u16,
    pub token: String,
}

impl Api {
    pub fn new(port: u16, data: &Path) -> Self {
        // A bound on every request: a server that hangs fails the test instead of stalling it.
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Self { http, port, token: admin_token(data) }
    }

    /// The `data` of a request that must succeed without errors.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        match self.try_gql(query, variables).await {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    /// The `data` of a request, or why there is none (the process is down, the database is down,
    /// the answer has errors): for polling while things fail on purpose.
    pub async fn try_gql(&self, query: &str, variables: Value) -> Result<Value, String> {
        let res = self
            .http
            .post(format!("http://127.0.0.1:{}/graphql", self.port))
            .bearer_auth(&self.token)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let body: Value = res.json().await.map_err(|e| format!("unreadable answer: {e}"))?;
        if body.get("errors").is_some() {
            return Err(format!("{body}"));
        }
        Ok(body["data"].clone())
    }

    /// Waits (60 s at most) until `/readyz` answers 200.
    pub async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok((200, _)) = self.readyz(Duration::from_secs(5)).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("API process did not become ready");
    }

    /// One `GET /readyz`: its status and body, or why none came within `within`.
    pub async fn readyz(&self, within: Duration) -> Result<(u16, String), String> {
        let started = Instant::now();
        let res = self
            .http
            .get(format!("http://127.0.0.1:{}/readyz", self.port))
            .timeout(within)
            .send()
            .await
            .map_err(|e| format!("no answer after {:.1} s: {e}", started.elapsed().as_secs_f64()))?;
        let status = res.status().as_u16();
        let body = res.text().await.map_err(|e| format!("unreadable body: {e}"))?;
        Ok((status, body))
    }

    pub async fn job(&self, id: &str) -> Value {
        self.try_job(id).await.unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn try_job(&self, id: &str) -> Result<Value, String> {
        let q = format!("query($id: ID!) {{ archiveJob(id: $id) {{ {JOB_FIELDS} }} }}");
        Ok(self.try_gql(&q, json!({"id": id})).await?["archiveJob"].clone())
    }

    /// Waits (240 s at most) until the job satisfies `done`; every query must succeed.
    pub async fn wait(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let j = self.job(id).await;
            if done(&j) {
                return j;
            }
            assert!(Instant::now() < deadline, "job never reached {what}: {j:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the job satisfies `done`, at most `bound`; failed queries (a process or the
    /// database down) are retried. The panic shows the last state seen and the last error.
    pub async fn wait_within(&self, id: &str, what: &str, bound: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + bound;
        let (mut last, mut last_error) = (Value::Null, String::from("none"));
        loop {
            match self.try_job(id).await {
                Ok(j) if done(&j) => return j,
                Ok(j) => last = j,
                Err(e) => last_error = e,
            }
            assert!(Instant::now() < deadline, "job did not reach {what} within {bound:?}; last state: {last:#}; last error: {last_error}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The ids of activities of a course, by their LMS ids.
    pub async fn activity_ids(&self, course_lms_id: &str, activity_lms_ids: &[&str]) -> Vec<Value> {
        let d = self.gql("query($c: String!) { course(lmsId: $c) { activities { edges { node { id lmsId } } } } }", json!({"c": course_lms_id})).await;
        let edges = d["course"]["activities"]["edges"].as_array().cloned().unwrap_or_default();
        let ids: Vec<Value> = edges.iter().filter(|e| activity_lms_ids.iter().any(|a| e["node"]["lmsId"] == *a)).map(|e| e["node"]["id"].clone()).collect();
        assert_eq!(ids.len(), activity_lms_ids.len(), "activities {activity_lms_ids:?} of course {course_lms_id}: {d:#}");
        ids
    }

    /// Creates a job with `input` (its `activityIds` and options); returns its id.
    pub async fn create_job(&self, input: Value) -> String {
        let d = self.gql("mutation($i: CreateArchiveJobInput!) { createArchiveJob(input: $i) { job { id } userErrors { message } } }", json!({"i": input})).await;
        d["createArchiveJob"]["job"]["id"].as_str().unwrap_or_else(|| panic!("job not created: {d:#}")).to_string()
    }
}

/// A job in a final state: nothing will happen to it any more.
pub fn is_final(j: &Value) -> bool {
    j["status"].as_str().and_then(|s| s.parse::<JobStatus>().ok()).is_some_and(JobStatus::is_final)
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// What a run must leave behind, however it was disturbed, read from the database itself:
/// - every job is final;
/// - a COMPLETED job has exactly one live (not deleted), confirmed archive file per task and
///   storage backend of its settings, and no other; a job that ended otherwise has no live file;
/// - every file under a local storage directory is a live archive file of that backend (nothing
///   unreferenced: no orphan, no temporary file), and its SHA-256 and size are the recorded ones;
/// - the staging directory holds no files.
pub async fn assert_invariants(db_url: &str, staging: &Path) {
    let db = sea_orm::Database::connect(db_url).await.expect("connect to the test's database");
    let jobs = archive_job::Entity::find().all(&db).await.unwrap();
    let tasks = archive_task::Entity::find().all(&db).await.unwrap();
    let files = archive_file::Entity::find().all(&db).await.unwrap();
    let backends = storage_backend::Entity::find().all(&db).await.unwrap();
    db.close().await.ok();
    let live: Vec<&archive_file::Model> = files.iter().filter(|f| f.deleted_at.is_none()).collect();

    for job in &jobs {
        let status: JobStatus = job.status.parse().unwrap_or_else(|_| panic!("job {} has status {}", job.id, job.status));
        assert!(status.is_final(), "job {} is {status}, not final: {job:#?}", job.id);
        let job_files: Vec<&&archive_file::Model> = live.iter().filter(|f| f.job_id == job.id).collect();
        if status != JobStatus::Completed {
            assert!(job_files.is_empty(), "job {} ended {status} but still has live files: {job_files:#?}", job.id);
            continue;
        }
        let settings: JobSettings = serde_json::from_value(job.settings.clone()).expect("readable job settings");
        let job_tasks: Vec<&archive_task::Model> = tasks.iter().filter(|t| t.job_id == job.id).collect();
        assert!(!job_tasks.is_empty(), "job {} has no tasks", job.id);
        for name in &settings.storage_backends {
            let b = backends.iter().find(|b| &b.name == name).unwrap_or_else(|| panic!("job {} names a missing backend {name}", job.id));
            for t in &job_tasks {
                let n = job_files.iter().filter(|f| f.task_id == Some(t.id) && f.storage_backend_id == b.id).count();
                assert_eq!(n, 1, "job {} task {} has {n} live packages on {name}, not one: {job_files:#?}", job.id, t.id);
            }
        }
        let unconfirmed: Vec<&&&archive_file::Model> = job_files.iter().filter(|f| f.stored_at.is_none()).collect();
        assert!(unconfirmed.is_empty(), "job {} completed with unconfirmed files: {unconfirmed:#?}", job.id);
        let expected = job_tasks.len() * settings.storage_backends.len();
        assert_eq!(job_files.len(), expected, "job {} has live files beyond one per task and backend: {job_files:#?}", job.id);
    }

    for b in &backends {
        assert_eq!(b.driver, "LOCAL_DIRECTORY", "the invariants can check local directories only, not backend {} ({})", b.name, b.driver);
        let root = PathBuf::from(b.settings["path"].as_str().expect("a local backend has a path"));
        let recorded: Vec<&&archive_file::Model> = live.iter().filter(|f| f.storage_backend_id == b.id).collect();
        for path in files_under(&root) {
            let key = path.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            let f = recorded.iter().find(|f| f.storage_key == key).unwrap_or_else(|| panic!("{} is in storage {} but no live archive file records it", path.display(), b.name));
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(bytes.len() as i64, f.size_bytes, "size of {}", path.display());
            assert_eq!(hex::encode(Sha256::digest(&bytes)), f.sha256, "SHA-256 of {} differs from the recorded one", path.display());
        }
        for f in &recorded {
            assert!(root.join(&f.storage_key).is_file(), "live archive file {} is missing from storage {}", f.storage_key, b.name);
        }
    }

    let left = files_under(staging);
    assert!(left.is_empty(), "staging is not cleaned up: {left:?}");
}
