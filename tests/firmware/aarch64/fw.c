/*
 * memexpose aarch64 test firmware: what a boot target runs when a boot
 * master starts it over a memexpose link.  start.S has the boot contract
 * (entry 0x40100000; x0 = memexpose registers, x1 = PL011, x2 = cookie).
 *
 *   1. Enable the PL011 (UARTCR = UARTEN | TXE) and print
 *        "memexpose-fw: hello from the aarch64 slave, cookie 0x%016lx\r\n"
 *   2. Wait until LINK.UP and DB_TX_CREDITS > 0 (at most MX_SPIN_LIMIT
 *      polls, else print "memexpose-fw: link not ready, giving up\r\n"),
 *      then ring doorbell vector 0 with the payload (ASCII, no NUL)
 *        "memexpose-fw: booted, cookie 0x%016lx"
 *      and print "memexpose-fw: doorbell sent\r\n" or
 *      "memexpose-fw: doorbell failed, status N\r\n" (N in decimal).
 *   3. wfi forever.
 *
 * For running it by hand: if x1 is 0, virt's PL011 at 0x09000000 is used;
 * if x0 is 0, step 2 is skipped and
 * "memexpose-fw: no memexpose registers, doorbell skipped\r\n" printed.
 *
 * The MMU is off, so every access is to Device memory: no unaligned
 * accesses (-mstrict-align), no FP/SIMD (-mgeneral-regs-only), and MMIO
 * through plain ldr/str without writeback, which a hypervisor can emulate.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <stdint.h>
#include "memexpose-regs.h"

#define VIRT_PL011          0x09000000UL
#define UARTDR              0x00
#define UARTFR              0x18
#define UARTFR_TXFF         (1U << 5)
#define UARTCR              0x30
#define UARTCR_UARTEN       (1U << 0)
#define UARTCR_TXE          (1U << 8)

#define MX_SPIN_LIMIT       300000000UL

static uintptr_t uart;

static uint32_t rd32(uintptr_t base, uint32_t off)
{
    uint32_t v;

    asm volatile("ldr %w0, [%1]" : "=r"(v) : "r"(base + off) : "memory");
    return v;
}

static void wr32(uintptr_t base, uint32_t off, uint32_t v)
{
    asm volatile("str %w0, [%1]" : : "rZ"(v), "r"(base + off) : "memory");
}

static void puts_uart(const char *s)
{
    for (; *s; s++) {
        while (rd32(uart, UARTFR) & UARTFR_TXFF) {
        }
        wr32(uart, UARTDR, (uint8_t)*s);
    }
}

/* Writes prefix followed by "0x%016lx" and a NUL into buf; returns length. */
static uint32_t fmt_hex(char *buf, const char *prefix, uint64_t v)
{
    uint32_t n = 0;
    int shift;

    while (*prefix) {
        buf[n++] = *prefix++;
    }
    buf[n++] = '0';
    buf[n++] = 'x';
    for (shift = 60; shift >= 0; shift -= 4) {
        buf[n++] = "0123456789abcdef"[(v >> shift) & 0xf];
    }
    buf[n] = '\0';
    return n;
}

static void ring_doorbell(uintptr_t mx, uint64_t cookie)
{
    char buf[64], num[12];
    uint32_t len, i, k, w, status;
    unsigned long spin;
    char *p;

    for (spin = 0; spin < MX_SPIN_LIMIT; spin++) {
        if ((rd32(mx, MX_REG_LINK) & MX_LINK_UP) &&
            rd32(mx, MX_REG_DB_TX_CREDITS) > 0) {
            break;
        }
    }
    if (spin == MX_SPIN_LIMIT) {
        puts_uart("memexpose-fw: link not ready, giving up\r\n");
        return;
    }

    /* Whole words only: the last one is padded with zeros. */
    len = fmt_hex(buf, "memexpose-fw: booted, cookie ", cookie);
    for (i = 0; i < len; i += 4) {
        w = 0;
        for (k = 0; k < 4 && i + k < len; k++) {
            w |= (uint32_t)(uint8_t)buf[i + k] << (8 * k);
        }
        wr32(mx, MX_REG_DB_TX_DATA + i, w);
    }
    wr32(mx, MX_REG_DB_TX_LEN, len);
    wr32(mx, MX_REG_DB_TX_VECTOR, 0);       /* this write sends it */

    status = rd32(mx, MX_REG_DB_TX_STATUS);
    if (status == MX_TX_OK) {
        puts_uart("memexpose-fw: doorbell sent\r\n");
        return;
    }
    p = &num[sizeof(num) - 1];
    *p = '\0';
    do {
        *--p = '0' + status % 10;
        status /= 10;
    } while (status);
    puts_uart("memexpose-fw: doorbell failed, status ");
    puts_uart(p);
    puts_uart("\r\n");
}

void fw_main(uintptr_t mx, uintptr_t pl011, uint64_t cookie)
{
    char buf[96];

    uart = pl011 ? pl011 : VIRT_PL011;
    wr32(uart, UARTCR, UARTCR_UARTEN | UARTCR_TXE);

    fmt_hex(buf, "memexpose-fw: hello from the aarch64 slave, cookie ",
            cookie);
    puts_uart(buf);
    puts_uart("\r\n");

    if (mx) {
        ring_doorbell(mx, cookie);
    } else {
        puts_uart("memexpose-fw: no memexpose registers, doorbell skipped\r\n");
    }
}
