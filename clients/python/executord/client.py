"""The blocking executord client, with Tracecat's ``run_python`` contract.

``ExecutorClient.run_python`` submits a job with an ``Idempotency-Key`` and a ``?wait=``
long-poll, keeps long-polling ``GET /v1/jobs/{id}?wait=`` until the job is final (bounded
by the job's timeout plus a margin), and turns the outcome into a return value or one of
the exceptions in ``executord.errors``. What it does lives in ``_core`` (shared with the
asyncio client); this file performs its HTTP exchanges (http.client) and pauses.
"""

from __future__ import annotations

import http.client
import ssl
import time
from typing import Any, Dict, Iterable, Mapping, Optional

from . import _core
from ._core import (
    DEFAULT_TIMEOUT_SECONDS,
    FINAL_STATUSES,
    ClientConfig,
    Exchange,
    Failure,
    Flow,
    Response,
    SandboxResult,
    Tracker,
)


class ClientMethods(ClientConfig):
    """The calls of both clients, each written once: it builds the operation (``_core``)
    and hands it to the client's driver. ExecutorClient's drivers block and return the
    result; AsyncExecutorClient's are coroutines, so there each call is awaited."""

    def _drive(self, flow: Flow) -> Any:
        raise NotImplementedError

    def _execute(self, track: Tracker, flow: Flow, output_only: bool) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------ the main API

    def run_python(
        self,
        script: str,
        inputs: Optional[Mapping[str, Any]] = None,
        dependencies: Optional[Iterable[str]] = None,
        timeout_seconds: Optional[float] = DEFAULT_TIMEOUT_SECONDS,
        allow_network: bool = False,
        env_vars: Optional[Mapping[str, str]] = None,
        *,
        limits: Optional[Mapping[str, Optional[int]]] = None,
        labels: Optional[Mapping[str, str]] = None,
        backend: Optional[str] = None,
    ) -> Any:
        """Runs ``script`` (its ``main(**inputs)``, or its only public function) with the
        pip packages ``dependencies`` installed and returns the function's return value as
        the service serialised it to JSON.

        Raises SandboxValidationError (invalid request or requirement string, no package
        source configured, syntax error, no entry function), PackageInstallError (the
        dependencies could not be installed), SandboxExecutionError (the script raised; the
        job failed for another reason or was cancelled; ExecutorAuthError on 401;
        ExecutorUnavailableError when the service stayed unreachable or busy through every
        retry) or SandboxTimeoutError (the job timed out, or the wait for it ran out).
        Each carries ``job_id`` (None when no job was created).
        """
        track = Tracker()
        return self._execute(track, _core.execute(
            self, track, script, inputs, dependencies, timeout_seconds, allow_network,
            env_vars, limits, labels, backend, False), output_only=True)

    def execute(
        self,
        script: str,
        inputs: Optional[Mapping[str, Any]] = None,
        dependencies: Optional[Iterable[str]] = None,
        timeout_seconds: Optional[float] = DEFAULT_TIMEOUT_SECONDS,
        allow_network: bool = False,
        env_vars: Optional[Mapping[str, str]] = None,
        *,
        limits: Optional[Mapping[str, Optional[int]]] = None,
        labels: Optional[Mapping[str, str]] = None,
        backend: Optional[str] = None,
        fetch_logs: bool = True,
    ) -> SandboxResult:
        """run_python, returning a SandboxResult (result, stdout, stderr, job) instead of the
        bare result. Raises exactly what run_python raises."""
        track = Tracker()
        return self._execute(track, _core.execute(
            self, track, script, inputs, dependencies, timeout_seconds, allow_network,
            env_vars, limits, labels, backend, fetch_logs), output_only=False)

    # ------------------------------------------------------------------ lower-level helpers

    def submit(
        self,
        script: str,
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        dependencies: Optional[Iterable[str]] = None,
        timeout_seconds: Optional[float] = DEFAULT_TIMEOUT_SECONDS,
        allow_network: bool = False,
        env_vars: Optional[Mapping[str, str]] = None,
        limits: Optional[Mapping[str, Optional[int]]] = None,
        labels: Optional[Mapping[str, str]] = None,
        backend: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        wait: float = 0,
    ) -> Dict[str, Any]:
        """POST /v1/jobs; returns the job document (final if ``wait`` sufficed). A fresh
        Idempotency-Key is generated unless one is given; retries reuse it."""
        body = _core.job_body(self, script, inputs, dependencies, timeout_seconds,
                              allow_network, env_vars, limits, labels, backend)
        return self._drive(_core.submit(self, body, idempotency_key or _core.new_key(), wait))

    def get(self, job_id: str, wait: float = 0) -> Dict[str, Any]:
        """GET /v1/jobs/{id}[?wait=]."""
        return self._drive(_core.get(self, job_id, wait))

    def wait(self, job_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Long-polls until the job is final and returns it; SandboxTimeoutError if
        ``timeout`` seconds pass first (the job is left alone)."""
        return self._drive(_core.wait(self, job_id, timeout))

    def logs(self, job_id: str, *, stdout_offset: int = 0, stderr_offset: int = 0,
             limit: Optional[int] = None) -> Dict[str, Any]:
        """GET /v1/jobs/{id}/logs: one window of each stream, ``{stdout, stderr, stdout_bytes,
        ..., status, window}``: at most ``limit`` bytes (the service's default 1 MiB, at most
        4 MiB) of each stream from its offset; ``window[stream]["next_offset"]`` is where the
        next window starts and ``window[stream]["truncated"]`` whether more is stored. For
        all of the output, see ``read_logs``."""
        return self._drive(_core.logs(self, job_id, stdout_offset, stderr_offset, limit))

    def read_logs(self, job_id: str, max_bytes: Optional[int] = None) -> Dict[str, Any]:
        """The job's stdout and stderr so far, paging through the logs windows: at most
        ``max_bytes`` (default: the client's ``max_log_bytes``) of each stream, from its start.
        Returns ``{stdout, stderr, stdout_bytes, stderr_bytes, status, complete}``;
        ``complete`` is False when ``max_bytes`` cut a stream (``*_bytes`` are the stored
        totals). Windows end between characters, so the texts are whole (and may stop up to
        3 bytes short of ``max_bytes``)."""
        return self._drive(_core.read_logs(self, job_id, max_bytes))

    def cancel(self, job_id: str) -> Dict[str, Any]:
        """POST /v1/jobs/{id}/cancel; returns the job. A job that already ended is
        returned as it is (the service's 409 job_finished is not an error here)."""
        return self._drive(_core.cancel(self, job_id))

    def delete(self, job_id: str) -> None:
        """DELETE /v1/jobs/{id} (a finished job and its logs)."""
        return self._drive(_core.delete(self, job_id))

    def list_jobs(
        self,
        status: Optional[str] = None,
        label: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> Dict[str, Any]:
        """GET /v1/jobs: ``{jobs: [...], next_cursor}``, newest first; ``label`` is ``key:value``."""
        return self._drive(_core.list_jobs(self, status, label, limit, cursor))

    def backends(self) -> Dict[str, Any]:
        """GET /v1/backends."""
        return self._drive(_core.backends(self))

    def ready(self) -> bool:
        """True when GET /readyz answers 200."""
        return self._drive(_core.ready(self))


class ExecutorClient(ClientMethods):
    """Blocking client of one executord service.

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
    ssl_context      for https base URLs (None: Python's default verification)
    max_log_bytes    the most of each stream that ``execute`` and the exceptions collect
                     (``read_logs``); the service keeps up to the job's max_output_bytes
    on_retry         optional callable(attempt, reason, delay) called before each retry sleep
    default_limits   limits sent with every job unless the call's ``limits`` say otherwise;
                     None = Tracecat's ``{"memory_mb": 2048, "cpu_seconds": 300}``, ``{}`` =
                     the service's defaults; a None value leaves that limit to the service
    """

    def __enter__(self) -> "ExecutorClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def _execute(self, track: Tracker, flow: Flow, output_only: bool) -> Any:
        result = self._drive(flow)
        return result.output if output_only else result

    def _drive(self, flow: Flow) -> Any:
        """Performs what ``flow`` yields until it returns (or raises)."""
        got: Any = None
        try:
            while True:
                try:
                    op = flow.send(got)
                except StopIteration as done:
                    return done.value
                if isinstance(op, Exchange):
                    got = self._exchange(op)
                else:
                    time.sleep(op.seconds)
                    got = None
        finally:
            flow.close()

    def _exchange(self, ex: Exchange) -> Any:
        """One request on a fresh connection: a Response, or a Failure."""
        if self._scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=ex.timeout, context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=ex.timeout)
        try:
            conn.request(ex.method, self._prefix + ex.path, body=ex.body, headers=ex.headers)
            resp = conn.getresponse()
            return Response(resp.status, resp.headers, resp.read())
        except ssl.SSLCertVerificationError as e:
            return Failure(f"TLS verification failed: {e}", fatal=True, exc=e)
        except (OSError, http.client.HTTPException) as e:
            # Refused, reset, timed out, or closed before a (complete) response.
            return Failure(f"{type(e).__name__}: {e}", exc=e)
        finally:
            conn.close()


__all__ = ["ExecutorClient", "SandboxResult", "FINAL_STATUSES"]
