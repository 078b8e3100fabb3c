#!/usr/bin/env python3
"""executord's benchmark: end-to-end latency and throughput of a trivial job per backend,
beside a bare `python3 -I -c pass` start measured in the same run.

Builds if needed, starts the real executord on a free port with a temporary data folder,
interleaves the measurements (bare, backend, backend, bare, ...) so that the noise of a
shared machine hits every figure alike, prints a Markdown table and writes it with the
machine's description to bench/results/<date>-<host-kind>.md. Standard library only.
See bench/README.md for what each figure means."""

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRIVIAL = "def main():\n    return 1\n"
BACKEND_ORDER = ["direct", "ephemeral", "pool"]


# ---- small helpers -----------------------------------------------------------------


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def build(build_dir):
    binary = build_dir / "executord"
    log(f"== build ({build_dir})")
    if not (build_dir / "CMakeCache.txt").exists():
        subprocess.run(["cmake", "-S", str(REPO), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
                       check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build_dir), "-j", str(os.cpu_count() or 2), "--target", "executord"],
                   check=True, stdout=subprocess.DEVNULL)
    return binary


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


# ---- the machine --------------------------------------------------------------------


def cgroup_version():
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "v2"
    try:
        unified = Path("/sys/fs/cgroup/unified/cgroup.controllers").read_text().split()
    except OSError:
        unified = []
    if os.path.isdir("/sys/fs/cgroup/memory"):
        return "v1 (hybrid, v2 controllers: %s)" % (" ".join(unified) or "none")
    return "none"


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "kernel": platform.release(),
        "cpu": cpu,
        "cores": os.cpu_count() or 1,
        "memory": "%.1f GiB" % (mem_kb / 1048576.0),
        "cgroup": cgroup_version(),
        "python": subprocess.run(["/usr/bin/python3", "--version"], capture_output=True, text=True).stdout.strip(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# ---- executord ----------------------------------------------------------------------


def knows_flag(binary, flag):
    """Whether `binary --help` lists `flag` (a --compare binary may predate it)."""
    try:
        out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return re.search(rf"^\s*{re.escape(flag)}\b", out, re.M) is not None


class Server:
    """executord with its default authentication: the token it generates in its data
    folder (or the --api-token-file given with --server-arg) is read after start and sent
    with every request. The benchmark measures `direct` too, which is an opt-in."""

    def __init__(self, binary, workers, extra_args):
        self.data = tempfile.mkdtemp(prefix="executord-bench-")
        self.stderr = open(os.path.join(self.data, "stderr.log"), "w+b")
        data_dir = os.path.join(self.data, "data")
        args = [str(binary), "--listen", "127.0.0.1:0", "--data-dir", data_dir]
        if workers:
            args += ["--workers", str(workers)]
        if not any(a.startswith("--backends") for a in extra_args) and knows_flag(binary, "--backends"):
            args += ["--backends", ",".join(BACKEND_ORDER)]
        args += extra_args
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.port = self._wait_port()
        self.token = self._token(extra_args, data_dir)

    @staticmethod
    def _token(extra_args, data_dir):
        """The token to send: --api-token-file's, else the generated one; None when the
        binary serves without one (--insecure-no-auth, or a binary older than tokens)."""
        path = os.path.join(data_dir, "api-token")
        for i, a in enumerate(extra_args):
            if a.startswith("--api-token-file="):
                path = a.split("=", 1)[1]
            elif a == "--api-token-file" and i + 1 < len(extra_args):
                path = extra_args[i + 1]
        try:
            with open(path) as f:
                return f.read().strip() or None
        except FileNotFoundError:
            return None

    def headers(self):
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _wait_port(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("executord exited at start:\n" + self.log())
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.log())
            if m:
                return int(m.group(1))
            time.sleep(0.02)
        raise SystemExit("executord did not report its port within 30 s:\n" + self.log())

    def log(self):
        self.stderr.flush()
        with open(self.stderr.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request("GET", path, headers=self.headers())
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                raise SystemExit(f"GET {path}: HTTP {r.status}: {body[:400]!r}")
            return r.status, json.loads(body or b"null")
        finally:
            c.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        shutil.rmtree(self.data, ignore_errors=True)


class JobClient:
    """One keep-alive connection; submit() runs the trivial job and returns seconds."""

    def __init__(self, server, backend):
        self.port, self.backend = server.port, backend
        self.headers = {"Content-Type": "application/json", **server.headers()}
        self.body = json.dumps({"script": TRIVIAL, "backend": backend}).encode()
        self.conn = None

    def submit(self):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            t0 = time.perf_counter()
            try:
                self.conn.request("POST", "/v1/jobs?wait=30", body=self.body, headers=self.headers)
                r = self.conn.getresponse()
                data = r.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            dt = time.perf_counter() - t0
            if r.status == 429:  # queue full: not a latency sample, back off and retry
                time.sleep(0.05)
                return None
            doc = json.loads(data)
            if r.status not in (200, 201) or doc.get("status") != "succeeded" or doc.get("result") != 1:
                raise RuntimeError(f"{self.backend}: unexpected answer {r.status}: {data[:400]!r}")
            return dt
        return None

    def close(self):
        if self.conn:
            self.conn.close()


# ---- measurements -------------------------------------------------------------------


def bare_once(python):
    t0 = time.perf_counter()
    subprocess.run([python, "-I", "-c", "pass"], check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t0


def latency_samples(fn, n):
    out = []
    for _ in range(n):
        v = fn()
        if v is not None:
            out.append(v)
    return out


def rate(make_worker, concurrency, seconds):
    """Completed operations per second over `seconds` with `concurrency` threads."""
    stop = threading.Event()
    counts = [0] * concurrency
    errors = []

    def loop(i):
        try:
            op, close = make_worker()
            try:
                while not stop.is_set():
                    if op() is not None:
                        counts[i] += 1
            finally:
                close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
            stop.set()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    base = sum(counts)  # operations finished within the window
    elapsed = time.perf_counter() - t0
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return base / elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="executord binary (default: build it in --build-dir)")
    ap.add_argument("--build-dir", default=str(REPO / "build"), help="cmake build folder (default build/)")
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter for the bare start")
    ap.add_argument("--backends", help="comma list (default: every available one of direct, ephemeral, pool)")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds (default 6)")
    ap.add_argument("--per-round", type=int, default=15, help="latency samples per figure per round (default 15)")
    ap.add_argument("--rate-seconds", type=float, default=2.0, help="length of each throughput window (default 2)")
    ap.add_argument("--concurrency", type=int, default=0, help="throughput concurrency (default 2x CPUs)")
    ap.add_argument("--workers", type=int, default=0, help="executord --workers (default: its own default)")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up runs per figure (default 5)")
    ap.add_argument("--host-kind", help="name part of the results file (default <cores>cpu-cgroup<ver>)")
    ap.add_argument("--no-write", action="store_true", help="print only, write no results file")
    ap.add_argument("--server-arg", action="append", default=[], help="extra executord argument (repeatable)")
    ap.add_argument("--compare", action="append", default=[], metavar="LABEL=BINARY",
                    help="also measure another executord binary (e.g. before=/tmp/old/executord), "
                         "interleaved with the main one; its rows are labelled (repeatable)")
    args = ap.parse_args()

    binary = Path(args.bin) if args.bin else build(Path(args.build_dir))
    cores = os.cpu_count() or 1
    conc = args.concurrency or 2 * cores
    m = machine()
    servers = [("", Server(binary, args.workers, args.server_arg))]
    try:
        for spec in args.compare:
            label, _, path = spec.partition("=")
            if not path:
                raise SystemExit(f"--compare wants LABEL=BINARY, got {spec!r}")
            servers.append((label, Server(Path(path), args.workers, args.server_arg)))
        return run(args, servers, m, conc)
    finally:
        for _, srv in servers:
            srv.stop()


def run(args, servers, m, conc):
    time.sleep(0.5)
    server = servers[0][1]
    rss_idle = rss_kb(server.proc.pid)
    _, doc = server.get("/v1/backends")
    available = [b["name"] for b in doc.get("backends", []) if b.get("available")]
    wanted = args.backends.split(",") if args.backends else BACKEND_ORDER
    backends = [b for b in wanted if b in available]
    skipped = {b["name"]: b.get("reason") for b in doc.get("backends", []) if b["name"] in wanted and b["name"] not in backends}
    log(f"== backends measured: {', '.join(backends)}" + (f"; skipped: {skipped}" if skipped else ""))
    python = args.python

    # A figure is one backend of one server; compared binaries get labelled names.
    figures = []
    for label, srv in servers:
        if label:  # a compared binary: only what it offers too
            _, other = srv.get("/v1/backends")
            offered = {x["name"] for x in other.get("backends", []) if x.get("available")}
        for b in backends:
            if not label or b in offered:
                figures.append((f"{b} ({label})" if label else b, b, srv))
    names = [f[0] for f in figures]
    clients = {name: JobClient(srv, b) for name, b, srv in figures}
    log("== warm-up")
    for _ in range(args.warmup):
        bare_once(python)
        for name in names:
            clients[name].submit()

    lat = {k: [] for k in ["bare"] + names}
    ratios = {n: [] for n in names}
    rates = {k: [] for k in ["bare"] + names}
    rate_ratios = {n: [] for n in names}
    t_start = time.monotonic()
    for rnd in range(args.rounds):
        # Latency at concurrency 1: bare before and between the figures, so a figure's
        # round ratio is taken against bare samples from the same moment.
        round_bare = latency_samples(lambda: bare_once(python), args.per_round)
        round_lat = {}
        for name in names:
            round_lat[name] = latency_samples(clients[name].submit, args.per_round)
            round_bare += latency_samples(lambda: bare_once(python), max(1, args.per_round // len(names)))
        lat["bare"] += round_bare
        bare_p50 = statistics.median(round_bare)
        for name in names:
            lat[name] += round_lat[name]
            ratios[name].append(statistics.median(round_lat[name]) / bare_p50)
        # Throughput at `conc`: bare, each figure, bare again.
        r_bare = [rate(lambda: (lambda: bare_once(python), lambda: None), conc, args.rate_seconds)]
        for name, b, srv in figures:
            def worker(b=b, srv=srv):
                c = JobClient(srv, b)
                return c.submit, c.close
            rates[name].append(rate(worker, conc, args.rate_seconds))
        r_bare.append(rate(lambda: (lambda: bare_once(python), lambda: None), conc, args.rate_seconds))
        rb = statistics.mean(r_bare)
        rates["bare"].append(rb)
        for name in names:
            rate_ratios[name].append(rates[name][-1] / rb)
        log(f"   round {rnd + 1}/{args.rounds}: bare p50 {bare_p50 * 1000:.1f} ms, "
            + ", ".join(f"{n} {statistics.median(round_lat[n]) * 1000:.1f} ms ({ratios[n][-1]:.2f}x) "
                        f"{rates[n][-1]:.1f}/s" for n in names)
            + f"; bare {rb:.1f}/s")
    elapsed = time.monotonic() - t_start
    rss_after = rss_kb(server.proc.pid)
    for c in clients.values():
        c.close()
    backends = names

    ms = lambda s: "%.1f" % (s * 1000)  # noqa: E731
    lines = []
    lines.append(f"Trivial job (`def main(): return 1`, POST /v1/jobs?wait=30, answer received) versus a bare "
                 f"`{python} -I -c pass` start; {args.rounds} interleaved rounds, {args.per_round} latency samples per "
                 f"figure per round at concurrency 1, throughput over {args.rate_seconds:g} s windows at concurrency "
                 f"{conc} (2x CPUs). Ratios are the median over rounds of the per-round ratio.")
    lines.append("")
    lines.append(f"| figure | p50 ms | p99 ms | p50 ratio to bare | throughput /s at {conc} | throughput ratio to bare |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    lines.append(f"| bare `python3 -I -c pass` | {ms(statistics.median(lat['bare']))} | {ms(percentile(lat['bare'], 99))} "
                 f"| 1.00x | {statistics.median(rates['bare']):.1f} | 1.00x |")
    for b in backends:
        lines.append(f"| `{b}` | {ms(statistics.median(lat[b]))} | {ms(percentile(lat[b], 99))} | "
                     f"{statistics.median(ratios[b]):.2f}x | {statistics.median(rates[b]):.1f} | "
                     f"{statistics.median(rate_ratios[b]):.2f}x |")
    for b, why in skipped.items():
        lines.append(f"| `{b}` | – | – | – | – | – (unavailable: {why}) |")
    lines.append("")
    lines.append(f"executord RSS: {rss_idle / 1024:.1f} MiB idle, {rss_after / 1024:.1f} MiB after the run "
                 f"(VmRSS; workers: {args.workers or 'default'}). Measuring took {elapsed:.0f} s.")
    table = "\n".join(lines)
    machine_md = (f"Machine: kernel {m['kernel']}, {m['cpu']}, {m['cores']} cores, {m['memory']} memory, "
                  f"cgroup {m['cgroup']}, {m['python']}; {m['date']}.")
    print()
    print(machine_md)
    print()
    print(table)
    if not args.no_write:
        kind = args.host_kind or f"{m['cores']}cpu-cgroup{m['cgroup'].split()[0]}"
        out = REPO / "bench" / "results" / f"{datetime.date.today().isoformat()}-{kind}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = "python3 bench/bench.py " + " ".join(sys.argv[1:])
        out.write_text(f"# executord benchmark, {m['date']}\n\n{machine_md}\n\nCommand: `{cmd.strip()}`\n\n{table}\n")
        log(f"== written to {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
