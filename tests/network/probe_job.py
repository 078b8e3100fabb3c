"""The script every network test submits as its job (and runs as root in a scratch namespace
to prove a probe can succeed): it runs a list of probes from inside the sandbox and returns
one short result per probe, so each test asserts on what the job itself saw.

A probe is a dict with "op":
  tcp      {"host", "port", "family": "inet"|"inet6"}   -> "ok:<greeting>" (any connection) | errno name | "timeout"
  abstract {"name"}                                     -> "ok:<greeting>" | errno name
  resolve  {"name"}                                     -> the IPv4 address | "gaierror:<message>"
  read     {"path"}                                     -> the file's text | errno name
  ifaces   {}                                           -> the interface names
  run      {"argv"}                                     -> {"rc", "out"} | errno name
  nft_deltable {"table", "family"}                      -> "ok" | errno name (raw netlink)
"""

import errno
import socket
import struct
import subprocess

TIMEOUT = 2.0


def err_name(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    return errno.errorcode.get(e.errno, f"errno{e.errno}") if e.errno else type(e).__name__


def greet(sock, address):
    """Connects and reads the server's greeting. Any connection counts as "ok", greeting
    or not (executord's own port says nothing until asked)."""
    sock.settimeout(TIMEOUT)
    with sock:
        try:
            sock.connect(address)
        except OSError as e:
            return err_name(e)
        try:
            return "ok:" + sock.recv(200).decode("utf-8", "replace").strip()
        except OSError as e:
            return f"ok:connected, no greeting ({err_name(e)})"


def probe_tcp(host, port, family="inet"):
    fam = socket.AF_INET6 if family == "inet6" else socket.AF_INET
    address = (host, port)
    if fam == socket.AF_INET6 and "%" in host:
        # fe80::x%IF: the scope by interface name, 0 (an error) when the job has no such one.
        addr, ifname = host.split("%", 1)
        try:
            scope = socket.if_nametoindex(ifname)
        except OSError:
            scope = 0
        address = (addr, port, 0, scope)
    try:
        sock = socket.socket(fam, socket.SOCK_STREAM)
    except OSError as e:
        return err_name(e)
    return greet(sock, address)


def probe_abstract(name):
    return greet(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), "\0" + name)


def probe_resolve(name):
    try:
        return socket.gethostbyname(name)
    except OSError as e:
        return f"{type(e).__name__}:{e}"


def probe_read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return err_name(e)


def probe_ifaces():
    return sorted(name for _, name in socket.if_nameindex())


def probe_run(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except OSError as e:
        return err_name(e)
    return {"rc": p.returncode, "out": (p.stdout + p.stderr)[-500:]}


# nfnetlink: a batch (BEGIN, NFT_MSG_DELTABLE, END) as nft itself sends it.
NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFT_MSG_DELTABLE = 2
NFTA_TABLE_NAME = 1
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLMSG_ERROR = 2
FAMILIES = {"inet": 1, "ip": 2, "ip6": 10}


def nlmsg(msg_type, flags, seq, family, res_id, payload=b""):
    body = struct.pack("!BBH", family, 0, res_id) + payload  # nfgenmsg; res_id big-endian
    return struct.pack("=IHHII", 16 + len(body), msg_type, flags, seq, 0) + body


def nla_string(attr_type, text):
    data = text.encode() + b"\0"
    attr = struct.pack("=HH", 4 + len(data), attr_type) + data
    return attr + b"\0" * (-len(attr) % 4)


def probe_nft_deltable(table, family="inet"):
    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    except OSError as e:
        return err_name(e)
    with s:
        s.settimeout(TIMEOUT)
        batch = (nlmsg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 1, 0, NFNL_SUBSYS_NFTABLES)
                 + nlmsg((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELTABLE, NLM_F_REQUEST | NLM_F_ACK, 2,
                         FAMILIES[family], 0, nla_string(NFTA_TABLE_NAME, table))
                 + nlmsg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 3, 0, NFNL_SUBSYS_NFTABLES))
        try:
            s.sendto(batch, (0, 0))
            reply = s.recv(65536)
        except OSError as e:
            return err_name(e)
    # The first NLMSG_ERROR carries the verdict: 0 is the ACK of the deletion.
    at = 0
    while at + 20 <= len(reply):
        length, msg_type = struct.unpack_from("=IH", reply, at)
        if msg_type == NLMSG_ERROR:
            code, = struct.unpack_from("=i", reply, at + 16)
            return "ok" if code == 0 else errno.errorcode.get(-code, f"errno{-code}")
        at += max(16, (length + 3) & ~3)
    return "no answer"


PROBES = {"tcp": probe_tcp, "abstract": probe_abstract, "resolve": probe_resolve, "read": probe_read,
          "ifaces": probe_ifaces, "run": probe_run, "nft_deltable": probe_nft_deltable}


def main(probes):
    out = []
    for p in probes:
        args = {k: v for k, v in p.items() if k != "op"}
        out.append(PROBES[p["op"]](**args))
    return out
