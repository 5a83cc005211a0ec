#!/bin/bash
# The daemon and the CLI on a private socket: every bad input gets a clear
# error (exit 2 for usage, 1 from the daemon) and changes nothing; the
# read-only socket refuses changes; the daemon survives malformed requests;
# SIGTERM removes its sockets. No root or network needed.
. "$(dirname "$0")/lib.sh"
CTLSEND=$top_builddir/tests/tools/ctlsend
for f in "$TANDEMD" "$XLT" "$CTLSEND"; do [ -x "$f" ] || skip "not built: $f"; done

T=$(mktemp -d /tmp/tdm-cli.XXXXXX)
trap 'kill $PID 2>/dev/null; rm -rf "$T"' EXIT
S=$T/d.sock
echo "log-level = debug" >"$T/tandem.conf"
"$TANDEMD" -f -c "$T/tandem.conf" -s "$S" -l 127.0.0.1:0 >"$T/log" 2>&1 &
PID=$!
wait_for 10 "$XLT" -s "$S" list || { cat "$T/log"; fail "tandemd did not start"; }
n=0
expect() { # expect CODE PATTERN CMD...: exit code and a message
  local code=$1 pat=$2; shift 2
  out=$("$@" 2>&1); rc=$?
  n=$((n + 1))
  [ $rc -eq "$code" ] || fail "'$*' exited $rc, not $code: $out"
  echo "$out" | grep -qi -- "$pat" || fail "'$*' said '$out', expected /$pat/"
}
x() { "$XLT" -s "$S" "$@"; }

[ "$(x list | wc -l)" -eq 1 ] || fail "list is not empty"
[ "$(x -j list)" = "[]" ] || fail "list -j is not []"
expect 2 "no command" "$XLT" -s "$S"
expect 2 "unknown command" x frobnicate
expect 2 "exactly one" x unprotect
expect 2 "not a domain name" x unprotect "bad/name"
expect 2 "not a domain name" x destroy 1234
expect 2 "HOST" x protect kv1 "host:99999"
expect 2 "milliseconds" x protect -i 0 kv1 hostb
expect 2 "milliseconds" x protect -i abc kv1 hostb
expect 2 "a domain and a backup" x protect kv1
expect 2 "at most one" x status a b
expect 2 "no arguments" x list extra
expect 2 "no such file\|cannot\|No such" x create /nonexistent.cfg
printf 'name = "x"\nname = "y"\n' >"$T/dup.cfg"
expect 2 "already set" x create "$T/dup.cfg"
expect 1 "no domain named 'ghost'" x unprotect ghost
expect 1 "no domain named 'ghost'" x status ghost
expect 1 "no domain named 'ghost'" x failover ghost
printf 'name = "k"\nmemory = 1\n' >"$T/small.cfg"
expect 1 "memory" x create "$T/small.cfg"
printf 'name = "k"\ndriver = "vmware"\n' >"$T/drv.cfg"
expect 1 "not built in" x create "$T/drv.cfg"
printf 'name = "k"\ncolour = "red"\n' >"$T/key.cfg"
expect 1 "unknown key 'colour'" x create "$T/key.cfg"
expect 1 "is it running" "$XLT" -s "$T/nothere.sock" list

# raw protocol abuse
expect 0 "malformed JSON" "$CTLSEND" "$S" '{"method":'
expect 0 "unknown method" "$CTLSEND" "$S" '{"method":"reboot"}'
expect 0 "unknown parameter 'force'" "$CTLSEND" "$S" '{"method":"destroy","params":{"name":"k","force":true}}'
expect 0 "must be a string" "$CTLSEND" "$S" '{"method":"destroy","params":{"name":5}}'
expect 0 "whole number" "$CTLSEND" "$S" '{"method":"protect","params":{"name":"k","host":"h","port":70000}}'
expect 0 "not allowed on the read-only" "$CTLSEND" "$S.ro" '{"method":"destroy","params":{"name":"k"}}'
expect 0 '"ok":true' "$CTLSEND" "$S.ro" '{"method":"list"}'
[ "$(stat -c %a "$S")" = 600 ] || fail "control socket is not 0600"
# and nothing changed
[ "$(x -j list)" = "[]" ] || fail "a refused request changed something"
expect 0 "tandemd 0.1.0" x version

# a second daemon on the same socket refuses to start
"$TANDEMD" -f -c "$T/tandem.conf" -s "$S" -l none >"$T/log2" 2>&1 && fail "second daemon started"
grep -q "another tandemd answers" "$T/log2" || fail "second daemon did not say why: $(cat "$T/log2")"
# bad configuration is refused at start, naming the line
echo "interval = 0" >"$T/bad.conf"
"$TANDEMD" -f -c "$T/bad.conf" -s "$T/x.sock" -l none >"$T/log3" 2>&1 && fail "started with a bad config"
grep -q "interval" "$T/log3" || fail "bad config not explained: $(cat "$T/log3")"

kill -TERM $PID; wait $PID
[ -e "$S" ] && fail "socket left behind after SIGTERM"
[ -e "$S.ro" ] && fail "read-only socket left behind after SIGTERM"
echo "PASS: $n checks"
