/*
 * memexpose aarch64 test firmware: entry point.
 *
 * Boot contract (see fw.c for what the firmware does):
 *   - raw binary, linked and loaded at physical 0x40100000 (1 MiB into
 *     the RAM of QEMU's aarch64 "virt" machine); _start is its first
 *     byte, so the entry point is 0x40100000;
 *   - entered on CPU 0 at EL1 or EL2, MMU and caches off, with
 *       x0 = physical base of the memexpose register block (4 KiB),
 *       x1 = physical base of a PL011 UART,
 *       x2 = 64-bit cookie chosen by the boot master,
 *       x3 unused;
 *   - nothing else is assumed: this code masks interrupts, zeroes .bss
 *     and sets up its own 4 KiB stack before calling C.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

    .section .text.start, "ax"
    .globl _start
    .type _start, %function
_start:
    /* No vector table is installed: keep every exception masked. */
    msr     daifset, #0xf

    /* Zero .bss; fw.ld aligns both ends to 16 bytes. */
    adrp    x4, __bss_start
    add     x4, x4, :lo12:__bss_start
    adrp    x5, __bss_end
    add     x5, x5, :lo12:__bss_end
1:  cmp     x4, x5
    b.hs    2f
    stp     xzr, xzr, [x4], #16
    b       1b

2:  adrp    x4, __stack_top
    add     x4, x4, :lo12:__stack_top
    mov     sp, x4

    /* x0..x2 are untouched so far: they are fw_main's arguments. */
    bl      fw_main
3:  wfi
    b       3b
    .size _start, . - _start
