#!/usr/bin/env python3
"""Server memory across identical large jobs: starts `archiving-manager serve` on a fresh data
directory with the demo LMS at scale 100 (course 109's "Term paper": 10,000 submissions), runs N
identical archive jobs one after the other, and prints the server's RSS (and peak) after each.
The goal: RSS after the last job within 10 % of RSS after the first (memory does not grow with
the number of jobs), and peak RSS under 128 MiB.

    cargo build --release && python3 benches/rss_across_jobs.py [--bin target/release/archiving-manager] [--jobs 5]

Environment variables the server understands (ARCHIVING_*) pass through, e.g. to compare
allocators: LD_PRELOAD=… or MALLOC_ARENA_MAX=2. Linux only (reads /proc).
"""
import argparse, json, os, signal, subprocess, sys, tempfile, threading, time, urllib.request


def rss(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/archiving-manager")
    ap.add_argument("--jobs", type=int, default=5)
    ap.add_argument("--port", type=int, default=18180)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds to wait after a job before reading RSS")
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin} does not exist: build it first (cargo build --release)")
    url = f"http://127.0.0.1:{args.port}"
    data = tempfile.mkdtemp(prefix="am-rss-")
    env = dict(os.environ, ARCHIVING_DATA_DIR=data, ARCHIVING_DEMO_SCALE="100", ARCHIVING_LISTEN=f"127.0.0.1:{args.port}", ARCHIVING_LOG="warn")
    server = subprocess.Popen([args.bin, "serve"], env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        token = next((l.strip() for l in server.stdout if l.startswith("eyJ")), None)
        if not token:
            sys.exit("the server printed no admin token")
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()

        def gql(query, variables=None):
            req = urllib.request.Request(url + "/graphql", json.dumps({"query": query, "variables": variables or {}}).encode(), {"content-type": "application/json", "authorization": "Bearer " + token})
            with urllib.request.urlopen(req, timeout=60) as r:
                body = json.load(r)
            if body.get("errors"):
                raise RuntimeError(body["errors"])
            return body["data"]

        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/readyz", timeout=2)
                break
            except Exception:
                if time.time() > deadline:
                    sys.exit("the server did not become ready")
                time.sleep(0.5)
        course = gql('{ course(lmsId: "109") { activities(first: 100) { edges { node { id name } } } } }')["course"]
        activity = next(e["node"]["id"] for e in course["activities"]["edges"] if e["node"]["name"] == "Term paper")
        time.sleep(args.settle)
        rows = [("start", 0.0, rss(server.pid))]
        for n in range(1, args.jobs + 1):
            began = time.time()
            p = gql("mutation($id: ID!) { createArchiveJob(input: {activityIds: [$id]}) { job { id } userErrors { message } } }", {"id": activity})["createArchiveJob"]
            if p["userErrors"]:
                sys.exit(f"job {n}: {p['userErrors']}")
            while True:
                time.sleep(0.5)
                status = gql("query($id: ID!) { archiveJob(id: $id) { status } }", {"id": p["job"]["id"]})["archiveJob"]["status"]
                if status in ("COMPLETED", "FAILURE", "TIMEOUT", "CANCELED"):
                    break
            if status != "COMPLETED":
                sys.exit(f"job {n} ended {status}")
            took = time.time() - began
            time.sleep(args.settle)
            rows.append((f"job {n}", took, rss(server.pid)))
        print("| after | job seconds | RSS MiB | peak RSS MiB |\n|---|---|---|---|")
        for name, took, m in rows:
            print(f"| {name} | {took:.1f} | {m['VmRSS']:.1f} | {m['VmHWM']:.1f} |")
        ratio = rows[-1][2]["VmRSS"] / rows[1][2]["VmRSS"]
        print(f"RSS after job {args.jobs} / after job 1: {ratio:.3f} (goal ≤ 1.10); peak {rows[-1][2]['VmHWM']:.1f} MiB (goal < 128)")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
