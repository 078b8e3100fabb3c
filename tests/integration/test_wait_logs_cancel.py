"""Long-polling with ?wait=, logs that grow while a job runs, and cancellation of queued
and running jobs (a running job's whole process tree must be gone)."""

import random
import time

from executord_client import processes_with_arg, wait_gone

SLEEPY = "import time\ndef main(s=5):\n    time.sleep(s)\n    return 'woke'\n"


def test_post_wait_returns_finished_job(client):
    r = client.post_job({"script": "import time\ndef main():\n    time.sleep(0.5)\n    return 'done'\n"}, wait=30)
    assert r.status == 201, r
    job = r.json()
    assert job["status"] == "succeeded" and job["result"] == "done", job
    assert r.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert r.elapsed < 10


def test_post_wait_returns_promptly_when_job_outlives_it(client):
    r = client.post_job({"script": SLEEPY, "inputs": {"s": 5}}, wait=1)
    assert r.status == 201, r
    job = r.json()
    assert job["status"] in ("queued", "running"), job
    assert 0.9 <= r.elapsed < 3, f"wait=1 took {r.elapsed:.2f}s"
    client.cancel(job["id"])


def test_post_wait_zero_does_not_wait(client):
    r = client.post_job({"script": SLEEPY, "inputs": {"s": 5}}, wait=0)
    assert r.status == 201 and r.elapsed < 1, r
    assert r.json()["status"] in ("queued", "running")
    client.cancel(r.json()["id"])


def test_get_wait_returns_when_job_finishes(client):
    job = client.submit({"script": SLEEPY, "inputs": {"s": 1.5}})
    r = client.get_job(job["id"], wait=20)
    assert r.status == 200, r
    assert r.json()["status"] == "succeeded" and r.json()["result"] == "woke"
    assert r.elapsed < 8, f"GET ?wait= must return as soon as the job ends, took {r.elapsed:.2f}s"


def test_get_wait_times_out_with_current_state(client):
    job = client.submit({"script": SLEEPY, "inputs": {"s": 10}})
    client.wait_status(job["id"], {"running"})
    r = client.get_job(job["id"], wait=1)
    assert r.status == 200 and r.json()["status"] == "running", r
    running = r.json()
    assert running["started_at"] is not None and running["finished_at"] is None, running
    assert running["result"] is None and running["error"] is None and running["exit_code"] is None, running
    assert isinstance(running["queue_wait_ms"], int), running
    assert 0.9 <= r.elapsed < 3, r.elapsed
    client.cancel(job["id"])


def test_get_wait_fractional_and_on_finished_job(client):
    job = client.run("def main():\n    return 5\n")
    r = client.get_job(job["id"], wait=30)
    assert r.status == 200 and r.elapsed < 1, "a finished job is returned at once"
    job2 = client.submit({"script": SLEEPY, "inputs": {"s": 5}})
    r = client.get_job(job2["id"], wait=0.5)
    assert r.status == 200 and 0.4 <= r.elapsed < 2, r.elapsed
    client.cancel(job2["id"])


def test_cancel_wakes_waiters(client):
    import threading

    job = client.submit({"script": SLEEPY, "inputs": {"s": 30}})
    client.wait_status(job["id"], {"running"})
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", client.get_job(job["id"], wait=60)))
    t.start()
    time.sleep(0.5)
    assert client.cancel(job["id"]).status == 200
    t.join(15)
    assert not t.is_alive(), "a waiter must wake when the job is cancelled"
    assert box["r"].json()["status"] == "cancelled"


def test_logs_grow_while_running(client):
    job = client.submit({"script": """
import time
def main():
    print("first line", flush=True)
    time.sleep(2)
    print("second line", flush=True)
    time.sleep(0.5)
    return 1
"""})
    # print() under `python -u` writes the text and its newline in two writes: wait for both.
    r = client.wait_output(job["id"], "first line\n")
    assert r.headers.get("X-Job-Status") == "running", r.headers
    assert r.body == b"first line\n", "partial output is visible before the job ends"
    assert r.headers.get("X-Output-Bytes") == "11"
    structured = client.logs(job["id"]).json()
    assert structured["status"] == "running" and structured["stdout"] == "first line\n"
    # offset: only the new bytes
    r2 = client.logs(job["id"], stream="stdout", offset=11)
    assert r2.status == 200 and r2.body in (b"", b"second line\n")
    client.wait_output(job["id"], "second line")
    r3 = client.logs(job["id"], stream="stdout", offset=11)
    assert r3.body == b"second line\n"
    done = client.wait_final(job["id"])
    assert done["status"] == "succeeded"
    r4 = client.logs(job["id"], stream="stdout", offset=1000)
    assert r4.status == 200 and r4.body == b"", "past the end is empty"
    assert r4.headers.get("X-Output-Bytes") == "23" and r4.headers.get("X-Job-Status") == "succeeded"


def test_cancel_queued_job_never_starts(make_server):
    srv = make_server("--workers", "1")
    c = srv.client()
    blocker = c.submit({"script": SLEEPY, "inputs": {"s": 60}})
    c.wait_status(blocker["id"], {"running"})
    queued = c.submit({"script": "def main():\n    print('I ran')\n    return 1\n"})
    assert queued["status"] == "queued"
    for k in ("started_at", "finished_at", "queue_wait_ms", "run_ms", "result", "error", "exit_code", "signal",
              "usage"):
        assert queued[k] is None, (k, queued)
    assert queued["stdout_bytes"] == 0 and queued["stderr_bytes"] == 0
    r = c.cancel(queued["id"])
    assert r.status == 200, r
    assert r.json()["status"] == "cancelled"
    # free the worker; the cancelled job must still never run
    assert c.cancel(blocker["id"]).status == 200
    c.wait_final(blocker["id"], timeout=10)
    time.sleep(0.5)
    job = c.get_job(queued["id"]).json()
    assert job["status"] == "cancelled", job
    assert job["started_at"] is None and job["result"] is None, job
    assert job["finished_at"] is not None
    assert c.logs(queued["id"]).json()["stdout"] == ""
    r = c.cancel(queued["id"])
    assert r.status == 409 and r.error["code"] == "job_finished", r


def test_cancel_running_job_kills_process_tree(client):
    marker = f"1000.{random.randint(10**8, 10**9 - 1)}"  # `sleep 1000.NNN`: a unique argv element
    job = client.submit({"script": f"""
import subprocess, time
def main():
    p = subprocess.Popen(["sleep", "{marker}"])
    print("spawned", p.pid, flush=True)
    time.sleep(1000)
"""})
    client.wait_output(job["id"], "spawned")
    assert processes_with_arg(marker), "the grandchild should be visible before the cancel"
    t0 = time.monotonic()
    r = client.cancel(job["id"])
    assert r.status == 200, r
    assert r.json()["status"] in ("cancelled", "running"), r
    done = client.wait_final(job["id"], timeout=10)
    assert done["status"] == "cancelled", done
    assert time.monotonic() - t0 < 5, "a running job is cancelled quickly"
    assert done["error"] is None or done["error"]["type"] == "Cancelled", done["error"]
    assert done["started_at"] is not None and done["finished_at"] is not None
    assert wait_gone(marker, timeout=5), f"process tree survived the cancel: pids {processes_with_arg(marker)}"


def test_timeout_kills_process_tree(client):
    marker = f"1000.{random.randint(10**8, 10**9 - 1)}"
    job = client.run(f"""
import subprocess, time
def main():
    subprocess.Popen(["sleep", "{marker}"], start_new_session=True)
    time.sleep(1000)
""", timeout=20, timeout_seconds=1)
    assert job["status"] == "timed_out", job
    assert wait_gone(marker, timeout=5), f"a timed-out job's detached child survived: {processes_with_arg(marker)}"


def test_finished_job_leaves_no_background_process(client):
    marker = f"1000.{random.randint(10**8, 10**9 - 1)}"
    job = client.run(f"""
import subprocess
def main():
    subprocess.Popen(["sleep", "{marker}"], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return "left a child behind"
""", timeout=20, timeout_seconds=10)
    assert job["status"] == "succeeded", job
    assert wait_gone(marker, timeout=5), f"a background process outlived its job: {processes_with_arg(marker)}"
