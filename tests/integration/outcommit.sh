#!/bin/bash
# Output commit: no reply reaches the client before the epoch that produced
# it is acked. The backup's tandemd is frozen (SIGSTOP) so no ACK can come;
# a request sent then must get no reply until the backup is thawed, and then
# it must get it. The failure timeout is set long so the primary does not
# give up on its backup during the stall.
. "$(dirname "$0")/lib.sh"
need_root_netns

T=$(mktemp -d /tmp/tdm-outcommit.XXXXXX)
cleanup() { kill -CONT $PID_B 2>/dev/null; net_teardown; [ -n "$KEEP" ] || rm -rf "$T"; }
trap cleanup EXIT
net_setup
start_daemon A
start_daemon B
domain_cfg >"$T/kv1.cfg"
"$XLT" -s "$T/A.sock" create "$T/kv1.cfg" || fail "create"
in_c "$KVC" -s $IP_G:7000 wait -T 10000 >/dev/null || fail "guest did not answer"
"$XLT" -s "$T/A.sock" protect -i 25 -H 200 -t 5000 kv1 $IP_B || fail "protect"
wait_for 20 state_is A kv1 protected || fail "not protected"
in_c "$KVC" -s $IP_G:7000 put before 1 >/dev/null || fail "put while protected"

kill -STOP $PID_B
sleep 0.2
T0=$(now_ns)
ip netns exec $NS_C "$KVC" -s $IP_G:7000 -r 100 -T 8000 put during 2 >"$T/put.out" 2>&1 &
PUT=$!
sleep 2
if ! kill -0 $PUT 2>/dev/null; then
  cat "$T/put.out"
  fail "a reply reached the client while the backup could not ack"
fi
HELD=$("$XLT" -s "$T/A.sock" -j status kv1 | sed -n 's/.*"held_frames":\([0-9]*\).*/\1/p')
note "held frames during the stall: $HELD"
[ "${HELD:-0}" -gt 0 ] || fail "status shows no held output during the stall"
if [ -n "${NETBUF:-}" ]; then
  MECH=$("$XLT" -s "$T/A.sock" -j status kv1 | sed -n 's/.*"mechanism":"\([a-z]*\)".*/\1/p')
  [ "$MECH" = "$NETBUF" ] || fail "status names output mechanism '$MECH', not $NETBUF"
fi
kill -CONT $PID_B
wait $PUT || fail "the reply never came after the backup resumed: $(cat "$T/put.out")"
T1=$(now_ns)
WAITED=$(( (T1 - T0) / 1000000 ))
note "reply arrived ${WAITED} ms after the request (backup frozen for ~2000 ms)"
[ $WAITED -ge 2000 ] || fail "reply came after ${WAITED} ms, before the backup was thawed"
"$XLT" -s "$T/A.sock" status kv1
in_c "$KVC" -s $IP_G:7000 get during | grep -q 2 || fail "value not stored"
echo "PASS: output held while acks were stalled, released after"
