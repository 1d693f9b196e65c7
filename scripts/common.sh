# Shared settings for p2pmap scripts. Sourced, not executed.
# shellcheck shell=bash

P2PMAP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Everything expensive lives outside the checkout so that CI's fresh clones
# and a developer's second run reuse it.
P2PMAP_CACHE=${P2PMAP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/p2pmap}

# Pinned inputs (see README.md, "Requirements").
KERNEL_SRC_PKG=linux-source-7.3
KERNEL_SRC_VER=7.3.4-1~bpo13+1
KERNEL_VERSION=7.3.4
BINDGEN_VER=0.73.2
VIRTME_NG_VER=1.42
LLVM_SUFFIX=-19
LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
export LIBCLANG_PATH

export PATH="$HOME/.cargo/bin:$HOME/.local/bin:$PATH"

die() { echo "p2pmap: error: $*" >&2; exit 1; }
log() { echo "p2pmap: $*" >&2; }

rustc_version() { rustc --version | awk '{print $2}'; }

# Where the fetched sources are unpacked.
KSRC_DIR="$P2PMAP_CACHE/src/linux-source-$KERNEL_SRC_VER"
RUSTSRC_DIR() { echo "$P2PMAP_CACHE/src/rust-src-$(rustc_version)"; }

# Build the modules, the tests and p2pctl (make build, plus any make
# arguments) for the kernel build directory $1. The checkout holds one build:
# if it was made for another kernel (the test and the bench flavor of
# scripts/build-kernel differ in config), it is cleaned first, since kbuild
# does not notice that KDIR now names another kernel.
build_for_kernel() {
  local kdir=$1; shift
  local stamp="$P2PMAP_ROOT/build/.kdir"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$kdir" ]; then
    make -s -C "$P2PMAP_ROOT" KDIR="$kdir" clean >/dev/null 2>&1 || true
  fi
  make -s -C "$P2PMAP_ROOT" KDIR="$kdir" "$@" build
  echo "$kdir" > "$stamp"
}
