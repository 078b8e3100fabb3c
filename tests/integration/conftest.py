"""Fixtures that run the real executord binary (EXECUTORD_BIN or <repo>/build/executord).
`server`/`client`: one shared instance per test module for tests whose state does not
matter (module scope, so none outlives tests/integration when tests/security runs in the
same pytest session: its leftover checks look at the whole host).
`make_server`: a dedicated instance with extra flags, stopped after the test.
`backend`: each of direct, ephemeral and pool in turn, skipped where this host cannot run it.
EXECUTORD_TEST_STORE=postgresql runs every server on a fresh database of one throw-away
cluster (executord_client.STORE); tests marked `sqlite_only` are skipped then."""

import os

import pytest

from executord_client import BIN, PYTHON, STORE, Server, stop_pg_cluster


def pytest_report_header(config):
    return f"executord binary: {BIN}; store: {STORE}"


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only(reason): reads or checks the SQLite database "
                            "files themselves; skipped when EXECUTORD_TEST_STORE=postgresql")


def pytest_collection_modifyitems(config, items):
    if STORE == "sqlite":
        return
    for item in items:
        mark = item.get_closest_marker("sqlite_only")
        if mark is not None:
            why = mark.args[0] if mark.args else "checks SQLite's files"
            item.add_marker(pytest.mark.skip(reason=f"sqlite_only: {why}"))


@pytest.fixture(scope="session", autouse=True)
def _pg_cluster_lifetime():
    """The PostgreSQL cluster (started by the first server that needs it) ends with the
    session, on failure too."""
    yield
    stop_pg_cluster()


def _check_binary():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"executord binary not found at {BIN} (build it or set EXECUTORD_BIN)", pytrace=False)
    if not os.access(PYTHON, os.X_OK):
        pytest.fail(f"{PYTHON} (the service's default interpreter) is missing", pytrace=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _check_binary()
    base = tmp_path_factory.mktemp("shared")
    # Tests of the direct backend share this instance: it enables direct explicitly.
    s = Server(base / "data", args=["--workers", "4", "--backends", "pool,ephemeral,direct"],
               log_path=base / "executord.stderr.log")
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    return server.client()


@pytest.fixture
def make_server(tmp_path):
    """make_server(*flags, token=None, env=None, start=True, name="srv") -> Server."""
    _check_binary()
    servers = []

    def make(*args, token=None, env=None, start=True, name=None, listen=True):
        name = name or f"srv{len(servers)}"
        s = Server(tmp_path / name / "data", args=args, env=env, token=token,
                   log_path=tmp_path / name / "executord.stderr.log", listen=listen)
        servers.append(s)
        if start:
            s.start()
        return s

    yield make
    for s in servers:
        if s.running:
            s.stop(grace=5)


BACKENDS = ["direct", "ephemeral", "pool"]


@pytest.fixture(params=BACKENDS)
def backend(request, client):
    """Each backend in turn, for a module whose server enables all three (its own client);
    skipped where this host cannot run it. A module's own parametrization wins."""
    doc = client.request("GET", "/v1/backends").json()
    b = next((b for b in doc["backends"] if b["name"] == request.param), None)
    assert b is not None, f"{request.param} missing from /v1/backends"
    if not b["available"]:
        pytest.skip(f"backend {request.param} unavailable here: {b['reason']}")
    return request.param
