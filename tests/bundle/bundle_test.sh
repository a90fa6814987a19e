#!/usr/bin/env bash
# Builds a bundle with scripts/bundle.sh from BUILD, unpacks it into a fresh folder and, with a
# clean environment (no build or source tree on any path), compiles the bundled gpt, trains it on
# 1 and 2 ranks and inspects the plan; the losses must equal the same runs from the build tree.
# usage: bundle_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$src/scripts/bundle.sh" "$tmp/dsc.tar.gz" --build-dir "$build"
size=$(stat -c %s "$tmp/dsc.tar.gz")
[ "$size" -lt 40000000 ] || fail "bundle is $size bytes, not under 40 MB"
mkdir "$tmp/fresh"
tar -C "$tmp/fresh" -xzf "$tmp/dsc.tar.gz"
bin="$tmp/fresh/dscompile-bundle/bin"
if grep -rlF -e "$build" -e "$src" "$bin"; then fail "launchers name the build or source tree"; fi

# The inputs, copied so that nothing the runs touch lies in the source tree. The 2-rank config
# keeps train_batch_size 16: micro-batch 4 x 2 accumulation steps x 2 ranks.
mkdir "$tmp/work" "$tmp/ref"
for d in "$tmp/work" "$tmp/ref"; do
  cp "$src/models/gpt/gpt.onnx" "$d/" && cp -r "$src/models/gpt/data" "$d/data" && cp "$src/configs/gpt.json" "$d/gpt.json"
  sed 's/"gradient_accumulation_steps": 4/"gradient_accumulation_steps": 2/' "$d/gpt.json" >"$d/gpt2.json"
  grep -q '"gradient_accumulation_steps": 2' "$d/gpt2.json" || fail "could not derive the 2-rank config"
done

# runs DIR PREFIX: compile for 1 and 2 ranks, train 4 steps on each, inspect; PREFIX is the
# folder holding dscompile, dsrun and dsinspect.
runs() {
  cd "$1"
  "$2/dscompile" gpt.onnx --config gpt.json -o g1.dsplan >/dev/null 2>&1
  "$2/dscompile" gpt.onnx --config gpt2.json --world-size 2 -o g2.dsplan >/dev/null 2>&1
  "$2/dsrun" g1.dsplan --data data --steps 4 --device cpu --threads 1 --metrics m1.jsonl -q
  "$2/dsrun" g2.dsplan --data data --steps 4 --device cpu --threads 1 --nproc 2 --metrics m2.jsonl -q
  "$2/dsinspect" g1.dsplan >inspect.txt
}
env -i PATH=/usr/bin:/bin HOME="$HOME" bash -c "$(declare -f runs)"'; set -euo pipefail; runs "$0" "$1"' "$tmp/work" "$bin" \
  || fail "the bundled programs failed"
(runs "$tmp/ref" "$build/tools") || fail "the build tree's programs failed"

# What the bundled mpirun starts must not get the bundle's lib/ on LD_LIBRARY_PATH (Open MPI adds
# prefix/lib when mpirun is started by an absolute path): the ranks start as /bin/sh bin/dsrun, and a
# host glibc newer than the bundled one cannot load sh against it.
root_flag=""
[ "$(id -u)" = 0 ] && root_flag=--allow-run-as-root
rank_env=$(env -i PATH=/usr/bin:/bin HOME="$HOME" "$bin/mpirun" $root_flag --oversubscribe -np 2 /usr/bin/env 2>&1) \
  || fail "the bundled mpirun could not start /usr/bin/env: $rank_env"
if grep -q "^LD_LIBRARY_PATH=.*$tmp/fresh" <<<"$rank_env"; then
  fail "the ranks inherit the bundle on LD_LIBRARY_PATH: $(grep ^LD_LIBRARY_PATH= <<<"$rank_env" | head -n1)"
fi
# Nor may PMIx load plugins from outside the bundle (a host PMIx's would not link against ours).
if command -v strace >/dev/null 2>&1; then
  strace -f -e trace=openat -o "$tmp/open.txt" env -i PATH=/usr/bin:/bin HOME="$HOME" "$bin/mpirun" $root_flag -np 1 /bin/true \
    || fail "the bundled mpirun failed under strace"
  outside=$(grep -v ENOENT "$tmp/open.txt" | grep -o '"[^"]*/pmix_mca_[^"]*\.so"' | grep -v "$tmp/fresh" || true)
  [ -z "$outside" ] || fail "PMIx loaded plugins from outside the bundle: $outside"
fi

losses() { grep -o '"loss":[^,}]*' "$1"; }
for m in m1 m2; do
  [ "$(losses "$tmp/work/$m.jsonl" | wc -l)" -eq 4 ] || fail "$m: expected 4 steps of metrics"
  diff <(losses "$tmp/ref/$m.jsonl") <(losses "$tmp/work/$m.jsonl") || fail "$m: losses differ from the build tree's run"
done
grep -q "world size: 1" "$tmp/work/inspect.txt" || fail "dsinspect from the bundle printed no summary"
# The same summary but for the command line, the source model's absolute path and the passes' timings.
# Runs of spaces are squeezed: the timing column's width follows the longest time.
summary() { grep -v -e "^command line" -e "^source model" "$1" | sed -E 's/ *[0-9.]+ (ms|us|s)$/ T/; s/ +/ /g'; }
diff <(summary "$tmp/ref/inspect.txt") <(summary "$tmp/work/inspect.txt") \
  || fail "dsinspect differs from the build tree's"

# --device cuda on a machine without a GPU says why (no backend built, or no GPU visible); unknown
# values name the accepted ones.
if ! nvidia-smi -L >/dev/null 2>&1; then
  out=$(env -i PATH=/usr/bin:/bin HOME="$HOME" "$bin/dsrun" "$tmp/work/g1.dsplan" --data "$tmp/work/data" --device cuda 2>&1) \
    && fail "--device cuda succeeded without a GPU"
  grep -Eq "CUDA backend is not built into this dsrun|no CUDA GPU is visible" <<<"$out" \
    || fail "--device cuda: unexpected message: $out"
fi
# The bundled CUDA module binds to the bundled (stripped) program: it exports what the module takes.
if [ -f "$build/tools/libdsc_cuda.so" ]; then
  bundled=$tmp/fresh/dscompile-bundle
  [ -f "$bundled/lib/libdsc_cuda.so" ] || fail "the build has a CUDA module but the bundle does not"
  "$src/tests/tools/cuda_module_symbols.sh" "$bundled/lib/libdsc_cuda.so" "$bundled/real/dsc" >"$tmp/symbols.txt" \
    || fail "$(cat "$tmp/symbols.txt")"
fi
out=$("$bin/dsrun" "$tmp/work/g1.dsplan" --data "$tmp/work/data" --device tpu 2>&1) && fail "--device tpu succeeded"
grep -q "accepted: cpu, cuda" <<<"$out" || fail "--device tpu: unexpected message: $out"
echo "bundle: $size bytes; losses equal on 1 and 2 ranks: $(losses "$tmp/work/m1.jsonl" | tr '\n' ' ')"
