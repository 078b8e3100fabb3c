"""Many jobs at once: 200 submissions from concurrent clients all end succeeded with the
right result (no lost, duplicated or mixed-up jobs)."""

import http.client
import threading
import time


def test_200_jobs_at_once(make_server):
    srv = make_server("--workers", "2", "--max-queued", "1000")
    c = srv.client()
    n = 200
    ids = [None] * n
    errors = []

    def submit(start):
        for i in range(start, n, 20):
            try:
                r = c.post_job({"script": "def main(i):\n    return {'i': i, 'sq': i * i}\n", "inputs": {"i": i}})
                assert r.status == 201, r
                ids[i] = r.json()["id"]
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append((i, repr(e)))

    t0 = time.monotonic()
    threads = [threading.Thread(target=submit, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    assert len(set(ids)) == n

    for i, job_id in enumerate(ids):
        job = c.wait_final(job_id, timeout=120)
        assert job["status"] == "succeeded", job
        assert job["result"] == {"i": i, "sq": i * i}, job
    elapsed = time.monotonic() - t0
    listed = []
    cursor = None
    while True:
        doc = c.list(limit=200, cursor=cursor).json()
        listed += [j["id"] for j in doc["jobs"]]
        cursor = doc["next_cursor"]
        if not cursor:
            break
    assert sorted(listed) == sorted(ids)
    print(f"200 jobs in {elapsed:.1f}s")


def test_mixed_concurrent_traffic_no_server_errors(make_server):
    import random

    srv = make_server("--workers", "2")
    c = srv.client()
    stop = time.monotonic() + 4
    problems = []
    ids = []
    lock = threading.Lock()

    def worker(seed):
        rnd = random.Random(seed)
        while time.monotonic() < stop:
            op = rnd.choice(["submit", "submit", "get", "list", "logs", "cancel", "delete", "wait"])
            with lock:
                job_id = rnd.choice(ids) if ids else None
            try:
                if op == "submit" or job_id is None:
                    r = c.post_job({"script": "import time\ndef main(t):\n    print('x' * 100)\n    time.sleep(t)\n    return t\n",
                                    "inputs": {"t": rnd.choice([0, 0.05])}, "labels": {"w": str(seed)}})
                    if r.status == 201:
                        with lock:
                            ids.append(r.json()["id"])
                elif op == "get":
                    r = c.get_job(job_id)
                elif op == "wait":
                    r = c.get_job(job_id, wait=0.3)
                elif op == "list":
                    r = c.list(limit=rnd.choice([1, 5, 50]), label=f"w:{seed}" if rnd.random() < 0.5 else None)
                elif op == "logs":
                    stream = rnd.choice([None, "stdout"])  # offset goes with stream only (else 400)
                    r = c.logs(job_id, stream=stream, offset=0 if stream and rnd.random() < 0.5 else None)
                elif op == "cancel":
                    r = c.cancel(job_id)
                else:
                    r = c.delete(job_id)
                    if r.status == 204:
                        with lock:
                            if job_id in ids:
                                ids.remove(job_id)
                if r.status >= 500 or r.status not in (200, 201, 204, 404, 409):
                    problems.append((op, r.status, r.body[:200]))
            except http.client.IncompleteRead as e:
                # A raw log stream whose job another thread deleted after its headers went
                # out ends short (the server says so in its log); only that is expected.
                if not (op == "logs" and c.get_job(job_id).status == 404):
                    problems.append((op, "exception", repr(e)))
            except Exception as e:  # noqa: BLE001
                problems.append((op, "exception", repr(e)))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert srv.running, srv.log_tail()
    assert not problems, problems[:10]
    for job_id in list(ids):
        doc = c.wait_final(job_id, timeout=60)
        assert doc["status"] in ("succeeded", "cancelled"), doc
    assert srv.stop() == 0


def test_cancel_racing_delete_never_500(client):
    """Cancel a running job while another client DELETEs it as soon as it is final: the
    cancel must answer 200 (cancelled) or 404 (already deleted), never 500."""
    bad = []
    for _ in range(12):
        job_id = client.submit({"script": "import time\ndef main():\n    time.sleep(30)\n"})["id"]
        client.wait_status(job_id, {"running"})
        out = {}

        def cancel():
            out["cancel"] = client.cancel(job_id)

        def delete():
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                r = client.delete(job_id)
                if r.status != 409:
                    out["delete"] = r
                    return

        ts = [threading.Thread(target=delete), threading.Thread(target=cancel)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(20)
        if out["cancel"].status not in (200, 404) or out.get("delete") is None or out["delete"].status != 204:
            bad.append({k: (v.status, v.body[:150]) for k, v in out.items()})
    assert not bad, bad[:5]
