#!/usr/bin/env bash
# Builds dscompile and runs the whole test suite (ctest; extra arguments go to it), then the fast
# part again under ASan+UBSan with a short run of every fuzz target (scripts/test-sanitize.sh;
# DSC_SANITIZE_TESTS=0 skips that half).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
main=0
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@" || main=$?
status=$main
if [ "${DSC_SANITIZE_TESTS:-1}" != 0 ]; then
  scripts/test-sanitize.sh || status=$?
fi
# The sanitizer half prints last, so a failure of the main suite would scroll out of sight of
# whoever reads only the end of the log (CI keeps its tail): its failed tests run once more on
# their own at the end, which also tells a flaky test from a broken one. The status stays failed.
if [ "$main" != 0 ] && [ -s build/Testing/Temporary/LastTestsFailed.log ]; then
  failed=$(sed 's/^/  /' build/Testing/Temporary/LastTestsFailed.log)
  echo "=== the main suite failed; its failed tests once more, alone:"
  ctest --test-dir build --rerun-failed --output-on-failure "$@" 2>&1 | tail -n 60 || true
  echo "=== the main suite's failures (first run):"
  echo "$failed"
fi
exit "$status"
