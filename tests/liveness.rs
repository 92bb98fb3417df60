//! Liveness, in-process on SQLite and PostgreSQL: the durable event log holds every change of a
//! job exactly once and in order; a queue consumer that dies is reported by /readyz, restarted,
//! and the job still completes; what an ended job left in storage (an unconfirmed intent whose
//! object was put) is removed by the sweeper through the one deletion path. The process-level
//! faults (SIGKILL at each stage boundary, database outages, full and read-only storage) are in
//! tests/crashes.rs and tests/faults.rs.
mod common;

use std::time::{Duration, Instant};

use archiving_manager::entity::{archive_file, archive_job, job_event, storage_backend};
use chrono::Utc;
use common::{
    jobs::{activity_ids, create, status_is, wait_for},
    TestApp,
};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::json;

const HAPPY_PATH: [&str; 8] = ["QUEUED", "PRE_PROCESSING", "ACTIVITY_ARCHIVING", "POST_PROCESSING", "STORE", "SIGN", "CLEANUP", "COMPLETED"];

fn uuid_of(global_id: &str) -> uuid::Uuid {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(global_id).unwrap();
    String::from_utf8(raw).unwrap().split_once(':').unwrap().1.parse().unwrap()
}

async fn create_job(app: &TestApp, lms_ids: &[&str]) -> String {
    let acts = activity_ids(app, lms_ids).await;
    let body = create(app, &app.admin(), json!({"activityIds": acts})).await;
    body["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap_or_else(|| panic!("{body:#}")).to_string()
}

/// Every change of the job is one event row, written with the change: the job's sequence
/// numbers 0..=N each appear exactly once, the first is CREATED, and the status changes tell the
/// whole happy path in order.
async fn every_change_is_logged_once_in_order(app: TestApp) {
    let id = create_job(&app, &["1001", "1002"]).await;
    wait_for(&app, &id, "COMPLETED", status_is("COMPLETED")).await;
    let job_id = uuid_of(&id);
    let job = archive_job::Entity::find_by_id(job_id).one(&app.state.db).await.unwrap().unwrap();
    let events = job_event::Entity::find().filter(job_event::Column::JobId.eq(job_id)).order_by_asc(job_event::Column::Id).all(&app.state.db).await.unwrap();
    let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (0..=job.sequence).collect::<Vec<_>>(), "one event per change, in commit order");
    assert_eq!(events[0].kind, "CREATED");
    let statuses: Vec<&str> = events.iter().filter(|e| e.kind == "STATUS_CHANGED").map(|e| e.status.as_str()).collect();
    assert_eq!(statuses, HAPPY_PATH);
    assert!(events.iter().all(|e| e.course_id == job.course_id && e.snapshot.is_none()));
    let progress: Vec<i32> = events.iter().map(|e| e.progress).collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "progress never goes back: {progress:?}");
    assert_eq!(events.iter().filter(|e| e.kind == "TASK_CHANGED").count() >= 6, true, "each task's moves are events");
}

async fn readyz(app: &TestApp) -> (u16, String) {
    let res = app.http().get(app.url("/readyz")).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Polls /readyz until `want(status, body)` (a liveness bound, not a timing assertion).
async fn readyz_until(app: &TestApp, what: &str, want: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = readyz(app).await;
        if want(status, &body) {
            return (status, body);
        }
        assert!(Instant::now() < deadline, "/readyz never said {what}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A consumer that dies: /readyz names it, the log says why (not checked here: the supervisor
/// logs at ERROR), the supervisor restarts it, and a job needing it completes.
async fn a_dead_consumer_is_reported_and_restarted(app: TestApp) {
    readyz_until(&app, "ready", |s, _| s == 200).await;
    let part = "consumer archive-activity-tasks";
    assert!(app.state.liveness.kill(part), "the consumer is known to the process");
    let (_, body) = readyz_until(&app, "the dead consumer", |s, b| s == 503 && b.contains(part)).await;
    assert!(body.contains("stopped on request"), "{body}");
    let id = create_job(&app, &["1001"]).await;
    let j = wait_for(&app, &id, "COMPLETED", |j| j["status"] == "COMPLETED" || j["status"] == "FAILURE").await;
    assert_eq!(j["status"], "COMPLETED", "{j:#}");
    readyz_until(&app, "ready again", |s, _| s == 200).await;
}

/// A job canceled after its worker had put an object but died before confirming the record: the
/// intent row and the object are what a crash in that window leaves. The sweeper deletes the
/// object and marks the row deleted; nothing stays in storage.
async fn what_an_ended_job_left_in_storage_is_removed(app: TestApp) {
    let id = create_job(&app, &["1001"]).await;
    let body = app.gql(Some(&app.admin()), "mutation($id: ID!) { cancelArchiveJob(input: {id: $id}) { job { status } } }", json!({"id": id})).await;
    assert!(body["data"]["cancelArchiveJob"]["job"]["status"].is_string(), "{body}");
    wait_for(&app, &id, "CANCELED", status_is("CANCELED")).await;

    let job_id = uuid_of(&id);
    let backend = storage_backend::Entity::find().filter(storage_backend::Column::Name.eq("local")).one(&app.state.db).await.unwrap().unwrap();
    let driver = archiving_manager::storage::files::driver(&backend).unwrap();
    let src = app.data_dir.path().join("left-behind.zip");
    std::fs::write(&src, b"a package a dead worker stored").unwrap();
    let sha = archiving_manager::storage::sha256_hex(b"a package a dead worker stored");
    let key = format!("2026/12/{job_id}/1/left-behind.zip");
    driver.put_file(&key, &src, &sha).await.unwrap();
    let intent = archive_file::ActiveModel {
        job_id: Set(job_id),
        task_id: Set(None),
        storage_backend_id: Set(backend.id),
        storage_key: Set(key.clone()),
        file_name: Set("left-behind.zip".into()),
        size_bytes: Set(30),
        sha256: Set(sha),
        media_type: Set("application/zip".into()),
        retention_until: Set(None),
        legal_hold: Set(false),
        deleted_at: Set(None),
        deletion_reason: Set(None),
        created_at: Set(Utc::now()),
        stored_at: Set(None),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = archive_file::Entity::find_by_id(intent.id).one(&app.state.db).await.unwrap().unwrap();
        if row.deleted_at.is_some() {
            assert_eq!(row.deletion_reason.as_deref(), Some("JOB_DISCARDED"));
            assert!(row.deletion_note.as_deref().unwrap_or_default().contains("ended"), "{row:?}");
            assert_eq!(row.deleted_by.as_deref(), Some("system:sweeper"));
            break;
        }
        assert!(Instant::now() < deadline, "the sweeper never removed the intent: {row:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(driver.size(&key).await.unwrap(), None, "the object is gone from storage");
    // The API never shows an intent as a file; what the job itself stored before the cancel
    // (if a worker got that far) is deleted.
    let j = common::jobs::job(&app, &id).await;
    let files = j["files"].as_array().unwrap();
    assert!(files.iter().all(|f| f["fileName"] != "left-behind.zip" && !f["deletedAt"].is_null()), "{j:#}");
}

on_both_databases!(every_change_is_logged_once_in_order, a_dead_consumer_is_reported_and_restarted, what_an_ended_job_left_in_storage_is_removed);
