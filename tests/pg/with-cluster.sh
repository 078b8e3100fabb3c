#!/usr/bin/env bash
# Runs a command beside a throw-away PostgreSQL cluster (tests/pg/cluster.sh) in a fresh
# temporary folder, with EXECUTORD_TEST_PG_URL set to it; stops and removes the cluster
# whatever the command did, and exits with the command's status.
#   tests/pg/with-cluster.sh COMMAND [ARG]...
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG]..." >&2; exit 2; }
# Short: the socket path lives inside it and must fit in 107 bytes.
dir=$(mktemp -d /tmp/pg.XXXXXX) || exit 1
trap '"$here/cluster.sh" stop "$dir"' EXIT
url=$("$here/cluster.sh" start "$dir") || exit 1
export EXECUTORD_TEST_PG_URL="$url"
"$@"
