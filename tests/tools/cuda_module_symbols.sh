#!/usr/bin/env bash
# Every symbol of ours that the CUDA module leaves to the program that loads it is exported by each
# program that may load it: otherwise dlopen fails on a GPU host, where CI cannot look.
#   tests/tools/cuda_module_symbols.sh libdsc_cuda.so PROGRAM...
set -euo pipefail
module=$1; shift
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Ours: anything in namespace dsc (demangled), plus the C entry points the module calls by name.
nm -D --undefined-only "$module" | awk '{print $NF}' | c++filt | grep -E '(^| |\()dsc::' | sort -u > "$tmp/needs"
n=$(wc -l < "$tmp/needs")
[ "$n" -gt 0 ] || { echo "FAIL: $module takes no symbol of ours from its program (not built as a module?)"; exit 1; }
status=0
for p in "$@"; do
  nm -D --defined-only "$p" | awk '{print $NF}' | c++filt | sort -u > "$tmp/has"
  missing=$(comm -23 "$tmp/needs" "$tmp/has")
  if [ -n "$missing" ]; then
    echo "FAIL: $(basename "$p") does not export $(echo "$missing" | wc -l) of the $n symbols $module takes from it:"
    echo "$missing" | head -20
    status=1
  else
    echo "$(basename "$p"): exports all $n symbols the module takes"
  fi
done
[ $status -eq 0 ] && echo PASS
exit $status
