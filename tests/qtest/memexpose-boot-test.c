/*
 * QTest testcase for memexpose-sysbus and slave boot on the Arm virt
 * board: a boot master driven by qtest loads firmware into a boot
 * target's RAM through its window and starts it with BOOT.  The target
 * runs the firmware under TCG; it prints on its UART and rings a doorbell
 * back to the master.
 *
 * The firmware (memexpose's tests/firmware/aarch64) is named by the
 * environment variable MEMEXPOSE_FW; without it the boot cases are
 * skipped.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <glib/gstdio.h>
#include "libqtest.h"
#include "hw/misc/memexpose/memexpose-regs.h"
#include "hw/misc/memexpose/memexpose-wire.h"

/* Where virt's platform bus puts the first dynamic device. */
#define MX_REGS         0x0c000000ULL
#define MX_WINDOW       0x0d000000ULL
#define WINDOW_SIZE     (16 * 1024 * 1024)
#define VIRT_RAM        0x40000000ULL
#define VIRT_UART       0x09000000ULL
#define RAM_MB          128
#define FW_ENTRY        0x40100000ULL
#define WAIT_MS         30000

static char *tmpdir;

static QTestState *start_side(const char *name, bool server, bool target,
                              const char *serial)
{
    g_autofree char *sock = g_strdup_printf("%s/boot.sock", tmpdir);

    /*
     * A boot target runs real code: TCG comes before the qtest
     * accelerator libqtest adds.  The master only needs qtest.
     */
    return qtest_initf("-M virt -cpu cortex-a57 -m %d "
                       "-object memory-backend-memfd,id=ram,size=%dM,share=on "
                       "-machine memory-backend=ram %s "
                       "-serial %s%s "
                       "-chardev socket,id=mx,path=%s%s "
                       "-device memexpose-sysbus,id=mx,chardev=mx,name=%s,"
                       "window-size=%d,export=0x%llx+%dM:rw%s",
                       RAM_MB, RAM_MB, target ? "-accel tcg" : "",
                       serial ? "file:" : "", serial ? serial : "none",
                       sock, server ? ",server=on,wait=off" :
                                      ",reconnect-ms=100",
                       name, WINDOW_SIZE, VIRT_RAM, RAM_MB,
                       target ? ",boot-target=on" : "");
}

static uint32_t reg_read(QTestState *qts, uint64_t reg)
{
    return qtest_readl(qts, MX_REGS + reg);
}

static void reg_write(QTestState *qts, uint64_t reg, uint32_t val)
{
    qtest_writel(qts, MX_REGS + reg, val);
}

static void wait_reg(QTestState *qts, uint64_t reg, uint32_t mask,
                     uint32_t val)
{
    int64_t deadline = g_get_monotonic_time() + WAIT_MS * 1000;

    while ((reg_read(qts, reg) & mask) != val) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
}

static void start_pair(QTestState **master, QTestState **target,
                       const char *serial)
{
    *target = start_side("slave", true, true, serial);
    *master = start_side("master", false, false, NULL);
    wait_reg(*master, MX_REG_LINK, MX_LINK_UP | MX_LINK_PEER_BOOT_TARGET,
             MX_LINK_UP | MX_LINK_PEER_BOOT_TARGET);
    wait_reg(*master, MX_REG_BOOT_PEER_STATE, ~0U, MX_BOOT_STATE_WAITING);
}

static uint32_t boot_cmd(QTestState *qts, uint32_t cmd)
{
    reg_write(qts, MX_REG_BOOT_CMD, cmd);
    return reg_read(qts, MX_REG_BOOT_STATUS);
}

static uint32_t boot(QTestState *qts, uint64_t entry, uint64_t cookie,
                     uint32_t nargs)
{
    const uint64_t args[MX_BOOT_MAX_ARGS] = { MX_REGS, VIRT_UART, cookie };
    unsigned i;

    reg_write(qts, MX_REG_BOOT_ENTRY_LO, entry);
    reg_write(qts, MX_REG_BOOT_ENTRY_HI, entry >> 32);
    for (i = 0; i < MX_BOOT_MAX_ARGS; i++) {
        reg_write(qts, MX_REG_BOOT_ARG_LO(i), args[i]);
        reg_write(qts, MX_REG_BOOT_ARG_HI(i), args[i] >> 32);
    }
    reg_write(qts, MX_REG_BOOT_NARGS, nargs);
    return boot_cmd(qts, MX_BOOT_CMD_BOOT);
}

/* Write the firmware into the target's RAM through the master's window. */
static void load_firmware(QTestState *master)
{
    g_autofree char *fw = NULL;
    gsize len;

    g_assert(g_file_get_contents(getenv("MEMEXPOSE_FW"), &fw, &len, NULL));
    g_assert_cmpuint(len, <, WINDOW_SIZE - (FW_ENTRY - VIRT_RAM));
    reg_write(master, MX_REG_WINDOW_BASE_LO, (uint32_t)VIRT_RAM);
    reg_write(master, MX_REG_WINDOW_BASE_HI, VIRT_RAM >> 32);
    qtest_memwrite(master, MX_WINDOW + (FW_ENTRY - VIRT_RAM), fw, len);
}

/* Wait for the firmware's doorbell and check its payload. */
static void expect_doorbell(QTestState *master, uint64_t cookie)
{
    g_autofree char *want =
        g_strdup_printf("memexpose-fw: booted, cookie 0x%016" PRIx64, cookie);
    char got[MXP_MAX_DOORBELL_DATA + 1] = "";
    uint32_t head, size, i;

    wait_reg(master, MX_REG_DB_RX_COUNT, ~0U, 1);
    head = reg_read(master, MX_REG_DB_RX_HEAD);
    g_assert_cmpuint(head & 0xffff, ==, 0);
    size = head >> 16;
    g_assert_cmpuint(size, ==, strlen(want));
    for (i = 0; i < size; i++) {
        got[i] = qtest_readb(master, MX_REGS + MX_REG_DB_RX_DATA + i);
    }
    g_assert_cmpstr(got, ==, want);
    reg_write(master, MX_REG_DB_RX_POP, 1);
}

static unsigned count_lines(const char *out, const char *line)
{
    unsigned n = 0;

    while ((out = strstr(out, line))) {
        n++;
        out += strlen(line);
    }
    return n;
}

/* Wait until the UART shows @cookie's hello and @count "sent" lines. */
static void expect_uart(const char *path, uint64_t cookie, unsigned count)
{
    g_autofree char *want =
        g_strdup_printf("memexpose-fw: hello from the aarch64 slave, cookie "
                        "0x%016" PRIx64 "\r\n", cookie);
    int64_t deadline = g_get_monotonic_time() + WAIT_MS * 1000;

    for (;;) {
        g_autofree char *out = NULL;

        if (g_file_get_contents(path, &out, NULL, NULL) &&
            strstr(out, want) &&
            count_lines(out, "memexpose-fw: doorbell sent\r\n") == count) {
            return;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
}

static bool have_firmware(void)
{
    if (!getenv("MEMEXPOSE_FW")) {
        g_test_skip("MEMEXPOSE_FW not set: no firmware to boot");
        return false;
    }
    return true;
}

/* Load, BOOT, doorbell and UART line; RESET and a second BOOT. */
static void test_boot(void)
{
    g_autofree char *uart = g_strdup_printf("%s/uart.txt", tmpdir);
    QTestState *master, *target;

    if (!have_firmware()) {
        return;
    }
    start_pair(&master, &target, uart);
    g_assert_cmpuint(reg_read(target, MX_REG_BOOT_STATE), ==,
                     MX_BOOT_STATE_WAITING);

    /* The WAITING report set INTR_BOOT; RUNNING must set it again. */
    reg_write(master, MX_REG_INTR_STATUS, MX_INTR_BOOT);
    g_assert_cmpuint(reg_read(master, MX_REG_INTR_STATUS) & MX_INTR_BOOT,
                     ==, 0);
    load_firmware(master);
    g_assert_cmphex(boot(master, FW_ENTRY, 0x1122334455667788ULL, 3), ==,
                    MX_BOOT_OK);
    expect_doorbell(master, 0x1122334455667788ULL);
    expect_uart(uart, 0x1122334455667788ULL, 1);
    wait_reg(master, MX_REG_BOOT_PEER_STATE, ~0U, MX_BOOT_STATE_RUNNING);
    g_assert_cmpuint(reg_read(master, MX_REG_INTR_STATUS) & MX_INTR_BOOT,
                     ==, MX_INTR_BOOT);

    /* Back to waiting, reload, boot again with another cookie. */
    g_assert_cmphex(boot_cmd(master, MX_BOOT_CMD_RESET), ==, MX_BOOT_OK);
    wait_reg(master, MX_REG_BOOT_PEER_STATE, ~0U, MX_BOOT_STATE_WAITING);
    load_firmware(master);
    g_assert_cmphex(boot(master, FW_ENTRY, 0xcafef00d, 3), ==, MX_BOOT_OK);
    expect_doorbell(master, 0xcafef00d);
    expect_uart(uart, 0xcafef00d, 2);

    qtest_quit(master);
    qtest_quit(target);
}

/* Requests that are not valid now are refused; the target is unchanged. */
static void test_boot_refused(void)
{
    g_autofree char *uart = g_strdup_printf("%s/uart2.txt", tmpdir);
    QTestState *master, *target;

    if (!have_firmware()) {
        return;
    }
    start_pair(&master, &target, uart);

    /* Not in RAM: flash at 0; misaligned; too many arguments. */
    g_assert_cmphex(boot(master, 0x1000, 0, 3), ==, MXP_E_BAD_ENTRY);
    g_assert_cmphex(boot(master, FW_ENTRY + 2, 0, 3), ==, MXP_E_BAD_ENTRY);
    g_assert_cmphex(boot(master, FW_ENTRY, 0, 5), ==, MX_BOOT_BAD_CMD);
    g_assert_cmphex(boot_cmd(master, 7), ==, MX_BOOT_BAD_CMD);
    /* HALT is only valid while running. */
    g_assert_cmphex(boot_cmd(master, MX_BOOT_CMD_HALT), ==,
                    MXP_E_BAD_STATE);
    g_assert_cmpuint(reg_read(master, MX_REG_BOOT_PEER_STATE), ==,
                     MX_BOOT_STATE_WAITING);
    g_assert_cmpuint(reg_read(target, MX_REG_BOOT_STATE), ==,
                     MX_BOOT_STATE_WAITING);

    load_firmware(master);
    g_assert_cmphex(boot(master, FW_ENTRY, 1, 3), ==, MX_BOOT_OK);
    expect_doorbell(master, 1);
    /* Already running. */
    g_assert_cmphex(boot(master, FW_ENTRY, 2, 3), ==, MXP_E_BAD_STATE);
    g_assert_cmphex(boot_cmd(master, MX_BOOT_CMD_HALT), ==, MX_BOOT_OK);
    wait_reg(master, MX_REG_BOOT_PEER_STATE, ~0U, MX_BOOT_STATE_HALTED);
    /* Halted needs a RESET first. */
    g_assert_cmphex(boot(master, FW_ENTRY, 3, 3), ==, MXP_E_BAD_STATE);
    g_assert_cmpuint(reg_read(master, MX_REG_DB_RX_COUNT), ==, 0);

    qtest_quit(master);
    qtest_quit(target);
}

/* Stops and starts that the master did not ask for are reported too. */
static void test_boot_monitor(void)
{
    g_autofree char *uart = g_strdup_printf("%s/uart3.txt", tmpdir);
    QTestState *master, *target;

    if (!have_firmware()) {
        return;
    }
    start_pair(&master, &target, uart);
    load_firmware(master);
    g_assert_cmphex(boot(master, FW_ENTRY, 7, 3), ==, MX_BOOT_OK);
    expect_doorbell(master, 7);

    qtest_qmp_assert_success(target, "{'execute': 'stop'}");
    wait_reg(master, MX_REG_BOOT_PEER_STATE, ~0U, MX_BOOT_STATE_HALTED);
    qtest_qmp_assert_success(target, "{'execute': 'cont'}");
    wait_reg(master, MX_REG_BOOT_PEER_STATE, ~0U, MX_BOOT_STATE_RUNNING);

    /* A reset the target's own side asks for keeps it running. */
    qtest_qmp_assert_success(target, "{'execute': 'system_reset'}");
    g_usleep(200 * 1000);
    g_assert_cmpuint(reg_read(master, MX_REG_BOOT_PEER_STATE), ==,
                     MX_BOOT_STATE_RUNNING);

    /* RESET from the master works from any state, BOOT after it. */
    g_assert_cmphex(boot_cmd(master, MX_BOOT_CMD_RESET), ==, MX_BOOT_OK);
    wait_reg(master, MX_REG_BOOT_PEER_STATE, ~0U, MX_BOOT_STATE_WAITING);
    g_assert_cmphex(boot_cmd(master, MX_BOOT_CMD_RESET), ==, MX_BOOT_OK);
    load_firmware(master);
    g_assert_cmphex(boot(master, FW_ENTRY, 8, 3), ==, MX_BOOT_OK);
    expect_doorbell(master, 8);

    qtest_quit(master);
    qtest_quit(target);
}

/* Wait for the level of the intercepted interrupt line to be @level. */
static void wait_irq(QTestState *qts, bool level)
{
    int64_t deadline = g_get_monotonic_time() + WAIT_MS * 1000;

    /* IRQ changes arrive with the replies to other commands. */
    while (qtest_get_irq(qts, 0) != level) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
        reg_read(qts, MX_REG_ID);
    }
}

/*
 * The platform device's one interrupt line follows INTR_STATUS &
 * INTR_MASK, as INTx does on PCI; the doorbell itself is found with
 * DB_RX_PENDING and DB_RX_HEAD.
 */
static void test_sysbus_irq(void)
{
    QTestState *a = start_side("a", true, false, NULL);
    QTestState *b = start_side("b", false, false, NULL);
    const uint32_t payload = 0x676e6964;        /* "ding" */

    qtest_irq_intercept_out_named(b, "/machine/peripheral/mx", "sysbus-irq");
    wait_reg(a, MX_REG_LINK, MX_LINK_UP, MX_LINK_UP);
    wait_reg(b, MX_REG_LINK, MX_LINK_UP, MX_LINK_UP);
    reg_write(b, MX_REG_INTR_STATUS, MX_INTR_ALL);
    wait_irq(b, false);

    /* Masked: status set, line low. */
    reg_write(a, MX_REG_DB_TX_DATA, payload);
    reg_write(a, MX_REG_DB_TX_LEN, 4);
    reg_write(a, MX_REG_DB_TX_VECTOR, 2);
    g_assert_cmpuint(reg_read(a, MX_REG_DB_TX_STATUS), ==, MX_TX_OK);
    wait_reg(b, MX_REG_DB_RX_COUNT, ~0U, 1);
    wait_reg(b, MX_REG_INTR_STATUS, MX_INTR_DOORBELL, MX_INTR_DOORBELL);
    g_assert_false(qtest_get_irq(b, 0));

    /* Unmasked: the line goes up; acknowledged: down again. */
    reg_write(b, MX_REG_INTR_MASK, MX_INTR_DOORBELL);
    wait_irq(b, true);
    g_assert_cmphex(reg_read(b, MX_REG_DB_RX_PENDING_LO), ==, 1U << 2);
    g_assert_cmphex(reg_read(b, MX_REG_DB_RX_HEAD), ==, 2 | (4 << 16));
    g_assert_cmphex(reg_read(b, MX_REG_DB_RX_DATA), ==, payload);
    reg_write(b, MX_REG_DB_RX_POP, 1);
    reg_write(b, MX_REG_INTR_STATUS, MX_INTR_DOORBELL);
    wait_irq(b, false);
    g_assert_cmphex(reg_read(b, MX_REG_DB_RX_HEAD), ==, MX_RX_EMPTY);

    qtest_quit(b);
    qtest_quit(a);
}

/* A side that is not a boot target refuses; the link is unaffected. */
static void test_not_boot_target(void)
{
    QTestState *a = start_side("a", true, false, NULL);
    QTestState *b = start_side("b", false, false, NULL);

    wait_reg(b, MX_REG_LINK, MX_LINK_UP, MX_LINK_UP);
    g_assert_cmpuint(reg_read(b, MX_REG_LINK) & MX_LINK_PEER_BOOT_TARGET,
                     ==, 0);
    g_assert_cmpuint(reg_read(b, MX_REG_BOOT_PEER_STATE), ==,
                     MX_BOOT_STATE_NONE);
    g_assert_cmphex(boot(b, VIRT_RAM, 0, 0), ==, MXP_E_NOT_BOOT_TARGET);
    g_assert_cmphex(boot_cmd(b, MX_BOOT_CMD_RESET), ==,
                    MXP_E_NOT_BOOT_TARGET);
    g_assert_cmpuint(reg_read(b, MX_REG_LINK) & MX_LINK_UP, ==, MX_LINK_UP);
    qtest_quit(b);
    /* And with no link at all. */
    g_assert_cmphex(boot(a, VIRT_RAM, 0, 0), ==, MX_BOOT_LINK_DOWN);
    qtest_quit(a);
}

static void remove_tmp(const char *name)
{
    g_autofree char *path = g_strdup_printf("%s/%s", tmpdir, name);

    g_unlink(path);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("memexpose-boot-test-XXXXXX", NULL);
    g_assert(tmpdir);

    qtest_add_func("/memexpose/boot/boot", test_boot);
    qtest_add_func("/memexpose/boot/refused", test_boot_refused);
    qtest_add_func("/memexpose/boot/monitor", test_boot_monitor);
    qtest_add_func("/memexpose/boot/not-boot-target", test_not_boot_target);
    qtest_add_func("/memexpose/sysbus/irq", test_sysbus_irq);
    ret = g_test_run();

    remove_tmp("uart.txt");
    remove_tmp("uart2.txt");
    remove_tmp("uart3.txt");
    remove_tmp("boot.sock");
    g_rmdir(tmpdir);
    g_free(tmpdir);
    return ret;
}
