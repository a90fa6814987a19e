#!/usr/bin/env bash
# Builds build-san (clang, ASan+UBSan, libFuzzer) and runs a short run and a replay of every fuzz
# target, then the suite's fast part under the sanitizers. The GoogleTest cases run batched,
# a few processes per binary (scripts/ctest_batched.py: under ASan a process start costs more than
# most cases); with arguments, ctest runs the selection they make, one process per test.
set -euo pipefail
cd "$(dirname "$0")/.."
# CI's limit: .ci/run sets DSC_DEADLINE, the epoch second by which its whole run must end. What of
# this half does not fit before then is left out and said so, rather than CI killing the run and
# the main suite's results with it; the exit status is that of what ran. Without DSC_DEADLINE
# everything runs.
deadline=${DSC_DEADLINE:-}
until_deadline() {  # "$@", stopped at the deadline with timeout's status 124
  if [ -z "$deadline" ]; then "$@"; return; fi
  local left=$((deadline - $(date +%s)))
  [ "$left" -gt 0 ] || return 124
  timeout "$left" "$@"
}
fuzz_status=0
cut() { echo "=== $(date -u +%H:%M:%S) cut by CI's deadline: $*"; exit "$fuzz_status"; }

scripts/install-deps.sh >/dev/null
rc=0
until_deadline cmake -S . -B build-san -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DDSC_SANITIZE=ON -DDSC_FUZZ=ON -DDSC_ONNX_PREFIX="$(scripts/install-onnx.sh)" >/dev/null ||
  rc=$?
[ "$rc" = 124 ] && cut "build-san was not configured; no sanitizer test ran"
[ "$rc" = 0 ] || exit "$rc"

# Left out. Sanitizer builds do not build e2e_tests, monitor_tests, mixed_precision_tests and
# large_model_tests (tests/e2e/CMakeLists.txt: minutes of training under ASan through the kernels
# and passes the unit and golden tests drive, multi-rank runs and 2 GB of state, against CI's 90
# minutes), nor the MPI checks of tests/collectives_mpi and comm_mpi_check (tests/CMakeLists.txt).
# Of what is built:
#   the python reference tests (models_py): PyTorch and ONNX, not our code;
#   the other multi-rank MPI jobs (dsrun_kill_one_rank, DsrunNproc.*, random_models_zero3): Open
#     MPI leaks in plugins it unloads before LeakSanitizer reports, so no suppression can name
#     them; the single-rank tests run the same communicator, kernels and trainer code
#     (bucket_collectives_test: every bucketed kind with and without a one-rank communicator);
#   overflow injections and memory checks on 1-4 ranks (StagesAndRanks/Fp16Overflow, Bf16Overflow,
#     AmpOverflow, StagesAndRanks/PrecisionMemory) and the Lamb, Muon and cycled-NAdam skips on 2
#     ranks (Fp16Overflow.LambSkipsChangeNothing, .MuonSkipsChangeNothing,
#     .NadamCycledMomentumSkipsChangeNothing): MPI's leaks, and minutes under ASan;
#   the checkpoint tests that start 2-4 ranks (ExactResume on 2 and 4 ranks, ExactResumeWith,
#     ResumeElsewhere, Resume, the kill tests on 2 ranks and at random moments): MPI's leaks; the
#     1-rank resumes, kills and PlanWeights stay in;
#   ConfigLimits.VeryLongKeysAreCheapAndPrintedShort: a wall-clock bound meant for -O3 code;
#   bundle: scripts/bundle.sh packs the release build's tools, not these;
#   gpu_run_sh_dry: tests/gpu/run.sh's dry run, 2-rank runs included (MPI's leaks).
exclude='^(models_py|random_models_zero3|dsrun_kill_one_rank|DsrunNproc\..*|StagesAndRanks/Fp16Overflow\..*|Bf16Overflow\..*|AmpOverflow\..*|StagesAndRanks/PrecisionMemory\..*|Fp16Overflow\.LambSkipsChangeNothing|Fp16Overflow\.MuonSkipsChangeNothing|Fp16Overflow\.NadamCycledMomentumSkipsChangeNothing|StagesAndRanks/ExactResume\..*_w[24]( .*)?|ExactResumeWith\..*|ResumeElsewhere\..*|Resume\..*|Ranks/KillAtEveryCrashPoint\..*/w2_.*|KillAtRandomMoments\..*|config\.ConfigLimits\.VeryLongKeysAreCheapAndPrintedShort|bundle|gpu_run_sh_dry)$'
export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
if [ $# -gt 0 ]; then
  cmake --build build-san -j"$(nproc)"
  exec ctest --test-dir build-san --output-on-failure -j"$(nproc)" -E "$exclude" "$@"
fi

# The fuzz targets and their runs and replays first: they link every library, and they are what
# this half is worth most for when the deadline leaves room for only part of it.
until_deadline cmake --build build-san -j"$(nproc)" --target fuzz_targets || rc=$?
[ "$rc" = 124 ] && cut "build-san's libraries and fuzz targets did not finish; no sanitizer test ran"
[ "$rc" = 0 ] || exit "$rc"
echo "=== $(date -u +%H:%M:%S) the fuzz targets built; their runs and replays"
until_deadline ctest --test-dir build-san --output-on-failure -j"$(nproc)" -L fuzz | tee build-san/fuzz-tests.log ||
  fuzz_status=$?
if [ "$fuzz_status" = 124 ]; then
  fuzz_status=0
  grep -q '\*\*\*\(Failed\|Timeout\|Exception\)' build-san/fuzz-tests.log && fuzz_status=1
  cut "the fuzz runs and replays were stopped (the lines above show which had passed)"
fi
until_deadline cmake --build build-san -j"$(nproc)" || rc=$?
[ "$rc" = 124 ] && cut "build-san's test binaries did not finish; of this half only the fuzz runs and replays ran"
[ "$rc" = 0 ] || exit "$rc"
echo "=== $(date -u +%H:%M:%S) build-san built; its tests"
python3 scripts/ctest_batched.py --build-dir build-san -j"$(nproc)" -E "$exclude|^fuzz_.*\.(run|replay)\$" \
  ${deadline:+--deadline "$deadline"} || rc=$?
[ "$fuzz_status" = 0 ] || echo "=== the fuzz runs or replays failed (above)"
[ "$rc" = 0 ] && exit "$fuzz_status"
exit "$rc"
