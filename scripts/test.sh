#!/usr/bin/env bash
# Builds dscompile and runs the whole test suite, then the fast part again under ASan+UBSan with a
# short run of every fuzz target (scripts/test-sanitize.sh; DSC_SANITIZE_TESTS=0 skips that half,
# DSC_DEADLINE, an epoch second, stops it in time for CI's limit).
# GoogleTest cases run batched, a few processes per binary (scripts/ctest_batched.py: a process
# start and ctest's bookkeeping cost more than most cases); with arguments, ctest runs the
# selection they make, one process per test.
set -euo pipefail
cd "$(dirname "$0")/.."
# CI's limit is on the whole run: each phase says when it starts, so a log shows where time went.
phase() { echo "=== $(date -u +%H:%M:%S) (+${SECONDS} s) $*"; }
phase "install"
scripts/install-deps.sh
phase "build"
scripts/build.sh
phase "the main suite"
main=0
if [ $# -gt 0 ]; then
  ctest --test-dir build --output-on-failure -j"$(nproc)" "$@" || main=$?
else
  python3 scripts/ctest_batched.py --build-dir build -j"$(nproc)" || main=$?
fi
status=$main
if [ "${DSC_SANITIZE_TESTS:-1}" != 0 ]; then
  phase "the sanitizer half (build-san)"
  scripts/test-sanitize.sh || status=$?
fi
phase "done"
# The sanitizer half prints last, so a failure of the main suite would scroll out of sight of
# whoever reads only the end of the log (CI keeps its tail): it is summed up once more at the end.
if [ "$main" != 0 ]; then
  echo "=== the main suite failed:"
  if [ $# -eq 0 ]; then
    cat build/Testing/batched/summary.txt
  elif [ -s build/Testing/Temporary/LastTestsFailed.log ]; then
    # Its failed tests once more, alone, which also tells a flaky test from a broken one.
    failed=$(sed 's/^/  /' build/Testing/Temporary/LastTestsFailed.log)
    ctest --test-dir build --rerun-failed --output-on-failure "$@" 2>&1 | tail -n 60 || true
    echo "=== the main suite's failures (first run):"
    echo "$failed"
  fi
fi
exit "$status"
