"""Egress of network-enabled jobs, on ephemeral and pool: the public test server answers;
every default-blocked class (private, metadata, CGNAT, the host's own addresses,
executord's own port, IPv4-mapped, IPv6 ULA and link-local) and the host's abstract UNIX
sockets do not; --egress-allow and --egress-deny do what they say. Each job also reaches
the public server, so a refusal is the policy's and not a broken stack's."""

import pytest

from conftest import tcp
from topology import (CGNAT, FAR_PORT, FAR_VETH4, HOST_OTHER, HOST_PORT, HOST_VETH4, METADATA, METADATA_PORT,
                      PRIVATE, PRIVATE_OTHER, PUBLIC, ULA6, run)

PUBLIC_GREETING = f"ok:far@{PUBLIC}"
SERVICE_PORT = object()  # stands for the port of the executord under test

BLOCKED = {
    "private-10": (PRIVATE, FAR_PORT, "inet"),
    "metadata": (METADATA, METADATA_PORT, "inet"),
    "cgnat": (CGNAT, FAR_PORT, "inet"),
    "host-other-address": (HOST_OTHER, HOST_PORT, "inet"),
    "host-veth-address": (HOST_VETH4, HOST_PORT, "inet"),
    "service-port-loopback": ("127.0.0.1", SERVICE_PORT, "inet"),
    "service-port-slirp-gateway": ("10.0.2.2", SERVICE_PORT, "inet"),
    "ipv4-mapped-private": (f"::ffff:{PRIVATE}", FAR_PORT, "inet6"),
    "ipv6-ula": (ULA6, FAR_PORT, "inet6"),
    "ipv6-link-local": ("fe80::2%tap0", FAR_PORT, "inet6"),
}


def test_public_server_reachable(service, backend):
    assert service.probe([tcp(PUBLIC, FAR_PORT)], backend) == [PUBLIC_GREETING]


@pytest.mark.parametrize("target", BLOCKED.values(), ids=BLOCKED.keys())
def test_default_blocked(service, backend, target):
    host, port, family = target
    port = service.port if port is SERVICE_PORT else port
    control, blocked = service.probe([tcp(PUBLIC, FAR_PORT), tcp(host, port, family)], backend)
    assert control == PUBLIC_GREETING
    assert not blocked.startswith("ok"), f"the job reached {host} port {port}: {blocked}"


@pytest.mark.parametrize("allow_network", [True, False], ids=["network", "no-network"])
def test_host_abstract_socket_unreachable(service, topo, backend, allow_network):
    result, = service.probe([{"op": "abstract", "name": topo.abstract}], backend, allow_network=allow_network)
    assert not result.startswith("ok"), f"the job reached @{topo.abstract}: {result}"


def test_egress_allow_exempts_a_blocked_range(start_service, backend):
    service = start_service("--egress-allow", "10.9.0.0/24")
    allowed, still_blocked = service.probe([tcp(PRIVATE, FAR_PORT), tcp(METADATA, METADATA_PORT)], backend)
    assert allowed == f"ok:far@{PRIVATE}"
    assert not still_blocked.startswith("ok"), still_blocked


def test_host_addresses_and_deny_win_over_allow(start_service, backend):
    """--egress-allow exempts from the built-in blocks only: a host address inside an
    allowed range and a denied address inside one stay refused."""
    service = start_service("--egress-allow", "192.0.2.0/24", "--egress-allow", "10.9.0.0/16",
                            "--egress-deny", f"{PRIVATE}/32")
    allowed, denied, host = service.probe([tcp(PRIVATE_OTHER, FAR_PORT), tcp(PRIVATE, FAR_PORT),
                                           tcp(HOST_OTHER, HOST_PORT)], backend)
    assert allowed == f"ok:far@{PRIVATE_OTHER}"
    assert not denied.startswith("ok"), f"--egress-deny {PRIVATE}/32 lost to --egress-allow 10.9.0.0/16: {denied}"
    assert not host.startswith("ok"), f"--egress-allow 192.0.2.0/24 opened the host's own {HOST_OTHER}: {host}"


def test_address_the_host_gains_later_is_refused(service, topo, backend):
    """The host's addresses are read again for each job: one added after start-up (a new
    interface, a DHCP lease) is refused from the next job on."""
    late = "192.0.2.77"
    run("ip", "-n", topo.host, "addr", "add", f"{late}/32", "dev", "lo")
    try:
        control, blocked = service.probe([tcp(PUBLIC, FAR_PORT), tcp(late, HOST_PORT)], backend)
    finally:
        run("ip", "-n", topo.host, "addr", "del", f"{late}/32", "dev", "lo")
    assert control == PUBLIC_GREETING
    assert not blocked.startswith("ok"), f"the job reached {late}, added to the host after start-up: {blocked}"


def test_egress_deny_blocks_more(start_service, backend):
    service = start_service("--egress-deny", "198.51.100.0/24")
    public, private, control = service.probe([tcp(PUBLIC, FAR_PORT), tcp(PRIVATE, FAR_PORT),
                                              tcp(FAR_VETH4, FAR_PORT)], backend)
    assert not public.startswith("ok"), f"--egress-deny 198.51.100.0/24 let the job reach {PUBLIC}: {public}"
    assert not private.startswith("ok"), private
    # The far side's own address is in no list: the job's network still works.
    assert control == f"ok:far@{FAR_VETH4}"
