# executord's in-sandbox runner, embedded into the binary and started as
# `python -I -u -c <this>`. It reads the job spec from fd 3, runs the script as __main__,
# calls its entry function and writes one JSON document to fd 4 — the only channel the
# service trusts; stdout/stderr belong to the script alone. Compatible with Tracecat's
# run_python contract. Imports are lazy: start-up time is part of every job's latency.
import os
import sys

SPEC_FD = 3
RESULT_FD = 4
SCRIPT_NAME = "<script>"
_PID = os.getpid()
# The script gets a fresh __main__; keep this module (and so the runner's globals) alive.
_RUNNER_MODULE = sys.modules.get("__main__")
# Warm mode (pool backend) only: applies the job's rlimits from the spec.
_JOB_HOOK = None


class _NotSerializable(Exception):
    pass


class _Failure(Exception):
    def __init__(self, type_, message, traceback=None):
        Exception.__init__(self, message)
        self.type = type_
        self.message = message
        self.traceback = traceback


def _apply_env(spec):
    # The script's whole environment ("NAME=VALUE" strings) comes in the spec, not through
    # execve, which caps one string at 128 KiB and all at a quarter of the stack: the
    # interpreter started with the fixed base, replaced here. os.environ's setters call
    # putenv/unsetenv, so C code (getenv) and child processes see the same values.
    env = os.environ
    env.clear()
    for item in spec.get("env") or ():
        name, _, value = item.partition("=")
        env[name] = value


def _site_index():
    # Where the standard library ends on sys.path: the first site-/dist-packages folder.
    site = sys.modules.get("site")
    dirs = set(site.getsitepackages()) if site is not None else set()
    for i, entry in enumerate(sys.path):
        if entry in dirs or os.path.basename(entry) in ("site-packages", "dist-packages"):
            return i
    return len(sys.path)


def _apply_paths(spec):
    # The interpreter runs isolated (-I: no PYTHONPATH, no script folder on sys.path), so
    # the runner does what the script's environment asks: the job's packages right after
    # the standard library, before the interpreter's site-/dist-packages (a pinned version
    # wins over the system's, a package cannot shadow the standard library); then the
    # entries of a PYTHONPATH in env_vars first, in order, as CPython reads them (an empty
    # entry is the working folder, a relative one is made absolute).
    packages = spec.get("packages")
    if packages:
        sys.path.insert(_site_index(), packages)
    pythonpath = os.environ.get("PYTHONPATH")
    if pythonpath:
        sys.path[0:0] = [os.path.abspath(entry or os.curdir) for entry in pythonpath.split(os.pathsep)]
    # PYTHONDONTWRITEBYTECODE is read at start-up, which -I skips.
    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))


def _read_spec():
    chunks = []
    while True:
        chunk = os.read(SPEC_FD, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(SPEC_FD)
    return _json_loads(b"".join(chunks).decode("utf-8"))


# ---- JSON through the C accelerator directly ---------------------------------------
# `import json` pulls in re, enum, functools, collections: about half of this runner's
# start-up. The C scanner/encoder behind it need none of that.


class _ScanContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN/Infinity: never sent by the service (jansson rejects them)
    memo = None


def _json_loads(text):
    import _json

    i = 0
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    # The service (jansson) accepts inputs nested up to 2048 levels; the scanner counts
    # each level against the recursion limit (1000 by default).
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4200))
    try:
        value, end = _json.make_scanner(_ScanContext())(text, i)
    except StopIteration:
        raise ValueError("spec is not JSON")
    finally:
        sys.setrecursionlimit(limit)
    if text[end:].strip(" \t\r\n"):
        raise ValueError("spec has trailing data")
    return value


def _json_dumps(value):
    import _json

    def default(o):
        raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)

    encode = _json.make_encoder(
        {}, default, _json.encode_basestring, None, ": ", ", ", False, False, False
    )
    return "".join(encode(value, 0))


def _exc_text(e):
    try:
        msg = str(e)
    except BaseException:
        msg = "<unprintable %s>" % type(e).__name__
    name = type(e).__name__
    return "%s: %s" % (name, msg) if msg else name


_SOURCE = None


def _register_source():
    # linecache (and tokenize behind it) is only imported when a traceback is needed.
    import linecache

    if _SOURCE is not None:
        # mtime None: linecache.checkcache keeps the entry instead of stat()ing a file.
        linecache.cache[SCRIPT_NAME] = (len(_SOURCE), None, _SOURCE.splitlines(True), SCRIPT_NAME)


def _user_traceback(e):
    """The traceback from the script's first frame on: the runner's frames are noise."""
    import traceback

    _register_source()
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != SCRIPT_NAME:
        tb = tb.tb_next
    try:
        lines = traceback.format_exception(type(e), e, tb)
    except BaseException:
        return None
    return "".join(lines)


_CO_FUNCTION = 0x01 | 0x02  # CO_OPTIMIZED | CO_NEWLOCALS: a def, not a class body


def _ast_defs(src):
    import ast

    return [
        n.name
        for n in ast.parse(src).body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


def _find_entry(code, src):
    # The functions defined at the script's top level are the function code objects among
    # the module code's constants (nested ones live inside their parents' constants).
    # Reading them avoids importing _ast, which costs more than the rest of the runner.
    defs = []
    for c in code.co_consts:
        if (
            type(c) is type(code)
            and c.co_flags & _CO_FUNCTION == _CO_FUNCTION
            and not c.co_name.startswith("<")
            and c.co_name not in defs
        ):
            defs.append(c.co_name)
    if not defs:
        # The compiler drops code it can prove unreachable (everything after a top-level
        # `raise`), functions included; the syntax tree still has them, and the script
        # then fails with its own exception rather than a misleading validation error.
        defs = _ast_defs(src)
    if not defs:
        raise _Failure(
            "SandboxValidationError",
            "Script must contain at least one function definition (the entry point, "
            "preferably named 'main')",
        )
    if "main" in defs:
        return "main"
    public = [name for name in defs if not name.startswith("_")]
    if len(public) == 1:
        return public[0]
    if not public and len(defs) == 1:
        return defs[0]
    raise _Failure(
        "SandboxValidationError",
        "Script defines several functions (%s); one must be named 'main'" % ", ".join(defs),
    )


def _compile(src):
    try:
        code = compile(src, SCRIPT_NAME, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        import traceback

        detail = "".join(traceback.format_exception_only(type(e), e))
        raise _Failure("SandboxValidationError", _exc_text(e), detail)
    return code, _find_entry(code, src)


# ---- JSON-safe conversion --------------------------------------------------------

_INF = float("inf")
_I64 = 1 << 63


def _mod(name):
    # A value can only be an instance of a class whose module is already imported, so
    # looking in sys.modules avoids importing datetime/decimal/... for every job.
    return sys.modules.get(name)


def _jsonable(v, path):
    t = type(v)
    if v is None or t is bool or t is str:
        return v
    if t is int:
        # The service stores results as 64-bit JSON integers (jansson); larger ones
        # become their exact decimal text instead of failing the job or losing digits.
        return v if -_I64 <= v < _I64 else str(v)
    if t is float:
        # NaN and +-Infinity are not JSON: they become null rather than failing the job.
        return v if (v == v and v != _INF and v != -_INF) else None
    enum = _mod("enum")
    if enum is not None and isinstance(v, enum.Enum):
        return _jsonable(v.value, path)
    if isinstance(v, (list, tuple, dict, set, frozenset)) or _is_dataclass(v):
        if id(v) in path:
            if _is_dataclass(v):
                raise _NotSerializable("Recursive dataclass values are not JSON-serializable")
            raise _NotSerializable("Circular reference detected")
        path.add(id(v))
        try:
            return _container(v, path)
        finally:
            path.discard(id(v))
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return _jsonable(int(v), path)
    if isinstance(v, float):
        return _jsonable(float(v), path)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("utf-8", "replace")
    dt = _mod("datetime")
    if dt is not None:
        if isinstance(v, (dt.datetime, dt.date, dt.time)):
            return v.isoformat()
        if isinstance(v, dt.timedelta):
            return v.total_seconds()
    for modname, clsname in (("decimal", "Decimal"), ("uuid", "UUID"), ("pathlib", "PurePath")):
        m = _mod(modname)
        if m is not None and isinstance(v, getattr(m, clsname)):
            return str(v)
    dump = getattr(type(v), "model_dump", None)  # pydantic v2 models
    if dump is not None and not isinstance(v, type):
        try:
            return _jsonable(v.model_dump(mode="json"), path)
        except _NotSerializable:
            raise
        except Exception:
            pass
    try:
        return repr(v)
    except Exception as e:
        raise _NotSerializable("repr() of %s failed: %s" % (t.__name__, _exc_text(e)))


def _is_dataclass(v):
    dc = _mod("dataclasses")
    return dc is not None and not isinstance(v, type) and dc.is_dataclass(v)


def _container(v, path):
    if isinstance(v, dict):
        out = {}
        for k, item in v.items():
            if isinstance(k, str):
                key = str(k)
            else:
                key = _jsonable(k, path)
                key = key if isinstance(key, str) else str(key)
            out[key] = _jsonable(item, path)
        return out
    if isinstance(v, (set, frozenset)):
        try:
            items = sorted(v)
        except TypeError:
            items = sorted(v, key=repr)
        return [_jsonable(x, path) for x in items]
    if isinstance(v, (list, tuple)):
        return [_jsonable(x, path) for x in v]
    # a dataclass instance: its fields, recursively (not dataclasses.asdict, which
    # would recurse forever on a self-referencing instance)
    import dataclasses

    return {f.name: _jsonable(getattr(v, f.name), path) for f in dataclasses.fields(v)}


def _make_safe(value):
    try:
        return _jsonable(value, set())
    except _NotSerializable as e:
        raise _Failure("SandboxExecutionError", "Output not JSON-serializable: %s" % e)
    except RecursionError:
        raise _Failure(
            "SandboxExecutionError", "Output not JSON-serializable: nesting is too deep"
        )


# ---- running the script -----------------------------------------------------------


def _run(spec):
    src = spec.get("script") or ""
    inputs = spec.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise _Failure("SandboxValidationError", "inputs must be a JSON object")
    global _SOURCE
    code, entry = _compile(src)
    _SOURCE = src
    main_mod = type(sys)("__main__")
    main_mod.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main_mod
    sys.argv = [SCRIPT_NAME]
    g = main_mod.__dict__
    exec(code, g)
    if "linecache" in sys.modules:
        # The script imported traceback/logging: let its own tracebacks show lines too.
        _register_source()
    fn = g.get(entry)
    if not callable(fn):
        raise _Failure(
            "SandboxValidationError", "Entry function '%s' is not callable after running the script" % entry
        )
    result = fn(**inputs) if inputs else fn()
    if hasattr(result, "__await__"):
        import asyncio

        async def _await(aw):
            return await aw

        result = asyncio.run(_await(result))
    return result


def _release_frames(tb):
    # After a MemoryError the failed frames still hold what filled the memory; clearing
    # their locals frees it, so the traceback can be formatted under the same limit.
    while tb is not None:
        try:
            tb.tb_frame.clear()
        except RuntimeError:  # a frame still executing (the runner's own)
            pass
        tb = tb.tb_next


def _error_doc(e, limits):
    if isinstance(e, _Failure):
        return {"type": e.type, "message": e.message, "traceback": e.traceback}
    if isinstance(e, MemoryError):
        _release_frames(e.__traceback__)
    tb = _user_traceback(e)
    if isinstance(e, MemoryError):
        msg = _exc_text(e)
        if msg == "MemoryError":
            msg = "MemoryError: memory limit of %s MB exceeded" % limits.get("memory_mb")
        return {"type": "MemoryLimitExceeded", "message": msg, "traceback": tb}
    if isinstance(e, OSError) and e.errno == 27:  # EFBIG: RLIMIT_FSIZE (SIGXFSZ ignored)
        return {
            "type": "ResourceLimitExceeded",
            "message": "File size limit of %s MB exceeded (%s)"
            % (limits.get("max_file_size_mb"), _exc_text(e)),
            "traceback": tb,
        }
    return {"type": "SandboxExecutionError", "message": _exc_text(e), "traceback": tb}


def _write_result(doc):
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:
            pass
    if os.getpid() != _PID:
        # The script forked and this copy returned into the runner: only the original
        # process reports.
        os._exit(0)
    try:
        text = _json_dumps(doc)
    except (TypeError, ValueError, RecursionError) as e:
        text = _json_dumps(
            {
                "ok": False,
                "error": {
                    "type": "SandboxExecutionError",
                    "message": "Output not JSON-serializable: %s" % e,
                    "traceback": None,
                },
            }
        )
    # Lone surrogates are not UTF-8: replace them rather than sending invalid text.
    data = text.encode("utf-8", "replace")
    view = memoryview(data)
    while view:
        try:
            n = os.write(RESULT_FD, view)
        except InterruptedError:
            continue
        except OSError:
            break
        view = view[n:]
    os.close(RESULT_FD)


def _peak_rss_kb():
    # VmHWM is this process's own peak (ru_maxrss would include the service's memory
    # inherited before exec); children of the script are counted via RUSAGE_CHILDREN.
    peak = 0
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    peak = int(line.split()[1])
                    break
    except Exception:  # OSError, or a script that replaced open()
        pass
    try:
        import resource

        peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    except Exception:
        pass
    return peak


def _main():
    # The protocol fds must not leak into anything the script starts.
    os.set_inheritable(SPEC_FD, False)
    os.set_inheritable(RESULT_FD, False)
    limits = {}
    try:
        spec = _read_spec()
        limits = spec.get("limits") or {}
        _apply_env(spec)
        _apply_paths(spec)
        if _JOB_HOOK is not None:
            _JOB_HOOK(spec)
        value = _run(spec)
        doc = {"ok": True, "result": _make_safe(value)}
    except BaseException as e:  # SystemExit and KeyboardInterrupt are script failures too
        try:
            doc = {"ok": False, "error": _error_doc(e, limits)}
        except BaseException as inner:
            memory = isinstance(e, MemoryError) or isinstance(inner, MemoryError)
            doc = {
                "ok": False,
                "error": {
                    "type": "MemoryLimitExceeded" if memory else "SandboxExecutionError",
                    "message": "MemoryError: memory limit of %s MB exceeded" % limits.get("memory_mb")
                    if memory
                    else _exc_text(inner),
                    "traceback": None,
                },
            }
    doc["max_rss_kb"] = _peak_rss_kb()
    _write_result(doc)
    os._exit(0)


# ---- warm mode (pool backend): `python -I -u -c <this> --zygote` ------------------------
# The zygote's code (sandbox/pool_zygote.py) arrives as the first message on fd 3, so the
# cold path pays nothing for it.
if sys.argv[1:2] == ["--zygote"]:
    exec(compile(os.read(SPEC_FD, 1 << 20).decode("utf-8"), "<zygote>", "exec"), globals())
    _zygote_main()
else:
    _main()
