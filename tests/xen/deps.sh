#!/bin/sh
# tests/xen/deps.sh: install the host packages the real-Xen rig needs
# (Debian bookworm, as root). Only Debian packages, no recommends.
#   --list   print the packages on one line and exit
set -e
export DEBIAN_FRONTEND=noninteractive
PKGS="qemu-system-x86 xen-hypervisor-4.17-amd64 linux-image-amd64 debootstrap
  busybox-static cpio e2fsprogs kmod gzip debian-archive-keyring ca-certificates"
if [ "${1:-}" = --list ]; then
  echo $PKGS
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "tests/xen/deps.sh: run as root (apt-get install)" >&2
  exit 1
fi
missing=$(for p in $PKGS; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
  grep -q "install ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
  echo "tests/xen/deps.sh: installing:" $missing
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
else
  echo "tests/xen/deps.sh: all present:" $PKGS
fi
