//! Every query of the read API, as a client uses it, on SQLite and PostgreSQL.
mod common;

use archiving_manager::entity::activity;
use chrono::Utc;
use common::{error_codes, TestApp};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

fn edges(v: &Value) -> Vec<Value> {
    v["edges"].as_array().expect("edges").iter().map(|e| e["node"].clone()).collect()
}

fn strings(nodes: &[Value], field: &str) -> Vec<String> {
    nodes.iter().map(|n| n[field].as_str().unwrap().to_string()).collect()
}

async fn category_id(app: &TestApp, lms_id: &str) -> String {
    let d = app.data(&app.admin(), "query { categories(first: 100) { edges { node { id lmsId children(first: 20) { edges { node { id lmsId children(first: 20) { edges { node { id lmsId } } } } } } } } } }", json!({})).await;
    fn find(v: &Value, lms: &str) -> Option<String> {
        for n in v["edges"].as_array()? {
            let n = &n["node"];
            if n["lmsId"] == lms {
                return Some(n["id"].as_str()?.to_string());
            }
            if let Some(found) = find(&n["children"], lms) {
                return Some(found);
            }
        }
        None
    }
    find(&d["categories"], lms_id).expect("category exists")
}

async fn viewer_describes_the_token(app: TestApp) {
    let t = app.token(&[archiving_manager::auth::Role::Teacher], &["101"], &[]);
    let d = app.data(&t, "{ viewer { subject roles capabilities courseScopes categoryScopes } }", json!({})).await;
    assert_eq!(d["viewer"]["roles"], json!(["TEACHER"]));
    assert_eq!(d["viewer"]["capabilities"], json!(["VIEW", "CREATE", "DELETE", "DOWNLOAD"]));
    assert_eq!(d["viewer"]["courseScopes"], json!(["101"]));
    assert_eq!(d["viewer"]["categoryScopes"], json!([]));
}

async fn categories_form_a_tree(app: TestApp) {
    let d = app.data(&app.admin(), "{ categories { totalCount edges { node { lmsId name depth parent { lmsId } children { totalCount edges { node { lmsId depth parent { lmsId } ancestors { lmsId } } } } } } } }", json!({})).await;
    let roots = edges(&d["categories"]);
    assert_eq!(strings(&roots, "lmsId"), ["1", "5", "9"]);
    assert_eq!(d["categories"]["totalCount"], 3);
    assert!(roots.iter().all(|r| r["depth"] == 0 && r["parent"].is_null()));
    let science = edges(&roots[0]["children"]);
    assert_eq!(strings(&science, "lmsId"), ["2", "3"]);
    assert!(science.iter().all(|c| c["parent"]["lmsId"] == "1" && c["depth"] == 1 && c["ancestors"] == json!([{"lmsId": "1"}])));
    // parentId lists one level
    let cs = category_id(&app, "3").await;
    let d = app.data(&app.admin(), "query($p: ID) { categories(parentId: $p) { edges { node { lmsId name } } } }", json!({"p": cs})).await;
    assert_eq!(edges(&d["categories"])[0]["name"], "Graduate Programs");
}

async fn courses_filter_search_order_and_paginate(app: TestApp) {
    let admin = app.admin();
    // Every course exactly once when walking pages of 2.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let d = app.data(&admin, "query($a: String) { courses(first: 2, after: $a) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { lmsId } } } }", json!({"a": after})).await;
        assert_eq!(d["courses"]["totalCount"], 9);
        seen.extend(strings(&edges(&d["courses"]), "lmsId"));
        if !d["courses"]["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = Some(d["courses"]["pageInfo"]["endCursor"].as_str().unwrap().to_string());
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen.len(), 9);
    assert_eq!(sorted.len(), 9);

    // Default order: short name ascending; descending reverses it.
    let q = "query($o: CourseOrder) { courses(first: 100, orderBy: $o) { edges { node { shortName } } } }";
    let asc = strings(&edges(&app.data(&admin, q, json!({})).await["courses"]), "shortName");
    let mut expected = asc.clone();
    expected.sort();
    assert_eq!(asc, expected);
    let desc = strings(&edges(&app.data(&admin, q, json!({"o": {"direction": "DESC"}})).await["courses"]), "shortName");
    expected.reverse();
    assert_eq!(desc, expected);

    // Category filter includes sub-categories unless told otherwise.
    let science = category_id(&app, "1").await;
    let cs = category_id(&app, "3").await;
    let q = "query($f: CourseFilter) { courses(first: 100, filter: $f) { totalCount edges { node { lmsId } } } }";
    let mut ids = strings(&edges(&app.data(&admin, q, json!({"f": {"categoryId": science}})).await["courses"]), "lmsId");
    ids.sort();
    assert_eq!(ids, ["101", "102", "103", "104", "109"]);
    let mut ids = strings(&edges(&app.data(&admin, q, json!({"f": {"categoryId": cs}})).await["courses"]), "lmsId");
    ids.sort();
    assert_eq!(ids, ["103", "104"]);
    let ids = strings(&edges(&app.data(&admin, q, json!({"f": {"categoryId": cs, "includeSubcategories": false}})).await["courses"]), "lmsId");
    assert_eq!(ids, ["103"]);

    // Text search is case-insensitive and takes % and _ literally.
    let ids = strings(&edges(&app.data(&admin, q, json!({"f": {"search": "hist"}})).await["courses"]), "lmsId");
    assert_eq!(ids.len(), 2);
    let d = app.data(&admin, q, json!({"f": {"search": "%"}})).await;
    assert_eq!(d["courses"]["totalCount"], 0);

    // first goes up to 100; more (however much more), a negative one, a forged cursor and a
    // search text longer than 200 characters are bad input, never cut short silently.
    let d = app.data(&admin, "{ courses(first: 100) { edges { node { id } } } }", json!({})).await;
    assert_eq!(edges(&d["courses"]).len(), 9);
    for first in [101, 1_000_000] {
        let body = app.gql(Some(&admin), &format!("{{ courses(first: {first}) {{ edges {{ node {{ id activities(first: {first}) {{ totalCount }} }} }} }} }}"), json!({})).await;
        assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "{body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("at most 100"), "{body}");
    }
    let body = app.gql(Some(&admin), q, json!({"f": {"search": "x".repeat(50_001)}})).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "{body}");
    let body = app.gql(Some(&admin), "{ courses(first: -1) { totalCount } }", json!({})).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"]);
    let body = app.gql(Some(&admin), "{ courses(after: \"bm9wZQ\") { totalCount } }", json!({})).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"]);
}

async fn course_by_id_or_lms_id(app: TestApp) {
    let admin = app.admin();
    let d = app.data(&admin, "{ course(lmsId: \"103\") { id lmsId shortName fullName visible startDate category { lmsId name } archivingEnabled activities { totalCount edges { node { kind name } } } } }", json!({})).await;
    let c = &d["course"];
    assert_eq!(c["shortName"], "CS101");
    assert_eq!(c["fullName"], "Introduction to Programming");
    assert_eq!(c["category"]["name"], "Computer Science");
    assert_eq!(c["archivingEnabled"], true);
    assert_eq!(c["startDate"], "2025-10-01T09:00:00.000Z");
    assert_eq!(c["activities"]["totalCount"], 3);
    let by_id = app.data(&admin, "query($id: ID) { course(id: $id) { lmsId } }", json!({"id": c["id"]})).await;
    assert_eq!(by_id["course"]["lmsId"], "103");
    let body = app.gql(Some(&admin), "{ course(lmsId: \"999\") { id } }", json!({})).await;
    assert_eq!(error_codes(&body), ["NOT_FOUND"]);
    let body = app.gql(Some(&admin), "{ course { id } }", json!({})).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"]);
    let body = app.gql(Some(&admin), "{ course(id: \"not-an-id\") { id } }", json!({})).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"]);
}

/// Marks an activity as archived by a finished task of a completed job holding `fingerprint`.
async fn archive(app: &TestApp, activity_lms_id: &str, fingerprint: Option<String>) {
    let db = &app.state.db;
    let a = activity::Entity::find().filter(activity::Column::LmsId.eq(activity_lms_id)).one(db).await.unwrap().unwrap();
    let now = Utc::now();
    let job = archiving_manager::fixtures::completed_job(a.course_id, now)
    .insert(db)
    .await
    .unwrap();
    archiving_manager::fixtures::finished_task(job.id, &a, fingerprint.or(a.fingerprint.clone()), now)
    .insert(db)
    .await
    .unwrap();
}

async fn activities_filter_by_kind_and_archive_state(app: TestApp) {
    let admin = app.admin();
    let q = "query($f: ActivityFilter) { activities(first: 100, filter: $f) { totalCount edges { node { lmsId kind archiveState lastArchivedAt course { lmsId } } } } }";
    let all = app.data(&admin, q, json!({})).await;
    assert_eq!(all["activities"]["totalCount"], 30);
    let quizzes = app.data(&admin, q, json!({"f": {"kinds": ["QUIZ"]}})).await;
    assert!(edges(&quizzes["activities"]).iter().all(|a| a["kind"] == "QUIZ"));
    assert_eq!(quizzes["activities"]["totalCount"], 18);

    // 1001 archived with its current fingerprint, 1002 archived before a change.
    archive(&app, "1001", None).await;
    archive(&app, "1002", Some("an-older-state".into())).await;
    let state = |s: &str| json!({"f": {"archiveStates": [s]}});
    let archived = app.data(&admin, q, state("ARCHIVED")).await;
    assert_eq!(strings(&edges(&archived["activities"]), "lmsId"), ["1001"]);
    assert!(edges(&archived["activities"])[0]["lastArchivedAt"].is_string());
    let changed = app.data(&admin, q, state("CHANGED")).await;
    assert_eq!(strings(&edges(&changed["activities"]), "lmsId"), ["1002"]);
    assert_eq!(edges(&changed["activities"])[0]["archiveState"], "CHANGED");
    let never = app.data(&admin, q, state("NEVER_ARCHIVED")).await;
    assert_eq!(never["activities"]["totalCount"], 28);
    assert!(edges(&never["activities"]).iter().all(|a| a["archiveState"] == "NEVER_ARCHIVED" && a["lastArchivedAt"].is_null()));

    let course_id = app.data(&admin, "{ course(lmsId: \"101\") { id } }", json!({})).await["course"]["id"].clone();
    let in_course = app.data(&admin, q, json!({"f": {"courseId": course_id, "kinds": ["ASSIGN"]}})).await;
    assert!(edges(&in_course["activities"]).iter().all(|a| a["course"]["lmsId"] == "101" && a["kind"] == "ASSIGN"));
    assert_eq!(in_course["activities"]["totalCount"], 2);

    let o = app.data(&admin, "{ archivingOverview { activities { total neverArchived archived changed } jobs { status count } storedFiles storedBytes } }", json!({})).await;
    assert_eq!(o["archivingOverview"]["activities"], json!({"total": 30, "neverArchived": 28, "archived": 1, "changed": 1}));
    assert_eq!(o["archivingOverview"]["jobs"], json!([{"status": "COMPLETED", "count": 2}]));
    assert_eq!(o["archivingOverview"]["storedBytes"], "0");
}

async fn storage_backends_and_policy(app: TestApp) {
    let admin = app.admin();
    let d = app.data(&admin, "{ storageBackends { totalCount edges { node { id name driver tier enabled isDefault health { reachable } } } } policy { format filenamePattern retentionDays timestamping jobTimeoutSeconds storageBackends { name } locked } }", json!({})).await;
    assert_eq!(
        edges(&d["storageBackends"])[0],
        json!({"id": edges(&d["storageBackends"])[0]["id"], "name": "local", "driver": "LOCAL_DIRECTORY", "tier": "LOCAL", "enabled": true, "isDefault": true, "health": null})
    );
    // Settings (the directory path) are not part of the type at all.
    let body = app.gql(Some(&admin), "{ storageBackends { edges { node { settings } } } }", json!({})).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("settings"));
    assert_eq!(d["policy"]["format"], "ZIP");
    assert_eq!(d["policy"]["retentionDays"], 3650);
    assert_eq!(d["policy"]["jobTimeoutSeconds"], 7200);
    assert_eq!(d["policy"]["locked"], json!([]));
}

async fn node_and_nodes_resolve_every_type(app: TestApp) {
    let admin = app.admin();
    let d = app.data(&admin, "{ course(lmsId: \"101\") { id category { id } activities(first: 1) { edges { node { id } } } } storageBackends { edges { node { id } } } }", json!({})).await;
    let course = d["course"]["id"].clone();
    let cat = d["course"]["category"]["id"].clone();
    let act = edges(&d["course"]["activities"])[0]["id"].clone();
    let sb = edges(&d["storageBackends"])[0]["id"].clone();
    let q = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id ... on Course { lmsId } ... on CourseCategory { lmsId } ... on Activity { lmsId } ... on StorageBackend { name } } }";
    let d = app.data(&admin, q, json!({"ids": [course, cat, act, sb, "bm9wZQ"]})).await;
    let types: Vec<Value> = d["nodes"].as_array().unwrap().iter().map(|n| n["__typename"].clone()).collect();
    assert_eq!(types, [json!("Course"), json!("CourseCategory"), json!("Activity"), json!("StorageBackend"), Value::Null]);
    let d = app.data(&admin, "query($id: ID!) { node(id: $id) { id ... on Course { shortName } } }", json!({"id": course})).await;
    assert_eq!(d["node"]["shortName"], "MATH101");
    assert_eq!(d["node"]["id"], course);
}

async fn queries_work_over_get(app: TestApp) {
    let res = app
        .http()
        .get(app.url("/graphql"))
        .query(&[("query", "{ courses { totalCount } }")])
        .bearer_auth(app.admin())
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["courses"]["totalCount"], 9);
}

/// The statement count of a query must not grow with page size: nested fields are batched.
async fn nested_fields_are_batched(app: TestApp) {
    let admin = app.admin();
    let q = "query($n: Int) { courses(first: $n) { edges { node { category { name parent { name } } archivingEnabled activities { edges { node { archiveState lastArchivedAt course { shortName } } } } } } } }";
    let count = |n: i32| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let before = app.state.statements.get();
            app.data(&admin, q, json!({"n": n})).await;
            app.state.statements.get() - before
        }
    };
    let small = count(1).await;
    let large = count(9).await;
    assert_eq!(small, large, "statements for 1 course: {small}, for 9 courses: {large}");
}

async fn the_schema_limits_depth_and_cost(app: TestApp) {
    let admin = app.admin();
    let deep = "{ categories { edges { node { parent { parent { parent { parent { parent { parent { parent { parent { parent { parent { parent { parent { parent { parent { name } } } } } } } } } } } } } } } } } }";
    let body = app.gql(Some(&admin), deep, json!({})).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().to_lowercase().contains("nested too deep"), "{body}");
    let costly = "{ courses(first: 100) { edges { node { activities(first: 100) { edges { node { name lmsId kind course { activities(first: 100) { edges { node { name } } } } } } } } } } }";
    let body = app.gql(Some(&admin), costly, json!({})).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().to_lowercase().contains("complex"), "{body}");
}

on_both_databases!(
    viewer_describes_the_token,
    categories_form_a_tree,
    courses_filter_search_order_and_paginate,
    course_by_id_or_lms_id,
    activities_filter_by_kind_and_archive_state,
    storage_backends_and_policy,
    node_and_nodes_resolve_every_type,
    queries_work_over_get,
    the_schema_limits_depth_and_cost,
);

/// Counted on an API without workers, whose background statements would blur the count.
mod nested_fields_are_batched {
    use super::common::{Backend, TestApp};
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::nested_fields_are_batched(TestApp::start_api_only(Backend::Sqlite).await).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::nested_fields_are_batched(TestApp::start_api_only(Backend::Postgres).await).await
    }
}
