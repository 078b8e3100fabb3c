"""Network jobs over their whole life, on ephemeral and pool: several at once each get a
stack of their own and the same policy; a cancelled or timed-out network job leaves no
slirp4netns behind (each job's stack lives exactly as long as the job)."""

import time

from conftest import PROBE_SCRIPT, tcp
from topology import FAR_PORT, PRIVATE, PUBLIC

SLEEPER = "import time\ndef main():\n    time.sleep(60)\n"


def test_concurrent_network_jobs(service, backend):
    probes = [tcp(PUBLIC, FAR_PORT), tcp(PRIVATE, FAR_PORT), {"op": "ifaces"}]
    jobs = [service.client.submit({"script": PROBE_SCRIPT, "inputs": {"probes": probes}, "backend": backend,
                                   "allow_network": True}) for _ in range(6)]
    docs = [service.client.wait_final(j["id"], timeout=120) for j in jobs]
    for doc in docs:
        assert doc["status"] == "succeeded", doc.get("error")
        public, private, ifaces = doc["result"]
        assert public == f"ok:far@{PUBLIC}"
        assert not private.startswith("ok"), private
        assert ifaces == ["lo", "tap0"]
    service.assert_no_stack_left()


def running_with_stack(service, job_id):
    """Waits until the job runs and executord has started a stack (for it)."""
    service.client.wait_status(job_id, {"running"})
    deadline = time.monotonic() + 10
    while not service.stacks():
        assert time.monotonic() < deadline, "no slirp4netns while the network job runs"
        time.sleep(0.05)


def test_cancelled_network_job_leaves_no_stack(service, backend):
    job = service.client.submit({"script": SLEEPER, "backend": backend, "allow_network": True})
    running_with_stack(service, job["id"])
    assert service.client.cancel(job["id"]).status in (200, 202)
    assert service.client.wait_final(job["id"])["status"] == "cancelled"
    service.assert_no_stack_left()


def test_timed_out_network_job_leaves_no_stack(service, backend):
    job = service.client.submit({"script": SLEEPER, "backend": backend, "allow_network": True,
                                 "timeout_seconds": 1})
    running_with_stack(service, job["id"])
    assert service.client.wait_final(job["id"])["status"] == "timed_out"
    service.assert_no_stack_left()
