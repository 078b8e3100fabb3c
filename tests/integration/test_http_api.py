"""The wire contract, one rule per test: routes, status codes, error documents, headers."""

import re
import socket
import time
import uuid

import pytest

from executord_client import DEFAULT_BACKEND, FINAL, STORE, UUID_RE, auth_header

QUICK = "def main():\n    return 1\n"
SLEEPY = "import time\ndef main(s=30):\n    time.sleep(s)\n    return 'woke'\n"

FULL_FIELDS = {
    "id", "status", "backend", "created_at", "started_at", "finished_at", "queue_wait_ms", "run_ms",
    "result", "error", "exit_code", "signal", "usage", "limits", "labels", "allow_network", "env_vars",
    "stdout_bytes", "stderr_bytes", "stdout_truncated", "stderr_truncated", "output_evicted",
    "result_evicted", "script", "inputs", "result_preview", "result_bytes", "result_truncated",
    "install", "dependencies",
}
LIMIT_FIELDS = {"timeout_seconds", "memory_mb", "cpu_seconds", "max_processes", "max_file_size_mb",
                "max_open_files", "max_output_bytes"}
TIME_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def assert_error(r, status, code):
    assert r.status == status, r
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    err = r.error
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"], err
    return err


# --- 201 / 200 / 204 --------------------------------------------------------------------

def test_post_returns_201_location_and_full_job(client):
    r = client.post_job({"script": QUICK, "labels": {"k": "v"}, "env_vars": {"A": "secret"}})
    assert r.status == 201, r
    job = r.json()
    assert UUID_RE.match(job["id"]), job
    assert r.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert set(job) == FULL_FIELDS
    assert job["status"] in ("queued", "running", "succeeded")
    assert job["backend"] == DEFAULT_BACKEND
    assert job["script"] == QUICK and job["inputs"] == {}
    assert job["labels"] == {"k": "v"}
    assert job["env_vars"] == ["A"], "env values may be secrets: only names are shown"
    assert job["allow_network"] is False
    assert set(job["limits"]) == LIMIT_FIELDS
    assert job["limits"] == {"timeout_seconds": 30, "memory_mb": 512, "cpu_seconds": 60, "max_processes": 64,
                             "max_file_size_mb": 64, "max_open_files": 256, "max_output_bytes": 1048576}
    import re
    assert re.match(TIME_RE, job["created_at"]), job["created_at"]

    done = client.wait_final(job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"] == 1 and done["error"] is None
    assert done["exit_code"] == 0 and done["signal"] in (None, 0)
    assert re.match(TIME_RE, done["started_at"]) and re.match(TIME_RE, done["finished_at"])
    assert done["started_at"] >= done["created_at"] and done["finished_at"] >= done["started_at"]
    assert isinstance(done["queue_wait_ms"], int) and done["queue_wait_ms"] >= 0
    assert isinstance(done["run_ms"], int) and done["run_ms"] >= 0
    for k in ("wall_ms", "cpu_user_ms", "cpu_system_ms", "max_rss_kb"):
        assert isinstance(done["usage"][k], int) and done["usage"][k] >= 0, done["usage"]
    assert done["usage"]["max_rss_kb"] > 1000, "a Python interpreter uses more than 1 MB"


def test_request_limits_are_echoed(client):
    limits = {"memory_mb": 256, "cpu_seconds": 5, "max_processes": 16, "max_file_size_mb": 8,
              "max_open_files": 64, "max_output_bytes": 4096}
    job = client.submit({"script": QUICK, "timeout_seconds": 7.5, "limits": limits, "allow_network": True})
    assert job["limits"] == {"timeout_seconds": 7.5, **limits}
    assert job["allow_network"] is True
    assert client.wait_final(job["id"])["status"] == "succeeded"


def test_get_job_200(client):
    job = client.submit({"script": QUICK, "inputs": {}})
    r = client.get_job(job["id"])
    assert r.status == 200, r
    assert r.headers.get("Content-Type", "").startswith("application/json")
    assert r.json()["id"] == job["id"] and set(r.json()) == FULL_FIELDS


def test_json_suffix_and_parameters_accepted(client):
    for ct in ("application/vnd.example+json", "application/json; charset=utf-8", "Application/JSON"):
        r = client.post_job(b'{"script": "def main():\\n    return 2\\n"}', headers={"Content-Type": ct})
        assert r.status == 201, (ct, r)


def test_delete_finished_job_204_then_404_and_logs_gone(client):
    job = client.run("def main():\n    print('bye')\n    return 1\n")
    assert job["status"] == "succeeded"
    assert client.logs(job["id"]).json()["stdout"] == "bye\n"
    r = client.delete(job["id"])
    assert r.status == 204, r
    assert r.body == b""
    assert_error(client.get_job(job["id"]), 404, "not_found")
    assert_error(client.logs(job["id"]), 404, "not_found")
    assert_error(client.logs(job["id"], stream="stdout", offset=0), 404, "not_found")
    assert_error(client.delete(job["id"]), 404, "not_found")
    ids = [j["id"] for j in client.list(limit=200).json()["jobs"]]
    assert job["id"] not in ids


def test_backends(client):
    r = client.request("GET", "/v1/backends")
    assert r.status == 200, r
    doc = r.json()
    assert doc["default"] == DEFAULT_BACKEND
    names = [b["name"] for b in doc["backends"]]
    assert sorted(names) == ["direct", "ephemeral", "pool"]
    for b in doc["backends"]:
        # "note" (a caveat) and "state" (pool statistics) are additions beyond the contract
        assert {"name", "enabled", "available", "reason"} <= set(b), b
        assert isinstance(b["enabled"], bool), b
        assert b.get("note") is None or isinstance(b["note"], str), b
        assert b.get("state") is None or isinstance(b["state"], dict), b
        assert isinstance(b["available"], bool)
        if b["available"]:
            assert b["reason"] is None, b
        else:
            assert isinstance(b["reason"], str) and b["reason"], b
    assert next(b for b in doc["backends"] if b["name"] == "direct")["available"] is True
    assert next(b for b in doc["backends"] if b["name"] == DEFAULT_BACKEND)["available"] is True


def test_healthz_and_readyz(client):
    r = client.request("GET", "/healthz")
    assert r.status == 200 and r.json() == {"status": "ok"}, r
    r = client.request("GET", "/readyz")
    assert r.status == 200, r
    doc = r.json()
    # the server also lists "backends" (as GET /v1/backends) - an addition beyond the contract
    assert {k: doc[k] for k in ("status", "store", "default_backend")} == \
        {"status": "ready", "store": "ok", "default_backend": DEFAULT_BACKEND}, doc
    assert set(doc) <= {"status", "store", "storage", "default_backend", "backends", "network", "replica"}, doc
    # which replica answered, and whether its store is shared (issue 15): PostgreSQL is
    assert isinstance(doc["replica"]["id"], str) and doc["replica"]["id"], doc["replica"]
    assert doc["replica"]["shared_store"] is (STORE == "postgresql"), doc["replica"]
    # how network-enabled jobs get out, and what they may not reach (issue 13)
    net = doc["network"]
    assert net["stack"] == "slirp4netns", net
    if net["available"]:
        assert "10.0.0.0/8" in net["egress"]["deny"] and "169.254.0.0/16" in net["egress"]["deny"], net
        assert "127.0.0.1/32" in net["egress"]["host_addresses"], net
    else:
        assert net["reason"], net


# --- 400 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b"{not json",
    b'{"script": "def main():\\n  return 1',  # truncated
    b'{"script": "x"} trailing',
    b'{"script": "\xff\xfe"}',  # invalid UTF-8
    b"",
], ids=["garbage", "truncated", "trailing", "invalid-utf8", "empty"])
def test_400_malformed_json(client, raw):
    assert_error(client.post_job(raw, headers={"Content-Type": "application/json"}), 400, "malformed_json")


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"script"', b"42", b"null", b"true"])
def test_400_body_not_object(client, raw):
    assert_error(client.post_job(raw, headers={"Content-Type": "application/json"}), 400, "invalid_body")


@pytest.mark.parametrize("path,param", [
    ("/v1/jobs?wait=abc", "wait"), ("/v1/jobs?wait=-1", "wait"), ("/v1/jobs?wait=301", "wait"),
    ("/v1/jobs?wait=nan", "wait"), ("/v1/jobs?wait=", "wait"),
])
def test_400_bad_wait_on_post(client, path, param):
    newest = client.submit({"script": QUICK})["id"]
    r = client.request("POST", path, {"script": QUICK})
    err = assert_error(r, 400, "invalid_parameter")
    assert param in err["message"], err
    assert client.list(limit=1).json()["jobs"][0]["id"] == newest, "a refused request must not create a job"


@pytest.mark.parametrize("query,param", [
    ("limit=0", "limit"), ("limit=201", "limit"), ("limit=abc", "limit"), ("limit=-5", "limit"),
    ("status=bogus", "status"), ("cursor=%21%21not-a-cursor", "cursor"), ("label=nocolon", "label"),
])
def test_400_bad_list_parameters(client, query, param):
    err = assert_error(client.request("GET", f"/v1/jobs?{query}"), 400, "invalid_parameter")
    assert param in err["message"], err


def test_400_bad_get_wait_and_logs_parameters(client):
    job = client.run(QUICK)
    for path, param in [(f"/v1/jobs/{job['id']}?wait=x", "wait"), (f"/v1/jobs/{job['id']}?wait=1000", "wait"),
                        (f"/v1/jobs/{job['id']}/logs?stream=stdin", "stream"),
                        (f"/v1/jobs/{job['id']}/logs?stream=stdout&offset=-1", "offset"),
                        (f"/v1/jobs/{job['id']}/logs?stream=stdout&offset=abc", "offset")]:
        err = assert_error(client.request("GET", path), 400, "invalid_parameter")
        assert param in err["message"], (path, err)


# --- 401 ----------------------------------------------------------------------------------

def test_401_token(make_server, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-value\n")
    srv = make_server("--api-token-file", str(token_file), token="s3cret-token-value")
    anon = srv.client(token=None)
    r = anon.post_job({"script": QUICK})
    err = assert_error(r, 401, "unauthorized")
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r.headers
    assert_error(anon.request("GET", "/v1/jobs"), 401, "unauthorized")
    assert_error(anon.request("GET", "/v1/backends"), 401, "unauthorized")
    wrong = srv.client(token="s3cret-token-valuX")
    assert_error(wrong.request("GET", "/v1/jobs"), 401, "unauthorized")
    assert_error(srv.client(token="s3cret-token-value-longer").request("GET", "/v1/jobs"), 401, "unauthorized")
    assert_error(anon.request("GET", "/v1/jobs", headers={"Authorization": "Basic czNjcmV0"}), 401, "unauthorized")
    # the right token works (the trailing newline of the file is not part of it)
    ok = srv.client()
    job = ok.submit({"script": QUICK})
    assert ok.wait_final(job["id"])["result"] == 1
    assert ok.request("GET", "/v1/jobs").status == 200
    # unknown job with no token: 401 comes first, no information leaks
    assert_error(anon.get_job(job["id"]), 401, "unauthorized")
    # health probes need none
    assert anon.request("GET", "/healthz").status == 200
    assert anon.request("GET", "/readyz").status == 200
    assert "s3cret" not in err["message"]


# --- 404 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"), ("GET", "/v1"), ("GET", "/v2/jobs"), ("GET", "/v1/jobs/"),
    ("GET", f"/v1/jobs/{uuid.uuid4()}"), ("GET", f"/v1/jobs/{uuid.uuid4()}/logs"),
    ("POST", f"/v1/jobs/{uuid.uuid4()}/cancel"), ("DELETE", f"/v1/jobs/{uuid.uuid4()}"),
    ("GET", "/v1/jobs/not-a-uuid"), ("GET", f"/v1/jobs/{str(uuid.uuid4()).upper()}"),
    ("GET", f"/v1/jobs/{uuid.uuid4().hex}"), ("GET", "/v1/jobs/.."), ("GET", "/v1/jobs/../healthz"),
    ("GET", "/v1/jobs/%2e%2e"), ("GET", "/v1/jobs/../../etc/passwd"), ("GET", f"/v1/jobs/{uuid.uuid4()}/nope"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None)
def test_404(client, method, path):
    assert_error(client.request(method, path), 404, "not_found")


# --- 405 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("method,path,allowed", [
    ("PUT", "/v1/jobs", {"GET", "POST"}),
    ("DELETE", "/v1/jobs", {"GET", "POST"}),
    ("POST", "/v1/jobs/{id}", {"GET", "DELETE"}),
    ("PATCH", "/v1/jobs/{id}", {"GET", "DELETE"}),
    ("GET", "/v1/jobs/{id}/cancel", {"POST"}),
    ("POST", "/v1/jobs/{id}/logs", {"GET"}),
    ("POST", "/v1/backends", {"GET"}),
    ("DELETE", "/healthz", {"GET"}),
    ("POST", "/readyz", {"GET"}),
])
def test_405_with_allow(client, method, path, allowed):
    job_id = client.submit({"script": QUICK})["id"]
    r = client.request(method, path.replace("{id}", job_id))
    assert_error(r, 405, "method_not_allowed")
    allow = {m.strip() for m in r.headers.get("Allow", "").split(",") if m.strip()}
    assert allowed <= allow, allow
    assert method not in allow
    assert allow <= allowed | {"HEAD", "OPTIONS"}, allow


# --- 409 ----------------------------------------------------------------------------------

def test_409_cancel_finished_job(client):
    job = client.run(QUICK)
    assert job["status"] == "succeeded"
    assert_error(client.cancel(job["id"]), 409, "job_finished")
    assert client.get_job(job["id"]).json()["status"] == "succeeded"


def test_409_delete_running_job(client):
    job = client.submit({"script": SLEEPY, "inputs": {"s": 30}})
    client.wait_status(job["id"], {"running"})
    assert_error(client.delete(job["id"]), 409, "job_not_finished")
    assert client.get_job(job["id"]).status == 200
    assert client.cancel(job["id"]).status == 200
    assert client.wait_final(job["id"], timeout=10)["status"] == "cancelled"


def test_409_idempotency_key_with_different_body(client):
    key = f"key-{uuid.uuid4()}"
    r1 = client.post_job({"script": QUICK}, headers={"Idempotency-Key": key})
    assert r1.status == 201, r1
    r2 = client.post_job({"script": QUICK, "labels": {"x": "y"}}, headers={"Idempotency-Key": key})
    assert_error(r2, 409, "idempotency_conflict")


# --- 413 ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_body_server(tmp_path_factory):
    from executord_client import Server
    base = tmp_path_factory.mktemp("smallbody")
    s = Server(base / "data", args=["--max-body-bytes", "2048"], log_path=base / "stderr.log")
    s.start()
    yield s
    s.stop()


def test_413_body_over_limit(small_body_server):
    c = small_body_server.client()
    ok = c.post_job({"script": QUICK + "#" * 1500})
    assert ok.status == 201, ok
    assert_error(c.post_job({"script": QUICK + "#" * 3000}), 413, "body_too_large")


def _raw_exchange(port, head, tail=b"", wait=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    t0 = time.monotonic()
    try:
        s.sendall(head + tail)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data, time.monotonic() - t0
    finally:
        s.close()


def test_413_refused_before_reading_huge_body(small_body_server):
    head = (b"POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + auth_header(small_body_server) + b"Content-Length: 100000000\r\n\r\n")
    data, elapsed = _raw_exchange(small_body_server.port, head, b'{"script":')
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert elapsed < 3, "the 413 must come without waiting for the (never sent) 100 MB body"


def test_413_chunked_body_growing_past_limit(small_body_server):
    head = (b"POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + auth_header(small_body_server) + b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b'{"script": "' + b"#" * 1000
    body = b""
    for _ in range(4):
        body += b"%x\r\n%s\r\n" % (len(chunk), chunk)
        chunk = b"#" * 1000
    body += b"0\r\n\r\n"
    data, _ = _raw_exchange(small_body_server.port, head, body)
    assert data.startswith(b"HTTP/1.1 413"), data[:200]


# --- 415 ----------------------------------------------------------------------------------

# What a web page can send without a CORS preflight (form, text, multipart, a Blob without a
# type) is never read as a job, and neither is what `curl -d` sends (curl users send --json).
@pytest.mark.parametrize("ct", ["text/plain", "text/plain;charset=UTF-8", "application/xml",
                                "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
                                None])
def test_415_unsupported_media_type(client, ct):
    before = len(client.list(limit=200).json()["jobs"])
    r = client.post_job(b'{"script": "def main():\\n    return 1\\n"}', headers={"Content-Type": ct})
    err = assert_error(r, 415, "unsupported_media_type")
    assert "application/json" in err["message"] and "--json" in err["message"], err
    assert len(client.list(limit=200).json()["jobs"]) == before, "nothing stored"


# --- 422 ----------------------------------------------------------------------------------

BAD_FIELDS = [
    ({"script": QUICK, "foo": 1}, "foo", "foo"),
    ({"script": QUICK, "limits": {"bar": 1}}, "limits.bar", "bar"),
    ({}, "script", None),
    ({"script": ""}, "script", None),
    ({"script": 123}, "script", None),
    ({"script": None}, "script", None),
    ({"script": "def main():\n    return '\u0000'\n"}, "script", None),
    ({"script": QUICK, "inputs": [1, 2]}, "inputs", None),
    ({"script": QUICK, "inputs": "x"}, "inputs", None),
    ({"script": QUICK, "backend": 5}, "backend", None),
    ({"script": QUICK, "timeout_seconds": "10"}, "timeout_seconds", None),
    ({"script": QUICK, "timeout_seconds": 0}, "timeout_seconds", None),
    ({"script": QUICK, "timeout_seconds": -1}, "timeout_seconds", None),
    ({"script": QUICK, "timeout_seconds": 3600.5}, "timeout_seconds", None),
    ({"script": QUICK, "allow_network": "yes"}, "allow_network", None),
    ({"script": QUICK, "allow_network": 1}, "allow_network", None),
    ({"script": QUICK, "limits": []}, "limits", None),
    ({"script": QUICK, "limits": {"memory_mb": 0}}, "limits.memory_mb", None),
    ({"script": QUICK, "limits": {"memory_mb": 65537}}, "limits.memory_mb", None),
    ({"script": QUICK, "limits": {"memory_mb": 1.5}}, "limits.memory_mb", None),
    ({"script": QUICK, "limits": {"memory_mb": "512"}}, "limits.memory_mb", None),
    ({"script": QUICK, "limits": {"cpu_seconds": 3601}}, "limits.cpu_seconds", None),
    ({"script": QUICK, "limits": {"cpu_seconds": -1}}, "limits.cpu_seconds", None),
    ({"script": QUICK, "limits": {"max_processes": 4097}}, "limits.max_processes", None),
    ({"script": QUICK, "limits": {"max_file_size_mb": 4097}}, "limits.max_file_size_mb", None),
    ({"script": QUICK, "limits": {"max_open_files": 65537}}, "limits.max_open_files", None),
    ({"script": QUICK, "limits": {"max_output_bytes": 67108865}}, "limits.max_output_bytes", None),
    ({"script": QUICK, "limits": {"max_output_bytes": 0}}, "limits.max_output_bytes", None),
    ({"script": QUICK, "env_vars": []}, "env_vars", None),
    ({"script": QUICK, "env_vars": {"1BAD": "x"}}, ("env_vars.1BAD", "env_vars"), None),
    ({"script": QUICK, "env_vars": {"A-B": "x"}}, ("env_vars.A-B", "env_vars"), None),
    ({"script": QUICK, "env_vars": {"": "x"}}, ("env_vars.", "env_vars"), None),
    ({"script": QUICK, "env_vars": {"A": 1}}, "env_vars.A", None),
    ({"script": QUICK, "env_vars": {"A": "x\u0000y"}}, "env_vars.A", None),
    ({"script": QUICK, "env_vars": {f"V{i}": "x" for i in range(129)}}, "env_vars", None),
    ({"script": QUICK, "labels": {"a b": "x"}}, ("labels.a b", "labels"), None),
    ({"script": QUICK, "labels": {"k" * 129: "x"}}, ("labels." + "k" * 129, "labels"), None),
    ({"script": QUICK, "labels": {"k": "v" * 257}}, "labels.k", None),
    ({"script": QUICK, "labels": {"k": 1}}, "labels.k", None),
    ({"script": QUICK, "labels": {"k": "a\u0000"}}, "labels.k", None),
    ({"script": QUICK, "labels": {f"l{i}": "x" for i in range(65)}}, "labels", None),
    ({"script": QUICK, "labels": "x"}, "labels", None),
]


@pytest.mark.parametrize("body,field,in_message", BAD_FIELDS, ids=[str(i) for i in range(len(BAD_FIELDS))])
def test_422_invalid_field(client, body, field, in_message):
    err = assert_error(client.post_job(body), 422, "invalid_field")
    fields = field if isinstance(field, tuple) else (field,)
    assert err.get("field") in fields, err
    if in_message:
        assert in_message in err["message"], err


def test_422_nul_in_names(client):
    for raw, fields in [
        (b'{"script": "def main():\\n    return 1\\n", "env_vars": {"A\\u0000B": "x"}}', ("env_vars",)),
        (b'{"script": "def main():\\n    return 1\\n", "labels": {"k\\u0000": "x"}}', ("labels",)),
        (b'{"script": "def main():\\n    return 1\\n", "limits": {"memory_mb\\u0000": 1}}', ("limits.memory_mb\x00", "limits")),
    ]:
        r = client.post_job(raw, headers={"Content-Type": "application/json"})
        err = assert_error(r, 422, "invalid_field")
        assert err["field"].split(".")[0] == fields[0].split(".")[0], (raw, err)


def test_nul_in_inputs_reaches_the_script(client):
    job = client.run("def main(s):\n    return [len(s), s.index(chr(0))]\n", inputs={"s": "a\u0000bc"})
    assert job["status"] == "succeeded" and job["result"] == [4, 1], job


def memory_budget_mb(client):
    r = client.request("GET", "/metrics")
    m = re.search(r"^executord_memory_budget_bytes (\d+)$", r.text, re.M)
    assert r.status == 200 and m, r
    return int(m.group(1)) >> 20


def test_422_limits_at_maximum_accepted(client):
    # memory_mb's default maximum (65536) is lowered to the memory budget when that is less.
    memory_max = min(65536, memory_budget_mb(client))
    job = client.submit({"script": QUICK, "timeout_seconds": 3600, "limits": {
        "memory_mb": memory_max, "cpu_seconds": 3600, "max_processes": 4096, "max_file_size_mb": 4096,
        "max_open_files": 65536, "max_output_bytes": 67108864}})
    client.cancel(job["id"])


def test_422_valid_edge_values_accepted(client):
    body = {"script": QUICK, "inputs": None, "env_vars": {"_A1": "", "B": "v"},
            "labels": {"team/a.b-c_d": "v" * 256, "k" * 128: ""}}
    job = client.submit(body)
    assert job["inputs"] == {} and sorted(job["env_vars"]) == ["B", "_A1"]
    assert client.wait_final(job["id"])["status"] == "succeeded"


def test_422_unknown_backend(client):
    err = assert_error(client.post_job({"script": QUICK, "backend": "docker"}), 422, "invalid_field")
    assert err["field"] == "backend"
    assert err["message"] == "unknown backend 'docker' (known: direct, ephemeral, pool)", err


def test_422_unavailable_backend(client):
    backends = client.request("GET", "/v1/backends").json()["backends"]
    unavailable = [b for b in backends if not b["available"]]
    if not unavailable:
        pytest.skip("every backend is available on this machine")
    for b in unavailable:
        err = assert_error(client.post_job({"script": QUICK, "backend": b["name"]}), 422, "invalid_field")
        assert err["field"] == "backend"
        assert err["message"].startswith(f"backend '{b['name']}' is not available: "), err
        assert b["reason"] in err["message"], (b, err)


def test_available_backends_run_jobs(client):
    backends = client.request("GET", "/v1/backends").json()["backends"]
    for b in backends:
        if b["available"]:
            job = client.run("def main(x):\n    return x * 2\n", backend=b["name"], inputs={"x": 21})
            assert job["backend"] == b["name"]
            assert job["status"] == "succeeded" and job["result"] == 42, job


# --- 429 ----------------------------------------------------------------------------------

def test_429_queue_full_with_retry_after(make_server):
    srv = make_server("--workers", "1", "--max-queued", "2")
    c = srv.client()
    blocker = c.submit({"script": SLEEPY, "inputs": {"s": 60}})
    c.wait_status(blocker["id"], {"running"})
    accepted = []
    r = None
    for _ in range(6):
        r = c.post_job({"script": QUICK})
        if r.status != 201:
            break
        accepted.append(r.json()["id"])
    assert len(accepted) == 2, f"max-queued 2 should accept exactly 2 queued jobs, accepted {len(accepted)}"
    assert_error(r, 429, "queue_full")
    assert r.headers.get("Retry-After") == "1", r.headers
    # room again once a queued job goes away
    assert c.cancel(accepted[0]).status == 200
    assert c.post_job({"script": QUICK}).status == 201
    c.cancel(blocker["id"])


# --- generic -------------------------------------------------------------------------------

def test_every_error_is_json_with_code_and_message(client):
    for r in (client.request("GET", "/nope"), client.request("PUT", "/v1/jobs"),
              client.post_job(b"{", headers={"Content-Type": "application/json"})):
        err = r.error
        assert set(err) <= {"code", "message", "field"}
        assert "field" not in err, "field is only for 422"


def test_job_final_states_are_final(client):
    job = client.run(QUICK)
    assert job["status"] in FINAL
