"""Any replica answers for any job (issue 15): three replicas A, B, C on one database; a job
submitted to one is waited on, read while it runs, cancelled, deleted and listed through
the others, an Idempotency-Key names one job whichever replica it reaches, and
--max-queued counts the whole queue, not one replica's share."""

import random
import threading
import time
import uuid

import pytest

from executord_client import processes_with_arg, wait_gone
from replica_kit import is_final, make_replica_set, ran_on, wait_until

SLEEPY = "import time\ndef main(s=5, x=None):\n    time.sleep(s)\n    return x\n"


@pytest.fixture(scope="module")
def trio(cluster, tmp_path_factory):
    rs = make_replica_set(cluster, tmp_path_factory.mktemp("trio"), 3, "--workers", "2")
    yield rs
    rs.stop_all()


def test_wait_on_another_replica_returns_the_result(trio):
    """A job submitted on A: a ?wait long-poll on B is woken when the job ends (a
    notification, not the end of the wait) and carries the result; so is a POST ?wait on C."""
    a, b, c = trio.clients()
    job = a.submit({"script": SLEEPY, "inputs": {"s": 1.5, "x": "from A"}})
    r = b.get_job(job["id"], wait=30, timeout=60)
    assert r.status == 200, r
    done = r.json()
    assert done["status"] == "succeeded" and done["result"] == "from A", done
    assert r.elapsed < 10, f"B's ?wait returned {r.elapsed:.2f}s after the submission: not woken by the end"
    r = c.post_job({"script": SLEEPY, "inputs": {"s": 0.3, "x": "on C"}}, wait=30, timeout=60)
    assert r.status == 201 and r.json()["status"] == "succeeded" and r.json()["result"] == "on C", r


def test_logs_of_a_running_job_grow_when_read_through_another_replica(trio):
    """A script printing a line every 0.2 s for ~2 s, submitted on A, read through C while
    it runs: C shows the output growing before the job ends, then all of it."""
    a, _, c = trio.clients()
    job = a.submit({"script": """
import time
def main():
    for i in range(10):
        print(f"line {i}", flush=True)
        time.sleep(0.2)
    return "printed"
"""})
    full = "".join(f"line {i}\n" for i in range(10))
    sizes = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = c.logs(job["id"], stream="stdout", offset=0)
        assert r.status == 200, r
        status = r.headers.get("X-Job-Status")
        if status in ("succeeded", "failed", "timed_out", "cancelled"):
            break
        if status == "running":
            assert full.startswith(r.text), f"C's view is not a prefix of the output: {r.text!r}"
            if not sizes or len(r.body) > sizes[-1]:
                sizes.append(len(r.body))
        time.sleep(0.1)
    assert len([s for s in sizes if s > 0]) >= 3, f"C saw the running job's output grow only through sizes {sizes}"
    done = c.wait_final(job["id"], timeout=30)
    assert done["status"] == "succeeded" and done["result"] == "printed", done
    logs = c.logs(job["id"]).json()
    assert logs["stdout"] == "".join(f"line {i}\n" for i in range(10)), logs


def test_cancel_through_another_replica_kills_the_job_where_it_runs(trio):
    """A running job (with a child process) cancelled through a replica that is not the one
    running it: cancelled within ~2 s and its processes are gone from the host."""
    clients = trio.clients()
    marker = f"1000.{random.randint(10**8, 10**9 - 1)}"  # `sleep 1000.NNN`: a unique argv element
    job = clients[0].submit({"script": f"""
import subprocess, time
def main():
    p = subprocess.Popen(["sleep", "{marker}"])
    print("spawned", p.pid, flush=True)
    time.sleep(1000)
"""})
    clients[1].wait_output(job["id"], "spawned", timeout=30)
    assert processes_with_arg(marker), "the job's child should be running before the cancel"
    runner = ran_on(trio, clients[0].get_job(job["id"]).json())
    assert runner in [s.name for s in trio], f"the running job's replica is unknown: {runner!r}"
    other = next(i for i, s in enumerate(trio) if s.name != runner)
    t0 = time.monotonic()
    r = clients[other].cancel(job["id"])
    assert r.status == 200, r
    assert r.json()["status"] in ("cancelled", "running"), r
    done = clients[other].wait_final(job["id"], timeout=15)
    took = time.monotonic() - t0
    assert done["status"] == "cancelled", done
    assert took < 2.5, f"cancel through {trio[other].name} of a job on {runner} took {took:.2f}s"
    assert wait_gone(marker, timeout=5), f"the cancelled job's process survived: {processes_with_arg(marker)}"
    for c in clients:  # every replica tells the same
        assert c.get_job(job["id"]).json()["status"] == "cancelled"


def test_cancel_queued_job_through_another_replica(make_replicas):
    """With every worker busy, a queued job cancelled through the other replica never runs."""
    rs = make_replicas(2, "--workers", "1")
    a, b = rs.clients()
    blockers = [a.submit({"script": SLEEPY, "inputs": {"s": 60}}) for _ in range(2)]
    for j in blockers:
        a.wait_status(j["id"], {"running"}, timeout=30)
    queued = a.submit({"script": "def main():\n    print('I ran')\n    return 1\n"})
    assert a.get_job(queued["id"]).json()["status"] == "queued"
    r = b.cancel(queued["id"])
    assert r.status == 200 and r.json()["status"] == "cancelled", r
    for j in blockers:
        assert b.cancel(j["id"]).status == 200
    for j in blockers:
        assert a.wait_final(j["id"], timeout=15)["status"] == "cancelled"
    job = a.get_job(queued["id"]).json()
    assert job["status"] == "cancelled" and job["started_at"] is None, job
    assert a.logs(queued["id"]).json()["stdout"] == ""


def test_delete_through_another_replica(trio):
    """A finished job submitted on A is deleted through C: gone everywhere (404), its logs
    too; a running job cannot be deleted from a replica that does not run it either."""
    a, b, c = trio.clients()
    job = a.submit({"script": "def main():\n    print('bye')\n    return 1\n"})
    assert a.wait_final(job["id"])["status"] == "succeeded"
    running = b.submit({"script": SLEEPY, "inputs": {"s": 30}})
    a.wait_status(running["id"], {"running"}, timeout=30)
    r = c.delete(running["id"])
    assert r.status == 409, r
    assert b.cancel(running["id"]).status == 200
    r = c.delete(job["id"])
    assert r.status == 204, r
    for cl in (a, b, c):
        assert cl.get_job(job["id"]).status == 404
        assert cl.logs(job["id"]).status == 404
    assert c.delete(job["id"]).status == 404


def test_list_with_cursor_sees_jobs_from_every_replica(trio):
    """Jobs submitted on A, B and C, listed through any replica page by page with the cursor:
    every job exactly once, newest first, the same from each replica."""
    clients = trio.clients()
    tag = uuid.uuid4().hex[:12]
    submitted = []
    for i in range(12):
        c = clients[i % 3]
        submitted.append(c.submit({"script": "def main(i):\n    return i\n", "inputs": {"i": i},
                                   "labels": {"suite": tag}})["id"])
    for c in clients:
        c.wait_final(submitted[-1])
    seen_by = []
    for c in clients:
        ids, cursor = [], None
        for _ in range(20):
            r = c.list(label=f"suite:{tag}", limit=5, cursor=cursor)
            assert r.status == 200, r
            page = r.json()
            ids += [j["id"] for j in page["jobs"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        assert sorted(ids) == sorted(submitted), "every replica lists every replica's jobs once"
        assert len(ids) == len(set(ids))
        seen_by.append(ids)
    assert seen_by[0] == seen_by[1] == seen_by[2], "one order (newest first) whichever replica answers"
    assert seen_by[0] == list(reversed(submitted)), "newest first"


def test_idempotency_key_names_one_job_across_replicas(trio):
    """The same Idempotency-Key and body on A then B: one job (201, then 200 with its id);
    sent to all three at once: still one job; another body under that key: 409 on C."""
    a, b, c = trio.clients()
    key = f"k-{uuid.uuid4()}"
    body = {"script": "def main(x):\n    return x\n", "inputs": {"x": 7}}
    r1 = a.post_job(body, headers={"Idempotency-Key": key})
    assert r1.status == 201, r1
    r2 = b.post_job(body, headers={"Idempotency-Key": key})
    assert r2.status == 200 and r2.json()["id"] == r1.json()["id"], r2
    r3 = c.post_job(dict(body, inputs={"x": 8}), headers={"Idempotency-Key": key})
    assert r3.status == 409 and r3.error["code"] == "idempotency_conflict", r3

    key = f"k-{uuid.uuid4()}"
    results = []
    barrier = threading.Barrier(6)

    def post(cl):
        barrier.wait()
        results.append(cl.post_job(body, headers={"Idempotency-Key": key}))

    threads = [threading.Thread(target=post, args=(cl,)) for cl in (a, b, c, a, b, c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.status for r in results) == [200] * 5 + [201], results
    assert len({r.json()["id"] for r in results}) == 1, "one job for one key, whichever replica"


def test_max_queued_counts_the_whole_queue(make_replicas):
    """--max-queued 4 on two replicas with their workers busy: 4 jobs queued through both
    fill the shared queue, and the next submission gets 429 on either replica."""
    rs = make_replicas(2, "--workers", "1", "--max-queued", "4")
    a, b = rs.clients()
    blockers = [a.submit({"script": SLEEPY, "inputs": {"s": 60}})["id"] for _ in range(2)]
    for j in blockers:
        a.wait_status(j, {"running"}, timeout=30)
    queued = []
    for i in range(4):
        r = (a, b)[i % 2].post_job({"script": SLEEPY, "inputs": {"s": 0.1}})
        assert r.status == 201, (i, r)
        queued.append(r.json()["id"])
    for cl in (a, b):
        r = cl.post_job({"script": SLEEPY, "inputs": {"s": 0.1}})
        assert r.status == 429 and r.error["code"] == "queue_full", r
    assert b.cancel(queued[0]).status == 200
    r = b.post_job({"script": SLEEPY, "inputs": {"s": 0.1}})
    assert r.status == 201, "a cancelled job leaves room in the shared queue"
    for j in blockers + queued[1:] + [r.json()["id"]]:
        assert a.cancel(j).status in (200, 409)
    wait_until(lambda: all(is_final(a.get_job(j).json()) for j in blockers), 15, "blockers cancelled")
