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
#include "fuzz/memexpose-fuzz-peer.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "qobject/qstring.h"
#include "qemu/atomic.h"
#include "qemu/bswap.h"
#include "qemu/cutils.h"
#include <poll.h>
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

/*
 * The one-trap registers: a DB_TX_SEND(n) read sends and returns the
 * status, a DB_RX_TAKE read returns the head and pops it, its payload
 * staying in DB_RX_TAKEN_DATA.
 */
static void test_doorbell_one_trap(void)
{
    const char *payload = "one trap";
    size_t len = strlen(payload), i;
    Side a, b;

    start_pair(&a, &b, "memfd", "queue-depth=4", "memfd", "queue-depth=4");
    g_assert_cmphex(reg_read(&b, MX_REG_CAPS), ==, MX_CAP_ALL);
    for (i = 0; i < len; i++) {
        qpci_io_writeb(b.dev, b.regs, MX_REG_DB_TX_DATA + i, payload[i]);
    }
    reg_write(&b, MX_REG_DB_TX_LEN, len);
    g_assert_cmpuint(reg_read(&b, MX_REG_DB_TX_SEND(3)), ==, MX_TX_OK);
    g_assert_cmpuint(reg_read(&b, MX_REG_DB_TX_VECTOR), ==, 3);
    g_assert_cmpuint(reg_read(&b, MX_REG_DB_TX_SEND(60)), ==,
                     MX_TX_BAD_VECTOR);

    wait_rx(&a, 1);
    g_assert_cmphex(reg_read(&a, MX_REG_DB_RX_TAKE), ==, 3 | len << 16);
    g_assert_cmpuint(reg_read(&a, MX_REG_DB_RX_COUNT), ==, 0);
    for (i = 0; i < MXP_MAX_DOORBELL_DATA; i++) {
        g_assert_cmpint(qpci_io_readb(a.dev, a.regs,
                                      MX_REG_DB_RX_TAKEN_DATA + i), ==,
                        i < len ? payload[i] : 0);
    }
    /* Empty: nothing taken, the last payload stays. */
    g_assert_cmphex(reg_read(&a, MX_REG_DB_RX_TAKE), ==, MX_RX_EMPTY);
    g_assert_cmpint(qpci_io_readb(a.dev, a.regs, MX_REG_DB_RX_TAKEN_DATA),
                    ==, payload[0]);

    /* The take returned the credit; four fit, the fifth is busy. */
    reg_write(&b, MX_REG_DB_TX_LEN, 0);
    for (i = 0; i < 4; i++) {
        wait_reg_set(&b, MX_REG_DB_TX_CREDITS, ~0U);
        g_assert_cmpuint(reg_read(&b, MX_REG_DB_TX_SEND(i)), ==, MX_TX_OK);
    }
    wait_rx(&a, 4);
    g_assert_cmpuint(reg_read(&b, MX_REG_DB_TX_SEND(0)), ==, MX_TX_BUSY);
    for (i = 0; i < 4; i++) {
        g_assert_cmphex(reg_read(&a, MX_REG_DB_RX_TAKE), ==, i);
    }
    g_assert_cmpuint(mx_stat(&a, "doorbells-received"), ==, 5);

    side_stop(&b);
    side_stop(&a);
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

/* query-memexpose: the one entry of @qts, checked to be a memexpose-pci. */
static QDict *query_memexpose(QTestState *qts, QDict **rsp)
{
    QList *list;
    QDict *info;

    *rsp = qtest_qmp(qts, "{'execute': 'query-memexpose'}");
    g_assert(qdict_haskey(*rsp, "return"));
    list = qdict_get_qlist(*rsp, "return");
    g_assert_cmpuint(qlist_size(list), ==, 1);
    info = qobject_to(QDict, qlist_peek(list));
    g_assert(info);
    g_assert_cmpstr(qdict_get_str(info, "type"), ==, "memexpose-pci");
    g_assert_cmpstr(qdict_get_str(info, "qom-path"), ==,
                    "/machine/peripheral/mx");
    g_assert_cmpstr(qdict_get_str(info, "id"), ==, "mx");
    return info;
}

/* Entry @i of the range list @key of @info: addr, size, perm. */
static void check_range(QDict *info, const char *key, unsigned i,
                        uint64_t addr, uint64_t size, const char *perm)
{
    QList *list = qdict_get_qlist(info, key);
    const QListEntry *e;
    QDict *r;

    g_assert(list);
    for (e = qlist_first(list); e && i; e = qlist_next(e)) {
        i--;
    }
    g_assert(e);
    r = qobject_to(QDict, qlist_entry_obj(e));
    g_assert_cmphex(qdict_get_int(r, "addr"), ==, addr);
    g_assert_cmphex(qdict_get_int(r, "size"), ==, size);
    g_assert_cmpstr(qdict_get_str(r, "perm"), ==, perm);
}

static bool has_feature(QDict *info, const char *name)
{
    const QListEntry *e;

    QLIST_FOREACH_ENTRY(qdict_get_qlist(info, "features"), e) {
        QString *f = qobject_to(QString, qlist_entry_obj(e));

        if (g_str_equal(qstring_get_str(f), name)) {
            return true;
        }
    }
    return false;
}

/* An HMP command's output, with the monitor's "\r\n" as "\n". */
static char *hmp_output(QTestState *qts, const char *cmd)
{
    g_autofree char *out = qtest_hmp(qts, "%s", cmd);
    g_auto(GStrv) lines = g_strsplit(out, "\r\n", -1);

    return g_strjoinv("\n", lines);
}

/*
 * query-memexpose and info memexpose show the link, the peer, the window,
 * the zero-copy mappings, the policy and the counters, before and after
 * the link comes up, and agree with the registers and QOM properties.
 */
static void test_monitor(void)
{
    g_autofree char *sock = sock_path("monitor");
    g_autofree char *hmp = NULL;
    QDict *rsp, *info, *c;
    const QListEntry *e;
    uint64_t mapped = 0, last = 0;
    Side a, b;

    side_start(&a, sock, true, "memfd",
               "side-a", "export=0+64M:rw;0x4000000+4K:ro,trust-peer=on");
    info = query_memexpose(a.qts, &rsp);
    g_assert_cmpstr(qdict_get_str(info, "name"), ==, "side-a");
    g_assert_cmpstr(qdict_get_str(info, "link"), ==, "down");
    g_assert_cmpint(qdict_get_int(info, "epoch"), ==, 0);
    g_assert(!qdict_haskey(info, "peer-name"));
    g_assert_cmpuint(qlist_size(qdict_get_qlist(info, "features")), ==, 0);
    g_assert_cmpuint(qlist_size(qdict_get_qlist(info, "mappings")), ==, 0);
    g_assert_cmphex(qdict_get_int(info, "window-size"), ==, WINDOW_SIZE);
    g_assert_cmphex(qdict_get_int(info, "window-base"), ==, 0);
    g_assert_cmpuint(qlist_size(qdict_get_qlist(info, "exports")), ==, 2);
    check_range(info, "exports", 0, 0, 64 * 1024 * 1024, "rw");
    check_range(info, "exports", 1, 0x4000000, 4096, "ro");
    c = qdict_get_qdict(info, "counters");
    g_assert_cmpint(qdict_get_int(c, "link-ups"), ==, 0);
    g_assert_cmpint(qdict_get_int(c, "mapped-bytes"), ==, 0);
    qobject_unref(rsp);

    hmp = hmp_output(a.qts, "info memexpose");
    g_assert(strstr(hmp, "mx: memexpose-pci at /machine/peripheral/mx,"
                    " name \"side-a\"\n"));
    g_assert(strstr(hmp, "  link: down, epoch 0\n"));
    g_assert(strstr(hmp, "  features: none\n"));
    g_assert(strstr(hmp, "  mapped: none\n"));
    g_assert(strstr(hmp, "  exports: 0x0+0x4000000:rw 0x4000000+0x1000:ro\n"));
    g_assert(strstr(hmp, "  timeouts: 0  link-ups: 0\n"));
    g_clear_pointer(&hmp, g_free);

    side_start(&b, sock, false, "memfd", "side-b", "trust-peer=on");
    wait_link(&a, &b, true);
    /* Outside A's exports: refused by A, counted on both sides. */
    reg_write(&b, MX_REG_WINDOW_BASE_LO, 0x6000000);
    g_assert_cmphex(qpci_io_readl(b.dev, b.window, 0), ==, 0xffffffff);

    info = query_memexpose(b.qts, &rsp);
    g_assert_cmpstr(qdict_get_str(info, "link"), ==, "up");
    g_assert_cmpint(qdict_get_int(info, "epoch"), ==, 1);
    g_assert_cmpstr(qdict_get_str(info, "peer-name"), ==, "side-a");
    g_assert(has_feature(info, "map"));
    g_assert(has_feature(info, "bulk"));
    g_assert(has_feature(info, "heartbeat"));
    g_assert(has_feature(info, "doorbell-ring"));
    g_assert_cmphex(qdict_get_int(info, "window-base"), ==, 0x6000000);
    g_assert_cmpuint(qlist_size(qdict_get_qlist(info, "exports")), ==, 0);
    c = qdict_get_qdict(info, "counters");
    g_assert_cmpint(qdict_get_int(c, "link-ups"), ==, 1);
    g_assert_cmpint(qdict_get_int(c, "refused-accesses"), >=, 1);
    g_assert_cmpint(qdict_get_int(c, "refused-accesses"), ==,
                    mx_stat(&b, "refused-accesses"));
    qobject_unref(rsp);

    /* At base 0 the window maps A's read-write RAM. */
    reg_write(&b, MX_REG_WINDOW_BASE_LO, 0);
    wait_mapped(&b, 32 * 1024 * 1024);
    info = query_memexpose(b.qts, &rsp);
    g_assert_cmpuint(qlist_size(qdict_get_qlist(info, "mappings")), >=, 1);
    QLIST_FOREACH_ENTRY(qdict_get_qlist(info, "mappings"), e) {
        QDict *r = qobject_to(QDict, qlist_entry_obj(e));

        g_assert_cmphex(qdict_get_int(r, "addr"), >=, last);
        last = qdict_get_int(r, "addr") + qdict_get_int(r, "size");
        g_assert_cmphex(last, <=, 64 * 1024 * 1024);
        g_assert_cmpstr(qdict_get_str(r, "perm"), ==, "rw");
        mapped += qdict_get_int(r, "size");
    }
    c = qdict_get_qdict(info, "counters");
    g_assert_cmpint(qdict_get_int(c, "mapped-bytes"), ==, mapped);
    qobject_unref(rsp);

    hmp = hmp_output(b.qts, "info memexpose");
    g_assert(strstr(hmp, "  link: up, epoch 1, peer \"side-a\"\n"));
    g_assert(strstr(hmp, "  features: map bulk boot heartbeat"
                    " doorbell-ring\n"));
    g_assert(strstr(hmp, "  window: 0x4000000 bytes at peer address 0x0\n"));
    g_assert(strstr(hmp, "  mapped: 0x"));
    g_assert(strstr(hmp, "  exports: none\n"));
    g_clear_pointer(&hmp, g_free);

    /* The mappings show in the memory tree too. */
    hmp = hmp_output(b.qts, "info mtree -f");
    g_assert(strstr(hmp, "memexpose-peer@0x"));
    g_clear_pointer(&hmp, g_free);

    side_stop(&b);
    side_stop(&a);
}

/* Hot-plug next to a live peer, then unplug: the survivor keeps going. */
static void test_hotplug(void)
{
    g_autofree char *sock = sock_path("hotplug");
    QTestState *qts;
    QDict *rsp;
    Side b;

    qts = qtest_initf("-machine pc -chardev socket,id=mxh,path=%s,"
                      "server=on,wait=off", sock);
    side_start(&b, sock, false, "private", "side-b", NULL);
    qtest_qmp_device_add(qts, "memexpose-pci", "mxh",
                         "{'addr': '0x06', 'chardev': 'mxh',"
                         " 'window-size': 1048576}");
    wait_link(&b, NULL, true);
    rsp = qtest_qmp(qts, "{'execute': 'query-memexpose'}");
    g_assert_cmpuint(qlist_size(qdict_get_qlist(rsp, "return")), ==, 1);
    qobject_unref(rsp);
    qpci_unplug_acpi_device_test(qts, "mxh", 0x06);
    wait_link(&b, NULL, false);
    /* The unplugged device is off the monitor's list. */
    rsp = qtest_qmp(qts, "{'execute': 'query-memexpose'}");
    g_assert_cmpuint(qlist_size(qdict_get_qlist(rsp, "return")), ==, 0);
    qobject_unref(rsp);
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
    HOSTILE_FD_PIPE,            /* kind FD with a pipe */
    HOSTILE_FD_SOCKET,          /* ... with a unix socket */
    HOSTILE_FD_EVENTFD,         /* ... with an eventfd */
    HOSTILE_FD_SMALL,           /* ... with a memfd smaller than the range */
    HOSTILE_MAP_ERROR,          /* MAP is answered with ERROR map_error */
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
    uint32_t map_error;         /* HOSTILE_MAP_ERROR: the code */
    int listen_fd;
    unsigned maps;              /* MAP requests received */
    unsigned reads;             /* READs served */
    uint32_t error_code;        /* QEMU's unsolicited ERROR, or 0 */
    uint32_t bye_code;          /* ... and its BYE */
    bool closed;                /* QEMU hung up */
} Hostile;

/* What a hostile exporter's forwarded memory reads as. */
static uint8_t hostile_byte(uint64_t addr)
{
    return (uint8_t)(addr ^ 0x5a);
}

/*
 * The descriptor a kind-FD MAP_REPLY of @mode carries; *@other is a
 * second descriptor to close afterwards, or -1.
 */
static int hostile_map_fd(HostileMode mode, int *other)
{
    int pair[2];

    *other = -1;
    switch (mode) {
    case HOSTILE_FD_MISALIGNED:
    case HOSTILE_FD_READ_ONLY:
        return hostile_memfd(WINDOW_SIZE + 64 * 1024,
                             mode == HOSTILE_FD_READ_ONLY);
    case HOSTILE_FD_SMALL:
        return hostile_memfd(WINDOW_SIZE / 2, false);
    case HOSTILE_FD_PIPE:
        g_assert_cmpint(pipe2(pair, O_CLOEXEC), ==, 0);
        break;
    case HOSTILE_FD_SOCKET:
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                                   pair), ==, 0);
        break;
    case HOSTILE_FD_EVENTFD:
        pair[0] = eventfd(0, EFD_CLOEXEC);
        g_assert_cmpint(pair[0], >=, 0);
        return pair[0];
    default:
        return -1;
    }
    *other = pair[1];
    return pair[0];
}

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
    ssize_t n;

    *rfd = -1;
    n = recvmsg(fd, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC);
    /* peer_dial()'s sockets time out: QEMU went quiet, it did not close. */
    g_assert(n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK));
    if (n != MXP_HEADER_SIZE) {
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

/*
 * @len bytes in one sendmsg(), with @payload_fd attached unless it is -1:
 * valid messages, or whatever a hostile peer makes of them.
 */
static void peer_send_raw(int fd, const void *buf, size_t len,
                          int payload_fd)
{
    char control[CMSG_SPACE(sizeof(int))] = { 0 };
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    struct cmsghdr *cmsg;

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
    if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)len) {
        return;
    }
}

/* Encode @msg into @buf (MXP_MAX_MESSAGE bytes); returns its size. */
static size_t peer_encode(const MxpMsg *msg, uint8_t *buf)
{
    int len = mxp_encode(msg, buf, MXP_MAX_MESSAGE);

    g_assert_cmpint(len, >, 0);
    return len;
}

/* One message, with @payload_fd attached unless it is -1. */
static void peer_send(int fd, const MxpMsg *msg, int payload_fd)
{
    uint8_t buf[MXP_MAX_MESSAGE];

    peer_send_raw(fd, buf, peer_encode(msg, buf), payload_fd);
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
    int other, ram = hostile_map_fd(h->mode, &other);

    g_assert_cmpint(fd, >=, 0);
    if (h->mode == HOSTILE_FD_MISALIGNED) {
        hello.u.hello.page_size = 64 * 1024;
    }
    g_assert(hostile_recv(fd, buf, &msg));
    g_assert_cmpuint(msg.hdr.type, ==, MXP_HELLO);
    peer_send(fd, &hello, -1);
    while (hostile_recv(fd, buf, &msg)) {
        MxpMsg reply = { .hdr = { .id = msg.hdr.id } };
        uint8_t data[MXP_MAX_DATA];
        uint32_t i;

        switch (msg.hdr.type) {
        case MXP_PING:
            reply.hdr.type = MXP_PONG;
            reply.u.ping = msg.u.ping;
            peer_send(fd, &reply, -1);
            break;
        case MXP_READ:
            /* What the window reaches once a mapping was refused. */
            for (i = 0; i < msg.u.access.size; i++) {
                data[i] = hostile_byte(msg.u.access.addr + i);
            }
            reply.hdr.type = MXP_READ_REPLY;
            reply.u.access = msg.u.access;
            reply.u.access.data = data;
            peer_send(fd, &reply, -1);
            qatomic_inc(&h->reads);
            break;
        case MXP_ERROR:
            qatomic_set(&h->error_code, msg.u.error.code);
            break;
        case MXP_BYE:
            qatomic_set(&h->bye_code, msg.u.error.code);
            break;
        case MXP_MAP:
            qatomic_inc(&h->maps);
            if (h->mode == HOSTILE_MAP_ERROR) {
                reply.hdr.type = MXP_ERROR;
                reply.u.error = (MxpError) {
                    .code = h->map_error, .request_type = MXP_MAP,
                    .addr = msg.u.map.addr,
                };
                peer_send(fd, &reply, -1);
            } else if (ram >= 0) {
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
    if (other >= 0) {
        close(other);
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
static void run_hostile_exporter_with(Hostile *hp, int64_t within_ms,
                                      const char *reason)
{
    g_autofree char *sock = sock_path("exporter");
    g_autofree char *log = g_strdup_printf("%s/hostile.log", tmpdir);
    g_autofree char *text = NULL;
    Hostile h = *hp;
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
    *hp = h;
}

static void run_hostile_exporter(HostileMode mode, int64_t within_ms,
                                 const char *reason)
{
    Hostile h = { .mode = mode };

    run_hostile_exporter_with(&h, within_ms, reason);
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
 * An importer with a live link to a hostile exporter (the test's thread)
 * that describes the whole window in one MAP_REPLY: *@b is QEMU, its log
 * in @log.
 */
static GThread *hostile_importer_start(Side *b, Hostile *h, const char *log)
{
    g_autofree char *sock = sock_path("importer");
    GThread *peer;

    h->listen_fd = listen_unix(sock);
    peer = g_thread_new("hostile", hostile_peer, h);
    side_start_logged(b, log, sock, false, NULL, NULL);
    return peer;
}

/* A window read that the hostile exporter serves by forwarding. */
static void check_forwarded_read(Side *b, Hostile *h, uint64_t offset)
{
    uint64_t fwd = mx_stat(b, "forwarded-reads");
    unsigned reads = qatomic_read(&h->reads);
    uint32_t want = 0;
    int i;

    for (i = 3; i >= 0; i--) {
        want = want << 8 | hostile_byte(reg_read(b, MX_REG_WINDOW_BASE_LO) +
                                        offset + i);
    }
    g_assert_cmphex(qpci_io_readl(b->dev, b->window, offset), ==, want);
    g_assert_cmpuint(mx_stat(b, "forwarded-reads"), ==, fwd + 1);
    g_assert_cmpuint(qatomic_read(&h->reads), ==, reads + 1);
}

static void hostile_importer_stop(Side *b, Hostile *h, GThread *peer)
{
    side_stop(b);
    g_thread_join(peer);
    close(h->listen_fd);
}

/*
 * A descriptor that fails the importer's checks is not mapped: the range
 * is forwarded, with the reason logged, and the link stays up.
 */
static void run_hostile_refused_fd(HostileMode mode, const char *why)
{
    g_autofree char *log = g_strdup_printf("%s/refused-fd.log", tmpdir);
    g_autofree char *reason = g_strdup_printf(
        "not mapping peer range 0x0: %s; forwarding it", why);
    Hostile h = { .mode = mode };
    GThread *peer;
    Side b;

    peer = hostile_importer_start(&b, &h, log);
    wait_log(log, reason);
    g_assert(link_up(&b));
    g_assert_cmpuint(mx_stat(&b, "mapped-bytes"), ==, 0);
    g_assert_cmpuint(mx_stat(&b, "mappings-made"), ==, 0);
    g_assert_cmpuint(mx_stat(&b, "link-ups"), ==, 1);
    check_forwarded_read(&b, &h, 0x1000);
    g_assert(link_up(&b));
    g_assert_cmpint(qmp_latency(b.qts), <, 100 * 1000);
    hostile_importer_stop(&b, &h, peer);
}

/* A read-write grant whose descriptor is open only for reading. */
static void test_hostile_fd_read_only(void)
{
    run_hostile_refused_fd(HOSTILE_FD_READ_ONLY, "a read-write grant with a"
                           " descriptor not open for writing");
}

static void test_hostile_fd_pipe(void)
{
    run_hostile_refused_fd(HOSTILE_FD_PIPE, "not a regular file or memfd");
}

static void test_hostile_fd_socket(void)
{
    run_hostile_refused_fd(HOSTILE_FD_SOCKET, "not a regular file or memfd");
}

static void test_hostile_fd_eventfd(void)
{
    run_hostile_refused_fd(HOSTILE_FD_EVENTFD, "not a regular file or memfd");
}

/* fstat() size below fd_offset + length: mapping it would SIGBUS. */
static void test_hostile_fd_too_small(void)
{
    run_hostile_refused_fd(HOSTILE_FD_SMALL, "file smaller than the range");
}

/*
 * ERROR is a valid reply to MAP only with UNSUPPORTED, BUSY or INTERNAL:
 * DENIED (not exported is a MAP_REPLY of kind DENIED) ends the link.
 */
static void test_hostile_map_error_denied(void)
{
    Hostile h = { .mode = HOSTILE_MAP_ERROR, .map_error = MXP_E_DENIED };

    run_hostile_exporter_with(&h, 5000, "link down: ERROR 3 (address not"
                              " exported) is no valid reply to MAP");
    g_assert_cmpuint(h.maps, ==, 1);
    g_assert_cmpuint(h.error_code, ==, MXP_E_PROTOCOL);
    g_assert_cmpuint(h.bye_code, ==, MXP_E_PROTOCOL);
}

/*
 * ERROR UNSUPPORTED to MAP: the walk stops, the code is logged once per
 * link, the window is forwarded and the link stays up.
 */
static void test_hostile_map_error_unsupported(void)
{
    g_autofree char *log = g_strdup_printf("%s/map-error.log", tmpdir);
    Hostile h = { .mode = HOSTILE_MAP_ERROR,
                  .map_error = MXP_E_UNSUPPORTED };
    int64_t deadline = g_get_monotonic_time() + LINK_WAIT_MS * 1000;
    g_autofree char *text = NULL;
    GThread *peer;
    Side b;

    peer = hostile_importer_start(&b, &h, log);
    wait_log(log, "the peer refused MAP for 0x0: feature not negotiated;"
             " forwarding the rest of the window");
    g_assert(link_up(&b));
    g_assert_cmpuint(qatomic_read(&h.maps), ==, 1);
    check_forwarded_read(&b, &h, 0x2000);

    /* A new window base walks again; the same refusal is not logged. */
    reg_write(&b, MX_REG_WINDOW_BASE_LO, 0x100000);
    while (qatomic_read(&h.maps) < 2) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
    }
    check_forwarded_read(&b, &h, 0x3000);
    g_assert_cmpint(qmp_latency(b.qts), <, 100 * 1000);
    g_assert(link_up(&b));
    g_assert_cmpuint(mx_stat(&b, "link-ups"), ==, 1);
    g_assert_cmpuint(mx_stat(&b, "mapped-bytes"), ==, 0);
    g_assert_cmpuint(qatomic_read(&h.error_code), ==, 0);
    hostile_importer_stop(&b, &h, peer);
    g_assert(g_file_get_contents(log, &text, NULL, NULL));
    g_assert(strstr(text, "the peer refused MAP for 0x0:"));
    g_assert(!strstr(text, "the peer refused MAP for 0x100000"));
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

/* A host tool's HELLO, named "reader", offering @features. */
static MxpMsg tool_hello(uint64_t features)
{
    MxpMsg hello = {
        .hdr = { .type = MXP_HELLO },
        .u.hello = {
            .magic = MXP_MAGIC, .version_major = MXP_VERSION_MAJOR,
            .version_minor = MXP_VERSION_MINOR,
            .features = features, .page_size = 4096,
            .role = MXP_ROLE_TOOL, .max_data = MXP_MAX_DATA,
            .name = "reader",
        },
    };

    return hello;
}

/*
 * Connect to @sock, retrying until QEMU listens.  Receiving times out
 * after LINK_WAIT_MS, so that a QEMU that fails to act fails the test
 * instead of hanging it.
 */
static int peer_dial(const char *sock)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct timeval tv = { .tv_sec = LINK_WAIT_MS / 1000 };
    int64_t deadline = g_get_monotonic_time() + LINK_WAIT_MS * 1000;
    int fd;

    pstrcpy(sun.sun_path, sizeof(sun.sun_path), sock);
    for (;;) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
                                   sizeof(tv)), ==, 0);
        if (!connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
            return fd;
        }
        close(fd);
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
}

/*
 * Connect to @sock and do the handshake with @hello; QEMU's HELLO goes
 * to @theirs unless it is NULL.
 */
static int peer_connect_hello(const char *sock, const MxpMsg *hello,
                              MxpHello *theirs)
{
    uint8_t buf[MXP_MAX_MESSAGE];
    int fd = peer_dial(sock), rfd;
    MxpMsg msg;

    g_assert(peer_recv(fd, buf, &msg, &rfd));
    g_assert_cmpuint(msg.hdr.type, ==, MXP_HELLO);
    if (theirs) {
        *theirs = msg.u.hello;
    }
    peer_send(fd, hello, -1);
    return fd;
}

/* Connect to @sock as a host tool with MAP and BULK. */
static int peer_connect(const char *sock)
{
    MxpMsg hello = tool_hello(MXP_FEAT_MAP | MXP_FEAT_BULK);

    return peer_connect_hello(sock, &hello, NULL);
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

/* ---- hostile peers against QEMU as the listening side ---- */

/* QEMU's log for the case at hand. */
static char *case_log(const char *name)
{
    return g_strdup_printf("%s/%s.log", tmpdir, name);
}

/*
 * Start QEMU as the listening side (named side-a, with the device
 * properties @extra and its log in @log) and link a peer to it with
 * @hello; QEMU's HELLO goes to @theirs unless it is NULL.
 */
static int hostile_link(Side *a, const char *log, const char *extra,
                        const MxpMsg *hello, MxpHello *theirs)
{
    g_autofree char *sock = sock_path("hostile");

    side_start_logged(a, log, sock, true, extra, NULL);
    return peer_connect_hello(sock, hello, theirs);
}

/*
 * The next messages from QEMU, besides its own requests and handshake,
 * are ERROR (id 0) with @code and @type, then BYE with @code, then the
 * end of the stream.
 */
static void expect_link_error(int fd, uint32_t code, uint32_t type)
{
    uint8_t buf[MXP_MAX_MESSAGE];
    MxpMsg msg;
    int rfd;

    for (;;) {
        g_assert(peer_recv(fd, buf, &msg, &rfd));
        if (rfd >= 0) {
            close(rfd);
        }
        g_assert_cmpuint(msg.hdr.type, !=, MXP_BYE);
        if (msg.hdr.type == MXP_ERROR && msg.hdr.id == 0) {
            break;
        }
    }
    g_assert_cmpuint(msg.u.error.code, ==, code);
    g_assert_cmpuint(msg.u.error.request_type, ==, type);
    g_assert(peer_recv(fd, buf, &msg, &rfd));
    g_assert_cmpuint(msg.hdr.type, ==, MXP_BYE);
    g_assert_cmpuint(msg.u.error.code, ==, code);
    g_assert(!peer_recv(fd, buf, &msg, &rfd));
    close(fd);
}

/*
 * QEMU closes the connection without ERROR or BYE (a timeout, or the
 * peer's own BYE).  Returns the number of PINGs it sent meanwhile.
 */
static unsigned expect_silent_close(int fd)
{
    uint8_t buf[MXP_MAX_MESSAGE];
    unsigned pings = 0;
    MxpMsg msg;
    int rfd;

    while (peer_recv(fd, buf, &msg, &rfd)) {
        if (rfd >= 0) {
            close(rfd);
        }
        g_assert_cmpuint(msg.hdr.type, !=, MXP_ERROR);
        g_assert_cmpuint(msg.hdr.type, !=, MXP_BYE);
        pings += msg.hdr.type == MXP_PING;
    }
    close(fd);
    return pings;
}

/* The link is down with @reason logged, and QEMU still answers QMP. */
static void assert_dropped(Side *a, const char *log, const char *reason)
{
    wait_log(log, reason);
    wait_link(a, NULL, false);
    g_assert_cmpint(qmp_latency(a->qts), <, 100 * 1000);
}

static bool log_has(const char *log, const char *text)
{
    g_autofree char *contents = NULL;

    g_assert(g_file_get_contents(log, &contents, NULL, NULL));
    return strstr(contents, text);
}

/* The memfd whose descriptors a hostile peer leaves with QEMU. */
#define STRAY_MEMFD     "mx-stray"

/* Whether process @pid has a descriptor of the memfd named @name. */
static bool holds_memfd(pid_t pid, const char *name)
{
    g_autofree char *dir = g_strdup_printf("/proc/%d/fd", pid);
    g_autofree char *want = g_strdup_printf("/memfd:%s ", name);
    GDir *fds = g_dir_open(dir, 0, NULL);
    const char *fd;
    bool found = false;

    g_assert(fds);
    while (!found && (fd = g_dir_read_name(fds))) {
        g_autofree char *path = g_strdup_printf("%s/%s", dir, fd);
        g_autofree char *target = g_file_read_link(path, NULL);

        found = target && g_str_has_prefix(target, want);
    }
    g_dir_close(fds);
    return found;
}

/* One sendmsg() of a hostile stream, with a stray memfd if @with_fd. */
typedef struct Sendmsg {
    const uint8_t *buf;
    size_t len;
    bool with_fd;
} Sendmsg;

/*
 * After the handshake the peer writes @calls: QEMU ends the link with
 * "link down: @reason" logged, ERROR and BYE PROTOCOL, closes every
 * descriptor it was given and still answers QMP.
 */
static void run_hostile_stream(const Sendmsg *calls, unsigned n,
                               const char *reason)
{
    g_autofree char *log = case_log("stream");
    g_autofree char *text = g_strdup_printf("link down: %s", reason);
    MxpMsg hello = tool_hello(0);
    int stray = memfd_create(STRAY_MEMFD, MFD_CLOEXEC);
    unsigned i;
    Side a;
    int fd;

    g_assert_cmpint(stray, >=, 0);
    fd = hostile_link(&a, log, NULL, &hello, NULL);
    for (i = 0; i < n; i++) {
        peer_send_raw(fd, calls[i].buf, calls[i].len,
                      calls[i].with_fd ? stray : -1);
    }
    close(stray);
    expect_link_error(fd, MXP_E_PROTOCOL, 0);
    assert_dropped(&a, log, text);
    g_assert_cmpuint(mx_stat(&a, "link-ups"), ==, 1);
    g_assert(!holds_memfd(qtest_pid(a.qts), STRAY_MEMFD));
    side_stop(&a);
}

/* One malformed message in one sendmsg(). */
static void run_hostile_message(const uint8_t *buf, size_t len, bool with_fd,
                                const char *reason)
{
    Sendmsg call = { buf, len, with_fd };

    run_hostile_stream(&call, 1, reason);
}

/* A PING (its cookie at offset 16) encoded into @buf. */
static size_t encode_ping(uint8_t *buf)
{
    MxpMsg ping = { .hdr = { .type = MXP_PING, .id = 1 }, .u.ping = 7 };

    return peer_encode(&ping, buf);
}

/*
 * A valid PING follows in the same sendmsg(): after the error nothing
 * the peer sends is acted on (no PONG, no second ERROR).
 */
static void test_hostile_unknown_type(void)
{
    uint8_t buf[2 * MXP_MAX_MESSAGE];
    size_t len = encode_ping(buf);

    stw_le_p(buf, MXP_TYPE_MAX + 1);
    len += encode_ping(buf + len);
    run_hostile_message(buf, len, false, "bad header: unknown message type");
}

/* Only the header goes out: its length alone is refused. */
static void test_hostile_too_long(void)
{
    MxpMsg write = {
        .hdr = { .type = MXP_WRITE, .id = 1 },
        .u.access = { .addr = 0x1000, .size = 8,
                      .data = (const uint8_t *)"12345678" },
    };
    uint8_t buf[MXP_MAX_MESSAGE];

    peer_encode(&write, buf);
    stl_le_p(buf + 4, MXP_MAX_PAYLOAD + 1);
    run_hostile_message(buf, MXP_HEADER_SIZE, false,
                        "bad header: payload longer than the protocol allows");
}

static void test_hostile_unknown_flag(void)
{
    uint8_t buf[MXP_MAX_MESSAGE];
    size_t len = encode_ping(buf);

    stw_le_p(buf + 2, 1 << 1);
    run_hostile_message(buf, len, false, "bad header: unknown header flags");
}

static void test_hostile_reserved_field(void)
{
    MxpMsg read = {
        .hdr = { .type = MXP_READ, .id = 1 },
        .u.access = { .addr = 0x1000, .size = 4 },
    };
    uint8_t buf[MXP_MAX_MESSAGE];
    size_t len = peer_encode(&read, buf);

    buf[MXP_HEADER_SIZE + 12] = 1;
    run_hostile_message(buf, len, false, "bad READ: field out of bounds");
}

/* A MAP_REPLY of kind FD announces a descriptor that never comes. */
static void test_hostile_fd_flag_without_fd(void)
{
    MxpMsg reply = {
        .hdr = { .type = MXP_MAP_REPLY, .id = 1 },
        .u.map_reply = { .kind = MXP_MAP_FD, .perm = MXP_PERM_READ,
                         .addr = 0, .length = 4096 },
    };
    uint8_t buf[MXP_MAX_MESSAGE];
    size_t len = peer_encode(&reply, buf);

    g_assert_cmphex(lduw_le_p(buf + 2), ==, MXP_FLAG_FD);
    run_hostile_message(buf, len, false,
                        "bad MAP_REPLY: file descriptors do not match the"
                        " message");
}

/* A descriptor on a message whose header announces none. */
static void test_hostile_fd_without_flag(void)
{
    uint8_t buf[MXP_MAX_MESSAGE];
    size_t len = encode_ping(buf);

    run_hostile_message(buf, len, true,
                        "bad PING: file descriptors do not match the"
                        " message");
}

/*
 * One sendmsg() carries the tail of a PING and a MAP_REPLY of kind FD
 * with its descriptor: the descriptor does not start at the header of
 * the message that announces it.
 */
static void test_hostile_fd_mid_message(void)
{
    MxpMsg reply = {
        .hdr = { .type = MXP_MAP_REPLY, .id = 1 },
        .u.map_reply = { .kind = MXP_MAP_FD, .perm = MXP_PERM_READ,
                         .addr = 0, .length = 4096 },
    };
    uint8_t buf[MXP_MAX_MESSAGE];
    size_t ping = encode_ping(buf);
    size_t len = ping + peer_encode(&reply, buf + ping);
    Sendmsg calls[] = {
        { buf, MXP_HEADER_SIZE + 4, false },
        { buf + MXP_HEADER_SIZE + 4, len - MXP_HEADER_SIZE - 4, true },
    };

    run_hostile_stream(calls, ARRAY_SIZE(calls),
                       "file descriptor outside a message header");
}

/*
 * A BYE's request_type and addr are not checked: one with a type beyond
 * MXP_TYPE_MAX is an orderly close, not a protocol error.
 */
static void test_hostile_bye_request_type(void)
{
    g_autofree char *log = case_log("bye");
    MxpMsg hello = tool_hello(0), bye = {
        .hdr = { .type = MXP_BYE },
        .u.error = { .code = MXP_E_SHUTDOWN },
    };
    uint8_t buf[MXP_MAX_MESSAGE];
    size_t len = peer_encode(&bye, buf);
    Side a;
    int fd;

    /* Patched in, so that only QEMU's decoder judges them. */
    stl_le_p(buf + MXP_HEADER_SIZE + 4, 0xffffffff);
    stq_le_p(buf + MXP_HEADER_SIZE + 8, ~0ULL);
    fd = hostile_link(&a, log, NULL, &hello, NULL);
    wait_link(&a, NULL, true);
    peer_send_raw(fd, buf, len, -1);
    expect_silent_close(fd);
    assert_dropped(&a, log, "link down: shutting down");
    g_assert(!log_has(log, "bad BYE"));
    g_assert_cmpuint(mx_stat(&a, "link-ups"), ==, 1);
    side_stop(&a);
}

/*
 * The peer stops in the middle of a message: its bytes are no sign of
 * life, and the link goes down once the access timeout has passed.  The
 * heartbeat is longer than that, so an unanswered PING cannot be why.
 */
static void test_hostile_unfinished(void)
{
    g_autofree char *log = case_log("unfinished");
    MxpMsg hello = tool_hello(0);
    uint8_t buf[MXP_MAX_MESSAGE];
    int64_t t0;
    Side a;
    int fd;

    fd = hostile_link(&a, log, "timeout=300,heartbeat=200", &hello, NULL);
    encode_ping(buf);
    wait_link(&a, NULL, true);
    t0 = g_get_monotonic_time();
    peer_send_raw(fd, buf, 10, -1);
    expect_silent_close(fd);
    g_assert_cmpint(g_get_monotonic_time() - t0, >=, 300 * 1000);
    assert_dropped(&a, log, "link down: the peer left a message unfinished");
    g_assert(!log_has(log, "did not answer PING"));
    side_stop(&a);
}

/* ---- accesses outside the export policy ---- */

#define POLICY_EXPORTS  "export=0x1000000+1M:rw;0x2000000+4K:ro;" \
                        "0xd0000000+1M:rw"

/* A READ or WRITE of @size bytes at @addr and its reply. */
static void peer_access(int fd, uint16_t type, uint64_t addr, uint32_t size,
                        MxpMsg *reply)
{
    static uint64_t id;
    static uint8_t data[MXP_MAX_DATA];
    MxpMsg req = {
        .hdr = { .type = type, .id = ++id },
        .u.access = { .addr = addr, .size = size },
    };
    int rfd;

    memset(data, 0xee, sizeof(data));
    if (type == MXP_WRITE) {
        req.u.access.data = data;
    }
    peer_call(fd, &req, reply, &rfd);
    g_assert_cmpint(rfd, ==, -1);
    g_assert_cmpuint(reply->hdr.id, ==, req.hdr.id);
}

/* The peer's READ or WRITE is refused with ERROR @code. */
static void expect_refused(int fd, uint16_t type, uint64_t addr,
                           uint32_t size, uint32_t code)
{
    MxpMsg reply;

    peer_access(fd, type, addr, size, &reply);
    g_assert_cmpuint(reply.hdr.type, ==, MXP_ERROR);
    g_assert_cmpuint(reply.u.error.code, ==, code);
    g_assert_cmpuint(reply.u.error.request_type, ==, type);
    g_assert_cmphex(reply.u.error.addr, ==, addr);
}

/* ... and a READ inside the export still works afterwards. */
static void expect_served(Side *a, int fd)
{
    uint64_t served = mx_stat(a, "served-reads");
    MxpMsg reply;

    qtest_writel(a->qts, 0x1000100, 0x600dcafe);
    peer_access(fd, MXP_READ, 0x1000100, 4, &reply);
    g_assert_cmpuint(reply.hdr.type, ==, MXP_READ_REPLY);
    g_assert_cmphex(ldl_le_p(reply.u.access.data), ==, 0x600dcafe);
    g_assert_cmpuint(mx_stat(a, "served-reads"), ==, served + 1);
    g_assert(link_up(a));
    g_assert_cmpint(qmp_latency(a->qts), <, 100 * 1000);
}

/* Outside every export, and across an export's end: DENIED. */
static void test_hostile_access_denied(void)
{
    g_autofree char *log = case_log("denied");
    MxpMsg hello = tool_hello(MXP_FEAT_BULK);
    uint64_t refused;
    Side a;
    int fd;

    fd = hostile_link(&a, log, POLICY_EXPORTS, &hello, NULL);
    qtest_writel(a.qts, 0x3000000, 0x11111111);
    qtest_writel(a.qts, 0x10ffffc, 0x22222222);
    refused = mx_stat(&a, "refused-accesses");
    expect_refused(fd, MXP_READ, 0x3000000, 4, MXP_E_DENIED);
    expect_refused(fd, MXP_WRITE, 0x3000000, 4, MXP_E_DENIED);
    expect_refused(fd, MXP_READ, 0x10ffffe, 4, MXP_E_DENIED);
    expect_refused(fd, MXP_WRITE, 0x10ffffe, 4, MXP_E_DENIED);
    expect_refused(fd, MXP_WRITE, 0x10fff00, 4096, MXP_E_DENIED);
    g_assert_cmpuint(mx_stat(&a, "refused-accesses"), ==, refused + 5);
    g_assert_cmphex(qtest_readl(a.qts, 0x3000000), ==, 0x11111111);
    g_assert_cmphex(qtest_readl(a.qts, 0x10ffffc), ==, 0x22222222);
    expect_served(&a, fd);
    close(fd);
    side_stop(&a);
}

/* WRITE to a read-only export: READ_ONLY, and nothing is written. */
static void test_hostile_access_read_only(void)
{
    g_autofree char *log = case_log("read-only");
    MxpMsg hello = tool_hello(MXP_FEAT_BULK), reply;
    uint64_t refused;
    Side a;
    int fd;

    fd = hostile_link(&a, log, POLICY_EXPORTS, &hello, NULL);
    qtest_writel(a.qts, 0x2000000, 0x33333333);
    qtest_writel(a.qts, 0x2000ffc, 0x44444444);
    refused = mx_stat(&a, "refused-accesses");
    expect_refused(fd, MXP_WRITE, 0x2000000, 4, MXP_E_READ_ONLY);
    expect_refused(fd, MXP_WRITE, 0x2000000, 4096, MXP_E_READ_ONLY);
    /* Across its end it is not inside one export at all. */
    expect_refused(fd, MXP_WRITE, 0x2000ffe, 4, MXP_E_DENIED);
    g_assert_cmpuint(mx_stat(&a, "refused-accesses"), ==, refused + 3);
    g_assert_cmphex(qtest_readl(a.qts, 0x2000000), ==, 0x33333333);
    g_assert_cmphex(qtest_readl(a.qts, 0x2000ffc), ==, 0x44444444);
    peer_access(fd, MXP_READ, 0x2000000, 4, &reply);
    g_assert_cmpuint(reply.hdr.type, ==, MXP_READ_REPLY);
    g_assert_cmphex(ldl_le_p(reply.u.access.data), ==, 0x33333333);
    expect_served(&a, fd);
    close(fd);
    side_stop(&a);
}

/*
 * Sizes other than 1, 2, 4 and 8 without BULK, and sizes above the
 * effective max_data with it: UNSUPPORTED, nothing accessed.
 */
static void test_hostile_access_unsupported(void)
{
    g_autofree char *log = case_log("unsupported");
    g_autofree char *sock = sock_path("hostile");
    MxpMsg hello = tool_hello(0);
    uint64_t refused;
    Side a;
    int fd;

    fd = hostile_link(&a, log, POLICY_EXPORTS, &hello, NULL);
    qtest_writel(a.qts, 0x1000000, 0x55555555);
    refused = mx_stat(&a, "refused-accesses");
    expect_refused(fd, MXP_READ, 0x1000000, 3, MXP_E_UNSUPPORTED);
    expect_refused(fd, MXP_WRITE, 0x1000000, 16, MXP_E_UNSUPPORTED);
    expect_refused(fd, MXP_READ, 0x1000000, 4096, MXP_E_UNSUPPORTED);
    g_assert_cmphex(qtest_readl(a.qts, 0x1000000), ==, 0x55555555);
    expect_served(&a, fd);
    close(fd);
    wait_link(&a, NULL, false);

    /* BULK, but a max_data of 8 bytes. */
    hello = tool_hello(MXP_FEAT_BULK);
    hello.u.hello.max_data = 8;
    fd = peer_connect_hello(sock, &hello, NULL);
    expect_refused(fd, MXP_WRITE, 0x1000000, 9, MXP_E_UNSUPPORTED);
    g_assert_cmphex(qtest_readl(a.qts, 0x1000000), ==, 0x55555555);
    g_assert_cmpuint(mx_stat(&a, "refused-accesses"), ==, refused + 4);
    expect_served(&a, fd);
    g_assert_cmpuint(mx_stat(&a, "link-ups"), ==, 2);
    close(fd);
    side_stop(&a);
}

/*
 * An export over a hole of the map (nothing at 0xd0000000 on pc with
 * 128 MiB of RAM): ACCESS, and the link stays up.
 */
static void test_hostile_access_unassigned(void)
{
    g_autofree char *log = case_log("unassigned");
    MxpMsg hello = tool_hello(MXP_FEAT_BULK);
    uint64_t refused, served;
    Side a;
    int fd;

    fd = hostile_link(&a, log, POLICY_EXPORTS, &hello, NULL);
    refused = mx_stat(&a, "refused-accesses");
    served = mx_stat(&a, "served-reads") + mx_stat(&a, "served-writes");
    expect_refused(fd, MXP_READ, 0xd0000000, 4, MXP_E_ACCESS);
    expect_refused(fd, MXP_WRITE, 0xd0000100, 8, MXP_E_ACCESS);
    expect_refused(fd, MXP_READ, 0xd0001000, 4096, MXP_E_ACCESS);
    g_assert_cmpuint(mx_stat(&a, "refused-accesses"), ==, refused + 3);
    g_assert_cmpuint(mx_stat(&a, "served-reads") +
                     mx_stat(&a, "served-writes"), ==, served);
    expect_served(&a, fd);
    close(fd);
    side_stop(&a);
}

/* ---- doorbell abuse on a socket-doorbell link ---- */

static void peer_doorbell(int fd, uint16_t vector, const char *payload)
{
    MxpMsg db = {
        .hdr = { .type = MXP_DOORBELL },
        .u.doorbell = { .vector = vector, .size = strlen(payload),
                        .data = (const uint8_t *)payload },
    };

    peer_send(fd, &db, -1);
}

/* A DOORBELL for a vector QEMU does not have: BAD_VECTOR, link down. */
static void test_hostile_doorbell_vector(void)
{
    g_autofree char *log = case_log("db-vector");
    MxpMsg hello = tool_hello(0);
    MxpHello theirs;
    Side a;
    int fd;

    hello.u.hello.vectors = 1;
    hello.u.hello.queue_depth = 4;
    fd = hostile_link(&a, log, "vectors=2", &hello, &theirs);
    g_assert_cmpuint(theirs.vectors, ==, 2);
    peer_doorbell(fd, 1, "fine");
    wait_rx(&a, 1);
    expect_doorbell(&a, 1, "fine");
    peer_doorbell(fd, 2, "no such vector");
    expect_link_error(fd, MXP_E_BAD_VECTOR, MXP_DOORBELL);
    assert_dropped(&a, log, "link down: doorbell for vector 2 of 2");
    g_assert_cmpuint(mx_stat(&a, "doorbells-received"), ==, 1);
    g_assert_cmpuint(reg_read(&a, MX_REG_DB_RX_COUNT), ==, 0);
    side_stop(&a);
}

/* One DOORBELL more than the credits QEMU's HELLO gave: BUSY, link down. */
static void test_hostile_doorbell_credit(void)
{
    g_autofree char *log = case_log("db-credit");
    MxpMsg hello = tool_hello(0);
    MxpHello theirs;
    Side a;
    int fd;

    fd = hostile_link(&a, log, "queue-depth=2", &hello, &theirs);
    g_assert_cmpuint(theirs.queue_depth, ==, 2);
    peer_doorbell(fd, 0, "one");
    peer_doorbell(fd, 0, "two");
    wait_rx(&a, 2);
    peer_doorbell(fd, 0, "three");
    expect_link_error(fd, MXP_E_BUSY, MXP_DOORBELL);
    assert_dropped(&a, log, "link down: doorbell without credit");
    g_assert_cmpuint(mx_stat(&a, "doorbells-received"), ==, 2);
    expect_doorbell(&a, 0, "one");
    expect_doorbell(&a, 0, "two");
    side_stop(&a);
}

/*
 * Doorbells followed at once by BYE, in one write: each was delivered
 * when it was sent, so each reaches the queue although the link is gone
 * before the device's worker queues it.  The next link is granted only
 * the slots they leave free.
 */
static void test_hostile_doorbell_then_bye(void)
{
    g_autofree char *log = case_log("db-bye");
    g_autofree char *sock = sock_path("hostile");
    MxpMsg hello = tool_hello(0), bye = {
        .hdr = { .type = MXP_BYE },
        .u.error = { .code = MXP_E_SHUTDOWN },
    };
    uint8_t buf[9 * MXP_MAX_MESSAGE];
    char payload[16];
    MxpHello theirs;
    size_t len = 0;
    unsigned i;
    Side a;
    int fd;

    fd = hostile_link(&a, log, "queue-depth=8", &hello, &theirs);
    g_assert_cmpuint(theirs.queue_depth, ==, 8);
    wait_link(&a, NULL, true);
    for (i = 0; i < 8; i++) {
        MxpMsg db = { .hdr = { .type = MXP_DOORBELL } };

        snprintf(payload, sizeof(payload), "before-bye-%u", i);
        db.u.doorbell = (MxpDoorbell) {
            .vector = i % 2, .size = strlen(payload),
            .data = (const uint8_t *)payload,
        };
        len += peer_encode(&db, buf + len);
    }
    len += peer_encode(&bye, buf + len);
    peer_send_raw(fd, buf, len, -1);
    expect_silent_close(fd);
    assert_dropped(&a, log, "link down: shutting down");
    wait_rx(&a, 8);
    g_assert_cmpuint(mx_stat(&a, "doorbells-received"), ==, 8);

    /* A new link: no slot is free until the guest pops. */
    fd = peer_connect_hello(sock, &hello, &theirs);
    g_assert_cmpuint(theirs.queue_depth, ==, 0);
    for (i = 0; i < 8; i++) {
        snprintf(payload, sizeof(payload), "before-bye-%u", i);
        expect_doorbell(&a, i % 2, payload);
    }
    g_assert_cmpuint(reg_read(&a, MX_REG_DB_RX_COUNT), ==, 0);
    close(fd);
    side_stop(&a);
}

/*
 * The same with doorbell rings: entries the peer published (and did not
 * even signal) before its BYE reach the guest; the retired ring does not
 * take them along.
 */
static void test_hostile_ring_then_bye(void)
{
    g_autofree char *log = case_log("ring-bye");
    g_autofree char *sock = sock_path("hostile");
    MxpMsg hello = tool_hello(MXP_FEAT_DB_RING), msg, bye = {
        .hdr = { .type = MXP_BYE },
        .u.error = { .code = MXP_E_SHUTDOWN },
    };
    MxpMsg ring = { .hdr = { .type = MXP_DB_RING },
                    .u.ring_depth = RING_DEPTH };
    uint8_t buf[MXP_MAX_MESSAGE], *qemu_map = NULL;
    unsigned i, events = 0;
    uint32_t depth = 0;
    char payload[16];
    MxpHello theirs;
    Side a;
    int fd, rfd, pass;

    hello.u.hello.vectors = 2;
    hello.u.hello.queue_depth = RING_DEPTH;
    fd = hostile_link(&a, log, "queue-depth=8", &hello, &theirs);
    g_assert_cmpuint(theirs.queue_depth, ==, 8);
    pass = ring_memfd(true);
    peer_send(fd, &ring, pass);
    close(pass);
    for (i = 0; i < 2; i++) {
        MxpMsg event = { .hdr = { .type = MXP_DB_EVENT },
                         .u.event_vector = i };

        pass = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        peer_send(fd, &event, pass);
        close(pass);
    }
    while (!qemu_map || events < 2) {
        g_assert(peer_recv(fd, buf, &msg, &rfd));
        if (msg.hdr.type == MXP_DB_RING) {
            depth = msg.u.ring_depth;
            qemu_map = mmap(NULL, MXP_DB_RING_SIZE(depth),
                            PROT_READ | PROT_WRITE, MAP_SHARED, rfd, 0);
            g_assert(qemu_map != MAP_FAILED);
        }
        events += msg.hdr.type == MXP_DB_EVENT;
        if (rfd >= 0) {
            close(rfd);
        }
    }
    g_assert_cmpuint(depth, ==, 8);
    wait_link(&a, NULL, true);

    /* Eight entries and the producer index, no eventfd signal, BYE. */
    for (i = 0; i < 8; i++) {
        uint8_t *slot = qemu_map + MXP_DB_RING_ENTRIES +
                        i * MXP_DB_ENTRY_SIZE;

        snprintf(payload, sizeof(payload), "ring-bye-%u", i);
        stw_he_p(slot, i % 2);
        stw_he_p(slot + 2, strlen(payload));
        stl_he_p(slot + 4, 0);
        memcpy(slot + 8, payload, strlen(payload));
    }
    qatomic_store_release((uint32_t *)(qemu_map + MXP_DB_RING_PRODUCER), 8);
    peer_send(fd, &bye, -1);
    expect_silent_close(fd);
    assert_dropped(&a, log, "link down: shutting down");
    wait_rx(&a, 8);
    g_assert_cmpuint(mx_stat(&a, "doorbells-received"), ==, 8);
    g_assert_cmpuint(reg_read(&a, MX_REG_INTR_STATUS) & MX_INTR_DOORBELL,
                     !=, 0);

    /* A new link: no slot is free until the guest pops. */
    hello = tool_hello(0);
    fd = peer_connect_hello(sock, &hello, &theirs);
    g_assert_cmpuint(theirs.queue_depth, ==, 0);
    for (i = 0; i < 8; i++) {
        snprintf(payload, sizeof(payload), "ring-bye-%u", i);
        expect_doorbell(&a, i % 2, payload);
    }
    g_assert_cmpuint(reg_read(&a, MX_REG_DB_RX_COUNT), ==, 0);
    munmap(qemu_map, MXP_DB_RING_SIZE(depth));
    close(fd);
    side_stop(&a);
}

/*
 * CREDIT returns what a DOORBELL spent; one more than QEMU ever sent
 * would raise its credits above the peer's queue_depth.
 */
static void test_hostile_credit_unowed(void)
{
    g_autofree char *log = case_log("credit");
    MxpMsg hello = tool_hello(0), msg;
    MxpMsg credit = { .hdr = { .type = MXP_CREDIT }, .u.credits = 1 };
    uint8_t buf[MXP_MAX_MESSAGE];
    int64_t deadline = g_get_monotonic_time() + LINK_WAIT_MS * 1000;
    Side a;
    int fd, rfd;

    hello.u.hello.vectors = 1;
    hello.u.hello.queue_depth = 4;
    fd = hostile_link(&a, log, NULL, &hello, NULL);
    wait_link(&a, NULL, true);
    g_assert_cmpuint(reg_read(&a, MX_REG_DB_TX_CREDITS), ==, 4);
    send_doorbell(&a, 0, "spent");
    g_assert_cmpuint(reg_read(&a, MX_REG_DB_TX_STATUS), ==, MX_TX_OK);
    do {
        g_assert(peer_recv(fd, buf, &msg, &rfd));
    } while (msg.hdr.type != MXP_DOORBELL);
    g_assert_cmpuint(reg_read(&a, MX_REG_DB_TX_CREDITS), ==, 3);
    peer_send(fd, &credit, -1);
    while (reg_read(&a, MX_REG_DB_TX_CREDITS) != 4) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
    }
    g_assert(link_up(&a));
    peer_send(fd, &credit, -1);
    expect_link_error(fd, MXP_E_PROTOCOL, 0);
    assert_dropped(&a, log, "link down: more credits than queue slots");
    side_stop(&a);
}

/* ---- doorbell-ring abuse during the handshake ---- */

/*
 * A peer that agrees on DB_RING with @vectors and sends @msgs (DB_RING
 * with a sealed ring, or DB_EVENT with an eventfd): QEMU closes the link
 * before it is up, with "closing link: the peer sent @what".
 */
static void run_hostile_ring_handshake(uint8_t vectors, const MxpMsg *msgs,
                                       unsigned n, const char *what)
{
    g_autofree char *log = case_log("ring-handshake");
    g_autofree char *reason = g_strdup_printf("closing link: the peer sent"
                                              " %s", what);
    MxpMsg hello = tool_hello(MXP_FEAT_DB_RING);
    unsigned i;
    Side a;
    int fd;

    hello.u.hello.vectors = vectors;
    hello.u.hello.queue_depth = RING_DEPTH;
    fd = hostile_link(&a, log, NULL, &hello, NULL);
    for (i = 0; i < n; i++) {
        int pass = msgs[i].hdr.type == MXP_DB_RING ? ring_memfd(true) :
                   eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

        g_assert_cmpint(pass, >=, 0);
        peer_send(fd, &msgs[i], pass);
        close(pass);
    }
    expect_link_error(fd, MXP_E_PROTOCOL, 0);
    wait_log(log, reason);
    g_assert(!link_up(&a));
    g_assert_cmpuint(mx_stat(&a, "link-ups"), ==, 0);
    g_assert_cmpint(qmp_latency(a.qts), <, 100 * 1000);
    side_stop(&a);
}

/* A DB_EVENT for a vector beyond those the peer's HELLO announced. */
static void test_hostile_ring_event_beyond(void)
{
    const MxpMsg msgs[] = {
        { .hdr = { .type = MXP_DB_RING }, .u.ring_depth = RING_DEPTH },
        { .hdr = { .type = MXP_DB_EVENT }, .u.event_vector = 0 },
        { .hdr = { .type = MXP_DB_EVENT }, .u.event_vector = 2 },
    };

    run_hostile_ring_handshake(2, msgs, ARRAY_SIZE(msgs),
                               "DB_EVENT for a vector its HELLO did not"
                               " announce");
}

static void test_hostile_ring_second(void)
{
    const MxpMsg msgs[] = {
        { .hdr = { .type = MXP_DB_RING }, .u.ring_depth = RING_DEPTH },
        { .hdr = { .type = MXP_DB_RING }, .u.ring_depth = RING_DEPTH },
    };

    run_hostile_ring_handshake(1, msgs, ARRAY_SIZE(msgs),
                               "a second DB_RING");
}

/* ---- boot requests to a device that is not a boot target ---- */

static void expect_boot_refused(int fd, MxpMsg *req, uint32_t code,
                                uint64_t addr)
{
    MxpMsg reply;
    int rfd;

    peer_call(fd, req, &reply, &rfd);
    g_assert_cmpuint(reply.hdr.type, ==, MXP_ERROR);
    g_assert_cmpuint(reply.u.error.code, ==, code);
    g_assert_cmpuint(reply.u.error.request_type, ==, req->hdr.type);
    g_assert_cmphex(reply.u.error.addr, ==, addr);
}

static void assert_running(Side *a)
{
    QDict *rsp = qtest_qmp(a->qts, "{'execute': 'query-status'}");

    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(rsp, "return"), "status"),
                    ==, "running");
    qobject_unref(rsp);
}

/*
 * BOOT, RESET and HALT to a side that is not a boot target: ERROR
 * NOT_BOOT_TARGET (UNSUPPORTED without feature BOOT), nothing happens
 * to the VM, and the link stays up.
 */
static void test_hostile_boot_not_target(void)
{
    g_autofree char *log = case_log("boot");
    g_autofree char *sock = sock_path("hostile");
    MxpMsg hello = tool_hello(MXP_FEAT_BOOT);
    MxpMsg boot = {
        .hdr = { .type = MXP_BOOT, .id = 1 },
        .u.boot = { .entry = 0x100000, .nargs = 1, .args = { 7 } },
    };
    MxpMsg reset = { .hdr = { .type = MXP_RESET, .id = 2 } };
    MxpMsg halt = { .hdr = { .type = MXP_HALT, .id = 3 } };
    MxpHello theirs;
    Side a;
    int fd;

    fd = hostile_link(&a, log, POLICY_EXPORTS, &hello, &theirs);
    g_assert_cmpuint(theirs.role, ==, MXP_ROLE_DEVICE);
    g_assert(theirs.features & MXP_FEAT_BOOT);
    qtest_writel(a.qts, 0x1000100, 0x600dcafe);
    expect_boot_refused(fd, &boot, MXP_E_NOT_BOOT_TARGET, 0x100000);
    expect_boot_refused(fd, &reset, MXP_E_NOT_BOOT_TARGET, 0);
    expect_boot_refused(fd, &halt, MXP_E_NOT_BOOT_TARGET, 0);
    assert_running(&a);
    g_assert_cmpuint(reg_read(&a, MX_REG_BOOT_STATE), ==, MXP_BOOT_NONE);
    expect_served(&a, fd);
    close(fd);
    wait_link(&a, NULL, false);

    /* Without feature BOOT the same requests are UNSUPPORTED. */
    hello = tool_hello(0);
    fd = peer_connect_hello(sock, &hello, NULL);
    expect_boot_refused(fd, &boot, MXP_E_UNSUPPORTED, 0x100000);
    expect_boot_refused(fd, &halt, MXP_E_UNSUPPORTED, 0);
    assert_running(&a);
    expect_served(&a, fd);
    close(fd);
    side_stop(&a);
}

/* ---- slow and silent peers ---- */

/*
 * A peer that connects and never sends HELLO does not keep the one link
 * of a listening QEMU: it is closed after the access timeout, and the
 * next peer gets the link.
 */
static void test_hostile_no_hello(void)
{
    g_autofree char *log = case_log("no-hello");
    g_autofree char *sock = sock_path("hostile");
    MxpMsg msg, hello = tool_hello(0);
    uint8_t buf[MXP_MAX_MESSAGE];
    int64_t t0;
    Side a;
    int fd, rfd;

    side_start_logged(&a, log, sock, true, "timeout=300,heartbeat=100",
                      NULL);
    fd = peer_dial(sock);
    g_assert(peer_recv(fd, buf, &msg, &rfd));
    g_assert_cmpuint(msg.hdr.type, ==, MXP_HELLO);
    t0 = g_get_monotonic_time();
    g_assert_cmpuint(expect_silent_close(fd), ==, 0);
    g_assert_cmpint(g_get_monotonic_time() - t0, >=, 250 * 1000);
    wait_log(log, "closing link: the peer sent no HELLO");
    g_assert_cmpuint(mx_stat(&a, "link-ups"), ==, 0);
    g_assert_cmpint(qmp_latency(a.qts), <, 100 * 1000);

    fd = peer_connect_hello(sock, &hello, NULL);
    wait_link(&a, NULL, true);
    g_assert_cmpuint(mx_stat(&a, "link-ups"), ==, 1);
    close(fd);
    side_stop(&a);
}

/*
 * A peer without feature HEARTBEAT that never answers PING is timed out
 * all the same: three heartbeat intervals after the PING.
 */
static void test_hostile_ping_unanswered(void)
{
    g_autofree char *log = case_log("ping");
    MxpMsg msg, hello = tool_hello(MXP_FEAT_BULK);
    uint8_t buf[MXP_MAX_MESSAGE];
    MxpHello theirs;
    int64_t t0;
    Side a;
    int fd, rfd;

    fd = hostile_link(&a, log, "heartbeat=100", &hello, &theirs);
    g_assert(theirs.features & MXP_FEAT_HEARTBEAT);
    do {
        g_assert(peer_recv(fd, buf, &msg, &rfd));
    } while (msg.hdr.type != MXP_PING);
    t0 = g_get_monotonic_time();
    g_assert_cmpuint(expect_silent_close(fd), ==, 0);
    g_assert_cmpint(g_get_monotonic_time() - t0, >=, 250 * 1000);
    assert_dropped(&a, log, "link down: the peer did not answer PING");
    g_assert(!log_has(log, "no heartbeat from the peer"));
    side_stop(&a);
}

/* ---- a reconnect storm ---- */

#define STORM_CYCLES    1000

typedef struct ReconnectStorm {
    const char *sock;
    unsigned links;             /* cycles that completed a handshake */
    bool done;
} ReconnectStorm;

/*
 * Connect and hang up STORM_CYCLES times, in turn: at once, in the
 * middle of our HELLO's header, right after the handshake, and in the
 * middle of a message after the handshake.
 */
static gpointer reconnect_storm(gpointer opaque)
{
    ReconnectStorm *st = opaque;
    MxpMsg hello = tool_hello(0), read = {
        .hdr = { .type = MXP_READ, .id = 1 },
        .u.access = { .addr = 0, .size = 4 },
    };
    uint8_t buf[2 * MXP_MAX_MESSAGE];
    size_t hello_len = peer_encode(&hello, buf);
    size_t read_len = peer_encode(&read, buf + hello_len);
    unsigned i;

    for (i = 0; i < STORM_CYCLES; i++) {
        uint8_t in[MXP_MAX_MESSAGE];
        int fd = peer_dial(st->sock), rfd;
        MxpMsg msg;

        switch (i % 4) {
        case 0:
            break;
        case 1:
            g_assert(peer_recv(fd, in, &msg, &rfd));
            peer_send_raw(fd, buf, hello_len, -1);
            st->links++;
            break;
        case 2:
            peer_send_raw(fd, buf, 8, -1);
            break;
        case 3:
            g_assert(peer_recv(fd, in, &msg, &rfd));
            peer_send_raw(fd, buf, hello_len + read_len - 4, -1);
            st->links++;
            break;
        }
        close(fd);
    }
    qatomic_set(&st->done, true);
    return NULL;
}

/*
 * QEMU takes connections that close at every stage of the handshake, as
 * fast as the test can make them, answers QMP promptly throughout, counts
 * only the links that came up, and then links up with a proper peer.
 */
static void test_hostile_reconnect_storm(void)
{
    g_autofree char *log = case_log("storm");
    g_autofree char *sock = sock_path("hostile");
    ReconnectStorm st = { .sock = sock };
    int64_t deadline, worst = 0;
    unsigned samples = 0;
    MxpMsg reply;
    GThread *thread;
    Side a;
    int fd;

    side_start_logged(&a, log, sock, true, POLICY_EXPORTS, NULL);
    thread = g_thread_new("storm", reconnect_storm, &st);
    deadline = g_get_monotonic_time() + 60 * 1000 * 1000;
    while (!qatomic_read(&st.done)) {
        int64_t took = qmp_latency(a.qts);

        worst = MAX(worst, took);
        samples++;
        g_assert_cmpint(took, <, 100 * 1000);
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
    }
    g_thread_join(thread);
    g_test_message("%u connections, %u links; QMP at worst %" PRId64 " us"
                   " in %u samples", STORM_CYCLES, st.links, worst, samples);
    g_assert_cmpuint(samples, >=, 10);

    fd = peer_connect(sock);
    wait_link(&a, NULL, true);
    g_assert_cmpuint(mx_stat(&a, "link-ups"), ==, st.links + 1);
    peer_access(fd, MXP_READ, 0x1000000, 4, &reply);
    g_assert_cmpuint(reply.hdr.type, ==, MXP_READ_REPLY);
    g_assert_cmpint(qmp_latency(a.qts), <, 100 * 1000);
    close(fd);
    side_stop(&a);
}

/* ---- the device fuzzer's corpus, replayed against a real QEMU ---- */

static void replay_wait(void *opaque, int fd, int timeout_us)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };

    poll(&pfd, fd >= 0, MAX(timeout_us / 1000, 1));
}

static const MxfOps replay_ops = {
    .wait = replay_wait,
    .outl = mxf_qtest_outl,
    .writel = mxf_qtest_writel,
    .readl = mxf_qtest_readl,
};

static gint compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char **)a, *(const char **)b);
}

/*
 * Every input of tests/fuzz/corpus/device through the fuzzer's own peer,
 * in one QEMU configured as the fuzzer's: QEMU survives them all, keeps
 * greeting new connections (the peer aborts otherwise) and answers QMP.
 */
static void test_fuzz_replay(void)
{
    const char *dir = g_getenv("MEMEXPOSE_DEVICE_CORPUS");
    g_autofree char *sock = sock_path("fuzz");
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const MxfStats *stats;
    const char *name;
    QTestState *qts;
    MxfPeer *peer;
    GDir *gdir;
    guint i;

    if (!dir) {
        g_test_skip("MEMEXPOSE_DEVICE_CORPUS names no corpus directory");
        return;
    }
    gdir = g_dir_open(dir, 0, NULL);
    g_assert(gdir);
    while ((name = g_dir_read_name(gdir))) {
        g_ptr_array_add(names, g_build_filename(dir, name, NULL));
    }
    g_dir_close(gdir);
    g_ptr_array_sort(names, compare_names);
    g_assert_cmpuint(names->len, >=, 40);

    qts = qtest_initf(MXF_QEMU_ARGS_FMT, sock);
    peer = mxf_peer_new(sock, &replay_ops, qts);
    mxf_peer_setup_pci(peer);
    for (i = 0; i < names->len; i++) {
        g_autofree char *data = NULL;
        gsize len;

        g_assert(g_file_get_contents(names->pdata[i], &data, &len, NULL));
        mxf_peer_run(peer, (const uint8_t *)data, len);
    }
    stats = mxf_peer_stats(peer);
    g_test_message("%" PRIu64 " inputs, %" PRIu64 " links, %" PRIu64
                   " ended by QEMU, %" PRIu64 " given up", stats->inputs,
                   stats->links, stats->drops, stats->abandoned);
    g_assert_cmpuint(stats->inputs, ==, names->len);
    g_assert_cmpuint(stats->links, >, 0);
    g_assert_cmpuint(stats->drops, >, 0);
    mxf_peer_free(peer);
    g_assert_cmpint(qmp_latency(qts), <, 1000 * 1000);
    qtest_quit(qts);
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
    qtest_add_func("/memexpose/doorbell-one-trap", test_doorbell_one_trap);
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
    qtest_add_func("/memexpose/monitor", test_monitor);
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
    qtest_add_func("/memexpose/hostile/fd-pipe", test_hostile_fd_pipe);
    qtest_add_func("/memexpose/hostile/fd-socket", test_hostile_fd_socket);
    qtest_add_func("/memexpose/hostile/fd-eventfd", test_hostile_fd_eventfd);
    qtest_add_func("/memexpose/hostile/fd-too-small",
                   test_hostile_fd_too_small);
    qtest_add_func("/memexpose/hostile/map-error-denied",
                   test_hostile_map_error_denied);
    qtest_add_func("/memexpose/hostile/map-error-unsupported",
                   test_hostile_map_error_unsupported);
    qtest_add_func("/memexpose/hostile/unknown-type",
                   test_hostile_unknown_type);
    qtest_add_func("/memexpose/hostile/too-long", test_hostile_too_long);
    qtest_add_func("/memexpose/hostile/unknown-flag",
                   test_hostile_unknown_flag);
    qtest_add_func("/memexpose/hostile/reserved-field",
                   test_hostile_reserved_field);
    qtest_add_func("/memexpose/hostile/fd-flag-without-fd",
                   test_hostile_fd_flag_without_fd);
    qtest_add_func("/memexpose/hostile/fd-without-flag",
                   test_hostile_fd_without_flag);
    qtest_add_func("/memexpose/hostile/fd-mid-message",
                   test_hostile_fd_mid_message);
    qtest_add_func("/memexpose/hostile/unfinished", test_hostile_unfinished);
    qtest_add_func("/memexpose/hostile/bye-request-type",
                   test_hostile_bye_request_type);
    qtest_add_func("/memexpose/hostile/access-denied",
                   test_hostile_access_denied);
    qtest_add_func("/memexpose/hostile/access-read-only",
                   test_hostile_access_read_only);
    qtest_add_func("/memexpose/hostile/access-unsupported",
                   test_hostile_access_unsupported);
    qtest_add_func("/memexpose/hostile/access-unassigned",
                   test_hostile_access_unassigned);
    qtest_add_func("/memexpose/hostile/doorbell-vector",
                   test_hostile_doorbell_vector);
    qtest_add_func("/memexpose/hostile/doorbell-credit",
                   test_hostile_doorbell_credit);
    qtest_add_func("/memexpose/hostile/doorbell-then-bye",
                   test_hostile_doorbell_then_bye);
    qtest_add_func("/memexpose/hostile/ring-then-bye",
                   test_hostile_ring_then_bye);
    qtest_add_func("/memexpose/hostile/credit-unowed",
                   test_hostile_credit_unowed);
    qtest_add_func("/memexpose/hostile/ring-event-beyond",
                   test_hostile_ring_event_beyond);
    qtest_add_func("/memexpose/hostile/ring-second", test_hostile_ring_second);
    qtest_add_func("/memexpose/hostile/boot-not-target",
                   test_hostile_boot_not_target);
    qtest_add_func("/memexpose/hostile/no-hello", test_hostile_no_hello);
    qtest_add_func("/memexpose/hostile/ping-unanswered",
                   test_hostile_ping_unanswered);
    qtest_add_func("/memexpose/hostile/reconnect-storm",
                   test_hostile_reconnect_storm);
    qtest_add_func("/memexpose/fuzz-replay", test_fuzz_replay);
    ret = g_test_run();

    g_rmdir(tmpdir);
    g_free(tmpdir);
    return ret;
}
