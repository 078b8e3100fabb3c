"""Half-open connections cannot lock clients out (issue 10, item 7): with thousands of
connections that never finish their request (a partial request line, partial headers, or
complete headers and a stalled body), all from 127.0.0.1 like everyone else, a normal
`GET /healthz` and a `POST /v1/jobs?wait=` are still answered within 2 s — also while the
attacker re-opens every connection the server closes — the server's memory and threads
stay bounded, evictions are counted in /metrics and logged (rate-limited), and it still
shuts down cleanly with them open."""

import re
import resource
import selectors
import socket
import threading
import time
from pathlib import Path

import pytest

from executord_client import EXPECT_SANITIZER

QUICK = "def main():\n    return 1\n"
# uid ranges of this file's servers, away from executord's defaults and the other files'
SANDBOX_UID_BASE, POOL_UID_BASE = 6500000, 7500000
UID_ENV = {"EXECUTORD_SANDBOX_UID_BASE": str(SANDBOX_UID_BASE),
           "EXECUTORD_POOL_UID_BASE": str(POOL_UID_BASE)}
ANSWER_WITHIN_S = 2.0
# What the test process needs on top of the attackers' sockets (pytest, clients, logs).
OWN_FDS = 200


def proc_status(pid, key):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def nofile_limits(pid):
    """(soft, hard) of a process's RLIMIT_NOFILE as /proc shows them."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no 'Max open files' line")


def raise_nofile(want):
    """Raises this process's soft RLIMIT_NOFILE to `want` (at most the hard limit);
    returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class HalfOpen:
    """`count` connections that each send part of a request and then nothing. In three
    kinds, round robin: a partial request line, partial headers, and complete headers of
    a POST whose body stops after a few bytes. churn() re-opens every connection the
    server closes, keeping `count` open, until stop() or its time and re-open budget run
    out."""

    def __init__(self, port, count, token=None):
        self.port, self.count = port, count
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.heads = [
            b"GET /healthz HT",
            b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Pad: aaaa",
            (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}"
             "Content-Length: 1000\r\n\r\n{\"script\": \"").encode(),
        ]
        self.sel = selectors.DefaultSelector()
        self.opened = 0          # connections opened, first fill and re-opens
        self.closed_by_server = 0
        self.connect_failures = 0
        self._stop = threading.Event()
        self._thread = None

    def open_one(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", self.port))
            s.sendall(self.heads[self.opened % len(self.heads)])
        except OSError:
            s.close()
            self.connect_failures += 1
            return False
        s.setblocking(False)
        self.sel.register(s, selectors.EVENT_READ)
        self.opened += 1
        return True

    def fill(self, deadline_s=60):
        deadline = time.monotonic() + deadline_s
        while len(self.sel.get_map()) < self.count and time.monotonic() < deadline:
            self.open_one()
        return len(self.sel.get_map())

    def reap(self):
        """Closes (on our side) the connections the server closed; returns how many."""
        n = 0
        for key, _ in self.sel.select(timeout=0.05):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                continue  # an answer (408/400) before the close: the EOF follows
            self.sel.unregister(s)
            s.close()
            n += 1
        self.closed_by_server += n
        return n

    def churn(self, seconds, max_reopens):
        """In the background: re-open what the server closes, as fast as it closes them."""
        def run():
            deadline = time.monotonic() + seconds
            budget = max_reopens
            while not self._stop.is_set() and time.monotonic() < deadline and budget > 0:
                self.reap()
                while len(self.sel.get_map()) < self.count and budget > 0 and not self._stop.is_set():
                    self.open_one()
                    budget -= 1
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(30)
            assert not self._thread.is_alive(), "the attacker thread did not stop"

    def close(self):
        self.stop()
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


def timed(what, fn):
    """fn() -> Response, with the failure (a timeout, a reset) turned into a clear message."""
    t0 = time.monotonic()
    try:
        r = fn()
    except OSError as e:
        raise AssertionError(f"{what}: no answer after {time.monotonic() - t0:.2f}s ({e!r})") from None
    return r


def check_answered(c):
    """A normal request and a job submitted with ?wait= are both answered within 2 s;
    returns their times."""
    r = timed("GET /healthz", lambda: c.request("GET", "/healthz", timeout=10))
    assert r.status == 200 and r.elapsed < ANSWER_WITHIN_S, f"GET /healthz: {r} in {r.elapsed:.2f}s"
    j = timed("POST /v1/jobs?wait=10", lambda: c.post_job({"script": QUICK}, wait=10, timeout=15))
    assert j.status == 201 and j.elapsed < ANSWER_WITHIN_S, f"POST /v1/jobs?wait=10: {j} in {j.elapsed:.2f}s"
    assert j.json()["status"] == "succeeded" and j.json()["result"] == 1, j
    return r.elapsed, j.elapsed


def evicted_total(c):
    """executord_http_connections_evicted_total, None when /metrics has no such counter."""
    r = c.request("GET", "/metrics", timeout=10)
    assert r.status == 200, r
    m = re.search(r"^executord_http_connections_evicted_total (\d+)$", r.text, re.M)
    return int(m.group(1)) if m else None


@pytest.mark.parametrize("count", [1100, 3000])
def test_half_open_connections_do_not_lock_clients_out(make_server, count):
    # The server must raise its own soft limit (toward the hard one): start it with a low
    # soft limit (inherited), then give this process what the attackers need.
    soft0, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < count + OWN_FDS:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {count + OWN_FDS}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, soft0), hard))
    try:
        srv = make_server("--workers", "2", env=UID_ENV)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft0, hard))
    assert raise_nofile(count + OWN_FDS) >= count + OWN_FDS

    c = srv.client()  # with the token when the server has one
    for _ in range(5):  # warm up: the pool, SQLite, MHD's threads
        check_answered(c)
    pid = srv.proc.pid
    rss0, threads0 = proc_status(pid, "VmRSS"), proc_status(pid, "Threads")
    evicted0 = evicted_total(c) or 0

    attack = HalfOpen(srv.port, count, token=srv.token)
    try:
        # 1. all of them open at once, none re-opened
        t0 = time.monotonic()
        opened = attack.fill()
        fill_s = time.monotonic() - t0
        assert opened == count, f"only {opened} of {count} attacker connections opened"
        time.sleep(0.5)  # let the server take in what the kernel queued
        quiet = [check_answered(c) for _ in range(3)]

        # 2. the attacker re-opens every connection the server closes (bounded: 20 s,
        # 100,000 re-opens); meanwhile, rounds of normal requests
        attack.churn(seconds=20, max_reopens=100000)
        churned = []
        for _ in range(5):
            time.sleep(0.5)
            churned.append(check_answered(c))
        attack.stop()
        reopens = attack.opened - count

        # 3. bounded: memory (ASan's quarantine and redzones make RSS meaningless there) and
        # threads; evictions counted and logged, and the log rate-limited
        rss1, threads1 = proc_status(pid, "VmRSS"), proc_status(pid, "Threads")
        assert threads1 <= threads0 + 2, f"threads {threads0} -> {threads1}"
        if not EXPECT_SANITIZER:
            assert rss1 - rss0 < 64 * 1024, f"VmRSS grew from {rss0} kB to {rss1} kB"
        evicted = evicted_total(c)
        assert evicted is not None, "no executord_http_connections_evicted_total in /metrics"
        evicted -= evicted0
        assert evicted > 0, "the server evicted nothing: were the connections really held?"
        log = srv.log_path.read_bytes()[srv.log_offset:].decode("utf-8", "replace").splitlines()
        warns = [line for line in log if "evicted" in line]
        assert warns, "no eviction warning in the log:\n" + "\n".join(log[-20:])
        assert len(warns) <= 6, f"the eviction warning is not rate-limited: {len(warns)} lines"
        # nor does anything else in the HTTP layer write a line per connection
        http = [line for line in log if " http: " in line]
        assert len(http) < 20, f"{len(http)} lines from the HTTP layer:\n" + "\n".join(http[:10])

        print(f"{count} half-open (opened in {fill_s:.2f}s): healthz/job "
              f"{max(q[0] for q in quiet):.3f}/{max(q[1] for q in quiet):.3f}s at most; "
              f"with {reopens} re-opens: {max(x[0] for x in churned):.3f}/{max(x[1] for x in churned):.3f}s; "
              f"{evicted} evicted; VmRSS {rss0} -> {rss1} kB, threads {threads0} -> {threads1}")

        # 4. it made room for the connections it serves (started with a soft 1024)
        srv_soft, srv_hard = nofile_limits(pid)
        assert srv_soft >= min(srv_hard, count + OWN_FDS), \
            f"executord kept a soft RLIMIT_NOFILE of {srv_soft} (hard {srv_hard})"

        # 5. a clean shutdown with the half-open connections still there
        t0 = time.monotonic()
        assert srv.stop(grace=10) == 0, srv.log_tail()
        assert time.monotonic() - t0 < 5, f"stopping took {time.monotonic() - t0:.1f}s"
    finally:
        attack.close()
