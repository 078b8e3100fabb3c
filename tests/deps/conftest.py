"""Fixtures of the dependencies suite (issue 14): the package kit's wheelhouse (kit.py), a
PEP 503 index serving it (index_server.py), and executord with package sources, all inside
the network suite's sealed topology (tests/network/topology.py): the index listens on the
host namespace's loopback, where executord runs, and the far namespace holds servers that
an install must not reach. Nothing the suite sends leaves the machine; no PyPI is needed.
Root only: unprivileged runs skip, or fail under EXECUTORD_TESTS_REQUIRE_ALL=1 (CI)."""

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
sys.path.insert(0, str(HERE.parent / "network"))

import kit  # noqa: E402
from executord_client import BIN  # noqa: E402
from topology import FAR_PORT, PUBLIC, Topology, die_with_parent  # noqa: E402

# The network suite's service and client (executord in the topology's host namespace),
# loaded under another name: this folder has a conftest of its own.
_spec = importlib.util.spec_from_file_location("network_conftest", HERE.parent / "network" / "conftest.py")
netsuite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(netsuite)

BACKENDS = ["ephemeral", "pool"]
PYTHON = "/usr/bin/python3"
INDEX_PORT = 18500          # the index on the host namespace's loopback
FAR_INDEX_PORT = 18501      # a second index, on the far namespace's PUBLIC address
SERVICE_PORT = 18080        # executord's ports: 18080 and up (the namespace is ours)
TOKEN_FILE_NAME = "api-token"
FAILURE_MARKER = "exd-build-failure-marker"

# Sandbox uid ranges of this suite's instances, apart from every other suite's; each
# instance gets a block of its own, as several may run at once.
def uid_env(i):
    return {"EXECUTORD_SANDBOX_UID_BASE": str(8_000_000 + 10_000 * i),
            "EXECUTORD_POOL_UID_BASE": str(9_000_000 + 10_000 * i), "EXECUTORD_POOL_SIZE": "2"}


def pytest_configure(config):
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def pytest_collection_modifyitems(config, items):
    why = None
    if os.geteuid() != 0:
        why = "needs root to create network namespaces"
    elif missing := [t for t in netsuite.TOOLS if not shutil.which(t)]:
        why = f"needs {', '.join(missing)} (scripts/deps.sh test installs them)"
    elif not any(kit.DEBIAN_WHEELS.glob("setuptools-*.whl")):
        why = "needs python3-setuptools-whl and python3-wheel-whl (scripts/deps.sh test)"
    if why is None:
        return
    if os.environ.get("EXECUTORD_TESTS_REQUIRE_ALL") == "1":
        raise pytest.UsageError(f"dependencies suite: {why} (EXECUTORD_TESTS_REQUIRE_ALL=1)")
    for item in items:
        item.add_marker(pytest.mark.skip(reason=why))


# --- the packages ------------------------------------------------------------------------

# What a hostile build script tries while pip builds it inside the install sandbox; it
# records what it saw in the package it builds (nosy.SEEN), so the job that imports the
# package returns it. TARGETS is filled in per test: the token file, executord's port...
NOSY_BUILD = '''
import os, socket
seen = {}
for label, path in TARGETS["files"].items():
    try:
        with open(path, "rb") as f:
            seen[label] = "read:" + f.read(200).decode("latin-1")
    except OSError as e:
        seen[label] = type(e).__name__
for label, (host, port) in TARGETS["tcp"].items():
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            s.settimeout(3)
            try:
                seen[label] = "ok:" + s.recv(100).decode("latin-1").strip()
            except OSError:
                seen[label] = "ok:"
    except socket.timeout:
        seen[label] = "timeout"
    except OSError as e:
        seen[label] = type(e).__name__
seen["uid"] = os.getuid()
files["nosy/__init__.py"] = ("SEEN = " + repr(seen) + "\\n").encode()
'''


class Packages:
    """The suite's wheelhouse (a find-links folder) and, per package, what a job sees."""

    def __init__(self, root, workdir):
        self.house = kit.Wheelhouse(root)
        h = self.house
        h.add_wheel("alpha", "1.0")
        h.add_wheel("alpha", "2.0")
        h.add_wheel("beta", "1.0")
        h.add_wheel("gamma", "1.0", requires=["alpha>=2"])          # pulls alpha 2.0 in
        h.add_wheel("Mixed_Case.Name", "1.0")                        # PEP 503 names on the wire
        # Ships a second alpha outside its package: PYTHONPATH=/deps/shadowpath must win.
        h.add_wheel("shadow-kit", "1.0", extra_files={"shadowpath/alpha/__init__.py": "VERSION = 'shadow'\n"})
        for v in ("1.0", "2.0"):                                     # held back by the index
            h.add_wheel("slowpkg", v)
        for name in ("bulk-a", "bulk-b", "bulk-c", "bulk-d"):        # the cache's bound
            h.add_wheel(name, "1.0", payload_bytes=1_200_000)
        h.add_built_wheel("delta", "1.0", workdir)                   # built by pip wheel
        h.add_setuptools_sdist("epsilon", "1.0")                     # built in the sandbox
        h.add_debian_build_tools()
        h.add_backend_sdist("brokenpkg", "1.0",
                            f'raise RuntimeError("{FAILURE_MARKER}: this build script gives up")\n')
        self.root = h.root

    def add_nosy(self, version, targets):
        """A hostile sdist nosy==VERSION that tries targets {"files": {label: path},
        "tcp": {label: [host, port]}} while it is built; returns its file name."""
        return self.house.add_backend_sdist("nosy", version, f"TARGETS = {targets!r}\n" + NOSY_BUILD)


class Index:
    """kit.write_index over the wheelhouse, served by index_server.py in a namespace."""

    def __init__(self, packages, workdir, netns_path, addr, port):
        self.packages, self.workdir = packages, Path(workdir)
        self.addr, self.port = addr, port
        self.log = self.workdir / "requests.log"
        self.netns_path = netns_path
        self.proc = None
        self.refresh()

    @property
    def url(self):
        return f"http://{self.addr}:{self.port}/simple"

    def refresh(self):
        """Lays the index out again (after packages were added)."""
        kit.write_index(self.packages.house, self.workdir / "root")

    def start(self):
        ready = self.workdir / "ready"
        err = open(self.workdir / "stderr.log", "ab")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net={self.netns_path}", PYTHON, str(HERE / "index_server.py"),
             str(self.workdir / "root"), self.addr, str(self.port), str(self.log), str(ready)],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err, preexec_fn=die_with_parent)
        err.close()
        deadline = time.monotonic() + 10
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("index server did not start:\n" +
                                   (self.workdir / "stderr.log").read_text(errors="replace")[-2000:])
            time.sleep(0.02)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()

    def requests(self):
        """[(peer, method, path, status)] of every request so far."""
        if not self.log.exists():
            return []
        return [tuple(line.split(" ", 3)) for line in self.log.read_text().splitlines() if line.strip()]

    def downloads(self, filename):
        """How many times the file itself was fetched."""
        return sum(1 for _, m, path, _ in self.requests() if m == "GET" and path.split("#")[0] == f"/files/{filename}")


@pytest.fixture(scope="session")
def topo(tmp_path_factory):
    with Topology(tmp_path_factory.mktemp("topology")) as t:
        yield t
        t.check_sealed()


@pytest.fixture(scope="session")
def packages(tmp_path_factory):
    work = tmp_path_factory.mktemp("kit")
    return Packages(work / "wheelhouse", work)


@pytest.fixture(scope="session")
def index(topo, packages, tmp_path_factory):
    """The index on the host namespace's loopback (reached by the install as 10.0.2.2)."""
    ix = Index(packages, tmp_path_factory.mktemp("index"), topo.host_netns_path(), "127.0.0.1", INDEX_PORT).start()
    yield ix
    ix.stop()


@pytest.fixture(scope="session")
def far_index(topo, packages, tmp_path_factory):
    """The same index on the far namespace's PUBLIC address: a remote index host."""
    ix = Index(packages, tmp_path_factory.mktemp("far-index"), f"/run/netns/{topo.far}", PUBLIC,
               FAR_INDEX_PORT).start()
    yield ix
    ix.stop()


class DepsService(netsuite.NetService):
    """One executord in the topology's host namespace, with its data folder at hand."""

    def __init__(self, topo, base, port, args, uid_block):
        super().__init__(topo, base, port, args)
        self.server.extra_env = uid_env(uid_block)
        self.data_dir = self.server.data_dir

    @property
    def token_file(self):
        return self.data_dir / TOKEN_FILE_NAME

    def envs(self):
        """Names of the published environments in the cache."""
        d = self.data_dir / "deps" / "envs"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def post(self, body):
        return self.client.post_job(body)

    def submit(self, script, backend, dependencies, **fields):
        """Submits a job (201 required); returns its id."""
        body = {"script": script, "backend": backend, "timeout_seconds": 120, "dependencies": dependencies, **fields}
        assert self.server.running, "executord died:\n" + self.server.log_tail()
        r = self.client.post_job(body)
        assert r.status == 201, (r, self.server.log_tail(1500))
        return r.json()["id"]

    def run(self, script, backend, dependencies, **fields):
        """Runs a job to its end; returns its final document."""
        job_id = self.submit(script, backend, dependencies, **fields)
        return self.client.wait_final(job_id, timeout=240)

    def ok(self, script, backend, dependencies, **fields):
        """Runs a job that must succeed; returns its document."""
        doc = self.run(script, backend, dependencies, **fields)
        if doc["status"] != "succeeded":
            logs = self.client.logs(doc["id"]).text
            raise AssertionError(f"job {doc['status']}: {doc.get('error')}\nlogs: {logs[-3000:]}\n"
                                 f"executord: {self.server.log_tail(1500)}")
        return doc

    def restart(self):
        self.stop()
        return self.start()


@pytest.fixture(scope="session")
def start_service(topo, tmp_path_factory):
    """start_service(*args, name=None): a started executord with these flags, stopped at
    the end of the session; one per (args, name): a name gives a cache of its own."""
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"executord binary not found at {BIN} (build it or set EXECUTORD_BIN)", pytrace=False)
    started = {}
    lock = threading.Lock()

    def start(*args, name=None):
        key = (args, name)
        with lock:
            if key not in started:
                n = len(started)
                started[key] = DepsService(topo, tmp_path_factory.mktemp("executord"), SERVICE_PORT + n,
                                           args, n).start()
            return started[key]

    yield start
    for s in started.values():
        s.stop()


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


# The job most tests run: what a package looks like from inside the sandbox.
IMPORT_JOB = """
import importlib, sys
def main(modules):
    out = {}
    for m in modules:
        try:
            mod = importlib.import_module(m)
            out[m] = {"version": getattr(mod, "VERSION", None), "file": mod.__file__}
        except ImportError as e:
            out[m] = {"error": type(e).__name__}
    return out
"""


def imported(doc, module):
    return doc["result"][module]


def assert_install(doc, cache_hit=None):
    """The job's install section has the contract's shape; returns it."""
    inst = doc.get("install")
    assert isinstance(inst, dict), doc
    assert set(inst) == {"environment", "cache_hit", "duration_ms"}, inst
    assert isinstance(inst["environment"], str) and len(inst["environment"]) == 64, inst
    assert int(inst["environment"], 16) >= 0
    assert isinstance(inst["cache_hit"], bool) and isinstance(inst["duration_ms"], int), inst
    if cache_hit is not None:
        assert inst["cache_hit"] is cache_hit, inst
    return inst


__all__ = ["FAR_PORT", "PUBLIC", "IMPORT_JOB", "imported", "assert_install", "FAILURE_MARKER"]
