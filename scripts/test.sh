#!/usr/bin/env bash
# Installs what is missing, builds (gcc; clang as a warnings check; clang with ASan+UBSan),
# then runs every test suite through its ctest label (tests/CMakeLists.txt, docs/testing.md):
# unit (cmocka), fuzz (libFuzzer, bounded), integration (every response checked against
# openapi.yaml, plus the spec's lint), pg (the integration suite again on a throw-away
# PostgreSQL), replicas (several executord on one PostgreSQL queue: cross-replica calls,
# kill -9, a database restart, migrations), client (the Python client), e2e (the dashboard in
# headless Chromium), security (the attack suite, per backend), network (jobs' network and
# egress policy, in namespaces the suite creates), deps (pip installs from the suite's own
# index and wheelhouse), container (the Dockerfile replayed and
# run); then unit, integration, client, security and network again under the sanitizers.
# Needs root (the sandboxes do); a suite missing a tool fails here rather than being
# skipped. Artifacts: build/test-artifacts/ (e2e screenshots, the contract's log).
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

# Every registered suite must run here: a missing tool fails instead of skipping.
export EXECUTORD_TESTS_REQUIRE_ALL=1
# The whole integration suite records far more responses than this; fewer means the
# recording is broken, not that the service is right.
export EXECUTORD_CONTRACT_MIN=200

# ctest on one build folder and exactly one label; extra arguments go to ctest.
label() {
  local dir=$1 name=$2
  shift 2
  ctest --test-dir "$dir" -L "^${name}\$" --output-on-failure "$@"
}

echo "== unit tests (cmocka)"
label build unit -j"$jobs"
echo "== fuzzing (libFuzzer, bounded)"
label build fuzz
# One suite at a time from here: the attack suite checks that nothing of a sandbox is
# left on the host, so no integration server may still be running beside it.
echo "== integration suite (real binary over HTTP), every response checked against openapi.yaml"
label build integration
echo "== integration suite against PostgreSQL (a throw-away cluster, a fresh database per server)"
label build pg
echo "== replicas on one PostgreSQL queue (cross-replica calls, kill -9, database restart, migrations)"
label build replicas
echo "== Python client (clients/python) against the real binary"
label build client
echo "== dashboard end to end (headless Chromium)"
label build e2e
echo "== attack suite (real sandboxes: ephemeral and pool)"
label build security
echo "== network suite (jobs' network namespace, egress policy and DNS, in test-created namespaces)"
label build network
echo "== dependencies suite (pip installs from the suite's own index and wheelhouse, in test-created namespaces)"
label build deps
echo "== container image (the Dockerfile replayed in debootstrap'd Debian 12 roots, then run)"
label build container

echo "== unit tests, integration suite and Python client under ASan + UBSan (LeakSanitizer on the service)"
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export EXECUTORD_EXPECT_SANITIZER=1
label build-asan unit -j"$jobs"
label build-asan integration
label build-asan client
echo "== attack suite under ASan + UBSan"
label build-asan security
echo "== network suite under ASan + UBSan"
label build-asan network
