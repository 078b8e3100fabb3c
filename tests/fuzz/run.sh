#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, ASan + UBSan, build-fuzz/) and fuzzes each for a
# bounded time: FUZZ_SECONDS each (default 20; at least 60 s in all). Starts from the seed
# corpus in tests/fuzz/corpus/<name>/, working on a scratch copy so the repository's
# corpus stays small. Exits non-zero on any crash, leak, sanitizer report or failed
# invariant; the reproducer is kept under $FUZZ_OUT (default build-fuzz/fuzz-out).
#   tests/fuzz/run.sh                  every harness (request, query, result, requirements)
#   tests/fuzz/run.sh query            only these (ctest: fuzz_request, fuzz_query, ...)
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${FUZZ_SECONDS:-20}
all=(request query result requirements)
harnesses=("${@:-${all[@]}}")
for h in "${harnesses[@]}"; do
    [ -d "tests/fuzz/corpus/$h" ] || { echo "fuzz: unknown harness $h (${all[*]})" >&2; exit 2; }
done
# The 60 s floor is for the whole set, so one harness run alone gets its share of it.
min_each=$(((60 + ${#all[@]} - 1) / ${#all[@]}))
if ((seconds < min_each)); then
    seconds=$min_each
fi
jobs=$(nproc)
out=${FUZZ_OUT:-build-fuzz/fuzz-out}

echo "== build (clang, libFuzzer + ASan + UBSan)"
CC=clang cmake -S . -B build-fuzz -DEXECUTORD_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$jobs" --target "${harnesses[@]/#/fuzz_}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

mkdir -p "$out"
failed=()
for h in "${harnesses[@]}"; do
    work="$out/corpus-$h"
    rm -rf "$work" "$out/$h.log" "$out/$h"-*
    mkdir -p "$work"
    cp -r "tests/fuzz/corpus/$h/." "$work/"
    echo "== fuzz_$h: ${seconds} s"
    if build-fuzz/fuzz_"$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$out/$h-" "$work" >"$out/$h.log" 2>&1; then
        grep -E '^#[0-9]+[[:space:]]+DONE' "$out/$h.log" || true
    else
        echo "fuzz_$h FAILED; log: $out/$h.log" >&2
        grep -E -A30 'ERROR|invariant failed|runtime error' "$out/$h.log" | head -60 >&2 || true
        ls "$out"/"$h"-* 2>/dev/null >&2 || true
        failed+=("$h")
    fi
done

if ((${#failed[@]})); then
    echo "fuzzing failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzzing passed: ${harnesses[*]} (${seconds} s each)"
