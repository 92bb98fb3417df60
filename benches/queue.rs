//! Queue throughput and latency of the real binary, as operators run it (see benches/README.md).
//!
//! ```text
//! cargo build --release
//! cargo bench -p archiving-manager-benches --bench queue -- [--jobs N] [--backends sqlite,postgres] [--workers 1,2] [--bin PATH]
//! ```
//!
//! Per backend: first the creation ceiling — N bare `createArchiveJob` calls against an API
//! without workers; then per number of worker processes: fresh processes on a fresh database, N
//! small jobs created back to back; reports jobs/s (first create until all COMPLETED), its ratio
//! to the ceiling, the time from a job's create request to its first PROGRESS (or STATUS_CHANGED
//! beyond QUEUED) event on the API's WebSocket (median, p95), and ratios against baselines of the
//! same run. Never asserts timings.
//!
//! It runs the release binary that `cargo build --release` made (not a build of its own), over
//! HTTP and WebSocket only, so that `cargo bench` compiles nothing but this file.
use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

mod support;
use support::{default_bin, postgres_base, Http, PgDb, TempDir};

const SECRET: &str = "bench-secret-0123456789-0123456789-abcdef";
const USAGE: &str = "usage: cargo bench -p archiving-manager-benches --bench queue -- [--jobs N] [--backends sqlite,postgres] [--workers 1,2] [--bin PATH]";
const CREATE: &str = "mutation($i: CreateArchiveJobInput!) { createArchiveJob(input: $i) { job { id } userErrors { message } } }";
const PROGRESS: &str = "subscription { archiveJobsChanged { kind sequence job { id status progress } } }";
const COUNTS: &str = "{ done: archiveJobs(first: 1, filter: {statuses: [COMPLETED]}) { totalCount } \
    bad: archiveJobs(first: 3, filter: {statuses: [FAILURE, TIMEOUT, CANCELED]}) { totalCount edges { node { id status error } } } }";

struct Args {
    jobs: usize,
    backends: Vec<&'static str>,
    workers: Vec<usize>,
    bin: std::path::PathBuf,
}

fn args() -> Args {
    let mut a = Args { jobs: 500, backends: vec!["sqlite", "postgres"], workers: vec![1, 2], bin: default_bin() };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value; {USAGE}"));
        match arg.as_str() {
            "--jobs" => a.jobs = value().parse().ok().filter(|n| *n > 0).expect("--jobs N (N ≥ 1)"),
            "--backends" => {
                let known = |b: &str| ["sqlite", "postgres"].into_iter().find(|k| *k == b).unwrap_or_else(|| panic!("unknown backend {b}; {USAGE}"));
                a.backends = value().split(',').map(known).collect()
            }
            "--workers" => a.workers = value().split(',').map(|w| w.parse().ok().filter(|w| *w > 0).expect("--workers 1,2 (each ≥ 1)")).collect(),
            "--bin" => a.bin = value().into(),
            "--bench" => {} // added by `cargo bench`
            other => panic!("unknown argument {other}; {USAGE}"),
        }
    }
    a
}

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

/// A child process, killed (SIGKILL) and reaped when dropped, also when a scenario panics.
struct Proc(Child, String);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn check_alive(procs: &mut [Proc]) -> Result<()> {
    for p in procs {
        if let Some(status) = p.0.try_wait()? {
            bail!("`archiving-manager {}` exited early: {status}", p.1);
        }
    }
    Ok(())
}

/// What every process of one scenario shares.
struct Env {
    bin: std::path::PathBuf,
    data: std::path::PathBuf,
    db_url: String,
}

impl Env {
    fn command(&self, args: &[&str], port: u16, log: &str) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env_clear()
            .env("PATH", setting("PATH", ""))
            .env("ARCHIVING_DATA_DIR", &self.data)
            .env("ARCHIVING_DATABASE_URL", &self.db_url)
            .env("ARCHIVING_JWT_SECRET", SECRET)
            .env("ARCHIVING_LISTEN", format!("127.0.0.1:{port}"))
            .env("ARCHIVING_LOG", log)
            .env("ARCHIVING_MAX_CONCURRENT_JOBS", setting("ARCHIVING_MAX_CONCURRENT_JOBS", "50"))
            .env("ARCHIVING_WORKER_CONCURRENCY", setting("ARCHIVING_WORKER_CONCURRENCY", "4"))
            .stdout(Stdio::null());
        c
    }

    fn spawn(&self, args: &[&str], port: u16) -> Result<Proc> {
        let child = self.command(args, port, "warn").stderr(Stdio::inherit()).spawn().context("starting the binary")?;
        Ok(Proc(child, args.join(" ")))
    }

    /// Starts a `worker` and waits for its "worker started" log line (it has no HTTP port);
    /// its other log lines except INFO go to our stderr.
    async fn spawn_worker(&self) -> Result<Proc> {
        let log = "warn,archiving_manager=info,archiving_manager::engine=warn";
        let mut child = self.command(&["worker"], free_port(), log).stderr(Stdio::piped()).spawn().context("starting a worker")?;
        let stderr = child.stderr.take().expect("piped");
        let proc = Proc(child, "worker".into());
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("worker started") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                } else if !line.contains("INFO") {
                    eprintln!("{line}");
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .context("a `worker` did not start within 60 s")?
            .context("a `worker` exited before it started")?;
        Ok(proc)
    }

    fn token(&self) -> Result<String> {
        let out = self.command(&["token", "--role", "admin", "--ttl", "12h"], 0, "warn").stderr(Stdio::piped()).stdout(Stdio::piped()).output()?;
        ensure!(out.status.success(), "`archiving-manager token` failed: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Api {
    http: Http,
    port: u16,
    token: String,
}

impl Api {
    fn new(port: u16, token: String) -> Self {
        Self { http: support::http(), port, token }
    }

    /// The status of `GET path`, or an error when the server does not answer.
    async fn status(&self, path: &str) -> Result<u16> {
        support::get_status(&self.http, &format!("http://127.0.0.1:{}{path}", self.port)).await
    }

    async fn gql(&self, query: &str, variables: Value) -> Result<Value> {
        let res = support::post_graphql(&self.http, &format!("http://127.0.0.1:{}/graphql", self.port), &self.token, &json!({"query": query, "variables": variables}), Duration::from_secs(60)).await?;
        let body: Value = serde_json::from_slice(&res.1).with_context(|| format!("HTTP {}: {}", res.0, String::from_utf8_lossy(&res.1)))?;
        ensure!(body.get("errors").is_none(), "GraphQL errors: {body}");
        Ok(body["data"].clone())
    }
}

/// Subscribes to every job's changes; records when each job's first progress arrived.
async fn watch_progress(port: u16, token: &str) -> Result<(Arc<Mutex<HashMap<String, Instant>>>, tokio::task::JoinHandle<String>)> {
    let mut req = format!("ws://127.0.0.1:{port}/graphql/ws").into_client_request()?;
    req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.context("WebSocket connect")?;
    let init = json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}});
    ws.send(Message::Text(init.to_string().into())).await?;
    let ack = ws.next().await.context("the WebSocket closed before connection_ack")??;
    ensure!(ack.to_text().is_ok_and(|t| t.contains("connection_ack")), "expected connection_ack, got {ack:?}");
    ws.send(Message::Text(json!({"type": "subscribe", "id": "1", "payload": {"query": PROGRESS}}).to_string().into())).await?;
    let first = Arc::new(Mutex::new(HashMap::new()));
    let seen = first.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let now = Instant::now();
            let Message::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(&t).unwrap_or_default();
            match v["type"].as_str() {
                Some("next") if v["payload"].get("errors").is_none() => {
                    let e = &v["payload"]["data"]["archiveJobsChanged"];
                    let (kind, status) = (e["kind"].as_str().unwrap_or(""), e["job"]["status"].as_str().unwrap_or(""));
                    if kind == "PROGRESS" || (kind == "STATUS_CHANGED" && !matches!(status, "UNINITIALIZED" | "QUEUED")) {
                        seen.lock().unwrap().entry(e["job"]["id"].as_str().unwrap_or("").to_string()).or_insert(now);
                    }
                }
                Some("ping") => drop(ws.send(Message::Text(json!({"type": "pong"}).to_string().into())).await),
                Some("next" | "error" | "complete") => return format!("the subscription ended: {v}"),
                _ => {}
            }
        }
        "the WebSocket closed".to_string()
    });
    Ok((first, reader))
}

struct Measured {
    jobs_per_s: f64,
    wall: Duration,
    /// Time to create the N jobs (part of `wall`).
    create: Duration,
    /// Median and p95 in ms, when measurable for every job.
    ttfp: Option<(f64, f64)>,
    note: Option<String>,
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn topology(backend: &str, workers: usize) -> String {
    match (backend, workers) {
        (_, 0) => "serve --no-workers (creation only)".into(),
        ("sqlite", 1) => "serve".into(),
        ("sqlite", w) => format!("serve + {} × worker", w - 1),
        (_, w) => format!("serve --no-workers + {w} × worker"),
    }
}

/// One scenario on a fresh database. With `workers` = 0, the creation ceiling: an API without
/// workers, and only the N `createArchiveJob` calls are timed.
async fn scenario(bin: std::path::PathBuf, backend: &'static str, workers: usize, n: usize) -> Result<Measured> {
    let dir = TempDir::new()?;
    let pg = if backend == "postgres" { Some(PgDb::create().await?) } else { None };
    let db_url = match &pg {
        Some(db) => format!("{}/{}", postgres_base(), db.0),
        None => format!("sqlite://{}?mode=rwc", dir.0.join("am.db").display()),
    };
    let env = Env { bin, data: dir.0.clone(), db_url };
    let port = free_port();
    let (api_args, extra): (&[&str], usize) = if pg.is_some() || workers == 0 { (&["serve", "--no-workers"], workers) } else { (&["serve"], workers - 1) };
    let mut procs = vec![env.spawn(api_args, port)?];
    let api = Api::new(port, env.token()?);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(api.status("/readyz").await, Ok(200)) {
        check_alive(&mut procs)?;
        ensure!(Instant::now() < deadline, "the API did not become ready within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..extra {
        procs.push(env.spawn_worker().await?);
    }

    // Small jobs: closed quizzes of the small courses, round robin.
    let acts = api.gql("{ activities(first: 100, filter: {kinds: [QUIZ]}) { edges { node { id isOpen course { lmsId } } } } }", json!({})).await?;
    let acts: Vec<Value> = acts["activities"]["edges"]
        .as_array()
        .context("activities")?
        .iter()
        .map(|e| &e["node"])
        .filter(|a| a["isOpen"] == false && a["course"]["lmsId"].as_str().and_then(|c| c.parse::<u32>().ok()).is_some_and(|c| (101..=108).contains(&c)))
        .map(|a| a["id"].clone())
        .collect();
    ensure!(!acts.is_empty(), "no closed quiz in courses 101–108");

    let (first, reader) = watch_progress(port, &api.token).await?;
    // The server starts listening after it has processed `subscribe`; no message tells when.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let t0 = Instant::now();
    let mut created = Vec::with_capacity(n);
    for i in 0..n {
        let sent = Instant::now();
        let d = api.gql(CREATE, json!({"i": {"activityIds": [acts[i % acts.len()]]}})).await?;
        let r = &d["createArchiveJob"];
        ensure!(r["userErrors"].as_array().is_some_and(|e| e.is_empty()), "createArchiveJob refused: {r}");
        created.push((r["job"]["id"].as_str().context("job id")?.to_string(), sent));
    }
    let create = t0.elapsed();
    if workers == 0 {
        reader.abort();
        return Ok(Measured { jobs_per_s: n as f64 / create.as_secs_f64(), wall: create, create, ttfp: None, note: None });
    }
    let deadline = Instant::now() + Duration::from_secs(120 + 2 * n as u64);
    loop {
        let c = api.gql(COUNTS, json!({})).await?;
        ensure!(c["bad"]["totalCount"] == 0, "jobs failed: {}", c["bad"]);
        if c["done"]["totalCount"].as_u64().unwrap_or(0) >= n as u64 {
            break;
        }
        check_alive(&mut procs)?;
        ensure!(Instant::now() < deadline, "only {} of {n} jobs COMPLETED in time", c["done"]["totalCount"]);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let wall = t0.elapsed();
    if reader.is_finished() {
        bail!("{}", reader.await?);
    }
    reader.abort();

    let seen = first.lock().unwrap();
    let mut ms: Vec<f64> = created.iter().filter_map(|(id, sent)| seen.get(id).map(|t| t.saturating_duration_since(*sent).as_secs_f64() * 1e3)).collect();
    ms.sort_by(f64::total_cmp);
    let summary = |ms: &[f64]| if ms.is_empty() { "none".into() } else { format!("median {:.0} ms, p95 {:.0} ms", pct(ms, 0.5), pct(ms, 0.95)) };
    let (ttfp, note) = if ms.len() < n {
        (None, Some(format!("first progress seen for only {}/{n} jobs ({})", ms.len(), summary(&ms))))
    } else {
        (Some((pct(&ms, 0.5), pct(&ms, 0.95))), None)
    };
    Ok(Measured { jobs_per_s: n as f64 / wall.as_secs_f64(), wall, create, ttfp, note })
}

fn ratio(what: &str, a: &Result<Measured, String>, b: &Result<Measured, String>) -> String {
    let (Ok(a), Ok(b)) = (a, b) else { return format!("{what}: n/a (a scenario failed)") };
    let ttfp = match (a.ttfp, b.ttfp) {
        (Some(x), Some(y)) => format!("×{:.2} (p50) ×{:.2} (p95)", x.0 / y.0, x.1 / y.1),
        _ => "n/a (not measurable, see notes)".into(),
    };
    format!("{what:<40} jobs/s ×{:.2}   first progress {ttfp}", a.jobs_per_s / b.jobs_per_s)
}

fn worker_processes(w: usize) -> String {
    match w {
        0 => "no workers (creation ceiling)".into(),
        1 => "1 worker process".into(),
        w => format!("{w} worker processes"),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    if !a.bin.exists() {
        eprintln!("queue bench: {} does not exist: build it first with `cargo build --release` (or pass --bin PATH)", a.bin.display());
        std::process::exit(2);
    }
    let built = std::fs::metadata(&a.bin).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
    let mut rows: Vec<(&str, usize, Result<Measured, String>)> = Vec::new();
    for &backend in &a.backends {
        // 0 = the creation ceiling of this backend, then the worker counts asked for.
        for workers in std::iter::once(0).chain(a.workers.iter().copied()) {
            // A second process on one SQLite database refuses to start (the database's lock file):
            // scale-out is PostgreSQL's.
            if backend == "sqlite" && workers > 1 {
                eprintln!("queue bench: sqlite, {} skipped: one process per SQLite database", worker_processes(workers));
                continue;
            }
            eprintln!("queue bench: {backend}, {} ({} jobs)…", topology(backend, workers), a.jobs);
            // A task of its own: a panic fails this scenario only, and on a signal it is dropped;
            // either way its guards kill its processes and drop its database.
            let mut task = tokio::spawn(scenario(a.bin.clone(), backend, workers, a.jobs));
            let r = tokio::select! {
                r = &mut task => r.map_err(|e| format!("panicked: {e}")).and_then(|r| r.map_err(|e| format!("{e:#}"))),
                _ = interrupted() => {
                    task.abort();
                    let _ = task.await;
                    eprintln!("queue bench: interrupted; child processes stopped");
                    std::process::exit(130);
                }
            };
            rows.push((backend, workers, r));
        }
    }

    println!("\nqueue bench: {} small jobs per scenario (one closed quiz of courses 101–108 each), created back to back", a.jobs);
    println!(
        "ARCHIVING_MAX_CONCURRENT_JOBS={} ARCHIVING_WORKER_CONCURRENCY={} binary={} (built {} ago)",
        setting("ARCHIVING_MAX_CONCURRENT_JOBS", "50"),
        setting("ARCHIVING_WORKER_CONCURRENCY", "4"),
        a.bin.display(),
        built.map_or("?".into(), |d| format!("{} s", d.as_secs())),
    );
    println!("\n{:<9}{:>8}  {:<36}{:>8}{:>10}{:>9}{:>10}{:>14}{:>10}", "backend", "workers", "processes", "jobs/s", "/ceiling", "total s", "create s", "1st prog p50", "p95");
    let mut notes = Vec::new();
    let get = |b: &str, w: usize| rows.iter().find(|r| r.0 == b && r.1 == w).map(|r| &r.2);
    for (backend, workers, r) in &rows {
        let head = format!("{backend:<9}{workers:>8}  {:<36}", topology(backend, *workers));
        match r {
            Ok(m) => {
                let (p50, p95) = m.ttfp.map_or(("n/a*".into(), "n/a*".into()), |(a, b)| (format!("{a:.0} ms"), format!("{b:.0} ms")));
                let (p50, p95) = if *workers == 0 { ("–".into(), "–".into()) } else { (p50, p95) };
                let of_ceiling = match get(backend, 0) {
                    Some(Ok(c)) => format!("{:.2}", m.jobs_per_s / c.jobs_per_s),
                    _ => "n/a".into(),
                };
                println!("{head}{:>8.2}{of_ceiling:>10}{:>9.2}{:>10.2}{p50:>14}{p95:>10}", m.jobs_per_s, m.wall.as_secs_f64(), m.create.as_secs_f64());
                if let Some(n) = &m.note {
                    notes.push(format!("* {backend}, {}: {n}", worker_processes(*workers)));
                }
            }
            Err(e) => {
                println!("{head}FAILED");
                notes.push(format!("! {backend}, {} FAILED: {e}", worker_processes(*workers)));
            }
        }
    }
    let base_w = a.workers.iter().copied().min().unwrap_or(1);
    println!("\nratios (same run; jobs/s: higher is better, first progress: lower is better)");
    for &b in &a.backends {
        for &w in a.workers.iter().filter(|w| **w != base_w) {
            if let (Some(x), Some(y)) = (get(b, w), get(b, base_w)) {
                println!("  {}", ratio(&format!("{b}: {w} vs {base_w} worker processes"), x, y));
            }
        }
    }
    for &w in &a.workers {
        if let (Some(x), Some(y)) = (get("postgres", w), get("sqlite", w)) {
            println!("  {}", ratio(&format!("{}: postgres vs sqlite", worker_processes(w)), x, y));
        }
    }
    for n in &notes {
        println!("{n}");
    }
    if rows.iter().any(|r| r.2.is_err()) {
        std::process::exit(1);
    }
}
