#!/bin/sh
# One command for the profile of issue 16: where a trivial job's time and CPU go per backend
# (pool, ephemeral), at concurrency 1 and at saturation; as root (strace, perf, sandboxes).
# Flags go to bench/profile_job.py (--help); writes bench/results/<date>-profile.md.
exec /usr/bin/python3 "$(dirname "$0")/profile_job.py" "$@"
