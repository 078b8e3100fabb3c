"""A throw-away PostgreSQL cluster for the test suites (tests/pg/cluster.sh starts and
stops it: initdb in a temporary folder, a unix socket there, no TCP listener), its
databases (one fresh database per executord, so tests stay independent) and psql on it.
Used by executord_client.Server when EXECUTORD_TEST_STORE=postgresql and by tests/replicas."""

import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

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

    def create(self, timeout=60):
        """initdb and start (tests/pg/cluster.sh start); returns the URL it printed."""
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
        """Stops the server, keeping the cluster (a database restart: start() again)."""
        self._pg_ctl("stop", "-m", "fast", timeout=timeout)

    def start(self, timeout=60):
        """Starts the stopped server again, with the options cluster.sh gave it."""
        # `restart` reads the options of the last start from postmaster.opts (`start`
        # would not) and starts a stopped server too.
        self._pg_ctl("restart", "-l", str(self.dir / "server.log"), timeout=timeout)

    def _pg_ctl(self, *args, timeout=60):
        cmd = [str(pg_bin() / "pg_ctl"), "-D", str(self.dir / "data"), "-w", "-t", str(int(timeout)), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")

    def destroy(self, timeout=60):
        """Stops the cluster and removes its folder (tests/pg/cluster.sh stop)."""
        if self.dir is None:
            return
        try:
            r = subprocess.run([str(CLUSTER_SH), "stop", str(self.dir)], capture_output=True, text=True,
                               timeout=timeout)
            if r.returncode != 0:
                raise RuntimeError(f"tests/pg/cluster.sh stop {self.dir} failed ({r.returncode}):\n"
                                   f"{r.stdout}\n{r.stderr}")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = self.url = None

    # --- databases ----------------------------------------------------------------------
    def url_for(self, dbname):
        """The cluster's URL with another database name (same socket folder and user)."""
        # By hand: urlunsplit drops the empty authority of postgresql:///db?host=/dir.
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/{dbname}" + (f"?{parts.query}" if parts.query else "")

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


def pg_bin():
    """The server's programs (Debian: /usr/lib/postgresql/<version>/bin, the newest)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
                   if p.parent.name.isdigit() else 0)
    return found[-1] if found else Path("/usr/lib/postgresql/15/bin")


def socket_dir(url):
    """The host= folder of a socket URL (postgresql:///db?host=/dir)."""
    return parse_qs(urlsplit(url).query).get("host", [None])[0]


def available():
    """None when this host can run the cluster, else what is missing."""
    if os.geteuid() != 0:
        return "root (cluster.sh runs the server as the postgres user)"
    if not CLUSTER_SH.exists():
        return f"{CLUSTER_SH.relative_to(REPO)}"
    if not os.access(PSQL, os.X_OK):
        return "psql (postgresql-client-15)"
    return None
