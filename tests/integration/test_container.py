"""The container deployment, tested here without a Docker engine through the real binary:
executord as PID 1 of a fresh PID namespace (init duties), under exactly the capability set
of deploy/docker/capabilities (and one fewer), the --healthcheck mode, and the consistency
of Dockerfile, docker-compose.yml and deploy/docker/seccomp.json."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from executord_client import BIN, REPO, Client, Server, free_port, store_args_for

DOCKER = REPO / "deploy" / "docker"
NAMESPACE_SYSCALLS = {"clone", "clone3", "unshare", "mount", "umount2", "pivot_root", "mount_setattr",
                      "sethostname", "setdomainname"}
CAP_BITS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "KILL": 5, "SETGID": 6, "SETUID": 7, "SETPCAP": 8,
            "SYS_ADMIN": 21, "SYS_RESOURCE": 24}

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, capability sets)")


def container_caps():
    """deploy/docker/capabilities: the one list the docs, compose file and tests share."""
    caps = []
    for line in (DOCKER / "capabilities").read_text().splitlines():
        word = line.split("#", 1)[0].strip()
        if word:
            caps.append(word.upper())
    assert caps, "deploy/docker/capabilities lists no capability"
    return caps


class Launched:
    """executord started behind a wrapper command (unshare, setpriv); stderr to a log."""

    def __init__(self, tmp_path, prefix, args, name="srv"):
        self.dir = tmp_path / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data = self.dir / "data"
        self.log = self.dir / "executord.stderr.log"
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXECUTORD_")}
        args = list(args)
        if Server.uses_direct(args) and "--backends" not in args:
            args += ["--backends", "pool,ephemeral,direct"]  # direct is an explicit opt-in
        # EXECUTORD_TEST_STORE as Server does; not under setpriv: the throw-away cluster's
        # socket folder is 0700 (postgres), out of reach without CAP_DAC_OVERRIDE, and those
        # tests are about the container's capabilities, not the store.
        if "setpriv" not in prefix:
            args += store_args_for(self.data, args)
        cmd = prefix + [BIN, "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data)] + args
        self.errfile = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.errfile, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.errfile.close()
                raise RuntimeError(f"exited {self.proc.returncode} during start-up:\n{self.tail()}")
            if b"listening on" in self.log.read_bytes():
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"never listened:\n{self.tail()}")
        self.token = (self.data / "api-token").read_text().strip()
        self.client = Client(self.port, token=self.token)

    def tail(self):
        return self.log.read_bytes()[-3000:].decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, target=None, timeout=20):
        if self.proc.poll() is None:
            os.kill(target or self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errfile.close()
        return self.proc.returncode


def children(pid):
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def proc_status(pid):
    try:
        return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if ":\t" in line)
    except FileNotFoundError:
        return {}


def wait_for(pred, timeout=10, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    return pred()


SLEEPER = "def main():\n    import time\n    time.sleep(60)\n"
QUICK = "def main(x):\n    return x * 2\n"


# ---- (a) PID 1 --------------------------------------------------------------------------

@root_only
def test_pid1_serves_reaps_orphans_and_stops_on_sigterm(tmp_path):
    srv = Launched(tmp_path, ["unshare", "--pid", "--fork", "--mount-proc"],
                   ["--workers", "1", "--pool-size", "1", "--shutdown-grace-seconds", "1"])
    init = None
    try:
        init = wait_for(lambda: children(srv.proc.pid), 5)[0]
        assert proc_status(init)["NSpid"].split()[-1] == "1", "executord is not PID 1 of its namespace"
        service = wait_for(lambda: children(init), 5)
        assert len(service) == 1, f"PID 1 should have forked exactly the service: {service}"
        service = service[0]
        assert proc_status(init)["Name"] == "executord-init"

        doc = srv.client.run(QUICK, inputs={"x": 21})
        assert doc["status"] == "succeeded" and doc["result"] == 42, doc

        # An orphan inside the container: a helper double-forks and exits at once; its
        # grandchild is reparented to PID 1, lives 1.5 s, then must be reaped, not a zombie.
        helper = ("import os, sys, time\n"
                  "if os.fork() == 0:\n"
                  "    if os.fork() == 0:\n"
                  "        time.sleep(1.5)\n"
                  "        os._exit(0)\n"
                  "    os._exit(0)\n"
                  "os.wait()\n")
        subprocess.run(["nsenter", "--target", str(init), "--pid", "--mount", "--", "/usr/bin/python3", "-c",
                        helper], check=True, timeout=20)
        adopted = wait_for(lambda: [p for p in children(init) if p != service], 3)
        assert adopted, "the orphan was not reparented to executord's PID 1"
        orphan = adopted[0]
        gone = wait_for(lambda: not Path(f"/proc/{orphan}").exists(), 10)
        assert gone, f"orphan {orphan} left behind: {proc_status(orphan).get('State')}"
        assert children(init) == [service]

        # SIGTERM to PID 1 (what `docker stop` sends): forwarded, graceful, exit 0, promptly;
        # queued jobs stay queued for the next start.
        running = srv.client.submit({"script": SLEEPER, "timeout_seconds": 120})
        srv.client.wait_status(running["id"], {"running"})
        queued = [srv.client.submit({"script": QUICK, "inputs": {"x": i}})["id"] for i in range(3)]
        t0 = time.monotonic()
        rc = srv.stop(signal.SIGTERM, target=init, timeout=20)
        elapsed = time.monotonic() - t0
    finally:
        if srv.proc.poll() is None:
            # unshare does not pass SIGKILL on; killing the namespace's PID 1 ends it all.
            if init and Path(f"/proc/{init}").exists():
                os.kill(init, signal.SIGKILL)
            srv.stop(signal.SIGKILL)
    assert rc == 0, f"exit status {rc}:\n{srv.tail()}"
    assert elapsed < 10, f"shutdown took {elapsed:.1f}s"
    assert "received Terminated" in srv.tail()

    again = Server(srv.data, args=["--workers", "2", "--backend", "direct"], log_path=srv.dir / "restart.log")
    again.start()
    try:
        c = again.client()
        first = c.get_job(running["id"]).json()
        assert first["status"] == "failed", first
        for i, job_id in enumerate(queued):
            doc = c.wait_final(job_id, timeout=60)
            assert doc["status"] == "succeeded" and doc["result"] == 2 * i, doc
    finally:
        again.stop()


@root_only
def test_not_pid1_does_not_fork_an_init(make_server):
    srv = make_server("--backend", "direct")
    assert proc_status(srv.proc.pid)["Name"] == "executord"
    assert srv.client().request("GET", "/healthz").status == 200
    assert not any(proc_status(p).get("Name") == "executord-init" for p in children(srv.proc.pid))


# ---- (b) the container's capability set ---------------------------------------------------

def setpriv(caps):
    bounding = "-all" + "".join(f",+{c.lower()}" for c in caps)
    # As in the container: root, bounded capabilities, no_new_privs (--security-opt).
    return ["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--ambient-caps=-all", "--no-new-privs", "--"]


def cap_mask(caps):
    return sum(1 << CAP_BITS[c] for c in caps)


@root_only
def test_container_capabilities_suffice(tmp_path):
    caps = container_caps()
    assert set(caps) <= set(CAP_BITS), f"unknown capability in deploy/docker/capabilities: {caps}"
    srv = Launched(tmp_path, setpriv(caps), ["--workers", "2", "--pool-size", "1", "--backends", "pool,ephemeral,direct"])
    try:
        status = proc_status(srv.proc.pid)
        assert int(status["CapBnd"], 16) == cap_mask(caps), status["CapBnd"]
        assert int(status["CapEff"], 16) == cap_mask(caps), status["CapEff"]
        assert status["NoNewPrivs"].strip() == "1"
        r = srv.client.request("GET", "/readyz")
        assert r.status == 200, r
        backends = {b["name"]: b for b in srv.client.request("GET", "/v1/backends").json()["backends"]}
        for name in ("ephemeral", "pool"):
            assert backends[name]["available"], backends[name]
            doc = srv.client.run(QUICK, inputs={"x": 4}, backend=name)
            assert doc["status"] == "succeeded" and doc["result"] == 8, (name, doc)
            # A job's timeout kills everything it started without CAP_KILL.
            doc = srv.client.run("def main():\n    import subprocess, time\n    subprocess.Popen(['sleep', '60'])\n"
                                 "    time.sleep(60)\n", backend=name, timeout_seconds=1)
            assert doc["status"] == "timed_out", (name, doc)
        # direct (trusted use) hands each job a host work folder, which takes CAP_CHOWN:
        # without it the backend says so instead of failing every job.
        assert not backends["direct"]["available"], backends["direct"]
        assert "CAP_CHOWN" in backends["direct"]["reason"], backends["direct"]
        r = srv.client.post_job({"script": QUICK, "inputs": {"x": 1}, "backend": "direct"})
        assert r.status == 422 and r.error["field"] == "backend", r
    finally:
        assert srv.stop() == 0, srv.tail()


@root_only
def test_direct_needs_chown_too(tmp_path):
    """The README's remedy for direct in a container: --cap-add CHOWN."""
    caps = container_caps() + ["CHOWN"]
    srv = Launched(tmp_path, setpriv(caps), ["--workers", "1", "--backend", "direct"])
    try:
        doc = srv.client.run(QUICK, inputs={"x": 5}, backend="direct")
        assert doc["status"] == "succeeded" and doc["result"] == 10, doc
    finally:
        assert srv.stop() == 0, srv.tail()


@root_only
def test_without_setuid_sandboxes_fail_closed(tmp_path):
    """No CAP_SETUID: no sandbox can map a job's uids. Both sandbox backends say so at
    start-up (never a job with less isolation), and a service whose default backend is
    one of them refuses to start, naming the cause."""
    caps = [c for c in container_caps() if c != "SETUID"]
    assert "SETUID" in container_caps()
    for backend in ("ephemeral", "pool"):
        with pytest.raises(RuntimeError) as ei:
            Launched(tmp_path / backend, setpriv(caps), ["--workers", "1", "--pool-size", "1",
                                                          "--backend", backend])
        msg = str(ei.value)
        assert "exited 1 during start-up" in msg, msg
        assert f"default backend '{backend}' is not available" in msg and "uid_map" in msg, msg


# ---- (c) --healthcheck ----------------------------------------------------------------------

def healthcheck(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("EXECUTORD_")}
    e.update(env or {})
    return subprocess.run([BIN, "--healthcheck", *args], capture_output=True, text=True, timeout=15, env=e)


def test_healthcheck_ready_server(make_server):
    srv = make_server("--backend", "direct")
    r = healthcheck("--listen", f"127.0.0.1:{srv.port}")
    assert r.returncode == 0, r
    assert r.stdout.startswith("ready:") and "200" in r.stdout and r.stdout.count("\n") == 1, r
    # The container's way: the wildcard listen address from the environment.
    r = healthcheck(env={"EXECUTORD_LISTEN": f"0.0.0.0:{srv.port}"})
    assert r.returncode == 0 and f"127.0.0.1:{srv.port}" in r.stdout, r


def test_healthcheck_closed_port_and_bad_config():
    port = free_port()
    r = healthcheck("--listen", f"127.0.0.1:{port}")
    assert r.returncode == 1, r
    assert r.stderr.startswith("not ready:") and "refused" in r.stderr and r.stderr.count("\n") == 1, r
    r = healthcheck("--listen", "127.0.0.1:0")
    assert r.returncode == 1 and "not ready" in r.stderr, r
    # Docker reserves status 2: a configuration error is 1 too, with its one line.
    r = healthcheck(env={"EXECUTORD_WORKERS": "many"})
    assert r.returncode == 1 and "EXECUTORD_WORKERS" in r.stderr, r


def test_healthcheck_not_ready_server(make_server):
    """Shutting down: /readyz answers 503 with a reason, which the check prints."""
    srv = make_server("--backend", "direct", "--shutdown-grace-seconds", "5", "--workers", "1")
    c = srv.client()
    job = c.submit({"script": SLEEPER, "backend": "direct", "timeout_seconds": 60})
    c.wait_status(job["id"], {"running"})
    srv.proc.send_signal(signal.SIGTERM)
    r = wait_for(lambda: (lambda x: x if x.returncode == 1 else None)(
        healthcheck("--listen", f"127.0.0.1:{srv.port}")), 5)
    assert r and r.returncode == 1 and "503" in r.stderr and "shutting down" in r.stderr, r


# ---- (d) the image's files agree ----------------------------------------------------------

def dockerfile():
    return (REPO / "Dockerfile").read_text()


def run_line_options(text):
    """--cap-add and --security-opt of the `docker run` example in the Dockerfile."""
    caps = set(re.findall(r"--cap-add\s+(\w+)", text))
    opts = set(re.findall(r"--security-opt\s+(\S+)", text))
    return caps, opts


def normalise_opt(opt):
    opt = opt.replace("seccomp:", "seccomp=").replace("apparmor:", "apparmor=")
    return "no-new-privileges" if opt.startswith("no-new-privileges") else opt


def test_dockerfile_and_compose_agree():
    text = dockerfile()
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["executord"]
    caps = set(container_caps())
    df_caps, df_opts = run_line_options(text)
    assert "--cap-drop ALL" in text and compose["cap_drop"] == ["ALL"]
    assert df_caps == caps, (df_caps, caps)
    assert set(compose["cap_add"]) == caps
    assert {normalise_opt(o) for o in df_opts} == {normalise_opt(o) for o in compose["security_opt"]}
    for needed in ("seccomp=deploy/docker/seccomp.json", "apparmor=unconfined", "systempaths=unconfined"):
        assert needed in {normalise_opt(o) for o in compose["security_opt"]}, needed
    assert "privileged" not in compose and "SYS_ADMIN" not in caps
    # Volume, port, healthcheck, PID 1.
    assert 'VOLUME ["/var/lib/executord"]' in text
    assert "EXECUTORD_DATA_DIR=/var/lib/executord" in text
    assert compose["environment"]["EXECUTORD_DATA_DIR"] == "/var/lib/executord"
    assert any(v.endswith(":/var/lib/executord") for v in compose["volumes"])
    assert "EXPOSE 8080" in text and "EXECUTORD_LISTEN=0.0.0.0:8080" in text
    assert any(p.endswith(":8080") for p in compose["ports"])
    hc = re.search(r'HEALTHCHECK .*?CMD (\[.*?\])', text, re.S)
    assert hc and json.loads(hc.group(1)) == ["/usr/local/bin/executord", "--healthcheck"]
    assert compose["healthcheck"]["test"] == ["CMD"] + json.loads(hc.group(1))
    assert re.search(r'^ENTRYPOINT \["/usr/local/bin/executord"\]$', text, re.M), "exec-form ENTRYPOINT"
    assert compose.get("init") is False
    # The token comes from a secret, never the image.
    assert compose["environment"]["EXECUTORD_API_TOKEN_FILE"].startswith("/run/secrets/")
    # Runtime stage: no compiler; the build stage is the only one with -dev packages.
    runtime = text.split("FROM debian:12-slim", 1)[1]
    assert not re.search(r"\b(gcc|clang|cmake|-dev)\b", runtime.split("COPY --from=build")[0])
    for lib in ("libmicrohttpd12", "libjansson4", "libseccomp2", "libuuid1", "libsqlite3-0", "libnettle8", "libpq5",
                "python3"):
        assert lib in runtime, lib
    # Every folder of embedded sources the build needs is in the build stage.
    for folder in ("migrations/", "migrations_pg/"):
        assert re.search(rf"^COPY {folder} {folder}$", text, re.M), folder


def test_replicas_compose_agrees():
    """deploy/replicas/compose.yml (docs/replicas.md): three replicas with exactly the single
    instance's privileges, one token secret, the database password never in the URL, each
    its own id and data volume; PostgreSQL on an internal network; HAProxy round-robin over
    exactly those replicas, checking /readyz with a Host they accept, never cutting a ?wait."""
    here = REPO / "deploy" / "replicas"
    single = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["executord"]
    doc = yaml.safe_load((here / "compose.yml").read_text())
    services = doc["services"]
    replicas = {n: s for n, s in services.items() if "build" in s}
    assert sorted(replicas) == ["executord-1", "executord-2", "executord-3"]
    ids, volumes = set(), set()
    for name, svc in replicas.items():
        for key in ("cap_drop", "cap_add", "cgroup", "init", "healthcheck", "stop_grace_period"):
            assert svc.get(key) == single.get(key), (name, key)
        # Paths in a compose file are relative to its folder.
        assert {o.replace("seccomp=../docker/", "seccomp=deploy/docker/") for o in svc["security_opt"]} == \
            set(single["security_opt"]), name
        assert (here / svc["build"]["context"]).resolve() == REPO.resolve()
        env = svc["environment"]
        assert env["EXECUTORD_API_TOKEN_FILE"] == "/run/secrets/executord_token" and "executord_token" in svc["secrets"]
        url = env["EXECUTORD_STORE"]
        userinfo = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]
        assert url.startswith("postgresql://") and ":" not in userinfo and "password" not in url, url
        assert env["PGPASSFILE"].startswith("/run/secrets/") and "pgpass" in svc["secrets"]
        assert env["EXECUTORD_DATA_DIR"] == "/var/lib/executord"
        ids.add(env["EXECUTORD_REPLICA_ID"])
        volumes.update(v for v in svc["volumes"] if v.endswith(":/var/lib/executord"))
        assert "ports" not in svc, f"{name}: only the proxy publishes a port"
    assert len(ids) == 3 and len(volumes) == 3, (ids, volumes)
    pg = services["postgres"]
    assert pg["image"].startswith("postgres:15") and "ports" not in pg
    assert all(doc["networks"][n].get("internal") is True for n in pg["networks"])
    assert all(s["file"].startswith("./secrets/") for s in doc["secrets"].values())
    ignored = (REPO / ".gitignore").read_text().split() + (REPO / ".dockerignore").read_text().split()
    assert ignored.count("/deploy/replicas/secrets/") + ignored.count("deploy/replicas/secrets/") == 2
    proxy = services["executord"]
    assert proxy["image"].startswith("haproxy:") and proxy["ports"] == ["127.0.0.1:8080:8080"]
    cfg = (here / "haproxy.cfg").read_text()
    assert sorted(re.findall(r"^\s*server\s+\S+\s+(\S+):8080\s*$", cfg, re.M)) == sorted(replicas)
    assert re.search(r"^\s*balance\s+roundrobin$", cfg, re.M)
    host = re.search(r"^\s*http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host (\S+)$", cfg, re.M)
    assert host and re.search(r"^\s*http-check expect status 200$", cfg, re.M)
    for svc in replicas.values():
        assert host.group(1) in svc["environment"]["EXECUTORD_ALLOWED_HOSTS"].split(",")
    timeouts = dict(re.findall(r"^\s*timeout (client|server)\s+(\d+)s", cfg, re.M))
    assert int(timeouts["client"]) > 300 and int(timeouts["server"]) > 300, "?wait holds an answer up to 300 s"


def test_seccomp_profile_is_docker_default_plus_namespaces():
    prof = json.loads((DOCKER / "seccomp.json").read_text())
    base = json.loads((DOCKER / "moby-default.json").read_text())
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO"

    def unconditional(p):
        return {n for e in p["syscalls"] if e["action"] == "SCMP_ACT_ALLOW" and not e.get("args")
                and not e.get("includes") and not e.get("excludes") for n in e["names"]}

    added = unconditional(prof) - unconditional(base)
    assert added == NAMESPACE_SYSCALLS, added
    # Nothing else widened: every other entry of Docker's profile is kept as is.
    dropped = [e for e in base["syscalls"] if e not in prof["syscalls"]]
    assert all(e["names"] in (["clone"], ["clone3"]) for e in dropped), dropped
    assert not any(e["names"] == ["clone3"] and e["action"] == "SCMP_ACT_ERRNO" for e in prof["syscalls"])
    # Generated, not hand-edited.
    before = (DOCKER / "seccomp.json").read_text()
    subprocess.run(["/usr/bin/python3", str(DOCKER / "gen_seccomp.py")], check=True)
    assert (DOCKER / "seccomp.json").read_text() == before
