#!/usr/bin/env bash
# Verifies the Dockerfile without a Docker engine: replays it in debootstrap'd Debian 12
# roots and runs the resulting image's ENTRYPOINT as PID 1 of new PID/mount namespaces.
#
#   tests/container/run.sh            (root; Debian's package archive must be reachable)
#
#   CONTAINER_ROOTS=dir     the cache (default build/container-roots):
#                             base-bookworm/, base-bookworm-slim/  debootstrap --variant=minbase
#                               bookworm, post-processed like Docker's debian:12 / debian:12-slim
#                               (.ok stamps mark them complete; kept between runs)
#                             apt-archives/   the .deb files apt downloaded inside the stages
#                               (bound on /var/cache/apt/archives during RUN; kept)
#                             stage-N-NAME/   each stage's root, rebuilt from its base every run
#                             image.json      the final stage's config (ENV, ENTRYPOINT, ...)
#                           rm -rf it (or CONTAINER_REFRESH=1 for the bases) to start cold.
#   DEBIAN_MIRROR=url       default http://deb.debian.org/debian
#   CONTAINER_CAPS=A,B|all  the capabilities the service keeps (default: deploy/docker/capabilities)
#   CONTAINER_KEEP=1        keep the work folder (volume, logs) even on success
#   CONTAINER_VERBOSE=1     show the RUN output (default: in the work folder's build.log,
#                           its tail printed if a RUN fails)
#
# Phases (timed): bases, build (tests/container/dockerfile.py: every instruction of the
# Dockerfile, unknown ones fail), inspect (ldd, size), run (ns-root.sh: Docker-like mounts,
# pivot_root, the capability set of deploy/docker/capabilities + no_new_privs), health
# check, HTTP probe (probe.py; the API token executord generated in the volume), stop
# signal, a second start on the same volume with EXECUTORD_BACKENDS=pool,ephemeral,direct
# (same token; direct enabled), --healthcheck on a closed port.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${CONTAINER_ROOTS:-$repo/build/container-roots}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" -eq 0 ] || { echo "container: needs root (debootstrap, chroot, namespaces)" >&2; exit 1; }
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

t_all=$(date +%s) t_phase=$t_all phase_name="" timings=()
phase() {
  local now; now=$(date +%s)
  [ -z "$phase_name" ] || timings+=("$(printf '%-28s %4ss' "$phase_name" $((now - t_phase)))")
  phase_name=$1 t_phase=$now
  [ "$1" = end ] || echo "== container: $1"
}

work=$(mktemp -d /tmp/executord-container.XXXXXX)
upid="" pid1="" ok=0 child=""
# Long steps run in the background and are waited for, so that a signal to this script
# runs the cleanup at once (bash defers traps until a foreground command ends).
fg() { "$@" & child=$!; local r=0; wait "$child" || r=$?; child=""; return "$r"; }
cleanup() {
  local rc=$?
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true   # dockerfile.py kills its RUN's namespace on SIGTERM
    wait "$child" 2>/dev/null || true
  fi
  if [ -n "$pid1" ] && kill -0 "$pid1" 2>/dev/null; then
    kill -KILL "$pid1" 2>/dev/null || true   # the namespace's PID 1: takes every process in it along
  fi
  if [ -n "$upid" ]; then
    # unshare reaps its child (PID 1) and exits; only if it hangs is it killed (then
    # --kill-child takes the namespace along).
    for _ in $(seq 1 50); do kill -0 "$upid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$upid" 2>/dev/null || true
    wait "$upid" 2>/dev/null || true
  fi
  # Backstop: every mount is made in a private namespace and dies with it, but debootstrap
  # mounts /proc and /sys in its target itself; undo anything still mounted under the cache.
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "$cache/" | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  if [ "$ok" = 1 ] && [ -z "${CONTAINER_KEEP:-}" ]; then
    rm -rf "$work"
  else
    echo "container: work folder (volume, logs) kept: $work" >&2
  fi
  [ "$rc" -eq 0 ] || echo "container: FAILED (exit $rc)" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- tools ------------------------------------------------------------------------------
phase "tools"
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v unshare >/dev/null && command -v nsenter >/dev/null || need+=(util-linux)
command -v pgrep >/dev/null || need+=(procps)
if [ ${#need[@]} -gt 0 ]; then
  echo "container: installing ${need[*]}"
  apt-get install -y "${need[@]}" >/dev/null || { apt-get update -qq && apt-get install -y "${need[@]}" >/dev/null; }
fi

# ---- bases: debootstrap once, kept ------------------------------------------------------
phase "bases (debootstrap)"
# Docker's debian images are debuerreotype builds of `minbase` too; what they add and this
# copies: the deb822 sources of bookworm, bookworm-updates and bookworm-security, empty apt
# lists (hence the Dockerfile's apt-get update); slim: dpkg path-excludes for docs, man
# pages and locales, those files removed. Not copied: docker-clean (it would empty the apt
# cache this test binds), gzip-indexes/no-languages (only speed and size).
base=$cache/base-bookworm slim=$cache/base-bookworm-slim
if [ -n "${CONTAINER_REFRESH:-}" ]; then rm -f "$base.ok" "$slim.ok"; fi
if [ ! -f "$base.ok" ]; then
  rm -f "$slim.ok"
  rm -rf --one-file-system "$base" "$base.tmp"
  echo "container: debootstrap --variant=minbase bookworm ($mirror)"
  fg debootstrap --variant=minbase bookworm "$base.tmp" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -30 "$work/debootstrap.log" >&2; echo "container: debootstrap failed (log above)" >&2; exit 1; }
  rm -f "$base.tmp/etc/apt/sources.list"
  host=${mirror%/debian}
  cat > "$base.tmp/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${host}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$base.tmp"/var/lib/apt/lists/* "$base.tmp"/var/cache/apt/*.bin "$base.tmp"/var/cache/apt/archives/*.deb
  mv "$base.tmp" "$base"
  touch "$base.ok"
fi
if [ ! -f "$slim.ok" ]; then
  rm -rf --one-file-system "$slim"
  cp -a "$base" "$slim"
  mkdir -p "$slim/etc/dpkg/dpkg.cfg.d"
  cat > "$slim/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# as in Docker's debian:*-slim images (debuerreotype --slimify)
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
EOF
  find "$slim/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  rm -rf "$slim"/usr/share/{info,linda,lintian/overrides,man,groff}/*
  find "$slim/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  touch "$slim.ok"
fi
echo "container: bases: $(du -sh "$base" | cut -f1) (debian:12), $(du -sh "$slim" | cut -f1) (debian:12-slim)"

# ---- build: every instruction of the Dockerfile ------------------------------------------
phase "build (Dockerfile replay)"
mkdir -p "$cache/apt-archives"
build_log=()
[ -n "${CONTAINER_VERBOSE:-}" ] || build_log=(--log "$work/build.log")
fg python3 "$here/dockerfile.py" build --context "$repo" --roots "$cache" \
  --base bookworm="$base" --base bookworm-slim="$slim" \
  --apt-cache "$cache/apt-archives" --config-out "$cache/image.json" ${build_log[@]+"${build_log[@]}"}

# The image config, as shell variables (values shell-quoted by Python).
eval "$(python3 - "$cache/image.json" <<'EOF'
import json, shlex, sys
c = json.load(open(sys.argv[1]))
hc = c["healthcheck"] or {}
print("rt=" + shlex.quote(c["root"]))
print("workdir=" + shlex.quote(c["workdir"]))
print("argv=(" + " ".join(shlex.quote(a) for a in c["argv"]) + ")")
print("volumes=(" + " ".join(shlex.quote(v) for v in c["volumes"]) + ")")
print("exposed=(" + " ".join(shlex.quote(p) for p in c["exposed"]) + ")")
print("stopsignal=%d" % c["stopsignal"])
print("hc_cmd=(" + " ".join(shlex.quote(a) for a in hc.get("cmd", [])) + ")")
for k in ("interval", "timeout", "start_period", "retries"):
    print("hc_%s=%d" % (k, int(hc.get(k, 0))))
env = dict(c["env"])
env.setdefault("HOME", "/root")
print("image_env=(" + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + ")")
print("image_listen=" + shlex.quote(env.get("EXECUTORD_LISTEN", "")))
print("grace=%d" % int(float(env.get("EXECUTORD_SHUTDOWN_GRACE_SECONDS", "10"))))
print("default_backend=" + shlex.quote(env.get("EXECUTORD_BACKEND", "pool")))
print("data_dir=" + shlex.quote(env.get("EXECUTORD_DATA_DIR", "./executord-data")))
EOF
)"
[ ${#hc_cmd[@]} -gt 0 ] || { echo "container: the image has no HEALTHCHECK" >&2; exit 1; }
[ ${#volumes[@]} -gt 0 ] || { echo "container: the image declares no VOLUME" >&2; exit 1; }
listen_port=${image_listen##*:}
printf '%s\n' "${exposed[@]}" | grep -qx "$listen_port/tcp" \
  || { echo "container: EXECUTORD_LISTEN=$image_listen is not an EXPOSEd port (${exposed[*]})" >&2; exit 1; }

# in_root CMD...: a command in the runtime root (fresh namespaces, Docker-like mounts).
in_root() {
  unshare --pid --fork --mount --uts --ipc --propagation private --kill-child -- \
    "$here/ns-root.sh" build "$rt" -- /usr/bin/env -i "${image_env[@]}" "$@"
}

# ---- inspect ------------------------------------------------------------------------------
phase "inspect"
bin=${argv[0]}
in_root ldd "$bin" > "$work/ldd.txt"
sed 's/^/  ldd: /' "$work/ldd.txt"
if grep -q "not found" "$work/ldd.txt"; then
  echo "container: $bin misses shared libraries in the runtime image" >&2; exit 1
fi
if in_root sh -c 'command -v gcc || command -v cc || command -v cmake' >/dev/null; then
  echo "container: the runtime image holds a compiler" >&2; exit 1
fi
image_python=$(in_root /usr/bin/python3 -c 'import sys; print(sys.version)')
in_root "$bin" --version
echo "container: image python: $image_python"
echo "container: image size estimate (du -sh of the runtime root): $(du -sh "$rt" | cut -f1)"

# ---- run: ENTRYPOINT as PID 1 ----------------------------------------------------------
phase "run (start, health check)"
# The host's network namespace is shared (no veth/bridge/NAT as Docker's -p would set up),
# so the image's EXECUTORD_LISTEN (0.0.0.0:8080) is replaced by a free loopback port: 8080
# may be taken by other servers on this machine and 0.0.0.0 would expose the service on
# the host's interfaces. The wildcard form is checked with the health check below.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
caps=${CONTAINER_CAPS:-$(sed 's/#.*//' "$repo/deploy/docker/capabilities" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')}
[ "$caps" != all ] || caps=""   # CONTAINER_CAPS=all: keep every capability (no setpriv)
vol_args=()
for v in "${volumes[@]}"; do
  d=$work/volume$(printf '%s' "$v" | tr '/' '_')
  mkdir -p "$d"
  vol_args+=(--volume "$d:$v")
done
# start_container LOG [VAR=VALUE...]: the ENTRYPOINT as PID 1 of new namespaces, with the
# image's environment (plus the given variables) and the volume; waits until the HEALTHCHECK
# passes and checks PID 1. Sets upid (unshare), pid1, service, log, run_env.
start_container() {
  log=$1; shift
  run_env=("${image_env[@]}" "EXECUTORD_LISTEN=127.0.0.1:$port" "$@")
  echo "container: starting ${argv[*]} as PID 1 (caps ${caps:-all}${caps:+, no_new_privs}; volume ${volumes[*]} = $work/volume*; EXECUTORD_LISTEN=127.0.0.1:$port${*:+; $*})"
  unshare --pid --fork --mount --uts --ipc --cgroup --propagation private --kill-child -- \
    "$here/ns-root.sh" run "$rt" "${vol_args[@]}" --caps "$caps" --hostname executord-test -- \
    /usr/bin/env -i -C "$workdir" "${run_env[@]}" "${argv[@]}" > "$log" 2>&1 &
  upid=$!
  for _ in $(seq 1 100); do
    pid1=$(pgrep -P "$upid" || true)
    [ -z "$pid1" ] || break
    sleep 0.1
  done
  [ -n "$pid1" ] || { cat "$log" >&2; echo "container: no PID 1 appeared" >&2; exit 1; }

  local deadline t_hc
  deadline=$(( $(date +%s) + hc_start_period + hc_retries * hc_interval ))
  t_hc=$(date +%s)
  until hc "${run_env[@]}" > "$work/hc.out" 2>&1; do
    if ! kill -0 "$upid" 2>/dev/null; then cat "$log" >&2; echo "container: executord exited during start-up" >&2; exit 1; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      cat "$work/hc.out" "$log" >&2; echo "container: never healthy" >&2; exit 1
    fi
    sleep 1
  done
  echo "container: healthy after $(( $(date +%s) - t_hc ))s: $(cat "$work/hc.out")"
  hc "${run_env[@]}" "EXECUTORD_LISTEN=0.0.0.0:$port" > "$work/hc.out" 2>&1 \
    || { cat "$work/hc.out" >&2; echo "container: health check with a wildcard EXECUTORD_LISTEN failed" >&2; exit 1; }
  echo "container: wildcard listen: $(cat "$work/hc.out")"

  # PID 1 is executord's own init (src/pid1.c), the service its child.
  local nspid comm
  nspid=$(awk '/^NSpid:/ {print $NF}' "/proc/$pid1/status")
  comm=$(cat "/proc/$pid1/comm")
  service=$(pgrep -P "$pid1" | head -1 || true)
  [ "$nspid" = 1 ] && [ "$comm" = executord-init ] && [ -n "$service" ] && [ "$(cat "/proc/$service/comm")" = executord ] \
    || { echo "container: PID 1 is '$comm' (namespace pid $nspid), service '${service:+$(cat /proc/$service/comm)}'" >&2; exit 1; }
  echo "container: PID 1 = executord-init (host pid $pid1), service = executord (host pid $service)"
  grep -q '^CapBnd:.*' "/proc/$service/status"
  echo "container: service $(grep -E '^(CapEff|CapBnd|NoNewPrivs)' "/proc/$service/status" | tr -s '\t\n' ' ')"
}

# Docker runs the HEALTHCHECK command in the container (docker exec): here nsenter into
# PID 1's namespaces and root, with the image's environment. Polled every second (Docker:
# every --interval); unhealthy after --start-period + --retries x --interval.
hc() {
  timeout "$hc_timeout" nsenter --target "$pid1" --mount --pid --uts --ipc --root --wd -- \
    /usr/bin/env -i "$@" "${hc_cmd[@]}"
}

# stop_container: the STOPSIGNAL to PID 1; the container must exit 0 within the grace
# period (+5 s) and have logged the shutdown. Sets stop_ms.
stop_container() {
  local t0 rc=0
  t0=$(date +%s%N)
  kill -"$stopsignal" "$pid1"
  for _ in $(seq 1 $(( (grace + 5) * 10 ))); do
    kill -0 "$upid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$upid" 2>/dev/null; then
    tail -20 "$log" >&2; echo "container: still running $((grace + 5))s after signal $stopsignal" >&2; exit 1
  fi
  wait "$upid" || rc=$?
  upid="" pid1=""
  stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  if [ "$rc" -ne 0 ]; then tail -30 "$log" >&2; echo "container: exit status $rc after signal $stopsignal" >&2; exit 1; fi
  grep -q "received" "$log" || { tail -20 "$log" >&2; echo "container: no shutdown logged" >&2; exit 1; }
}

# The image sets no --api-token-file: executord generates its token in the data volume at
# first start, and keeps it across restarts.
data_volume=$work/volume$(printf '%s' "$data_dir" | tr '/' '_')
[ -d "$data_volume" ] || { echo "container: EXECUTORD_DATA_DIR=$data_dir is not a VOLUME (${volumes[*]})" >&2; exit 1; }
token_file=$data_volume/api-token
start_container "$work/executord.log"
[ -f "$token_file" ] || { echo "container: no API token generated in the volume ($token_file)" >&2; exit 1; }
grep -q "API token: $data_dir/api-token" "$log" || { cat "$log" >&2; echo "container: the token's location is not logged" >&2; exit 1; }
cp "$token_file" "$work/token.first"
echo "container: API token generated in the volume: $data_dir/api-token ($(stat -c %a "$token_file"))"

# ---- HTTP probe --------------------------------------------------------------------------
phase "jobs over HTTP"
PROBE_CAPS="${caps:-all}" fg python3 "$here/probe.py" "$port" "$image_python" "$default_backend" \
  --token-file "$token_file" --sleeper-out "$work/running-job"

# ---- stop -------------------------------------------------------------------------------
phase "stop signal"
stop_container
echo "container: signal $stopsignal -> exit 0 after ${stop_ms}ms (grace ${grace}s; a 2 s job was running)"
# The job store is in the volume, and the job running at the signal finished in the grace period.
db=$(ls "$work"/volume*/executord.db 2>/dev/null | head -1)
[ -n "$db" ] || { echo "container: no executord.db in the volume" >&2; exit 1; }
status=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("select status from jobs where id = ?", (sys.argv[2],)).fetchone()[0])' "$db" "$(cat "$work/running-job")")
[ "$status" = succeeded ] || { echo "container: the job running at the stop signal ended $status" >&2; exit 1; }
echo "container: the volume holds the job store; the job running at the signal: $status"
grep -E "rlimits only|cgroup" "$log" | head -3 | sed 's/^/  log: /' || true

# direct isolates no filesystem or network: an operator enables it explicitly. Started again
# on the same volume with it enabled: the token is the one generated at first start.
phase "direct enabled (restart)"
start_container "$work/executord-direct.log" EXECUTORD_BACKENDS=pool,ephemeral,direct
cmp -s "$token_file" "$work/token.first" || { echo "container: the API token changed across a restart" >&2; exit 1; }
echo "container: the same API token after a restart"
PROBE_CAPS="${caps:-all}" fg python3 "$here/probe.py" "$port" "$image_python" "$default_backend" \
  --token-file "$token_file" --direct
stop_container
echo "container: signal $stopsignal -> exit 0 after ${stop_ms}ms"

phase "healthcheck on a closed port"
set +e
in_root "${hc_cmd[@]}" --listen "127.0.0.1:$port" > "$work/hc.out" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] && grep -q "not ready" "$work/hc.out" \
  || { cat "$work/hc.out" >&2; echo "container: --healthcheck on a closed port exited $rc" >&2; exit 1; }
echo "container: closed port -> exit 1: $(cat "$work/hc.out")"

phase end
echo "== container: timings"
printf '  %s\n' "${timings[@]}"
echo "  total                        $(( $(date +%s) - t_all ))s"
ok=1
echo "== container: OK"
