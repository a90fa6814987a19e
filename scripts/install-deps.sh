#!/usr/bin/env bash
# Installs every Debian package dscompile's build, tests (clang, libFuzzer, libomp and lld for the
# sanitizer and fuzz builds) and reference scripts need, then the ONNX C++ library
# (scripts/install-onnx.sh) and OpenBLAS (scripts/install-openblas.sh) at their current releases,
# and TensorBoard in a venv of its own for the test that reads dsrun's event files
# (scripts/install-tensorboard.sh);
# a no-op when all are present. Debian's OpenBLAS (libopenblas0-pthread) stays for numpy and the
# reference PyTorch; dscompile's kernels link the current one. oneDNN (convolutions) is Debian's
# libdnnl-dev 2.6: PyPI's current onednn wheel is a SYCL/TBB build (see the top-level CMakeLists.txt).
# The programs allocate with jemalloc (libjemalloc-dev 5.3, its current release; CMakeLists.txt says why).
# librsvg2-bin's rsvg-convert renders dsinspect's SVG pictures in the tests; libexpat1-dev is the XML
# parser fuzz_metrics_plot checks them with.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libprotobuf-dev protobuf-compiler python3-venv
  nlohmann-json3-dev libgtest-dev
  libopenblas0-pthread libdnnl-dev libjemalloc-dev liburing-dev
  libopenmpi-dev openmpi-bin
  python3-numpy python3-torch python3-onnx librsvg2-bin libexpat1-dev
  clang libclang-rt-14-dev libomp-14-dev lld
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "install-deps: ONNX $(basename "$("$(dirname "$0")/install-onnx.sh")")"
echo "install-deps: OpenBLAS $(basename "$("$(dirname "$0")/install-openblas.sh")")"
echo "install-deps: TensorBoard reader $("$(dirname "$0")/install-tensorboard.sh")"
