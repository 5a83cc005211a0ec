#!/bin/bash
# The whole test suite, as CI runs it:
#   1. build with -Werror and run every test (unit, integration, fuzz smoke)
#   2. rebuild with ASan + UBSan and run the unit tests again
#   3. build the libFuzzer targets with clang and run each for a bounded time
#   4. boot real Xen under qemu and run tests/xen/scenarios in its dom0
# Ends with one line: "N passed, N failed, N skipped".
#
#   FUZZ_SECONDS=N   per fuzz target (default 60)
#   RUNS=N           failover kill points in the end-to-end test (default 20)
#   TANDEM_SKIP_XEN_RIG=1  skip step 4 (counted and printed as skipped)
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
export RUNS=${RUNS:-20}
pass=0 fail=0 skip=0
count() {
  local p f s
  read -r p f s < <(sh "$top/tests/summary.sh" "$1" | awk '{print $1, $3, $5}')
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
}
step() { echo; echo "=== $*"; }

# On a machine set up by hand (not CI, which installs first), make sure
# the packages are there.
if [ "$(id -u)" = 0 ] && [ -z "${CI:-}" ]; then
  bash tests/deps.sh || exit 1
fi
[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi >/dev/null || exit 1

step "build (-Werror) and make check"
rm -rf build-ci && mkdir build-ci && cd build-ci || exit 1
if ../configure -q >configure.out 2>&1 && make -j"$jobs" >make.out 2>&1; then
  # Serially: the end-to-end tests measure failover times and run guests
  # at full speed; two at once on a small machine starve each other.
  make -j1 check >check.out 2>&1
  grep -E '^(PASS|FAIL|SKIP|XFAIL|XPASS|ERROR):' check.out
  for f in $(find . -name '*.log' -path '*tests*'); do
    grep -qE '^(FAIL|ERROR)' "${f%.log}.trs" 2>/dev/null && { echo "--- $f"; tail -40 "$f"; }
  done
  count .
else
  cat configure.out; tail -50 make.out; fail=$((fail + 1))
fi
cd "$top"

step "unit tests under ASan + UBSan"
rm -rf build-asan && mkdir build-asan && cd build-asan || exit 1
SAN="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
if ../configure -q CFLAGS="$SAN" LDFLAGS="-fsanitize=address,undefined" >configure.out 2>&1 &&
   make -j"$jobs" >make.out 2>&1; then
  UNIT=$(cd "$top" && ls tests/unit/test-*.c | sed 's/\.c$//' | tr '\n' ' ')
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    make -j"$jobs" check TESTS="$UNIT" >check.out 2>&1
  grep -E '^(PASS|FAIL|SKIP|ERROR):' check.out | sed 's/^/asan /'
  for f in tests/unit/*.log; do
    grep -qE '^(FAIL|ERROR)' "${f%.log}.trs" 2>/dev/null && { echo "--- $f"; tail -40 "$f"; }
  done
  count .
else
  cat configure.out; tail -50 make.out; fail=$((fail + 1))
fi
cd "$top"

step "fuzz targets (libFuzzer, ${FUZZ_SECONDS}s each)"
rm -rf build-fuzz && mkdir build-fuzz && cd build-fuzz || exit 1
if ../configure -q CC=clang --enable-fuzz >configure.out 2>&1 &&
   make -j"$jobs" >make.out 2>&1; then
  for t in tests/fuzz/fuzz-*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    mkdir -p "corpus-$name"
    if "./$t" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=1024 \
         -max_len=65536 "corpus-$name" >"$name.out" 2>&1; then
      echo "PASS: $name ($(grep -o 'Done [0-9]* runs' "$name.out"))"
      pass=$((pass + 1))
    else
      echo "FAIL: $name"; tail -30 "$name.out"; fail=$((fail + 1))
    fi
  done
else
  cat configure.out; tail -50 make.out; fail=$((fail + 1))
fi
cd "$top"

step "real Xen 4.17 under qemu (tests/xen): every scenario in one boot"
# Needs root (debootstrap, device nodes in the dom0 image). A rig that
# cannot boot fails, loudly, with the reason; it is never skipped silently.
if [ -n "${TANDEM_SKIP_XEN_RIG:-}" ]; then
  echo "SKIP: xen-rig (TANDEM_SKIP_XEN_RIG is set)"; skip=$((skip + 1))
elif [ "$(id -u)" != 0 ]; then
  echo "SKIP: xen-rig (needs root)"; skip=$((skip + 1))
else
  bash tests/xen/run.sh --tandem-build "$top/build-ci" >xen-rig.out 2>&1
  rc=$?
  p=$(grep -c '^PASS: scenario ' xen-rig.out)
  # scenario-level failures (a check's own FAIL line ends in "[scenario]")
  f=$(grep '^FAIL: ' xen-rig.out | grep -vc '\]$')
  pass=$((pass + p)); fail=$((fail + f))
  # A failed scenario: what led to its last failed check (the daemons'
  # logs, the guest's console) is in the lines before that check, which
  # the summary below leaves out. Checks of a run that was retried and
  # then passed are not shown.
  sed -n 's/^FAIL: scenario \([^ ]*\) .*/\1/p' xen-rig.out | head -3 | while read -r s; do
    n=$(grep -n "^FAIL: .*\[$s\]\$" xen-rig.out | tail -1 | cut -d: -f1)
    [ -n "$n" ] || n=$(grep -n "^FAIL: scenario $s " xen-rig.out | cut -d: -f1)
    echo "--- scenario $s failed; xen-rig.out lines $((n > 120 ? n - 120 : 1))-$n:"
    sed -n "$((n > 120 ? n - 120 : 1)),${n}p" xen-rig.out | cut -c1-300
  done
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
    echo "FAIL: xen-rig exited $rc without a FAIL line:"; tail -30 xen-rig.out
    fail=$((fail + 1))
  fi
  # Last, so that the end of the output says what the rig did: each
  # scenario's verdict, its retries and the figures.
  echo "--- xen rig summary"
  { grep -E '^PASS: .*\]$' xen-rig.out | grep -v '^PASS: \['
    grep -E '^(RESULT|xen-rig: (Xen|phase|all|[0-9]+ failure))' xen-rig.out
    grep -E '^(--- RETRY|NOTE: xen-rig)' xen-rig.out
    grep -E '^(PASS|FAIL): ' xen-rig.out | grep -v '\]$'
  } | sed 's/^/xen /'
fi

echo
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
