#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for tests: initdb in DIR, listening on a unix socket in
# DIR only (listen_addresses=''), no fsync, a database `executord`. `start` waits until it
# accepts connections and prints the URL to use; `stop` stops it and removes DIR.
#   tests/pg/cluster.sh start DIR   ->  postgresql:///executord?host=DIR&user=postgres
#   tests/pg/cluster.sh stop DIR
# As root, the cluster runs as the user `postgres` (initdb refuses root).
set -euo pipefail

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$PGBIN/initdb" ] || { echo "cluster.sh: no PostgreSQL server (apt-get install postgresql-15)" >&2; exit 1; }

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$(realpath -m "$2")

# Runs a server program as the cluster's owner.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
  fi
  chmod 0700 "$dir"
  as_owner "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  # The socket's path must fit in sun_path (107 bytes): DIR itself, not DIR/data.
  as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses='' -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  for _ in $(seq 1 100); do
    if "$PGBIN/pg_isready" -q -h "$dir" -U postgres; then break; fi
    sleep 0.1
  done
  "$PGBIN/pg_isready" -q -h "$dir" -U postgres || { echo "cluster.sh: not ready" >&2; exit 1; }
  "$PGBIN/createdb" -h "$dir" -U postgres executord
  echo "postgresql:///executord?host=$dir&user=postgres"
}

stop() {
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null || true
  fi
  rm -rf "$dir"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
