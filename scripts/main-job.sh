#!/usr/bin/env bash
# Builds dscompile and compiles the bundled GPT model with configs/gpt.json, then shows the plan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
build/tools/dscompile models/gpt/gpt.onnx --config configs/gpt.json -o build/gpt.dsplan --dump-dir build/gpt-dumps
build/tools/dsinspect build/gpt.dsplan
