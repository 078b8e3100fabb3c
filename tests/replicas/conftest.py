"""Fixtures of the replica suite: a throw-away PostgreSQL cluster per test module
(tests/pg/cluster.sh: initdb in a temporary folder, a unix socket there, no TCP) and sets
of executord replicas sharing one fresh database of it (replica_kit.Replicas)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import pgcluster  # noqa: E402
from executord_client import BIN  # noqa: E402
from replica_kit import LEASE_S, make_replica_set  # noqa: E402


def pytest_report_header(config):
    return f"executord binary: {BIN}; replicas on PostgreSQL (tests/pg/cluster.sh), lease {LEASE_S}s"


@pytest.fixture(scope="module")
def cluster():
    missing = pgcluster.available()
    if missing:
        pytest.skip(f"the replica suite needs {missing}")
    c = pgcluster.Cluster()
    try:
        c.create()
        yield c
    finally:
        c.destroy()


@pytest.fixture
def make_replicas(cluster, tmp_path):
    """make_replicas(n, *flags, start=True, lease=LEASE_S) -> Replicas on a fresh database;
    stopped after the test."""
    made = []

    def make(n, *args, start=True, lease=LEASE_S):
        rs = make_replica_set(cluster, tmp_path / f"set{len(made)}", n, *args, start=start, lease=lease)
        made.append(rs)
        return rs

    yield make
    for rs in made:
        rs.stop_all()
