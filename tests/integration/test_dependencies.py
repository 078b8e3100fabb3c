"""`dependencies` at the API's edge (issue 14): hostile requirement strings get 422 naming
the item, no package source configured gets 422 saying how to configure one, a valid list is
stored and rendered normalized, the start-up checks of the --pip-* flags, and a job with
dependencies never runs as if it had none. Through the real binary over HTTP."""

import os
import subprocess

import pytest

from executord_client import BIN

QUICK = "def main():\n    return 1\n"

HOSTILE = [
    ("-e x", "options"),
    ("--index-url=http://x", "options"),
    ("pkg @ https://x", "URLs"),
    ("pkg@x", "direct references"),
    ("file:///etc", "URLs"),
    ("file:x", "file:"),
    ("../x", "paths"),
    ("/tmp/x", "paths"),
    ('x; os_name=="nt"', "markers"),
    ("x # c", "comments"),
    ("x\u0000y", "control character"),
    ("x\n-e .", "control character"),
    ("a" * 257, "longer than 256 bytes"),
    ("x (>=1)", "not a plain requirement"),
]


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    return tmp_path_factory.mktemp("wheels")


@pytest.fixture
def with_source(make_server, wheelhouse):
    return make_server("--pip-find-links", str(wheelhouse)).client()


@pytest.mark.parametrize("item,reason", HOSTILE)
def test_hostile_requirement_is_422_naming_the_item(with_source, item, reason):
    r = with_source.post_job({"script": QUICK, "dependencies": ["fine==1", item]})
    assert r.status == 422, r
    err = r.json()["error"]
    assert err["code"] == "invalid_field"
    assert err["field"] == "dependencies[1]", err
    assert reason in err["message"], err


def test_list_level_refusals(with_source):
    cases = [
        ([f"p{i}" for i in range(65)], "dependencies", "at most 64"),
        (["a", "B==1", "b>=2"], "dependencies[2]", "duplicates project 'b' (item 1)"),
        (["a", 7], "dependencies[1]", "must be a string (got integer)"),
        ("requests", "dependencies", "must be an array"),
        ({"requests": "1"}, "dependencies", "must be an array"),
    ]
    for deps, field, message in cases:
        r = with_source.post_job({"script": QUICK, "dependencies": deps})
        assert r.status == 422, (deps, r)
        err = r.json()["error"]
        assert err["field"] == field and message in err["message"], (deps, err)
    assert with_source.list().json()["jobs"] == []  # nothing refused was stored


def test_no_package_source_is_422_saying_how(make_server):
    c = make_server().client()
    r = c.post_job({"script": QUICK, "dependencies": ["requests==2.31.0"]})
    assert r.status == 422, r
    err = r.json()["error"]
    assert err["field"] == "dependencies"
    for how in ("--pip-index-url", "--pip-extra-index-url", "--pip-find-links",
                "EXECUTORD_PIP_INDEX_URL", "EXECUTORD_PIP_FIND_LINKS"):
        assert how in err["message"], err
    # no dependencies at all is fine without a source
    for none in ([], None):
        assert c.post_job({"script": QUICK, "dependencies": none}).status == 201


def test_valid_list_is_normalized_and_never_dropped(with_source):
    job = with_source.submit({"script": QUICK, "backend": "ephemeral",
                              "dependencies": ["Requests[Socks] == 2.31.0", "PyYAML >=6, <7",
                                               "zope.interface"]}, wait=30)
    want = ["pyyaml<7,>=6", "requests[socks]==2.31.0", "zope-interface"]
    assert job["dependencies"] == want
    got = with_source.get_job(job["id"]).json()
    assert got["dependencies"] == want
    assert with_source.list().json()["jobs"][0]["dependencies"] == want
    # Never run as if it had none: until packages can be installed the job fails.
    final = with_source.wait_final(job["id"])
    assert final["status"] == "failed", final
    assert final["error"]["type"] == "PackageInstallError", final
    assert final["result"] is None


def test_job_without_dependencies_renders_empty_list_and_no_install(with_source):
    job = with_source.submit({"script": QUICK, "backend": "ephemeral"}, wait=30)
    final = with_source.wait_final(job["id"])
    assert final["status"] == "succeeded", final
    assert final["dependencies"] == [] and final["install"] is None


def test_idempotent_retry_compares_the_normalized_list(with_source):
    key = {"Idempotency-Key": "deps-1"}
    a = with_source.post_job({"script": QUICK, "dependencies": ["B", "a==1"]}, headers=key)
    assert a.status == 201, a
    b = with_source.post_job({"script": QUICK, "dependencies": ["A == 1", "b"]}, headers=key)
    assert b.status in (200, 201) and b.json()["id"] == a.json()["id"], b
    c = with_source.post_job({"script": QUICK, "dependencies": ["a==2", "b"]}, headers=key)
    assert c.status == 409, c


def run_binary(*args, timeout=20):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                          env={k: v for k, v in os.environ.items() if not k.startswith("EXECUTORD_")})


def test_bad_package_sources_refused_at_start(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    cases = [
        (["--pip-index-url", "ftp://mirror/simple"], "--pip-index-url"),
        (["--pip-index-url", "mirror/simple"], "--pip-index-url"),
        (["--pip-extra-index-url", "file:///srv/simple"], "--pip-extra-index-url"),
        (["--pip-find-links", "wheels"], "absolute"),
        (["--pip-find-links", str(tmp_path / "missing")], "No such file"),
        (["--pip-find-links", str(afile)], "not a folder"),
        (["--deps-cache-mb", "0"], "--deps-cache-mb"),
    ]
    for args, needle in cases:
        r = run_binary("--data-dir", str(tmp_path / "data"), *args)
        assert r.returncode == 2, (args, r)
        assert needle in r.stderr, (args, r.stderr)


def test_help_lists_the_dependency_flags():
    out = run_binary("--help").stdout
    for flag in ("--pip-index-url", "--pip-extra-index-url", "--pip-find-links", "--deps-cache-mb",
                 "--deps-install-timeout-seconds", "--deps-install-disk-mb",
                 "EXECUTORD_PIP_EXTRA_INDEX_URL"):
        assert flag in out, flag
