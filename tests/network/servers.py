"""The network suite's test servers, one process per namespace (started by topology.py with
`ip netns exec NS /usr/bin/python3 servers.py READY LOG SPEC...`): TCP servers that greet
with "TAG@<local address>", an abstract UNIX socket server, an authoritative DNS responder
and a forwarding "systemd-resolved" stand-in. Every DNS query is logged to LOG, so a test
can prove which way a job's lookup went. Standard library only.

SPEC forms:
  tcp=ADDR,PORT,TAG        TCP greeting server (IPv6 when ADDR has a colon, v6-only)
  abstract=NAME,TAG        greeting server on the abstract UNIX socket "@NAME"
  dns=ADDR                 UDP+TCP port 53: public.test and *.public.test -> A PUBLIC_ADDR
  stub=ADDR,UPSTREAM       UDP+TCP port 53: forwards every query to UPSTREAM:53 (UDP)
"""

import selectors
import socket
import struct
import sys

PUBLIC_ZONE = "public.test"
PUBLIC_ADDR = "198.51.100.1"
TYPE_A = 1


def listen_tcp(addr, port):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    s.listen(64)
    return s


def listen_udp(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    return s


def question(msg):
    """(qname, qtype, end offset of the question) of a DNS query."""
    labels, at = [], 12
    while msg[at]:
        n = msg[at]
        labels.append(msg[at + 1:at + 1 + n].decode("ascii", "replace"))
        at += 1 + n
    qtype, = struct.unpack("!H", msg[at + 1:at + 3])
    return ".".join(labels).lower(), qtype, at + 5


def answer(query):
    """The authoritative answer of the test zone to one query."""
    qname, qtype, end = question(query)
    known = qname == PUBLIC_ZONE or qname.endswith("." + PUBLIC_ZONE)
    rd = query[2] & 0x01
    flags = 0x8400 | (rd << 8) | (0 if known else 3)  # QR, AA, RD copied; NXDOMAIN when unknown
    answers = b""
    if known and qtype == TYPE_A:
        # Name as a pointer to the question (offset 12), type A, class IN, TTL 60, 4 bytes.
        answers = struct.pack("!HHHIH", 0xC00C, TYPE_A, 1, 60, 4) + socket.inet_aton(PUBLIC_ADDR)
    header = query[:2] + struct.pack("!HHHHH", flags, 1, 1 if answers else 0, 0, 0)
    return header + query[12:end] + answers


def forward(query, upstream):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(3)
        u.sendto(query, (upstream, 53))
        return u.recv(4096)


class Servers:
    def __init__(self, log_path):
        self.sel = selectors.DefaultSelector()
        self.log = open(log_path, "a", buffering=1)

    def add(self, sock, handler):
        self.sel.register(sock, selectors.EVENT_READ, handler)

    def logged(self, kind, responder, peer):
        """A DNS handler: logs "KIND QNAME PEER" then lets `responder` answer."""
        def handle(query):
            self.log.write(f"{kind} {question(query)[0]} {peer}\n")
            return responder(query)
        return handle

    def greeter(self, sock, tag):
        def on_accept():
            c, _ = sock.accept()
            with c:
                local = c.getsockname()
                c.sendall(f"{tag}@{local[0] if isinstance(local, tuple) else ''}\n".encode())
        self.add(sock, on_accept)

    def dns(self, addr, kind, responder):
        udp, tcp = listen_udp(addr, 53), listen_tcp(addr, 53)

        def on_udp():
            query, peer = udp.recvfrom(4096)
            udp.sendto(self.logged(kind, responder, peer[0])(query), peer)

        def on_tcp():
            c, peer = tcp.accept()
            with c:
                c.settimeout(3)
                n, = struct.unpack("!H", recv_exactly(c, 2))
                reply = self.logged(kind + "/tcp", responder, peer[0])(recv_exactly(c, n))
                c.sendall(struct.pack("!H", len(reply)) + reply)

        self.add(udp, on_udp)
        self.add(tcp, on_tcp)

    def serve(self):
        while True:
            for key, _ in self.sel.select():
                try:
                    key.data()
                except (OSError, ValueError, IndexError, struct.error) as e:
                    self.log.write(f"error {e!r}\n")


def recv_exactly(c, n):
    data = b""
    while len(data) < n:
        chunk = c.recv(n - len(data))
        if not chunk:
            raise OSError("short read")
        data += chunk
    return data


def main(ready_path, log_path, specs):
    servers = Servers(log_path)
    for spec in specs:
        kind, rest = spec.split("=", 1)
        args = rest.split(",")
        if kind == "tcp":
            servers.greeter(listen_tcp(args[0], int(args[1])), args[2])
        elif kind == "abstract":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind("\0" + args[0])
            s.listen(16)
            servers.greeter(s, args[1])
        elif kind == "dns":
            servers.dns(args[0], "dns", answer)
        elif kind == "stub":
            upstream = args[1]
            servers.dns(args[0], "stub", lambda q: forward(q, upstream))
        else:
            raise SystemExit(f"servers.py: unknown spec {spec!r}")
    with open(ready_path, "w") as f:
        f.write("ready\n")
    servers.serve()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
