#!/bin/sh
# One command for the benchmark: builds build/ if needed, starts executord on a free
# port with a temporary data folder, measures, prints and records the table.
# Flags go to bench/bench.py (see bench/README.md or --help); with --network first, to
# bench/network.py instead (the cost of allow_network; root, in test namespaces); with
# --deps first, to bench/deps.py (a job with dependencies on a cache hit vs without); with
# --replicas first, to bench/replicas.py (1 vs 3 replicas on one PostgreSQL; PostgreSQL vs SQLite).
if [ "${1-}" = --replicas ]; then
    shift
    exec /usr/bin/python3 "$(dirname "$0")/replicas.py" "$@"
fi
if [ "${1-}" = --deps ]; then
    shift
    exec /usr/bin/python3 "$(dirname "$0")/deps.py" "$@"
fi
if [ "${1-}" = --network ]; then
    shift
    exec /usr/bin/python3 "$(dirname "$0")/network.py" "$@"
fi
exec /usr/bin/python3 "$(dirname "$0")/bench.py" "$@"
