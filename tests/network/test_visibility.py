"""The network as an operator sees it: GET /v1/backends and an authenticated /readyz show
the stack, its DNS and the egress lists (the built-in blocks, the configured ones, the
host's own addresses); bad --egress-allow/--egress-deny values fail start-up with exit
code 2 naming the flag."""

import subprocess

import pytest

from executord_client import BIN
from topology import HOST_OTHER, HOST_VETH4, STACK_DNS

DEFAULT_DENY = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
                "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4"]


def network_of(service, path):
    r = service.client.request("GET", path)
    assert r.status == 200, r
    return r.json()["network"]


@pytest.mark.parametrize("path", ["/v1/backends", "/readyz"])
def test_network_object_shows_the_policy(service, path):
    net = network_of(service, path)
    assert net["stack"] == "slirp4netns"
    assert net["available"] is True, net
    assert net["version"], net
    assert net["dns"] in (STACK_DNS, f"{STACK_DNS}:53"), net["dns"]
    for cidr in DEFAULT_DENY:
        assert cidr in net["egress"]["deny"], (cidr, net["egress"])
    assert net["egress"]["allow"] == []
    hosts = net["egress"]["host_addresses"]
    assert any(a.split("/")[0] == HOST_VETH4 for a in hosts), hosts
    assert any(a.split("/")[0] == HOST_OTHER for a in hosts), hosts


def test_network_object_shows_configured_lists(start_service):
    service = start_service("--egress-allow", "10.9.0.0/24", "--egress-deny", "198.51.100.0/24")
    egress = network_of(service, "/v1/backends")["egress"]
    assert "10.9.0.0/24" in egress["allow"], egress
    assert "198.51.100.0/24" in egress["deny"], egress
    assert "10.0.0.0/8" in egress["deny"], egress


@pytest.mark.parametrize("args, flag", [
    (["--egress-allow", "10.9.0.0/33"], "--egress-allow"),
    (["--egress-deny", "not-a-cidr"], "--egress-deny"),
    (["--egress-allow", "10.9.0.0/24", "--egress-deny", "10.9.0.0/24"], "--egress-"),
], ids=["bad-allow", "bad-deny", "in-both"])
def test_bad_egress_flags_fail_start_up(topo, tmp_path, args, flag):
    p = subprocess.run(topo.in_host(BIN, "--listen", "127.0.0.1:18999", "--data-dir", str(tmp_path / "data"), *args),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert flag in p.stderr and "unknown option" not in p.stderr, p.stderr[-2000:]
