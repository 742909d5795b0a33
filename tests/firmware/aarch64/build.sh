#!/bin/sh
# Build the memexpose aarch64 test firmware (see start.S for its contract).
#
#   tests/firmware/aarch64/build.sh OUTDIR
#
# Writes OUTDIR/memexpose-fw-aarch64.elf and OUTDIR/memexpose-fw-aarch64.bin
# (the raw image to load at 0x40100000).  Always rebuilds: it is tiny.
#
# Copyright (c) 2026 The memexpose authors
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
out=${1:?usage: $0 OUTDIR}
cross=${CROSS_COMPILE:-aarch64-linux-gnu-}

die() { echo "firmware: $*" >&2; exit 1; }

for t in gcc objcopy; do
    command -v "${cross}$t" >/dev/null 2>&1 ||
        die "${cross}$t not found: install gcc-aarch64-linux-gnu (make deps)"
done

mkdir -p "$out"
elf=$out/memexpose-fw-aarch64.elf
bin=$out/memexpose-fw-aarch64.bin

# MMU off: all memory is Device, so no unaligned accesses and no FP/SIMD
# (CPACR_EL1 traps it at reset); no libc, no libgcc, no PIE.
"${cross}gcc" -ffreestanding -nostdlib -static -fno-pie -no-pie \
    -mgeneral-regs-only -mstrict-align -O2 -g \
    -fno-stack-protector -fno-asynchronous-unwind-tables \
    -fno-tree-loop-distribute-patterns -mbranch-protection=none \
    -Wall -Wextra -Werror -I"$top/hw/misc/memexpose" \
    -T "$here/fw.ld" -Wl,--build-id=none -Wl,--no-warn-rwx-segments \
    -o "$elf" "$here/start.S" "$here/fw.c"
"${cross}objcopy" -O binary "$elf" "$bin"
echo "firmware: $bin ($(wc -c < "$bin") bytes)"
