#!/usr/bin/env python3
"""Reporting throughput against PostGraphile: the query a reporting tool sends (50 courses with
their activities, each activity's archive state and last archive time, and the counts), sent at
concurrency 8 to `archiving-manager serve --no-workers` and to PostGraphile on the same
PostgreSQL database, in one run; prints requests/s of both and the ratio.

    cargo build --release && (cd benches/postgraphile && npm ci) && \\
        python3 benches/reporting.py [--bin target/release/archiving-manager] [--seconds 10] [--rounds 3]

The data set is made by the server itself: a fresh database, the demo LMS with generated courses
(`ARCHIVING_DEMO_EXTRA_COURSES`) synced at start, some activities archived by real archive jobs
and one changed afterwards (`demo add-attempt`), so both servers read identical rows. PostGraphile
(4.14.1, pinned in benches/postgraphile/package-lock.json, run with the machine's Node) exposes
the same tables; the archive state, last archive time and inherited archiving flag, which the
server derives, are given to it as computed columns (SQL functions equivalent to the server's
rules), so both answer the same question with the same values — checked before measuring.
The load comes from autocannon (pinned beside PostGraphile); rounds alternate between the two
servers so that a busy machine slows both alike. Nothing is asserted; compare the ratio.
"""
import argparse, json, os, secrets, shutil, signal, subprocess, sys, tempfile, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "postgraphile")

SERVER_QUERY = """query Report($n: Int) {
  courses(first: $n, orderBy: {field: ID}) {
    totalCount
    edges { node { lmsId shortName fullName archivingEnabled
      activities(first: 100) { totalCount edges { node { lmsId name kind archiveState lastArchivedAt } } } } }
  }
}"""

POSTGRAPHILE_QUERY = """query Report($n: Int) {
  allCourses(first: $n, orderBy: ID_ASC) {
    totalCount
    nodes { lmsId shortName fullName archivingEnabled
      activitiesByCourseId(first: 100, orderBy: ID_ASC) { totalCount nodes { lmsId name kind archiveState lastArchivedAt } } }
  }
}"""

# The server's rules (service/catalog.rs: archive_stats, archiving_enabled) as SQL functions that
# PostGraphile exposes as computed columns.
COMPUTED_COLUMNS = """
CREATE FUNCTION activity_archive_state(a activity) RETURNS text STABLE LANGUAGE sql AS $$
  SELECT CASE
    WHEN NOT EXISTS (SELECT 1 FROM archive_task t JOIN archive_job j ON j.id = t.job_id
                     WHERE t.activity_id = a.id AND t.status = 'FINISHED' AND j.status <> 'DELETED') THEN 'NEVER_ARCHIVED'
    WHEN EXISTS (SELECT 1 FROM archive_task t JOIN archive_job j ON j.id = t.job_id
                 WHERE t.activity_id = a.id AND t.status = 'FINISHED' AND j.status <> 'DELETED'
                   AND t.fingerprint = a.fingerprint) THEN 'ARCHIVED'
    ELSE 'CHANGED' END
$$;
CREATE FUNCTION activity_last_archived_at(a activity) RETURNS timestamptz STABLE LANGUAGE sql AS $$
  SELECT max(t.finished_at) FROM archive_task t JOIN archive_job j ON j.id = t.job_id
  WHERE t.activity_id = a.id AND t.status = 'FINISHED' AND j.status <> 'DELETED'
$$;
CREATE FUNCTION course_archiving_enabled(c course) RETURNS boolean STABLE LANGUAGE sql AS $$
  SELECT coalesce((SELECT p.archiving_enabled FROM course_category own
                   JOIN course_category anc ON own.path LIKE anc.path || '%'
                   JOIN category_policy p ON p.category_id = anc.id AND p.archiving_enabled IS NOT NULL
                   WHERE own.id = c.category_id ORDER BY anc.depth DESC LIMIT 1), true)
$$;
"""


def wait_ready(url, what, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode} before it was ready")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except Exception:
            time.sleep(0.2)
    sys.exit(f"{what} did not become ready within {timeout} s")


def post(url, query, variables, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = "Bearer " + token
    req = urllib.request.Request(url, json.dumps({"query": query, "variables": variables}).encode(), headers)
    with urllib.request.urlopen(req, timeout=120) as r:
        body = json.load(r)
    if body.get("errors"):
        raise RuntimeError(f"{url}: {body['errors']}")
    return body["data"]


def stop(proc):
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def normalize_server(d):
    c = d["courses"]
    return c["totalCount"], [
        (n["lmsId"], n["shortName"], n["fullName"], n["archivingEnabled"], n["activities"]["totalCount"],
         [(a["lmsId"], a["name"], a["kind"], a["archiveState"], a["lastArchivedAt"] is not None) for a in (e["node"] for e in n["activities"]["edges"])])
        for n in (e["node"] for e in c["edges"])
    ]


def normalize_postgraphile(d):
    c = d["allCourses"]
    return c["totalCount"], [
        (n["lmsId"], n["shortName"], n["fullName"], n["archivingEnabled"], n["activitiesByCourseId"]["totalCount"],
         [(a["lmsId"], a["name"], a["kind"], a["archiveState"], a["lastArchivedAt"] is not None) for a in n["activitiesByCourseId"]["nodes"]])
        for n in c["nodes"]
    ]


def autocannon(url, body, token, concurrency, seconds):
    cmd = [os.path.join(NODE_DIR, "node_modules", ".bin", "autocannon"), "-c", str(concurrency), "-d", str(seconds), "-m", "POST",
           "-H", "content-type=application/json", "-b", body, "--json", url]
    if token:
        cmd[-1:-1] = ["-H", f"authorization=Bearer {token}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    r = json.loads(out)
    bad = r.get("non2xx", 0) + r.get("errors", 0) + r.get("timeouts", 0)
    if bad:
        sys.exit(f"{url}: {bad} failed requests in a round")
    return r["requests"]["total"] / r["duration"], r["latency"]["p50"], r["latency"]["p99"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/archiving-manager")
    ap.add_argument("--postgres", default=os.environ.get("ARCHIVING_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"))
    ap.add_argument("--courses", type=int, default=50, help="courses per query (the data set has 10 more)")
    ap.add_argument("--archive", type=int, default=25, help="courses whose activities are archived before measuring")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=10, help="per round and server")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3, help="seconds of load per server before the rounds")
    ap.add_argument("--port", type=int, default=18280)
    ap.add_argument("--also-bin", help="another build of the server (e.g. before a change) to measure beside, on the same data")
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin} does not exist: build it first (cargo build --release)")
    if not os.path.exists(os.path.join(NODE_DIR, "node_modules", ".bin", "postgraphile")):
        sys.exit(f"PostGraphile is not installed: run `npm ci` in {NODE_DIR} (needs Node.js 20 and npm)")
    for tool in ("psql", "node"):
        if not shutil.which(tool):
            sys.exit(f"`{tool}` is missing: install it (Debian: apt-get install postgresql-client nodejs npm)")

    db = f"am_bench_reporting_{secrets.token_hex(4)}"
    db_url = f"{args.postgres}/{db}"
    psql = lambda url, sql: subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True, capture_output=True, text=True)
    try:
        psql(f"{args.postgres}/postgres", f"CREATE DATABASE {db}")
    except subprocess.CalledProcessError as e:
        sys.exit(f"cannot create a database on {args.postgres} ({e.stderr.strip()}): start PostgreSQL or pass --postgres")
    data = tempfile.mkdtemp(prefix="am-reporting-")
    server_url = f"http://127.0.0.1:{args.port}"
    pgl_url = f"http://127.0.0.1:{args.port + 1}"
    env = dict(os.environ, ARCHIVING_DATA_DIR=data, ARCHIVING_DATABASE_URL=db_url, ARCHIVING_LISTEN=f"127.0.0.1:{args.port}",
               ARCHIVING_LOG="warn", ARCHIVING_JWT_SECRET=secrets.token_hex(24),
               ARCHIVING_DEMO_EXTRA_COURSES=str(max(0, args.courses + 10 - 9)), ARCHIVING_MAX_CONCURRENT_JOBS="10")
    mint = lambda role: subprocess.run([args.bin, "token", "--role", role, "--ttl", "2h"], env=env, check=True, capture_output=True, text=True).stdout.strip()
    server = pgl = other = None
    try:
        # 1. The data set: sync at start, then archive the activities of some courses for real.
        server = subprocess.Popen([args.bin, "serve"], env=env, stdout=subprocess.DEVNULL, start_new_session=True)
        wait_ready(server_url + "/readyz", "the server", server)
        admin = mint("admin")
        gql = lambda q, v=None: post(server_url + "/graphql", q, v or {}, admin)
        courses = gql("{ courses(first: 100, orderBy: {field: ID}) { edges { node { id activities { edges { node { id lmsId } } } } } } }")["courses"]["edges"]
        jobs = []
        for e in courses[: args.archive]:
            acts = [a["node"]["id"] for a in e["node"]["activities"]["edges"]]
            r = gql("mutation($i: CreateArchiveJobInput!) { createArchiveJob(input: $i) { job { id } userErrors { message } } }", {"i": {"activityIds": acts}})
            if r["createArchiveJob"]["userErrors"]:
                sys.exit(f"creating an archive job: {r['createArchiveJob']['userErrors']}")
            jobs.append(r["createArchiveJob"]["job"]["id"])
        deadline = time.time() + 600
        while True:
            statuses = [gql("query($id: ID!) { archiveJob(id: $id) { status } }", {"id": j})["archiveJob"]["status"] for j in jobs]
            if all(s == "COMPLETED" for s in statuses):
                break
            if any(s in ("FAILURE", "TIMEOUT", "CANCELED") for s in statuses) or time.time() > deadline:
                sys.exit(f"archive jobs did not complete: {statuses}")
            time.sleep(1)
        stop(server)
        # One archived activity changes in the LMS afterwards: CHANGED.
        changed = courses[0]["node"]["activities"]["edges"][0]["node"]["lmsId"]
        subprocess.run([args.bin, "demo", "add-attempt", "--activity", changed], env=env, check=True, capture_output=True)
        psql(db_url, COMPUTED_COLUMNS)

        # 2. Both servers on the same database, the server without workers (nothing in the background).
        server = subprocess.Popen([args.bin, "serve", "--no-workers"], env=env, stdout=subprocess.DEVNULL, start_new_session=True)
        pgl = subprocess.Popen([os.path.join(NODE_DIR, "node_modules", ".bin", "postgraphile"), "-c", db_url, "-s", "public",
                                "-n", "127.0.0.1", "-p", str(args.port + 1), "--disable-query-log", "--cors"],
                               env=dict(os.environ, NODE_ENV="production"), cwd=NODE_DIR, stdout=subprocess.DEVNULL, start_new_session=True)
        wait_ready(server_url + "/readyz", "the server", server)
        wait_ready(pgl_url + "/graphql", "PostGraphile", pgl)
        if args.also_bin:
            other_url = f"http://127.0.0.1:{args.port + 2}"
            # It syncs the demo LMS at start too: the same data directory (the demo's changes are
            # kept there), and no setting an older build may not know (sync adds, never removes).
            other_env = {k: v for k, v in env.items() if k != "ARCHIVING_DEMO_EXTRA_COURSES"}
            other_env["ARCHIVING_LISTEN"] = f"127.0.0.1:{args.port + 2}"
            other = subprocess.Popen([args.also_bin, "serve", "--no-workers"], env=other_env, stdout=subprocess.DEVNULL, start_new_session=True)
            wait_ready(other_url + "/readyz", args.also_bin, other)
        reporter = mint("reporter")
        variables = {"n": args.courses}
        ours = normalize_server(post(server_url + "/graphql", SERVER_QUERY, variables, reporter))
        theirs = normalize_postgraphile(post(pgl_url + "/graphql", POSTGRAPHILE_QUERY, variables))
        if args.also_bin and normalize_server(post(other_url + "/graphql", SERVER_QUERY, variables, reporter)) != ours:
            sys.exit(f"{args.also_bin} answers differently")
        if ours != theirs:
            sys.exit(f"the two answers differ:\n server:      {ours}\n PostGraphile: {theirs}")
        states = [a[3] for c in ours[1] for a in c[5]]
        print(f"data: {ours[0]} courses, {len(ours[1])} per query with {len(states)} activities "
              f"({', '.join(f'{states.count(s)} {s}' for s in sorted(set(states)))}); both answers identical")

        targets = {
            "archiving-manager": (server_url + "/graphql", json.dumps({"query": SERVER_QUERY, "variables": variables}), reporter),
            "PostGraphile 4.14.1": (pgl_url + "/graphql", json.dumps({"query": POSTGRAPHILE_QUERY, "variables": variables}), None),
        }
        if args.also_bin:
            targets["--also-bin"] = (other_url + "/graphql", json.dumps({"query": SERVER_QUERY, "variables": variables}), reporter)
        for name, (url, body, token) in targets.items():
            autocannon(url, body, token, args.concurrency, args.warmup)
        results = {name: [] for name in targets}
        for r in range(args.rounds):
            for name, (url, body, token) in (list(targets.items()) if r % 2 == 0 else list(reversed(list(targets.items())))):
                rps, p50, p99 = autocannon(url, body, token, args.concurrency, args.seconds)
                results[name].append(rps)
                print(f"round {r + 1}  {name:<20} {rps:8.1f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms", flush=True)
        print(f"\nconcurrency {args.concurrency}, {args.rounds} × {args.seconds} s per server, alternating")
        mean = {name: sum(v) / len(v) for name, v in results.items()}
        for name, v in mean.items():
            print(f"{name:<20} {v:8.1f} req/s (mean of rounds)")
        a, b = mean["archiving-manager"], mean["PostGraphile 4.14.1"]
        # Per round too: the two ran back to back, so a round's ratio is the least disturbed by
        # other load on the machine.
        per_round = sorted(x / y for x, y in zip(results["archiving-manager"], results["PostGraphile 4.14.1"]))
        print(f"ratio archiving-manager / PostGraphile: {a / b:.2f}x (per round: {', '.join(f'{r:.2f}' for r in per_round)}; "
              f"median {per_round[len(per_round) // 2]:.2f}x)")
        if args.also_bin:
            print(f"ratio --also-bin ({args.also_bin}) / PostGraphile: {mean['--also-bin'] / b:.2f}x; archiving-manager / --also-bin: {a / mean['--also-bin']:.2f}x")
    finally:
        stop(other)
        stop(pgl)
        stop(server)
        try:
            psql(f"{args.postgres}/postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
