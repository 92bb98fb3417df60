//! Archive jobs through the API with the real queue, workers, drivers and storage, on SQLite and
//! PostgreSQL: the happy path watched live, bad input, permissions, cancel, timeout, retries with
//! backoff, the concurrency limit and logs.
mod common;

use std::time::{Duration, Instant};

use archiving_manager::auth::Role;
use common::{
    error_codes,
    jobs::{activity_ids, count_jobs, create, job, status_is, wait_for},
    ws::Subscription,
    Backend, TestApp,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const HAPPY_PATH: [&str; 8] = ["QUEUED", "PRE_PROCESSING", "ACTIVITY_ARCHIVING", "POST_PROCESSING", "STORE", "SIGN", "CLEANUP", "COMPLETED"];

async fn a_job_runs_to_completed_while_a_subscriber_sees_every_state(app: TestApp) {
    let admin = app.admin();
    let course = app.data(&admin, "{ course(lmsId: \"101\") { id } }", json!({})).await["course"]["id"].clone();
    // Listening before the job exists, the dashboard sees it from its creation on.
    let mut sub = Subscription::start(
        app.addr,
        &admin,
        "subscription($c: ID) { archiveJobsChanged(courseId: $c) { sequence kind job { id status progress } } }",
        json!({"c": course}),
    )
    .await;
    // graphql-ws does not acknowledge a subscription: prove it is live with a probe job first.
    let probe = activity_ids(&app, &["1002"]).await;
    let probe_id = create(&app, &admin, json!({"activityIds": probe})).await["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(60), sub.next()).await.expect("the probe's events arrive").expect("open");
        if ev["data"]["archiveJobsChanged"]["job"]["id"] == probe_id.as_str() {
            break;
        }
    }
    let acts = activity_ids(&app, &["1001", "1003"]).await;
    let body = create(&app, &admin, json!({"activityIds": acts})).await;
    assert_eq!(body["data"]["createArchiveJob"]["userErrors"], json!([]), "{body}");
    let created = &body["data"]["createArchiveJob"]["job"];
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["origin"], "MANUAL");
    assert_eq!(created["tasks"].as_array().unwrap().len(), 2);

    let mut statuses: Vec<String> = Vec::new();
    let mut last_seq = i64::MIN;
    let mut last_progress = 0;
    while statuses.last().map(String::as_str) != Some("COMPLETED") {
        let ev = tokio::time::timeout(Duration::from_secs(120), sub.next()).await.expect("events keep coming").expect("subscription open");
        let e = &ev["data"]["archiveJobsChanged"];
        if e["job"]["id"] == probe_id.as_str() {
            continue;
        }
        assert_eq!(e["job"]["id"], id.as_str());
        let seq = e["sequence"].as_i64().unwrap();
        assert!(seq > last_seq, "sequence numbers increase: {seq} after {last_seq}");
        last_seq = seq;
        let p = e["job"]["progress"].as_i64().unwrap();
        assert!(p >= last_progress, "progress never goes backwards: {p} after {last_progress}");
        last_progress = p;
        let s = e["job"]["status"].as_str().unwrap().to_string();
        if statuses.last() != Some(&s) && s != "UNINITIALIZED" {
            statuses.push(s);
        }
    }
    assert_eq!(statuses, HAPPY_PATH, "every state, in order");
    assert_eq!(last_progress, 100);

    let j = job(&app, &id).await;
    assert_eq!(j["status"], "COMPLETED");
    assert!(j["finishedAt"].is_string() && j["error"].is_null());
    let files = j["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "one package per activity on the default backend");
    for t in j["tasks"].as_array().unwrap() {
        assert_eq!(t["status"], "FINISHED");
        assert_eq!(t["progress"], 100);
        assert!(t["fingerprint"].is_string());
        assert_eq!(t["activity"]["archiveState"], "ARCHIVED");
        assert_eq!(t["recordsDone"], t["recordsTotal"]);
    }
    // Each file downloads through its URL with the SHA-256 the API states.
    for f in files {
        assert_eq!(f["mediaType"], "application/zip");
        assert!(f["retentionUntil"].is_string());
        let url = f["downloadUrl"].as_str().expect("admin may download");
        let res = app.http().get(url).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let bytes = res.bytes().await.unwrap();
        assert_eq!(bytes.len().to_string(), f["sizeBytes"].as_str().unwrap());
        assert_eq!(hex::encode(Sha256::digest(&bytes)), f["sha256"].as_str().unwrap());
    }
    // The log tells the story: every transition is in it.
    let log: Vec<String> = j["logs"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["message"].as_str().unwrap().to_string()).collect();
    for pair in HAPPY_PATH.windows(2) {
        let line = format!("{} → {}", pair[0], pair[1]);
        assert!(log.iter().any(|l| l.starts_with(&line)), "log lacks {line}: {log:#?}");
    }
    // The single-job subscription starts with the current state.
    let mut one = Subscription::start(app.addr, &admin, "subscription($id: ID!) { archiveJobUpdated(jobId: $id) { kind sequence job { status } } }", json!({"id": id})).await;
    let first = one.next().await.unwrap();
    assert_eq!(first["data"]["archiveJobUpdated"]["kind"], "SNAPSHOT");
    assert_eq!(first["data"]["archiveJobUpdated"]["job"]["status"], "COMPLETED");
    assert_eq!(first["data"]["archiveJobUpdated"]["sequence"].as_i64().unwrap(), last_seq.max(first["data"]["archiveJobUpdated"]["sequence"].as_i64().unwrap()));
}

async fn bad_input_answers_with_user_errors_and_creates_nothing(app: TestApp) {
    let admin = app.admin();
    let before = count_jobs(&app).await;
    let user_error = |body: &Value| {
        let p = &body["data"]["createArchiveJob"];
        assert!(p["job"].is_null(), "no job on user errors: {body}");
        p["userErrors"][0]["code"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(user_error(&create(&app, &admin, json!({"activityIds": []})).await), "EMPTY");
    let mixed = activity_ids(&app, &["1001", "1005"]).await; // courses 101 and 102
    assert_eq!(user_error(&create(&app, &admin, json!({"activityIds": mixed})).await), "MIXED_COURSES");
    let one = activity_ids(&app, &["1001"]).await;
    let body = create(&app, &admin, json!({"activityIds": one, "filenamePattern": "${nope}"})).await;
    assert_eq!(user_error(&body), "INVALID_FILENAME_PATTERN");
    assert_eq!(body["data"]["createArchiveJob"]["userErrors"][0]["field"], json!(["filenamePattern"]));
    let body = create(&app, &admin, json!({"activityIds": one, "filenamePattern": "../../etc/passwd"})).await;
    assert_eq!(user_error(&body), "INVALID_FILENAME_PATTERN");
    assert_eq!(user_error(&create(&app, &admin, json!({"activityIds": one, "origin": "SCHEDULE"})).await), "INVALID");
    assert_eq!(user_error(&create(&app, &admin, json!({"activityIds": one, "storageBackendIds": []})).await), "EMPTY");

    // A locked policy field cannot be overridden.
    use archiving_manager::entity::{category_policy, course_category, policy_setting};
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
    let db = &app.state.db;
    policy_setting::ActiveModel { key: Set("FORMAT".into()), value: Set(json!("TAR_GZ")), locked: Set(true), updated_at: Set(chrono::Utc::now()), updated_by: Set(None) }.insert(db).await.unwrap();
    let body = create(&app, &admin, json!({"activityIds": one, "format": "ZIP"})).await;
    assert_eq!(user_error(&body), "POLICY_LOCKED");
    assert_eq!(body["data"]["createArchiveJob"]["userErrors"][0]["field"], json!(["format"]));

    // A category with archiving off (inherited by its children).
    let science = course_category::Entity::find().filter(course_category::Column::LmsId.eq("1")).one(db).await.unwrap().unwrap();
    category_policy::ActiveModel { category_id: Set(science.id), archiving_enabled: Set(Some(false)), updated_at: Set(chrono::Utc::now()), updated_by: Set(None) }.insert(db).await.unwrap();
    assert_eq!(user_error(&create(&app, &admin, json!({"activityIds": one})).await), "ARCHIVING_DISABLED");
    let d = app.data(&admin, "{ course(lmsId: \"101\") { archivingEnabled category { archivingEnabled } } }", json!({})).await;
    assert_eq!(d["course"], json!({"archivingEnabled": false, "category": {"archivingEnabled": false}}));

    // Malformed ids are top-level bad input; unknown activities are not found.
    let body = create(&app, &admin, json!({"activityIds": ["garbage"]})).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"]);
    let body = create(&app, &admin, json!({"activityIds": ["QWN0aXZpdHk6OTk5OTk"]})).await; // Activity:99999
    assert_eq!(error_codes(&body), ["NOT_FOUND"]);
    assert_eq!(count_jobs(&app).await, before, "nothing was created");
}

async fn job_mutations_follow_the_permission_table(app: TestApp) {
    let in_101 = activity_ids(&app, &["1001"]).await;
    let in_103 = activity_ids(&app, &["1008"]).await; // course 103
    let teacher = app.token(&[Role::Teacher], &["101"], &[]);
    let body = create(&app, &teacher, json!({"activityIds": in_101})).await;
    let id = body["data"]["createArchiveJob"]["job"]["id"].as_str().expect("a teacher creates in their course").to_string();
    assert_eq!(body["data"]["createArchiveJob"]["job"]["requestedBy"], "test-teacher");
    assert_eq!(error_codes(&create(&app, &teacher, json!({"activityIds": in_103})).await), ["NOT_FOUND"]);
    for role in [Role::Reporter, Role::Auditor] {
        let t = app.token(&[role], &[], &[]);
        assert_eq!(error_codes(&create(&app, &t, json!({"activityIds": in_101})).await), ["FORBIDDEN"], "{role}");
        let body = app.gql(Some(&t), "mutation($id: ID!) { cancelArchiveJob(input: {id: $id}) { job { id } } }", json!({"id": id})).await;
        assert_eq!(error_codes(&body), ["FORBIDDEN"], "{role} cancel");
    }
    // Out of scope: the job does not exist for another course's teacher, by any path.
    let other = app.token(&[Role::Teacher], &["103"], &[]);
    for q in [
        "mutation($id: ID!) { cancelArchiveJob(input: {id: $id}) { job { id } } }",
        "mutation($id: ID!) { retryArchiveJob(input: {id: $id}) { job { id } } }",
        "mutation($id: ID!) { deleteArchiveJob(input: {id: $id}) { job { id } } }",
        "query($id: ID!) { archiveJob(id: $id) { id } }",
        "query($id: ID!) { node(id: $id) { id } }",
    ] {
        assert_eq!(error_codes(&app.gql(Some(&other), q, json!({"id": id})).await), ["NOT_FOUND"], "{q}");
    }
    let d = app.data(&other, "{ archiveJobs { totalCount } }", json!({})).await;
    assert_eq!(d["archiveJobs"]["totalCount"], 0);
    let d = app.data(&teacher, "{ archiveJobs { totalCount } }", json!({})).await;
    assert_eq!(d["archiveJobs"]["totalCount"], 1);
    wait_for(&app, &id, "COMPLETED", status_is("COMPLETED")).await;
    // Files: a reporter sees the job but gets no download URL; an auditor does.
    let q = "query($id: ID!) { archiveJob(id: $id) { files { downloadUrl } } }";
    let reporter = app.token(&[Role::Reporter], &[], &[]);
    assert_eq!(app.data(&reporter, q, json!({"id": id})).await["archiveJob"]["files"][0]["downloadUrl"], Value::Null);
    let auditor = app.token(&[Role::Auditor], &[], &[]);
    assert!(app.data(&auditor, q, json!({"id": id})).await["archiveJob"]["files"][0]["downloadUrl"].is_string());
    // Deleting needs `delete`; the teacher has it in the course.
    let body = app.gql(Some(&teacher), "mutation($id: ID!) { deleteArchiveJob(input: {id: $id}) { job { status files { deletedAt downloadUrl } } userErrors { code } } }", json!({"id": id})).await;
    let p = &body["data"]["deleteArchiveJob"];
    assert_eq!(p["userErrors"], json!([]), "{body}");
    assert_eq!(p["job"]["status"], "DELETED");
    assert!(p["job"]["files"][0]["deletedAt"].is_string() && p["job"]["files"][0]["downloadUrl"].is_null());
    let act = app.data(&teacher, "{ activities(filter: {archiveStates: [ARCHIVED]}) { totalCount } }", json!({})).await;
    assert_eq!(act["activities"]["totalCount"], 0, "a deleted archive no longer counts");
}

async fn cancel_takes_effect_between_steps(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.demo_record_delay_ms = 40).await;
    let admin = app.admin();
    // The large lecture's quiz and assignment: a few hundred slow records.
    let acts = activity_ids(&app, &["1028", "1030"]).await;
    let body = create(&app, &admin, json!({"activityIds": acts})).await;
    let id = body["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();
    wait_for(&app, &id, "records being archived", |j| j["status"] == "ACTIVITY_ARCHIVING" && j["tasks"].as_array().unwrap().iter().any(|t| t["recordsDone"].as_i64() > Some(0))).await;
    let body = app.gql(Some(&admin), "mutation($id: ID!) { cancelArchiveJob(input: {id: $id}) { job { cancelRequested } userErrors { code } } }", json!({"id": id})).await;
    assert_eq!(body["data"]["cancelArchiveJob"]["job"]["cancelRequested"], true, "{body}");
    // The job ends first; its running tasks stop at their next step, within a tick.
    let j = wait_for(&app, &id, "CANCELED with every task stopped", |j| {
        j["status"] == "CANCELED" && j["tasks"].as_array().unwrap().iter().all(|t| t["status"] == "CANCELED")
    })
    .await;
    let tasks = j["tasks"].as_array().unwrap();
    let midway = |t: &&Value| t["recordsDone"].as_i64() > Some(0) && t["recordsDone"].as_i64() < t["recordsTotal"].as_i64();
    assert!(tasks.iter().any(|t| midway(&t)), "a task was stopped midway: {j:#}");
    assert_eq!(j["files"], json!([]));
    assert!(!app.data_dir.path().join("staging").join(uuid_of(&id)).exists(), "staging is cleaned up");
    // A canceled job stays canceled, cannot be retried, and can be deleted.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(job(&app, &id).await["status"], "CANCELED");
    let body = app.gql(Some(&admin), "mutation($id: ID!) { retryArchiveJob(input: {id: $id}) { userErrors { code } } }", json!({"id": id})).await;
    assert_eq!(body["data"]["retryArchiveJob"]["userErrors"][0]["code"], "INVALID_STATE");
    let body = app.gql(Some(&admin), "mutation($id: ID!) { deleteArchiveJob(input: {id: $id, deleteFiles: false}) { deletedJobId userErrors { code } } }", json!({"id": id})).await;
    assert_eq!(body["data"]["deleteArchiveJob"]["deletedJobId"], id.as_str(), "{body}");
    assert_eq!(error_codes(&app.gql(Some(&admin), "query($id: ID!) { archiveJob(id: $id) { id } }", json!({"id": id})).await), ["NOT_FOUND"]);
}

fn uuid_of(global_id: &str) -> String {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(global_id).unwrap();
    String::from_utf8(raw).unwrap().split_once(':').unwrap().1.to_string()
}

async fn a_job_past_its_deadline_ends_in_timeout_and_stays_there(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.demo_record_delay_ms = 40).await;
    let admin = app.admin();
    let acts = activity_ids(&app, &["1028"]).await;
    let body = create(&app, &admin, json!({"activityIds": acts, "jobTimeoutSeconds": 2})).await;
    let id = body["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();
    let j = wait_for(&app, &id, "TIMEOUT", status_is("TIMEOUT")).await;
    assert!(j["error"].as_str().unwrap().contains("deadline"), "{j:#}");
    assert!(j["tasks"].as_array().unwrap().iter().all(|t| t["status"] == "TIMEOUT"), "{j:#}");
    // Work that was under way when the deadline passed does not revive it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = job(&app, &id).await;
    assert_eq!(later["status"], "TIMEOUT");
    assert_eq!(later["files"], json!([]));
}

/// An S3 backend that cannot be reached: transient errors, retried with growing delays, then FAILURE
/// with the cause kept. Once the storage is back, retryArchiveJob resumes at STORE as attempt 2.
async fn transient_errors_are_retried_with_backoff_then_fail_and_a_retry_resumes(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.max_retries = 3).await;
    let admin = app.admin();
    let moto = common::moto::MotoServer::start("archives").await;
    let mut settings = moto.settings();
    let port = moto.port;
    drop(moto); // the storage goes away
    settings["endpoint"] = json!(format!("http://127.0.0.1:{port}"));
    let q = "mutation($i: CreateStorageBackendInput!) { createStorageBackend(input: $i) { storageBackend { id name health { reachable error } } userErrors { code message } } }";
    let body = app.gql(Some(&admin), q, json!({"i": {"name": "s3", "driver": "S3", "settings": settings}})).await;
    let sb = &body["data"]["createStorageBackend"]["storageBackend"];
    assert_eq!(sb["health"]["reachable"], false, "{body}");
    assert!(!body.to_string().contains(archiving_manager_secret()), "the secret never comes back");
    let acts = activity_ids(&app, &["1001"]).await;
    let body = create(&app, &admin, json!({"activityIds": acts, "storageBackendIds": [sb["id"]]})).await;
    let id = body["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();

    let j = wait_for(&app, &id, "FAILURE", status_is("FAILURE")).await;
    assert_eq!(j["retries"], 3);
    assert!(j["error"].as_str().unwrap().contains("storage backend s3"), "the cause is kept: {j:#}");
    assert!(j["error"].as_str().unwrap().contains("gave up after 3 retries"), "{j:#}");
    // The backoff: each RECOVERABLE_ERROR was followed by a wait that grew (base 1 s, ×2, ±20 %).
    use archiving_manager::entity::archive_job_transition as tr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let rows = tr::Entity::find().filter(tr::Column::JobId.eq(uuid::Uuid::parse_str(&uuid_of(&id)).unwrap())).order_by_asc(tr::Column::Id).all(&app.state.db).await.unwrap();
    let path: Vec<&str> = rows.iter().map(|r| r.to_status.as_str()).collect();
    assert_eq!(
        path,
        ["QUEUED", "PRE_PROCESSING", "ACTIVITY_ARCHIVING", "POST_PROCESSING", "STORE", "RECOVERABLE_ERROR", "STORE", "RECOVERABLE_ERROR", "STORE", "RECOVERABLE_ERROR", "STORE", "ERROR_HANDLING", "FAILURE"]
    );
    let waits: Vec<f64> = rows.windows(2).filter(|w| w[0].to_status == "RECOVERABLE_ERROR").map(|w| (w[1].at - w[0].at).num_milliseconds() as f64 / 1000.0).collect();
    assert_eq!(waits.len(), 3);
    for (i, (w, nominal)) in waits.iter().zip([1.0, 2.0, 4.0]).enumerate() {
        assert!(*w >= nominal * 0.8 - 0.05, "retry {}: waited {w} s, at least {} s due", i + 1, nominal * 0.8);
    }
    let log = j["logs"]["edges"].as_array().unwrap();
    assert!(log.iter().any(|e| e["node"]["level"] == "ERROR" && e["node"]["message"].as_str().unwrap().contains("FAILURE")), "{log:#?}");

    // The storage comes back; a new attempt resumes where the last one failed.
    let _moto = common::moto::MotoServer::start_on(port, "archives").await;
    let body = app.gql(Some(&admin), "mutation($id: ID!) { retryArchiveJob(input: {id: $id}) { job { attempt status } userErrors { code } } }", json!({"id": id})).await;
    assert_eq!(body["data"]["retryArchiveJob"]["job"]["attempt"], 2, "{body}");
    let j = wait_for(&app, &id, "COMPLETED", status_is("COMPLETED")).await;
    assert_eq!(j["retries"], 0);
    assert_eq!(j["files"].as_array().unwrap().len(), 1);
    assert_eq!(j["files"][0]["storageBackend"]["name"], "s3");
    let rows = tr::Entity::find().filter(tr::Column::JobId.eq(uuid::Uuid::parse_str(&uuid_of(&id)).unwrap())).filter(tr::Column::Attempt.eq(2)).order_by_asc(tr::Column::Id).all(&app.state.db).await.unwrap();
    let path: Vec<&str> = rows.iter().map(|r| r.to_status.as_str()).collect();
    assert_eq!(path, ["QUEUED", "STORE", "SIGN", "CLEANUP", "COMPLETED"], "attempt 2 resumes at STORE");
}

fn archiving_manager_secret() -> &'static str {
    common::moto::SECRET_ACCESS_KEY
}

async fn at_most_max_concurrent_jobs_are_active(backend: Backend) {
    let app = TestApp::start_with(backend, |s| {
        s.max_concurrent_jobs = 1;
        s.demo_record_delay_ms = 5;
    })
    .await;
    let admin = app.admin();
    let mut ids = Vec::new();
    for lms in ["1001", "1002", "1003"] {
        let acts = activity_ids(&app, &[lms]).await;
        let body = create(&app, &admin, json!({"activityIds": acts})).await;
        ids.push(body["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string());
    }
    let active = ["PRE_PROCESSING", "ACTIVITY_ARCHIVING", "POST_PROCESSING", "STORE", "SIGN", "CLEANUP", "RECOVERABLE_ERROR", "ERROR_HANDLING"];
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut max_seen = 0;
    loop {
        let d = app.data(&admin, "{ archiveJobs { edges { node { status } } } }", json!({})).await;
        let statuses: Vec<String> = d["archiveJobs"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["status"].as_str().unwrap().to_string()).collect();
        let n = statuses.iter().filter(|s| active.contains(&s.as_str())).count();
        max_seen = max_seen.max(n);
        assert!(n <= 1, "at most one active job: {statuses:?}");
        if statuses.iter().all(|s| s == "COMPLETED") {
            break;
        }
        assert!(Instant::now() < deadline, "jobs did not finish: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(max_seen, 1);
}

/// A large activity (here: more than 7 records) is archived in chunks, each a queue task of its
/// own, then assembled into one package, which validates as a bag.
async fn large_activities_are_archived_in_chunks_into_one_package(backend: Backend) {
    use archiving_manager::entity::{archive_chunk, archive_task};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    let app = TestApp::start_with(backend, |s| s.chunk_records = 7).await;
    let admin = app.admin();
    let acts = activity_ids(&app, &["1001", "1003"]).await;
    let body = create(&app, &admin, json!({"activityIds": acts})).await;
    assert_eq!(body["data"]["createArchiveJob"]["userErrors"], json!([]), "{body}");
    let id = body["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();
    let j = wait_for(&app, &id, "COMPLETED", |j| j["status"] == "COMPLETED" || j["status"] == "FAILURE").await;
    assert_eq!(j["status"], "COMPLETED", "{j:#}");
    for t in j["tasks"].as_array().unwrap() {
        assert_eq!(t["status"], "FINISHED");
        assert_eq!(t["recordsDone"], t["recordsTotal"]);
        assert!(t["recordsTotal"].as_i64().unwrap() > 7, "{t}");
        assert_eq!(t["activity"]["archiveState"], "ARCHIVED", "the fingerprint of the assembled package is the activity's");
    }

    // Several chunks per task, all finished, each by a known worker.
    let tasks = archive_task::Entity::find().filter(archive_task::Column::JobId.eq(uuid::Uuid::parse_str(&uuid_of(&id)).unwrap())).all(&app.state.db).await.unwrap();
    assert_eq!(tasks.len(), 2);
    for t in &tasks {
        let chunks = archive_chunk::Entity::find().filter(archive_chunk::Column::TaskId.eq(t.id)).all(&app.state.db).await.unwrap();
        assert_eq!(chunks.len() as i32, (t.records_total + 6) / 7, "chunks of 7 records for task {}", t.id);
        assert!(chunks.len() >= 2);
        assert!(chunks.iter().all(|c| c.status == "FINISHED" && c.worker.as_deref() == Some(app.state.engine.process_id.as_str())), "{chunks:#?}");
        assert_eq!(chunks.iter().map(|c| c.records).sum::<i32>(), t.records_total);
    }
    let log: Vec<String> = j["logs"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["message"].as_str().unwrap().to_string()).collect();
    assert!(log.iter().any(|l| l.starts_with("chunk 1/") && l.contains("archived by")), "{log:#?}");

    // Each package validates as a bag, with the SHA-256 the API states.
    let files = j["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    for (i, f) in files.iter().enumerate() {
        let bytes = app.http().get(f["downloadUrl"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), f["sha256"].as_str().unwrap());
        let path = app.data_dir.path().join(format!("dl{i}")).join(f["fileName"].as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let bag = common::bagit::unpack(&path, &app.data_dir.path().join(format!("unpacked{i}")));
        common::bagit::validate(&bag).unwrap_or_else(|e| panic!("{} does not validate: {e}", f["fileName"]));
    }
}

/// Cancel reaches the chunks of a large activity, wherever they run, and nothing stays behind.
async fn cancel_stops_an_activity_in_chunks(backend: Backend) {
    let app = TestApp::start_with(backend, |s| {
        s.chunk_records = 10;
        s.demo_record_delay_ms = 40;
    })
    .await;
    let admin = app.admin();
    let acts = activity_ids(&app, &["1030"]).await; // 100 submissions: 10 chunks
    let body = create(&app, &admin, json!({"activityIds": acts})).await;
    let id = body["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();
    wait_for(&app, &id, "records being archived", |j| j["status"] == "ACTIVITY_ARCHIVING" && j["tasks"][0]["recordsDone"].as_i64() > Some(0)).await;
    let body = app.gql(Some(&admin), "mutation($id: ID!) { cancelArchiveJob(input: {id: $id}) { job { cancelRequested } userErrors { code } } }", json!({"id": id})).await;
    assert_eq!(body["data"]["cancelArchiveJob"]["job"]["cancelRequested"], true, "{body}");
    let j = wait_for(&app, &id, "CANCELED", status_is("CANCELED")).await;
    assert_eq!(j["tasks"][0]["status"], "CANCELED", "{j:#}");
    assert_eq!(j["files"], json!([]));
    // Chunks that were running notice within a tick and remove what they wrote.
    let staging = app.data_dir.path().join("staging").join(uuid_of(&id));
    let deadline = Instant::now() + Duration::from_secs(30);
    while staging.exists() {
        assert!(Instant::now() < deadline, "staging is cleaned up: {staging:?} remains");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn logs_page_without_loss_and_filter_by_level(app: TestApp) {
    let admin = app.admin();
    let acts = activity_ids(&app, &["1001", "1002", "1003"]).await;
    let id = create(&app, &admin, json!({"activityIds": acts})).await["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();
    wait_for(&app, &id, "COMPLETED", status_is("COMPLETED")).await;
    let q = "query($id: ID!, $a: String, $l: LogLevel) { archiveJob(id: $id) { logs(first: 3, after: $a, minLevel: $l) { totalCount pageInfo { hasNextPage endCursor } edges { node { level message } } } } }";
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    let total = loop {
        let d = app.data(&admin, q, json!({"id": id, "a": after})).await;
        let logs = &d["archiveJob"]["logs"];
        all.extend(logs["edges"].as_array().unwrap().iter().map(|e| e["node"]["message"].as_str().unwrap().to_string()));
        if !logs["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break logs["totalCount"].as_u64().unwrap();
        }
        after = Some(logs["pageInfo"]["endCursor"].as_str().unwrap().to_string());
    };
    assert_eq!(all.len() as u64, total, "paging reaches every entry");
    assert!(total > 10);
    let warn = app.data(&admin, q, json!({"id": id, "l": "WARN"})).await;
    let levels: Vec<Value> = warn["archiveJob"]["logs"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["level"].clone()).collect();
    assert!(levels.iter().all(|l| l == "WARN" || l == "ERROR" || l == "FATAL"), "{levels:?}");
    assert!(warn["archiveJob"]["logs"]["totalCount"].as_u64().unwrap() < total);
}

on_both_databases!(
    a_job_runs_to_completed_while_a_subscriber_sees_every_state,
    bad_input_answers_with_user_errors_and_creates_nothing,
    job_mutations_follow_the_permission_table,
    logs_page_without_loss_and_filter_by_level,
);


with_each_backend!(
    cancel_takes_effect_between_steps,
    a_job_past_its_deadline_ends_in_timeout_and_stays_there,
    transient_errors_are_retried_with_backoff_then_fail_and_a_retry_resumes,
    at_most_max_concurrent_jobs_are_active,
    large_activities_are_archived_in_chunks_into_one_package,
    cancel_stops_an_activity_in_chunks
);
