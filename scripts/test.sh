#!/usr/bin/env bash
# Builds dscompile and runs the whole test suite (ctest; extra arguments go to it), then the fast
# part again under ASan+UBSan with a short run of every fuzz target (scripts/test-sanitize.sh;
# DSC_SANITIZE_TESTS=0 skips that half).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
status=0
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@" || status=$?
if [ "${DSC_SANITIZE_TESTS:-1}" != 0 ]; then
  scripts/test-sanitize.sh || status=$?
fi
exit "$status"
