"""Durability across restarts: queued jobs survive kill -9 and run afterwards, the job that
was running is reported lost; SIGTERM drains running jobs within the grace period."""

import random
import signal
import time

from executord_client import processes_with_arg, wait_gone


def blocking_script(marker):
    return f"""
import subprocess, time
def main():
    subprocess.Popen(["sleep", "{marker}"])
    print("blocking", flush=True)
    time.sleep(1000)
"""


def test_queued_jobs_survive_sigkill(make_server):
    srv = make_server("--workers", "1")
    c = srv.client()
    marker = f"1000.{random.randint(10**8, 10**9 - 1)}"
    blocker = c.submit({"script": blocking_script(marker), "timeout_seconds": 120})
    c.wait_output(blocker["id"], "blocking")
    queued = [c.submit({"script": f"def main():\n    return {i} * 3\n", "labels": {"i": str(i)}})["id"]
              for i in range(4)]
    for q in queued:
        assert c.get_job(q).json()["status"] == "queued"

    srv.kill()  # SIGKILL: no chance to clean up
    srv.start()
    c = srv.client()

    lost = c.wait_final(blocker["id"], timeout=30)
    assert lost["status"] == "failed", lost
    assert lost["error"]["type"] == "ExecutorLost", lost["error"]
    assert lost["finished_at"] is not None
    for i, q in enumerate(queued):
        job = c.wait_final(q, timeout=30)
        assert job["status"] == "succeeded", job
        assert job["result"] == i * 3
    listed = [j["id"] for j in c.list().json()["jobs"]]
    assert listed == list(reversed(queued)) + [blocker["id"]]
    # and the instance keeps accepting work
    assert c.run("def main():\n    return 'after'\n")["result"] == "after"


def test_lost_job_process_tree_does_not_outlive_sigkill(make_server):
    srv = make_server("--workers", "1")
    c = srv.client()
    marker = f"1000.{random.randint(10**8, 10**9 - 1)}"
    job = c.submit({"script": blocking_script(marker), "timeout_seconds": 120})
    c.wait_output(job["id"], "blocking")
    assert processes_with_arg(marker)
    srv.kill()
    srv.start()
    assert srv.client().wait_final(job["id"], timeout=30)["status"] == "failed"
    assert wait_gone(marker, timeout=10), \
        f"the untrusted job's processes kept running after executord was killed: {processes_with_arg(marker)}"


def test_sigterm_graceful_shutdown(make_server):
    srv = make_server("--workers", "1", "--shutdown-grace-seconds", "15")
    c = srv.client()
    job = c.submit({"script": "import time\ndef main():\n    print('go', flush=True)\n    time.sleep(2)\n    return 'finished in grace'\n"})
    c.wait_output(job["id"], "go")
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    code = srv.proc.wait(20)
    elapsed = time.monotonic() - t0
    assert code == 0, f"exit code {code}\n{srv.log_tail()}"
    assert elapsed < 10, elapsed
    srv.errfile.close()
    srv.start()
    done = srv.client().get_job(job["id"]).json()
    assert done["status"] == "succeeded", done
    assert done["result"] == "finished in grace"
    assert srv.stop() == 0


def test_sigterm_idle_exits_zero_quickly(make_server):
    srv = make_server()
    t0 = time.monotonic()
    assert srv.stop(grace=10) == 0
    assert time.monotonic() - t0 < 3


def test_data_survives_clean_restart(make_server):
    srv = make_server()
    c = srv.client()
    job = c.run("import sys\ndef main():\n    print('kept')\n    print('err', file=sys.stderr)\n    return {'a': [1]}\n",
                labels={"keep": "me"})
    assert srv.stop() == 0
    srv.start()
    c = srv.client()
    again = c.get_job(job["id"]).json()
    assert again == job
    logs = c.logs(job["id"]).json()
    assert logs["stdout"] == "kept\n" and logs["stderr"] == "err\n"
    assert [j["id"] for j in c.list(label="keep:me").json()["jobs"]] == [job["id"]]


def test_idempotency_and_cursor_survive_restart(make_server):
    srv = make_server()
    c = srv.client()
    body = {"script": "def main():\n    return 'idem'\n"}
    first = c.post_job(body, headers={"Idempotency-Key": "restart-key"}, wait=20)
    assert first.status == 201
    others = [c.run("def main():\n    return 0\n")["id"] for _ in range(3)]
    page1 = c.list(limit=2).json()
    assert [j["id"] for j in page1["jobs"]] == [others[2], others[1]]
    srv.kill()
    srv.start()
    c = srv.client()
    again = c.post_job(body, headers={"Idempotency-Key": "restart-key"})
    assert again.status == 200 and again.json()["id"] == first.json()["id"], again
    conflict = c.post_job({"script": "def main():\n    return 'other'\n"}, headers={"Idempotency-Key": "restart-key"})
    assert conflict.status == 409, conflict
    page2 = c.list(limit=2, cursor=page1["next_cursor"]).json()
    assert [j["id"] for j in page2["jobs"]] == [others[0], first.json()["id"]]


def test_sigterm_refuses_new_jobs_and_stops_jobs_past_grace(make_server):
    srv = make_server("--workers", "1", "--shutdown-grace-seconds", "1")
    c = srv.client()
    job = c.submit({"script": "import time\ndef main():\n    print('go', flush=True)\n    time.sleep(60)\n"})
    c.wait_output(job["id"], "go")
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    r = c.post_job({"script": "def main():\n    return 1\n"})
    assert r.status == 503 and r.error["code"] == "shutting_down", r
    assert r.headers.get("Retry-After") == "5", "a client may resubmit after a restart"
    assert c.get_job(job["id"]).status == 200, "reads keep working during the grace period"
    ready = c.request("GET", "/readyz")
    assert ready.status == 503 and ready.error["code"] in ("not_ready", "shutting_down"), ready
    assert c.request("GET", "/healthz").status == 200
    code = srv.proc.wait(15)
    assert code == 0, srv.log_tail()
    assert time.monotonic() - t0 < 6, "grace 1 s: the running job is stopped, not waited for"
    srv.errfile.close()
    srv.start()
    done = srv.client().get_job(job["id"]).json()
    assert done["status"] == "failed", done
    assert done["error"]["type"] == "ExecutorShutdown", done["error"]


def test_retention_deletes_only_old_finished_jobs(make_server):
    srv = make_server("--workers", "1", "--retention-seconds", "1")
    c = srv.client()
    old = c.run("def main():\n    print('old')\n    return 'old'\n")
    assert old["status"] == "succeeded"
    marker = f"1000.{random.randint(10**8, 10**9 - 1)}"
    blocker = c.submit({"script": blocking_script(marker)})
    c.wait_output(blocker["id"], "blocking")
    queued = c.submit({"script": "def main():\n    return 'queued survived'\n"})
    time.sleep(1.6)
    srv.kill()
    srv.start()  # retention sweeps once at start-up (in the background)
    c = srv.client()
    deadline = time.monotonic() + 5
    while (r := c.get_job(old["id"])).status == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.status == 404, f"a finished job older than --retention-seconds must be deleted: {r}"
    assert c.logs(old["id"]).status == 404
    assert c.wait_final(queued["id"], timeout=20)["result"] == "queued survived"
    assert c.wait_final(blocker["id"], timeout=20)["error"]["type"] == "ExecutorLost"


def test_sigterm_releases_waiting_requests(make_server):
    import threading

    srv = make_server("--workers", "1", "--shutdown-grace-seconds", "1")
    c = srv.client()
    job = c.submit({"script": "import time\ndef main():\n    time.sleep(60)\n"})
    c.wait_status(job["id"], {"running"})
    box = {}

    def waiter():
        try:
            box["r"] = c.get_job(job["id"], wait=120, timeout=60)
        except Exception as e:  # connection closed by the server is acceptable
            box["e"] = e

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.5)
    srv.proc.send_signal(signal.SIGTERM)
    t.join(15)
    assert not t.is_alive(), "a request waiting with ?wait= kept executord from answering/exiting"
    assert srv.proc.wait(15) == 0
    if "r" in box:
        assert box["r"].status in (200, 503), box["r"]


def test_sigterm_leaves_queued_jobs_for_the_next_start(make_server):
    srv = make_server("--workers", "1", "--shutdown-grace-seconds", "10")
    c = srv.client()
    running = c.submit({"script": "import time\ndef main():\n    print('go', flush=True)\n    time.sleep(1)\n    return 'r'\n"})
    c.wait_output(running["id"], "go")
    queued = [c.submit({"script": f"def main():\n    return {i}\n"})["id"] for i in range(3)]
    assert srv.stop(grace=20) == 0
    srv.start()
    c = srv.client()
    assert c.get_job(running["id"]).json()["status"] == "succeeded"
    for i, q in enumerate(queued):
        doc = c.wait_final(q, timeout=20)
        assert doc["status"] == "succeeded" and doc["result"] == i, doc
