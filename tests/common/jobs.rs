//! Archive jobs as tests drive them through the API: create, read, wait for a state.
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::TestApp;

pub const JOB_FIELDS: &str = "id status progress attempt retries error origin requestedBy cancelRequested startedAt finishedAt deadline nextRetryAt
    settings { format storageBackends jobTimeoutSeconds }
    tasks { id status progress recordsDone recordsTotal fingerprint error activity { lmsId archiveState } }
    files { id fileName sizeBytes sha256 mediaType retentionUntil deletedAt downloadUrl storageBackend { name } }";

/// Global ids of activities by LMS id.
pub async fn activity_ids(app: &TestApp, lms_ids: &[&str]) -> Vec<String> {
    let d = app.data(&app.admin(), "{ activities(first: 100) { edges { node { id lmsId } } } }", json!({})).await;
    lms_ids
        .iter()
        .map(|l| {
            d["activities"]["edges"].as_array().unwrap().iter().find(|e| e["node"]["lmsId"] == *l).unwrap()["node"]["id"].as_str().unwrap().to_string()
        })
        .collect()
}

pub async fn create(app: &TestApp, token: &str, input: Value) -> Value {
    let q = format!("mutation($i: CreateArchiveJobInput!) {{ createArchiveJob(input: $i) {{ job {{ {JOB_FIELDS} }} userErrors {{ field code message }} }} }}");
    app.gql(Some(token), &q, json!({"i": input})).await
}

pub async fn job(app: &TestApp, id: &str) -> Value {
    let q = format!("query($id: ID!) {{ archiveJob(id: $id) {{ {JOB_FIELDS} logs(first: 100) {{ edges {{ node {{ level message }} }} }} }} }}");
    app.data(&app.admin(), &q, json!({"id": id})).await["archiveJob"].clone()
}

/// Polls until `done` holds for the job (a liveness bound, not a timing assertion).
pub async fn wait_for(app: &TestApp, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let j = job(app, id).await;
        if done(&j) {
            return j;
        }
        assert!(Instant::now() < deadline, "job never reached {what}: {j:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn status_is(s: &'static str) -> impl Fn(&Value) -> bool {
    move |j: &Value| j["status"] == s
}

pub async fn count_jobs(app: &TestApp) -> u64 {
    app.data(&app.admin(), "{ archiveJobs { totalCount } }", json!({})).await["archiveJobs"]["totalCount"].as_u64().unwrap()
}

