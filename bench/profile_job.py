#!/usr/bin/env python3
"""Where a trivial job's time goes, per backend (issue 16, "profile first").

Starts executord exactly as bench/bench.py does (default flags, SQLite store, temporary data
folder, --backends direct,ephemeral,pool), once per instrument so that no instrument
distorts another's figures:
  plain       latency and CPU per job (executord + every descendant, from /proc) at
              concurrency 1 and at saturation (2x CPUs clients);
  strace -f   a timeline of one job at a time (selected system calls, paths resolved),
              cut into steps (HTTP, SQLite commits, cgroups, namespaces, fork, Python, teardown);
  perf trace  -s: system-call time per call over the concurrency-1 window (no ptrace);
  perf record -g -e cpu-clock: where CPU goes (user vs kernel, by process and symbol).
Writes bench/results/<date>-profile.md (--no-write: print only); the raw strace files and
perf.data stay in /tmp/exd-prof-* (printed) for a closer look. Standard library only."""

import argparse
import collections
import datetime
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  - the same Server, JobClient and machine description

REPO = bench.REPO
TICK = os.sysconf("SC_CLK_TCK")


# ---- executord under an instrument ----------------------------------------------------


class Wrapped(bench.Server):
    """bench.Server, started under `prefix` (strace, perf): executord is then the prefix's
    child; stop() sends SIGTERM to executord itself so the instrument ends with it."""

    def __init__(self, binary, prefix, extra_args=()):
        self.prefix = list(prefix)
        real_popen = subprocess.Popen

        def popen(args, **kw):
            return real_popen(self.prefix + list(args), **kw)

        subprocess.Popen = popen
        try:
            super().__init__(binary, 0, list(extra_args))
        finally:
            subprocess.Popen = real_popen
        self.pid = self._executord_pid()

    def _executord_pid(self):
        if not self.prefix:
            return self.proc.pid
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for pid in descendants(self.proc.pid):
                if comm(pid) == "executord":
                    return pid
            time.sleep(0.02)
        raise SystemExit("executord not found under " + " ".join(self.prefix))

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        shutil.rmtree(self.data, ignore_errors=True)


# ---- /proc: CPU of executord and all its descendants ------------------------------------


def comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def children_map():
    kids = collections.defaultdict(list)
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            ppid = int(st.rsplit(")", 1)[1].split()[1])
            kids[ppid].append(int(d))
    return kids


def descendants(root):
    kids, out, todo = children_map(), [], [root]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def tree_cpu(root):
    """(user, system) seconds of root and every living descendant, each with its reaped
    children (cutime/cstime): a process that ended inside the tree is counted by its reaper.
    Compare two readings: the difference is what the tree spent in between."""
    user = sys_ = 0
    for pid in [root] + descendants(root):
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields after ")": state=0 ... utime=11 stime=12 cutime=13 cstime=14
        user += int(f[11]) + int(f[13])
        sys_ += int(f[12]) + int(f[14])
    return user / TICK, sys_ / TICK


# ---- load ------------------------------------------------------------------------------


def jobs_c1(srv, backend, n, gap=0.0, marks=None):
    """n jobs one after another; returns latencies (s). marks collects (t_send, t_answer)
    in wall-clock time, for cutting an strace timeline."""
    cl = bench.JobClient(srv, backend)
    out = []
    try:
        while len(out) < n:
            t0 = time.time()
            dt = cl.submit()
            if dt is None:
                continue
            out.append(dt)
            if marks is not None:
                marks.append((t0, time.time()))
            if gap:
                time.sleep(gap)
    finally:
        cl.close()
    return out


def jobs_saturated(srv, backend, conc, seconds):
    """conc clients back to back for `seconds`; returns (jobs finished, elapsed s)."""
    stop, counts, errors = threading.Event(), [0] * conc, []

    def loop(i):
        cl = bench.JobClient(srv, backend)
        try:
            while not stop.is_set():
                if cl.submit() is not None:
                    counts[i] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            cl.close()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(conc)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(counts), time.perf_counter() - t0


def load_window(srv, backend, mode, args, marks=None):
    """Runs the mode's load and returns (jobs, elapsed s, latencies or None)."""
    if mode == "c1":
        t0 = time.perf_counter()
        lat = jobs_c1(srv, backend, args.jobs, args.gap if marks is not None else 0.0, marks)
        return len(lat), time.perf_counter() - t0, lat
    n, el = jobs_saturated(srv, backend, args.concurrency, args.seconds)
    return n, el, None


# ---- strace timeline: one job at a time, cut into steps ----------------------------------

# Only these calls stop the process (--seccomp-bpf): file-heavy calls (openat, read, close)
# are left out so that the Python start is not inflated by hundreds of ptrace stops.
STRACE_CALLS = ("fdatasync,fsync,pwrite64,mkdir,rmdir,clone,clone3,execve,wait4,write,"
                "recvfrom,sendto,sendmsg,exit_group,pidfd_send_signal,kill")
LINE = re.compile(r"^(\d+)\s+(\d+\.\d+) (?:<\.\.\. (\w+) resumed>(.*)|(\w+)\((.*))$")
DUR = re.compile(r"<(\d+\.\d+)>$")


def parse_strace(path):
    """Events {pid, ts, name, text, dur}; an <unfinished ...> call is joined with its
    resumption (ts of the start, duration of the whole call)."""
    events, pending = [], {}
    with open(path, errors="replace") as f:
        for raw in f:
            m = LINE.match(raw.rstrip("\n"))
            if not m:
                continue
            pid, ts = int(m.group(1)), float(m.group(2))
            if m.group(3):  # resumed
                ev = pending.pop(pid, None)
                if ev and ev["name"] == m.group(3):
                    ev["text"] += m.group(4)
                    d = DUR.search(m.group(4))
                    ev["dur"] = float(d.group(1)) if d else 0.0
                continue
            name, text = m.group(5), m.group(6)
            ev = {"pid": pid, "ts": ts, "name": name, "text": text, "dur": 0.0}
            events.append(ev)
            if text.endswith("<unfinished ...>"):
                pending[pid] = ev
            else:
                d = DUR.search(text)
                ev["dur"] = float(d.group(1)) if d else 0.0
    return events


def first(evs, pred, after=0.0):
    for e in evs:
        if e["ts"] >= after and pred(e):
            return e
    return None


def commits(evs):
    """SQLite commits: the WAL appends (pwrite64 to *-wal) of one thread up to its
    fdatasync. Returns [(start, end, fdatasync seconds)]."""
    out, start = [], {}
    for e in evs:
        if "-wal>" not in e["text"][:200]:
            continue
        if e["name"] == "pwrite64":
            start.setdefault(e["pid"], e["ts"])
        elif e["name"] in ("fdatasync", "fsync"):
            out.append((start.pop(e["pid"], e["ts"]), e["ts"] + e["dur"], e["dur"]))
    return out


def cg(e):
    return "/sys/fs/cgroup/" in e["text"][:300]


def sum_dur(evs, pred):
    return sum(e["dur"] for e in evs if pred(e))


def markers(evs):
    """The job's landmarks (see "How a job is cut" in the report), or None if one is missing."""
    req = first(evs, lambda e: e["name"] == "recvfrom" and "POST /v1/jobs" in e["text"])
    if not req:
        return None
    t = req["ts"]
    mk = {"req": t,
          "ans": first(evs, lambda e: e["name"] in ("sendmsg", "sendto") and "HTTP/1.1 20" in e["text"], t),
          "spec": first(evs, lambda e: e["name"] == "sendto" and '{\\"script\\"' in e["text"], t),
          "result": first(evs, lambda e: e["name"] == "write" and '{\\"ok\\"' in e["text"], t)}
    cs = [c for c in commits(evs) if c[0] >= t]
    if not (mk["ans"] and mk["spec"] and mk["result"] and len(cs) >= 3):
        return None
    mk.update({k: mk[k]["ts"] for k in ("ans", "spec", "result")})
    c3 = [c for c in cs if c[0] >= mk["result"] and c[1] <= mk["ans"]]
    if not c3:
        return None
    mk["commits"] = [cs[0], cs[1], c3[0]]
    ex = first(evs, lambda e: e["name"] == "execve" and "python" in e["text"][:80], mk["spec"])
    mk["execve"] = ex["ts"] if ex else None
    # pool: the warm sandbox's init reports the job's exit on its socket ("X ...")
    x = first(evs, lambda e: e["name"] == "recvfrom" and '"X ' in e["text"], mk["result"])
    mk["exit_report"] = x["ts"] if x and x["ts"] < mk["commits"][2][0] else None
    return mk


def is_refill(e, backend):
    """The pool refills in the background: the next warm sandbox's cgroups (mkdir, attach)
    and the zygote's clone happen in the job's window but off its path."""
    if backend != "pool":
        return False
    if e["name"] == "mkdir" or (e["name"] == "write" and "cgroup.procs>" in e["text"][:300]):
        return True
    return e["name"].startswith("clone") and "CLONE_NEWUSER" in e["text"]


def spans_of(mk, teardown_end):
    """(label, start, end) of the job's path, in order; indented labels split the one above."""
    (c1s, c1e, _), (c2s, c2e, _), (c3s, c3e, _) = mk["commits"]
    req, ans, spec, result = mk["req"], mk["ans"], mk["spec"], mk["result"]
    spans = [("server: request read .. answer sent", req, ans),
             ("HTTP request read .. insert commit starts (parse, validate, auth)", req, c1s),
             ("SQLite commit 1, insert (WAL appends + fdatasync)", c1s, c1e),
             ("worker hand-off (commit 1 end .. commit 2 start)", c1e, c2s),
             ("SQLite commit 2, claim", c2s, c2e),
             ("sandbox ready: commit 2 end .. spec sent to the sandbox", c2e, spec),
             ("job: spec sent .. result written by the runner", spec, result)]
    if mk["execve"]:
        spans += [("  spec sent .. execve(python) (runner fork, its rlimits, capabilities, filter)", spec, mk["execve"]),
                  ("  execve(python) .. result (Python start + job)", mk["execve"], result)]
    spans += [("result .. commit 3 starts (usage; teardown when before the answer)", result, c3s)]
    if mk["exit_report"]:
        spans += [("  result .. the sandbox's exit report received", result, mk["exit_report"]),
                  ("  exit report .. commit 3 starts (usage reads)", mk["exit_report"], c3s)]
    return spans + [("SQLite commit 3, finish", c3s, c3e),
                    ("commit 3 end .. HTTP answer sent", c3e, ans),
                    ("after the answer: teardown (kill, freezer, rmdir) until its last call", ans, teardown_end)]


def call_rows(mk, job, refill):
    """Kernel-side durations (s) of the calls that make up the steps (strace -T)."""
    ans = mk["ans"]
    procs = lambda e: e["name"] == "write" and "cgroup.procs>" in e["text"][:300]  # noqa: E731
    rows = [(f"calls: fdatasync of commit {i}", c[2]) for i, c in enumerate(mk["commits"], 1)]
    return rows + [
        ("calls: cgroup mkdir (all hierarchies)", sum_dur(job, lambda e: e["name"] == "mkdir" and cg(e))),
        ("calls: cgroup limit writes", sum_dur(job, lambda e: e["name"] == "write" and cg(e) and not procs(e))),
        ("calls: cgroup attach, write cgroup.procs", sum_dur(job, procs)),
        ("calls: cgroup rmdir, before the answer",
         sum_dur(job, lambda e: e["name"] == "rmdir" and cg(e) and e["ts"] <= ans)),
        ("calls: cgroup rmdir, after the answer",
         sum_dur(job, lambda e: e["name"] == "rmdir" and cg(e) and e["ts"] > ans)),
        ("calls: clone with new namespaces (on the path)",
         sum_dur(job, lambda e: e["name"].startswith("clone") and "CLONE_NEWUSER" in e["text"])),
        ("calls: plain fork (clone without namespaces)",
         sum_dur(job, lambda e: e["name"].startswith("clone") and "CLONE_NEW" not in e["text"]
                 and "CLONE_VM" not in e["text"])),
        ("refill off the path: cgroup mkdir + attach", sum_dur(refill, cg)),
        ("refill off the path: zygote's clone into new namespaces", sum_dur(refill, lambda e: not cg(e)))]


def job_steps(evs, answer_by, backend):
    """{label: (ms, ptrace stops or None)} of one job from its events, or None if a marker
    is missing. Spans carry their stop count (for the correction); call rows carry None."""
    mk = markers(evs)
    if not mk:
        return None
    refill = [e for e in evs if is_refill(e, backend)]
    job = [e for e in evs if not is_refill(e, backend)]
    teardown_end = max([e["ts"] + e["dur"] for e in job if e["ts"] > mk["ans"]
                        and e["name"] in ("rmdir", "pidfd_send_signal", "kill")] or [mk["ans"]])
    s = collections.OrderedDict()
    s["client: request sent .. answer read"] = (answer_by * 1000.0, 0)
    for label, t0, t1 in spans_of(mk, teardown_end):
        # ptrace stops inside the span, on the job's path (the refill runs beside it)
        s[label] = ((t1 - t0) * 1000.0, sum(1 for e in job if t0 <= e["ts"] < t1))
    for label, sec in call_rows(mk, job, refill):
        s[label] = (sec * 1000.0, None)
    return s


def ptrace_stop_cost():
    """Seconds one traced system call costs under the same strace flags: 4000 one-byte
    writes to /dev/null with and without strace, in this run (the machine's load included)."""
    code = "import os,time\nfd=os.open('/dev/null',os.O_WRONLY)\nt=time.perf_counter()\n" \
           "for i in range(4000): os.write(fd,b'x')\nprint(time.perf_counter()-t)"
    base = ["/usr/bin/python3", "-c", code]
    traced = ["strace", "-f", "--seccomp-bpf", "-ttt", "-T", "-y", "-s", "64", "-qq", "-o", "/dev/null",
              "-e", "trace=" + STRACE_CALLS] + base
    runs = lambda cmd: statistics.median(float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
                                         for _ in range(5))
    return max(0.0, (runs(traced) - runs(base)) / 4000)


def strace_steps(binary, backend, args):
    out = os.path.join(tempfile.mkdtemp(prefix="exd-prof-"), "strace.txt")
    srv = Wrapped(binary, ["strace", "-f", "--seccomp-bpf", "-ttt", "-T", "-y", "-s", "64", "-qq",
                           "-o", out, "-e", "trace=" + STRACE_CALLS])
    marks = []
    try:
        jobs_c1(srv, backend, args.warmup, args.gap)
        jobs_c1(srv, backend, args.strace_jobs, args.gap, marks)
    finally:
        srv.stop()
    evs = parse_strace(out)
    rows = []
    for i, (t0, t1) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else t1 + args.gap
        s = job_steps([e for e in evs if t0 <= e["ts"] < end], t1 - t0, backend)
        if s:
            rows.append(s)
    log(f"   strace: {len(rows)} of {len(marks)} jobs cut into steps ({out})")
    return rows


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- plain: latency and CPU per job ----------------------------------------------------


def plain(binary, backend, args):
    """{mode: (jobs, elapsed, p50 ms or None, user ms/job, sys ms/job)} from /proc."""
    srv = Wrapped(binary, [])
    out = {}
    try:
        jobs_c1(srv, backend, args.warmup)
        for mode in ("c1", "sat"):
            u0, s0 = tree_cpu(srv.pid)
            n, el, lat = load_window(srv, backend, mode, args)
            u1, s1 = tree_cpu(srv.pid)
            p50 = statistics.median(lat) * 1000 if lat else None
            out[mode] = (n, el, p50, (u1 - u0) * 1000 / n, (s1 - s0) * 1000 / n)
    finally:
        srv.stop()
    return out


# ---- perf trace -s: system-call time per job ----------------------------------------------

# Calls in which a thread sleeps until there is work (event loops, worker queues, child
# exit, pipes): their time is idle waiting, mostly between jobs, not a cost of the job.
WAITS = {"futex", "epoll_wait", "epoll_pwait", "poll", "ppoll", "select", "pselect6", "wait4", "waitid",
         "rt_sigtimedwait", "clock_nanosleep", "nanosleep", "read", "recvmsg", "recvfrom", "accept4"}
SUMMARY = re.compile(r"^\s+(\w+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+[\d.]+")


def perf_trace_totals(binary, backend, jobs, args):
    """Per system call (calls, total ms) of executord and its children over a whole life
    with `jobs` concurrency-1 jobs (perf trace -s: no ptrace, durations from tracepoints)."""
    out = os.path.join(tempfile.mkdtemp(prefix="exd-prof-"), "trace.txt")
    srv = Wrapped(binary, ["perf", "trace", "-s", "-o", out])
    try:
        if jobs:
            jobs_c1(srv, backend, jobs)
        else:
            time.sleep(2.0)
    finally:
        srv.stop()
    tot = collections.defaultdict(lambda: [0, 0.0])
    with open(out, errors="replace") as f:
        for line in f:
            m = SUMMARY.match(line)
            if m and m.group(1) != "syscall":
                tot[m.group(1)][0] += int(m.group(2))
                tot[m.group(1)][1] += float(m.group(4))
    return tot


def perf_trace_per_job(binary, backend, args):
    """(B - A) / N: a life with N jobs minus a life with none (start-up, zygote, shutdown)."""
    a = perf_trace_totals(binary, backend, 0, args)
    b = perf_trace_totals(binary, backend, args.trace_jobs, args)
    n = args.trace_jobs
    rows = []
    for name in set(a) | set(b):
        calls = (b[name][0] - a[name][0]) / n
        ms = (b[name][1] - a[name][1]) / n
        rows.append((name, calls, ms))
    rows.sort(key=lambda r: -r[2])
    return [r for r in rows if r[0] not in WAITS], [r for r in rows if r[0] in WAITS]


# ---- perf record -g: where the CPU goes -----------------------------------------------------


def sample_counts(data, key):
    """{value of key: samples} from perf report -F sample."""
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", key,
                          "-F", f"sample,{key}", "-g", "none"], capture_output=True, text=True).stdout
    counts = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0].isdigit():
            counts[parts[1].strip()] = counts.get(parts[1].strip(), 0) + int(parts[0])
    return counts


def perf_record(binary, backend, mode, args):
    """perf record -g -e cpu-clock of executord and its children, enabled only over the
    load window (--control fifo); returns the report text (by process/dso, and symbols)."""
    tmp = tempfile.mkdtemp(prefix="exd-prof-")
    data, ctl, ack = (os.path.join(tmp, n) for n in ("perf.data", "ctl", "ack"))
    os.mkfifo(ctl)
    os.mkfifo(ack)
    srv = Wrapped(binary, ["perf", "record", "-q", "-g", "-e", "cpu-clock", "-F", "2000", "-D", "-1",
                           "--control", f"fifo:{ctl},{ack}", "-o", data, "--"])
    cfd = os.open(ctl, os.O_WRONLY)
    afd = os.open(ack, os.O_RDONLY)
    try:
        jobs_c1(srv, backend, args.warmup)
        os.write(cfd, b"enable\n")
        os.read(afd, 16)
        n, el, _ = load_window(srv, backend, mode, args)
        os.write(cfd, b"disable\n")
        os.read(afd, 16)
    finally:
        srv.stop()
        os.close(cfd)
        os.close(afd)
    rep = lambda *a: subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                                     "--percent-limit", "1.5", *a], capture_output=True, text=True).stdout
    keep = lambda t: "\n".join(l for l in t.splitlines() if l.strip() and not l.startswith("#"))
    by_dso = keep(rep("--sort", "comm,dso"))
    by_sym = keep(rep("--sort", "comm,dso,sym"))
    # inclusive (callers' share): how much is fork (kernel_clone), copy-on-write faults
    # (do_wp_page), namespace creation, ...
    incl = keep(subprocess.run(["perf", "report", "-i", data, "--stdio", "--children", "--sort", "sym", "-g", "none",
                                "--percent-limit", "3"], capture_output=True, text=True).stdout)
    by_comm = sample_counts(data, "comm")
    kernel = sample_counts(data, "dso").get("[kernel.kallsyms]", 0)
    samples = sum(by_comm.values())
    log(f"   perf record {backend} {mode}: {n} jobs, {samples} samples, data {data}")
    cpu = {"total": samples, "kernel": kernel, **{"comm " + k: v for k, v in by_comm.items()}}
    # every sample is 1/2000 s of CPU of executord or a descendant (inherited counters)
    cpu = {k: v / 2000.0 * 1000 / n for k, v in cpu.items()}
    return n, el, samples, by_dso, by_sym, cpu, incl


# ---- the report ------------------------------------------------------------------------------


def tool_versions():
    out = []
    for cmd in (["perf", "--version"], ["strace", "-V"]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        out.append((r.stdout.splitlines() or ["?"])[0].strip())
    return ", ".join(out)


def section_head(args, m):
    L = ["# Where a trivial job's time goes (issue 16, step 1: profile first)", ""]
    L += [f"Command: `{' '.join(['bench/profile.sh'] + sys.argv[1:])}` (--jobs {args.jobs} at concurrency 1, "
          f"--seconds {args.seconds:g} at saturation with {args.concurrency} clients, --strace-jobs "
          f"{args.strace_jobs} cut into steps, --trace-jobs {args.trace_jobs} under perf trace)", ""]
    L += ["Machine: " + ", ".join(f"{k} {v}" for k, v in m.items()) + "; " + tool_versions(), ""]
    try:
        L += [f"Load average at the start: {Path('/proc/loadavg').read_text().split()[:3]} "
              "(the machine is shared: other people's CI and helpers ran meanwhile)", ""]
    except OSError:
        pass
    return L + ["executord as bench/bench.py starts it: default flags (SQLite store, WAL, `--workers` = CPUs, "
                "pool size = workers), `--backends direct,ephemeral,pool`, a temporary data folder; a fresh "
                "executord per instrument. The job: `def main(): return 1`, `POST /v1/jobs?wait=30`, "
                "keep-alive.", ""]


def section_proc(args, results):
    L = ["## CPU per job and latency (no instrument; /proc of executord and every descendant)", "",
         "| backend | load | jobs | jobs/s | p50 ms | user ms/job | sys ms/job | CPU ms/job |",
         "|---|---|---:|---:|---:|---:|---:|---:|"]
    for b, r in results.items():
        for mode, label in (("c1", "concurrency 1"), ("sat", f"saturation ({args.concurrency} clients)")):
            n, el, p50, u, s = r["plain"][mode]
            p50s = f"{p50:.1f}" if p50 else "-"
            L.append(f"| {b} | {label} | {n} | {n / el:.1f} | {p50s} | {u:.2f} | {s:.2f} | {u + s:.2f} |")
    return L + ["", "user/sys: utime+cutime and stime+cstime of executord and each living descendant, read "
                "before and after the window (a process that ended inside the tree is counted by its "
                f"reaper); clock ticks of 1/{TICK} s, hence the many jobs per window.", ""]


def section_perf_cpu(results):
    L = ["## CPU per job from perf (cpu-clock samples of executord and every descendant)", "",
         "| backend | load | jobs | CPU ms/job | of it in the kernel | by process name (ms/job) |",
         "|---|---|---:|---:|---:|---|"]
    for b, r in results.items():
        for mode, rec in r["record"].items():
            n, cpu = rec[0], rec[5]
            names = ", ".join(f"{k[5:]} {v:.2f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])
                              if k.startswith("comm "))
            label = "concurrency 1" if mode == "c1" else "saturation"
            L.append(f"| {b} | {label} | {n} | {cpu['total']:.2f} | {cpu['kernel']:.2f} "
                     f"({100 * cpu['kernel'] / max(cpu['total'], 1e-9):.0f}%) | {names} |")
    return L + ["", "perf's counters are inherited by every process executord starts, however it is reaped, "
                "so this is the complete figure. The /proc table above misses a process whose reaper "
                "does not wait for it: the pool's zygote ignores SIGCHLD (sandbox/pool_zygote.py: the "
                "kernel reaps its forks), so a warm sandbox's CPU never reaches any cutime and the "
                "pool's /proc figure is about half the real one; use perf's. One sample = 0.5 ms of CPU.", ""]


def step_cells(rows, cost):
    """Three cells of one backend for one step: strace ms, stops, ms less the stops' cost."""
    if not rows:
        return ["-", "-", "-"]
    v = statistics.median(x[0] for x in rows)
    if rows[0][1] is None:
        return [f"{v:.2f}", "", ""]
    st = statistics.median(x[1] for x in rows)
    return [f"{v:.2f}", f"{st:g}", f"{max(0.0, v - st * cost * 1000):.2f}"]


def section_steps(args, results, cost):
    bs = list(results)
    L = ["## Steps of one job at concurrency 1 (strace -f timeline), median over jobs, ms", "",
         "| step | " + " | ".join(f"{b} strace ms | {b} stops | {b} ≈ ms untraced" for b in bs) + " |",
         "|---|" + "---:|---:|---:|" * len(bs)]
    keys = []
    for b in bs:
        for r in results[b]["steps"]:
            keys += [k for k in r if k not in keys]
    for k in keys:
        cells = []
        for b in bs:
            cells += step_cells([r[k] for r in results[b]["steps"] if k in r], cost)
        L.append(f"| {k} | " + " | ".join(cells) + " |")
    L += ["", f"One ptrace stop cost {cost * 1e6:.0f} µs in this run (4000 traced writes to /dev/null, "
          "with and without strace); \"≈ ms untraced\" = strace ms − stops × that cost. "
          "\"calls:\" rows are the kernel-side durations of those calls (strace -T), not spans."]
    L += ["", "How a job is cut: `strace -f --seccomp-bpf -ttt -T -y` of executord and every "
          "descendant, only the calls in STRACE_CALLS stopped; jobs one at a time with "
          f"{args.gap} s between them (the pool's refill and the teardown end in the gap); "
          "each job's events are those between its request and the next one. Markers: the "
          "`recvfrom` of `POST /v1/jobs`; each SQLite commit = a thread's `pwrite64`s to the "
          "`-wal` file up to its `fdatasync`; the `sendto` of the job's spec (`{\"script\"...`) "
          "to the sandbox; the runner's `write` of its result (`{\"ok\"...`); the `sendmsg` of "
          "`HTTP/1.1 20x`. A span between markers holds whatever ran in it, untraced user "
          "code and waiting for a CPU included: on a loaded 2-core machine a span can hold "
          "run-queue delay, and it says nothing about which of the untraced work is slow. "
          "For the pool, the refill of the next warm sandbox (cgroup mkdir and attach, the "
          "zygote's clone) runs beside the job and is listed apart."]
    return L + ["", "Jobs cut into steps: " + ", ".join(f"{b} {len(results[b]['steps'])}" for b in bs) + ".", ""]


def section_trace(args, results):
    L = ["## System-call time per job (perf trace -s, no ptrace), concurrency 1", ""]
    for b in results:
        L += [f"### {b}", "", "| system call | calls/job | ms/job (all threads and processes) |", "|---|---:|---:|"]
        busy, waits = results[b]["trace"]
        for name, calls, ms in busy[:args.top]:
            L.append(f"| {name} | {calls:.1f} | {ms:.2f} |")
        L += ["", "Left out as waits (a thread sleeping until there is work, mostly between jobs): " +
              ", ".join(f"{n} {c:.1f} calls" for n, c, _ in waits if c >= 0.5) + ".", ""]
    return L + ["Method: a life of executord with `--trace-jobs` jobs minus a life with none (start-up, "
                "zygote, shutdown), divided by the jobs; `perf trace -s` (tracepoints, no ptrace) "
                "inherits to every descendant. Durations are wall time inside the call (blocked "
                "included), summed over threads and processes.", ""]


def section_record(results):
    L = ["## CPU profile (perf record -g -e cpu-clock, enabled only over the load window)", ""]
    for b in results:
        for mode, (n, el, samples, by_dso, by_sym, _, incl) in results[b]["record"].items():
            L += [f"### {b}, {'concurrency 1' if mode == 'c1' else 'saturation'}: {n} jobs, {samples} samples "
                  f"at 2000 Hz over {el:.1f} s", "", "By process and object (≥ 1.5%):", "", "```", by_dso, "```", "",
                  "By symbol, self (≥ 1.5%):", "", "```", by_sym, "```", "",
                  "By symbol, with callees (children; ≥ 3%; the first column includes callees):", "",
                  "```", incl, "```", ""]
    return L


def report(args, m, results, cost):
    L = (section_head(args, m) + section_proc(args, results) + section_perf_cpu(results)
         + section_steps(args, results, cost) + section_trace(args, results) + section_record(results))
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="executord binary (default: build it in build/)")
    ap.add_argument("--backends", default="pool,ephemeral")
    ap.add_argument("--jobs", type=int, default=60, help="concurrency-1 jobs per window (default 60)")
    ap.add_argument("--seconds", type=float, default=8.0, help="saturation window (default 8)")
    ap.add_argument("--concurrency", type=int, default=2 * (os.cpu_count() or 1))
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--strace-jobs", type=int, default=20, help="jobs cut into steps (default 20)")
    ap.add_argument("--gap", type=float, default=0.3, help="pause between traced jobs, s (teardown and refill end)")
    ap.add_argument("--trace-jobs", type=int, default=60, help="jobs under perf trace -s (default 60)")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    for tool in ("perf", "strace"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (apt-get install linux-perf strace)")
    binary = Path(args.bin) if args.bin else bench.build(REPO / "build")
    m = bench.machine()
    results = {}
    for b in args.backends.split(","):
        log(f"== {b}")
        results[b] = {"plain": plain(binary, b, args), "steps": strace_steps(binary, b, args),
                      "trace": perf_trace_per_job(binary, b, args),
                      "record": {mode: perf_record(binary, b, mode, args) for mode in ("c1", "sat")}}
    cost = ptrace_stop_cost()
    log(f"   one ptrace stop: {cost * 1e6:.1f} us")
    text = report(args, m, results, cost)
    print(text)
    if not args.no_write:
        day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        path = REPO / "bench" / "results" / f"{day}-profile.md"
        path.write_text(text)
        log(f"written {path}")


if __name__ == "__main__":
    main()
