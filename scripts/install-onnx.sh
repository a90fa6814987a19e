#!/usr/bin/env bash
# Builds the ONNX C++ library (checker, shape inference, schemas) at its current release from the
# PyPI source distribution against the system protobuf, into a cache shared by every build.
#
#   scripts/install-onnx.sh            # prints the install prefix; a no-op when it is already built
#
# Debian 12's libonnx (1.12) stops at opset 17 and IR version 8; models exported by current
# PyTorch use opsets 18-20+ and IR version 10. The source comes from PyPI (the `onnx` sdist carries
# the C++ sources), pinned by version and sha256. ONNX needs CMake >= 3.26, newer than Debian 12's:
# the build uses CMake and Ninja from PyPI in a private venv. Set DSC_DEPS_DIR to move the cache
# (default ~/.cache/dscompile).
set -euo pipefail

ONNX_VERSION=1.23.2
ONNX_SHA256=008cb0467b2bbee41448acc7da8b6f4e704624cb0d327a2d5adafc7ce19bc5b8

deps="${DSC_DEPS_DIR:-$HOME/.cache/dscompile}"
prefix="$deps/onnx-$ONNX_VERSION"
stamp="$prefix/.built-$ONNX_SHA256"
if [ -f "$stamp" ]; then
  echo "$prefix"
  exit 0
fi

log() { echo "install-onnx: $*" >&2; }
work="$deps/onnx-$ONNX_VERSION-build"
rm -rf "$work" "$prefix"
mkdir -p "$work"

venv="$deps/build-tools-venv"
if [ ! -x "$venv/bin/cmake" ] || [ ! -x "$venv/bin/ninja" ]; then
  log "creating $venv with cmake and ninja from PyPI"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "cmake>=3.26" ninja >&2
fi

log "downloading the onnx $ONNX_VERSION source distribution"
printf 'onnx==%s --hash=sha256:%s\n' "$ONNX_VERSION" "$ONNX_SHA256" > "$work/requirements.txt"
"$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --no-binary onnx \
  --require-hashes -r "$work/requirements.txt" -d "$work" >&2
tar -xzf "$work/onnx-$ONNX_VERSION.tar.gz" -C "$work"

log "building the ONNX C++ library (about 3 minutes on 2 cores) into $prefix"
"$venv/bin/cmake" -S "$work/onnx-$ONNX_VERSION" -B "$work/build" -G Ninja \
  -DCMAKE_MAKE_PROGRAM="$venv/bin/ninja" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
  -DONNX_USE_PROTOBUF_SHARED_LIBS=ON -DONNX_BUILD_PYTHON=OFF -DONNX_BUILD_TESTS=OFF \
  -DONNX_GEN_PB_TYPE_STUBS=OFF -DONNX_ML=ON >"$work/configure.log" 2>&1 \
  || { tail -n 40 "$work/configure.log" >&2; exit 1; }
"$venv/bin/cmake" --build "$work/build" -j"$(nproc)" >"$work/build.log" 2>&1 \
  || { tail -n 40 "$work/build.log" >&2; exit 1; }
"$venv/bin/cmake" --install "$work/build" >"$work/install.log" 2>&1 \
  || { tail -n 40 "$work/install.log" >&2; exit 1; }
rm -rf "$work"
touch "$stamp"
echo "$prefix"
