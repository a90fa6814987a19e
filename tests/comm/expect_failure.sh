#!/bin/bash
# Runs a command that must fail: non-zero exit within LIMIT seconds, output matching REGEX.
# usage: expect_failure.sh LIMIT REGEX COMMAND [ARGS...]
limit=$1
regex=$2
shift 2
start=$(date +%s%N)
out=$(timeout -k 5 "$limit" "$@" 2>&1)
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
elapsed="$((ms / 1000)).$(printf %03d $((ms % 1000)))"
echo "$out"
echo "--- exit status $rc after ${elapsed} s"
if [ "$rc" -eq 124 ] || [ "$ms" -ge $((limit * 1000)) ]; then
  echo "FAIL: still running after ${limit} s (a rank hangs)"
  exit 1
fi
if [ "$rc" -eq 0 ]; then
  echo "FAIL: exit status 0, expected a failure"
  exit 1
fi
if ! grep -qE -- "$regex" <<<"$out"; then
  echo "FAIL: the output does not match /$regex/"
  exit 1
fi
echo "PASS"
