"""Fail closed, on ephemeral and pool: when the user-space stack cannot start (a program
that exits at once, a path that does not exist), a network-enabled job ends failed with
SandboxError naming the network step; it never runs with the service's network. Jobs
without network are unaffected."""

import pytest

from conftest import tcp
from topology import FAR_PORT, PUBLIC

BROKEN_STACKS = {"exits-at-once": "/bin/false", "missing": "/nonexistent/slirp4netns"}


@pytest.mark.parametrize("stack", BROKEN_STACKS.values(), ids=BROKEN_STACKS.keys())
def test_broken_stack_fails_the_job(start_service, backend, stack):
    service = start_service("--slirp4netns", stack)
    doc = service.job([tcp(PUBLIC, FAR_PORT)], backend)
    assert doc["status"] == "failed", doc
    assert doc["error"]["type"] == "SandboxError", doc["error"]
    assert doc["error"]["message"].startswith("network: "), doc["error"]
    assert doc.get("result") is None, doc
    ok, = service.probe([{"op": "ifaces"}], backend, allow_network=False)
    assert ok == ["lo"]
