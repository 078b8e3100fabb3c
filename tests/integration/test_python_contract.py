"""Tracecat's run_python contract as a user sees it through the API, one rule per test:
entry-function selection, JSON-safe results, errors, timeouts, environment, output."""

import random
import re
import textwrap

import pytest

from executord_client import CANARY_NAME, CANARY_VALUE


def script(src):
    return textwrap.dedent(src).lstrip("\n")


def run_ok(client, src, **fields):
    job = client.run(script(src), **fields)
    assert job["status"] == "succeeded", job
    assert job["error"] is None, job
    return job


def run_failed(client, src, etype=None, **fields):
    job = client.run(script(src), **fields)
    assert job["status"] == "failed", job
    assert job["result"] is None, job
    if etype:
        assert job["error"]["type"] == etype, job["error"]
    return job


# --- entry function ------------------------------------------------------------------------

def test_main_called_with_inputs_as_keywords(client):
    job = run_ok(client, """
        def main(a, b, greeting="hi"):
            return {"sum": a + b, "greeting": greeting}
    """, inputs={"b": 3, "a": 2, "greeting": "yo"})
    assert job["result"] == {"sum": 5, "greeting": "yo"}


def test_no_inputs_calls_main_without_arguments(client):
    job = run_ok(client, """
        def main(*args, **kwargs):
            return [len(args), len(kwargs)]
    """)
    assert job["result"] == [0, 0]
    job = run_ok(client, "def main():\n    return 'none'\n", inputs=None)
    assert job["result"] == "none"
    job = run_ok(client, "def main():\n    return 'empty'\n", inputs={})
    assert job["result"] == "empty"


def test_single_function_without_main_is_called(client):
    job = run_ok(client, """
        import json
        LIMIT = 10

        def double(x):
            return x * 2
    """, inputs={"x": 21})
    assert job["result"] == 42


def test_private_helpers_do_not_count(client):
    job = run_ok(client, """
        def _helper(x):
            return x + 100

        def compute(x):
            return _helper(x)
    """, inputs={"x": 1})
    assert job["result"] == 101


def test_main_chosen_among_several_functions(client):
    job = run_ok(client, """
        def helper(x):
            return x + 1

        def main(x):
            return helper(x) * 10

        def other():
            raise RuntimeError("must not be called")
    """, inputs={"x": 1})
    assert job["result"] == 20


def test_async_main_is_awaited(client):
    job = run_ok(client, """
        import asyncio

        async def main(n):
            await asyncio.sleep(0.01)
            return {"n": n + 1}
    """, inputs={"n": 41})
    assert job["result"] == {"n": 42}


def test_no_function_is_validation_error(client):
    job = run_failed(client, "x = 1\nprint(x)\n", "SandboxValidationError")
    assert "must contain at least one function" in job["error"]["message"], job["error"]


def test_several_functions_none_main_is_validation_error(client):
    job = run_failed(client, """
        def a():
            return 1

        def b():
            return 2
    """, "SandboxValidationError")
    assert "one must be named 'main'" in job["error"]["message"], job["error"]


def test_syntax_error_reports_line(client):
    job = run_failed(client, "def main():\n    x = 1\n    return (x +\n\ndef other(:\n    pass\n")
    assert job["error"]["type"] in ("SandboxValidationError", "SandboxExecutionError"), job["error"]
    msg = job["error"]["message"]
    assert re.search(r"\bline [0-9]+", msg), msg
    assert "SyntaxError" in msg or "syntax" in msg.lower(), msg


def test_syntax_error_line_number_is_the_users(client):
    job = run_failed(client, "def main():\n    return 1\n\n\nx = = 1\n")
    assert re.search(r"\bline 5\b", job["error"]["message"]), job["error"]


def test_exception_is_execution_error_with_user_traceback(client):
    job = run_failed(client, """
        def check(v):
            if v > 1:
                raise ValueError("boom")

        def main():
            check(2)
            return "unreachable"
    """, "SandboxExecutionError")
    err = job["error"]
    assert "ValueError: boom" in err["message"], err
    tb = err["traceback"]
    assert isinstance(tb, str), err
    assert 'raise ValueError("boom")' in tb, tb
    assert "in check" in tb and "in main" in tb, tb
    assert "ValueError: boom" in tb, tb
    files = set(re.findall(r'File "([^"]+)"', tb))
    assert len(files) == 1, f"the traceback must show only the user's script, not the runner's frames: {files}\n{tb}"
    # the line numbers are the user's (raise is on line 3 of the script as submitted)
    assert re.search(r'line 3, in check', tb), tb


def test_exception_in_module_body(client):
    job = run_failed(client, """
        raise KeyError("at import")

        def main():
            return 1
    """)
    assert job["error"]["type"] in ("SandboxExecutionError", "SandboxValidationError"), job["error"]
    assert "KeyError" in job["error"]["message"], job["error"]


def test_system_exit_is_a_failure(client):
    job = client.run(script("""
        import sys

        def main():
            sys.exit(3)
    """))
    assert job["status"] == "failed", job
    assert job["error"] is not None


# --- JSON-safe conversions -----------------------------------------------------------------

CONVERSIONS = [
    ("set", "return {3, 1, 2}", [1, 2, 3]),
    ("mixed-set-sorted-by-repr", "return {1, 'a', 2.5}", ["a", 1, 2.5]),
    ("frozenset", "return frozenset({'b', 'a'})", ["a", "b"]),
    ("tuple", "return (1, (2, 3))", [1, [2, 3]]),
    ("dataclass", "return P(1, 'two', {5, 4})", {"x": 1, "y": "two", "z": [4, 5]}),
    ("nested-dataclass", "return {'p': [P(1, 'a', set())]}", {"p": [{"x": 1, "y": "a", "z": []}]}),
    ("datetime", "return datetime.datetime(2024, 1, 2, 3, 4, 5, 600000)", "2024-01-02T03:04:05.600000"),
    ("datetime-tz", "return datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)",
     "2024-01-02T03:04:05+00:00"),
    ("date", "return datetime.date(2024, 2, 29)", "2024-02-29"),
    ("time", "return datetime.time(13, 14, 15)", "13:14:15"),
    ("timedelta", "return datetime.timedelta(minutes=1, seconds=30, milliseconds=500)", 90.5),
    ("decimal", "return decimal.Decimal('1.10')", "1.10"),
    ("enum", "return Color.RED", "red"),
    ("int-enum", "return Level.HIGH", 3),
    ("uuid", "return uuid.UUID('12345678-1234-5678-1234-567812345678')", "12345678-1234-5678-1234-567812345678"),
    ("path", "return pathlib.PurePosixPath('/tmp/x/y.txt')", "/tmp/x/y.txt"),
    ("bytes", "return b'hi there'", "hi there"),
    ("object-repr", "return Thing()", "<Thing #7>"),
    ("class-repr", "return Thing", None),
    ("dict-values", "return {'when': datetime.date(2020, 1, 1), 'ids': {2, 1}}", {"when": "2020-01-01", "ids": [1, 2]}),
    ("none", "return None", None),
    ("unicode", "return 'héllo ✓ 🐍'", "héllo ✓ 🐍"),
    ("float", "return 0.1", 0.1),
    ("big-int", "return 2**62", 2**62),
]

PRELUDE = """
import dataclasses, datetime, decimal, enum, pathlib, uuid

@dataclasses.dataclass
class P:
    x: int
    y: str
    z: set

class Color(enum.Enum):
    RED = "red"

class Level(enum.IntEnum):
    HIGH = 3

class Thing:
    def __repr__(self):
        return "<Thing #7>"

def main():
    {body}
"""


@pytest.mark.parametrize("name,body,expected", CONVERSIONS, ids=[c[0] for c in CONVERSIONS])
def test_json_safe_conversion(client, name, body, expected):
    job = run_ok(client, PRELUDE.replace("{body}", body))
    if name == "class-repr":
        assert re.fullmatch(r"<class '[\w.<>]*Thing'>", job["result"]), job["result"]
    else:
        assert job["result"] == expected
        assert type(job["result"]) is type(expected), job["result"]


def test_recursive_dataclass_is_not_serializable(client):
    job = run_failed(client, """
        import dataclasses

        @dataclasses.dataclass
        class Node:
            child: object = None

        def main():
            n = Node()
            n.child = n
            return n
    """)
    msg = job["error"]["message"]
    assert msg.startswith("Output not JSON-serializable: "), msg
    assert "Recursive dataclass values are not JSON-serializable" in msg, msg


# --- timeout -------------------------------------------------------------------------------

def test_timeout(client):
    job = client.submit({"script": script("""
        import time

        def main():
            print("before", flush=True)
            time.sleep(30)
            return "late"
    """), "timeout_seconds": 1})
    done = client.wait_final(job["id"], timeout=15)
    assert done["status"] == "timed_out", done
    assert done["result"] is None
    assert done["error"]["type"] == "SandboxTimeoutError", done["error"]
    assert "timed out" in done["error"]["message"], done["error"]
    assert re.search(r"\b1(\.0+)? seconds?\b", done["error"]["message"]), done["error"]
    assert done["run_ms"] < 5000, done
    assert client.logs(job["id"]).json()["stdout"] == "before\n"


def test_fractional_timeout(client):
    job = client.run("import time\ndef main():\n    time.sleep(10)\n", timeout=15, timeout_seconds=0.5)
    assert job["status"] == "timed_out", job
    assert "0.5" in job["error"]["message"], job["error"]
    assert job["run_ms"] < 4000, job


# --- environment ---------------------------------------------------------------------------

def test_env_vars_visible_and_service_env_not(client):
    job = run_ok(client, f"""
        import os

        def main():
            return {{
                "mine": os.environ.get("MY_VAR"),
                "other": os.environ.get("OTHER_VAR"),
                "canary": os.environ.get("{CANARY_NAME}"),
                "leaked": sorted(k for k, v in os.environ.items() if "{CANARY_VALUE}" in v),
                "path": os.environ.get("PATH"),
                "home": os.environ.get("HOME"),
                "lang": os.environ.get("LANG"),
            }}
    """, env_vars={"MY_VAR": "hello world", "OTHER_VAR": "=x="})
    r = job["result"]
    assert r["mine"] == "hello world" and r["other"] == "=x="
    assert r["canary"] is None and r["leaked"] == [], "executord's own environment must not reach jobs"
    assert r["path"] and "/usr/bin" in r["path"].split(":"), r
    assert r["home"], r
    assert r["lang"], r
    assert job["env_vars"] == ["MY_VAR", "OTHER_VAR"] or sorted(job["env_vars"]) == ["MY_VAR", "OTHER_VAR"]


def test_env_var_values_not_exposed_by_api(client):
    job = client.run("def main():\n    return 1\n", env_vars={"API_KEY": "very-secret-value-123"})
    assert job["env_vars"] == ["API_KEY"]
    for r in (client.get_job(job["id"]), client.list(limit=5), client.logs(job["id"])):
        assert b"very-secret-value-123" not in r.body, r


# --- output --------------------------------------------------------------------------------

def test_stdout_and_stderr_are_separate(client):
    job = run_ok(client, """
        import sys

        def main():
            print("to out")
            print("to err", file=sys.stderr)
            sys.stdout.write("more out\\n")
            return 0
    """)
    logs = client.logs(job["id"]).json()
    assert logs["stdout"] == "to out\nmore out\n"
    assert logs["stderr"] == "to err\n"
    assert logs["stdout_bytes"] == len("to out\nmore out\n") == job["stdout_bytes"]
    assert logs["stderr_bytes"] == len("to err\n") == job["stderr_bytes"]
    assert logs["job_id"] == job["id"] and logs["status"] == "succeeded"
    assert logs["stdout_truncated"] is False and logs["stderr_truncated"] is False
    raw = client.logs(job["id"], stream="stderr", offset=0)
    assert raw.status == 200 and raw.body == b"to err\n"
    assert raw.headers.get("Content-Type", "").startswith("text/plain")
    assert raw.headers.get("X-Output-Bytes") == "7"
    assert raw.headers.get("X-Job-Status") == "succeeded"


def test_subprocess_output_captured(client):
    job = run_ok(client, """
        import subprocess

        def main():
            r = subprocess.run(["echo", "hi"])
            return r.returncode
    """)
    assert job["result"] == 0
    assert client.logs(job["id"]).json()["stdout"] == "hi\n"


def test_invalid_utf8_output_replaced(client):
    job = run_ok(client, """
        import sys

        def main():
            sys.stdout.buffer.write(b"ok \\xff\\xfe end\\n")
            return 1
    """)
    logs = client.logs(job["id"]).json()
    assert logs["stdout"] == "ok \ufffd\ufffd end\n", logs
    assert client.logs(job["id"], stream="stdout", offset=0).body == b"ok \xff\xfe end\n"


def test_output_over_limit(client):
    job = client.run(script("""
        import sys, time

        def main():
            sys.stdout.write("x" * 5000)
            sys.stdout.flush()
            time.sleep(10)
            return "not reached"
    """), limits={"max_output_bytes": 1024}, timeout=20)
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "OutputLimitExceeded", job["error"]
    assert job["stdout_truncated"] is True and job["stderr_truncated"] is False
    assert job["stdout_bytes"] == 1024, job
    assert job["run_ms"] < 8000, "the job is stopped when it passes the limit, not at the end"
    assert client.logs(job["id"], stream="stdout", offset=0).body == b"x" * 1024
    assert client.logs(job["id"]).json()["stdout_truncated"] is True


def test_large_result(client):
    n = random.randint(50000, 60000)
    job = run_ok(client, f"def main():\n    return 'y' * {n}\n")
    assert job["result"] == "y" * n


def test_result_over_output_limit_fails(client):
    job = client.run("def main():\n    return 'z' * 100000\n", limits={"max_output_bytes": 4096})
    assert job["status"] == "failed", job
    assert job["error"]["type"] in ("OutputLimitExceeded", "ResourceLimitExceeded", "SandboxExecutionError"), job["error"]
