/*
 * libFuzzer target for the memexpose wire codec.
 *
 * Input: the low bit of the first byte is the number of file descriptors
 * (0 or 1) that arrived with the message; the remaining bytes are the
 * message as read from the socket.
 *
 * Properties checked (abort() on violation):
 *  - mxp_decode never reads outside the message (left to ASan) and returns
 *    a known status; when the header is bad it returns the same status as
 *    mxp_decode_header; MXP_ERR_VERSION comes with the HELLO's magic and
 *    version fields filled in from the input;
 *  - a message that decodes re-encodes to exactly the input bytes (the
 *    encoding is canonical), decodes again, and re-encodes identically;
 *  - it needs exactly the fd count its header announces, fails as
 *    truncated without its last byte, and does not encode into a buffer
 *    one byte too small.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memexpose-wire.h"
#include "fuzz-wire.h"

#define CHECK(cond)             \
    do {                        \
        if (!(cond)) {          \
            abort();            \
        }                       \
    } while (0)

/* Statuses mxp_decode may return (MXP_ERR_SPACE is encode-only). */
static bool decode_status_ok(int ret)
{
    switch (ret) {
    case MXP_OK:
    case MXP_ERR_SHORT:
    case MXP_ERR_TOO_LONG:
    case MXP_ERR_TYPE:
    case MXP_ERR_LENGTH:
    case MXP_ERR_FLAGS:
    case MXP_ERR_FDS:
    case MXP_ERR_RANGE:
    case MXP_ERR_VERSION:
        return true;
    default:
        return false;
    }
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

/* Data pointers must point at the data inside the decoded buffer. */
static void check_pointers(const MxpMsg *m, const uint8_t *buf, size_t len)
{
    switch (m->hdr.type) {
    case MXP_READ:
        CHECK(m->u.access.data == NULL);
        break;
    case MXP_READ_REPLY:
    case MXP_WRITE:
        CHECK(m->u.access.data == buf + MXP_HEADER_SIZE + 16);
        CHECK(MXP_HEADER_SIZE + 16 + (size_t)m->u.access.size == len);
        break;
    case MXP_DOORBELL:
        CHECK(m->u.doorbell.data == buf + MXP_HEADER_SIZE + 8);
        CHECK(MXP_HEADER_SIZE + 8 + (size_t)m->u.doorbell.size == len);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[MXP_MAX_MESSAGE];
    static uint8_t out2[MXP_MAX_MESSAGE];
    const uint8_t *buf;
    unsigned nfds;
    size_t len;
    MxpHeader hdr;
    MxpMsg msg, msg2;
    int hret, ret, ret2;

    if (size < 1) {
        return 0;
    }
    nfds = data[0] & 1;
    buf = data + 1;
    len = size - 1;
    memset(&hdr, 0, sizeof(hdr));

    hret = mxp_decode_header(buf, len, &hdr);
    CHECK(hret == MXP_OK || hret == MXP_ERR_SHORT || hret == MXP_ERR_TYPE ||
          hret == MXP_ERR_FLAGS || hret == MXP_ERR_TOO_LONG);
    CHECK(mxp_type_name(hdr.type) != NULL);

    ret = mxp_decode(buf, len, nfds, &msg);
    CHECK(decode_status_ok(ret));
    CHECK(mxp_status_str(ret) != NULL);
    if (hret != MXP_OK) {
        CHECK(ret == hret);
        return 0;
    }
    if (ret == MXP_ERR_VERSION) {
        /* A HELLO with our magic and another major version. */
        CHECK(hdr.type == MXP_HELLO && hdr.length >= 8);
        CHECK(msg.u.hello.magic == MXP_MAGIC);
        CHECK(msg.u.hello.version_major == get16(buf + MXP_HEADER_SIZE + 4));
        CHECK(msg.u.hello.version_major != MXP_VERSION_MAJOR);
        CHECK(msg.u.hello.version_minor == get16(buf + MXP_HEADER_SIZE + 6));
        return 0;
    }
    if (ret != MXP_OK) {
        return 0;
    }

    /* The header decoded by both entry points agrees. */
    CHECK(msg.hdr.type == hdr.type && msg.hdr.flags == hdr.flags &&
          msg.hdr.length == hdr.length && msg.hdr.id == hdr.id);
    CHECK(len == MXP_HEADER_SIZE + (size_t)hdr.length);
    CHECK(mxp_expected_fds(&msg.hdr) == nfds);
    check_pointers(&msg, buf, len);
    if (msg.hdr.type == MXP_ERROR || msg.hdr.type == MXP_BYE) {
        CHECK(mxp_err_str(msg.u.error.code) != NULL);
    }

    /* Canonical: re-encoding gives back the input bit for bit. */
    ret = mxp_encode(&msg, out, sizeof(out));
    CHECK(ret >= 0 && (size_t)ret == len);
    CHECK(memcmp(out, buf, len) == 0);

    /* One byte less room is refused, without writing past the limit. */
    out2[len - 1] = 0x5a;
    ret = mxp_encode(&msg, out2, len - 1);
    CHECK(ret == MXP_ERR_SPACE);
    CHECK(out2[len - 1] == 0x5a);

    /* The re-encoded message decodes and encodes to the same bytes. */
    ret = mxp_decode(out, len, nfds, &msg2);
    CHECK(ret == MXP_OK);
    check_pointers(&msg2, out, len);
    ret2 = mxp_encode(&msg2, out2, sizeof(out2));
    CHECK(ret2 >= 0 && (size_t)ret2 == len);
    CHECK(memcmp(out2, buf, len) == 0);

    /* Wrong fd count, missing last byte, extra byte: all refused. */
    CHECK(mxp_decode(buf, len, !nfds, &msg2) == MXP_ERR_FDS);
    CHECK(mxp_decode(buf, len, 2, &msg2) == MXP_ERR_FDS);
    CHECK(mxp_decode(buf, len - 1, nfds, &msg2) == MXP_ERR_SHORT);
    if (len < sizeof(out)) {
        out[len] = 0;
        CHECK(mxp_decode(out, len + 1, nfds, &msg2) == MXP_ERR_LENGTH);
    }
    return 0;
}
