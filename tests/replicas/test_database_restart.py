"""A PostgreSQL restart costs 503s while it lasts, never a crash or a lost job (issue 15):
two replicas under a steady submission load while the server is stopped for 3 s and
started again. The replicas stay alive; during the outage the API answers 503 (not 500,
never a hang), /readyz says 503, then 200 again once the database is back; every job the
API accepted succeeds afterwards, those running through the outage included.

The replicas hold the default 10 s lease here, longer than the outage. An outage longer
than the lease makes every lease look expired; a replica judges others' leases only after a
whole lease of working heartbeats of its own, so each live replica renews first and no job
is lost to the outage: `test_outage_longer_than_the_lease` pins that down."""

import http.client
import threading
import time

from replica_kit import LEASE_S, wait_until

QUICK = "import time\ndef main(i):\n    time.sleep(0.1)\n    return i\n"
HANG_S = 10  # no request may take longer than this, outage or not
LEASE_DEFAULT_S = 10  # executord's default --replica-lease-seconds


class Load:
    """Submits a job every ~50 ms, alternating between replicas, and probes each replica's
    /readyz every ~100 ms; records every answer with its time."""

    def __init__(self, rs):
        self.rs = rs
        self.clients = [s.client() for s in rs]
        for c in self.clients:
            c.timeout = HANG_S + 20  # a hang shows as a slow answer, not a client timeout
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.accepted = []   # (job id, body's i)
        self.answers = []    # (t, what, replica index, status or exception text, elapsed)
        self.threads = [threading.Thread(target=self.submitter),
                        *[threading.Thread(target=self.prober, args=(k,)) for k in range(len(rs))]]

    def record(self, what, k, status, elapsed):
        with self.lock:
            self.answers.append((time.monotonic(), what, k, status, elapsed))

    def call(self, what, k, fn):
        t0 = time.monotonic()
        try:
            r = fn()
        except (OSError, http.client.HTTPException) as e:
            self.record(what, k, f"{type(e).__name__}: {e}", time.monotonic() - t0)
            return None
        self.record(what, k, r.status, r.elapsed)
        return r

    def submitter(self):
        i = 0
        while not self.stop.is_set():
            k = i % len(self.clients)
            r = self.call("submit", k, lambda: self.clients[k].post_job({"script": QUICK, "inputs": {"i": i}}))
            if r is not None and r.status in (201, 202):
                with self.lock:
                    self.accepted.append((r.json()["id"], i))
            i += 1
            self.stop.wait(0.05)

    def prober(self, k):
        c = self.clients[k]
        while not self.stop.is_set():
            self.call("readyz", k, lambda: c.request("GET", "/readyz"))
            self.stop.wait(0.1)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(HANG_S + 30)

    def since(self, t, what=None):
        with self.lock:
            return [a for a in self.answers if a[0] >= t and (what is None or a[1] == what)]


def test_postgresql_restart_under_load(make_replicas):
    """Stop the server (fast: connections cut) for 3 s under load, start it again: no
    crash, 503s (never 500 or a hang) meanwhile, /readyz 503 then 200 on both replicas, and
    every accepted job succeeded afterwards with its result."""
    rs = make_replicas(2, "--workers", "2", "--max-queued", "10000", lease=LEASE_DEFAULT_S)
    with Load(rs) as load:
        wait_until(lambda: len(load.accepted) >= 20, 30, "20 jobs accepted before the outage")
        t_down = time.monotonic()
        rs.cluster.stop()
        # The outage must be seen: each replica reports not ready while the server is down.
        wait_until(lambda: {a[2] for a in load.since(t_down, "readyz") if a[3] == 503} == {0, 1}, 15,
                   "/readyz 503 on both replicas during the outage")
        wait_until(lambda: any(a[3] == 503 for a in load.since(t_down, "submit")), 15, "a submission answered 503")
        time.sleep(max(0.0, t_down + 3 - time.monotonic()))  # the outage lasts 3 s at least
        rs.cluster.start()
        t_up = time.monotonic()
        for s in rs:
            assert s.running, f"{s.name} died during the outage:\n{s.log_tail()}"
        wait_until(lambda: {a[2] for a in load.since(t_up, "readyz") if a[3] == 200} == {0, 1}, 60,
                   "/readyz 200 again on both replicas")
        t_ready = time.monotonic()
        n_before = len(load.accepted)
        wait_until(lambda: len(load.accepted) >= n_before + 20, 30, "20 more jobs accepted after recovery")

    for s in rs:
        assert s.running, f"{s.name} died:\n{s.log_tail()}"
    bad = [a for a in load.answers if not (a[3] in (200, 201, 202, 503))]
    assert not bad, f"answers other than 2xx/503 (a 500, a reset, a refused connection): {bad[:10]}"
    slow = [a for a in load.answers if a[4] > HANG_S]
    assert not slow, f"requests that hung over {HANG_S}s: {slow[:10]}"
    outage = load.since(t_down)
    assert any(a[3] == 503 for a in outage if a[1] == "submit"), "the outage never answered 503"

    c = rs[0].client()
    for job_id, i in load.accepted:
        job = c.wait_final(job_id, timeout=60)
        assert job["status"] == "succeeded" and job["result"] == i, job
    n_jobs = int(rs.psql("SELECT count(*) FROM jobs")[0][0])
    assert n_jobs >= len(load.accepted), "an accepted job is missing from the database"
    for status in ("queued", "running"):
        r = c.list(status=status)
        assert r.status == 200 and r.json()["jobs"] == [], (status, r)
    n503 = sum(1 for a in outage if a[3] == 503)
    print(f"outage {t_up - t_down:.1f}s, both ready {t_ready - t_up:.1f}s after the start; {n503} answers 503; "
          f"all {len(load.accepted)} accepted jobs succeeded")


def test_outage_longer_than_the_lease(make_replicas):
    """With a 2 s lease, a 3 s outage while each replica runs a job: both replicas live on,
    and once the database is back every job succeeds with its result (no ExecutorLost: the
    replicas renew their own leases before judging each other's); a job submitted afterwards
    succeeds."""
    rs = make_replicas(2, "--workers", "1", lease=LEASE_S)
    a, b = rs.clients()
    jobs = [a.submit({"script": QUICK.replace("0.1", "2"), "inputs": {"i": i}})["id"] for i in range(2)]
    wait_until(lambda: {r[0] for r in rs.psql("SELECT running_on FROM jobs WHERE status = 'running'")} == {"r0", "r1"},
               30, "one job running on each replica")
    rs.cluster.stop()
    time.sleep(LEASE_S + 1)  # the outage, longer than the lease
    rs.cluster.start()
    outcomes = []
    for i, job_id in enumerate(jobs):
        job = b.wait_final(job_id, timeout=30)
        outcomes.append(job["status"] if job["status"] == "succeeded" else job["error"]["type"])
        assert job["status"] == "succeeded" and job["result"] == i, job
    for s in rs:
        assert s.running, f"{s.name} died:\n{s.log_tail()}"
    wait_until(lambda: all(s.client().request("GET", "/readyz").status == 200 for s in rs), 30, "both ready")
    assert a.run("def main():\n    return 'after'\n", timeout=30)["result"] == "after"
    print(f"jobs running through a {LEASE_S + 1}s outage with a {LEASE_S}s lease: {outcomes}")
