# SPDX-License-Identifier: GPL-2.0
#
# Top-level targets. The kernel build (scripts/build-kernel) is cached outside
# the checkout; KDIR points at it.

P2PMAP_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/p2pmap
KDIR ?= $(P2PMAP_CACHE)/kbuild-current
LLVM ?= -19
CLIPPY ?=
export PATH := $(HOME)/.cargo/bin:$(PATH)
export LIBCLANG_PATH ?= /usr/lib/llvm-19/lib

# Warnings are errors for our code: Rust (rustc and, with CLIPPY=1, clippy) and C.
KMAKE = $(MAKE) -C $(KDIR) LLVM=$(LLVM) $(if $(CLIPPY),CLIPPY=1) \
	KRUSTFLAGS=-Dwarnings KCFLAGS=-Werror
KSRC = $(KDIR)/source
CC_TEST ?= gcc
# The selftests are built by their kselftest-style Makefile (the kernel's
# lib.mk) into build/bin.
SELFTEST_MAKE = $(MAKE) -C tests/selftests KSRC=$(KSRC) OUTPUT=$(CURDIR)/build/bin CC=$(CC_TEST)

.PHONY: all build setup kernel module tools selftests host-test checkpatch check demo \
	bench stress fmt fmt-check clippy clean

all: build

# What the guest needs: the modules, the test programs and p2pctl (on the
# guest's PATH through build/bin).
build: module selftests tools

setup:
	scripts/setup

kernel: setup
	scripts/build-kernel >/dev/null

module:
	$(KMAKE) M=$(CURDIR) modules

clippy:
	$(KMAKE) M=$(CURDIR) CLIPPY=1 modules

selftests:
	@mkdir -p build/bin
	+$(SELFTEST_MAKE)

# p2pctl: static binary (crt-static), dependencies pinned by its Cargo.lock.
tools:
	@mkdir -p build/bin
	cd tests/tools/p2pctl && RUSTFLAGS="-C target-feature=+crt-static" \
		cargo build -q --release --locked --target-dir $(CURDIR)/build/cargo
	cp build/cargo/release/p2pctl build/bin/p2pctl

fmt:
	rustfmt --edition 2021 src/p2pmap_main.rs tests/importer/importer_main.rs
	cd tests/host && cargo fmt
	cd tests/tools/p2pctl && cargo fmt

fmt-check:
	rustfmt --edition 2021 --check src/p2pmap_main.rs tests/importer/importer_main.rs
	cd tests/host && cargo fmt --check
	cd tests/tools/p2pctl && cargo fmt --check

# The kernel series: checkpatch --strict, and every patch builds on its own.
checkpatch:
	scripts/check-patches

host-test:
	cd tests/host && cargo test

# Everything: install, build kernel + module + tests, host tests, guest tests.
check:
	scripts/check

demo:
	scripts/demo

bench:
	scripts/bench

# The long form of the model-checked stress test (make check runs a bounded one).
stress:
	scripts/stress

clean:
	-$(KMAKE) M=$(CURDIR) clean
	rm -f bindings/p2pmap_generated.rs
	rm -rf build
	cd tests/host && cargo clean
