#!/usr/bin/env python3
"""executord's replicas row (issue 15): what several replicas on one PostgreSQL queue buy,
and what the PostgreSQL store costs a job, each measured against its baseline in the same
run. Targets: 3 replicas finish sleep-bound jobs at least 2.5x as fast as 1 replica (same
--workers per replica); a trivial pool job's p50 through PostgreSQL within 2 ms of SQLite's.

Owns only the benchmark's run: a throw-away PostgreSQL cluster on a unix socket
(tests/pg/cluster.sh, or --store for an existing database), a shared API token file, the
replicas (each with a data folder of its own), the clients, the figures. Standard library
only; the server wrapper and the machine description come from bench.py. See
bench/README.md."""

import argparse
import datetime
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402  (Server, build, machine, percentile, knows_flag, log)

REPO = bench.REPO
TARGET_SCALE = 2.5  # issue 15: 3 replicas >= 2.5x the throughput of 1
TARGET_OVERHEAD_MS = 2.0  # issue 15: PostgreSQL p50 within 2 ms of SQLite's
TRIVIAL = bench.TRIVIAL
CLUSTER = REPO / "tests" / "pg" / "cluster.sh"


def sleeping(seconds):
    return f"import time\ndef main():\n    time.sleep({seconds})\n    return 1\n"


# ---- the database ---------------------------------------------------------------------


class Cluster:
    """A throw-away PostgreSQL cluster from tests/pg/cluster.sh (a unix socket in a
    temporary folder, nothing on the network), or the database --store names."""

    def __init__(self, store_url, folder, durable):
        self.folder, self.owned = folder, not store_url
        if store_url:
            self.url = store_url
            return
        if not CLUSTER.exists():
            raise SystemExit(f"{CLUSTER.relative_to(REPO)} is missing (it comes with the PostgreSQL store); "
                             "or pass --store URL of a database to use")
        out = subprocess.run([str(CLUSTER), "start", str(folder)], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise SystemExit(f"tests/pg/cluster.sh start failed ({out.returncode}):\n{out.stderr}")
        urls = [w for w in out.stdout.split() if w.startswith(("postgresql://", "postgres://"))]
        if not urls:
            raise SystemExit(f"tests/pg/cluster.sh printed no URL:\n{out.stdout}")
        self.url = urls[-1]
        if durable:
            try:
                self.make_durable()
            except BaseException:
                self.stop()
                raise

    def make_durable(self):
        """cluster.sh starts the tests' cluster with fsync, synchronous_commit and
        full_page_writes off; against SQLite's synchronous=FULL that would flatter
        PostgreSQL. Restart it with the server's defaults (all three on), same socket."""
        pgbin = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not pgbin:
            raise SystemExit("no pg_ctl under /usr/lib/postgresql")
        cmd = [str(pgbin[-1]), "-D", str(self.folder / "data"), "-l", str(self.folder / "server.log"), "-w", "-t", "60",
               "restart", "-m", "fast",
               "-o", f"-c listen_addresses='' -k {self.folder} -c max_connections=200"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise SystemExit(f"pg_ctl restart failed ({out.returncode}):\n{out.stdout}{out.stderr}")

    def describe(self):
        """The server's version and the settings that decide a commit's cost, so that the
        SQLite comparison can be read (SQLite runs synchronous=FULL)."""
        names = ["server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method",
                 "shared_buffers"]
        cmd = ["psql", "-X", "-A", "-t", "-d", self.url]
        for n in names:
            cmd += ["-c", f"show {n}"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"(psql failed: {e})"
        if out.returncode != 0:
            return f"(psql failed: {out.stderr.strip()})"
        rows = [r.strip() for r in out.stdout.splitlines() if r.strip()]
        return "; ".join(f"{n} {v}" for n, v in zip(names, rows))

    def stop(self):
        if self.owned:
            subprocess.run([str(CLUSTER), "stop", str(self.folder)], capture_output=True, timeout=120)


# ---- the replicas ---------------------------------------------------------------------


def start_replica(binary, args, token_file, store_args, replica_id=None):
    """One executord on the pool backend with the shared token; store_args selects the
    store (empty: SQLite in its own data folder). Returns once /readyz answers 200."""
    extra = ["--backends", "pool", "--backend", "pool", "--api-token-file", str(token_file)] + store_args
    if replica_id:
        extra += ["--replica-id", replica_id]
    server = bench.Server(binary, args.workers, extra + args.server_arg)
    wait_ready(server)
    return server


def wait_ready(server, seconds=60):
    deadline = time.monotonic() + seconds
    status = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit("executord exited at start:\n" + server.log())
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            c.request("GET", "/readyz", headers=server.headers())
            r = c.getresponse()
            r.read()
            status = r.status
        except (OSError, http.client.HTTPException):
            status = None
        finally:
            c.close()
        if status == 200:
            return
        time.sleep(0.1)
    raise SystemExit(f"executord on port {server.port} not ready within {seconds} s (last /readyz: {status}):\n"
                     + server.log()[-2000:])


class Client:
    """One keep-alive connection to one replica."""

    def __init__(self, server):
        self.server, self.conn = server, None

    def call(self, method, path, body=None):
        headers = dict(self.server.headers())
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=120)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


def finished_ok(status, data, what):
    doc = json.loads(data)
    if status not in (200, 201) or doc.get("status") != "succeeded" or doc.get("result") != 1:
        raise SystemExit(f"{what}: unexpected answer {status}: {data[:600]!r}")
    return doc


# ---- throughput: 1 replica against 3 on one database ------------------------------------


def finished_total(server):
    """The replica's executord_jobs_finished_total summed over its labels: the jobs this
    replica ran to an end since it started (each replica counts only its own)."""
    status, data = Client(server).call("GET", "/metrics")
    if status != 200:
        raise SystemExit(f"GET /metrics: unexpected answer {status}: {data[:300]!r}")
    total = 0.0
    for line in data.decode().splitlines():
        if line.startswith("executord_jobs_finished_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def burst(replicas, n, script):
    """Submit n sleep-bound jobs round-robin over the replicas (no wait), then wait for
    each through another replica than the one that took it; returns (jobs/s, how many of
    them each replica ran, by port, from its /metrics)."""
    before = [finished_total(s) for s in replicas]
    clients = [Client(s) for s in replicas]
    body = json.dumps({"script": script, "backend": "pool"}).encode()
    ids = []
    t0 = time.perf_counter()
    try:
        for i in range(n):
            status, data = clients[i % len(clients)].call("POST", "/v1/jobs", body)
            if status != 201:
                raise SystemExit(f"submit: unexpected answer {status}: {data[:600]!r}")
            ids.append(json.loads(data)["id"])
        for i, job_id in enumerate(ids):
            c = clients[(i + 1) % len(clients)]
            while True:
                status, data = c.call("GET", f"/v1/jobs/{job_id}?wait=60")
                doc = json.loads(data)
                if status == 200 and doc.get("status") in ("queued", "running"):
                    continue  # the long-poll's own limit, not the job's end
                break
            finished_ok(status, data, f"job {job_id}")
        elapsed = time.perf_counter() - t0
    finally:
        for c in clients:
            c.close()
    time.sleep(0.3)  # the counter moves just after the outcome is recorded
    ran = [int(finished_total(s) - b) for s, b in zip(replicas, before)]
    return n / elapsed, ran


def throughput(binary, args, token_file, url):
    """Rounds of: 1 replica alone, then 3 (the first and two more) on the same database;
    the two extra replicas are stopped (SIGTERM, graceful) before the next round's
    single-replica burst, so each burst sees exactly the replicas it names."""
    store = ["--store", url]
    script = sleeping(args.sleep)
    one, three, spread = [], [], [0, 0, 0]
    first = start_replica(binary, args, token_file, store, "bench-r1")
    try:
        for rnd in range(args.scale_rounds):
            r1, ran1 = burst([first], args.jobs, script)
            if ran1 != [args.jobs]:
                raise SystemExit(f"the single replica ran {ran1[0]} of {args.jobs} jobs: another replica "
                                 "shares the database?")
            # New ids each round: a replica restarted under its old id would first wait for
            # its previous lease to lapse (the store cannot tell a restart from a twin).
            others = [start_replica(binary, args, token_file, store, f"bench-r{k}-{rnd + 1}") for k in (2, 3)]
            try:
                r3, ran_on = burst([first] + others, args.jobs, script)
            finally:
                for s in others:
                    s.stop()
            one.append(r1)
            three.append(r3)
            spread = [a + b for a, b in zip(spread, ran_on)]
            bench.log(f"   scale round {rnd + 1}/{args.scale_rounds}: 1 replica {r1:.2f} jobs/s, "
                      f"3 replicas {r3:.2f} jobs/s ({r3 / r1:.2f}x; jobs run per replica {ran_on})")
    finally:
        first.stop()
    return one, three, spread


# ---- overhead: SQLite against PostgreSQL, one replica each, interleaved ------------------


def overhead(binary, args, token_file, url):
    # SQLite at the durability PostgreSQL's defaults give (every commit flushed): the
    # comparison is of the stores, not of two durability levels. A binary before
    # --durability has only that level.
    durable = ["--durability", "power-loss"] if bench.knows_flag(binary, "--durability") else []
    sqlite = start_replica(binary, args, token_file, durable)
    pg = start_replica(binary, args, token_file, ["--store", url], "bench-lat")
    clients = {"SQLite": Client(sqlite), "PostgreSQL": Client(pg)}
    body = json.dumps({"script": TRIVIAL, "backend": "pool"}).encode()
    samples = {k: [] for k in clients}

    def one(name):
        t0 = time.perf_counter()
        status, data = clients[name].call("POST", "/v1/jobs?wait=30", body)
        dt = time.perf_counter() - t0
        finished_ok(status, data, name)
        return dt

    try:
        for _ in range(args.warmup):
            for name in clients:
                one(name)
        for rnd in range(args.rounds):
            for _ in range(args.per_round):
                order = list(clients)
                random.shuffle(order)
                for name in order:
                    samples[name].append(one(name))
            bench.log(f"   latency round {rnd + 1}/{args.rounds}: " + ", ".join(
                f"{n} {statistics.median(samples[n][-args.per_round:]) * 1000:.2f} ms" for n in clients))
    finally:
        for c in clients.values():
            c.close()
        sqlite.stop()
        pg.stop()
    return samples


# ---- statements: what one trivial job sends PostgreSQL ----------------------------------


def psql(url, *sql):
    cmd = ["psql", "-X", "-A", "-t", "-q", "-d", url]
    for q in sql:
        cmd += ["-c", q]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise SystemExit(f"psql failed: {out.stderr.strip()}")
    return out.stdout


def statements(binary, args, token_file, cluster):
    """The statements one trivial job costs end to end (one replica, pool backend,
    `POST /v1/jobs?wait=30`), counted by the server: log_statement = all for the
    replica's connections (application_name executord), a marker statement before and
    after args.count_jobs jobs run one by one, the log lines between counted and divided.
    The replica's own background statements (heartbeat, cancel checks: a few per second at
    most) fall in the window too; they are counted apart. Needs the throw-away cluster
    (its server log); returns None with --store."""
    if not cluster.owned:
        return None
    log = cluster.folder / "server.log"
    psql(cluster.url, "ALTER SYSTEM SET log_statement = 'all'",
         "ALTER SYSTEM SET log_line_prefix = '%m [%p] %a: '", "SELECT pg_reload_conf()")
    server = start_replica(binary, args, token_file, ["--store", cluster.url], "bench-stmt")
    client = Client(server)
    body = json.dumps({"script": TRIVIAL, "backend": "pool"}).encode()
    try:
        for _ in range(3):
            finished_ok(*client.call("POST", "/v1/jobs?wait=30", body), "warm-up")
        time.sleep(0.5)
        start = log.stat().st_size
        for _ in range(args.count_jobs):
            finished_ok(*client.call("POST", "/v1/jobs?wait=30", body), "counted job")
        time.sleep(0.3)  # the last job's trailing statements (none expected) reach the log
        end = log.stat().st_size
    finally:
        client.close()
        server.stop()
        psql(cluster.url, "ALTER SYSTEM RESET log_statement", "ALTER SYSTEM RESET log_line_prefix",
             "SELECT pg_reload_conf()")
    with open(log, "rb") as f:
        f.seek(start)
        text = f.read(end - start).decode(errors="replace")
    counts = {}
    for line in text.splitlines():
        if " executord: LOG:  " not in line:
            continue
        msg = line.split(" executord: LOG:  ", 1)[1]
        if not msg.startswith(("statement: ", "execute ")):
            continue
        text_sql = msg.split(": ", 1)[1].strip()
        # A simple query may carry several statements ("BEGIN; SELECT ..."): each counts.
        parts = [q.strip() for q in text_sql.split(";") if q.strip()] if msg.startswith("statement: ") \
            else [text_sql]
        for sql in parts:
            if "FROM replicas" in sql or "INTO replicas" in sql or "cancel_requested ORDER BY" in sql:
                kind = "background"
            elif sql in ("BEGIN", "COMMIT", "ROLLBACK") or sql.startswith("BEGIN "):
                kind = sql.split()[0]
            else:
                kind = "other"
            counts[kind] = counts.get(kind, 0) + 1
            counts.setdefault("by_sql", {})
            key = " ".join(sql.split())[:90]
            counts["by_sql"][key] = counts["by_sql"].get(key, 0) + 1
    n = args.count_jobs
    per = {k: v / n for k, v in counts.items() if k != "by_sql"}
    per["total"] = sum(v for k, v in per.items() if k != "background")
    per["jobs"] = n
    bench.log(f"   statements per job: {per['total']:.2f} (BEGIN {per.get('BEGIN', 0):.2f}, "
              f"COMMIT {per.get('COMMIT', 0):.2f}, ROLLBACK {per.get('ROLLBACK', 0):.2f}; "
              f"background {per.get('background', 0):.2f} not counted)")
    for sql, v in sorted(counts.get("by_sql", {}).items(), key=lambda kv: -kv[1]):
        bench.log(f"     {v / n:5.2f}  {sql}")
    return per


# ---- the report -------------------------------------------------------------------------


def load():
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def source_version():
    """The commit the measured tree is at (the binary is built from it unless --bin)."""
    out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def report(args, m, pg_desc, lat, one, three, spread, load_before, load_after, stmts=None):
    ms = lambda s: "%.2f" % (s * 1000)  # noqa: E731
    n = args.rounds * args.per_round
    p50 = {k: statistics.median(v) for k, v in lat.items()}
    extra = (p50["PostgreSQL"] - p50["SQLite"]) * 1000
    paired = statistics.median(b - a for a, b in zip(lat["SQLite"], lat["PostgreSQL"])) * 1000
    lines = ["### Per-job overhead: PostgreSQL against SQLite", "",
             f"One replica on each store, side by side, `--workers {args.workers}`, pool backend. The trivial job "
             f"(`def main(): return 1`) posted with `POST /v1/jobs?wait=30` (keep-alive, concurrency 1; a sample is "
             f"request sent .. answer read); {args.rounds} rounds x {args.per_round} steps, each step submits to both "
             f"stores in a new random order: {n} samples per store. \"paired\" = median over steps of "
             f"(PostgreSQL - SQLite) within the step. Both commit durably unless `--pg-fast`: SQLite "
             f"`synchronous=FULL`, PostgreSQL as in the machine table. Target (issue 15): p50 within "
             f"{TARGET_OVERHEAD_MS:g} ms.", "",
             "| store | p50 ms | p95 ms | p99 ms |", "|---|---:|---:|---:|"]
    for k in ("SQLite", "PostgreSQL"):
        lines.append(f"| {k} | {ms(p50[k])} | {ms(bench.percentile(lat[k], 95))} | {ms(bench.percentile(lat[k], 99))} |")
    within = extra <= TARGET_OVERHEAD_MS
    lines += ["", f"PostgreSQL - SQLite: **{extra:+.2f} ms** at p50 (paired {paired:+.2f} ms): "
              f"{'**within**' if within else '**OVER**'} the {TARGET_OVERHEAD_MS:g} ms target.", ""]
    if stmts:
        lines += [f"Statements one trivial job sends PostgreSQL (one replica, `log_statement = all`, "
                  f"{stmts['jobs']} jobs one by one, per job): **{stmts['total']:.2f}**, of which BEGIN "
                  f"{stmts.get('BEGIN', 0):.2f}, COMMIT {stmts.get('COMMIT', 0):.2f}, ROLLBACK "
                  f"{stmts.get('ROLLBACK', 0):.2f} (the replica's heartbeat and cancel checks in the same "
                  f"window, {stmts.get('background', 0):.2f} per job, not counted).", ""]
    ratio = [b / a for a, b in zip(one, three)]
    scale = statistics.median(ratio)
    lines += ["### Throughput: 1 replica against 3 on one PostgreSQL", "",
              f"Sleep-bound jobs (`time.sleep({args.sleep:g})`, pool backend), `--workers {args.workers}` per "
              f"replica. A burst submits {args.jobs} jobs round-robin over the replicas (no wait), then waits for "
              f"each (`GET /v1/jobs/{{id}}?wait=60`) through another replica than the one that took it; jobs/s = "
              f"{args.jobs} / (first submit .. last answer). Each of {args.scale_rounds} rounds runs the 1-replica "
              f"burst, starts two more replicas on the same database, runs the 3-replica burst and stops them "
              f"again. Ideal: {args.workers / args.sleep:g} jobs/s per replica. Target (issue 15): 3 replicas at "
              f"least {TARGET_SCALE:g}x 1 replica.", "",
              "| round | 1 replica jobs/s | 3 replicas jobs/s | ratio |", "|---|---:|---:|---:|"]
    for i, (a, b) in enumerate(zip(one, three)):
        lines.append(f"| {i + 1} | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
    lines.append(f"| **median** | **{statistics.median(one):.2f}** | **{statistics.median(three):.2f}** | "
                 f"**{scale:.2f}x** |")
    lines += ["", f"3 replicas / 1 replica: **{scale:.2f}x** (median of the per-round ratios): "
              f"{'**within**' if scale >= TARGET_SCALE else '**UNDER**'} the {TARGET_SCALE:g}x target."]
    lines.append(f"Jobs of the 3-replica bursts by the replica that ran them (each replica's "
                 f"`executord_jobs_finished_total`, after - before): " +
                 ", ".join(f"replica {i + 1}: {v}" for i, v in enumerate(spread)) +
                 f" of {args.jobs * args.scale_rounds}.")
    table = "\n".join(lines)
    machine_md = "\n".join([
        "| | |", "|---|---|",
        f"| kernel | {m['kernel']} |",
        f"| CPU | {m['cores']} x {m['cpu']} (nproc {os.cpu_count()}) |",
        f"| memory | {m['memory']} |",
        f"| cgroup | {m['cgroup']} |",
        f"| Python | {m['python']} |",
        f"| PostgreSQL | {pg_desc} |",
        f"| executord | {args.bin or 'build/executord'}, tree at {source_version()} |",
        f"| load average | {load_before} before, {load_after} after |",
        f"| date | {m['date']} |"])
    print()
    print(machine_md)
    print()
    print(table)
    bench.log(f"== PostgreSQL - SQLite p50: {extra:+.2f} ms ({'within' if within else 'OVER'} "
              f"{TARGET_OVERHEAD_MS:g} ms); 3 replicas / 1: {scale:.2f}x "
              f"({'within' if scale >= TARGET_SCALE else 'UNDER'} {TARGET_SCALE:g}x)")
    if not args.no_write:
        out = REPO / "bench" / "results" / f"{datetime.date.today().isoformat()}-replicas.md"
        cmd = "bench/run.sh --replicas " + " ".join(args.passed)
        out.write_text(f"# executord benchmark: replicas on one PostgreSQL, {m['date']}\n\n"
                       f"Command: `{cmd.strip()}` (as root: the sandboxes need it).\n\n## Machine\n\n{machine_md}\n\n"
                       f"## Figures\n\n{table}\n")
        bench.log(f"== written to {out.relative_to(REPO)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="executord binary (default: build it in --build-dir)")
    ap.add_argument("--build-dir", default=str(REPO / "build"), help="cmake build folder (default build/)")
    ap.add_argument("--store", help="an existing PostgreSQL database URL (default: a throw-away cluster from "
                                    "tests/pg/cluster.sh); its jobs tables are written to")
    ap.add_argument("--pg-fast", action="store_true", help="keep cluster.sh's test settings (fsync, "
                    "synchronous_commit, full_page_writes off) instead of the durable defaults")
    ap.add_argument("--workers", type=int, default=2, help="executord --workers of every replica (default 2)")
    ap.add_argument("--sleep", type=float, default=0.2, help="seconds each throughput job sleeps (default 0.2)")
    ap.add_argument("--jobs", type=int, default=120, help="jobs per throughput burst (default 120)")
    ap.add_argument("--scale-rounds", type=int, default=3, help="throughput rounds (default 3)")
    ap.add_argument("--rounds", type=int, default=6, help="latency rounds (default 6)")
    ap.add_argument("--per-round", type=int, default=25, help="latency steps per round (default 25)")
    ap.add_argument("--warmup", type=int, default=10, help="latency warm-up jobs per store (default 10)")
    ap.add_argument("--count-jobs", type=int, default=20, help="jobs whose statements are counted (default 20; "
                    "0: no count)")
    ap.add_argument("--statements-only", action="store_true", help="only count the statements a trivial job "
                    "sends (with the throw-away cluster), print them, write nothing")
    ap.add_argument("--no-write", action="store_true", help="print only, write no results file")
    ap.add_argument("--server-arg", action="append", default=[], help="extra executord argument (repeatable)")
    args = ap.parse_args()
    args.passed = sys.argv[1:]
    binary = Path(args.bin).resolve() if args.bin else bench.build(Path(args.build_dir))
    if not bench.knows_flag(binary, "--store"):
        raise SystemExit(f"{binary} has no --store: it predates issue 15, nothing to measure")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    m = bench.machine()
    with tempfile.TemporaryDirectory(prefix="exd-replbench-") as tmp:
        os.chmod(tmp, 0o755)  # the cluster's owner (postgres) must reach its folder
        token_file = Path(tmp) / "api-token"
        token_file.write_text(os.urandom(32).hex() + "\n")
        os.chmod(token_file, 0o600)
        cluster = Cluster(args.store, Path(tmp) / "pg", not args.pg_fast)
        try:
            pg_desc = cluster.describe()
            load_before = load()
            bench.log(f"== PostgreSQL: {pg_desc}")
            stmts = None
            if args.count_jobs > 0:
                bench.log(f"== statements per trivial job ({args.count_jobs} jobs, one replica, log_statement = all)")
                stmts = statements(binary, args, token_file, cluster)
            if args.statements_only:
                return 0
            bench.log("== per-job overhead: SQLite vs PostgreSQL, one replica each, interleaved")
            lat = overhead(binary, args, token_file, cluster.url)
            bench.log(f"== throughput: 1 replica vs 3, {args.jobs} jobs of time.sleep({args.sleep:g}) per burst")
            one, three, spread = throughput(binary, args, token_file, cluster.url)
            report(args, m, pg_desc, lat, one, three, spread, load_before, load(), stmts)
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
