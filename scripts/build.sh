#!/usr/bin/env bash
# Installs the Debian packages dscompile needs (no-op when present) and builds everything into build/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDSC_ONNX_PREFIX="$(scripts/install-onnx.sh)" >/dev/null
cmake --build build -j"$(nproc)"
