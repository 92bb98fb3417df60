//! Separate processes, as operators run them: on PostgreSQL an API process (`serve --no-workers`)
//! and worker processes (`worker`) sharing one database; on SQLite, where one process owns a data
//! directory, one `serve` process. The process working on a job is killed with SIGKILL in the middle
//! of it; another takes over (on SQLite: the restarted `serve`) and the job ends with exactly one
//! complete set of archive files. On PostgreSQL, a subscriber on the API process sees every state of
//! the job the workers run, and a large activity archived in chunks spreads over two worker
//! processes.
mod common;

use std::time::{Duration, Instant};

use common::{
    procs::{database_for, files_under, free_port, spawn, spawn_with, Api, Proc},
    ws::Subscription,
    Backend,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const HAPPY_PATH: [&str; 8] = ["QUEUED", "PRE_PROCESSING", "ACTIVITY_ARCHIVING", "POST_PROCESSING", "STORE", "SIGN", "CLEANUP", "COMPLETED"];

/// The status of the only job in the database, read directly (for when no API process runs).
async fn only_job_status(db_url: &str) -> String {
    use archiving_manager::entity::archive_job;
    use sea_orm::EntityTrait;
    let db = sea_orm::Database::connect(db_url).await.unwrap();
    let jobs = archive_job::Entity::find().all(&db).await.unwrap();
    db.close().await.ok();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    jobs[0].status.clone()
}

/// On PostgreSQL an API process and a worker process are started, and the worker is killed; on
/// SQLite, where one process owns a data directory, one `serve` process is killed and started
/// again.
async fn a_killed_worker_loses_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (db_url, _pg) = database_for(backend, data).await;
    let port = free_port();
    let first_args: &[&str] = match backend {
        Backend::Postgres => &["serve", "--no-workers"],
        Backend::Sqlite => &["serve"],
    };
    let mut api_proc = spawn(first_args, data, &db_url, port);
    let mut api = Api::new(port, data);
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
    if let Some(sub) = sub.as_mut() {
        // graphql-ws does not acknowledge a subscription: prove it is live with a probe job. No
        // worker runs yet, so it stays QUEUED and is canceled at once, leaving nothing behind.
        let probe: Vec<Value> = course["course"]["activities"]["edges"].as_array().unwrap().iter().filter(|e| e["node"]["lmsId"] == "1029").map(|e| e["node"]["id"].clone()).collect();
        let d = api.gql("mutation($i: CreateArchiveJobInput!) { createArchiveJob(input: $i) { job { id } } }", json!({"i": {"activityIds": probe}})).await;
        let probe_id = d["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(30), sub.next()).await.expect("the probe's events arrive").expect("open");
            if ev["data"]["archiveJobsChanged"]["job"]["id"] == probe_id.as_str() {
                break;
            }
        }
        let d = api.gql("mutation($id: ID!) { cancelArchiveJob(input: {id: $id}) { job { status } } }", json!({"id": probe_id})).await;
        assert_eq!(d["cancelArchiveJob"]["job"]["status"], "CANCELED");
    }
    let mut worker = match backend {
        Backend::Postgres => Some(spawn(&["worker"], data, &db_url, free_port())),
        Backend::Sqlite => None,
    };
    let acts: Vec<Value> = course["course"]["activities"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"]["lmsId"] == "1028" || e["node"]["lmsId"] == "1030")
        .map(|e| e["node"]["id"].clone())
        .collect();
    let d = api.gql("mutation($i: CreateArchiveJobInput!) { createArchiveJob(input: $i) { job { id } userErrors { message } } }", json!({"i": {"activityIds": acts}})).await;
    let id = d["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();

    // Kill the process that works on the job in the middle of archiving, with records written.
    api.wait(&id, "records being archived", |j| j["status"] == "ACTIVITY_ARCHIVING" && j["tasks"].as_array().unwrap().iter().any(|t| t["recordsDone"].as_i64() > Some(5))).await;
    let _worker2 = match worker.as_mut() {
        Some(worker) => {
            worker.0.kill().unwrap(); // SIGKILL
            worker.0.wait().unwrap();
            let frozen = api.job(&id).await;
            assert_eq!(frozen["status"], "ACTIVITY_ARCHIVING", "{frozen:#}");
            // Another worker takes over once the dead one's leases and heartbeats expire.
            Some(spawn(&["worker"], data, &db_url, free_port()))
        }
        None => {
            api_proc.0.kill().unwrap(); // SIGKILL
            api_proc.0.wait().unwrap();
            assert_eq!(only_job_status(&db_url).await, "ACTIVITY_ARCHIVING");
            // A new process takes over once the dead one's leases and heartbeats expire.
            let port = free_port();
            api_proc = spawn(first_args, data, &db_url, port);
            api = Api::new(port, data);
            api.ready().await;
            None
        }
    };
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
            if e["job"]["id"] != id.as_str() {
                continue; // the probe
            }
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

/// Activity 1030 (100 submissions) in chunks of 10, with two worker processes: the job completes
/// and its chunks were archived by both. PostgreSQL only: on SQLite one process owns a data
/// directory, so there are no two worker processes to spread over.
async fn one_activity_spreads_over_two_workers(backend: Backend) {
    use archiving_manager::entity::archive_chunk;
    use sea_orm::EntityTrait;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (db_url, _pg) = database_for(backend, data).await;
    let port = free_port();
    let env = [("ARCHIVING_CHUNK_RECORDS", "10"), ("ARCHIVING_DEMO_RECORD_DELAY_MS", "20")];
    let _api_proc = spawn_with(&["serve", "--no-workers"], data, &db_url, port, &env);
    let api = Api::new(port, data);
    api.ready().await;
    // Both workers are registered before the job starts, so both can take its chunks.
    let db = sea_orm::Database::connect(&db_url).await.unwrap();
    let mut workers = Vec::new();
    for n in 1..=2 {
        workers.push(spawn_with(&["worker"], data, &db_url, free_port(), &env));
        wait_for_workers(&db, backend, &mut workers, n).await;
    }

    let course = api.gql("{ course(lmsId: \"109\") { activities { edges { node { id lmsId } } } } }", json!({})).await;
    let act = course["course"]["activities"]["edges"].as_array().unwrap().iter().find(|e| e["node"]["lmsId"] == "1030").unwrap()["node"]["id"].clone();
    let d = api.gql("mutation($i: CreateArchiveJobInput!) { createArchiveJob(input: $i) { job { id } userErrors { message } } }", json!({"i": {"activityIds": [act]}})).await;
    let id = d["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();
    let j = api.wait(&id, "COMPLETED", |j| j["status"] == "COMPLETED" || j["status"] == "FAILURE").await;
    assert_eq!(j["status"], "COMPLETED", "{j:#}");
    assert_eq!(j["tasks"][0]["recordsDone"], 100, "{j:#}");
    assert_eq!(j["files"].as_array().unwrap().len(), 1, "one package: {j:#}");

    let chunks = archive_chunk::Entity::find().all(&db).await.unwrap();
    assert_eq!(chunks.len(), 10, "{chunks:#?}");
    assert!(chunks.iter().all(|c| c.status == "FINISHED"), "{chunks:#?}");
    let workers: std::collections::BTreeSet<&str> = chunks.iter().filter_map(|c| c.worker.as_deref()).collect();
    assert!(workers.len() >= 2, "the chunks were archived by one worker only: {workers:?}");
    db.close().await.ok();
}

/// A worker killed while it renders chunks: another worker takes its chunks over (their leases
/// expire, the sweeper sends them again) and the job completes with one package. On SQLite the
/// one `serve` process is killed and started again.
async fn a_worker_killed_amid_chunks_loses_nothing(backend: Backend) {
    use archiving_manager::entity::archive_chunk;
    use sea_orm::EntityTrait;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (db_url, _pg) = database_for(backend, data).await;
    let port = free_port();
    let env = [("ARCHIVING_CHUNK_RECORDS", "10"), ("ARCHIVING_DEMO_RECORD_DELAY_MS", "40")];
    let db = sea_orm::Database::connect(&db_url).await.unwrap();
    let (mut api_proc, mut api, mut first) = match backend {
        Backend::Postgres => {
            let api_proc = spawn_with(&["serve", "--no-workers"], data, &db_url, port, &env);
            let api = Api::new(port, data);
            api.ready().await;
            let mut first = vec![spawn_with(&["worker"], data, &db_url, free_port(), &env)];
            wait_for_workers(&db, backend, &mut first, 1).await;
            (api_proc, api, first)
        }
        Backend::Sqlite => {
            let api_proc = spawn_with(&["serve"], data, &db_url, port, &env);
            let api = Api::new(port, data);
            api.ready().await;
            (api_proc, api, Vec::new())
        }
    };

    let course = api.gql("{ course(lmsId: \"109\") { activities { edges { node { id lmsId } } } } }", json!({})).await;
    let act = course["course"]["activities"]["edges"].as_array().unwrap().iter().find(|e| e["node"]["lmsId"] == "1030").unwrap()["node"]["id"].clone();
    let d = api.gql("mutation($i: CreateArchiveJobInput!) { createArchiveJob(input: $i) { job { id } userErrors { message } } }", json!({"i": {"activityIds": [act]}})).await;
    let id = d["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();
    api.wait(&id, "chunks being archived", |j| j["tasks"][0]["recordsDone"].as_i64() > Some(5)).await;
    let victim = first.first_mut().unwrap_or(&mut api_proc);
    victim.0.kill().unwrap(); // SIGKILL
    victim.0.wait().unwrap();
    drop(first);
    let unfinished = archive_chunk::Entity::find().all(&db).await.unwrap().into_iter().filter(|c| c.status != "FINISHED").count();
    assert!(unfinished > 0, "the worker was killed amid the chunks");

    let _second: Option<Proc> = match backend {
        Backend::Postgres => Some(spawn_with(&["worker"], data, &db_url, free_port(), &env)),
        Backend::Sqlite => {
            // The new `serve` is both the API and the workers.
            let port = free_port();
            api_proc = spawn_with(&["serve"], data, &db_url, port, &env);
            api = Api::new(port, data);
            api.ready().await;
            None
        }
    };
    let j = api.wait(&id, "COMPLETED", |j| j["status"] == "COMPLETED" || j["status"] == "FAILURE").await;
    assert_eq!(j["status"], "COMPLETED", "{j:#}");
    assert_eq!(j["tasks"][0]["recordsDone"], 100, "{j:#}");
    let files = j["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{j:#}");
    let stored = files_under(&data.join("archives"));
    assert_eq!(stored.len(), 1, "only the package is in storage: {stored:?}");
    assert_eq!(hex::encode(Sha256::digest(std::fs::read(&stored[0]).unwrap())), files[0]["sha256"].as_str().unwrap());
    let chunks = archive_chunk::Entity::find().all(&db).await.unwrap();
    assert_eq!(chunks.len(), 10);
    assert!(chunks.iter().all(|c| c.status == "FINISHED"), "{chunks:#?}");
    assert!(files_under(&data.join("staging")).is_empty(), "staging is cleaned up");
    db.close().await.ok();
    drop(api_proc);
}


/// Waits until `n` worker processes have registered their queue workers with apalis (each process
/// does so after its start-up), checking that every process is still running.
async fn wait_for_workers(db: &sea_orm::DatabaseConnection, backend: Backend, procs: &mut [Proc], n: usize) {
    use sea_orm::{ConnectionTrait, Statement};
    let (table, backend_kind) = match backend {
        Backend::Sqlite => ("Workers", sea_orm::DbBackend::Sqlite),
        Backend::Postgres => ("apalis.workers", sea_orm::DbBackend::Postgres),
    };
    // Each process registers three queue workers (stages, tasks, chunks), named after it.
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE id LIKE 'chunks-%'");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for p in procs.iter_mut() {
            assert!(p.0.try_wait().unwrap().is_none(), "a worker process stopped");
        }
        let row = db.query_one_raw(Statement::from_string(backend_kind, sql.clone())).await.ok().flatten();
        let count: i64 = row.and_then(|r| r.try_get("", "n").ok()).unwrap_or(0);
        if count as usize >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{n} worker processes never registered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

mod one_activity_spreads_over_two_workers {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::one_activity_spreads_over_two_workers(super::Backend::Postgres).await
    }
}

with_each_backend!(a_killed_worker_loses_nothing, a_worker_killed_amid_chunks_loses_nothing);
