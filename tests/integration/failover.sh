#!/bin/bash
# End to end: a client writes to the guest's key-value service while the
# primary's tandemd is SIGKILLed at a random moment of the epoch cycle. The
# backup must take over the guest's address and the client must read back
# every write it saw acknowledged, with no effect applied twice.
#
#   RUNS=N            how many kill points (default 20)
#   TANDEMD_OPTS=...  extra daemon options
#   PROTECT_OPTS=...  extra protect options (e.g. -i 10)
#   RESULTS=FILE      append one line of figures per run
#   DISK=1            the guest's disk is replicated too (failover-disk.sh):
#                     after each failover the new primary's disk must hold
#                     exactly its memory's table (kvclient fsck) and the
#                     replica's image must be a consistent table (kvdisk)
. "$(dirname "$0")/lib.sh"
need_root_netns
[ -z "${DISK:-}" ] || need_disk

RUNS=${RUNS:-20}
T=$(mktemp -d /tmp/tdm-failover.XXXXXX)
cleanup() { net_teardown; [ -n "$KEEP" ] || rm -rf "$T"; }
trap cleanup EXIT
net_setup

failed=0
for run in $(seq 1 "$RUNS"); do
  : >"$T/A.log"; : >"$T/B.log"
  start_daemon A
  start_daemon B
  [ -z "${DISK:-}" ] || disk_image
  domain_cfg >"$T/kv1.cfg"
  "$XLT" -s "$T/A.sock" create "$T/kv1.cfg" || fail "create failed: $(tail -5 "$T/A.log")"
  in_c "$KVC" -s $IP_G:7000 wait -T 10000 >/dev/null || fail "guest did not answer: $(tail -5 "$T/A.log")"
  "$XLT" -s "$T/A.sock" protect $PROTECT_OPTS kv1 $IP_B || fail "protect failed"
  wait_for 20 state_is A kv1 protected || fail "not protected: $(tail -5 "$T/A.log"; echo '--- B:'; tail -5 "$T/B.log")"

  ip netns exec $NS_C "$KVC" -s $IP_G:7000 load -d 60 -k 500 -o "$T/ack.log" -c $run >"$T/load.out" 2>&1 &
  LOAD=$!
  # a random kill point: 300..1800 ms into the load, at microsecond grain
  sleep "$(awk -v s=$RANDOM -v r=$run 'BEGIN{srand(s+r); printf "%.6f", 0.3 + rand()*1.5}')"
  KILL_NS=$(now_ns)
  kill -9 $PID_A
  wait $PID_A 2>/dev/null
  # the backup takes over ...
  wait_for 10 state_is B kv1 unprotected || { cat "$T/B.log" | tail -20; fail "run $run: backup did not take over"; }
  # ... and the client, still running, gets answers from it
  sleep 1.5
  kill -TERM $LOAD; wait $LOAD
  # The first reply the backup served ends the longest gap after the kill
  # (a reply the primary released just before dying may land after it).
  FIRST=$(first_after_gap "$T/ack.log" $KILL_NS)
  if [ -z "$FIRST" ]; then
    cat "$T/load.out"; tail -20 "$T/B.log"
    fail "run $run: no acknowledged write after the kill"
  fi
  FAILOVER_MS=$(( (FIRST - KILL_NS) / 1000000 ))
  ACKED=$(grep -c '^ack' "$T/ack.log")
  disk_ok=1 disk_note=
  if [ -n "${DISK:-}" ]; then
    # the replica's disk went live with its memory: the same table
    if ! in_c "$KVC" -s $IP_G:7000 fsck >"$T/fsck.out" 2>&1; then
      disk_ok=; disk_note="disk differs from memory: $(tail -1 "$T/fsck.out")"
    elif ! "$top_builddir/tests/tools/kvdisk" --check "$T/dB/kv1.img" >"$T/kvdisk.out" 2>&1; then
      disk_ok=; disk_note="replica image inconsistent: $(tail -1 "$T/kvdisk.out")"
    else
      disk_note="disk $(tail -1 "$T/fsck.out")"
    fi
  fi
  if [ -n "$disk_ok" ] && in_c "$KVC" -s $IP_G:7000 verify -i "$T/ack.log" >"$T/verify.out" 2>&1; then
    echo "ok $run: $(cat "$T/verify.out" | tail -1); $ACKED acked; failover ${FAILOVER_MS} ms${disk_note:+; $disk_note}"
  elif [ -z "$disk_ok" ]; then
    echo "not ok $run: $disk_note"
    failed=$((failed + 1))
  else
    echo "not ok $run: $(tail -1 "$T/verify.out")"
    failed=$((failed + 1))
  fi
  [ -n "$RESULTS" ] && echo "run=$run failover_ms=$FAILOVER_MS acked=$ACKED" >>"$RESULTS"
  kill -TERM $PID_B 2>/dev/null; wait $PID_B 2>/dev/null
  mv "$T/ack.log" "$T/ack.$run.log"
done
[ $failed -eq 0 ] || fail "$failed of $RUNS runs lost or duplicated acknowledged writes"
echo "PASS: $RUNS runs, no acknowledged write lost or duplicated"
