//! A PostgreSQL cluster of one test's own, on a free port, that the test stops and starts to cause a
//! real database outage. It never touches the shared cluster the other tests use: it has its own
//! name (unique per test process and test), port and data directory, and is dropped with the guard.
//!
//! Needs Debian's `postgresql-common` tools (`pg_createcluster`, `pg_ctlcluster`, `pg_dropcluster`),
//! an installed server version under `/etc/postgresql`, and root (clusters belong to `postgres`).
use std::{
    path::Path,
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, Database};

/// Prefix of the clusters' names; with the test process's pid, so leftovers of a killed test run
/// can be recognised and removed.
const PREFIX: &str = "amfault";

pub struct PgCluster {
    pub version: String,
    pub name: String,
    pub port: u16,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn how_to_get_it() -> &'static str {
    "fault tests need PostgreSQL clusters of their own: run them as root on a machine with Debian's \
     postgresql-common and a server (`apt-get install postgresql`), which provides pg_createcluster, \
     pg_ctlcluster and pg_dropcluster"
}

/// Runs a cluster tool; panics with its output when it fails.
fn run(tool: &str, args: &[&str]) {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("cannot run {tool} ({e}); {}", how_to_get_it()));
    assert!(
        out.status.success(),
        "{tool} {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The newest installed server version (`/etc/postgresql/<version>`).
fn server_version() -> String {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .unwrap_or_else(|e| panic!("/etc/postgresql is unreadable ({e}); {}", how_to_get_it()))
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .collect();
    versions.sort_by_key(|v| v.split('.').map(|p| p.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>());
    versions.pop().unwrap_or_else(|| panic!("no PostgreSQL server version under /etc/postgresql; {}", how_to_get_it()))
}

fn check_prerequisites() {
    for tool in ["pg_createcluster", "pg_ctlcluster", "pg_dropcluster"] {
        let found = std::env::var("PATH").unwrap_or_default().split(':').any(|d| Path::new(d).join(tool).is_file());
        assert!(found, "{tool} is not on PATH; {}", how_to_get_it());
    }
    // /proc/self belongs to the process's effective user.
    use std::os::unix::fs::MetadataExt;
    let euid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
    assert!(euid == 0, "creating a PostgreSQL cluster needs root (running as uid {euid}); {}", how_to_get_it());
}

/// Drops clusters that earlier runs of these tests left when they were killed (their Drop never ran).
fn remove_leftovers(version: &str) {
    let Ok(rd) = std::fs::read_dir(format!("/etc/postgresql/{version}")) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(&format!("{PREFIX}_")).and_then(|r| r.split('_').next()).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("pg_dropcluster").args(["--stop", version, &name]).output();
        }
    }
}

impl PgCluster {
    /// Creates and starts a cluster on a free port, trusting local connections.
    pub fn create() -> Self {
        check_prerequisites();
        let version = server_version();
        remove_leftovers(&version);
        let name = format!("{PREFIX}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let port = super::procs::free_port();
        let p = port.to_string();
        run("pg_createcluster", &[&version, &name, "-p", &p, "--", "--auth=trust"]);
        // From here on the guard drops the cluster, whatever happens.
        let cluster = Self { version, name, port };
        cluster.start();
        cluster
    }

    /// The URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name`; returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        let admin = Database::connect(self.url("postgres")).await.unwrap_or_else(|e| panic!("cluster {} does not answer: {e}", self.name));
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create the database");
        admin.close().await.ok();
        self.url(name)
    }

    /// Starts the cluster and waits until it accepts connections.
    pub fn start(&self) {
        run("pg_ctlcluster", &["--skip-systemctl-redirect", &self.version, &self.name, "start"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "cluster {} did not listen on port {} after starting", self.name, self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the cluster at once, as a crash would (`-m immediate`: no checkpoint, connections cut).
    pub fn stop(&self) {
        run("pg_ctlcluster", &["--skip-systemctl-redirect", &self.version, &self.name, "stop", "-m", "immediate"]);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Also on panic: the cluster, its data and its configuration go.
        let _ = Command::new("pg_dropcluster").args(["--stop", &self.version, &self.name]).output();
    }
}
