#!/usr/bin/python3
"""CPU per pool job for two or more executord binaries in one run (issue 16, step 3: the
zygote's fork and copy-on-write). Alternates the binaries round by round (the machine is
shared: only a same-run comparison means anything); each round is one perf record -g of
`--jobs` concurrency-1 jobs (bench/profile_job.py's instrument). Prints CPU ms/job and the
inclusive shares of do_wp_page (copy-on-write) and kernel_clone (fork); with --stat, exact
task-clock and page faults per job from perf stat instead. Root; stdlib only.
Usage: bench/cpu_ab.py --stat --jobs 60 --rounds 3 before=/tmp/old/executord after=build/executord"""
import argparse
import os
import re
import shutil
import tempfile
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import profile_job  # noqa: E402  - perf_record, the same instrument as bench/profile.sh

SYMS = ("do_wp_page", "kernel_clone", "dup_mmap", "copy_page_range", "exc_page_fault")


def shares(incl):
    """{symbol: inclusive %} from perf report --children lines."""
    out = {}
    for line in incl.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+[\d.]+%\s+.*\]\s+(\S+)\s*$", line)
        if m and m.group(2) in SYMS:
            out[m.group(2)] = float(m.group(1))
    return out


def perf_stat(binary, backend, args):
    """perf stat of executord and every descendant over `--jobs` concurrency-1 jobs: exact
    counts (task-clock ms, page faults) rather than samples. Returns per-job figures."""
    tmp = tempfile.mkdtemp(prefix="exd-stat-")
    out, ctl, ack = (os.path.join(tmp, n) for n in ("stat.txt", "ctl", "ack"))
    os.mkfifo(ctl)
    os.mkfifo(ack)
    srv = profile_job.Wrapped(binary, ["perf", "stat", "-x", ",", "-e", "task-clock,page-faults,context-switches",
                                       "-D", "-1", "--control", f"fifo:{ctl},{ack}", "-o", out, "--"])
    cfd = os.open(ctl, os.O_WRONLY)
    afd = os.open(ack, os.O_RDONLY)
    try:
        profile_job.jobs_c1(srv, backend, args.warmup)
        os.write(cfd, b"enable\n")
        os.read(afd, 16)
        n = len(profile_job.jobs_c1(srv, backend, args.jobs))
        os.write(cfd, b"disable\n")
        os.read(afd, 16)
    finally:
        srv.stop()
        os.close(cfd)
        os.close(afd)
    vals = {}
    for line in open(out):
        f = line.strip().split(",")
        if len(f) > 2 and f[0] and f[0][0].isdigit():
            vals[f[2]] = float(f[0]) / n
    shutil.rmtree(tmp, ignore_errors=True)
    return vals


def print_stat(res):
    keys = list(next(iter(res.values()))[0])
    print("\n| binary | " + " | ".join(f"{k} per job, median" for k in keys) + " | rounds (task-clock ms) |")
    print("|---|" + "---:|" * len(keys) + "---|")
    for label, rows in res.items():
        print(f"| {label} | " + " | ".join(f"{statistics.median(x[k] for x in rows):.2f}" for k in keys)
              + " | " + " ".join(f"{x.get('task-clock', 0):.2f}" for x in rows) + " |")


def print_record(res):
    print("\n| binary | CPU ms/job, median of rounds | rounds | kernel ms/job | " + " | ".join(SYMS[:4]) + " |")
    print("|---|---:|---|---:|" + "---:|" * 4)
    for label, rows in res.items():
        med = lambda k: statistics.median(x.get(k, 0.0) for x in rows)
        print(f"| {label} | {med('cpu'):.2f} | " + " ".join(f"{x['cpu']:.2f}" for x in rows)
              + f" | {med('kernel'):.2f} | " + " | ".join(f"{med(s):.1f}%" for s in SYMS[:4]) + " |")


def one_round(path, args):
    """One binary, one window: a dict of per-job figures."""
    if args.stat:
        return perf_stat(path, args.backend, args)
    _, _, _, _, _, cpu, incl = profile_job.perf_record(path, args.backend, "c1", args)
    return {"cpu": cpu["total"], "kernel": cpu["kernel"], **shares(incl)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backend", default="pool")
    ap.add_argument("--stat", action="store_true", help="perf stat (exact task-clock, faults) instead of perf record")
    ap.add_argument("--script", help="the job's script instead of bench.py's trivial one (a file; must return 1)")
    ap.add_argument("bins", nargs="+", help="label=path (the file must be named executord: perf and /proc look for it)")
    args = ap.parse_args()
    args.gap = 0.0
    if args.script:
        profile_job.bench.TRIVIAL = Path(args.script).read_text()
    bins = [b.split("=", 1) for b in args.bins]
    res = {label: [] for label, _ in bins}
    for r in range(args.rounds):
        # reversed every other round: neither binary always runs first after a pause
        for label, path in (bins if r % 2 == 0 else bins[::-1]):
            row = one_round(path, args)
            res[label].append(row)
            print(f"round {r} {label}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    (print_stat if args.stat else print_record)(res)


if __name__ == "__main__":
    main()
