/*
 * A memexpose peer driven by fuzz input, for the device fuzzer
 * (tests/qtest/fuzz/memexpose_fuzz.c) and for memexpose-test, which
 * replays the committed corpus against a real QEMU.
 *
 * The input is a program of operations (see memexpose-fuzz-peer.c): raw
 * bytes and messages with or without descriptors sent to the device,
 * writes into the doorbell rings both sides share, eventfd signals and
 * the guest's register writes.  Between inputs the link is kept when it
 * survived and the next input asks for the same handshake.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MEMEXPOSE_FUZZ_PEER_H
#define MEMEXPOSE_FUZZ_PEER_H

/* Where the device under test sits, and how it is configured. */
#define MXF_PCI_SLOT        4
#define MXF_REGS_ADDR       0xe0000000ULL
#define MXF_WINDOW_ADDR     0xe0100000ULL
#define MXF_WINDOW_SIZE     (1024 * 1024)
#define MXF_RAM_MB          64
#define MXF_VECTORS         4
#define MXF_QUEUE_DEPTH     8

/*
 * The machine and device options (after the binary name), for a socket
 * path, quoted for a shell (the export list has semicolons).  The
 * exports cover RAM read-write and read-only, MMIO read-write (the
 * IOAPIC) and read-only (the HPET: a peer that may program it can make
 * its timer fire without end, which keeps the main loop busy for good),
 * space where nothing is mapped and the device's own window.
 */
#define MXF_QEMU_ARGS_FMT \
    "-machine pc -m 64 -display none -nodefaults " \
    "-object memory-backend-memfd,id=ram,size=64M,share=on " \
    "-machine memory-backend=ram " \
    "-chardev socket,id=mx,path=%s,server=on,wait=off " \
    "-device 'memexpose-pci,id=mx,chardev=mx,name=fuzzed,addr=4.0," \
    "window-size=1M,vectors=4,queue-depth=8,timeout=100,heartbeat=50," \
    "export=0+32M:rw;0x2000000+32M:ro;0xfec00000+4K:rw;0xfed00000+1K:ro;" \
    "0x40000000+1M:rw;0xe0100000+1M:rw'"

typedef struct MxfOps {
    /*
     * Let QEMU run until @fd is readable or @timeout_us passed: the
     * in-process fuzzer runs the main loop here, the replay just polls.
     */
    void (*wait)(void *opaque, int fd, int timeout_us);
    void (*outl)(void *opaque, uint16_t port, uint32_t value);
    void (*writel)(void *opaque, uint64_t addr, uint32_t value);
    uint32_t (*readl)(void *opaque, uint64_t addr);
} MxfOps;

typedef struct MxfStats {
    uint64_t inputs;
    uint64_t links;             /* handshakes completed */
    uint64_t drops;             /* links the device ended */
    uint64_t abandoned;         /* links we gave up on (no PONG) */
    uint64_t sent;              /* messages and raw chunks sent */
} MxfStats;

typedef struct MxfPeer MxfPeer;

/* MxfOps.outl, writel and readl for an opaque that is a QTestState. */
void mxf_qtest_outl(void *qts, uint16_t port, uint32_t value);
void mxf_qtest_writel(void *qts, uint64_t addr, uint32_t value);
uint32_t mxf_qtest_readl(void *qts, uint64_t addr);

MxfPeer *mxf_peer_new(const char *sock, const MxfOps *ops, void *opaque);
/* Map the device's BARs; call once after QEMU started. */
void mxf_peer_setup_pci(MxfPeer *p);
/* Run one input against the device. */
void mxf_peer_run(MxfPeer *p, const uint8_t *data, size_t size);
const MxfStats *mxf_peer_stats(MxfPeer *p);
void mxf_peer_free(MxfPeer *p);

#endif
