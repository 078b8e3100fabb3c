#!/bin/bash
# Turns a fresh PID + mount namespace (made by `unshare --pid --fork --mount --propagation
# private`; this script is its PID 1) into a Docker-like container of ROOT, then execs ARGV
# in it, keeping PID 1. Every mount made here belongs to the private namespace and vanishes
# with it, so nothing is left on the host even if the test is killed.
#
#   ns-root.sh build ROOT [--apt-cache DIR] -- ARGV...
#       a `docker build` RUN: /proc, /dev, read-only /sys, the host's resolv.conf, the
#       apt archive cache on /var/cache/apt/archives; chroot ROOT ARGV.
#   ns-root.sh run ROOT [--volume HOSTDIR:PATH]... [--caps SETUID,SETGID] [--hostname H] -- ARGV...
#       a `docker run`: the same mounts (no apt cache), the volumes, /etc/hosts, /etc/hostname
#       and resolv.conf bound as Docker does; pivot_root into ROOT (not chroot: executord's
#       sandboxes pivot_root themselves and mount their own /proc, which the kernel only allows
#       when the container's /proc is the only one in the namespace); then with --caps, the
#       bounding set reduced to those capabilities plus no_new_privs (--cap-drop ALL
#       --cap-add ... --security-opt no-new-privileges), via the image's own setpriv.
set -euo pipefail

mode=$1 root=$2
shift 2
apt_cache="" caps="" hostname="" volumes=()
while [ $# -gt 0 ]; do
  case $1 in
    --apt-cache) apt_cache=$2; shift 2 ;;
    --volume) volumes+=("$2"); shift 2 ;;
    --caps) caps=$2; shift 2 ;;
    --hostname) hostname=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "ns-root.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "ns-root.sh: no command" >&2; exit 2; }
[ "$$" = 1 ] || { echo "ns-root.sh: must be PID 1 of a new PID namespace (unshare --pid --fork)" >&2; exit 2; }

# A file or folder to mount on, inside ROOT; refuses symlinks (they would resolve on the host).
target() {
  local t=$root$1 kind=$2
  if [ -L "$t" ]; then rm -f "$t"; fi
  if [ "$kind" = dir ]; then mkdir -p "$t"; else mkdir -p "$(dirname "$t")"; [ -e "$t" ] || : > "$t"; fi
  printf '%s' "$t"
}

mount --bind "$root" "$root"          # the container's root is a mount point (pivot_root needs it)
mount -t proc -o nosuid,nodev,noexec proc "$(target /proc dir)"
dev=$(target /dev dir)
mount -t tmpfs -o nosuid,mode=0755,size=65536k tmpfs "$dev"
mknod -m 666 "$dev/null" c 1 3; mknod -m 666 "$dev/zero" c 1 5; mknod -m 666 "$dev/full" c 1 7
mknod -m 666 "$dev/random" c 1 8; mknod -m 666 "$dev/urandom" c 1 9; mknod -m 666 "$dev/tty" c 5 0
ln -s /proc/self/fd "$dev/fd"; ln -s /proc/self/fd/0 "$dev/stdin"
ln -s /proc/self/fd/1 "$dev/stdout"; ln -s /proc/self/fd/2 "$dev/stderr"; ln -s /proc/kcore "$dev/core"
mkdir -m 0755 "$dev/pts" "$dev/mqueue"; mkdir -m 1777 "$dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$dev/pts"
ln -s pts/ptmx "$dev/ptmx"
mount -t tmpfs -o nosuid,nodev,noexec,mode=1777,size=65536k shm "$dev/shm"
mount -t mqueue -o nosuid,nodev,noexec mqueue "$dev/mqueue"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$(target /sys dir)"
mount --bind /etc/resolv.conf "$(target /etc/resolv.conf file)"

case $mode in
  build)
    if [ -n "$apt_cache" ]; then
      mkdir -p "$apt_cache/partial"
      mount --bind "$apt_cache" "$(target /var/cache/apt/archives dir)"
    fi
    exec chroot "$root" "$@"
    ;;
  run)
    for v in ${volumes[@]+"${volumes[@]}"}; do
      mount --bind "${v%%:*}" "$(target "${v#*:}" dir)"
    done
    hostname=${hostname:-executord-test}
    hostname "$hostname"
    tmp=$(mktemp -d /tmp/ns-root.XXXXXX)
    mount -t tmpfs -o size=64k tmpfs "$tmp"   # the files live on a tmpfs of this namespace only
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n' "$hostname" > "$tmp/hosts"
    printf '%s\n' "$hostname" > "$tmp/hostname"
    mount --bind "$tmp/hosts" "$(target /etc/hosts file)"
    mount --bind "$tmp/hostname" "$(target /etc/hostname file)"
    umount -l "$tmp"; rmdir "$tmp"          # the bind mounts keep the files alive
    cd "$root"
    pivot_root . .
    umount -l .
    cd /
    if [ -n "$caps" ]; then
      bounding="-all$(printf ',+%s' ${caps//,/ } | tr 'A-Z' 'a-z')"
      exec setpriv --bounding-set="$bounding" --inh-caps=-all --ambient-caps=-all --no-new-privs -- "$@"
    fi
    exec "$@"
    ;;
  *) echo "ns-root.sh: unknown mode $mode" >&2; exit 2 ;;
esac
