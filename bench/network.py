#!/usr/bin/env python3
"""executord's network row (issue 13): what `"allow_network": true` costs a job, per
backend, against the same job without network, interleaved in the same run.

Root only. Owns the benchmark's throw-away topology and nothing else: two network
namespaces it creates, "host" (executord runs there) and "far" (the test server), one veth
between them and no other link, both deleted on exit. Standard library only; the HTTP
server wrapper and the machine description come from bench.py. See bench/README.md."""

import argparse
import datetime
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the sibling benchmark: Server, build, machine, percentile)

REPO = bench.REPO
BUDGET_MS = 30.0  # issue 13: a network-enabled trivial job costs at most 30 ms more (p50)
FAR_PORT = 7001
PUBLIC = "198.51.100.1"  # TEST-NET-2 on the far namespace's loopback: the "public" server
BLOCKED = ["10.9.0.1", "169.254.169.254"]  # also on far's loopback: must stay unreachable
FAR_ADDRS = [PUBLIC + "/32", "198.51.100.53/32", "10.9.0.1/32", "169.254.169.254/32"]
HOST_VETH, FAR_VETH = "203.0.113.2/24", "203.0.113.1/24"  # TEST-NET-3, the only link

TRIVIAL = "def main():\n    return 1\n"
# One TCP connection and the server's greeting. Without network the connect fails at once
# (loopback only), so the same script measures the same Python work either way.
CONNECT = (
    "import socket\n"
    "def main(host, port):\n"
    "    try:\n"
    "        with socket.create_connection((host, port), timeout=5) as s:\n"
    "            return s.recv(64).decode().strip()\n"
    "    except OSError as e:\n"
    "        return 'refused:' + type(e).__name__\n"
)
GREETING = f"far@{PUBLIC}"


# ---- the far namespace's server (run by the outer stage in "far") --------------------


def serve_far(ready_file):
    """Answers every TCP connection on FAR_PORT with 'far@<address it was reached on>'."""
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", FAR_PORT))
    s.listen(256)
    Path(ready_file).write_text("ready")
    while True:
        c, _ = s.accept()
        try:
            c.sendall(f"far@{c.getsockname()[0]}\n".encode())
        except OSError:
            pass
        c.close()


# ---- outer stage: the topology, then the inner stage inside "host" --------------------


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


class Topology:
    """far <-veth-> host; nothing else. Names carry the pid so parallel runs don't collide."""

    def __init__(self):
        pid = os.getpid()
        self.host, self.far = f"exd-b-host-{pid}", f"exd-b-far-{pid}"
        self.tmp = tempfile.mkdtemp(prefix="exd-netbench-")
        self.server = None

    def up(self):
        sh("ip", "netns", "add", self.far)
        sh("ip", "netns", "add", self.host)
        sh("ip", "-n", self.host, "link", "add", "exb-h", "type", "veth", "peer", "name", "exb-f", "netns", self.far)
        for ns, dev, addr in ((self.far, "exb-f", FAR_VETH), (self.host, "exb-h", HOST_VETH)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
        for a in FAR_ADDRS:
            sh("ip", "-n", self.far, "addr", "add", a, "dev", "lo")
        sh("ip", "-n", self.host, "route", "add", "default", "via", FAR_VETH.split("/")[0])
        ready = os.path.join(self.tmp, "far.ready")
        self.server = subprocess.Popen(["ip", "netns", "exec", self.far, "/usr/bin/python3", __file__,
                                        "--far-server", ready], stdout=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(ready):
                break
            if self.server.poll() is not None:
                raise SystemExit("network.py: the far test server exited at start")
            time.sleep(0.05)
        else:
            raise SystemExit("network.py: the far test server did not start in 10 s")
        # slirp4netns forwards the job's DNS to the first nameserver of the resolv.conf
        # executord sees: a test address in "far", so the host's resolver is never learnt.
        self.resolv = os.path.join(self.tmp, "resolv.conf")
        Path(self.resolv).write_text("nameserver 198.51.100.53\n")

    def run_inside(self, argv):
        """argv in "host", in a private mount namespace whose /etc/resolv.conf is ours.
        nsenter, not `ip netns exec`: the latter remounts /sys, which takes
        /sys/fs/cgroup away and would measure executord without its job cgroups."""
        cmd = ["nsenter", f"--net=/run/netns/{self.host}", "unshare", "-m", "--propagation", "private",
               "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"', self.resolv] + argv
        proc = subprocess.Popen(cmd)
        try:
            return proc.wait()
        finally:  # interrupted: let the inner stage stop executord before the namespaces go
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def down(self):
        if self.server and self.server.poll() is None:
            self.server.kill()
            self.server.wait()
        for ns in (self.host, self.far):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", self.tmp])


def outer(args, inner_argv):
    if os.geteuid() != 0:
        raise SystemExit("network.py: needs root (it creates network namespaces and runs executord as root)")
    for tool in ("ip", "nsenter", "unshare", "mount"):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":")):
            raise SystemExit(f"network.py: missing {tool} (apt-get install -y iproute2 util-linux)")
    binary = Path(args.bin).resolve() if args.bin else bench.build(Path(args.build_dir))
    topo = Topology()
    # SIGTERM must tear the namespaces down too, like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        topo.up()
        return topo.run_inside(["/usr/bin/python3", __file__, "--inner", "--bin", str(binary)] + inner_argv)
    finally:
        topo.down()


# ---- inner stage: executord in "host", the jobs, the figures --------------------------


class NetJob:
    """One kind of job on one backend, with or without network, on a keep-alive
    connection; submit() returns seconds and checks the answer."""

    def __init__(self, server, label, backend, kind, network):
        self.server, self.backend, self.kind, self.network = server, backend, kind, network
        self.name = figure_name(label, backend, kind, network)
        body = {"script": TRIVIAL if kind == "trivial" else CONNECT, "backend": backend, "allow_network": network}
        if kind == "connect":
            body["inputs"] = {"host": PUBLIC, "port": FAR_PORT}
        self.body = json.dumps(body).encode()
        self.conn = None

    def expected(self, result):
        if self.kind == "trivial":
            return result == 1
        if self.network:
            return result == GREETING
        return isinstance(result, str) and result.startswith("refused:")

    def submit(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        t0 = time.perf_counter()
        self.conn.request("POST", "/v1/jobs?wait=30", body=self.body,
                          headers={"Content-Type": "application/json", **self.server.headers()})
        r = self.conn.getresponse()
        data = r.read()
        dt = time.perf_counter() - t0
        doc = json.loads(data)
        if r.status not in (200, 201) or doc.get("status") != "succeeded" or not self.expected(doc.get("result")):
            raise SystemExit(f"{self.name}: unexpected answer {r.status}: {data[:600]!r}")
        return dt

    def close(self):
        if self.conn:
            self.conn.close()


def figure_name(label, backend, kind, network):
    """'pool trivial net', or 'pool (before) trivial net' for a --compare binary."""
    return f"{backend}{f' ({label})' if label else ''} {kind} {'net' if network else 'no-net'}"


def one_job(server, body):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        c.request("POST", "/v1/jobs?wait=30", body=json.dumps(body).encode(),
                  headers={"Content-Type": "application/json", **server.headers()})
        return json.loads(c.getresponse().read())
    finally:
        c.close()


def check_policy(server, backends):
    """Before timing anything: the public server answers and the blocked ones don't, so
    the figures are of jobs behind the egress policy, not of an unfiltered network."""
    for b in backends:
        for host in [PUBLIC] + BLOCKED:
            doc = one_job(server, {"script": CONNECT, "backend": b, "allow_network": True,
                                   "inputs": {"host": host, "port": FAR_PORT}})
            got = doc.get("result")
            ok = got == GREETING if host == PUBLIC else (isinstance(got, str) and got.startswith("refused:"))
            if doc.get("status") != "succeeded" or not ok:
                raise SystemExit(f"policy check on {b}, {host}:{FAR_PORT}: {json.dumps(doc)[:600]}")
            log(f"   policy check {b} {host}: {got}")


def slirp_children(pid):
    """slirp4netns processes whose parent is executord (left after teardown = a leak)."""
    n = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if (d / "comm").read_text().strip() != "slirp4netns":
                continue
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        n += ppid == pid
    return n


def cpu_busy():
    """(busy, total) jiffies of the whole machine, for the load during the run."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return sum(f) - idle, sum(f)


def slirp_path(server_args):
    """The stack executord runs: its --slirp4netns if the run passed one, else its default."""
    for i, a in enumerate(server_args):
        if a.startswith("--slirp4netns="):
            return a.split("=", 1)[1]
        if a == "--slirp4netns" and i + 1 < len(server_args):
            return server_args[i + 1]
    return os.environ.get("EXECUTORD_SLIRP4NETNS", "/usr/bin/slirp4netns")


def tool_version(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return ", ".join(line.strip() for line in out.splitlines()[:3] if line.strip()) or "unknown"


def log(msg):
    bench.log(msg)


def measure(jobs, rounds, per_round):
    """Fine-grained interleaving: every figure once per step, in a new random order each
    step, so that a burst of load hits each figure alike; samples of the same step pair
    up for the per-step differences."""
    samples = {j.name: [] for j in jobs}
    for rnd in range(rounds):
        for _ in range(per_round):
            order = list(jobs)
            random.shuffle(order)
            for j in order:
                samples[j.name].append(j.submit())
        log(f"   round {rnd + 1}/{rounds}: " + ", ".join(
            f"{j.name} {statistics.median(samples[j.name][-per_round:]) * 1000:.1f}" for j in jobs))
    return samples


def start_servers(args):
    """executord, and each --compare binary, in this namespace with the same flags."""
    extra = ["--backends", ",".join(args.backends)] + args.server_arg
    servers = []
    for spec in [f"={args.bin}"] + args.compare:
        label, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--compare wants LABEL=BINARY, got {spec!r}")
        servers.append((label, bench.Server(Path(path).resolve(), args.workers, extra)))
    return servers


def network_backends(label, server, wanted):
    """The network object and the backends of wanted this server can run; refuses a
    binary without a usable network stack (nothing to measure)."""
    who = f"executord ({label})" if label else "executord"
    _, doc = server.get("/v1/backends")
    net = doc.get("network")
    if not isinstance(net, dict):
        raise SystemExit(f"{who} has no network stack (GET /v1/backends has no \"network\"): "
                         "it predates issue 13, nothing to measure")
    if not net.get("available"):
        raise SystemExit(f"{who}: network stack unavailable: {net.get('reason')}")
    available = {b["name"] for b in doc.get("backends", []) if b.get("available")}
    backends = [b for b in wanted if b in available]
    if not backends:
        raise SystemExit(f"{who}: none of {wanted} is available: {json.dumps(doc.get('backends'))}")
    log(f"== {who} in the test namespace; network: {json.dumps(net)}")
    return net, backends


def inner(args):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the outer stage's way to stop us
    servers = []
    try:
        servers = start_servers(args)
        time.sleep(0.5)
        nets, backends = {}, list(args.backends)
        for label, srv in servers:
            nets[label], offered = network_backends(label, srv, args.backends)
            backends = [b for b in backends if b in offered]
        for label, srv in servers:
            check_policy(srv, backends)
        jobs = [NetJob(srv, label, b, kind, network) for label, srv in servers for b in backends
                for kind in ("trivial", "connect") for network in (False, True)]
        log("== warm-up")
        for _ in range(args.warmup):
            for j in jobs:
                j.submit()
        quiet0 = cpu_busy()
        time.sleep(2)  # nothing of ours runs: what the rest of the machine is doing
        busy0 = cpu_busy()
        load_before = Path("/proc/loadavg").read_text().split()[:3]
        t0 = time.monotonic()
        samples = measure(jobs, args.rounds, args.per_round)
        elapsed = time.monotonic() - t0
        busy1 = cpu_busy()
        load_after = Path("/proc/loadavg").read_text().split()[:3]
        for j in jobs:
            j.close()
        time.sleep(2)  # teardown may follow the answer; give it its seconds before counting
        leaked = sum(slirp_children(srv.proc.pid) for _, srv in servers)
        run = {"elapsed": elapsed, "load_before": load_before, "load_after": load_after,
               "busy": (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]), "leaked": leaked,
               "others": (busy0[0] - quiet0[0]) / max(1, busy0[1] - quiet0[1])}
        report(args, [label for label, _ in servers], backends, nets[""], samples, run)
    finally:
        for _, srv in servers:
            srv.stop()
    return 0


# ---- the report ---------------------------------------------------------------------


def report(args, labels, backends, net, samples, run):
    ms = lambda s: "%.1f" % (s * 1000)  # noqa: E731
    m = bench.machine()
    n = args.rounds * args.per_round
    lines = [f"{args.rounds} rounds x {args.per_round} steps; each step submits every figure once, in a new random "
             f"order (`POST /v1/jobs?wait=30`, concurrency 1, keep-alive; a sample is request sent .. answer read). "
             f"{n} samples per figure. \"paired\" = median over steps of (with network - without) within the "
             f"same step. Budget (issue 13): a trivial job with network at most {BUDGET_MS:.0f} ms more than "
             f"without, p50, same run.", "",
             "| backend | job | without network p50 / p90 ms | with network p50 / p90 ms | extra p50 ms | extra paired ms | within 30 ms |",
             "|---|---|---:|---:|---:|---:|---|"]
    verdicts = []
    for label, b in ((label, b) for label in labels for b in backends):
        for kind in ("trivial", "connect"):
            off = samples[figure_name(label, b, kind, False)]
            on = samples[figure_name(label, b, kind, True)]
            extra = statistics.median(on) - statistics.median(off)
            paired = statistics.median(a - c for a, c in zip(on, off))
            within = extra * 1000 <= BUDGET_MS
            who = f"`{b}` ({label})" if label else f"`{b}`"
            if kind == "trivial":
                verdicts.append((who, extra, within))
            desc = "trivial (`return 1`)" if kind == "trivial" else f"one TCP connect to {PUBLIC} + greeting"
            budget = ("**yes**" if within else "**NO**") if kind == "trivial" else "(not budgeted)"
            lines.append(f"| {who} | {desc} | {ms(statistics.median(off))} / {ms(bench.percentile(off, 90))} | "
                         f"{ms(statistics.median(on))} / {ms(bench.percentile(on, 90))} | {extra * 1000:+.1f} | "
                         f"{paired * 1000:+.1f} | {budget} |")
    lines += ["", "Without network the connect job's connect fails at once (loopback only: `refused:OSError`), "
              "so its row compares the same Python work; with network it must return "
              f"`{GREETING}` (any other answer aborts the run). Before timing, a network job on each backend "
              f"reached {PUBLIC} and was refused {', '.join(BLOCKED)}.", "",
              f"Load: 1/5/15-min load average {' '.join(run['load_before'])} before, "
              f"{' '.join(run['load_after'])} after; the machine's CPUs were {run['others'] * 100:.0f}% busy in the 2 s "
              f"before measuring (other work: this benchmark was idle) and {run['busy'] * 100:.0f}% during the "
              f"{run['elapsed']:.0f} s of measuring (this benchmark included). "
              f"slirp4netns processes of executord left 2 s after the last job: {run['leaked']}."]
    if len(labels) > 1:
        lines += ["", "Rows labelled `(LABEL)` come from `--compare LABEL=BINARY`: another executord in the same "
                  "namespace with the same flags, its jobs interleaved with the main binary's."]
    table = "\n".join(lines)
    machine_md = "\n".join([
        "| | |", "|---|---|",
        f"| kernel | {m['kernel']} |",
        f"| CPU | {m['cores']} x {m['cpu']} |",
        f"| memory | {m['memory']} |",
        f"| cgroup | {m['cgroup']} |",
        f"| Python | {m['python']} |",
        f"| slirp4netns | {tool_version([slirp_path(args.server_arg), '--version'])} |",
        f"| nftables | {tool_version(['nft', '--version'])} |",
        f"| executord's `network` | `{json.dumps(net)}` |",
        f"| date | {m['date']} |"])
    print()
    print(machine_md)
    print()
    print(table)
    for b, extra, within in verdicts:
        log(f"== {b}: network costs a trivial job {extra * 1000:+.1f} ms at p50 "
            f"({'within' if within else 'OVER'} the {BUDGET_MS:.0f} ms budget)")
    if not args.no_write:
        out = REPO / "bench" / "results" / f"{datetime.date.today().isoformat()}-network.md"
        cmd = "bench/run.sh --network " + " ".join(args.passed)
        out.write_text(f"# executord benchmark: the cost of `allow_network`, {m['date']}\n\n"
                       f"Command: `{cmd.strip()}` (as root). executord runs in a network namespace the "
                       f"benchmark creates, whose only link is a veth to a second one holding the server "
                       f"{PUBLIC}:{FAR_PORT}; nothing leaves the machine.\n\n## Machine\n\n{machine_md}\n\n"
                       f"## Figures\n\n{table}\n")
        log(f"== written to {out.relative_to(REPO)}")


# ---- command line -------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="executord binary (default: build it in --build-dir)")
    ap.add_argument("--build-dir", default=str(REPO / "build"), help="cmake build folder (default build/)")
    ap.add_argument("--backends", default="ephemeral,pool", help="comma list (default ephemeral,pool)")
    ap.add_argument("--rounds", type=int, default=8, help="rounds (default 8)")
    ap.add_argument("--per-round", type=int, default=10, help="steps per round, each one sample per figure (default 10)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up samples per figure (default 3)")
    ap.add_argument("--workers", type=int, default=0, help="executord --workers (default: its own default)")
    ap.add_argument("--no-write", action="store_true", help="print only, write no results file")
    ap.add_argument("--server-arg", action="append", default=[], help="extra executord argument (repeatable)")
    ap.add_argument("--compare", action="append", default=[], metavar="LABEL=BINARY",
                    help="also measure another executord binary, interleaved; its rows are labelled (repeatable)")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--far-server", metavar="READY_FILE", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    args = ap.parse_args(argv)
    if args.far_server:
        serve_far(args.far_server)
        return 0
    args.backends = [b for b in args.backends.split(",") if b]
    if args.inner:
        args.passed = strip_opts([a for a in argv if a != "--inner"], ("--bin",))
        return inner(args)
    return outer(args, strip_opts(argv, ("--bin", "--build-dir")))


def strip_opts(argv, names):
    """argv without `NAME VALUE` / `NAME=VALUE` for each of names (the outer stage passes
    the resolved binary itself)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in names:
            skip = True
        elif not any(a.startswith(n + "=") for n in names):
            out.append(a)
    return out


if __name__ == "__main__":
    sys.exit(main())
