//! Fixity audits on SQLite and PostgreSQL, with time moved instead of waited for: a bit flipped
//! in a stored package (on the local directory and on an S3-compatible server) is found by the
//! next periodic audit and by `verifyArchiveFile`, shown on the file and in the overview, raised
//! as an event on the job and kept in the audit log; a removed object is MISSING; a backend that
//! does not answer is no verdict on its files; each file is checked once per period, never-checked
//! and oldest-checked first, within the per-run budget.
//!
//! The periodic runner of the test app runs `fixity` once at start (no files yet) and, with the
//! interval of a century, never again: the tests run it themselves with `run_periodic`.
mod common;

use archiving_manager::{
    auth::Role,
    config::Settings,
    entity::{archive_file, job_event, job_log, storage_backend},
};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use common::{
    error_codes,
    jobs::{activity_ids, create, status_is, wait_for},
    moto::MotoServer,
    Backend, TestApp,
};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};

const PERIOD_DAYS: i64 = 30;
const FILE_FIELDS: &str = "id fileName lastVerifiedAt lastVerification lastVerificationDetail storageBackend { name }";
const VERIFY: &str = "mutation($i: VerifyArchiveFileInput!) { verifyArchiveFile(input: $i) {
    result file { id lastVerifiedAt lastVerification lastVerificationDetail } userErrors { field code message } } }";

async fn start(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    TestApp::start_with(backend, |s| {
        s.fixity_interval_seconds = 100 * 365 * 86_400;
        s.fixity_period_seconds = (PERIOD_DAYS * 86_400) as u64;
        tweak(s);
    })
    .await
}

/// A completed job of course 101 archiving `lms_ids` on the backends `backend_ids` (none: the
/// default); its id.
async fn completed_job(app: &TestApp, lms_ids: &[&str], backend_ids: &[Value]) -> String {
    let acts = activity_ids(app, lms_ids).await;
    let mut input = json!({"activityIds": acts});
    if !backend_ids.is_empty() {
        input["storageBackendIds"] = json!(backend_ids);
    }
    let body = create(app, &app.admin(), input).await;
    let id = body["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap_or_else(|| panic!("job created: {body}")).to_string();
    wait_for(app, &id, "COMPLETED", status_is("COMPLETED")).await;
    id
}

/// The job's files, by file name and backend name.
async fn files(app: &TestApp, job_id: &str) -> Vec<Value> {
    let q = format!("query($id: ID!) {{ archiveJob(id: $id) {{ files {{ {FILE_FIELDS} }} }} }}");
    let mut fs = app.data(&app.admin(), &q, json!({"id": job_id})).await["archiveJob"]["files"].as_array().unwrap().clone();
    fs.sort_by_key(|f| (f["storageBackend"]["name"].as_str().unwrap().to_string(), f["fileName"].as_str().unwrap().to_string()));
    fs
}

fn key_of(id: &Value) -> i64 {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id.as_str().unwrap()).unwrap();
    String::from_utf8(raw).unwrap().split_once(':').unwrap().1.parse().unwrap()
}

async fn row(app: &TestApp, id: &Value) -> archive_file::Model {
    archive_file::Entity::find_by_id(key_of(id)).one(&app.state.db).await.unwrap().unwrap()
}

/// Where the local directory backend keeps the file's object.
async fn local_path(app: &TestApp, f: &archive_file::Model) -> std::path::PathBuf {
    let b = storage_backend::Entity::find_by_id(f.storage_backend_id).one(&app.state.db).await.unwrap().unwrap();
    std::path::Path::new(b.settings["path"].as_str().unwrap()).join(&f.storage_key)
}

/// Flips one bit in the middle of a local file (stored objects are read-only: made writable first).
fn flip_bit(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// Replaces a stored object with the same bytes but one bit flipped, through its own driver
/// (create-only, so: removed, then stored again under the same key).
async fn flip_bit_in_storage(app: &TestApp, f: &archive_file::Model) {
    use futures::TryStreamExt;
    let (_, driver) = archiving_manager::storage::files::backend(&app.state.db, f.storage_backend_id).await.unwrap();
    let obj = driver.get(&f.storage_key, None).await.unwrap();
    let mut bytes: Vec<u8> = obj.stream.map_ok(|b| b.to_vec()).try_concat().await.unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &bytes).unwrap();
    driver.delete(&f.storage_key).await.unwrap();
    driver.put_file(&f.storage_key, tmp.path(), &archiving_manager::storage::sha256_hex(&bytes)).await.unwrap();
}

async fn overview_fixity(app: &TestApp) -> Value {
    let q = "{ archivingOverview { storedFiles fixity { ok mismatch missing unreadable neverVerified } } }";
    app.data(&app.admin(), q, json!({})).await["archivingOverview"]["fixity"].clone()
}

/// Audit entries of `action` about the object `target_id`.
async fn audit(app: &TestApp, action: &str, target_id: &Value) -> Vec<Value> {
    let q = "query($f: AuditLogFilter) { auditLog(filter: $f, first: 100) { edges { node { actor origin action details } } } }";
    let d = app.data(&app.admin(), q, json!({"f": {"actions": [action], "targetId": target_id}})).await;
    d["auditLog"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect()
}

async fn fixity_events(app: &TestApp) -> u64 {
    job_event::Entity::find().filter(job_event::Column::Kind.eq("FIXITY_FAILED")).count(&app.state.db).await.unwrap()
}

async fn verify(app: &TestApp, token: &str, id: &Value) -> Value {
    app.gql(Some(token), VERIFY, json!({"i": {"fileId": id}})).await
}

async fn a_flipped_bit_is_found_on_local_and_s3_by_the_next_audit(backend: Backend) {
    let app = start(backend, |_| {}).await;
    let admin = app.admin();
    let moto = MotoServer::start("fixity").await;
    // One retry only: the outage below is found quickly.
    let mut settings = moto.settings();
    settings["max_retries"] = json!(1);
    let q = "mutation($i: CreateStorageBackendInput!) { createStorageBackend(input: $i) { storageBackend { id } userErrors { message } } }";
    let body = app.gql(Some(&admin), q, json!({"i": {"name": "s3", "driver": "S3", "settings": settings}})).await;
    let s3 = body["data"]["createStorageBackend"]["storageBackend"]["id"].clone();
    let local = app.storage_backend_id("local").await;
    let job = completed_job(&app, &["1001"], &[local, s3]).await;
    let fs = files(&app, &job).await;
    assert_eq!(fs.len(), 2, "{fs:#?}");
    assert!(fs.iter().all(|f| f["lastVerification"].is_null() && f["lastVerifiedAt"].is_null()), "not checked yet: {fs:#?}");
    assert_eq!(overview_fixity(&app).await, json!({"ok": 0, "mismatch": 0, "missing": 0, "unreadable": 0, "neverVerified": 2}));

    // Whole seconds: PostgreSQL keeps microseconds, and the tests compare what it read back.
    let t0 = Utc::now().trunc_subsecs(0);
    app.clock().set(t0);
    app.run_periodic("fixity").await;
    let fs = files(&app, &job).await;
    for f in &fs {
        assert_eq!(f["lastVerification"], "OK", "{f:#}");
        assert!(f["lastVerificationDetail"].is_null());
        assert_eq!(row(&app, &f["id"]).await.last_verified_at, Some(t0), "by the engine's clock");
    }
    assert_eq!(overview_fixity(&app).await["ok"], 2);
    assert_eq!(fixity_events(&app).await, 0, "intact files raise nothing");

    // One bit flipped in each stored package.
    let (local_file, s3_file) = (row(&app, &fs[0]["id"]).await, row(&app, &fs[1]["id"]).await);
    assert_eq!(fs[0]["storageBackend"]["name"], "local");
    flip_bit(&local_path(&app, &local_file).await);
    flip_bit_in_storage(&app, &s3_file).await;

    // Within the period nothing is read again.
    app.clock().set(t0 + Duration::days(PERIOD_DAYS) - Duration::seconds(1));
    app.run_periodic("fixity").await;
    assert!(files(&app, &job).await.iter().all(|f| f["lastVerification"] == "OK"));

    // Once the period has passed, the next audit finds both.
    let t1 = t0 + Duration::days(PERIOD_DAYS);
    app.clock().set(t1);
    app.run_periodic("fixity").await;
    let fs = files(&app, &job).await;
    for f in &fs {
        assert_eq!(f["lastVerification"], "MISMATCH", "{f:#}");
        let detail = f["lastVerificationDetail"].as_str().unwrap();
        assert!(detail.contains("SHA-256") && !detail.contains("size"), "same size, other hash: {detail}");
        assert_eq!(row(&app, &f["id"]).await.last_verified_at, Some(t1));
        let entries = audit(&app, "FIXITY_MISMATCH", &f["id"]).await;
        assert_eq!(entries.len(), 1, "{entries:#?}");
        assert_eq!((entries[0]["actor"].as_str(), entries[0]["origin"].as_str()), (Some("system"), Some("periodic:fixity")));
        assert_eq!(entries[0]["details"]["result"], "MISMATCH");
        assert_eq!(entries[0]["details"]["previousResult"], "OK");
        assert!(!entries[0]["details"].to_string().contains(common::moto::SECRET_ACCESS_KEY));
    }
    assert_eq!(overview_fixity(&app).await, json!({"ok": 0, "mismatch": 2, "missing": 0, "unreadable": 0, "neverVerified": 0}));
    assert_eq!(fixity_events(&app).await, 2, "one FIXITY_FAILED event on the job per file");
    let logged = job_log::Entity::find().filter(job_log::Column::Message.contains("fixity check of")).count(&app.state.db).await.unwrap();
    assert_eq!(logged, 2, "the job's log says so");

    // S3 goes away: that is no verdict on its file, which keeps its last one; the local file is
    // checked all the same.
    drop(moto);
    let t2 = t1 + Duration::days(PERIOD_DAYS);
    app.clock().set(t2);
    app.run_periodic("fixity").await;
    let (l, s) = (row(&app, &fs[0]["id"]).await, row(&app, &fs[1]["id"]).await);
    assert_eq!((l.last_verified_at, l.last_verification.as_deref()), (Some(t2), Some("MISMATCH")));
    assert_eq!((s.last_verified_at, s.last_verification.as_deref()), (Some(t1), Some("MISMATCH")), "nothing recorded during the outage");
    let b = storage_backend::Entity::find_by_id(s.storage_backend_id).one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(b.health_reachable, Some(false), "the outage is recorded on the backend instead");
}

async fn verify_archive_file_finds_changes_and_missing_objects_on_demand(backend: Backend) {
    let app = start(backend, |_| {}).await;
    let admin = app.admin();
    let job = completed_job(&app, &["1001", "1003"], &[]).await;
    let fs = files(&app, &job).await;
    let (id, other) = (fs[0]["id"].clone(), fs[1]["id"].clone());
    let f = row(&app, &id).await;

    // Who may: AUDIT, and VIEW in the file's course.
    let teacher = app.token(&[Role::Teacher], &["101"], &[]);
    assert_eq!(error_codes(&verify(&app, &teacher, &id).await), ["FORBIDDEN"]);
    let stranger = app.token(&[Role::Teacher], &["103"], &[]);
    assert_eq!(error_codes(&verify(&app, &stranger, &id).await), ["NOT_FOUND"]);
    let auditor = app.token(&[Role::Auditor], &[], &[]);
    let body = verify(&app, &auditor, &id).await;
    let v = &body["data"]["verifyArchiveFile"];
    assert_eq!(v["result"], "OK", "{body:#}");
    assert_eq!(v["file"]["lastVerification"], "OK");
    let entries = audit(&app, "FILE_VERIFIED", &id).await;
    assert_eq!(entries.len(), 1, "an on-demand check is audited: {entries:#?}");
    assert_eq!(entries[0]["actor"], "test-auditor");
    assert_eq!(entries[0]["details"]["onDemand"], true);

    // Changed on disk after it was stored.
    let path = local_path(&app, &f).await;
    flip_bit(&path);
    let body = verify(&app, &admin, &id).await;
    let v = &body["data"]["verifyArchiveFile"];
    assert_eq!(v["result"], "MISMATCH", "{body:#}");
    assert!(v["file"]["lastVerificationDetail"].as_str().unwrap().contains(&f.sha256), "names the recorded hash: {body:#}");
    assert_eq!(audit(&app, "FIXITY_MISMATCH", &id).await[0]["actor"], "test-admin");
    assert_eq!(fixity_events(&app).await, 1);

    // Truncated: a size mismatch, found without reading the object.
    std::fs::write(&path, b"short").unwrap();
    let body = verify(&app, &admin, &id).await;
    assert_eq!(body["data"]["verifyArchiveFile"]["result"], "MISMATCH");
    assert!(body["data"]["verifyArchiveFile"]["file"]["lastVerificationDetail"].as_str().unwrap().starts_with("size 5 bytes"), "{body:#}");

    // Removed.
    std::fs::remove_file(&path).unwrap();
    let body = verify(&app, &admin, &id).await;
    assert_eq!(body["data"]["verifyArchiveFile"]["result"], "MISSING", "{body:#}");
    assert_eq!(audit(&app, "FIXITY_MISSING", &id).await.len(), 1);
    assert_eq!(fixity_events(&app).await, 3);
    let o = overview_fixity(&app).await;
    assert_eq!((o["missing"].as_u64(), o["neverVerified"].as_u64()), (Some(1), Some(1)), "{o:#}");

    // The other file is untouched, and under legal hold it is checked like any other.
    let hold = "mutation($i: SetLegalHoldInput!) { setLegalHold(input: $i) { userErrors { message } } }";
    app.data(&admin, hold, json!({"i": {"id": other, "hold": true, "reason": "court case"}})).await;
    assert_eq!(verify(&app, &admin, &other).await["data"]["verifyArchiveFile"]["result"], "OK");

    // A deleted file has nothing stored to check; the periodic audit skips it too.
    let del = "mutation($i: DeleteArchiveFileInput!) { deleteArchiveFile(input: $i) { userErrors { message } } }";
    app.data(&admin, del, json!({"i": {"id": id, "reason": "test"}})).await;
    let body = verify(&app, &admin, &id).await;
    assert_eq!(body["data"]["verifyArchiveFile"]["userErrors"][0]["code"], "INVALID_STATE", "{body:#}");
    let before = row(&app, &id).await;
    app.clock().advance(Duration::days(PERIOD_DAYS + 1));
    app.run_periodic("fixity").await;
    assert_eq!(row(&app, &id).await.last_verified_at, before.last_verified_at, "deleted files are not checked");
    assert_eq!(row(&app, &other).await.last_verification.as_deref(), Some("OK"));
}

async fn each_file_is_checked_once_per_period_oldest_first_within_the_budget(backend: Backend) {
    let app = start(backend, |s| s.fixity_max_files_per_run = 2).await;
    let job = completed_job(&app, &["1001", "1002", "1003"], &[]).await;
    let mut ids: Vec<i64> = files(&app, &job).await.iter().map(|f| key_of(&f["id"])).collect();
    ids.sort();
    assert_eq!(ids.len(), 3);
    let checked_at = |app: &TestApp| {
        let db = app.state.db.clone();
        let ids = ids.clone();
        async move {
            let mut out: Vec<Option<DateTime<Utc>>> = Vec::new();
            for id in ids {
                out.push(archive_file::Entity::find_by_id(id).one(&db).await.unwrap().unwrap().last_verified_at);
            }
            out
        }
    };

    // The budget: two files per run, never-checked ones first, by id.
    let t0 = Utc::now().trunc_subsecs(0);
    app.clock().set(t0);
    app.run_periodic("fixity").await;
    assert_eq!(checked_at(&app).await, [Some(t0), Some(t0), None]);

    // The next run takes the one left; the others are not due again within the period.
    let t1 = t0 + Duration::hours(1);
    app.clock().set(t1);
    app.run_periodic("fixity").await;
    assert_eq!(checked_at(&app).await, [Some(t0), Some(t0), Some(t1)]);
    app.run_periodic("fixity").await;
    assert_eq!(checked_at(&app).await, [Some(t0), Some(t0), Some(t1)], "nothing is due");

    // Once the period has passed for the two checked first, they are due again, and only they.
    let t2 = t0 + Duration::days(PERIOD_DAYS) + Duration::minutes(30);
    app.clock().set(t2);
    app.run_periodic("fixity").await;
    assert_eq!(checked_at(&app).await, [Some(t2), Some(t2), Some(t1)]);

    // Then the third's period ends: it is the oldest-checked, and the only one due.
    let t3 = t1 + Duration::days(PERIOD_DAYS);
    app.clock().set(t3);
    app.run_periodic("fixity").await;
    assert_eq!(checked_at(&app).await, [Some(t2), Some(t2), Some(t3)]);
    // Oldest first across the board: all due, the budget takes the two checked longest ago.
    let t4 = t3 + Duration::days(PERIOD_DAYS);
    app.clock().set(t4);
    app.run_periodic("fixity").await;
    assert_eq!(checked_at(&app).await, [Some(t4), Some(t4), Some(t3)]);
    assert_eq!(fixity_events(&app).await, 0);
}

with_each_backend!(
    a_flipped_bit_is_found_on_local_and_s3_by_the_next_audit,
    verify_archive_file_finds_changes_and_missing_objects_on_demand,
    each_file_is_checked_once_per_period_oldest_first_within_the_budget,
);
