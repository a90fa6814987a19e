#!/usr/bin/env bash
# Writes the linker options that make a program hold every symbol of ours the CUDA module takes
# from it: one "--undefined=SYMBOL" per symbol (ld then pulls the archive member that defines it,
# even when the program itself never calls it).
#   runtime/cuda_module_imports.sh libdsc_cuda.so OUT
set -euo pipefail
module=$1 out=$2
# Mangled and demangled names, line by line; ours are those in namespace dsc (functions, vtables,
# typeinfo).
undefined=$(nm -D --undefined-only "$module" | awk '{print $NF}')
paste -d' ' <(echo "$undefined") <(echo "$undefined" | c++filt | tr ' ' '_') |
  awk '$2 ~ /dsc::/ {print "--undefined=" $1}' >"$out.tmp"
[ -s "$out.tmp" ] || { echo "cuda_module_imports.sh: $module takes no symbol of ours (not our CUDA module?)" >&2; exit 1; }
# Unchanged content keeps the file's time, so programs relink only when the imports change.
if cmp -s "$out.tmp" "$out"; then rm "$out.tmp"; else mv "$out.tmp" "$out"; fi
