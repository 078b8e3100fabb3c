# The pool backend's zygote (see sandbox/pool.h): executed inside the in-sandbox runner
# (sandbox/runner.py started with --zygote, whose globals it shares: _main, _PID,
# _JOB_HOOK) after the service sent it as the first message on fd 3. It imports what
# scripts commonly use, then serves one warm sandbox per request. It decides nothing about
# isolation: every step (namespaces, uid maps, the filesystem, privileges, the system-call
# filter, loopback, rlimits, fds) is the C policy of sandbox/policy.c, run by the warm
# library (sandbox/warm.h) the service hands over as a sealed memfd on fd 5. A zygote
# that cannot load it never says "Z": the pool counts a failed start, no job runs.
# Embedded into the binary at build time (CMakeLists.txt, as pool_zygote_source).
import ctypes, gc, os, random, signal, socket

_PRELOAD = ("json", "re", "datetime", "collections", "dataclasses", "decimal", "enum", "uuid",
            "pathlib", "typing", "asyncio", "base64", "hashlib", "hmac", "secrets", "urllib.parse",
            "math", "random", "itertools", "functools", "string", "textwrap", "time", "copy", "io",
            "csv", "traceback", "linecache", "ast", "tokenize", "subprocess", "logging",
            "statistics", "fractions", "heapq", "bisect", "operator", "contextlib", "types",
            "zlib", "ipaddress", "shlex", "html", "inspect", "tempfile", "shutil", "pprint",
            "zoneinfo", "email.utils", "urllib.request")

_WARM_LIBRARY_FD = 5  # POOL_ZYGOTE_LIBRARY_FD in pool_zygote.h
_REQUEST_FDS = 5      # stdout, stderr, spec, result, status of one sandbox


def _load_warm_library(bpf):
    # PyDLL keeps the GIL across calls: exd_warm_spawn returns in a fork holding it.
    lib = ctypes.PyDLL("/proc/self/fd/%d" % _WARM_LIBRARY_FD, use_errno=True)
    lib.exd_warm_init.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.exd_warm_spawn.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    lib.exd_warm_spawn.restype = ctypes.c_long
    lib.exd_warm_rlimits.argtypes = [ctypes.POINTER(ctypes.c_longlong), ctypes.c_int]
    if lib.exd_warm_init(bpf, len(bpf)) != 0:
        raise OSError("exd_warm_init refused the system-call filter")
    return lib


def _run_job(lib):
    # The job process, set up by the library (pid 2 of its sandbox, uid 1000, filtered):
    # what os.fork() would redo in Python after a raw clone, then the runner.
    global _PID, _JOB_HOOK
    random.seed()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _PID = os.getpid()

    def limits(spec):
        # The job's rlimits (the runner has set its environment already, as for a cold job).
        items = spec.get("rlimits") or ()
        flat = (ctypes.c_longlong * (3 * len(items)))(*[int(v) for item in items for v in item])
        if lib.exd_warm_rlimits(flat, len(items)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setrlimit: %s" % os.strerror(err))

    _JOB_HOOK = limits
    try:
        _main()
    finally:
        os._exit(1)


def _zygote_main():
    for name in _PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    ctl = socket.socket(fileno=3)
    bpf = ctl.recv(1 << 20)
    try:
        lib = _load_warm_library(bpf)
    except (OSError, AttributeError) as e:
        os.write(2, b"executord: pool: zygote: warm library: %s\n" % str(e).encode("utf-8", "replace"))
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
        pid = -1
        if len(fds) == _REQUEST_FDS:
            pid = lib.exd_warm_spawn(msg, (ctypes.c_int * _REQUEST_FDS)(*fds), _REQUEST_FDS)
        if pid == 0:
            _run_job(lib)
        for fd in fds:
            os.close(fd)
