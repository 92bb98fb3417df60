//! Retention and deletion on SQLite and PostgreSQL, with time moved instead of waited for: files
//! are deleted exactly when their retention ends (not one second before) through the one deletion
//! path, their records stay, jobs become DELETED when their last file goes; legal holds stop every
//! deletion; approval mode lists expired files and deletes only what is approved; every action is
//! in the audit log; concurrent deleters (two processes on PostgreSQL) delete and record a file once.
mod common;

use archiving_manager::{
    auth::Role,
    entity::{archive_file, audit_log, job_event, policy_setting, timestamp_token},
    service::retention,
    storage::files::{self, Deleted, Deletion},
};
use chrono::{DateTime, Utc};
use common::{
    jobs::{activity_ids, create, status_is, wait_for},
    Backend, TestApp,
};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::{json, Value};

const FILE_FIELDS: &str = "id fileName deletedAt deletionReason deletedBy deletionNote legalHold underLegalHold legalHoldReason legalHoldBy legalHoldSince
    deletionPendingSince deletionDecision { decision by reason } timestamps { dataRemovedAt }";

/// A job of course 101 archiving `lms_ids`, kept `days`, run to COMPLETED; its id.
async fn completed_job(app: &TestApp, lms_ids: &[&str], days: u32) -> String {
    let acts = activity_ids(app, lms_ids).await;
    let body = create(app, &app.admin(), json!({"activityIds": acts, "retentionDays": days})).await;
    let id = body["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap_or_else(|| panic!("job created: {body}")).to_string();
    wait_for(app, &id, "COMPLETED", status_is("COMPLETED")).await;
    id
}

async fn job(app: &TestApp, id: &str) -> Value {
    let q = format!("query($id: ID!) {{ archiveJob(id: $id) {{ id status legalHold legalHoldReason legalHoldBy legalHoldSince files {{ {FILE_FIELDS} }} transitions {{ to }} }} }}");
    app.data(&app.admin(), &q, json!({"id": id})).await["archiveJob"].clone()
}

fn files(job: &Value) -> Vec<Value> {
    job["files"].as_array().unwrap().clone()
}

/// The file rows of a job, oldest first.
async fn rows(app: &TestApp, job: &Value) -> Vec<archive_file::Model> {
    let mut out = Vec::new();
    for f in files(job) {
        out.push(row(app, &f["id"]).await);
    }
    out
}

async fn row(app: &TestApp, id: &Value) -> archive_file::Model {
    let raw = base64_decode(id.as_str().unwrap());
    let key: i64 = raw.split_once(':').unwrap().1.parse().unwrap();
    archive_file::Entity::find_by_id(key).one(&app.state.db).await.unwrap().unwrap()
}

fn base64_decode(s: &str) -> String {
    use base64::Engine;
    String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap()
}

/// Whether the file's object is in its storage.
async fn in_storage(app: &TestApp, f: &archive_file::Model) -> bool {
    let (_, driver) = files::backend(&app.state.db, f.storage_backend_id).await.unwrap();
    driver.size(&f.storage_key).await.unwrap().is_some()
}

/// Audit entries of `action` about the object `target_id`.
async fn audit(app: &TestApp, action: &str, target_id: &str) -> Vec<Value> {
    let q = "query($f: AuditLogFilter) { auditLog(filter: $f, first: 100) { edges { node { actor actorRoles origin action targetType targetId details } } } }";
    let d = app.data(&app.admin(), q, json!({"f": {"actions": [action], "targetId": target_id}})).await;
    d["auditLog"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect()
}

async fn set_policy(app: &TestApp, key: &str, value: Value) {
    let row = policy_setting::ActiveModel { key: Set(key.into()), value: Set(value), locked: Set(false), updated_at: Set(Utc::now()), updated_by: Set(None) };
    policy_setting::Entity::delete_by_id(key.to_string()).exec(&app.state.db).await.unwrap();
    row.insert(&app.state.db).await.unwrap();
}

/// A timestamp token of the file, as the SIGN stage records one with a Time-Stamp Authority.
async fn add_timestamp(app: &TestApp, file_id: i64) {
    timestamp_token::ActiveModel {
        file_id: Set(file_id),
        tsa_url: Set("https://tsa.invalid".into()),
        hash_algorithm: Set("SHA-256".into()),
        query_der: Set(vec![0x30, 0x03, 0x02, 0x01, 0x01]),
        reply_der: Set(vec![0x30, 0x03, 0x02, 0x01, 0x02]),
        gen_time: Set(Some(Utc::now())),
        serial: Set(Some("7".into())),
        verified: Set(true),
        verification_error: Set(None),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .unwrap();
}

fn retention_until(rows: &[archive_file::Model]) -> DateTime<Utc> {
    rows.iter().map(|r| r.retention_until.expect("a retention date")).max().unwrap()
}

async fn files_retention_ends_exactly_at_retention_until(app: TestApp) {
    let id = completed_job(&app, &["1001"], 30).await;
    let j = job(&app, &id).await;
    let rows = rows(&app, &j).await;
    assert_eq!(rows.len(), 1);
    let f = &rows[0];
    let created = archiving_manager::entity::archive_job::Entity::find_by_id(f.job_id).one(&app.state.db).await.unwrap().unwrap().created_at;
    assert_eq!(f.retention_until, Some(created + chrono::Duration::days(30)), "set at STORE from the job's retentionDays");
    add_timestamp(&app, f.id).await;
    let until = f.retention_until.unwrap();

    app.clock().set(until - chrono::Duration::seconds(1));
    app.run_periodic("retention").await;
    let j = job(&app, &id).await;
    assert!(files(&j)[0]["deletedAt"].is_null(), "one second before, the file stays: {j:#}");
    assert!(in_storage(&app, f).await);
    assert_eq!(j["status"], "COMPLETED");

    app.clock().set(until);
    app.run_periodic("retention").await;
    let j = job(&app, &id).await;
    let file = &files(&j)[0];
    assert!(file["deletedAt"].is_string(), "deleted at retentionUntil: {j:#}");
    assert_eq!(file["deletionReason"], "RETENTION_EXPIRED");
    assert_eq!(file["deletedBy"], "system:retention");
    assert!(!in_storage(&app, f).await, "the object is gone");
    let after = row(&app, &file["id"]).await;
    assert_eq!(after.deleted_at, Some(until), "deletedAt by the engine's clock");
    assert_eq!(j["status"], "DELETED", "its last file gone, the job is DELETED and its record kept");
    assert_eq!(j["transitions"].as_array().unwrap().last().unwrap()["to"], "DELETED");
    // The timestamp's data is removed; its record stays.
    let tokens = timestamp_token::Entity::find().filter(timestamp_token::Column::FileId.eq(f.id)).all(&app.state.db).await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].query_der.is_empty() && tokens[0].reply_der.is_empty() && tokens[0].data_removed_at.is_some());
    assert!(file["timestamps"][0]["dataRemovedAt"].is_string());
    // Audited once, by the system, with what was deleted.
    let entries = audit(&app, "FILE_DELETED", file["id"].as_str().unwrap()).await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["actor"], "system");
    assert_eq!(entries[0]["origin"], "periodic:retention");
    assert_eq!(entries[0]["details"]["reason"], "RETENTION_EXPIRED");
    assert_eq!(entries[0]["details"]["timestampTokensCleared"], 1);
    // The job's subscribers heard of it.
    let events = job_event::Entity::find().filter(job_event::Column::Kind.eq("FILE_DELETED")).count(&app.state.db).await.unwrap();
    assert_eq!(events, 1);
    // Another run finds nothing more to do.
    app.run_periodic("retention").await;
    assert_eq!(audit(&app, "FILE_DELETED", file["id"].as_str().unwrap()).await.len(), 1);
}

async fn legal_holds_stop_every_deletion_until_released(app: TestApp) {
    let admin = app.admin();
    let teacher = app.token(&[Role::Teacher], &["101"], &[]);
    let id = completed_job(&app, &["1001", "1003"], 1).await;
    let j = job(&app, &id).await;
    let rows = rows(&app, &j).await;
    let (a, b) = (files(&j)[0]["id"].as_str().unwrap().to_string(), files(&j)[1]["id"].as_str().unwrap().to_string());
    let hold = "mutation($i: SetLegalHoldInput!) { setLegalHold(input: $i) { job { legalHold legalHoldReason legalHoldBy } file { legalHold legalHoldReason } userErrors { field code } } }";

    // A reason is required; the teacher may set a hold in its course.
    let body = app.gql(Some(&teacher), hold, json!({"i": {"id": id, "hold": true}})).await;
    assert_eq!(body["data"]["setLegalHold"]["userErrors"][0]["code"], "EMPTY", "{body}");
    let body = app.gql(Some(&teacher), hold, json!({"i": {"id": id, "hold": true, "reason": "litigation 2026-17"}})).await;
    let p = &body["data"]["setLegalHold"];
    assert_eq!(p["userErrors"], json!([]), "{body}");
    assert_eq!(p["job"]["legalHold"], true);
    assert_eq!(p["job"]["legalHoldReason"], "litigation 2026-17");
    assert_eq!(p["job"]["legalHoldBy"], "test-teacher");
    let again = app.gql(Some(&admin), hold, json!({"i": {"id": id, "hold": true, "reason": "x"}})).await;
    assert_eq!(again["data"]["setLegalHold"]["userErrors"][0]["code"], "INVALID_STATE");

    // Past the retention, nothing is deleted: not by the sweep, not by hand, not with the job.
    app.clock().set(retention_until(&rows) + chrono::Duration::days(1));
    app.run_periodic("retention").await;
    let j = job(&app, &id).await;
    assert!(files(&j).iter().all(|f| f["deletedAt"].is_null() && f["underLegalHold"] == true && f["legalHold"] == false), "{j:#}");
    let del = "mutation($i: DeleteArchiveFileInput!) { deleteArchiveFile(input: $i) { file { id } userErrors { code } } }";
    let body = app.gql(Some(&admin), del, json!({"i": {"id": a, "reason": "no longer needed"}})).await;
    assert_eq!(body["data"]["deleteArchiveFile"]["userErrors"][0]["code"], "LEGAL_HOLD", "{body}");
    let body = app.gql(Some(&admin), "mutation($id: ID!) { deleteArchiveJob(input: {id: $id}) { job { id } userErrors { code } } }", json!({"id": id})).await;
    assert_eq!(body["data"]["deleteArchiveJob"]["userErrors"][0]["code"], "LEGAL_HOLD", "{body}");
    assert!(rows.iter().all(|r| r.deleted_at.is_none()));
    for r in &rows {
        assert!(in_storage(&app, r).await);
    }

    // Releasing needs MANAGE: the teacher that set it cannot lift it.
    let body = app.gql(Some(&teacher), hold, json!({"i": {"id": id, "hold": false}})).await;
    assert_eq!(common::error_codes(&body), vec!["FORBIDDEN"], "{body}");
    // A hold on file A alone, then the job's released: B goes, A stays, the job is not DELETED.
    let body = app.gql(Some(&admin), hold, json!({"i": {"id": a, "hold": true, "reason": "evidence"}})).await;
    assert_eq!(body["data"]["setLegalHold"]["file"]["legalHold"], true, "{body}");
    let body = app.gql(Some(&admin), hold, json!({"i": {"id": id, "hold": false}})).await;
    assert_eq!(body["data"]["setLegalHold"]["job"]["legalHold"], false, "{body}");
    assert!(body["data"]["setLegalHold"]["job"]["legalHoldReason"].is_null());
    app.run_periodic("retention").await;
    let j = job(&app, &id).await;
    let (fa, fb) = (files(&j)[0].clone(), files(&j)[1].clone());
    assert!(fa["deletedAt"].is_null() && fa["legalHoldReason"] == "evidence" && fa["legalHoldBy"] == "test-admin", "{j:#}");
    assert_eq!(fb["deletionReason"], "RETENTION_EXPIRED", "{j:#}");
    assert_eq!(j["status"], "COMPLETED");
    let body = app.gql(Some(&admin), del, json!({"i": {"id": a, "reason": "no longer needed"}})).await;
    assert_eq!(body["data"]["deleteArchiveFile"]["userErrors"][0]["code"], "LEGAL_HOLD");

    // Released, the next run deletes it, and the job is DELETED.
    let body = app.gql(Some(&admin), hold, json!({"i": {"id": a, "hold": false}})).await;
    assert_eq!(body["data"]["setLegalHold"]["userErrors"], json!([]), "{body}");
    app.run_periodic("retention").await;
    let j = job(&app, &id).await;
    assert_eq!(files(&j)[0]["deletionReason"], "RETENTION_EXPIRED");
    assert_eq!(j["status"], "DELETED");
    let body = app.gql(Some(&admin), hold, json!({"i": {"id": b, "hold": true, "reason": "too late"}})).await;
    assert_eq!(body["data"]["setLegalHold"]["userErrors"][0]["code"], "INVALID_STATE", "a deleted file cannot be held");

    // Each hold and release is audited with who, as what, and why.
    let job_set = audit(&app, "LEGAL_HOLD_SET", &id).await;
    assert_eq!(job_set.len(), 1);
    assert_eq!(job_set[0]["actor"], "test-teacher");
    assert_eq!(job_set[0]["actorRoles"], json!(["teacher"]));
    assert_eq!(job_set[0]["details"]["reason"], "litigation 2026-17");
    assert_eq!(audit(&app, "LEGAL_HOLD_RELEASED", &id).await.len(), 1);
    assert_eq!(audit(&app, "LEGAL_HOLD_SET", &a).await.len(), 1);
    assert_eq!(audit(&app, "LEGAL_HOLD_RELEASED", &a).await[0]["actor"], "test-admin");
}

async fn manual_deletion_needs_a_reason_and_the_delete_capability(app: TestApp) {
    let id = completed_job(&app, &["1001"], 3650).await;
    let j = job(&app, &id).await;
    let fid = files(&j)[0]["id"].as_str().unwrap().to_string();
    let r = row(&app, &files(&j)[0]["id"]).await;
    let del = "mutation($i: DeleteArchiveFileInput!) { deleteArchiveFile(input: $i) { file { id deletedAt deletionReason deletedBy deletionNote downloadUrl job { status } } userErrors { field code } } }";
    let teacher = app.token(&[Role::Teacher], &["101"], &[]);
    let body = app.gql(Some(&teacher), del, json!({"i": {"id": fid, "reason": "  "}})).await;
    assert_eq!(body["data"]["deleteArchiveFile"]["userErrors"], json!([{"field": ["reason"], "code": "EMPTY"}]), "{body}");
    let reporter = app.token(&[Role::Reporter], &[], &[]);
    assert_eq!(common::error_codes(&app.gql(Some(&reporter), del, json!({"i": {"id": fid, "reason": "x"}})).await), vec!["FORBIDDEN"]);
    let other = app.token(&[Role::Teacher], &["102"], &[]);
    assert_eq!(common::error_codes(&app.gql(Some(&other), del, json!({"i": {"id": fid, "reason": "x"}})).await), vec!["NOT_FOUND"]);
    assert!(in_storage(&app, &r).await);

    let body = app.gql(Some(&teacher), del, json!({"i": {"id": fid, "reason": "uploaded to the wrong course"}})).await;
    let p = &body["data"]["deleteArchiveFile"];
    assert_eq!(p["userErrors"], json!([]), "{body}");
    assert_eq!(p["file"]["deletionReason"], "MANUAL");
    assert_eq!(p["file"]["deletedBy"], "test-teacher");
    assert_eq!(p["file"]["deletionNote"], "uploaded to the wrong course");
    assert!(p["file"]["downloadUrl"].is_null());
    assert_eq!(p["file"]["job"]["status"], "DELETED");
    assert!(!in_storage(&app, &r).await);
    let again = app.gql(Some(&teacher), del, json!({"i": {"id": fid, "reason": "again"}})).await;
    assert_eq!(again["data"]["deleteArchiveFile"]["userErrors"][0]["code"], "INVALID_STATE");
    // Listed on its job still, with the record.
    let j = job(&app, &id).await;
    assert_eq!(files(&j).len(), 1);
    assert_eq!(files(&j)[0]["deletedBy"], "test-teacher");
    let e = audit(&app, "FILE_DELETED", &fid).await;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["actor"], "test-teacher");
    assert_eq!(e[0]["targetType"], "ArchiveFile");
    assert_eq!(e[0]["details"]["note"], "uploaded to the wrong course");
    assert!(e[0]["origin"].as_str().unwrap().starts_with("127.0.0.1"), "{e:#?}");
}

async fn job_deletion_goes_through_the_file_path_and_is_audited(app: TestApp) {
    let id = completed_job(&app, &["1001", "1003"], 3650).await;
    let j = job(&app, &id).await;
    let rows = rows(&app, &j).await;
    let body = app.gql(Some(&app.admin()), "mutation($id: ID!) { deleteArchiveJob(input: {id: $id}) { job { status files { deletionReason deletedBy } } userErrors { code } } }", json!({"id": id})).await;
    let p = &body["data"]["deleteArchiveJob"];
    assert_eq!(p["userErrors"], json!([]), "{body}");
    assert_eq!(p["job"]["status"], "DELETED");
    assert!(p["job"]["files"].as_array().unwrap().iter().all(|f| f["deletionReason"] == "JOB_DELETED" && f["deletedBy"] == "test-admin"), "{body}");
    for r in &rows {
        assert!(!in_storage(&app, r).await);
    }
    let entries = audit(&app, "JOB_DELETED", &id).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["details"]["filesDeleted"], 2);
    for f in files(&j) {
        assert_eq!(audit(&app, "FILE_DELETED", f["id"].as_str().unwrap()).await.len(), 1);
    }
    // One DELETED transition: the job moved once, by the job deletion.
    let j = job(&app, &id).await;
    assert_eq!(j["transitions"].as_array().unwrap().iter().filter(|t| t["to"] == "DELETED").count(), 1);
}

async fn approval_mode_lists_expired_files_and_deletes_only_what_is_approved(app: TestApp) {
    set_policy(&app, "DELETION_APPROVAL", json!(true)).await;
    let admin = app.admin();
    let id = completed_job(&app, &["1001", "1002", "1003"], 1).await;
    let j = job(&app, &id).await;
    let rows = rows(&app, &j).await;
    let ids: Vec<String> = files(&j).iter().map(|f| f["id"].as_str().unwrap().to_string()).collect();
    let pending_q = "{ pendingDeletions(first: 50) { totalCount edges { node { id deletionPendingSince job { id } } } } }";

    app.clock().set(retention_until(&rows) - chrono::Duration::seconds(1));
    app.run_periodic("retention").await;
    assert_eq!(app.data(&admin, pending_q, json!({})).await["pendingDeletions"]["totalCount"], 0, "not before the retention ends");

    app.clock().set(retention_until(&rows) + chrono::Duration::hours(1));
    app.run_periodic("retention").await;
    app.run_periodic("retention").await;
    let p = app.data(&admin, pending_q, json!({})).await;
    assert_eq!(p["pendingDeletions"]["totalCount"], 3, "{p:#}");
    assert_eq!(p["pendingDeletions"]["edges"][0]["node"]["job"]["id"], id.as_str());
    for r in &rows {
        assert!(in_storage(&app, r).await, "nothing deleted without approval");
    }
    for f in &ids {
        assert_eq!(audit(&app, "DELETION_PENDING", f).await.len(), 1, "pending once per file");
    }
    // Teachers decide in their courses; others do not see these files.
    let other = app.token(&[Role::Teacher], &["102"], &[]);
    assert_eq!(app.data(&other, pending_q, json!({})).await["pendingDeletions"]["totalCount"], 0);
    let reporter = app.token(&[Role::Reporter], &[], &[]);
    assert_eq!(common::error_codes(&app.gql(Some(&reporter), pending_q, json!({})).await), vec!["FORBIDDEN"]);

    let decide = "mutation($i: DecidePendingDeletionsInput!) { decidePendingDeletions(input: $i) { files { id deletedAt deletionReason deletedBy deletionDecision { decision by reason } } userErrors { field code } } }";
    let teacher = app.token(&[Role::Teacher], &["101"], &[]);
    let body = app.gql(Some(&teacher), decide, json!({"i": {"fileIds": [ids[0]], "approve": false}})).await;
    assert_eq!(body["data"]["decidePendingDeletions"]["userErrors"][0]["code"], "EMPTY", "a denial needs a reason: {body}");
    let body = app.gql(Some(&other), decide, json!({"i": {"fileIds": [ids[0], ids[1]], "approve": true}})).await;
    assert_eq!(body["data"]["decidePendingDeletions"]["userErrors"][0]["code"], "NOT_FOUND", "{body}");
    assert_eq!(body["data"]["decidePendingDeletions"]["files"], json!([]));

    let body = app.gql(Some(&teacher), decide, json!({"i": {"fileIds": [ids[0]], "approve": false, "reason": "exam appeal pending"}})).await;
    let d = &body["data"]["decidePendingDeletions"];
    assert_eq!(d["userErrors"], json!([]), "{body}");
    assert_eq!(d["files"][0]["deletionDecision"], json!({"decision": "DENIED", "by": "test-teacher", "reason": "exam appeal pending"}));
    assert!(d["files"][0]["deletedAt"].is_null());
    // A decided file cannot be decided again; mixing it in decides nothing.
    let body = app.gql(Some(&teacher), decide, json!({"i": {"fileIds": [ids[1], ids[0]], "approve": true}})).await;
    assert_eq!(body["data"]["decidePendingDeletions"]["userErrors"], json!([{"field": ["fileIds", "1"], "code": "INVALID_STATE"}]), "{body}");
    assert!(row(&app, &json!(ids[1])).await.deleted_at.is_none());

    let body = app.gql(Some(&teacher), decide, json!({"i": {"fileIds": [ids[1], ids[2]], "approve": true, "reason": "retention ended"}})).await;
    let d = &body["data"]["decidePendingDeletions"];
    assert_eq!(d["userErrors"], json!([]), "{body}");
    assert_eq!(d["files"].as_array().unwrap().len(), 2);
    for f in d["files"].as_array().unwrap() {
        assert_eq!(f["deletionReason"], "DELETION_APPROVED");
        assert_eq!(f["deletedBy"], "test-teacher");
        assert_eq!(f["deletionDecision"]["decision"], "APPROVED");
    }
    assert!(in_storage(&app, &rows[0]).await);
    assert!(!in_storage(&app, &rows[1]).await && !in_storage(&app, &rows[2]).await);
    assert_eq!(app.data(&admin, pending_q, json!({})).await["pendingDeletions"]["totalCount"], 0);

    // The denied file is not proposed again, nor deleted when approval is switched off.
    app.clock().advance(chrono::Duration::days(30));
    app.run_periodic("retention").await;
    set_policy(&app, "DELETION_APPROVAL", json!(false)).await;
    app.run_periodic("retention").await;
    assert!(row(&app, &json!(ids[0])).await.deleted_at.is_none());
    assert_eq!(app.data(&admin, pending_q, json!({})).await["pendingDeletions"]["totalCount"], 0);
    assert_eq!(job(&app, &id).await["status"], "COMPLETED", "a kept file keeps its job");

    let denied = audit(&app, "DELETION_DENIED", &ids[0]).await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["actor"], "test-teacher");
    assert_eq!(denied[0]["details"]["reason"], "exam appeal pending");
    for f in &ids[1..] {
        let approved = audit(&app, "DELETION_APPROVED", f).await;
        assert_eq!(approved.len(), 1);
        assert_eq!(approved[0]["details"]["reason"], "retention ended");
        assert_eq!(audit(&app, "FILE_DELETED", f).await.len(), 1);
    }
}

async fn without_auto_delete_expired_files_stay(app: TestApp) {
    set_policy(&app, "AUTO_DELETE", json!(false)).await;
    let id = completed_job(&app, &["1001"], 1).await;
    let rows = rows(&app, &job(&app, &id).await).await;
    app.clock().set(retention_until(&rows) + chrono::Duration::days(400));
    app.run_periodic("retention").await;
    let j = job(&app, &id).await;
    assert!(files(&j)[0]["deletedAt"].is_null() && files(&j)[0]["deletionPendingSince"].is_null(), "{j:#}");
    assert!(in_storage(&app, &rows[0]).await);
    assert_eq!(audit_log::Entity::find().count(&app.state.db).await.unwrap(), 0, "nothing happened, nothing recorded");
}

on_both_databases!(
    files_retention_ends_exactly_at_retention_until,
    legal_holds_stop_every_deletion_until_released,
    manual_deletion_needs_a_reason_and_the_delete_capability,
    job_deletion_goes_through_the_file_path_and_is_audited,
    approval_mode_lists_expired_files_and_deletes_only_what_is_approved,
    without_auto_delete_expired_files_stay,
);

/// Deleters racing for the same files: on PostgreSQL two processes (two app states with pools of
/// their own on one database), each with a retention sweep and direct deletions through the one
/// path; on SQLite the same within one process. Every file is deleted once and recorded once.
async fn concurrent_deleters_delete_and_record_each_file_once(backend: Backend) {
    // The app's own periodic runner stays out of the race: its next sweep is years away.
    let app = TestApp::start_with(backend, |s| s.retention_interval_seconds = 10 * 365 * 86_400).await;
    let id = completed_job(&app, &["1001", "1002", "1003"], 1).await;
    let rows = rows(&app, &job(&app, &id).await).await;
    let until = retention_until(&rows) + chrono::Duration::seconds(1);
    let mut engines = vec![app.state.engine.clone()];
    let _second; // the second process's state lives until the end of the test
    if backend == Backend::Postgres {
        let dir = tempfile::tempdir().unwrap();
        let state = archiving_manager::app::AppState::init(common::settings_for(dir.path(), app.database_url.clone())).await.unwrap();
        engines.push(state.engine.clone());
        _second = Some((state, dir));
    } else {
        _second = None;
    }
    for e in &engines {
        e.clock.set(until);
    }
    let mut tasks = Vec::new();
    for round in 0..4 {
        for (n, e) in engines.iter().enumerate() {
            let e = e.clone();
            let rows = rows.clone();
            tasks.push(tokio::spawn(async move {
                if round == 0 {
                    return retention::sweep(&e).await.unwrap().deleted;
                }
                let actor = archiving_manager::service::audit::Actor::system("test");
                let d = Deletion::by_server(actor, &format!("racer-{n}"), archiving_manager::domain::DeletionReason::RetentionExpired, e.clock.now());
                let mut now = 0;
                for f in &rows {
                    if let Deleted::Now(_) = files::delete(&e.jobs, f, &d).await.unwrap() {
                        now += 1;
                    }
                }
                now
            }));
        }
    }
    let mut deleted = 0;
    for t in tasks {
        deleted += t.await.unwrap();
    }
    assert_eq!(deleted, rows.len() as u64, "each file deleted by exactly one of the racers");
    for r in &rows {
        let fid = files::file_global_id(r.id);
        let entries = audit_log::Entity::find()
            .filter(audit_log::Column::Action.eq("FILE_DELETED"))
            .filter(audit_log::Column::TargetId.eq(fid.as_str()))
            .count(&app.state.db)
            .await
            .unwrap();
        assert_eq!(entries, 1, "one audit entry for file {}", r.id);
        assert!(row(&app, &json!(fid)).await.deleted_at.is_some());
        assert!(!in_storage(&app, r).await);
    }
    let events = job_event::Entity::find().filter(job_event::Column::Kind.eq("FILE_DELETED")).count(&app.state.db).await.unwrap();
    assert_eq!(events, rows.len() as u64, "one event per deleted file");
    let j = job(&app, &id).await;
    assert_eq!(j["status"], "DELETED");
    assert_eq!(j["transitions"].as_array().unwrap().iter().filter(|t| t["to"] == "DELETED").count(), 1);
}

with_each_backend!(concurrent_deleters_delete_and_record_each_file_once);
