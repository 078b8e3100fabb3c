"""Python client of executord, with Tracecat's ``run_python`` contract.

    from executord import ExecutorClient, SandboxExecutionError
    client = ExecutorClient("http://127.0.0.1:8080", token="...")
    client.run_python("def main(a, b):\\n    return a + b", inputs={"a": 2, "b": 3})  # -> 5

    from executord import AsyncExecutorClient      # asyncio: the same calls, awaited
    await AsyncExecutorClient("http://127.0.0.1:8080", token="...").run_python(...)
"""

from .aio import AsyncExecutorClient
from .client import FINAL_STATUSES, ExecutorClient, SandboxResult
from .errors import (
    ExecutorAuthError,
    ExecutorUnavailableError,
    PackageInstallError,
    SandboxClientError,
    SandboxError,
    SandboxExecutionError,
    SandboxTimeoutError,
    SandboxValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "ExecutorClient",
    "AsyncExecutorClient",
    "SandboxResult",
    "FINAL_STATUSES",
    "SandboxError",
    "SandboxClientError",
    "SandboxExecutionError",
    "SandboxTimeoutError",
    "SandboxValidationError",
    "PackageInstallError",
    "ExecutorAuthError",
    "ExecutorUnavailableError",
]
