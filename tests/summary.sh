#!/bin/sh
# Print the closing line of a test run from automake's .trs files:
#   N passed, N failed, N skipped
# XFAIL counts as passed, XPASS and ERROR as failed.
dir=${1:-.}
pass=0 fail=0 skip=0
for f in $(find "$dir" -name '*.trs' 2>/dev/null); do
  while IFS= read -r line; do
    case "$line" in
      ":test-result: PASS"*|":test-result: XFAIL"*) pass=$((pass + 1)) ;;
      ":test-result: FAIL"*|":test-result: XPASS"*|":test-result: ERROR"*) fail=$((fail + 1)) ;;
      ":test-result: SKIP"*) skip=$((skip + 1)) ;;
    esac
  done < "$f"
done
echo "$pass passed, $fail failed, $skip skipped"
