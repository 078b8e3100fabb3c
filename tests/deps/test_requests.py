"""What `dependencies` requests get before anything is installed: without a package source
configured, 422 saying how to configure one; requirement strings that are not plain
requirements (options, URLs, files, paths, markers, comments, control characters,
duplicates), 422 naming the field, with nothing fetched; [] and null run the job without
an install. (tests/integration/test_dependencies.py has the full list of forms.)"""

import pytest

from conftest import IMPORT_JOB


@pytest.fixture
def service(start_service, index):
    return start_service("--pip-index-url", index.url)


def test_no_dependencies_no_install(service, backend):
    for deps in ([], None):
        doc = service.ok(IMPORT_JOB, backend, deps, inputs={"modules": ["alpha"]})
        assert doc["install"] is None
        assert doc["result"]["alpha"] == {"error": "ModuleNotFoundError"}


def test_no_package_source_gives_422(start_service):
    service = start_service()
    r = service.post({"script": "def main(): return 1", "dependencies": ["alpha"]})
    assert r.status == 422, r
    message = r.error["message"]
    for flag in ("--pip-index-url", "--pip-extra-index-url", "--pip-find-links", "EXECUTORD_PIP_INDEX_URL"):
        assert flag in message, message
    # Without dependencies the same service runs jobs.
    assert service.run("def main(): return 1", "pool", [])["result"] == 1


HOSTILE = {
    "option": "-e .",
    "index-url": "--index-url=http://198.51.100.1:7001/simple",
    "url": "alpha @ http://198.51.100.1:7001/alpha-1.0-py3-none-any.whl",
    "scheme": "https://198.51.100.1/alpha.whl",
    "file": "file:///etc/passwd",
    "path": "/tmp/alpha",
    "relative": "../alpha",
    "marker": "alpha; python_version > '3'",
    "comment": "alpha # why not",
    "newline": "alpha\n--index-url http://198.51.100.1:7001/simple",
    "nul": "alpha\u0000",
}


@pytest.mark.parametrize("spec", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_requirement_gives_422(service, index, spec):
    before = len(index.requests())
    r = service.post({"script": "def main(): return 1", "dependencies": ["beta", spec]})
    assert r.status == 422, r
    assert "dependencies" in r.error["message"], r.error
    assert len(index.requests()) == before  # nothing was fetched for it


def test_duplicate_project_gives_422(service):
    r = service.post({"script": "def main(): return 1", "dependencies": ["alpha==1.0", "Alpha>=2"]})
    assert r.status == 422, r
    assert "dependencies" in r.error["message"], r.error
