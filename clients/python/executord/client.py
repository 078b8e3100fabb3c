"""A synchronous executord client with Tracecat's ``run_python`` contract.

``ExecutorClient.run_python`` submits a job with an ``Idempotency-Key`` and a ``?wait=``
long-poll, keeps long-polling ``GET /v1/jobs/{id}?wait=`` until the job is final (bounded
by the job's timeout plus a margin), and turns the outcome into a return value or one of
the exceptions in ``executord.errors``. Standard library only.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import random
import ssl
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple
from urllib.parse import quote, urlencode, urlsplit

from .errors import (
    ExecutorAuthError,
    ExecutorUnavailableError,
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
class _Response:
    status: int
    headers: Any  # http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class ExecutorClient:
    """Client of one executord service.

    base_url         e.g. ``http://127.0.0.1:8080`` (a path prefix is kept: ``https://h/executord``)
    token            bearer token (the content of the service's ``--api-token-file``)
    request_timeout  socket timeout of one request, in seconds; a long-poll gets its wait on top
    max_retries      retries of one request after 429/502/503/504 or a connection error
    backoff          first retry delay in seconds; doubles per retry (with jitter), capped at
                     ``max_backoff``, never shorter than the service's ``Retry-After``
    poll_wait        seconds each long-poll asks the service to hold (at most 300)
    wait_margin      run_python waits for ``timeout_seconds`` plus this long (queueing,
                     sandbox start) before giving up with SandboxTimeoutError
    cancel_on_timeout  when that overall wait runs out, cancel the job so it never runs unobserved
    backend          default backend for jobs (None: the service's default)
    max_log_bytes    the most of each stream that ``execute`` and the exceptions collect
                     (``read_logs``); the service keeps up to the job's max_output_bytes
    on_retry         optional callable(attempt, reason, delay) called before each retry sleep
    """

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

    def __enter__(self) -> "ExecutorClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __repr__(self) -> str:
        return f"ExecutorClient({self.base_url!r})"

    # ------------------------------------------------------------------ the main API

    def run_python(
        self,
        script: str,
        inputs: Optional[Mapping[str, Any]] = None,
        dependencies: Optional[Iterable[str]] = None,
        timeout_seconds: Optional[float] = 300,
        allow_network: bool = False,
        env_vars: Optional[Mapping[str, str]] = None,
        *,
        limits: Optional[Mapping[str, int]] = None,
        labels: Optional[Mapping[str, str]] = None,
        backend: Optional[str] = None,
    ) -> Any:
        """Runs ``script`` (its ``main(**inputs)``, or its only public function) and returns
        the function's return value as the service serialised it to JSON.

        Raises SandboxValidationError (invalid request, ``dependencies`` given, syntax error,
        no entry function), SandboxExecutionError (the script raised; the job failed for
        another reason or was cancelled; ExecutorAuthError on 401; ExecutorUnavailableError
        when the service stayed unreachable or busy through every retry) or
        SandboxTimeoutError (the job timed out, or the wait for it ran out).
        """
        return self.execute(
            script, inputs, dependencies, timeout_seconds, allow_network, env_vars,
            limits=limits, labels=labels, backend=backend, fetch_logs=False,
        ).output

    def execute(
        self,
        script: str,
        inputs: Optional[Mapping[str, Any]] = None,
        dependencies: Optional[Iterable[str]] = None,
        timeout_seconds: Optional[float] = 300,
        allow_network: bool = False,
        env_vars: Optional[Mapping[str, str]] = None,
        *,
        limits: Optional[Mapping[str, int]] = None,
        labels: Optional[Mapping[str, str]] = None,
        backend: Optional[str] = None,
        fetch_logs: bool = True,
    ) -> SandboxResult:
        """run_python, returning a SandboxResult (result, stdout, stderr, job) instead of the
        bare result. Raises exactly what run_python raises."""
        started = time.monotonic()
        body = self._job_body(script, inputs, dependencies, timeout_seconds, allow_network,
                              env_vars, limits, labels, backend)
        # One key per call, reused by every retry of the submission: the service answers a
        # repeat with the job it already has, so the script never runs twice.
        key = str(uuid.uuid4())
        job_timeout = float(timeout_seconds) if timeout_seconds is not None else None
        first_wait = self.poll_wait
        if job_timeout is not None:
            first_wait = min(first_wait, job_timeout + self.wait_margin)
        job = self._submit_body(body, key, wait=first_wait)
        if job_timeout is None:  # the service chose it: read it back
            job_timeout = float((job.get("limits") or {}).get("timeout_seconds") or 0)
        deadline = started + job_timeout + self.wait_margin
        job = self._wait_until(job, deadline)
        if job["status"] != "succeeded":
            raise self._job_error(job)
        logs: Dict[str, Any] = {"stdout": "", "stderr": "", "complete": True}
        if fetch_logs:
            logs = self.read_logs(job["id"])
        return SandboxResult(
            output=job.get("result"), stdout=logs["stdout"], stderr=logs["stderr"],
            job_id=job["id"], status=job["status"], execution_time_ms=job.get("run_ms"),
            usage=job.get("usage"), job=job, logs_truncated=not logs["complete"],
        )

    # ------------------------------------------------------------------ lower-level helpers

    def submit(
        self,
        script: str,
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        dependencies: Optional[Iterable[str]] = None,
        timeout_seconds: Optional[float] = None,
        allow_network: bool = False,
        env_vars: Optional[Mapping[str, str]] = None,
        limits: Optional[Mapping[str, int]] = None,
        labels: Optional[Mapping[str, str]] = None,
        backend: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        wait: float = 0,
    ) -> Dict[str, Any]:
        """POST /v1/jobs; returns the job document (final if ``wait`` sufficed). A fresh
        Idempotency-Key is generated unless one is given; retries reuse it."""
        body = self._job_body(script, inputs, dependencies, timeout_seconds, allow_network,
                              env_vars, limits, labels, backend)
        return self._submit_body(body, idempotency_key or str(uuid.uuid4()), wait=wait)

    def get(self, job_id: str, wait: float = 0) -> Dict[str, Any]:
        """GET /v1/jobs/{id}[?wait=]."""
        path = f"/v1/jobs/{quote(job_id, safe='')}"
        if wait > 0:
            wait = min(wait, MAX_SERVER_WAIT)
            path += f"?wait={wait:.3f}"
        return self._call("GET", path, read_timeout=wait)

    def wait(self, job_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Long-polls until the job is final and returns it; SandboxTimeoutError if
        ``timeout`` seconds pass first (the job is left alone)."""
        deadline = time.monotonic() + timeout if timeout is not None else math.inf
        return self._wait_until(self.get(job_id), deadline, cancel=False)

    def logs(self, job_id: str, *, stdout_offset: int = 0, stderr_offset: int = 0,
             limit: Optional[int] = None) -> Dict[str, Any]:
        """GET /v1/jobs/{id}/logs: one window of each stream, ``{stdout, stderr, stdout_bytes,
        ..., status, window}``: at most ``limit`` bytes (the service's default 1 MiB, at most
        4 MiB) of each stream from its offset; ``window[stream]["next_offset"]`` is where the
        next window starts and ``window[stream]["truncated"]`` whether more is stored. For
        all of the output, see ``read_logs``."""
        q = {k: v for k, v in (("stdout_offset", stdout_offset), ("stderr_offset", stderr_offset),
                               ("limit", limit)) if v}
        path = f"/v1/jobs/{quote(job_id, safe='')}/logs" + ("?" + urlencode(q) if q else "")
        return self._call("GET", path)

    def read_logs(self, job_id: str, max_bytes: Optional[int] = None) -> Dict[str, Any]:
        """The job's stdout and stderr so far, paging through the logs windows: at most
        ``max_bytes`` (default: the client's ``max_log_bytes``) of each stream, from its start.
        Returns ``{stdout, stderr, stdout_bytes, stderr_bytes, status, complete}``;
        ``complete`` is False when ``max_bytes`` cut a stream (``*_bytes`` are the stored
        totals). Windows end between characters, so the texts are whole (and may stop up to
        3 bytes short of ``max_bytes``)."""
        cap = self.max_log_bytes if max_bytes is None else int(max_bytes)
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
            doc = self.logs(job_id, stdout_offset=at["stdout"], stderr_offset=at["stderr"],
                            limit=limit)
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

    def cancel(self, job_id: str) -> Dict[str, Any]:
        """POST /v1/jobs/{id}/cancel; returns the job. A job that already ended is
        returned as it is (the service's 409 job_finished is not an error here)."""
        try:
            return self._call("POST", f"/v1/jobs/{quote(job_id, safe='')}/cancel")
        except SandboxExecutionError as e:
            if e.code == "job_finished":
                return self.get(job_id)
            raise

    def delete(self, job_id: str) -> None:
        """DELETE /v1/jobs/{id} (a finished job and its logs)."""
        self._call("DELETE", f"/v1/jobs/{quote(job_id, safe='')}")

    def list_jobs(
        self,
        status: Optional[str] = None,
        label: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> Dict[str, Any]:
        """GET /v1/jobs: ``{jobs: [...], next_cursor}``, newest first; ``label`` is ``key:value``."""
        q = {k: v for k, v in (("status", status), ("label", label), ("limit", limit),
                               ("cursor", cursor)) if v is not None}
        return self._call("GET", "/v1/jobs" + ("?" + urlencode(q) if q else ""))

    def backends(self) -> Dict[str, Any]:
        """GET /v1/backends."""
        return self._call("GET", "/v1/backends")

    def ready(self) -> bool:
        """True when GET /readyz answers 200."""
        r = self._request("GET", "/readyz", retry=False)
        return r.status == 200

    # ------------------------------------------------------------------ internals

    def _job_body(self, script, inputs, dependencies, timeout_seconds, allow_network,
                  env_vars, limits, labels, backend) -> Dict[str, Any]:
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
            if isinstance(dependencies, (str, bytes)):
                raise SandboxValidationError("dependencies must be a list of package specs",
                                             field="dependencies")
            deps = list(dependencies)
            if not all(isinstance(d, str) for d in deps):
                raise SandboxValidationError("dependencies must be a list of strings",
                                             field="dependencies")
            # Sent as given: executord installs no packages and refuses the field with 422,
            # which surfaces as SandboxValidationError rather than silently running the
            # script without them. An empty list asks for nothing and is not sent.
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
        if limits:
            body["limits"] = dict(limits)
        if labels:
            body["labels"] = dict(labels)
        backend = backend or self.backend
        if backend:
            body["backend"] = backend
        try:
            json.dumps(body, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise SandboxValidationError(f"inputs are not JSON-serializable: {e}",
                                         field="inputs") from None
        return body

    def _submit_body(self, body: Dict[str, Any], key: str, wait: float) -> Dict[str, Any]:
        path = "/v1/jobs"
        if wait > 0:
            wait = min(wait, MAX_SERVER_WAIT)
            path += f"?wait={wait:.3f}"
        data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
        return self._call("POST", path, data, headers={"Idempotency-Key": key},
                          read_timeout=wait)

    def _wait_until(self, job: Dict[str, Any], deadline: float, cancel: Optional[bool] = None
                    ) -> Dict[str, Any]:
        cancel = self.cancel_on_timeout if cancel is None else cancel
        while job["status"] not in FINAL_STATUSES:
            left = deadline - time.monotonic()
            if left <= 0:
                was = job["status"]
                if cancel:
                    try:
                        job = self.cancel(job["id"])
                    except SandboxError as e:  # best effort: the timeout is the news
                        log.warning("could not cancel job %s after the wait ran out: %s",
                                    job["id"], e)
                    if job["status"] in FINAL_STATUSES and job["status"] != "cancelled":
                        return job  # it ended just in time: report how
                raise SandboxTimeoutError(
                    f"job {job['id']} did not finish in time: still {was}"
                    f"{'; cancelled' if cancel else ''}",
                    error_type="SandboxTimeoutError", job_id=job["id"], status=job["status"],
                    job=job)
            job = self.get(job["id"], wait=min(self.poll_wait, left))
        return job

    def _job_error(self, job: Dict[str, Any]) -> SandboxError:
        err = job.get("error") or {}
        status = job["status"]
        etype = err.get("type")
        message = err.get("message") or f"job ended {status}"
        if status == "timed_out" or etype == "SandboxTimeoutError":
            cls = SandboxTimeoutError
        elif etype == "SandboxValidationError":
            cls = SandboxValidationError
        else:  # SandboxExecutionError, limits, Cancelled, ExecutorLost, SandboxError, ...
            cls = SandboxExecutionError
        stdout = stderr = None
        try:
            logs = self.read_logs(job["id"])
            stdout, stderr = logs["stdout"], logs["stderr"]
        except SandboxError as e:
            log.debug("could not fetch the logs of job %s: %s", job["id"], e)
        return cls(message, error_type=etype, traceback=err.get("traceback"), job_id=job["id"],
                   status=status, stdout=stdout, stderr=stderr, job=job)

    def _call(self, method: str, path: str, body: Optional[bytes] = None,
              headers: Optional[Dict[str, str]] = None, read_timeout: float = 0) -> Any:
        r = self._request(method, path, body, headers, read_timeout=read_timeout)
        if 200 <= r.status < 300:
            try:
                return r.json()
            except ValueError as e:
                raise SandboxExecutionError(f"{method} {path}: invalid JSON from the service: {e}",
                                            http_status=r.status) from None
        raise self._http_error(method, path, r)

    def _http_error(self, method: str, path: str, r: _Response) -> SandboxError:
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
            if fld == "dependencies":
                message = ("executord does not install packages, so dependencies cannot be "
                           f"honoured (service: {message})")
            return SandboxValidationError(message, **kw)
        if r.status in RETRY_STATUSES or r.status >= 500:
            return ExecutorUnavailableError(f"{method} {path}: HTTP {r.status}: {message}", **kw)
        return SandboxExecutionError(f"{method} {path}: HTTP {r.status}: {message}", **kw)

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                               context=self.ssl_context)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _request(self, method: str, path: str, body: Optional[bytes] = None,
                 headers: Optional[Dict[str, str]] = None, *, read_timeout: float = 0,
                 retry: bool = True) -> _Response:
        """One HTTP exchange, retried on 429/502/503/504 and on connection errors.
        Every request this client makes is safe to repeat: reads, cancel, and job
        submissions carrying an Idempotency-Key."""
        hdrs = {"Accept": "application/json", "User-Agent": "executord-python-client"}
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        hdrs.update(headers or {})
        timeout = self.request_timeout + read_timeout
        attempt = 0
        while True:
            reason: str
            retry_after: Optional[float] = None
            conn = self._connection(timeout)
            try:
                conn.request(method, self._prefix + path, body=body, headers=hdrs)
                resp = conn.getresponse()
                r = _Response(resp.status, resp.headers, resp.read())
            except ssl.SSLCertVerificationError as e:
                raise ExecutorUnavailableError(f"{method} {path}: TLS verification failed: {e}"
                                               ) from e
            except (OSError, http.client.HTTPException) as e:
                # Refused, reset, timed out, or closed before a (complete) response.
                reason = f"{type(e).__name__}: {e}"
                if not retry or attempt >= self.max_retries:
                    raise ExecutorUnavailableError(
                        f"{method} {self.base_url}{path}: no response after "
                        f"{attempt + 1} attempt(s): {reason}") from e
            else:
                if r.status not in RETRY_STATUSES or not retry or attempt >= self.max_retries:
                    return r
                reason = f"HTTP {r.status}"
                retry_after = _parse_retry_after(r.headers.get("Retry-After"))
            finally:
                conn.close()
            delay = min(self.max_backoff, self.backoff * (2 ** attempt))
            delay *= random.uniform(0.5, 1.0)  # jitter: clients refused together spread out
            if retry_after is not None:
                delay = max(delay, retry_after)
            attempt += 1
            log.info("%s %s: %s; retry %d/%d in %.2fs", method, path, reason, attempt,
                     self.max_retries, delay)
            if self.on_retry is not None:
                self.on_retry(attempt, reason, delay)
            time.sleep(delay)


def _parse_retry_after(value: Optional[str]) -> Optional[float]:
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


__all__ = ["ExecutorClient", "SandboxResult", "FINAL_STATUSES"]
