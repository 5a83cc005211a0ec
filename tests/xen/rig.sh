#!/bin/sh
# tests/xen/rig.sh: the real-Xen rig as an automake-style test.
# Exit 0 = every scenario passed, 1 = a failure (or the rig could not boot:
# the reason is printed), 77 = skipped, only when not run as root (printed).
# Not registered in any Makefile; CI calls it as, e.g.:
#   TANDEM_BUILD=$PWD/build-ci sh tests/xen/rig.sh
# Environment: TANDEM_BUILD (a built tandem tree, optional), XEN_RIG_CACHE,
# XEN_RIG_TIMEOUT, XEN_RIG_SCENARIOS (space-separated; default: all that
# can run), XEN_RIG_ARGS (more run.sh options).
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: tests/xen/rig.sh: needs root (apt-get, debootstrap, device nodes in the dom0 image)"
  exit 77
fi
set --
for s in ${XEN_RIG_SCENARIOS:-}; do set -- "$@" --scenario "$s"; done
[ -n "${TANDEM_BUILD:-}" ] && set -- "$@" --tandem-build "$TANDEM_BUILD"
# shellcheck disable=SC2086
bash "$here/run.sh" "$@" ${XEN_RIG_ARGS:-}
rc=$?
case $rc in
  0) exit 0 ;;
  *) echo "FAIL: tests/xen/rig.sh: run.sh exited $rc"; exit 1 ;;
esac
