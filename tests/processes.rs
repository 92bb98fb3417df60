//! Separate processes, as operators run them: an API process (`serve --no-workers`) and worker
//! processes (`worker`) sharing one database. A worker is killed with SIGKILL in the middle of a
//! job; another takes over and the job ends with exactly one complete set of archive files. On
//! PostgreSQL, a subscriber on the API process sees every state of the job the workers run.
mod common;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use archiving_manager::auth::{JwtKeys, Principal, Role};
use common::{ws::Subscription, Backend, SECRET};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_archiving-manager");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], data: &Path, db_url: &str, port: u16) -> Proc {
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
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the binary");
    Proc(child)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn admin_token(data: &Path) -> String {
    let mut s = common::settings_for(data, "sqlite::memory:".into());
    s.jwt_secret = Some(SECRET.to_string().into());
    let keys = JwtKeys::from_settings(&s).unwrap();
    keys.mint(&Principal { subject: "ops".into(), roles: vec![Role::Admin], courses: vec![], categories: vec![] }, Duration::from_secs(3600)).unwrap()
}

struct Api {
    http: reqwest::Client,
    port: u16,
    token: String,
}

impl Api {
    async fn gql(&self, query: &str, variables: Value) -> Value {
        let body: Value = self
            .http
            .post(format!("http://127.0.0.1:{}/graphql", self.port))
            .bearer_auth(&self.token)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].clone()
    }

    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(format!("http://127.0.0.1:{}/readyz", self.port)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("API process did not become ready");
    }

    async fn job(&self, id: &str) -> Value {
        self.gql(
            "query($id: ID!) { archiveJob(id: $id) { status error tasks { status recordsDone recordsTotal } files { fileName sha256 sizeBytes deletedAt storageBackend { name } } } }",
            json!({"id": id}),
        )
        .await["archiveJob"]
            .clone()
    }

    async fn wait(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
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
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
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

const HAPPY_PATH: [&str; 8] = ["QUEUED", "PRE_PROCESSING", "ACTIVITY_ARCHIVING", "POST_PROCESSING", "STORE", "SIGN", "CLEANUP", "COMPLETED"];

async fn a_killed_worker_loses_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (db_url, _pg) = match backend {
        Backend::Sqlite => (format!("sqlite://{}?mode=rwc", data.join("am.db").display()), None),
        Backend::Postgres => {
            let (url, name) = common::fresh_postgres_database().await;
            (url, Some(common::DropDatabase(name)))
        }
    };
    let port = free_port();
    let api_proc = spawn(&["serve", "--no-workers"], data, &db_url, port);
    let api = Api { http: reqwest::Client::new(), port, token: admin_token(data) };
    api.ready().await;

    // On PostgreSQL, events cross processes: subscribe on the API process before anything runs.
    let course = api.gql("{ course(lmsId: \"109\") { id activities { edges { node { id lmsId } } } } }", json!({})).await;
    let mut sub = match backend {
        Backend::Postgres => Some(
            Subscription::start(
                std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                &api.token,
                "subscription($c: ID) { archiveJobsChanged(courseId: $c) { sequence job { id status } } }",
                json!({"c": course["course"]["id"]}),
            )
            .await,
        ),
        Backend::Sqlite => None,
    };
    let mut worker = spawn(&["worker"], data, &db_url, free_port());
    let acts: Vec<Value> = course["course"]["activities"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"]["lmsId"] == "1028" || e["node"]["lmsId"] == "1030")
        .map(|e| e["node"]["id"].clone())
        .collect();
    let d = api.gql("mutation($i: CreateArchiveJobInput!) { createArchiveJob(input: $i) { job { id } userErrors { message } } }", json!({"i": {"activityIds": acts}})).await;
    let id = d["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();

    // Kill the worker in the middle of archiving, with records written.
    api.wait(&id, "records being archived", |j| j["status"] == "ACTIVITY_ARCHIVING" && j["tasks"].as_array().unwrap().iter().any(|t| t["recordsDone"].as_i64() > Some(5))).await;
    worker.0.kill().unwrap(); // SIGKILL
    worker.0.wait().unwrap();
    let frozen = api.job(&id).await;
    assert_eq!(frozen["status"], "ACTIVITY_ARCHIVING", "{frozen:#}");
    drop(worker);

    // Another worker takes over once the dead one's leases and heartbeats expire.
    let _worker2 = spawn(&["worker"], data, &db_url, free_port());
    let j = api.wait(&id, "COMPLETED", |j| j["status"] == "COMPLETED" || j["status"] == "FAILURE").await;
    assert_eq!(j["status"], "COMPLETED", "{j:#}");
    assert!(j["tasks"].as_array().unwrap().iter().all(|t| t["status"] == "FINISHED" && t["recordsDone"] == t["recordsTotal"]), "{j:#}");

    // Exactly one complete set of archive files: one per activity, no partial or temporary object.
    let files = j["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{j:#}");
    assert!(files.iter().all(|f| f["deletedAt"].is_null()));
    let stored = files_under(&data.join("archives"));
    assert_eq!(stored.len(), 2, "only the two packages are in storage: {stored:?}");
    for f in files {
        let on_disk = stored.iter().find(|p| p.file_name().unwrap().to_str() == f["fileName"].as_str()).expect("stored under its name");
        let bytes = std::fs::read(on_disk).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), f["sha256"].as_str().unwrap());
    }
    assert!(files_under(&data.join("staging")).is_empty(), "staging is cleaned up");

    if let Some(sub) = sub.as_mut() {
        let mut statuses: Vec<String> = Vec::new();
        let mut last = i64::MIN;
        while statuses.last().map(String::as_str) != Some("COMPLETED") {
            let ev = tokio::time::timeout(Duration::from_secs(30), sub.next()).await.expect("events arrive").expect("open");
            let e = &ev["data"]["archiveJobsChanged"];
            let seq = e["sequence"].as_i64().unwrap();
            assert!(seq > last, "in order");
            last = seq;
            let s = e["job"]["status"].as_str().unwrap().to_string();
            if statuses.last() != Some(&s) && s != "UNINITIALIZED" {
                statuses.push(s);
            }
        }
        assert_eq!(statuses, HAPPY_PATH, "the API process saw every state of the job the workers ran");
    }
    drop(api_proc);
}

mod a_killed_worker_loses_nothing {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::a_killed_worker_loses_nothing(super::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::a_killed_worker_loses_nothing(super::Backend::Postgres).await
    }
}
