"""Jobs without allow_network, on ephemeral and pool: loopback only (no tap0, no veth of
the host namespace) and no server reachable, even in a service whose other jobs have
network."""

from conftest import tcp
from topology import FAR_PORT, HOST_PORT, HOST_VETH4, PUBLIC


def test_loopback_only(service, backend):
    ifaces, public, host = service.probe([{"op": "ifaces"}, tcp(PUBLIC, FAR_PORT), tcp(HOST_VETH4, HOST_PORT)],
                                         backend, allow_network=False)
    assert ifaces == ["lo"]
    assert not public.startswith("ok"), public
    assert not host.startswith("ok"), host


def test_network_job_has_its_own_interface(service, backend):
    """The contrast: a network-enabled job sees lo and the stack's tap0, never the host's
    veth (it does not share the service's namespace)."""
    ifaces, = service.probe([{"op": "ifaces"}], backend)
    assert ifaces == ["lo", "tap0"]
