"""Per-job resource limits as a user sees them, isolation the direct backend promises
(its own PID namespace), and HTTP robustness: keep-alive, many waiters, clients that
disconnect while waiting, large bodies, non-ASCII data."""

import http.client
import re
import json
import socket
import threading
import time

import pytest

from executord_client import auth_header


def test_cpu_limit(client):
    t0 = time.monotonic()
    job = client.run("def main():\n    while True:\n        pass\n", limits={"cpu_seconds": 1},
                     timeout_seconds=20, timeout=30)
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "ResourceLimitExceeded", job["error"]
    assert "CPU" in job["error"]["message"], job["error"]
    assert time.monotonic() - t0 < 10


def test_file_size_limit(client):
    job = client.run("""
def main():
    with open("big.bin", "wb") as f:
        f.write(b"\\0" * (3 * 1024 * 1024))
    return "wrote"
""", limits={"max_file_size_mb": 1})
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "ResourceLimitExceeded", job["error"]
    assert "File size limit" in job["error"]["message"], job["error"]


def test_open_files_limit(client):
    job = client.run("""
import os
def main():
    fds = []
    try:
        for _ in range(200):
            fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as e:
        return {"opened": len(fds), "errno": e.errno}
    return {"opened": len(fds), "errno": None}
""", limits={"max_open_files": 32})
    assert job["status"] == "succeeded", job
    assert job["result"]["errno"] == 24, job["result"]  # EMFILE
    assert job["result"]["opened"] < 32


def test_stderr_over_limit(client):
    job = client.run("import sys\ndef main():\n    sys.stderr.write('e' * 3000)\n    return 1\n",
                     limits={"max_output_bytes": 1024})
    assert job["status"] == "failed" and job["error"]["type"] == "OutputLimitExceeded", job
    assert "stderr" in job["error"]["message"]
    assert job["stderr_truncated"] is True and job["stderr_bytes"] == 1024
    assert job["stdout_truncated"] is False


def test_job_cannot_see_executord_process(server, client):
    job = client.run("""
import os
def main():
    return sorted(int(d) for d in os.listdir("/proc") if d.isdigit())
""")
    assert job["status"] == "succeeded", job
    pids = job["result"]
    assert len(pids) < 10, f"the job sees the host's processes: {len(pids)} pids"


def test_unicode_script_inputs_and_labels(client):
    inputs = {"name": "Zoë 🐍", "nested": {"ключ": ["值", 1.5, None, True]}}
    job = client.run("def main(name, nested):\n    # commentaire é\n    return {'greeting': 'héllo ' + name, 'nested': nested}\n",
                     inputs=inputs, labels={"owner": "zoë"})
    assert job["status"] == "succeeded", job
    assert job["result"] == {"greeting": "héllo Zoë 🐍", "nested": inputs["nested"]}
    assert job["inputs"] == inputs
    assert job["labels"] == {"owner": "zoë"}
    assert [j["id"] for j in client.list(label="owner:zoë").json()["jobs"]][:1] == [job["id"]]


def test_large_inputs_within_body_limit(client):
    s = "a" * (1536 * 1024)
    job = client.run("def main(s):\n    return len(s)\n", inputs={"s": s})
    assert job["status"] == "succeeded" and job["result"] == len(s), job["error"]


def test_keep_alive_connection_serves_several_requests(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        for method, path, body, want in [
            ("GET", "/healthz", None, 200),
            ("GET", "/nope", None, 404),
            ("POST", "/v1/jobs", b"{bad", 400),
            ("POST", "/v1/jobs?wait=20", json.dumps({"script": "def main():\n    return 7\n"}).encode(), 201),
            ("PUT", "/v1/jobs", None, 405),
            ("GET", "/v1/backends", None, 200),
        ]:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            headers["Authorization"] = f"Bearer {server.token}"
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            assert r.status == want, (method, path, r.status, data)
            if want == 201:
                assert json.loads(data)["result"] == 7
    finally:
        conn.close()


def test_many_concurrent_waiters(client):
    job = client.submit({"script": "import time\ndef main():\n    time.sleep(2)\n    return 'all'\n"})
    results = []

    def waiter():
        results.append(client.get_job(job["id"], wait=30))

    threads = [threading.Thread(target=waiter) for _ in range(60)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert len(results) == 60
    assert all(r.status == 200 and r.json()["status"] == "succeeded" for r in results), \
        [r for r in results if r.status != 200][:3]
    assert time.monotonic() - t0 < 10
    # the waiters hold no worker threads: the service still answers at once
    assert client.request("GET", "/healthz").elapsed < 1


def test_client_disconnect_while_waiting(server, client):
    job = client.submit({"script": "import time\ndef main():\n    time.sleep(1.5)\n    return 'still ran'\n"})
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(f"GET /v1/jobs/{job['id']}?wait=30 HTTP/1.1\r\nHost: localhost\r\n".encode()
                  + auth_header(server) + b"\r\n")
        time.sleep(0.05)
        s.close()
    body = json.dumps({"script": "def main():\n    return 1\n"}).encode()
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /v1/jobs?wait=30 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" + auth_header(server) +
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    s.close()
    done = client.wait_final(job["id"], timeout=20)
    assert done["status"] == "succeeded" and done["result"] == "still ran"
    assert client.request("GET", "/healthz").status == 200
    assert server.running


def test_slow_body_upload(server, client):
    body = json.dumps({"script": "def main():\n    return 'slow'\n"}).encode()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    try:
        s.sendall(b"POST /v1/jobs?wait=20 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" + auth_header(server) +
                  b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 10):
            s.sendall(body[i:i + 10])
            time.sleep(0.01)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201"), head
    assert json.loads(payload)["result"] == "slow"


def test_concurrent_same_idempotency_key_makes_one_job(client):
    import uuid

    key = f"race-{uuid.uuid4()}"
    body = {"script": "def main():\n    return 'once'\n", "labels": {"race": key[-12:]}}
    results = []
    barrier = threading.Barrier(12)

    def post():
        barrier.wait()
        results.append(client.post_job(body, headers={"Idempotency-Key": key}))

    threads = [threading.Thread(target=post) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    statuses = sorted(r.status for r in results)
    assert statuses == [200] * 11 + [201], [(r.status, r.body[:200]) for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    assert len(client.list(label=f"race:{key[-12:]}").json()["jobs"]) == 1


def test_cancel_right_after_submit_is_consistent(client):
    pairs = []
    for i in range(15):
        job = client.submit({"script": f"def main():\n    print('ran {i}')\n    return {i}\n"})
        pairs.append((job["id"], client.cancel(job["id"])))
    for job_id, r in pairs:
        done = client.wait_final(job_id, timeout=20)
        if r.status == 200:
            assert done["status"] == "cancelled", (r, done)
            assert done["result"] is None
            if done["started_at"] is None:
                assert client.logs(job_id).json()["stdout"] == "", "a job cancelled while queued never runs"
        else:
            assert r.status == 409 and r.error["code"] == "job_finished", r
            assert done["status"] == "succeeded", done


def test_label_filter_with_special_characters(client):
    import uuid
    from urllib.parse import quote

    tag = uuid.uuid4().hex[:10]
    job = client.run("def main():\n    return 1\n", labels={f"team/x.{tag}": "a b:c"})
    r = client.request("GET", f"/v1/jobs?label={quote(f'team/x.{tag}:a b:c', safe='')}")
    assert r.status == 200, r
    assert [j["id"] for j in r.json()["jobs"]] == [job["id"]]
    r = client.request("GET", f"/v1/jobs?label={quote(f'team/x.{tag}:a b', safe='')}")
    assert r.json()["jobs"] == [], "the label value must match exactly"


def test_bad_offset_overflow(client):
    job = client.run("def main():\n    print('x')\n")
    r = client.request("GET", f"/v1/jobs/{job['id']}/logs?stream=stdout&offset=99999999999999999999999")
    assert r.status == 400 and r.error["code"] == "invalid_parameter" and "offset" in r.error["message"], r


def test_large_output_kept_exactly(client):
    job = client.run("""
import sys
def main():
    for i in range(8000):
        sys.stdout.write(f"{i:09d}" + "." * 90 + "\\n")
    return 1
""")
    assert job["status"] == "succeeded", job
    assert job["stdout_bytes"] == 800000 and job["stdout_truncated"] is False, job
    raw = client.logs(job["id"], stream="stdout", offset=0).body
    assert raw == b"".join(f"{i:09d}".encode() + b"." * 90 + b"\n" for i in range(8000))
    tail = client.logs(job["id"], stream="stdout", offset=799900)
    assert tail.body == b"000007999" + b"." * 90 + b"\n"


def test_nul_bytes_in_output(client):
    job = client.run("import sys\ndef main():\n    sys.stdout.buffer.write(b'a\\x00b\\n')\n    return 1\n")
    assert client.logs(job["id"], stream="stdout", offset=0).body == b"a\x00b\n"
    assert client.logs(job["id"]).json()["stdout"] == "a\x00b\n"


def test_stdin_is_empty_not_blocking(client):
    job = client.run("import sys\ndef main():\n    return sys.stdin.read()\n", timeout_seconds=5)
    assert job["status"] == "succeeded", job
    assert job["result"] == ""


def test_script_killing_itself(client):
    job = client.run("import os, signal\ndef main():\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "SandboxExecutionError", job["error"]
    assert job["signal"] == 9 or "SIGKILL" in job["error"]["message"], job


def test_script_cannot_raise_its_own_limits(client):
    job = client.run("""
import resource
def main():
    raised = []
    for name in ("RLIMIT_NOFILE", "RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE"):
        res = getattr(resource, name)
        soft, hard = resource.getrlimit(res)
        try:
            resource.setrlimit(res, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            raised.append(name)
        except (ValueError, OSError):
            pass
    return raised
""", limits={"max_open_files": 64, "memory_mb": 256, "cpu_seconds": 5, "max_processes": 16,
             "max_file_size_mb": 8})
    assert job["status"] == "succeeded", job
    assert job["result"] == [], f"the script lifted its own hard limits: {job['result']}"


def test_work_folder_is_under_data_dir_and_removed(server, client):
    # direct: the job's folder <data-dir>/work/<id> is the same path inside and outside
    job = client.run(backend="direct", script="""
import os
def main():
    with open("scratch.bin", "wb") as f:
        f.write(b"x" * 100000)
    return os.getcwd()
""")
    assert job["status"] == "succeeded", job
    cwd = job["result"]
    assert cwd.endswith(job["id"]), cwd
    host_path = server.data_dir / "work" / job["id"]
    deadline = time.monotonic() + 5
    while host_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not host_path.exists(), f"work folder {host_path} left behind"


def test_chunked_body_under_limit_accepted(server):
    body = json.dumps({"script": "def main():\n    return 'chunked'\n"}).encode()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    try:
        half = len(body) // 2
        s.sendall(b"POST /v1/jobs?wait=20 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" + auth_header(server) +
                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                  + b"%x\r\n%s\r\n" % (half, body[:half])
                  + b"%x\r\n%s\r\n" % (len(body) - half, body[half:]) + b"0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201"), data[:300]
    assert json.loads(payload)["result"] == "chunked"


def test_deeply_nested_inputs_either_refused_or_delivered(client):
    """The API accepts JSON up to jansson's depth limit; inputs it accepts must reach main()
    (or be refused with 422 up front), not fail inside the runner."""
    depth = 1500
    raw = (b'{"script": "def main(a):\\n    d = 0\\n    while isinstance(a, dict):\\n        a = a[\\"a\\"]\\n'
           b'        d += 1\\n    return d\\n", "inputs": {"a": ' + b'{"a":' * depth + b"1" + b"}" * depth + b"}}")
    r = client.post_job(raw, headers={"Content-Type": "application/json"})
    if r.status == 422:
        assert r.error["field"].startswith("inputs"), r
        return
    assert r.status == 201, r.body[:300]
    job_id = re.search(rb'"id":"([0-9a-f-]{36})"', r.body).group(1).decode()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = client.get_job(job_id, wait=5).body
        status = re.search(rb'"status":"(\w+)"', body).group(1).decode()
        if status not in ("queued", "running"):
            break
    assert status == "succeeded", re.search(rb'"error":(\{[^}]*\})', body).group(1)[:300]
    assert re.search(rb'"result":1500\b', body), body[-300:]
