#!/usr/bin/env bash
# Installs what is missing, builds (gcc; clang as a warnings check; clang with ASan+UBSan),
# then runs every test: the cmocka unit tests, bounded fuzzing, the integration suite with
# every response checked against openapi.yaml (plus the spec's lint), the Python client's
# tests, the dashboard in headless Chromium, the attack suite against the real binary, the
# Dockerfile replayed and run (tests/container), and
# the unit, integration, client and attack suites again under the sanitizers. Needs root
# (the sandboxes do). Screenshots of the dashboard test: build/test-artifacts/e2e.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test

jobs=$(nproc)
echo "== build (gcc)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs" >/dev/null
echo "== build (clang, warnings as errors)"
CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-clang -j"$jobs" >/dev/null
echo "== build (clang, AddressSanitizer + UndefinedBehaviorSanitizer)"
CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DEXECUTORD_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs" >/dev/null

echo "== OpenAPI validator and linter (npm)"
(cd tests/openapi && npm ci --silent --no-audit --no-fund >/dev/null)

echo "== unit tests"
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== fuzzing (libFuzzer, bounded)"
tests/fuzz/run.sh

# Two runs: each suite has its own conftest.py, and the attack suite checks that nothing
# of a sandbox is left on the host, so no integration server may still be running.
export EXECUTORD_BIN="$PWD/build/executord"
echo "== integration suite (real binary over HTTP), every response checked against openapi.yaml"
tests/openapi/contract.sh --suite
echo "== Python client (clients/python) against the real binary"
/usr/bin/python3 -m pytest -q -p no:cacheprovider clients/python/tests
echo "== dashboard end to end (headless Chromium)"
tests/e2e/run.sh
echo "== attack suite (real sandboxes: ephemeral and pool)"
EXECUTORD_SECURITY_BACKENDS=ephemeral,pool /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/security
echo "== container image (the Dockerfile replayed in debootstrap'd Debian 12 roots, then run)"
tests/container/run.sh

echo "== unit tests and integration suite under ASan + UBSan (LeakSanitizer on the service)"
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ctest --test-dir build-asan --output-on-failure -j"$jobs"
export EXECUTORD_BIN="$PWD/build-asan/executord" EXECUTORD_EXPECT_SANITIZER=1
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration
/usr/bin/python3 -m pytest -q -p no:cacheprovider clients/python/tests
echo "== attack suite under ASan + UBSan"
EXECUTORD_SECURITY_BACKENDS=ephemeral,pool /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/security
