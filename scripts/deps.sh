#!/usr/bin/env bash
# Installs the Debian 12 packages executord needs, only those missing.
#   scripts/deps.sh run    what building and running the service needs
#   scripts/deps.sh test   that plus what the test suites need
set -euo pipefail

run_pkgs=(gcc make cmake pkg-config libmicrohttpd-dev libjansson-dev libseccomp-dev uuid-dev
          libsqlite3-dev libpq-dev nettle-dev libnftables-dev slirp4netns python3 python3-pip curl)
test_pkgs=(clang libclang-rt-14-dev libcmocka-dev python3-pytest python3-yaml sqlite3 procps util-linux chromium debootstrap
           nftables iproute2 postgresql-15 python3-setuptools python3-wheel python3-setuptools-whl python3-wheel-whl)

want=("${run_pkgs[@]}")
if [ "${1:-run}" = test ]; then
  want+=("${test_pkgs[@]}")
fi

missing=()
# The OpenAPI check runs an npm validator; any Node.js with npm will do.
if [ "${1:-run}" = test ] && ! command -v npm >/dev/null 2>&1; then
  want+=(nodejs npm)
fi
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
