#!/usr/bin/env bash
# The contract test of openapi.yaml, in one command:
#   1. lint: Redocly CLI (redocly.yaml: recommended-strict, so warnings fail too);
#   2. spec validation: swagger-parser against the official OpenAPI 3.0 schema (validate.js);
#   3. contract: every recorded response validated against the spec (contract.js).
#
#   tests/openapi/contract.sh                 lint + validation only
#   tests/openapi/contract.sh LOG.jsonl...    ... and check responses recorded earlier
#                                             (EXECUTORD_CONTRACT_LOG=LOG.jsonl pytest ...)
#   tests/openapi/contract.sh --suite [ARGS]  ... run the integration suite (pytest ARGS,
#                                             default tests/integration) with recording on,
#                                             then check every response it received;
#                                             fails if pytest or any check fails.
#   tests/openapi/contract.sh --setup LOG     lint + validation, then LOG emptied: ctest's
#                                             fixture before the integration tests, each
#                                             appending its responses to LOG
#   tests/openapi/contract.sh --check LOG     check the responses in LOG (ctest's cleanup
#                                             fixture after them); EXECUTORD_CONTRACT_MIN
#                                             responses at least (default 1; none recorded
#                                             at all passes, as a file may speak raw HTTP
#                                             only; scripts/test.sh asks for 200)
# Needs Node.js + npm (runs `npm ci` here when node_modules is missing) and, for --suite,
# EXECUTORD_BIN (default build/executord) and /usr/bin/python3 with pytest.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
spec="$repo/openapi.yaml"
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true REDOCLY_SUPPRESS_NOTIFICATIONS=true

if [ ! -d "$here/node_modules/openapi-backend" ] || [ ! -d "$here/node_modules/@redocly/cli" ]; then
  (cd "$here" && npm ci --silent --no-audit --no-fund) || { echo "contract: npm ci failed" >&2; exit 2; }
fi

status=0
logs=()
min=1
lint=1
if [ "${1:-}" = "--setup" ]; then
  [ $# -eq 2 ] || { echo "contract: --setup LOG" >&2; exit 2; }
  mkdir -p "$(dirname "$2")" && : >"$2" || { echo "contract: cannot create $2" >&2; exit 2; }
elif [ "${1:-}" = "--check" ]; then
  [ $# -eq 2 ] || { echo "contract: --check LOG" >&2; exit 2; }
  [ -f "$2" ] || { echo "contract: $2 is missing: run the fixture first (contract.sh --setup)" >&2; exit 2; }
  min="${EXECUTORD_CONTRACT_MIN:-1}"
  if [ ! -s "$2" ] && [ -z "${EXECUTORD_CONTRACT_MIN:-}" ]; then
    echo "contract: no response recorded in $2, nothing to check"
    exit 0
  fi
  logs=("$2")
  lint=0
elif [ "${1:-}" = "--suite" ]; then
  shift
  log="$(mktemp /tmp/executord-contract.XXXXXX.jsonl)"
  echo "== integration suite with response recording ($log)"
  export EXECUTORD_BIN="${EXECUTORD_BIN:-$repo/build/executord}"
  (cd "$repo" && EXECUTORD_CONTRACT_LOG="$log" /usr/bin/python3 -m pytest -q -p no:cacheprovider \
      "${@:-tests/integration}") || status=1
  logs=("$log")
  min=200  # far fewer means recording is broken, not that the service is right
else
  logs=("$@")
fi

if [ "$lint" -eq 1 ]; then
  echo "== OpenAPI lint (Redocly CLI, recommended-strict)"
  # Only the findings: the CLI's Node.js version banner is noise here.
  (cd "$here" && node_modules/.bin/redocly lint --config redocly.yaml --format=stylish "$spec" 2>&1 \
     | grep -v '[║╔╚]') ; [ "${PIPESTATUS[0]}" -eq 0 ] || status=1

  echo "== OpenAPI document validation (swagger-parser)"
  (cd "$here" && node validate.js "$spec") || status=1
fi

if [ "${#logs[@]}" -gt 0 ]; then
  echo "== contract: recorded responses against openapi.yaml (openapi-backend + Ajv)"
  (cd "$here" && node contract.js --spec "$spec" --min "$min" "${logs[@]}") || status=1
fi
[ "$status" -eq 0 ] && echo "contract.sh: OK" || echo "contract.sh: FAILED"
exit "$status"
