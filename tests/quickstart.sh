#!/bin/bash
# Quick start on a fresh Debian bookworm machine, as root: install the
# packages, build, and run the failover demo on the embedded micro-VM.
set -e
cd "$(dirname "$0")/.."
bash tests/deps.sh
[ -x configure ] || autoreconf -fi
mkdir -p build && cd build
[ -f Makefile ] || ../configure -q
make -j"$(nproc)" >/dev/null
top_builddir=$(pwd) top_srcdir=$(cd .. && pwd) exec bash ../tests/demo.sh
