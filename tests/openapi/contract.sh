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
if [ "${1:-}" = "--suite" ]; then
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

echo "== OpenAPI lint (Redocly CLI, recommended-strict)"
# Only the findings: the CLI's Node.js version banner is noise here.
(cd "$here" && node_modules/.bin/redocly lint --config redocly.yaml --format=stylish "$spec" 2>&1 \
   | grep -v '[║╔╚]') ; [ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== OpenAPI document validation (swagger-parser)"
(cd "$here" && node validate.js "$spec") || status=1

if [ "${#logs[@]}" -gt 0 ]; then
  echo "== contract: recorded responses against openapi.yaml (openapi-backend + Ajv)"
  (cd "$here" && node contract.js --spec "$spec" --min "$min" "${logs[@]}") || status=1
fi
[ "$status" -eq 0 ] && echo "contract.sh: OK" || echo "contract.sh: FAILED"
exit "$status"
