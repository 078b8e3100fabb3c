#!/usr/bin/env python3
"""Two executord builds on PostgreSQL, and SQLite, in one run: the per-job overhead of
the PostgreSQL store before and after a change, measured side by side so that a shared,
noisy machine moves all three alike. Each replica (pool backend, --workers 2) has its own
database in one throw-away cluster (tests/pg/cluster.sh: a unix socket, nothing on the
network), durable unless FAST=1. Each step posts the trivial job (POST /v1/jobs?wait=30)
to the three in a new random order; prints p50/p95/p99, each store's PostgreSQL - SQLite
and after - before, paired within steps.

    python3 bench/replicas_ab.py OLD_BINARY NEW_BINARY [ROUNDS [STEPS]]   # as root
"""
import json, os, random, statistics, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench, replicas
old, new = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 12
per = int(sys.argv[4]) if len(sys.argv) > 4 else 25


class A:
    workers = 2
    server_arg = []


with tempfile.TemporaryDirectory(prefix="exd-ab-") as tmp:
    os.chmod(tmp, 0o755)
    tok = Path(tmp) / "tok"; tok.write_text(os.urandom(32).hex() + "\n"); os.chmod(tok, 0o600)
    cl = replicas.Cluster(None, Path(tmp) / "pg", os.environ.get("FAST") != "1")
    try:
        replicas.psql(cl.url, "CREATE DATABASE executord2")
        url2 = cl.url.replace("/executord?", "/executord2?")
        servers = {"SQLite": replicas.start_replica(new, A, tok, []),
                   "PG before": replicas.start_replica(old, A, tok, ["--store", cl.url], "ab-old"),
                   "PG after": replicas.start_replica(new, A, tok, ["--store", url2], "ab-new")}
        clients = {k: replicas.Client(v) for k, v in servers.items()}
        body = json.dumps({"script": replicas.TRIVIAL, "backend": "pool"}).encode()
        samples = {k: [] for k in clients}
        def one(k):
            t0 = time.perf_counter(); st, d = clients[k].call("POST", "/v1/jobs?wait=30", body)
            dt = time.perf_counter() - t0; replicas.finished_ok(st, d, k); return dt
        for _ in range(10):
            for k in clients: one(k)
        for r in range(rounds):
            for _ in range(per):
                order = list(clients); random.shuffle(order)
                for k in order: samples[k].append(one(k))
            print(f"round {r+1}: " + ", ".join(f"{k} {statistics.median(samples[k][-per:])*1000:.2f}" for k in clients), flush=True)
        for c in clients.values(): c.close()
        for s in servers.values(): s.stop()
        for k, v in samples.items():
            print(f"| {k} | {statistics.median(v)*1000:.2f} | {bench.percentile(v,95)*1000:.2f} | {bench.percentile(v,99)*1000:.2f} |")
        sq = samples["SQLite"]
        for k in ("PG before", "PG after"):
            paired = statistics.median(b - a for a, b in zip(sq, samples[k])) * 1000
            print(f"{k} - SQLite: p50 {(statistics.median(samples[k]) - statistics.median(sq))*1000:+.2f} ms, paired {paired:+.2f} ms")
        paired = statistics.median(b - a for a, b in zip(samples["PG before"], samples["PG after"])) * 1000
        print(f"after - before paired: {paired:+.2f} ms; load {open('/proc/loadavg').read().split()[:3]}")
    finally:
        cl.stop()
