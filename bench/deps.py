#!/usr/bin/env python3
"""executord's dependencies row (issue 14): what a job with `dependencies` costs on a cache
hit, per backend, against the same job without them, interleaved in the same run. The
issue's target: p50 with dependencies at most 1.5x p50 without, `pool` included.

Owns only the benchmark's run: a wheelhouse written by the dependencies suite's package
kit (tests/deps/kit.py) in a temporary folder, given to executord as --pip-find-links (so
nothing is fetched from anywhere and no network namespace is needed), one install per
backend before timing (a cache miss, then checked to be a hit), the figures. Standard
library only; the server wrapper and the machine description come from bench.py. See
bench/README.md."""

import argparse
import datetime
import http.client
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "deps"))
import bench  # noqa: E402  (Server, build, machine, percentile, knows_flag)
import kit  # noqa: E402  (the package kit of tests/deps)

REPO = bench.REPO
TARGET = 1.5  # issue 14: on a cache hit, p50 with dependencies <= 1.5x p50 without
DEPENDENCIES = ["alpha==1.0", "beta==1.0", "gamma==1.0"]
TRIVIAL = bench.TRIVIAL
IMPORTING = "import alpha, beta, gamma\ndef main():\n    return 1\n"


class DepsJob:
    """One figure: a script on a backend, with or without the dependencies, on a
    keep-alive connection; submit() returns seconds and checks the answer."""

    def __init__(self, server, backend, kind, with_deps):
        self.server, self.backend, self.kind, self.with_deps = server, backend, kind, with_deps
        self.name = figure_name(backend, kind, with_deps)
        # Without the packages the importing script cannot run: its "without" figure is
        # the trivial script.
        body = {"script": IMPORTING if kind == "importing" and with_deps else TRIVIAL, "backend": backend}
        if with_deps:
            body["dependencies"] = DEPENDENCIES
        self.body = json.dumps(body).encode()
        self.conn = None

    def submit(self, want_hit=True):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=300)
        t0 = time.perf_counter()
        self.conn.request("POST", "/v1/jobs?wait=300", body=self.body,
                          headers={"Content-Type": "application/json", **self.server.headers()})
        r = self.conn.getresponse()
        data = r.read()
        dt = time.perf_counter() - t0
        doc = json.loads(data)
        ok = r.status in (200, 201) and doc.get("status") == "succeeded" and doc.get("result") == 1
        if ok and self.with_deps and want_hit:
            ok = (doc.get("install") or {}).get("cache_hit") is True
        if not ok:
            raise SystemExit(f"{self.name}: unexpected answer {r.status}: {data[:800]!r}")
        return dt, doc

    def close(self):
        if self.conn:
            self.conn.close()


def figure_name(backend, kind, with_deps):
    return f"{backend} {kind} {'deps' if with_deps else 'no-deps'}"


def wheelhouse(folder):
    house = kit.Wheelhouse(folder)
    house.add_wheel("alpha", "1.0")
    house.add_wheel("beta", "1.0")
    house.add_wheel("gamma", "1.0", requires=["alpha"])
    os.chmod(folder, 0o755)
    return house


def measure(jobs, rounds, per_round):
    """Every figure once per step, in a new random order each step (see network.py)."""
    samples = {j.name: [] for j in jobs}
    for rnd in range(rounds):
        for _ in range(per_round):
            order = list(jobs)
            random.shuffle(order)
            for j in order:
                samples[j.name].append(j.submit()[0])
        bench.log(f"   round {rnd + 1}/{rounds}: " + ", ".join(
            f"{j.name} {statistics.median(samples[j.name][-per_round:]) * 1000:.1f}" for j in jobs))
    return samples


def report(args, backends, samples, installs):
    ms = lambda s: "%.1f" % (s * 1000)  # noqa: E731
    m = bench.machine()
    n = args.rounds * args.per_round
    lines = [f"{args.rounds} rounds x {args.per_round} steps; each step submits every figure once, in a new random "
             f"order (`POST /v1/jobs?wait=300`, concurrency 1, keep-alive; a sample is request sent .. answer read). "
             f"{n} samples per figure. Dependencies: `{json.dumps(DEPENDENCIES)}` from a find-links wheelhouse, "
             f"installed once per backend before timing; every timed job with them must report "
             f"`install.cache_hit: true`. \"paired\" = median over steps of (with / without) within the same step. "
             f"Target (issue 14): p50 with dependencies at most {TARGET}x p50 without, same backend, same run.", "",
             "| backend | job | without p50 / p90 ms | with dependencies p50 / p90 ms | p50 ratio | paired ratio | within 1.5x |",
             "|---|---|---:|---:|---:|---:|---|"]
    verdicts = []
    for b in backends:
        for kind in ("trivial", "importing"):
            off = samples[figure_name(b, kind, False)]
            on = samples[figure_name(b, kind, True)]
            ratio = statistics.median(on) / statistics.median(off)
            paired = statistics.median(a / c for a, c in zip(on, off))
            within = ratio <= TARGET
            if kind == "trivial":
                verdicts.append((b, ratio, within))
            desc = "trivial (`return 1`)" if kind == "trivial" else "imports the three packages, `return 1`"
            lines.append(f"| `{b}` | {desc} | {ms(statistics.median(off))} / {ms(bench.percentile(off, 90))} | "
                         f"{ms(statistics.median(on))} / {ms(bench.percentile(on, 90))} | {ratio:.2f}x | "
                         f"{paired:.2f}x | {'**yes**' if within else '**NO**'} |")
    lines += ["", "The importing job's \"without\" column is the trivial job (without the packages its imports "
              "cannot succeed): its ratio is what importing three small packages from `/deps` adds on top."]
    lines += ["", "First install per backend (the cache miss, not timed above): " +
              ", ".join(f"`{b}` {ms(t)} ms (environment {env[:12]}…)" for b, (t, env) in installs.items()) + "."]
    table = "\n".join(lines)
    machine_md = "\n".join([
        "| | |", "|---|---|",
        f"| kernel | {m['kernel']} |",
        f"| CPU | {m['cores']} x {m['cpu']} |",
        f"| memory | {m['memory']} |",
        f"| cgroup | {m['cgroup']} |",
        f"| Python | {m['python']} |",
        f"| date | {m['date']} |"])
    print()
    print(machine_md)
    print()
    print(table)
    for b, ratio, within in verdicts:
        bench.log(f"== {b}: a trivial job with dependencies (cache hit) takes {ratio:.2f}x the job without "
                  f"({'within' if within else 'OVER'} the {TARGET}x target)")
    if not args.no_write:
        out = REPO / "bench" / "results" / f"{datetime.date.today().isoformat()}-deps.md"
        cmd = "bench/run.sh --deps " + " ".join(args.passed)
        out.write_text(f"# executord benchmark: a job with `dependencies` on a cache hit, {m['date']}\n\n"
                       f"Command: `{cmd.strip()}` (as root: the sandboxes need it).\n\n## Machine\n\n{machine_md}\n\n"
                       f"## Figures\n\n{table}\n")
        bench.log(f"== written to {out.relative_to(REPO)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="executord binary (default: build it in --build-dir)")
    ap.add_argument("--build-dir", default=str(REPO / "build"), help="cmake build folder (default build/)")
    ap.add_argument("--backends", default="ephemeral,pool", help="comma list (default ephemeral,pool)")
    ap.add_argument("--rounds", type=int, default=8, help="rounds (default 8)")
    ap.add_argument("--per-round", type=int, default=10, help="steps per round, each one sample per figure (default 10)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up samples per figure (default 3)")
    ap.add_argument("--workers", type=int, default=0, help="executord --workers (default: its own default)")
    ap.add_argument("--no-write", action="store_true", help="print only, write no results file")
    ap.add_argument("--server-arg", action="append", default=[], help="extra executord argument (repeatable)")
    args = ap.parse_args()
    args.passed = sys.argv[1:]
    backends = [b for b in args.backends.split(",") if b]
    binary = Path(args.bin).resolve() if args.bin else bench.build(Path(args.build_dir))
    if not bench.knows_flag(binary, "--pip-find-links"):
        raise SystemExit(f"{binary} has no --pip-find-links: it predates issue 14, nothing to measure")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="exd-depsbench-") as tmp:
        house = wheelhouse(Path(tmp) / "wheelhouse")
        server = bench.Server(binary, args.workers, ["--backends", ",".join(backends),
                                                     "--pip-find-links", str(house.root)] + args.server_arg)
        jobs = []
        try:
            jobs = [DepsJob(server, b, kind, d) for b in backends for kind in ("trivial", "importing")
                    for d in (False, True)]
            installs = {}
            for j in jobs:
                if not j.with_deps:
                    continue
                if j.kind == "trivial":  # the first job with the set on this backend
                    dt, doc = j.submit(want_hit=False)
                    inst = doc.get("install") or {}
                    bench.log(f"== {j.backend}: first job with dependencies {dt * 1000:.0f} ms, install {inst}")
                    installs.setdefault(j.backend, (dt, inst.get("environment", "?")))
            bench.log("== warm-up")
            for _ in range(args.warmup):
                for j in jobs:
                    j.submit()
            samples = measure(jobs, args.rounds, args.per_round)
            report(args, backends, samples, installs)
        finally:
            for j in jobs:
                j.close()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
