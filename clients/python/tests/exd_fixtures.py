"""Fixtures running the real executord binary (EXECUTORD_BIN or <repo>/build/executord)
through the integration suite's harness (tests/integration/executord_client.py).

Test modules import these fixtures by name (not through conftest.py), with names of their
own, so this suite can share a pytest session with tests/integration, whose conftest
defines `server`/`client`/`make_server` too."""

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
for p in (str(HERE.parent), str(REPO / "tests" / "integration")):  # the package, the harness
    if p not in sys.path:
        sys.path.insert(0, p)

from executord_client import BIN, PYTHON, Server  # noqa: E402

from executord import ExecutorClient  # noqa: E402


def check_binary():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"executord binary not found at {BIN} (build it or set EXECUTORD_BIN)",
                    pytrace=False)
    if not os.access(PYTHON, os.X_OK):
        pytest.fail(f"{PYTHON} (the service's default interpreter) is missing", pytrace=False)


def url_of(server):
    return f"http://127.0.0.1:{server.port}"


def client_of(server, **kwargs):
    """A client of `server` holding its token: the one executord generated in the data
    folder at start (Server reads it), or the one given with --api-token-file."""
    return ExecutorClient(url_of(server), token=server.token, **kwargs)


@pytest.fixture(scope="module")
def exd_server(tmp_path_factory):
    """One shared executord per test module."""
    check_binary()
    base = tmp_path_factory.mktemp("client-shared")
    s = Server(base / "data", args=["--workers", "2"], log_path=base / "executord.stderr.log")
    s.start()
    yield s
    s.stop()


@pytest.fixture
def exd_client(exd_server):
    return client_of(exd_server, request_timeout=30, backoff=0.1, max_backoff=1)


@pytest.fixture
def exd_make_server(tmp_path):
    """exd_make_server(*flags, token=None) -> a started Server, stopped after the test
    (token: the content of the --api-token-file among the flags; None = the generated one)."""
    check_binary()
    servers = []

    def make(*args, token=None):
        name = f"srv{len(servers)}"
        s = Server(tmp_path / name / "data", args=args, token=token,
                   log_path=tmp_path / name / "executord.stderr.log")
        servers.append(s)
        s.start()
        return s

    yield make
    for s in servers:
        if s.running:
            s.stop(grace=5)
