//! The binary as operators run it: configuration errors, the committed schema, the bootstrap token,
//! health endpoints and graceful shutdown.
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_archiving-manager");

/// The binary with a clean environment: nothing ARCHIVING_* leaks in from the caller.
fn cmd(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

#[test]
fn schema_graphql_is_what_the_binary_prints() {
    let out = cmd(&["schema"], &[]).output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert!(
        String::from_utf8(out.stdout).unwrap() == committed,
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql` and commit it"
    );
}

#[test]
fn invalid_configuration_stops_the_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let bad_file = dir.path().join("bad.toml");
    std::fs::write(&bad_file, "listen = \"127.0.0.1:8080\"\ndatabse_url = \"sqlite://x\"\n").unwrap();
    let cases: Vec<(Vec<&str>, Vec<(&str, &str)>, &str)> = vec![
        (vec!["serve"], vec![("ARCHIVING_LISTEN", "localhost-8080")], "ARCHIVING_LISTEN"),
        (vec!["serve"], vec![("ARCHIVING_DATABASE_URL", "mysql://db/x")], "ARCHIVING_DATABASE_URL"),
        (vec!["serve"], vec![("ARCHIVING_JWT_ALGORITHM", "RS256")], "ARCHIVING_JWT_PUBLIC_KEY_FILE"),
        (vec!["serve"], vec![("ARCHIVING_JWT_ALGORITHM", "none")], "ARCHIVING_JWT_ALGORITHM"),
        (vec!["serve"], vec![("ARCHIVING_JWT_SECRET", "short")], "ARCHIVING_JWT_SECRET"),
        (vec!["serve"], vec![("ARCHIVING_DEMO_SCALE", "0")], "ARCHIVING_DEMO_SCALE"),
        (vec!["serve"], vec![("ARCHIVING_DEMO_SCALE", "many")], "ARCHIVING_DEMO_SCALE"),
        (vec!["serve"], vec![("ARCHIVING_LMS", "blackboard")], "ARCHIVING_LMS"),
        (vec!["serve"], vec![("ARCHIVING_MAX_CONCURRENT_JOBS", "0")], "ARCHIVING_MAX_CONCURRENT_JOBS"),
        (vec!["serve", "--config", bad_file.to_str().unwrap()], vec![], "databse_url"),
        (vec!["serve", "--config", "/nonexistent/am.toml"], vec![], "/nonexistent/am.toml"),
    ];
    for (args, mut env, names) in cases {
        env.push(("ARCHIVING_DATA_DIR", data));
        let out = cmd(&args, &env).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {err}");
        assert!(err.contains(names), "{env:?}: message must name {names}: {err}");
        assert_eq!(err.lines().count(), 1, "one clear message: {err}");
        assert!(!err.contains("short"), "a secret is never echoed: {err}");
    }
}

#[test]
fn an_unreachable_database_is_reported_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = cmd(&["migrate"], &[("ARCHIVING_DATA_DIR", dir.path().to_str().unwrap()), ("ARCHIVING_DATABASE_URL", "postgres://am:s3cr3t-pw@127.0.0.1:1/am")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("connecting to the database") && !err.contains("s3cr3t-pw"), "{err}");
}

#[test]
fn token_requires_a_known_role() {
    let dir = tempfile::tempdir().unwrap();
    let out = cmd(&["token", "--role", "root"], &[("ARCHIVING_DATA_DIR", dir.path().to_str().unwrap())]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role"));
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `serve` with the embedded defaults in `data`; returns the process and its stdout lines
/// up to the bootstrap token.
fn start(data: &str, port: u16) -> (Server, Vec<String>) {
    let mut child = cmd(&["serve"], &[("ARCHIVING_DATA_DIR", data), ("ARCHIVING_LISTEN", &format!("127.0.0.1:{port}")), ("ARCHIVING_LOG", "warn")])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    while lines.len() < 4 {
        match out.next() {
            Some(Ok(l)) => lines.push(l),
            _ => break,
        }
    }
    (Server(child), lines)
}

fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::blocking_get(&format!("http://127.0.0.1:{port}/readyz")) {
            if r == 200 {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("server on port {port} did not become ready");
}

/// A tiny blocking GET, so these process tests need no runtime.
mod reqwest {
    use std::io::{Read, Write};
    pub fn blocking_get(url: &str) -> std::io::Result<u16> {
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut s = std::net::TcpStream::connect(host)?;
        write!(s, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0))
    }
}

fn post_graphql(port: u16, token: &str, query: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let body = serde_json::json!({ "query": query }).to_string();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let json = buf.split_once("\r\n\r\n").unwrap().1;
    // The body may be chunked: take the JSON object inside.
    let start = json.find('{').unwrap();
    let end = json.rfind('}').unwrap();
    serde_json::from_str(&json[start..=end]).unwrap()
}

#[test]
fn first_start_serves_the_demo_with_a_bootstrap_token_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let port = free_port();
    let (mut server, lines) = start(data, port);
    assert!(lines.iter().any(|l| l.contains(&format!("GraphiQL: http://127.0.0.1:{port}/"))), "{lines:?}");
    let token = lines.last().unwrap().clone();
    wait_ready(port);
    assert_eq!(reqwest::blocking_get(&format!("http://127.0.0.1:{port}/healthz")).unwrap(), 200);
    assert_eq!(reqwest::blocking_get(&format!("http://127.0.0.1:{port}/")).unwrap(), 200);
    let answer = post_graphql(port, &token, "{ courses { totalCount } }");
    assert_eq!(answer["data"]["courses"]["totalCount"], 9, "{answer}");

    // The generated secret is private to its owner.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("jwt-secret")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // SIGTERM: a graceful exit with status 0.
    let pid = server.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");

    // A restart keeps the secret: the first token still works, and the data is synced again
    // without duplicates.
    let port = free_port();
    let (_server, _) = start(data, port);
    wait_ready(port);
    let answer = post_graphql(port, &token, "{ courses { totalCount } categories { totalCount } activities { totalCount } }");
    assert_eq!(answer["data"], serde_json::json!({"courses": {"totalCount": 9}, "categories": {"totalCount": 3}, "activities": {"totalCount": 30}}));
}

/// On SQLite, events and leases do not cross processes: a second `serve` or `worker` on the same
/// data directory refuses to start, saying which process holds it and what to do instead.
#[test]
fn a_second_process_on_one_sqlite_data_directory_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let port = free_port();
    let (server, _) = start(data, port);
    wait_ready(port);
    for args in [&["worker"][..], &["serve", "--no-workers"][..]] {
        let out = cmd(args, &[("ARCHIVING_DATA_DIR", data), ("ARCHIVING_LISTEN", &format!("127.0.0.1:{}", free_port()))]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started beside a running server: {err}");
        assert!(err.contains(&format!("pid {}", server.0.id())) && err.contains(data) && err.contains("PostgreSQL"), "{args:?}: {err}");
    }
    // The first one is unharmed.
    assert_eq!(reqwest::blocking_get(&format!("http://127.0.0.1:{port}/readyz")).unwrap(), 200);
}
