#!/usr/bin/env bash
# Installs the Debian 12 packages that shoebox builds and tests with.
#   scripts/deps.sh            apt-get update, then install (idempotent)
#   scripts/deps.sh --check    exit 0 when everything is installed already
set -euo pipefail

PACKAGES=(
  # build
  gcc clang make meson ninja-build pkg-config
  # libraries (docs/dependencies.md says why each one is here)
  libuv1-dev libsodium-dev libsqlite3-dev libmsgpack-dev libexif-dev
  libminiupnpc-dev libssl-dev libqrencode-dev libturbojpeg0-dev libheif-dev
  libjansson-dev libarchive-dev libh2o-dev libpng-dev
  # tests, demo and benchmarks
  jq curl zip unzip sqlite3 zbar-tools iperf3 iproute2 procps psmisc bc
  # the UPnP test's router in a network namespace (none of them starts a
  # service on install: Debian ships them disabled)
  miniupnpd nftables stun-server
  # the share page in a real browser (tests/integration/share.sh), HTTP load (bench_api)
  chromium wrk openssl
  # clients that reset TLS connections mid-stream (tests/integration/share.sh)
  python3
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${1:-}" = "--check" ]; then
  [ ${#missing[@]} -eq 0 ] && exit 0
  echo "missing packages: ${missing[*]}" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "make deps: run as root or install sudo" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
