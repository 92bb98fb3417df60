//! The permission matrix of DESIGN §9: every role, in scope and out of scope, by every read path.
mod common;

use std::collections::{BTreeMap, BTreeSet};

use archiving_manager::auth::Role;
use common::{error_codes, TestApp};
use serde_json::{json, Value};

struct Case {
    name: &'static str,
    roles: &'static [Role],
    courses: &'static [&'static str],
    categories: &'static [&'static str],
    /// LMS ids of the courses this caller must see; all others must be invisible.
    sees_courses: &'static [&'static str],
    /// LMS ids of the categories this caller must see.
    sees_categories: &'static [&'static str],
    capabilities: &'static [&'static str],
}

const ALL_COURSES: &[&str] = &["101", "102", "103", "104", "105", "106", "107", "108", "109"];
const ALL_CATEGORIES: &[&str] = &["1", "2", "3", "4", "5", "6", "7", "8", "9"];

const CASES: &[Case] = &[
    Case { name: "admin", roles: &[Role::Admin], courses: &[], categories: &[], sees_courses: ALL_COURSES, sees_categories: ALL_CATEGORIES, capabilities: &["VIEW", "CREATE", "DELETE", "DOWNLOAD", "MANAGE", "PRIVACY", "AUDIT"] },
    Case { name: "auditor", roles: &[Role::Auditor], courses: &[], categories: &[], sees_courses: ALL_COURSES, sees_categories: ALL_CATEGORIES, capabilities: &["VIEW", "DOWNLOAD", "PRIVACY", "AUDIT"] },
    Case { name: "reporter", roles: &[Role::Reporter], courses: &[], categories: &[], sees_courses: ALL_COURSES, sees_categories: ALL_CATEGORIES, capabilities: &["VIEW"] },
    // Category 3 (Computer Science) holds course 103 and, in sub-category 4, course 104.
    Case { name: "manager of a category", roles: &[Role::Manager], courses: &["101"], categories: &["3"], sees_courses: &["103", "104"], sees_categories: &["1", "3", "4"], capabilities: &["VIEW", "CREATE", "DELETE", "DOWNLOAD"] },
    // A teacher's category claim and a manager's course claim grant nothing.
    Case { name: "teacher of a course", roles: &[Role::Teacher], courses: &["101"], categories: &["5"], sees_courses: &["101"], sees_categories: &["1", "2"], capabilities: &["VIEW", "CREATE", "DELETE", "DOWNLOAD"] },
    Case { name: "teacher and manager", roles: &[Role::Teacher, Role::Manager], courses: &["106"], categories: &["8"], sees_courses: &["106", "107"], sees_categories: &["5", "6", "7", "8"], capabilities: &["VIEW", "CREATE", "DELETE", "DOWNLOAD"] },
    Case { name: "manager of an unknown category", roles: &[Role::Manager], courses: &[], categories: &["999"], sees_courses: &[], sees_categories: &[], capabilities: &["VIEW", "CREATE", "DELETE", "DOWNLOAD"] },
];

/// Global ids of every course, category and activity, by LMS id, as the admin sees them.
struct Ids {
    courses: BTreeMap<String, String>,
    categories: BTreeMap<String, String>,
    /// activity LMS id → (global id, course LMS id)
    activities: BTreeMap<String, (String, String)>,
}

async fn ids(app: &TestApp) -> Ids {
    let admin = app.admin();
    let d = app.data(&admin, "{ courses(first: 100) { edges { node { id lmsId } } } activities(first: 100) { edges { node { id lmsId course { lmsId } } } } }", json!({})).await;
    let courses = d["courses"]["edges"].as_array().unwrap().iter().map(|e| (e["node"]["lmsId"].as_str().unwrap().into(), e["node"]["id"].as_str().unwrap().into())).collect();
    let activities = d["activities"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let n = &e["node"];
            (n["lmsId"].as_str().unwrap().into(), (n["id"].as_str().unwrap().into(), n["course"]["lmsId"].as_str().unwrap().into()))
        })
        .collect();
    let mut categories = BTreeMap::new();
    let mut level: Vec<Option<String>> = vec![None];
    while let Some(parent) = level.pop() {
        let d = app.data(&admin, "query($p: ID) { categories(parentId: $p, first: 100) { edges { node { id lmsId } } } }", json!({"p": parent})).await;
        for e in d["categories"]["edges"].as_array().unwrap() {
            categories.insert(e["node"]["lmsId"].as_str().unwrap().to_string(), e["node"]["id"].as_str().unwrap().to_string());
            level.push(Some(e["node"]["id"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(categories.len(), 9);
    Ids { courses, categories, activities }
}

fn lms_ids(conn: &Value) -> BTreeSet<String> {
    conn["edges"].as_array().unwrap().iter().map(|e| e["node"]["lmsId"].as_str().unwrap().to_string()).collect()
}

/// Every category the caller can reach by walking the tree down from the top.
async fn walk_categories(app: &TestApp, token: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut level: Vec<Option<String>> = vec![None];
    while let Some(parent) = level.pop() {
        let d = app.data(token, "query($p: ID) { categories(parentId: $p, first: 100) { edges { node { id lmsId children(first: 100) { edges { node { lmsId } } } } } } }", json!({"p": parent})).await;
        for e in d["categories"]["edges"].as_array().unwrap() {
            let n = &e["node"];
            seen.insert(n["lmsId"].as_str().unwrap().to_string());
            // `children` shows the same visible categories as `categories(parentId:)`.
            let via_children = lms_ids(&n["children"]);
            let via_parent = app.data(token, "query($p: ID) { categories(parentId: $p, first: 100) { edges { node { lmsId } } } }", json!({"p": n["id"]})).await;
            assert_eq!(via_children, lms_ids(&via_parent["categories"]));
            level.push(Some(n["id"].as_str().unwrap().to_string()));
        }
    }
    seen
}

async fn every_role_sees_exactly_its_scope_by_every_path(app: TestApp) {
    let ids = ids(&app).await;
    for case in CASES {
        let token = app.token(case.roles, case.courses, case.categories);
        let ctx = case.name;
        let sees: BTreeSet<String> = case.sees_courses.iter().map(|s| s.to_string()).collect();

        let d = app.data(&token, "{ viewer { capabilities } courses(first: 100) { totalCount edges { node { lmsId } } } }", json!({})).await;
        assert_eq!(d["viewer"]["capabilities"], json!(case.capabilities), "{ctx}: capabilities");
        assert_eq!(lms_ids(&d["courses"]), sees, "{ctx}: courses list");
        assert_eq!(d["courses"]["totalCount"], sees.len(), "{ctx}: totalCount");

        for (lms, id) in &ids.courses {
            let visible = sees.contains(lms);
            let by_lms = app.gql(Some(&token), "query($l: String) { course(lmsId: $l) { lmsId } }", json!({"l": lms})).await;
            let by_id = app.gql(Some(&token), "query($i: ID) { course(id: $i) { lmsId } }", json!({"i": id})).await;
            let node = app.gql(Some(&token), "query($i: ID!) { node(id: $i) { id } }", json!({"i": id})).await;
            for (path, body) in [("course(lmsId)", &by_lms), ("course(id)", &by_id), ("node", &node)] {
                if visible {
                    assert!(body.get("errors").is_none(), "{ctx}: {path} {lms}: {body}");
                } else {
                    assert_eq!(error_codes(body), ["NOT_FOUND"], "{ctx}: {path} {lms} must be NOT_FOUND: {body}");
                }
            }
            // The filters cannot reach out of scope either.
            let acts = app.data(&token, "query($c: ID) { activities(first: 100, filter: {courseId: $c}) { totalCount } }", json!({"c": id})).await;
            assert_eq!(acts["activities"]["totalCount"].as_u64().unwrap() > 0, visible, "{ctx}: activities of {lms}");
        }

        // nodes: one batch with everything; out of scope is null.
        let all_ids: Vec<&String> = ids.courses.values().chain(ids.categories.values()).chain(ids.activities.values().map(|(g, _)| g)).collect();
        let d = app.data(&token, "query($i: [ID!]!) { nodes(ids: $i) { id } }", json!({"i": all_ids})).await;
        let returned: Vec<bool> = d["nodes"].as_array().unwrap().iter().map(|n| !n.is_null()).collect();
        let expected: Vec<bool> = ids
            .courses
            .keys()
            .map(|l| sees.contains(l))
            .chain(ids.categories.keys().map(|l| case.sees_categories.contains(&l.as_str())))
            .chain(ids.activities.values().map(|(_, c)| sees.contains(c)))
            .collect();
        assert_eq!(returned, expected, "{ctx}: nodes");

        // Activities: the list, node by node, and the overview count.
        let d = app.data(&token, "{ activities(first: 100) { totalCount edges { node { course { lmsId } } } } archivingOverview { activities { total } } }", json!({})).await;
        let in_scope = ids.activities.values().filter(|(_, c)| sees.contains(c)).count();
        assert_eq!(d["activities"]["totalCount"], in_scope, "{ctx}: activities");
        assert_eq!(d["archivingOverview"]["activities"]["total"], in_scope, "{ctx}: overview");
        for (g, c) in ids.activities.values() {
            let body = app.gql(Some(&token), "query($i: ID!) { node(id: $i) { id } }", json!({"i": g})).await;
            assert_eq!(body.get("errors").is_none(), sees.contains(c), "{ctx}: activity node of course {c}");
        }

        // Categories: walking the tree reaches exactly the visible ones; node agrees.
        let expected: BTreeSet<String> = case.sees_categories.iter().map(|s| s.to_string()).collect();
        assert_eq!(walk_categories(&app, &token).await, expected, "{ctx}: category tree");
        for (lms, id) in &ids.categories {
            let body = app.gql(Some(&token), "query($i: ID!) { node(id: $i) { id } }", json!({"i": id})).await;
            let codes = error_codes(&body);
            assert_eq!(codes.is_empty(), expected.contains(lms), "{ctx}: category node {lms}: {body}");
            if !codes.is_empty() {
                assert_eq!(codes, ["NOT_FOUND"]);
            }
        }
        // A category filter out of scope finds nothing.
        let d = app.data(&token, "query($c: ID) { courses(filter: {categoryId: $c}) { totalCount } }", json!({"c": ids.categories["5"]})).await;
        let expected_in_5 = ["105", "106", "107"].iter().filter(|c| sees.contains(**c)).count();
        assert_eq!(d["courses"]["totalCount"], expected_in_5, "{ctx}: courses under category 5");
    }
}

async fn a_scoped_role_without_scopes_is_forbidden(app: TestApp) {
    let token = app.token(&[Role::Teacher], &[], &[]);
    let d = app.data(&token, "{ viewer { capabilities } }", json!({})).await;
    assert_eq!(d["viewer"]["capabilities"], json!([]));
    for q in ["{ courses { totalCount } }", "{ activities { totalCount } }", "{ categories { totalCount } }", "{ storageBackends { totalCount } }", "{ policy { format } }", "{ archivingOverview { storedFiles } }"] {
        let body = app.gql(Some(&token), q, json!({})).await;
        assert_eq!(error_codes(&body), ["FORBIDDEN"], "{q}: {body}");
    }
    // nodes answers null rather than revealing anything.
    let admin_ids = app.data(&app.admin(), "{ courses(first: 1) { edges { node { id } } } }", json!({})).await;
    let id = admin_ids["courses"]["edges"][0]["node"]["id"].clone();
    let d = app.data(&token, "query($i: [ID!]!) { nodes(ids: $i) { id } }", json!({"i": [id]})).await;
    assert_eq!(d["nodes"], json!([null]));
}

async fn every_query_needs_a_token(app: TestApp) {
    for q in [
        "{ viewer { subject } }",
        "{ courses { totalCount } }",
        "{ course(lmsId: \"101\") { id } }",
        "{ categories { totalCount } }",
        "{ activities { totalCount } }",
        "{ node(id: \"Q291cnNlOjE\") { id } }",
        "{ nodes(ids: [\"Q291cnNlOjE\"]) { id } }",
        "{ storageBackends { totalCount } }",
        "{ policy { format } }",
        "{ archivingOverview { storedFiles } }",
    ] {
        let body = app.gql(None, q, json!({})).await;
        assert_eq!(error_codes(&body), ["UNAUTHENTICATED"], "{q}: {body}");
        // No data: `null` for a failed nullable root field, the whole `data` for a non-null one.
        let nothing = body["data"].is_null() || body["data"].as_object().is_some_and(|m| m.values().all(serde_json::Value::is_null));
        assert!(nothing, "{q}: no data without a token: {body}");
    }
}

on_both_databases!(every_role_sees_exactly_its_scope_by_every_path, a_scoped_role_without_scopes_is_forbidden, every_query_needs_a_token);
