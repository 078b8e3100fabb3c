"""A throw-away PostgreSQL cluster for the test suites (tests/pg/cluster.sh starts and
stops it: initdb in a temporary folder, a unix socket there, no TCP listener), its
databases (one fresh database per executord, so tests stay independent) and psql on it.
Used by executord_client.Server when EXECUTORD_TEST_STORE=postgresql and by tests/replicas."""

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "tests" / "pg" / "cluster.sh"
PSQL = shutil.which("psql") or "/usr/bin/psql"
PG_DUMP = shutil.which("pg_dump") or "/usr/bin/pg_dump"


class Cluster:
    """One cluster in a short folder of its own under /tmp: the socket's path
    (DIR/.s.PGSQL.5432) must fit in sun_path, which pytest's tmp folders may not."""

    def __init__(self):
        self.dir = None
        self.url = None  # the cluster's own database (cluster.sh's answer)
        self._lock = threading.Lock()
        self._serial = 0

    def start(self, timeout=60):
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="exd-pg-", dir="/tmp"))
        r = subprocess.run([str(CLUSTER_SH), "start", str(self.dir)], capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"tests/pg/cluster.sh start {self.dir} failed ({r.returncode}):\n"
                               f"{r.stdout}\n{r.stderr}")
        lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
        if not lines or not lines[-1].startswith(("postgresql://", "postgres://")):
            raise RuntimeError(f"tests/pg/cluster.sh start printed no URL:\n{r.stdout}\n{r.stderr}")
        self.url = lines[-1]
        return self.url

    def stop(self, timeout=60):
        if self.dir is None:
            return
        r = subprocess.run([str(CLUSTER_SH), "stop", str(self.dir)], capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"tests/pg/cluster.sh stop {self.dir} failed ({r.returncode}):\n"
                               f"{r.stdout}\n{r.stderr}")

    def destroy(self):
        """Stops the cluster and removes its folder (the end of a session)."""
        if self.dir is None:
            return
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = self.url = None

    # --- databases ----------------------------------------------------------------------
    def url_for(self, dbname):
        """The cluster's URL with another database name (same socket folder and user)."""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))

    def create_database(self, prefix="exd"):
        """A new, empty database; returns its URL."""
        with self._lock:
            self._serial += 1
            name = f"{prefix}_{os.getpid()}_{self._serial}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def psql(self, sql, url=None, timeout=30):
        """Runs sql through psql (unaligned, tuples only); returns the rows as lists of
        strings. Raises on any error (ON_ERROR_STOP)."""
        r = subprocess.run([PSQL, "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                            "-d", url or self.url, "-c", sql],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed ({r.returncode}) on {sql!r}: {r.stderr.strip()}")
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def dump(self, url, timeout=60):
        """Every row of the database at url, as pg_dump's SQL text (data only)."""
        r = subprocess.run([PG_DUMP, "--data-only", "--no-owner", "-d", url], capture_output=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"pg_dump failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
        return r.stdout

    def wait_accepting(self, timeout=30):
        """Polls until the server answers a query (after a start or a restart)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.psql("SELECT 1", timeout=5)
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def socket_dir(url):
    """The host= folder of a socket URL (postgresql:///db?host=/dir)."""
    return parse_qs(urlsplit(url).query).get("host", [None])[0]


def with_params(url, **params):
    """url with query parameters added or replaced."""
    parts = urlsplit(url)
    q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    q.update(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(q, safe="/"), parts.fragment))


def available():
    """None when this host can run the cluster, else what is missing."""
    if os.geteuid() != 0:
        return "root (cluster.sh runs the server as the postgres user)"
    if not CLUSTER_SH.exists():
        return f"{CLUSTER_SH.relative_to(REPO)}"
    if not os.access(PSQL, os.X_OK):
        return "psql (postgresql-client-15)"
    return None
