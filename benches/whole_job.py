#!/usr/bin/env python3
"""One large job end to end against `tar | zstd -3 | sha256sum`: starts `archiving-manager serve`
on a fresh data directory and SQLite database (or a fresh PostgreSQL database with --postgres)
with the demo LMS at scale 100 (course 109's "Term paper": 10,000 submissions), archives that
activity once per format (create → COMPLETED, polled), unpacks the produced package to get the
bag, and times `tar -cf - <bag> | zstd -3 | sha256sum` on that same unpacked bag in the same run.
Prints seconds, the ratio job / baseline, the server's peak RSS (VmHWM), and where each job's
time went (stages from the job's transitions; chunk rendering and assembly from its log).

    cargo build --release && python3 benches/whole_job.py [--bin target/release/archiving-manager] \\
        [--formats TAR_ZST,ZIP] [--runs 1] [--postgres postgres://postgres@127.0.0.1:5432]

Goals: the job within 3x of the baseline in TAR_ZST and 4x in ZIP; peak RSS < 128 MiB.
Environment variables the server understands (ARCHIVING_*) pass through. Linux only (/proc).
"""
import argparse, datetime, json, os, re, shutil, signal, subprocess, sys, tempfile, threading, time, urllib.parse, urllib.request

FINAL = ("COMPLETED", "FAILURE", "TIMEOUT", "CANCELED")


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def when(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def need(tool):
    if shutil.which(tool) is None:
        sys.exit(f"`{tool}` is missing: install it (Debian/Ubuntu: apt-get install {tool})")


def baseline(bag_parent, bag):
    """Seconds of `tar -cf - <bag> | zstd -3 | sha256sum` (the bag read from the page cache,
    as the server reads its staging files), best of two so that a cold cache does not count."""
    best = None
    for _ in range(2):
        began = time.perf_counter()
        subprocess.run(f"tar -cf - {bag} | zstd -3 -q -c | sha256sum > /dev/null", shell=True, check=True, cwd=bag_parent)
        took = time.perf_counter() - began
        best = took if best is None else min(best, took)
    return best


def unpack(package, into):
    if package.endswith(".zip"):
        subprocess.run(["unzip", "-q", package, "-d", into], check=True)
    elif package.endswith(".tar.zst"):
        subprocess.run(f"zstd -d -q -c '{package}' | tar -xf - -C '{into}'", shell=True, check=True)
    elif package.endswith(".tar.gz"):
        subprocess.run(["tar", "-xzf", package, "-C", into], check=True)
    else:
        sys.exit(f"unknown package type: {package}")
    (bag,) = os.listdir(into)
    return bag


def breakdown(job):
    """Where the job's time went: each status from its transitions, and within
    ACTIVITY_ARCHIVING the chunks (first log of planning → last chunk archived) and the assembly
    (last chunk → the package archived)."""
    ts = [(when(t["at"]), t["to"]) for t in job["transitions"]]
    rows = []
    for (at, status), (nxt, _) in zip(ts, ts[1:]):
        rows.append((status, nxt - at))
    logs = [(when(e["node"]["createdAt"]), e["node"]["message"]) for e in job["logs"]["edges"]]
    planned = next((at for at, m in logs if re.search(r"archived in \d+ chunks", m)), None)
    chunks = [at for at, m in logs if re.match(r"chunk \d+/\d+ .* archived by", m)]
    direct = sum(1 for _, m in logs if re.match(r"chunk \d+/\d+ .* archived by .* straight into the package", m))
    packaged = next((at for at, m in logs if m.startswith("archived ") and " records into " in m), None)
    start = next((at for at, s in ts if s == "ACTIVITY_ARCHIVING"), None)
    if planned and chunks and packaged and start:
        rows.append(("  planning (ACTIVITY_ARCHIVING start → chunks planned)", planned - start))
        rows.append((f"  {len(chunks)} chunks rendered, {direct} straight into the package (planned → last chunk archived)", max(chunks) - planned))
        rows.append(("  assembly (last chunk → package archived)", packaged - max(chunks)))
        rows.append(("  after the package (→ POST_PROCESSING)", next(at for at, s in ts if s == "POST_PROCESSING") - packaged))
    elif packaged and start:
        rows.append(("  archived directly (ACTIVITY_ARCHIVING start → package archived)", packaged - start))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/archiving-manager")
    ap.add_argument("--formats", default="TAR_ZST,ZIP")
    ap.add_argument("--runs", type=int, default=1, help="jobs per format (the median counts)")
    ap.add_argument("--port", type=int, default=18190)
    ap.add_argument("--postgres", metavar="URL", help="server URL of PostgreSQL; a fresh database is created there")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--perf", metavar="PREFIX", help="record a CPU profile of the server during each job (perf record -g) into PREFIX.<format>.<run>")
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin} does not exist: build it first (cargo build --release)")
    for tool in ("tar", "zstd", "unzip", "sha256sum"):
        need(tool)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    url = f"http://127.0.0.1:{args.port}"
    data = tempfile.mkdtemp(prefix="am-whole-")
    env = dict(os.environ, ARCHIVING_DATA_DIR=data, ARCHIVING_DEMO_SCALE="100", ARCHIVING_LISTEN=f"127.0.0.1:{args.port}")
    env.setdefault("ARCHIVING_LOG", "warn")
    db_name = None
    if args.postgres:
        need("psql")
        db_name = f"am_whole_{os.getpid()}"
        subprocess.run(["psql", args.postgres, "-q", "-c", f"CREATE DATABASE {db_name}"], check=True)
        env["ARCHIVING_DATABASE_URL"] = args.postgres.rstrip("/") + "/" + db_name
    started = time.time()
    server = subprocess.Popen([args.bin, "serve"], env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        token = next((l.strip() for l in server.stdout if l.startswith("eyJ")), None)
        if not token:
            sys.exit("the server printed no admin token")
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()

        def gql(query, variables=None):
            req = urllib.request.Request(url + "/graphql", json.dumps({"query": query, "variables": variables or {}}).encode(),
                                         {"content-type": "application/json", "authorization": "Bearer " + token})
            with urllib.request.urlopen(req, timeout=120) as r:
                body = json.load(r)
            if body.get("errors"):
                raise RuntimeError(body["errors"])
            return body["data"]

        deadline = started + 600
        while True:
            try:
                urllib.request.urlopen(url + "/readyz", timeout=2)
                break
            except Exception:
                if time.time() > deadline:
                    sys.exit("the server did not become ready")
                time.sleep(0.5)
        print(f"server ready in {time.time() - started:.1f} s (demo LMS at scale 100 synced)", flush=True)
        if args.perf:
            need("perf")
        course = gql('{ course(lmsId: "109") { activities(first: 100) { edges { node { id name } } } } }')["course"]
        activity = next(e["node"]["id"] for e in course["activities"]["edges"] if e["node"]["name"] == "Term paper")
        results = []
        for fmt in formats:
            for run in range(1, args.runs + 1):
                profiler = None
                if args.perf:
                    out = f"{args.perf}.{fmt}.{run}"
                    profiler = subprocess.Popen(["perf", "record", "-q", "-F", "999", "-g", "-p", str(server.pid), "-o", out], stderr=subprocess.DEVNULL)
                    time.sleep(0.5)  # perf attaches
                began = time.perf_counter()
                p = gql("mutation($id: ID!, $f: ArchiveFormat) { createArchiveJob(input: {activityIds: [$id], format: $f}) { job { id } userErrors { message } } }",
                        {"id": activity, "f": fmt})["createArchiveJob"]
                if p["userErrors"]:
                    sys.exit(f"{fmt}: {p['userErrors']}")
                job_id = p["job"]["id"]
                while True:
                    time.sleep(0.1)
                    status = gql("query($id: ID!) { archiveJob(id: $id) { status } }", {"id": job_id})["archiveJob"]["status"]
                    if status in FINAL:
                        break
                took = time.perf_counter() - began
                if profiler:
                    profiler.send_signal(signal.SIGINT)
                    profiler.wait()
                    print(f"profile of the job: perf report -i {out} --no-children", flush=True)
                job = gql("""query($id: ID!) { archiveJob(id: $id) { status error transitions { at from to }
                    logs(first: 100) { edges { node { createdAt message } } }
                    files { fileName sizeBytes downloadUrl } } }""", {"id": job_id})["archiveJob"]
                if status != "COMPLETED":
                    sys.exit(f"{fmt} job ended {status}: {job['error']}")
                f = job["files"][0]
                unpacked = tempfile.mkdtemp(prefix="am-bag-", dir=data)
                package = os.path.join(unpacked, f["fileName"])
                with urllib.request.urlopen(urllib.request.Request(f["downloadUrl"]), timeout=300) as r, open(package, "wb") as out:
                    shutil.copyfileobj(r, out, 1 << 20)
                bag_dir = os.path.join(unpacked, "bag")
                os.mkdir(bag_dir)
                bag = unpack(package, bag_dir)
                os.remove(package)
                base = baseline(bag_dir, bag)
                files = sum(len(fs) for _, _, fs in os.walk(os.path.join(bag_dir, bag)))
                size = int(f["sizeBytes"])
                results.append((fmt, run, took, base, size, files, breakdown(job)))
                shutil.rmtree(unpacked)
                print(f"{fmt} run {run}: job {took:.2f} s, baseline {base:.2f} s, ratio {took / base:.1f}x, package {size / 1e6:.1f} MB, bag {files} files", flush=True)
        peak = peak_rss_mib(server.pid)
        print()
        print("| format | job s | tar\\|zstd -3\\|sha256sum s | ratio | package MB | goal |\n|---|---|---|---|---|---|")
        goals = {"TAR_ZST": 3.0, "ZIP": 4.0}
        for fmt in formats:
            rs = sorted((r for r in results if r[0] == fmt), key=lambda r: r[2] / r[3])
            fmt_, _, took, base, size, _, _ = rs[len(rs) // 2]
            goal = goals.get(fmt)
            print(f"| {fmt} | {took:.2f} | {base:.2f} | {took / base:.1f}x | {size / 1e6:.1f} | {'≤ %.0fx' % goal if goal else '-'} |")
        print(f"\nserver peak RSS (VmHWM) over all jobs: {peak:.1f} MiB (goal < 128)")
        for fmt, run, took, _, _, _, rows in results:
            print(f"\nwhere the time went: {fmt} run {run} ({took:.2f} s from the request to COMPLETED seen)")
            for name, secs in rows:
                print(f"  {name:<70} {secs:7.2f} s")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        if db_name:
            subprocess.run(["psql", args.postgres, "-q", "-c", f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"], check=False)
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
