"""The same user-visible behaviour from every backend this machine can run (direct,
ephemeral, pool): a backend that is unavailable here (see GET /v1/backends) is skipped.
Sandbox backends (ephemeral, pool) also promise filesystem and network isolation."""

import random
import re
import time

import pytest
from pathlib import Path

import pgcluster
from executord_client import REPO, CANARY_NAME, CANARY_VALUE, processes_with_arg, wait_gone



def run(client, backend, script, timeout=60, **fields):
    return client.run(script, backend=backend, timeout=timeout, **fields)


def marker():
    return f"1000.{random.randint(10**8, 10**9 - 1)}"


def test_result_and_inputs(client, backend):
    job = run(client, backend, "import asyncio\nasync def main(a, b):\n    return {'sum': a + b, 's': {2, 1}}\n",
              inputs={"a": 2, "b": 40})
    assert job["status"] == "succeeded", job
    assert job["backend"] == backend
    assert job["result"] == {"sum": 42, "s": [1, 2]}
    assert job["usage"]["wall_ms"] >= 0 and job["usage"]["max_rss_kb"] > 1000, job["usage"]


def test_exception_traceback(client, backend):
    job = run(client, backend, "def main():\n    raise ValueError('boom')\n")
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "SandboxExecutionError"
    assert "ValueError: boom" in job["error"]["message"]
    files = set(re.findall(r'File "([^"]+)"', job["error"]["traceback"]))
    assert len(files) == 1, job["error"]["traceback"]


def test_validation_errors(client, backend):
    job = run(client, backend, "x = 1\n")
    assert job["status"] == "failed" and job["error"]["type"] == "SandboxValidationError", job
    assert "must contain at least one function" in job["error"]["message"]


def test_environment(client, backend):
    job = run(client, backend, f"""
import os
def main():
    return {{"mine": os.environ.get("MINE"), "canary": os.environ.get("{CANARY_NAME}"),
            "leak": any("{CANARY_VALUE}" in v for v in os.environ.values()),
            "path": os.environ.get("PATH"), "home": os.environ.get("HOME"), "lang": os.environ.get("LANG")}}
""", env_vars={"MINE": "yes"})
    assert job["status"] == "succeeded", job
    r = job["result"]
    assert r["mine"] == "yes" and r["canary"] is None and r["leak"] is False, r
    assert r["path"] and r["home"] and r["lang"], r


def test_output_streams_and_subprocess(client, backend):
    job = run(client, backend, """
import subprocess, sys
def main():
    print("out", flush=True)
    print("err", file=sys.stderr, flush=True)
    subprocess.run(["echo", "hi"])
    return 0
""")
    assert job["status"] == "succeeded", job
    logs = client.logs(job["id"]).json()
    assert logs["stdout"] == "out\nhi\n" and logs["stderr"] == "err\n", logs


def test_logs_visible_while_running(client, backend):
    job = client.submit({"script": "import time\ndef main():\n    print('early', flush=True)\n    time.sleep(2)\n",
                         "backend": backend})
    r = client.wait_output(job["id"], "early")
    assert r.headers.get("X-Job-Status") == "running"
    assert client.wait_final(job["id"])["status"] == "succeeded"


def test_timeout_kills_tree(client, backend):
    m = marker()
    job = run(client, backend, f"""
import subprocess, time
def main():
    subprocess.Popen(["sleep", "{m}"])
    time.sleep(100)
""", timeout_seconds=1.5)
    assert job["status"] == "timed_out", job
    assert job["error"]["type"] == "SandboxTimeoutError"
    assert wait_gone(m, 5), processes_with_arg(m)


def test_cancel_kills_tree(client, backend):
    m = marker()
    job = client.submit({"backend": backend, "script": f"""
import subprocess, time
def main():
    subprocess.Popen(["sleep", "{m}"])
    print("up", flush=True)
    time.sleep(100)
"""})
    client.wait_output(job["id"], "up")
    assert processes_with_arg(m)
    assert client.cancel(job["id"]).status == 200
    assert client.wait_final(job["id"], timeout=10)["status"] == "cancelled"
    assert wait_gone(m, 5), processes_with_arg(m)


def test_output_limit(client, backend):
    job = run(client, backend, "import sys, time\ndef main():\n    sys.stdout.write('x' * 5000)\n    sys.stdout.flush()\n    time.sleep(10)\n",
              limits={"max_output_bytes": 1024})
    assert job["status"] == "failed" and job["error"]["type"] == "OutputLimitExceeded", job
    assert job["stdout_bytes"] == 1024 and job["stdout_truncated"] is True


def test_memory_limit(client, backend):
    job = run(client, backend, "def main():\n    b = []\n    for _ in range(64):\n        b.append(bytearray(16 << 20))\n",
              limits={"memory_mb": 128})
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "MemoryLimitExceeded", job["error"]


def test_process_limit(client, backend):
    job = run(client, backend, """
import subprocess
def main():
    procs, err = [], None
    try:
        for _ in range(40):
            procs.append(subprocess.Popen(["sleep", "5"]))
    except OSError as e:
        err = e.errno
    for p in procs:
        p.kill()
        p.wait()
    return {"started": len(procs), "errno": err}
""", limits={"max_processes": 8})
    assert job["status"] == "succeeded", job
    assert job["result"]["started"] < 8, job["result"]


def test_cannot_see_other_processes(client, backend):
    job = run(client, backend, "import os\ndef main():\n    return len([d for d in os.listdir('/proc') if d.isdigit()])\n")
    assert job["status"] == "succeeded", job
    assert job["result"] < 10, f"the job sees {job['result']} processes"


# --- sandbox backends only ---------------------------------------------------------------

def sandbox_only(backend):
    if backend == "direct":
        pytest.skip("direct does not isolate the filesystem or network (by design)")


def test_sandbox_hides_service_files(server, client, backend, tmp_path):
    sandbox_only(backend)
    # the store: SQLite's file, or PostgreSQL's socket folder (EXECUTORD_TEST_STORE)
    db = Path(pgcluster.socket_dir(server.store_url)) if server.store_url else server.data_dir / "executord.db"
    assert db.exists()
    secret = Path("/tmp") / f"executord-it-secret-{random.randint(10**8, 10**9)}"
    secret.write_text("host secret")
    secret.chmod(0o644)
    try:
        paths = [str(db), str(server.data_dir), str(REPO / "CMakeLists.txt"), str(secret)]
        job = run(client, backend, f"""
import os
def main():
    return [os.path.exists(p) for p in {paths!r}]
""")
    finally:
        secret.unlink()
    assert job["status"] == "succeeded", job
    assert job["result"] == [False] * len(paths), list(zip(paths, job["result"]))


def test_sandbox_network_off_by_default(server, client, backend):
    sandbox_only(backend)
    job = run(client, backend, f"""
import socket
def main():
    try:
        socket.create_connection(("127.0.0.1", {server.port}), timeout=2).close()
        return "connected"
    except OSError as e:
        return "refused"
""")
    assert job["status"] == "succeeded", job
    assert job["result"] == "refused", "allow_network false must keep the job off the host network"


def test_sandbox_cannot_write_outside_its_folder(client, backend):
    sandbox_only(backend)
    job = run(client, backend, """
def main():
    out = {}
    for p in ("/usr/pwned", "/etc/pwned", "/pwned"):
        try:
            open(p, "w").close()
            out[p] = "written"
        except OSError:
            out[p] = "refused"
    with open("ok.txt", "w") as f:
        f.write("fine")
    return out
""")
    assert job["status"] == "succeeded", job
    assert set(job["result"].values()) == {"refused"}, job["result"]


def test_sandbox_no_state_carries_over_between_jobs(client, backend):
    sandbox_only(backend)
    tag = f"leak-{random.randint(10**8, 10**9)}"
    first = run(client, backend, f"""
import os, sys
def main():
    for d in ("/tmp", os.getcwd(), os.environ.get("HOME", "/tmp")):
        try:
            with open(os.path.join(d, "{tag}"), "w") as f:
                f.write("x")
        except OSError:
            pass
    os.environ["{tag.upper().replace('-', '_')}"] = "1"
    sys.modules["{tag}"] = sys
    return os.getcwd()
""")
    assert first["status"] == "succeeded", first
    for _ in range(3):  # a pool hands out several prepared sandboxes: try a few
        job = run(client, backend, f"""
import os, sys
def main():
    found = [d for d in ("/tmp", os.getcwd(), os.environ.get("HOME", "/tmp"))
             if os.path.exists(os.path.join(d, "{tag}"))]
    return {{"files": found, "env": "{tag.upper().replace('-', '_')}" in os.environ,
             "module": "{tag}" in sys.modules}}
""")
        assert job["status"] == "succeeded", job
        assert job["result"] == {"files": [], "env": False, "module": False}, job["result"]


@pytest.mark.parametrize("sandbox", ["ephemeral", "pool"])
def test_sandbox_size_flags_reach_every_sandbox_backend(make_server, sandbox):
    srv = make_server("--sandbox-tmp-mb", "8", "--sandbox-work-mb", "16")
    c = srv.client()
    state = {b["name"]: b for b in c.request("GET", "/v1/backends").json()["backends"]}[sandbox]
    if not state["available"]:
        pytest.skip(f"backend {sandbox} unavailable here: {state['reason']}")
    job = c.run("import os\ndef main():\n"
                "    return [os.statvfs(p).f_blocks * os.statvfs(p).f_frsize >> 20 for p in ('/tmp', '/work')]\n",
                backend=sandbox, timeout=60)
    assert job["status"] == "succeeded", job
    assert job["result"] == [8, 16], job["result"]
