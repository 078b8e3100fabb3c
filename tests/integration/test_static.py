"""The files built into the binary, over HTTP: the dashboard at / and /ui/{file}, the
spec at /openapi.yaml. They must be byte-for-byte the repository's files, reachable
without a token (the page asks for it itself), carry the headers that keep untrusted job
output from running as script, and never map a request onto anything but those files."""

import pytest

from executord_client import REPO

DASHBOARD = REPO / "api" / "dashboard"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


@pytest.fixture(scope="module")
def tokened(tmp_path_factory):
    """A server that requires a token for the API."""
    from executord_client import Server
    base = tmp_path_factory.mktemp("static")
    token_file = base / "token"
    token_file.write_text("s3cret-token\n")
    s = Server(base / "data", args=["--api-token-file", str(token_file), "--backend", "direct"],
               token="s3cret-token", log_path=base / "stderr.log")
    s.start()
    yield s
    s.stop()


def assert_page_headers(r):
    csp = r.headers.get("Content-Security-Policy", "")
    assert "default-src 'none'" in csp and "script-src 'self'" in csp, csp
    assert "frame-ancestors 'none'" in csp, csp
    assert "unsafe-inline" not in csp, csp
    assert r.headers.get("X-Content-Type-Options") == "nosniff"


def test_root_is_the_dashboard_page_without_a_token(tokened):
    anon = tokened.client(token=None)
    r = anon.request("GET", "/")
    assert r.status == 200, r
    assert r.headers.get("Content-Type") == "text/html; charset=utf-8"
    assert r.body == (DASHBOARD / "index.html").read_bytes()
    assert_page_headers(r)
    # ...while the API itself still needs the token.
    assert anon.request("GET", "/v1/jobs").status == 401


def test_every_dashboard_file_is_served_with_its_type(tokened):
    anon = tokened.client(token=None)
    files = sorted(p for p in DASHBOARD.iterdir() if p.is_file())
    assert files, "api/dashboard is empty"
    for p in files:
        r = anon.request("GET", f"/ui/{p.name}")
        assert r.status == 200, (p.name, r)
        assert r.body == p.read_bytes(), p.name
        assert r.headers.get("Content-Type") == TYPES[p.suffix], (p.name, r.headers.get("Content-Type"))
        assert_page_headers(r)


def test_openapi_yaml_is_the_repository_spec(tokened):
    r = tokened.client(token=None).request("GET", "/openapi.yaml")
    assert r.status == 200, r
    assert r.headers.get("Content-Type", "").startswith("application/yaml")
    assert r.body == (REPO / "openapi.yaml").read_bytes()


@pytest.mark.parametrize("path", [
    "/ui/", "/ui/nope.js", "/ui/index", "/ui/../openapi.yaml", "/ui/%2e%2e/openapi.yaml",
    "/ui/..%2fopenapi.yaml", "/ui/.index.html", "/ui/index.html/", "/ui/a/index.html",
    "/ui/index.html%00.js", "/ui/" + "a" * 80 + ".js", "/ui/index..html", "/index.html",
    "/ui/index.html?x=1/../../etc",
])
def test_anything_else_under_ui_is_not_found(tokened, path):
    r = tokened.client(token=None).request("GET", path)
    if path.startswith("/ui/index.html?"):
        # The query is not part of the path: the file itself.
        assert r.status == 200, r
        return
    assert r.status == 404, (path, r)
    assert r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/", "/ui/index.html", "/openapi.yaml"])
def test_files_are_read_only(tokened, path):
    r = tokened.client(token=None).request("POST", path, body=b"{}",
                                           headers={"Content-Type": "application/json"})
    assert r.status == 405, r
    assert r.headers.get("Allow") == "GET"
