//! A worker killed (SIGKILL) at each boundary of a job's work loses nothing: with
//! `ARCHIVING_FAULT_POINT` the process kills itself at an exact instant — right after a job's or a
//! task's transition committed (incl. `task:FINALIZING`, where tasks used to be stranded), after a
//! file's intent was recorded, between storing a package and confirming its record — and a fresh
//! process finishes the job with one package per task, nothing unreferenced in storage, SHA-256
//! as recorded and no staging left. A job canceled while its worker lay dead between put and
//! record leaves nothing in storage either.
//!
//! On PostgreSQL the API (`serve --no-workers`) stays up while `worker` processes die; on SQLite
//! (one process per database) the one `serve` process dies and a new one takes over.
mod common;

use std::time::{Duration, Instant};

use common::{
    procs::{assert_invariants, database_for, free_port, spawn_with, Api, Proc},
    Backend,
};
use serde_json::json;

/// Every point where a crash used to, or could, leave a job behind.
const POINTS: [&str; 13] = [
    "job:PRE_PROCESSING",
    "job:ACTIVITY_ARCHIVING",
    "task:QUEUED",
    "task:RUNNING",
    "task:FINALIZING",
    "task:FINISHED",
    "job:POST_PROCESSING",
    "job:STORE",
    "store:intent",
    "store:put",
    "job:SIGN",
    "job:CLEANUP",
    "job:COMPLETED",
];

/// Short leases: a dead worker's claims expire quickly (the logic is the same at any length).
const ENV: [(&str, &str); 2] = [("ARCHIVING_LEASE_SECONDS", "3"), ("ARCHIVING_DEMO_RECORD_DELAY_MS", "0")];

/// The processes of one deployment: an API that stays up (PostgreSQL) or none apart from the
/// one `serve` (SQLite).
struct Deployment {
    backend: Backend,
    data: std::path::PathBuf,
    db_url: String,
    port: u16,
    _api: Option<Proc>,
}

impl Deployment {
    async fn start(backend: Backend, data: &std::path::Path, db_url: &str) -> Self {
        let port = free_port();
        let api = match backend {
            Backend::Postgres => Some(spawn_with(&["serve", "--no-workers"], data, db_url, port, &ENV)),
            Backend::Sqlite => None,
        };
        Self { backend, data: data.to_path_buf(), db_url: db_url.to_string(), port, _api: api }
    }

    /// A process that runs the jobs, dying at `point` if given.
    fn workers(&self, point: Option<&str>) -> Proc {
        let mut env = ENV.to_vec();
        if let Some(p) = point {
            env.push(("ARCHIVING_FAULT_POINT", p));
        }
        match self.backend {
            Backend::Postgres => spawn_with(&["worker"], &self.data, &self.db_url, free_port(), &env),
            Backend::Sqlite => spawn_with(&["serve"], &self.data, &self.db_url, self.port, &env),
        }
    }

    /// On SQLite, the API without workers (one process: the lock forbids a second).
    fn api_only(&self) -> Option<Proc> {
        (self.backend == Backend::Sqlite).then(|| spawn_with(&["serve", "--no-workers"], &self.data, &self.db_url, self.port, &ENV))
    }

    fn api(&self) -> Api {
        Api::new(self.port, &self.data)
    }
}

/// Waits until `p` has died by its own SIGKILL.
async fn killed_itself(p: &mut Proc, point: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = p.exited() {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "the process ended at {point} by SIGKILL, not {status}");
            return;
        }
        assert!(Instant::now() < deadline, "the process never reached {point}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a job while no worker runs (on SQLite through an API-only process, which then stops),
/// so that the process that dies at a point never dies while answering the test.
async fn create_job(d: &Deployment, api: &Api, activities: &[&str]) -> String {
    let api_only = d.api_only();
    api.ready().await;
    let acts = api.activity_ids("101", activities).await;
    let id = api.create_job(json!({"activityIds": acts})).await;
    drop(api_only);
    id
}

async fn every_crash_point_is_recovered(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (db_url, _guard) = database_for(backend, dir.path()).await;
    let d = Deployment::start(backend, dir.path(), &db_url).await;
    let api = d.api();
    for point in POINTS {
        let id = create_job(&d, &api, &["1001", "1002"]).await;
        let mut dying = d.workers(Some(point));
        killed_itself(&mut dying, point).await;
        drop(dying);

        let fresh = d.workers(None);
        api.ready().await;
        let j = api.wait(&id, &format!("COMPLETED after a crash at {point}"), |j| j["status"] == "COMPLETED" || j["status"] == "FAILURE").await;
        assert_eq!(j["status"], "COMPLETED", "after a crash at {point}: {j:#}");
        drop(fresh);
    }
    assert_invariants(&db_url, &dir.path().join("staging")).await;
}

/// The window the intents close: a package stored, its record not confirmed, the worker dead,
/// and then the job is canceled. The object must not stay in storage.
async fn a_job_canceled_after_a_crash_between_put_and_record_leaves_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (db_url, _guard) = database_for(backend, dir.path()).await;
    let d = Deployment::start(backend, dir.path(), &db_url).await;
    let api = d.api();
    let id = create_job(&d, &api, &["1001"]).await;
    let mut dying = d.workers(Some("store:put"));
    killed_itself(&mut dying, "store:put").await;
    drop(dying);
    let stored = common::procs::files_under(&dir.path().join("archives"));
    assert_eq!(stored.len(), 1, "the package was put before the crash: {stored:?}");

    // Nobody works on the job while it is canceled.
    let api_only = d.api_only();
    api.ready().await;
    let c = api.gql("mutation($id: ID!) { cancelArchiveJob(input: {id: $id}) { job { cancelRequested } userErrors { message } } }", json!({"id": id})).await;
    assert_eq!(c["cancelArchiveJob"]["job"]["cancelRequested"], true, "{c:#}");
    drop(api_only);

    let _fresh = d.workers(None);
    api.ready().await;
    let j = api.wait(&id, "CANCELED", |j| j["status"] == "CANCELED").await;
    assert!(j["files"].as_array().unwrap().iter().all(|f| !f["deletedAt"].is_null()), "{j:#}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !common::procs::files_under(&dir.path().join("archives")).is_empty() {
        assert!(Instant::now() < deadline, "the package of the canceled job stayed in storage");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_invariants(&db_url, &dir.path().join("staging")).await;
}


with_each_backend!(every_crash_point_is_recovered, a_job_canceled_after_a_crash_between_put_and_record_leaves_nothing);
