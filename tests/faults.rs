//! Fault injection (issue 7): real faults while jobs run, and what must hold afterwards.
//! - The database goes away for 25 s (its own PostgreSQL cluster, stopped with `-m immediate` as
//!   in a crash, then started again) while a job archives its activities, and while it stores its
//!   packages.
//! - The storage directory is read-only, or full (a small tmpfs of the test's own, remounted
//!   read-only or filled to the last byte), until the test repairs it.
//! - A storm of SIGKILLs at random instants across an API process and two workers, with a 30 s
//!   database outage in the middle.
//!
//! Every test ends with every job final and `procs::assert_invariants` checked: one package per
//! task and backend, nothing unreferenced in storage, SHA-256 as recorded, no staging left.
//!
//! They need root: they create PostgreSQL clusters and mount file systems (each says how to get
//! what is missing).
mod common;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{
    pgcluster::PgCluster,
    procs::{assert_invariants, database_for, free_port, is_final, spawn_with, Api, Proc},
    Backend,
};
use rand::{Rng, SeedableRng};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};

/// Settings of every process here. Short leases and quick retries keep a recovery within a test's
/// time; the logic is the same as with the defaults.
const FAULT_ENV: &[(&str, &str)] = &[("ARCHIVING_LEASE_SECONDS", "5"), ("ARCHIVING_RETRY_BASE_SECONDS", "1"), ("ARCHIVING_RETRY_MAX_SECONDS", "4")];

/// How long a job may take to end once its fault is over: leases of 5 s and retries of at most
/// 4 s each, with a wide margin for a slow, busy machine.
const RECOVERY: Duration = Duration::from_secs(180);

/// How long the database stays down in the outage tests (issue 7: 20–60 s).
const OUTAGE: Duration = Duration::from_secs(25);

/// `/readyz` must answer within this, whatever the state of the database.
const READYZ_WITHIN: Duration = Duration::from_secs(2);

fn env_with<'a>(more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    FAULT_ENV.iter().chain(more).copied().collect()
}

/// The most records any task of the job has archived.
fn records_done(j: &Value) -> i64 {
    j["tasks"].as_array().into_iter().flatten().filter_map(|t| t["recordsDone"].as_i64()).max().unwrap_or(0)
}

fn describe(p: &mut Proc) -> String {
    match p.exited() {
        None => "running".into(),
        Some(s) => format!("exited ({s})"),
    }
}

// ---------- database outages ----------
//
// PostgreSQL only: a SQLite database is a file of the process itself, so there is no server that
// could go away while the process runs.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    ActivityArchiving,
    Store,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_during_archiving() {
    database_outage_during(Stage::ActivityArchiving).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_during_store() {
    database_outage_during(Stage::Store).await
}

/// A job of two activities (course 109: 1028 and 1030, 100 records each), run by a `worker`
/// process beside a `serve --no-workers` process, loses its database at `stage` for 25 s. Both
/// processes ride the outage out, `/readyz` says 503 (naming the database) while it lasts and 200
/// after, and the job completes without anyone's help.
async fn database_outage_during(stage: Stage) {
    let cluster = PgCluster::create();
    let db_url = cluster.create_database("am").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let port = free_port();
    let mut api_proc = spawn_with(&["serve", "--no-workers"], data, &db_url, port, FAULT_ENV);
    let api = Api::new(port, data);
    api.ready().await;
    let mut worker = spawn_with(&["worker"], data, &db_url, free_port(), FAULT_ENV);
    if stage == Stage::Store {
        slow_down_file_records(&db_url).await;
    }
    let acts = api.activity_ids("109", &["1028", "1030"]).await;
    let id = api.create_job(json!({ "activityIds": acts })).await;

    match stage {
        Stage::ActivityArchiving => {
            let j = api
                .wait_within(&id, "records being archived", Duration::from_secs(120), |j| (j["status"] == "ACTIVITY_ARCHIVING" && records_done(j) > 5) || is_final(j))
                .await;
            assert_eq!(j["status"], "ACTIVITY_ARCHIVING", "the job was to be caught archiving: {j:#}");
        }
        Stage::Store => wait_until_storing(&api, &id, &db_url, &data.join("archives")).await,
    }
    println!("stage {stage:?} reached; stopping the database for {OUTAGE:?}");
    tokio::task::block_in_place(|| cluster.stop());
    let back_at = Instant::now() + OUTAGE;
    readyz_reports_outage(&api, &mut api_proc, back_at).await;
    tokio::task::block_in_place(|| cluster.start());
    println!("database started again");

    // Both processes must have ridden the outage out: nobody is there to start them again.
    assert!(api_proc.exited().is_none(), "the API process ended during the outage: {}", describe(&mut api_proc));
    assert!(worker.exited().is_none(), "the worker process ended during the outage: {}", describe(&mut worker));
    readyz_recovers(&api, &mut api_proc).await;

    let j = api.wait_within(&id, "a final state after the outage", RECOVERY, is_final).await;
    assert_eq!(j["status"], "COMPLETED", "{j:#}");
    assert_invariants(&db_url, &data.join("staging")).await;
}

/// Makes writing an archive file's record take 2 s (a trigger sleeping in the database), so that
/// STORE lasts long enough for the outage to begin inside it. Storing the object itself is not
/// slowed down; the record is written before the object is stored, after it, or both (an intent
/// and its confirmation), as the engine does it.
async fn slow_down_file_records(db_url: &str) {
    let db = sea_orm::Database::connect(db_url).await.unwrap();
    db.execute_unprepared(
        "CREATE FUNCTION fault_slow_file_record() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$;
         CREATE TRIGGER fault_slow_file_record BEFORE INSERT OR UPDATE ON archive_file FOR EACH ROW EXECUTE FUNCTION fault_slow_file_record();",
    )
    .await
    .expect("install the trigger that slows down file records");
    db.close().await.ok();
}

/// Waits until the job is inside STORE after a package was stored: the job says STORE, a package
/// is in the storage directory, and a database session is writing a file record (sleeping in the
/// trigger of `slow_down_file_records`). The outage then falls between storing an object and
/// recording it, where an orphan could be left behind.
async fn wait_until_storing(api: &Api, id: &str, db_url: &str, storage: &Path) {
    let db = sea_orm::Database::connect(db_url).await.unwrap();
    let sql = "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query ILIKE '%archive_file%'";
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let row = db.query_one_raw(Statement::from_string(sea_orm::DbBackend::Postgres, sql)).await.unwrap();
        let writing = row.and_then(|r| r.try_get::<i64>("", "n").ok()).unwrap_or(0) > 0;
        let stored = !common::procs::files_under(storage).is_empty();
        let j = api.job(id).await;
        if writing && stored && j["status"] == "STORE" {
            println!("caught in STORE: {:?} in storage, a file record being written", common::procs::files_under(storage));
            break;
        }
        assert!(!is_final(&j) && !["SIGN", "CLEANUP"].contains(&j["status"].as_str().unwrap_or("")), "the job went past STORE before it was caught there: {j:#}");
        assert!(Instant::now() < deadline, "the job was not caught storing within 120 s: {j:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.close().await.ok();
}

/// While the database is down, `/readyz` must say so: 503 within 5 s of the stop, and from then
/// until `until` every answer comes within 2 s, is 503 and names the database.
async fn readyz_reports_outage(api: &Api, api_proc: &mut Proc, until: Instant) {
    let notice_by = Instant::now() + Duration::from_secs(5);
    let mut noticed = false;
    while Instant::now() < until {
        let answer = api.readyz(READYZ_WITHIN).await;
        match &answer {
            Ok((503, body)) if body.to_lowercase().contains("database") => noticed = true,
            _ if !noticed && Instant::now() < notice_by => {}
            _ => panic!(
                "with the database down, /readyz must answer 503 naming the database within {READYZ_WITHIN:?}; got {answer:?} ({} s into the outage; API process {})",
                (Instant::now() + OUTAGE - until).as_secs(),
                describe(api_proc)
            ),
        }
        tokio::time::sleep(Duration::from_millis(if noticed { 1000 } else { 200 })).await;
    }
}

/// After the database is back, `/readyz` answers 200 within 30 s.
async fn readyz_recovers(api: &Api, api_proc: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = api.readyz(READYZ_WITHIN).await;
        if matches!(answer, Ok((200, _))) {
            return;
        }
        assert!(Instant::now() < deadline, "30 s after the database came back /readyz still answers {answer:?} (API process {})", describe(api_proc));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------- storage faults ----------

/// The name of the faulty backend; the job's error must name it.
const FAULTY_BACKEND: &str = "faulty-tmpfs";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StorageFault {
    ReadOnly,
    Full,
}

/// A small file system of the test's own for a storage directory, so that its faults are real: we
/// run as root, and permissions do not stop root from writing, but a read-only mount or a full file
/// system does. Unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"]).arg(dir.path()).output();
        match out {
            Ok(o) if o.status.success() => Self { dir },
            other => panic!(
                "cannot mount a tmpfs for the faulty storage directory ({other:?}): these tests need root with CAP_SYS_ADMIN \
                 (in a container: --cap-add SYS_ADMIN, or --privileged) and `mount` from util-linux"
            ),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `ro` or `rw`.
    fn remount(&self, mode: &str) {
        let out = Command::new("mount").args(["-o", &format!("remount,{mode}")]).arg(self.path()).output().expect("run mount");
        assert!(out.status.success(), "remount {mode} failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Fills the file system to the last byte; returns the file that does it.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        let free = rustix::fs::statvfs(self.path()).unwrap().f_bavail;
        assert_eq!(free, 0, "the tmpfs is full");
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a process that still holds a file there does not keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).output();
    }
}

async fn read_only_storage(backend: Backend) {
    storage_fault(backend, StorageFault::ReadOnly).await
}

async fn full_storage(backend: Backend) {
    storage_fault(backend, StorageFault::Full).await
}

with_each_backend!(read_only_storage, full_storage);

/// The processes of a test: on SQLite one `serve` (one process owns a data directory), on
/// PostgreSQL an API process and a worker process.
async fn start_processes(backend: Backend, data: &Path, db_url: &str) -> (Vec<Proc>, Api) {
    let port = free_port();
    let args: &[&str] = match backend {
        Backend::Sqlite => &["serve"],
        Backend::Postgres => &["serve", "--no-workers"],
    };
    let mut procs = vec![spawn_with(args, data, db_url, port, FAULT_ENV)];
    let api = Api::new(port, data);
    api.ready().await;
    // The worker starts once the API process has migrated the database: two processes migrating
    // a fresh database at once can make one of them fail.
    if backend == Backend::Postgres {
        procs.push(spawn_with(&["worker"], data, db_url, free_port(), FAULT_ENV));
    }
    (procs, api)
}

/// Adds a local-directory backend storing under `root`; returns its id.
async fn create_local_backend(api: &Api, name: &str, root: &Path) -> Value {
    let d = api
        .gql(
            "mutation($i: CreateStorageBackendInput!) { createStorageBackend(input: $i) { storageBackend { id } userErrors { message } } }",
            json!({"i": {"name": name, "driver": "LOCAL_DIRECTORY", "settings": {"path": root}}}),
        )
        .await;
    let id = d["createStorageBackend"]["storageBackend"]["id"].clone();
    assert!(id.is_string(), "backend not created: {d:#}");
    id
}

/// A job stores on a backend whose directory is read-only or full. It waits in RECOVERABLE_ERROR,
/// its error naming the backend, instead of ending; once the operator repairs the directory it
/// completes, with nothing left over.
async fn storage_fault(backend: Backend, fault: StorageFault) {
    let fs = Tmpfs::mount("16m");
    let root = fs.path().join("store");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (db_url, _pg) = database_for(backend, data).await;
    let (mut procs, api) = start_processes(backend, data, &db_url).await;
    let backend_id = create_local_backend(&api, FAULTY_BACKEND, &root).await;

    let filler = match fault {
        StorageFault::ReadOnly => {
            fs.remount("ro");
            None
        }
        StorageFault::Full => Some(fs.fill()),
    };
    let acts = api.activity_ids("109", &["1028", "1030"]).await;
    let id = api.create_job(json!({ "activityIds": acts, "storageBackendIds": [backend_id] })).await;
    let j = api.wait_within(&id, "RECOVERABLE_ERROR", Duration::from_secs(120), |j| j["status"] == "RECOVERABLE_ERROR" || is_final(j)).await;
    assert_eq!(j["status"], "RECOVERABLE_ERROR", "a {fault:?} storage directory is for the operator to repair: the job must wait for it, retrying, not end: {j:#}");
    let error = j["error"].as_str().unwrap_or_default();
    assert!(error.contains(FAULTY_BACKEND), "the error names the backend {FAULTY_BACKEND}: {j:#}");
    println!("{fault:?} storage: the job waits in RECOVERABLE_ERROR: {error}");

    // The operator repairs the directory; the job completes without anyone touching it.
    match filler {
        None => fs.remount("rw"),
        Some(f) => std::fs::remove_file(f).unwrap(),
    }
    let j = api.wait_within(&id, "a final state after the repair", RECOVERY, is_final).await;
    assert_eq!(j["status"], "COMPLETED", "{j:#}");
    for p in procs.iter_mut() {
        assert!(p.exited().is_none(), "a process ended during the test: {}", describe(p));
    }
    assert_invariants(&db_url, &data.join("staging")).await;
}

// ---------- the SIGKILL storm ----------
//
// PostgreSQL only: it needs several processes on one database (on SQLite one process owns a data
// directory) and a database server that can go away.

/// The processes of the storm: an API process (index 0) and two workers, each started again by
/// the test, like a supervisor would, after it was killed or ended.
struct Fleet {
    data: PathBuf,
    db_url: String,
    api_port: u16,
    procs: Vec<Proc>,
}

/// Slow records keep the jobs working while the kills come; chunks let a large activity progress
/// between kills and spread over both workers.
const STORM_ENV: &[(&str, &str)] = &[("ARCHIVING_DEMO_RECORD_DELAY_MS", "40"), ("ARCHIVING_CHUNK_RECORDS", "25")];

impl Fleet {
    fn start(&self, i: usize) -> Proc {
        let env = env_with(STORM_ENV);
        if i == 0 {
            spawn_with(&["serve", "--no-workers"], &self.data, &self.db_url, self.api_port, &env)
        } else {
            spawn_with(&["worker"], &self.data, &self.db_url, free_port(), &env)
        }
    }

    fn name(i: usize) -> String {
        if i == 0 {
            "the API process".into()
        } else {
            format!("worker {i}")
        }
    }

    /// Starts again every process that ended without being killed (while the database is down a
    /// process cannot start).
    fn revive(&mut self) {
        for i in 0..self.procs.len() {
            if let Some(status) = self.procs[i].exited() {
                println!("storm: {} ended on its own ({status}); starting it again", Self::name(i));
                self.procs[i] = self.start(i);
            }
        }
    }
}

/// The jobs of the storm (course 109's activities), each created once this percentage of the kills
/// is done, or after the outage if it falls into it. The outage begins after a third of the kills,
/// so that some kills come after it.
const STORM_JOBS: &[(usize, &[&str])] = &[(0, &["1028", "1030"]), (12, &["1029"]), (25, &["1028", "1029", "1030"]), (67, &["1030"])];
const STORM_OUTAGE_AT: usize = 33;

/// ≥ 50 SIGKILLs at random instants across `serve --no-workers` and two `worker` processes, each
/// killed process started again after a short random delay, a handful of jobs (one canceled
/// midway) and a 30 s database outage in the middle. Afterwards every job ends COMPLETED (the
/// canceled one CANCELED) without anyone's help, within lease and retry time, and the invariants
/// hold. `ARCHIVING_STORM_KILLS` (default 50) sets the number of kills, `ARCHIVING_STORM_SEED`
/// repeats a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_storm() {
    let kills: usize = std::env::var("ARCHIVING_STORM_KILLS").ok().map(|k| k.parse().expect("ARCHIVING_STORM_KILLS is a number")).unwrap_or(50);
    let seed: u64 = std::env::var("ARCHIVING_STORM_SEED").ok().map(|s| s.parse().expect("ARCHIVING_STORM_SEED is a number")).unwrap_or_else(rand::random);
    println!("storm: {kills} kills, seed {seed} (ARCHIVING_STORM_SEED={seed} repeats the run)");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let started = Instant::now();

    let cluster = Arc::new(PgCluster::create());
    let db_url = cluster.create_database("am").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let mut fleet = Fleet { data: data.to_path_buf(), db_url: db_url.clone(), api_port: free_port(), procs: Vec::new() };
    fleet.procs.push(fleet.start(0));
    let api = Api::new(fleet.api_port, data);
    api.ready().await;
    fleet.procs.push(fleet.start(1));
    fleet.procs.push(fleet.start(2));

    // The job to cancel midway, and the one who cancels it as soon as it archives.
    let doomed = api.create_job(json!({ "activityIds": api.activity_ids("109", &["1028", "1029", "1030"]).await })).await;
    let canceller = tokio::spawn(cancel_when_archiving(Api::new(fleet.api_port, data), doomed.clone()));

    let mut planned: Vec<(usize, &[&str])> = STORM_JOBS.iter().map(|(pct, acts)| (pct * kills / 100, *acts)).collect();
    let outage_at = (STORM_OUTAGE_AT * kills / 100).max(1);
    let mut jobs: Vec<String> = Vec::new();
    let mut outage: Option<tokio::task::JoinHandle<()>> = None;
    for k in 1..=kills {
        fleet.revive();
        if k == outage_at {
            println!("storm: database down for 30 s at +{:.1} s", started.elapsed().as_secs_f64());
            let c = cluster.clone();
            outage = Some(tokio::task::spawn_blocking(move || {
                c.stop();
                std::thread::sleep(Duration::from_secs(30));
                c.start();
                println!("storm: database up again");
            }));
        }
        let outage_on = outage.as_ref().is_some_and(|o| !o.is_finished());
        while !outage_on && planned.first().is_some_and(|(at, _)| *at < k) {
            let (_, acts) = planned.remove(0);
            jobs.push(create_storm_job(&api, &mut fleet, acts).await);
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..1200))).await;
        let victim = rng.random_range(0..fleet.procs.len());
        fleet.procs[victim].kill(); // SIGKILL
        println!("storm: kill {k}/{kills}: {} at +{:.1} s", Fleet::name(victim), started.elapsed().as_secs_f64());
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..800))).await;
        fleet.procs[victim] = fleet.start(victim);
    }
    if let Some(o) = outage {
        o.await.expect("the outage ran");
    }
    fleet.revive();
    for (_, acts) in std::mem::take(&mut planned) {
        jobs.push(create_storm_job(&api, &mut fleet, acts).await);
    }
    if let Err(e) = canceller.await {
        std::panic::resume_unwind(e.into_panic());
    }
    println!("storm: over at +{:.1} s; waiting for the jobs to end", started.elapsed().as_secs_f64());

    // From here on nothing disturbs the processes: none may end by itself.
    let mut all = jobs.clone();
    all.push(doomed.clone());
    let ends = wait_for_all(&api, &mut fleet, &all).await;
    for (id, j) in all.iter().zip(&ends) {
        let expected = if *id == doomed { "CANCELED" } else { "COMPLETED" };
        assert_eq!(j["status"], expected, "job {id} after the storm (seed {seed}): {j:#}");
    }
    assert_invariants(&db_url, &data.join("staging")).await;
    println!("storm: done at +{:.1} s", started.elapsed().as_secs_f64());
}

/// Creates a job of course 109's activities `acts`, once the API process answers.
async fn create_storm_job(api: &Api, fleet: &mut Fleet, acts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The API process may have just been started again.
        if let Ok((200, _)) = api.readyz(Duration::from_secs(5)).await {
            let ids = api.activity_ids("109", acts).await;
            return api.create_job(json!({ "activityIds": ids })).await;
        }
        fleet.revive();
        assert!(Instant::now() < deadline, "the API process did not answer for 60 s to create a job");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Cancels the job as soon as it is seen archiving records (retrying while the API process or the
/// database is down).
async fn cancel_when_archiving(api: Api, id: String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match api.try_job(&id).await {
            Ok(j) if j["status"] == "ACTIVITY_ARCHIVING" && records_done(&j) > 0 => {
                let d = api.try_gql("mutation($id: ID!) { cancelArchiveJob(input: {id: $id}) { job { status cancelRequested } userErrors { message } } }", json!({"id": id})).await;
                if let Ok(d) = d {
                    let p = &d["cancelArchiveJob"];
                    assert!(p["userErrors"].as_array().is_none_or(Vec::is_empty), "cancel refused: {d:#}");
                    println!("storm: canceled job {id} while it archived");
                    return;
                }
            }
            Ok(j) => assert!(!is_final(&j), "the job to cancel ended before it could be canceled midway: {j:#}"),
            Err(_) => {} // a process or the database is down: try again
        }
        assert!(Instant::now() < deadline, "the job to cancel was not seen archiving within 120 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every job is final, at most `RECOVERY`; every process must keep running meanwhile.
async fn wait_for_all(api: &Api, fleet: &mut Fleet, ids: &[String]) -> Vec<Value> {
    let deadline = Instant::now() + RECOVERY;
    loop {
        for (i, p) in fleet.procs.iter_mut().enumerate() {
            assert!(p.exited().is_none(), "{} ended by itself after the storm: {}", Fleet::name(i), describe(p));
        }
        let mut states = Vec::new();
        for id in ids {
            states.push(api.try_job(id).await.unwrap_or_else(|e| json!({ "unknown": e })));
        }
        if states.iter().all(is_final) {
            return states;
        }
        assert!(Instant::now() < deadline, "not every job ended within {RECOVERY:?} after the storm: {:#}", Value::from(states));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
