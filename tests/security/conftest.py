"""Fixtures of the attack suite: a real executord (EXECUTORD_BIN or <repo>/build/executord)
started with a canary in its environment and the sandboxing backend under test as its
default. The backend list comes from EXECUTORD_SECURITY_BACKENDS (comma separated,
default "ephemeral,pool"), so the same attacks run against every sandboxing backend.

After every test: the service still answers /healthz and /readyz, no process runs under a
sandbox uid, no job cgroup and no work folder is left."""

import contextlib
import os
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from executord_client import BIN, PYTHON, Server  # noqa: E402

BACKENDS = [b.strip() for b in os.environ.get("EXECUTORD_SECURITY_BACKENDS", "ephemeral,pool").split(",") if b.strip()]
# executord's default sandbox uid range (EXECUTORD_SANDBOX_UID_BASE/_COUNT): 2 ids per slot.
# The suite's servers get ranges of their own by default, away from executord's defaults,
# so another instance on the host (an integration-test server, a real deployment) cannot
# be mistaken for a leftover of an attack.
UID_BASE = int(os.environ.get("EXECUTORD_SANDBOX_UID_BASE", "2600000"))
UID_END = UID_BASE + 2 * int(os.environ.get("EXECUTORD_SANDBOX_UID_COUNT", "1024"))
# The pool backend's uids (EXECUTORD_POOL_UID_BASE): per zygote a block of 258 ids (its
# root, 128 sandboxes of two ids, /work's owner), 32 blocks shared by a host's instances.
# Between jobs the pool keeps EXECUTORD_POOL_SIZE warm sandboxes (their init and job
# process each) and one zygote running, and one "job-warm-*" cgroup per warm sandbox:
# that much is expected, not left behind.
POOL_UID_BASE = int(os.environ.get("EXECUTORD_POOL_UID_BASE", "3600000"))
POOL_UID_END = POOL_UID_BASE + 32 * 258
POOL_SIZE = int(os.environ.get("EXECUTORD_POOL_SIZE", "2"))
# Each backend's server gets its own ranges, shifted by this much (the `pool` server the
# unshifted ones test_pool.py uses): every server runs a pool, and pytest may keep two
# servers alive at once, whose sandboxes must not count as each other's leftovers.
RANGE_SHIFT = 100000


def uid_ranges(backend):
    """(sandbox uid base, pool uid base) of the server attacking `backend`."""
    k = 0 if backend == "pool" else 1 + BACKENDS.index(backend)
    return UID_BASE + k * RANGE_SHIFT, POOL_UID_BASE + k * RANGE_SHIFT


def pytest_report_header(config):
    return f"executord binary: {BIN}; sandbox backends under attack: {', '.join(BACKENDS)}"


def sandbox_processes(uid_base=UID_BASE, uid_end=UID_END):
    """(pid, uid, cmdline) of host processes running under a sandbox uid."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/status") as f:
                uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
            if uid_base <= uid < uid_end:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    found.append((int(d), uid, f.read().replace(b"\0", b" ")[:200]))
        except (OSError, StopIteration, ValueError):
            continue
    return found


def job_cgroups(server_pid):
    """Job cgroup folders still present below the server's parent cgroup(s)."""
    left = []
    try:
        lines = Path(f"/proc/{server_pid}/cgroup").read_text().splitlines()
    except OSError:
        return left
    for line in lines:
        _, controllers, path = line.split(":", 2)
        dirs = [c for c in controllers.split(",") if c and not c.startswith("name=")] if controllers else ["", "unified"]
        for c in dirs:
            parent = Path("/sys/fs/cgroup") / c / path.lstrip("/") / f"executord-{server_pid}"
            if parent.is_dir():
                left += [str(p) for p in parent.iterdir() if p.is_dir() and p.name.startswith("job-")]
    return sorted(set(left))


class Target:
    """The server under attack plus what the assertions need to know about it."""

    def __init__(self, server, backend):
        self.server = server
        self.backend = backend
        self.client = server.client()
        self.uid_base, self.pool_uid_base = uid_ranges(backend)

    def run(self, script, timeout=90, **fields):
        fields.setdefault("backend", self.backend)
        return self.client.run(script, timeout=timeout, **fields)

    def submit(self, script, **fields):
        fields.setdefault("backend", self.backend)
        return self.client.submit({"script": script, **fields})

    def logs(self, job_id):
        return self.client.logs(job_id).json()

    @contextlib.contextmanager
    def watch(self, max_latency=2.0):
        """Polls /healthz while the block runs: the service must answer throughout."""
        problems, stop = [], threading.Event()

        def poll():
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    r = self.client.request("GET", "/healthz", timeout=max_latency * 2)
                    if r.status != 200:
                        problems.append(f"/healthz answered {r.status}")
                except OSError as e:
                    problems.append(f"/healthz: {e}")
                if time.monotonic() - t0 > max_latency:
                    problems.append(f"/healthz took {time.monotonic() - t0:.2f}s")
                stop.wait(0.1)

        t = threading.Thread(target=poll, daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join()
        assert not problems, problems[:5]

    def assert_healthy(self):
        assert self.server.running, "executord died:\n" + self.server.log_tail()
        r = self.client.request("GET", "/healthz", timeout=10)
        assert r.status == 200, r
        r = self.client.request("GET", "/readyz", timeout=10)
        assert r.status == 200, r

    def assert_nothing_left(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            procs = sandbox_processes(self.uid_base, self.uid_base + (UID_END - UID_BASE))
            pool_procs = sandbox_processes(self.pool_uid_base,
                                           self.pool_uid_base + (POOL_UID_END - POOL_UID_BASE))
            if len(pool_procs) <= 1 + 2 * POOL_SIZE:
                pool_procs = []
            cgroups = job_cgroups(self.server.proc.pid)
            warm = [c for c in cgroups if Path(c).name.startswith("job-warm-")]
            cgroups = [c for c in cgroups if c not in warm] + \
                (warm if len({Path(c).name for c in warm}) > POOL_SIZE else [])
            procs += pool_procs
            work = [p.name for p in (self.server.data_dir / "work").iterdir() if not p.name.startswith(".")] \
                if (self.server.data_dir / "work").is_dir() else []
            if not procs and not cgroups and not work:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"left behind: processes={procs} cgroups={cgroups} work={work}")
            time.sleep(0.1)


@pytest.fixture(scope="session", params=BACKENDS)
def target(request, tmp_path_factory):
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"executord binary not found at {BIN} (build it or set EXECUTORD_BIN)", pytrace=False)
    if not os.access(PYTHON, os.X_OK):
        pytest.fail(f"{PYTHON} is missing", pytrace=False)
    backend = request.param
    base = tmp_path_factory.mktemp(f"security-{backend}")
    # The uid ranges and pool size the checks assume go to the server too (Server drops
    # the caller's EXECUTORD_* variables).
    uid_base, pool_uid_base = uid_ranges(backend)
    passed = {"EXECUTORD_SANDBOX_UID_BASE": str(uid_base),
              "EXECUTORD_SANDBOX_UID_COUNT": str((UID_END - UID_BASE) // 2),
              "EXECUTORD_POOL_UID_BASE": str(pool_uid_base),
              "EXECUTORD_POOL_SIZE": str(POOL_SIZE)}
    server = Server(base / "data", args=["--backend", backend, "--workers", "4"],
                    env=passed, log_path=base / "executord.stderr.log")
    server.start()
    t = Target(server, backend)
    r = t.client.request("GET", "/v1/backends")
    state = {b["name"]: b for b in r.json()["backends"]}.get(backend)
    if not state or not state["available"]:
        server.stop()
        pytest.fail(f"backend {backend} is not available: {state}", pytrace=False)
    # Safety first: these attacks write to /, /etc, /work, /tmp and fill disks. Against a
    # backend that does not isolate (e.g. `direct`, which runs jobs as the service's
    # user on the host's filesystem) they would damage this machine, so refuse to go on
    # unless a probe job proves it runs in a sandbox.
    probe = t.run("import os, socket\ndef main():\n    return [socket.gethostname(), os.getuid(),"
                  " os.access('/', os.W_OK), os.path.exists('/etc/shadow')]\n")
    if probe.get("result") != ["sandbox", 1000, False, False]:
        server.stop()
        pytest.exit(f"backend {backend} does not sandbox its jobs (probe: {probe.get('result')!r} "
                    f"{probe.get('error')!r}); refusing to run the attack suite against it", returncode=2)
    yield t
    server.stop()


@pytest.fixture(autouse=True)
def _service_survives(request, target):
    yield
    target.assert_healthy()
    target.assert_nothing_left()
