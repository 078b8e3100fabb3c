"""Attacks on the machine's resources: each must end the job with the right status, leave
nothing running, and leave the service healthy (checked after every test by conftest)."""

import textwrap
import time


def s(src):
    return textwrap.dedent(src).lstrip()


def test_fork_bomb(target):
    with target.watch():
        job = target.run(s("""
        import os
        def main():
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
        """), timeout_seconds=3, limits={"max_processes": 32})
    assert job["status"] in ("timed_out", "failed"), job
    # the service still runs other jobs promptly
    ok = target.run("def main():\n    return 'alive'\n")
    assert ok["status"] == "succeeded" and ok["result"] == "alive", ok


def test_fork_bomb_hits_the_process_limit(target):
    with target.watch():
        job = target.run(s("""
        import subprocess
        def main():
            return len([subprocess.Popen(['sleep', '30']) for _ in range(100)])
        """), limits={"max_processes": 16})
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "ResourceLimitExceeded", job
    assert "max_processes" in job["error"]["message"]


def test_memory_bomb_twice_the_limit(target):
    with target.watch():
        job = target.run(s("""
        def main():
            chunks = []
            for _ in range(128):
                chunks.append(bytearray(1 << 20))
            return len(chunks)
        """), limits={"memory_mb": 64})
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "MemoryLimitExceeded", job
    assert "64 MB" in job["error"]["message"]
    peak = job["usage"].get("memory_peak_bytes")
    if peak is not None and peak >= 0:
        assert peak <= 65 << 20, job["usage"]


def _hide_in(path, target):
    return target.run(s(f"""
        import os
        def main():
            written = 0
            block = b'x' * (1 << 20)
            try:
                with open('{path}/hoard', 'wb') as f:
                    for _ in range(256):
                        f.write(block)
                        f.flush()
                        written += len(block)
            except OSError as e:
                return {{'written': written, 'error': e.errno}}
            return {{'written': written, 'error': None}}
        """), limits={"memory_mb": 64, "max_file_size_mb": 1024})


def test_memory_hidden_in_tmp(target):
    with target.watch():
        job = _hide_in("/tmp", target)
    # Either the tmpfs cap stops it (ENOSPC) or the memory cgroup does: never 256 MB.
    if job["status"] == "succeeded":
        assert job["result"]["error"] is not None and job["result"]["written"] <= 64 << 20, job
    else:
        assert job["error"]["type"] == "MemoryLimitExceeded", job


def test_memory_hidden_in_dev_shm(target):
    with target.watch():
        job = _hide_in("/dev/shm", target)
    if job["status"] == "succeeded":
        assert job["result"]["error"] is not None and job["result"]["written"] <= 64 << 20, job
    else:
        assert job["error"]["type"] == "MemoryLimitExceeded", job


def test_output_flood(target):
    with target.watch():
        job = target.run(s("""
        import sys
        def main():
            while True:
                print('flood ' * 100)
        """), limits={"max_output_bytes": 100000})
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "OutputLimitExceeded", job
    assert job["stdout_truncated"] is True
    assert job["stdout_bytes"] == 100000


def test_giant_line_without_newline(target):
    with target.watch():
        job = target.run(s("""
        import sys
        def main():
            sys.stdout.write('y' * (20 << 20))
            sys.stdout.flush()
        """), limits={"max_output_bytes": 65536})
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "OutputLimitExceeded", job
    assert job["stdout_bytes"] == 65536


def test_disk_fill(target):
    with target.watch():
        job = target.run(s("""
        import errno
        def main():
            n = 0
            try:
                for i in range(100000):
                    with open(f'/work/fill{i}', 'wb') as f:
                        f.write(b'z' * (1 << 20))
                    n += 1
            except OSError as e:
                return {'files': n, 'error': errno.errorcode.get(e.errno)}
            return {'files': n, 'error': None}
        """), limits={"memory_mb": 1024, "max_file_size_mb": 4})
    # The job's /work is a size-capped private tmpfs: the fill stops there.
    if job["status"] == "succeeded":
        assert job["result"]["error"] in ("ENOSPC", "EFBIG", "EDQUOT"), job
        assert job["result"]["files"] < 1024, job
    else:
        assert job["error"]["type"] in ("MemoryLimitExceeded", "ResourceLimitExceeded"), job


def test_inode_exhaustion(target):
    with target.watch():
        job = target.run(s("""
        import errno, os
        def main():
            n = 0
            for d in ('/tmp', '/work', '/dev/shm'):
                try:
                    for i in range(1000000):
                        os.mkdir(f'{d}/i{i}')
                        n += 1
                except OSError as e:
                    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
            return n
        """), timeout_seconds=60)
    assert job["status"] == "succeeded", job
    assert job["result"] < 200000, job
    # the next job gets a fresh filesystem
    nxt = target.run("import os\ndef main():\n    return len(os.listdir('/tmp'))\n")
    assert nxt["result"] == 0, nxt


def test_setsid_daemon_does_not_outlive_its_job(target):
    with target.watch():
        job = target.run(s("""
        import os, time
        def main():
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.closerange(0, 1024)
                    time.sleep(120)
                os._exit(0)
            time.sleep(0.2)
            return 'parent done'
        """))
    assert job["status"] == "succeeded", job
    # conftest checks right after: no process under a sandbox uid remains


def test_sigterm_ignored_and_sleep_past_timeout(target):
    t0 = time.monotonic()
    with target.watch():
        job = target.run(s("""
        import signal, time
        def main():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            time.sleep(600)
        """), timeout_seconds=1.5)
    assert job["status"] == "timed_out", job
    assert job["error"]["type"] == "SandboxTimeoutError"
    assert time.monotonic() - t0 < 15


def test_job_cannot_take_off_its_oom_protection(target):
    """Jobs are the kernel's first choice when the host runs out of memory (oom_score_adj
    1000); a job that lowered its own value, through /proc or a child, could make the OOM
    killer choose executord or another host process instead."""
    job = target.run(s("""
        import os, subprocess
        def main():
            tried = {}
            for path in ('/proc/self/oom_score_adj', f'/proc/{os.getpid()}/oom_score_adj',
                         '/proc/self/oom_adj'):
                try:
                    with open(path, 'w') as f:
                        f.write('0' if 'score' in path else '-17')
                    tried[path] = 'written'
                except OSError as e:
                    tried[path] = type(e).__name__
            child = subprocess.run(['sh', '-c', 'echo -1000 > /proc/self/oom_score_adj; '
                                    'cat /proc/self/oom_score_adj'], capture_output=True, text=True)
            return {'tried': tried, 'now': open('/proc/self/oom_score_adj').read().strip(),
                    'child': child.stdout.strip()}
        """))
    assert job["status"] == "succeeded", job
    r = job["result"]
    assert r["now"] == "1000" and r["child"] == "1000", r
    assert "written" not in r["tried"].values(), r
