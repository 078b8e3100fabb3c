"""Attacks specific to the `pool` backend, where sandboxes are forks of one warm Python
interpreter (the zygote) prepared ahead of demand: a job must not leave anything in the
interpreter state the next job starts from, and must not see, signal or reach the
zygote or the warm sandboxes waiting for other jobs. Runs only when `pool` is among
EXECUTORD_SECURITY_BACKENDS; conftest checks the service's health after each test."""

import os
import textwrap
import threading

import pytest

from conftest import POOL_UID_BASE, POOL_UID_END, sandbox_processes


def s(src):
    return textwrap.dedent(src).lstrip()


@pytest.fixture
def pool(target):
    if target.backend != "pool":
        pytest.skip("pool-only attacks")
    return target


def ok(target, script, **fields):
    job = target.run(script, **fields)
    assert job["status"] == "succeeded", job
    return job["result"]


def zygotes():
    """Host pids of the pool's zygotes (root of each zygote's 258-id block)."""
    return sorted(pid for pid, uid, cmd in sandbox_processes(POOL_UID_BASE, POOL_UID_END)
                  if (uid - POOL_UID_BASE) % 258 == 0)


POLLUTER = s("""
    import builtins, json, sys, os, random, importlib, gc
    def main():
        json.dumps = lambda *a, **k: 'patched'
        json.loads = lambda *a, **k: 'patched'
        builtins.len = lambda x: -1
        builtins.open = lambda *a, **k: 'patched'
        builtins.PLANTED = 'yes'
        sys.modules['base64'] = 'planted'
        sys.modules['evil'] = type(sys)('evil')
        sys.path.insert(0, '/tmp')
        sys.meta_path.insert(0, object())
        os.environ['PLANTED'] = '1'
        gc.freeze()
        import atexit; atexit.register(lambda: os.write(1, b'atexit ran'))
        return 'polluted'
    """)

OBSERVER = s("""
    import builtins, json, sys, os, base64
    def main():
        return {'dumps': json.dumps([1]), 'len': len([1, 2]), 'open': builtins.open is open and open.__module__ == 'io',
                'planted': hasattr(builtins, 'PLANTED'), 'base64': type(sys.modules['base64']).__name__,
                'evil': 'evil' in sys.modules, 'path': '/tmp' in sys.path,
                'meta_path': all(hasattr(f, 'find_spec') for f in sys.meta_path),
                'env': 'PLANTED' in os.environ}
    """)


def test_patched_modules_builtins_and_sys_modules_do_not_reach_the_next_job(pool):
    for _ in range(3):
        job = pool.run(POLLUTER)
        assert job["status"] == "succeeded", job
        assert "atexit ran" not in pool.logs(job["id"])["stdout"]
        seen = ok(pool, OBSERVER)
        assert seen == {"dumps": "[1]", "len": 2, "open": True, "planted": False, "base64": "module",
                        "evil": False, "path": False, "meta_path": True, "env": False}, seen


def test_concurrent_polluters_and_observers(pool):
    results, lock = [], threading.Lock()

    def run(script):
        j = pool.run(script)
        with lock:
            results.append((script is OBSERVER, j))

    threads = [threading.Thread(target=run, args=(POLLUTER if i % 2 else OBSERVER,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for is_observer, j in results:
        assert j["status"] == "succeeded", j
        if is_observer:
            assert j["result"]["dumps"] == "[1]" and j["result"]["len"] == 2 and not j["result"]["planted"], j


def test_random_state_is_not_shared_between_jobs(pool):
    script = s("""
        import random, os
        def main():
            return [random.random(), os.urandom(8).hex()]
        """)
    values = [tuple(ok(pool, script)) for _ in range(4)]
    assert len({v[0] for v in values}) == 4, values
    assert len({v[1] for v in values}) == 4, values


def test_warm_sandboxes_and_zygote_are_invisible_and_unsignalable(pool):
    before = zygotes()
    assert before, "no zygote found under the pool's uid range"
    attack = ok(pool, s("""
        import os, signal, socket
        def main():
            seen = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            signalable = []
            for pid in range(1, 32768):
                if pid == os.getpid():
                    continue
                try:
                    os.kill(pid, 0)
                    signalable.append(pid)
                except OSError:
                    pass
            # Abstract unix sockets and the zygote's control socket live in other
            # namespaces; /proc/net/unix of this one is empty of them.
            unix = open('/proc/net/unix').read().splitlines()[1:] if os.path.exists('/proc/net/unix') else []
            fds = sorted(int(f) for f in os.listdir('/proc/self/fd'))
            return {'seen': seen, 'signalable': signalable, 'unix': unix, 'fds': fds,
                    'ppid': os.getppid(), 'pgid_is_self': os.getpgid(0) == os.getpid()}
        """))
    assert attack["seen"] == [2], attack
    assert attack["signalable"] == [], attack
    assert attack["unix"] == [], attack
    # stdin/stdout/stderr, and the fds the listing itself opened: nothing of the zygote.
    assert attack["fds"][:3] == [0, 1, 2] and len(attack["fds"]) <= 5, attack
    assert attack["ppid"] == 1 and attack["pgid_is_self"], attack
    # The zygote and the warm sandboxes survived: the next jobs run warm and succeed.
    assert zygotes() == before
    for _ in range(4):
        assert ok(pool, "def main():\n    return 1\n") == 1


def test_kill_minus_one_in_one_job_spares_jobs_running_beside_it(pool):
    victim = pool.submit(s("""
        import time
        def main():
            time.sleep(2)
            return 'alive'
        """))
    pool.client.wait_status(victim["id"], {"running"}, timeout=20)
    ok(pool, s("""
        import os, signal
        def main():
            for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):
                try:
                    os.kill(-1, sig)
                except OSError:
                    pass
            return 'tried'
        """))
    done = pool.client.wait_final(victim["id"], timeout=30)
    assert done["status"] == "succeeded" and done["result"] == "alive", done


def test_job_cannot_reach_the_zygote_through_inherited_descriptors_or_proc(pool):
    result = ok(pool, s("""
        import os
        def main():
            found = []
            for pid in os.listdir('/proc'):
                if not pid.isdigit():
                    continue
                for name in ('cmdline', 'environ', 'mem', 'fd'):
                    try:
                        p = '/proc/%s/%s' % (pid, name)
                        (os.listdir(p) if name == 'fd' else open(p, 'rb').read(16))
                        if pid not in ('self', str(os.getpid())):
                            found.append(p)
                    except OSError:
                        pass
            # fd 3 (spec) and 4 (result) are the runner's; nothing else above 2 may be open
            # once the script runs, in particular no socket to the zygote or the service.
            extra = []
            for fd in range(3, 1024):
                try:
                    os.fstat(fd)
                    extra.append(fd)
                except OSError:
                    pass
            return {'found': found, 'extra': [fd for fd in extra if fd not in (3, 4)]}
        """))
    assert result == {"found": [], "extra": []}, result
