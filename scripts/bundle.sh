#!/usr/bin/env bash
# Packs dscompile, dsrun and dsinspect from a build into a relocatable tarball for GPU hosts and
# clusters without package access: scripts/bundle.sh OUT.tar.gz [--build-dir DIR] (default build/).
#
# What goes in, and why:
#   - The three programs as one stripped executable, real/dsc (tools/multicall.cc: it runs the
#     program its argv[0] names; one copy of the code they share instead of three keeps the bundle
#     under 40 MB), and every shared library it loads, derived with
#     ldd from the programs and from the Open MPI/PMIx plugins shipped (never a fixed list): ONNX
#     and protobuf when shared, OpenBLAS (libscipy_openblas.so from scripts/install-openblas.sh,
#     found through the programs' RUNPATH), oneDNN (Debian's libdnnl.so.2, with the OpenCL ICD
#     loader it links), Open MPI, hwloc, libevent, PMIx, libstdc++, libgomp, ... A library ldd
#     cannot resolve stops the script.
#   - glibc and its loader too. Programs linked on Debian 12 need GLIBC_2.3x symbols that older
#     cluster hosts (RHEL 8: 2.28, Ubuntu 20.04: 2.31) lack, so each program starts through the
#     bundled loader from a small launcher, bin/NAME:
#       lib/ld-linux-x86-64.so.2 --library-path lib --argv0 bin/NAME real/dsc "$@"
#     No LD_LIBRARY_PATH is set, so host programs that ours start (sh, ssh) keep the host's libc.
#   - The CUDA module, lib/libdsc_cuda.so, when the build has the CUDA backend: the programs load
#     it by name (through --library-path) when a run picks a GPU (runtime/cuda_backend.h).
#   - Not the NVIDIA driver, cuBLAS or NCCL: they must match the host's driver and come from the
#     host. The CUDA module links cuBLASLt and NCCL (the CUDA runtime is linked statically); the
#     launchers look for those libraries in $DSC_CUDA_LIBS, $CUDA_HOME/lib64,
#     /usr/local/cuda/lib64 and Python's nvidia-* packages (PyTorch's), and add the folders that
#     hold them to --library-path after lib/; the driver (libcuda) comes from the host's loader
#     cache. A library not found is named in DSC_CUDA_LIBS_MISSING, which a GPU run's error
#     repeats with what to do; CPU runs do not need them.
#   - Open MPI 4.1 (Debian 12): mpirun (= orterun, started through the loader too), its MCA
#     plugins and help files, relocated with OPAL_PREFIX, and a bundled MCA params file instead
#     of the host's /etc/openmpi one (sysconfdir does not follow OPAL_PREFIX). PMIx's plugins and
#     help files, found through PMIX_MCA_mca_base_component_path, with PMIX_LIBDIR and
#     PMIX_PKGLIBDIR pointing into the bundle so that PMIx does not also load a host PMIx's
#     plugins from Debian's directory (an Ubuntu host has that folder too). hwloc's plugins (PCI, OpenCL, X11) are not
#     shipped and the host's are not loaded. Plugins for fabrics (UCX, libfabric/OFI, verbs, PSM)
#     are left out with their large libraries: ranks talk over shared memory (vader) and TCP.
#   - dsrun --nproc N re-executes /proc/self/exe under the mpirun on PATH. Started through the
#     loader, /proc/self/exe is the loader, so bin/mpirun puts bin/dsrun back in its place.
# Fails loudly: missing build outputs, unresolved libraries, a bundle of 40 MB or more.
set -euo pipefail

usage() { echo "usage: scripts/bundle.sh OUT.tar.gz [--build-dir DIR]" >&2; exit 2; }
die() { echo "bundle.sh: error: $*" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
out="" build="$repo/build"
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) [ $# -ge 2 ] || usage; build=$2; shift 2 ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) [ -z "$out" ] || usage; out=$1; shift ;;
  esac
done
[ -n "$out" ] || usage
case "$out" in *.tar.gz) ;; *) die "OUT must end in .tar.gz: $out" ;; esac
build=$(cd "$build" 2>/dev/null && pwd) || die "no build directory $build"
for t in strip ldd readelf tar gzip; do command -v "$t" >/dev/null || die "$t is not installed"; done

multicall="$build/tools/dsc_multicall"
[ -x "$multicall" ] || die "$multicall not found (build it first: cmake --build $build --target dsc_multicall)"
programs=("$multicall")
# The CUDA module (a build with the CUDA backend has it next to the programs).
module="$build/tools/libdsc_cuda.so"
if [ -e "$build/runtime/CMakeFiles/dsc_cuda.dir" ] || [ -e "$module" ]; then
  [ -f "$module" ] || die "$module not found (build it first: cmake --build $build --target dsc_cuda)"
  programs+=("$module")
fi
mpirun=$(readlink -f "$(command -v mpirun || true)")
[ -x "$mpirun" ] || die "mpirun not found (install openmpi-bin)"

# Open MPI's and PMIx's own idea of where they live (the bundle mirrors it under its prefixes).
ompi_prefix=/usr
ompi_pkglib=$(ompi_info --path pkglibdir --parsable 2>/dev/null | sed -n 's/^path:pkglibdir://p')
ompi_pkgdata=$(ompi_info --path pkgdatadir --parsable 2>/dev/null | sed -n 's/^path:pkgdatadir://p')
[ -d "$ompi_pkglib" ] && [ -d "$ompi_pkgdata" ] || die "ompi_info does not name Open MPI's plugin and data dirs"
libpmix=$(ldd "$ompi_pkglib"/mca_pmix_ext*.so 2>/dev/null | awk '$1 ~ /^libpmix\.so/ {print $3; exit}')
pmix_prefix=""
if [ -n "$libpmix" ]; then
  pmix_prefix=$(dirname "$(dirname "$(readlink -f "$libpmix")")")  # .../pmix2/lib/libpmix.so.2 -> .../pmix2
  [ -d "$pmix_prefix/lib/pmix" ] || die "PMIx plugins not found under $pmix_prefix/lib/pmix"
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/dscompile-bundle"
mkdir -p "$root/bin" "$root/real" "$root/lib" "$root/ompi" "$root/pmix"

# Libraries that belong to the host's GPU stack (driver, cuBLAS, NCCL).
host_only='^(libcuda|libnvidia-|libcublas|libcublasLt|libnccl)'
# Libraries that mark an Open MPI plugin as a fabric plugin, left out (see the header).
fabric='^lib(ucp|ucs|uct|ucm|fabric|ibverbs|rdmacm|psm_infinipath|psm2|infinipath|efa|mca_common_(ucx|ofi|verbs))\.so'

# deps FILE: the resolved paths of FILE's shared libraries; dies on an unresolved one (the host's
# GPU libraries may be unresolved: they are not bundled).
deps() {
  local out missing
  out=$(ldd "$1") || die "ldd failed on $1"
  missing=$(grep "not found" <<<"$out" | awk '{print $1}' | grep -Ev "$host_only" || true)
  if [ -n "$missing" ]; then die "$1: unresolved libraries: $(tr '\n' ' ' <<<"$missing")"; fi
  awk '$2 == "=>" && $3 ~ /^\// {print $1, $3} $1 ~ /^\// {print $1, $1}' <<<"$out"
}

declare -A libs=()  # soname -> path
elfs=("${programs[@]}" "$mpirun")
add_deps() {
  local name path found
  found=$(deps "$1") || exit 1
  while read -r name path; do
    [ -n "$name" ] || continue
    name=$(basename "$name")
    [[ $name =~ $host_only ]] && continue
    libs[$name]=$path
  done <<<"$found"
}

# Plugins: Open MPI's (fabric ones left out) and PMIx's.
mkdir -p "$root/ompi/${ompi_pkglib#$ompi_prefix/}" "$root/ompi/${ompi_pkgdata#$ompi_prefix/}"
skipped=()
for so in "$ompi_pkglib"/*.so; do
  found=$(deps "$so") || exit 1
  if awk '{n = $1; sub(/.*\//, "", n); print n}' <<<"$found" | grep -E "$fabric" >/dev/null; then
    skipped+=("$(basename "$so")"); continue
  fi
  cp -L "$so" "$root/ompi/${ompi_pkglib#$ompi_prefix/}/"
  elfs+=("$so")
done
mkdir -p "$root/ompi/etc"
# Quiet about unused transports; the fabric plugins are not shipped, so nothing else to exclude.
echo "btl_base_warn_component_unused = 0" >"$root/ompi/etc/openmpi-mca-params.conf"
cp -rL "$ompi_pkgdata"/. "$root/ompi/${ompi_pkgdata#$ompi_prefix/}/"
if [ -n "$pmix_prefix" ]; then
  mkdir -p "$root/pmix/lib/pmix" "$root/pmix/share"
  cp -L "$pmix_prefix"/lib/pmix/*.so "$root/pmix/lib/pmix/"
  elfs+=("$pmix_prefix"/lib/pmix/*.so)
  [ -d "$pmix_prefix/share/pmix" ] && cp -rL "$pmix_prefix/share/pmix" "$root/pmix/share/"
fi
for e in "${elfs[@]}"; do add_deps "$e"; done
# The closure: libraries that the collected libraries load in turn (ldd already lists the whole
# closure of each file, so one more pass only confirms nothing new appears).
for name in "${!libs[@]}"; do add_deps "${libs[$name]}"; done

loader=""
for name in "${!libs[@]}"; do
  if [[ $name == ld-linux-x86-64.so.2 ]]; then loader=${libs[$name]}; fi
  cp -L "${libs[$name]}" "$root/lib/$name"
done
[ -n "$loader" ] || die "no ld-linux-x86-64.so.2 among the dependencies (not an x86-64 glibc build?)"
cp "$multicall" "$root/real/dsc"
if [ -f "$module" ]; then cp "$module" "$root/lib/libdsc_cuda.so"; fi
# The host GPU libraries the programs need (none in a build without the CUDA backend).
host_needed=$(for p in "${programs[@]}"; do readelf -d "$p" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; done |
  grep -E "$host_only" | sort -u | tr '\n' ' ' || true)
cp -L "$mpirun" "$root/real/mpirun"
chmod u+w "$root"/real/* "$root"/lib/* "$root"/ompi -R "$root"/pmix -R
strip --strip-unneeded "$root"/real/* 2>/dev/null || die "strip failed"
find "$root/lib" "$root/ompi" "$root/pmix" -name '*.so*' ! -name 'ld-linux*' -type f -exec strip --strip-unneeded {} +

# Launchers. Each resolves the bundle from its own path, so the bundle can live anywhere.
launcher_head='#!/bin/sh
# Starts the bundled program through the bundled glibc loader (see scripts/bundle.sh).
b=$(cd "$(dirname "$0")/.." && pwd -P)
export OPAL_PREFIX="$b/ompi" PMIX_INSTALL_PREFIX="$b/pmix" PMIX_MCA_mca_base_component_path="$b/pmix/lib/pmix"
# PMIx also searches its configured plugin folder (Debian'"'"'s pmix2/lib/pmix, which a host with
# another PMIx has too, with plugins that cannot load into ours) unless its libdir moves with it.
export PMIX_LIBDIR="$b/pmix/lib" PMIX_PKGLIBDIR="$b/pmix/lib/pmix"
# The bundled MCA defaults, not the host'"'"'s /etc/openmpi (written for another Open MPI, if any);
# no hwloc plugins (the host'"'"'s would load X11, OpenCL and the host glibc'"'"'s libraries into ours).
export OMPI_MCA_mca_base_param_files="$b/ompi/etc/openmpi-mca-params.conf" HWLOC_PLUGINS_PATH="$b/lib/no-hwloc-plugins"
# mpirun and the ranks it starts find the bundled mpirun and dsrun first.
case ":$PATH:" in *":$b/bin:"*) ;; *) export PATH="$b/bin:$PATH" ;; esac
# The host'"'"'s cuBLAS and NCCL: the first folder that holds each library the programs need.
host_libs="'"$host_needed"'" p="$b/lib"
for so in $host_libs; do
  found=""
  for d in $(echo "${DSC_CUDA_LIBS:-}" | tr : " ") ${CUDA_HOME:+"$CUDA_HOME/lib64" "$CUDA_HOME/lib"} \
           /usr/local/cuda/lib64 /usr/local/cuda/lib; do
    if [ -e "$d/$so" ]; then found=$d; break; fi
  done
  if [ -z "$found" ] && [ -z "${py_dirs+x}" ]; then
    py_dirs=$(python3 -c "import site; print(\" \".join(site.getsitepackages() + [site.getusersitepackages()]))" 2>/dev/null || true)
  fi
  if [ -z "$found" ]; then
    for sp in ${py_dirs:-}; do
      for d in "$sp"/nvidia/*/lib "$sp"/nvidia/cu*/lib; do
        if [ -e "$d/$so" ]; then found=$d; break 2; fi
      done
    done
  fi
  if [ -z "$found" ]; then
    export DSC_CUDA_LIBS_MISSING="${DSC_CUDA_LIBS_MISSING:+$DSC_CUDA_LIBS_MISSING }$so"
    continue
  fi
  case ":$p:" in *":$found:"*) ;; *) p="$p:$found" ;; esac
done'
for p in dscompile dsrun dsinspect; do
  printf '%s\nexec "$b/lib/ld-linux-x86-64.so.2" --library-path "$p" --argv0 "$0" "$b/real/dsc" "$@"\n' \
    "$launcher_head" >"$root/bin/$p"
done
cat >"$root/bin/mpirun" <<EOF
$launcher_head
# dsrun --nproc passes /proc/self/exe, which is the loader when dsrun runs from this bundle:
# the ranks must start through bin/dsrun instead.
loader=\$(readlink -f "\$b/lib/ld-linux-x86-64.so.2")
n=\$#
while [ \$n -gt 0 ]; do
  a=\$1; shift; n=\$((n - 1))
  if [ "\$a" = "\$loader" ]; then set -- "\$@" "\$b/bin/dsrun"; else set -- "\$@" "\$a"; fi
done
# argv0 is a bare name: an mpirun started by an absolute path takes its parent folder as --prefix
# and puts prefix/lib on the ranks' LD_LIBRARY_PATH, where the bundled glibc would break every
# host program they start (/bin/sh first, which runs bin/dsrun) on a host with a newer glibc.
exec "\$b/lib/ld-linux-x86-64.so.2" --library-path "\$b/lib" --argv0 mpirun "\$b/real/mpirun" "\$@"
EOF
chmod 755 "$root"/bin/*
{
  echo "dscompile bundle from $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%F)"
  echo "glibc: $(readlink -f "$loader" | xargs basename) from $(ldd --version | head -1)"
  echo "Open MPI plugins left out (fabrics; ranks use shared memory and TCP): ${skipped[*]:-none}"
  echo "CUDA module: $([ -f "$module" ] && echo "lib/libdsc_cuda.so" || echo "none (built without the CUDA backend)")"
  echo "Not included: the NVIDIA driver, cuBLAS, NCCL (found on the host): ${host_needed:-none needed}"
} >"$root/BUNDLE-INFO.txt"

mkdir -p "$(dirname "$out")"
tar -C "$stage" -czf "$out" dscompile-bundle
size=$(stat -c %s "$out")
limit=$((40 * 1000 * 1000))
[ "$size" -lt "$limit" ] || die "$out is $size bytes, over the 40 MB limit"
echo "bundle.sh: wrote $out ($((size / 1000)) kB, ${#libs[@]} libraries, $(ls "$root/ompi/${ompi_pkglib#$ompi_prefix/}" | wc -l) Open MPI plugins)"
