"""Replicas die; jobs don't get lost (issue 15): three replicas, 300 short sleep-bound jobs
submitted round-robin, one replica killed with SIGKILL while it runs jobs. Every accepted
job ends final; failed/ExecutorLost only for the jobs that were running on the dead
replica, ended by the survivors within 1.25 x the lease (plus slack) of the kill and not
before the lease ran out; nothing
stays queued or running."""

import random
import time
from concurrent.futures import ThreadPoolExecutor

from replica_kit import EXPIRY_S, LEASE_S, is_final, wait_until

N_JOBS = 300
SCRIPT = "import time\ndef main(i, s):\n    time.sleep(s)\n    return i * 3\n"


def running_on(rs, name):
    return {row[0] for row in rs.psql(f"SELECT id FROM jobs WHERE status = 'running' AND running_on = '{name}'")}


def count_final(rs):
    return int(rs.psql("SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'failed', 'timed_out', 'cancelled')")[0][0])


def test_kill9_of_one_replica_loses_no_job(make_replicas):
    """3 replicas x 2 workers, 300 jobs of 0.05-0.5 s; kill -9 of a replica running jobs
    after ~1/3 finished: its running jobs end failed/ExecutorLost through the survivors
    within the lease expiry, every other job succeeds, none is left queued or running."""
    rs = make_replicas(3, "--workers", "2", "--max-queued", "1000")
    clients = rs.clients()
    rng = random.Random(15)
    bodies = [{"script": SCRIPT, "inputs": {"i": i, "s": round(rng.uniform(0.05, 0.5), 3)}} for i in range(N_JOBS)]

    def submit(i):
        r = clients[i % 3].post_job(bodies[i])
        assert r.status == 201, (i, r)
        return r.json()["id"]

    with ThreadPoolExecutor(12) as ex:
        ids = list(ex.map(submit, range(N_JOBS)))
    assert len(set(ids)) == N_JOBS

    wait_until(lambda: count_final(rs) >= N_JOBS // 3, 120, "a third of the jobs final")
    # The victim: a replica running jobs right now (re-checked until one does).
    victim = wait_until(lambda: next((s for s in rs if running_on(rs, s.name)), None), 30,
                        "a replica running jobs")
    victim.kill()
    t_kill = time.monotonic()
    # Dead, it claims and ends nothing more: these were running on it when it died.
    lost_expected = running_on(rs, victim.name)
    assert lost_expected, f"{victim.name} ran no job when it was killed"
    survivors = [s.client() for s in rs if s is not victim]

    def lost_ended():
        return all(is_final(survivors[0].get_job(j).json()) for j in lost_expected)

    wait_until(lost_ended, EXPIRY_S + 30, f"{victim.name}'s running jobs ended")
    took = time.monotonic() - t_kill
    assert took <= EXPIRY_S, f"the dead replica's jobs ended {took:.1f}s after the kill (at most {EXPIRY_S:.1f}s)"
    # Its last heartbeat was at most a quarter lease before the kill: ending its jobs sooner
    # would mean a live replica's lease can be taken for expired.
    assert took >= 0.75 * LEASE_S, f"the dead replica's jobs ended {took:.1f}s after the kill: before its lease ran out"

    deadline = time.monotonic() + 120
    lost, ok = set(), 0
    for k, job_id in enumerate(ids):
        job = survivors[k % 2].wait_final(job_id, timeout=max(1, deadline - time.monotonic()))
        if job["status"] == "succeeded":
            assert job["result"] == bodies[k]["inputs"]["i"] * 3, job
            ok += 1
        else:
            assert job["status"] == "failed" and job["error"]["type"] == "ExecutorLost", job
            lost.add(job_id)
    assert lost == lost_expected, (f"ExecutorLost must be exactly the jobs running on {victim.name}: "
                                   f"unexpected {sorted(lost - lost_expected)}, missing {sorted(lost_expected - lost)}")
    assert ok + len(lost) == N_JOBS
    for c in survivors:
        for status in ("queued", "running"):
            r = c.list(status=status)
            assert r.status == 200 and r.json()["jobs"] == [], (status, r)
    print(f"kill -9 of {victim.name} with {len(lost_expected)} jobs running: ended ExecutorLost "
          f"{took:.1f}s later; all {N_JOBS} final")
