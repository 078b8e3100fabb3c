"""Fixtures of the network suite: the sealed topology (topology.py) built once per pytest
session, executord started inside its host namespace (nsenter, own data folder,
listening on the namespace's 127.0.0.1) and talked to from that namespace, and the probe
job (probe_job.py) submitted to it. Root only: unprivileged runs skip, or fail under
EXECUTORD_TESTS_REQUIRE_ALL=1 (CI)."""

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from executord_client import BIN, Client, Server  # noqa: E402
from topology import Topology, entered  # noqa: E402

BACKENDS = ["ephemeral", "pool"]
PROBE_SCRIPT = (HERE / "probe_job.py").read_text()
# Sandbox uid ranges of this suite's servers, apart from executord's defaults and from the
# security suite's, so instances of other suites on the host never share a slot with ours.
UID_ENV = {"EXECUTORD_SANDBOX_UID_BASE": "4200000", "EXECUTORD_POOL_UID_BASE": "4400000",
           "EXECUTORD_POOL_SIZE": "2"}
TOOLS = ("ip", "nft", "slirp4netns", "nsenter", "unshare")


def pytest_configure(config):
    # A cancelled CI run sends SIGTERM: as an interrupt, pytest still runs the fixtures'
    # teardown, which deletes the namespaces and stops executord.
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def pytest_collection_modifyitems(config, items):
    why = None
    if os.geteuid() != 0:
        why = "needs root to create network namespaces"
    elif missing := [t for t in TOOLS if not shutil.which(t)]:
        why = f"needs {', '.join(missing)} (scripts/deps.sh test installs them)"
    if why is None:
        return
    if os.environ.get("EXECUTORD_TESTS_REQUIRE_ALL") == "1":
        raise pytest.UsageError(f"network suite: {why} (EXECUTORD_TESTS_REQUIRE_ALL=1)")
    for item in items:
        item.add_marker(pytest.mark.skip(reason=why))


class NetnsClient(Client):
    """A Client whose connections are made from inside a network namespace."""

    def __init__(self, netns_path, port, token):
        super().__init__(port, token=token)
        self.netns_path = netns_path

    def request(self, *args, **kwargs):
        with entered(self.netns_path):
            return super().request(*args, **kwargs)


class NetService:
    """One executord in the topology's host namespace."""

    def __init__(self, topo, base, port, args=()):
        self.topo = topo
        self.port = port
        self.server = Server(base / "data", args=list(args), env=UID_ENV, log_path=base / "executord.stderr.log",
                             prefix=topo.in_host())

    def start(self):
        self.server.start(port=self.port)
        self.client = NetnsClient(self.topo.host_netns_path(), self.port, self.server.token)
        ours = os.stat(f"/proc/{self.server.proc.pid}/ns/net").st_ino
        assert ours == os.stat(self.topo.host_netns_path()).st_ino, "executord is not in the test's namespace"
        return self

    def stop(self):
        self.server.stop()

    def job(self, probes, backend, allow_network=True, **fields):
        """Runs the probe job; returns its final document once the job's stack is gone."""
        fields = {"backend": backend, "allow_network": allow_network, "timeout_seconds": 60,
                  "inputs": {"probes": probes}, **fields}
        assert self.server.running, "executord died:\n" + self.server.log_tail()
        doc = self.client.run(PROBE_SCRIPT, timeout=120, **fields)
        self.assert_no_stack_left()
        return doc

    def stacks(self):
        """pids of slirp4netns processes executord started and still has."""
        found = []
        for d in Path("/proc").iterdir():
            try:
                stat = (d / "stat").read_text()
            except (OSError, ValueError):
                continue
            comm, ppid = stat[stat.index("(") + 1:stat.rindex(")")], int(stat[stat.rindex(")") + 2:].split()[1])
            if comm == "slirp4netns" and ppid == self.server.proc.pid:
                found.append(int(d.name))
        return found

    def assert_no_stack_left(self, timeout=5):
        """One stack per job, stopped after it: none may outlive the job by seconds."""
        deadline = time.monotonic() + timeout
        while (left := self.stacks()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not left, f"slirp4netns still running {timeout} s after the job: {left}"

    def probe(self, probes, backend, allow_network=True):
        """Runs the probe job, which must succeed; returns its results, one per probe."""
        doc = self.job(probes, backend, allow_network)
        assert doc["status"] == "succeeded", (doc.get("error"), self.server.log_tail(1500))
        return doc["result"]


def tcp(host, port, family="inet"):
    return {"op": "tcp", "host": host, "port": port, "family": family}


@pytest.fixture(scope="session")
def topo(tmp_path_factory):
    with Topology(tmp_path_factory.mktemp("topology")) as t:
        yield t
        t.check_sealed()  # and still sealed after everything the session did


@pytest.fixture(scope="session")
def start_service(topo, tmp_path_factory):
    """start_service(*args): a started executord with these extra flags, stopped at the end
    of the session (one per set of flags)."""
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"executord binary not found at {BIN} (build it or set EXECUTORD_BIN)", pytrace=False)
    started = {}

    def start(*args):
        if args not in started:
            # The namespace is the suite's own: its ports are all free.
            port = 18080 + len(started)
            started[args] = NetService(topo, tmp_path_factory.mktemp("executord"), port, args).start()
        return started[args]

    yield start
    for s in started.values():
        s.stop()


@pytest.fixture
def service(start_service):
    """executord with its default network settings."""
    return start_service()


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param
