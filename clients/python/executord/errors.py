"""Exceptions raised by the executord client.

Tracecat's names (SandboxExecutionError, SandboxTimeoutError, SandboxValidationError,
PackageInstallError) share one base, SandboxError, as in Tracecat's
``tracecat.sandbox.exceptions``. Transport problems are SandboxExecutionError
subclasses so code written against Tracecat's run_python, which only knows
those names, still catches them.
"""

from __future__ import annotations

from typing import Any, Dict, Optional


class SandboxError(Exception):
    """Base class of every error this client raises.

    Attributes (None when not known):
      message     the service's message (``job.error.message`` or the HTTP error's message)
      error_type  ``job.error.type`` (``SandboxExecutionError``, ``MemoryLimitExceeded``, ...)
      traceback   the script's Python traceback (``job.error.traceback``)
      job_id      the job's id; None only when no job was created (refused submission)
      status      the job's final status (``failed``, ``timed_out``, ``cancelled``, ...)
      stdout      what the script printed (fetched from ``/logs`` when the job failed)
      stderr      what the script wrote to stderr
      job         the job document as returned by the service
      http_status the HTTP status of a refused request (401, 422, 429, ...)
      code        the service's error code of a refused request (``invalid_field``, ...)
      field       the offending request field of a 422 (``env_vars.X``, ``dependencies``, ...)
    """

    def __init__(
        self,
        message: str,
        *,
        error_type: Optional[str] = None,
        traceback: Optional[str] = None,
        job_id: Optional[str] = None,
        status: Optional[str] = None,
        stdout: Optional[str] = None,
        stderr: Optional[str] = None,
        job: Optional[Dict[str, Any]] = None,
        http_status: Optional[int] = None,
        code: Optional[str] = None,
        field: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.traceback = traceback
        self.job_id = job_id
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.job = job
        self.http_status = http_status
        self.code = code
        self.field = field

    # Tracecat's SandboxClient exposes the error text only; keep str() to the message.
    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        extra = []
        for name in ("error_type", "job_id", "status", "http_status", "code", "field"):
            value = getattr(self, name)
            if value is not None:
                extra.append(f"{name}={value!r}")
        return f"{type(self).__name__}({self.message!r}{', ' if extra else ''}{', '.join(extra)})"


# Tracecat's HTTP sandbox client names its base SandboxClientError.
SandboxClientError = SandboxError


class SandboxExecutionError(SandboxError):
    """The script raised, the job failed for any other reason (resource limits, sandbox
    could not be built, executor lost), was cancelled, or the service could not be used."""


class SandboxTimeoutError(SandboxError):
    """The job ended ``timed_out``, or the client's overall wait ran out."""


class SandboxValidationError(SandboxError):
    """The request was invalid: refused by the client's own checks, refused by the
    service (400/413/422: unknown field, a requirement string in ``dependencies`` that is
    not a plain requirement, dependencies without a package source configured, bad env
    var name, ...), or the script failed validation (syntax error, no entry function)."""


class PackageInstallError(SandboxError):
    """The job's ``dependencies`` could not be installed (``error.type`` =
    ``PackageInstallError``): pip's message in ``message``, its output in ``stdout`` and
    ``stderr``. As in Tracecat, a sibling of SandboxExecutionError, not a subclass."""


class ExecutorAuthError(SandboxExecutionError):
    """401: the service requires a bearer token and none, or a wrong one, was sent."""


class ExecutorUnavailableError(SandboxExecutionError):
    """The service could not be reached or kept refusing (429 queue full, 503 shutting
    down, 502/504, connection errors) after all retries; or answered 5xx."""
