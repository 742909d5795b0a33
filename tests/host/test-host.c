/*
 * libmemexpose and memexpose-host against a real QEMU (TAP output).
 *
 * Usage: test-host QEMU MEMEXPOSE-HOST [QEMU-AARCH64 FIRMWARE]
 *
 * Each VM is a QEMU started here with -accel qtest: its qtest socket
 * shows the VM's own view of its memory and drives the device's
 * registers, its QMP socket answers qom-get and pmemsave.  The library
 * links to the device's chardev.  While a qtest or QMP command is
 * outstanding the test keeps dispatching the link, since the command
 * may wait for the library (a forwarded window access, INVALIDATE).
 * A case that cannot run is reported as "not ok", never as passed.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libmemexpose.h"
#include "memexpose-regs.h"
#include "memexpose-wire.h"

#define MX_SLOT         4
#define SHM_SLOT        5
#define REGS_ADDR       0xe0000000ULL
#define WINDOW_ADDR     0xe1000000ULL
#define WINDOW_SIZE     (16u << 20)
#define SHM_ADDR        0xe8000000ULL
#define SHM_SIZE        (1u << 20)

/* The library's exports for the VM's window (test_window). */
#define BUF_ADDR        0x10000000ULL
#define BUF_SIZE        (1u << 20)
#define RO_ADDR         0x10100000ULL
#define RO_SIZE         (64u << 10)
#define CB_ADDR         0x20000000ULL

typedef struct LineBuf {
    char buf[1 << 16];
    size_t len;
} LineBuf;

typedef struct Vm {
    pid_t pid;
    int qt;                     /* qtest socket */
    int qmp;
    char mx_sock[108];
    char log[128];
    LineBuf qtb, qmpb;
} Vm;

static const char *qemu, *host_tool;
static mx_link *l1;
static char tmpdir[64];
static int failed_checks;
static unsigned test_no, tests_failed;

#define CHECK(cond, ...)                                        \
    do {                                                        \
        if (!(cond)) {                                          \
            printf("# %s:%d: check failed: %s: ", __func__,     \
                   __LINE__, #cond);                            \
            printf(__VA_ARGS__);                                \
            printf("\n");                                       \
            failed_checks++;                                    \
        }                                                       \
    } while (0)

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    size_t i;

    for (i = 0; i < n; i++) {
        seed = seed * 1103515245 + 12345;
        p[i] = seed >> 16;
    }
}

/* ---- QEMU, qtest and QMP ---- */

/* Connect to a socket QEMU (@pid) creates; give up if it exits. */
static int connect_retry(const char *path, int ms, pid_t pid)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int64_t deadline = now_ms() + ms;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            return fd;
        }
        close(fd);
        if (now_ms() > deadline || waitpid(pid, NULL, WNOHANG) == pid) {
            return -1;
        }
        usleep(20000);
    }
}

/*
 * Read one line from @fd into @out (without the newline), dispatching
 * @l meanwhile; false on EOF or after @ms.
 */
static bool vm_line(LineBuf *b, int fd, mx_link *l, char *out, size_t cap,
                    int ms)
{
    int64_t deadline = now_ms() + ms;

    for (;;) {
        char *nl = memchr(b->buf, '\n', b->len);
        struct pollfd p[2] = {
            { .fd = fd, .events = POLLIN },
            { .fd = l && mx_link_up(l) ? mx_fd(l) : -1, .events = POLLIN },
        };
        ssize_t n;

        if (nl) {
            size_t len = nl - b->buf;

            if (len >= cap) {
                len = cap - 1;
            }
            memcpy(out, b->buf, len);
            out[len] = '\0';
            b->len -= nl + 1 - b->buf;
            memmove(b->buf, nl + 1, b->len);
            return true;
        }
        if (now_ms() > deadline || b->len == sizeof(b->buf)) {
            return false;
        }
        if (l && mx_link_up(l) && mx_want_write(l)) {
            p[1].events |= POLLOUT;
        }
        poll(p, 2, 50);
        if (p[1].revents) {
            mx_dispatch(l, 0);
        }
        if (p[0].revents) {
            n = read(fd, b->buf + b->len, sizeof(b->buf) - b->len);
            if (n <= 0) {
                return false;
            }
            b->len += n;
        }
    }
}

/* A qtest command; the reply line goes to @out.  True if "OK". */
static bool qt(Vm *vm, mx_link *l, char *out, size_t cap,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static bool qt(Vm *vm, mx_link *l, char *out, size_t cap,
               const char *fmt, ...)
{
    static char line[1 << 16], cmd[1 << 16];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(cmd, sizeof(cmd) - 1, fmt, ap);
    va_end(ap);
    cmd[n++] = '\n';
    if (write(vm->qt, cmd, n) != n) {
        return false;
    }
    if (!vm_line(&vm->qtb, vm->qt, l, out ? out : line,
                 out ? cap : sizeof(line), 20000)) {
        return false;
    }
    return !strncmp(out ? out : line, "OK", 2);
}

static uint64_t qt_read(Vm *vm, mx_link *l, const char *op, uint64_t addr)
{
    char line[128];

    if (!qt(vm, l, line, sizeof(line), "%s 0x%" PRIx64, op, addr)) {
        return UINT64_MAX;
    }
    return strtoull(line + 3, NULL, 16);
}

static uint32_t qt_readl(Vm *vm, mx_link *l, uint64_t addr)
{
    return qt_read(vm, l, "readl", addr);
}

static bool qt_write(Vm *vm, mx_link *l, const char *op, uint64_t addr,
                     uint64_t val)
{
    return qt(vm, l, NULL, 0, "%s 0x%" PRIx64 " 0x%" PRIx64, op, addr, val);
}

static bool qt_writel(Vm *vm, mx_link *l, uint64_t addr, uint32_t val)
{
    return qt_write(vm, l, "writel", addr, val);
}

static bool qt_memread(Vm *vm, mx_link *l, uint64_t addr, void *buf,
                       size_t len)
{
    static char line[1 << 16];
    uint8_t *p = buf;
    size_t i;

    if (2 * len + 8 > sizeof(line) ||
        !qt(vm, l, line, sizeof(line), "read 0x%" PRIx64 " 0x%zx", addr,
            len)) {
        return false;
    }
    for (i = 0; i < len; i++) {
        unsigned v;

        if (sscanf(line + 5 + 2 * i, "%2x", &v) != 1) {
            return false;
        }
        p[i] = v;
    }
    return true;
}

static bool qt_memwrite(Vm *vm, mx_link *l, uint64_t addr, const void *buf,
                        size_t len)
{
    static char hex[1 << 15];
    const uint8_t *p = buf;
    size_t i;

    if (2 * len + 1 > sizeof(hex)) {
        return false;
    }
    for (i = 0; i < len; i++) {
        sprintf(hex + 2 * i, "%02x", p[i]);
    }
    return qt(vm, l, NULL, 0, "write 0x%" PRIx64 " 0x%zx 0x%s", addr, len,
              hex);
}

/* PCI configuration space through ports 0xcf8/0xcfc. */
static void pci_cfg_write(Vm *vm, mx_link *l, unsigned slot, unsigned reg,
                          uint32_t val, unsigned size)
{
    uint32_t a = 0x80000000u | (slot << 11) | (reg & 0xfc);

    qt_write(vm, l, "outl", 0xcf8, a);
    qt_write(vm, l, size == 2 ? "outw" : "outl", 0xcfc + (reg & 3), val);
}

/* A QMP command; true if it returned, the line in @out. */
static bool qmp(Vm *vm, mx_link *l, char *out, size_t cap,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static bool qmp(Vm *vm, mx_link *l, char *out, size_t cap,
                const char *fmt, ...)
{
    char cmd[1024], line[4096];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(cmd, sizeof(cmd) - 1, fmt, ap);
    va_end(ap);
    cmd[n++] = '\n';
    if (write(vm->qmp, cmd, n) != n) {
        return false;
    }
    for (;;) {
        if (!vm_line(&vm->qmpb, vm->qmp, l, line, sizeof(line), 60000)) {
            return false;
        }
        if (strstr(line, "\"event\"")) {
            continue;
        }
        if (out && cap) {
            size_t n = strnlen(line, cap - 1);

            memcpy(out, line, n);
            out[n] = '\0';
        }
        return strstr(line, "\"return\"") != NULL;
    }
}

static uint64_t qom_u64(Vm *vm, mx_link *l, const char *prop)
{
    char line[256];
    char *r;

    if (!qmp(vm, l, line, sizeof(line), "{\"execute\": \"qom-get\","
             " \"arguments\": {\"path\": \"/machine/peripheral/mx\","
             " \"property\": \"%s\"}}", prop)) {
        return UINT64_MAX;
    }
    r = strstr(line, "\"return\":");
    return r ? strtoull(r + 9, NULL, 10) : UINT64_MAX;
}

static void vm_print_log(Vm *vm)
{
    char line[512];
    FILE *f = fopen(vm->log, "r");

    while (f && fgets(line, sizeof(line), f)) {
        printf("# qemu: %s", line);
    }
    if (f) {
        fclose(f);
    }
}

/*
 * Start a pc VM with 64 MiB (or @ram_mb) of shared memfd RAM, a
 * memexpose-pci at slot 4 (registers and window mapped) with @props,
 * and @extra devices.  @listen_side: the library listens, the device
 * connects (else the device's chardev is the server).
 */
static bool vm_start(Vm *vm, const char *name, unsigned ram_mb,
                     const char *props, const char *extra, bool client)
{
    static unsigned seq;
    char qt_path[108], qmp_path[108], cmd[2048], line[4096];
    int lfd;

    memset(vm, 0, sizeof(*vm));
    seq++;
    snprintf(vm->mx_sock, sizeof(vm->mx_sock), "%s/mx%u.sock", tmpdir, seq);
    snprintf(qt_path, sizeof(qt_path), "%s/qt%u.sock", tmpdir, seq);
    snprintf(qmp_path, sizeof(qmp_path), "%s/qmp%u.sock", tmpdir, seq);
    snprintf(vm->log, sizeof(vm->log), "%s/qemu%u.log", tmpdir, seq);
    snprintf(cmd, sizeof(cmd),
             "exec '%s' -machine pc -accel qtest -display none -nodefaults"
             " -m %u -object memory-backend-memfd,id=ram,size=%uM,share=on"
             " -machine memory-backend=ram"
             " -qtest unix:%s,server=on,wait=off"
             " -qmp unix:%s,server=on,wait=off"
             " -chardev socket,id=mx,path=%s%s"
             " -device 'memexpose-pci,id=mx,chardev=mx,name=%s,addr=%u.0,"
             "window-size=%u%s%s' %s",
             qemu, ram_mb, ram_mb, qt_path, qmp_path, vm->mx_sock,
             client ? ",reconnect-ms=100" : ",server=on,wait=off", name,
             MX_SLOT, WINDOW_SIZE, props ? "," : "", props ? props : "",
             extra ? extra : "");
    vm->pid = fork();
    if (vm->pid == 0) {
        lfd = open(vm->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(lfd, 1);
        dup2(lfd, 2);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    vm->qt = connect_retry(qt_path, 20000, vm->pid);
    vm->qmp = vm->qt < 0 ? -1 : connect_retry(qmp_path, 20000, vm->pid);
    if (vm->qt < 0 || vm->qmp < 0 ||
        !vm_line(&vm->qmpb, vm->qmp, NULL, line, sizeof(line), 20000) ||
        !qmp(vm, NULL, NULL, 0, "{\"execute\": \"qmp_capabilities\"}")) {
        printf("# cannot start QEMU: %s\n", cmd);
        vm_print_log(vm);
        return false;
    }
    /* Registers at REGS_ADDR, the window at WINDOW_ADDR. */
    pci_cfg_write(vm, NULL, MX_SLOT, 0x10, (uint32_t)REGS_ADDR, 4);
    pci_cfg_write(vm, NULL, MX_SLOT, 0x14, (uint32_t)REGS_ADDR + 0x10000, 4);
    pci_cfg_write(vm, NULL, MX_SLOT, 0x18, (uint32_t)WINDOW_ADDR, 4);
    pci_cfg_write(vm, NULL, MX_SLOT, 0x1c, 0, 4);
    pci_cfg_write(vm, NULL, MX_SLOT, 0x04, 2, 2);
    return qt_readl(vm, NULL, REGS_ADDR + MX_REG_ID) == 0x3150584d;
}

static void vm_kill(Vm *vm)
{
    if (vm->pid > 0) {
        kill(vm->pid, SIGKILL);
        waitpid(vm->pid, NULL, 0);
        vm->pid = 0;
    }
    if (vm->qt >= 0) {
        close(vm->qt);
    }
    if (vm->qmp >= 0) {
        close(vm->qmp);
    }
    vm->qt = vm->qmp = -1;
}

static mx_link *link_to(Vm *vm, const mx_options *o, bool listen_side,
                        int (*setup)(mx_link *))
{
    mx_options def;
    mx_link *l;
    int ret;

    if (!o) {
        mx_options_init(&def);
        def.timeout_ms = 5000;
        o = &def;
    }
    l = mx_link_new(o);
    if (!l) {
        return NULL;
    }
    if (setup && setup(l) != 0) {
        printf("# export setup failed: %s\n", mx_link_error(l));
        mx_close(l);
        return NULL;
    }
    ret = listen_side ? mx_listen(l, vm->mx_sock, 20000)
                      : mx_connect(l, vm->mx_sock);
    if (ret) {
        printf("# no link: %s\n", mx_link_error(l));
        vm_print_log(vm);
        mx_close(l);
        return NULL;
    }
    return l;
}

/* Wait until the device's register LINK reads @up, dispatching @l. */
static bool wait_vm_link(Vm *vm, mx_link *l, bool up)
{
    int64_t deadline = now_ms() + 10000;

    while (now_ms() < deadline) {
        if (!!(qt_readl(vm, l, REGS_ADDR + MX_REG_LINK) & MX_LINK_UP) == up) {
            return true;
        }
        if (l) {
            mx_dispatch(l, 20);
        } else {
            usleep(20000);
        }
    }
    return false;
}

/* ---- the cases ---- */

static Vm vm1, vm2;
static unsigned inval_calls;
static bool inval_before_reply;
static bool awaiting_reply;
static uint64_t inval_addr, inval_len;

static void on_inval(void *opaque, uint64_t addr, uint64_t len)
{
    (void)opaque;
    inval_calls++;
    inval_addr = addr;
    inval_len = len;
    inval_before_reply = awaiting_reply;
}

/* Callback range: 64-bit scratch registers, accesses recorded. */
static uint64_t cb_regs[512];
static uint64_t cb_last_off;
static uint32_t cb_last_size;
static bool cb_last_write;
static unsigned cb_calls;

static int cb_access(void *opaque, uint64_t off, void *buf, uint32_t size,
                     bool write)
{
    (void)opaque;
    cb_calls++;
    cb_last_off = off;
    cb_last_size = size;
    cb_last_write = write;
    if (off + size > sizeof(cb_regs)) {
        return MX_E_ACCESS;
    }
    if (write) {
        memcpy((uint8_t *)cb_regs + off, buf, size);
    } else {
        memcpy(buf, (uint8_t *)cb_regs + off, size);
    }
    return 0;
}

static void *buf_host, *ro_host;

static int setup_exports(mx_link *l)
{
    return mx_export_buffer(l, BUF_ADDR, BUF_SIZE, MX_PERM_RW, &buf_host) ||
           mx_export_buffer(l, RO_ADDR, RO_SIZE, MX_PERM_READ, &ro_host) ||
           mx_export_callback(l, CB_ADDR, sizeof(cb_regs), MX_PERM_RW,
                              cb_access, NULL);
}

static void test_handshake(void)
{
    const mx_peer_info *p = mx_peer(l1);

    CHECK(p != NULL, "no peer info");
    if (!p) {
        return;
    }
    CHECK(!strcmp(p->name, "vm1"), "peer name '%s'", p->name);
    CHECK((p->negotiated & (MX_FEAT_MAP | MX_FEAT_BULK | MX_FEAT_BOOT)) ==
          (MX_FEAT_MAP | MX_FEAT_BULK | MX_FEAT_BOOT),
          "negotiated 0x%" PRIx64, p->negotiated);
    CHECK(!(p->negotiated & MX_FEAT_DB_RING), "DB_RING in use");
    CHECK(p->vectors == 4 && p->queue_depth == 32 && p->max_data == 4096,
          "vectors %u depth %u max_data %u", p->vectors, p->queue_depth,
          p->max_data);
    CHECK(p->role == MX_ROLE_DEVICE, "role %u", p->role);
    CHECK(mx_ping(l1) == 0, "ping: %s", mx_link_error(l1));
    CHECK(qom_u64(&vm1, l1, "link-up") != UINT64_MAX, "qom-get link-up");
}

static void test_widths(void)
{
    static const char *const rd[] = { "readb", "readw", "readl", "readq" };
    static const char *const wr[] = { "writeb", "writew", "writel",
                                      "writeq" };
    unsigned i;

    for (i = 0; i < 4; i++) {
        unsigned w = 1u << i;
        uint64_t mask = w == 8 ? UINT64_MAX : (1ULL << (8 * w)) - 1;
        uint64_t addr = 0x100000 + 64 * i, v1 = 0x8877665544332211ULL & mask;
        uint64_t v2 = 0x0123456789abcdefULL & mask, got = 0;
        int ret;

        ret = mx_write_value(l1, addr, w, v1);
        CHECK(ret == 0, "write%u: %s", w, mx_strerror(ret));
        got = qt_read(&vm1, l1, rd[i], addr);
        CHECK(got == v1, "width %u: VM sees 0x%" PRIx64, w, got);
        CHECK(qt_write(&vm1, l1, wr[i], addr, v2), "qtest write");
        ret = mx_read_value(l1, addr, w, &got);
        CHECK(ret == 0 && got == v2, "width %u: read 0x%" PRIx64 " (%d)", w,
              got, ret);
    }
}

static void test_bulk(void)
{
    static uint8_t a[12345], b[12345];
    const uint64_t addr = 0x200003;
    int ret;

    fill(a, sizeof(a), 1);
    ret = mx_write(l1, addr, a, sizeof(a));
    CHECK(ret == 0, "bulk write: %s", mx_strerror(ret));
    CHECK(qt_memread(&vm1, l1, addr, b, sizeof(b)), "qtest read");
    CHECK(!memcmp(a, b, sizeof(a)), "VM does not see the bulk write");
    fill(a, sizeof(a), 2);
    CHECK(qt_memwrite(&vm1, l1, addr, a, sizeof(a)), "qtest write");
    memset(b, 0, sizeof(b));
    ret = mx_read(l1, addr, b, sizeof(b));
    CHECK(ret == 0, "bulk read: %s", mx_strerror(ret));
    CHECK(!memcmp(a, b, sizeof(a)), "bulk read differs from the VM's view");
}

static void test_policy(void)
{
    uint8_t buf[16];
    uint64_t v, before;
    mx_range r;
    int ret;

    ret = mx_read(l1, 0x5000000, buf, 8);
    CHECK(ret == MX_E_DENIED, "read of unexported RAM: %d", ret);
    CHECK(buf[0] == 0xff && buf[7] == 0xff, "refused read not all-ones");
    before = qt_read(&vm1, l1, "readq", 0x2000000);
    ret = mx_write_value(l1, 0x2000000, 8, ~before);
    CHECK(ret == MX_E_READ_ONLY, "write to ro export: %d", ret);
    CHECK(qt_read(&vm1, l1, "readq", 0x2000000) == before,
          "ro export was written");
    ret = mx_read_value(l1, 0x2000000, 8, &v);
    CHECK(ret == 0 && v == before, "read of ro export: %d", ret);
    /* Across two exports: not inside one, refused as a whole. */
    ret = mx_read(l1, 0x1fffffc, buf, 8);
    CHECK(ret == MX_E_DENIED, "read across exports: %d", ret);
    ret = mx_map(l1, 0x100000, 0, &r);
    CHECK(ret == 0 && r.kind == MX_MAP_FORWARD && !r.host && r.reason == 4,
          "main RAM without trust-peer: kind %u reason %u (%d)", r.kind,
          r.reason, ret);
    ret = mx_map(l1, 0x6000000, 0, &r);
    CHECK(ret == 0 && r.kind == MX_MAP_DENIED && r.perm == 0,
          "unexported: kind %u", r.kind);
    CHECK(mx_link_up(l1), "link lost: %s", mx_link_error(l1));
}

static void test_invalidate(void)
{
    static uint8_t a[4096], b[4096];
    uint32_t cmd_addr = 0x80000000u | (SHM_SLOT << 11) | 0x04;
    unsigned before = inval_calls;
    uint8_t *host;
    mx_range r;
    int ret;

    pci_cfg_write(&vm1, l1, SHM_SLOT, 0x10, (uint32_t)SHM_ADDR + SHM_SIZE,
                  4);
    pci_cfg_write(&vm1, l1, SHM_SLOT, 0x18, (uint32_t)SHM_ADDR, 4);
    pci_cfg_write(&vm1, l1, SHM_SLOT, 0x1c, 0, 4);
    pci_cfg_write(&vm1, l1, SHM_SLOT, 0x04, 2, 2);
    ret = mx_map(l1, SHM_ADDR, SHM_SIZE, &r);
    CHECK(ret == 0 && r.kind == MX_MAP_FD && r.host,
          "ivshmem BAR not mapped: kind %u why %s (%d)", r.kind,
          r.why ? r.why : "-", ret);
    if (!r.host) {
        return;
    }
    host = r.host;
    CHECK(r.map_addr == SHM_ADDR && r.map_len == SHM_SIZE,
          "mapped 0x%" PRIx64 "+0x%" PRIx64, r.map_addr, r.map_len);
    fill(a, sizeof(a), 3);
    qt_memwrite(&vm1, l1, SHM_ADDR, a, sizeof(a));
    CHECK(!memcmp(host, a, sizeof(a)), "mapping does not show VM writes");
    fill(host + 8192, 4096, 4);
    qt_memread(&vm1, l1, SHM_ADDR + 8192, b, sizeof(b));
    CHECK(!memcmp(host + 8192, b, sizeof(b)), "VM does not see our write");
    CHECK(mx_lookup(l1, SHM_ADDR, 4096, MX_PERM_RW) == host, "lookup");

    /* Memory decoding off: the BAR leaves the VM's map. */
    qt_write(&vm1, l1, "outl", 0xcf8, cmd_addr);
    awaiting_reply = true;
    CHECK(qt_write(&vm1, l1, "outw", 0xcfc, 0), "config write");
    awaiting_reply = false;
    CHECK(inval_calls == before + 1, "%u invalidations", inval_calls -
          before);
    CHECK(inval_before_reply, "INVALIDATE not handled before the VM's"
          " config write completed");
    CHECK(inval_addr <= SHM_ADDR && inval_addr + inval_len >=
          SHM_ADDR + SHM_SIZE, "invalidated 0x%" PRIx64 "+0x%" PRIx64,
          inval_addr, inval_len);
    CHECK(mx_lookup(l1, SHM_ADDR, 1, MX_PERM_READ) == NULL,
          "mapping still in use");
    CHECK(host[0] == 0 && host[8192] == 0, "revoked pages still show data");
    CHECK(qom_u64(&vm1, l1, "invalidations") == 1, "device invalidations");

    /* Back on, new contents: a later read sees them (forwarded). */
    pci_cfg_write(&vm1, l1, SHM_SLOT, 0x04, 2, 2);
    fill(a, sizeof(a), 5);
    qt_memwrite(&vm1, l1, SHM_ADDR, a, sizeof(a));
    ret = mx_read(l1, SHM_ADDR, b, sizeof(b));
    CHECK(ret == 0 && !memcmp(a, b, sizeof(a)), "read after invalidation"
          " (%d)", ret);
    mx_unmap(l1, host);
}

static void test_doorbell_to_vm(void)
{
    static const char msg[] = "hello-vm";
    uint8_t data[8];
    unsigned credits = mx_credits(l1);
    int64_t deadline = now_ms() + 5000;
    uint32_t head;
    int ret;

    ret = mx_ring(l1, 1, msg, 8);
    CHECK(ret == 0, "ring: %s", mx_strerror(ret));
    CHECK(mx_credits(l1) == credits - 1, "credits %u", mx_credits(l1));
    while (qt_readl(&vm1, l1, REGS_ADDR + MX_REG_DB_RX_COUNT) == 0 &&
           now_ms() < deadline) {
        mx_dispatch(l1, 10);
    }
    head = qt_readl(&vm1, l1, REGS_ADDR + MX_REG_DB_RX_HEAD);
    CHECK(head == (1 | (8 << 16)), "DB_RX_HEAD 0x%x", head);
    qt_memread(&vm1, l1, REGS_ADDR + MX_REG_DB_RX_DATA, data, 8);
    CHECK(!memcmp(data, msg, 8), "payload differs");
    qt_writel(&vm1, l1, REGS_ADDR + MX_REG_DB_RX_POP, 1);
    deadline = now_ms() + 5000;
    while (mx_credits(l1) != credits && now_ms() < deadline) {
        mx_dispatch(l1, 10);
    }
    CHECK(mx_credits(l1) == credits, "credit not returned: %u",
          mx_credits(l1));
    CHECK(mx_ring(l1, 4, NULL, 0) == MX_E_BAD_VECTOR, "vector 4 accepted");
}

static void test_doorbell_from_vm(void)
{
    uint8_t payload[16];
    mx_doorbell db;
    uint32_t status;
    int ret;

    fill(payload, sizeof(payload), 6);
    qt_memwrite(&vm1, l1, REGS_ADDR + MX_REG_DB_TX_DATA, payload, 16);
    qt_writel(&vm1, l1, REGS_ADDR + MX_REG_DB_TX_LEN, 16);
    qt_writel(&vm1, l1, REGS_ADDR + MX_REG_DB_TX_VECTOR, 2);
    status = qt_readl(&vm1, l1, REGS_ADDR + MX_REG_DB_TX_STATUS);
    CHECK(status == MX_TX_OK, "DB_TX_STATUS %u", status);
    ret = mx_wait_doorbell(l1, &db, 5000);
    CHECK(ret == 0, "no doorbell: %s", mx_strerror(ret));
    CHECK(ret || (db.vector == 2 && db.len == 16 &&
                  !memcmp(db.data, payload, 16)),
          "doorbell vector %u len %zu", db.vector, db.len);
    /* Our vectors are 4: the VM cannot ring vector 4. */
    qt_writel(&vm1, l1, REGS_ADDR + MX_REG_DB_TX_VECTOR, 4);
    status = qt_readl(&vm1, l1, REGS_ADDR + MX_REG_DB_TX_STATUS);
    CHECK(status == MX_TX_BAD_VECTOR, "vector 4: status %u", status);
}

/* Program the window base and wait for the device's walk to settle. */
static void set_window(uint64_t base, uint64_t mapped)
{
    int64_t deadline = now_ms() + 10000;

    qt_writel(&vm1, l1, REGS_ADDR + MX_REG_WINDOW_BASE_HI, base >> 32);
    qt_writel(&vm1, l1, REGS_ADDR + MX_REG_WINDOW_BASE_LO, (uint32_t)base);
    while (qom_u64(&vm1, l1, "mapped-bytes") != mapped &&
           now_ms() < deadline) {
        mx_dispatch(l1, 20);
    }
    /* Let a walk that maps nothing finish too. */
    mx_dispatch(l1, 100);
}

static void test_window(void)
{
    static uint8_t a[4096], b[4096];
    const mx_stats *st = mx_get_stats(l1);
    uint64_t reads, writes, mapped;
    uint32_t v;

    fill(buf_host, BUF_SIZE, 7);
    fill(ro_host, RO_SIZE, 8);
    set_window(BUF_ADDR, BUF_SIZE + RO_SIZE);
    mapped = qom_u64(&vm1, l1, "mapped-bytes");
    CHECK(mapped == BUF_SIZE + RO_SIZE, "VM mapped 0x%" PRIx64, mapped);
    reads = st->served_reads;
    writes = st->served_writes;
    qt_memread(&vm1, l1, WINDOW_ADDR + 0x3000, a, sizeof(a));
    CHECK(!memcmp(a, (uint8_t *)buf_host + 0x3000, sizeof(a)),
          "VM window does not show the buffer");
    fill(b, sizeof(b), 9);
    qt_memwrite(&vm1, l1, WINDOW_ADDR + 0x5000, b, sizeof(b));
    CHECK(!memcmp(b, (uint8_t *)buf_host + 0x5000, sizeof(b)),
          "buffer does not show the VM's write");
    qt_memread(&vm1, l1, WINDOW_ADDR + BUF_SIZE, a, sizeof(a));
    CHECK(!memcmp(a, ro_host, sizeof(a)), "ro buffer not visible");
    /* Read-only: the VM's write does not reach the buffer. */
    memcpy(a, ro_host, sizeof(a));
    fill(b, sizeof(b), 10);
    qt_memwrite(&vm1, l1, WINDOW_ADDR + BUF_SIZE, b, 64);
    CHECK(!memcmp(a, ro_host, sizeof(a)), "VM wrote the ro buffer");
    CHECK(st->served_reads == reads && st->served_writes == writes,
          "zero-copy accesses were forwarded (%" PRIu64 " reads, %" PRIu64
          " writes)", st->served_reads - reads, st->served_writes - writes);
    /* Past the exports: default deny. */
    v = qt_readl(&vm1, l1, WINDOW_ADDR + BUF_SIZE + RO_SIZE + 0x1000);
    CHECK(v == 0xffffffff, "unexported read 0x%x", v);
    CHECK(st->refused > 0, "refusal not counted");

    /* The callback range, by forwarding. */
    set_window(CB_ADDR, 0);
    cb_regs[2] = 0x1122334455667788ULL;
    v = qt_readl(&vm1, l1, WINDOW_ADDR + 0x10);
    CHECK(v == 0x55667788, "callback read 0x%x", v);
    CHECK(cb_last_off == 0x10 && cb_last_size == 4 && !cb_last_write,
          "callback saw off 0x%" PRIx64 " size %u", cb_last_off,
          cb_last_size);
    qt_write(&vm1, l1, "writeq", WINDOW_ADDR + 0x20, 0xcafef00dULL);
    CHECK(cb_regs[4] == 0xcafef00dULL && cb_last_size == 8 && cb_last_write,
          "callback write: 0x%" PRIx64, cb_regs[4]);
    v = qt_readl(&vm1, l1, WINDOW_ADDR + 0x2000);
    CHECK(v == 0xffffffff, "callback refusal read 0x%x", v);
    CHECK(mx_link_up(l1), "link lost: %s", mx_link_error(l1));
}

/* Run memexpose-host with @args; its stdout into @out.  Exit status. */
static int run_tool(const char *args, char *out, size_t cap)
{
    char cmd[1024];
    FILE *p;
    size_t n = 0;
    int st;

    snprintf(cmd, sizeof(cmd), "'%s' -t 5000 %s", host_tool, args);
    p = popen(cmd, "r");
    if (!p) {
        return -1;
    }
    if (out) {
        n = fread(out, 1, cap - 1, p);
        out[n] = '\0';
    } else {
        char sink[256];

        while (fread(sink, 1, sizeof(sink), p) > 0) {
            /* discard */
        }
    }
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool files_equal(const char *x, const char *y, size_t *len)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", x, y);
    if (len) {
        struct stat st;

        *len = stat(x, &st) == 0 ? st.st_size : 0;
    }
    return system(cmd) == 0;
}

static bool pmemsave(Vm *vm, uint64_t addr, uint64_t size, const char *file)
{
    return qmp(vm, NULL, NULL, 0, "{\"execute\": \"pmemsave\", \"arguments\":"
               " {\"val\": %" PRIu64 ", \"size\": %" PRIu64
               ", \"filename\": \"%s\"}}", addr, size, file);
}

static void tool_dump_check(Vm *vm, const char *opt, uint64_t addr,
                            uint64_t size)
{
    char args[512], f1[128], f2[128];
    size_t len;
    int rc;

    snprintf(f1, sizeof(f1), "%s/dump-%d.bin", tmpdir, vm->pid);
    snprintf(f2, sizeof(f2), "%s/pmemsave-%d.bin", tmpdir, vm->pid);
    snprintf(args, sizeof(args), "%s '%s' dump 0x%" PRIx64 " %" PRIu64
             " '%s'", opt, vm->mx_sock, addr, size, f1);
    rc = run_tool(args, NULL, 0);
    CHECK(rc == 0, "dump exit %d", rc);
    CHECK(pmemsave(vm, addr, size, f2), "pmemsave");
    CHECK(files_equal(f1, f2, &len) && len == size,
          "dump differs from pmemsave (%zu bytes)", len);
    unlink(f1);
    unlink(f2);
}

/* Start memexpose-host serve of @file at 0x10000000, @copy or not. */
static pid_t serve_start(const char *file, bool copy)
{
    pid_t pid = fork();

    if (pid == 0) {
        execl(host_tool, host_tool, "-s", vm1.mx_sock, "serve", "--addr",
              "0x10000000", "--file", file, copy ? "--copy" : (char *)NULL,
              (char *)NULL);
        _exit(127);
    }
    CHECK(wait_vm_link(&vm1, NULL, true), "serve did not link");
    qt_writel(&vm1, NULL, REGS_ADDR + MX_REG_WINDOW_BASE_LO, 0x10000000);
    return pid;
}

static void serve_stop(pid_t pid)
{
    int st;

    /* SIGTERM ends it cleanly. */
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "serve exit 0x%x", st);
    wait_vm_link(&vm1, NULL, false);
    qt_writel(&vm1, NULL, REGS_ADDR + MX_REG_WINDOW_BASE_LO, 0);
}

/*
 * serve --file --copy: the VM's window reaches a copy of @file,
 * zero-copy; serve --file: the file itself, per access, and the VM's
 * writes land in it.
 */
static void test_tool_serve(const char *file)
{
    static uint8_t img[100000], got[4096];
    int64_t deadline = now_ms() + 10000;
    FILE *f = fopen(file, "rb");
    uint64_t mapped = 0, fwd, v;
    size_t n = f ? fread(img, 1, sizeof(img), f) : 0;
    pid_t pid;

    if (f) {
        fclose(f);
    }
    CHECK(n == sizeof(img), "image %zu", n);
    pid = serve_start(file, true);
    while (now_ms() < deadline &&
           (mapped = qom_u64(&vm1, NULL, "mapped-bytes")) == 0) {
        usleep(20000);
    }
    CHECK(mapped == 0x19000, "VM mapped 0x%" PRIx64 " of the served copy",
          mapped);
    qt_memread(&vm1, NULL, WINDOW_ADDR + 90000, got, 4096);
    CHECK(!memcmp(got, img + 90000, 4096), "window differs from the file");
    serve_stop(pid);

    pid = serve_start(file, false);
    fwd = qom_u64(&vm1, NULL, "forwarded-reads");
    v = qt_read(&vm1, NULL, "readq", WINDOW_ADDR + 90000);
    CHECK(!memcmp(&v, img + 90000, 8), "window differs from the file:"
          " 0x%" PRIx64, v);
    CHECK(qom_u64(&vm1, NULL, "forwarded-reads") == fwd + 1 &&
          qom_u64(&vm1, NULL, "mapped-bytes") == 0,
          "the file was not served per access");
    /* Beyond the file's end, inside the page-rounded export: zeros. */
    v = qt_read(&vm1, NULL, "readq", WINDOW_ADDR + 100000);
    CHECK(v == 0, "beyond the end of the file: 0x%" PRIx64, v);
    qt_write(&vm1, NULL, "writeq", WINDOW_ADDR + 64, 0x0123456789abcdefULL);
    /* The write is posted: a read behind it through the link orders it. */
    v = qt_read(&vm1, NULL, "readq", WINDOW_ADDR + 64);
    serve_stop(pid);
    f = fopen(file, "rb");
    n = f && fseek(f, 64, SEEK_SET) == 0 ? fread(&v, 1, 8, f) : 0;
    if (f) {
        fclose(f);
    }
    CHECK(n == 8 && v == 0x0123456789abcdefULL,
          "the VM's write is not in the file: 0x%" PRIx64, v);
}

static void test_tool(void)
{
    char out[4096], args[512], file[128];
    uint64_t v;
    pid_t pid;
    int rc, pfd[2];

    /* One link at a time: the tool takes over the device's socket. */
    mx_close(l1);
    l1 = NULL;
    wait_vm_link(&vm1, NULL, false);

    rc = run_tool("--help", out, sizeof(out));
    CHECK(rc == 0 && strstr(out, "dump ADDR SIZE FILE"), "--help %d", rc);
    rc = run_tool("-s /nonexistent/sock info", NULL, 0);
    CHECK(rc == 3, "no socket: exit %d", rc);
    rc = run_tool("-s /nonexistent/sock frobnicate", NULL, 0);
    CHECK(rc == 2, "bad command: exit %d", rc);

    snprintf(args, sizeof(args), "-s '%s' info", vm1.mx_sock);
    rc = run_tool(args, out, sizeof(out));
    CHECK(rc == 0 && strstr(out, "peer:        vm1") &&
          strstr(out, "rw forwarded"), "info exit %d: %s", rc, out);

    qt_write(&vm1, NULL, "writeq", 0x100040, 0xfeedfacecafebeefULL);
    snprintf(args, sizeof(args), "-s '%s' read 0x100040 8", vm1.mx_sock);
    rc = run_tool(args, out, sizeof(out));
    CHECK(rc == 0 && !strcmp(out, "0xfeedfacecafebeef\n"), "read %d: %s", rc,
          out);
    snprintf(args, sizeof(args), "-s '%s' write 0x100048 0x1234 2",
             vm1.mx_sock);
    rc = run_tool(args, NULL, 0);
    v = qt_read(&vm1, NULL, "readw", 0x100048);
    CHECK(rc == 0 && v == 0x1234, "write %d: VM sees 0x%" PRIx64, rc, v);
    snprintf(args, sizeof(args), "-s '%s' read 0x5000000", vm1.mx_sock);
    rc = run_tool(args, NULL, 0);
    CHECK(rc == 1, "refused read: exit %d", rc);

    snprintf(args, sizeof(args), "-s '%s' ring 3 c0ffee", vm1.mx_sock);
    rc = run_tool(args, NULL, 0);
    CHECK(rc == 0, "ring exit %d", rc);
    /* The device's worker queues it: it may take a moment. */
    for (rc = 0; rc < 500 &&
         !qt_readl(&vm1, NULL, REGS_ADDR + MX_REG_DB_RX_COUNT); rc++) {
        usleep(10000);
    }
    v = qt_readl(&vm1, NULL, REGS_ADDR + MX_REG_DB_RX_HEAD);
    CHECK(v == (3 | (3 << 16)), "DB_RX_HEAD 0x%" PRIx64, v);
    v = qt_readl(&vm1, NULL, REGS_ADDR + MX_REG_DB_RX_DATA);
    CHECK((v & 0xffffff) == 0xeeffc0, "payload 0x%" PRIx64, v);
    qt_writel(&vm1, NULL, REGS_ADDR + MX_REG_DB_RX_POP, 1);

    /* wait: the tool blocks until the VM rings. */
    CHECK(pipe(pfd) == 0, "pipe");
    pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        execl(host_tool, host_tool, "-s", vm1.mx_sock, "wait", "--timeout",
              "10000", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    CHECK(wait_vm_link(&vm1, NULL, true), "tool did not link");
    qt_write(&vm1, NULL, "writel", REGS_ADDR + MX_REG_DB_TX_DATA, 0x04030201);
    qt_writel(&vm1, NULL, REGS_ADDR + MX_REG_DB_TX_LEN, 4);
    qt_writel(&vm1, NULL, REGS_ADDR + MX_REG_DB_TX_VECTOR, 1);
    memset(out, 0, sizeof(out));
    rc = read(pfd[0], out, sizeof(out) - 1);
    close(pfd[0]);
    waitpid(pid, &rc, 0);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0 &&
          !strcmp(out, "1 01020304\n"), "wait printed '%s'", out);
    wait_vm_link(&vm1, NULL, false);

    /* load, then dump vs pmemsave (forwarded: no trust-peer). */
    snprintf(file, sizeof(file), "%s/load.bin", tmpdir);
    {
        static uint8_t img[100000];
        FILE *f = fopen(file, "wb");

        fill(img, sizeof(img), 11);
        fwrite(img, 1, sizeof(img), f);
        fclose(f);
        snprintf(args, sizeof(args), "-s '%s' load '%s' 0x300000",
                 vm1.mx_sock, file);
        rc = run_tool(args, NULL, 0);
        CHECK(rc == 0, "load exit %d", rc);
        v = qt_read(&vm1, NULL, "readq", 0x300000 + 99992);
        CHECK(!memcmp(&v, img + 99992, 8), "load: VM sees 0x%" PRIx64, v);
    }
    /* RAM above the legacy holes (no memory at 0xa0000 here). */
    tool_dump_check(&vm1, "-s", 0x100000, 31 << 20);
    test_tool_serve(file);
}

/* Doorbells through the rings and eventfds (feature DB_RING). */
static void test_doorbell_ring(void)
{
    static const char msg[] = "ring-it";
    uint8_t data[8];
    int64_t deadline = now_ms() + 5000;
    mx_doorbell db;
    unsigned i, credits;
    mx_options o;
    mx_link *l;
    uint32_t head, status;
    int ret;

    mx_options_init(&o);
    o.timeout_ms = 1000;
    o.features |= MX_FEAT_DB_RING;
    l = link_to(&vm2, &o, true, NULL);
    CHECK(l, "no link to vm2");
    if (!l) {
        return;
    }
    CHECK(mx_peer(l)->negotiated & MX_FEAT_DB_RING, "DB_RING not in use");
    CHECK(mx_event_fd(l) >= 0, "no event fd");
    credits = mx_credits(l);
    CHECK(credits == 32, "credits %u", credits);
    ret = mx_ring(l, 1, msg, 7);
    CHECK(ret == 0 && mx_credits(l) == credits - 1, "ring %d", ret);
    while (qt_readl(&vm2, l, REGS_ADDR + MX_REG_DB_RX_COUNT) == 0 &&
           now_ms() < deadline) {
        mx_dispatch(l, 10);
    }
    head = qt_readl(&vm2, l, REGS_ADDR + MX_REG_DB_RX_HEAD);
    CHECK(head == (1 | (7 << 16)), "DB_RX_HEAD 0x%x", head);
    qt_memread(&vm2, l, REGS_ADDR + MX_REG_DB_RX_DATA, data, 7);
    CHECK(!memcmp(data, msg, 7), "payload differs");
    qt_writel(&vm2, l, REGS_ADDR + MX_REG_DB_RX_POP, 1);
    CHECK(mx_credits(l) == credits, "credit not back: %u", mx_credits(l));

    /* A full ring refuses; a slot the VM frees comes back by DB_SPACE. */
    for (i = 0; i < credits; i++) {
        mx_ring(l, 0, NULL, 0);
    }
    CHECK(mx_credits(l) == 0, "credits %u after filling", mx_credits(l));
    ret = mx_ring(l, 0, NULL, 0);
    CHECK(ret == MX_ERR_AGAIN && mx_link_up(l), "full ring: %d", ret);
    qt_writel(&vm2, l, REGS_ADDR + MX_REG_DB_RX_POP, 1);
    ret = mx_ring(l, 2, "x", 1);
    CHECK(ret == 0, "ring after a pop: %d (%s)", ret, mx_link_error(l));
    CHECK(mx_get_stats(l)->doorbells_sent == credits + 2, "sent %" PRIu64,
          mx_get_stats(l)->doorbells_sent);

    /* From the VM: through our ring, signalled on our eventfd. */
    qt_write(&vm2, l, "writel", REGS_ADDR + MX_REG_DB_TX_DATA, 0x0a0b0c0d);
    qt_writel(&vm2, l, REGS_ADDR + MX_REG_DB_TX_LEN, 4);
    qt_writel(&vm2, l, REGS_ADDR + MX_REG_DB_TX_VECTOR, 3);
    status = qt_readl(&vm2, l, REGS_ADDR + MX_REG_DB_TX_STATUS);
    CHECK(status == MX_TX_OK, "DB_TX_STATUS %u", status);
    ret = mx_wait_doorbell(l, &db, 5000);
    CHECK(ret == 0 && db.vector == 3 && db.len == 4 && db.data[0] == 0x0d,
          "doorbell %d: vector %u len %zu", ret, db.vector, db.len);
    CHECK(mx_link_up(l), "link lost: %s", mx_link_error(l));

    /* Reconnect with the same handle: a new link, full credits again. */
    mx_disconnect(l);
    CHECK(!mx_link_up(l) && mx_ring(l, 0, NULL, 0) == MX_ERR_LINK,
          "still up after mx_disconnect");
    wait_vm_link(&vm2, NULL, false);
    /* The VM's queue outlives the link: empty it, the next gets it all. */
    for (i = 0; i < 64 && qt_readl(&vm2, NULL, REGS_ADDR +
                                   MX_REG_DB_RX_COUNT); i++) {
        qt_writel(&vm2, NULL, REGS_ADDR + MX_REG_DB_RX_POP, 1);
    }
    ret = mx_listen(l, vm2.mx_sock, 20000);
    CHECK(ret == 0, "reconnect: %s", mx_link_error(l));
    CHECK(ret || mx_credits(l) == 32, "credits %u after reconnect",
          mx_credits(l));
    CHECK(ret || mx_ring(l, 1, "again", 5) == 0, "ring after reconnect");
    mx_close(l);
    wait_vm_link(&vm2, NULL, false);
}

/* A second VM with trust-peer=on: main RAM zero-copy; we listen. */
static void test_zero_copy(void)
{
    static uint8_t a[4096], b[4096];
    mx_options o;
    mx_link *l;
    mx_range r;
    uint8_t *host;
    int ret;

    mx_options_init(&o);
    o.timeout_ms = 5000;
    o.on_invalidate = on_inval;
    l = link_to(&vm2, &o, true, NULL);
    CHECK(l, "no link to vm2");
    if (!l) {
        return;
    }
    ret = mx_map(l, 0x400000, 16 << 20, &r);
    CHECK(ret == 0 && r.kind == MX_MAP_FD && r.host && r.perm == MX_PERM_RW,
          "RAM not mapped: kind %u why %s", r.kind, r.why ? r.why : "-");
    if (r.host) {
        host = (uint8_t *)r.host + (0x400000 - r.map_addr);
        CHECK(r.map_len >= 16 << 20, "mapped 0x%" PRIx64, r.map_len);
        fill(a, sizeof(a), 12);
        qt_memwrite(&vm2, l, 0x400000, a, sizeof(a));
        CHECK(!memcmp(host, a, sizeof(a)), "mapping misses VM write");
        fill(host + 0x10000, 4096, 13);
        qt_memread(&vm2, l, 0x410000, b, sizeof(b));
        CHECK(!memcmp(b, host + 0x10000, sizeof(b)), "VM misses our write");
        /* mx_read goes through the mapping. */
        ret = mx_read(l, 0x400000, b, sizeof(b));
        CHECK(ret == 0 && !memcmp(a, b, sizeof(b)), "mx_read");
        mx_unmap(l, r.host);
    }
    mx_close(l);
    wait_vm_link(&vm2, NULL, false);
    tool_dump_check(&vm2, "-l", 0x100000, 127 << 20);
}

/* The peer dies in the middle of a transfer: a clean error, no hang. */
static void test_peer_killed(void)
{
    static uint8_t big[32 << 20];
    int64_t killed_at = 0, failed_at = 0, start;
    mx_options o;
    mx_link *l;
    mx_range r;
    uint8_t *host = NULL;
    pid_t killer;
    int ret = 0;

    mx_options_init(&o);
    o.timeout_ms = 5000;
    o.on_invalidate = on_inval;
    l = link_to(&vm2, &o, true, NULL);
    CHECK(l, "no link to vm2");
    if (!l) {
        return;
    }
    if (mx_map(l, 0x1000000, 1 << 20, &r) == 0 && r.host) {
        host = r.host;
    }
    CHECK(host, "no mapping before the kill");
    killer = fork();
    if (killer == 0) {
        usleep(300000);
        kill(vm2.pid, SIGKILL);
        _exit(0);
    }
    start = now_ms();
    /* Forwarded bulk reads until the link breaks. */
    while (now_ms() - start < 20000) {
        ret = mx_read(l, 0x5000000, big, 4 << 20);
        if (ret) {
            failed_at = now_ms();
            break;
        }
    }
    waitpid(killer, NULL, 0);
    killed_at = start + 300;
    CHECK(ret == MX_ERR_LINK || ret == MX_ERR_TIMEOUT, "read returned %d",
          ret);
    CHECK(failed_at && failed_at - killed_at < 3000,
          "noticed %" PRId64 " ms after the kill", failed_at - killed_at);
    CHECK(mx_link_error(l)[0], "no reason given");
    printf("# after the kill: %s\n", mx_link_error(l));
    CHECK(!mx_link_up(l), "link still up");
    CHECK(mx_read(l, 0, big, 8) == MX_ERR_LINK, "read after link loss");
    /* The old mapping is revoked, not a SIGBUS trap. */
    CHECK(!host || host[0] == 0, "mapping not revoked");
    CHECK(inval_len == UINT64_MAX, "no link-down invalidation callback");
    mx_close(l);
    waitpid(vm2.pid, NULL, 0);
    vm2.pid = 0;
}

/* Library to library: the exporter in a child process. */
static void test_lib_pair(void)
{
    uint8_t buf[64];
    mx_range r;
    mx_link *imp;
    pid_t child;
    uint64_t v;
    int sv[2], ret;

    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
          "socketpair");
    child = fork();
    if (child == 0) {
        mx_options o;
        mx_link *exp;

        close(sv[0]);
        mx_options_init(&o);
        o.name = "exporter";
        o.features |= MX_FEAT_DB_RING;
        exp = mx_link_new(&o);
        if (!exp || setup_exports(exp)) {
            _exit(1);
        }
        memset(ro_host, 0x42, RO_SIZE);
        if (mx_attach(exp, sv[1]) == 0 && mx_ring(exp, 3, "hi", 2) == 0) {
            while (mx_dispatch(exp, 1000) == 0) {
                /* serve until the importer closes */
            }
        }
        mx_close(exp);
        _exit(0);
    }
    close(sv[1]);
    {
        mx_options o;

        mx_options_init(&o);
        o.features |= MX_FEAT_DB_RING;
        imp = mx_link_new(&o);
    }
    ret = imp ? mx_attach(imp, sv[0]) : MX_ERR_NOMEM;
    CHECK(ret == 0, "attach: %s", imp ? mx_link_error(imp) : "");
    if (ret == 0) {
        mx_doorbell db;

        CHECK(mx_peer(imp)->negotiated & MX_FEAT_DB_RING, "no DB_RING");
        ret = mx_wait_doorbell(imp, &db, 5000);
        CHECK(ret == 0 && db.vector == 3 && db.len == 2 &&
              !memcmp(db.data, "hi", 2), "ring doorbell %d", ret);
        ret = mx_ring(imp, 1, "back", 4);
        CHECK(ret == 0 && mx_credits(imp) == 31, "ring back %d", ret);
        CHECK(!strcmp(mx_peer(imp)->name, "exporter") &&
              mx_peer(imp)->role == MX_ROLE_TOOL, "peer");
        ret = mx_map(imp, RO_ADDR, 0, &r);
        CHECK(ret == 0 && r.kind == MX_MAP_FD && r.perm == MX_PERM_READ &&
              r.host, "ro buffer: kind %u perm %u why %s", r.kind, r.perm,
              r.why ? r.why : "-");
        if (r.host) {
            CHECK(((uint8_t *)r.host)[100] == 0x42, "ro contents");
            CHECK(mprotect(r.host, RO_SIZE, PROT_READ | PROT_WRITE) != 0,
                  "read-only grant can be made writable");
        }
        ret = mx_map(imp, BUF_ADDR + 0x1000, 0, &r);
        CHECK(ret == 0 && r.kind == MX_MAP_FD && r.perm == MX_PERM_RW &&
              r.addr == BUF_ADDR && r.length == BUF_SIZE && r.host,
              "rw buffer: kind %u", r.kind);
        ret = mx_map(imp, CB_ADDR, 0, &r);
        CHECK(ret == 0 && r.kind == MX_MAP_FORWARD && !r.host,
              "callback range: kind %u", r.kind);
        ret = mx_map(imp, 0x40000000, 0, &r);
        CHECK(ret == 0 && r.kind == MX_MAP_DENIED &&
              r.addr + r.length == 0, "denied to the top: 0x%" PRIx64
              "+0x%" PRIx64, r.addr, r.length);
        ret = mx_write_value(imp, CB_ADDR + 8, 8, 0xabcdefULL);
        CHECK(ret == 0, "callback write %d", ret);
        ret = mx_read_value(imp, CB_ADDR + 8, 8, &v);
        CHECK(ret == 0 && v == 0xabcdefULL, "callback read 0x%" PRIx64, v);
        ret = mx_write(imp, RO_ADDR + 8, buf, 8);
        CHECK(ret == MX_E_READ_ONLY, "write to the ro buffer: %d", ret);
        ret = mx_read(imp, 0x7000000, buf, sizeof(buf));
        CHECK(ret == MX_E_DENIED, "default deny: %d", ret);
        ret = mx_write_value(imp, CB_ADDR + 0x1000, 4, 1);
        CHECK(ret == MX_E_DENIED, "past the callback range: %d", ret);
    }
    mx_close(imp);
    waitpid(child, &ret, 0);
    CHECK(WIFEXITED(ret) && WEXITSTATUS(ret) == 0, "exporter exit");
}

/*
 * The host as boot master of an aarch64 virt VM with boot-target=on:
 * load the test firmware, BOOT it with a cookie, get its doorbell.
 */
static const char *qemu_a64, *firmware;

static void test_boot(void)
{
    const uint64_t cookie = 0x1234abcd5678ef00ULL;
    char cmd[2048], args[512], out[1024], want[256], uart[128], sock[108];
    char log[128];
    char hex[200] = "";
    pid_t pid;
    int rc, lfd;
    size_t i;

    snprintf(sock, sizeof(sock), "%s/boot.sock", tmpdir);
    snprintf(uart, sizeof(uart), "%s/uart.txt", tmpdir);
    snprintf(log, sizeof(log), "%s/qemu-boot.log", tmpdir);
    snprintf(cmd, sizeof(cmd),
             "exec '%s' -M virt -cpu cortex-a57 -m 128 -accel tcg"
             " -display none -nodefaults"
             " -object memory-backend-memfd,id=ram,size=128M,share=on"
             " -machine memory-backend=ram -serial file:%s"
             " -chardev socket,id=mx,path=%s,server=on,wait=off"
             " -device memexpose-sysbus,id=mx,chardev=mx,name=slave,"
             "window-size=16M,export=0x40000000+128M:rw,boot-target=on",
             qemu_a64, uart, sock);
    pid = fork();
    if (pid == 0) {
        lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(lfd, 1);
        dup2(lfd, 2);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    snprintf(args, sizeof(args), "-s '%s' state", sock);
    rc = run_tool(args, out, sizeof(out));
    CHECK(rc == 0 && !strcmp(out, "waiting\n"), "state %d: %s", rc, out);
    snprintf(args, sizeof(args), "-s '%s' load '%s' 0x40100000", sock,
             firmware);
    rc = run_tool(args, NULL, 0);
    CHECK(rc == 0, "load exit %d", rc);
    /*
     * The firmware rings vector 0 once, on the first link it finds up:
     * the one that booted it, which waits for that doorbell.
     */
    snprintf(want, sizeof(want), "memexpose-fw: booted, cookie 0x%016"
             PRIx64, cookie);
    for (i = 0; want[i]; i++) {
        sprintf(hex + 2 * i, "%02x", (unsigned char)want[i]);
    }
    snprintf(args, sizeof(args), "-s '%s' boot 0x40100000 0x0c000000"
             " 0x09000000 0x%" PRIx64 " --wait 60000", sock, cookie);
    rc = run_tool(args, out, sizeof(out));
    CHECK(rc == 0 && !strncmp(out, "0 ", 2) && !strncmp(out + 2, hex,
          strlen(hex)), "boot %d: '%s', want '%s'", rc, out, want);
    snprintf(args, sizeof(args), "-s '%s' state", sock);
    rc = run_tool(args, out, sizeof(out));
    CHECK(rc == 0 && !strcmp(out, "running\n"), "state %d: %s", rc, out);
    snprintf(args, sizeof(args), "-s '%s' halt", sock);
    rc = run_tool(args, NULL, 0);
    CHECK(rc == 0, "halt exit %d", rc);
    snprintf(args, sizeof(args), "-s '%s' halt", sock);
    rc = run_tool(args, NULL, 0);
    CHECK(rc == 1, "second halt: exit %d (want: refused)", rc);
    snprintf(args, sizeof(args), "-s '%s' reset", sock);
    rc = run_tool(args, NULL, 0);
    CHECK(rc == 0, "reset exit %d", rc);
    snprintf(args, sizeof(args), "-s '%s' state", sock);
    rc = run_tool(args, out, sizeof(out));
    CHECK(rc == 0 && !strcmp(out, "waiting\n"), "state %d: %s", rc, out);
    {
        FILE *f = fopen(uart, "r");
        char line[256] = "";

        snprintf(want, sizeof(want), "memexpose-fw: hello from the aarch64"
                 " slave, cookie 0x%016" PRIx64, cookie);
        CHECK(f && fgets(line, sizeof(line), f) && strstr(line, want),
              "UART: '%s'", line);
        if (f) {
            fclose(f);
        }
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/*
 * dump of a running VM: an aarch64 guest increments a counter outside
 * the dumped range the whole time; the dump of 256 MiB of its RAM
 * matches pmemsave of the same range, and the counter moved meanwhile.
 */
static void test_dump_running(void)
{
    /* x1 = 0x5f000000; 1: ldr x0, [x1]; add x0, x0, 1; str; b 1b */
    static const uint32_t loop[] = {
        0xd2abe001, 0xf9400020, 0x91000400, 0xf9000020, 0x17fffffd,
    };
    char cmd[2048], args[512], out[256], prog[128], qmp_path[108], line[4096];
    uint64_t c0 = 0, c1 = 0;
    Vm vm = { .qt = -1, .qmp = -1 };
    FILE *f;
    int lfd, rc;

    snprintf(prog, sizeof(prog), "%s/loop.bin", tmpdir);
    snprintf(qmp_path, sizeof(qmp_path), "%s/qmp-run.sock", tmpdir);
    snprintf(vm.mx_sock, sizeof(vm.mx_sock), "%s/run.sock", tmpdir);
    snprintf(vm.log, sizeof(vm.log), "%s/qemu-run.log", tmpdir);
    f = fopen(prog, "wb");
    CHECK(f && fwrite(loop, sizeof(loop), 1, f) == 1, "loop.bin");
    if (f) {
        fclose(f);
    }
    snprintf(cmd, sizeof(cmd),
             "exec '%s' -M virt -cpu cortex-a57 -m 512 -accel tcg"
             " -display none -nodefaults"
             " -object memory-backend-memfd,id=ram,size=512M,share=on"
             " -machine memory-backend=ram"
             " -device loader,file=%s,addr=0x40100000,force-raw=on"
             " -device loader,addr=0x40100000,cpu-num=0"
             " -qmp unix:%s,server=on,wait=off"
             " -chardev socket,id=mx,path=%s,server=on,wait=off"
             " -device memexpose-sysbus,id=mx,chardev=mx,name=running,"
             "export=0x40000000+512M:rw",
             qemu_a64, prog, qmp_path, vm.mx_sock);
    vm.pid = fork();
    if (vm.pid == 0) {
        lfd = open(vm.log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(lfd, 1);
        dup2(lfd, 2);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    vm.qmp = connect_retry(qmp_path, 20000, vm.pid);
    if (vm.qmp < 0 ||
        !vm_line(&vm.qmpb, vm.qmp, NULL, line, sizeof(line), 20000) ||
        !qmp(&vm, NULL, NULL, 0, "{\"execute\": \"qmp_capabilities\"}")) {
        CHECK(false, "aarch64 VM did not start");
        vm_print_log(&vm);
        vm_kill(&vm);
        return;
    }
    snprintf(args, sizeof(args), "-s '%s' read 0x5f000000 8", vm.mx_sock);
    rc = run_tool(args, out, sizeof(out));
    c0 = strtoull(out, NULL, 16);
    CHECK(rc == 0, "read counter: exit %d", rc);
    tool_dump_check(&vm, "-s", 0x40000000, 256 << 20);
    rc = run_tool(args, out, sizeof(out));
    c1 = strtoull(out, NULL, 16);
    CHECK(rc == 0 && c1 > c0, "the guest did not run: counter 0x%" PRIx64
          " then 0x%" PRIx64, c0, c1);
    printf("# guest counter 0x%" PRIx64 " -> 0x%" PRIx64 " across the dump\n",
           c0, c1);
    vm_kill(&vm);
}

/* ---- a hostile exporter: MAP replies the library must refuse ---- */

static void raw_send(int sock, MxpMsg *m, int fd)
{
    uint8_t buf[MXP_MAX_MESSAGE];
    union {
        char c[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    int n = mxp_encode(m, buf, sizeof(buf));
    struct iovec iov = { buf, n > 0 ? (size_t)n : 0 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (fd >= 0) {
        struct cmsghdr *c;

        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.c;
        mh.msg_controllen = sizeof(ctl.c);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    if (n <= 0 || sendmsg(sock, &mh, MSG_NOSIGNAL) != n) {
        _exit(3);
    }
}

static bool raw_recv(int sock, MxpMsg *m, uint8_t *buf)
{
    MxpHeader h;
    size_t got = 0, want = MXP_HEADER_SIZE;

    while (got < want) {
        ssize_t n = read(sock, buf + got, want - got);

        if (n <= 0) {
            return false;
        }
        got += n;
        if (got == MXP_HEADER_SIZE) {
            if (mxp_decode_header(buf, got, &h)) {
                return false;
            }
            want += h.length;
        }
    }
    return mxp_decode(buf, got, 0, m) == MXP_OK;
}

static int memfd_sized(size_t size, int seals)
{
    int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd < 0 || ftruncate(fd, size) < 0 ||
        (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)) {
        _exit(4);
    }
    return fd;
}

/*
 * Fork a raw peer, @fn(its end of a socketpair, @arg), which exits when
 * done; *@sock is our end.  Returns the child.
 */
static pid_t fork_raw_peer(void (*fn)(int sock, const void *arg),
                           const void *arg, int *sock)
{
    int sv[2];
    pid_t child;

    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
          "socketpair");
    child = fork();
    if (child == 0) {
        close(sv[0]);
        fn(sv[1], arg);
    }
    close(sv[1]);
    *sock = sv[0];
    return child;
}

static void hostile_exporter(int sock, const void *unused)
{
    static uint8_t buf[MXP_MAX_MESSAGE];
    MxpMsg hello = {
        .hdr = { .type = MXP_HELLO },
        .u.hello = {
            .magic = MXP_MAGIC, .version_major = 1, .version_minor = 1,
            .features = MXP_FEAT_MAP | MXP_FEAT_BULK, .page_size = 4096,
            .role = MXP_ROLE_DEVICE, .max_data = 4096, .name = "hostile",
        },
    };
    MxpMsg m;

    (void)unused;
    raw_send(sock, &hello, -1);
    while (raw_recv(sock, &m, buf)) {
        MxpMsg r = {
            .hdr = { .type = MXP_MAP_REPLY, .id = m.hdr.id },
            .u.map_reply = { .kind = MXP_MAP_FD, .perm = MXP_PERM_ALL,
                             .addr = m.u.map.addr & ~0xfffULL,
                             .length = 0x1000 },
        };
        char path[64];
        int fd, rw;

        if (m.hdr.type != MXP_MAP) {
            continue;
        }
        switch (m.u.map.addr) {
        case 0x1000:        /* not sealed: we could truncate it */
            fd = memfd_sized(0x1000, 0);
            break;
        case 0x2000:        /* shorter than the range */
            r.u.map_reply.length = 0x2000;
            fd = memfd_sized(0x1000, F_SEAL_SHRINK);
            break;
        case 0x4000:        /* read-write grant, read-only descriptor */
            rw = memfd_sized(0x1000, F_SEAL_SHRINK);
            snprintf(path, sizeof(path), "/proc/self/fd/%d", rw);
            fd = open(path, O_RDONLY);
            close(rw);
            break;
        case 0x5000:        /* not a memfd at all */
            fd = open("/dev/null", O_RDWR);
            break;
        case 0x6000:        /* fine, read-only */
            r.u.map_reply.perm = MXP_PERM_READ;
            fd = memfd_sized(0x1000, F_SEAL_SHRINK);
            break;
        default:            /* does not contain the address */
            r.u.map_reply.addr += 0x10000;
            fd = memfd_sized(0x1000, F_SEAL_SHRINK);
            break;
        }
        raw_send(sock, &r, fd);
        close(fd);
    }
    _exit(0);
}

static void test_hostile_exporter(void)
{
    static const struct {
        uint64_t addr;
        const char *why;
    } cases[] = {
        { 0x1000, "memfd not sealed against shrinking" },
        { 0x2000, "file smaller than the range" },
        { 0x4000, "a read-write grant with a descriptor not open for"
                  " writing" },
        { 0x5000, "not a regular file or memfd" },
        { 0x6000, NULL },
    };
    mx_range r;
    mx_link *l;
    pid_t child;
    unsigned i;
    int sock, ret;

    child = fork_raw_peer(hostile_exporter, NULL, &sock);
    l = mx_link_new(NULL);
    ret = mx_attach(l, sock);
    CHECK(ret == 0, "attach: %s", mx_link_error(l));
    for (i = 0; ret == 0 && i < sizeof(cases) / sizeof(cases[0]); i++) {
        ret = mx_map(l, cases[i].addr, 0, &r);
        CHECK(ret == 0 && r.kind == MX_MAP_FD, "MAP 0x%" PRIx64 ": %d",
              cases[i].addr, ret);
        if (cases[i].why) {
            const char *why = r.why ? r.why : "-";

            CHECK(!r.host && !strcmp(why, cases[i].why),
                  "0x%" PRIx64 ": mapped %p, why '%s'", cases[i].addr,
                  r.host, why);
        } else {
            CHECK(r.host && r.perm == MX_PERM_READ, "good grant refused:"
                  " %s", r.why ? r.why : "-");
        }
        CHECK(mx_link_up(l), "link lost: %s", mx_link_error(l));
    }
    ret = mx_map(l, 0x8000, 0, &r);
    CHECK(ret == MX_ERR_LINK && !mx_link_up(l) &&
          !strcmp(mx_link_error(l), "protocol error: bad MAP_REPLY for"
                  " 0x8000: it does not contain the address asked for"),
          "bad MAP_REPLY: %d, '%s'", ret, mx_link_error(l));
    mx_close(l);
    waitpid(child, NULL, 0);
}

/*
 * A peer with HEARTBEAT that answers PING only if @answer, counting the
 * PINGs it got (the exit status, at most 255) until the library hangs up.
 */
static void ping_peer(int sock, const void *answering)
{
    bool answer = *(const bool *)answering;
    static uint8_t buf[MXP_MAX_MESSAGE];
    MxpMsg hello = {
        .hdr = { .type = MXP_HELLO },
        .u.hello = {
            .magic = MXP_MAGIC, .version_major = 1, .version_minor = 1,
            .features = MXP_FEAT_HEARTBEAT, .page_size = 4096,
            .role = MXP_ROLE_DEVICE, .max_data = 4096, .name = "pinged",
        },
    };
    unsigned pings = 0;
    MxpMsg m;

    raw_send(sock, &hello, -1);
    while (raw_recv(sock, &m, buf)) {
        MxpMsg pong = { .hdr = { .type = MXP_PONG, .id = m.hdr.id },
                        .u.ping = m.u.ping };

        if (m.hdr.type != MXP_PING) {
            continue;
        }
        pings++;
        if (answer) {
            raw_send(sock, &pong, -1);
        }
    }
    _exit(pings > 255 ? 255 : pings);
}

/* Liveness PINGs of the library: a peer that stops answering is dropped. */
static void test_heartbeat(void)
{
    static const bool answers[] = { true, false };
    unsigned i;

    for (i = 0; i < 2; i++) {
        int64_t start, up_ms;
        mx_options o;
        mx_link *l;
        pid_t child;
        int sock, st;

        child = fork_raw_peer(ping_peer, &answers[i], &sock);
        mx_options_init(&o);
        o.heartbeat_ms = 100;
        l = mx_link_new(&o);
        CHECK(mx_attach(l, sock) == 0, "attach: %s", mx_link_error(l));
        CHECK(mx_peer(l)->negotiated & MX_FEAT_HEARTBEAT,
              "HEARTBEAT not in use");
        start = now_ms();
        while (mx_link_up(l) && now_ms() - start < 1500) {
            mx_dispatch(l, -1);
        }
        up_ms = now_ms() - start;
        if (answers[i]) {
            CHECK(mx_link_up(l), "a peer that answers lost the link after"
                  " %" PRId64 " ms: %s", up_ms, mx_link_error(l));
        } else {
            /* Three intervals after the first PING, one after link-up. */
            CHECK(!mx_link_up(l) && up_ms >= 350 && up_ms < 1000 &&
                  !strcmp(mx_link_error(l), "the peer did not answer PING"),
                  "silent peer: up %" PRId64 " ms, '%s'", up_ms,
                  mx_link_error(l));
        }
        mx_close(l);
        waitpid(child, &st, 0);
        /* About one PING per interval (and only one unanswered). */
        CHECK(WIFEXITED(st) && (answers[i] ? WEXITSTATUS(st) >= 10 &&
                                WEXITSTATUS(st) <= 16
                                : WEXITSTATUS(st) == 1),
              "%s peer got %d PINGs", answers[i] ? "answering" : "silent",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
}

/* contrib/examples/dma-engine: a device model in its own process. */
static const char *dma_engine;

static void test_dma_engine(void)
{
    static uint8_t pat[256 << 10], got[8192];
    const uint64_t src = 0x400000, dst = 0x900000;
    int64_t deadline;
    uint32_t head, done[2];
    uint64_t off, v;
    pid_t pid;
    int st;

    fill(pat, sizeof(pat), 21);
    for (off = 0; off < sizeof(pat); off += 8192) {
        qt_memwrite(&vm1, NULL, src + off, pat + off, 8192);
    }
    pid = fork();
    if (pid == 0) {
        execl(dma_engine, dma_engine, vm1.mx_sock, "0x0", (char *)NULL);
        _exit(127);
    }
    CHECK(wait_vm_link(&vm1, NULL, true), "dma-engine did not link");
    /* Window offset 0 reaches the engine's registers at its address 0. */
    qt_writel(&vm1, NULL, REGS_ADDR + MX_REG_WINDOW_BASE_LO, 0);
    qt_writel(&vm1, NULL, REGS_ADDR + MX_REG_WINDOW_BASE_HI, 0);
    v = qt_read(&vm1, NULL, "readq", WINDOW_ADDR);
    CHECK(v == 0x313030414d44584dULL, "ID 0x%" PRIx64, v);
    qt_write(&vm1, NULL, "writeq", WINDOW_ADDR + 0x08, src);
    qt_write(&vm1, NULL, "writeq", WINDOW_ADDR + 0x10, dst);
    qt_write(&vm1, NULL, "writeq", WINDOW_ADDR + 0x18, sizeof(pat));
    qt_write(&vm1, NULL, "writeq", WINDOW_ADDR + 0x20, 1);
    deadline = now_ms() + 20000;
    while (!qt_readl(&vm1, NULL, REGS_ADDR + MX_REG_DB_RX_COUNT) &&
           now_ms() < deadline) {
        usleep(10000);
    }
    head = qt_readl(&vm1, NULL, REGS_ADDR + MX_REG_DB_RX_HEAD);
    CHECK(head == (0 | (8 << 16)), "completion doorbell: HEAD 0x%x", head);
    qt_memread(&vm1, NULL, REGS_ADDR + MX_REG_DB_RX_DATA, done, 8);
    CHECK(done[0] == 2 && done[1] == 1, "completion payload %u %u",
          done[0], done[1]);
    qt_writel(&vm1, NULL, REGS_ADDR + MX_REG_DB_RX_POP, 1);
    v = qt_read(&vm1, NULL, "readq", WINDOW_ADDR + 0x28);
    CHECK(v == 2, "STATUS %" PRIu64, v);
    for (off = 0; off < sizeof(pat); off += sizeof(got)) {
        qt_memread(&vm1, NULL, dst + off, got, sizeof(got));
        if (memcmp(got, pat + off, sizeof(got))) {
            CHECK(false, "copy differs at 0x%" PRIx64, dst + off);
            break;
        }
    }
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "dma-engine exit 0x%x", st);
    wait_vm_link(&vm1, NULL, false);
}

typedef struct Case {
    const char *name;
    void (*fn)(void);
    Vm *vm;                     /* must be running */
    bool needs_link;
} Case;

int main(int argc, char **argv)
{
    static const Case cases[] = {
        { "library-to-library", test_lib_pair, NULL, false },
        { "hostile-exporter", test_hostile_exporter, NULL, false },
        { "heartbeat", test_heartbeat, NULL, false },
        { "handshake", test_handshake, &vm1, true },
        { "read-write-widths", test_widths, &vm1, true },
        { "bulk-read-write", test_bulk, &vm1, true },
        { "policy-refusals", test_policy, &vm1, true },
        { "invalidate", test_invalidate, &vm1, true },
        { "doorbell-to-vm", test_doorbell_to_vm, &vm1, true },
        { "doorbell-from-vm", test_doorbell_from_vm, &vm1, true },
        { "vm-window-to-exports", test_window, &vm1, true },
        { "memexpose-host", test_tool, &vm1, true },
        { "dma-engine-example", test_dma_engine, &vm1, false },
        { "doorbell-ring", test_doorbell_ring, &vm2, false },
        { "zero-copy-ram", test_zero_copy, &vm2, false },
        { "peer-killed", test_peer_killed, &vm2, false },
        { "boot-master", test_boot, NULL, false },
        { "dump-running-vm", test_dump_running, NULL, false },
    };
    const unsigned n = sizeof(cases) / sizeof(cases[0]);
    bool vm1_ok, vm2_ok;
    mx_options o;
    unsigned i;

    if (argc != 3 && argc != 5) {
        fprintf(stderr, "usage: %s QEMU MEMEXPOSE-HOST [QEMU-AARCH64"
                " FIRMWARE]\n", argv[0]);
        return 2;
    }
    qemu = argv[1];
    host_tool = argv[2];
    qemu_a64 = argc == 5 ? argv[3] : NULL;
    firmware = argc == 5 ? argv[4] : NULL;
    dma_engine = getenv("MEMEXPOSE_DMA_ENGINE");
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/mx-host-test-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("1..%u\n", n);

    vm1_ok = access(qemu, X_OK) == 0 && access(host_tool, X_OK) == 0 &&
             vm_start(&vm1, "vm1", 64, "export=0+32M:rw;0x2000000+32M:ro;"
                      "0xfed00000+4K:rw;0xe8000000+1M:rw",
                      "-object memory-backend-memfd,id=shm,size=1M,share=on "
                      "-device ivshmem-plain,memdev=shm,addr=5.0", false);
    vm2_ok = vm_start(&vm2, "vm2", 128, "export=0+128M:rw,trust-peer=on",
                      NULL, true);
    mx_options_init(&o);
    o.name = "test-host";
    o.timeout_ms = 5000;
    o.on_invalidate = on_inval;
    l1 = vm1_ok ? link_to(&vm1, &o, false, setup_exports) : NULL;

    for (i = 0; i < n; i++) {
        const Case *c = &cases[i];

        test_no++;
        if (c->vm && (c->vm == &vm1 ? !vm1_ok : !vm2_ok)) {
            printf("not ok %u - %s # cannot run: QEMU did not start (%s)\n",
                   test_no, c->name, qemu);
            tests_failed++;
            continue;
        }
        if (c->needs_link && !l1) {
            printf("not ok %u - %s # cannot run: no link to the VM\n",
                   test_no, c->name);
            tests_failed++;
            continue;
        }
        if (c->fn == test_dma_engine && (!dma_engine ||
                                          access(dma_engine, X_OK))) {
            printf("not ok %u - %s # cannot run: set MEMEXPOSE_DMA_ENGINE\n",
                   test_no, c->name);
            tests_failed++;
            continue;
        }
        if ((c->fn == test_boot || c->fn == test_dump_running) &&
            (!qemu_a64 || access(qemu_a64, X_OK) || !firmware ||
             access(firmware, R_OK))) {
            printf("not ok %u - %s # cannot run: no aarch64 QEMU or"
                   " firmware given\n", test_no, c->name);
            tests_failed++;
            continue;
        }
        failed_checks = 0;
        c->fn();
        if (c->needs_link && l1 && !mx_link_up(l1)) {
            printf("# link lost: %s\n", mx_link_error(l1));
            failed_checks++;
        }
        printf("%s %u - %s\n", failed_checks ? "not ok" : "ok", test_no,
               c->name);
        tests_failed += failed_checks != 0;
    }
    mx_close(l1);
    vm_kill(&vm1);
    vm_kill(&vm2);
    if (!tests_failed) {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) {
            printf("# could not remove %s\n", tmpdir);
        }
    } else {
        printf("# QEMU logs kept in %s\n", tmpdir);
    }
    return tests_failed ? 1 : 0;
}
