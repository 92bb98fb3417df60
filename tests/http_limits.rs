//! The API under load and abuse: body size and pause limits, load shedding, CORS, request errors
//! without Rust debug text, and the close codes of graphql-transport-ws.
//!
//! The HTTP limits are layers in front of every handler and touch no database, so they run on
//! SQLite only; what reaches the GraphQL executor or subscriptions runs on both databases.
mod common;

use std::time::Duration;

use common::{Backend, TestApp};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

/// The liveness bound of every wait here: generous, only to turn a hang into a failure.
const WITHIN: Duration = Duration::from_secs(30);

/// Opens a connection and sends `head` (request line and headers, without the blank line) and
/// then `body`, which may be only the start of what the headers announce.
async fn send_raw(app: &TestApp, head: &str, body: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(format!("{head}\r\nHost: {}\r\n\r\n", app.addr).as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    s.flush().await.unwrap();
    s
}

/// Reads what the server sends until it closes the connection; panics if it does not within
/// `WITHIN`. Returns the status and the body (the whole answer when it is not chunked).
async fn read_until_closed(s: &mut TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    tokio::time::timeout(WITHIN, async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the server answers and closes the connection");
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status: {head}"));
    (status, head.to_lowercase(), body.to_string())
}

/// The `extensions.code` of the first error of a GraphQL-shaped error body.
fn code(body: &str) -> String {
    let v: Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no code: {v}")).to_string()
}

/// A message meant for people: none of Rust's `Debug` output.
fn assert_no_debug_text(body: &str) {
    for tell in ["Io(", "Custom {", "kind:", "InvalidRequest(", "Error {", "ParseRequestError"] {
        assert!(!body.contains(tell), "Rust debug text ({tell}) in {body}");
    }
}

// --- body size ---------------------------------------------------------------------------------

/// A 100 MB body is refused from its Content-Length alone, before the server reads it: only a
/// few bytes are ever sent, and the answer comes anyway. Also without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_without_being_read() {
    let app = TestApp::start(Backend::Sqlite).await;
    let admin = app.admin();
    for auth in [format!("\r\nAuthorization: Bearer {admin}"), String::new()] {
        let head = format!("POST /graphql HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100000000{auth}");
        let mut s = send_raw(&app, &head, br#"{"query":"#).await;
        let (status, head, body) = read_until_closed(&mut s).await;
        assert_eq!(status, 413, "{head}\n{body}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert_eq!(code(&body), "PAYLOAD_TOO_LARGE", "{body}");
        assert!(body.contains("1048576"), "names the limit: {body}");
    }
    // Elsewhere the refusal is plain, and just as early.
    let mut s = send_raw(&app, "POST /downloads/x HTTP/1.1\r\nContent-Length: 100000000", b"abc").await;
    let (status, _, _) = read_until_closed(&mut s).await;
    assert_eq!(status, 413);
}

/// A body without Content-Length (chunked) is cut off when it passes the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_is_refused() {
    let app = TestApp::start_with(Backend::Sqlite, |s| s.max_body_bytes = 4096).await;
    let mut s = send_raw(&app, "POST /graphql HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked", b"").await;
    // 16 chunks of 1 KiB, never finished: the limit, not the end of the body, ends the request.
    let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
    for _ in 0..16 {
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let (status, _, body) = read_until_closed(&mut s).await;
    assert_eq!(status, 413, "{body}");
    // Chunked framing of the answer: the JSON is between the chunk sizes.
    let json = body.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON in {body:?}"));
    assert_eq!(code(json), "PAYLOAD_TOO_LARGE");
    assert!(json.contains("4096"), "names the limit: {json}");
}

// --- a stalled body ----------------------------------------------------------------------------

/// Headers and one byte of the body, then nothing: the request ends with 408 after the
/// configured pause, and the connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_times_out() {
    let app = TestApp::start_with(Backend::Sqlite, |s| s.request_body_timeout_seconds = 1).await;
    let mut s = send_raw(&app, "POST /graphql HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100", b"{").await;
    let (status, _, body) = read_until_closed(&mut s).await;
    assert_eq!(status, 408, "{body}");
    let json = body.lines().find(|l| l.starts_with('{')).unwrap_or(&body);
    assert_eq!(code(json), "REQUEST_TIMEOUT");
}

// --- load shedding -----------------------------------------------------------------------------

/// With room for one request, a second one is refused at once with 503 and `Retry-After` while
/// the first is held open by a slow body; health probes are still answered; when the first ends,
/// requests are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_limit_are_shed() {
    let app = TestApp::start_with(Backend::Sqlite, |s| s.max_concurrent_requests = 1).await;
    let held = send_raw(&app, "POST /graphql HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100", b"{").await;
    let query = || app.http().get(app.url("/graphql")).query(&[("query", "{ __typename }")]).send();
    // The held request takes the one place as soon as the server has read its headers.
    let shed = tokio::time::timeout(WITHIN, async {
        loop {
            let res = query().await.unwrap();
            if res.status() == 503 {
                return res;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a second request is shed while the first holds the only place");
    assert!(shed.headers().get("retry-after").is_some(), "{:?}", shed.headers());
    assert_eq!(code(&shed.text().await.unwrap()), "SERVICE_UNAVAILABLE");
    let health = app.http().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "health probes are not shed");

    drop(held);
    tokio::time::timeout(WITHIN, async {
        while query().await.unwrap().status() != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("served again once the held request ended");
}

// --- CORS --------------------------------------------------------------------------------------

const SPA: &str = "https://spa.example.org";

async fn allow_origin(app: &TestApp, origin: &str) -> Option<String> {
    let res = app
        .http()
        .post(app.url("/graphql"))
        .header("Origin", origin)
        .json(&json!({"query": "{ __typename }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_the_configured_origins() {
    let app = TestApp::start_with(Backend::Sqlite, |s| s.cors_allowed_origins = vec![SPA.into()]).await;
    let preflight = app
        .http()
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("Origin", SPA)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization, content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let h = |name: &str| preflight.headers().get(name).map(|v| v.to_str().unwrap().to_lowercase()).unwrap_or_default();
    assert_eq!(h("access-control-allow-origin"), SPA);
    assert!(h("access-control-allow-headers").contains("authorization"), "{:?}", preflight.headers());
    assert!(h("access-control-allow-headers").contains("content-type"), "{:?}", preflight.headers());
    assert!(h("access-control-allow-methods").contains("post"), "{:?}", preflight.headers());

    assert_eq!(allow_origin(&app, SPA).await.as_deref(), Some(SPA));
    assert_eq!(allow_origin(&app, "https://evil.example.com").await, None);

    let plain = TestApp::start(Backend::Sqlite).await;
    assert_eq!(allow_origin(&plain, SPA).await, None, "no CORS headers unless origins are configured");
}

// --- request errors ----------------------------------------------------------------------------

/// What is not a GraphQL request is answered 400 with a GraphQL-shaped error for people.
async fn bad_requests_get_json_errors(app: TestApp) {
    let admin = app.admin();
    let post = |body: &'static str| app.http().post(app.url("/graphql")).bearer_auth(&admin).header("content-type", "application/json").body(body).send();
    let get = |query: &'static [(&'static str, &'static str)]| app.http().get(app.url("/graphql")).bearer_auth(&admin).query(query).send();
    for (what, res) in [
        ("not JSON", post("this is not json").await.unwrap()),
        ("a number as query", post(r#"{"query": 42}"#).await.unwrap()),
        ("no query", post(r#"{"variables": {}}"#).await.unwrap()),
        ("GET without query", get(&[]).await.unwrap()),
        ("GET with bad variables", get(&[("query", "{ __typename }"), ("variables", "{not json")]).await.unwrap()),
    ] {
        assert_eq!(res.status(), 400, "{what}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let body = res.text().await.unwrap();
        assert_eq!(code(&body), "BAD_REQUEST", "{body}");
        assert_no_debug_text(&body);
    }
    let res = get(&[("query", "mutation { __typename }")]).await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(code(&res.text().await.unwrap()), "METHOD_NOT_ALLOWED");
    // A good request still works, over both methods.
    assert_eq!(get(&[("query", "{ __typename }")]).await.unwrap().json::<Value>().await.unwrap()["data"]["__typename"], "Query");
    assert_eq!(post(r#"{"query": "{ __typename }"}"#).await.unwrap().json::<Value>().await.unwrap()["data"]["__typename"], "Query");
}

// --- graphql-transport-ws ----------------------------------------------------------------------

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn ws_connect(app: &TestApp) -> Ws {
    let mut req = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    tokio_tungstenite::connect_async(req).await.expect("websocket connects").0
}

async fn ws_send(ws: &mut Ws, msg: Value) {
    ws.send(Message::Text(msg.to_string().into())).await.unwrap();
}

async fn ws_init(ws: &mut Ws, token: &str) {
    ws_send(ws, json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}})).await;
}

/// The code and reason the server closes with; panics if it does not close within `WITHIN`.
async fn close_of(ws: &mut Ws) -> (u16, String) {
    tokio::time::timeout(WITHIN, async {
        while let Some(msg) = ws.next().await {
            match msg.expect("a well-formed frame") {
                Message::Close(Some(f)) => return (u16::from(f.code), f.reason.to_string()),
                Message::Close(None) => panic!("closed without a code"),
                _ => {}
            }
        }
        panic!("the socket ended without a close frame")
    })
    .await
    .expect("the server closes the socket")
}

const SUBSCRIPTION: &str = "subscription { archiveJobsChanged { kind sequence } }";

/// A socket that never sends connection_init is closed with 4408 after the configured time.
async fn ws_without_init_is_closed_with_4408(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.ws_init_timeout_seconds = 1).await;
    let mut ws = ws_connect(&app).await;
    assert_eq!(close_of(&mut ws).await.0, 4408);
    // One that does initialise stays open past the timeout and is served.
    let mut ws = ws_connect(&app).await;
    ws_init(&mut ws, &app.admin()).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ws_send(&mut ws, json!({"type": "ping"})).await;
    let seen = tokio::time::timeout(WITHIN, async {
        let mut seen = Vec::new();
        loop {
            match ws.next().await.expect("open").expect("frame") {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    seen.push(v["type"].as_str().unwrap_or_default().to_string());
                    if v["type"] == "pong" {
                        return seen;
                    }
                }
                Message::Close(f) => panic!("closed: {f:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("still served after the init timeout");
    assert_eq!(seen, ["connection_ack", "pong"]);
}

async fn ws_protocol_violations_have_their_close_codes(backend: Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin();
    let subscribe = |id: &str| json!({"type": "subscribe", "id": id, "payload": {"query": SUBSCRIPTION}});

    // subscribe before connection_init: 4401 Unauthorized.
    let mut ws = ws_connect(&app).await;
    ws_send(&mut ws, subscribe("1")).await;
    assert_eq!(close_of(&mut ws).await, (4401, "Unauthorized".into()));

    // The same id twice while the first runs: 4409.
    let mut ws = ws_connect(&app).await;
    ws_init(&mut ws, &admin).await;
    ws_send(&mut ws, subscribe("dup")).await;
    ws_send(&mut ws, subscribe("dup")).await;
    assert_eq!(close_of(&mut ws).await, (4409, "Subscriber for dup already exists".into()));

    // An id may be used again once its subscription is complete.
    let mut ws = ws_connect(&app).await;
    ws_init(&mut ws, &admin).await;
    ws_send(&mut ws, subscribe("again")).await;
    ws_send(&mut ws, json!({"type": "complete", "id": "again"})).await;
    ws_send(&mut ws, subscribe("again")).await;
    ws_send(&mut ws, json!({"type": "ping"})).await;
    tokio::time::timeout(WITHIN, async {
        loop {
            match ws.next().await.expect("open").expect("frame") {
                Message::Text(t) if serde_json::from_str::<Value>(&t).unwrap()["type"] == "pong" => break,
                Message::Close(f) => panic!("closed: {f:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("still open after reusing a completed id");

    // A refused connection_init: 4403 Forbidden.
    let mut ws = ws_connect(&app).await;
    ws_init(&mut ws, "not-a-jwt").await;
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.starts_with("Forbidden"), "{reason}");
}

/// Close reasons fit a close frame (at most 123 bytes), cut on a character boundary.
async fn ws_close_reasons_fit_a_frame(backend: Backend) {
    let app = TestApp::start(backend).await;
    let long_id = "é".repeat(100); // 200 bytes
    let mut ws = ws_connect(&app).await;
    ws_init(&mut ws, &app.admin()).await;
    for _ in 0..2 {
        ws_send(&mut ws, json!({"type": "subscribe", "id": long_id, "payload": {"query": SUBSCRIPTION}})).await;
    }
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(code, 4409);
    assert!(reason.len() <= 123 && reason.starts_with("Subscriber for éé"), "{} bytes: {reason}", reason.len());

    // A message of no known type: 4400 with async-graphql's (long) parser message, cut to fit.
    let mut ws = ws_connect(&app).await;
    ws_send(&mut ws, json!({"type": format!("bogus-{}", "x".repeat(300))})).await;
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(code, 4400, "{reason}");
    assert!(!reason.is_empty() && reason.len() <= 123, "{} bytes: {reason}", reason.len());
}

with_each_backend!(ws_without_init_is_closed_with_4408, ws_protocol_violations_have_their_close_codes, ws_close_reasons_fit_a_frame,);
on_both_databases!(bad_requests_get_json_errors);
