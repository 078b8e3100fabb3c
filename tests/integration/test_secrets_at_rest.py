"""Secrets at rest (issue 10): env_vars values stay in the data folder only while their job
may still run. Once it has ended (succeeded, failed, timed out, cancelled queued or running,
lost in a crash), with or without an Idempotency-Key, the value's bytes are in no file
under the data folder: not the database, not the WAL, not anything else (with
PostgreSQL as the store: in no row of its database either). The files are 0600, and
executord refuses a data folder someone else owns or can write into."""

import hashlib
import os
import stat
import uuid

import pytest

from executord_client import DEFAULT_BACKEND, pg_cluster

BACKENDS = list(dict.fromkeys([DEFAULT_BACKEND, "ephemeral"]))

# Returns a digest of the value, so a job proves it saw it without the value ever
# reaching its result or output. The short sleep makes every client that waits for the
# job (?wait) wait before it ends: it is then answered only after the store has scrubbed.
SEES_SECRET = """
import hashlib, os, time
def main():
    time.sleep(0.2)
    return hashlib.sha256(os.environ["API_KEY"].encode()).hexdigest()
"""
FAILS = "import time\ndef main():\n    time.sleep(0.2)\n    raise ValueError('boom')\n"
SLEEPS = "import time\ndef main():\n    print('blocking', flush=True)\n    time.sleep(1000)\n"


def new_secret():
    return f"exd-secret-{uuid.uuid4().hex}"


def digest(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


def files_holding(data_dir, secret):
    """Every regular file under data_dir whose raw bytes contain the secret."""
    needle = secret.encode()
    found = []
    for root, dirs, files in os.walk(data_dir):
        for name in files:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode):
                    continue
                with open(path, "rb") as f:
                    if needle in f.read():
                        found.append(path)
            except FileNotFoundError:
                continue  # a work folder removed meanwhile
    return found


def where_stored(srv, secret):
    """The files under the data folder holding the secret, plus "database rows" when the
    store is a PostgreSQL database with a row holding it (pg_dump of every row)."""
    found = files_holding(srv.data_dir, secret)
    if srv.store_url is not None and secret.encode() in pg_cluster().dump(srv.store_url):
        found.append("database rows")
    return found


def body(script, secret, backend, **fields):
    return {"script": script, "backend": backend, "env_vars": {"API_KEY": secret, "MODE": "x"},
            **fields}


def submit(c, doc, key):
    r = c.post_job(doc, headers={"Idempotency-Key": key} if key else None)
    assert r.status == 201, r
    return r.json()


def assert_ended_clean(srv, c, job_id, secret, status):
    """The job is final (answered to a waiter, so after the store scrubbed) and its value
    is gone from every file; GET shows the names only."""
    r = c.get_job(job_id, wait=60)
    assert r.status == 200, r
    job = r.json()
    assert job["status"] == status, job
    assert sorted(job["env_vars"]) == ["API_KEY", "MODE"], job
    assert secret not in r.text
    assert where_stored(srv, secret) == [], f"{status}: the value outlived its job"
    return job


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("with_key", [False, True], ids=["no-key", "idempotency-key"])
def test_values_gone_after_every_final_state(make_server, backend, with_key):
    srv = make_server("--workers", "1")
    c = srv.client()
    key = (lambda: f"k-{uuid.uuid4()}") if with_key else (lambda: None)
    resubmit = []

    s = new_secret()
    k = key()
    doc = body(SEES_SECRET, s, backend)
    r = c.post_job(doc, wait=60, headers={"Idempotency-Key": k} if k else None)
    assert r.status == 201, r
    job = assert_ended_clean(srv, c, r.json()["id"], s, "succeeded")
    assert job["result"] == digest(s), "the job ran with its env value"
    resubmit.append((k, doc, job["id"]))

    s = new_secret()
    k = key()
    doc = body(FAILS, s, backend)
    job = submit(c, doc, k)
    job = assert_ended_clean(srv, c, job["id"], s, "failed")
    assert "ValueError: boom" in job["error"]["message"]
    resubmit.append((k, doc, job["id"]))

    s = new_secret()
    job = submit(c, body(SLEEPS, s, backend, timeout_seconds=1), key())
    assert_ended_clean(srv, c, job["id"], s, "timed_out")

    # One worker: the running blocker keeps the next job queued, so it is cancelled
    # before it starts; then the blocker itself is cancelled while running.
    blocker_secret = new_secret()
    blocker = submit(c, body(SLEEPS, blocker_secret, backend, timeout_seconds=60), key())
    c.wait_output(blocker["id"], "blocking", timeout=30)
    s = new_secret()
    queued = submit(c, body(SEES_SECRET, s, backend), key())
    assert c.get_job(queued["id"]).json()["status"] == "queued"
    assert where_stored(srv, s), "while a job may run its value is stored (the scan works)"
    r = c.cancel(queued["id"])
    assert r.status == 200 and r.json()["status"] == "cancelled", r
    assert where_stored(srv, s) == [], "cancelled while queued: the value outlived its job"
    assert_ended_clean(srv, c, queued["id"], s, "cancelled")
    r = c.cancel(blocker["id"])
    assert r.status == 200, r
    assert_ended_clean(srv, c, blocker["id"], blocker_secret, "cancelled")

    # Idempotency still answers from the digest: same key and body, the same job; another
    # body, the existing conflict.
    for k, doc, job_id in resubmit:
        if not k:
            continue
        again = c.post_job(doc, headers={"Idempotency-Key": k})
        assert again.status == 200 and again.json()["id"] == job_id, again
        other = dict(doc, env_vars={"API_KEY": new_secret(), "MODE": "x"})
        conflict = c.post_job(other, headers={"Idempotency-Key": k})
        assert conflict.status == 409 and conflict.error["code"] == "idempotency_conflict", conflict


def test_queued_value_survives_kill_and_restart(make_server):
    srv = make_server("--workers", "1")
    c = srv.client()
    lost_secret = new_secret()
    blocker = submit(c, body(SLEEPS, lost_secret, DEFAULT_BACKEND, timeout_seconds=120), None)
    c.wait_output(blocker["id"], "blocking", timeout=30)
    s = new_secret()
    k = f"k-{uuid.uuid4()}"
    doc = body(SEES_SECRET, s, DEFAULT_BACKEND)
    queued = submit(c, doc, k)
    assert c.get_job(queued["id"]).json()["status"] == "queued"

    srv.kill()  # SIGKILL: no chance to clean up or checkpoint
    assert where_stored(srv, s), "a queued job's value must survive a crash"
    srv.start()
    c = srv.client()

    # The job left running ended as ExecutorLost at start-up, its value erased then.
    lost = assert_ended_clean(srv, c, blocker["id"], lost_secret, "failed")
    assert lost["error"]["type"] == "ExecutorLost", lost
    job = assert_ended_clean(srv, c, queued["id"], s, "succeeded")
    assert job["result"] == digest(s), "after the restart the job ran with its env value"
    again = c.post_job(doc, headers={"Idempotency-Key": k})
    assert again.status == 200 and again.json()["id"] == queued["id"], again


def db_modes(data_dir):
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in data_dir.glob("executord.db*")}


@pytest.mark.sqlite_only("the modes of SQLite's database files")
def test_database_files_are_owner_only(make_server):
    srv = make_server("--workers", "1")
    c = srv.client()
    assert c.run("def main():\n    return 1\n")["status"] == "succeeded"
    modes = db_modes(srv.data_dir)
    assert set(modes) >= {"executord.db", "executord.db-wal", "executord.db-shm"}, modes
    assert set(modes.values()) == {0o600}, modes

    # As an older build left them after a crash: world-readable, tightened at the next start.
    srv.kill()
    for p in srv.data_dir.glob("executord.db*"):
        p.chmod(0o644)
    srv.start()
    assert set(db_modes(srv.data_dir).values()) == {0o600}, db_modes(srv.data_dir)


def refused(srv, needle, fresh=True):
    """Starting fails with a non-zero exit and one error line naming the folder."""
    with pytest.raises(RuntimeError):
        srv.start(timeout=10)
    assert srv.proc.returncode != 0
    srv.errfile.close()
    lines = [ln for ln in srv.log_tail().splitlines() if "refusing to start" in ln]
    assert len(lines) == 1, srv.log_tail()
    assert str(srv.data_dir) in lines[0] and needle in lines[0], lines[0]
    if fresh:
        assert not (srv.data_dir / "executord.db").exists(), "refused before anything was stored"
    return lines[0]


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_refuses_a_data_folder_others_can_write(make_server, mode):
    srv = make_server(start=False)
    srv.data_dir.chmod(mode)
    line = refused(srv, f"(mode {mode:04o})")
    assert "writable by" in line


def test_refuses_a_data_folder_owned_by_another_user(make_server):
    srv = make_server(start=False)
    srv.data_dir.chmod(0o700)
    os.chown(srv.data_dir, 65534, 65534)
    refused(srv, "owned by uid 65534")


def test_a_symlinked_data_folder_is_checked_where_it_points(make_server, tmp_path):
    target = tmp_path / "real-data"
    target.mkdir(mode=0o700)
    srv = make_server(start=False)
    srv.data_dir.rmdir()
    srv.data_dir.symlink_to(target)
    srv.start()
    assert srv.client().run("def main():\n    return 2\n")["result"] == 2
    # what the service keeps in its data folder: the database (SQLite) or the token
    assert (target / ("executord.db" if srv.store_url is None else "api-token")).exists()
    assert srv.stop() == 0
    target.chmod(0o777)
    refused(srv, "(mode 0777)", fresh=False)
