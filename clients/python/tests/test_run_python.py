"""run_python against a real executord: results, output, and the mapping of every way a
job can fail onto Tracecat's exceptions."""

import re
import threading
import time
import uuid

import pytest

from exd_fixtures import client_of, exd_client, exd_make_server, exd_server  # noqa: F401 (fixtures)
from executord import (
    ExecutorClient,
    ExecutorUnavailableError,
    SandboxError,
    SandboxExecutionError,
    SandboxTimeoutError,
    SandboxValidationError,
)
from executord_client import FORCED_BACKEND, free_port

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def jobs_labelled(client, key, value):
    return client.list_jobs(label=f"{key}:{value}", limit=200)["jobs"]


def test_success_with_inputs(exd_client):
    script = "def main(a, b):\n    return a + b\n"
    assert exd_client.run_python(script, inputs={"a": 2, "b": 3}) == 5
    assert exd_client.run_python(script, inputs={"a": "x", "b": "y"}) == "xy"


def test_single_public_function_and_no_inputs(exd_client):
    assert exd_client.run_python("def _helper():\n    return 1\n\ndef answer():\n    return 41 + _helper()\n") == 42


def test_async_main_is_awaited(exd_client):
    script = "import asyncio\nasync def main(n):\n    await asyncio.sleep(0)\n    return n * 2\n"
    assert exd_client.run_python(script, inputs={"n": 21}) == 42


@pytest.mark.parametrize("expr, expected", [
    ("None", None),
    ("True", True),
    ("3.5", 3.5),
    ("'h\u00e9llo \u2603'", "h\u00e9llo \u2603"),
    ("[1, 'a', None, [2.5]]", [1, "a", None, [2.5]]),
    ("{'a': {'b': [1, 2]}, 'n': None}", {"a": {"b": [1, 2]}, "n": None}),
    ("(1, 2)", [1, 2]),
    ("{3, 1, 2}", [1, 2, 3]),
    ("{1: 'one'}", {"1": "one"}),
    ("__import__('datetime').date(2024, 5, 17)", "2024-05-17"),
    ("__import__('decimal').Decimal('1.10')", "1.10"),
    ("b'raw'", "raw"),
])
def test_result_types(exd_client, expr, expected):
    got = exd_client.run_python(f"def main():\n    return {expr}\n")
    assert got == expected
    assert type(got) is type(expected)


def test_inputs_round_trip(exd_client):
    inputs = {"alert": {"id": 7, "tags": ["a", "b"], "score": 0.25, "ok": False, "none": None}}
    assert exd_client.run_python("def main(alert):\n    return alert\n", inputs=inputs) == inputs["alert"]


def test_print_output_is_accessible(exd_client):
    script = ("import sys\n"
              "def main(name):\n"
              "    print('hello', name)\n"
              "    print('warn', file=sys.stderr)\n"
              "    return len(name)\n")
    res = exd_client.execute(script, inputs={"name": "tracecat"})
    assert res.output == 8
    assert res.success
    assert res.stdout == "hello tracecat\n"
    assert res.stderr == "warn\n"
    assert UUID_RE.match(res.job_id)
    assert res.job["status"] == "succeeded"
    # The same output through the lower-level helper.
    logs = exd_client.logs(res.job_id)
    assert logs["stdout"] == "hello tracecat\n"


BIG_OUTPUT = ("import sys\n"
              "def main():\n"
              "    sys.stdout.write('\u00e9' * (3 << 19) + 'end')\n"  # 3 MiB of 2-byte characters
              "    sys.stderr.write('e' * ((1 << 20) + 5))\n"
              "    return 'ok'\n")


def test_output_larger_than_a_window_is_paged(exd_server):
    """The service answers logs in windows (1 MiB by default, 4 MiB at most): execute()
    pages through them up to max_log_bytes per stream; logs() is one window."""
    client = client_of(exd_server, request_timeout=60)
    res = client.execute(BIG_OUTPUT, limits={"max_output_bytes": 8 << 20})
    assert res.stdout == "\u00e9" * (3 << 19) + "end" and res.stderr == "e" * ((1 << 20) + 5)
    assert res.logs_truncated is False
    window = client.logs(res.job_id)
    assert len(window["stdout"].encode()) == 1 << 20 and window["stdout_bytes"] == (3 << 20) + 3
    assert window["window"]["stdout"] == {"offset": 0, "next_offset": 1 << 20, "truncated": True}
    # A cap that falls inside a character: the text stops before it, never half of it.
    capped = client_of(exd_server, max_log_bytes=(1 << 20) + 3).execute(
        BIG_OUTPUT, limits={"max_output_bytes": 8 << 20})
    assert capped.stdout == "\u00e9" * ((1 << 19) + 1) and capped.stderr == "e" * ((1 << 20) + 3)
    assert capped.logs_truncated is True
    part = client.read_logs(res.job_id, max_bytes=10)
    assert part["stdout"] == "\u00e9" * 5 and part["stderr"] == "e" * 10 and part["complete"] is False
    assert client.read_logs(res.job_id, max_bytes=0)["complete"] is False


def test_script_raising_is_execution_error(exd_client):
    script = ("def helper(x):\n"
              "    raise ValueError(f'boom {x}')\n"
              "def main(x):\n"
              "    print('before the raise')\n"
              "    helper(x)\n")
    with pytest.raises(SandboxExecutionError) as ei:
        exd_client.run_python(script, inputs={"x": 42})
    e = ei.value
    assert not isinstance(e, (SandboxValidationError, SandboxTimeoutError))
    assert str(e) == "ValueError: boom 42"
    assert e.message == "ValueError: boom 42"
    assert e.error_type == "SandboxExecutionError"
    assert e.status == "failed"
    assert UUID_RE.match(e.job_id)
    assert "Traceback (most recent call last)" in e.traceback
    assert "in helper" in e.traceback and "in main" in e.traceback
    assert "ValueError: boom 42" in e.traceback
    assert e.stdout == "before the raise\n"


def test_syntax_error_is_validation_error(exd_client):
    with pytest.raises(SandboxValidationError) as ei:
        exd_client.run_python("def main(:\n    return 1\n")
    e = ei.value
    assert e.error_type == "SandboxValidationError"
    assert e.status == "failed"  # the service ran the job: it has an id
    assert UUID_RE.match(e.job_id)
    assert "line 1" in e.message.lower() or "syntax" in e.message.lower(), e.message


@pytest.mark.parametrize("script", [
    "x = 1\n",                                            # no function
    "def one():\n    return 1\ndef two():\n    return 2\n",  # several, no main
])
def test_missing_entry_function_is_validation_error(exd_client, script):
    with pytest.raises(SandboxValidationError) as ei:
        exd_client.run_python(script)
    assert ei.value.error_type == "SandboxValidationError"
    assert ei.value.message


def test_dependencies_without_a_package_source_are_refused_not_dropped(exd_client):
    """The shared server has no package source (--pip-index-url, --pip-find-links, ...):
    a job with dependencies is refused with the service's 422, never run without them."""
    tag = uuid.uuid4().hex
    with pytest.raises(SandboxValidationError) as ei:
        exd_client.run_python("def main():\n    return 1\n", dependencies=["requests==2.31.0"],
                              labels={"probe": tag})
    e = ei.value
    assert e.http_status == 422
    assert e.field == "dependencies"
    # The service's own words, not the client's. (An executord without dependencies
    # support answers "unknown field"; one with it says how to configure a source.)
    assert "unknown field" in str(e) or "--pip-index-url" in str(e), str(e)
    assert e.job_id is None
    assert jobs_labelled(exd_client, "probe", tag) == []
    # An empty list asks for nothing and runs.
    assert exd_client.run_python("def main():\n    return 1\n", dependencies=[]) == 1


def test_service_422_is_validation_error(exd_client):
    with pytest.raises(SandboxValidationError) as ei:
        exd_client.run_python("def main():\n    return 1\n", env_vars={"1BAD": "x"})
    assert ei.value.http_status == 422
    assert ei.value.field.startswith("env_vars")
    with pytest.raises(SandboxValidationError) as ei:
        exd_client.run_python("def main():\n    return 1\n", timeout_seconds=10 ** 6)
    assert ei.value.field == "timeout_seconds"


def test_client_side_checks_need_no_service():
    # Nothing listens there: a check that reached the network would raise
    # ExecutorUnavailableError instead.
    dead = ExecutorClient(f"http://127.0.0.1:{free_port()}", max_retries=0)
    bad_calls = [
        dict(script=""),
        dict(script="   \n"),
        dict(script=None),
        dict(script="def main(): pass", inputs=["not", "a", "dict"]),
        dict(script="def main(x): pass", inputs={"x": object()}),
        dict(script="def main(x): pass", inputs={"x": float("nan")}),
        dict(script="def main(): pass", dependencies="requests"),
        dict(script="def main(): pass", dependencies=["requests", 3]),
        dict(script="def main(): pass", dependencies=7),
        dict(script="def main(): pass", limits=["memory_mb"]),
        dict(script="def main(): pass", timeout_seconds=0),
        dict(script="def main(): pass", timeout_seconds="10"),
        dict(script="def main(): pass", env_vars={"A": 1}),
        dict(script="def main(): pass", allow_network="yes"),
    ]
    for kwargs in bad_calls:
        with pytest.raises(SandboxValidationError):
            dead.run_python(**kwargs)
    with pytest.raises(ExecutorUnavailableError):
        dead.run_python("def main(): pass")


def test_timeout_is_timeout_error(exd_client):
    t0 = time.monotonic()
    with pytest.raises(SandboxTimeoutError) as ei:
        exd_client.run_python("import time\ndef main():\n    print('started')\n    time.sleep(60)\n",
                          timeout_seconds=1)
    e = ei.value
    assert time.monotonic() - t0 < 20
    assert e.status == "timed_out"
    assert e.error_type == "SandboxTimeoutError"
    assert "timed out" in e.message
    assert e.stdout == "started\n"


def test_env_vars_reach_the_script(exd_client):
    script = "import os\ndef main():\n    return {k: os.environ.get(k) for k in ('API_KEY', 'OTHER')}\n"
    assert exd_client.run_python(script, env_vars={"API_KEY": "s3cr\u00e9t", "OTHER": ""}) == \
        {"API_KEY": "s3cr\u00e9t", "OTHER": ""}
    assert exd_client.run_python(script) == {"API_KEY": None, "OTHER": None}


def test_other_failures_are_execution_errors(exd_client):
    with pytest.raises(SandboxExecutionError) as ei:
        exd_client.run_python("def main():\n    print('x' * 100000)\n", limits={"max_output_bytes": 1000})
    assert ei.value.error_type == "OutputLimitExceeded"
    assert ei.value.status == "failed"


def test_cancelled_job_is_execution_error(exd_client):
    tag = uuid.uuid4().hex
    outcome = {}

    def run():
        try:
            outcome["result"] = exd_client.run_python(
                "import time\ndef main():\n    time.sleep(60)\n", timeout_seconds=120,
                labels={"probe": tag})
        except SandboxError as e:
            outcome["error"] = e

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 20
    jobs = []
    while not jobs and time.monotonic() < deadline:
        jobs = jobs_labelled(exd_client, "probe", tag)
        time.sleep(0.05)
    assert len(jobs) == 1
    exd_client.cancel(jobs[0]["id"])
    t.join(30)
    assert not t.is_alive()
    e = outcome.get("error")
    assert type(e) is SandboxExecutionError, outcome
    assert e.status == "cancelled" and e.error_type == "Cancelled"
    assert e.job_id == jobs[0]["id"]


def test_lower_level_helpers(exd_client):
    tag = uuid.uuid4().hex
    job = exd_client.submit("import time\ndef main(n):\n    time.sleep(0.3)\n    print(n)\n    return n\n",
                        inputs={"n": 3}, labels={"probe": tag})
    assert UUID_RE.match(job["id"]) and job["status"] in ("queued", "running")
    final = exd_client.wait(job["id"], timeout=30)
    assert final["status"] == "succeeded" and final["result"] == 3
    assert exd_client.get(job["id"])["result"] == 3
    assert exd_client.logs(job["id"])["stdout"] == "3\n"
    assert [j["id"] for j in jobs_labelled(exd_client, "probe", tag)] == [job["id"]]
    # cancel of a finished job returns it unchanged; delete removes it.
    assert exd_client.cancel(job["id"])["status"] == "succeeded"
    exd_client.delete(job["id"])
    with pytest.raises(SandboxExecutionError) as ei:
        exd_client.get(job["id"])
    assert ei.value.http_status == 404

    long = exd_client.submit("import time\ndef main():\n    time.sleep(60)\n", timeout_seconds=120)
    with pytest.raises(SandboxTimeoutError):
        exd_client.wait(long["id"], timeout=0.5)  # wait() alone never cancels ...
    assert exd_client.get(long["id"])["status"] in ("queued", "running")
    assert exd_client.cancel(long["id"])["status"] in ("cancelled", "running")
    assert exd_client.wait(long["id"], timeout=30)["status"] == "cancelled"
    assert exd_client.ready()
    assert {b["name"] for b in exd_client.backends()["backends"]} >= {"direct"}


def test_direct_backend_is_an_explicit_opt_in(exd_client, exd_make_server):
    """direct isolates no filesystem or network: a job naming it is refused (422 on
    `backend`) unless the operator lists it in --backends."""
    entry = {b["name"]: b for b in exd_client.backends()["backends"]}["direct"]
    if FORCED_BACKEND == "direct":  # the harness enabled it to run the suite on it
        assert entry["enabled"] is True
    else:
        assert entry["enabled"] is False and entry["available"] is False
        assert "--backends" in entry["reason"]
        with pytest.raises(SandboxValidationError) as ei:
            exd_client.run_python("def main():\n    return 1\n", backend="direct")
        assert ei.value.http_status == 422 and ei.value.field == "backend"
    srv = exd_make_server("--backends", "pool,ephemeral,direct")
    client = client_of(srv)
    assert {b["name"]: b for b in client.backends()["backends"]}["direct"]["enabled"] is True
    assert client.run_python("def main():\n    return 'direct'\n", backend="direct") == "direct"
