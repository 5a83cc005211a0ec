#!/bin/bash
# rig: about tandem's netbuf test (tests/integration/netbuf.sh) in dom0, with sch_plug and with nfqueue
# rig: needs tandem
# The build machine's kernel has no sch_plug, so the plug mechanism of
# libs/netbuf is proven here, in Debian's dom0 kernel, by the same test CI
# runs with nfqueue. Its PASS:/FAIL: lines are this scenario's.
. /rig/helpers.sh
need_tandem
t=/opt/tandem/src/tests/integration/netbuf.sh
[ -f "$t" ] || { fail "netbuf.sh missing from /opt/tandem/src"; exit 1; }
for m in sch_plug sch_ingress ifb act_mirred cls_matchall br_netfilter; do
  modprobe $m 2>/dev/null || note "modprobe $m failed (built in?)"
done
for kind in plug nfqueue; do
  NETBUF_BACKEND=$kind top_builddir=/opt/tandem/build top_srcdir=/opt/tandem/src \
    bash "$t" 2>&1 | sed -e 's/^SKIP:/FAIL: skipped:/'
  rc=${PIPESTATUS[0]}
  check "netbuf test with $kind exits 0 (was $rc)" test "$rc" = 0
done
finish
