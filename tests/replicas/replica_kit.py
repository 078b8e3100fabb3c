"""The replica suite's kit: a set of executord replicas on one PostgreSQL database (each its
own --data-dir and --replica-id on a 127.0.0.1 ephemeral port, all one --api-token-file,
a short lease) and the polling helpers its tests share."""

import secrets
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from executord_client import FINAL, Server  # noqa: E402

LEASE_S = 2
# What acting on a replica's lease expiry may take: 1.25 x lease after its last heartbeat
# (docs/replicas.md), plus one heartbeat period and scheduling slack.
EXPIRY_S = 1.25 * LEASE_S + LEASE_S / 4 + 3
# Sandbox uids away from executord's defaults and from the other suites' ranges (slots are
# coordinated between instances through flocks, so the replicas may share them).
UID_ENV = {"EXECUTORD_SANDBOX_UID_BASE": "8500000", "EXECUTORD_POOL_UID_BASE": "9500000"}


class Replicas(list):
    """The replicas of one database (a list of Server), with that database's URL."""

    def __init__(self, cluster, url, token_file, base):
        super().__init__()
        self.cluster, self.url, self.token_file, self.base = cluster, url, token_file, base

    def add(self, *args, name=None, start=True, env=None, lease=LEASE_S):
        name = name or f"r{len(self)}"
        token = self.token_file.read_text().strip()
        s = Server(self.base / name / "data",
                   args=["--store", self.url, "--replica-id", name,
                         "--replica-lease-seconds", str(lease),
                         "--api-token-file", str(self.token_file), *args],
                   env={**UID_ENV, **(env or {})}, token=token,
                   log_path=self.base / name / "executord.stderr.log")
        s.name = name
        self.append(s)
        if start:
            s.start(timeout=30)
        return s

    def start_all(self, servers, timeout=30):
        """Starts servers at the same instant (one thread each); raises the first failure."""
        errors = []
        barrier = threading.Barrier(len(servers))

        def go(s):
            try:
                barrier.wait()
                s.start(timeout=timeout)
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append((s.name, e))

        threads = [threading.Thread(target=go, args=(s,)) for s in servers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError(f"replicas failed to start: {errors}")

    def clients(self):
        return [s.client() for s in self]

    def psql(self, sql):
        return self.cluster.psql(sql, url=self.url)

    def stop_all(self):
        for s in self:
            if s.running:
                s.stop(grace=10)


def make_replica_set(cluster, base, n, *args, start=True, lease=LEASE_S):
    base.mkdir(parents=True, exist_ok=True)
    token_file = base / "api-token"
    token_file.write_text(secrets.token_hex(32) + "\n")
    token_file.chmod(0o600)
    rs = Replicas(cluster, cluster.create_database("rep"), token_file, base)
    servers = [rs.add(*args, start=False, lease=lease) for _ in range(n)]
    if start:
        rs.start_all(servers)
    return rs


def ran_on(rs, job):
    """The replica that claimed the job: the job document's `replica` field when the API
    shows it, else the jobs row's running_on."""
    if job.get("replica"):
        return job["replica"]
    rows = rs.psql(f"SELECT running_on FROM jobs WHERE id = '{job['id']}'")
    return rows[0][0] if rows and rows[0] and rows[0][0] else None


def wait_until(predicate, timeout, what, interval=0.05):
    """Polls predicate() until it is truthy (returned) or the deadline passes (fails)."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(interval)


def is_final(job):
    return job["status"] in FINAL
