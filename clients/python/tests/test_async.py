"""AsyncExecutorClient against a real executord: results and errors as the blocking client
gives them, many jobs awaited at once on a loop that stays responsive, and cancellation
of the awaiting task reaching the service."""

import asyncio
import time
import uuid

import pytest

from exd_fixtures import url_of, exd_make_server, exd_server  # noqa: F401 (fixtures)
from executord import (
    AsyncExecutorClient,
    ExecutorUnavailableError,
    SandboxExecutionError,
    SandboxResult,
    SandboxTimeoutError,
    SandboxValidationError,
)
from executord_client import UUID_RE

SLEEPER = "import time\ndef main(s):\n    print('started', flush=True)\n    time.sleep(s)\n    return s\n"


def aclient_of(server, **kwargs):
    kwargs.setdefault("backoff", 0.1)
    kwargs.setdefault("max_backoff", 1)
    return AsyncExecutorClient(url_of(server), token=server.token, **kwargs)


def run(coro, timeout=120):
    """Runs one test's coroutine on a fresh loop, bounded so a hang fails the test."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def labelled(client, tag):
    return (await client.list_jobs(label=f"probe:{tag}", limit=200))["jobs"]


async def job_running(client, tag, timeout=30):
    """The one job labelled probe:tag, once it is running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = await labelled(client, tag)
        if jobs and jobs[0]["status"] == "running":
            assert len(jobs) == 1, jobs
            return jobs[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no running job labelled {tag}: {await labelled(client, tag)}")


class Ticker:
    """A task ticking every 10 ms on the loop: the longest gap between two ticks is how
    long anything else held the loop."""

    def __init__(self):
        self.max_gap = 0.0
        self.ticks = 0
        self._task = None

    async def _run(self):
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            self.ticks += 1
            last = now

    def __enter__(self):
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc):
        self._task.cancel()


# --------------------------------------------------------------------------- results, errors

def test_async_run_python_and_execute(exd_server):
    async def main():
        async with aclient_of(exd_server) as c:
            assert await c.run_python("def main(a, b):\n    return a + b\n",
                                      inputs={"a": 2, "b": 3}) == 5
            res = await c.execute("import sys\ndef main(n):\n    print('out', n)\n"
                                  "    print('err', file=sys.stderr)\n    return [n]\n",
                                  inputs={"n": 7})
            assert isinstance(res, SandboxResult)
            assert res.output == [7] and res.stdout == "out 7\n" and res.stderr == "err\n"
            assert UUID_RE.match(res.job_id) and res.job["status"] == "succeeded"
            assert (await c.get(res.job_id))["result"] == [7]
            assert (await c.read_logs(res.job_id))["stdout"] == "out 7\n"
            assert await c.ready()
            assert "backends" in await c.backends()
    run(main())


def test_async_errors_are_mapped_and_carry_the_job_id(exd_server):
    async def main():
        c = aclient_of(exd_server)
        with pytest.raises(SandboxExecutionError) as ei:
            await c.run_python("def main():\n    print('before')\n    raise ValueError('boom')\n")
        e = ei.value
        assert e.message == "ValueError: boom" and e.status == "failed"
        assert UUID_RE.match(e.job_id) and e.stdout == "before\n"
        assert "Traceback" in e.traceback
        with pytest.raises(SandboxValidationError) as ei:
            await c.run_python("def main(:\n    return 1\n")
        assert UUID_RE.match(ei.value.job_id) and ei.value.status == "failed"
        # Refused before any job existed: no id.
        with pytest.raises(SandboxValidationError) as ei:
            await c.run_python("def main():\n    return 1\n", env_vars={"1BAD": "x"})
        assert ei.value.http_status == 422 and ei.value.job_id is None
        with pytest.raises(SandboxValidationError) as ei:
            await c.run_python("")
        assert ei.value.job_id is None
        t0 = time.monotonic()
        with pytest.raises(SandboxTimeoutError) as ei:
            await c.run_python(SLEEPER, inputs={"s": 60}, timeout_seconds=1)
        assert time.monotonic() - t0 < 20
        assert ei.value.status == "timed_out" and UUID_RE.match(ei.value.job_id)
        assert ei.value.stdout == "started\n"
    run(main())


def test_async_overall_wait_is_bounded_and_cancels_the_job(exd_make_server):
    srv = exd_make_server("--workers", "1")

    async def main():
        c = aclient_of(srv, wait_margin=1.5)
        blocker = await c.submit(SLEEPER, inputs={"s": 30}, timeout_seconds=60)
        t0 = time.monotonic()
        with pytest.raises(SandboxTimeoutError) as ei:
            await c.run_python("def main():\n    return 1\n", timeout_seconds=1)
        assert 2.0 <= time.monotonic() - t0 < 8
        assert ei.value.job_id and ei.value.status == "cancelled"
        assert (await c.get(ei.value.job_id))["status"] == "cancelled"
        await c.cancel(blocker["id"])
    run(main())


def test_lost_service_error_carries_the_job_id(exd_make_server):
    """The service dies while the job runs: the error of the long-poll that finds it gone
    still names the job (the caller can look it up once the service is back). (Dying
    during the submission's own ?wait= hold, it never told the client the id: None.)"""
    srv = exd_make_server()

    async def main():
        tag = uuid.uuid4().hex
        c = aclient_of(srv, max_retries=1, backoff=0.05, poll_wait=1)
        task = asyncio.ensure_future(c.run_python(SLEEPER, inputs={"s": 60},
                                                  labels={"probe": tag}))
        job = await job_running(c, tag)
        await asyncio.sleep(1.5)  # past the submission's 1 s hold: in a GET long-poll
        srv.proc.kill()
        srv.proc.wait(10)
        with pytest.raises(ExecutorUnavailableError) as ei:
            await task
        assert ei.value.job_id == job["id"]
    run(main())


# --------------------------------------------------------------------------- concurrency

def test_many_jobs_awaited_together_on_a_responsive_loop(exd_make_server):
    n, seconds = 6, 1.5
    srv = exd_make_server("--workers", str(n))

    async def main():
        c = aclient_of(srv)
        script = ("import time\ndef main(i, s):\n    t = time.time()\n    time.sleep(s)\n"
                  "    return [i, t]\n")
        await c.run_python("def main():\n    return 0\n")  # warm up the backend
        with Ticker() as ticker:
            t0 = time.monotonic()
            results = await asyncio.gather(*[
                c.run_python(script, inputs={"i": i, "s": seconds}, limits={"memory_mb": 256})
                for i in range(n)])
            elapsed = time.monotonic() - t0
        assert [r[0] for r in results] == list(range(n))
        # They ran side by side: every one had started before the first could finish ...
        starts = [r[1] for r in results]
        assert max(starts) - min(starts) < seconds, starts
        assert elapsed < n * seconds / 2, elapsed
        # ... while the loop went on ticking: no call held it (a blocking client would
        # hold it for a whole long-poll, at least `seconds`).
        assert ticker.max_gap < 0.25, ticker.max_gap
        assert ticker.ticks > elapsed / 0.25
    run(main())


# --------------------------------------------------------------------------- cancellation

@pytest.mark.parametrize("poll_wait", [
    60,   # cancelled inside the submission's ?wait= long-poll: the id is learnt by replaying it
    0.5,  # cancelled inside a GET ?wait= long-poll, the id known
])
def test_cancelling_the_task_cancels_the_job(exd_server, poll_wait):
    async def main():
        tag = uuid.uuid4().hex
        c = aclient_of(exd_server, poll_wait=poll_wait)
        task = asyncio.ensure_future(c.run_python(SLEEPER, inputs={"s": 60}, timeout_seconds=120,
                                                  labels={"probe": tag}))
        job = await job_running(c, tag)
        await asyncio.sleep(poll_wait if poll_wait < 5 else 0.2)  # inside a long-poll
        assert not task.done()
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 10
        # The service was told before the task ended: the job is cancelled (or on its
        # way there), long before its 120 s timeout, and no second job was made.
        final = await c.wait(job["id"], timeout=20)
        assert final["status"] == "cancelled", final
        assert [j["id"] for j in await labelled(c, tag)] == [job["id"]]
    run(main())


def test_cancel_request_completes_when_the_task_is_cancelled_again(exd_server):
    """Cancelled a second time while its cancel request is under way, the task ends at once;
    the request, shielded, still completes (aclose waits for it)."""
    async def main():
        tag = uuid.uuid4().hex
        c = aclient_of(exd_server, poll_wait=0.5)
        task = asyncio.ensure_future(c.run_python(SLEEPER, inputs={"s": 60}, timeout_seconds=120,
                                                  labels={"probe": tag}))
        job = await job_running(c, tag)
        task.cancel()
        for _ in range(3):  # let it reach the shielded cancel request
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await c.aclose()
        assert (await c.get(job["id"]))["status"] in ("cancelled", "running")
        assert (await c.wait(job["id"], timeout=20))["status"] == "cancelled"
    run(main())


def test_wait_for_timeout_cancels_the_job(exd_server):
    async def main():
        tag = uuid.uuid4().hex
        c = aclient_of(exd_server)
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(c.run_python(SLEEPER, inputs={"s": 60}, labels={"probe": tag}),
                                   timeout=3)
        assert time.monotonic() - t0 < 10
        jobs = await labelled(c, tag)
        assert len(jobs) == 1
        assert (await c.wait(jobs[0]["id"], timeout=20))["status"] == "cancelled"
    run(main())


def test_cancelled_before_sending_leaves_nothing(exd_server):
    """Cancelled before its request could leave (here: still connecting), a call has made
    no job, and the client does not make one to cancel it."""
    async def main():
        tag = uuid.uuid4().hex
        c = aclient_of(exd_server)
        task = asyncio.ensure_future(c.run_python("def main():\n    return 1\n",
                                                  labels={"probe": tag}))
        await asyncio.sleep(0)  # the task starts and waits on its connection
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await c.aclose()
        assert await labelled(c, tag) == []
    run(main())


def test_wait_alone_never_cancels(exd_server):
    async def main():
        c = aclient_of(exd_server)
        job = await c.submit(SLEEPER, inputs={"s": 60}, timeout_seconds=120)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(c.wait(job["id"]), timeout=1)
        assert (await c.get(job["id"]))["status"] in ("queued", "running")
        await c.cancel(job["id"])
        assert (await c.wait(job["id"], timeout=20))["status"] == "cancelled"
    run(main())
