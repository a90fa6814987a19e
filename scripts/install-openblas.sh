#!/usr/bin/env bash
# Installs OpenBLAS at a current release from PyPI's scipy-openblas32 wheel (library, headers,
# pkg-config) into a cache shared by every build.
#
#   scripts/install-openblas.sh        # prints the install prefix; a no-op when it is already there
#
# Debian 12's OpenBLAS 0.3.21 does not know CPUs newer than it (Intel family 6 model 207, for one)
# and silently runs its oldest kernels on them: sgemm about 7x slower, with no word why. The wheel is
# a DYNAMIC_ARCH build of a current OpenBLAS (pthreads, 32-bit integers, LAPACK included, no
# Fortran runtime needed) that picks its kernels from CPUID at load time. Its symbols carry a
# `scipy_` prefix so that it can share a process with another OpenBLAS; kernels/cpu/blas.h maps the
# usual cblas_* and openblas_* names onto them. Pinned by version and sha256. Set DSC_DEPS_DIR to
# move the cache (default ~/.cache/dscompile).
set -euo pipefail

OPENBLAS_WHEEL_VERSION=0.3.34.481.3
OPENBLAS_WHEEL=scipy_openblas32-$OPENBLAS_WHEEL_VERSION-py3-none-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
OPENBLAS_SHA256=0595f94cd58c1f8a0d90c975621f4587337a003916b1979e834ebdf2cb5d9504

deps="${DSC_DEPS_DIR:-$HOME/.cache/dscompile}"
prefix="$deps/openblas-$OPENBLAS_WHEEL_VERSION"
stamp="$prefix/.installed-$OPENBLAS_SHA256"
if [ -f "$stamp" ]; then
  echo "$prefix"
  exit 0
fi

log() { echo "install-openblas: $*" >&2; }
[ "$(uname -m)" = x86_64 ] || { log "the pinned wheel is for x86_64, not $(uname -m)"; exit 1; }
work="$deps/openblas-$OPENBLAS_WHEEL_VERSION-download"
rm -rf "$work" "$prefix"
mkdir -p "$work"

venv="$deps/build-tools-venv"
if [ ! -x "$venv/bin/pip" ]; then
  log "creating $venv for pip"
  python3 -m venv "$venv"
fi

log "downloading scipy-openblas32 $OPENBLAS_WHEEL_VERSION from PyPI"
printf 'scipy-openblas32==%s --hash=sha256:%s\n' "$OPENBLAS_WHEEL_VERSION" "$OPENBLAS_SHA256" > "$work/requirements.txt"
"$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
  --platform manylinux_2_28_x86_64 --require-hashes -r "$work/requirements.txt" -d "$work" >&2
[ -f "$work/$OPENBLAS_WHEEL" ] || { log "pip did not fetch $OPENBLAS_WHEEL"; exit 1; }
python3 -m zipfile -e "$work/$OPENBLAS_WHEEL" "$work/wheel"

mkdir -p "$prefix"
cp -r "$work/wheel/scipy_openblas32/lib" "$work/wheel/scipy_openblas32/include" "$prefix/"
cp "$work"/wheel/scipy_openblas32-*.dist-info/licenses/LICENSE.txt "$prefix/LICENSE.txt"
rm -rf "$work"
touch "$stamp"
echo "$prefix"
