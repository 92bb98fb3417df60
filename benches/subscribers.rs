//! Live subscribers against the real binary (see benches/README.md):
//!
//! ```text
//! cargo build --release && cargo bench -p archiving-manager-benches --bench subscribers -- [--part a|b|c|all] [--backend sqlite|postgres]
//!     [--subscribers 1000] [--seconds 20] [--fragment full|small] [--bin PATH]
//! ```
//!
//! (a) Subscribers that never read: 4 WebSockets × 50 `archiveJobsChanged` subscriptions with the
//!     SPA's full job fragment, never read, while 3 jobs run; meanwhile another client runs
//!     ordinary queries and mutations. Its latency (p50, p99) and errors are compared with the
//!     same client while the same kind of 3 jobs run without subscribers, in the same run.
//! (b) Fan-out: N subscribers (own connections and tokens) of one running job with the full
//!     fragment: the spread of each event's delivery (first to last subscriber receiving it),
//!     the server's RSS per socket, and its RSS after they leave.
//! (c) 500 sockets that never send `connection_init` (init timeout 2 s): how they are closed,
//!     and the server's file descriptors and RSS before, while open and after.
//!
//! Nothing is asserted: figures are printed, with ratios to the baseline of the same run.
use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpSocket;
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, Message},
    MaybeTlsStream,
};

mod support;
use support::{postgres_base, PgDb};

const SECRET: &str = "bench-secret-0123456789-0123456789-abcdef";
const USAGE: &str = "usage: cargo bench -p archiving-manager-benches --bench subscribers -- [--part a|b|c|all] [--backend sqlite|postgres] [--subscribers N] [--seconds S] [--fragment full|small] [--bin PATH]";

/// The SPA's job fragment (frontend-contract), as in the reported overload.
const FULL_JOB: &str = "sequence kind cursor job { id status progress sequence error cancelRequested startedAt finishedAt
    course { id shortName fullName }
    tasks { id status progress recordsDone recordsTotal error activity { id name kind archiveState } }
    files { id fileName sizeBytes sha256 mediaType storageBackend { name } }
    logs(first: 100) { totalCount edges { node { level message createdAt } } } }";
const CREATE: &str = "mutation($i: CreateArchiveJobInput!) { createArchiveJob(input: $i) { job { id } userErrors { message } } }";
const CANCEL: &str = "mutation($id: ID!) { cancelArchiveJob(input: {id: $id}) { job { id status } userErrors { message } } }";
const LIST: &str = "{ archiveJobs(first: 20) { totalCount edges { node { id status progress tasks { status progress } } } } }";
const COURSES: &str = "{ courses(first: 20) { totalCount edges { node { id shortName activities { edges { node { name archiveState } } } } } } }";

struct Args {
    part: String,
    backend: String,
    subscribers: usize,
    seconds: u64,
    bin: String,
    /// The selection of (b): the SPA's full job fragment, or only `sequence kind job { id status progress }`.
    small: bool,
}

fn args() -> Args {
    let mut a = Args { part: "all".into(), backend: "sqlite".into(), subscribers: 1000, seconds: 20, bin: support::default_bin().display().to_string(), small: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value; {USAGE}"));
        match arg.as_str() {
            "--part" => a.part = value(),
            "--backend" => a.backend = value(),
            "--subscribers" => a.subscribers = value().parse().ok().filter(|n| *n > 0).expect("--subscribers N (N ≥ 1)"),
            "--seconds" => a.seconds = value().parse().ok().filter(|n| *n > 0).expect("--seconds S (S ≥ 1)"),
            "--bin" => a.bin = value(),
            "--fragment" => a.small = match value().as_str() {
                "full" => false,
                "small" => true,
                other => panic!("--fragment full|small, not {other}; {USAGE}"),
            },
            "--bench" => {}
            other => panic!("unknown argument {other}; {USAGE}"),
        }
    }
    assert!(["a", "b", "c", "all"].contains(&a.part.as_str()), "--part a|b|c|all; {USAGE}");
    assert!(["sqlite", "postgres"].contains(&a.backend.as_str()), "--backend sqlite|postgres; {USAGE}");
    a
}

/// The server process, killed and reaped when dropped (also when the bench fails).
struct Server {
    child: Child,
    port: u16,
    _dir: support::TempDir,
    _pg: Option<PgDb>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(a: &Args, extra_env: &[(&str, &str)]) -> Result<Self> {
        let dir = support::TempDir::new()?;
        let pg = if a.backend == "postgres" { Some(PgDb::create().await?) } else { None };
        let db_url = match &pg {
            Some(db) => format!("{}/{}", postgres_base(), db.0),
            None => format!("sqlite://{}?mode=rwc", dir.path().join("am.db").display()),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut c = Command::new(&a.bin);
        c.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ARCHIVING_DATA_DIR", dir.path())
            .env("ARCHIVING_DATABASE_URL", db_url)
            .env("ARCHIVING_JWT_SECRET", SECRET)
            .env("ARCHIVING_LISTEN", format!("127.0.0.1:{port}"))
            .env("ARCHIVING_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            c.env(k, v);
        }
        let child = c.spawn().with_context(|| format!("starting {}", a.bin))?;
        let mut s = Self { child, port, _dir: dir, _pg: pg };
        let http = support::http();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(support::get_status(&http, &format!("http://127.0.0.1:{port}/readyz")).await, Ok(200)) {
            if let Some(status) = s.child.try_wait()? {
                bail!("the server exited: {status}");
            }
            ensure!(Instant::now() < deadline, "the server did not become ready within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(s)
    }

    /// Resident memory of the server process, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()).unwrap_or(0)
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map(|d| d.count()).unwrap_or(0)
    }
}

/// An admin token for `subject`, signed like the server's own (HS256, its issuer and audience).
fn token(subject: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"sub": subject, "iss": "archiving-manager", "aud": "archiving-manager", "iat": now, "exp": now + 3600, "roles": ["admin"]});
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

struct Api {
    http: support::Http,
    port: u16,
    token: String,
}

impl Api {
    fn new(port: u16) -> Self {
        Self { http: support::http(), port, token: token("bench-client") }
    }

    /// The whole response body.
    async fn gql(&self, query: &str, variables: Value) -> Result<Value> {
        let url = format!("http://127.0.0.1:{}/graphql", self.port);
        let (status, body) = support::post_graphql(&self.http, &url, &self.token, &json!({"query": query, "variables": variables}), Duration::from_secs(60)).await?;
        serde_json::from_slice(&body).with_context(|| format!("HTTP {status}: {}", String::from_utf8_lossy(&body)))
    }

    async fn data(&self, query: &str, variables: Value) -> Result<Value> {
        let body = self.gql(query, variables).await?;
        ensure!(body.get("errors").is_none(), "GraphQL errors: {body}");
        Ok(body["data"].clone())
    }

    /// Closed activities of the large lecture (course 109), which take a while with a record delay.
    async fn large_activities(&self) -> Result<Vec<Value>> {
        let d = self.data("{ course(lmsId: \"109\") { id activities { edges { node { id isOpen } } } } }", json!({})).await?;
        let acts: Vec<Value> = d["course"]["activities"]["edges"].as_array().context("activities")?.iter().filter(|e| e["node"]["isOpen"] == false).map(|e| e["node"]["id"].clone()).collect();
        ensure!(!acts.is_empty(), "no closed activity in course 109");
        Ok(acts)
    }

    async fn create(&self, activities: &[Value]) -> Result<String> {
        let d = self.data(CREATE, json!({"i": {"activityIds": activities}})).await?;
        let r = &d["createArchiveJob"];
        ensure!(r["userErrors"].as_array().is_some_and(|e| e.is_empty()), "createArchiveJob refused: {r}");
        Ok(r["job"]["id"].as_str().context("job id")?.to_string())
    }

    async fn course_109(&self) -> Result<Value> {
        Ok(self.data("{ course(lmsId: \"109\") { id } }", json!({})).await?["course"]["id"].clone())
    }
}

type Ws = tokio_tungstenite::WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(port: u16, subject: &str, recv_buffer: Option<u32>) -> Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    let stream = socket.connect(([127, 0, 0, 1], port).into()).await?;
    let mut req = format!("ws://127.0.0.1:{port}/graphql/ws").into_client_request()?;
    req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let (mut ws, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream)).await?;
    ws.send(Message::Text(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", token(subject))}}).to_string().into())).await?;
    let ack = ws.next().await.context("closed before connection_ack")??;
    ensure!(ack.to_text().is_ok_and(|t| t.contains("connection_ack")), "expected connection_ack, got {ack:?}");
    Ok(ws)
}

async fn ws_subscribe(ws: &mut Ws, id: &str, query: &str, variables: Value) -> Result<()> {
    ws.send(Message::Text(json!({"type": "subscribe", "id": id, "payload": {"query": query, "variables": variables}}).to_string().into())).await?;
    Ok(())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// What the ordinary client saw in one phase.
struct Phase {
    ms: Vec<f64>,
    requests: usize,
    errors: usize,
    internal: usize,
    peak_rss_kib: u64,
}

impl Phase {
    fn line(&self, name: &str) -> String {
        format!(
            "{name:<28} requests {:>5}  p50 {:>7.1} ms  p99 {:>8.1} ms  max {:>8.1} ms  errors {:>4} (INTERNAL {:>4})  server peak RSS {:>6.1} MiB",
            self.requests,
            pct(&self.ms, 0.5),
            pct(&self.ms, 0.99),
            self.ms.last().copied().unwrap_or(f64::NAN),
            self.errors,
            self.internal,
            self.peak_rss_kib as f64 / 1024.0
        )
    }
}

/// The ordinary client for `secs`: in turn a job list, a course list, and a create + cancel of a
/// job (mutations); every request timed, errors counted by code.
async fn ordinary_client(server: &Server, api: &Api, small: &Value, secs: u64) -> Result<Phase> {
    let mut p = Phase { ms: Vec::new(), requests: 0, errors: 0, internal: 0, peak_rss_kib: 0 };
    let end = Instant::now() + Duration::from_secs(secs);
    let mut i = 0usize;
    let mut last_job: Option<String> = None;
    while Instant::now() < end {
        let (q, v) = match i % 4 {
            0 => (LIST, json!({})),
            1 => (COURSES, json!({})),
            2 => (CREATE, json!({"i": {"activityIds": [small]}})),
            _ => (CANCEL, json!({"id": last_job.clone().unwrap_or_default()})),
        };
        let t = Instant::now();
        let body = api.gql(q, v).await;
        p.ms.push(t.elapsed().as_secs_f64() * 1e3);
        p.requests += 1;
        match body {
            Ok(b) => {
                if let Some(errors) = b["errors"].as_array() {
                    p.errors += 1;
                    p.internal += errors.iter().filter(|e| e["extensions"]["code"] == "INTERNAL").count().min(1);
                }
                if i % 4 == 2 {
                    last_job = b["data"]["createArchiveJob"]["job"]["id"].as_str().map(str::to_string);
                }
            }
            Err(_) => p.errors += 1,
        }
        p.peak_rss_kib = p.peak_rss_kib.max(server.rss_kib());
        i += 1;
    }
    p.ms.sort_by(f64::total_cmp);
    Ok(p)
}

async fn part_a(a: &Args) -> Result<()> {
    eprintln!("subscribers bench (a): non-reading subscribers, {} backend…", a.backend);
    // Slow records keep the 3 jobs running through a phase (about 100 records each).
    let delay = (a.seconds * 15).to_string();
    let server = Server::start(a, &[("ARCHIVING_DEMO_RECORD_DELAY_MS", &delay)]).await?;
    let api = Api::new(server.port);
    let large = api.large_activities().await?;
    let small = api.data("{ activities(first: 100, filter: {kinds: [QUIZ]}) { edges { node { id isOpen course { lmsId } } } } }", json!({})).await?;
    let small = small["activities"]["edges"].as_array().context("activities")?.iter().map(|e| &e["node"]).find(|n| n["isOpen"] == false && n["course"]["lmsId"] == "101").map(|n| n["id"].clone()).context("a closed quiz in course 101")?;
    let three_jobs = || async {
        for k in 0..3 {
            api.create(&[large[k % large.len()].clone()]).await?;
        }
        anyhow::Ok(())
    };
    let rss_start = server.rss_kib();

    three_jobs().await?;
    let baseline = ordinary_client(&server, &api, &small, a.seconds).await?;

    // The load: 4 connections × 50 subscriptions of every job change, full fragment, never read.
    let course = api.course_109().await?;
    let q = format!("subscription($c: ID) {{ archiveJobsChanged(courseId: $c) {{ {FULL_JOB} }} }}");
    let mut stuck = Vec::new();
    for c in 0..4 {
        let mut ws = ws_connect(server.port, &format!("dashboard-{c}"), None).await?;
        for s in 0..50 {
            ws_subscribe(&mut ws, &format!("{s}"), &q, json!({"c": course})).await?;
        }
        stuck.push(ws); // never read from here on
    }
    three_jobs().await?;
    let loaded = ordinary_client(&server, &api, &small, a.seconds).await?;
    let rss_loaded = server.rss_kib();
    drop(stuck);
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!("\n(a) ordinary client for {} s each, 3 jobs of course 109 running ({} backend, binary {})", a.seconds, a.backend, a.bin);
    println!("  {}", baseline.line("no subscribers"));
    println!("  {}", loaded.line("4 × 50 non-reading subs"));
    println!(
        "  ratios (loaded / no subscribers): p50 ×{:.2}  p99 ×{:.2}",
        pct(&loaded.ms, 0.5) / pct(&baseline.ms, 0.5),
        pct(&loaded.ms, 0.99) / pct(&baseline.ms, 0.99)
    );
    println!(
        "  server RSS: {:.1} MiB at start, {:.1} MiB at the end of the loaded phase, {:.1} MiB 2 s after the subscribers left",
        rss_start as f64 / 1024.0,
        rss_loaded as f64 / 1024.0,
        server.rss_kib() as f64 / 1024.0
    );
    Ok(())
}

async fn part_b(a: &Args) -> Result<()> {
    let n = a.subscribers;
    eprintln!("subscribers bench (b): {n} subscribers of one job, {} backend…", a.backend);
    let server = Server::start(a, &[("ARCHIVING_DEMO_RECORD_DELAY_MS", "20")]).await?;
    let api = Api::new(server.port);
    let large = api.large_activities().await?;
    let course = api.course_109().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = server.rss_kib();
    let fds_before = server.fds();

    // Every subscriber records when each sequence number arrived; the text is searched, not
    // parsed, so that the bench's own CPU use stays small beside the server's.
    // Subscribed to the course before the job exists, every subscriber sees all of its run.
    let fragment = if a.small { "sequence kind job { id status progress }" } else { FULL_JOB };
    let q = format!("subscription($c: ID) {{ archiveJobsChanged(courseId: $c) {{ {fragment} }} }}");
    let mut sockets = Vec::new();
    for i in 0..n {
        let mut ws = ws_connect(server.port, &format!("watcher-{i}"), None).await?;
        ws_subscribe(&mut ws, "1", &q, json!({"c": course})).await?;
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_connected = server.rss_kib();
    let fds_connected = server.fds();
    let done = Arc::new(tokio::sync::Semaphore::new(0));
    let readers: Vec<_> = sockets.into_iter().map(|ws| tokio::spawn(read_sequences(ws, done.clone()))).collect();
    api.create(&[large[0].clone()]).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while done.available_permits() < n {
        ensure!(Instant::now() < deadline, "only {} of {n} subscribers saw the job end", done.available_permits());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut largest = 0;
    let mut arrivals: HashMap<i64, Vec<Instant>> = HashMap::new();
    for r in readers {
        for (seq, at, len) in r.await? {
            largest = largest.max(len);
            arrivals.entry(seq).or_default().push(at);
        }
    }
    let (spreads, complete) = spreads(&arrivals, n);
    // The same client against the least a server can do: one frame of the largest payload's
    // size, written to n sockets by n tasks, as many times as the job had events.
    let floor = client_floor(n, largest, arrivals.len().max(20)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_2s = server.rss_kib();
    tokio::time::sleep(Duration::from_secs(13)).await;
    let rss_after_15s = server.rss_kib();
    let fds_after = server.fds();

    let which = if a.small { "small selection" } else { "full job fragment" };
    println!("\n(b) {n} subscribers of one job, each its own connection and token, {which} ({} backend, binary {})", a.backend, a.bin);
    println!("  events: {} ({complete} reached all {n} subscribers)", arrivals.len());
    println!("  delivery spread (first to last subscriber): p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms", pct(&spreads, 0.5), pct(&spreads, 0.99), spreads.last().copied().unwrap_or(f64::NAN));
    println!(
        "  client floor (the bench fanning {largest}-byte frames out to its own {n} readers): p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms; server/floor p99 ratio {:.2}",
        pct(&floor, 0.5),
        pct(&floor, 0.99),
        floor.last().copied().unwrap_or(f64::NAN),
        pct(&spreads, 0.99) / pct(&floor, 0.99)
    );
    println!(
        "  server RSS: {:.1} MiB before, {:.1} MiB with {n} subscribed sockets ({:.1} KiB per socket), {:.1} MiB 2 s and {:.1} MiB 15 s after they left",
        rss_before as f64 / 1024.0,
        rss_connected as f64 / 1024.0,
        (rss_connected.saturating_sub(rss_before)) as f64 / n as f64,
        rss_after_2s as f64 / 1024.0,
        rss_after_15s as f64 / 1024.0
    );
    println!("  server file descriptors: {fds_before} before, {fds_connected} connected, {fds_after} after");
    Ok(())
}

/// Reads one subscriber's frames until the socket ends, recording when each sequence number
/// arrived (and the frame's length). The time is taken before anything else is done with the
/// frame, and the text is searched, not parsed, so that the client's own cost stays small; each
/// reader keeps its own list, so readers never wait for one another.
async fn read_sequences(mut ws: Ws, done: Arc<tokio::sync::Semaphore>) -> Vec<(i64, Instant, usize)> {
    let mut seen = Vec::new();
    let mut finished = false;
    // After the job's end (a task's COMPLETED may come first), what still comes within 1 s.
    let mut idle = Duration::from_secs(3600);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(idle, ws.next()).await {
        let at = Instant::now();
        let Message::Text(t) = msg else { continue };
        if let Some(seq) = t.find("\"sequence\":").and_then(|i| t[i + 11..].split(|c: char| !c.is_ascii_digit()).next()).and_then(|s| s.parse::<i64>().ok()) {
            seen.push((seq, at, t.len()));
        }
        if !finished && t.contains("\"status\":\"COMPLETED\"") {
            finished = true;
            done.add_permits(1);
            idle = Duration::from_secs(1);
        }
    }
    seen
}

/// For each event with at least two arrivals, last minus first arrival in ms (sorted); and how
/// many events reached all `n`.
fn spreads(arrivals: &HashMap<i64, Vec<Instant>>, n: usize) -> (Vec<f64>, usize) {
    let mut spreads = Vec::new();
    let mut complete = 0;
    for times in arrivals.values() {
        if times.len() == n {
            complete += 1;
        }
        if times.len() >= 2 {
            let first = times.iter().min().unwrap();
            let last = times.iter().max().unwrap();
            spreads.push(last.duration_since(*first).as_secs_f64() * 1e3);
        }
    }
    spreads.sort_by(f64::total_cmp);
    (spreads, complete)
}

/// The spread the bench's own readers see from an ideal server in this process: `events`
/// frames of `len` bytes (a `sequence` each), broadcast to `n` WebSockets, each written by its
/// own task as soon as it is sent, 50 ms apart. What remains of the server's spread above this
/// is the server's.
async fn client_floor(n: usize, len: usize, events: usize) -> Result<Vec<f64>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, _) = tokio::sync::broadcast::channel::<Arc<str>>(events + 1);
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    let done = Arc::new(tokio::sync::Semaphore::new(0));
    for _ in 0..n {
        let stream = TcpSocket::new_v4()?.connect(addr).await?;
        let (client, server) = tokio::join!(
            tokio_tungstenite::client_async(format!("ws://{addr}/"), MaybeTlsStream::Plain(stream)),
            async { tokio_tungstenite::accept_async(listener.accept().await?.0).await.map_err(anyhow::Error::from) }
        );
        let (client, mut server) = (client?.0, server?);
        let mut rx = tx.subscribe();
        writers.push(tokio::spawn(async move {
            while let Ok(frame) = rx.recv().await {
                if server.send(Message::Text((*frame).into())).await.is_err() {
                    break;
                }
            }
        }));
        readers.push(tokio::spawn(read_sequences(client, done.clone())));
    }
    let pad = len.saturating_sub(60);
    for seq in 0..events {
        let status = if seq + 1 == events { "COMPLETED" } else { "RUNNING" };
        let frame = format!(r#"{{"type":"next","id":"1","payload":{{"sequence":{seq},"status":"{status}","pad":"{}"}}}}"#, "x".repeat(pad));
        let _ = tx.send(frame.into());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut arrivals: HashMap<i64, Vec<Instant>> = HashMap::new();
    for r in readers {
        for (seq, at, _) in r.await? {
            arrivals.entry(seq).or_default().push(at);
        }
    }
    drop(tx);
    for w in writers {
        w.abort();
    }
    Ok(spreads(&arrivals, n).0)
}

async fn part_c(a: &Args) -> Result<()> {
    const SOCKETS: usize = 500;
    eprintln!("subscribers bench (c): {SOCKETS} uninitialised sockets, {} backend…", a.backend);
    let server = Server::start(a, &[("ARCHIVING_WS_INIT_TIMEOUT_SECONDS", "2")]).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_before, fds_before) = (server.rss_kib(), server.fds());
    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        let mut req = format!("ws://127.0.0.1:{}/graphql/ws", server.port).into_client_request()?;
        req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
        sockets.push(tokio_tungstenite::connect_async(req).await?.0);
    }
    let (rss_open, fds_open) = (server.rss_kib(), server.fds());
    let opened = Instant::now();
    let closes = futures::future::join_all(sockets.into_iter().map(|mut ws| async move {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Close(f) = msg {
                return f.map(|f| u16::from(f.code));
            }
        }
        None
    }))
    .await;
    let all_closed = opened.elapsed();
    let mut codes: HashMap<String, usize> = HashMap::new();
    for c in closes {
        *codes.entry(c.map_or("none".into(), |c| c.to_string())).or_default() += 1;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_after, fds_after) = (server.rss_kib(), server.fds());
    // jemalloc returns freed pages after its decay time (10 s by default).
    tokio::time::sleep(Duration::from_secs(13)).await;
    let rss_later = server.rss_kib();
    println!("\n(c) {SOCKETS} sockets without connection_init, init timeout 2 s ({} backend, binary {})", a.backend, a.bin);
    println!("  close codes: {codes:?}; the last closed {:.1} s after all were open", all_closed.as_secs_f64());
    println!("  server file descriptors: {fds_before} before, {fds_open} open, {fds_after} 2 s after");
    println!(
        "  server RSS: {:.1} MiB before, {:.1} MiB open ({:.1} KiB per socket), {:.1} MiB 2 s and {:.1} MiB 15 s after",
        rss_before as f64 / 1024.0,
        rss_open as f64 / 1024.0,
        rss_open.saturating_sub(rss_before) as f64 / SOCKETS as f64,
        rss_after as f64 / 1024.0,
        rss_later as f64 / 1024.0
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    let a = args();
    let mut failed = false;
    if a.part == "a" || a.part == "all" {
        if let Err(e) = part_a(&a).await {
            println!("(a) FAILED: {e:#}");
            failed = true;
        }
    }
    if a.part == "b" || a.part == "all" {
        if let Err(e) = part_b(&a).await {
            println!("(b) FAILED: {e:#}");
            failed = true;
        }
    }
    if a.part == "c" || a.part == "all" {
        if let Err(e) = part_c(&a).await {
            println!("(c) FAILED: {e:#}");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
