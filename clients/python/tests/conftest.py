"""The fixtures live in exd_fixtures.py (imported by the test modules); this only names
the binary in pytest's header."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from exd_fixtures import BIN  # noqa: E402


def pytest_report_header(config):
    return f"executord binary (client tests): {BIN}"
