#!/usr/bin/env bash
# Runs one libFuzzer target from fuzz/ on seeds gathered from the repository (or replays them).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'USAGE'
usage: scripts/fuzz.sh [--build-dir DIR] [--no-build] TARGET SECONDS
       scripts/fuzz.sh [--build-dir DIR] [--no-build] --replay TARGET
       scripts/fuzz.sh --list

Fuzzes TARGET (fuzz_onnx_import, fuzz_config, fuzz_plan, fuzz_npy, fuzz_checkpoint, fuzz_metrics_plot,
fuzz_byte_size) for SECONDS, starting from the repository's own files of that kind (bundled models,
configs, .npy files, plans the build compiles), fuzz/corpus/TARGET and fuzz/regressions/TARGET.
A crash, a hang (an input running over 10 s) or running out of memory (2 GiB) ends the run with
exit status 1 and the reproducer's path.

--replay runs every seed and regression input once, without fuzzing (what ctest's TARGET.replay
does); a crasher that no longer crashes belongs in fuzz/regressions/TARGET.

  --build-dir DIR  the clang build with DSC_FUZZ=ON (default build-san; configured if missing)
  --no-build       use the build dir as it is (ctest runs this script that way)
  --list           print the target names

New corpus inputs go to DIR/fuzz-corpus/TARGET, reproducers to DIR/fuzz-artifacts/TARGET.
USAGE
}

TARGETS=(fuzz_onnx_import fuzz_config fuzz_plan fuzz_npy fuzz_checkpoint fuzz_metrics_plot fuzz_byte_size)
build_dir=build-san
build=1
replay=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --list) printf '%s\n' "${TARGETS[@]}"; exit 0 ;;
    --build-dir) build_dir="${2:?--build-dir needs a directory}"; shift 2 ;;
    --no-build) build=0; shift ;;
    --replay) replay=1; shift ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
want=$((replay ? 1 : 2))
if [ ${#args[@]} -ne "$want" ]; then
  echo "fuzz.sh: expected ${want} argument(s), got ${#args[@]} (see --help)" >&2
  exit 2
fi
target="${args[0]}"
if ! printf '%s\n' "${TARGETS[@]}" | grep -qx -- "$target"; then
  echo "fuzz.sh: unknown target '$target' (known: ${TARGETS[*]})" >&2
  exit 2
fi
seconds=0
if [ "$replay" -eq 0 ]; then
  seconds="${args[1]}"
  if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz.sh: SECONDS must be a positive integer, got '$seconds'" >&2
    exit 2
  fi
fi

if [ "$build" -eq 1 ]; then
  if [ ! -f "$build_dir/CMakeCache.txt" ]; then
    scripts/install-deps.sh >/dev/null
    cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DDSC_SANITIZE=ON -DDSC_FUZZ=ON -DDSC_ONNX_PREFIX="$(scripts/install-onnx.sh)" >/dev/null
  fi
  cmake --build "$build_dir" -j"$(nproc)" --target "$target"
fi
bin="$build_dir/fuzz/$target"
if [ ! -x "$bin" ]; then
  echo "fuzz.sh: $bin is not built (configure $build_dir with -DDSC_FUZZ=ON, or drop --no-build)" >&2
  exit 1
fi

# The seeds: repository files of the target's kind, copied (flattened) into a scratch folder.
seeds="$build_dir/fuzz-corpus/$target.seeds"
rm -rf "$seeds"
mkdir -p "$seeds"
add_seed() {  # FILE [strip-bytes]
  local name="${1//\//_}"
  if [ -n "${2:-}" ]; then head -c "-$2" "$1" >"$seeds/$name"; else cp "$1" "$seeds/$name"; fi
}
case "$target" in
  fuzz_onnx_import)  # the bundled models, and the tests' small ONNX-text graphs as binary models
    # A fuzz run starts from the models under 128 KiB: a larger one takes seconds per execution
    # under ASan, so a short run would spend its time loading seeds rather than mutating them
    # (in CI the run took 132 s for its 30). The replay keeps every model under 2 MiB.
    max_kib=$((replay ? 2048 : 128))
    while IFS= read -r f; do add_seed "$f"; done < <(find models -name '*.onnx' -size -"${max_kib}"k | sort)
    python="${DSC_PYTHON:-/usr/bin/python3}"
    if ! "$python" fuzz/onnx_text_seeds.py "$seeds" $(find tests/passes -name '*.txt' | sort) tests/autodiff/grad_cases.txt; then
      echo "fuzz.sh: note: no seeds from the tests' ONNX text ($python needs the onnx module: scripts/install-deps.sh)" >&2
    fi ;;
  fuzz_config)
    while IFS= read -r f; do add_seed "$f"; done < <(find configs tests/config/data models -name '*.json' -size -64k | sort) ;;
  fuzz_plan)  # the target appends the checksum itself, so seeds go without theirs
    while IFS= read -r f; do add_seed "$f" 8; done < <(find "$build_dir/fuzz/seed-plans" -name '*.dsplan' | sort) ;;
  fuzz_npy)
    while IFS= read -r f; do add_seed "$f"; done < <(find models tests -name '*.npy' -size -1024k | sort) ;;
  fuzz_checkpoint) ;;  # a manifest and a rank file in fuzz/corpus/fuzz_checkpoint (below)
  fuzz_metrics_plot) ;;  # dsrun --metrics lines and edge cases in fuzz/corpus/fuzz_metrics_plot
  fuzz_byte_size) ;;  # --activation-budget sizes in fuzz/corpus/fuzz_byte_size
esac
for d in "fuzz/corpus/$target" "fuzz/regressions/$target"; do
  if [ -d "$d" ]; then
    while IFS= read -r f; do add_seed "$f"; done < <(find "$d" -type f | sort)
  fi
done
if [ -z "$(ls -A "$seeds")" ]; then
  echo "fuzz.sh: no seeds found for $target (for fuzz_plan: build the fuzz_plan_seeds target)" >&2
  exit 1
fi

artifacts="$build_dir/fuzz-artifacts/$target"
mkdir -p "$artifacts"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# A hang, not a slow machine, should trip the per-input timeout. The replay's real models get 120 s:
# models/current/rnn_lm/rnn_lm.helper.onnx (200 KiB) took 28 s under ASan on a day this machine ran
# three times slower than usual, and failed the 10 s there were before. The run's inputs, grown from
# seeds under 128 KiB, get 30 s.
flags=(-rss_limit_mb=2048 -malloc_limit_mb=2048 "-artifact_prefix=$artifacts/")
log="$build_dir/fuzz-artifacts/$target.log"

status=0
if [ "$replay" -eq 1 ]; then
  files=()
  while IFS= read -r f; do files+=("$f"); done < <(find "$seeds" -type f | sort)
  echo "fuzz.sh: replaying ${#files[@]} inputs through $target"
  "$bin" "${flags[@]}" -timeout=120 "${files[@]}" >"$log" 2>&1 || status=$?
else
  corpus="$build_dir/fuzz-corpus/$target"
  mkdir -p "$corpus"
  echo "fuzz.sh: fuzzing $target for ${seconds} s from $(ls "$seeds" | wc -l) seeds (log: $log)"
  # New inputs go to the first folder only; the seeds are read from the second.
  "$bin" "${flags[@]}" -timeout=30 -max_total_time="$seconds" -print_final_stats=1 "$corpus" "$seeds" >"$log" 2>&1 || status=$?
fi
if [ "$status" -ne 0 ]; then
  tail -n 60 "$log" >&2
  repro="$(grep -o 'Test unit written to .*' "$log" | tail -n 1 | sed 's/Test unit written to //')"
  if [ -z "$repro" ]; then repro="$(grep -o 'Running: .*' "$log" | tail -n 1 | sed 's/Running: //')"; fi
  echo "fuzz.sh: $target failed (exit status $status); reproducer: ${repro:-see $log}" >&2
  [ -n "$repro" ] && echo "fuzz.sh: rerun it with: $bin $repro" >&2
  exit 1
fi
grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
echo "fuzz.sh: $target: no crash, hang or OOM"
