#!/usr/bin/env bash
# Runs a test suite only where it can run: checks what it needs (root, programs), then
# execs it. Missing anything, it says what and exits 77, which ctest reports as skipped;
# with EXECUTORD_TESTS_REQUIRE_ALL=1 (scripts/test.sh, CI) it exits 1 instead, so a
# missing tool fails the run rather than hiding a suite.
#   tests/require.sh [--root] [--cmd PROGRAM]... [--missing WHAT] -- COMMAND [ARG]...
# (--missing: found absent already, e.g. a library when cmake configured the build)
set -euo pipefail

missing=()
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ "$(id -u)" -eq 0 ] || missing+=("root"); shift ;;
    --cmd) command -v "$2" >/dev/null 2>&1 || missing+=("$2"); shift 2 ;;
    --missing) missing+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) echo "require.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "require.sh: no command after --" >&2; exit 2; }

if [ ${#missing[@]} -gt 0 ]; then
  echo "SKIPPED ($*): needs ${missing[*]} (scripts/deps.sh test installs the tools)" >&2
  [ "${EXECUTORD_TESTS_REQUIRE_ALL:-0}" = 1 ] && exit 1
  exit 77
fi
exec "$@"
