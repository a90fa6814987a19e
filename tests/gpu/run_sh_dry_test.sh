#!/usr/bin/env bash
# tests/gpu/run.sh runs only on GPU hosts, a few times a month: this runs its dry run here
# (DSC_GPU_CHECK_DEVICE=cpu) on a few checks, so that a change that breaks the script's plumbing
# (argument handling, config derivation, the comparisons, the summary) fails CI instead of a GPU call.
# usage: run_sh_dry_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# run.sh takes an unpacked bundle's bin/; the build tree's programs stand in for it.
mkdir -p "$tmp/bundle/bin"
for p in dscompile dsrun dsinspect; do ln -s "$build/tools/$p" "$tmp/bundle/bin/$p"; done
cd "$src"
set +e
DSC_GPU_CHECK_DEVICE=cpu DSC_GPU_CHECKS=kernel_table,traj_fp32_mlp,traj_bf16_mlp,zero3_2rank_fp32,onebit_adam_2rank,offload_opt,cpu_ckpt \
  tests/gpu/run.sh "$tmp/bundle" "$build" "$tmp/out" >"$tmp/log" 2>&1
rc=$?
set -e
cat "$tmp/log"
[ $rc -eq 0 ] || fail "run.sh's dry run exited $rc"
for c in kernel_table traj_fp32_mlp traj_bf16_mlp zero3_2rank_fp32 onebit_adam_2rank offload_opt_gpt_bf16 cpu_ckpt_gpt2_l12; do
  grep -qP "^$c\tPASS\t.*dry run" "$tmp/out/results.tsv" || fail "$c did not pass: $(grep "^$c" "$tmp/out/results.tsv")"
done
[ "$(wc -l <"$tmp/out/results.tsv")" -eq 7 ] || fail "DSC_GPU_CHECKS selected other checks too"
grep -q '"PASS": 7' "$tmp/out/summary.json" || fail "summary.json: $(cat "$tmp/out/summary.json")"
