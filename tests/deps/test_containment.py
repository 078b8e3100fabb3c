"""What an environment and an install cannot do, on ephemeral and pool: a job sees its own
set only (not another set's packages, not the cache, not the data folder); a failed build
or resolution ends the job `failed` with PackageInstallError and pip's message, caches
nothing, and keeps pip's output with the job; a build script that reads host files or
dials out is contained: no host secrets, nothing but the index reachable (the far
namespace's server is refused though the default policy of network jobs allows it)."""

import pytest

from conftest import FAILURE_MARKER, FAR_PORT, IMPORT_JOB, PUBLIC, assert_install, imported
from topology import HOST_PORT, METADATA, METADATA_PORT

SEE_JOB = """
import importlib, os
def main(paths, modules):
    seen = {p: os.path.exists(p) for p in paths}
    deps = sorted(os.listdir("/deps")) if os.path.isdir("/deps") else None
    imports = {}
    for m in modules:
        try:
            importlib.import_module(m)
            imports[m] = "imported"
        except ImportError as e:
            imports[m] = type(e).__name__
    return {"exists": seen, "deps": deps, "imports": imports}
"""


@pytest.fixture
def service(start_service, index):
    return start_service("--pip-index-url", index.url)


def test_sets_are_isolated(service, backend):
    a = service.ok(IMPORT_JOB, backend, ["alpha==1.0"], inputs={"modules": ["alpha"]})
    env_a = assert_install(a)["environment"]
    data = str(service.data_dir)
    paths = [data, f"{data}/deps", f"{data}/deps/envs/{env_a}", "/deps/alpha"]
    b = service.ok(SEE_JOB, backend, ["beta"], inputs={"paths": paths, "modules": ["alpha", "beta"]})
    assert b["result"]["imports"] == {"alpha": "ModuleNotFoundError", "beta": "imported"}
    assert not any(b["result"]["exists"].values()), b["result"]["exists"]
    assert "beta" in b["result"]["deps"] and not any(e.startswith("alpha") for e in b["result"]["deps"]), b["result"]
    # A job without dependencies that follows (on pool: a warm sandbox) sees no package.
    none = service.ok(SEE_JOB, backend, [], inputs={"paths": paths, "modules": ["alpha", "beta"]})
    assert none["result"]["imports"] == {"alpha": "ModuleNotFoundError", "beta": "ModuleNotFoundError"}
    assert not any(none["result"]["exists"].values()), none["result"]["exists"]
    assert none["result"]["deps"] in (None, []), none["result"]["deps"]


def failed_install(service, backend, deps):
    before = service.envs()
    doc = service.run(IMPORT_JOB, backend, deps, inputs={"modules": []})
    assert doc["status"] == "failed", doc
    assert doc["error"]["type"] == "PackageInstallError", doc["error"]
    assert service.envs() == before  # nothing published
    logs = service.client.logs(doc["id"]).json()
    return doc, logs["stdout"] + logs["stderr"]


def test_failed_build_is_a_package_install_error(service, backend):
    doc, output = failed_install(service, backend, ["brokenpkg"])
    assert FAILURE_MARKER in output, output[-3000:]           # pip's output kept with the job
    message = doc["error"]["message"]
    assert FAILURE_MARKER in message or "brokenpkg" in message, message
    # The service goes on: a good set installs and runs.
    ok = service.ok(IMPORT_JOB, backend, ["beta"], inputs={"modules": ["beta"]})
    assert imported(ok, "beta")["version"] == "1.0"


def test_missing_version_is_a_package_install_error(service, backend):
    doc, output = failed_install(service, backend, ["alpha==9.9"])
    assert "No matching distribution found for alpha==9.9" in doc["error"]["message"], doc["error"]
    assert "No matching distribution found for alpha==9.9" in output


def test_conflict_is_a_package_install_error(service, backend):
    doc, _ = failed_install(service, backend, ["alpha==1.0", "gamma"])  # gamma needs alpha>=2
    assert "conflict" in doc["error"]["message"].lower() or "ResolutionImpossible" in doc["error"]["message"], \
        doc["error"]


def nosy_targets(service, index_addr, index_port):
    return {
        "files": {"shadow": "/etc/shadow", "token": str(service.token_file),
                  "database": str(service.data_dir / "executord.db"), "host_ssh": "/root/.ssh/id_rsa"},
        "tcp": {"index": [index_addr, index_port],           # the control: the index answers
                "far": [PUBLIC, FAR_PORT],                   # allowed to network jobs, not here
                "far_metadata": [METADATA, METADATA_PORT],
                "service_port": ["10.0.2.2", service.port],  # executord's own port, host loopback
                "host_loopback": ["10.0.2.2", HOST_PORT],
                "service_port_direct": ["127.0.0.1", service.port]},
    }


def check_contained(seen, allowed="index"):
    for f in ("shadow", "token", "database", "host_ssh"):
        assert not seen[f].startswith("read:"), f"the build read {f}: {seen[f][:80]}"
    assert seen[allowed].startswith("ok"), f"the index was not reachable from the build: {seen}"
    for t in ("far", "far_metadata", "service_port", "host_loopback", "service_port_direct"):
        assert not seen[t].startswith("ok"), f"the build reached {t}: {seen[t]}"
    assert seen["uid"] != 0, seen


def test_hostile_build_is_contained(service, packages, index, backend):
    version = {"ephemeral": "1.0", "pool": "2.0"}[backend]
    packages.add_nosy(version, nosy_targets(service, "10.0.2.2", index.port))
    index.refresh()
    doc = service.ok("import nosy\ndef main():\n    return nosy.SEEN\n", backend, [f"nosy=={version}"])
    check_contained(doc["result"])


def test_remote_index_reaches_its_port_only(start_service, packages, far_index, backend):
    """The index on the far namespace's PUBLIC address: the install reaches its port, and
    not the greeting server on another port of the same address."""
    service = start_service("--pip-index-url", far_index.url)
    version = {"ephemeral": "3.0", "pool": "4.0"}[backend]
    packages.add_nosy(version, nosy_targets(service, PUBLIC, far_index.port))
    far_index.refresh()
    doc = service.ok("import nosy\ndef main():\n    return nosy.SEEN\n", backend, [f"nosy=={version}"])
    check_contained(doc["result"])
    # pip would ignore a plain-http index; executord trusts it as configured, and says so
    assert f"--pip-index-url {far_index.url} is plain http" in service.server.log_tail(1 << 20)
