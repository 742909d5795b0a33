# memexpose front door.  The work is done by scripts/; this file only
# strings the steps together.  Run as root on Debian: missing packages are
# installed with apt.
#
#   make check     install deps, fetch QEMU 10.0.x and 10.2.x, overlay,
#                  build both QEMUs and the guest driver, run every test
#                  against each (two Linux guests included)
#   make install-host  install libmemexpose and memexpose-host into
#                  PREFIX (default /usr/local; DESTDIR= to stage)
#   make install-python  the same plus the Python binding 'memexpose'
#   make patches   export the git format-patch series, one per QEMU
#                  release, into build/patches/SERIES
#   make fuzz      run the codec fuzzer for FUZZ_TIME seconds
#   make fuzz-device   build QEMU's fuzzer (clang, ASan, UBSan) and run
#                  the device's memexpose-peer target for FUZZ_TIME seconds
#   make firmware  build the aarch64 test firmware into build/firmware
#   make arm64-guest  Debian's arm64 kernel, headers and busybox unpacked
#                  into build/arm64/root, the driver cross-built for it
#   make dkms      register the guest driver with DKMS, build and install
#                  it for the running kernel (KERNELVER=<ver>: another)
#   make demo      two Linux guests share memory and ring doorbells
#   make demo-amp  an x86_64 Linux master boots an aarch64 slave
#   make bench     memexpose against ivshmem, side by side
#   make bench-boots   both guests booted 50 times (BOOTS=) in a row
#   make bench-spread  20 bench runs (RUNS=) and the spread of the ratios
#
# QEMU_VERSIONS=10.2 (or "10.0 10.2", the default) picks the QEMU release
# series check, qemu and patches work on; QEMU_VERSION=10.2 the one demo
# and bench run (default: the first of QEMU_VERSIONS).  QEMU_SRC=/path
# builds the caller's own 10.0.x or 10.2.x tree instead of Debian's.
# Series SERIES has its tree in build/qemu-src-SERIES and its build in
# build/qemu-SERIES.

BUILD      := build
MX_BUILD   := $(BUILD)/mx
FUZZ_TIME  ?= 60

QEMU_SUPPORTED := $(shell sh scripts/qemu-version.sh --supported)
ifneq ($(QEMU_SRC),)
QEMU_VERSIONS := $(shell sh scripts/qemu-version.sh '$(QEMU_SRC)')
ifeq ($(QEMU_VERSIONS),)
$(error QEMU_SRC=$(QEMU_SRC) is not a supported QEMU tree)
endif
export QEMU_SRC
endif
QEMU_VERSIONS ?= $(QEMU_SUPPORTED)
QEMU_VERSION  ?= $(firstword $(QEMU_VERSIONS))
QEMU_BUILD    := $(BUILD)/qemu-$(QEMU_VERSION)
export MEMEXPOSE_QEMU_BUILD := $(abspath $(QEMU_BUILD))

QTESTS := tests/qtest/ivshmem-test tests/qtest/memexpose-test \
          tests/qtest/memexpose-boot-test \
          tests/qtest/device-introspect-test tests/qtest/qom-test
QEMU_TOOLS := contrib/ivshmem-server/ivshmem-server qemu-img

.PHONY: all deps qemu-src overlay qemu qemu-one mx driver check patches fuzz fuzz-device clean \
        install-host install-python \
        distclean demo demo-amp bench bench-boots bench-spread firmware \
        arm64-guest dkms

all: qemu mx driver

deps:
	@sh scripts/deps.sh

qemu-src: deps
	@for v in $(QEMU_VERSIONS); do \
	    sh scripts/qemu-src.sh $$v $(BUILD)/qemu-src-$$v || exit 1; \
	done

overlay: qemu-src
	@for v in $(QEMU_VERSIONS); do \
	    sh scripts/overlay.sh $(BUILD)/qemu-src-$$v || exit 1; \
	done

qemu: overlay
	@for v in $(QEMU_VERSIONS); do \
	    sh scripts/build-qemu.sh $(BUILD)/qemu-src-$$v $(BUILD)/qemu-$$v \
	        $(QTESTS) $(QEMU_TOOLS) || exit 1; \
	done

# Only the series demo and bench run.
qemu-one:
	@$(MAKE) -s qemu QEMU_VERSIONS=$(QEMU_VERSION)

mx: deps
	@[ -f $(MX_BUILD)/build.ninja ] || meson setup $(MX_BUILD) . >/dev/null
	@ninja -C $(MX_BUILD) >/dev/null

driver: deps
	@$(MAKE) -s -C linux-driver modules tools >/dev/null

# For the aarch64 Linux guest (tests/guest/arm64-linux.py): Debian's arm64
# kernel, headers and busybox-static, fetched with apt-get download and
# unpacked, never installed (scripts/arm64-guest.sh); memexpose.ko and a
# static memexpose-ctl cross-built into build/arm64/driver.
arm64-guest: deps
	@sh scripts/arm64-guest.sh
	@$(MAKE) -s -C linux-driver arm64 >/dev/null

# DKMS, the way users install the driver (linux-driver/README.md).
dkms: deps
	@$(MAKE) -s -C linux-driver dkms

# libmemexpose (shared, static, header, pkg-config file) and
# memexpose-host into PREFIX (default /usr/local); DESTDIR= stages them.
# Built apart from build/mx, without its sanitizers, for installing.
PREFIX ?= /usr/local
install-host: deps
	@[ -f $(BUILD)/mx-install/build.ninja ] || meson setup \
	    --buildtype=release -Db_sanitize=none --prefix=$(PREFIX) \
	    $(BUILD)/mx-install . >/dev/null
	@ninja -C $(BUILD)/mx-install >/dev/null
	@DESTDIR=$(DESTDIR) meson install -C $(BUILD)/mx-install --no-rebuild \
	    --quiet

# The Python binding (contrib/python/memexpose, ctypes over the library)
# into python3's local site directory (PYTHON_DIR= to choose another).
PYTHON_DIR ?= $(shell python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
install-python: install-host
	@mkdir -p $(DESTDIR)$(PYTHON_DIR)/memexpose
	@cp contrib/python/memexpose/__init__.py $(DESTDIR)$(PYTHON_DIR)/memexpose/

check: qemu mx driver firmware arm64-guest
	@sh scripts/run-tests.sh $(QEMU_VERSIONS)

demo: qemu-one driver
	@python3 tests/guest/demo.py

# An x86_64 Linux master boots an aarch64 slave through memexpose.
demo-amp: qemu-one driver firmware
	@sh tests/guest/run.sh --amp

# Not part of check: two guests, memexpose against ivshmem, side by side;
# writes build/bench/results.md (bench/run.sh).
bench: qemu-one driver
	@sh bench/run.sh

# Not part of check: both guests booted BOOTS times in a row (default 50):
# every boot must bring the link up once, with no drop and no timeout.
BOOTS ?= 50
bench-boots: qemu-one driver
	@sh bench/run.sh --boots $(BOOTS)

# Not part of check: RUNS (default 20) bench runs in a row and the spread
# of each ratio over them, in build/bench/spread.md.
RUNS ?= 20
bench-spread: qemu-one driver
	@sh bench/spread.sh $(RUNS)

# Bare-metal aarch64 slave for the boot tests: memexpose-fw-aarch64.{elf,bin}.
firmware: deps
	@sh tests/firmware/aarch64/build.sh $(BUILD)/firmware

patches: overlay
	@for v in $(QEMU_VERSIONS); do \
	    sh scripts/export-patches.sh $(BUILD)/qemu-src-$$v \
	        $(BUILD)/patches/$$v || exit 1; \
	done

fuzz: deps
	@mkdir -p $(BUILD)/fuzz/corpus
	clang -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -Ihw/misc/memexpose \
	    hw/misc/memexpose/memexpose-wire.c tests/fuzz/fuzz-wire.c \
	    -o $(BUILD)/fuzz/fuzz-wire
	cp -n tests/fuzz/corpus/wire/* $(BUILD)/fuzz/corpus/
	$(BUILD)/fuzz/fuzz-wire -max_len=4200 -max_total_time=$(FUZZ_TIME) \
	    $(BUILD)/fuzz/corpus

# The device's fuzzer builds from the first series' overlaid tree.
fuzz-device: overlay
	@sh scripts/fuzz-device.sh $(BUILD)/qemu-src-$(QEMU_VERSION) \
	    $(BUILD)/qemu-fuzz-$(QEMU_VERSION) $(FUZZ_TIME) \
	    $(BUILD)/fuzz/device/corpus $(FUZZ_ARGS)

clean:
	rm -rf $(foreach v,$(QEMU_VERSIONS),$(BUILD)/qemu-$(v)) $(MX_BUILD) \
	    $(BUILD)/mx-install \
	    $(BUILD)/patches $(BUILD)/fuzz \
	    $(BUILD)/guest $(BUILD)/arm64/driver
	$(MAKE) -C linux-driver clean

distclean:
	rm -rf $(BUILD)
