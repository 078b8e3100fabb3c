#!/usr/bin/env bash
# Quick start: installs what is missing, builds, and runs executord in the foreground with
# its embedded defaults (127.0.0.1:8080, data in ./executord-data). Extra flags pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh run
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target executord >/dev/null
exec build/executord "$@"
