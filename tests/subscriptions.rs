//! What one WebSocket client may cost the server, on SQLite and PostgreSQL: a cap on
//! subscriptions per connection and on connections per token, a client that does not read is
//! closed (4503) while others keep getting events, an event's payload is resolved once for many
//! identical subscribers, and many sockets that never initialise are all closed (4408) and
//! release their file descriptors.
mod common;

use std::{
    collections::{HashMap, HashSet},
    sync::atomic::Ordering,
    time::Duration,
};

use common::{
    jobs::{activity_ids, create},
    Backend, TestApp,
};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, Message},
    MaybeTlsStream, WebSocketStream,
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A liveness bound for what must happen, not a timing assertion.
const WITHIN: Duration = Duration::from_secs(60);

/// The SPA's full job fragment, as in the reported overload.
const FULL_JOB: &str = "sequence kind cursor job { id status progress sequence error course { id shortName fullName }
    tasks { id status progress recordsDone recordsTotal activity { id name kind archiveState } }
    files { id fileName sizeBytes sha256 }
    logs(first: 100) { totalCount edges { node { level message } } } }";

async fn connect(app: &TestApp, recv_buffer: Option<u32>) -> Ws {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let stream = socket.connect(app.addr).await.expect("connects");
    let mut req = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream)).await.expect("websocket handshake").0
}

async fn send(ws: &mut Ws, msg: Value) {
    ws.send(Message::Text(msg.to_string().into())).await.unwrap();
}

/// The next text message as JSON (pings answered); `Err` with the close frame when it closes.
async fn recv(ws: &mut Ws) -> Result<Value, Option<(u16, String)>> {
    loop {
        let msg = tokio::time::timeout(WITHIN, ws.next()).await.expect("a message within the bound");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "ping" {
                    send(ws, json!({"type": "pong"})).await;
                    continue;
                }
                return Ok(v);
            }
            Some(Ok(Message::Close(f))) => return Err(f.map(|f| (u16::from(f.code), f.reason.to_string()))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

/// Connects and initialises; the ack or the close frame.
async fn init(app: &TestApp, token: &str) -> (Ws, Result<Value, Option<(u16, String)>>) {
    let mut ws = connect(app, None).await;
    send(&mut ws, json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}})).await;
    let ack = recv(&mut ws).await;
    (ws, ack)
}

fn subscribe(id: &str, query: &str, variables: Value) -> Value {
    json!({"type": "subscribe", "id": id, "payload": {"query": query, "variables": variables}})
}

async fn course_id(app: &TestApp) -> Value {
    app.data(&app.admin(), "{ course(lmsId: \"101\") { id } }", json!({})).await["course"]["id"].clone()
}

/// A subscriber over the cap gets an `error` for its id (BAD_USER_INPUT, saying the cap) and
/// the connection goes on; a connection beyond the per-token cap is refused with 4403.
async fn caps_on_subscriptions_and_connections(backend: Backend) {
    let app = TestApp::start_with(backend, |s| {
        s.ws_max_subscriptions = 2;
        s.ws_max_connections_per_token = 2;
    })
    .await;
    let admin = app.admin();
    let q = "subscription { archiveJobsChanged { kind sequence } }";
    let (mut ws, ack) = init(&app, &admin).await;
    assert_eq!(ack.unwrap()["type"], "connection_ack");
    send(&mut ws, subscribe("a", q, json!({}))).await;
    send(&mut ws, subscribe("b", q, json!({}))).await;
    send(&mut ws, subscribe("c", q, json!({}))).await;
    let refused = recv(&mut ws).await.expect("an answer, not a close");
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "c");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "BAD_USER_INPUT", "{refused}");
    let message = refused["payload"][0]["message"].as_str().unwrap();
    assert!(message.contains("too many subscriptions") && message.contains("at most 2"), "{message}");
    // Completing one makes room; the connection was never closed.
    send(&mut ws, json!({"type": "complete", "id": "a"})).await;
    send(&mut ws, subscribe("c", q, json!({}))).await;
    send(&mut ws, json!({"type": "ping"})).await;
    loop {
        let answer = recv(&mut ws).await.expect("still open");
        assert_ne!(answer["type"], "error", "`c` is accepted this time: {answer}");
        if answer["type"] == "pong" {
            break;
        }
    }

    // Two connections for this token are open with the first; a third is refused.
    let (_second, ack) = init(&app, &admin).await;
    assert_eq!(ack.unwrap()["type"], "connection_ack");
    let (_, refused) = init(&app, &admin).await;
    let (code, reason) = refused.expect_err("refused").expect("a close frame");
    assert_eq!(code, 4403);
    assert!(reason.contains("too many connections") && reason.contains("at most 2"), "{reason}");
    // Another caller is not affected, and a closed connection frees its place.
    let (_, ack) = init(&app, &app.token(&[archiving_manager::auth::Role::Reporter], &[], &[])).await;
    assert_eq!(ack.unwrap()["type"], "connection_ack");
    ws.close(None).await.unwrap();
    drop(ws);
    let mut freed = false;
    for _ in 0..50 {
        let (_third, ack) = init(&app, &admin).await;
        if ack.is_ok() {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "a closed connection frees its place");
}

/// Eight identical subscribers on two connections: each event's payload is resolved once, not
/// once per subscriber (counted by the service), and every subscriber gets every payload.
async fn identical_subscribers_share_one_payload_resolution(backend: Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin();
    let course = course_id(&app).await;
    let q = format!("subscription($c: ID) {{ archiveJobsChanged(courseId: $c) {{ {FULL_JOB} }} }}");
    let mut conns = Vec::new();
    for _ in 0..2 {
        let (mut ws, ack) = init(&app, &admin).await;
        assert_eq!(ack.unwrap()["type"], "connection_ack");
        for i in 0..4 {
            send(&mut ws, subscribe(&format!("s{i}"), &q, json!({"c": course}))).await;
        }
        conns.push(ws);
    }
    // The subscriptions were received once a ping sent after them is answered (messages are
    // handled in order).
    for ws in &mut conns {
        send(ws, json!({"type": "ping"})).await;
        assert_eq!(recv(ws).await.unwrap()["type"], "pong");
    }
    let counters = app.state.subscriptions.counters();
    let (resolved_before, delivered_before) = (counters.resolved.load(Ordering::SeqCst), counters.delivered.load(Ordering::SeqCst));
    let acts = activity_ids(&app, &["1001", "1003"]).await;
    let body = create(&app, &admin, json!({"activityIds": acts})).await;
    assert_eq!(body["data"]["createArchiveJob"]["userErrors"], json!([]), "{body}");

    // Every subscriber reads until COMPLETED; the payload of an event is the same for all.
    let mut payloads: HashMap<String, Value> = HashMap::new();
    let mut received = 0u64;
    for ws in &mut conns {
        let mut done = HashSet::new();
        while done.len() < 4 {
            let msg = recv(ws).await.expect("open");
            assert_eq!(msg["type"], "next", "{msg}");
            assert!(msg["payload"]["errors"].is_null(), "{msg}");
            let e = &msg["payload"]["data"]["archiveJobsChanged"];
            received += 1;
            // A subscriber whose stream started after the job did begins with a snapshot.
            let key = format!("{}/{}/{}", e["cursor"], e["kind"], e["sequence"]);
            if let Some(seen) = payloads.get(&key) {
                assert_eq!(seen, e, "subscribers of one event get one payload");
            }
            payloads.insert(key, e.clone());
            if e["job"]["status"] == "COMPLETED" {
                done.insert(msg["id"].as_str().unwrap().to_string());
            }
        }
    }
    let resolved = counters.resolved.load(Ordering::SeqCst) - resolved_before;
    let delivered = counters.delivered.load(Ordering::SeqCst) - delivered_before;
    assert_eq!(delivered, received, "every payload received was counted as delivered");
    assert_eq!(resolved, payloads.len() as u64, "one resolution per event, for {received} deliveries of {} events", payloads.len());
    assert!(received >= 8 * payloads.len() as u64 / 2, "most events reached every subscriber: {received} of {}", payloads.len());
}

/// A connection that stops reading while it has many subscriptions is closed with 4503 once
/// its queue stays full past `ws_slow_client_seconds`; a client that reads gets every event up
/// to the end of the job meanwhile.
async fn a_client_that_does_not_read_is_closed_while_others_get_events(backend: Backend) {
    let app = TestApp::start_with(backend, |s| {
        s.ws_slow_client_seconds = 1;
        s.demo_record_delay_ms = 20;
    })
    .await;
    let admin = app.admin();
    let course = course_id(&app).await;
    // Each event is large for the stuck client: many subscriptions, each with the logs often.
    let logs: String = (0..8).map(|i| format!("l{i}: logs(first: 100) {{ edges {{ node {{ message createdAt taskId }} }} }} ")).collect();
    let heavy = format!("subscription($c: ID) {{ archiveJobsChanged(courseId: $c) {{ {FULL_JOB} again: job {{ {logs} }} }} }}");
    let mut stuck = connect(&app, Some(4096)).await;
    send(&mut stuck, json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {admin}")}})).await;
    assert_eq!(recv(&mut stuck).await.unwrap()["type"], "connection_ack");
    for i in 0..100 {
        send(&mut stuck, subscribe(&format!("s{i}"), &heavy, json!({"c": course}))).await;
    }
    send(&mut stuck, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut stuck).await.unwrap()["type"], "pong");
    let (mut reader, ack) = init(&app, &admin).await;
    assert_eq!(ack.unwrap()["type"], "connection_ack");
    send(&mut reader, subscribe("r", &format!("subscription($c: ID) {{ archiveJobsChanged(courseId: $c) {{ {FULL_JOB} }} }}"), json!({"c": course}))).await;
    send(&mut reader, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut reader).await.unwrap()["type"], "pong");

    // From here on `stuck` is not read, while `reader` reads every event to the job's end.
    let acts = activity_ids(&app, &["1001", "1002", "1003"]).await;
    let body = create(&app, &admin, json!({"activityIds": acts})).await;
    assert_eq!(body["data"]["createArchiveJob"]["userErrors"], json!([]), "{body}");
    let reading = tokio::spawn(async move {
        let mut events = 0;
        loop {
            let msg = recv(&mut reader).await.expect("the reading client stays served");
            assert_eq!(msg["type"], "next", "{msg}");
            events += 1;
            if msg["payload"]["data"]["archiveJobsChanged"]["job"]["status"] == "COMPLETED" {
                return events;
            }
        }
    });
    let counters = &app.state.subscriptions.counters().too_slow;
    tokio::time::timeout(WITHIN, async {
        while counters.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the server gives up on the client that does not read");
    // Reading now, the stuck client finds what was sent before, then the close frame.
    let close = loop {
        match recv(&mut stuck).await {
            Ok(_) => continue,
            Err(close) => break close,
        }
    };
    let (code, reason) = close.expect("a close frame, not a dropped connection");
    assert_eq!(code, 4503, "{reason}");
    assert!(reason.contains("too slow"), "{reason}");
    // The reader was served to the job's end. How many messages that took depends on timing:
    // a reader that falls behind under load gets coalesced states, which is allowed.
    let events = reading.await.expect("the reader finished");
    assert!(events >= 2, "the reader saw the job run, not only its end: {events} events");
}

/// Open TCP sockets of this process with `port` at either end (the server's listener and
/// accepted sockets, and clients' sockets to it): its descriptors whose inode is such a socket
/// in /proc/net/tcp. Other tests running meanwhile do not count.
fn sockets_on(port: u16) -> usize {
    let inodes: HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap_or_else(|e| panic!("counting sockets needs /proc (Linux): {e}"))
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_string))
        .collect();
    let port = format!(":{port:04X}");
    ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|t| t.lines().skip(1).map(str::to_string).collect::<Vec<_>>())
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.len() > 9 && (cols[1].ends_with(&port) || cols[2].ends_with(&port)) && inodes.contains(cols[9])
        })
        .count()
}

/// 500 sockets that never send `connection_init` are all closed with 4408 after the timeout,
/// and the file descriptors of both ends are released.
async fn many_uninitialised_sockets_are_closed_after_the_init_timeout(backend: Backend) {
    // Both ends live in this process (twice, with both backends at once): 2,000 descriptors and
    // more, past a common soft limit of 1,024. Raise it to the hard limit, or say what is needed.
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(Resource::Nofile, rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum });
    let now = getrlimit(Resource::Nofile).current;
    assert!(now.is_none_or(|n| n >= 4096), "this test needs 4096 open files (`ulimit -n 4096`); the limit is {now:?}");
    let app = TestApp::start_with(backend, |s| s.ws_init_timeout_seconds = 2).await;
    app.data(&app.admin(), "{ courses { totalCount } }", json!({})).await;
    let port = app.addr.port();
    let baseline = sockets_on(port);
    let sockets = futures::future::join_all((0..500).map(|_| connect(&app, None))).await;
    let mut open = sockets_on(port);
    for _ in 0..50 {
        if open >= baseline + 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // the server accepts a little later
        open = sockets_on(port);
    }
    assert!(open >= baseline + 1000, "both ends of every socket are open: {baseline} before, {open} now");
    let closes = futures::future::join_all(sockets.into_iter().map(|mut ws| async move {
        let close = loop {
            match recv(&mut ws).await {
                Ok(_) => continue,
                Err(close) => break close,
            }
        };
        drop(ws);
        close
    }))
    .await;
    let codes: HashMap<Option<u16>, usize> = closes.iter().fold(HashMap::new(), |mut m, c| {
        *m.entry(c.as_ref().map(|c| c.0)).or_default() += 1;
        m
    });
    assert_eq!(codes, HashMap::from([(Some(4408), 500)]), "every socket closed with 4408");
    // The server's ends are released too.
    let mut now = sockets_on(port);
    for _ in 0..100 {
        if now <= baseline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = sockets_on(port);
    }
    assert!(now <= baseline, "the sockets' descriptors are released: {baseline} before, {now} after");
}

with_each_backend!(
    caps_on_subscriptions_and_connections,
    identical_subscribers_share_one_payload_resolution,
    a_client_that_does_not_read_is_closed_while_others_get_events,
    many_uninitialised_sockets_are_closed_after_the_init_timeout,
);
