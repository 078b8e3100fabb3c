"""DNS for network-enabled jobs, on ephemeral and pool: the job's /etc/resolv.conf names
the stack's forwarder (10.0.2.3), and a lookup goes job -> slirp4netns -> the host's
resolver on loopback (127.0.0.53, the systemd-resolved case) -> the test DNS server in the
far namespace. Both servers log every query, so the path is proven, not assumed."""

import uuid

from topology import FAR_PORT, PUBLIC, STACK_DNS


def test_resolv_conf_names_the_stack(service, backend):
    text, = service.probe([{"op": "read", "path": "/etc/resolv.conf"}], backend)
    nameservers = [line.split()[1] for line in text.splitlines() if line.startswith("nameserver")]
    assert nameservers == [STACK_DNS], text


def test_lookup_through_the_host_loopback_resolver(service, topo, backend):
    unique = f"{uuid.uuid4().hex}.public.test"
    results = service.probe([{"op": "resolve", "name": "public.test"}, {"op": "resolve", "name": unique}],
                            backend)
    assert results == [PUBLIC, PUBLIC]
    # The host's resolver on 127.0.0.53 received it and forwarded it to the far server.
    assert f"stub {unique} " in topo.dns_log("host"), topo.dns_log("host")[-2000:]
    assert f"dns {unique} 203.0.113.2" in topo.dns_log("far"), topo.dns_log("far")[-2000:]


def test_only_dns_goes_to_the_forwarder(service, backend):
    """10.0.2.3 is allowed for port 53 only: another port there is refused like the rest
    of 10/8 (far has a server on 10.0.2.3 too)."""
    control, other_port = service.probe([{"op": "resolve", "name": "public.test"},
                                         {"op": "tcp", "host": STACK_DNS, "port": FAR_PORT, "family": "inet"}],
                                        backend)
    assert control == PUBLIC
    assert not other_port.startswith("ok"), other_port
