"""Black-box helpers for the integration suite: start/stop the real executord binary and
talk to it over real HTTP with the standard library only (http.client, no requests).
Tests import this module directly; conftest.py only wraps it in fixtures."""

import base64
import fcntl
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pgcluster

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("EXECUTORD_BIN") or str(REPO / "build" / "executord")
PYTHON = "/usr/bin/python3"  # the interpreter the service uses by default


def _configured_default_backend():
    """The --backend default compiled into executord (src/config.c's option table)."""
    try:
        src = (REPO / "src" / "config.c").read_text()
        m = re.search(r'\{"backend",\s*"EXECUTORD_BACKEND",\s*\w+,\s*"(\w+)"', src)
        if m:
            return m.group(1)
    except OSError:
        pass
    return "direct"


# EXECUTORD_IT_BACKEND=ephemeral|pool|direct starts every server with that --backend, so the
# whole suite runs on it; unset, servers run with executord's own default.
FORCED_BACKEND = os.environ.get("EXECUTORD_IT_BACKEND")
DEFAULT_BACKEND = FORCED_BACKEND or _configured_default_backend()
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FINAL = {"succeeded", "failed", "timed_out", "cancelled"}
# A variable in executord's own environment that no job may see.
CANARY_NAME = "EXECUTORD_IT_CANARY_SECRET"
CANARY_VALUE = "canary-4f1d2b7e"
# EXECUTORD_EXPECT_SANITIZER=1 (a build with -DEXECUTORD_SANITIZE=ON): stopping a server
# fails if its stderr holds an AddressSanitizer, LeakSanitizer or UBSan report.
EXPECT_SANITIZER = os.environ.get("EXECUTORD_EXPECT_SANITIZER") == "1"
SANITIZER_MARKERS = (b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer", b"runtime error:",
                     b"WARNING: AddressSanitizer", b"ERROR: UndefinedBehaviorSanitizer")

# EXECUTORD_TEST_STORE=postgresql: every Server without a --store of its own gets a fresh
# database of one throw-away cluster per test process (tests/pg/cluster.sh, started on
# first use, removed at exit), so the suite runs against the PostgreSQL store; unset or
# "sqlite", executord's default (SQLite in the data folder).
STORE = os.environ.get("EXECUTORD_TEST_STORE") or "sqlite"
if STORE not in ("sqlite", "postgresql"):
    raise RuntimeError(f"EXECUTORD_TEST_STORE={STORE!r}: sqlite or postgresql")
_cluster = None
_cluster_lock = threading.Lock()
_store_urls = {}  # data folder -> its database: a restart on the same folder finds its jobs


def pg_cluster():
    """The test process's cluster, started on first use."""
    global _cluster
    with _cluster_lock:
        if _cluster is None:
            missing = pgcluster.available()
            if missing:
                raise RuntimeError(f"EXECUTORD_TEST_STORE=postgresql needs {missing}")
            c = pgcluster.Cluster()
            try:
                c.create()
            except Exception:
                c.destroy()
                raise
            _cluster = c
        return _cluster


def stop_pg_cluster():
    """Removes the cluster (the session's end); a later pg_cluster() starts another."""
    global _cluster
    with _cluster_lock:
        c, _cluster = _cluster, None
        _store_urls.clear()
    if c is not None:
        c.destroy()


def store_args_for(data_dir, args=()):
    """["--store", URL] of data_dir's database for EXECUTORD_TEST_STORE=postgresql (the
    same database at every start), [] otherwise or when args choose a store already."""
    if STORE != "postgresql" or any(a == "--store" or a.startswith("--store=") for a in args):
        return []
    # A 2 s lease, not the default 10 s: a replica restarted on the same data folder (same
    # replica id) first waits for its previous life's lease to lapse.
    lease = [] if any(a.startswith("--replica-lease-seconds") for a in args) else ["--replica-lease-seconds", "2"]
    return ["--store", store_url_for(data_dir), *lease]


def store_url_for(data_dir):
    """The database of the executord using data_dir (created on first use)."""
    key = os.path.realpath(data_dir)
    cluster = pg_cluster()
    with _cluster_lock:
        url = _store_urls.get(key)
    if url is None:
        url = cluster.create_database()
        with _cluster_lock:
            url = _store_urls.setdefault(key, url)
    return url


# --- contract log -----------------------------------------------------------------------
# EXECUTORD_CONTRACT_LOG=/path/file.jsonl: every HTTP response this test process receives
# through http.client (the Client below, and tests that use http.client.HTTPConnection
# directly) is appended to that file as one JSON line, for tests/openapi/contract.js to
# validate against openapi.yaml. Tests that speak raw HTTP over sockets are not recorded.
CONTRACT_LOG = os.environ.get("EXECUTORD_CONTRACT_LOG") or None
_CONTRACT_JSON_CAP = 16 << 20   # JSON bodies are kept whole up to this size (validated)
_CONTRACT_OTHER_CAP = 64 << 10  # other bodies are only checked for their media type
_CONTRACT_REQ_CAP = 4 << 10     # the request body is kept for the report only


def _contract_body(data, content_type, cap_json=_CONTRACT_JSON_CAP):
    """The fields describing a body: text when it is UTF-8, else base64 (noted)."""
    is_json = "json" in (content_type or "").lower()
    cap = cap_json if is_json else _CONTRACT_OTHER_CAP
    out = {"body_bytes": len(data)}
    if len(data) > cap:
        data = data[:cap]
        out["body_truncated"] = True
    try:
        out["body"] = data.decode("utf-8")
    except UnicodeDecodeError:
        out["body"] = base64.b64encode(data).decode()
        out["body_encoding"] = "base64"  # not valid UTF-8
    return out


def contract_record(method, path, status, headers, body, request_body=None, request_content_type=None):
    """Appends one response to CONTRACT_LOG: a single O_APPEND write of one line, under an
    exclusive flock, so threads and processes writing at once never interleave."""
    if not CONTRACT_LOG:
        return
    headers = headers or {}
    ctype = headers.get("Content-Type")
    entry = {
        "test": os.environ.get("PYTEST_CURRENT_TEST", "").removesuffix(" (call)"),
        "method": method,
        "path": path,
        "status": status,
        "content_type": ctype,
        "headers": {k.lower(): v for k, v in headers.items()},
    }
    entry.update(_contract_body(body or b"", ctype))
    if request_body:
        if isinstance(request_body, str):
            request_body = request_body.encode()
        if isinstance(request_body, (bytes, bytearray)):
            req = bytes(request_body[:_CONTRACT_REQ_CAP])
            entry["request_body"] = req.decode("utf-8", "replace")
            entry["request_body_bytes"] = len(request_body)
            entry["request_content_type"] = request_content_type
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode()
    fd = os.open(CONTRACT_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)  # releases the lock


def _install_contract_recorder():
    """Hooks http.client.HTTPConnection (request + getresponse) so that every response is
    read whole, recorded, and handed to the caller unchanged (its body replayed from memory;
    keep-alive and Connection: close behave as before)."""
    conn_cls = http.client.HTTPConnection
    if getattr(conn_cls, "_executord_contract", False):
        return
    orig_request, orig_getresponse = conn_cls.request, conn_cls.getresponse

    def request(self, method, url, body=None, headers={}, **kw):  # noqa: B006 (http.client's signature)
        ctype = next((v for k, v in (headers or {}).items() if k.lower() == "content-type"), None)
        self._contract_req = (method, url, body if isinstance(body, (bytes, bytearray, str)) else None, ctype)
        return orig_request(self, method, url, body, headers, **kw)

    def getresponse(self):
        r = orig_getresponse(self)
        req = getattr(self, "_contract_req", None)
        if req is None:
            return r
        self._contract_req = None
        data = r.read()  # whole body (Content-Length or chunked); closes r.fp
        # Replay it to the caller: read() / read(n) / readinto() work on the copy.
        r.fp = io.BufferedReader(io.BytesIO(data))
        r.length = len(data)
        r.chunked = False
        try:
            contract_record(req[0], req[1], r.status, r.headers, data, req[2], req[3])
        except Exception as e:  # never let recording break a test
            print(f"executord_client: contract log write failed: {e!r}")
        return r

    conn_cls.request, conn_cls.getresponse = request, getresponse
    conn_cls._executord_contract = True


if CONTRACT_LOG:
    _install_contract_recorder()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive .get()
        self.body = body
        self.elapsed = elapsed

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    @property
    def error(self):
        """The error object of an error response ({"code", "message", ...})."""
        doc = self.json()
        assert set(doc) == {"error"}, doc
        return doc["error"]

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


class Client:
    def __init__(self, port, host="127.0.0.1", token=None, timeout=60):
        self.host, self.port, self.token, self.timeout = host, port, token, timeout

    # --- raw --------------------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=None):
        """body: dict/list (sent as JSON), bytes/str (sent as is) or None."""
        hdrs = {}
        if self.token is not None:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            # What every real client sends (curl --json, the Python client); a test of
            # other types passes its own Content-Type (None: none at all).
            hdrs["Content-Type"] = "application/json"
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body).encode()
        if isinstance(body, str):
            body = body.encode()
        hdrs.update(headers or {})
        hdrs = {k: v for k, v in hdrs.items() if v is not None}
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)
        t0 = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, r.headers, data, time.monotonic() - t0)
        finally:
            conn.close()

    # --- API ----------------------------------------------------------------------------
    def post_job(self, body, wait=None, headers=None, timeout=None):
        path = "/v1/jobs" + (f"?wait={wait}" if wait is not None else "")
        return self.request("POST", path, body, headers=headers, timeout=timeout)

    def submit(self, body, wait=None, headers=None):
        """POST that must succeed with 201; returns the job document."""
        r = self.post_job(body, wait=wait, headers=headers)
        assert r.status == 201, r
        return r.json()

    def get_job(self, job_id, wait=None, timeout=None):
        path = f"/v1/jobs/{job_id}" + (f"?wait={wait}" if wait is not None else "")
        return self.request("GET", path, timeout=timeout)

    def logs(self, job_id, stream=None, offset=None):
        q = []
        if stream is not None:
            q.append(f"stream={stream}")
        if offset is not None:
            q.append(f"offset={offset}")
        return self.request("GET", f"/v1/jobs/{job_id}/logs" + ("?" + "&".join(q) if q else ""))

    def cancel(self, job_id):
        return self.request("POST", f"/v1/jobs/{job_id}/cancel")

    def delete(self, job_id):
        return self.request("DELETE", f"/v1/jobs/{job_id}")

    def list(self, **params):
        from urllib.parse import urlencode

        q = urlencode({k: v for k, v in params.items() if v is not None})
        return self.request("GET", "/v1/jobs" + ("?" + q if q else ""))

    def wait_final(self, job_id, timeout=60):
        """Waits (with ?wait=) until the job is final; returns its document."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"job {job_id} not final after {timeout}s: {self.get_job(job_id)}")
            r = self.get_job(job_id, wait=max(1, min(int(left), 30)), timeout=left + 30)
            assert r.status == 200, r
            doc = r.json()
            if doc["status"] in FINAL:
                return doc

    def run(self, script, timeout=60, **fields):
        """Submits a job and returns its final document."""
        body = {"script": script, **fields}
        job = self.submit(body)
        return self.wait_final(job["id"], timeout=timeout)

    def wait_status(self, job_id, statuses, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            doc = self.get_job(job_id).json()
            if doc["status"] in statuses:
                return doc
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} never reached {statuses}: {doc}")

    def wait_output(self, job_id, needle, stream="stdout", timeout=20):
        """Polls the raw stream until it contains needle; returns the Response."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.logs(job_id, stream=stream, offset=0)
            if r.status == 200 and needle in r.text:
                return r
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} never appeared in {stream} of {job_id}: {self.logs(job_id).text}")


class Server:
    """One executord process. Restartable on the same data dir (each start picks a fresh
    port unless one is given); stderr goes to <log_path> for post-mortems."""

    def __init__(self, data_dir, args=(), env=None, log_path=None, token=None, listen=True, prefix=()):
        """token: the one given by --api-token-file in args; None = the token executord
        generates in <data_dir>/api-token, read after each start (or none at all with
        --insecure-no-auth). prefix: a command the binary runs under that execs it in
        place (e.g. `ip netns exec NS`), so proc is still executord."""
        self.data_dir = Path(data_dir)
        self.prefix = list(prefix)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.log_path = Path(log_path) if log_path else self.data_dir.parent / (self.data_dir.name + ".stderr.log")
        self.token = token
        self.given_token = token
        self.listen = listen
        # The PostgreSQL database this instance uses (EXECUTORD_TEST_STORE=postgresql or a
        # --store in args), None for SQLite in the data folder.
        self.store_url = self._given_store()
        self.proc = None
        self.port = None
        self.starts = 0

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXECUTORD_")}
        env[CANARY_NAME] = CANARY_VALUE
        env.update(self.extra_env)
        return env

    def _given_store(self):
        for i, a in enumerate(self.args):
            if a == "--store" and i + 1 < len(self.args):
                return self.args[i + 1] or None
            if a.startswith("--store="):
                return a.split("=", 1)[1] or None
        return self.extra_env.get("EXECUTORD_STORE") or None

    def store_args(self):
        """--store for EXECUTORD_TEST_STORE=postgresql, unless the test chose a store
        itself (SQLite's empty value included)."""
        if "EXECUTORD_STORE" in self.extra_env:
            return []
        args = store_args_for(self.data_dir, self.args)
        if args:
            self.store_url = args[1]
        return args

    def start(self, timeout=20, port=None):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.port = port or free_port()
        cmd = [*self.prefix, BIN]
        if self.listen:
            cmd += ["--listen", f"127.0.0.1:{self.port}"]
        cmd += ["--data-dir", str(self.data_dir)] + self.args
        cmd += self.store_args()
        if FORCED_BACKEND and not any(a.startswith("--backend") for a in self.args):
            cmd += ["--backend", FORCED_BACKEND]
        if self.uses_direct(cmd) and not any(a.startswith("--backends") for a in cmd):
            cmd += ["--backends", "pool,ephemeral,direct"]  # direct is an explicit opt-in
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(cmd)}\n".encode())
        offset = self.log_path.stat().st_size
        self.log_offset = offset
        self.errfile = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.errfile,
                                     stdin=subprocess.DEVNULL, env=self.env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"executord exited with {self.proc.returncode} during start-up:\n{self.log_tail()}")
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                if b"listening on" in f.read():
                    self.token = self.given_token if self.given_token is not None else self.generated_token()
                    return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"executord did not log 'listening on' within {timeout}s:\n{self.log_tail()}")

    @staticmethod
    def uses_direct(cmd):
        return any(a == "--backend=direct" or (a == "direct" and i > 0 and cmd[i - 1] == "--backend")
                   for i, a in enumerate(cmd))

    def generated_token(self):
        """The token executord created in the data folder, None when it serves without one."""
        try:
            return (self.data_dir / "api-token").read_text().strip()
        except FileNotFoundError:
            return None

    def count_jobs(self):
        """The jobs in this instance's store, counted in the store itself (not through the
        API): a refused request must have written none."""
        if self.store_url is not None:
            return int(pg_cluster().psql("SELECT count(*) FROM jobs", url=self.store_url)[0][0])
        import sqlite3
        con = sqlite3.connect(f"file:{self.data_dir / 'executord.db'}?mode=ro", uri=True)
        try:
            return con.execute("SELECT count(*) FROM jobs").fetchone()[0]
        finally:
            con.close()

    def log_tail(self, n=4000):
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def client(self, token="default"):
        return Client(self.port, token=self.token if token == "default" else token)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace=10):
        """SIGTERM, then SIGKILL after `grace` seconds. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errfile.close()
        self.check_sanitizer_log()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self.errfile.close()
            self.check_sanitizer_log()

    def check_sanitizer_log(self):
        """With EXPECT_SANITIZER: raises if this run's stderr holds a sanitizer report."""
        if not EXPECT_SANITIZER:
            return
        with open(self.log_path, "rb") as f:
            f.seek(getattr(self, "log_offset", 0))
            text = f.read()
        for marker in SANITIZER_MARKERS:
            at = text.find(marker)
            if at >= 0:
                report = text[max(0, at - 200):at + 6000].decode("utf-8", "replace")
                raise AssertionError(f"sanitizer report in {self.log_path}:\n{report}")


def auth_header(server):
    """The Authorization header line for raw-socket tests (empty when no token is needed)."""
    return f"Authorization: Bearer {server.token}\r\n".encode() if server.token else b""


def processes_with_arg(arg):
    """PIDs of live (non-zombie) processes having `arg` as one argv element."""
    want = arg.encode()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if want in argv:
            found.append(int(d))
    return found


def wait_gone(arg, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not processes_with_arg(arg):
            return True
        time.sleep(0.05)
    return False
