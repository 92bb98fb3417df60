//! The policy and the archiving switches through the API, on SQLite and PostgreSQL: updatePolicy
//! round trip and validation, who may change what, locked values against caller input, jobs
//! keeping their settings, the policy's concurrency limit and log level in the engine, category
//! and activity kind switches with inheritance, and the audit entries of each action.
mod common;

use std::time::{Duration, Instant};

use archiving_manager::auth::Role;
use common::{
    error_codes,
    jobs::{activity_ids, create, job, wait_for},
    Backend, TestApp,
};
use serde_json::{json, Value};

const POLICY_FIELDS: &str = "format filenamePattern retentionDays timestamping jobTimeoutSeconds autoDelete deletionApproval
    reportOptions { html rightAnswers feedback answerHistory }
    maxConcurrentJobs maxConcurrentJobsSet jobLogLevel jobLogLevelSet locked storageBackends { id name }
    activityKinds { kind enabled setting source { origin } }";

async fn update(app: &TestApp, token: &str, input: Value) -> Value {
    let q = format!("mutation($i: UpdatePolicyInput!) {{ updatePolicy(input: $i) {{ policy {{ {POLICY_FIELDS} }} userErrors {{ field code message }} }} }}");
    app.gql(Some(token), &q, json!({"i": input})).await
}

/// `updatePolicy` that must succeed; returns the policy.
async fn update_ok(app: &TestApp, input: Value) -> Value {
    let body = update(app, &app.admin(), input).await;
    assert_eq!(body["data"]["updatePolicy"]["userErrors"], json!([]), "{body:#}");
    body["data"]["updatePolicy"]["policy"].clone()
}

async fn policy(app: &TestApp) -> Value {
    app.data(&app.admin(), &format!("{{ policy {{ {POLICY_FIELDS} }} }}"), json!({})).await["policy"].clone()
}

/// The newest audit entries of `action`, newest first.
async fn audit(app: &TestApp, action: &str) -> Vec<Value> {
    let q = "query($a: [AuditAction!]) { auditLog(filter: {actions: $a}, first: 100) { edges { node { actor actorRoles action targetType targetId details } } } }";
    let d = app.data(&app.admin(), q, json!({"a": [action]})).await;
    d["auditLog"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect()
}

async fn backend_ids(app: &TestApp) -> Vec<(String, String)> {
    let d = app.data(&app.admin(), "{ storageBackends { edges { node { id name } } } }", json!({})).await;
    d["storageBackends"]["edges"].as_array().unwrap().iter().map(|e| (e["node"]["id"].as_str().unwrap().to_string(), e["node"]["name"].as_str().unwrap().to_string())).collect()
}

/// A second local backend, for choosing among several.
async fn second_backend(app: &TestApp) -> String {
    let dir = app.data_dir.path().join("second");
    let q = "mutation($i: CreateStorageBackendInput!) { createStorageBackend(input: $i) { storageBackend { id } userErrors { code message } } }";
    let d = app.data(&app.admin(), q, json!({"i": {"name": "second", "driver": "LOCAL_DIRECTORY", "settings": {"path": dir}}})).await;
    d["createStorageBackend"]["storageBackend"]["id"].as_str().unwrap_or_else(|| panic!("backend created: {d}")).to_string()
}

fn user_errors(body: &Value, mutation: &str) -> Vec<(Value, String)> {
    body["data"][mutation]["userErrors"].as_array().unwrap_or_else(|| panic!("{body:#}")).iter().map(|e| (e["field"].clone(), e["code"].as_str().unwrap().to_string())).collect()
}

async fn update_policy_round_trips_with_an_audit_entry(app: TestApp) {
    let before = policy(&app).await;
    assert_eq!(before["format"], "ZIP");
    assert_eq!(before["maxConcurrentJobs"], 5, "the server setting while the policy has none");
    assert_eq!(before["maxConcurrentJobsSet"], false);
    assert_eq!(before["jobLogLevel"], "INFO");
    let second = second_backend(&app).await;
    let local = backend_ids(&app).await.into_iter().find(|(_, n)| n == "local").unwrap().0;
    let p = update_ok(
        &app,
        json!({
            "format": {"value": "TAR_ZST", "locked": true},
            "filenamePattern": {"value": "${courseShortName}_${activityId}_${date}"},
            "retentionDays": {"value": 30, "locked": true},
            "storageBackendIds": {"value": [local, second]},
            "timestamping": {"value": false},
            "jobTimeoutSeconds": {"value": 600, "locked": true},
            "autoDelete": false,
            "deletionApproval": true,
            "maxConcurrentJobs": 2,
            "jobLogLevel": "WARN",
        }),
    )
    .await;
    let expected = json!({
        "format": "TAR_ZST", "filenamePattern": "${courseShortName}_${activityId}_${date}", "retentionDays": 30,
        "timestamping": false, "jobTimeoutSeconds": 600, "autoDelete": false, "deletionApproval": true,
        "maxConcurrentJobs": 2, "maxConcurrentJobsSet": true, "jobLogLevel": "WARN", "jobLogLevelSet": true,
        "storageBackends": [{"id": local, "name": "local"}, {"id": second, "name": "second"}],
    });
    for (k, v) in expected.as_object().unwrap() {
        assert_eq!(&p[k], v, "{k} in the payload");
    }
    let mut locked: Vec<String> = serde_json::from_value(p["locked"].clone()).unwrap();
    locked.sort();
    assert_eq!(locked, ["FORMAT", "JOB_TIMEOUT_SECONDS", "RETENTION_DAYS"]);
    let read = policy(&app).await;
    assert_eq!(read, p, "a later read returns what the payload said");

    // The audit entry holds who and the changed fields only, with before and after.
    let entries = audit(&app, "POLICY_UPDATED").await;
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!((e["actor"].as_str(), e["targetType"].as_str()), (Some("test-admin"), Some("Policy")));
    assert_eq!(e["actorRoles"], json!(["admin"]));
    let changes = &e["details"]["changes"];
    assert_eq!(changes["format"], json!({"before": {"value": "ZIP", "locked": false}, "after": {"value": "TAR_ZST", "locked": true}}));
    assert_eq!(changes["retentionDays"], json!({"before": {"value": 3650, "locked": false}, "after": {"value": 30, "locked": true}}));
    assert_eq!(changes["maxConcurrentJobs"], json!({"before": {"value": null}, "after": {"value": 2}}));
    assert_eq!(changes["jobLogLevel"], json!({"before": {"value": null}, "after": {"value": "WARN"}}));
    assert_eq!(changes.as_object().unwrap().len(), 10, "every field changed: {changes:#}");

    // Keep forever, unlock, back to the server settings; only those change.
    let p = update_ok(&app, json!({"retentionDays": {"keepForever": true, "locked": false}, "format": {"locked": false}, "maxConcurrentJobs": null, "jobLogLevel": null})).await;
    assert_eq!((p["retentionDays"].clone(), p["format"].clone(), p["maxConcurrentJobs"].clone(), p["jobLogLevel"].clone()), (json!(null), json!("TAR_ZST"), json!(5), json!("INFO")));
    assert_eq!(p["locked"], json!(["JOB_TIMEOUT_SECONDS"]));
    let entries = audit(&app, "POLICY_UPDATED").await;
    assert_eq!(entries.len(), 2);
    let changes = entries[0]["details"]["changes"].as_object().unwrap();
    let mut keys: Vec<&str> = changes.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["format", "jobLogLevel", "maxConcurrentJobs", "retentionDays"]);
    assert_eq!(changes["format"], json!({"before": {"value": "TAR_ZST", "locked": true}, "after": {"value": "TAR_ZST", "locked": false}}));

    // A change to what already holds records nothing.
    update_ok(&app, json!({"timestamping": {"value": false}})).await;
    assert_eq!(audit(&app, "POLICY_UPDATED").await.len(), 2);
}

async fn invalid_policy_values_are_user_errors_naming_the_field(app: TestApp) {
    let admin = app.admin();
    let before = policy(&app).await;
    let second = second_backend(&app).await;
    // Disabled behind the API's back: the storage backend mutations are not this suite's.
    {
        use archiving_manager::entity::storage_backend;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        storage_backend::Entity::update_many().col_expr(storage_backend::Column::Enabled, Expr::value(false)).filter(storage_backend::Column::Name.eq("second")).exec(&app.state.db).await.unwrap();
    }
    let missing = "U3RvcmFnZUJhY2tlbmQ6OTk5OQ"; // StorageBackend:9999
    let cases = [
        (json!({"filenamePattern": {"value": "${nope}"}}), json!(["filenamePattern", "value"]), "INVALID_FILENAME_PATTERN"),
        (json!({"filenamePattern": {"value": "../${activityId}"}}), json!(["filenamePattern", "value"]), "INVALID_FILENAME_PATTERN"),
        (json!({"retentionDays": {"value": 0}}), json!(["retentionDays", "value"]), "INVALID"),
        (json!({"retentionDays": {"value": -3}}), json!(["retentionDays", "value"]), "INVALID"),
        (json!({"retentionDays": {"value": 36501}}), json!(["retentionDays", "value"]), "INVALID"),
        (json!({"jobTimeoutSeconds": {"value": 0}}), json!(["jobTimeoutSeconds", "value"]), "INVALID"),
        (json!({"maxConcurrentJobs": 0}), json!(["maxConcurrentJobs"]), "INVALID"),
        (json!({"maxConcurrentJobs": 1001}), json!(["maxConcurrentJobs"]), "INVALID"),
        (json!({"storageBackendIds": {"value": [missing]}}), json!(["storageBackendIds", "value", "0"]), "NOT_FOUND"),
        (json!({"storageBackendIds": {"value": [second]}}), json!(["storageBackendIds", "value", "0"]), "INVALID"),
    ];
    for (input, field, code) in cases {
        let body = update(&app, &admin, input.clone()).await;
        assert_eq!(user_errors(&body, "updatePolicy"), [(field, code.to_string())], "{input}: {body:#}");
        assert_eq!(body["data"]["updatePolicy"]["policy"], Value::Null);
    }
    // One bad field among good ones: nothing changes, every bad field is named.
    let body = update(&app, &admin, json!({"format": {"value": "TAR_GZ"}, "retentionDays": {"value": 0}, "jobTimeoutSeconds": {"value": -1}})).await;
    assert_eq!(user_errors(&body, "updatePolicy").len(), 2, "{body:#}");
    assert_eq!(policy(&app).await, before, "nothing was changed");
    assert!(audit(&app, "POLICY_UPDATED").await.is_empty());
    // A malformed id is top-level bad input, as everywhere.
    assert_eq!(error_codes(&update(&app, &admin, json!({"storageBackendIds": {"value": ["garbage"]}})).await), ["BAD_USER_INPUT"]);
}

async fn only_admins_change_the_policy_and_the_switches(app: TestApp) {
    let cat = category_id(&app, "1").await;
    let mutations = [
        ("mutation { updatePolicy(input: {format: {value: TAR_GZ}}) { userErrors { code } } }", json!({})),
        ("mutation($c: ID!) { setCategoryArchiving(input: {categoryId: $c, enabled: false}) { userErrors { code } } }", json!({"c": cat})),
        ("mutation($c: ID) { setActivityKindArchiving(input: {categoryId: $c, kind: QUIZ, enabled: false}) { userErrors { code } } }", json!({"c": cat})),
        ("mutation { setActivityKindArchiving(input: {kind: QUIZ, enabled: false}) { userErrors { code } } }", json!({})),
    ];
    let tokens = [
        ("manager of the category", app.token(&[Role::Manager], &[], &["1"])),
        ("teacher", app.token(&[Role::Teacher], &["101"], &[])),
        ("auditor", app.token(&[Role::Auditor], &[], &[])),
        ("reporter", app.token(&[Role::Reporter], &[], &[])),
    ];
    for (who, t) in &tokens {
        for (q, vars) in &mutations {
            assert_eq!(error_codes(&app.gql(Some(t), q, vars.clone()).await), ["FORBIDDEN"], "{who}: {q}");
        }
    }
    assert_eq!(error_codes(&app.gql(None, mutations[0].0, json!({})).await), ["UNAUTHENTICATED"]);
    let p = policy(&app).await;
    assert_eq!(p["format"], "ZIP", "nothing changed");
    assert!(p["activityKinds"].as_array().unwrap().iter().all(|k| k["setting"].is_null()));
    let d = app.data(&app.admin(), "query($c: ID!) { node(id: $c) { ... on CourseCategory { archivingSetting } } }", json!({"c": cat})).await;
    assert_eq!(d["node"]["archivingSetting"], Value::Null);
    // The policy stays readable to every viewer.
    let d = app.data(&tokens[3].1, "{ policy { format maxConcurrentJobs } }", json!({})).await;
    assert_eq!(d["policy"]["format"], "ZIP");
}

/// Each locked field against a different value from the caller, for MANUAL and API jobs: a
/// POLICY_LOCKED user error naming the field, and no job. The same value passes, and the job
/// carries the policy's values.
async fn locked_values_win_over_caller_input(app: TestApp) {
    let admin = app.admin();
    let second = second_backend(&app).await;
    let local = backend_ids(&app).await.into_iter().find(|(_, n)| n == "local").unwrap().0;
    update_ok(
        &app,
        json!({
            "format": {"value": "TAR_GZ", "locked": true},
            "filenamePattern": {"value": "${courseShortName}_${activityId}", "locked": true},
            "retentionDays": {"value": 90, "locked": true},
            "storageBackendIds": {"value": [second], "locked": true},
            "timestamping": {"value": false, "locked": true},
            "jobTimeoutSeconds": {"value": 900, "locked": true},
        }),
    )
    .await;
    let acts = activity_ids(&app, &["1001"]).await;
    let overrides = [
        (json!({"format": "ZIP"}), "format"),
        (json!({"filenamePattern": "${activityId}"}), "filenamePattern"),
        (json!({"retentionDays": 10}), "retentionDays"),
        (json!({"keepForever": true}), "retentionDays"),
        (json!({"storageBackendIds": [local]}), "storageBackendIds"),
        (json!({"storageBackendIds": [local, second]}), "storageBackendIds"),
        (json!({"timestamping": true}), "timestamping"),
        (json!({"jobTimeoutSeconds": 60}), "jobTimeoutSeconds"),
    ];
    for origin in ["MANUAL", "API"] {
        for (o, field) in &overrides {
            let mut input = o.clone();
            input["activityIds"] = json!(acts);
            input["origin"] = json!(origin);
            let body = create(&app, &admin, input.clone()).await;
            assert_eq!(user_errors(&body, "createArchiveJob"), [(json!([field]), "POLICY_LOCKED".to_string())], "{origin} {input}: {body:#}");
            assert_eq!(body["data"]["createArchiveJob"]["job"], Value::Null);
        }
        // The policy's own values are no override: accepted, and what the job runs with.
        let same = json!({"activityIds": acts, "origin": origin, "format": "TAR_GZ", "filenamePattern": "${courseShortName}_${activityId}",
            "retentionDays": 90, "storageBackendIds": [second], "timestamping": false, "jobTimeoutSeconds": 900});
        let body = create(&app, &admin, same).await;
        assert_eq!(user_errors(&body, "createArchiveJob"), [], "{body:#}");
        let id = body["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap();
        let s = app.data(&admin, "query($id: ID!) { archiveJob(id: $id) { origin settings { format filenamePattern retentionDays storageBackends timestamping jobTimeoutSeconds } } }", json!({"id": id})).await;
        assert_eq!(s["archiveJob"]["origin"], origin);
        assert_eq!(
            s["archiveJob"]["settings"],
            json!({"format": "TAR_GZ", "filenamePattern": "${courseShortName}_${activityId}", "retentionDays": 90, "storageBackends": ["second"], "timestamping": false, "jobTimeoutSeconds": 900})
        );
    }
    // Unlocked, the caller's values win.
    update_ok(&app, json!({"format": {"locked": false}, "storageBackendIds": {"locked": false}})).await;
    let body = create(&app, &admin, json!({"activityIds": acts, "format": "TAR_ZST", "storageBackendIds": [local, second]})).await;
    assert_eq!(user_errors(&body, "createArchiveJob"), [], "{body:#}");
    assert_eq!(body["data"]["createArchiveJob"]["job"]["settings"]["format"], "TAR_ZST");
    assert_eq!(body["data"]["createArchiveJob"]["job"]["settings"]["storageBackends"], json!(["local", "second"]));
}

async fn a_policy_change_leaves_existing_jobs_alone(app: TestApp) {
    let admin = app.admin();
    let acts = activity_ids(&app, &["1002"]).await;
    let q = "query($id: ID!) { archiveJob(id: $id) { settings { format filenamePattern retentionDays timestamping jobTimeoutSeconds storageBackends logLevel } } }";
    let old = create(&app, &admin, json!({"activityIds": acts})).await["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();
    let old_settings = app.data(&admin, q, json!({"id": old})).await["archiveJob"]["settings"].clone();
    assert_eq!(old_settings["format"], "ZIP");
    assert_eq!(old_settings["logLevel"], "INFO");
    update_ok(&app, json!({"format": {"value": "TAR_GZ"}, "retentionDays": {"keepForever": true}, "timestamping": {"value": false}, "jobTimeoutSeconds": {"value": 123}, "jobLogLevel": "ERROR", "filenamePattern": {"value": "${activityId}_${date}"}})).await;
    assert_eq!(app.data(&admin, q, json!({"id": old})).await["archiveJob"]["settings"], old_settings, "the older job keeps its settings");
    let new = create(&app, &admin, json!({"activityIds": acts})).await["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();
    let new_settings = app.data(&admin, q, json!({"id": new})).await["archiveJob"]["settings"].clone();
    assert_eq!(new_settings, json!({"format": "TAR_GZ", "filenamePattern": "${activityId}_${date}", "retentionDays": null, "timestamping": false, "jobTimeoutSeconds": 123, "storageBackends": ["local"], "logLevel": "ERROR"}));
}

async fn the_engine_follows_the_policys_concurrency_limit(backend: Backend) {
    // The server allows five; the policy one.
    let app = TestApp::start_with(backend, |s| s.demo_record_delay_ms = 5).await;
    let admin = app.admin();
    update_ok(&app, json!({"maxConcurrentJobs": 1})).await;
    for lms in ["1001", "1002", "1003"] {
        let acts = activity_ids(&app, &[lms]).await;
        let body = create(&app, &admin, json!({"activityIds": acts})).await;
        assert_eq!(user_errors(&body, "createArchiveJob"), [], "{body:#}");
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

async fn jobs_log_at_the_policys_level(app: TestApp) {
    let admin = app.admin();
    let acts = activity_ids(&app, &["1001"]).await;
    let levels = |j: &Value| -> Vec<String> { j["logs"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["level"].as_str().unwrap().to_string()).collect() };
    let info = create(&app, &admin, json!({"activityIds": acts})).await["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();
    let j = wait_for(&app, &info, "COMPLETED", |j| j["status"] == "COMPLETED").await;
    assert!(levels(&j).iter().any(|l| l == "INFO"), "at the server's INFO, INFO entries are kept: {j:#}");

    update_ok(&app, json!({"jobLogLevel": "WARN"})).await;
    let warn = create(&app, &admin, json!({"activityIds": acts})).await["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();
    let j = wait_for(&app, &warn, "COMPLETED", |j| j["status"] == "COMPLETED").await;
    assert!(levels(&j).iter().all(|l| l != "INFO" && l != "DEBUG" && l != "TRACE"), "nothing below WARN is stored: {:?}", levels(&j));
    // The earlier job's entries are untouched, and it keeps its level.
    let earlier = job(&app, &info).await;
    assert!(levels(&earlier).iter().any(|l| l == "INFO"));
}

/// Report options through the API: a partial update keeps the other options, a lock refuses a
/// job asking otherwise (POLICY_LOCKED on `reportOptions`), a job's own options are patched onto
/// the policy's, the job keeps them, and the package it stores holds what they say.
async fn report_options_shape_the_packages(app: TestApp) {
    let admin = app.admin();
    let all_on = json!({"html": true, "rightAnswers": true, "feedback": true, "answerHistory": true});
    assert_eq!(policy(&app).await["reportOptions"], all_on, "everything by default");
    let p = update_ok(&app, json!({"reportOptions": {"value": {"rightAnswers": false}}})).await;
    assert_eq!(p["reportOptions"], json!({"html": true, "rightAnswers": false, "feedback": true, "answerHistory": true}));
    let entry = &audit(&app, "POLICY_UPDATED").await[0];
    assert_eq!(entry["details"]["changes"]["reportOptions"]["after"], json!({"value": {"html": true, "rightAnswers": false, "feedback": true, "answerHistory": true}, "locked": false}), "{entry:#}");
    let acts = activity_ids(&app, &["1001"]).await;
    // Unlocked: the job's options are patched onto the policy's.
    let body = create(&app, &admin, json!({"activityIds": acts, "reportOptions": {"html": false}})).await;
    assert_eq!(user_errors(&body, "createArchiveJob"), [], "{body:#}");
    let id = body["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();
    // Locked as a whole: a job asking for anything else is refused; the same options pass.
    let p = update_ok(&app, json!({"reportOptions": {"value": {"answerHistory": false}, "locked": true}})).await;
    assert!(p["locked"].as_array().unwrap().contains(&json!("REPORT_OPTIONS")), "{p:#}");
    for origin in ["MANUAL", "API"] {
        let body = create(&app, &admin, json!({"activityIds": acts, "origin": origin, "reportOptions": {"rightAnswers": true}})).await;
        assert_eq!(user_errors(&body, "createArchiveJob"), [(json!(["reportOptions"]), "POLICY_LOCKED".to_string())], "{body:#}");
        assert_eq!(body["data"]["createArchiveJob"]["job"], Value::Null);
    }
    let body = create(&app, &admin, json!({"activityIds": acts, "reportOptions": {"rightAnswers": false, "answerHistory": false}})).await;
    assert_eq!(user_errors(&body, "createArchiveJob"), [], "{body:#}");
    let locked = body["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap().to_string();

    let q = "query($id: ID!) { archiveJob(id: $id) { status settings { reportOptions { html rightAnswers feedback answerHistory } } files { fileName downloadUrl } } }";
    let work = tempfile::tempdir().unwrap();
    for (job_id, expected) in [
        (&id, json!({"html": false, "rightAnswers": false, "feedback": true, "answerHistory": true})),
        (&locked, json!({"html": true, "rightAnswers": false, "feedback": true, "answerHistory": false})),
    ] {
        wait_for(&app, job_id, "COMPLETED", |j| j["status"] == "COMPLETED").await;
        let j = app.data(&admin, q, json!({"id": job_id})).await["archiveJob"].clone();
        assert_eq!(j["settings"]["reportOptions"], expected, "{j:#}");
        let f = &j["files"][0];
        let bytes = app.http().get(f["downloadUrl"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
        let dir = work.path().join(job_id.replace(['/', '='], "_"));
        std::fs::create_dir_all(&dir).unwrap();
        let pkg = dir.join(f["fileName"].as_str().unwrap());
        std::fs::write(&pkg, &bytes).unwrap();
        let bag = common::bagit::unpack(&pkg, &dir.join("unpacked"));
        common::bagit::validate(&bag).unwrap_or_else(|e| panic!("bagit.py: {e}"));
        let meta: Value = serde_json::from_slice(&std::fs::read(bag.join("data/metadata.json")).unwrap()).unwrap();
        assert_eq!(meta["package"]["reportOptions"], expected);
        let reports: Vec<_> = std::fs::read_dir(bag.join("data/reports")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(reports.iter().any(|p| p.extension().is_some_and(|e| e == "html")), expected["html"] == true);
        let json_report = reports.iter().find(|p| p.extension().is_some_and(|e| e == "json")).expect("a JSON report");
        let report: Value = serde_json::from_slice(&std::fs::read(json_report).unwrap()).unwrap();
        let question = &report["attempt"]["questions"][0];
        assert_eq!(question.get("rightAnswer").is_some(), expected["rightAnswers"] == true, "{question}");
        assert_eq!(question.get("history").is_some(), expected["answerHistory"] == true, "{question}");
        assert!(question.get("feedback").is_some());
    }
}

/// The global id of category "1" (Faculty of Science) or "2" (Mathematics): course 101's category
/// and its parent.
async fn category_id(app: &TestApp, lms_id: &str) -> String {
    let d = app.data(&app.admin(), "{ course(lmsId: \"101\") { category { id lmsId parent { id lmsId } } } }", json!({})).await;
    let c = &d["course"]["category"];
    let found = [c, &c["parent"]].into_iter().find(|c| c["lmsId"] == lms_id);
    found.unwrap_or_else(|| panic!("category {lms_id}: {d}"))["id"].as_str().unwrap().to_string()
}

async fn set_category(app: &TestApp, cat: &str, enabled: Value) -> Value {
    let q = "mutation($c: ID!, $e: Boolean) { setCategoryArchiving(input: {categoryId: $c, enabled: $e}) { category { lmsId archivingEnabled archivingSetting } userErrors { code } } }";
    let d = app.data(&app.admin(), q, json!({"c": cat, "e": enabled})).await;
    assert_eq!(d["setCategoryArchiving"]["userErrors"], json!([]));
    d["setCategoryArchiving"]["category"].clone()
}

async fn set_kind(app: &TestApp, cat: Option<&str>, kind: &str, enabled: Value) -> Value {
    let q = "mutation($c: ID, $k: ActivityKind!, $e: Boolean) { setActivityKindArchiving(input: {categoryId: $c, kind: $k, enabled: $e}) {
        category { lmsId } activityKind { kind enabled setting source { origin category { lmsId } activityKind } } userErrors { code } } }";
    let d = app.data(&app.admin(), q, json!({"c": cat, "k": kind, "e": enabled})).await;
    assert_eq!(d["setActivityKindArchiving"]["userErrors"], json!([]));
    d["setActivityKindArchiving"].clone()
}

const SOURCE: &str = "archivingEnabled archivingEnabledSource { origin category { lmsId } activityKind }";

/// Course 101 (category Mathematics, under Faculty of Science), 103 (Computer Science, under
/// Science) and 105 (History, under Humanities), each with the switch state of its category and
/// the archiving state of its activities.
async fn catalog(app: &TestApp) -> Value {
    let q = format!(
        "{{ courses(first: 100) {{ edges {{ node {{ lmsId {SOURCE} category {{ lmsId archivingSetting {SOURCE} }}
            activities {{ edges {{ node {{ lmsId kind {SOURCE} }} }} }} }} }} }} }}"
    );
    let d = app.data(&app.admin(), &q, json!({})).await;
    let mut out = serde_json::Map::new();
    for e in d["courses"]["edges"].as_array().unwrap() {
        out.insert(e["node"]["lmsId"].as_str().unwrap().to_string(), e["node"].clone());
    }
    Value::Object(out)
}

fn source(origin: &str, category: Option<&str>, kind: Option<&str>) -> Value {
    json!({"origin": origin, "category": category.map(|c| json!({"lmsId": c})), "activityKind": kind})
}

/// The first activity of `kind` in a course of the catalog.
fn activity<'a>(cat: &'a Value, course: &str, kind: &str) -> &'a Value {
    let acts = cat[course]["activities"]["edges"].as_array().unwrap();
    &acts.iter().find(|e| e["node"]["kind"] == kind).unwrap_or_else(|| panic!("a {kind} in {course}"))["node"]
}

async fn refused(app: &TestApp, activity_lms: &str) -> Option<Value> {
    let acts = activity_ids(app, &[activity_lms]).await;
    let body = create(app, &app.admin(), json!({"activityIds": acts})).await;
    let errs = body["data"]["createArchiveJob"]["userErrors"].as_array().unwrap().clone();
    if errs.is_empty() {
        None
    } else {
        assert_eq!(errs.len(), 1, "{body:#}");
        assert_eq!(errs[0]["code"], "ARCHIVING_DISABLED");
        assert_eq!(errs[0]["field"], json!(["activityIds", "0"]));
        assert_eq!(body["data"]["createArchiveJob"]["job"], Value::Null);
        Some(errs[0].clone())
    }
}

async fn category_switches_inherit_and_override(app: TestApp) {
    let science = category_id(&app, "1").await;
    let maths = category_id(&app, "2").await;
    let c = catalog(&app).await;
    assert_eq!(c["101"]["archivingEnabled"], true);
    assert_eq!(c["101"]["archivingEnabledSource"], source("DEFAULT", None, None));
    let quiz_101 = activity(&c, "101", "QUIZ")["lmsId"].as_str().unwrap().to_string();
    let any_103 = c["103"]["activities"]["edges"][0]["node"]["lmsId"].as_str().unwrap().to_string();
    let any_105 = c["105"]["activities"]["edges"][0]["node"]["lmsId"].as_str().unwrap().to_string();

    // Off for the faculty: everything below inherits it.
    assert_eq!(set_category(&app, &science, json!(false)).await, json!({"lmsId": "1", "archivingEnabled": false, "archivingSetting": false}));
    let c = catalog(&app).await;
    for course in ["101", "103"] {
        assert_eq!(c[course]["archivingEnabled"], false, "{course}");
        assert_eq!(c[course]["archivingEnabledSource"], source("INHERITED", Some("1"), None), "{course}");
        assert_eq!(c[course]["category"]["archivingSetting"], Value::Null);
        for a in c[course]["activities"]["edges"].as_array().unwrap() {
            assert_eq!(a["node"]["archivingEnabled"], false);
            assert_eq!(a["node"]["archivingEnabledSource"], source("INHERITED", Some("1"), None));
        }
    }
    assert_eq!(c["105"]["archivingEnabled"], true, "another faculty is untouched");
    let e = refused(&app, &quiz_101).await.expect("refused below a category switched off");
    assert!(e["message"].as_str().unwrap().contains("Faculty of Science"), "{e}");
    assert!(refused(&app, &any_103).await.is_some());
    assert!(refused(&app, &any_105).await.is_none());

    // On again for Mathematics only: it overrides its parent there.
    set_category(&app, &maths, json!(true)).await;
    let c = catalog(&app).await;
    assert_eq!(c["101"]["archivingEnabled"], true);
    assert_eq!(c["101"]["archivingEnabledSource"], source("CATEGORY", Some("2"), None));
    assert_eq!(c["101"]["category"]["archivingEnabledSource"], source("CATEGORY", Some("2"), None));
    assert_eq!(c["101"]["category"]["archivingSetting"], true);
    assert_eq!(c["103"]["archivingEnabledSource"], source("INHERITED", Some("1"), None));
    assert!(refused(&app, &quiz_101).await.is_none());
    assert!(refused(&app, &any_103).await.is_some());

    // Back to inherit everywhere: the default holds.
    set_category(&app, &science, Value::Null).await;
    set_category(&app, &maths, Value::Null).await;
    let c = catalog(&app).await;
    assert_eq!(c["103"]["archivingEnabledSource"], source("DEFAULT", None, None));
    assert!(refused(&app, &any_103).await.is_none());

    // Each change is in the audit log with before and after; setting what holds adds nothing.
    set_category(&app, &maths, Value::Null).await;
    let entries = audit(&app, "CATEGORY_ARCHIVING_SET").await;
    let seen: Vec<(Value, Value, Value)> = entries.iter().rev().map(|e| (e["details"]["category"]["lmsId"].clone(), e["details"]["before"].clone(), e["details"]["after"].clone())).collect();
    assert_eq!(
        seen,
        [
            (json!("1"), json!("INHERIT"), json!("OFF")),
            (json!("2"), json!("INHERIT"), json!("ON")),
            (json!("1"), json!("OFF"), json!("INHERIT")),
            (json!("2"), json!("ON"), json!("INHERIT")),
        ]
    );
    assert!(entries.iter().all(|e| e["targetType"] == "CourseCategory" && e["actor"] == "test-admin"));
    assert_eq!(entries[0]["targetId"], maths.as_str());
}

async fn activity_kind_switches_inherit_and_fall_back_to_the_global_one(app: TestApp) {
    let maths = category_id(&app, "2").await;
    let c = catalog(&app).await;
    let quiz_101 = activity(&c, "101", "QUIZ")["lmsId"].as_str().unwrap().to_string();
    let assign_101 = activity(&c, "101", "ASSIGN")["lmsId"].as_str().unwrap().to_string();
    let quiz_103 = activity(&c, "103", "QUIZ")["lmsId"].as_str().unwrap().to_string();

    // Quizzes off globally.
    let p = set_kind(&app, None, "QUIZ", json!(false)).await;
    assert_eq!(p["category"], Value::Null);
    assert_eq!(p["activityKind"], json!({"kind": "QUIZ", "enabled": false, "setting": false, "source": source("GLOBAL", None, Some("QUIZ"))}));
    let kinds = policy(&app).await["activityKinds"].clone();
    assert_eq!(kinds, json!([{"kind": "QUIZ", "enabled": false, "setting": false, "source": {"origin": "GLOBAL"}}, {"kind": "ASSIGN", "enabled": true, "setting": null, "source": {"origin": "DEFAULT"}}]));
    let c = catalog(&app).await;
    assert_eq!(activity(&c, "101", "QUIZ")["archivingEnabledSource"], source("GLOBAL", None, Some("QUIZ")));
    assert_eq!(activity(&c, "101", "QUIZ")["archivingEnabled"], false);
    assert_eq!(activity(&c, "101", "ASSIGN")["archivingEnabled"], true);
    assert_eq!(c["101"]["archivingEnabled"], true, "the course as a whole is on");
    let e = refused(&app, &quiz_101).await.expect("quizzes are refused");
    assert!(e["message"].as_str().unwrap().contains("globally"), "{e}");
    assert!(refused(&app, &assign_101).await.is_none());

    // On for Mathematics: there (and below) the category's kind switch wins.
    let p = set_kind(&app, Some(&maths), "QUIZ", json!(true)).await;
    assert_eq!(p["category"]["lmsId"], "2");
    assert_eq!(p["activityKind"], json!({"kind": "QUIZ", "enabled": true, "setting": true, "source": source("CATEGORY", Some("2"), Some("QUIZ"))}));
    let c = catalog(&app).await;
    assert_eq!(activity(&c, "101", "QUIZ")["archivingEnabledSource"], source("CATEGORY", Some("2"), Some("QUIZ")));
    assert_eq!(activity(&c, "103", "QUIZ")["archivingEnabledSource"], source("GLOBAL", None, Some("QUIZ")));
    assert!(refused(&app, &quiz_101).await.is_none());
    assert!(refused(&app, &quiz_103).await.is_some());
    let d = app.data(&app.admin(), "query($c: ID!) { node(id: $c) { ... on CourseCategory { activityKinds { kind enabled setting source { origin } } } } }", json!({"c": maths})).await;
    assert_eq!(d["node"]["activityKinds"], json!([{"kind": "QUIZ", "enabled": true, "setting": true, "source": {"origin": "CATEGORY"}}, {"kind": "ASSIGN", "enabled": true, "setting": null, "source": {"origin": "DEFAULT"}}]));

    // A category switched off as a whole wins over its kind switches.
    set_category(&app, &maths, json!(false)).await;
    let c = catalog(&app).await;
    assert_eq!(activity(&c, "101", "QUIZ")["archivingEnabledSource"], source("CATEGORY", Some("2"), None));
    assert!(refused(&app, &quiz_101).await.is_some());
    set_category(&app, &maths, Value::Null).await;

    // Back to inherit.
    set_kind(&app, Some(&maths), "QUIZ", Value::Null).await;
    set_kind(&app, None, "QUIZ", Value::Null).await;
    assert!(refused(&app, &quiz_103).await.is_none());
    let entries = audit(&app, "ACTIVITY_KIND_ARCHIVING_SET").await;
    let seen: Vec<(Value, Value, Value, Value)> =
        entries.iter().rev().map(|e| (e["targetType"].clone(), e["details"]["kind"].clone(), e["details"]["before"].clone(), e["details"]["after"].clone())).collect();
    assert_eq!(
        seen,
        [
            (json!("Policy"), json!("QUIZ"), json!("INHERIT"), json!("OFF")),
            (json!("CourseCategory"), json!("QUIZ"), json!("INHERIT"), json!("ON")),
            (json!("CourseCategory"), json!("QUIZ"), json!("ON"), json!("INHERIT")),
            (json!("Policy"), json!("QUIZ"), json!("OFF"), json!("INHERIT")),
        ]
    );
    assert_eq!(entries[1]["details"]["category"]["lmsId"], "2");
}

on_both_databases!(
    update_policy_round_trips_with_an_audit_entry,
    invalid_policy_values_are_user_errors_naming_the_field,
    only_admins_change_the_policy_and_the_switches,
    locked_values_win_over_caller_input,
    a_policy_change_leaves_existing_jobs_alone,
    jobs_log_at_the_policys_level,
    report_options_shape_the_packages,
    category_switches_inherit_and_override,
    activity_kind_switches_inherit_and_fall_back_to_the_global_one,
);
with_each_backend!(the_engine_follows_the_policys_concurrency_limit);
