"""The network suite's sealed test topology (docs/network-design.md, "Test topology"): two
namespaces the suite creates, "host" (where executord runs) and "far" (the test servers),
one veth between them and nothing else, so no packet of the suite can leave this machine.
Owns building, checking that seal, entering the host namespace from the test process, and
tearing everything down."""

import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
# Names of this suite's namespaces; the number is the pid of the pytest that made them.
OUR_NETNS = re.compile(r"^exd-t-(?:host|far|nl)-(\d+)$")

# Addresses (documentation and special-purpose ranges only).
HOST_VETH4, FAR_VETH4 = "203.0.113.2", "203.0.113.1"
HOST_VETH6, FAR_VETH6 = "2001:db8::2", "2001:db8::1"
HOST_OTHER = "192.0.2.10"            # another address of the host, on its lo
PUBLIC = "198.51.100.1"               # the "internet" server
PUBLIC_DNS = "198.51.100.53"          # the authoritative test DNS server
PRIVATE = "10.9.0.1"
PRIVATE_OTHER = "10.9.0.2"            # a second private server, for allow/deny overlaps
METADATA = "169.254.169.254"
CGNAT = "100.64.0.1"
ULA6 = "fd00:100::1"
HOST_RESOLVER = "127.0.0.53"          # the "systemd-resolved" stand-in in the host namespace
# slirp4netns's DNS forwarder address; far carries it too, so a job allowed more than
# port 53 there would reach far's greeting server.
STACK_DNS = "10.0.2.3"
FAR_ADDRS4 = [PUBLIC, PUBLIC_DNS, PRIVATE, PRIVATE_OTHER, METADATA, CGNAT, STACK_DNS]
FAR_ADDRS6 = [ULA6]
# Ports of the greeting servers.
FAR_PORT = 7001                       # every far IPv4 address; IPv6 too
METADATA_PORT = 80                    # the metadata service's port, on every far IPv4 address
HOST_PORT = 7003                      # every host-namespace IPv4 address, loopback included

_libc = ctypes.CDLL(None, use_errno=True)


def run(*cmd, check=True):
    """Runs a command, returns its stdout; raises with its stderr when it fails."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def ip_json(ns, *args):
    return json.loads(run("ip", "-n", ns, "-j", *args) or "[]")


@contextlib.contextmanager
def entered(ns_path):
    """Runs the block with this thread in the network namespace at ns_path (setns is per
    thread for network namespaces); sockets created inside stay in it."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns_path}): {os.strerror(err)}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                # Never go on with the test process in the wrong namespace.
                os.write(2, f"setns back failed: errno {ctypes.get_errno()}\n".encode())
                os._exit(70)
    finally:
        os.close(own)
        os.close(target)


class Topology:
    """host <-veth-> far. Use as a context manager: built on entry, torn down on exit even
    when building failed half-way."""

    def __init__(self, workdir):
        pid = os.getpid()
        self.workdir = Path(workdir)
        self.host = f"exd-t-host-{pid}"
        self.far = f"exd-t-far-{pid}"
        self.host_if = f"exd-h{pid}"[:15]
        self.far_if = f"exd-f{pid}"[:15]
        self.abstract = f"exd-t-{pid}"
        self.netns_etc = Path("/etc/netns") / self.host
        self.created_etc_netns = False
        self.servers = []
        self.far_log = self.workdir / "far-dns.log"
        self.host_log = self.workdir / "host-dns.log"

    # --- building -----------------------------------------------------------------------
    def __enter__(self):
        try:
            self.build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc):
        self.teardown()

    def build(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        sweep_dead_runs()
        run("ip", "netns", "add", self.far)
        run("ip", "netns", "add", self.host)
        self.link()
        self.address()
        self.name_resolver()
        self.start_servers()
        self.check_sealed()
        self.check_servers_answer()

    def link(self):
        run("ip", "-n", self.host, "link", "add", self.host_if, "type", "veth", "peer", "name", self.far_if,
            "netns", self.far)
        for ns, dev in ((self.host, self.host_if), (self.far, self.far_if)):
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", ns, "link", "set", dev, "up")
            # A new namespace may inherit forwarding from the initial one: neither routes.
            run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0",
                "net.ipv6.conf.all.forwarding=0")

    def address(self):
        run("ip", "-n", self.far, "addr", "add", f"{FAR_VETH4}/24", "dev", self.far_if)
        run("ip", "-n", self.far, "-6", "addr", "add", f"{FAR_VETH6}/64", "dev", self.far_if, "nodad")
        for a in FAR_ADDRS4:
            run("ip", "-n", self.far, "addr", "add", f"{a}/32", "dev", "lo")
        for a in FAR_ADDRS6:
            run("ip", "-n", self.far, "-6", "addr", "add", f"{a}/128", "dev", "lo")
        run("ip", "-n", self.host, "addr", "add", f"{HOST_VETH4}/24", "dev", self.host_if)
        run("ip", "-n", self.host, "-6", "addr", "add", f"{HOST_VETH6}/64", "dev", self.host_if, "nodad")
        # This kernel has no dummy driver: the host's other address lives on its lo.
        run("ip", "-n", self.host, "addr", "add", f"{HOST_OTHER}/32", "dev", "lo")
        run("ip", "-n", self.host, "route", "add", "default", "via", FAR_VETH4)
        run("ip", "-n", self.host, "-6", "route", "add", "default", "via", FAR_VETH6)

    def name_resolver(self):
        """/etc/netns/HOST/resolv.conf names the loopback resolver: in_host() binds it over
        /etc/resolv.conf for executord (and the slirp4netns it starts), as `ip netns exec
        HOST` does for a person poking around."""
        self.created_etc_netns = not self.netns_etc.parent.exists()
        self.netns_etc.mkdir(parents=True, exist_ok=True)
        (self.netns_etc / "resolv.conf").write_text(f"nameserver {HOST_RESOLVER}\n")

    def start_servers(self):
        self.spawn(self.far, "far", self.far_log,
                   f"tcp=0.0.0.0,{FAR_PORT},far", f"tcp=0.0.0.0,{METADATA_PORT},far",
                   f"tcp=::,{FAR_PORT},far6", f"dns={PUBLIC_DNS}")
        self.spawn(self.host, "host", self.host_log,
                   f"tcp=0.0.0.0,{HOST_PORT},host", f"abstract={self.abstract},host-abstract",
                   f"stub={HOST_RESOLVER},{PUBLIC_DNS}")

    def spawn(self, ns, name, log, *specs):
        ready = self.workdir / f"{name}.ready"
        errlog = open(self.workdir / f"{name}.stderr.log", "ab")
        p = subprocess.Popen(["ip", "netns", "exec", ns, PYTHON, str(HERE / "servers.py"), str(ready), str(log),
                              *specs], stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog,
                             preexec_fn=die_with_parent)
        errlog.close()
        self.servers.append(p)
        deadline = time.monotonic() + 10
        while not ready.exists():
            if p.poll() is not None or time.monotonic() > deadline:
                tail = (self.workdir / f"{name}.stderr.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"test servers in {ns} did not start:\n{tail}")
            time.sleep(0.02)

    # --- the seal ---------------------------------------------------------------------
    def check_sealed(self):
        """Nothing the suite sends can leave: each namespace has lo and its veth end only,
        the veth's peer is the other test namespace, the host routes only through far,
        and far has no default route and forwards nothing."""
        for ns, dev, peer_ns in ((self.host, self.host_if, self.far), (self.far, self.far_if, self.host)):
            links = {link["ifname"]: link for link in ip_json(ns, "-d", "link", "show")}
            assert set(links) == {"lo", dev}, f"{ns} has links {sorted(links)}"
            veth = links[dev]
            assert veth.get("linkinfo", {}).get("info_kind") == "veth" and "link_netnsid" in veth, veth
            peers = [p for p in ip_json(peer_ns, "link", "show")
                     if p["ifindex"] == veth.get("link_index") and p.get("link_index") == veth["ifindex"]]
            assert peers, f"the veth of {ns} does not lead to {peer_ns}"
            for family in ("-4", "-6"):
                for route in ip_json(ns, family, "route", "show", "table", "all"):
                    assert route.get("dev") in ("lo", dev), f"{ns} routes through {route}"
                    if route.get("dst") == "default":
                        assert ns == self.host and route.get("gateway") in (FAR_VETH4, FAR_VETH6), route
            forwarding = run("ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.ip_forward",
                             "net.ipv6.conf.all.forwarding").split()
            assert forwarding == ["0", "0"], f"{ns} forwards: {forwarding}"

    def check_servers_answer(self):
        """From the host namespace every server answers: a job refused them is refused by
        the policy, not by a broken topology."""
        targets = [(a, FAR_PORT, "far") for a in FAR_ADDRS4 + [FAR_VETH4]] + [(METADATA, METADATA_PORT, "far")] + \
            [(a, FAR_PORT, "far6") for a in FAR_ADDRS6] + \
            [(HOST_OTHER, HOST_PORT, "host"), (HOST_VETH4, HOST_PORT, "host"), ("127.0.0.1", HOST_PORT, "host")]
        got = json.loads(run("ip", "netns", "exec", self.host, PYTHON, "-c", GREETINGS, json.dumps(targets)))
        want = [f"{tag}@{addr}" for addr, _, tag in targets]
        assert got == want, f"servers seen from {self.host}: {got}"

    def host_netns_path(self):
        return f"/run/netns/{self.host}"

    def in_host(self, *cmd):
        """The command line that runs cmd in the host namespace, with /etc/netns/HOST/
        resolv.conf bound over /etc/resolv.conf in a private mount namespace, as `ip netns
        exec` would bind it. Not `ip netns exec` itself: it also remounts /sys, which takes
        /sys/fs/cgroup away, and executord would run with rlimits only. Every step execs
        in place, so the process started is cmd's."""
        bind = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
        return ["nsenter", f"--net={self.host_netns_path()}", "unshare", "--mount", "--propagation", "private",
                "sh", "-c", bind, str(self.netns_etc / "resolv.conf"), *cmd]

    def dns_log(self, which):
        path = self.far_log if which == "far" else self.host_log
        return path.read_text() if path.exists() else ""

    # --- teardown -----------------------------------------------------------------------
    def teardown(self):
        for p in self.servers:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.servers = []
        for ns in (self.host, self.far):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        with contextlib.suppress(FileNotFoundError):
            (self.netns_etc / "resolv.conf").unlink()
        with contextlib.suppress(FileNotFoundError, OSError):
            self.netns_etc.rmdir()
        if self.created_etc_netns:
            with contextlib.suppress(OSError):
                self.netns_etc.parent.rmdir()  # only when empty: another run may use it


def die_with_parent():
    """In a server's child before exec: SIGKILL when the test process dies, however it
    dies (`ip netns exec` execs the server in place, which keeps this)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def sweep_dead_runs():
    """Deletes the namespaces (and /etc/netns entries) of earlier runs whose pytest is gone
    (killed before its teardown); a live run's are left alone."""
    etc = Path("/etc/netns")
    names = {line.split()[0] for line in run("ip", "netns", "list").splitlines() if line.strip()}
    names |= {p.name for p in etc.iterdir()} if etc.is_dir() else set()
    for name in names:
        m = OUR_NETNS.match(name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            with contextlib.suppress(OSError):
                (etc / name / "resolv.conf").unlink()
            with contextlib.suppress(OSError):
                (etc / name).rmdir()


# Run in the host namespace by check_servers_answer: the greeting of each (addr, port).
GREETINGS = """
import json, socket, sys
out = []
for addr, port, _ in json.loads(sys.argv[1]):
    try:
        with socket.create_connection((addr, port), timeout=2) as s:
            out.append(s.recv(100).decode().strip())
    except OSError as e:
        out.append(repr(e))
print(json.dumps(out))
"""


if __name__ == "__main__":
    # Manual debugging: build, print the names, wait for Enter, tear down.
    with Topology(Path("/tmp") / f"exd-topology-{os.getpid()}") as t:
        print(t.host, t.far, t.workdir)
        sys.stdin.readline()
