#!/usr/bin/env bash
# Every symbol of ours that the CUDA module leaves to the program that loads it is exported by each
# program that may load it: otherwise dlopen fails on a GPU host, where CI cannot look. "Ours" is
# what runtime/cuda_module_imports.sh makes the programs link.
#   tests/tools/cuda_module_symbols.sh libdsc_cuda.so PROGRAM...
set -euo pipefail
module=$1; shift
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$(dirname "$0")/../../runtime/cuda_module_imports.sh" "$module" "$tmp/imports" ||
  { echo "FAIL: $module takes no symbol of ours from its program (not built as a module?)"; exit 1; }
sed 's/^--undefined=//' "$tmp/imports" | sort -u >"$tmp/needs"
n=$(wc -l <"$tmp/needs")
status=0
for p in "$@"; do
  nm -D --defined-only "$p" | awk '{print $NF}' | sort -u >"$tmp/has"
  missing=$(comm -23 "$tmp/needs" "$tmp/has")
  if [ -n "$missing" ]; then
    echo "FAIL: $(basename "$p") does not export $(echo "$missing" | wc -l) of the $n symbols $module takes from it:"
    echo "$missing" | c++filt | head -20
    status=1
  else
    echo "$(basename "$p"): exports all $n symbols the module takes"
  fi
done
[ $status -eq 0 ] && echo PASS
exit $status
