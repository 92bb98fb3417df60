//! The statements a query costs do not grow with its page size: every list field is loaded in
//! batches (see `src/graphql/loaders.rs`). Counted with the connection's metric callback on an API
//! without workers, whose background statements would blur the count.
mod common;

use archiving_manager::{
    fixtures,
    auth::Role,
    entity::{archive_file, archive_job, archive_job_transition, archive_task, course, activity, storage_backend, timestamp_token},
};
use chrono::Utc;
use common::{Backend, TestApp};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::{json, Value};

/// The most statements the job query below may cost, at any page size up to 100.
const JOB_QUERY_BOUND: u64 = 25;

const JOBS_QUERY: &str = "query($n: Int) { archiveJobs(first: $n) { totalCount edges { node { id status course { shortName }
    tasks { status activity { name archiveState } } transitions { from to at }
    files { fileName storageBackend { name } timestamps { tsaUrl verified } downloadUrl } } } } }";

/// `n` completed jobs of course 101, each with one task, two transitions and two stored files
/// with one timestamp each, written directly: the count is about reading them.
async fn seed_jobs(app: &TestApp, n: usize) {
    let db = &app.state.db;
    let c = course::Entity::find().filter(course::Column::LmsId.eq("101")).one(db).await.unwrap().expect("demo course 101");
    let act = activity::Entity::find().filter(activity::Column::CourseId.eq(c.id)).one(db).await.unwrap().expect("an activity of 101");
    let backend = storage_backend::Entity::find().one(db).await.unwrap().expect("the default backend");
    let now = Utc::now();
    let jobs: Vec<archive_job::ActiveModel> = (0..n)
        .map(|i| fixtures::completed_job(c.id, now - chrono::Duration::seconds(i as i64)))
        .collect();
    let ids: Vec<uuid::Uuid> = jobs.iter().map(|j| *j.id.as_ref()).collect();
    archive_job::Entity::insert_many(jobs).exec(db).await.unwrap();
    archive_task::Entity::insert_many(ids.iter().map(|j| fixtures::finished_task(*j, &act, act.fingerprint.clone(), now)))
    .exec(db)
    .await
    .unwrap();
    archive_job_transition::Entity::insert_many(ids.iter().flat_map(|j| {
        [(None, "QUEUED"), (Some("QUEUED"), "COMPLETED")].map(|(from, to)| archive_job_transition::ActiveModel {
            job_id: Set(*j),
            from_status: Set(from.map(str::to_string)),
            to_status: Set(to.into()),
            attempt: Set(1),
            at: Set(now),
            ..Default::default()
        })
    }))
    .exec(db)
    .await
    .unwrap();
    archive_file::Entity::insert_many(ids.iter().flat_map(|j| {
        (0..2).map(move |k| fixtures::stored_file(*j, backend.id, format!("{j}/{k}.zip"), format!("{k}.zip"), 10, now))
    }))
    .exec(db)
    .await
    .unwrap();
    let files = archive_file::Entity::find().all(db).await.unwrap();
    timestamp_token::Entity::insert_many(files.iter().map(|f| timestamp_token::ActiveModel {
        file_id: Set(f.id),
        tsa_url: Set("https://tsa.invalid".into()),
        hash_algorithm: Set("SHA-256".into()),
        query_der: Set(vec![1]),
        reply_der: Set(vec![2]),
        gen_time: Set(Some(now)),
        serial: Set(Some("1".into())),
        verified: Set(true),
        verification_error: Set(None),
        created_at: Set(now),
        ..Default::default()
    }))
    .exec(db)
    .await
    .unwrap();
}

/// Runs `query` three times and returns its data and the fewest statements a run cost: the event
/// log's reader polls once a second, and such a statement in between is not the query's.
async fn counted(app: &TestApp, token: &str, query: &str, n: i32) -> (Value, u64) {
    let mut fewest = u64::MAX;
    let mut data = Value::Null;
    for _ in 0..3 {
        let before = app.state.statements.get();
        data = app.data(token, query, json!({"n": n})).await;
        fewest = fewest.min(app.state.statements.get() - before);
    }
    (data, fewest)
}

async fn job_lists_cost_the_same_at_any_page_size(backend: Backend) {
    let app = TestApp::start_api_only(backend).await;
    seed_jobs(&app, 100).await;
    // An admin may download everywhere; a teacher only in its course: that check is a statement.
    for (who, token, urls) in [
        ("admin", app.admin(), true),
        ("teacher of 101", app.token(&[Role::Teacher], &["101"], &[]), true),
        ("reporter", app.token(&[Role::Reporter], &[], &[]), false),
    ] {
        let mut counts = Vec::new();
        for n in [1, 10, 100] {
            let (data, statements) = counted(&app, &token, JOBS_QUERY, n).await;
            let edges = data["archiveJobs"]["edges"].as_array().unwrap();
            assert_eq!(edges.len(), n as usize, "{who}");
            for e in edges {
                let job = &e["node"];
                assert_eq!(job["transitions"].as_array().unwrap().len(), 2, "{who}: {job}");
                assert_eq!(job["tasks"][0]["activity"]["archiveState"], "ARCHIVED", "{who}: {job}");
                let files = job["files"].as_array().unwrap();
                assert_eq!(files.len(), 2, "{who}: {job}");
                for f in files {
                    assert_eq!(f["timestamps"].as_array().unwrap().len(), 1, "{who}: {f}");
                    assert_eq!(f["storageBackend"]["name"], "local");
                    assert_eq!(f["downloadUrl"].is_string(), urls, "{who}: {f}");
                }
            }
            counts.push((n, statements));
        }
        eprintln!("{backend:?} {who}: statements per page size {counts:?}");
        for (n, s) in &counts {
            assert!(*s <= JOB_QUERY_BOUND, "{who}: {s} statements at first: {n} (bound {JOB_QUERY_BOUND}); all: {counts:?}");
        }
        assert!(counts.iter().all(|(_, s)| *s == counts[0].1), "{who}: statements per page size {counts:?}");
    }
}

const COURSES_QUERY: &str = "query($n: Int) { courses(first: $n) { totalCount edges { node { shortName archivingEnabled
    archivingEnabledSource { origin category { name } } category { name archivingSetting activityKinds { kind enabled } }
    activities(first: 100) { totalCount edges { node { name kind archiveState lastArchivedAt archivingEnabled
    archivingEnabledSource { origin activityKind } course { shortName } } } } } } } }";

async fn the_reporting_query_costs_the_same_at_any_page_size(backend: Backend) {
    let app = TestApp::start_api_only(backend).await;
    seed_jobs(&app, 3).await;
    let admin = app.admin();
    let mut counts = Vec::new();
    for n in [1, 5, 9] {
        let (data, statements) = counted(&app, &admin, COURSES_QUERY, n).await;
        assert_eq!(data["courses"]["edges"].as_array().unwrap().len(), n as usize);
        counts.push((n, statements));
    }
    eprintln!("{backend:?}: statements per page size {counts:?}");
    assert!(counts.iter().all(|(_, s)| *s == counts[0].1), "statements per page size {counts:?}");
}

with_each_backend!(job_lists_cost_the_same_at_any_page_size, the_reporting_query_costs_the_same_at_any_page_size);

/// The most statements one small job (one closed quiz, the default backend) may cost from its
/// creation to COMPLETED, the API's `createArchiveJob` and every worker step together. A bound
/// that fails when the count grows: on SQLite every statement waits for the one connection, so
/// this count is what limits small jobs per second (see benches/README.md, queue). PostgreSQL
/// adds a NOTIFY per event and the advisory lock of the slot claim. Before the cuts of issue 8
/// (small jobs): 135 on SQLite, 163 on PostgreSQL; after them 98 and 123. Issue 10 added a
/// few (the activity-kind switches and the policy's concurrency limit read at creation and at
/// the slot claim): 104 on SQLite, 108–130 on PostgreSQL, where the count also holds the event
/// tailer's reads, one per NOTIFY it gets in time, so it varies with timing.
fn small_job_bound(backend: Backend) -> u64 {
    match backend {
        Backend::Sqlite => 105,
        Backend::Postgres => 135,
    }
}

const CREATE_LEAN: &str = "mutation($i: CreateArchiveJobInput!) { createArchiveJob(input: $i) { job { id } userErrors { message } } }";

/// Statements of the engine and the API for one small job, counted over the steps the workers
/// would run, driven here one after another on an API without workers (the queue's messages are
/// left unread; apalis's own fetch and acknowledgement of them run on the raw pool and are not
/// counted). Returns (create, workers).
async fn small_job_statements(app: &TestApp, activity: &Value) -> (u64, u64) {
    let engine = &app.state.engine;
    let counter = &app.state.statements;
    let before = counter.get();
    let data = app.data(&app.admin(), CREATE_LEAN, json!({"i": {"activityIds": [activity]}})).await;
    let create = counter.get() - before;
    assert_eq!(data["createArchiveJob"]["userErrors"], json!([]), "{data}");
    let job = archive_job::Entity::find().order_by_desc(archive_job::Column::CreatedAt).one(&app.state.db).await.unwrap().unwrap();
    let mut workers = 0;
    // As the queue hands them out: a stage message, then the task messages the stage sent, then
    // the stage message each task's end sends.
    for _ in 0..5 {
        let before = counter.get();
        engine.advance(job.id).await.unwrap();
        workers += counter.get() - before;
        let now = archive_job::Entity::find_by_id(job.id).one(&app.state.db).await.unwrap().unwrap();
        if now.status == "COMPLETED" {
            return (create, workers);
        }
        assert_eq!(now.status, "ACTIVITY_ARCHIVING", "{now:?}");
        let tasks = archive_task::Entity::find().filter(archive_task::Column::JobId.eq(job.id)).all(&app.state.db).await.unwrap();
        for t in tasks.iter().filter(|t| t.status == "QUEUED") {
            let before = counter.get();
            engine.run_task(job.id, t.id).await.unwrap();
            workers += counter.get() - before;
        }
    }
    panic!("the job did not complete in five rounds");
}

async fn one_small_job_costs_a_bounded_number_of_statements(backend: Backend) {
    let app = TestApp::start_api_only(backend).await;
    let acts = app.data(&app.admin(), "{ activities(first: 100) { edges { node { id lmsId } } } }", json!({})).await;
    let quiz = acts["activities"]["edges"].as_array().unwrap().iter().find(|e| e["node"]["lmsId"] == "1001").expect("demo quiz 1001")["node"]["id"].clone();
    // The fewest of three jobs: the event log's reader polls once a second, and a poll that
    // falls into a window is not the job's.
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(small_job_statements(&app, &quiz).await);
    }
    let (create, workers) = runs.iter().copied().min_by_key(|(c, w)| c + w).unwrap();
    eprintln!("{backend:?}: statements per small job (create, workers): {runs:?}");
    let bound = small_job_bound(backend);
    assert!(create + workers <= bound, "one small job cost {create} + {workers} statements (bound {bound}); runs: {runs:?}");
}

with_each_backend!(one_small_job_costs_a_bounded_number_of_statements);
