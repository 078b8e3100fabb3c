"""Killing everything a job started on cancel, on executord's shutdown and after its
crash: no process, cgroup or work folder of a job survives, and a restarted executord
removes what a crashed one left. These tests run their own executord instances with a
uid range of their own (instances must never share one)."""

import signal
import textwrap
import time

from conftest import job_cgroups, sandbox_processes
from executord_client import Server

DAEMON = textwrap.dedent("""
    import os, time
    def main():
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(300)
            os._exit(0)
        print('started', flush=True)
        time.sleep(300)
    """).lstrip()

UID_BASE = 2300000
UID_END = UID_BASE + 2 * 64
# The pool's own range for these instances, with one warm sandbox: between jobs its
# zygote and the warm sandbox's init and job process run there (3 processes).
POOL_UID_BASE = 3300000
POOL_IDLE = 3


def start(tmp_path, name, backend):
    s = Server(tmp_path / name / "data", args=["--backend", backend, "--workers", "2"],
               env={"EXECUTORD_SANDBOX_UID_BASE": str(UID_BASE), "EXECUTORD_SANDBOX_UID_COUNT": "64",
                    "EXECUTORD_POOL_UID_BASE": str(POOL_UID_BASE), "EXECUTORD_POOL_SIZE": "1"},
               log_path=tmp_path / name / "executord.stderr.log")
    return s.start()


def job_processes(*_):
    """Processes of jobs: the sandbox uid range, plus what the pool runs beyond its idle
    zygote and warm sandbox."""
    pool = sandbox_processes(POOL_UID_BASE, POOL_UID_BASE + 32 * 258)
    return sandbox_processes(UID_BASE, UID_END) + (pool if len(pool) > POOL_IDLE else [])


def wait_until(cond, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def running_job(server, backend):
    c = server.client()
    job = c.submit({"script": DAEMON, "backend": backend})
    c.wait_output(job["id"], "started")
    assert wait_until(lambda: len(job_processes(UID_BASE, UID_END)) >= 2), job_processes(UID_BASE, UID_END)
    return c, job


def test_cancel_kills_the_whole_tree(target, tmp_path):
    s = start(tmp_path, "cancel", target.backend)
    try:
        c, job = running_job(s, target.backend)
        assert c.cancel(job["id"]).status == 200
        done = c.wait_final(job["id"])
        assert done["status"] == "cancelled", done
        assert wait_until(lambda: not job_processes(UID_BASE, UID_END)), job_processes(UID_BASE, UID_END)
        # (the pool's warm sandbox keeps its own cgroup, job-warm-*, until it is used)
        def left():
            return [c for c in job_cgroups(s.proc.pid) if not c.rsplit("/", 1)[-1].startswith("job-warm-")]
        assert wait_until(lambda: not left()), left()
    finally:
        s.stop()


def test_shutdown_kills_running_jobs(target, tmp_path):
    s = start(tmp_path, "shutdown", target.backend)
    c, job = running_job(s, target.backend)
    pid = s.proc.pid
    assert s.stop(grace=15) == 0, s.log_tail()
    assert wait_until(lambda: not job_processes(UID_BASE, UID_END)), job_processes(UID_BASE, UID_END)
    assert not job_cgroups(pid)


def test_restart_after_crash_removes_leftovers(target, tmp_path):
    s = start(tmp_path, "crash", target.backend)
    c, job = running_job(s, target.backend)
    crashed_pid = s.proc.pid
    leftover = job_cgroups(crashed_pid)
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait()
    s.errfile.close()
    # The sandbox's init dies with its parent (PDEATHSIG), taking its namespace along.
    assert wait_until(lambda: not job_processes(UID_BASE, UID_END)), job_processes(UID_BASE, UID_END)
    s2 = start(tmp_path, "crash", target.backend)  # same data dir, new process
    try:
        for path in leftover:
            assert wait_until(lambda: not __import__("os").path.exists(path)), path
        c2 = s2.client()
        after = c2.wait_final(job["id"], timeout=30)
        assert after["status"] in ("failed", "cancelled"), after
    finally:
        s2.stop()
