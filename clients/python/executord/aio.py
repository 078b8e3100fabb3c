"""The asyncio executord client: ExecutorClient's calls, awaited, never blocking the loop.

What it does lives in ``_core`` (shared with the blocking client); this file performs its
HTTP/1.1 exchanges on asyncio streams (one connection per request, as the blocking client
does) and its pauses with asyncio.sleep. Cancelling a task awaiting ``run_python`` or
``execute`` cancels the job on the service (a shielded request that completes even if the
task is cancelled again) before the task ends with CancelledError.
"""

from __future__ import annotations

import asyncio
import email.parser
import functools
import http.client
import logging
import ssl
from typing import Any, Callable, Optional, Set

from . import _core
from ._core import Exchange, Failure, Flow, Response, Tracker
from .client import ClientMethods
from .errors import SandboxError

log = logging.getLogger("executord.client")

MAX_HEADER_LINES = 100  # http.client's bound


class _Malformed(Exception):
    """The service's answer is not HTTP/1.x as this client reads it."""


def _awaited(method: Callable[..., Any]) -> Callable[..., Any]:
    """ClientMethods' ``method`` as a coroutine function (same signature and docs): with
    this client's drivers, the method returns a coroutine, awaited here."""

    @functools.wraps(method)
    async def call(self: "AsyncExecutorClient", *args: Any, **kwargs: Any) -> Any:
        return await method(self, *args, **kwargs)

    return call


class AsyncExecutorClient(ClientMethods):
    """asyncio client of one executord service. Takes ExecutorClient's arguments and has
    its methods, as coroutine functions (``await client.run_python(...)``).

    ``run_python``/``execute``: cancelling the awaiting task (``task.cancel()``,
    ``asyncio.wait_for`` running out, a TaskGroup failing) sends ``POST
    /v1/jobs/{id}/cancel`` before CancelledError reaches the caller. Interrupted during the
    submission itself, the client replays the submission with its Idempotency-Key (the
    service answers with the job it already has) to learn the id, and cancels that job.
    ``async with`` waits, at its end, for cancel requests still under way.
    """

    def __init__(self, base_url: str, token: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(base_url, token, **kwargs)
        # Cancel requests outliving the task that asked for them: kept referenced (the
        # loop only holds tasks weakly) and awaited by aclose().
        self._cleanup: Set["asyncio.Task[Any]"] = set()

    async def __aenter__(self) -> "AsyncExecutorClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Waits for the cancel requests of interrupted calls still under way."""
        while self._cleanup:
            await asyncio.gather(*list(self._cleanup), return_exceptions=True)

    # ------------------------------------------------------------------ the calls

    run_python = _awaited(ClientMethods.run_python)
    execute = _awaited(ClientMethods.execute)
    submit = _awaited(ClientMethods.submit)
    get = _awaited(ClientMethods.get)
    wait = _awaited(ClientMethods.wait)
    logs = _awaited(ClientMethods.logs)
    read_logs = _awaited(ClientMethods.read_logs)
    cancel = _awaited(ClientMethods.cancel)
    delete = _awaited(ClientMethods.delete)
    list_jobs = _awaited(ClientMethods.list_jobs)
    backends = _awaited(ClientMethods.backends)
    ready = _awaited(ClientMethods.ready)

    async def _execute(self, track: Tracker, flow: Flow, output_only: bool) -> Any:
        """Drives a run_python/execute; cancelled before the job ended, cancels the job."""
        try:
            result = await self._drive(flow)
        except asyncio.CancelledError:
            if not track.final and (track.job_id is not None or track.maybe_submitted):
                task = asyncio.ensure_future(self._cancel_interrupted(track))
                self._cleanup.add(task)
                task.add_done_callback(self._cleanup.discard)
                # Shielded: cancelled again meanwhile, this await ends at once but the
                # cancel request goes on in its own task.
                await asyncio.shield(task)
            raise
        return result.output if output_only else result

    async def _cancel_interrupted(self, track: Tracker) -> None:
        try:
            job = await self._drive(_core.cancel_interrupted(self, track))
            log.info("job %s cancelled: its caller was cancelled", job.get("id"))
        except SandboxError as e:
            log.warning("could not cancel job %s of a cancelled call: %s",
                        track.job_id or "(id unknown)", e)

    # ------------------------------------------------------------------ the driver

    async def _drive(self, flow: Flow) -> Any:
        """Performs what ``flow`` yields until it returns (or raises)."""
        got: Any = None
        try:
            while True:
                try:
                    op = flow.send(got)
                except StopIteration as done:
                    return done.value
                if isinstance(op, Exchange):
                    got = await self._exchange(op)
                else:
                    await asyncio.sleep(op.seconds)
                    got = None
        finally:
            flow.close()

    async def _exchange(self, ex: Exchange) -> Any:
        """One request on a fresh connection, bounded by ``ex.timeout``: a Response, or a
        Failure. CancelledError passes through."""
        try:
            return await asyncio.wait_for(self._http(ex), ex.timeout)
        except ssl.SSLCertVerificationError as e:
            return Failure(f"TLS verification failed: {e}", fatal=True, exc=e)
        except asyncio.TimeoutError as e:  # an OSError too from Python 3.11 on
            return Failure(f"TimeoutError: no complete answer in {ex.timeout:.0f}s", exc=e)
        except (OSError, EOFError, ValueError, _Malformed) as e:
            # Refused, reset, closed before a (complete) response (IncompleteReadError is
            # an EOFError), a line beyond the stream's limit (ValueError), not HTTP.
            return Failure(f"{type(e).__name__}: {e}", exc=e)

    async def _http(self, ex: Exchange) -> Response:
        tls = None
        if self._scheme == "https":
            tls = self.ssl_context or ssl.create_default_context()
        port = self._port or (443 if tls else 80)
        reader, writer = await asyncio.open_connection(
            self._host, port, ssl=tls, server_hostname=self._host if tls else None)
        try:
            host = f"[{self._host}]" if ":" in self._host else self._host
            if self._port:
                host += f":{self._port}"
            head = [f"{ex.method} {self._prefix + ex.path} HTTP/1.1", f"Host: {host}",
                    "Connection: close"]
            head += [f"{k}: {v}" for k, v in ex.headers.items()]
            if ex.body is not None or ex.method in ("POST", "PUT", "PATCH"):
                head.append(f"Content-Length: {len(ex.body or b'')}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (ex.body or b""))
            await writer.drain()
            ex.sent = True
            return await _read_response(reader)
        finally:
            writer.close()


async def _read_response(reader: asyncio.StreamReader) -> Response:
    """An HTTP/1.x response: status line, headers, then a body framed by Content-Length,
    chunked encoding, or the end of the connection (the request said Connection: close)."""
    line = await reader.readline()
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise _Malformed(f"not an HTTP/1.x status line: {line[:100]!r}")
    status = int(parts[1])
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise EOFError("connection closed inside the headers")
        if line in (b"\r\n", b"\n"):
            break
        lines.append(line)
        if len(lines) > MAX_HEADER_LINES:
            raise _Malformed(f"more than {MAX_HEADER_LINES} header lines")
    headers = email.parser.Parser(_class=http.client.HTTPMessage).parsestr(
        b"".join(lines).decode("iso-8859-1"))
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        chunks = []
        while True:
            size = int(((await reader.readline()).split(b";")[0].strip() or b"x"), 16)
            if size == 0:
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)  # the chunk's CRLF
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        body = b"".join(chunks)
    elif headers.get("Content-Length") is not None:
        body = await reader.readexactly(int(headers["Content-Length"]))
    elif status in (204, 304) or status < 200:
        body = b""
    else:
        body = await reader.read()
    return Response(status, headers, body)


__all__ = ["AsyncExecutorClient"]
