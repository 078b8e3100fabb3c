"""Many jobs at once: 200 submissions from concurrent clients all end succeeded with the
right result (no lost, duplicated or mixed-up jobs)."""

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
