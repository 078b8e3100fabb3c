#!/usr/bin/env bash
# pytest the way every Python suite here runs: /usr/bin/python3 (the python3 on PATH may
# lack pytest), no .pytest_cache in the tree, the binary under test from EXECUTORD_BIN
# (default build/executord), from the repository's root so paths are the same wherever
# it is called from.
#   tests/pytest.sh tests/integration/test_http_api.py -k cancel
# Exits as pytest does, except 5 (no test collected or selected) -> 77, which ctest
# reports as skipped.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export EXECUTORD_BIN="${EXECUTORD_BIN:-$repo/build/executord}"
cd "$repo"
/usr/bin/python3 -m pytest -q -p no:cacheprovider "$@"
rc=$?
[ "$rc" -eq 5 ] && { echo "SKIPPED: no test collected or selected ($*)" >&2; exit 77; }
exit "$rc"
