"""What both clients send and map alike: Tracecat's defaults (timeout 300 s, memory
2048 MB, CPU 300 s) unless the caller says otherwise, the job id on errors, and a failed
install of `dependencies` as PackageInstallError. Each case runs with the blocking client
and with the asyncio one (driven to completion by asyncio.run)."""

import asyncio
import threading
import time
import uuid

import pytest

from exd_fixtures import client_of, exd_make_server, url_of  # noqa: F401 (fixtures)
from executord import (
    AsyncExecutorClient,
    ExecutorUnavailableError,
    PackageInstallError,
    SandboxError,
    SandboxExecutionError,
)
from executord_client import UUID_RE


class Both:
    """One of the two clients with a blocking face: the asyncio one's calls run to their
    end on a fresh loop each."""

    def __init__(self, kind, server, **kwargs):
        self.kind = kind
        if kind == "sync":
            self.c = client_of(server, **kwargs)
        else:
            self.c = AsyncExecutorClient(url_of(server), token=server.token, **kwargs)

    def __getattr__(self, name):
        method = getattr(self.c, name)
        if self.kind == "sync":
            return method
        return lambda *a, **kw: asyncio.run(method(*a, **kw))


CLIENTS = pytest.mark.parametrize("kind", ["sync", "async"])


def limits_of(job):
    lim = job["limits"]
    return lim["timeout_seconds"], lim["memory_mb"], lim["cpu_seconds"]


@CLIENTS
def test_tracecat_defaults_are_sent_unless_the_caller_says_otherwise(exd_make_server, kind):
    # Service defaults unlike Tracecat's, so that what the client sends shows.
    srv = exd_make_server("--default-timeout-seconds", "9", "--default-memory-mb", "256",
                          "--default-cpu-seconds", "7")
    c = Both(kind, srv)
    one = "def main():\n    return 1\n"
    assert limits_of(c.execute(one).job) == (300, 2048, 300)
    assert limits_of(c.submit(one, wait=30)) == (300, 2048, 300)
    assert limits_of(c.execute(one, timeout_seconds=77, limits={"memory_mb": 300}).job) == \
        (77, 300, 300)
    # None leaves a limit to the service.
    assert limits_of(c.execute(one, timeout_seconds=None, limits={"cpu_seconds": None}).job) == \
        (9, 2048, 7)
    # A client made to send none: the service's defaults throughout.
    bare = Both(kind, srv, default_limits={})
    assert limits_of(bare.execute(one, timeout_seconds=None).job) == (9, 256, 7)


@CLIENTS
def test_lost_service_error_carries_the_job_id(exd_make_server, kind):
    """The service dies while a run_python long-polls its job: the error names the job."""
    srv = exd_make_server()
    tag = uuid.uuid4().hex
    c = Both(kind, srv, max_retries=1, backoff=0.05, poll_wait=1)
    outcome = {}

    def call():
        try:
            c.run_python("import time\ndef main():\n    time.sleep(60)\n", labels={"probe": tag})
        except SandboxError as e:
            outcome["error"] = e

    t = threading.Thread(target=call)
    t.start()
    watcher = client_of(srv)
    deadline = time.monotonic() + 30
    while not [j for j in watcher.list_jobs(label=f"probe:{tag}")["jobs"] if j["status"] == "running"]:
        assert time.monotonic() < deadline, "the job never ran"
        time.sleep(0.05)
    job = watcher.list_jobs(label=f"probe:{tag}")["jobs"][0]
    time.sleep(1.5)  # past the submission's 1 s hold: the client is in a GET long-poll
    srv.proc.kill()
    srv.proc.wait(10)
    t.join(30)
    assert not t.is_alive()
    e = outcome.get("error")
    assert isinstance(e, ExecutorUnavailableError), outcome
    assert e.job_id == job["id"]


@CLIENTS
def test_failed_install_is_package_install_error(exd_make_server, tmp_path, kind):
    wheels = tmp_path / "wheelhouse"
    wheels.mkdir()  # empty: no requirement can be found in it
    srv = exd_make_server("--pip-find-links", str(wheels))
    c = Both(kind, srv)
    name = f"executord-absent-{uuid.uuid4().hex[:8]}"
    with pytest.raises(PackageInstallError) as ei:
        c.run_python("def main():\n    return 1\n", dependencies=[f"{name}==1.0"])
    e = ei.value
    assert not isinstance(e, SandboxExecutionError)  # Tracecat's sibling class
    assert e.error_type == "PackageInstallError" and e.status == "failed"
    assert UUID_RE.match(e.job_id)
    assert name in e.message, e.message  # pip's message names what it could not find
    assert name in (e.stdout or "") + (e.stderr or "")  # pip's output is kept with the job
