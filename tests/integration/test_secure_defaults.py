"""A default install cannot be driven by a web page, a rebound name or a client without the
token (issue 10): the generated token, the refusals at start-up, the Host and Origin checks,
the backend allow-list, the raw stream's headers and what /readyz tells a stranger. Every
check goes through the real binary over HTTP; what is refused must leave nothing stored."""

import os
import re
import stat
import subprocess

import pytest

from executord_client import BIN, Client, free_port

QUICK = "def main():\n    return 1\n"


def run_binary(*args, timeout=20):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                          env={k: v for k, v in os.environ.items() if not k.startswith("EXECUTORD_")})


# --- the generated token ------------------------------------------------------------------

def test_token_is_generated_private_reused_and_never_logged(make_server):
    srv = make_server()
    path = srv.data_dir / "api-token"
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid(), oct(st.st_mode)
    token = path.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", token), "256 random bits, hex"
    assert srv.token == token
    anon = srv.client(token=None)
    assert anon.request("GET", "/v1/jobs").status == 401
    assert anon.post_job({"script": QUICK}).status == 401
    assert anon.request("GET", "/metrics").status == 401
    assert srv.client().run(QUICK)["result"] == 1
    log = srv.log_path.read_text()
    assert str(path) in log, "the log says where the token is"
    srv.stop()
    srv.start()
    assert path.read_text().strip() == token, "reused across restarts"
    assert srv.client().request("GET", "/v1/jobs").status == 200
    srv.stop()
    assert token not in srv.log_path.read_text(), "the token itself is never logged"
    # two instances never share a data folder's token by accident: a new folder, a new token
    other = make_server()
    assert other.token != token


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_token_file_readable_by_others_is_refused(tmp_path, mode):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "api-token").write_text("a" * 64 + "\n")
    os.chmod(data / "api-token", mode)
    r = run_binary("--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(data), "--backend", "ephemeral")
    assert r.returncode != 0, r
    assert "api-token" in r.stderr and "0600" in r.stderr, r.stderr


def test_token_file_that_is_a_symlink_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_text("b" * 64 + "\n")
    os.chmod(target, 0o600)
    os.symlink(target, data / "api-token")
    r = run_binary("--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(data), "--backend", "ephemeral")
    assert r.returncode != 0 and "api-token" in r.stderr, r.stderr


# --- --insecure-no-auth -------------------------------------------------------------------

@pytest.mark.parametrize("listen", ["0.0.0.0", "[::]"])
def test_insecure_no_auth_is_refused_beyond_loopback(tmp_path, listen):
    r = run_binary("--insecure-no-auth", "--listen", f"{listen}:{free_port()}", "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing --insecure-no-auth" in lines[0] and "loopback" in lines[0], r.stderr
    assert not (tmp_path / "d").exists(), "refused before touching anything"


def test_insecure_no_auth_by_environment_is_refused_too(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECUTORD_")}
    env.update(EXECUTORD_INSECURE_NO_AUTH="1", EXECUTORD_LISTEN=f"0.0.0.0:{free_port()}")
    r = subprocess.run([BIN, "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, env=env,
                       timeout=20)
    assert r.returncode == 2 and "refusing --insecure-no-auth" in r.stderr, r.stderr


def test_insecure_no_auth_with_a_token_file_is_refused(tmp_path):
    tf = tmp_path / "token"
    tf.write_text("t" * 40)
    r = run_binary("--insecure-no-auth", "--api-token-file", str(tf), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "contradict" in r.stderr, r.stderr


def test_insecure_no_auth_on_loopback_serves_without_token_and_says_so(make_server):
    srv = make_server("--insecure-no-auth")
    assert srv.token is None and not (srv.data_dir / "api-token").exists()
    anon = srv.client(token=None)
    assert anon.run(QUICK)["result"] == 1
    assert "INSECURE" in srv.log_path.read_text()


# --- browsers: media type, Origin, Sec-Fetch-Site, Host ------------------------------------

FORM_BODY = b'{"script": "def main():\\n    return 1\\n", "backend": "ephemeral"}'


def test_form_and_untyped_bodies_are_refused_and_nothing_is_stored(make_server):
    srv = make_server()
    c = srv.client()
    for ct in ("application/x-www-form-urlencoded", "text/plain;charset=UTF-8", "multipart/form-data; boundary=x",
               None):
        r = c.post_job(FORM_BODY, headers={"Content-Type": ct})
        assert r.status == 415, (ct, r)
    assert srv.count_jobs() == 0


CROSS = [
    {"Origin": "http://127.0.0.1:1"},
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://localhost:1", "Sec-Fetch-Site": "same-site"},
]


@pytest.mark.parametrize("headers", CROSS)
def test_cross_origin_requests_get_403_on_the_api_and_metrics(make_server, headers):
    srv = make_server()
    c = srv.client()  # even with the right token: a page must not act for its user
    job = c.run(QUICK)
    for method, path in (("GET", "/v1/jobs"), ("GET", f"/v1/jobs/{job['id']}"), ("GET", "/metrics"),
                         ("GET", f"/v1/jobs/{job['id']}/logs?stream=stdout"), ("GET", "/v1/backends"),
                         ("DELETE", f"/v1/jobs/{job['id']}"), ("POST", f"/v1/jobs/{job['id']}/cancel")):
        r = c.request(method, path, headers=headers)
        assert r.status == 403 and r.error["code"] == "cross_origin", (method, path, headers, r)
    r = c.post_job({"script": QUICK}, headers=headers)
    assert r.status == 403, r
    assert srv.count_jobs() == 1, "the refused submission stored nothing; the delete did nothing"


def test_the_services_own_origin_is_served(make_server):
    srv = make_server()
    c = srv.client()
    own = f"http://127.0.0.1:{srv.port}"
    r = c.post_job({"script": QUICK}, wait=10, headers={"Origin": own, "Sec-Fetch-Site": "same-origin"})
    assert r.status == 201 and r.json()["result"] == 1, r
    r = c.request("GET", "/v1/jobs", headers={"Origin": own.replace("http:", "https:")})
    assert r.status == 200, "behind a TLS proxy the page is https; the authority identifies us"


def raw_host(port, host, path="/healthz", token=None):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        if token:
            conn.putheader("Authorization", f"Bearer {token}")
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_a_rebound_host_name_gets_421_everywhere(make_server):
    srv = make_server()
    for path in ("/healthz", "/readyz", "/", "/v1/jobs", "/metrics", "/openapi.yaml"):
        for host in ("attacker.example", f"attacker.example:{srv.port}", "localhost.attacker.example"):
            status, body = raw_host(srv.port, host, path, token=srv.token)
            assert status == 421 and b"host_not_allowed" in body, (path, host, status, body)
    for host in (f"localhost:{srv.port}", f"127.0.0.1:{srv.port}", "127.0.0.1", f"[::1]:{srv.port}"):
        assert raw_host(srv.port, host, "/v1/jobs", token=srv.token)[0] == 200, host


def test_allowed_host_adds_names_and_star_accepts_any(make_server):
    srv = make_server("--allowed-host", "executor.internal", "--allowed-host", "exec.example.com")
    for host in ("executor.internal", "EXEC.example.com:443"):
        assert raw_host(srv.port, host, "/v1/jobs", token=srv.token)[0] == 200, host
    assert raw_host(srv.port, "other.example", "/v1/jobs", token=srv.token)[0] == 421
    star = make_server("--allowed-host", "*")
    assert raw_host(star.port, "anything.example", "/v1/jobs", token=star.token)[0] == 200
    assert raw_host(star.port, "anything.example", "/v1/jobs")[0] == 401, "the token still protects"
    assert "--allowed-host '*'" in star.log_path.read_text()


# --- the backend allow-list ---------------------------------------------------------------

def test_direct_is_refused_unless_enabled(make_server):
    srv = make_server()
    c = srv.client()
    r = c.post_job({"script": QUICK, "backend": "direct"})
    assert r.status == 422, r
    err = r.error
    assert err["field"] == "backend" and "not enabled" in err["message"], err
    assert "pool,ephemeral" in err["message"], "names the enabled ones"
    assert srv.count_jobs() == 0
    doc = c.request("GET", "/v1/backends").json()
    enabled = {b["name"]: b["enabled"] for b in doc["backends"]}
    assert enabled == {"direct": False, "ephemeral": True, "pool": True}, doc

    on = make_server("--backends", "pool,ephemeral,direct")
    assert on.client().run(QUICK, backend="direct")["result"] == 1
    assert {b["name"]: b["enabled"] for b in on.client().request("GET", "/v1/backends").json()["backends"]} == \
        {"direct": True, "ephemeral": True, "pool": True}


def test_a_default_backend_outside_the_list_is_refused_at_start(tmp_path):
    r = run_binary("--backend", "direct", "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "--backends" in r.stderr, r.stderr


def test_direct_on_a_non_loopback_listener_is_warned_about(tmp_path):
    # Binds the wildcard address of this test's own port only for a moment; nothing is sent.
    port = free_port()
    data = tmp_path / "d"
    proc = subprocess.Popen([BIN, "--listen", f"0.0.0.0:{port}", "--data-dir", str(data), "--backends",
                             "ephemeral,direct", "--backend", "ephemeral"], stderr=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items() if not k.startswith("EXECUTORD_")})
    try:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "listening on" in line:
                break
        text = "".join(lines)
        assert "'direct' backend" in text and "non-loopback" in text, text
    finally:
        proc.terminate()
        proc.wait(20)


# --- small leaks --------------------------------------------------------------------------

def test_raw_stream_cannot_be_rendered_as_a_page(make_server):
    srv = make_server()
    c = srv.client()
    job = c.run("def main():\n    print('<script>alert(1)</script>')\n")
    r = c.logs(job["id"], stream="stdout", offset=0)
    assert r.status == 200 and b"<script>" in r.body
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    assert r.headers.get("Content-Security-Policy") == "sandbox"
    assert r.headers.get("Content-Type", "").startswith("text/plain")
    assert c.get_job(job["id"]).headers.get("X-Content-Type-Options") == "nosniff"


def test_readyz_tells_a_stranger_only_ready_or_not(make_server):
    srv = make_server()
    anon = srv.client(token=None).request("GET", "/readyz")
    assert anon.status == 200 and anon.json() == {"status": "ready"}, anon
    full = srv.client().request("GET", "/readyz").json()
    assert full["status"] == "ready" and "backends" in full and full["default_backend"], full
    # the container's health check needs no token either
    r = subprocess.run([BIN, "--healthcheck", "--listen", f"127.0.0.1:{srv.port}"], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 0, (r.stdout, r.stderr)
