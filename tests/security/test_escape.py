"""Attacks on confidentiality and integrity: reading the host and executord, writing where
nothing may be written, reaching the network, escaping through the kernel, and jobs
interfering with each other. conftest checks the service's health after every test."""

import os
import stat
import textwrap
import threading

from executord_client import CANARY_NAME, CANARY_VALUE


def s(src):
    return textwrap.dedent(src).lstrip()


def ok(target, script, **fields):
    job = target.run(script, **fields)
    assert job["status"] == "succeeded", job
    return job["result"]


def test_host_secrets_are_not_readable(target):
    db = str(target.server.data_dir / "executord.db")
    r = ok(target, s(f"""
        import os, glob
        def tryread(p):
            try:
                with open(p, 'rb') as f:
                    return f.read(64).hex()
            except OSError as e:
                return type(e).__name__
        def main():
            return {{
                'shadow': tryread('/etc/shadow'),
                'db': tryread({db!r}),
                'data_dir': os.path.exists({str(target.server.data_dir)!r}),
                'root_home': os.path.exists('/root'),
                'etc': sorted(os.listdir('/etc')),
                'hostname_file': open('/etc/hostname').read().strip(),
            }}
        """))
    assert r["shadow"] == "FileNotFoundError", r
    assert r["db"] == "FileNotFoundError", r
    assert r["data_dir"] is False and r["root_home"] is False, r
    assert "shadow" not in r["etc"] and "sudoers" not in r["etc"], r
    assert r["hostname_file"] == "sandbox"


def test_service_environment_is_not_reachable(target):
    r = ok(target, s(f"""
        import os
        def main():
            hits = []
            if {CANARY_NAME!r} in os.environ:
                hits.append('environ')
            for pid in os.listdir('/proc'):
                if not pid.isdigit() and pid not in ('self', 'thread-self'):
                    continue
                for name in ('environ', 'cmdline', 'mem', 'maps'):
                    try:
                        with open(f'/proc/{{pid}}/{{name}}', 'rb') as f:
                            if {CANARY_VALUE.encode()!r} in f.read(1 << 20):
                                hits.append(f'/proc/{{pid}}/{{name}}')
                    except OSError:
                        pass
            return {{'hits': hits, 'pids': sorted(p for p in os.listdir('/proc') if p.isdigit())}}
        """))
    assert r["hits"] == [], r
    assert "1" not in r["pids"], r  # the sandbox's init (a copy of executord) is invisible


def test_read_only_paths_refuse_writes(target):
    r = ok(target, s("""
        import os, errno
        def main():
            bad = {}
            for top in ['/', '/usr', '/usr/bin', '/usr/lib', '/bin', '/sbin', '/lib', '/etc', '/etc/ssl/certs',
                        '/dev', '/proc', '/proc/self', '/proc/sys']:
                p = os.path.join(top, 'pwned')
                try:
                    with open(p, 'w') as f:
                        f.write('x')
                    bad[p] = 'written'
                except OSError as e:
                    if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT):
                        bad[p] = errno.errorcode.get(e.errno)
            for p in ['/etc/passwd', '/usr/bin/python3', '/etc/hosts']:
                try:
                    with open(p, 'a') as f:
                        f.write('x')
                    bad[p] = 'appended'
                except OSError:
                    pass
                try:
                    os.chmod(p, 0o777)
                    bad[p + ' chmod'] = 'changed'
                except OSError:
                    pass
            return bad
        """))
    assert r == {}, r


def test_files_do_not_carry_over_between_jobs(target):
    ok(target, s("""
        def main():
            for p in ('/tmp/left', '/dev/shm/left', '/work/left'):
                open(p, 'w').write('secret of job one')
        """))
    r = ok(target, s("""
        import os
        def main():
            return [p for p in ('/tmp/left', '/dev/shm/left', '/work/left') if os.path.exists(p)]
        """))
    assert r == [], r


def test_planted_symlinks_and_fifos_are_harmless(target):
    victim = target.server.data_dir.parent / "victim.txt"
    victim.write_text("untouched")
    ok(target, s(f"""
        import os
        def main():
            for d in ('/work', '/tmp', '/dev/shm'):
                os.symlink({str(victim)!r}, d + '/link-to-host')
                os.symlink('/', d + '/link-to-root')
                os.symlink('/etc/passwd', d + '/result.json')
                os.mkfifo(d + '/fifo')
                os.mkfifo(d + '/stdout')
                os.makedirs(d + '/deep/a/b/c', exist_ok=True)
                os.chmod(d + '/deep/a', 0)
        """))
    assert victim.read_text() == "untouched"
    # nothing of the job exists on the host side (conftest also checks the work folder)
    assert not any(p.name == "fifo" for p in target.server.data_dir.rglob("fifo"))


def test_executord_port_is_unreachable_without_network(target):
    r = ok(target, s("""
        import socket, errno
        def main(port):
            out = {}
            for host in ('127.0.0.1', '::1', 'localhost'):
                try:
                    socket.create_connection((host, port), timeout=2).close()
                    out[host] = 'connected'
                except OSError as e:
                    out[host] = errno.errorcode.get(e.errno, type(e).__name__)
            out['interfaces'] = sorted(n for _, n in socket.if_nameindex())
            return out
        """), inputs={"port": target.server.port})
    assert "connected" not in r.values(), r
    assert r["interfaces"] == ["lo"], r


def test_dangerous_syscalls_are_refused(target):
    r = ok(target, s("""
        import ctypes, errno, socket
        libc = ctypes.CDLL(None, use_errno=True)
        def sc(nr, *args):
            res = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
            return 'ok' if res != -1 else errno.errorcode.get(ctypes.get_errno(), '?')
        def main():
            r = {
                'ptrace': sc(101, 16, 1, 0, 0),            # PTRACE_ATTACH pid 1
                'mount': sc(165, 0, 0, 0, 0, 0),
                'unshare': sc(272, 0x10000000),          # CLONE_NEWUSER
                'keyctl': sc(250, 0, 0, 0, 0, 0),
                'bpf': sc(321, 0, 0, 0),
                'io_uring_setup': sc(425, 8, 0),
                'userfaultfd': sc(323, 0),
                'perf_event_open': sc(298, 0, 0, -1, -1, 0),
                'setns': sc(308, 0, 0),
                'chroot': sc(161, 0),
            }
            try:
                socket.socket(40, socket.SOCK_STREAM)    # AF_VSOCK
                r['vsock'] = 'ok'
            except OSError as e:
                r['vsock'] = errno.errorcode.get(e.errno)
            return r
        """))
    assert r == {k: "EPERM" for k in r}, r


def test_setuid_binaries_do_not_elevate(target):
    r = ok(target, s("""
        import os, subprocess
        def main():
            suid = []
            for d in ('/usr/bin', '/usr/sbin', '/usr/lib/openssh'):
                try:
                    for n in os.listdir(d):
                        p = os.path.join(d, n)
                        if os.path.isfile(p) and os.stat(p).st_mode & 0o4000:
                            suid.append(p)
                except OSError:
                    pass
            mount = subprocess.run(['/usr/bin/mount', '-t', 'tmpfs', 'x', '/tmp'], capture_output=True)
            status = open('/proc/self/status').read()
            return {
                'nosuid': bool(os.statvfs('/usr/bin').f_flag & os.ST_NOSUID),
                'nnp': 'NoNewPrivs:\\t1' in status,
                'mount_rc': mount.returncode,
                'euid_after': os.geteuid(),
                'found_suid': len(suid),
            }
        """))
    assert r["nosuid"] and r["nnp"], r
    assert r["mount_rc"] != 0, r
    assert r["euid_after"] == 1000


def test_kill_minus_one_and_concurrent_jobs_cannot_touch_each_other(target):
    # A victim job that runs a while and reports it was not disturbed.
    victim = target.submit(s("""
        import os, time
        def main():
            time.sleep(3)
            return os.getpid()
        """))
    target.client.wait_status(victim["id"], {"running"}, timeout=20)
    attacker = ok(target, s("""
        import os, signal
        def main():
            seen = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
            killed = []
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            for pid in range(1, 4096):
                if pid == os.getpid():
                    continue
                try:
                    os.kill(pid, 0)
                    killed.append(pid)
                except OSError:
                    pass
            return {'seen': seen, 'signalable': killed}
        """))
    # It sees only itself (pid 2 in its own namespace) and can signal nothing else.
    assert attacker["seen"] == [2], attacker
    assert attacker["signalable"] == [], attacker
    done = target.client.wait_final(victim["id"], timeout=30)
    assert done["status"] == "succeeded", done


def test_concurrent_jobs_run_as_different_host_uids(target):
    results = []

    def one():
        results.append(target.run(s("""
            import time
            def main():
                time.sleep(1.5)
                return open('/proc/self/uid_map').read().split()
            """)))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    maps = [tuple(j["result"]) for j in results]
    assert all(j["status"] == "succeeded" for j in results), results
    assert len(set(maps)) == 3, maps  # no two concurrent jobs share a host identity
    for m in maps:
        assert m[3] == "1000" and int(m[4]) > 65535, m  # uid 1000 is no host system account


def test_network_job_cannot_reach_the_service(target):
    # allow_network gives the job a namespace of its own behind the user-space stack and
    # the egress policy: executord's port is reachable neither on the job's loopback nor
    # through the stack's gateway (10.0.2.2, the host's loopback unless disabled). Both
    # are refused inside the job's namespace: no packet leaves the machine.
    r = ok(target, s("""
        import errno, socket
        def main(port):
            out = {'interfaces': sorted(n for _, n in socket.if_nameindex())}
            for host in ('127.0.0.1', '10.0.2.2'):
                try:
                    socket.create_connection((host, port), timeout=2).close()
                    out[host] = 'connected'
                except OSError as e:
                    out[host] = errno.errorcode.get(e.errno, str(e))
            return out
        """), inputs={"port": target.server.port}, allow_network=True)
    assert r == {"interfaces": ["lo", "tap0"], "127.0.0.1": "ECONNREFUSED", "10.0.2.2": "EHOSTUNREACH"}, r


def test_job_files_are_not_world_readable_on_host(target):
    # No host path of the job exists at all; the work root holds only the mount point.
    work = target.server.data_dir / "work"
    if work.is_dir():
        for p in work.iterdir():
            st = p.lstat()
            assert p.name.startswith("."), p
            assert stat.S_ISDIR(st.st_mode) and os.listdir(p) == [], p
