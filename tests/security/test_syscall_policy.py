"""The system-call allow-list seen from a job, on every sandboxing backend: a broad
standard-library workload (and the common packages installed on the host) still works,
a call off the list answers ENOSYS, a denied one EPERM. conftest checks the service's
health after each test."""

import platform
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from executord_client import PYTHON


def s(src):
    return textwrap.dedent(src).lstrip()


def ok(target, script, **fields):
    job = target.run(script, timeout=180, timeout_seconds=120, **fields)
    assert job["status"] == "succeeded", job
    return job["result"]


def installed_packages():
    """Packages jobs commonly import that the service's interpreter happens to have (none
    is a dependency of executord): the sandbox sees the host's /usr, so they must work."""
    probe = ("import importlib.util\n"
             "for m in ('cryptography', 'requests', 'yaml', 'pydantic', 'numpy', 'pandas'):\n"
             "    if importlib.util.find_spec(m): print(m)\n")
    r = subprocess.run([PYTHON, "-I", "-c", probe], capture_output=True, text=True, check=True)
    return r.stdout.split()


def self_signed_cert():
    """(cert PEM, key PEM) for "localhost", or None without the openssl command."""
    openssl = shutil.which("openssl")
    if not openssl:
        return None
    with tempfile.TemporaryDirectory() as d:
        cert, key = Path(d) / "cert.pem", Path(d) / "key.pem"
        subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
        return cert.read_text(), key.read_text()


# Each check runs on its own and reports "ok" or what went wrong, so one failure names
# the part of the standard library the filter broke instead of hiding the rest.
WORKLOAD = s('''
    import asyncio, concurrent.futures, ctypes, faulthandler, hashlib, math, mmap, multiprocessing
    import os, resource, select, selectors, shutil, signal, socket, sqlite3, ssl, subprocess
    import sys, tempfile, threading, time, traceback, zipfile

    def check_subprocess():
        r = subprocess.run(['/usr/bin/python3', '-c', 'print(6 * 7)'], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout == '42\\n', r
        assert subprocess.run(['/bin/sh', '-c', 'true']).returncode == 0
        assert subprocess.run(['/bin/sh', '-c', 'exit 3']).returncode == 3
        p = subprocess.Popen(['/bin/sh', '-c', 'cat'], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert p.communicate(b'through a pipe')[0] == b'through a pipe'
        pid = os.posix_spawn('/bin/sh', ['sh', '-c', 'exit 5'], {})
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 5
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7
        fd = os.pidfd_open(os.getpid())
        os.close(fd)

    def check_threads():
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            assert list(ex.map(lambda x: x * x, range(20))) == [x * x for x in range(20)]
        ev, lock, cond = threading.Event(), threading.Lock(), threading.Condition()
        assert not ev.wait(0.01)
        with lock, cond:
            assert not cond.wait(0.01)
        b = threading.Barrier(3)
        ts = [threading.Thread(target=b.wait) for _ in range(2)]
        [t.start() for t in ts]
        b.wait(timeout=10)
        [t.join() for t in ts]

    async def _echo(reader, writer):
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    async def _asyncio_main():
        server = await asyncio.start_server(_echo, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
        writer.write(b'ping')
        await writer.drain()
        assert await reader.read(100) == b'ping'
        writer.close()
        server.close()
        await server.wait_closed()
        proc = await asyncio.create_subprocess_exec('/bin/sh', '-c', 'echo hi', stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        assert out == b'hi\\n' and proc.returncode == 0
        assert await asyncio.to_thread(lambda: 5) == 5
        await asyncio.wait_for(asyncio.sleep(0.01), timeout=5)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR2, fut.set_result, 'signalled')
        os.kill(os.getpid(), signal.SIGUSR2)
        assert await asyncio.wait_for(fut, 5) == 'signalled'
        loop.remove_signal_handler(signal.SIGUSR2)
        r, w = socket.socketpair()
        got = loop.create_future()
        loop.add_reader(r.fileno(), lambda: got.set_result(r.recv(10)))
        w.send(b'ready')
        assert await asyncio.wait_for(got, 5) == b'ready'
        loop.remove_reader(r.fileno())
        r.close(); w.close()

    def check_asyncio():
        asyncio.run(_asyncio_main())

    def check_sockets():
        srv = socket.create_server(('127.0.0.1', 0))
        c = socket.create_connection(srv.getsockname(), timeout=5)
        a, _ = srv.accept()
        c.sendall(b'tcp'); assert a.recv(3) == b'tcp'
        a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert c.getpeername() == srv.getsockname()
        a.shutdown(socket.SHUT_RDWR)
        for x in (a, c, srv):
            x.close()
        if socket.has_ipv6:
            try:
                s6 = socket.create_server(('::1', 0), family=socket.AF_INET6)
            except OSError as e:  # no IPv6 or no ::1 here: not the filter's doing
                assert e.errno in (97, 99), e
            else:
                s6.close()
        u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u1.bind(('127.0.0.1', 0))
        u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u2.sendto(b'udp', u1.getsockname()); assert u1.recvfrom(3)[0] == b'udp'
        u1.close(); u2.close()
        path = os.path.join(tempfile.mkdtemp(), 'sock')
        us = socket.socket(socket.AF_UNIX); us.bind(path); us.listen()
        uc = socket.socket(socket.AF_UNIX); uc.connect(path)
        ua, _ = us.accept(); uc.sendall(b'unix'); assert ua.recv(4) == b'unix'
        r, w = os.pipe()
        socket.send_fds(uc, [b'fd'], [w])
        msg, fds, _, _ = socket.recv_fds(ua, 2, 1)
        assert msg == b'fd' and len(fds) == 1
        for fd in fds + [r, w]:
            os.close(fd)
        for x in (ua, uc, us):
            x.close()
        x, y = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        x.sendmsg([b'dgram']); assert y.recvmsg(10)[0] == b'dgram'
        x.close(); y.close()
        nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # what if_nameindex uses
        nl.close()
        assert 'lo' in [n for _, n in socket.if_nameindex()]
        infos = socket.getaddrinfo('localhost', 80, type=socket.SOCK_STREAM)
        assert any(i[4][0] in ('127.0.0.1', '::1') for i in infos), infos
        assert socket.gethostname() == 'sandbox'

    def check_ssl(cert, key):
        ctx = ssl.create_default_context()
        paths = ssl.get_default_verify_paths()
        ctx.load_verify_locations(cafile=paths.cafile)  # the sandbox's generated CA bundle
        assert ctx.cert_store_stats()['x509_ca'] > 0
        if not cert:
            return 'ok (no openssl command on the host: no handshake)'
        d = tempfile.mkdtemp()
        with open(os.path.join(d, 'c.pem'), 'w') as f: f.write(cert)
        with open(os.path.join(d, 'k.pem'), 'w') as f: f.write(key)
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(os.path.join(d, 'c.pem'), os.path.join(d, 'k.pem'))
        cctx = ssl.create_default_context(cafile=os.path.join(d, 'c.pem'))
        srv = socket.create_server(('127.0.0.1', 0))
        result = {}
        def serve():
            conn, _ = srv.accept()
            with sctx.wrap_socket(conn, server_side=True) as t:
                t.sendall(t.recv(100).upper())
        th = threading.Thread(target=serve); th.start()
        with socket.create_connection(srv.getsockname(), timeout=10) as raw:
            with cctx.wrap_socket(raw, server_hostname='localhost') as t:
                t.sendall(b'tls'); result['echo'] = t.recv(100); result['version'] = t.version()
        th.join(10); srv.close()
        assert result['echo'] == b'TLS' and result['version'].startswith('TLS'), result
        # the same handshake in memory, no socket at all
        cin, cout, sin, sout = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
        c = cctx.wrap_bio(cin, cout, server_hostname='localhost'); s = sctx.wrap_bio(sin, sout, server_side=True)
        for _ in range(10):
            for obj in (c, s):
                try:
                    obj.do_handshake()
                except ssl.SSLWantReadError:
                    pass
            sin.write(cout.read()); cin.write(sout.read())
        assert c.version() and s.version()

    def check_sqlite3():
        for where in (':memory:', os.path.join(tempfile.mkdtemp(), 'db.sqlite')):
            db = sqlite3.connect(where)
            if where != ':memory:':
                assert db.execute('pragma journal_mode=wal').fetchone()[0] == 'wal'  # mmaps a -shm file
            db.execute('create table t(x integer primary key, y text)')
            db.executemany('insert into t(y) values (?)', [(str(i),) for i in range(1000)])
            db.commit()
            assert db.execute('select count(*) from t').fetchone() == (1000,)
            db.close()

    def check_multiprocessing():
        with multiprocessing.Pool(2) as p:
            assert p.map(math.factorial, range(8)) == [math.factorial(i) for i in range(8)]
        q = multiprocessing.Queue()
        pr = multiprocessing.Process(target=q.put, args=(42,))
        pr.start(); assert q.get(timeout=20) == 42; pr.join(20)
        assert pr.exitcode == 0
        v, lk = multiprocessing.Value('i', 0), multiprocessing.Lock()  # POSIX semaphores in /dev/shm
        with lk:
            v.value += 1
        with concurrent.futures.ProcessPoolExecutor(2) as ex:
            assert list(ex.map(abs, [-1, -2])) == [1, 2]

    def check_files():
        d = tempfile.mkdtemp()
        with tempfile.NamedTemporaryFile(dir=d, delete=False) as f:
            f.write(b'x' * 10000)
        fd, p = tempfile.mkstemp(); os.close(fd); os.unlink(p)
        with tempfile.TemporaryDirectory() as td:
            shutil.copy(f.name, os.path.join(td, 'copy'))
            shutil.copy2(f.name, os.path.join(td, 'copy2'))
            shutil.copytree(d, os.path.join(td, 'tree'))
            shutil.move(os.path.join(td, 'copy'), os.path.join(td, 'moved'))
            os.symlink('moved', os.path.join(td, 'link')); os.link(os.path.join(td, 'moved'), os.path.join(td, 'hard'))
            assert os.readlink(os.path.join(td, 'link')) == 'moved'
            os.chmod(os.path.join(td, 'moved'), 0o600); os.utime(os.path.join(td, 'moved'), (1, 1))
            assert os.stat(os.path.join(td, 'hard')).st_size == 10000
            assert sorted(os.listdir(td)) == ['copy2', 'hard', 'link', 'moved', 'tree']
            os.truncate(os.path.join(td, 'moved'), 10)
            shutil.rmtree(os.path.join(td, 'tree'))
            assert shutil.disk_usage(td).total > 0 and os.statvfs(td).f_bsize > 0
        src, dst = os.open(f.name, os.O_RDONLY), os.open(os.path.join(d, 'dst'), os.O_WRONLY | os.O_CREAT)
        os.sendfile(dst, src, 0, 100); os.copy_file_range(src, dst, 100)
        os.close(src); os.close(dst)
        shutil.rmtree(d)
        zp = os.path.join(tempfile.mkdtemp(), 'a.zip')
        with zipfile.ZipFile(zp, 'w', zipfile.ZIP_DEFLATED) as z:
            z.writestr('a.txt', 'hello ' * 1000)
        with zipfile.ZipFile(zp) as z:
            assert z.read('a.txt') == b'hello ' * 1000
        fd = os.memfd_create('m'); os.write(fd, b'memfd'); os.close(fd)
        os.close(os.eventfd(0))

    def check_mmap():
        m = mmap.mmap(-1, 1 << 20)
        m[:5] = b'hello'; assert m[:5] == b'hello'; m.close()
        p = os.path.join(tempfile.mkdtemp(), 'f')
        with open(p, 'wb') as f:
            f.write(b'\\0' * 8192)
        with open(p, 'r+b') as f:
            m = mmap.mmap(f.fileno(), 0)
            m[100:104] = b'data'; m.flush(); m.madvise(mmap.MADV_WILLNEED)
            m.close()
        with open(p, 'rb') as f:
            assert f.read()[100:104] == b'data'

    def check_select():
        r, w = os.pipe()
        os.write(w, b'x')
        assert select.select([r], [], [], 1)[0] == [r]
        p = select.poll(); p.register(r, select.POLLIN); assert p.poll(1000)
        e = select.epoll(); e.register(r, select.EPOLLIN); assert e.poll(1); e.close()
        with selectors.DefaultSelector() as sel:
            sel.register(r, selectors.EVENT_READ); assert sel.select(1)
        os.close(r); os.close(w)

    def check_hashlib():
        for name in ('sha256', 'sha1', 'md5', 'sha3_256', 'blake2b'):
            hashlib.new(name, b'abc').hexdigest()
        hashlib.pbkdf2_hmac('sha256', b'pw', b'salt', 1000)
        hashlib.scrypt(b'pw', salt=b'salt', n=16, r=8, p=1)
        assert len(os.urandom(32)) == 32 and len(os.getrandom(16)) == 16

    def check_ctypes():
        libc = ctypes.CDLL('libc.so.6', use_errno=True)
        assert libc.getpid() == os.getpid()
        # a Python callback called from C: libffi's executable trampolines
        arr = (ctypes.c_int * 5)(5, 1, 4, 2, 3)
        cmp = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))(
            lambda a, b: a[0] - b[0])
        libc.qsort(arr, 5, ctypes.sizeof(ctypes.c_int), cmp)
        assert list(arr) == [1, 2, 3, 4, 5]

    def check_process_info():
        assert os.sched_getaffinity(0)
        os.sched_setaffinity(0, os.sched_getaffinity(0))
        os.sched_yield()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        resource.getrusage(resource.RUSAGE_SELF); resource.getrusage(resource.RUSAGE_CHILDREN)
        os.nice(1); os.getpriority(os.PRIO_PROCESS, 0)
        assert os.uname().sysname == 'Linux' and os.getuid() == 1000
        os.getppid(); os.getpgrp(); os.getsid(0); os.getgroups(); os.getresuid(); os.times()
        os.setuid(os.getuid())  # to an id it already has: allowed, and no change
        import platform, getpass, pwd, locale, uuid
        platform.platform(); getpass.getuser(); pwd.getpwuid(os.getuid()); locale.getpreferredencoding()
        uuid.uuid4(); uuid.uuid1()

    def check_time():
        for clk in (time.CLOCK_REALTIME, time.CLOCK_MONOTONIC, time.CLOCK_PROCESS_CPUTIME_ID,
                    time.CLOCK_THREAD_CPUTIME_ID, time.CLOCK_BOOTTIME):
            time.clock_gettime(clk); time.clock_getres(clk)
        time.time(); time.monotonic(); time.perf_counter(); time.process_time(); time.thread_time()
        t0 = time.monotonic(); time.sleep(0.02); assert time.monotonic() - t0 >= 0.015
        import datetime, zoneinfo
        datetime.datetime.now().astimezone(); zoneinfo.ZoneInfo('UTC')

    def check_signals():
        got = []
        old = signal.signal(signal.SIGUSR1, lambda n, f: got.append(n))
        os.kill(os.getpid(), signal.SIGUSR1)
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        signal.signal(signal.SIGUSR1, old)
        assert got == [signal.SIGUSR1, signal.SIGUSR1], got
        signal.signal(signal.SIGALRM, lambda n, f: got.append('alarm'))
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        time.sleep(0.5)
        assert 'alarm' in got, got
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
        os.kill(os.getpid(), signal.SIGUSR2)
        assert signal.sigtimedwait([signal.SIGUSR2], 1).si_signo == signal.SIGUSR2
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR2])
        was = faulthandler.is_enabled()
        faulthandler.enable()  # its alternate signal stack
        if not was:
            faulthandler.disable()

    def check_optional(names):
        out = {}
        for name in names:
            try:
                m = __import__(name)
                if name == 'cryptography':
                    from cryptography.fernet import Fernet
                    from cryptography.hazmat.primitives.asymmetric import ec
                    f = Fernet(Fernet.generate_key()); assert f.decrypt(f.encrypt(b'x')) == b'x'
                    ec.generate_private_key(ec.SECP256R1()).sign(b'data', ec.ECDSA(__import__(
                        'cryptography.hazmat.primitives.hashes', fromlist=['SHA256']).SHA256()))
                elif name == 'requests':
                    sess = m.Session()
                    req = sess.prepare_request(m.Request('GET', 'http://localhost/', params={'a': 1}))
                    assert req.url == 'http://localhost/?a=1'
                elif name == 'yaml':
                    assert m.safe_load('a: [1, 2]') == {'a': [1, 2]}
                elif name == 'numpy':
                    assert int(m.arange(10).sum()) == 45
                elif name == 'pandas':
                    assert int(m.DataFrame({'a': [1, 2]})['a'].sum()) == 3
                out[name] = 'ok'
            except BaseException:
                out[name] = traceback.format_exc(limit=3)
        return out

    def main(cert=None, key=None, optional=()):
        results = {}
        checks = [check_subprocess, check_threads, check_asyncio, check_sockets, check_sqlite3,
                  check_multiprocessing, check_files, check_mmap, check_select, check_hashlib,
                  check_ctypes, check_process_info, check_time, check_signals]
        for fn in checks:
            try:
                fn()
                results[fn.__name__] = 'ok'
            except BaseException:
                results[fn.__name__] = traceback.format_exc(limit=4)
        try:
            results['check_ssl'] = check_ssl(cert, key) or 'ok'
        except BaseException:
            results['check_ssl'] = traceback.format_exc(limit=4)
        results.update(check_optional(optional))
        status = open('/proc/self/status').read()
        results['seccomp'] = [l.split(':')[1].strip() for l in status.splitlines()
                              if l.startswith(('Seccomp:', 'Seccomp_filters:'))]
        return results
    ''')


def assert_all_ok(r):
    bad = {k: v for k, v in r.items() if k != "seccomp" and not str(v).startswith("ok")}
    assert not bad, "\n\n".join(f"{k}:\n{v}" for k, v in bad.items())


def test_standard_library_workload_runs(target):
    pem = self_signed_cert()
    optional = installed_packages()
    r = ok(target, WORKLOAD, inputs={"cert": pem and pem[0], "key": pem and pem[1], "optional": optional})
    assert_all_ok(r)
    assert set(optional) <= set(r), r
    # Filter mode, and exactly one filter: the pool's warm sandboxes load the very program
    # the ephemeral path does, nothing stacked on top.
    assert r["seccomp"] == ["2", "1"], r["seccomp"]


# With allow_network the job has its own namespace behind the user-space stack: only its
# loopback is used here, no name is resolved, no packet leaves the machine.
NETWORK_WORKLOAD = s('''
    import socket, threading
    def main():
        out = {}
        srv = socket.create_server(('127.0.0.1', 0))
        c = socket.create_connection(srv.getsockname(), timeout=5)
        a, _ = srv.accept(); c.sendall(b'tcp'); out['tcp'] = a.recv(3).decode()
        for x in (a, c, srv):
            x.close()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 0))
        u.sendto(b'udp', u.getsockname()); out['udp'] = u.recv(3).decode(); u.close()
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s6.close()
        out['interfaces'] = len(socket.if_nameindex()) > 0
        return out
    ''')


def test_sockets_with_network_allowed(target):
    r = ok(target, NETWORK_WORKLOAD, allow_network=True)
    assert r == {"tcp": "tcp", "udp": "udp", "interfaces": True}, r


SYSCALLS = s('''
    import ctypes, errno, os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    def sc(nr, *args):
        res = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
        if res == 0 and nr == 56:
            os._exit(0)  # a clone that wrongly succeeded: the child leaves at once
        return 'ok' if res != -1 else errno.errorcode.get(ctypes.get_errno(), '?')
    def main():
        return {
            # off the list
            'nr 467 (open_tree_attr)': sc(467, -1, 0, 0, 0, 0),
            'nr 1000': sc(1000),
            'nr 4095': sc(4095),
            'clone3': sc(435, 0, 0),
            'sethostname': sc(170, 0, 7),
            'modify_ldt': sc(154, 0, 0, 0),
            'get_mempolicy': sc(239, 0, 0, 0, 0, 0),
            'socket family 64': sc(41, 64, 1, 0),
            # denied
            'ptrace': sc(101, 0, 0, 0, 0),           # PTRACE_TRACEME
            'mount': sc(165, 0, 0, 0, 0, 0),
            'unshare': sc(272, 0x10000000),          # CLONE_NEWUSER
            'bpf': sc(321, 0, 0, 0),
            'clone NEWUSER': sc(56, 0x10000000 | 17, 0, 0, 0, 0),
            'socket AF_VSOCK high bits': sc(41, (1 << 32) | 40, 1, 0),
            'personality ADDR_NO_RANDOMIZE': sc(135, 0x0040000),
            # allowed, with arguments checked
            'personality query': sc(135, 0xffffffff),
            'socket AF_UNIX': sc(41, 1, 1, 0),
        }
    ''')


def test_unlisted_calls_answer_enosys_and_denied_ones_eperm(target):
    if platform.machine() != "x86_64":
        pytest.skip("system call numbers are x86_64's")
    r = ok(target, SYSCALLS)
    expected = {k: "ENOSYS" for k in ("nr 467 (open_tree_attr)", "nr 1000", "nr 4095", "clone3", "sethostname",
                                       "modify_ldt", "get_mempolicy", "socket family 64")}
    expected.update({k: "EPERM" for k in ("ptrace", "mount", "unshare", "bpf", "clone NEWUSER",
                                          "socket AF_VSOCK high bits", "personality ADDR_NO_RANDOMIZE")})
    expected.update({"personality query": "ok", "socket AF_UNIX": "ok"})
    assert r == expected, r
