#!/usr/bin/env bash
# Prepares what a GPU host needs for tests/gpu/run.sh, in one folder small enough to travel with
# the repository to a device machine (64 MiB in all): the bundle (scripts/bundle.sh, with the CUDA
# module the test binary loads too; recompressed with xz) and the kernel table and GPU
# communicator test binaries, stripped and xz-compressed. Prints the command to run there.
#
#   tests/gpu/prepare_carry.sh [BUILD_DIR [DEST]]     # defaults: build, gpu-carry (git-ignored)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build} dest=${2:-gpu-carry}
die() { echo "prepare_carry.sh: error: $*" >&2; exit 1; }
[ -d "$build/runtime/CMakeFiles/dsc_cuda.dir" ] || die "$build has no CUDA backend (configure it where nvcc is found)"
cmake --build "$build" -j"$(nproc)" --target dsc_multicall dsc_cuda gpu_kernel_table_test gpu_comm_check >/dev/null
rm -rf "$dest" && mkdir -p "$dest/build/tests/gpu" "$dest/build/tests/comm"
# Ignored, so that it travels once: as the carried folder, not also as untracked files.
grep -qx "/$dest/" .git/info/exclude 2>/dev/null || echo "/$dest/" >>.git/info/exclude
scripts/bundle.sh "$dest/dsc.tar.gz" --build-dir "$build"
# xz takes the bundle from ~37 MB to ~25 MB, which keeps tree + carry under the 64 MiB.
gzip -dc "$dest/dsc.tar.gz" | xz -T0 -9 >"$dest/dsc.tar.xz" && rm "$dest/dsc.tar.gz"
for t in gpu/gpu_kernel_table_test comm/gpu_comm_check; do
  strip -o "$dest/build/tests/$t" "$build/tests/$t"
  xz -T0 -6 "$dest/build/tests/$t"
done
carried=$(du -sb "$dest" | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
others=$(git ls-files -z --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
total=$((carried + tree + ${others:-0}))
limit=$((64 * 1024 * 1024))
echo "prepare_carry.sh: $dest holds $((carried / 1000)) kB; with the tracked tree ($((tree / 1000)) kB) and" \
  "untracked files ($((${others:-0} / 1000)) kB): $((total / 1000)) kB of the 64 MiB that travel"
[ "$total" -lt "$limit" ] || die "over the 64 MiB a device call carries"
cat <<EOT
On the GPU host (device tool: carry ["$dest"], timeout 600):
  mkdir -p /tmp/b /tmp/gb/tests/gpu && tar -C /tmp/b -xJf $dest/dsc.tar.xz &&
  for t in gpu/gpu_kernel_table_test comm/gpu_comm_check; do mkdir -p /tmp/gb/tests/\${t%/*} &&
    xz -dc $dest/build/tests/\$t.xz >/tmp/gb/tests/\$t && chmod +x /tmp/gb/tests/\$t; done &&
  tests/gpu/run.sh /tmp/b /tmp/gb /tmp/gc; cp /tmp/gc/summary.json /tmp/gc/kernel_table.json /tmp/gc/bench_gpu.json
    /tmp/gc/bench_profile.json /tmp/gc/bench_profile.txt \$OUT/;
  tar -C /tmp/gc -czf \$OUT/logs.tgz --exclude='*.dsplan' --exclude='*.onnx' .
EOT
