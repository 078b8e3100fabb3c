"""The storage quota (issue 11), through the real binary. A small quota filled by jobs'
output evicts the output of the oldest finished jobs first (flagged, status kept), then
their results; when only queued and running jobs hold it, a new job gets 507 with
Retry-After, /readyz says why. On a real full disk (a 20 MB tmpfs as the data folder,
filled by jobs, then by another file to the last byte) POST answers 507 and never 500,
running jobs end with StorageFull, DELETE still works, queued jobs wait and run once
there is room, /readyz recovers, and the database passes PRAGMA integrity_check."""

import contextlib
import os
import re
import sqlite3
import subprocess
import time
import uuid

import pytest

MIB = 1 << 20
STORAGE_LINE = re.compile(r"^executord_storage_(\w+?)(?:\{what=\"(\w+)\"\})? (\S+)$", re.M)


def storage_metrics(c):
    r = c.request("GET", "/metrics")
    assert r.status == 200, r
    return {(m.group(1), m.group(2)): float(m.group(3)) for m in STORAGE_LINE.finditer(r.text)}


def readyz(srv, token=True):
    """/readyz with the token, or (token=False) as a probe without one."""
    c = srv.client() if token else srv.client(token=None)
    return c.request("GET", "/readyz")


def assert_507(r, needle):
    assert r.status == 507, r
    assert r.error["code"] == "insufficient_storage", r.error
    assert needle in r.error["message"], r.error["message"]
    assert int(r.headers["Retry-After"]) >= 1, dict(r.headers)


def print_mib(tag):
    """A script printing 1 MiB (with its newline) to stdout, returning tag."""
    return f"def main():\n    print('o' * ({MIB} - 1))\n    return {tag!r}\n"


def integrity_check(db_path):
    """Read-only, after the server stopped: PRAGMA integrity_check of the job store."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return con.execute("PRAGMA integrity_check").fetchall()
    finally:
        con.close()


@contextlib.contextmanager
def tmpfs(path, size):
    """A size-capped tmpfs at path (root only), unmounted on the way out."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)]).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)


def fill_disk(path):
    """Writes zeros to path until the filesystem says ENOSPC; returns the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    written = 0
    try:
        while True:
            written += os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == 28, e  # ENOSPC
    finally:
        os.close(fd)
    return written


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout}s")


# --- the quota ----------------------------------------------------------------------


def test_quota_evicts_oldest_finished_output_first_then_refuses(make_server):
    srv = make_server("--workers", "2", "--max-storage-mb", "5")
    c = srv.client()
    big = {"max_output_bytes": 2 * MIB}

    # Submitted first but finishing second: eviction follows finish time, not submission.
    slow = c.submit({"script": "import time\n" + print_mib("slow").replace(
        "def main():\n", "def main():\n    time.sleep(1.5)\n"), "limits": big})
    fast = c.submit({"script": print_mib("fast"), "limits": big})
    done = [c.wait_final(fast["id"]), c.wait_final(slow["id"])]
    assert done[0]["finished_at"] < done[1]["finished_at"], done
    for i in range(6):
        done.append(c.run(print_mib(i), limits=big))
        # After every job: what was evicted are the first in finish order, none after.
        jobs = sorted((c.get_job(d["id"]).json() for d in done), key=lambda j: j["finished_at"])
        flags = [j["output_evicted"] for j in jobs]
        assert flags == sorted(flags, reverse=True), [(j["result"], f) for j, f in zip(jobs, flags)]
        assert all(j["status"] == "succeeded" for j in jobs), jobs
    jobs = [c.get_job(d["id"]).json() for d in done]
    evicted = [j for j in jobs if j["output_evicted"]]
    kept = [j for j in jobs if not j["output_evicted"]]
    assert len(evicted) >= 3 and len(kept) >= 2, [(j["result"], j["output_evicted"]) for j in jobs]
    assert jobs[0]["output_evicted"] and jobs[0]["result"] == "fast"

    # An evicted job keeps its status, result and sizes; its logs are empty and say why.
    e = evicted[-1]
    assert e["status"] == "succeeded" and not e["result_evicted"] and e["result"] is not None, e
    assert e["stdout_bytes"] == MIB, e
    logs = c.logs(e["id"])
    assert logs.status == 200, logs
    assert logs.json()["stdout"] == "" and logs.json()["output_evicted"] is True, logs.json()
    assert logs.json()["stdout_bytes"] == MIB
    raw = c.logs(e["id"], stream="stdout", offset=0)
    assert raw.status == 200 and raw.body == b"", raw
    assert raw.headers["X-Output-Evicted"] == "true" and raw.headers["X-Output-Bytes"] == "0"
    k = kept[-1]
    assert len(c.logs(k["id"]).json()["stdout"]) == MIB and "X-Output-Evicted" not in \
        c.logs(k["id"], stream="stdout").headers
    m = storage_metrics(c)
    assert m[("quota_bytes", None)] == 5 * MIB
    assert m[("used_bytes", None)] <= 5 * MIB
    assert m[("evictions_total", "output")] == len(evicted)
    assert m[("full", None)] == 0

    # Running and queued jobs fill the quota: the remaining finished outputs go first;
    # once what is left to evict could not make room, new jobs get 507 (never 500) with
    # Retry-After, and what finished jobs still hold is kept.
    blockers = [c.submit({"script": "import time\ndef main():\n    time.sleep(1000)\n"})["id"]
                for _ in range(2)]
    for b in blockers:
        c.wait_status(b, {"running"})
    fillers, refused = [], None
    for i in range(8):
        r = c.post_job({"script": "def main(**kw):\n    return len(kw)\n",
                        "inputs": {"pad": "q" * 1_200_000}})
        if r.status != 201:
            refused = r
            break
        fillers.append(r.json()["id"])
    assert refused is not None and 3 <= len(fillers) <= 5, (len(fillers), refused)
    assert_507(refused, "storage quota")
    for j in jobs:
        now = c.get_job(j["id"]).json()
        assert now["output_evicted"] and not now["result_evicted"], now
        assert now["status"] == "succeeded" and now["result"] == j["result"], now
    probe = readyz(srv, token=False)
    assert probe.status == 503 and probe.error["code"] == "not_ready", probe
    assert "storage full" in probe.error["message"], probe.error
    m = storage_metrics(c)
    assert m[("full", None)] == 1 and m[("evictions_total", "output")] == len(jobs), m
    assert m[("evictions_total", "result")] == 0, m

    # Cancelled, they still hold their inputs; deleted, the room is back.
    for jid in fillers + blockers:
        assert c.cancel(jid).status == 200
    assert_507(c.post_job({"script": "def main(**kw):\n    return 0\n",
                           "inputs": {"pad": "q" * 1_200_000}}), "storage quota")
    for jid in blockers + fillers:
        assert c.delete(jid).status == 204
    assert readyz(srv).status == 200
    assert c.run("def main():\n    return 'room'\n")["result"] == "room"
    assert srv.stop() == 0
    if srv.store_url is None:  # SQLite's file; PostgreSQL keeps its own
        assert integrity_check(srv.data_dir / "executord.db") == [("ok",)]


def test_results_are_evicted_after_outputs(make_server):
    srv = make_server("--workers", "1", "--max-storage-mb", "5")
    c = srv.client()
    limits = {"max_output_bytes": 2 * MIB}
    returns_mib = "def main(i):\n    print(i)\n    return str(i) * ({} - 2)\n".format(MIB)
    done = [c.run(returns_mib, inputs={"i": i}, limits=limits) for i in range(7)]
    assert all(d["status"] == "succeeded" for d in done), done
    jobs = [c.get_job(d["id"]).json() for d in done]
    evicted = [j["result_evicted"] for j in jobs]
    # The oldest results went, every output before them (each a few bytes, not enough).
    assert evicted == sorted(evicted, reverse=True) and 1 <= sum(evicted) <= 4, evicted
    assert all(j["output_evicted"] for j in jobs if j["result_evicted"]), jobs
    gone = jobs[0]
    assert gone["status"] == "succeeded" and gone["result"] is None and gone["error"] is None, gone
    assert jobs[-1]["result"] == "6" * (MIB - 2) and not jobs[-1]["result_evicted"]
    assert storage_metrics(c)[("evictions_total", "result")] == sum(evicted)


# --- a real full disk -----------------------------------------------------------------


def disk_server(make_server, data_dir, *extra):
    """executord on data_dir (a tmpfs) with a quota larger than the disk, so the disk is
    what fills; request bodies of 256 KiB keep the reserve at 2 MiB."""
    srv = make_server("--workers", "1", "--max-storage-mb", "1024", "--max-body-bytes", "262144",
                      *extra, start=False)
    srv.data_dir = data_dir
    srv.start()
    return srv


@pytest.mark.sqlite_only("the data folder's disk holds SQLite's database; PostgreSQL's server disk is its own")
def test_disk_filled_by_jobs(make_server, tmp_path):
    data = tmp_path / "data"
    with tmpfs(data, "20m"):
        srv = disk_server(make_server, data)
        try:
            c = srv.client()
            ready = readyz(srv).json()
            assert ready["storage"]["reserve_held"] is True, ready
            assert (data / "storage-reserve").stat().st_size == ready["storage"]["reserve_bytes"] == 2 * MIB

            # A job's output fills the disk: it is stopped with StorageFull, what was stored
            # of it is kept and readable, nothing crashes.
            flood = c.run("import sys\ndef main():\n    for i in range(500):\n"
                          "        sys.stdout.write('y' * 65535 + '\\n')\n        sys.stdout.flush()\n",
                          limits={"max_output_bytes": 64 * MIB}, timeout=120)
            assert flood["status"] == "failed", flood
            assert flood["error"]["type"] == "StorageFull", flood["error"]
            assert "disk of the data folder is full" in flood["error"]["message"], flood["error"]
            assert flood["stdout_truncated"] is True
            assert 4 * MIB < flood["stdout_bytes"] < 20 * MIB, flood
            # read back window by window (a logs answer carries at most `limit` bytes a stream)
            got, offset = 0, 0
            while True:
                doc = c.request("GET", f"/v1/jobs/{flood['id']}/logs?stdout_offset={offset}&limit=4194304").json()
                got += len(doc["stdout"])
                offset = doc["window"]["stdout"]["next_offset"]
                if not doc["window"]["stdout"]["truncated"]:
                    break
            assert got == offset == flood["stdout_bytes"], (got, offset, flood["stdout_bytes"])

            # A queued job from before the disk fills again, behind a running one.
            blocker = c.submit({"script": "import time\ndef main():\n    time.sleep(1000)\n"})
            c.wait_status(blocker["id"], {"running"})
            queued = c.submit({"script": "def main():\n    print('queued ran')\n    return 42\n"})

            # Jobs' inputs fill it: the flood's output is evicted first, then 507, never 500.
            fillers, refused = [], None
            for i in range(150):
                r = c.post_job({"script": "def main(**kw):\n    return 1\n",
                                "inputs": {"pad": "f" * 200_000}})
                assert r.status in (201, 507), r
                if r.status == 507:
                    refused = r
                    break
                fillers.append(r.json()["id"])
            assert refused is not None and len(fillers) > 20, len(fillers)
            assert_507(refused, "disk of the data folder is full")
            assert c.get_job(flood["id"]).json()["output_evicted"] is True
            probe = readyz(srv, token=False)
            assert probe.status == 503, probe
            assert probe.json() == {"error": {"code": "not_ready",
                                              "message": "storage full: the disk of the data folder is full"}}
            assert storage_metrics(c)[("full", None)] == 1

            # The running job ends (recorded), the queued one does not start on a full disk.
            assert c.cancel(blocker["id"]).status == 200
            time.sleep(2.5)
            assert c.get_job(queued["id"]).json()["status"] == "queued"

            # DELETE works on the full disk; once enough is gone, the service is ready again
            # and the queued job runs.
            deleted = 0
            for jid in fillers:
                assert c.cancel(jid).status in (200, 409)  # 409: it ran once there was room
                assert c.delete(jid).status == 204
                deleted += 1
                if readyz(srv).status == 200:
                    break
            assert readyz(srv, token=False).status == 200
            done = c.wait_final(queued["id"], timeout=60)
            assert done["status"] == "succeeded" and done["result"] == 42, done
            assert c.logs(queued["id"]).json()["stdout"] == "queued ran\n"
            # The rest go too (each filler that runs rewrites its row: the disk stays tight).
            for jid in fillers[deleted:]:
                assert c.cancel(jid).status in (200, 409)
                assert c.delete(jid).status == 204
            assert c.run("def main():\n    return 'again'\n")["result"] == "again"
            assert storage_metrics(c)[("full", None)] == 0
        finally:
            srv.stop()
        assert srv.proc.returncode == 0, srv.log_tail()
        assert integrity_check(data / "executord.db") == [("ok",)]


@pytest.mark.sqlite_only("the data folder's disk holds SQLite's database; PostgreSQL's server disk is its own")
def test_disk_full_to_the_last_byte(make_server, tmp_path):
    fs = tmp_path / "fs"
    with tmpfs(fs, "20m"):
        data = fs / "data"
        data.mkdir(mode=0o700)
        srv = disk_server(make_server, data)
        filler = fs / "filler"
        try:
            c = srv.client()
            old = [c.run(f"def main():\n    print('o' * 100000)\n    return {i}\n")["id"] for i in range(5)]
            # Prints while the disk fills; carries an env var, whose erasure is a write too.
            talker = c.submit({"script": "import time\ndef main():\n    while True:\n"
                                         "        print('still here', flush=True)\n        time.sleep(0.1)\n",
                               "env_vars": {"TOKEN": uuid.uuid4().hex}, "timeout_seconds": 120})
            c.wait_output(talker["id"], "still here")
            queued = c.submit({"script": "def main():\n    return 43\n"})

            # Another process takes the disk, to the last block.
            assert fill_disk(filler) > 10 * MIB
            assert os.statvfs(fs).f_bavail == 0

            r = c.post_job({"script": "def main():\n    return 6\n"})
            assert_507(r, "disk of the data folder is full")
            assert readyz(srv, token=False).status == 503
            # Output with nowhere to go ends the job, and the ending itself is recorded.
            talked = c.wait_final(talker["id"], timeout=30)
            assert talked["status"] == "failed" and talked["error"]["type"] == "StorageFull", talked
            assert talked["env_vars"] == ["TOKEN"]
            # Deleting needs some room too: the reserve is there for it.
            for jid in old + [talker["id"]]:
                r = c.delete(jid)
                assert r.status == 204, r
            assert c.get_job(old[0]).status == 404
            assert c.get_job(queued["id"]).json()["status"] == "queued"

            # The other process lets go: ready again, the reserve taken back, the queue moves.
            filler.unlink()
            wait_for(lambda: readyz(srv).status == 200, 10, "/readyz did not recover")
            assert readyz(srv).json()["storage"]["reserve_held"] is True
            assert c.wait_final(queued["id"], timeout=60)["result"] == 43
            assert c.post_job({"script": "def main():\n    return 7\n"}).status == 201
        finally:
            srv.stop()
            with contextlib.suppress(FileNotFoundError):
                filler.unlink()
        assert srv.proc.returncode == 0, srv.log_tail()
        assert integrity_check(data / "executord.db") == [("ok",)]
