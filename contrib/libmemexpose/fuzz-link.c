/*
 * Fuzz target for libmemexpose's receive path, in the input format of
 * the wire codec's corpus (tests/fuzz/fuzz-wire.c): the low bit of the
 * first byte is the number of descriptors (a memfd) that accompany the
 * message, the rest is the message as the peer sends it.
 *
 * The message goes to a link over a socketpair, after a valid HELLO (or
 * instead of it when it is a HELLO itself).  Properties (abort() on
 * violation): the library neither crashes nor leaks past ASan; a link
 * that went down has a reason; everything the library sent decodes.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz-wire.h"
#include "libmemexpose.h"
#include "memexpose-wire.h"

#define CHECK(cond)             \
    do {                        \
        if (!(cond)) {          \
            abort();            \
        }                       \
    } while (0)

static int regs(void *opaque, uint64_t offset, void *buf, uint32_t size,
                bool write)
{
    (void)opaque;
    if (!write) {
        memset(buf, 0x5a, size);
    }
    return offset >= 0x800 ? MX_E_ACCESS : 0;
}

static void send_with_fd(int sock, const uint8_t *data, size_t size,
                         bool with_fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { (void *)data, size };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    int fd = -1;

    if (with_fd) {
        struct cmsghdr *c;

        fd = memfd_create("fuzz", MFD_CLOEXEC);
        CHECK(fd >= 0 && ftruncate(fd, 1 << 16) == 0);
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    if (size) {
        CHECK(sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)size);
    }
    if (fd >= 0) {
        close(fd);
    }
}

/* Everything the library sent must be a valid message. */
static void check_output(int sock)
{
    static uint8_t buf[1 << 20];
    ssize_t n = recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
    size_t off = 0;

    while (n > 0 && off + MXP_HEADER_SIZE <= (size_t)n) {
        MxpHeader hdr;
        MxpMsg msg;
        size_t len;

        CHECK(mxp_decode_header(buf + off, n - off, &hdr) == MXP_OK);
        len = MXP_HEADER_SIZE + hdr.length;
        CHECK(off + len <= (size_t)n);
        CHECK(mxp_decode(buf + off, len, mxp_expected_fds(&hdr), &msg) ==
              MXP_OK);
        off += len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    MxpMsg hello = {
        .hdr = { .type = MXP_HELLO },
        .u.hello = {
            .magic = MXP_MAGIC, .version_major = 1, .version_minor = 1,
            .features = MXP_FEAT_MAP | MXP_FEAT_BULK | MXP_FEAT_BOOT,
            .page_size = 4096, .role = MXP_ROLE_BOOT_TARGET, .vectors = 4,
            .queue_depth = 4, .max_data = 4096, .name = "fuzzer",
        },
    };
    uint8_t hbuf[MXP_MAX_MESSAGE];
    bool is_hello, with_fd;
    mx_options opt;
    mx_link *l;
    int sv[2], i;

    if (size < 1) {
        return 0;
    }
    with_fd = data[0] & 1;
    data++;
    size--;
    is_hello = size >= 2 && data[0] == MXP_HELLO && data[1] == 0;

    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    if (!is_hello) {
        int n = mxp_encode(&hello, hbuf, sizeof(hbuf));

        CHECK(n > 0);
        send_with_fd(sv[1], hbuf, n, false);
    }
    send_with_fd(sv[1], data, size, with_fd);

    mx_options_init(&opt);
    opt.timeout_ms = 20;
    l = mx_link_new(&opt);
    CHECK(l);
    CHECK(mx_export_buffer(l, 0x10000, 0x4000, MX_PERM_RW, NULL) == 0);
    CHECK(mx_export_buffer(l, 0x20000, 0x1000, MX_PERM_READ, NULL) == 0);
    CHECK(mx_export_callback(l, 0x30000, 0x1000, MX_PERM_RW, regs, NULL) ==
          0);
    if (mx_attach(l, sv[0]) == 0) {
        for (i = 0; i < 4 && mx_link_up(l); i++) {
            mx_dispatch(l, 0);
        }
    }
    CHECK(mx_link_up(l) || mx_link_error(l)[0]);
    check_output(sv[1]);
    mx_close(l);
    close(sv[1]);
    return 0;
}
