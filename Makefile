# memexpose front door.  The work is done by scripts/; this file only
# strings the steps together.  Run as root on Debian: missing packages are
# installed with apt.
#
#   make check     install deps, fetch QEMU 10.0.x, overlay, build QEMU
#                  and the guest driver, run every test (two Linux guests
#                  included)
#   make patches   export the git format-patch series into build/patches
#   make fuzz      run the codec fuzzer for FUZZ_TIME seconds
#   make firmware  build the aarch64 test firmware into build/firmware
#   make arm64-guest  Debian's arm64 kernel, headers and busybox unpacked
#                  into build/arm64/root, the driver cross-built for it
#   make demo      two Linux guests share memory and ring doorbells
#   make demo-amp  an x86_64 Linux master boots an aarch64 slave
#   make bench     memexpose against ivshmem, side by side

BUILD      := build
QEMU_TREE  := $(BUILD)/qemu-src
QEMU_BUILD := $(BUILD)/qemu
MX_BUILD   := $(BUILD)/mx
FUZZ_TIME  ?= 60

QTESTS := tests/qtest/ivshmem-test tests/qtest/memexpose-test \
          tests/qtest/memexpose-boot-test \
          tests/qtest/device-introspect-test tests/qtest/qom-test
QEMU_TOOLS := contrib/ivshmem-server/ivshmem-server qemu-img

.PHONY: all deps qemu-src overlay qemu mx driver check patches fuzz clean \
        distclean demo demo-amp bench firmware arm64-guest

all: qemu mx driver

deps:
	@sh scripts/deps.sh

qemu-src: deps
	@sh scripts/qemu-src.sh $(QEMU_TREE)

overlay: qemu-src
	@sh scripts/overlay.sh $(QEMU_TREE)

qemu: overlay
	@sh scripts/build-qemu.sh $(QEMU_TREE) $(QEMU_BUILD) $(QTESTS) $(QEMU_TOOLS)

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

check: qemu mx driver firmware arm64-guest
	@sh scripts/run-tests.sh

demo: qemu driver
	@python3 tests/guest/demo.py

# An x86_64 Linux master boots an aarch64 slave through memexpose.
demo-amp: qemu driver firmware
	@sh tests/guest/run.sh --amp

# Not part of check: two guests, memexpose against ivshmem, side by side;
# writes build/bench/results.md (bench/run.sh).
bench: qemu driver
	@sh bench/run.sh

# Bare-metal aarch64 slave for the boot tests: memexpose-fw-aarch64.{elf,bin}.
firmware: deps
	@sh tests/firmware/aarch64/build.sh $(BUILD)/firmware

patches: overlay
	@sh scripts/export-patches.sh $(QEMU_TREE) $(BUILD)/patches

fuzz: deps
	@mkdir -p $(BUILD)/fuzz/corpus
	clang -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -Ihw/misc/memexpose \
	    hw/misc/memexpose/memexpose-wire.c tests/fuzz/fuzz-wire.c \
	    -o $(BUILD)/fuzz/fuzz-wire
	cp -n tests/fuzz/corpus/wire/* $(BUILD)/fuzz/corpus/
	$(BUILD)/fuzz/fuzz-wire -max_len=4200 -max_total_time=$(FUZZ_TIME) \
	    $(BUILD)/fuzz/corpus

clean:
	rm -rf $(QEMU_BUILD) $(MX_BUILD) $(BUILD)/patches $(BUILD)/fuzz \
	    $(BUILD)/guest $(BUILD)/arm64/driver
	$(MAKE) -C linux-driver clean

distclean:
	rm -rf $(BUILD)
