#!/usr/bin/env bash
# Builds dscompile and runs the whole test suite (ctest); extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
