/*
 * libFuzzer target for the memexpose device's request path: a peer in
 * this process (memexpose-fuzz-peer.c) feeds message streams, descriptors,
 * ring contents and guest register writes to a real memexpose-pci in a
 * qtest-accelerated pc machine, through the device's own unix socket.
 *
 *   qemu-fuzz-x86_64 --fuzz-target=memexpose-peer CORPUS_DIR
 *
 * The device runs its I/O thread and worker as in any QEMU; this thread
 * is the main loop and the vCPU (qtest).  A crash, a sanitizer report, a
 * message from the device that does not decode, or a device that stops
 * greeting new connections is a finding (see docs/fuzzing.md).
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "tests/qtest/libqtest.h"
#include "fuzz.h"
#include "memexpose-fuzz-peer.h"

static char *mxf_sock;
static MxfPeer *mxf_peer;

static void mxf_fuzz_nothing(void *opaque)
{
}

/*
 * Run the main loop until the peer's socket is readable, the main loop
 * has work or @timeout_us passed.  main_loop_wait() drops the BQL while
 * it polls, so the device's threads can take it meanwhile.
 */
static void mxf_fuzz_wait(void *opaque, int fd, int timeout_us)
{
    static QEMUTimer *wake;
    static int watched = -1;

    if (!wake) {
        wake = timer_new_us(QEMU_CLOCK_REALTIME, mxf_fuzz_nothing, NULL);
    }
    if (fd != watched) {
        if (watched >= 0) {
            qemu_set_fd_handler(watched, NULL, NULL, NULL);
        }
        if (fd >= 0) {
            qemu_set_fd_handler(fd, mxf_fuzz_nothing, NULL, NULL);
        }
        watched = fd;
    }
    timer_mod(wake, qemu_clock_get_us(QEMU_CLOCK_REALTIME) + timeout_us);
    main_loop_wait(false);
    timer_del(wake);
}

static const MxfOps mxf_fuzz_ops = {
    .wait = mxf_fuzz_wait,
    .outl = mxf_qtest_outl,
    .writel = mxf_qtest_writel,
    .readl = mxf_qtest_readl,
};

static GString *memexpose_fuzz_cmdline(FuzzTarget *t)
{
    GString *cmd = g_string_new(TARGET_NAME " -accel qtest ");

    mxf_sock = g_strdup_printf("%s/memexpose-fuzz-%d.sock", g_get_tmp_dir(),
                               getpid());
    unlink(mxf_sock);
    g_string_append_printf(cmd, MXF_QEMU_ARGS_FMT, mxf_sock);
    return cmd;
}

static void memexpose_fuzz_report(void)
{
    const MxfStats *st = mxf_peer_stats(mxf_peer);

    fprintf(stderr, "memexpose-peer: %" PRIu64 " inputs, %" PRIu64
            " links, %" PRIu64 " ended by the device, %" PRIu64
            " given up, %" PRIu64 " sends\n", st->inputs, st->links,
            st->drops, st->abandoned, st->sent);
}

static void memexpose_pre_fuzz(QTestState *s)
{
    mxf_peer = mxf_peer_new(mxf_sock, &mxf_fuzz_ops, s);
    mxf_peer_setup_pci(mxf_peer);
    atexit(memexpose_fuzz_report);
}

static void memexpose_fuzz(QTestState *s, const unsigned char *data,
                           size_t size)
{
    mxf_peer_run(mxf_peer, data, size);
    flush_events(s);
}

static void register_memexpose_fuzz_targets(void)
{
    fuzz_add_target(&(FuzzTarget){
        .name = "memexpose-peer",
        .description = "Fuzz memexpose-pci's link as a hostile peer: "
                       "messages, descriptors, doorbell rings, registers",
        .get_init_cmdline = memexpose_fuzz_cmdline,
        .pre_fuzz = memexpose_pre_fuzz,
        .fuzz = memexpose_fuzz,
    });
}

fuzz_target_init(register_memexpose_fuzz_targets);
