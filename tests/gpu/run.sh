#!/usr/bin/env bash
# The GPU check, run on a GPU host from the repository root:
#
#   tests/gpu/run.sh BUNDLE_DIR BUILD_DIR OUT_DIR
#
# BUNDLE_DIR: an unpacked scripts/bundle.sh tarball (the folder holding bin/dscompile, bin/dsrun,
# bin/dsinspect, or the folder holding dscompile-bundle/). BUILD_DIR: a build tree configured with
# CUDA, for tests/gpu/gpu_kernel_table_test. OUT_DIR: created; every log and report goes there.
#
# Checks, each under its own timeout; a failing one does not stop the others:
#   kernel_table     tests/gpu/gpu_kernel_table_test: every kernel on CUDA against its CPU twin
#   traj_fp32_*      bundled models (and models/current gpt2, llama, sdpa, embedding_bag), dsrun --device cuda vs
#                    --device cpu, loss per step within 1e-4 relative (TF32 off: DSC_ALLOW_TF32 unset)
#   traj_bf16_*      the same with configs/zero2_bf16.json, within 3e-2
#   zero3_2rank_*    ZeRO-3 on 2 ranks sharing the GPU (dsrun --nproc 2 --device cuda) vs 1 rank,
#                    same global batch, fp32 (1e-4) and bf16 as configs/zero3.json has it (3e-2);
#                    zero3_2rank_buckets: every parameter partitioned, small buckets, overlap_comm:
#                    the bucketed Start/Wait/Release kernels on the GPU (fp32, 1e-4)
#   onebit_*         OneBitAdam, ZeroOneAdam and OneBitLamb (models/reference_configs, freeze after a
#                    few steps) on mlp, dsrun --device cuda vs --device cpu, on 1 rank and on 2 ranks
#                    sharing the GPU (the staged communicator carries the compressed all-reduce's
#                    all_to_all and all_gathers), fp32, loss per step within 1e-4 relative;
#                    onebit_adam_fp16_2rank: fp16 with its fp32 master group, within 3e-2
#   offload_opt_*    optimizer offload (the step program on the host, backend/host_step.h): the gpt
#                    with configs/zero2_bf16.json plus offload_optimizer {"device": "cpu",
#                    "pin_memory": true} vs without, both --device cuda: losses within 1e-5
#                    relative, the device's peak allocation lower by at least the optimizer states
#                    and master weights (dsinspect), the median step time of both reported (the dry
#                    run splits the CPU rank with --debug-host-step instead)
#   cpu_ckpt_*       activation_checkpointing.cpu_checkpointing (ToHost/FromHost, a pinned host
#                    arena): the 12-layer GPT (models/gpt2_sized/l12) with activation checkpointing,
#                    with and without cpu_checkpointing, both on --device cuda: losses identical to
#                    the bit (the same kernels; the copies move bytes only), the device's peak
#                    allocation lower by at least the plans' device-arena difference (dsinspect);
#                    the median step time of both reported. The dry run checks the losses only (on a
#                    CPU device the host arena is counted with the rest)
#   gpu_comm         tests/comm/gpu_comm_check under mpirun: each GPU communicator (local, staged,
#                    NCCL with 2+ GPUs) against the MPI one, bit for bit, all_to_all included
#   memcheck         compute-sanitizer --tool memcheck on a 2-step run
#   bench_gpu        bench/bench_gpu.py (GPT-2 small, dsrun vs PyTorch eager and torch.compile), and
#                    dsrun --profile of the same plan (OUT_DIR/bench_profile.json and .txt)
# Prints one summary table (check, status, figures, seconds) and writes OUT_DIR/summary.json.
# Status: PASS, FAIL, TIMEOUT or SKIPPED (with the reason); nothing passes that was not measured.
#
# DSC_GPU_CHECKS=kernel_table,zero3 runs only the checks whose names start with one of these.
# DSC_GPU_CHECK_DEVICE=cpu (a dry run of this script on a machine without a GPU): every "cuda"
# run uses --device cpu instead, so the plumbing and comparisons can be exercised; the summary
# says so on every line (the benchmark then runs --tiny --device cpu --no-compile). Timeouts scale
# with DSC_GPU_CHECK_TIMEOUT_SCALE (default 1); DSC_GPU_CHECK_PYTHON names the python (default:
# python3 on PATH, which on the GPU host is the one with torch).
set -u

if [ $# -ne 3 ]; then
  echo "usage: tests/gpu/run.sh BUNDLE_DIR BUILD_DIR OUT_DIR (from the repository root)" >&2
  exit 2
fi
bundle=$1 build=$2 out=$3
repo=$(pwd)
if [ ! -f "$repo/tests/gpu/run.sh" ] || [ ! -d "$repo/models" ]; then
  echo "run.sh: run from the repository root (no tests/gpu/run.sh or models/ under $(pwd))" >&2
  exit 2
fi
mkdir -p "$out" || { echo "run.sh: cannot create $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
[ -d "$bundle/dscompile-bundle/bin" ] && bundle=$bundle/dscompile-bundle
bin=$(cd "$bundle" 2>/dev/null && pwd)/bin
build=$(cd "$build" 2>/dev/null && pwd || echo "$build")
results=$out/results.tsv
: >"$results"
work=$out/work
mkdir -p "$work"

dev=${DSC_GPU_CHECK_DEVICE:-cuda}
scale=${DSC_GPU_CHECK_TIMEOUT_SCALE:-1}
dry=""
[ "$dev" != cuda ] && dry=" (dry run: --device $dev in place of cuda)"
unset DSC_ALLOW_TF32
export PYTHONUNBUFFERED=1

# record CHECK STATUS FIGURES SECONDS
record() {
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$(tr '\t\n' '  ' <<<"$3$dry")" "$4" >>"$results"
  printf '== %-26s %-8s %s (%ss)\n' "$1" "$2" "$3$dry" "$4"
}
# want CHECK: whether DSC_GPU_CHECKS (comma-separated name prefixes; unset: all) selects CHECK.
want() {
  [ -z "${DSC_GPU_CHECKS:-}" ] && return 0
  local c
  for c in ${DSC_GPU_CHECKS//,/ }; do [[ $1 == "$c"* ]] && return 0; done
  return 1
}
# tmo SECONDS: the scaled timeout
tmo() { awk -v s="$1" -v k="$scale" 'BEGIN { printf "%d", s * k }'; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# skipped NAME T0 [WHY]: records NAME as SKIPPED and succeeds when there is no GPU, no programs or no
# python3, or (with WHY: what the check reads from dsinspect) no dsinspect; fails when it can run.
skipped() {
  if [ -n "$gpu_reason$prog_reason" ] || [ -z "$py" ]; then
    record "$1" SKIPPED "${gpu_reason:-${prog_reason:-python3 not found}}" "$(since "$2")"
    return 0
  fi
  if [ -n "${3:-}" ] && [ ! -x "$bin/dsinspect" ]; then
    record "$1" SKIPPED "no executable $bin/dsinspect ($3)" "$(since "$2")"
    return 0
  fi
  return 1
}

# What the host has: a GPU, python3 (with torch), the programs.
gpu_reason=""
if [ "$dev" = cuda ]; then
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    gpu_reason="nvidia-smi not found: no NVIDIA driver on this host"
  elif ! nvidia-smi -L >"$out/nvidia-smi.txt" 2>&1; then
    gpu_reason="nvidia-smi -L failed: $(head -c 200 "$out/nvidia-smi.txt")"
  elif ! grep -q "^GPU" "$out/nvidia-smi.txt"; then
    gpu_reason="nvidia-smi -L lists no GPU"
  fi
fi
echo "host: $(hostname); $(head -n1 "$out/nvidia-smi.txt" 2>/dev/null || echo 'no nvidia-smi output')"
py=${DSC_GPU_CHECK_PYTHON:-$(command -v python3 || true)}
[ -n "$py" ] && echo "python3: $py ($("$py" -c 'import torch; print("torch", torch.__version__)' 2>&1 | tail -n1))"
prog_reason=""
for p in dscompile dsrun; do
  [ -x "$bin/$p" ] || prog_reason="no executable $bin/$p (BUNDLE_DIR must hold bin/ of an unpacked bundle)"
done

# max_rel_diff REF.jsonl GOT.jsonl RTOL STEPS: prints figures; exit 0 when every step's loss agrees.
max_rel_diff() {
  "$py" - "$@" <<'EOF'
import json, math, sys
ref, got, rtol, steps = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
def losses(p):
    with open(p) as f:
        return [json.loads(l)["loss"] for l in f if l.strip()]
a, b = losses(ref), losses(got)
if len(a) != steps or len(b) != steps:
    print("expected %d steps of metrics, got %d (reference) and %d" % (steps, len(a), len(b)))
    sys.exit(1)
worst, at = 0.0, 1
for i, (x, y) in enumerate(zip(a, b)):
    if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
        print("step %d: non-finite loss (%r vs %r)" % (i + 1, x, y)); sys.exit(1)
    r = abs(x - y) / max(abs(x), 1e-12)
    if r > worst:
        worst, at = r, i + 1
print("max rel loss diff %.2e at step %d of %d (tol %.0e); loss %.5f -> %.5f" % (worst, at, steps, rtol, a[0], a[-1]))
sys.exit(0 if worst <= rtol else 1)
EOF
}

# derive_config SRC DST [key=json ...]: DeepSpeed JSON (full-line // comments dropped) with keys
# replaced ("bf16=null" removes a key).
derive_config() {
  "$py" - "$@" <<'EOF'
import json, re, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src) as f:
    cfg = json.loads(re.sub(r"^\s*//.*$", "", f.read(), flags=re.M))
for kv in sys.argv[3:]:
    k, v = kv.split("=", 1)
    v = json.loads(v)
    if v is None:
        cfg.pop(k, None)
    else:
        cfg[k] = v
with open(dst, "w") as f:
    json.dump(cfg, f, indent=1)
EOF
}

# compile_plan MODEL_ONNX CONFIG PLAN LOG [dscompile args]
compile_plan() {
  local onnx=$1 cfg=$2 plan=$3 log=$4
  shift 4
  timeout "$(tmo 60)" "$bin/dscompile" "$onnx" --config "$cfg" -q -o "$plan" "$@" >"$log" 2>&1
}
# train PLAN DATA DEVICE STEPS METRICS LOG [dsrun args]
train() {
  local plan=$1 data=$2 device=$3 steps=$4 metrics=$5 log=$6
  shift 6
  rm -f "$metrics"
  timeout "$(tmo 90)" "$bin/dsrun" "$plan" --data "$data" --steps "$steps" --no-shuffle --device "$device" \
    --threads 8 --metrics "$metrics" -q "$@" >"$log" 2>&1
}
# last_lines LOG: the end of a log for a figure
last_lines() { tail -n 3 "$1" 2>/dev/null | tr '\n' ' ' | cut -c1-300; }

# launcher_for BINARY NAME: prints how to start a test binary from BUILD_DIR. It was linked on the
# build machine; a GPU host may lack its libraries (OpenBLAS, Open MPI, protobuf, ...). Then it
# starts like the bundled programs: through the bundle's loader and lib/, with the host's
# cuBLAS/NCCL found as the bundle's launchers find them (a launcher written to work/NAME_launcher.sh).
launcher_for() {
  local binary=$1 name=$2 broot extra="" so
  if ! ldd "$binary" 2>/dev/null | grep -q "not found" || [ ! -x "$bin/dsrun" ] || [ -n "$prog_reason" ]; then
    echo "$binary"
    return
  fi
  broot=$(cd "$bin/.." && pwd -P)
  for so in $(ldd "$binary" 2>/dev/null | awk '/not found/ { print $1 }'); do
    [ -e "$broot/lib/$so" ] || extra="$extra$so "
  done
  sed -e "s|^b=.*|b='$broot'|" -e "s|^host_libs=\"\([^\"]*\)\"|host_libs=\"\1$extra\"|" \
    -e "s|\"\$b/real/dsc\"|'$binary'|" "$bin/dsrun" >"$work/${name}_launcher.sh"
  chmod +x "$work/${name}_launcher.sh"
  echo "$name: started through the bundle's loader (host libraries looked up: ${extra:-none})" >&2
  echo "$work/${name}_launcher.sh"
}

# ---------------------------------------------------------------- (a) kernel table
if want kernel_table; then
t0=$(now)
table=$build/tests/gpu/gpu_kernel_table_test
if [ -n "$gpu_reason" ]; then
  record kernel_table SKIPPED "$gpu_reason" "$(since "$t0")"
elif [ ! -x "$table" ]; then
  record kernel_table SKIPPED "no $table (BUILD_DIR must be a build tree configured with CUDA)" "$(since "$t0")"
else
  table_cmd=$(launcher_for "$table" kernel_table)
  filter=KernelTable.CpuVsCuda
  [ "$dev" != cuda ] && filter=KernelTableHarness.CpuAgainstCpu
  # The CUDA kernels are in the bundle's CUDA module, of the same build as the test binary.
  DSC_CUDA_BACKEND=$(cd "$bin/.." && pwd -P)/lib/libdsc_cuda.so \
  DSC_REPO_ROOT=$repo DSC_GPU_REPORT_DIR=$out timeout "$(tmo 150)" "$table_cmd" --gtest_filter=$filter \
    >"$out/kernel_table.log" 2>&1
  rc=$?
  figures=$(grep -E "^kernel table on|^coverage:" "$out/kernel_table.log" | sed -E 's/(not exercised \([0-9]+\)).*/\1 (kernel_table.json lists them)/' | tr '\n' ';')
  if [ $rc -eq 124 ]; then
    record kernel_table TIMEOUT "after $(tmo 150)s; $figures" "$(since "$t0")"
  elif grep -q "\[  SKIPPED \]" "$out/kernel_table.log"; then
    record kernel_table SKIPPED "$(grep -m1 -A1 'no CUDA GPU' "$out/kernel_table.log" | tr '\n' ' ' | cut -c1-200)" "$(since "$t0")"
  elif [ $rc -eq 0 ]; then
    record kernel_table PASS "$figures" "$(since "$t0")"
  else
    record kernel_table FAIL "rc $rc; $figures see kernel_table.log" "$(since "$t0")"
  fi
fi
fi

# ---------------------------------------------------------------- (b) trajectories, cuda vs cpu
# cpu_vs_cuda NAME T0 PLAN DATA STEPS RTOL PREFIX [DSRUN_ARGS ...]: PLAN trained on --device cpu and
# on the device under test (the logs and metrics next to PLAN); NAME recorded from their losses,
# PREFIX before the figure.
cpu_vs_cuda() {
  local name=$1 t0=$2 plan=$3 data=$4 steps=$5 rtol=$6 prefix=$7 d rc fig
  shift 7
  d=$(dirname "$plan")
  train "$plan" "$data" cpu "$steps" "$d/cpu.jsonl" "$d/cpu.log" "$@"
  rc=$?
  if [ $rc -ne 0 ]; then
    record "$name" FAIL "dsrun --device cpu rc $rc: $(last_lines "$d/cpu.log")" "$(since "$t0")"
    return
  fi
  train "$plan" "$data" "$dev" "$steps" "$d/cuda.jsonl" "$d/cuda.log" "$@"
  rc=$?
  if [ $rc -eq 124 ]; then
    record "$name" TIMEOUT "dsrun --device $dev ran past $(tmo 90)s" "$(since "$t0")"
  elif [ $rc -ne 0 ]; then
    record "$name" FAIL "dsrun --device $dev rc $rc: $(last_lines "$d/cuda.log")" "$(since "$t0")"
  elif fig=$(max_rel_diff "$d/cpu.jsonl" "$d/cuda.jsonl" "$rtol" "$steps" 2>&1); then
    record "$name" PASS "$prefix$fig" "$(since "$t0")"
  else
    record "$name" FAIL "$prefix$fig" "$(since "$t0")"
  fi
}

# traj NAME MODEL CONFIG STEPS RTOL: models/MODEL/MODEL.onnx with models/MODEL/data; MODEL may be
# current/NAME.MODE for models/current/NAME/NAME.MODE.onnx with models/current/NAME/data.
traj() {
  local name=$1 model=$2 cfg=$3 steps=$4 rtol=$5 t0 onnx data
  want "$name" || return 0
  case $model in
    current/*) local base=${model#current/}
      onnx=$repo/models/current/${base%%.*}/$base.onnx data=$repo/models/current/${base%%.*}/data ;;
    *) onnx=$repo/models/$model/$model.onnx data=$repo/models/$model/data ;;
  esac
  t0=$(now)
  skipped "$name" "$t0" && return
  local d=$work/$name
  mkdir -p "$d"
  if ! compile_plan "$onnx" "$cfg" "$d/plan.dsplan" "$d/compile.log"; then
    record "$name" FAIL "dscompile failed: $(last_lines "$d/compile.log")" "$(since "$t0")"
    return
  fi
  cpu_vs_cuda "$name" "$t0" "$d/plan.dsplan" "$data" "$steps" "$rtol" ""
}
cfgs=$work/configs
mkdir -p "$cfgs"
if [ -n "$py" ]; then
  derive_config "$repo/configs/zero2_bf16.json" "$cfgs/zero2_bf16.json"
  derive_config "$repo/configs/gpt.json" "$cfgs/gpt.json"
fi
for m in mlp cnn gpt dropout; do
  traj "traj_fp32_$m" "$m" "$repo/models/reference_configs/adamw_wd.json" 12 1e-4
done
traj traj_fp32_gpt_clip_warmup gpt "$cfgs/gpt.json" 8 1e-4
# Current-PyTorch exports (models/current): RMSNorm, rotary, SDPA, GQA and the dynamo exporter's ops;
# embedding_bag's segment reductions (ScatterND add/max/min, int64 ScatterElements and CumSum).
for m in gpt2 llama sdpa embedding_bag; do
  traj "traj_fp32_current_$m" "current/$m.helper" "$repo/models/reference_configs/adam.json" 8 1e-4
done
for m in mlp cnn gpt; do
  traj "traj_bf16_$m" "$m" "$cfgs/zero2_bf16.json" 10 3e-2
done
traj traj_bf16_current_llama current/llama.helper "$cfgs/zero2_bf16.json" 6 3e-2

# ---------------------------------------------------------------- (c) ZeRO-3, 2 ranks vs 1
# zero3 NAME TOL [key=json ...]: gpt with configs/zero3.json (the keys replaced); 1 rank with
# gradient accumulation 4 against 2 ranks with 2, both micro-batch 2: the same global batch of 8.
zero3() {
  local name=$1 rtol=$2 t0
  want "$name" || return 0
  shift 2
  t0=$(now)
  skipped "$name" "$t0" && return
  local d=$work/$name steps=6
  mkdir -p "$d"
  derive_config "$repo/configs/zero3.json" "$d/w1.json" "$@" gradient_accumulation_steps=4 train_micro_batch_size_per_gpu=2
  derive_config "$repo/configs/zero3.json" "$d/w2.json" "$@" gradient_accumulation_steps=2 train_micro_batch_size_per_gpu=2
  if ! compile_plan "$repo/models/gpt/gpt.onnx" "$d/w1.json" "$d/w1.dsplan" "$d/compile1.log" ||
    ! compile_plan "$repo/models/gpt/gpt.onnx" "$d/w2.json" "$d/w2.dsplan" "$d/compile2.log" --world-size 2; then
    record "$name" FAIL "dscompile failed: $(last_lines "$d/compile1.log") $(last_lines "$d/compile2.log")" "$(since "$t0")"
    return
  fi
  train "$d/w1.dsplan" "$repo/models/gpt/data" "$dev" $steps "$d/w1.jsonl" "$d/w1.log"
  local rc1=$?
  train "$d/w2.dsplan" "$repo/models/gpt/data" "$dev" $steps "$d/w2.jsonl" "$d/w2.log" --nproc 2
  local rc2=$?
  if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ]; then
    local st=FAIL
    { [ $rc1 -eq 124 ] || [ $rc2 -eq 124 ]; } && st=TIMEOUT
    record "$name" $st "1 rank rc $rc1: $(last_lines "$d/w1.log"); 2 ranks rc $rc2: $(last_lines "$d/w2.log")" "$(since "$t0")"
    return
  fi
  local fig
  fig=$(max_rel_diff "$d/w1.jsonl" "$d/w2.jsonl" "$rtol" $steps 2>&1)
  if [ $? -eq 0 ]; then record "$name" PASS "$fig" "$(since "$t0")"; else record "$name" FAIL "$fig" "$(since "$t0")"; fi
}
zero3 zero3_2rank_fp32 1e-4 bf16=null
zero3 zero3_2rank_bf16 3e-2
zero3 zero3_2rank_buckets 1e-4 bf16=null 'zero_optimization={"stage": 3, "stage3_param_persistence_threshold": 0, "reduce_bucket_size": 3000, "stage3_prefetch_bucket_size": 3000, "overlap_comm": true}'

# ---------------------------------------------------------------- (c0) optimizer offload
# offload_opt NAME STEPS RTOL: the gpt with $cfgs/zero2_bf16.json with and without
# offload_optimizer {"device": "cpu", "pin_memory": true}, both on $dev.
offload_opt() {
  local name=$1 steps=$2 rtol=$3 t0
  want "$name" || return 0
  t0=$(now)
  skipped "$name" "$t0" "the optimizer-state bytes come from the plan" && return
  local d=$work/$name
  mkdir -p "$d"
  "$py" - "$cfgs/zero2_bf16.json" "$d/offload.json" <<'EOF2'
import json, sys
with open(sys.argv[1]) as f:
    cfg = json.load(f)
cfg["zero_optimization"]["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
with open(sys.argv[2], "w") as f:
    json.dump(cfg, f, indent=1)
EOF2
  if ! compile_plan "$repo/models/gpt/gpt.onnx" "$cfgs/zero2_bf16.json" "$d/plain.dsplan" "$d/compile_plain.log" ||
    ! compile_plan "$repo/models/gpt/gpt.onnx" "$d/offload.json" "$d/offload.dsplan" "$d/compile_offload.log"; then
    record "$name" FAIL "dscompile failed: $(last_lines "$d/compile_plain.log") $(last_lines "$d/compile_offload.log")" "$(since "$t0")"
    return
  fi
  # Without a GPU the CPU rank splits as a GPU rank does: the step on a second CPU device.
  local split=()
  [ "$dev" != cuda ] && split=(--debug-host-step)
  train "$d/plain.dsplan" "$repo/models/gpt/data" "$dev" "$steps" "$d/plain.jsonl" "$d/plain.log"
  local rc1=$?
  train "$d/offload.dsplan" "$repo/models/gpt/data" "$dev" "$steps" "$d/offload.jsonl" "$d/offload.log" "${split[@]}"
  local rc2=$?
  if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ]; then
    local st=FAIL
    { [ $rc1 -eq 124 ] || [ $rc2 -eq 124 ]; } && st=TIMEOUT
    record "$name" $st "plain rc $rc1: $(last_lines "$d/plain.log"); offload rc $rc2: $(last_lines "$d/offload.log")" "$(since "$t0")"
    return
  fi
  "$bin/dsinspect" --json "$d/plain.dsplan" >"$d/plain_plan.json" 2>"$d/dsinspect.log"
  local fig mem rc
  fig=$(max_rel_diff "$d/plain.jsonl" "$d/offload.jsonl" "$rtol" "$steps" 2>&1)
  rc=$?
  mem=$("$py" - "$d/plain.jsonl" "$d/offload.jsonl" "$d/plain_plan.json" <<'EOF2'
import json, statistics, sys
def lines(p):
    with open(p) as f:
        return [json.loads(l) for l in f if l.strip()]
plain, off = lines(sys.argv[1]), lines(sys.argv[2])
with open(sys.argv[3]) as f:
    m = json.load(f)["memory"]
moved = m["optimizer_states"] + m["master_weights"]
drop = plain[-1]["peak_allocated_bytes"] - off[-1]["peak_allocated_bytes"]
h = off[-1].get("host_step", {})
t = lambda run: statistics.median(l["step_time_s"] for l in run[1:]) * 1e3
print("device peak %d -> %d B (%d less; optimizer states + masters %d B); host state %d B; per step %d B D2H, %d B H2D; "
      "median step %.2f ms -> %.2f ms" % (plain[-1]["peak_allocated_bytes"], off[-1]["peak_allocated_bytes"], drop, moved,
      h.get("host_state_bytes", 0), h.get("device_to_host_bytes", 0), h.get("host_to_device_bytes", 0), t(plain), t(off)))
sys.exit(0 if "host_step" in off[-1] and drop >= moved else 1)
EOF2
  )
  [ $? -ne 0 ] && rc=1
  if [ $rc -eq 0 ]; then record "$name" PASS "$fig; $mem" "$(since "$t0")"; else record "$name" FAIL "$fig; $mem" "$(since "$t0")"; fi
}
offload_opt offload_opt_gpt_bf16 10 1e-5

# ---------------------------------------------------------------- (c0') checkpoints in host memory
# cpu_ckpt NAME STEPS BATCH: the 12-layer GPT with activation_checkpointing, with and without
# cpu_checkpointing, both on $dev; fp32.
cpu_ckpt() {
  local name=$1 steps=$2 batch=$3 t0
  want "$name" || return 0
  t0=$(now)
  skipped "$name" "$t0" "the arenas come from the plans" && return
  local d=$work/$name m=$repo/models/gpt2_sized/l12 v
  # The dry run exercises the plumbing: a few small steps (a CPU takes seconds for each of the GPU's).
  [ "$dev" != cuda ] && steps=3 batch=4
  mkdir -p "$d"
  for v in false true; do
    printf '{"train_batch_size": %s, "optimizer": {"type": "AdamW", "params": {"lr": 0.0001}},\n "activation_checkpointing": {"cpu_checkpointing": %s}}\n' \
      "$batch" "$v" >"$d/ckpt_$v.json"
    if ! compile_plan "$m/gpt2.onnx" "$d/ckpt_$v.json" "$d/ckpt_$v.dsplan" "$d/compile_$v.log"; then
      record "$name" FAIL "dscompile failed (cpu_checkpointing $v): $(last_lines "$d/compile_$v.log")" "$(since "$t0")"
      return
    fi
    "$bin/dsinspect" --json "$d/ckpt_$v.dsplan" >"$d/plan_$v.json" 2>"$d/dsinspect_$v.log"
  done
  train "$d/ckpt_false.dsplan" "$m/data" "$dev" "$steps" "$d/device.jsonl" "$d/device.log"
  local rc1=$?
  train "$d/ckpt_true.dsplan" "$m/data" "$dev" "$steps" "$d/host.jsonl" "$d/host.log"
  local rc2=$?
  if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ]; then
    local st=FAIL
    { [ $rc1 -eq 124 ] || [ $rc2 -eq 124 ]; } && st=TIMEOUT
    record "$name" $st "device rc $rc1: $(last_lines "$d/device.log"); host rc $rc2: $(last_lines "$d/host.log")" "$(since "$t0")"
    return
  fi
  local fig mem rc
  fig=$(max_rel_diff "$d/device.jsonl" "$d/host.jsonl" 0 "$steps" 2>&1)
  rc=$?
  mem=$("$py" - "$d/device.jsonl" "$d/host.jsonl" "$d/plan_false.json" "$d/plan_true.json" "$dev" <<'EOF2'
import json, statistics, sys
def lines(p):
    with open(p) as f:
        return [json.loads(l) for l in f if l.strip()]
def micro(p):
    with open(p) as f:
        return next(q["memory"] for q in json.load(f)["programs"] if q["name"] == "micro_step")
dev_run, host_run = lines(sys.argv[1]), lines(sys.argv[2])
on_dev, on_host = micro(sys.argv[3]), micro(sys.argv[4])
arena_drop = on_dev["arena_bytes"] - on_host["arena_bytes"]
peak_drop = dev_run[-1]["peak_allocated_bytes"] - host_run[-1]["peak_allocated_bytes"]
allocated = host_run[-1].get("memory", {}).get("activations_host", 0)
t = lambda run: statistics.median(l["step_time_s"] for l in run[1:]) * 1e3
print("device arena %d -> %d B (%d less); host arena %d B (dsrun allocated %d B), %d B D2H + %d B H2D per micro-step; "
      "device peak %d -> %d B (%d less); median step %.2f ms -> %.2f ms"
      % (on_dev["arena_bytes"], on_host["arena_bytes"], arena_drop, on_host.get("host_arena_bytes", 0), allocated,
         on_host.get("device_to_host_bytes", 0), on_host.get("host_to_device_bytes", 0),
         dev_run[-1]["peak_allocated_bytes"], host_run[-1]["peak_allocated_bytes"], peak_drop, t(dev_run), t(host_run)))
ok = arena_drop > 0 and allocated == on_host.get("host_arena_bytes", -1)
if sys.argv[5] == "cuda":  # a CPU device counts its host arena with the rest
    ok = ok and peak_drop >= arena_drop
sys.exit(0 if ok else 1)
EOF2
  )
  [ $? -ne 0 ] && rc=1
  if [ $rc -eq 0 ]; then record "$name" PASS "$fig; $mem" "$(since "$t0")"; else record "$name" FAIL "$fig; $mem" "$(since "$t0")"; fi
}
cpu_ckpt cpu_ckpt_gpt2_l12 8 16

# ---------------------------------------------------------------- (c1) the 1-bit optimizers, cuda vs cpu
# onebit NAME CONFIG RANKS STEPS RTOL DSRUN_ARGS [key=json ...]: mlp with
# models/reference_configs/CONFIG.json (the keys replaced), compiled for RANKS ranks, trained on --device cuda and --device cpu with the same
# rank count (2 ranks share the GPU: staged collectives); the compressed steps start after the
# freeze, a few steps in, so both the warm-up and the compressed path are compared.
onebit() {
  local name=$1 cfg=$2 ranks=$3 steps=$4 rtol=$5 extra=$6 t0
  want "$name" || return 0
  shift 6
  t0=$(now)
  skipped "$name" "$t0" && return
  local d=$work/$name nproc=() extra_args=()
  mkdir -p "$d"
  [ "$ranks" -gt 1 ] && nproc=(--nproc "$ranks")
  [ -n "$extra" ] && read -r -a extra_args <<<"$extra" && nproc+=("${extra_args[@]}")
  derive_config "$repo/models/reference_configs/$cfg.json" "$d/ds.json" "$@"
  if ! compile_plan "$repo/models/mlp/mlp.onnx" "$d/ds.json" "$d/plan.dsplan" "$d/compile.log" --world-size "$ranks"; then
    record "$name" FAIL "dscompile failed: $(last_lines "$d/compile.log")" "$(since "$t0")"
    return
  fi
  cpu_vs_cuda "$name" "$t0" "$d/plan.dsplan" "$repo/models/mlp/data" "$steps" "$rtol" "$ranks rank(s): " "${nproc[@]}"
}
for ranks in 1 2; do
  onebit "onebit_adam_${ranks}rank" onebitadam_wd "$ranks" 10 1e-4 "" \
    'optimizer={"type": "OneBitAdam", "params": {"lr": 0.001, "freeze_step": 4, "weight_decay": 0.01}}'
  onebit "onebit_zoadam_${ranks}rank" zoadam "$ranks" 12 1e-4 "" \
    'optimizer={"type": "ZeroOneAdam", "params": {"lr": 0.001, "var_freeze_step": 6, "var_update_scaler": 2, "local_step_scaler": 2, "local_step_clipper": 2}}'
  onebit "onebit_lamb_${ranks}rank" onebitlamb_wd "$ranks" 10 1e-4 "" \
    'optimizer={"type": "OneBitLamb", "params": {"lr": 0.01, "freeze_step": 4, "weight_decay": 0.01, "max_coeff": 5.0, "min_coeff": 0.05, "factor_max": 3.0, "factor_min": 0.6, "factor_threshold": 0.2}}'
done
# fp16 (DeepSpeed's FP16_Optimizer: one fp32 master group compressed as one buffer, the overflow
# verdict as every 1-bit node's skip, which CompressedAllReduce reads on the host), as traj_bf16_*;
# overflows injected before the freeze on rank 0 and after it on rank 1, skipped by both ranks.
onebit onebit_adam_fp16_2rank onebitadam_wd 2 10 3e-2 "--debug-inject-overflow 2,7@1" \
  'fp16={"enabled": true, "initial_scale_power": 8}' \
  'optimizer={"type": "OneBitAdam", "params": {"lr": 0.001, "freeze_step": 4, "weight_decay": 0.01}}'

# ---------------------------------------------------------------- (c2) GPU communicators
# tests/comm/gpu_comm_check under the bundle's mpirun: every collective (all_to_all included) on
# device buffers against the MPI communicator's bits, on 1 rank (local), on 2 and 3 ranks sharing
# GPUs (staged; DSC_GPU_COMM=staged forces it) and, with several GPUs, one rank per GPU (NCCL).
if want gpu_comm; then
  t0=$(now)
  check=$build/tests/comm/gpu_comm_check
  if [ -n "$gpu_reason$prog_reason" ]; then
    record gpu_comm SKIPPED "${gpu_reason:-$prog_reason}" "$(since "$t0")"
  elif [ "$dev" != cuda ]; then
    record gpu_comm SKIPPED "needs a CUDA GPU" "$(since "$t0")"
  elif [ ! -x "$check" ]; then
    record gpu_comm SKIPPED "no $check (BUILD_DIR must be a build tree configured with CUDA)" "$(since "$t0")"
  else
    cmd=$(launcher_for "$check" gpu_comm)
    gpus=$(grep -c "^GPU" "$out/nvidia-smi.txt")
    root_flag=""
    [ "$(id -u)" = 0 ] && root_flag=--allow-run-as-root
    figs="" st=PASS
    for job in "1 local" "2 staged" "3 staged" "$gpus nccl"; do
      np=${job% *} kind=${job#* }
      { [ "$kind" = nccl ] && [ "$gpus" -lt 2 ]; } && { figs="$figs nccl: not run (1 GPU);"; continue; }
      env_force=""
      [ "$kind" = staged ] && env_force="-x DSC_GPU_COMM=staged"
      # The check reaches the GPU through the bundle's CUDA module, as dsrun does.
      timeout "$(tmo 120)" "$bin/mpirun" $root_flag --oversubscribe --bind-to none -np "$np" $env_force \
        -x DSC_CUDA_BACKEND="$(cd "$bin/.." && pwd -P)/lib/libdsc_cuda.so" "$cmd" \
        >"$work/gpu_comm_np${np}_$kind.log" 2>&1
      rc=$?
      if grep -q "every GPU collective matches" "$work/gpu_comm_np${np}_$kind.log" && [ $rc -eq 0 ]; then
        figs="$figs $kind x$np: match;"
      else
        st=FAIL
        [ $rc -eq 124 ] && st=TIMEOUT
        figs="$figs $kind x$np: rc $rc $(last_lines "$work/gpu_comm_np${np}_$kind.log");"
      fi
    done
    record gpu_comm $st "$figs" "$(since "$t0")"
  fi
fi

# ---------------------------------------------------------------- (d) compute-sanitizer
if want memcheck; then
t0=$(now)
san=$(command -v compute-sanitizer || true)
[ -z "$san" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ] && san=/usr/local/cuda/bin/compute-sanitizer
if [ -n "$gpu_reason$prog_reason" ]; then
  record memcheck SKIPPED "${gpu_reason:-$prog_reason}" "$(since "$t0")"
elif [ "$dev" != cuda ]; then
  record memcheck SKIPPED "needs a CUDA run" "$(since "$t0")"
elif [ -z "$san" ]; then
  record memcheck SKIPPED "compute-sanitizer not found (PATH, /usr/local/cuda/bin)" "$(since "$t0")"
elif [ ! -f "$work/traj_fp32_gpt/plan.dsplan" ]; then
  record memcheck SKIPPED "no compiled gpt plan (traj_fp32_gpt did not compile)" "$(since "$t0")"
else
  d=$work/memcheck
  mkdir -p "$d"
  timeout "$(tmo 120)" "$san" --tool memcheck --target-processes all --error-exitcode 99 \
    "$bin/dsrun" "$work/traj_fp32_gpt/plan.dsplan" --data "$repo/models/gpt/data" --steps 2 --no-shuffle \
    --device cuda -q >"$d/memcheck.log" 2>&1
  rc=$?
  errs=$(grep -Eo "ERROR SUMMARY: [0-9]+ errors?" "$d/memcheck.log" | tail -n1)
  if grep -Eqi "device (is )?not supported|unsupported device|not supported on this (device|platform)" "$d/memcheck.log"; then
    record memcheck SKIPPED "compute-sanitizer: $(grep -Ei -m1 'not supported|unsupported' "$d/memcheck.log" | cut -c1-200)" "$(since "$t0")"
  elif [ $rc -eq 124 ]; then
    record memcheck TIMEOUT "ran past $(tmo 120)s" "$(since "$t0")"
  elif [ $rc -eq 0 ]; then
    record memcheck PASS "${errs:-no error summary printed}; 2 steps of gpt fp32" "$(since "$t0")"
  else
    record memcheck FAIL "rc $rc; ${errs:-}; $(grep -m3 -E '^=========  ?(Invalid|Program hit|Error)' "$d/memcheck.log" | tr '\n' ' ' | cut -c1-250)" "$(since "$t0")"
  fi
fi
fi

# ---------------------------------------------------------------- (e) benchmark
if want bench_gpu; then
t0=$(now)
if [ -n "$gpu_reason$prog_reason" ] || [ -z "$py" ]; then
  record bench_gpu SKIPPED "${gpu_reason:-${prog_reason:-python3 not found}}" "$(since "$t0")"
else
  bargs=(--dscompile "$bin/dscompile" --dsrun "$bin/dsrun" --json "$out/bench_gpu.json" --workdir "$work/bench"
    --warmup 2 --steps 6 --timeout "$(tmo 110)" --profile "$out/bench_profile.json")
  [ "$dev" != cuda ] && bargs+=(--tiny --device cpu --no-compile)
  timeout "$(tmo 260)" "$py" "$repo/bench/bench_gpu.py" "${bargs[@]}" >"$out/bench_gpu.log" 2>&1
  rc=$?
  fig=$(grep -E "^(dsrun|torch_eager|torch_compile) " "$out/bench_gpu.log" | awk '{print $1": "$2" tok/s, MFU "$5}' | tr '\n' ';')
  if [ $rc -eq 124 ]; then
    record bench_gpu TIMEOUT "ran past $(tmo 260)s; $fig" "$(since "$t0")"
  elif [ $rc -eq 0 ]; then
    record bench_gpu PASS "$fig $(grep -m1 -E 'dense bf16 peak|no MFU' "$out/bench_gpu.log" | sed 's/^ *//')" "$(since "$t0")"
  else
    record bench_gpu FAIL "rc $rc; $fig $(last_lines "$out/bench_gpu.log")" "$(since "$t0")"
  fi
fi
fi

# ---------------------------------------------------------------- summary
echo
echo "GPU check summary${dry}"
awk -F'\t' 'BEGIN { printf "%-26s %-8s %8s  %s\n", "check", "status", "seconds", "figures" }
            { printf "%-26s %-8s %8s  %s\n", $1, $2, $4, $3 }' "$results"
if [ -n "$py" ]; then
  "$py" - "$results" "$out/summary.json" "$dev" <<'EOF'
import json, sys
rows = []
with open(sys.argv[1]) as f:
    for line in f:
        c, s, fig, sec = line.rstrip("\n").split("\t")
        rows.append({"check": c, "status": s, "figures": fig, "seconds": float(sec)})
counts = {}
for r in rows:
    counts[r["status"]] = counts.get(r["status"], 0) + 1
with open(sys.argv[2], "w") as f:
    json.dump({"device": sys.argv[3], "counts": counts, "checks": rows}, f, indent=1)
print("counts: " + ", ".join("%s %d" % kv for kv in sorted(counts.items())))
EOF
else
  echo "python3 not found: $out/summary.json not written (results.tsv has the table)"
fi
echo "logs and reports: $out"
grep -qP '\t(FAIL|TIMEOUT)\t' "$results" && exit 1
exit 0
