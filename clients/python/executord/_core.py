"""What both clients do, without doing any I/O: request bodies, retries, long-polling,
log paging and the mapping of outcomes onto exceptions, shared by ExecutorClient
(blocking) and AsyncExecutorClient (asyncio) so that they cannot drift apart.

Each operation is a generator. It yields what it needs done, an ``Exchange`` (one HTTP
request and its response) or a ``Pause``, and is sent the outcome: a ``Response``, or a
``Failure`` when no complete response came. What it returns is the operation's result;
what it raises is the client's exception. A client only performs the yields
(``drive``): with http.client and time.sleep, or with asyncio streams and asyncio.sleep.
"""

from __future__ import annotations

import json
import logging
import math
import random
import ssl
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Generator, Iterable, List, Mapping, Optional, Union
from urllib.parse import quote, urlencode, urlsplit

from .errors import (
    ExecutorAuthError,
    ExecutorUnavailableError,
    PackageInstallError,
    SandboxError,
    SandboxExecutionError,
    SandboxTimeoutError,
    SandboxValidationError,
)

log = logging.getLogger("executord.client")

FINAL_STATUSES = frozenset({"succeeded", "failed", "timed_out", "cancelled"})
# Answers that mean "not now" rather than "no": 429 queue_full (with Retry-After),
# 503 shutting_down, and what a proxy in front of executord says when it is down.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_SERVER_WAIT = 300.0  # the service caps ?wait= at 300 s
LOG_WINDOW_MAX = 4 << 20  # the service's largest logs window (bytes per stream and answer)
# Tracecat's defaults (tracecat/sandbox/types.py ResourceLimits, TRACECAT__SANDBOX_DEFAULT_
# TIMEOUT): sent unless the caller says otherwise, so a script that fits in Tracecat fits
# here, whatever executord's own (smaller) defaults are.
DEFAULT_TIMEOUT_SECONDS = 300
DEFAULT_LIMITS: Mapping[str, int] = {"memory_mb": 2048, "cpu_seconds": 300}
# job.error.type -> exception; every other failure is a SandboxExecutionError.
ERROR_CLASSES = {
    "SandboxTimeoutError": SandboxTimeoutError,
    "SandboxValidationError": SandboxValidationError,
    "PackageInstallError": PackageInstallError,
}


@dataclass
class SandboxResult:
    """A succeeded job: its result plus what the script printed (at most the client's
    ``max_log_bytes`` of each stream; ``logs_truncated`` says when that cut one)."""

    output: Any
    stdout: str = ""
    stderr: str = ""
    job_id: Optional[str] = None
    status: str = "succeeded"
    execution_time_ms: Optional[int] = None
    usage: Optional[Dict[str, Any]] = None
    job: Dict[str, Any] = field(default_factory=dict, repr=False)
    logs_truncated: bool = False

    @property
    def success(self) -> bool:
        return self.status == "succeeded"


@dataclass
class Response:
    status: int
    headers: Any  # http.client.HTTPMessage (case-insensitive .get)
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Exchange:
    """One HTTP request to perform. ``sent`` is set by a driver that knows the request
    left whole (the asyncio one): a submission cut short after that may have created a job."""

    method: str
    path: str  # below the base URL's prefix
    body: Optional[bytes]
    headers: Dict[str, str]
    timeout: float
    sent: bool = False


@dataclass
class Failure:
    """No (complete) response: refused, reset, timed out, closed early. ``fatal``: not
    worth retrying (TLS verification failed)."""

    reason: str
    fatal: bool = False
    exc: Optional[BaseException] = None


@dataclass
class Pause:
    seconds: float


Op = Union[Exchange, Pause]
Flow = Generator[Op, Any, Any]


@dataclass
class Tracker:
    """What an execute() has got to, for a caller that must clean up after interrupting it:
    the job's id once known, whether it ended, and the submission to replay (same
    Idempotency-Key, so the service answers with the job it has) when the id is not known."""

    job_id: Optional[str] = None
    final: bool = False
    key: Optional[str] = None
    body: Optional[bytes] = None
    submissions: List[Exchange] = field(default_factory=list)

    @property
    def maybe_submitted(self) -> bool:
        return any(x.sent for x in self.submissions)


class ClientConfig:
    """The settings both clients share (see ExecutorClient for their meaning)."""

    def __init__(
        self,
        base_url: str,
        token: Optional[str] = None,
        *,
        request_timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        poll_wait: float = 60.0,
        wait_margin: float = 60.0,
        cancel_on_timeout: bool = True,
        backend: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        max_log_bytes: int = 16 << 20,
        on_retry: Optional[Callable[[int, str, float], None]] = None,
        default_limits: Optional[Mapping[str, Optional[int]]] = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port][/prefix], got {base_url!r}")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if max_log_bytes < 0:
            raise ValueError("max_log_bytes must be >= 0")
        self.base_url = base_url.rstrip("/")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self.token = token
        self.request_timeout = float(request_timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.poll_wait = min(float(poll_wait), MAX_SERVER_WAIT)
        self.wait_margin = float(wait_margin)
        self.cancel_on_timeout = cancel_on_timeout
        self.backend = backend
        self.ssl_context = ssl_context
        self.max_log_bytes = int(max_log_bytes)
        self.on_retry = on_retry
        self.default_limits = dict(DEFAULT_LIMITS if default_limits is None else default_limits)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"


# ------------------------------------------------------------------ requests

def request(c: ClientConfig, method: str, path: str, body: Optional[bytes] = None,
            headers: Optional[Dict[str, str]] = None, *, read_timeout: float = 0,
            retry: bool = True, track: Optional[Tracker] = None) -> Flow:
    """One HTTP exchange, retried on 429/502/503/504 and on connection errors. Every
    request these clients make is safe to repeat: reads, cancel, and job submissions
    carrying an Idempotency-Key. Returns the Response."""
    hdrs = {"Accept": "application/json", "User-Agent": "executord-python-client"}
    if body is not None:
        hdrs["Content-Type"] = "application/json"
    if c.token:
        hdrs["Authorization"] = f"Bearer {c.token}"
    hdrs.update(headers or {})
    attempt = 0
    while True:
        retry_after: Optional[float] = None
        ex = Exchange(method, path, body, hdrs, c.request_timeout + read_timeout)
        if track is not None:
            track.submissions.append(ex)
        got = yield ex
        if isinstance(got, Failure):
            if got.fatal:
                raise ExecutorUnavailableError(f"{method} {path}: {got.reason}") from got.exc
            reason = got.reason
            if not retry or attempt >= c.max_retries:
                raise ExecutorUnavailableError(
                    f"{method} {c.base_url}{path}: no response after {attempt + 1} "
                    f"attempt(s): {reason}") from got.exc
        else:
            if got.status not in RETRY_STATUSES or not retry or attempt >= c.max_retries:
                return got
            reason = f"HTTP {got.status}"
            retry_after = parse_retry_after(got.headers.get("Retry-After"))
        delay = min(c.max_backoff, c.backoff * (2 ** attempt))
        delay *= random.uniform(0.5, 1.0)  # jitter: clients refused together spread out
        if retry_after is not None:
            delay = max(delay, retry_after)
        attempt += 1
        log.info("%s %s: %s; retry %d/%d in %.2fs", method, path, reason, attempt,
                 c.max_retries, delay)
        if c.on_retry is not None:
            c.on_retry(attempt, reason, delay)
        yield Pause(delay)


def call(c: ClientConfig, method: str, path: str, body: Optional[bytes] = None,
         headers: Optional[Dict[str, str]] = None, *, read_timeout: float = 0,
         job_id: Optional[str] = None, track: Optional[Tracker] = None) -> Flow:
    """request() returning the JSON of a 2xx answer, raising the mapped error otherwise;
    ``job_id`` (the job the path names) is set on whatever it raises."""
    try:
        r = yield from request(c, method, path, body, headers, read_timeout=read_timeout,
                               track=track)
        if 200 <= r.status < 300:
            try:
                return r.json()
            except ValueError as e:
                raise SandboxExecutionError(f"{method} {path}: invalid JSON from the service: {e}",
                                            http_status=r.status) from None
        raise http_error(method, path, r)
    except SandboxError as e:
        if e.job_id is None:
            e.job_id = job_id
        raise


def http_error(method: str, path: str, r: Response) -> SandboxError:
    code = message = fld = None
    try:
        doc = r.json()
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict):
            code, message, fld = err.get("code"), err.get("message"), err.get("field")
    except ValueError:
        pass
    if not message:
        message = r.body[:500].decode("utf-8", "replace") or f"HTTP {r.status}"
    kw = dict(http_status=r.status, code=code, field=fld)
    if r.status == 401:
        return ExecutorAuthError(f"executord refused the credentials: {message}", **kw)
    if r.status in (400, 413, 415, 422):
        return SandboxValidationError(message, **kw)
    if r.status in RETRY_STATUSES or r.status >= 500:
        return ExecutorUnavailableError(f"{method} {path}: HTTP {r.status}: {message}", **kw)
    return SandboxExecutionError(f"{method} {path}: HTTP {r.status}: {message}", **kw)


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After in seconds (executord sends an integer; HTTP dates are accepted too)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def job_path(job_id: str, tail: str = "") -> str:
    return f"/v1/jobs/{quote(job_id, safe='')}{tail}"


def new_key() -> str:
    """A submission's Idempotency-Key: one per call, sent on each of its retries."""
    return str(uuid.uuid4())


# ------------------------------------------------------------------ the job API

def job_body(c: ClientConfig, script, inputs, dependencies, timeout_seconds, allow_network,
             env_vars, limits, labels, backend) -> bytes:
    """The POST /v1/jobs body, after the checks that need no round trip."""
    if not isinstance(script, str) or not script.strip():
        raise SandboxValidationError("script must be a non-empty string", field="script")
    body: Dict[str, Any] = {"script": script}
    if inputs is not None:
        if not isinstance(inputs, Mapping) or not all(isinstance(k, str) for k in inputs):
            raise SandboxValidationError("inputs must be a mapping with string keys",
                                         field="inputs")
        body["inputs"] = dict(inputs)
    if dependencies is not None:
        if isinstance(dependencies, (str, bytes)) or not isinstance(dependencies, Iterable):
            raise SandboxValidationError("dependencies must be a list of requirement strings",
                                         field="dependencies")
        deps = list(dependencies)
        if not all(isinstance(d, str) for d in deps):
            raise SandboxValidationError("dependencies must be a list of strings",
                                         field="dependencies")
        # Sent as given: the service checks and normalizes them (422 naming the item),
        # never the client, so both always agree. An empty list asks for nothing.
        if deps:
            body["dependencies"] = deps
    if timeout_seconds is not None:
        if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, (int, float)) \
                or not math.isfinite(timeout_seconds) or timeout_seconds <= 0:
            raise SandboxValidationError("timeout_seconds must be a number above 0",
                                         field="timeout_seconds")
        body["timeout_seconds"] = timeout_seconds
    if not isinstance(allow_network, bool):
        raise SandboxValidationError("allow_network must be a bool", field="allow_network")
    body["allow_network"] = allow_network
    if env_vars:
        if not isinstance(env_vars, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()):
            raise SandboxValidationError("env_vars must map strings to strings",
                                         field="env_vars")
        body["env_vars"] = dict(env_vars)
    if limits is not None and not isinstance(limits, Mapping):
        raise SandboxValidationError("limits must be a mapping", field="limits")
    # The caller's limits over the client's defaults; None leaves one to the service.
    merged = {k: v for k, v in {**c.default_limits, **(limits or {})}.items() if v is not None}
    if merged:
        body["limits"] = merged
    if labels:
        body["labels"] = dict(labels)
    backend = backend or c.backend
    if backend:
        body["backend"] = backend
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as e:
        raise SandboxValidationError(f"inputs are not JSON-serializable: {e}",
                                     field="inputs") from None


def submit(c: ClientConfig, body: bytes, key: str, wait: float,
           track: Optional[Tracker] = None) -> Flow:
    path = "/v1/jobs"
    if wait > 0:
        wait = min(wait, MAX_SERVER_WAIT)
        path += f"?wait={wait:.3f}"
    return (yield from call(c, "POST", path, body, {"Idempotency-Key": key},
                            read_timeout=wait, track=track))


def get(c: ClientConfig, job_id: str, wait: float = 0) -> Flow:
    path = job_path(job_id)
    if wait > 0:
        wait = min(wait, MAX_SERVER_WAIT)
        path += f"?wait={wait:.3f}"
    return (yield from call(c, "GET", path, read_timeout=wait, job_id=job_id))


def cancel(c: ClientConfig, job_id: str) -> Flow:
    try:
        return (yield from call(c, "POST", job_path(job_id, "/cancel"), job_id=job_id))
    except SandboxExecutionError as e:
        if e.code == "job_finished":  # it ended first: not an error here
            return (yield from get(c, job_id))
        raise


def delete(c: ClientConfig, job_id: str) -> Flow:
    yield from call(c, "DELETE", job_path(job_id), job_id=job_id)


def logs(c: ClientConfig, job_id: str, stdout_offset: int = 0, stderr_offset: int = 0,
         limit: Optional[int] = None) -> Flow:
    q = {k: v for k, v in (("stdout_offset", stdout_offset), ("stderr_offset", stderr_offset),
                           ("limit", limit)) if v}
    path = job_path(job_id, "/logs") + ("?" + urlencode(q) if q else "")
    return (yield from call(c, "GET", path, job_id=job_id))


def read_logs(c: ClientConfig, job_id: str, max_bytes: Optional[int] = None) -> Flow:
    cap = c.max_log_bytes if max_bytes is None else int(max_bytes)
    streams = ("stdout", "stderr")
    offset = dict.fromkeys(streams, 0)
    parts: Dict[str, list] = {s: [] for s in streams}
    active = dict.fromkeys(streams, cap > 0)  # still reading it
    cut = dict.fromkeys(streams, False)       # stopped at the cap with more stored
    doc: Optional[Dict[str, Any]] = None
    while doc is None or any(active.values()):
        limit = min(LOG_WINDOW_MAX, max([cap - offset[s] for s in streams if active[s]] or [1]))
        # A stream no longer read is asked for at its end: an empty window.
        at = {s: offset[s] if active[s] else max(offset[s], doc[f"{s}_bytes"] if doc else 0)
              for s in streams}
        doc = yield from logs(c, job_id, at["stdout"], at["stderr"], limit)
        for s in streams:
            if not active[s]:
                continue
            window = doc["window"][s]
            parts[s].append(doc[s])
            offset[s] = window["next_offset"]
            if not window["truncated"]:
                active[s] = False
            elif cap - offset[s] < 4:
                # A window never cuts a character (up to 4 bytes), so one of fewer
                # bytes could only bring half of one.
                active[s], cut[s] = False, True
    if cap <= 0:
        cut = {s: doc[f"{s}_bytes"] > 0 for s in streams}
    return {
        "stdout": "".join(parts["stdout"]), "stderr": "".join(parts["stderr"]),
        "stdout_bytes": doc["stdout_bytes"], "stderr_bytes": doc["stderr_bytes"],
        "status": doc["status"], "complete": not any(cut.values()),
    }


def list_jobs(c: ClientConfig, status=None, label=None, limit=None, cursor=None) -> Flow:
    q = {k: v for k, v in (("status", status), ("label", label), ("limit", limit),
                           ("cursor", cursor)) if v is not None}
    return (yield from call(c, "GET", "/v1/jobs" + ("?" + urlencode(q) if q else "")))


def backends(c: ClientConfig) -> Flow:
    return (yield from call(c, "GET", "/v1/backends"))


def ready(c: ClientConfig) -> Flow:
    r = yield from request(c, "GET", "/readyz", retry=False)
    return r.status == 200


def wait_until(c: ClientConfig, job: Dict[str, Any], deadline: float,
               cancel_at_deadline: bool) -> Flow:
    """Long-polls until the job is final; at ``deadline`` raises SandboxTimeoutError,
    cancelling the job first when asked."""
    while job["status"] not in FINAL_STATUSES:
        left = deadline - time.monotonic()
        if left <= 0:
            was = job["status"]
            if cancel_at_deadline:
                try:
                    job = yield from cancel(c, job["id"])
                except SandboxError as e:  # best effort: the timeout is the news
                    log.warning("could not cancel job %s after the wait ran out: %s",
                                job["id"], e)
                if job["status"] in FINAL_STATUSES and job["status"] != "cancelled":
                    return job  # it ended just in time: report how
            raise SandboxTimeoutError(
                f"job {job['id']} did not finish in time: still {was}"
                f"{'; cancelled' if cancel_at_deadline else ''}",
                error_type="SandboxTimeoutError", job_id=job["id"], status=job["status"],
                job=job)
        job = yield from get(c, job["id"], wait=min(c.poll_wait, left))
    return job


def wait(c: ClientConfig, job_id: str, timeout: Optional[float]) -> Flow:
    deadline = time.monotonic() + timeout if timeout is not None else math.inf
    job = yield from get(c, job_id)
    return (yield from wait_until(c, job, deadline, cancel_at_deadline=False))


def job_error(c: ClientConfig, job: Dict[str, Any]) -> Flow:
    """The exception of a job that did not succeed, with its output (best effort)."""
    err = job.get("error") or {}
    status = job["status"]
    etype = err.get("type")
    message = err.get("message") or f"job ended {status}"
    if status == "timed_out":
        cls = SandboxTimeoutError
    else:  # SandboxExecutionError, limits, Cancelled, ExecutorLost, SandboxError, ...
        cls = ERROR_CLASSES.get(etype, SandboxExecutionError)
    stdout = stderr = None
    try:
        out = yield from read_logs(c, job["id"])
        stdout, stderr = out["stdout"], out["stderr"]
    except SandboxError as e:
        log.debug("could not fetch the logs of job %s: %s", job["id"], e)
    return cls(message, error_type=etype, traceback=err.get("traceback"), job_id=job["id"],
               status=status, stdout=stdout, stderr=stderr, job=job)


def execute(c: ClientConfig, track: Tracker, script, inputs, dependencies, timeout_seconds,
            allow_network, env_vars, limits, labels, backend, fetch_logs: bool) -> Flow:
    """run_python's whole course: submit, long-poll to the end, map the outcome."""
    started = time.monotonic()
    track.body = job_body(c, script, inputs, dependencies, timeout_seconds, allow_network,
                          env_vars, limits, labels, backend)
    # One key per call, reused by every retry of the submission: the service answers a
    # repeat with the job it already has, so the script never runs twice.
    track.key = new_key()
    job_timeout = float(timeout_seconds) if timeout_seconds is not None else None
    first_wait = c.poll_wait
    if job_timeout is not None:
        first_wait = min(first_wait, job_timeout + c.wait_margin)
    job = yield from submit(c, track.body, track.key, first_wait, track)
    track.job_id = job["id"]
    try:
        if job_timeout is None:  # the service chose it: read it back
            job_timeout = float((job.get("limits") or {}).get("timeout_seconds") or 0)
        deadline = started + job_timeout + c.wait_margin
        job = yield from wait_until(c, job, deadline, c.cancel_on_timeout)
        track.final = job["status"] in FINAL_STATUSES
        if job["status"] != "succeeded":
            raise (yield from job_error(c, job))
        out: Dict[str, Any] = {"stdout": "", "stderr": "", "complete": True}
        if fetch_logs:
            out = yield from read_logs(c, job["id"])
    except SandboxError as e:
        if e.job_id is None:
            e.job_id = track.job_id
        raise
    return SandboxResult(
        output=job.get("result"), stdout=out["stdout"], stderr=out["stderr"],
        job_id=job["id"], status=job["status"], execution_time_ms=job.get("run_ms"),
        usage=job.get("usage"), job=job, logs_truncated=not out["complete"],
    )


def cancel_interrupted(c: ClientConfig, track: Tracker) -> Flow:
    """Cancels the job of an execute() that was interrupted before the job ended. Without
    its id (interrupted during the submission, after the request left), the submission is
    replayed with its Idempotency-Key, which the service answers with the job it has."""
    job_id = track.job_id
    if job_id is None:
        job = yield from submit(c, track.body, track.key, 0)
        job_id = job["id"]
    return (yield from cancel(c, job_id))
