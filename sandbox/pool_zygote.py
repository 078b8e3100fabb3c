# The pool backend's zygote (see sandbox/pool.h): executed inside the in-sandbox runner
# (sandbox/runner.py started with --zygote, whose globals it shares: _main, _exc_text,
# _PID, _JOB_HOOK) after the service sent it as the first message on fd 3. It imports
# what scripts commonly use, then forks one warm sandbox per request: own user/PID/
# mount/IPC/net/UTS/cgroup namespaces, fresh /tmp, /work, /dev/shm and /proc, no
# capabilities, no_new_privs, seccomp, waiting for its job's spec on fd 3.
# Embedded into the binary at build time (CMakeLists.txt, as pool_zygote_source).
import ctypes, fcntl, gc, os, resource, signal, socket, struct, sys

_PRELOAD = ("json", "re", "datetime", "collections", "dataclasses", "decimal", "enum", "uuid",
            "pathlib", "typing", "asyncio", "base64", "hashlib", "hmac", "secrets", "urllib.parse",
            "math", "random", "itertools", "functools", "string", "textwrap", "time", "copy", "io",
            "csv", "traceback", "linecache", "ast", "tokenize", "subprocess", "logging",
            "statistics", "fractions", "heapq", "bisect", "operator", "contextlib", "types",
            "zlib", "ipaddress", "shlex", "html", "inspect", "tempfile", "shutil", "pprint",
            "zoneinfo", "email.utils", "urllib.request")

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x02000000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 22, 47, 4
SECCOMP_MODE_FILTER = 2
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP, IFF_RUNNING = 0x8913, 0x8914, 0x1, 0x40
INSIDE_UID = 1000

_libc = None


class _SetupError(Exception):
    pass


def _check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise _SetupError("%s: %s" % (what, os.strerror(err)))


def _write_proc(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _mount(src, dst, fstype, flags, data):
    _check(_libc.mount(src.encode(), dst.encode(), fstype.encode(), ctypes.c_ulong(flags),
                       data.encode() if data is not None else None), "mount %s on %s" % (fstype, dst))


def _loopback_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh14x", b"lo", flags | IFF_UP | IFF_RUNNING))
    finally:
        s.close()


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _drop_privileges(bpf):
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == 22 and cap > 0:
                break
            _check(-1, "prctl(PR_CAPBSET_DROP)")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
    os.setresgid(INSIDE_UID, INSIDE_UID, INSIDE_UID)
    os.setresuid(INSIDE_UID, INSIDE_UID, INSIDE_UID)
    hdr = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(hdr), data), "capset")
    # The uid change made the process non-dumpable; the job may read its own /proc.
    _check(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
    try:
        os.setresuid(0, 0, 0)
    except OSError:
        pass
    else:
        raise _SetupError("setresuid(0) still succeeds after the drop")
    if os.getgroups():
        raise _SetupError("supplementary groups present")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _Fprog(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0), "prctl(PR_SET_SECCOMP)")


def _job_hook(spec):
    # The runner has set the job's environment already (as for a cold job).
    for res, soft, hard in spec.get("rlimits") or ():
        resource.setrlimit(res, (soft, hard))


def _job(fds, bpf, done):
    # pid 2 of the job's PID namespace: becomes the runner the cold path would exec.
    global _PID, _JOB_HOOK
    os.setsid()
    done = fcntl.fcntl(done, fcntl.F_DUPFD_CLOEXEC, 10)  # out of the way of 0-4
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    for i, fd in enumerate(fds[:4]):
        os.dup2(fd, i + 1)
    os.closerange(5, done)
    os.closerange(done + 1, 1 << 16)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _drop_privileges(bpf)
    os.write(done, b"S")  # set up: from here on only the job's spec is awaited
    os.close(done)
    os.chdir("/work")
    os.umask(0o022)
    _PID = os.getpid()
    _JOB_HOOK = _job_hook
    _main()


def _job_init(status, fds, bpf, sizes):
    # pid 1 of the job's PID namespace and root of its user namespace: a fresh /tmp,
    # /work, /dev/shm and /proc, loopback, then "ready" (with a pidfd of itself) to the
    # service; after its "go" (it has put us into the job's cgroup) the job process is
    # forked and, once it confirmed its privilege drop, reported set up; then reaped.
    tmp, shm, work, inodes = sizes
    nosd = MS_NOSUID | MS_NODEV
    _mount("tmpfs", "/tmp", "tmpfs", nosd, "size=%d,nr_inodes=%d,mode=1777" % (tmp, inodes))
    _mount("tmpfs", "/work", "tmpfs", nosd, "size=%d,nr_inodes=%d,mode=0700,uid=%d,gid=%d"
           % (work, inodes, INSIDE_UID, INSIDE_UID))
    _mount("tmpfs", "/dev/shm", "tmpfs", nosd | MS_NOEXEC, "size=%d,nr_inodes=%d,mode=1777" % (shm, inodes))
    # Read-only: the job cannot write its own /proc files, oom_score_adj among them.
    proc_flags = nosd | MS_NOEXEC | MS_RDONLY
    if _libc.mount(b"proc", b"/proc", b"proc", ctypes.c_ulong(proc_flags), b"hidepid=invisible,subset=pid") != 0:
        _mount("proc", "/proc", "proc", proc_flags, "hidepid=2")
    _loopback_up()
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
    pidfd = os.pidfd_open(os.getpid())
    socket.send_fds(status, [b"R"], [pidfd])
    os.close(pidfd)
    if status.recv(16) != b"G":
        os._exit(0)
    _check(_libc.unshare(CLONE_NEWCGROUP), "unshare(CLONE_NEWCGROUP)")
    done_r, done_w = os.pipe()
    job = os.fork()
    if job == 0:
        try:
            status.close()
            os.close(done_r)
            _job(fds, bpf, done_w)
        except BaseException as e:
            # Nothing of the script ran: no "S" reaches the service, which discards this
            # sandbox and counts a failure; the reason goes to the stderr we have.
            try:
                os.write(2, b"executord: pool: warm sandbox setup: %s\n" % _exc_text(e).encode())
            except BaseException:
                pass
        finally:
            os._exit(127)
    for fd in fds:
        os.close(fd)
    os.close(done_w)
    if os.read(done_r, 1) == b"S":
        status.send(b"S")
    os.close(done_r)
    st = None
    while True:
        try:
            pid, code = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == job:
            st = code
            break
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    status.send(b"X %d %d %d %d" % (st if st is not None else -1, int(ru.ru_utime * 1e6),
                                    int(ru.ru_stime * 1e6), ru.ru_maxrss))
    os._exit(0)


def _warm_child(bpf, msg, fds, mapped_r):
    # Cloned from the zygote straight into its own user/PID/mount/IPC/net/UTS namespaces
    # (pid 1 of the new PID namespace); its root and uid 1000 are host uids of its own
    # (the zygote writes the map, as the service does for ephemeral: an unprivileged
    # process could map only one id).
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # pid 1 must not take KeyboardInterrupt
    os.close(3)
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds]
    for fd in fds:
        os.close(fd)  # a copy left here would hold the pipes open past the job
    fds = moved
    status = socket.socket(fileno=fds[4])
    try:
        sizes = [int(x) for x in msg.split()[3:7]]
        if os.read(mapped_r, 1) != b"m":
            raise _SetupError("the zygote did not write the uid map")
        os.close(mapped_r)
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        _job_init(status, fds[:4], bpf, sizes)
    except BaseException as e:
        try:
            status.send(b"E " + (str(e) or type(e).__name__).encode("utf-8", "replace")[:400])
        except BaseException:
            pass
    os._exit(1)


# clone(2) without CLONE_VM behaves like fork() but can create the namespaces for the
# child itself: one copy of the interpreter per sandbox instead of two. PyDLL keeps the
# GIL across the call, so the child returns holding its copy of it.
_SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(os.uname().machine)


def _clone(flags):
    if _SYS_CLONE is None:
        raise OSError(38, "clone: unsupported architecture for the pool's zygote")
    pylibc = ctypes.PyDLL(None, use_errno=True)
    pylibc.syscall.restype = ctypes.c_long
    pid = pylibc.syscall(ctypes.c_long(_SYS_CLONE), ctypes.c_ulong(flags | signal.SIGCHLD), ctypes.c_long(0),
                         ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))
    if pid < 0:
        err = ctypes.get_errno()
        raise OSError(err, "clone: %s" % os.strerror(err))
    if pid == 0:
        # What os.fork() runs in the child that matters here (the zygote has a single
        # thread and holds no lock): a fresh random state per sandbox.
        import random
        random.seed()
    return pid


def _zygote_main():
    global _libc
    for name in _PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    _libc = ctypes.CDLL(None, use_errno=True)
    _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    _libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    ctl = socket.socket(fileno=3)
    bpf = ctl.recv(1 << 20)
    if not bpf or len(bpf) % 8:
        os._exit(1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the short-lived forks
    gc.collect()
    gc.freeze()  # keep the imported heap shared between forks (no refcount-only copies)
    ctl.send(b"Z")
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 256, 8)
        except InterruptedError:
            continue
        if not msg:
            os._exit(0)
        if len(fds) != 5 or not msg.startswith(b"F "):
            for fd in fds:
                os.close(fd)
            continue
        mapped_r, mapped_w = os.pipe()
        try:
            pid = _clone(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWPID)
        except OSError as e:
            try:
                socket.socket(fileno=os.dup(fds[4])).send(b"E " + str(e).encode()[:400])
            except OSError:
                pass
            pid = -1
        if pid == 0:
            try:
                os.close(mapped_w)
                _warm_child(bpf, msg, fds, mapped_r)
            finally:
                os._exit(1)
        for fd in fds + [mapped_r]:
            os.close(fd)
        try:
            if pid > 0:
                parts = msg.split()
                idmap = "0 %d 1\n%d %d 1\n" % (int(parts[1]), INSIDE_UID, int(parts[2]))
                _write_proc("/proc/%d/setgroups" % pid, "deny")
                _write_proc("/proc/%d/uid_map" % pid, idmap)
                _write_proc("/proc/%d/gid_map" % pid, idmap)
                os.write(mapped_w, b"m")
        except (OSError, ValueError, IndexError):
            pass  # the child reports "did not write the uid map" to the service
        finally:
            os.close(mapped_w)
