"""Installing `dependencies` through the real binary over HTTP, on ephemeral and pool: an
install and an import (a dependency's own requirement included), version pins, PEP 503
names, sdists built inside the install sandbox, the offline find-links source, the
environment read-only to the script, a PYTHONPATH in env_vars ahead of it, and /deps
right after the standard library."""

import os

import pytest

from conftest import IMPORT_JOB, assert_install, imported

PATHS_JOB = """
import sys
def main():
    return sys.path
"""


@pytest.fixture
def service(start_service, index):
    return start_service("--pip-index-url", index.url)


def test_install_and_import(service, backend):
    doc = service.ok(IMPORT_JOB, backend, ["gamma"], inputs={"modules": ["gamma", "alpha"]})
    assert doc["dependencies"] == ["gamma"]
    assert imported(doc, "gamma") == {"version": "1.0", "file": "/deps/gamma/__init__.py"}
    # gamma requires alpha>=2: pip's resolver brought alpha 2.0 into the same environment.
    assert imported(doc, "alpha") == {"version": "2.0", "file": "/deps/alpha/__init__.py"}
    first = assert_install(doc)
    again = service.ok(IMPORT_JOB, backend, ["gamma"], inputs={"modules": ["gamma"]})
    assert assert_install(again, cache_hit=True)["environment"] == first["environment"]


@pytest.mark.parametrize("spec,normalized,version", [
    ("alpha==1.0", "alpha==1.0", "1.0"),
    ("alpha<2", "alpha<2", "1.0"),
    ("alpha", "alpha", "2.0"),
    ("alpha >= 1 , != 2.0", "alpha!=2.0,>=1", "1.0"),
    ("alpha~=1.0", "alpha~=1.0", "1.0"),
])
def test_version_pins(service, backend, spec, normalized, version):
    doc = service.ok(IMPORT_JOB, backend, [spec], inputs={"modules": ["alpha"]})
    assert doc["dependencies"] == [normalized]
    assert imported(doc, "alpha")["version"] == version
    assert_install(doc)


def test_two_versions_are_two_environments(service, backend):
    one = service.ok(IMPORT_JOB, backend, ["alpha==1.0"], inputs={"modules": ["alpha"]})
    two = service.ok(IMPORT_JOB, backend, ["alpha==2.0"], inputs={"modules": ["alpha"]})
    assert (imported(one, "alpha")["version"], imported(two, "alpha")["version"]) == ("1.0", "2.0")
    assert assert_install(one)["environment"] != assert_install(two)["environment"]


def test_normalized_set_names_one_environment(service, backend):
    """PEP 503 names, order and spaces do not make another environment."""
    a = service.ok(IMPORT_JOB, backend, ["Mixed.Case-NAME == 1.0", "ALPHA==1.0"],
                   inputs={"modules": ["Mixed_Case_Name", "alpha"]})
    assert a["dependencies"] == ["alpha==1.0", "mixed-case-name==1.0"]
    assert imported(a, "Mixed_Case_Name")["version"] == "1.0"
    b = service.ok(IMPORT_JOB, backend, ["alpha==1.0", "mixed_case_name==1.0"], inputs={"modules": ["alpha"]})
    assert b["dependencies"] == a["dependencies"]
    assert assert_install(b, cache_hit=True)["environment"] == assert_install(a)["environment"]


def test_sdists_are_built(service, backend):
    """epsilon is a setuptools sdist, built in the install sandbox with setuptools and
    wheel from the index (pip's build isolation); delta a wheel made by `pip wheel`."""
    doc = service.ok(IMPORT_JOB + "\nimport epsilon, delta\nBUILT = [epsilon.BUILT, delta.BUILT]\n"
                     "_main = main\ndef main(modules):\n    return {**_main(modules), 'built': BUILT}\n",
                     backend, ["epsilon", "delta"], inputs={"modules": ["epsilon", "delta"]})
    assert imported(doc, "epsilon")["version"] == "1.0"
    assert doc["result"]["built"] == ["setuptools", "pip wheel"]


def test_find_links_offline(start_service, packages, index, backend):
    """--pip-find-links alone: the wheelhouse is the only source, no index is asked."""
    os.chmod(packages.root, 0o755)
    service = start_service("--pip-find-links", str(packages.root))
    before = len(index.requests())
    doc = service.ok(IMPORT_JOB, backend, ["alpha==1.0", "epsilon"], inputs={"modules": ["alpha", "epsilon"]})
    assert imported(doc, "alpha")["version"] == "1.0"
    assert imported(doc, "epsilon")["version"] == "1.0"
    assert_install(doc)
    assert len(index.requests()) == before, index.requests()[before:]


READ_ONLY_JOB = """
import os
def main():
    out = {"rdonly_mount": bool(os.statvfs("/deps").f_flag & os.ST_RDONLY)}
    tries = {
        "create": lambda: open("/deps/planted.py", "w").write("x = 1"),
        "modify": lambda: open("/deps/alpha/__init__.py", "a").write("VERSION = 'changed'"),
        "remove": lambda: os.remove("/deps/alpha/__init__.py"),
        "mkdir": lambda: os.mkdir("/deps/newpkg"),
        "rename": lambda: os.rename("/deps/alpha", "/deps/alpha2"),
        "chmod": lambda: os.chmod("/deps/alpha/__init__.py", 0o777),
    }
    for name, attempt in tries.items():
        try:
            attempt()
            out[name] = "done"
        except OSError as e:
            out[name] = type(e).__name__
    import alpha
    out["version"] = alpha.VERSION
    return out
"""


def test_environment_is_read_only(service, backend):
    doc = service.ok(READ_ONLY_JOB, backend, ["alpha==1.0"])
    result = doc["result"]
    assert result.pop("rdonly_mount") is True
    assert result.pop("version") == "1.0"
    assert all(v != "done" for v in result.values()), result
    # And the next job of the same set finds it unchanged.
    again = service.ok(READ_ONLY_JOB, backend, ["alpha==1.0"])
    assert again["result"]["version"] == "1.0"


def test_pythonpath_in_env_vars_comes_first(service, backend):
    """shadow-kit ships a second alpha in /deps/shadowpath: named in PYTHONPATH, it wins
    over the environment's own alpha, and its entry precedes /deps on sys.path."""
    deps = ["alpha==1.0", "shadow-kit"]
    doc = service.ok(IMPORT_JOB, backend, deps, inputs={"modules": ["alpha"]},
                     env_vars={"PYTHONPATH": "/deps/shadowpath"})
    assert imported(doc, "alpha") == {"version": "shadow", "file": "/deps/shadowpath/alpha/__init__.py"}
    paths = service.ok(PATHS_JOB, backend, deps, env_vars={"PYTHONPATH": "/deps/shadowpath"})["result"]
    assert paths.index("/deps/shadowpath") < paths.index("/deps"), paths
    plain = service.ok(IMPORT_JOB, backend, deps, inputs={"modules": ["alpha"]})
    assert imported(plain, "alpha")["version"] == "1.0"


STDLIB_JOB = """
import sys, sysconfig
def main():
    return {"path": sys.path, "stdlib": sysconfig.get_paths()["stdlib"]}
"""


def test_deps_after_the_standard_library(service, backend):
    """/deps comes right after the standard library, ahead of any site or dist-packages:
    a package cannot shadow `json`, and the environment's versions win over the host's."""
    doc = service.ok(STDLIB_JOB, backend, ["alpha==1.0"])["result"]
    path = doc["path"]
    assert doc["stdlib"] in path and path.index(doc["stdlib"]) < path.index("/deps"), path
    assert not any("-packages" in p for p in path[:path.index("/deps")]), path
