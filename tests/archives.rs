//! What jobs produce, end to end through the API: a demo quiz and a demo assignment archived into
//! BagIt packages in every container format, stored on the local directory and on an
//! S3-compatible server at once, downloaded through their signed URLs, unpacked by the system's
//! tools and validated by the independent `bagit.py`. And the archive state of an activity
//! following its LMS data.
mod common;

use std::time::{Duration, Instant};

use common::{bagit, moto::MotoServer, TestApp};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

async fn ids(app: &TestApp, lms: &[&str]) -> Vec<Value> {
    let d = app.data(&app.admin(), "{ activities(first: 100) { edges { node { id lmsId } } } }", json!({})).await;
    lms.iter().map(|l| d["activities"]["edges"].as_array().unwrap().iter().find(|e| e["node"]["lmsId"] == *l).unwrap()["node"]["id"].clone()).collect()
}

async fn run_job(app: &TestApp, input: Value) -> Value {
    let admin = app.admin();
    let body = app.gql(Some(&admin), "mutation($i: CreateArchiveJobInput!) { createArchiveJob(input: $i) { job { id } userErrors { code message } } }", json!({"i": input})).await;
    let id = body["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap_or_else(|| panic!("{body}")).to_string();
    let q = "query($id: ID!) { archiveJob(id: $id) { status error tasks { activity { lmsId archiveState lastArchivedAt } } files { fileName sizeBytes sha256 mediaType downloadUrl storageBackend { name } } } }";
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let j = app.data(&admin, q, json!({"id": id})).await["archiveJob"].clone();
        if j["status"] == "COMPLETED" {
            return j;
        }
        assert!(!matches!(j["status"].as_str(), Some("FAILURE" | "TIMEOUT" | "CANCELED")), "{j:#}");
        assert!(Instant::now() < deadline, "not completed: {j:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn packages_validate_in_every_format_on_every_backend(app: TestApp) {
    let admin = app.admin();
    let moto = MotoServer::start("archives").await;
    let q = "mutation($i: CreateStorageBackendInput!) { createStorageBackend(input: $i) { storageBackend { id health { reachable } } userErrors { message } } }";
    let body = app.gql(Some(&admin), q, json!({"i": {"name": "s3", "driver": "S3", "settings": moto.settings()}})).await;
    let s3 = body["data"]["createStorageBackend"]["storageBackend"].clone();
    assert_eq!(s3["health"]["reachable"], true, "{body}");
    let local = app.storage_backend_id("local").await;
    let acts = ids(&app, &["1001", "1003"]).await; // a quiz and an assignment of course 101
    let work = tempfile::tempdir().unwrap();
    for (format, ext, media) in [("ZIP", ".zip", "application/zip"), ("TAR_GZ", ".tar.gz", "application/gzip"), ("TAR_ZST", ".tar.zst", "application/zstd")] {
        let j = run_job(&app, json!({"activityIds": acts, "format": format, "storageBackendIds": [local, s3["id"]]})).await;
        let files = j["files"].as_array().unwrap();
        assert_eq!(files.len(), 4, "two packages on two backends: {j:#}");
        for f in files {
            let name = f["fileName"].as_str().unwrap();
            assert!(name.ends_with(ext), "{name}");
            assert_eq!(f["mediaType"], media);
            let res = app.http().get(f["downloadUrl"].as_str().unwrap()).send().await.unwrap();
            assert_eq!(res.status(), 200, "{format} {name} from {}", f["storageBackend"]["name"]);
            assert_eq!(res.headers()["etag"].to_str().unwrap(), format!("\"{}\"", f["sha256"].as_str().unwrap()));
            let bytes = res.bytes().await.unwrap();
            assert_eq!(hex::encode(Sha256::digest(&bytes)), f["sha256"].as_str().unwrap());
            let dir = work.path().join(format!("{format}-{}", f["storageBackend"]["name"].as_str().unwrap()));
            std::fs::create_dir_all(&dir).unwrap();
            let pkg = dir.join(name);
            std::fs::write(&pkg, &bytes).unwrap();
            let bag = bagit::unpack(&pkg, &dir.join(format!("unpacked-{name}")));
            bagit::validate(&bag).unwrap_or_else(|e| panic!("{format} {name}: bagit.py --validate failed: {e}"));
        }
        // The same package on both backends.
        for name in files.iter().map(|f| f["fileName"].as_str().unwrap()) {
            let copies: Vec<&Value> = files.iter().filter(|f| f["fileName"] == name).collect();
            assert_eq!(copies.len(), 2);
            assert_eq!(copies[0]["sha256"], copies[1]["sha256"]);
        }
    }
    // What S3 holds is what the API says: one object per package, no leftovers.
    assert!(moto.log_text().contains("PUT"), "the S3 server was used");
}

/// NEVER_ARCHIVED → ARCHIVED → CHANGED (a new attempt in the LMS) → ARCHIVED again.
async fn archive_state_follows_the_lms_data(app: TestApp) {
    let admin = app.admin();
    async fn state(app: &TestApp) -> Value {
        let d = app.data(&app.admin(), "{ activities(filter: {search: \"Midterm\"}, first: 100) { edges { node { lmsId archiveState lastArchivedAt } } } }", json!({})).await;
        d["activities"]["edges"].as_array().unwrap().iter().find(|e| e["node"]["lmsId"] == "1001").unwrap()["node"].clone()
    }
    assert_eq!(state(&app).await["archiveState"], "NEVER_ARCHIVED");
    let acts = ids(&app, &["1001"]).await;
    run_job(&app, json!({"activityIds": acts})).await;
    let archived = state(&app).await;
    assert_eq!(archived["archiveState"], "ARCHIVED");
    assert!(archived["lastArchivedAt"].is_string());

    // A student makes a new attempt: the demo LMS is told so from the command line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_archiving-manager"))
        .args(["demo", "add-attempt", "--activity", "1001"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ARCHIVING_DATA_DIR", app.data_dir.path())
        .env("ARCHIVING_DATABASE_URL", &app.database_url)
        .env("ARCHIVING_JWT_SECRET", common::SECRET)
        .env("ARCHIVING_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(state(&app).await["archiveState"], "CHANGED");
    let o = app.data(&admin, "{ archivingOverview { activities { archived changed } } }", json!({})).await;
    assert_eq!(o["archivingOverview"]["activities"], json!({"archived": 0, "changed": 1}));

    // Archiving again captures the new attempt.
    let j = run_job(&app, json!({"activityIds": acts})).await;
    assert_eq!(j["tasks"][0]["activity"]["archiveState"], "ARCHIVED");
    assert_eq!(state(&app).await["archiveState"], "ARCHIVED");
}

on_both_databases!(packages_validate_in_every_format_on_every_backend, archive_state_follows_the_lms_data);
