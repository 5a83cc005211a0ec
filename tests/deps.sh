#!/bin/sh
# Install every Debian package tandem needs to build, test and demo.
# Debian bookworm, as root.
set -e
export DEBIAN_FRONTEND=noninteractive
PKGS="build-essential autoconf automake pkg-config binutils
  libevent-dev libyajl-dev libunicorn-dev libxen-dev libcmocka-dev
  libnetfilter-queue-dev libmnl-dev libnl-route-3-dev iptables
  nbdkit nbdkit-plugin-dev libnbd-dev libnbd-bin iperf3
  clang libclang-rt-14-dev iproute2 procps gawk"
# --list: print the packages (for .ci/run), one line.
if [ "${1:-}" = --list ]; then
  echo $PKGS
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "tests/deps.sh: run as root (apt-get install)" >&2
  exit 1
fi
missing=$(for p in $PKGS; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
  grep -q "install ok installed" || echo "$p"; done)
if [ -n "$missing" ] || [ -n "$CI" ]; then
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $PKGS
fi
