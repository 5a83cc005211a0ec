# /rig/helpers.sh: functions for scenarios run inside the rig's dom0.
# A scenario (tests/xen/scenarios/NAME.sh) starts with `. /rig/helpers.sh`.
# Its output goes to the host, line by line; the host collects
#   PASS: what           a check that held
#   FAIL: what           a check that did not (the run fails)
#   RESULT key=value     a measurement (never a failure)
# and shows every other line in its log.
# shellcheck shell=bash

. /rig/config
RIG_CONSOLE_DIR=/var/log/xen/console
RIG_FAILS=0

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; RIG_FAILS=$((RIG_FAILS + 1)); }
result() { echo "RESULT $*"; }
note() { echo "# $*"; }
# check WHAT CMD...: PASS or FAIL on CMD's exit status
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
# finish: the scenario's exit status (last line of a scenario)
finish() { [ "$RIG_FAILS" = 0 ]; }
now() { echo "$EPOCHREALTIME"; }
# since T0: seconds since T0 (3 decimals)
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

# have_tandem: true if the run was given a tandem build (tandemd on PATH)
have_tandem() { [ "${RIG_TANDEM:-}" = 1 ] && command -v tandemd >/dev/null; }
# need_tandem: a scenario that cannot run without tandem fails loudly
need_tandem() { have_tandem || { fail "$(basename "$0" .sh): needs a tandem build (run.sh --tandem-build DIR)"; exit 1; }; }

# rig_guest_cfg NAME [MEMORY_MB] [EXTRA_KERNEL_ARGS]: write the PVH test
# guest's xl config to /tmp/NAME.cfg, print its path. A new guest of that
# name is about to start, so the console log of an earlier one (another
# scenario's, or this scenario's failed attempt) goes: its last TICK would
# pass for the new guest's counter while that guest is still booting.
rig_guest_cfg() {
  local name=$1 mem=${2:-128} extra=${3:-}
  rm -f "$(guest_log "$name")"
  sed -e "s/@NAME@/$name/" -e "s/@MEMORY@/$mem/" -e "s|@EXTRA@|$extra|" \
    /rig/guest/guest.cfg.in >"/tmp/$name.cfg"
  echo "/tmp/$name.cfg"
}

# rig_bridge: dom0's bridge xenbr0 at 10.90.0.1/24, for guests' vifs. One
# left by an earlier scenario or attempt is removed first (and said).
rig_bridge() {
  if ip link show xenbr0 >/dev/null 2>&1; then
    note "xenbr0 left from before: removed"; ip link del xenbr0
  fi
  ip link add xenbr0 type bridge && ip addr add 10.90.0.1/24 dev xenbr0 &&
    ip link set xenbr0 up
}

# guest_log NAME: the guest's console log (xenconsoled, dom0 timestamps)
guest_log() { echo "$RIG_CONSOLE_DIR/guest-$1.log"; }

# guest_ticks NAME: "dom0-epoch-seconds counter" per TICK line of the
# guest's console log. xenconsoled stamps each line
# "[YYYY-MM-DD HH:MM:SS.mmm] TICK N" with dom0's clock.
guest_ticks() {
  local f; f=$(guest_log "$1")
  [ -f "$f" ] || return 0
  tr -d '\r' <"$f" | awk '
    match($0, /^\[[0-9-]+ [0-9:.]+\] TICK [0-9]+/) {
      s = substr($0, 2, 23); n = $NF
      gsub(/[-:]/, " ", s); split(s, p, " ")
      t = mktime(p[1] " " p[2] " " p[3] " " p[4] " " p[5] " " int(p[6]))
      printf "%.3f %d\n", t + (p[6] - int(p[6])), n
    }'
}

# guest_counter NAME: the last counter value the guest printed (or empty)
guest_counter() { guest_ticks "$1" | tail -1 | awk '{ print $2 }'; }

# guest_rate NAME T0 T1: counter increments per second between dom0 times
# T0 and T1 (epoch seconds), from the first and last TICK in that window
guest_rate() {
  guest_ticks "$1" | awk -v a="$2" -v b="$3" '
    $1 >= a && $1 <= b { if (!n++) { t0 = $1; c0 = $2 } t1 = $1; c1 = $2 }
    END { if (n >= 2 && t1 > t0) printf "%.1f\n", (c1 - c0) / (t1 - t0); else print "" }'
}

# wait_guest_counter NAME MIN TIMEOUT: wait until the counter reaches MIN
wait_guest_counter() {
  local name=$1 min=$2 left=$3 c
  while [ "$left" -gt 0 ]; do
    c=$(guest_counter "$name")
    [ -n "$c" ] && [ "$c" -ge "$min" ] && return 0
    sleep 1; left=$((left - 1))
  done
  return 1
}

# guest_create NAME [MEMORY_MB]: create the PVH test guest and wait (up to
# 120 s) until its workload runs; PASS/FAIL lines; returns non-zero on FAIL
guest_create() {
  local name=$1 cfg t0 out
  cfg=$(rig_guest_cfg "$name" "${2:-128}")
  t0=$(now)
  if ! out=$(xl create "$cfg" 2>&1); then
    echo "$out" | tail -15
    fail "xl create $name"; return 1
  fi
  result "${name//-/_}_create_s=$(since "$t0")"
  if ! wait_guest_counter "$name" 2 120; then
    note "console of $name:"; tail -20 "$(guest_log "$name")" 2>/dev/null
    xl list
    fail "guest $name workload running (counter seen within 120 s)"; return 1
  fi
  pass "guest $name created and its workload runs (counter $(guest_counter "$name"), $(since "$t0") s after xl create)"
}

# stats: "count median p99 min max mean" of the numbers on stdin
stats() {
  sort -g | awk '{ v[NR] = $1; s += $1 }
    END { if (!NR) { print "0 - - - - -"; exit }
      i99 = int(NR * 0.99 + 0.999999); if (i99 > NR) i99 = NR; if (i99 < 1) i99 = 1
      med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%d %g %g %g %g %.3f\n", NR, med, v[i99], v[1], v[NR], s / NR }'
}

# tstamp (/rig/bin/tstamp): prefix each line of stdin with dom0's epoch
# time, for logs of tools that print no sub-second time of their own

# tandemd_start NAME PORT DIR: tandemd in the foreground with
# DIR/NAME.conf, control socket DIR/NAME.sock and log DIR/NAME.log,
# replicating on 127.0.0.1:PORT; sets PID_NAME and waits (10 s at most)
# until it answers
tandemd_start() {
  local h=$1 port=$2 dir=$3 n=0
  tandemd -f -c "$dir/$h.conf" -s "$dir/$h.sock" -l "127.0.0.1:$port" \
    >>"$dir/$h.log" 2>&1 &
  eval "PID_$h=$!"
  until xl-tandem -s "$dir/$h.sock" list >/dev/null 2>&1 || [ $n -ge 50 ]; do
    sleep 0.2; n=$((n + 1))
  done
}
