"""Issue 11: any request that passes the body limit runs on every backend. A job's
env_vars and inputs travel to the runner over its spec pipe, not through execve (which
caps one string at 128 KiB and all of them at a quarter of the stack), so megabyte-sized
values reach the script exactly, child processes inherit what exec allows, and none of it
is ever counted as a sandbox set-up failure."""

import hashlib
import json
import random
import re

import pytest

from executord_client import Server

MAX_BODY = 8 << 20  # raised from the 2 MiB default so a request can carry megabytes
MAX_ARG_STRLEN = 128 << 10  # the kernel's cap on one "NAME=VALUE" string at execve
# what the contract adds to env_vars (Tracecat's base environment)
SAFE_NAMES = ("HOME", "LANG", "LC_ALL", "PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("large")
    s = Server(base / "data", args=["--workers", "2", "--max-body-bytes", str(MAX_BODY),
                                    "--backends", "pool,ephemeral,direct"],
               log_path=base / "executord.stderr.log")
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def setup_failures(client, backend):
    r = client.request("GET", "/metrics")
    assert r.status == 200, r
    m = re.search(rf'^executord_sandbox_setup_failures_total\{{backend="{backend}"\}} (\d+)$', r.text, re.M)
    return int(m.group(1)) if m else 0


@pytest.fixture
def no_setup_failures(client, backend):
    """Whatever the test submits, the backend's set-up failure counter must not move."""
    before = setup_failures(client, backend)
    yield
    assert setup_failures(client, backend) == before, "a client's request counted as a sandbox set-up failure"


def value(n_bytes, seed):
    """A string of exactly n_bytes UTF-8 bytes, mostly ASCII, with what an environment value
    may hold and a careless encoding would mangle: '=', newlines, quotes, backslashes,
    two-, three- and four-byte characters."""
    rnd = random.Random(seed)
    pieces = "abcdefghijklmnopqrstuvwxyz0123456789" * 8 + "= \n\t\"'\\$;" + "é€😀"
    out, size = [], 0
    while size < n_bytes:
        c = rnd.choice(pieces)
        b = len(c.encode())
        if size + b > n_bytes:
            c, b = "x", 1
        out.append(c)
        size += b
    return "".join(out)


def digest(v):
    return [len(v.encode()), hashlib.sha256(v.encode()).hexdigest()]


def run_ok(client, backend, script, **fields):
    job = client.run(script, backend=backend, timeout=120, **fields)
    assert job["status"] == "succeeded", {k: job.get(k) for k in ("status", "error", "exit_code", "signal")}
    return job["result"]


# What the script sees of each variable, through Python (os.environ) and C (getenv): putenv
# underneath os.environ must have updated the process's real environment too.
ENV_PROBE = """
import ctypes, errno, hashlib, os, subprocess

def d(b):
    return None if b is None else [len(b), hashlib.sha256(b).hexdigest()]

def main(names):
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p
    r = {n: {"py": d(os.environb.get(n.encode())), "c": d(libc.getenv(n.encode()))} for n in names}
    r["_keys"] = sorted(os.environ)
    try:
        subprocess.run(["/bin/true"], check=True)
        r["_exec"] = "ok"
    except OSError as e:
        r["_exec"] = errno.errorcode.get(e.errno, str(e.errno))
    return r
"""


@pytest.mark.parametrize("shape", ["one_mib_and_more", "over_execve_total"])
def test_large_env_vars_reach_the_script_exactly(client, backend, no_setup_failures, shape):
    if shape == "one_mib_and_more":
        # One value far beyond execve's 128 KiB per string, and two more beyond it.
        env = {"BIG": value(1 << 20, 1), "BIG2": value(300_000, 2), "BIG3": value(300_000, 3), "SMALL": "x"}
    else:
        # Each under the per-string cap, 2.4 MB together: over execve's total (stack/4).
        env = {f"V{i:02d}": value(60_000, 100 + i) for i in range(40)}
    body_size = len(json.dumps({"env_vars": env}))
    assert body_size < MAX_BODY
    r = run_ok(client, backend, ENV_PROBE, env_vars=env, inputs={"names": sorted(env)})
    for name, v in env.items():
        assert r[name] == {"py": digest(v), "c": digest(v)}, name
    assert r["_keys"] == sorted(list(env) + list(SAFE_NAMES))
    # exec itself cannot carry what execve refuses: a child program fails to start with
    # E2BIG, in the script, as the kernel's limit (not the sandbox's set-up) says.
    assert r["_exec"] == "E2BIG"


def test_child_processes_inherit_env_vars(client, backend, no_setup_failures):
    # Several values whose strings each fit execve's cap (so a child can be started), 360 KB
    # together: more than one string's cap, within the total.
    env = {"BIG": value(120_000, 7), "BIG2": value(120_000, 8), "BIG3": value(120_000, 9), "EMPTY": ""}
    assert all(len(k) + 1 + len(v.encode()) + 1 <= MAX_ARG_STRLEN for k, v in env.items())
    r = run_ok(client, backend, """
import hashlib, json, os, subprocess, sys

def d(b):
    return [len(b), hashlib.sha256(b).hexdigest()]

def main(names):
    sh = subprocess.run(["/bin/sh", "-c", 'printf %s "$BIG" | wc -c'], capture_output=True, check=True)
    child = subprocess.run([sys.executable, "-I", "-c",
                            "import hashlib, json, os\\n"
                            "print(json.dumps({k.decode(): [len(v), hashlib.sha256(v).hexdigest()]"
                            " for k, v in os.environb.items()}))"],
                           capture_output=True, check=True)
    rc = os.system('printf %s "$BIG2" > big2.out')
    with open("big2.out", "rb") as f:
        via_system = d(f.read())
    return {"sh_bytes": int(sh.stdout), "child": json.loads(child.stdout),
            "system": [rc, via_system]}
""", env_vars=env, inputs={"names": sorted(env)})
    assert r["sh_bytes"] == len(env["BIG"].encode())
    child = r["child"]
    assert sorted(child) == sorted(list(env) + list(SAFE_NAMES)), sorted(child)
    for name, v in env.items():
        assert child[name] == digest(v), name
    assert r["system"] == [0, digest(env["BIG2"])]


def test_large_inputs_reach_the_script_exactly(client, backend, no_setup_failures):
    blob = value(1_500_000, 11)
    items = [{"i": i, "s": value(20, i), "f": i / 7} for i in range(20_000)]
    inputs = {"blob": blob, "items": items}
    assert len(json.dumps(inputs)) > 1_500_000
    r = run_ok(client, backend, """
import hashlib, json

def main(blob, items):
    canon = json.dumps(items, sort_keys=True, separators=(",", ":")).encode()
    return {"blob": [len(blob.encode()), hashlib.sha256(blob.encode()).hexdigest()],
            "items": [len(items), hashlib.sha256(canon).hexdigest()]}
""", inputs=inputs)
    canon = json.dumps(items, sort_keys=True, separators=(",", ":")).encode()
    assert r == {"blob": digest(blob), "items": [len(items), hashlib.sha256(canon).hexdigest()]}


def test_a_body_just_under_the_limit_runs(client, backend, no_setup_failures):
    # The largest single value the body limit lets through (ASCII, so one byte each).
    script = "import hashlib, os\ndef main():\n    v = os.environb[b'HUGE']\n    return [len(v), hashlib.sha256(v).hexdigest()]\n"
    skeleton = json.dumps({"script": script, "backend": backend, "env_vars": {"HUGE": ""}})
    huge = "h" * (MAX_BODY - len(skeleton) - 64)
    assert len(json.dumps({"script": script, "backend": backend, "env_vars": {"HUGE": huge}})) < MAX_BODY
    r = run_ok(client, backend, script, env_vars={"HUGE": huge})
    assert r == digest(huge)


@pytest.mark.parametrize("env", [{"A=B": "x"}, {"": "x"}, {"A": "x\u0000y"}, {"1A": "x"}],
                         ids=["equals_in_name", "empty_name", "nul_in_value", "leading_digit"])
def test_env_vars_the_environment_cannot_hold_are_refused(client, backend, no_setup_failures, env):
    # Refused at the door (422), so they never reach a sandbox to fail there.
    r = client.post_job({"script": "def main():\n    return 1\n", "backend": backend, "env_vars": env})
    assert r.status == 422, r
    assert r.json()["error"]["code"], r
