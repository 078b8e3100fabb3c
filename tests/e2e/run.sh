#!/usr/bin/env bash
# End-to-end test of the web dashboard: starts the real executord (with an API token, so the
# token flow is exercised) on a free port with a temporary data folder, drives the dashboard
# in headless Chromium (playwright-core, the system's /usr/bin/chromium), stops the server.
# Then the browser attacks (attacks.test.mjs): pages of other loopback origins, and a DNS
# rebinding name, try to make the browser run or read jobs — against executord with its
# generated token and with --insecure-no-auth; every attempt must be refused, nothing stored.
#
#   tests/e2e/run.sh
#   EXECUTORD_BIN=path/to/executord   the binary (default: build/executord)
#   E2E_ARTIFACTS=dir                 screenshots and the server logs (default: build/test-artifacts/e2e)
#   CHROMIUM_BIN=path                 the browser (default: /usr/bin/chromium)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${EXECUTORD_BIN:-$root/build/executord}
artifacts=${E2E_ARTIFACTS:-$root/build/test-artifacts/e2e}
chromium=${CHROMIUM_BIN:-/usr/bin/chromium}

[ -x "$bin" ] || { echo "e2e: $bin is missing; build first (cmake -S . -B build && cmake --build build)" >&2; exit 1; }
[ -x "$chromium" ] || { echo "e2e: $chromium is missing; install it (apt-get install -y chromium, or scripts/deps.sh test)" >&2; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "e2e: node and npm are needed" >&2; exit 1; }

(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
mkdir -p "$artifacts"
artifacts=$(cd "$artifacts" && pwd)
rm -f "$artifacts"/*.png "$artifacts"/executord.log

work=$(mktemp -d /tmp/executord-e2e.XXXXXX)
mkdir "$work/data"
token=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
(umask 077 && printf '%s\n' "$token" > "$work/token")
log="$work/executord.log"
pid=""

cleanup() {
  local rc=$?
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  [ -f "$log" ] && cp "$log" "$artifacts/executord.log"
  rm -rf "$work"
  if [ "$rc" -eq 0 ]; then echo "e2e: passed; screenshots in $artifacts"
  else echo "e2e: FAILED (exit $rc); screenshots and executord.log in $artifacts" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Port 0: executord picks a free port and logs it ("listening on 127.0.0.1:PORT"). The
# caller's EXECUTORD_* settings are not passed on: the test wants the defaults.
unset_env=()
for v in $(compgen -e | grep '^EXECUTORD_' || true); do unset_env+=(-u "$v"); done
env "${unset_env[@]}" "$bin" --listen 127.0.0.1:0 --data-dir "$work/data" \
  --api-token-file "$work/token" 2> "$log" &
pid=$!
port=""
for _ in $(seq 1 300); do
  port=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$log" | head -n1 | sed 's/.*://' || true)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "e2e: executord exited during start-up:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "e2e: executord did not start listening within 30 s:" >&2; tail -n 50 "$log" >&2; exit 1; }
echo "e2e: executord pid $pid on 127.0.0.1:$port"

E2E_BASE_URL="http://127.0.0.1:$port" E2E_TOKEN="$token" E2E_ARTIFACTS="$artifacts" \
  CHROMIUM_BIN="$chromium" node "$here/dashboard.test.mjs"

# Browser attacks (attacks.test.mjs starts its own executord twice: with the generated
# token, and with --insecure-no-auth).
env "${unset_env[@]}" EXECUTORD_BIN="$bin" E2E_ARTIFACTS="$artifacts" CHROMIUM_BIN="$chromium" \
  node "$here/attacks.test.mjs"
