//! Storage backends managed through the API, on both databases: update (rename, switches, tier,
//! settings with write-only secrets), delete (refused while anything still depends on it), the
//! health check (on demand and periodic, with used bytes under an S3 prefix), jobs that wait
//! while their backend is disabled or unhealthy and finish when it is back, and the secrets
//! guarantee: a backend's secret appears in no answer, log line or audit entry.
mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
};

use archiving_manager::entity::{audit_log, job_log, periodic_run, storage_backend};
use common::{
    jobs::{activity_ids, create, wait_for},
    moto::MotoServer,
    Backend, TestApp,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

const BACKEND_FIELDS: &str = "id name driver tier enabled isDefault deletedAt health { checkedAt reachable freeBytes usedBytes error }";

async fn create_backend(app: &TestApp, name: &str, driver: &str, settings: Value) -> Value {
    let q = format!("mutation($i: CreateStorageBackendInput!) {{ createStorageBackend(input: $i) {{ storageBackend {{ {BACKEND_FIELDS} }} userErrors {{ field code message }} }} }}");
    app.gql(Some(&app.admin()), &q, json!({"i": {"name": name, "driver": driver, "settings": settings}})).await
}

/// Creates a local-directory backend under the test's data directory; returns it.
async fn local_backend(app: &TestApp, name: &str) -> Value {
    let dir = app.data_dir.path().join(format!("backend-{name}"));
    let body = create_backend(app, name, "LOCAL_DIRECTORY", json!({"path": dir})).await;
    let b = body["data"]["createStorageBackend"]["storageBackend"].clone();
    assert!(b.is_object(), "{body:#}");
    b
}

async fn update(app: &TestApp, input: Value) -> Value {
    let q = format!("mutation($i: UpdateStorageBackendInput!) {{ updateStorageBackend(input: $i) {{ storageBackend {{ {BACKEND_FIELDS} }} userErrors {{ field code message }} }} }}");
    app.gql(Some(&app.admin()), &q, json!({"i": input})).await
}

async fn delete(app: &TestApp, id: &Value) -> Value {
    let q = format!("mutation($i: StorageBackendIdInput!) {{ deleteStorageBackend(input: $i) {{ storageBackend {{ {BACKEND_FIELDS} }} userErrors {{ field code message }} }} }}");
    app.gql(Some(&app.admin()), &q, json!({"i": {"id": id}})).await
}

async fn check(app: &TestApp, id: &Value) -> Value {
    let q = format!("mutation($i: StorageBackendIdInput!) {{ checkStorageBackend(input: $i) {{ {BACKEND_FIELDS} }} }}");
    app.gql(Some(&app.admin()), &q, json!({"i": {"id": id}})).await
}

fn codes(payload: &Value) -> Vec<String> {
    payload["userErrors"].as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap().to_string()).collect()
}

async fn audit_entries(app: &TestApp, action: &str) -> Vec<Value> {
    let q = "query($f: AuditLogFilter) { auditLog(filter: $f, first: 100) { edges { node { actor actorRoles origin action targetType targetId details at } } } }";
    let d = app.data(&app.admin(), q, json!({"f": {"actions": [action]}})).await;
    d["auditLog"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect()
}

async fn stored_settings(app: &TestApp, name: &str) -> Value {
    let row = storage_backend::Entity::find()
        .filter(storage_backend::Column::Name.eq(name))
        .filter(storage_backend::Column::DeletedAt.is_null())
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    row.settings
}

/// Creates a job for demo activity 1001 on the backend `id`; returns the job id.
async fn job_on(app: &TestApp, backend_id: &Value) -> String {
    let acts = activity_ids(app, &["1001"]).await;
    let body = create(app, &app.admin(), json!({"activityIds": acts, "storageBackendIds": [backend_id]})).await;
    body["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap_or_else(|| panic!("{body:#}")).to_string()
}

async fn rename_switch_and_re_tier_are_audited(app: TestApp) {
    let b = local_backend(&app, "second").await;
    let id = b["id"].clone();
    assert_eq!((b["enabled"].as_bool(), b["isDefault"].as_bool(), b["tier"].as_str()), (Some(true), Some(false), Some("REMOTE_FAST")));

    let body = update(&app, json!({"id": id, "name": "renamed", "tier": "REMOTE_SLOW", "enabled": false})).await;
    let b = &body["data"]["updateStorageBackend"]["storageBackend"];
    assert_eq!((b["name"].as_str(), b["tier"].as_str(), b["enabled"].as_bool()), (Some("renamed"), Some("REMOTE_SLOW"), Some(false)), "{body:#}");
    let entries = audit_entries(&app, "STORAGE_BACKEND_UPDATED").await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let e = &entries[0];
    assert_eq!(e["targetType"], "StorageBackend");
    assert_eq!(e["targetId"], id, "the audit names the backend by its global id");
    assert_eq!(e["actor"], "test-admin");
    assert_eq!(e["actorRoles"], json!(["admin"]));
    assert_eq!(e["details"]["before"], json!({"name": "second", "tier": "REMOTE_FAST", "enabled": true}));
    assert_eq!(e["details"]["after"], json!({"name": "renamed", "tier": "REMOTE_SLOW", "enabled": false}));

    // A disabled backend cannot be named by a new job.
    let acts = activity_ids(&app, &["1001"]).await;
    let body = create(&app, &app.admin(), json!({"activityIds": acts, "storageBackendIds": [id]})).await;
    assert!(body["data"]["createArchiveJob"]["userErrors"][0]["message"].as_str().unwrap().contains("disabled"), "{body:#}");

    // Making it the default needs it enabled; then the old default stops being it.
    let body = update(&app, json!({"id": id, "isDefault": true})).await;
    assert_eq!(codes(&body["data"]["updateStorageBackend"]), ["INVALID_STATE"], "{body:#}");
    let body = update(&app, json!({"id": id, "isDefault": true, "enabled": true})).await;
    assert_eq!(body["data"]["updateStorageBackend"]["storageBackend"]["isDefault"], true, "{body:#}");
    let all = app.data(&app.admin(), "{ storageBackends { edges { node { name isDefault } } } }", json!({})).await;
    let defaults: Vec<&str> = all["storageBackends"]["edges"].as_array().unwrap().iter().filter(|e| e["node"]["isDefault"] == true).map(|e| e["node"]["name"].as_str().unwrap()).collect();
    assert_eq!(defaults, ["renamed"]);
    // The default can be neither disabled nor un-defaulted.
    let body = update(&app, json!({"id": id, "enabled": false})).await;
    assert_eq!(codes(&body["data"]["updateStorageBackend"]), ["INVALID_STATE"]);
    let body = update(&app, json!({"id": id, "isDefault": false})).await;
    assert_eq!(codes(&body["data"]["updateStorageBackend"]), ["INVALID_STATE"]);

    // Bad names, a taken name, a bad id, no right.
    let body = update(&app, json!({"id": id, "name": "bad name!"})).await;
    assert_eq!(codes(&body["data"]["updateStorageBackend"]), ["INVALID"]);
    let body = update(&app, json!({"id": id, "name": "local"})).await;
    assert_eq!(codes(&body["data"]["updateStorageBackend"]), ["INVALID"]);
    let other = archiving_manager_global_id(999_999);
    let body = update(&app, json!({"id": other, "name": "x"})).await;
    assert_eq!(common::error_codes(&body), ["NOT_FOUND"], "{body:#}");
    let teacher = app.token(&[archiving_manager::auth::Role::Teacher], &["101"], &[]);
    let q = "mutation($i: UpdateStorageBackendInput!) { updateStorageBackend(input: $i) { storageBackend { id } } }";
    let body = app.gql(Some(&teacher), q, json!({"i": {"id": id, "name": "hijacked"}})).await;
    assert_eq!(common::error_codes(&body), ["FORBIDDEN"], "{body:#}");

    // Nothing changed: nothing recorded.
    let before = audit_entries(&app, "STORAGE_BACKEND_UPDATED").await.len();
    let body = update(&app, json!({"id": id, "name": "renamed", "tier": "REMOTE_SLOW"})).await;
    assert!(body["data"]["updateStorageBackend"]["userErrors"].as_array().unwrap().is_empty());
    assert_eq!(audit_entries(&app, "STORAGE_BACKEND_UPDATED").await.len(), before);
    // Create is audited too, with the settings (a local path is no secret).
    let created = audit_entries(&app, "STORAGE_BACKEND_CREATED").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["details"]["name"], "second");
    assert!(created[0]["details"]["settings"]["path"].as_str().unwrap().ends_with("backend-second"));
}

fn archiving_manager_global_id(key: i64) -> String {
    archiving_manager::domain::global_id::encode("StorageBackend", key)
}

/// Secrets are write-only: settings sent without them keep the stored ones, and the backend
/// keeps working against moto with them.
async fn an_omitted_secret_keeps_the_old_one(app: TestApp) {
    let moto = MotoServer::start("keep").await;
    let mut settings = moto.settings();
    settings["prefix"] = json!("first");
    let body = create_backend(&app, "s3", "S3", settings.clone()).await;
    let b = body["data"]["createStorageBackend"]["storageBackend"].clone();
    assert_eq!(b["health"]["reachable"], true, "{body:#}");

    // New settings without the key id and the secret: a new prefix, credentials kept.
    let mut without = settings.clone();
    without.as_object_mut().unwrap().remove("access_key_id");
    without.as_object_mut().unwrap().remove("secret_access_key");
    without["prefix"] = json!("second");
    let body = update(&app, json!({"id": b["id"], "settings": without})).await;
    let updated = &body["data"]["updateStorageBackend"]["storageBackend"];
    assert_eq!(updated["health"]["reachable"], true, "the changed settings were probed: {body:#}");
    let stored = stored_settings(&app, "s3").await;
    assert_eq!(stored["secret_access_key"], common::moto::SECRET_ACCESS_KEY, "the secret was kept");
    assert_eq!(stored["access_key_id"], common::moto::ACCESS_KEY_ID);
    assert_eq!(stored["prefix"], "second");
    let e = &audit_entries(&app, "STORAGE_BACKEND_UPDATED").await[0];
    assert_eq!(e["details"]["before"]["settings"]["prefix"], "first");
    assert_eq!(e["details"]["after"]["settings"]["prefix"], "second");
    assert_eq!(e["details"]["after"]["settings"]["secret_access_key"], "***", "unchanged: shown redacted");

    // Only the key id sent: it pairs with the kept secret.
    let mut key_only = without.clone();
    key_only["access_key_id"] = json!("AKIAOTHERKEY");
    let body = update(&app, json!({"id": b["id"], "settings": key_only})).await;
    assert_eq!(body["data"]["updateStorageBackend"]["storageBackend"]["health"]["reachable"], true, "{body:#}");
    let e = &audit_entries(&app, "STORAGE_BACKEND_UPDATED").await[0];
    assert_eq!(e["details"]["after"]["settings"]["access_key_id"], "(changed)");
    assert_eq!(e["details"]["after"]["settings"]["secret_access_key"], "***");

    // The backend still stores, under the new prefix.
    let id = job_on(&app, &b["id"]).await;
    let j = wait_for(&app, &id, "COMPLETED", common::jobs::status_is("COMPLETED")).await;
    assert_eq!(j["files"][0]["storageBackend"]["name"], "s3");
    assert!(moto.log_text().contains("PUT /keep/second/"), "stored under the new prefix: {}", moto.log_text());

    // A secret set to null is removed; without the pair the settings do not open a driver.
    let body = update(&app, json!({"id": b["id"], "settings": {"bucket": "keep", "secret_access_key": null}})).await;
    let p = &body["data"]["updateStorageBackend"];
    assert_eq!(codes(p), ["INVALID"], "{body:#}");
    assert!(p["userErrors"][0]["message"].as_str().unwrap().contains("access_key_id"), "{body:#}");
    assert_eq!(stored_settings(&app, "s3").await["secret_access_key"], common::moto::SECRET_ACCESS_KEY, "a refused update changes nothing");
}

async fn delete_is_refused_while_anything_depends_on_the_backend(app: TestApp) {
    let b = local_backend(&app, "doomed").await;
    let id = b["id"].clone();
    let job_id = job_on(&app, &id).await;
    let j = wait_for(&app, &job_id, "COMPLETED", common::jobs::status_is("COMPLETED")).await;
    let file_id = j["files"][0]["id"].clone();

    let body = delete(&app, &id).await;
    let p = &body["data"]["deleteStorageBackend"];
    assert_eq!(codes(p), ["FILES_EXIST"], "{body:#}");
    assert!(p["storageBackend"].is_null());

    // The default backend cannot be deleted.
    let all = app.data(&app.admin(), "{ storageBackends { edges { node { id name } } } }", json!({})).await;
    let local = all["storageBackends"]["edges"].as_array().unwrap().iter().find(|e| e["node"]["name"] == "local").unwrap()["node"]["id"].clone();
    assert_eq!(codes(&delete(&app, &local).await["data"]["deleteStorageBackend"]), ["INVALID_STATE"]);

    // Its files deleted, it can go.
    let body = app.gql(Some(&app.admin()), "mutation($id: ID!) { deleteArchiveJob(input: {id: $id}) { userErrors { code message } } }", json!({"id": job_id})).await;
    assert!(body["data"]["deleteArchiveJob"]["userErrors"].as_array().unwrap().is_empty(), "{body:#}");

    // While the policy stores to it, no (policy values are rows of `policy_setting`; the policy
    // holds backend ids).
    use archiving_manager::entity::{policy_setting, storage_backend};
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
    let doomed = storage_backend::Entity::find().filter(storage_backend::Column::Name.eq("doomed")).one(&app.state.db).await.unwrap().unwrap();
    let row = policy_setting::ActiveModel { key: Set("STORAGE_BACKENDS".into()), value: Set(json!([doomed.id])), locked: Set(false), updated_at: Set(chrono::Utc::now()), updated_by: Set(None) }
        .insert(&app.state.db)
        .await
        .unwrap();
    let body = delete(&app, &id).await;
    assert_eq!(codes(&body["data"]["deleteStorageBackend"]), ["INVALID_STATE"], "{body:#}");
    assert!(body["data"]["deleteStorageBackend"]["userErrors"][0]["message"].as_str().unwrap().contains("policy"));
    // A rename is fine: the policy follows the id.
    for name in ["elsewhere", "doomed"] {
        let body = update(&app, json!({"id": id, "name": name})).await;
        assert!(body["data"]["updateStorageBackend"]["userErrors"].as_array().unwrap().is_empty(), "rename under the policy: {body:#}");
    }
    policy_setting::Entity::delete_by_id(row.key).exec(&app.state.db).await.unwrap();

    let body = delete(&app, &id).await;
    let gone = &body["data"]["deleteStorageBackend"]["storageBackend"];
    assert!(gone["deletedAt"].is_string(), "{body:#}");
    assert_eq!(gone["enabled"], false);
    let e = &audit_entries(&app, "STORAGE_BACKEND_DELETED").await[0];
    assert_eq!((e["targetId"].clone(), e["details"]["name"].as_str()), (id.clone(), Some("doomed")));

    // Gone from lists, lookups and the overview; the file record still says where it was.
    let all = app.data(&app.admin(), "{ storageBackends { totalCount edges { node { name } } } archivingOverview { storageBackends { name } } }", json!({})).await;
    assert!(!all.to_string().contains("doomed"), "{all:#}");
    let n = app.gql(Some(&app.admin()), "query($id: ID!) { node(id: $id) { id } }", json!({"id": id})).await;
    assert_eq!(common::error_codes(&n), ["NOT_FOUND"], "{n:#}");
    let f = app.data(&app.admin(), "query($id: ID!) { node(id: $id) { ... on ArchiveFile { deletedAt storageBackend { name deletedAt } } } }", json!({"id": file_id})).await;
    assert_eq!(f["node"]["storageBackend"]["name"], "doomed", "{f:#}");
    assert!(f["node"]["storageBackend"]["deletedAt"].is_string());
    assert_eq!(common::error_codes(&delete(&app, &id).await), ["NOT_FOUND"], "deleting twice");
    // The name is free again.
    local_backend(&app, "doomed").await;
}

/// A job that will store to a backend holds its name: no rename, no delete until it finished.
async fn unfinished_jobs_hold_their_backends(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.demo_record_delay_ms = 300).await;
    let b = local_backend(&app, "busy").await;
    let job_id = job_on(&app, &b["id"]).await;
    let body = delete(&app, &b["id"]).await;
    let p = &body["data"]["deleteStorageBackend"];
    assert_eq!(codes(p), ["INVALID_STATE"], "{body:#}");
    assert!(p["userErrors"][0]["message"].as_str().unwrap().contains("unfinished job"), "{body:#}");
    let body = update(&app, json!({"id": b["id"], "name": "other"})).await;
    assert_eq!(codes(&body["data"]["updateStorageBackend"]), ["INVALID_STATE"]);
    app.gql(Some(&app.admin()), "mutation($id: ID!) { cancelArchiveJob(input: {id: $id}) { userErrors { code } } }", json!({"id": job_id})).await;
    wait_for(&app, &job_id, "CANCELED", common::jobs::status_is("CANCELED")).await;
    let body = update(&app, json!({"id": b["id"], "name": "other"})).await;
    assert_eq!(body["data"]["updateStorageBackend"]["storageBackend"]["name"], "other", "{body:#}");
}

async fn health_is_checked_periodically_and_on_demand(app: TestApp) {
    let b = local_backend(&app, "watched").await;
    let off = local_backend(&app, "switched-off").await;
    update(&app, json!({"id": off["id"], "enabled": false})).await;
    let first = b["health"]["checkedAt"].as_str().unwrap().to_string();

    // A job puts something there: used bytes follow.
    let job_id = job_on(&app, &b["id"]).await;
    let j = wait_for(&app, &job_id, "COMPLETED", common::jobs::status_is("COMPLETED")).await;
    let size = j["files"][0]["sizeBytes"].as_str().unwrap().to_string(); // BigInt: a decimal string

    // The periodic task, a day later by the server's clock: checkedAt is the clock's time. (The
    // disabled backend's last check is read now: the runner's first run at start-up may have
    // listed it while it was still enabled.)
    let q = format!("{{ storageBackends {{ edges {{ node {{ {BACKEND_FIELDS} }} }} }} }}");
    let all = app.data(&app.admin(), &q, json!({})).await;
    let off_checked = all["storageBackends"]["edges"].as_array().unwrap().iter().find(|e| e["node"]["name"] == "switched-off").unwrap()["node"]["health"]["checkedAt"].clone();
    app.clock().advance(chrono::Duration::days(1));
    let expected = app.clock().now();
    app.run_periodic("storage-health").await;
    let all = app.data(&app.admin(), &q, json!({})).await;
    let node = |name: &str| all["storageBackends"]["edges"].as_array().unwrap().iter().find(|e| e["node"]["name"] == name).unwrap()["node"].clone();
    let watched = node("watched");
    let checked_at = chrono::DateTime::parse_from_rfc3339(watched["health"]["checkedAt"].as_str().unwrap()).unwrap();
    // (A second's leeway: the answer may carry less precision than the clock.)
    assert!(checked_at >= expected - chrono::Duration::seconds(1) && checked_at < expected + chrono::Duration::hours(1), "checked at {checked_at}, clock at {expected}");
    assert_eq!(watched["health"]["reachable"], true);
    assert!(watched["health"]["freeBytes"].as_str().unwrap().parse::<u64>().unwrap() > 0);
    assert_eq!(watched["health"]["usedBytes"].as_str(), Some(size.as_str()), "the one package stored there: {watched:#}");
    assert_eq!(node("switched-off")["health"]["checkedAt"], off_checked, "disabled backends are not checked");
    assert_ne!(watched["health"]["checkedAt"].as_str().unwrap(), first);
    let run = periodic_run::Entity::find_by_id("storage-health").one(&app.state.db).await.unwrap().unwrap();
    assert!(run.error.is_none());

    // On demand, after the storage went bad: the error is recorded; then it recovers.
    let path = app.data_dir.path().join("backend-watched");
    let aside = app.data_dir.path().join("aside");
    std::fs::rename(&path, &aside).unwrap();
    std::fs::write(&path, b"a file where the directory was").unwrap();
    let body = check(&app, &b["id"]).await;
    let h = &body["data"]["checkStorageBackend"]["health"];
    assert_eq!(h["reachable"], false, "{body:#}");
    assert!(h["error"].as_str().unwrap().len() > 3, "{body:#}");
    let overview = app.data(&app.admin(), "{ archivingOverview { storageBackends { name enabled health { reachable error } } } }", json!({})).await;
    let shown = overview["archivingOverview"]["storageBackends"].as_array().unwrap().iter().find(|x| x["name"] == "watched").unwrap().clone();
    assert_eq!(shown["health"]["reachable"], false, "the overview shows the health: {overview:#}");
    std::fs::remove_file(&path).unwrap();
    std::fs::rename(&aside, &path).unwrap();
    app.run_periodic("storage-health").await;
    let body = check(&app, &b["id"]).await;
    assert_eq!(body["data"]["checkStorageBackend"]["health"]["reachable"], true, "{body:#}");
    assert!(body["data"]["checkStorageBackend"]["health"]["error"].is_null());
}

async fn s3_used_bytes_are_the_objects_under_the_prefix(app: TestApp) {
    let moto = MotoServer::start("used").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // moto takes unsigned requests: objects under the prefix, and one beside it.
    for (key, len) in [("pre/a", 100usize), ("pre/deeper/b", 23), ("prefixed-but-other/c", 1000), ("other/d", 7)] {
        let res = http.put(format!("{}/used/{key}", moto.endpoint())).body(vec![b'x'; len]).send().await.unwrap();
        assert!(res.status().is_success(), "{key}: {}", res.status());
    }
    let mut settings = moto.settings();
    settings["prefix"] = json!("pre");
    let body = create_backend(&app, "s3", "S3", settings).await;
    let b = &body["data"]["createStorageBackend"]["storageBackend"];
    assert_eq!(b["health"]["usedBytes"], "123", "{body:#}");
    assert!(b["health"]["freeBytes"].is_null(), "S3 tells no free space");
    let http_put = http.put(format!("{}/used/pre/c", moto.endpoint())).body(vec![b'y'; 77]).send().await.unwrap();
    assert!(http_put.status().is_success());
    let body = check(&app, &b["id"]).await;
    assert_eq!(body["data"]["checkStorageBackend"]["health"]["usedBytes"], "200", "{body:#}");
}

/// A disabled backend is not written to: the job waits (RECOVERABLE_ERROR) and completes once
/// the backend is enabled again.
async fn a_job_waits_while_its_backend_is_disabled(backend: Backend) {
    let app = TestApp::start_with(backend, |s| {
        s.demo_record_delay_ms = 100;
        s.max_retries = 30;
    })
    .await;
    let b = local_backend(&app, "paused").await;
    let job_id = job_on(&app, &b["id"]).await;
    let body = update(&app, json!({"id": b["id"], "enabled": false})).await;
    assert_eq!(body["data"]["updateStorageBackend"]["storageBackend"]["enabled"], false, "{body:#}");
    let j = wait_for(&app, &job_id, "RECOVERABLE_ERROR", common::jobs::status_is("RECOVERABLE_ERROR")).await;
    assert!(j["error"].as_str().unwrap().contains("storage backend paused is disabled"), "{j:#}");
    assert!(j["files"].as_array().unwrap().is_empty());
    let dir = app.data_dir.path().join("backend-paused");
    assert_eq!(count_files(&dir), 0, "nothing was written to the disabled backend");
    update(&app, json!({"id": b["id"], "enabled": true})).await;
    let j = wait_for(&app, &job_id, "COMPLETED", common::jobs::status_is("COMPLETED")).await;
    assert_eq!(j["files"][0]["storageBackend"]["name"], "paused");
    assert_eq!(count_files(&dir), 1);
}

fn count_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| if e.file_type().unwrap().is_dir() { count_files(&e.path()) } else { 1 })
        .sum()
}

/// A backend whose health check failed is not written to: the job waits, each retry probes the
/// backend again, and once it is back the job completes.
async fn a_job_waits_while_its_backend_is_unhealthy(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.max_retries = 30).await;
    let moto = MotoServer::start("flaky").await;
    let port = moto.port;
    let body = create_backend(&app, "s3", "S3", moto.settings()).await;
    let b = body["data"]["createStorageBackend"]["storageBackend"].clone();
    assert_eq!(b["health"]["reachable"], true, "{body:#}");
    drop(moto);
    let body = check(&app, &b["id"]).await;
    assert_eq!(body["data"]["checkStorageBackend"]["health"]["reachable"], false, "{body:#}");

    let job_id = job_on(&app, &b["id"]).await;
    let j = wait_for(&app, &job_id, "RECOVERABLE_ERROR at STORE", |j| j["status"] == "RECOVERABLE_ERROR" && j["error"].as_str().is_some_and(|e| e.contains("health check"))).await;
    assert!(j["error"].as_str().unwrap().contains("storage backend s3 failed its health check"), "{j:#}");

    let _moto = MotoServer::start_on(port, "flaky").await;
    let j = wait_for(&app, &job_id, "COMPLETED", common::jobs::status_is("COMPLETED")).await;
    assert_eq!(j["files"][0]["storageBackend"]["name"], "s3");
    let body = app.data(&app.admin(), &format!("{{ archivingOverview {{ storageBackends {{ name health {{ reachable }} }} }} }}"), json!({})).await;
    let s3 = body["archivingOverview"]["storageBackends"].as_array().unwrap().iter().find(|x| x["name"] == "s3").unwrap().clone();
    assert_eq!(s3["health"]["reachable"], true, "the job's probe was recorded: {body:#}");
}

/// Everything the server logs in this test binary, from every test in it.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Buffer(buffer.clone());
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .try_init()
            .expect("the only subscriber of this test binary");
        buffer
    })
    .clone()
}

#[derive(Clone)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// THE SECRETS TEST. A backend configured with distinctive secrets goes through everything
/// (create, updates, checks reachable and not, lists, the overview, node lookups, a job, refused
/// settings quoting the secret, the periodic health check); then every answer, every log line
/// the server wrote and every audit row is searched for the secrets: they are nowhere.
async fn the_secrets_appear_in_no_answer_log_or_audit_entry(backend: Backend) {
    let logs = captured_logs();
    let app = TestApp::start(backend).await;
    let admin = app.admin();
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let secret = format!("Sekr1t-{unique}");
    let second = format!("Zweit-{unique}");
    let token = format!("T0ken-{unique}");
    let key_id = format!("AKIA{}", &unique[..16].to_uppercase());
    let mut answers: Vec<Value> = Vec::new();

    let moto = MotoServer::start("secrets").await;
    let port = moto.port;
    let mut settings = moto.settings();
    settings["secret_access_key"] = json!(secret);
    settings["access_key_id"] = json!(key_id);
    settings["session_token"] = json!(token);
    let body = create_backend(&app, "vault", "S3", settings.clone()).await;
    let b = body["data"]["createStorageBackend"]["storageBackend"].clone();
    assert_eq!(b["health"]["reachable"], true, "{body:#}");
    answers.push(body);
    let id = b["id"].clone();

    // Updates: without the secrets, then with a new one; refused ones quoting the secret.
    let mut without = settings.clone();
    for k in ["secret_access_key", "access_key_id", "session_token"] {
        without.as_object_mut().unwrap().remove(k);
    }
    without["prefix"] = json!("p");
    answers.push(update(&app, json!({"id": id, "name": "vault2", "settings": without})).await);
    let mut changed = without.clone();
    changed["secret_access_key"] = json!(second);
    answers.push(update(&app, json!({"id": id, "settings": changed})).await);
    for bad in [
        json!({"bucket": "secrets", "access_key_id": null, "secret_access_key": secret}),
        json!({"bucket": "secrets", "endpoint": format!("http://user:{secret}@127.0.0.1:1")}),
        json!({"bucket": "secrets", "allow_http": secret}),
        json!({"bucket": secret, "region": 5, "secret_access_key": secret}),
        json!(secret),
    ] {
        let refused = |p: &Value| p["userErrors"].as_array().is_some_and(|e| !e.is_empty());
        let body = update(&app, json!({"id": id, "settings": bad})).await;
        assert!(refused(&body["data"]["updateStorageBackend"]), "refused: {body:#}");
        answers.push(body);
        let body = create_backend(&app, "bad", "S3", bad).await;
        assert!(refused(&body["data"]["createStorageBackend"]), "refused: {body:#}");
        answers.push(body);
    }

    // A job stores there; its log and files are read back.
    let job_id = job_on(&app, &id).await;
    let j = wait_for(&app, &job_id, "COMPLETED", common::jobs::status_is("COMPLETED")).await;
    answers.push(j);

    // Reads of every kind.
    answers.push(check(&app, &id).await);
    let q = format!("{{ storageBackends {{ edges {{ node {{ {BACKEND_FIELDS} }} }} }} archivingOverview {{ storageBackends {{ {BACKEND_FIELDS} }} }} }}");
    answers.push(app.gql(Some(&admin), &q, json!({})).await);
    answers.push(app.gql(Some(&admin), &format!("query($id: ID!) {{ node(id: $id) {{ ... on StorageBackend {{ {BACKEND_FIELDS} }} }} }}"), json!({"id": id})).await);
    answers.push(app.gql(Some(&admin), &format!("query($ids: [ID!]!) {{ nodes(ids: $ids) {{ ... on StorageBackend {{ {BACKEND_FIELDS} }} }} }}"), json!({"ids": [id]})).await);
    answers.push(app.gql(Some(&admin), "{ policy { storageBackends { name } } }", json!({})).await);

    // The storage goes away: the periodic check and a manual one record and log the failure.
    drop(moto);
    app.run_periodic("storage-health").await;
    let body = check(&app, &id).await;
    assert_eq!(body["data"]["checkStorageBackend"]["health"]["reachable"], false, "{body:#}");
    answers.push(body);
    let q = "{ auditLog(first: 100) { edges { node { actor actorRoles origin action targetType targetId details at } } } }";
    let audit = app.gql(Some(&admin), q, json!({})).await;
    assert!(audit.to_string().contains("STORAGE_BACKEND_UPDATED"), "{audit:#}");
    answers.push(audit);

    let secrets = [secret.as_str(), second.as_str(), token.as_str(), key_id.as_str()];
    for a in &answers {
        let text = a.to_string();
        for s in secrets {
            assert!(!text.contains(s), "an answer carries a secret: {text}");
        }
    }
    for row in audit_log::Entity::find().all(&app.state.db).await.unwrap() {
        let text = format!("{} {} {:?} {:?} {} {}", row.actor, row.actor_roles, row.origin, row.target_id, row.target_type, row.details);
        for s in secrets {
            assert!(!text.contains(s), "an audit entry carries a secret: {text}");
        }
    }
    for row in job_log::Entity::find().all(&app.state.db).await.unwrap() {
        for s in secrets {
            assert!(!row.message.contains(s), "a job log line carries a secret: {}", row.message);
        }
    }
    // The server did log about this backend (the search below searched something real) ...
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(text.contains("storage backend failed its health check") && text.contains("vault2"), "the capture holds the server's log");
    // ... and no secret.
    for s in secrets {
        assert!(!text.contains(s), "the log carries a secret");
    }
    // The secrets are really there, where they belong: in the backend's stored settings.
    let stored = stored_settings(&app, "vault2").await;
    assert_eq!((stored["secret_access_key"].as_str(), stored["session_token"].as_str()), (Some(second.as_str()), Some(token.as_str())));
    // A deleted backend keeps no secret at all.
    let _back = MotoServer::start_on(port, "secrets").await;
    let delete_job = app.gql(Some(&admin), "mutation($id: ID!) { deleteArchiveJob(input: {id: $id}) { userErrors { code message } } }", json!({"id": job_id})).await;
    assert_eq!(delete_job["data"]["deleteArchiveJob"]["userErrors"], json!([]), "{delete_job:#}");
    let body = delete(&app, &id).await;
    assert!(body["data"]["deleteStorageBackend"]["storageBackend"]["deletedAt"].is_string(), "{body:#}");
    let row = storage_backend::Entity::find()
        .filter(storage_backend::Column::Name.eq("vault2"))
        .filter(storage_backend::Column::DeletedAt.is_not_null())
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.settings["bucket"], "secrets", "what is no secret stays for the record");
    for s in secrets {
        assert!(!row.settings.to_string().contains(s), "the deleted backend keeps no secret: {}", row.settings);
        assert!(!body.to_string().contains(s));
    }
    for row in audit_log::Entity::find().all(&app.state.db).await.unwrap() {
        assert!(!secrets.iter().any(|s| row.details.to_string().contains(s)), "{:?}", row.details);
    }
}

on_both_databases!(
    rename_switch_and_re_tier_are_audited,
    an_omitted_secret_keeps_the_old_one,
    delete_is_refused_while_anything_depends_on_the_backend,
    health_is_checked_periodically_and_on_demand,
    s3_used_bytes_are_the_objects_under_the_prefix,
);
with_each_backend!(
    unfinished_jobs_hold_their_backends,
    a_job_waits_while_its_backend_is_disabled,
    a_job_waits_while_its_backend_is_unhealthy,
    the_secrets_appear_in_no_answer_log_or_audit_entry,
);
