//! The error contract: every error in every answer, over HTTP and over the WebSocket, carries an
//! `extensions.code` from the one list (`ErrorCode`), with a message for people and no Rust debug
//! text. Each code is provoked here on both databases, and the test fails if a code of the list
//! was never seen.
mod common;

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use archiving_manager::{auth::Role, error::ErrorCode};
use common::{Backend, TestApp};
use futures::{SinkExt, StreamExt};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use strum::IntoEnumIterator;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

const WITHIN: Duration = Duration::from_secs(30);

/// The codes seen so far, each checked on the way in.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<BTreeSet<String>>>);

impl Seen {
    /// Checks every error of a GraphQL answer and returns their codes.
    fn check(&self, what: &str, body: &Value) -> Vec<String> {
        let errors = body["errors"].as_array().unwrap_or_else(|| panic!("{what}: no errors in {body}"));
        let known: BTreeSet<String> = ErrorCode::iter().map(|c| c.to_string()).collect();
        let mut codes = Vec::new();
        for e in errors {
            let code = e["extensions"]["code"].as_str().unwrap_or_else(|| panic!("{what}: an error without a code: {e}"));
            assert!(known.contains(code), "{what}: `{code}` is not one of ErrorCode: {e}");
            let message = e["message"].as_str().unwrap_or_else(|| panic!("{what}: no message: {e}"));
            assert!(!message.trim().is_empty(), "{what}: empty message: {e}");
            assert_no_debug_text(what, &e.to_string());
            codes.push(code.to_string());
        }
        self.0.lock().unwrap().extend(codes.iter().cloned());
        codes
    }

    /// Checks the answer and that its first error has `code`.
    fn expect(&self, what: &str, body: &Value, code: ErrorCode) {
        let codes = self.check(what, body);
        assert_eq!(codes[0], code.as_str(), "{what}: {body}");
    }
}

/// None of Rust's `Debug` output in what a client sees.
fn assert_no_debug_text(what: &str, text: &str) {
    for tell in ["Io(", "Custom {", "kind:", "InvalidRequest(", "Error {", "ParseRequestError", "Some(", "DbErr", "src/"] {
        assert!(!text.contains(tell), "{what}: Rust debug text ({tell}) in {text}");
    }
}

async fn post(app: &TestApp, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = app.http().post(app.url("/graphql")).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// A query nested `levels` deep through `parent`, valid in every other way.
fn nested(levels: usize) -> String {
    format!("{{ categories {{ nodes {{ {} id {} }} }} }}", "parent { ".repeat(levels), "} ".repeat(levels))
}

async fn graphql_errors_have_codes(app: &TestApp, seen: &Seen) {
    let admin = app.admin();
    let cases: Vec<(&str, Value, ErrorCode)> = vec![
        ("a syntax error", json!({"query": "{ courses { totalCount "}), ErrorCode::GraphqlParseFailed),
        ("an unknown field", json!({"query": "{ nope }"}), ErrorCode::GraphqlValidationFailed),
        (
            "a variable of the wrong type",
            json!({"query": "query($n: Int) { courses(first: $n) { totalCount } }", "variables": {"n": "ten"}}),
            ErrorCode::GraphqlValidationFailed,
        ),
        (
            "a missing required variable",
            json!({"query": "query($n: Int!) { courses(first: $n) { totalCount } }"}),
            ErrorCode::GraphqlValidationFailed,
        ),
        ("several operations, none named", json!({"query": "query A { __typename } query B { __typename }"}), ErrorCode::GraphqlValidationFailed),
        ("an unknown operation name", json!({"query": "query A { __typename }", "operationName": "C"}), ErrorCode::GraphqlValidationFailed),
        ("nested past the depth limit", json!({"query": nested(20)}), ErrorCode::QueryTooComplex),
        ("nested past the parser's limit", json!({"query": nested(80)}), ErrorCode::QueryTooComplex),
        (
            "over the complexity limit",
            json!({"query": format!("{{ {} }}", (0..20).map(|i| format!("c{i}: courses(first: 100) {{ nodes {{ activities(first: 100) {{ nodes {{ id name }} }} }} }}")).collect::<Vec<_>>().join(" "))}),
            ErrorCode::QueryTooComplex,
        ),
        ("a page over 100", json!({"query": "{ courses(first: 101) { totalCount } }"}), ErrorCode::BadUserInput),
        ("a malformed id", json!({"query": "{ node(id: \"garbage\") { id } }"}), ErrorCode::BadUserInput),
        ("a missing course", json!({"query": "{ course(lmsId: \"no-such-course\") { id } }"}), ErrorCode::NotFound),
    ];
    for (what, body, code) in cases {
        let (status, answer) = post(app, Some(&admin), body).await;
        assert_eq!(status, 200, "{what}: GraphQL errors are answered 200: {answer}");
        seen.expect(what, &answer, code);
    }
    // A query within the depth limit still runs.
    let (_, ok) = post(app, Some(&admin), json!({"query": nested(10)})).await;
    assert!(ok.get("errors").is_none(), "{ok}");

    let (_, answer) = post(app, None, json!({"query": "{ courses { totalCount } }"})).await;
    seen.expect("no token", &answer, ErrorCode::Unauthenticated);
    let (_, answer) = post(app, Some("not-a-jwt"), json!({"query": "{ courses { totalCount } }"})).await;
    seen.expect("a bad token", &answer, ErrorCode::Unauthenticated);
    let scopeless = app.token(&[Role::Teacher], &[], &[]);
    let (_, answer) = post(app, Some(&scopeless), json!({"query": "{ courses { totalCount } }"})).await;
    seen.expect("a teacher of no course", &answer, ErrorCode::Forbidden);

    // Over GET, the same codes.
    let res = app.http().get(app.url("/graphql")).bearer_auth(&admin).query(&[("query", "{ courses {")]).send().await.unwrap();
    seen.expect("a syntax error over GET", &res.json::<Value>().await.unwrap(), ErrorCode::GraphqlParseFailed);
}

/// Over the WebSocket, errors of a `subscribe` come in an `error` message with the same codes.
async fn ws_errors_have_codes(app: &TestApp, seen: &Seen) {
    let mut req = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("websocket connects");
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", app.admin())}}))).await.unwrap();
    let cases = [
        ("a syntax error over ws", "subscription { archiveJobsChanged {".to_string(), ErrorCode::GraphqlParseFailed),
        ("an unknown field over ws", "subscription { nope }".to_string(), ErrorCode::GraphqlValidationFailed),
        ("too deep over ws", nested(20), ErrorCode::QueryTooComplex),
        ("a page over 100 over ws", "{ courses(first: 101) { totalCount } }".to_string(), ErrorCode::BadUserInput),
    ];
    for (i, (what, query, code)) in cases.into_iter().enumerate() {
        let id = format!("s{i}");
        ws.send(send(json!({"type": "subscribe", "id": id, "payload": {"query": query}}))).await.unwrap();
        let answer = tokio::time::timeout(WITHIN, async {
            loop {
                match ws.next().await.expect("open").expect("frame") {
                    Message::Text(t) => {
                        let v: Value = serde_json::from_str(&t).unwrap();
                        if v["id"] == id.as_str() && (v["type"] == "error" || v["type"] == "next") {
                            return v;
                        }
                    }
                    Message::Close(f) => panic!("{what}: closed: {f:?}"),
                    _ => {}
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer"));
        // `error` carries a list of errors; `next` a response whose `errors` are field errors.
        let body = if answer["type"] == "error" { json!({"errors": answer["payload"]}) } else { answer["payload"].clone() };
        seen.expect(what, &body, code);
    }
}

/// Opens a connection and sends `head` and then `body`, which may be only the start of what the
/// headers announce.
async fn send_raw(app: &TestApp, head: &str, body: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(format!("{head}\r\nHost: {}\r\n\r\n", app.addr).as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    s
}

/// The status and the JSON body of an answer read until the server closes the connection.
async fn read_answer(s: &mut TcpStream) -> (u16, Value) {
    let mut buf = Vec::new();
    tokio::time::timeout(WITHIN, s.read_to_end(&mut buf)).await.expect("the server answers and closes").ok();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status: {head}"));
    let json = body.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON in {body:?}"));
    (status, serde_json::from_str(json).unwrap())
}

/// Requests that never reach GraphQL: the code's HTTP status and the same error shape, no `data`.
async fn refusals_have_codes(app: &TestApp, seen: &Seen) {
    let admin = app.admin();
    let raw = |body: &'static str| app.http().post(app.url("/graphql")).bearer_auth(&admin).header("content-type", "application/json").body(body).send();
    for (what, res, code) in [
        ("a body that is not JSON", raw("this is not json").await.unwrap(), ErrorCode::BadRequest),
        ("variables that are not an object", raw(r#"{"query": "{ __typename }", "variables": 5}"#).await.unwrap(), ErrorCode::BadRequest),
        (
            "a mutation over GET",
            app.http().get(app.url("/graphql")).query(&[("query", "mutation { __typename }")]).send().await.unwrap(),
            ErrorCode::MethodNotAllowed,
        ),
        (
            "a body over max_body_bytes",
            app.http().post(app.url("/graphql")).header("content-type", "application/json").body(format!(r#"{{"query": "{}"}}"#, " ".repeat(5000))).send().await.unwrap(),
            ErrorCode::PayloadTooLarge,
        ),
        (
            "an unknown content type",
            app.http().post(app.url("/graphql")).header("content-type", "text/csv").body("a,b").send().await.unwrap(),
            ErrorCode::BadRequest,
        ),
    ] {
        assert_eq!(Some(res.status()), code.http_status(), "{what}");
        let body: Value = res.json().await.unwrap();
        assert!(body.get("data").is_none(), "{what}: {body}");
        seen.expect(what, &body, code);
    }

    let mut s = send_raw(app, "POST /graphql HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100", b"{").await;
    let (status, body) = read_answer(&mut s).await;
    assert_eq!(status, 408);
    seen.expect("a stalled body", &body, ErrorCode::RequestTimeout);
}

/// With room for one request, a body that trickles in holds it: a second request is shed with 503.
async fn shedding_has_its_code(app: &TestApp, seen: &Seen) {
    let mut held = send_raw(app, "POST /graphql HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1000", b"{").await;
    let trickle = tokio::spawn(async move {
        // A byte every 300 ms: within the 1 s pause limit, so the request stays open.
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if held.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let shed = tokio::time::timeout(WITHIN, async {
        loop {
            let res = app.http().get(app.url("/graphql")).query(&[("query", "{ __typename }")]).send().await.unwrap();
            if res.status() == 503 {
                return res;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a second request is shed while the first holds the only place");
    trickle.abort();
    seen.expect("over max_concurrent_requests", &shed.json().await.unwrap(), ErrorCode::ServiceUnavailable);
}

/// A database failure is INTERNAL, with only an id: no SQL, no table names.
async fn internal_errors_show_only_an_id(app: &TestApp, seen: &Seen) {
    app.state.db.execute_unprepared("ALTER TABLE storage_backend RENAME TO storage_backend_gone").await.expect("take a table away from under the server");
    let (_, body) = post(app, Some(&app.admin()), json!({"query": "{ storageBackends { totalCount } }"})).await;
    seen.expect("a failing database", &body, ErrorCode::Internal);
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("internal error (id "), "{message}");
    assert!(!message.contains("storage_backend"), "{message}");
}

async fn every_code_is_answered(backend: Backend) {
    let seen = Seen::default();
    let app = TestApp::start_with(backend, |s| {
        s.max_body_bytes = 4096;
        s.request_body_timeout_seconds = 1;
    })
    .await;
    graphql_errors_have_codes(&app, &seen).await;
    ws_errors_have_codes(&app, &seen).await;
    refusals_have_codes(&app, &seen).await;
    internal_errors_show_only_an_id(&app, &seen).await;
    drop(app);

    let app = TestApp::start_with(backend, |s| {
        s.max_concurrent_requests = 1;
        s.request_body_timeout_seconds = 1;
    })
    .await;
    shedding_has_its_code(&app, &seen).await;

    let seen = seen.0.lock().unwrap().clone();
    let missing: Vec<String> = ErrorCode::iter().map(|c| c.to_string()).filter(|c| !seen.contains(c)).collect();
    assert!(missing.is_empty(), "codes of ErrorCode never provoked here: {missing:?}");
}

with_each_backend!(every_code_is_answered);
