/*
 * An out-of-process device on libmemexpose: a small DMA engine that a
 * VM drives through its memexpose window.  Its registers are served by
 * a callback export; the copy is done by this process in the VM's RAM,
 * zero-copy where the VM hands out its memory, and completion is a
 * doorbell with a status payload.  Register contract: README.md.
 *
 * Usage: dma-engine SOCKET [REGS-ADDR]
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libmemexpose.h"

#define DMA_ID          0x00    /* RO: "MXDMA001" */
#define DMA_SRC         0x08    /* RW: VM physical source */
#define DMA_DST         0x10    /* RW: VM physical destination */
#define DMA_LEN         0x18    /* RW: bytes */
#define DMA_GO          0x20    /* WO: 1 starts the copy */
#define DMA_STATUS      0x28    /* RO: DMA_IDLE, _BUSY, _DONE, _ERROR */
#define DMA_COUNT       0x30    /* RO: transfers completed */
#define DMA_REGS_SIZE   0x1000

enum { DMA_IDLE, DMA_BUSY, DMA_DONE, DMA_ERROR };

#define CHUNK           (1u << 20)

typedef struct Dma {
    uint64_t src, dst, len, status, count;
    bool go;
} Dma;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Register accesses, forwarded one by one; the copy runs outside. */
static int dma_regs(void *opaque, uint64_t off, void *buf, uint32_t size,
                    bool write)
{
    Dma *d = opaque;
    uint64_t *reg = NULL, v = 0;

    if (size != 8 || (off & 7)) {
        return MX_E_ACCESS;     /* 64-bit registers only */
    }
    switch (off) {
    case DMA_ID:
        v = 0x313030414d44584dULL;      /* "MXDMA001" little-endian */
        break;
    case DMA_SRC:
        reg = &d->src;
        break;
    case DMA_DST:
        reg = &d->dst;
        break;
    case DMA_LEN:
        reg = &d->len;
        break;
    case DMA_GO:
        if (write) {
            memcpy(&v, buf, 8);
            if (v == 1 && d->status != DMA_BUSY) {
                d->status = DMA_BUSY;
                d->go = true;
            }
        }
        return 0;
    case DMA_STATUS:
        v = d->status;
        break;
    case DMA_COUNT:
        v = d->count;
        break;
    default:
        return MX_E_ACCESS;
    }
    if (write) {
        if (reg) {
            memcpy(reg, buf, 8);
        }
        return 0;
    }
    memcpy(buf, reg ? reg : &v, 8);
    return 0;
}

/* Copy within the VM: mapped where the VM shares its RAM, else bulk. */
static int dma_copy(mx_link *l, uint64_t src, uint64_t dst, uint64_t len)
{
    static uint8_t bounce[CHUNK];
    mx_range rs, rd;
    uint8_t *s = NULL, *t = NULL;
    int ret;

    if (mx_map(l, src, len, &rs) == 0 && rs.host &&
        rs.map_addr + rs.map_len - src >= len) {
        s = (uint8_t *)rs.host + (src - rs.map_addr);
    }
    if (mx_map(l, dst, len, &rd) == 0 && rd.host && rd.perm == MX_PERM_RW &&
        rd.map_addr + rd.map_len - dst >= len) {
        t = (uint8_t *)rd.host + (dst - rd.map_addr);
    }
    if (s && t) {
        memmove(t, s, len);
        ret = 0;
    } else {
        uint64_t done = 0;

        ret = 0;
        while (!ret && done < len) {
            size_t n = len - done < CHUNK ? len - done : CHUNK;

            ret = mx_read(l, src + done, bounce, n);
            if (!ret) {
                ret = mx_write(l, dst + done, bounce, n);
            }
            done += n;
        }
    }
    if (rs.host) {
        mx_unmap(l, rs.host);
    }
    if (rd.host) {
        mx_unmap(l, rd.host);
    }
    return ret;
}

int main(int argc, char **argv)
{
    struct sigaction sa = { .sa_handler = on_signal };
    uint64_t regs = argc > 2 ? strtoull(argv[2], NULL, 0) : 0;
    Dma d = { .status = DMA_IDLE };
    mx_options o;
    mx_link *l;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s SOCKET [REGS-ADDR]\n", argv[0]);
        return 2;
    }
    mx_options_init(&o);
    o.name = "dma-engine";
    o.timeout_ms = 5000;
    l = mx_link_new(&o);
    if (!l || mx_export_callback(l, regs, DMA_REGS_SIZE, MX_PERM_RW,
                                 dma_regs, &d)) {
        fprintf(stderr, "dma-engine: cannot set up\n");
        return 1;
    }
    if (mx_connect(l, argv[1])) {
        fprintf(stderr, "dma-engine: %s\n", mx_link_error(l));
        mx_close(l);
        return 3;
    }
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "dma-engine: registers at 0x%" PRIx64 " for '%s'\n",
            regs, mx_peer(l)->name);
    while (!stop && mx_dispatch(l, 200) == 0) {
        uint32_t done[2];

        if (!d.go) {
            continue;
        }
        d.go = false;
        d.status = dma_copy(l, d.src, d.dst, d.len) ? DMA_ERROR : DMA_DONE;
        d.count++;
        done[0] = d.status;
        done[1] = d.count;
        if (mx_ring(l, 0, done, sizeof(done))) {
            fprintf(stderr, "dma-engine: cannot signal completion: %s\n",
                    mx_link_error(l));
        }
    }
    if (!stop) {
        fprintf(stderr, "dma-engine: link lost: %s\n", mx_link_error(l));
    }
    mx_close(l);
    return stop ? 0 : 4;
}
