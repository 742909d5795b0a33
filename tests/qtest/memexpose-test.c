/*
 * QTest testcase for memexpose-pci: two QEMU instances linked by a unix
 * socket, each driven through the device's registers.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <glib/gstdio.h>
#include "libqtest.h"
#include "libqos/libqos-pc.h"
#include "standard-headers/linux/pci_regs.h"
#include "hw/misc/memexpose/memexpose-regs.h"
#include "hw/misc/memexpose/memexpose-wire.h"
#include "qobject/qdict.h"
#include "qemu/atomic.h"
#include "qemu/bswap.h"
#include "qemu/cutils.h"
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/un.h>

#define RAM_SIZE        (128 * 1024 * 1024)
#define WINDOW_SIZE     (64 * 1024 * 1024)
#define LINK_WAIT_MS    10000
/* How long the importer waits for a MAP_REPLY (the spec's bound). */
#define MAP_TIMEOUT_MS  10000

typedef struct Side {
    QOSState *qs;
    QTestState *qts;
    QPCIDevice *dev;
    QPCIBar regs;
    QPCIBar window;
    uint64_t window_addr;
} Side;

static char *tmpdir;

static void save_fn(QPCIDevice *dev, int devfn, void *data)
{
    *(QPCIDevice **)data = dev;
}

static char *sock_path(const char *name)
{
    return g_strdup_printf("%s/%s.sock", tmpdir, name);
}

/*
 * Start one side.  @server: listen on the socket (else connect, retrying).
 * @ram: "memfd" (shared, zero-copy) or "private" (forwarded).
 */
static void side_start_args(Side *s, const char *sock, bool server,
                            const char *ram, const char *name,
                            const char *extra, const char *args)
{
    g_autofree char *chardev = server ?
        g_strdup_printf("socket,id=mx,path=%s,server=on,wait=off", sock) :
        g_strdup_printf("socket,id=mx,path=%s,reconnect-ms=100", sock);
    g_autofree char *backend = g_str_equal(ram, "memfd") ?
        g_strdup_printf("memory-backend-memfd,id=ram,size=%d,share=on",
                        RAM_SIZE) :
        g_strdup_printf("memory-backend-ram,id=ram,size=%d", RAM_SIZE);
    uint64_t size;

    s->qs = qtest_pc_boot("%s -m %d -object %s -machine memory-backend=ram "
                          "-vga none -chardev %s "
                          "-device 'memexpose-pci,id=mx,chardev=mx,name=%s,"
                          "window-size=%d%s%s'",
                          args ? args : "",
                          RAM_SIZE / (1024 * 1024), backend, chardev, name,
                          WINDOW_SIZE, extra ? "," : "", extra ? extra : "");
    s->qts = s->qs->qts;
    s->dev = NULL;
    qpci_device_foreach(s->qs->pcibus, 0x1b36, 0x00f0, save_fn, &s->dev);
    g_assert(s->dev);
    qpci_device_enable(s->dev);
    qpci_msix_enable(s->dev);
    s->regs = qpci_iomap(s->dev, 0, &size);
    g_assert_cmpuint(size, ==, 0x1000);
    s->window = qpci_iomap(s->dev, 2, &size);
    g_assert_cmpuint(size, ==, WINDOW_SIZE);
    s->window_addr = s->window.addr;
}

static void side_start(Side *s, const char *sock, bool server,
                       const char *ram, const char *name, const char *extra)
{
    side_start_args(s, sock, server, ram, name, extra, NULL);
}

static void side_stop(Side *s)
{
    g_free(s->dev);
    qtest_shutdown(s->qs);
    s->qs = NULL;
}

static uint32_t reg_read(Side *s, uint64_t reg)
{
    return qpci_io_readl(s->dev, s->regs, reg);
}

static void reg_write(Side *s, uint64_t reg, uint32_t val)
{
    qpci_io_writel(s->dev, s->regs, reg, val);
}

static uint64_t mx_stat(Side *s, const char *prop)
{
    QDict *rsp = qtest_qmp(s->qts, "{'execute': 'qom-get', 'arguments':"
                           " {'path': '/machine/peripheral/mx',"
                           " 'property': %s}}", prop);
    uint64_t val;

    g_assert(qdict_haskey(rsp, "return"));
    val = qdict_get_int(rsp, "return");
    qobject_unref(rsp);
    return val;
}

/* Wait for the importer's forward-reason property to read @reason. */
static void wait_forward_reason(Side *s, const char *reason)
{
    int64_t deadline = g_get_monotonic_time() + LINK_WAIT_MS * 1000;

    for (;;) {
        QDict *rsp = qtest_qmp(s->qts, "{'execute': 'qom-get', 'arguments':"
                               " {'path': '/machine/peripheral/mx',"
                               " 'property': 'forward-reason'}}");
        bool match;

        g_assert(qdict_haskey(rsp, "return"));
        match = g_str_equal(qdict_get_str(rsp, "return"), reason);
        qobject_unref(rsp);
        if (match) {
            return;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
}

static bool link_up(Side *s)
{
    return reg_read(s, MX_REG_LINK) & MX_LINK_UP;
}

static void wait_link(Side *a, Side *b, bool up)
{
    int64_t deadline = g_get_monotonic_time() + LINK_WAIT_MS * 1000;

    while (link_up(a) != up || (b && link_up(b) != up)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
}

/* Wait until some bit of @mask is set in register @reg. */
static void wait_reg_set(Side *s, uint64_t reg, uint32_t mask)
{
    int64_t deadline = g_get_monotonic_time() + LINK_WAIT_MS * 1000;

    while (!(reg_read(s, reg) & mask)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
    }
}

/* Wait for the proactive zero-copy mapping to cover at least @bytes. */
static void wait_mapped(Side *s, uint64_t bytes)
{
    int64_t deadline = g_get_monotonic_time() + LINK_WAIT_MS * 1000;

    while (mx_stat(s, "mapped-bytes") < bytes) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
}

static void start_pair(Side *a, Side *b, const char *ram_a,
                       const char *extra_a, const char *ram_b,
                       const char *extra_b)
{
    g_autofree char *sock = sock_path("pair");

    side_start(a, sock, true, ram_a, "side-a", extra_a);
    side_start(b, sock, false, ram_b, "side-b", extra_b);
    wait_link(a, b, true);
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
    size_t i;

    for (i = 0; i < len; i++) {
        buf[i] = (uint8_t)(i * 7 + seed + (i >> 8));
    }
}

/* A's shared RAM through B's window and back: no messages once mapped. */
static void test_zero_copy(void)
{
    Side a, b;
    const size_t len = 64 * 1024;
    g_autofree uint8_t *src = g_malloc(len);
    g_autofree uint8_t *dst = g_malloc(len);
    uint64_t reads, writes;
    int i;

    /*
     * pc hides parts of RAM below 1 MiB behind ROM and VGA, and a RAM
     * descriptor exposes all of it: zero-copy needs trust-peer here.
     */
    start_pair(&a, &b, "memfd", "export=0+128M:rw,trust-peer=on", "memfd",
               "export=0+128M:rw,trust-peer=on");
    g_assert_cmphex(reg_read(&b, MX_REG_ID), ==, MXP_MAGIC);
    /* "side-a" as the peer name, NUL padded */
    g_assert_cmphex(reg_read(&b, MX_REG_PEER_NAME), ==, 0x65646973);
    g_assert_cmphex(reg_read(&b, MX_REG_PEER_NAME + 4), ==, 0x612d);
    g_assert_cmphex(reg_read(&b, MX_REG_PEER_NAME + 60), ==, 0);
    wait_mapped(&b, 32 * 1024 * 1024);

    /* A writes its own RAM, B reads it through the window. */
    fill(src, len, 1);
    qtest_memwrite(a.qts, 0x1000000, src, len);
    qpci_memread(b.dev, b.window, 0x1000000, dst, len);
    g_assert(memcmp(src, dst, len) == 0);

    /* B writes through the window, A sees it in its RAM. */
    fill(src, len, 2);
    qpci_memwrite(b.dev, b.window, 0x1100000, src, len);
    qtest_memread(a.qts, 0x1100000, dst, len);
    g_assert(memcmp(src, dst, len) == 0);

    /* And the reverse direction. */
    fill(src, len, 3);
    qtest_memwrite(b.qts, 0x1200000, src, len);
    qpci_memread(a.dev, a.window, 0x1200000, dst, len);
    g_assert(memcmp(src, dst, len) == 0);

    /* Zero-copy: many more accesses, not a single message. */
    reads = mx_stat(&b, "forwarded-reads");
    writes = mx_stat(&b, "forwarded-writes");
    for (i = 0; i < 1000; i++) {
        qpci_io_writel(b.dev, b.window, 0x1300000 + i * 4, i);
        g_assert_cmpuint(qpci_io_readl(b.dev, b.window, 0x1300000 + i * 4),
                         ==, i);
    }
    g_assert_cmpuint(qtest_readl(a.qts, 0x1300000 + 999 * 4), ==, 999);
    g_assert_cmpuint(mx_stat(&b, "forwarded-reads"), ==, reads);
    g_assert_cmpuint(mx_stat(&b, "forwarded-writes"), ==, writes);
    g_assert_cmpuint(mx_stat(&a, "served-reads"), ==, 0);

    /* Mappings come and go with the window base, data stays right. */
    for (i = 0; i < 4; i++) {
        reg_write(&b, MX_REG_WINDOW_BASE_LO, (i & 1) ? 0x1000 : 0);
        g_assert_cmpuint(qpci_io_readl(b.dev, b.window,
                                       0x1300000 + 999 * 4 -
                                       ((i & 1) ? 0x1000 : 0)), ==, 999);
    }

    /* The exporter dies under B's mappings: B drops them and lives on. */
    qtest_kill_qemu(a.qts);
    side_stop(&a);
    wait_link(&b, NULL, false);
    g_assert_cmpuint(mx_stat(&b, "mapped-bytes"), ==, 0);
    g_assert_cmphex(qpci_io_readl(b.dev, b.window, 0x1300000), ==,
                    0xffffffff);
    side_stop(&b);
}

/* Private RAM and MMIO are reached by forwarding, for every access size. */
static void test_forwarded(void)
{
    Side a, b;
    uint64_t before;

    start_pair(&a, &b, "private", "export=0+128M:rw;0xe0000000+256M:ro",
               "private", NULL);

    before = mx_stat(&b, "forwarded-writes");
    qpci_io_writeb(b.dev, b.window, 0x2000000, 0x5a);
    qpci_io_writew(b.dev, b.window, 0x2000002, 0xbeef);
    qpci_io_writel(b.dev, b.window, 0x2000004, 0xdeadbeef);
    qpci_io_writeq(b.dev, b.window, 0x2000008, 0x0123456789abcdefULL);
    g_assert_cmpuint(mx_stat(&b, "forwarded-writes"), ==, before + 4);
    g_assert_cmphex(qtest_readb(a.qts, 0x2000000), ==, 0x5a);
    g_assert_cmphex(qtest_readw(a.qts, 0x2000002), ==, 0xbeef);
    g_assert_cmphex(qtest_readl(a.qts, 0x2000004), ==, 0xdeadbeef);
    g_assert_cmphex(qtest_readq(a.qts, 0x2000008), ==, 0x0123456789abcdefULL);

    qtest_writeq(a.qts, 0x2000010, 0xfedcba9876543210ULL);
    g_assert_cmphex(qpci_io_readb(b.dev, b.window, 0x2000010), ==, 0x10);
    g_assert_cmphex(qpci_io_readw(b.dev, b.window, 0x2000010), ==, 0x3210);
    g_assert_cmphex(qpci_io_readl(b.dev, b.window, 0x2000010), ==,
                    0x76543210);
    g_assert_cmphex(qpci_io_readq(b.dev, b.window, 0x2000010), ==,
                    0xfedcba9876543210ULL);
    g_assert_cmpuint(mx_stat(&b, "mapped-bytes"), ==, 0);
    /* A said why it does not share its RAM. */
    wait_forward_reason(&b, "its RAM is not backed by a shareable file");

    /* MMIO: A's own register block, read through B's window. */
    reg_write(&b, MX_REG_WINDOW_BASE_HI, a.regs.addr >> 32);
    reg_write(&b, MX_REG_WINDOW_BASE_LO, (uint32_t)a.regs.addr & ~0xfffU);
    g_assert_cmphex(qpci_io_readl(b.dev, b.window, a.regs.addr & 0xfff), ==,
                    MXP_MAGIC);
    g_assert_cmphex(qpci_io_readl(b.dev, b.window,
                                  (a.regs.addr & 0xfff) + MX_REG_LINK), ==,
                    MX_LINK_UP);

    side_stop(&b);
    side_stop(&a);
}

/* Outside the export: all-ones, dropped writes, counted, memory intact. */
static void test_policy(void)
{
    Side a, b;
    uint64_t refused_a, refused_b;

    start_pair(&a, &b, "memfd", "export=0x1000000+1M:rw;0x2000000+4K:ro",
               "memfd", NULL);
    qtest_writel(a.qts, 0x3000000, 0x11111111);
    qtest_writel(a.qts, 0x2000000, 0x22222222);
    refused_a = mx_stat(&a, "refused-accesses");
    refused_b = mx_stat(&b, "refused-accesses");

    g_assert_cmphex(qpci_io_readl(b.dev, b.window, 0x3000000), ==,
                    0xffffffff);
    qpci_io_writel(b.dev, b.window, 0x3000000, 0x33333333);
    qpci_io_writel(b.dev, b.window, 0x2000000, 0x44444444);
    /* The last byte of an export plus one outside it. */
    g_assert_cmphex(qpci_io_readw(b.dev, b.window, 0x10fffff), ==, 0xffff);

    g_assert_cmphex(qtest_readl(a.qts, 0x3000000), ==, 0x11111111);
    g_assert_cmphex(qtest_readl(a.qts, 0x2000000), ==, 0x22222222);
    g_assert_cmphex(qpci_io_readl(b.dev, b.window, 0x2000000), ==,
                    0x22222222);
    g_assert_cmpuint(mx_stat(&a, "refused-accesses"), >=, refused_a + 4);
    g_assert_cmpuint(mx_stat(&b, "refused-accesses"), >=, refused_b + 3);

    /* Inside the read-write export everything works. */
    qpci_io_writel(b.dev, b.window, 0x1000100, 0x55555555);
    g_assert_cmphex(qtest_readl(a.qts, 0x1000100), ==, 0x55555555);

    side_stop(&b);
    side_stop(&a);
}

/* Moving the window base moves what offset 0 reaches. */
static void test_window_base(void)
{
    Side a, b;

    start_pair(&a, &b, "memfd", "export=0+128M:rw", "memfd", NULL);
    qtest_writel(a.qts, 0x0, 0xaaaa0000);
    qtest_writel(a.qts, 0x4000000, 0xbbbb0000);
    g_assert_cmphex(qpci_io_readl(b.dev, b.window, 0), ==, 0xaaaa0000);

    reg_write(&b, MX_REG_WINDOW_BASE_LO, 0x4000000);
    g_assert_cmphex(reg_read(&b, MX_REG_WINDOW_BASE_LO), ==, 0x4000000);
    g_assert_cmphex(qpci_io_readl(b.dev, b.window, 0), ==, 0xbbbb0000);
    qpci_io_writel(b.dev, b.window, 4, 0xcccc0000);
    g_assert_cmphex(qtest_readl(a.qts, 0x4000004), ==, 0xcccc0000);

    /* Past the end of A's export (and RAM): all-ones. */
    reg_write(&b, MX_REG_WINDOW_BASE_LO, 0x8000000 - 0x1000);
    g_assert_cmphex(qpci_io_readl(b.dev, b.window, 0x1000), ==, 0xffffffff);

    side_stop(&b);
    side_stop(&a);
}

static void send_doorbell(Side *s, unsigned vector, const char *payload)
{
    size_t len = strlen(payload), i;

    for (i = 0; i < len; i++) {
        qpci_io_writeb(s->dev, s->regs, MX_REG_DB_TX_DATA + i, payload[i]);
    }
    reg_write(s, MX_REG_DB_TX_LEN, len);
    reg_write(s, MX_REG_DB_TX_VECTOR, vector);
}

static void wait_rx(Side *s, uint32_t count)
{
    int64_t deadline = g_get_monotonic_time() + LINK_WAIT_MS * 1000;

    while (reg_read(s, MX_REG_DB_RX_COUNT) < count) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
    }
}

static void expect_doorbell(Side *s, unsigned vector, const char *payload)
{
    size_t len = strlen(payload), i;
    uint32_t head = reg_read(s, MX_REG_DB_RX_HEAD);

    g_assert_cmpuint(head & 0xffff, ==, vector);
    g_assert_cmpuint(head >> 16, ==, len);
    for (i = 0; i < len; i++) {
        g_assert_cmpint(qpci_io_readb(s->dev, s->regs, MX_REG_DB_RX_DATA + i),
                        ==, payload[i]);
    }
    reg_write(s, MX_REG_DB_RX_POP, 1);
}

static bool uses_ring(Side *s)
{
    return reg_read(s, MX_REG_FEATURES) & MXP_FEAT_DB_RING;
}

/*
 * @extra_b: B's properties besides queue-depth; @ring: whether the two
 * should agree on doorbell rings (else DOORBELL messages on the socket).
 */
static void run_doorbell(const char *extra_b, bool ring)
{
    g_autofree char *props_b = g_strdup_printf("queue-depth=4%s%s",
                                               extra_b ? "," : "",
                                               extra_b ? extra_b : "");
    Side a, b;
    int i;

    start_pair(&a, &b, "memfd", "queue-depth=4", "memfd", props_b);
    g_assert_cmpint(uses_ring(&a), ==, ring);
    g_assert_cmpint(uses_ring(&b), ==, ring);
    g_assert_cmpuint(reg_read(&b, MX_REG_DB_TX_CREDITS), ==, 4);

    /* B -> A with payload; MSI-X vectors are masked: pending bit set. */
    g_assert(!qpci_msix_pending(a.dev, 1 + 2));
    send_doorbell(&b, 2, "hello from b");
    g_assert_cmpuint(reg_read(&b, MX_REG_DB_TX_STATUS), ==, MX_TX_OK);
    wait_rx(&a, 1);
    g_assert_cmphex(reg_read(&a, MX_REG_DB_RX_PENDING_LO), ==, 1 << 2);
    g_assert(qpci_msix_pending(a.dev, 1 + 2));
    expect_doorbell(&a, 2, "hello from b");
    g_assert_cmpuint(reg_read(&a, MX_REG_DB_RX_COUNT), ==, 0);

    /* A -> B */
    send_doorbell(&a, 0, "and back");
    wait_rx(&b, 1);
    g_assert(qpci_msix_pending(b.dev, 1));
    expect_doorbell(&b, 0, "and back");

    /* Fill A's queue: the fifth doorbell is refused as busy, not lost. */
    for (i = 0; i < 4; i++) {
        g_autofree char *p = g_strdup_printf("msg %d", i);

        /* The credit for the earlier pop travels back to B. */
        wait_reg_set(&b, MX_REG_DB_TX_CREDITS, ~0U);
        send_doorbell(&b, 1, p);
        g_assert_cmpuint(reg_read(&b, MX_REG_DB_TX_STATUS), ==, MX_TX_OK);
    }
    wait_rx(&a, 4);
    g_assert_cmpuint(reg_read(&b, MX_REG_DB_TX_CREDITS), ==, 0);
    send_doorbell(&b, 1, "msg 4");
    g_assert_cmpuint(reg_read(&b, MX_REG_DB_TX_STATUS), ==, MX_TX_BUSY);
    g_assert_cmpuint(mx_stat(&b, "doorbells-dropped"), ==, 1);
    g_assert_cmpuint(reg_read(&a, MX_REG_DB_RX_COUNT), ==, 4);

    /* A pops one: B is told it may send again. */
    expect_doorbell(&a, 1, "msg 0");
    wait_reg_set(&b, MX_REG_INTR_STATUS, MX_INTR_TX_READY);
    send_doorbell(&b, 1, "msg 4");
    g_assert_cmpuint(reg_read(&b, MX_REG_DB_TX_STATUS), ==, MX_TX_OK);
    wait_rx(&a, 4);
    for (i = 1; i <= 4; i++) {
        g_autofree char *p = g_strdup_printf("msg %d", i);

        expect_doorbell(&a, 1, p);
    }
    g_assert_cmpuint(mx_stat(&a, "doorbells-received"), ==, 6);

    side_stop(&b);
    side_stop(&a);
}

static void test_doorbell(void)
{
    run_doorbell(NULL, true);
}

/* A peer without doorbell rings (an older one) gets socket doorbells. */
static void test_doorbell_socket(void)
{
    run_doorbell("doorbell-ring=off", false);
}

/*
 * B sends as fast as it can, A drains only when B is refused: every
 * round ends BUSY, and A receives every accepted doorbell, in order.
 */
static void run_doorbell_flood(const char *extra_b, bool ring)
{
    enum { DEPTH = 16, TOTAL = 1000 };
    g_autofree char *props_b = g_strdup_printf("queue-depth=%d%s%s", DEPTH,
                                               extra_b ? "," : "",
                                               extra_b ? extra_b : "");
    g_autofree char *props_a = g_strdup_printf("queue-depth=%d", DEPTH);
    unsigned sent = 0, received = 0, busy = 0;
    Side a, b;

    start_pair(&a, &b, "memfd", props_a, "memfd", props_b);
    g_assert_cmpint(uses_ring(&b), ==, ring);
    while (received < TOTAL) {
        unsigned round = 0;

        /* Fill A's queue until B is told BUSY. */
        while (sent < TOTAL) {
            g_autofree char *p = g_strdup_printf("seq %u", sent);

            send_doorbell(&b, sent % 4, p);
            if (reg_read(&b, MX_REG_DB_TX_STATUS) == MX_TX_BUSY) {
                busy++;
                break;
            }
            g_assert_cmpuint(reg_read(&b, MX_REG_DB_TX_STATUS), ==,
                             MX_TX_OK);
            sent++;
            round++;
        }
        g_assert_cmpuint(round, <=, DEPTH);
        wait_rx(&a, sent - received);
        while (received < sent) {
            g_autofree char *p = g_strdup_printf("seq %u", received);

            expect_doorbell(&a, received % 4, p);
            received++;
        }
        if (sent < TOTAL) {
            /* B was refused: it hears that it may send again. */
            wait_reg_set(&b, MX_REG_INTR_STATUS, MX_INTR_TX_READY);
            reg_write(&b, MX_REG_INTR_STATUS, MX_INTR_TX_READY);
            wait_reg_set(&b, MX_REG_DB_TX_CREDITS, ~0U);
        }
    }
    g_test_message("%u doorbells, %u refused as busy", sent, busy);
    g_assert_cmpuint(busy, >=, TOTAL / DEPTH - 1);
    g_assert_cmpuint(mx_stat(&b, "doorbells-sent"), ==, TOTAL);
    g_assert_cmpuint(mx_stat(&b, "doorbells-dropped"), ==, busy);
    g_assert_cmpuint(mx_stat(&a, "doorbells-received"), ==, TOTAL);
    g_assert_cmpuint(reg_read(&a, MX_REG_DB_RX_COUNT), ==, 0);
    g_assert_cmpuint(mx_stat(&a, "link-ups"), ==, 1);
    g_assert_cmpuint(mx_stat(&b, "link-ups"), ==, 1);

    side_stop(&b);
    side_stop(&a);
}

static void test_doorbell_flood(void)
{
    run_doorbell_flood(NULL, true);
}

static void test_doorbell_flood_socket(void)
{
    run_doorbell_flood("doorbell-ring=off", false);
}

/* The peer dies: accesses complete at once, the link comes back later. */
static void test_peer_restart(void)
{
    Side a, b;
    g_autofree char *sock = sock_path("restart");
    uint32_t epoch;
    int64_t t0;

    side_start(&a, sock, true, "private", "side-a", "export=0+128M:rw");
    side_start(&b, sock, false, "private", "side-b",
               "export=0+128M:rw,timeout=500");
    wait_link(&a, &b, true);
    qtest_writel(b.qts, 0x100000, 0x12345678);
    g_assert_cmphex(qpci_io_readl(a.dev, a.window, 0x100000), ==, 0x12345678);
    epoch = reg_read(&a, MX_REG_LINK_EPOCH);
    reg_write(&a, MX_REG_INTR_STATUS, MX_INTR_LINK);
    reg_write(&a, MX_REG_INTR_MASK, MX_INTR_LINK);
    g_assert(!qpci_msix_pending(a.dev, 0));

    qtest_kill_qemu(b.qts);
    side_stop(&b);

    t0 = g_get_monotonic_time();
    g_assert_cmphex(qpci_io_readl(a.dev, a.window, 0x100000), ==, 0xffffffff);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 2 * 1000 * 1000);
    wait_link(&a, NULL, false);
    g_assert_cmpuint(reg_read(&a, MX_REG_LINK_EPOCH), >, epoch);
    /* The link change is signalled on (masked) MSI-X vector 0. */
    wait_reg_set(&a, MX_REG_INTR_STATUS, MX_INTR_LINK);
    g_assert(qpci_msix_pending(a.dev, 0));

    side_start(&b, sock, false, "private", "side-b", "export=0+128M:rw");
    wait_link(&a, &b, true);
    qtest_writel(b.qts, 0x100000, 0x87654321);
    g_assert_cmphex(qpci_io_readl(a.dev, a.window, 0x100000), ==, 0x87654321);
    g_assert_cmpuint(mx_stat(&a, "link-ups"), ==, 2);

    side_stop(&b);
    side_stop(&a);
}

/*
 * A's RAM handed to B zero-copy leaves A's memory map (a BAR is turned
 * off): B's mapping is gone before A's config write completes, and B's
 * accesses are forwarded from then on.
 */
static void test_invalidate(void)
{
    g_autofree char *sock = sock_path("invalidate");
    const size_t len = 4096;
    g_autofree uint8_t *src = g_malloc(len);
    g_autofree uint8_t *dst = g_malloc(len);
    QPCIDevice *shm = NULL;
    QPCIBar shm_bar;
    uint64_t size, reads;
    Side a, b;

    side_start_args(&a, sock, true, "memfd", "side-a",
                    "export=0xe0000000+512M:rw",
                    "-object memory-backend-memfd,id=shm,size=1M,share=on "
                    "-device ivshmem-plain,memdev=shm");
    side_start(&b, sock, false, "memfd", "side-b", NULL);
    wait_link(&a, &b, true);

    qpci_device_foreach(a.qs->pcibus, 0x1af4, 0x1110, save_fn, &shm);
    g_assert(shm);
    qpci_device_enable(shm);
    shm_bar = qpci_iomap(shm, 2, &size);
    g_assert_cmpuint(size, ==, 1024 * 1024);

    reg_write(&b, MX_REG_WINDOW_BASE_HI, shm_bar.addr >> 32);
    reg_write(&b, MX_REG_WINDOW_BASE_LO, (uint32_t)shm_bar.addr);
    wait_mapped(&b, size);

    fill(src, len, 4);
    qtest_memwrite(a.qts, shm_bar.addr, src, len);
    reads = mx_stat(&b, "forwarded-reads");
    qpci_memread(b.dev, b.window, 0, dst, len);
    g_assert(memcmp(src, dst, len) == 0);
    g_assert_cmpuint(mx_stat(&b, "forwarded-reads"), ==, reads);

    /* Memory decoding off: the BAR's RAM leaves A's map. */
    qpci_config_writew(shm, PCI_COMMAND, 0);
    g_assert_cmpuint(mx_stat(&a, "invalidations"), ==, 1);
    g_assert_cmpuint(mx_stat(&b, "mapped-bytes"), ==, 0);
    g_assert_cmphex(qpci_io_readl(b.dev, b.window, 0), ==, 0xffffffff);

    /* Back on: still correct, now through forwarding. */
    qpci_config_writew(shm, PCI_COMMAND, PCI_COMMAND_MEMORY);
    reads = mx_stat(&b, "forwarded-reads");
    qpci_memread(b.dev, b.window, 0, dst, 64);
    g_assert(memcmp(src, dst, 64) == 0);
    g_assert_cmpuint(mx_stat(&b, "forwarded-reads"), >, reads);

    g_free(shm);
    side_stop(&b);
    side_stop(&a);
}

/* True once every thread of @pid is in the stopped state. */
static bool all_threads_stopped(pid_t pid)
{
    g_autofree char *dir = g_strdup_printf("/proc/%d/task", pid);
    GDir *tasks = g_dir_open(dir, 0, NULL);
    const char *tid;
    bool stopped = true;

    g_assert(tasks);
    while (stopped && (tid = g_dir_read_name(tasks))) {
        g_autofree char *path = g_strdup_printf("%s/%s/stat", dir, tid);
        g_autofree char *stat = NULL;
        char *end;

        if (!g_file_get_contents(path, &stat, NULL, NULL)) {
            continue;           /* the thread just exited */
        }
        end = strrchr(stat, ')');
        stopped = end && end[1] == ' ' && end[2] == 'T';
    }
    g_dir_close(tasks);
    return stopped;
}

/* Stop a QEMU and wait until all of it has stopped (SIGSTOP is async). */
static void freeze(QTestState *qts)
{
    int64_t deadline = g_get_monotonic_time() + LINK_WAIT_MS * 1000;

    kill(qtest_pid(qts), SIGSTOP);
    while (!all_threads_stopped(qtest_pid(qts))) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
    }
}

/*
 * The peer hangs (SIGSTOP): an access completes with all-ones within the
 * timeout and takes the link down; once the peer runs again the link
 * comes back by itself.
 */
static void test_peer_frozen(void)
{
    g_autofree char *sock = sock_path("frozen");
    Side a, b;
    int64_t t0, took;

    side_start(&a, sock, true, "private", "side-a",
               "export=0+128M:rw,timeout=300,heartbeat=5000");
    side_start(&b, sock, false, "private", "side-b", "export=0+128M:rw");
    wait_link(&a, &b, true);
    qtest_writel(b.qts, 0x200000, 0xcafef00d);
    g_assert_cmphex(qpci_io_readl(a.dev, a.window, 0x200000), ==, 0xcafef00d);

    freeze(b.qts);
    t0 = g_get_monotonic_time();
    g_assert_cmphex(qpci_io_readl(a.dev, a.window, 0x200000), ==, 0xffffffff);
    took = g_get_monotonic_time() - t0;
    g_assert_cmpint(took, >=, 250 * 1000);
    g_assert_cmpint(took, <, 2 * 1000 * 1000);
    g_assert_cmpuint(mx_stat(&a, "timeouts"), ==, 1);
    g_assert(!link_up(&a));

    kill(qtest_pid(b.qts), SIGCONT);
    wait_link(&a, &b, true);
    g_assert_cmphex(qpci_io_readl(a.dev, a.window, 0x200000), ==, 0xcafef00d);

    side_stop(&b);
    side_stop(&a);
}

/* A peer that goes silent is noticed by the heartbeat alone. */
static void test_heartbeat(void)
{
    g_autofree char *sock = sock_path("heartbeat");
    Side a, b;

    side_start(&a, sock, true, "private", "side-a", "heartbeat=100");
    side_start(&b, sock, false, "private", "side-b", "heartbeat=100");
    wait_link(&a, &b, true);

    freeze(b.qts);
    wait_link(&a, NULL, false);
    kill(qtest_pid(b.qts), SIGCONT);
    wait_link(&a, &b, true);
    g_assert_cmpuint(mx_stat(&a, "link-ups"), ==, 2);

    side_stop(&b);
    side_stop(&a);
}

/* A forwarded access that would leave through a window again is refused. */
static void test_recursion(void)
{
    Side a, b;
    uint64_t refused;

    start_pair(&a, &b, "private", "export=0xe0000000+512M:rw", "private",
               "export=0+128M:rw");
    /* B's window onto A's own window, which leads back to B. */
    reg_write(&b, MX_REG_WINDOW_BASE_HI, a.window_addr >> 32);
    reg_write(&b, MX_REG_WINDOW_BASE_LO, (uint32_t)a.window_addr);
    qtest_writel(b.qts, 0x1000, 0x600dcafe);
    g_assert_cmphex(qpci_io_readl(a.dev, a.window, 0x1000), ==, 0x600dcafe);

    refused = mx_stat(&a, "refused-accesses");
    g_assert_cmphex(qpci_io_readl(b.dev, b.window, 0x1000), ==, 0xffffffff);
    qpci_io_writel(b.dev, b.window, 0x1000, 0xbad);
    g_assert_cmpuint(mx_stat(&a, "refused-accesses"), ==, refused + 2);
    g_assert_cmphex(qtest_readl(b.qts, 0x1000), ==, 0x600dcafe);
    g_assert(link_up(&a) && link_up(&b));

    side_stop(&b);
    side_stop(&a);
}

/*
 * A file the peer could shrink under us is not mapped (that would be a
 * SIGBUS waiting to happen): the importer falls back to forwarding.
 */
static void test_unsealed_fd(void)
{
    g_autofree char *sock = sock_path("unsealed");
    g_autofree char *file = g_strdup_printf("%s/ram-a", tmpdir);
    g_autofree char *args = g_strdup_printf(
        "-object memory-backend-file,id=ram2,size=1M,share=on,mem-path=%s "
        "-device ivshmem-plain,memdev=ram2", file);
    QPCIDevice *shm = NULL;
    QPCIBar bar;
    uint64_t size;
    Side a, b;

    /* A trusts B and hands out the file; B does not trust A. */
    side_start_args(&a, sock, true, "memfd", "side-a",
                    "export=0xe0000000+512M:rw,trust-peer=on", args);
    side_start(&b, sock, false, "memfd", "side-b", NULL);
    wait_link(&a, &b, true);
    qpci_device_foreach(a.qs->pcibus, 0x1af4, 0x1110, save_fn, &shm);
    g_assert(shm);
    qpci_device_enable(shm);
    bar = qpci_iomap(shm, 2, &size);

    qtest_writel(a.qts, bar.addr + 0x100, 0x5eed5eed);
    reg_write(&b, MX_REG_WINDOW_BASE_HI, bar.addr >> 32);
    reg_write(&b, MX_REG_WINDOW_BASE_LO, (uint32_t)bar.addr);
    g_assert_cmphex(qpci_io_readl(b.dev, b.window, 0x100), ==, 0x5eed5eed);
    g_assert_cmpuint(mx_stat(&b, "mappings-made"), ==, 0);
    g_assert_cmpuint(mx_stat(&b, "forwarded-reads"), >=, 1);

    g_free(shm);
    side_stop(&b);
    side_stop(&a);
    unlink(file);
}

static void test_migration_blocked(void)
{
    Side a, b;
    QDict *rsp;

    start_pair(&a, &b, "memfd", NULL, "memfd", NULL);
    rsp = qtest_qmp(a.qts, "{'execute': 'migrate', 'arguments':"
                    " {'uri': 'exec:cat > /dev/null'}}");
    g_assert(qdict_haskey(rsp, "error"));
    g_assert(strstr(qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"),
                    "memexpose"));
    qobject_unref(rsp);
    side_stop(&b);
    side_stop(&a);
}

/* Hot-plug next to a live peer, then unplug: the survivor keeps going. */
static void test_hotplug(void)
{
    g_autofree char *sock = sock_path("hotplug");
    QTestState *qts;
    Side b;

    qts = qtest_initf("-machine pc -chardev socket,id=mxh,path=%s,"
                      "server=on,wait=off", sock);
    side_start(&b, sock, false, "private", "side-b", NULL);
    qtest_qmp_device_add(qts, "memexpose-pci", "mxh",
                         "{'addr': '0x06', 'chardev': 'mxh',"
                         " 'window-size': 1048576}");
    wait_link(&b, NULL, true);
    qpci_unplug_acpi_device_test(qts, "mxh", 0x06);
    wait_link(&b, NULL, false);
    g_assert_cmphex(reg_read(&b, MX_REG_ID), ==, MXP_MAGIC);
    qtest_quit(qts);
    side_stop(&b);
}

typedef struct Hammer {
    Side *self;
    Side *peer;
    uint64_t base;
    int count;
    int errors;
} Hammer;

static gpointer hammer(gpointer opaque)
{
    Hammer *h = opaque;
    int i;

    for (i = 0; i < h->count; i++) {
        uint64_t off = h->base + (i % 1024) * 8;
        uint64_t val = ((uint64_t)i << 32) | (uint32_t)~i;

        qpci_io_writeq(h->self->dev, h->self->window, off, val);
        if (qpci_io_readq(h->self->dev, h->self->window, off) != val) {
            h->errors++;
        }
    }
    return NULL;
}

/* Both sides access each other's forwarded windows at once. */
static void test_concurrent(void)
{
    Side a, b;
    Hammer ha, hb;
    GThread *ta, *tb;

    start_pair(&a, &b, "private", "export=0+128M:rw", "private",
               "export=0+128M:rw");
    ha = (Hammer) { .self = &a, .peer = &b, .base = 0x3000000,
                    .count = 2000 };
    hb = (Hammer) { .self = &b, .peer = &a, .base = 0x3100000,
                    .count = 2000 };
    ta = g_thread_new("hammer-a", hammer, &ha);
    tb = g_thread_new("hammer-b", hammer, &hb);
    g_thread_join(ta);
    g_thread_join(tb);
    g_assert_cmpint(ha.errors, ==, 0);
    g_assert_cmpint(hb.errors, ==, 0);
    g_assert_cmpuint(mx_stat(&a, "timeouts"), ==, 0);
    g_assert_cmpuint(mx_stat(&b, "timeouts"), ==, 0);
    g_assert_cmpuint(mx_stat(&b, "served-writes"), >=, 2000);
    g_assert_cmpuint(mx_stat(&a, "served-writes"), >=, 2000);
    /* The last values landed in the peers' RAM. */
    g_assert_cmphex(qtest_readq(b.qts, 0x3000000 + (1999 % 1024) * 8), ==,
                    ((uint64_t)1999 << 32) | (uint32_t)~1999);
    g_assert_cmphex(qtest_readq(a.qts, 0x3100000 + (1999 % 1024) * 8), ==,
                    ((uint64_t)1999 << 32) | (uint32_t)~1999);

    side_stop(&b);
    side_stop(&a);
}

/* ---- the link never stalls ---- */

/* A two-party barrier for the storm's threads. */
typedef struct Barrier {
    GMutex lock;
    GCond cond;
    unsigned waiting;
    unsigned generation;
} Barrier;

static void barrier_wait(Barrier *b)
{
    unsigned gen;

    g_mutex_lock(&b->lock);
    gen = b->generation;
    if (++b->waiting == 2) {
        b->waiting = 0;
        b->generation++;
        g_cond_broadcast(&b->cond);
    } else {
        while (gen == b->generation) {
            g_cond_wait(&b->cond, &b->lock);
        }
    }
    g_mutex_unlock(&b->lock);
}

typedef struct StormSide {
    Side *self;
    QPCIDevice *shm;            /* our ivshmem-plain, exported to the peer */
    uint64_t peer_bar;          /* the peer's, seen through our window */
    uint32_t peer_marker;
    unsigned iterations;
    Barrier *barrier;
    unsigned zero_reads;        /* reads in the revocation window */
} StormSide;

static void set_window_base(Side *s, uint64_t base)
{
    reg_write(s, MX_REG_WINDOW_BASE_HI, base >> 32);
    reg_write(s, MX_REG_WINDOW_BASE_LO, (uint32_t)base);
}

/*
 * Each round both sides take their shared RAM out of their memory maps
 * at the same moment (both wait for the other's INVALIDATE_ACK), check
 * that the peer's removed RAM is out of reach, put it back and map it
 * again.
 */
static gpointer storm(gpointer opaque)
{
    StormSide *st = opaque;
    Side *s = st->self;
    unsigned i;

    for (i = 0; i < st->iterations; i++) {
        int64_t deadline;
        uint32_t v;

        barrier_wait(st->barrier);
        qpci_config_writew(st->shm, PCI_COMMAND, 0);
        barrier_wait(st->barrier);

        /* Never the removed RAM; zeros until the window is tidied. */
        deadline = g_get_monotonic_time() + LINK_WAIT_MS * 1000;
        while ((v = qpci_io_readl(s->dev, s->window, 0)) != 0xffffffff) {
            g_assert_cmphex(v, ==, 0);
            g_assert_cmpint(g_get_monotonic_time(), <, deadline);
            st->zero_reads++;
        }
        barrier_wait(st->barrier);

        qpci_config_writew(st->shm, PCI_COMMAND, PCI_COMMAND_MEMORY);
        barrier_wait(st->barrier);

        /* A new walk maps the RAM again. */
        set_window_base(s, st->peer_bar + 0x1000);
        set_window_base(s, st->peer_bar);
        wait_mapped(s, 1024 * 1024);
        g_assert_cmphex(qpci_io_readl(s->dev, s->window, 0), ==,
                        st->peer_marker);
    }
    return NULL;
}

static bool hogs_stop;

/* Keeps a CPU busy, so that both QEMUs' threads have to wait for one. */
static gpointer hog(gpointer opaque)
{
    while (!qatomic_read(&hogs_stop)) {
        /* spin */
    }
    return NULL;
}

static void storm_side_start(Side *s, StormSide *st, const char *sock,
                             bool server, const char *name)
{
    uint64_t size;
    QPCIBar bar;

    side_start_args(s, sock, server, "memfd", name,
                    "export=0xe0000000+512M:rw",
                    "-object memory-backend-memfd,id=shm,size=1M,share=on "
                    "-device ivshmem-plain,memdev=shm");
    st->self = s;
    st->shm = NULL;
    qpci_device_foreach(s->qs->pcibus, 0x1af4, 0x1110, save_fn, &st->shm);
    g_assert(st->shm);
    qpci_device_enable(st->shm);
    bar = qpci_iomap(st->shm, 2, &size);
    g_assert_cmpuint(size, ==, 1024 * 1024);
    st->peer_bar = bar.addr;    /* the same machine on both sides */
}

static void run_storm(unsigned hogs)
{
    g_autofree char *sock = sock_path("storm");
    const char *env = g_getenv("MEMEXPOSE_STORM_ITERATIONS");
    unsigned iterations = env ? atoi(env) : 10000;
    GThread *hog_threads[8];
    Barrier barrier = { 0 };
    StormSide sa, sb;
    GThread *ta, *tb;
    Side a, b;
    unsigned i;

    storm_side_start(&a, &sa, sock, true, "side-a");
    storm_side_start(&b, &sb, sock, false, "side-b");
    wait_link(&a, &b, true);
    sa.peer_marker = 0xb0b0b0b0;
    sb.peer_marker = 0xa0a0a0a0;
    qtest_writel(a.qts, sb.peer_bar, sb.peer_marker);
    qtest_writel(b.qts, sa.peer_bar, sa.peer_marker);
    sa.iterations = sb.iterations = iterations;
    sa.barrier = sb.barrier = &barrier;
    sa.zero_reads = sb.zero_reads = 0;
    set_window_base(&a, sa.peer_bar);
    set_window_base(&b, sb.peer_bar);
    wait_mapped(&a, 1024 * 1024);
    wait_mapped(&b, 1024 * 1024);

    qatomic_set(&hogs_stop, false);
    for (i = 0; i < hogs && i < ARRAY_SIZE(hog_threads); i++) {
        hog_threads[i] = g_thread_new("hog", hog, NULL);
    }
    ta = g_thread_new("storm-a", storm, &sa);
    tb = g_thread_new("storm-b", storm, &sb);
    g_thread_join(ta);
    g_thread_join(tb);
    qatomic_set(&hogs_stop, true);
    for (i = 0; i < hogs && i < ARRAY_SIZE(hog_threads); i++) {
        g_thread_join(hog_threads[i]);
    }

    g_test_message("%u rounds, %u hogs: invalidations %" PRIu64 "/%" PRIu64
                   ", reads of revoked pages %u/%u", iterations, hogs,
                   mx_stat(&a, "invalidations"), mx_stat(&b, "invalidations"),
                   sa.zero_reads, sb.zero_reads);
    g_assert_cmpuint(mx_stat(&a, "invalidations"), >=, iterations);
    g_assert_cmpuint(mx_stat(&b, "invalidations"), >=, iterations);
    g_assert_cmpuint(mx_stat(&a, "timeouts"), ==, 0);
    g_assert_cmpuint(mx_stat(&b, "timeouts"), ==, 0);
    g_assert_cmpuint(mx_stat(&a, "link-ups"), ==, 1);
    g_assert_cmpuint(mx_stat(&b, "link-ups"), ==, 1);

    g_free(sa.shm);
    g_free(sb.shm);
    side_stop(&b);
    side_stop(&a);
}

static void test_invalidate_storm(void)
{
    run_storm(0);
}

/* The same with every CPU kept busy by other threads. */
static void test_invalidate_storm_loaded(void)
{
    run_storm(g_get_num_processors());
}

/* ---- peers played by the test ---- */

/* A listening unix socket at @sock for one peer played by the test. */
static int listen_unix(const char *sock)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    pstrcpy(sun.sun_path, sizeof(sun.sun_path), sock);
    unlink(sock);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    g_assert_cmpint(listen(fd, 1), ==, 0);
    return fd;
}

/*
 * side_start_args() with QEMU's stderr going to @log, so that the
 * reasons it logs can be checked.  The side is named side-a as a server,
 * side-b as a client.
 */
static void side_start_logged(Side *s, const char *log, const char *sock,
                              bool server, const char *extra,
                              const char *args)
{
    int log_fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int saved_stderr = dup(STDERR_FILENO);

    g_assert_cmpint(log_fd, >=, 0);
    dup2(log_fd, STDERR_FILENO);
    side_start_args(s, sock, server, "memfd", server ? "side-a" : "side-b",
                    extra, args);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    close(log_fd);
}

/* Wait until QEMU has logged @text to @log. */
static void wait_log(const char *log, const char *text)
{
    int64_t deadline = g_get_monotonic_time() + LINK_WAIT_MS * 1000;

    for (;;) {
        g_autofree char *contents = NULL;

        g_assert(g_file_get_contents(log, &contents, NULL, NULL));
        if (strstr(contents, text)) {
            return;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
}

/* ---- a hostile exporter, played by the test ---- */

typedef enum HostileMode {
    HOSTILE_TINY_MAP,           /* every MAP_REPLY describes one byte */
    HOSTILE_PAGE_MAP,           /* ... one page: a walk without end */
    HOSTILE_SILENT_MAP,         /* MAP is never answered */
    HOSTILE_FD_MISALIGNED,      /* FD at an fd_offset inside its 64K page */
    HOSTILE_FD_READ_ONLY,       /* read-write grant, read-only descriptor */
} HostileMode;

/* A sealed memfd of @size bytes, reopened read-only if @read_only. */
static int hostile_memfd(size_t size, bool read_only)
{
    int fd = memfd_create("hostile-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    g_autofree char *path = NULL;
    int ro;

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, size), ==, 0);
    g_assert_cmpint(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), ==,
                    0);
    if (!read_only) {
        return fd;
    }
    path = g_strdup_printf("/proc/self/fd/%d", fd);
    ro = open(path, O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(ro, >=, 0);
    close(fd);
    return ro;
}

typedef struct Hostile {
    HostileMode mode;
    int listen_fd;
    unsigned maps;              /* MAP requests received */
    bool closed;                /* QEMU hung up */
} Hostile;

static bool read_full(int fd, uint8_t *buf, size_t len)
{
    while (len) {
        ssize_t n = read(fd, buf, len);

        if (n <= 0) {
            return false;
        }
        buf += n;
        len -= n;
    }
    return true;
}

/* One message, and the fd that came with it (or -1). */
static bool peer_recv(int fd, uint8_t *buf, MxpMsg *msg, int *rfd)
{
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { .iov_base = buf, .iov_len = MXP_HEADER_SIZE };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = control, .msg_controllen = sizeof(control),
    };
    struct cmsghdr *cmsg;
    MxpHeader hdr;

    *rfd = -1;
    if (recvmsg(fd, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC) != MXP_HEADER_SIZE) {
        return false;
    }
    for (cmsg = CMSG_FIRSTHDR(&mh); cmsg; cmsg = CMSG_NXTHDR(&mh, cmsg)) {
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
            memcpy(rfd, CMSG_DATA(cmsg), sizeof(int));
        }
    }
    g_assert_cmpint(mxp_decode_header(buf, MXP_HEADER_SIZE, &hdr), ==,
                    MXP_OK);
    if (!read_full(fd, buf + MXP_HEADER_SIZE, hdr.length)) {
        return false;
    }
    g_assert_cmpint(mxp_decode(buf, MXP_HEADER_SIZE + hdr.length,
                               *rfd >= 0, msg), ==, MXP_OK);
    return true;
}

/* One message, with @payload_fd attached unless it is -1. */
static void peer_send(int fd, const MxpMsg *msg, int payload_fd)
{
    uint8_t buf[MXP_MAX_MESSAGE];
    char control[CMSG_SPACE(sizeof(int))] = { 0 };
    int len = mxp_encode(msg, buf, sizeof(buf));
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    struct cmsghdr *cmsg;

    g_assert_cmpint(len, >, 0);
    if (payload_fd >= 0) {
        mh.msg_control = control;
        mh.msg_controllen = sizeof(control);
        cmsg = CMSG_FIRSTHDR(&mh);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &payload_fd, sizeof(int));
    }
    /* QEMU may already have hung up on us. */
    if (sendmsg(fd, &mh, MSG_NOSIGNAL) != len) {
        return;
    }
}

/* A message that must come without a descriptor. */
static bool hostile_recv(int fd, uint8_t *buf, MxpMsg *msg)
{
    int rfd;
    bool ok = peer_recv(fd, buf, msg, &rfd);

    g_assert_cmpint(rfd, ==, -1);
    return ok;
}

static gpointer hostile_peer(gpointer opaque)
{
    Hostile *h = opaque;
    uint8_t buf[MXP_MAX_MESSAGE];
    MxpMsg msg, hello = {
        .hdr = { .type = MXP_HELLO },
        .u.hello = {
            .magic = MXP_MAGIC, .version_major = MXP_VERSION_MAJOR,
            .features = MXP_FEAT_MAP | MXP_FEAT_BULK, .page_size = 4096,
            .role = MXP_ROLE_DEVICE, .vectors = 1, .queue_depth = 1,
            .max_data = MXP_MAX_DATA, .name = "hostile",
        },
    };
    int fd = accept(h->listen_fd, NULL, NULL);
    int ram = -1;

    g_assert_cmpint(fd, >=, 0);
    if (h->mode == HOSTILE_FD_MISALIGNED) {
        hello.u.hello.page_size = 64 * 1024;
    }
    if (h->mode == HOSTILE_FD_MISALIGNED || h->mode == HOSTILE_FD_READ_ONLY) {
        ram = hostile_memfd(WINDOW_SIZE + 64 * 1024,
                            h->mode == HOSTILE_FD_READ_ONLY);
    }
    g_assert(hostile_recv(fd, buf, &msg));
    g_assert_cmpuint(msg.hdr.type, ==, MXP_HELLO);
    peer_send(fd, &hello, -1);
    while (hostile_recv(fd, buf, &msg)) {
        MxpMsg reply = { .hdr = { .id = msg.hdr.id } };

        switch (msg.hdr.type) {
        case MXP_PING:
            reply.hdr.type = MXP_PONG;
            reply.u.ping = msg.u.ping;
            peer_send(fd, &reply, -1);
            break;
        case MXP_MAP:
            qatomic_inc(&h->maps);
            if (ram >= 0) {
                uint64_t page = hello.u.hello.page_size;

                reply.hdr.type = MXP_MAP_REPLY;
                reply.u.map_reply = (MxpMapReply) {
                    .kind = MXP_MAP_FD,
                    .perm = h->mode == HOSTILE_FD_READ_ONLY ?
                            MXP_PERM_ALL : MXP_PERM_READ,
                    .addr = msg.u.map.addr & ~(page - 1),
                    .length = WINDOW_SIZE,
                    .fd_offset = h->mode == HOSTILE_FD_MISALIGNED ? 4096 : 0,
                };
                peer_send(fd, &reply, ram);
            } else if (h->mode != HOSTILE_SILENT_MAP) {
                reply.hdr.type = MXP_MAP_REPLY;
                reply.u.map_reply = (MxpMapReply) {
                    .kind = MXP_MAP_FORWARD, .perm = MXP_PERM_READ,
                    .addr = msg.u.map.addr & ~4095ULL,
                    .length = h->mode == HOSTILE_TINY_MAP ? 1 : 4096,
                };
                peer_send(fd, &reply, -1);
            }
            break;
        default:
            break;
        }
    }
    close(fd);
    if (ram >= 0) {
        close(ram);
    }
    qatomic_set(&h->closed, true);
    return NULL;
}

/* How long QMP takes to answer query-status, in microseconds. */
static int64_t qmp_latency(QTestState *qts)
{
    int64_t t0 = g_get_monotonic_time();
    QDict *rsp = qtest_qmp(qts, "{'execute': 'query-status'}");

    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    return g_get_monotonic_time() - t0;
}

/*
 * The importer's main loop never waits for the exporter: QMP answers
 * within 100 ms the whole time, and the broken exporter loses the link
 * with a logged reason.
 */
static void run_hostile_exporter(HostileMode mode, int64_t within_ms,
                                 const char *reason)
{
    g_autofree char *sock = sock_path(mode == HOSTILE_TINY_MAP ? "tiny" :
                                      mode == HOSTILE_PAGE_MAP ? "page" :
                                      mode == HOSTILE_SILENT_MAP ? "silent" :
                                      "fd");
    g_autofree char *log = g_strdup_printf("%s/hostile.log", tmpdir);
    g_autofree char *text = NULL;
    Hostile h = { .mode = mode };
    int64_t deadline, worst = 0;
    GThread *peer;
    Side b;

    h.listen_fd = listen_unix(sock);
    peer = g_thread_new("hostile", hostile_peer, &h);

    side_start_logged(&b, log, sock, false, NULL, NULL);

    /* From the start: the walk begins as soon as the link is up. */
    deadline = g_get_monotonic_time() + within_ms * 1000;
    do {
        int64_t took = qmp_latency(b.qts);

        worst = MAX(worst, took);
        g_assert_cmpint(took, <, 100 * 1000);
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
    } while (!qatomic_read(&h.closed));
    g_thread_join(peer);
    g_test_message("%u MAPs before the link was dropped; QMP at worst %"
                   PRId64 " us", h.maps, worst);
    g_assert_cmpuint(h.maps, >=, 1);
    g_assert_cmpuint(mx_stat(&b, "link-ups"), >=, 1);
    g_assert(!link_up(&b));
    /* After the drop too. */
    g_assert_cmpint(qmp_latency(b.qts), <, 100 * 1000);

    side_stop(&b);
    close(h.listen_fd);
    g_assert(g_file_get_contents(log, &text, NULL, NULL));
    g_assert(strstr(text, reason));
}

static void test_hostile_tiny_map(void)
{
    run_hostile_exporter(HOSTILE_TINY_MAP, 5000,
                         "bad MAP_REPLY for 0x0: it covers less than a"
                         " page");
}

static void test_hostile_page_map(void)
{
    run_hostile_exporter(HOSTILE_PAGE_MAP, 5000,
                         "the mapping walk needs more than 1024 MAPs");
}

static void test_hostile_fd_misaligned(void)
{
    run_hostile_exporter(HOSTILE_FD_MISALIGNED, 5000,
                         "bad MAP_REPLY for 0x0: its fd_offset is not aligned"
                         " to whole pages");
}

/*
 * A read-write grant whose descriptor is open only for reading is not
 * mapped: forwarded, with the reason logged, and the link stays up.
 */
static void test_hostile_fd_read_only(void)
{
    g_autofree char *sock = sock_path("fd-ro");
    g_autofree char *log = g_strdup_printf("%s/fd-ro.log", tmpdir);
    Hostile h = { .mode = HOSTILE_FD_READ_ONLY };
    const char *reason = "a read-write grant with a descriptor not open for"
                         " writing; forwarding it";
    GThread *peer;
    Side b;

    h.listen_fd = listen_unix(sock);
    peer = g_thread_new("hostile", hostile_peer, &h);

    side_start_logged(&b, log, sock, false, NULL, NULL);
    wait_log(log, reason);
    g_assert(link_up(&b));
    g_assert_cmpuint(mx_stat(&b, "mapped-bytes"), ==, 0);
    g_assert_cmpuint(mx_stat(&b, "link-ups"), ==, 1);

    side_stop(&b);
    g_thread_join(peer);
    close(h.listen_fd);
}

static void test_hostile_silent_map(void)
{
    run_hostile_exporter(HOSTILE_SILENT_MAP,
                         MAP_TIMEOUT_MS + 5000,
                         "the peer did not answer MAP in time");
}

/* ---- a hostile doorbell-ring peer, played by the test ---- */

typedef enum RingMode {
    RING_UNSEALED,              /* DB_RING with a memfd that can shrink */
    RING_NOT_EVENTFD,           /* DB_EVENT with a pipe */
    RING_PRODUCER,              /* publishes more entries than slots */
    RING_CONSUMER,              /* frees entries that were never sent */
} RingMode;

typedef struct RingPeer {
    RingMode mode;
    int listen_fd;
    bool up;                    /* QEMU's ring and eventfd are ours */
    bool closed;                /* QEMU hung up */
} RingPeer;

#define RING_DEPTH      4



static int ring_memfd(bool sealed)
{
    int fd = memfd_create("hostile-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, 4096), ==, 0);
    if (sealed) {
        g_assert_cmpint(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW),
                        ==, 0);
    }
    return fd;
}

static gpointer ring_peer(gpointer opaque)
{
    RingPeer *h = opaque;
    uint8_t buf[MXP_MAX_MESSAGE];
    MxpMsg msg, hello = {
        .hdr = { .type = MXP_HELLO },
        .u.hello = {
            .magic = MXP_MAGIC, .version_major = MXP_VERSION_MAJOR,
            .features = MXP_FEAT_DB_RING, .page_size = 4096,
            .role = MXP_ROLE_DEVICE, .vectors = 1,
            .queue_depth = RING_DEPTH, .max_data = MXP_MAX_DATA,
            .name = "hostile",
        },
    };
    MxpMsg ring = { .hdr = { .type = MXP_DB_RING },
                    .u.ring_depth = RING_DEPTH };
    MxpMsg event = { .hdr = { .type = MXP_DB_EVENT } };
    int fd = accept(h->listen_fd, NULL, NULL);
    int own = ring_memfd(h->mode != RING_UNSEALED);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    uint8_t *own_map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED,
                            own, 0);
    uint8_t *qemu_map = NULL;
    int qemu_event = -1, rfd;
    uint32_t qemu_depth = 0;
    int pipe_fds[2];

    g_assert_cmpint(fd, >=, 0);
    g_assert(own_map != MAP_FAILED);
    g_assert_cmpint(pipe(pipe_fds), ==, 0);
    g_assert(peer_recv(fd, buf, &msg, &rfd));
    g_assert_cmpuint(msg.hdr.type, ==, MXP_HELLO);
    g_assert(msg.u.hello.features & MXP_FEAT_DB_RING);
    peer_send(fd, &hello, -1);
    peer_send(fd, &ring, own);
    peer_send(fd, &event, h->mode == RING_NOT_EVENTFD ? pipe_fds[1] : efd);
    if (h->mode == RING_CONSUMER) {
        /* Slots freed that QEMU never filled. */
        qatomic_set((uint32_t *)(own_map + MXP_DB_RING_CONSUMER), 100);
    }

    while (peer_recv(fd, buf, &msg, &rfd)) {
        MxpMsg reply = { .hdr = { .id = msg.hdr.id } };

        switch (msg.hdr.type) {
        case MXP_PING:
            reply.hdr.type = MXP_PONG;
            reply.u.ping = msg.u.ping;
            peer_send(fd, &reply, -1);
            break;
        case MXP_DB_RING:
            qemu_depth = msg.u.ring_depth;
            qemu_map = mmap(NULL, MXP_DB_RING_SIZE(msg.u.ring_depth),
                            PROT_READ | PROT_WRITE, MAP_SHARED, rfd, 0);
            g_assert(qemu_map != MAP_FAILED);
            close(rfd);
            break;
        case MXP_DB_EVENT:
            if (msg.u.event_vector == 0) {
                qemu_event = rfd;
            } else {
                close(rfd);
            }
            break;
        default:
            break;
        }
        if (qemu_map && qemu_event >= 0 && !h->up) {
            qatomic_set(&h->up, true);
            if (h->mode == RING_PRODUCER) {
                uint64_t one = 1;

                /* Entries the ring has no room for. */
                qatomic_set((uint32_t *)(qemu_map + MXP_DB_RING_PRODUCER),
                            qemu_depth + 3);
                g_assert_cmpint(write(qemu_event, &one, sizeof(one)), ==,
                                sizeof(one));
            }
        }
    }
    close(fd);
    close(own);
    close(efd);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    if (qemu_event >= 0) {
        close(qemu_event);
    }
    munmap(own_map, 4096);
    qatomic_set(&h->closed, true);
    return NULL;
}

/*
 * A peer that breaks the doorbell ring loses the link with a logged
 * reason; QEMU stays up and responsive.
 */
static void run_hostile_ring(RingMode mode, const char *reason)
{
    g_autofree char *sock = sock_path("ring");
    g_autofree char *log = g_strdup_printf("%s/ring.log", tmpdir);
    g_autofree char *text = NULL;
    RingPeer h = { .mode = mode };
    int64_t deadline = g_get_monotonic_time() + LINK_WAIT_MS * 1000;
    GThread *peer;
    Side b;

    h.listen_fd = listen_unix(sock);
    peer = g_thread_new("hostile-ring", ring_peer, &h);

    side_start_logged(&b, log, sock, false, NULL, NULL);

    if (mode == RING_CONSUMER) {
        /* The ring is checked when B's guest sends into it. */
        wait_link(&b, NULL, true);
        send_doorbell(&b, 0, "x");
    }
    while (!qatomic_read(&h.closed)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_assert_cmpint(qmp_latency(b.qts), <, 100 * 1000);
        g_usleep(1000);
    }
    g_thread_join(peer);
    g_assert(!link_up(&b));
    g_assert_cmpuint(mx_stat(&b, "doorbells-received"), ==, 0);
    if (mode == RING_UNSEALED || mode == RING_NOT_EVENTFD) {
        g_assert_cmpuint(mx_stat(&b, "link-ups"), ==, 0);
    }

    side_stop(&b);
    close(h.listen_fd);
    g_assert(g_file_get_contents(log, &text, NULL, NULL));
    if (!strstr(text, reason)) {
        g_test_message("QEMU's log: %s", text);
    }
    g_assert(strstr(text, reason));
}

static void test_hostile_ring_unsealed(void)
{
    run_hostile_ring(RING_UNSEALED, "a doorbell ring that is not a memfd"
                     " sealed against shrinking");
}

static void test_hostile_ring_not_eventfd(void)
{
    run_hostile_ring(RING_NOT_EVENTFD, "DB_EVENT with a descriptor that is"
                     " not an eventfd");
}

static void test_hostile_ring_producer(void)
{
    run_hostile_ring(RING_PRODUCER, "doorbell ring: producer index outside"
                     " the slots it was given");
}

static void test_hostile_ring_consumer(void)
{
    run_hostile_ring(RING_CONSUMER, "the peer's doorbell ring has a consumer"
                     " index beyond its producer index");
}

/* ---- a read-only export against a peer that reopens descriptors ---- */

/* Connect to @sock as the peer named "reader" and do the handshake. */
static int peer_connect(const char *sock)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int64_t deadline = g_get_monotonic_time() + LINK_WAIT_MS * 1000;
    uint8_t buf[MXP_MAX_MESSAGE];
    MxpMsg msg, hello = {
        .hdr = { .type = MXP_HELLO },
        .u.hello = {
            .magic = MXP_MAGIC, .version_major = MXP_VERSION_MAJOR,
            .version_minor = MXP_VERSION_MINOR,
            .features = MXP_FEAT_MAP | MXP_FEAT_BULK, .page_size = 4096,
            .role = MXP_ROLE_TOOL, .max_data = MXP_MAX_DATA,
            .name = "reader",
        },
    };
    int fd, rfd;

    pstrcpy(sun.sun_path, sizeof(sun.sun_path), sock);
    for (;;) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        g_assert_cmpint(fd, >=, 0);
        if (!connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
            break;
        }
        close(fd);
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
    g_assert(peer_recv(fd, buf, &msg, &rfd));
    g_assert_cmpuint(msg.hdr.type, ==, MXP_HELLO);
    peer_send(fd, &hello, -1);
    return fd;
}

/*
 * Send @req and return its reply in @reply (and its fd, or -1),
 * answering what the device asks of us meanwhile: its mapping walk
 * finds nothing here, PINGs get their PONG.
 */
static void peer_call(int fd, MxpMsg *req, MxpMsg *reply, int *rfd)
{
    uint8_t buf[MXP_MAX_MESSAGE];

    peer_send(fd, req, -1);
    for (;;) {
        MxpMsg answer = { .hdr = { .id = 0 } };

        g_assert(peer_recv(fd, buf, reply, rfd));
        if (reply->hdr.id == req->hdr.id &&
            mxp_type_is_reply(reply->hdr.type)) {
            if (reply->hdr.type == MXP_READ_REPLY) {
                /* The payload points into @buf. */
                static uint8_t data[MXP_MAX_DATA];

                memcpy(data, reply->u.access.data, reply->u.access.size);
                reply->u.access.data = data;
            }
            return;
        }
        answer.hdr.id = reply->hdr.id;
        if (reply->hdr.type == MXP_PING) {
            answer.hdr.type = MXP_PONG;
            answer.u.ping = reply->u.ping;
            peer_send(fd, &answer, -1);
        } else if (reply->hdr.type == MXP_MAP) {
            answer.hdr.type = MXP_MAP_REPLY;
            answer.u.map_reply = (MxpMapReply) {
                .kind = MXP_MAP_DENIED,
                .addr = reply->u.map.addr & ~4095ULL,
                .length = WINDOW_SIZE,
            };
            peer_send(fd, &answer, -1);
        }
        if (*rfd >= 0) {
            close(*rfd);
        }
    }
}

/*
 * A read-only export of a memfd that is not sealed against writing goes
 * out forwarded, never as a descriptor: a read-only descriptor can be
 * reopened read-write through /proc/self/fd.  Reads still work, writes
 * are refused, and the exporter's memory stays intact.
 */
static void test_read_only_reopen(void)
{
    g_autofree char *sock = sock_path("reopen");
    g_autofree char *log = g_strdup_printf("%s/reopen.log", tmpdir);
    g_autofree char *text = NULL;
    const char *args = "-object memory-backend-memfd,id=ro,size=1M,share=on "
                       "-device ivshmem-plain,memdev=ro";
    QPCIDevice *shm = NULL;
    MxpMsg req = { .hdr = { .id = 1 } }, reply;
    int fd, rfd;
    uint8_t pattern[4] = { 0xba, 0xdb, 0xad, 0xba };
    uint64_t size;
    QPCIBar bar;
    Side a;

    side_start_logged(&a, log, sock, true, "export=0xe0000000+512M:ro",
                      args);
    qpci_device_foreach(a.qs->pcibus, 0x1af4, 0x1110, save_fn, &shm);
    g_assert(shm);
    qpci_device_enable(shm);
    bar = qpci_iomap(shm, 2, &size);
    qtest_writel(a.qts, bar.addr + 0x100, 0x600dcafe);

    fd = peer_connect(sock);
    req.hdr.type = MXP_MAP;
    req.u.map.addr = bar.addr;
    peer_call(fd, &req, &reply, &rfd);
    g_assert_cmpuint(reply.hdr.type, ==, MXP_MAP_REPLY);
    if (reply.u.map_reply.kind == MXP_MAP_FD) {
        /* What a hostile peer does with it: reopen it read-write. */
        g_autofree char *path = g_strdup_printf("/proc/self/fd/%d", rfd);
        int rw = open(path, O_RDWR | O_CLOEXEC);

        if (rw >= 0) {
            g_assert_cmpint(pwrite(rw, pattern, sizeof(pattern),
                                   reply.u.map_reply.fd_offset + 0x100), ==,
                            sizeof(pattern));
            close(rw);
        }
        close(rfd);
        g_test_message("got a descriptor for the read-only export; after "
                       "reopening it A reads 0x%08x",
                       qtest_readl(a.qts, bar.addr + 0x100));
    }
    g_assert_cmpuint(reply.u.map_reply.kind, ==, MXP_MAP_FORWARD);
    g_assert_cmpuint(reply.u.map_reply.perm, ==, MXP_PERM_READ);
    g_assert_cmpuint(reply.u.map_reply.reason, ==, MXP_FWD_READ_ONLY);

    /* Forwarded: reads see A's memory, writes are refused. */
    req = (MxpMsg) { .hdr = { .type = MXP_READ, .id = 2 },
                     .u.access = { .addr = bar.addr + 0x100, .size = 4 } };
    peer_call(fd, &req, &reply, &rfd);
    g_assert_cmpuint(reply.hdr.type, ==, MXP_READ_REPLY);
    g_assert_cmphex(ldl_le_p(reply.u.access.data), ==, 0x600dcafe);
    req = (MxpMsg) { .hdr = { .type = MXP_WRITE, .id = 3 },
                     .u.access = { .addr = bar.addr + 0x100, .size = 4,
                                   .data = pattern } };
    peer_call(fd, &req, &reply, &rfd);
    g_assert_cmpuint(reply.hdr.type, ==, MXP_ERROR);
    g_assert_cmpuint(reply.u.error.code, ==, MXP_E_READ_ONLY);
    g_assert_cmphex(qtest_readl(a.qts, bar.addr + 0x100), ==, 0x600dcafe);

    close(fd);
    g_free(shm);
    side_stop(&a);
    g_assert(g_file_get_contents(log, &text, NULL, NULL));
    g_assert(strstr(text, "is forwarded, not shared: 'ro' is not sealed"
                    " against writing"));
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("memexpose-test-XXXXXX", NULL);
    g_assert(tmpdir);

    qtest_add_func("/memexpose/zero-copy", test_zero_copy);
    qtest_add_func("/memexpose/forwarded", test_forwarded);
    qtest_add_func("/memexpose/policy", test_policy);
    qtest_add_func("/memexpose/window-base", test_window_base);
    qtest_add_func("/memexpose/doorbell", test_doorbell);
    qtest_add_func("/memexpose/doorbell-socket", test_doorbell_socket);
    qtest_add_func("/memexpose/doorbell-flood", test_doorbell_flood);
    qtest_add_func("/memexpose/doorbell-flood-socket",
                   test_doorbell_flood_socket);
    qtest_add_func("/memexpose/peer-restart", test_peer_restart);
    qtest_add_func("/memexpose/peer-frozen", test_peer_frozen);
    qtest_add_func("/memexpose/heartbeat", test_heartbeat);
    qtest_add_func("/memexpose/invalidate", test_invalidate);
    qtest_add_func("/memexpose/recursion", test_recursion);
    qtest_add_func("/memexpose/unsealed-fd", test_unsealed_fd);
    qtest_add_func("/memexpose/migration-blocked", test_migration_blocked);
    qtest_add_func("/memexpose/hotplug", test_hotplug);
    qtest_add_func("/memexpose/concurrent", test_concurrent);
    qtest_add_func("/memexpose/invalidate-storm", test_invalidate_storm);
    qtest_add_func("/memexpose/invalidate-storm-loaded",
                   test_invalidate_storm_loaded);
    qtest_add_func("/memexpose/hostile/tiny-map", test_hostile_tiny_map);
    qtest_add_func("/memexpose/hostile/page-map", test_hostile_page_map);
    qtest_add_func("/memexpose/hostile/silent-map", test_hostile_silent_map);
    qtest_add_func("/memexpose/hostile/fd-misaligned",
                   test_hostile_fd_misaligned);
    qtest_add_func("/memexpose/hostile/fd-read-only",
                   test_hostile_fd_read_only);
    qtest_add_func("/memexpose/hostile/read-only-reopen",
                   test_read_only_reopen);
    qtest_add_func("/memexpose/hostile/ring-unsealed",
                   test_hostile_ring_unsealed);
    qtest_add_func("/memexpose/hostile/ring-not-eventfd",
                   test_hostile_ring_not_eventfd);
    qtest_add_func("/memexpose/hostile/ring-producer",
                   test_hostile_ring_producer);
    qtest_add_func("/memexpose/hostile/ring-consumer",
                   test_hostile_ring_consumer);
    ret = g_test_run();

    g_rmdir(tmpdir);
    g_free(tmpdir);
    return ret;
}
