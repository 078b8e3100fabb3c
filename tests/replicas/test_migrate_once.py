"""Replicas starting together migrate once (issue 15): two executord processes started at
the same instant on an empty database both become ready, and schema_migrations records
each migration exactly once (the advisory lock serialised them); a third started later
applies nothing."""

import re
from pathlib import Path

from replica_kit import wait_until

REPO = Path(__file__).resolve().parents[2]


def shipped_versions():
    """The numbers of migrations_pg/NNN_*.sql, the migrations the binary embeds."""
    return sorted(int(m.group(1)) for p in (REPO / "migrations_pg").glob("*.sql")
                  if (m := re.match(r"(\d+)_", p.name)))


def migrations(rs):
    return [(int(v), int(n)) for v, n in rs.psql(
        "SELECT version, count(*) FROM schema_migrations GROUP BY version ORDER BY version")]


def ready(server):
    return server.client().request("GET", "/readyz").status == 200


def test_two_replicas_starting_at_once_migrate_once(make_replicas):
    """Both become ready; every version once; the schema is whole for both (a job runs
    through each and is seen by the other)."""
    rs = make_replicas(2, "--workers", "1", start=False)
    assert rs.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [["0"]], "an empty database"
    rs.start_all(list(rs))
    for s in rs:
        wait_until(lambda: ready(s), 30, f"{s.name} ready")
    applied = migrations(rs)
    assert applied, "no migration recorded"
    assert all(n == 1 for _, n in applied), f"a migration applied twice: {applied}"
    want = shipped_versions()
    if want:
        assert [v for v, _ in applied] == want, (applied, want)
    a, b = rs.clients()
    job = a.run("def main():\n    return 'a'\n")
    assert job["status"] == "succeeded" and b.get_job(job["id"]).json()["result"] == "a"

    late = rs.add("--workers", "1")
    wait_until(lambda: ready(late), 30, "a third replica ready")
    assert migrations(rs) == applied, "a replica started on a migrated database applied nothing"
