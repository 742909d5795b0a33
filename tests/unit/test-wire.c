/*
 * Unit tests for the memexpose wire codec.
 *
 * Round trips of every message type with boundary values, and every
 * rejection path of mxp_decode_header, mxp_decode and mxp_encode.  Raw
 * inputs are made by encoding a valid message and patching the bytes at
 * the offsets below (all fields little-endian).
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <limits.h>
#include <string.h>

#include <glib.h>

#include "memexpose-wire.h"

/* Header. */
#define OFF_TYPE        0
#define OFF_FLAGS       2
#define OFF_LENGTH      4
#define OFF_ID          8
#define PL              MXP_HEADER_SIZE     /* start of the payload */

/* HELLO. */
#define H_MAGIC         (PL + 0)
#define H_VMAJOR        (PL + 4)
#define H_VMINOR        (PL + 6)
#define H_FEATURES      (PL + 8)
#define H_PAGE_SIZE     (PL + 16)
#define H_ROLE          (PL + 20)
#define H_VECTORS       (PL + 21)
#define H_QUEUE_DEPTH   (PL + 22)
#define H_MAX_DATA      (PL + 24)
#define H_RSVD          (PL + 28)           /* 4 bytes */
#define H_NAME          (PL + 32)
#define HELLO_LEN       (32 + MXP_NAME_SIZE)

/* ERROR, BYE. */
#define E_CODE          (PL + 0)
#define E_REQ_TYPE      (PL + 4)
#define E_ADDR          (PL + 8)

/* PING, PONG. */
#define P_COOKIE        (PL + 0)

/* READ, READ_REPLY, WRITE. */
#define A_ADDR          (PL + 0)
#define A_SIZE          (PL + 8)
#define A_RSVD          (PL + 12)           /* 4 bytes */
#define A_DATA          (PL + 16)

/* MAP. */
#define M_ADDR          (PL + 0)

/* MAP_REPLY. */
#define R_KIND          (PL + 0)
#define R_PERM          (PL + 1)
#define R_REASON        (PL + 2)            /* FORWARD only */
#define R_RSVD          (PL + 3)            /* 5 bytes */
#define R_ADDR          (PL + 8)
#define R_LENGTH        (PL + 16)
#define R_FD_OFFSET     (PL + 24)

/* INVALIDATE. */
#define I_ADDR          (PL + 0)
#define I_LENGTH        (PL + 8)

/* DOORBELL. */
#define D_VECTOR        (PL + 0)
#define D_SIZE          (PL + 2)
#define D_RSVD          (PL + 4)            /* 4 bytes */
#define D_DATA          (PL + 8)

/* CREDIT. */
#define C_CREDITS       (PL + 0)
#define C_RSVD          (PL + 4)            /* 4 bytes */

/* BOOT. */
#define B_ENTRY         (PL + 0)
#define B_NARGS         (PL + 8)
#define B_RSVD          (PL + 12)           /* 4 bytes */
#define B_ARGS          (PL + 16)           /* 8 bytes each */

/* STATE. */
#define S_STATE         (PL + 0)
#define S_RSVD          (PL + 4)            /* 4 bytes */

/* DB_RING, DB_EVENT. */
#define G_VALUE         (PL + 0)            /* depth, vector */
#define G_RSVD          (PL + 4)            /* 4 bytes */

/* Room for the largest message plus trailing bytes. */
#define BUF_SIZE        (MXP_MAX_MESSAGE + 64)

static uint8_t pattern[MXP_MAX_DATA + 64];

/* Variable-size messages tested in the all-types loops besides valid(). */
static const uint32_t data_sizes[] = { 1, 2, 4, 8, 9, 255, 256, 4095, 4096 };

static uint64_t get_le(const uint8_t *p, unsigned width)
{
    uint64_t v = 0;
    unsigned i;

    for (i = 0; i < width; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static void put_le(uint8_t *p, unsigned width, uint64_t v)
{
    unsigned i;

    for (i = 0; i < width; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

/* A valid message of @type with distinctive field values. */
static MxpMsg valid(unsigned type)
{
    MxpMsg m;

    memset(&m, 0, sizeof(m));
    m.hdr.type = (uint16_t)type;
    m.hdr.id = 0x1122334455667700ULL + type;

    switch (type) {
    case MXP_HELLO:
        m.u.hello.magic = MXP_MAGIC;
        m.u.hello.version_major = MXP_VERSION_MAJOR;
        m.u.hello.version_minor = MXP_VERSION_MINOR;
        m.u.hello.features = MXP_FEAT_ALL;
        m.u.hello.page_size = 4096;
        m.u.hello.role = MXP_ROLE_DEVICE;
        m.u.hello.vectors = 8;
        m.u.hello.queue_depth = 64;
        m.u.hello.max_data = MXP_MAX_DATA;
        strcpy(m.u.hello.name, "test-vm");
        break;
    case MXP_BYE:
        m.u.error.code = MXP_E_SHUTDOWN;
        break;
    case MXP_ERROR:
        m.u.error.code = MXP_E_DENIED;
        m.u.error.request_type = MXP_READ;
        m.u.error.addr = 0x1000;
        break;
    case MXP_PING:
    case MXP_PONG:
        m.u.ping = 0xdeadbeefcafef00dULL;
        break;
    case MXP_READ:
        m.u.access.addr = 0x1000;
        m.u.access.size = 8;
        break;
    case MXP_READ_REPLY:
    case MXP_WRITE:
        m.u.access.addr = 0x1000;
        m.u.access.size = 8;
        m.u.access.data = pattern;
        break;
    case MXP_MAP:
        m.u.map.addr = 0x40000;
        break;
    case MXP_MAP_REPLY:
        m.u.map_reply.kind = MXP_MAP_FD;
        m.u.map_reply.perm = MXP_PERM_ALL;
        m.u.map_reply.addr = 0x40000;
        m.u.map_reply.length = 0x10000;
        m.u.map_reply.fd_offset = 0x2000;
        break;
    case MXP_INVALIDATE:
        m.u.range.addr = 0x40000;
        m.u.range.length = 0x10000;
        break;
    case MXP_DOORBELL:
        m.u.doorbell.vector = 3;
        m.u.doorbell.size = 16;
        m.u.doorbell.data = pattern;
        break;
    case MXP_CREDIT:
        m.u.credits = 16;
        break;
    case MXP_BOOT:
        m.u.boot.entry = 0x100000;
        m.u.boot.nargs = 2;
        m.u.boot.args[0] = 0x8000;
        m.u.boot.args[1] = 0x1234;
        break;
    case MXP_STATE:
        m.u.state = MXP_BOOT_RUNNING;
        break;
    case MXP_DB_RING:
        m.u.ring_depth = 32;
        break;
    case MXP_DB_EVENT:
        m.u.event_vector = 5;
        break;
    default:
        /* ACK, INVALIDATE_ACK, RESET, HALT, DB_SPACE: no payload. */
        break;
    }
    return m;
}

/* Payload length per the protocol, computed independently of the codec. */
static uint32_t payload_len(const MxpMsg *m)
{
    switch (m->hdr.type) {
    case MXP_HELLO:
        return HELLO_LEN;
    case MXP_BYE:
    case MXP_ERROR:
    case MXP_READ:
    case MXP_INVALIDATE:
        return 16;
    case MXP_PING:
    case MXP_PONG:
    case MXP_MAP:
    case MXP_CREDIT:
    case MXP_STATE:
    case MXP_DB_RING:
    case MXP_DB_EVENT:
        return 8;
    case MXP_READ_REPLY:
    case MXP_WRITE:
        return 16 + m->u.access.size;
    case MXP_MAP_REPLY:
        return 32;
    case MXP_DOORBELL:
        return 8 + m->u.doorbell.size;
    case MXP_BOOT:
        return 16 + 8 * MXP_BOOT_ARGS;
    default:
        return 0;
    }
}

static unsigned nfds_of(const MxpMsg *m)
{
    return (m->hdr.type == MXP_MAP_REPLY &&
            m->u.map_reply.kind == MXP_MAP_FD) ||
           m->hdr.type == MXP_DB_RING || m->hdr.type == MXP_DB_EVENT;
}

/* Encode a message that must be valid; returns its size. */
static size_t encode_ok(const MxpMsg *m, uint8_t *buf)
{
    int len = mxp_encode(m, buf, BUF_SIZE);

    g_assert_cmpint(len, ==, MXP_HEADER_SIZE + payload_len(m));
    return (size_t)len;
}

/*
 * mxp_decode must return @expected; mxp_decode_header must agree on
 * header-level faults and accept the header otherwise.  Both run on an
 * exactly sized heap copy, so ASan catches any read past @len.
 */
static void expect_decode(const uint8_t *buf, size_t len, unsigned nfds,
                          int expected)
{
    uint8_t *copy = g_malloc(len ? len : 1);
    MxpMsg m;
    MxpHeader h;
    int hret;

    if (len) {
        memcpy(copy, buf, len);
    }
    hret = mxp_decode_header(copy, len, &h);

    g_assert_cmpint(mxp_decode(copy, len, nfds, &m), ==, expected);
    g_free(copy);
    if (len < MXP_HEADER_SIZE) {
        g_assert_cmpint(hret, ==, MXP_ERR_SHORT);
    } else if (expected == MXP_ERR_TYPE || expected == MXP_ERR_FLAGS ||
               expected == MXP_ERR_TOO_LONG) {
        g_assert_cmpint(hret, ==, expected);
    } else {
        g_assert_cmpint(hret, ==, MXP_OK);
    }
}

/*
 * Encode the valid @m, check it decodes, then overwrite @width bytes at
 * @off with @val and check the decode result is @expected.
 */
static void expect_patched(const MxpMsg *m, size_t off, unsigned width,
                           uint64_t val, int expected)
{
    uint8_t buf[BUF_SIZE];
    size_t len = encode_ok(m, buf);

    expect_decode(buf, len, nfds_of(m), MXP_OK);
    g_assert_cmpuint(off + width, <=, len);
    put_le(buf + off, width, val);
    expect_decode(buf, len, nfds_of(m), expected);
}

/* Each byte of a reserved field, set on its own, is refused. */
static void expect_reserved(const MxpMsg *m, size_t off, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        expect_patched(m, off + i, 1, 1, MXP_ERR_RANGE);
        expect_patched(m, off + i, 1, 0x80, MXP_ERR_RANGE);
    }
}

static void assert_data(const uint8_t *a, const uint8_t *b, size_t n)
{
    if (n) {
        g_assert_nonnull(a);
        g_assert_nonnull(b);
        g_assert_cmpmem(a, n, b, n);
    }
}

/* Every field of @b equals the one of @a (header flags/length excepted). */
static void assert_msg_equal(const MxpMsg *a, const MxpMsg *b)
{
    unsigned i;

    g_assert_cmpuint(a->hdr.type, ==, b->hdr.type);
    g_assert_cmpuint(a->hdr.id, ==, b->hdr.id);

    switch (a->hdr.type) {
    case MXP_HELLO:
        g_assert_cmpuint(a->u.hello.magic, ==, b->u.hello.magic);
        g_assert_cmpuint(a->u.hello.version_major, ==,
                         b->u.hello.version_major);
        g_assert_cmpuint(a->u.hello.version_minor, ==,
                         b->u.hello.version_minor);
        g_assert_cmpuint(a->u.hello.features, ==, b->u.hello.features);
        g_assert_cmpuint(a->u.hello.page_size, ==, b->u.hello.page_size);
        g_assert_cmpuint(a->u.hello.role, ==, b->u.hello.role);
        g_assert_cmpuint(a->u.hello.vectors, ==, b->u.hello.vectors);
        g_assert_cmpuint(a->u.hello.queue_depth, ==,
                         b->u.hello.queue_depth);
        g_assert_cmpuint(a->u.hello.max_data, ==, b->u.hello.max_data);
        g_assert_cmpmem(a->u.hello.name, MXP_NAME_SIZE,
                        b->u.hello.name, MXP_NAME_SIZE);
        break;
    case MXP_BYE:
    case MXP_ERROR:
        g_assert_cmpuint(a->u.error.code, ==, b->u.error.code);
        g_assert_cmpuint(a->u.error.request_type, ==,
                         b->u.error.request_type);
        g_assert_cmpuint(a->u.error.addr, ==, b->u.error.addr);
        break;
    case MXP_PING:
    case MXP_PONG:
        g_assert_cmpuint(a->u.ping, ==, b->u.ping);
        break;
    case MXP_READ:
    case MXP_READ_REPLY:
    case MXP_WRITE:
        g_assert_cmpuint(a->u.access.addr, ==, b->u.access.addr);
        g_assert_cmpuint(a->u.access.size, ==, b->u.access.size);
        if (a->hdr.type != MXP_READ) {
            assert_data(a->u.access.data, b->u.access.data,
                        a->u.access.size);
        }
        break;
    case MXP_MAP:
        g_assert_cmpuint(a->u.map.addr, ==, b->u.map.addr);
        break;
    case MXP_MAP_REPLY:
        g_assert_cmpuint(a->u.map_reply.kind, ==, b->u.map_reply.kind);
        g_assert_cmpuint(a->u.map_reply.perm, ==, b->u.map_reply.perm);
        g_assert_cmpuint(a->u.map_reply.reason, ==, b->u.map_reply.reason);
        g_assert_cmpuint(a->u.map_reply.addr, ==, b->u.map_reply.addr);
        g_assert_cmpuint(a->u.map_reply.length, ==, b->u.map_reply.length);
        g_assert_cmpuint(a->u.map_reply.fd_offset, ==,
                         b->u.map_reply.fd_offset);
        break;
    case MXP_INVALIDATE:
        g_assert_cmpuint(a->u.range.addr, ==, b->u.range.addr);
        g_assert_cmpuint(a->u.range.length, ==, b->u.range.length);
        break;
    case MXP_DOORBELL:
        g_assert_cmpuint(a->u.doorbell.vector, ==, b->u.doorbell.vector);
        g_assert_cmpuint(a->u.doorbell.size, ==, b->u.doorbell.size);
        assert_data(a->u.doorbell.data, b->u.doorbell.data,
                    a->u.doorbell.size);
        break;
    case MXP_CREDIT:
        g_assert_cmpuint(a->u.credits, ==, b->u.credits);
        break;
    case MXP_BOOT:
        g_assert_cmpuint(a->u.boot.entry, ==, b->u.boot.entry);
        g_assert_cmpuint(a->u.boot.nargs, ==, b->u.boot.nargs);
        for (i = 0; i < MXP_BOOT_ARGS; i++) {
            g_assert_cmpuint(a->u.boot.args[i], ==, b->u.boot.args[i]);
        }
        break;
    case MXP_STATE:
        g_assert_cmpuint(a->u.state, ==, b->u.state);
        break;
    default:
        break;
    }
}

/*
 * encode -> check header bytes -> decode -> compare every field ->
 * encode again -> identical bytes.
 */
static void roundtrip(const MxpMsg *in)
{
    uint8_t buf[BUF_SIZE], buf2[BUF_SIZE];
    unsigned nfds = nfds_of(in);
    uint32_t plen = payload_len(in);
    size_t len = encode_ok(in, buf);
    MxpHeader hdr;
    MxpMsg out;

    g_assert_cmpuint(get_le(buf + OFF_TYPE, 2), ==, in->hdr.type);
    g_assert_cmpuint(get_le(buf + OFF_FLAGS, 2), ==,
                     nfds ? MXP_FLAG_FD : 0);
    g_assert_cmpuint(get_le(buf + OFF_LENGTH, 4), ==, plen);
    g_assert_cmpuint(get_le(buf + OFF_ID, 8), ==, in->hdr.id);

    g_assert_cmpint(mxp_decode_header(buf, len, &hdr), ==, MXP_OK);
    g_assert_cmpuint(hdr.type, ==, in->hdr.type);
    g_assert_cmpuint(hdr.flags, ==, nfds ? MXP_FLAG_FD : 0);
    g_assert_cmpuint(hdr.length, ==, plen);
    g_assert_cmpuint(hdr.id, ==, in->hdr.id);
    g_assert_cmpuint(mxp_expected_fds(&hdr), ==, nfds);

    g_assert_cmpint(mxp_decode(buf, len, nfds, &out), ==, MXP_OK);
    assert_msg_equal(in, &out);
    g_assert_cmpuint(out.hdr.flags, ==, hdr.flags);
    g_assert_cmpuint(out.hdr.length, ==, plen);

    /* Data pointers refer into the decoded buffer. */
    switch (in->hdr.type) {
    case MXP_READ:
        g_assert_null(out.u.access.data);
        break;
    case MXP_READ_REPLY:
    case MXP_WRITE:
        g_assert_true(out.u.access.data == buf + A_DATA);
        break;
    case MXP_DOORBELL:
        g_assert_true(out.u.doorbell.data == buf + D_DATA);
        break;
    default:
        break;
    }

    g_assert_cmpint(mxp_encode(&out, buf2, sizeof(buf2)), ==, (int)len);
    g_assert_cmpmem(buf, len, buf2, len);
}

/* valid(type) for every type, plus variable-size messages of all sizes. */
static unsigned all_messages(MxpMsg *out, unsigned max)
{
    unsigned n = 0, t, i;

    for (t = 1; t <= MXP_TYPE_MAX; t++) {
        g_assert_cmpuint(n, <, max);
        out[n++] = valid(t);
    }
    for (i = 0; i < G_N_ELEMENTS(data_sizes); i++) {
        g_assert_cmpuint(n + 3, <=, max);
        out[n] = valid(MXP_READ_REPLY);
        out[n++].u.access.size = data_sizes[i];
        out[n] = valid(MXP_WRITE);
        out[n++].u.access.size = data_sizes[i];
        if (data_sizes[i] <= MXP_MAX_DOORBELL_DATA) {
            out[n] = valid(MXP_DOORBELL);
            out[n++].u.doorbell.size = (uint16_t)data_sizes[i];
        }
    }
    g_assert_cmpuint(n + 3, <=, max);
    out[n] = valid(MXP_DOORBELL);
    out[n++].u.doorbell.size = 0;
    out[n] = valid(MXP_MAP_REPLY);
    out[n].u.map_reply.kind = MXP_MAP_FORWARD;
    out[n++].u.map_reply.fd_offset = 0;
    out[n] = valid(MXP_MAP_REPLY);
    out[n].u.map_reply.kind = MXP_MAP_DENIED;
    out[n].u.map_reply.perm = 0;
    out[n++].u.map_reply.fd_offset = 0;
    return n;
}

#define MAX_MSGS 64

/* ---- round trips ------------------------------------------------------ */

static void test_roundtrip_all_types(void)
{
    MxpMsg msgs[MAX_MSGS];
    unsigned n = all_messages(msgs, MAX_MSGS), i;
    bool seen[MXP_TYPE_MAX + 1] = { false };

    for (i = 0; i < n; i++) {
        roundtrip(&msgs[i]);
        seen[msgs[i].hdr.type] = true;
    }
    for (i = 1; i <= MXP_TYPE_MAX; i++) {
        g_assert_true(seen[i]);
    }
}

static void test_roundtrip_hello(void)
{
    MxpMsg m;
    uint32_t ps;
    unsigned i, role;

    /* Smallest values. */
    m = valid(MXP_HELLO);
    m.u.hello.version_minor = 0;
    m.u.hello.features = 0;
    m.u.hello.page_size = MXP_MIN_PAGE_SIZE;
    m.u.hello.vectors = 0;
    m.u.hello.queue_depth = 0;
    m.u.hello.max_data = 8;
    memset(m.u.hello.name, 0, MXP_NAME_SIZE);
    m.hdr.id = 0;
    roundtrip(&m);

    /* Largest values, name of the maximum length 63. */
    m = valid(MXP_HELLO);
    m.u.hello.version_minor = 0xffff;   /* minors are compatible */
    m.u.hello.features = ~0ULL;     /* unknown bits are the peer's business */
    m.u.hello.page_size = MXP_MAX_PAGE_SIZE;
    m.u.hello.role = MXP_ROLE_MAX;
    m.u.hello.vectors = MXP_MAX_VECTORS;
    m.u.hello.queue_depth = MXP_MAX_QUEUE_DEPTH;
    m.u.hello.max_data = MXP_MAX_DATA;
    for (i = 0; i < MXP_NAME_SIZE - 1; i++) {
        m.u.hello.name[i] = (char)(0x20 + i);
    }
    m.u.hello.name[MXP_NAME_SIZE - 1] = '\0';
    m.hdr.id = ~0ULL;
    roundtrip(&m);

    /* The rest of the printable range, up to '~'. */
    for (i = 0; i < MXP_NAME_SIZE - 1; i++) {
        m.u.hello.name[i] = (char)(0x7e - i);
    }
    roundtrip(&m);

    /* Every allowed page size and role. */
    for (ps = MXP_MIN_PAGE_SIZE; ps <= MXP_MAX_PAGE_SIZE; ps <<= 1) {
        m = valid(MXP_HELLO);
        m.u.hello.page_size = ps;
        roundtrip(&m);
    }
    for (role = 0; role <= MXP_ROLE_MAX; role++) {
        m = valid(MXP_HELLO);
        m.u.hello.role = (uint8_t)role;
        roundtrip(&m);
    }
}

static void test_roundtrip_bye_error(void)
{
    static const uint32_t req_types[] = { 0, MXP_HELLO, MXP_TYPE_MAX };
    static const uint64_t addrs[] = { 0, 0x1000, ~0ULL };
    unsigned code, r, a;
    MxpMsg m;

    for (code = 1; code <= MXP_E_MAX; code++) {
        for (r = 0; r < G_N_ELEMENTS(req_types); r++) {
            for (a = 0; a < G_N_ELEMENTS(addrs); a++) {
                m = valid(MXP_ERROR);
                m.u.error.code = code;
                m.u.error.request_type = req_types[r];
                m.u.error.addr = addrs[a];
                roundtrip(&m);
                m.hdr.type = MXP_BYE;
                roundtrip(&m);
            }
        }
    }
}

static void test_roundtrip_ping_pong(void)
{
    static const uint64_t cookies[] = {
        0, 1, 0x0123456789abcdefULL, 0x8000000000000000ULL, ~0ULL,
    };
    unsigned i;
    MxpMsg m;

    for (i = 0; i < G_N_ELEMENTS(cookies); i++) {
        m = valid(MXP_PING);
        m.u.ping = cookies[i];
        m.hdr.id = cookies[i];
        roundtrip(&m);
        m.hdr.type = MXP_PONG;
        roundtrip(&m);
    }
}

static void roundtrip_access(unsigned type)
{
    static const uint32_t sizes[] = { 1, 2, 4, 8, 9, 4095, MXP_MAX_DATA };
    unsigned i;
    MxpMsg m;

    for (i = 0; i < G_N_ELEMENTS(sizes); i++) {
        m = valid(type);
        m.u.access.size = sizes[i];
        m.u.access.addr = 0;
        roundtrip(&m);
        m.u.access.addr = 0xfee00000;
        roundtrip(&m);
        /* The last bytes of the address space. */
        m.u.access.addr = 0 - (uint64_t)sizes[i];
        roundtrip(&m);
    }
}

static void test_roundtrip_read(void)
{
    roundtrip_access(MXP_READ);
}

static void test_roundtrip_read_reply(void)
{
    uint8_t buf[BUF_SIZE];
    MxpMsg m;

    roundtrip_access(MXP_READ_REPLY);

    /* The largest reply is the largest message. */
    m = valid(MXP_READ_REPLY);
    m.u.access.size = MXP_MAX_DATA;
    g_assert_cmpint(mxp_encode(&m, buf, sizeof(buf)), ==, MXP_MAX_MESSAGE);
}

static void test_roundtrip_write(void)
{
    uint8_t buf[BUF_SIZE];
    MxpMsg m;

    roundtrip_access(MXP_WRITE);

    m = valid(MXP_WRITE);
    m.u.access.size = MXP_MAX_DATA;
    g_assert_cmpint(mxp_encode(&m, buf, sizeof(buf)), ==, MXP_MAX_MESSAGE);
}

static void test_roundtrip_empty(void)
{
    static const unsigned types[] = {
        MXP_ACK, MXP_INVALIDATE_ACK, MXP_RESET, MXP_HALT,
    };
    static const uint64_t ids[] = { 0, 1, ~0ULL };
    unsigned t, i;
    MxpMsg m;

    for (t = 0; t < G_N_ELEMENTS(types); t++) {
        for (i = 0; i < G_N_ELEMENTS(ids); i++) {
            m = valid(types[t]);
            m.hdr.id = ids[i];
            roundtrip(&m);
        }
    }
}

static void test_roundtrip_map(void)
{
    static const uint64_t addrs[] = { 0, 0x40000, ~0ULL };
    unsigned i;
    MxpMsg m;

    for (i = 0; i < G_N_ELEMENTS(addrs); i++) {
        m = valid(MXP_MAP);
        m.u.map.addr = addrs[i];
        roundtrip(&m);
    }
}

static void test_roundtrip_map_reply(void)
{
    /* Memory is readable, optionally writable; never write-only. */
    static const uint8_t perms[] = { MXP_PERM_READ, MXP_PERM_ALL };
    unsigned i;
    MxpMsg m;

    for (i = 0; i < G_N_ELEMENTS(perms); i++) {
        m = valid(MXP_MAP_REPLY);
        m.u.map_reply.perm = perms[i];
        roundtrip(&m);

        m.u.map_reply.kind = MXP_MAP_FORWARD;
        m.u.map_reply.fd_offset = 0;
        roundtrip(&m);
        m.u.map_reply.reason = MXP_FWD_PRIVATE;
        roundtrip(&m);
    }

    /* DENIED: no permissions, no fd. */
    m = valid(MXP_MAP_REPLY);
    m.u.map_reply.kind = MXP_MAP_DENIED;
    m.u.map_reply.perm = 0;
    m.u.map_reply.fd_offset = 0;
    roundtrip(&m);
    m.u.map_reply.addr = 0;
    m.u.map_reply.length = ~0ULL;
    roundtrip(&m);
    m.u.map_reply.addr = ~0ULL;
    m.u.map_reply.length = 1;
    roundtrip(&m);

    /* Ranges ending at the top of the address space. */
    m = valid(MXP_MAP_REPLY);
    m.u.map_reply.addr = 0 - 0x1000ULL;
    m.u.map_reply.length = 0x1000;
    m.u.map_reply.fd_offset = 0 - 0x1000ULL;
    roundtrip(&m);

    /* The longest ranges: [1, 2^64) in both spaces. */
    m.u.map_reply.addr = 1;
    m.u.map_reply.length = ~0ULL;
    m.u.map_reply.fd_offset = 1;
    roundtrip(&m);
    m.u.map_reply.addr = 0;
    m.u.map_reply.fd_offset = 0;
    roundtrip(&m);

    m.u.map_reply.kind = MXP_MAP_FORWARD;
    roundtrip(&m);
    m.u.map_reply.length = 1;
    m.u.map_reply.addr = ~0ULL;
    roundtrip(&m);
    m.u.map_reply.kind = MXP_MAP_FD;
    m.u.map_reply.fd_offset = ~0ULL;
    roundtrip(&m);
}

static void test_roundtrip_invalidate(void)
{
    static const uint64_t ranges[][2] = {
        { 0, 1 },
        { 0x40000, 0x10000 },
        { 0, ~0ULL },
        { 1, ~0ULL },
        { ~0ULL, 1 },
        { 0 - 0x1000ULL, 0x1000 },
    };
    unsigned i;
    MxpMsg m;

    for (i = 0; i < G_N_ELEMENTS(ranges); i++) {
        m = valid(MXP_INVALIDATE);
        m.u.range.addr = ranges[i][0];
        m.u.range.length = ranges[i][1];
        roundtrip(&m);
    }
}

static void test_roundtrip_doorbell(void)
{
    static const uint16_t sizes[] = { 0, 1, 8, 255, MXP_MAX_DOORBELL_DATA };
    static const uint16_t vectors[] = { 0, 1, MXP_MAX_VECTORS - 1 };
    unsigned s, v;
    MxpMsg m;

    for (s = 0; s < G_N_ELEMENTS(sizes); s++) {
        for (v = 0; v < G_N_ELEMENTS(vectors); v++) {
            m = valid(MXP_DOORBELL);
            m.u.doorbell.vector = vectors[v];
            m.u.doorbell.size = sizes[s];
            roundtrip(&m);
        }
    }

    /* An empty doorbell needs no data pointer. */
    m = valid(MXP_DOORBELL);
    m.u.doorbell.size = 0;
    m.u.doorbell.data = NULL;
    roundtrip(&m);
}

static void test_roundtrip_credit(void)
{
    static const uint32_t credits[] = { 1, 2, 1023, MXP_MAX_QUEUE_DEPTH };
    unsigned i;
    MxpMsg m;

    for (i = 0; i < G_N_ELEMENTS(credits); i++) {
        m = valid(MXP_CREDIT);
        m.u.credits = credits[i];
        roundtrip(&m);
    }
}

static void test_roundtrip_boot(void)
{
    unsigned nargs, i;
    MxpMsg m;

    for (nargs = 0; nargs <= MXP_BOOT_ARGS; nargs++) {
        m = valid(MXP_BOOT);
        memset(m.u.boot.args, 0, sizeof(m.u.boot.args));
        m.u.boot.nargs = nargs;
        for (i = 0; i < nargs; i++) {
            m.u.boot.args[i] = ~0ULL - i;
        }
        m.u.boot.entry = 0;
        roundtrip(&m);
        m.u.boot.entry = ~0ULL;
        roundtrip(&m);
    }
}

static void test_roundtrip_state(void)
{
    unsigned s;
    MxpMsg m;

    for (s = 0; s <= MXP_BOOT_STATE_MAX; s++) {
        m = valid(MXP_STATE);
        m.u.state = s;
        roundtrip(&m);
    }
}

/* The fields land at the offsets the rejection tests patch. */
static void test_encode_layout(void)
{
    uint8_t buf[BUF_SIZE];
    MxpMsg m;
    unsigned i;

    m = valid(MXP_HELLO);
    m.u.hello.version_minor = 0x0304;
    m.u.hello.role = MXP_ROLE_TOOL;
    m.u.hello.vectors = 9;
    m.u.hello.queue_depth = 0x0155;
    m.u.hello.max_data = 0x0777;
    encode_ok(&m, buf);
    g_assert_cmpuint(get_le(buf + H_MAGIC, 4), ==, MXP_MAGIC);
    g_assert_cmpmem(buf + H_MAGIC, 4, "MXP1", 4);
    g_assert_cmpuint(get_le(buf + H_VMAJOR, 2), ==, MXP_VERSION_MAJOR);
    g_assert_cmpuint(get_le(buf + H_VMINOR, 2), ==, 0x0304);
    g_assert_cmpuint(get_le(buf + H_FEATURES, 8), ==, MXP_FEAT_ALL);
    g_assert_cmpuint(get_le(buf + H_PAGE_SIZE, 4), ==, 4096);
    g_assert_cmpuint(buf[H_ROLE], ==, MXP_ROLE_TOOL);
    g_assert_cmpuint(buf[H_VECTORS], ==, 9);
    g_assert_cmpuint(get_le(buf + H_QUEUE_DEPTH, 2), ==, 0x0155);
    g_assert_cmpuint(get_le(buf + H_MAX_DATA, 4), ==, 0x0777);
    g_assert_cmpuint(get_le(buf + H_RSVD, 4), ==, 0);
    g_assert_cmpmem(buf + H_NAME, MXP_NAME_SIZE, m.u.hello.name,
                    MXP_NAME_SIZE);

    m = valid(MXP_ERROR);
    encode_ok(&m, buf);
    g_assert_cmpuint(get_le(buf + E_CODE, 4), ==, MXP_E_DENIED);
    g_assert_cmpuint(get_le(buf + E_REQ_TYPE, 4), ==, MXP_READ);
    g_assert_cmpuint(get_le(buf + E_ADDR, 8), ==, 0x1000);

    m = valid(MXP_PING);
    encode_ok(&m, buf);
    g_assert_cmpuint(get_le(buf + P_COOKIE, 8), ==, m.u.ping);

    m = valid(MXP_WRITE);
    m.u.access.addr = 0x0102030405060708ULL;
    encode_ok(&m, buf);
    g_assert_cmpuint(get_le(buf + A_ADDR, 8), ==, 0x0102030405060708ULL);
    g_assert_cmpuint(get_le(buf + A_SIZE, 4), ==, 8);
    g_assert_cmpuint(get_le(buf + A_RSVD, 4), ==, 0);
    g_assert_cmpmem(buf + A_DATA, 8, pattern, 8);

    m = valid(MXP_MAP);
    encode_ok(&m, buf);
    g_assert_cmpuint(get_le(buf + M_ADDR, 8), ==, 0x40000);

    m = valid(MXP_MAP_REPLY);
    m.u.map_reply.perm = MXP_PERM_READ;
    encode_ok(&m, buf);
    g_assert_cmpuint(buf[R_KIND], ==, MXP_MAP_FD);
    g_assert_cmpuint(buf[R_PERM], ==, MXP_PERM_READ);
    g_assert_cmpuint(buf[R_REASON], ==, 0);
    g_assert_cmpuint(get_le(buf + R_RSVD, 5), ==, 0);
    g_assert_cmpuint(get_le(buf + R_ADDR, 8), ==, 0x40000);
    g_assert_cmpuint(get_le(buf + R_LENGTH, 8), ==, 0x10000);
    g_assert_cmpuint(get_le(buf + R_FD_OFFSET, 8), ==, 0x2000);

    m = valid(MXP_INVALIDATE);
    encode_ok(&m, buf);
    g_assert_cmpuint(get_le(buf + I_ADDR, 8), ==, 0x40000);
    g_assert_cmpuint(get_le(buf + I_LENGTH, 8), ==, 0x10000);

    m = valid(MXP_DOORBELL);
    encode_ok(&m, buf);
    g_assert_cmpuint(get_le(buf + D_VECTOR, 2), ==, 3);
    g_assert_cmpuint(get_le(buf + D_SIZE, 2), ==, 16);
    g_assert_cmpuint(get_le(buf + D_RSVD, 4), ==, 0);
    g_assert_cmpmem(buf + D_DATA, 16, pattern, 16);

    m = valid(MXP_CREDIT);
    encode_ok(&m, buf);
    g_assert_cmpuint(get_le(buf + C_CREDITS, 4), ==, 16);
    g_assert_cmpuint(get_le(buf + C_RSVD, 4), ==, 0);

    m = valid(MXP_BOOT);
    m.u.boot.nargs = MXP_BOOT_ARGS;
    for (i = 0; i < MXP_BOOT_ARGS; i++) {
        m.u.boot.args[i] = 0x1000 + i;
    }
    encode_ok(&m, buf);
    g_assert_cmpuint(get_le(buf + B_ENTRY, 8), ==, 0x100000);
    g_assert_cmpuint(get_le(buf + B_NARGS, 4), ==, MXP_BOOT_ARGS);
    g_assert_cmpuint(get_le(buf + B_RSVD, 4), ==, 0);
    for (i = 0; i < MXP_BOOT_ARGS; i++) {
        g_assert_cmpuint(get_le(buf + B_ARGS + 8 * i, 8), ==, 0x1000 + i);
    }

    m = valid(MXP_STATE);
    encode_ok(&m, buf);
    g_assert_cmpuint(get_le(buf + S_STATE, 4), ==, MXP_BOOT_RUNNING);
    g_assert_cmpuint(get_le(buf + S_RSVD, 4), ==, 0);
}

/* ---- header rejections ------------------------------------------------ */

static void test_header_short(void)
{
    uint8_t buf[BUF_SIZE];
    MxpMsg m = valid(MXP_PING);
    MxpHeader h;
    size_t len;

    encode_ok(&m, buf);
    for (len = 0; len < MXP_HEADER_SIZE; len++) {
        g_assert_cmpint(mxp_decode_header(buf, len, &h), ==, MXP_ERR_SHORT);
        expect_decode(buf, len, 0, MXP_ERR_SHORT);
    }
    g_assert_cmpint(mxp_decode_header(buf, MXP_HEADER_SIZE, &h), ==, MXP_OK);
}

static void test_header_type(void)
{
    static const uint64_t types[] = {
        0, MXP_TYPE_MAX + 1, 0x80, 0xff, 0x100, 0xffff,
    };
    MxpMsg m = valid(MXP_ACK);
    unsigned i;

    for (i = 0; i < G_N_ELEMENTS(types); i++) {
        expect_patched(&m, OFF_TYPE, 2, types[i], MXP_ERR_TYPE);
    }
}

static void test_header_flags(void)
{
    MxpMsg ping = valid(MXP_PING);
    MxpMsg map_reply = valid(MXP_MAP_REPLY);
    unsigned bit;

    for (bit = 1; bit < 16; bit++) {
        expect_patched(&ping, OFF_FLAGS, 2, 1U << bit, MXP_ERR_FLAGS);
        expect_patched(&map_reply, OFF_FLAGS, 2, MXP_FLAG_FD | (1U << bit),
                       MXP_ERR_FLAGS);
    }
    expect_patched(&ping, OFF_FLAGS, 2, 0xffff, MXP_ERR_FLAGS);
    expect_patched(&ping, OFF_FLAGS, 2, 0xfffe, MXP_ERR_FLAGS);
}

static void test_header_too_long(void)
{
    static const uint64_t lengths[] = {
        MXP_MAX_PAYLOAD + 1, 0x10000, 0x7fffffff, 0xffffffff,
    };
    size_t big = MXP_HEADER_SIZE + MXP_MAX_PAYLOAD + 1;
    uint8_t *buf = g_malloc0(BUF_SIZE);
    MxpMsg m = valid(MXP_WRITE);
    MxpHeader h;
    unsigned i;

    for (i = 0; i < G_N_ELEMENTS(lengths); i++) {
        expect_patched(&m, OFF_LENGTH, 4, lengths[i], MXP_ERR_TOO_LONG);
    }

    /* Even with all the bytes present. */
    m.u.access.size = MXP_MAX_DATA;
    encode_ok(&m, buf);
    put_le(buf + OFF_LENGTH, 4, MXP_MAX_PAYLOAD + 1);
    put_le(buf + A_SIZE, 4, MXP_MAX_DATA + 1);
    expect_decode(buf, big, 0, MXP_ERR_TOO_LONG);

    /* The limit itself is fine for the header. */
    put_le(buf + OFF_LENGTH, 4, MXP_MAX_PAYLOAD);
    g_assert_cmpint(mxp_decode_header(buf, MXP_HEADER_SIZE, &h), ==, MXP_OK);
    g_assert_cmpuint(h.length, ==, MXP_MAX_PAYLOAD);
    g_free(buf);
}

/* ---- length rejections ------------------------------------------------ */

static void test_decode_truncated(void)
{
    MxpMsg msgs[MAX_MSGS];
    unsigned n = all_messages(msgs, MAX_MSGS), i;
    uint8_t buf[BUF_SIZE];
    size_t len, cut;

    for (i = 0; i < n; i++) {
        len = encode_ok(&msgs[i], buf);
        for (cut = 0; cut < len; cut++) {
            expect_decode(buf, cut, nfds_of(&msgs[i]), MXP_ERR_SHORT);
        }
    }

    /* A header announcing a payload that is not there. */
    msgs[0] = valid(MXP_ACK);
    encode_ok(&msgs[0], buf);
    put_le(buf + OFF_LENGTH, 4, 8);
    expect_decode(buf, MXP_HEADER_SIZE, 0, MXP_ERR_SHORT);
    put_le(buf + OFF_LENGTH, 4, MXP_MAX_PAYLOAD);
    expect_decode(buf, MXP_HEADER_SIZE + 8, 0, MXP_ERR_SHORT);
}

static void test_decode_trailing(void)
{
    MxpMsg msgs[MAX_MSGS];
    unsigned n = all_messages(msgs, MAX_MSGS), i;
    uint8_t buf[BUF_SIZE];
    size_t len;

    for (i = 0; i < n; i++) {
        memset(buf, 0, sizeof(buf));
        len = encode_ok(&msgs[i], buf);
        expect_decode(buf, len + 1, nfds_of(&msgs[i]), MXP_ERR_LENGTH);
        expect_decode(buf, len + 16, nfds_of(&msgs[i]), MXP_ERR_LENGTH);
    }
}

/* Rewrite the header length to @plen; the buffer must be zero padded. */
static void expect_length(const MxpMsg *m, uint32_t plen, int expected)
{
    uint8_t buf[BUF_SIZE];

    memset(buf, 0, sizeof(buf));
    encode_ok(m, buf);
    put_le(buf + OFF_LENGTH, 4, plen);
    expect_decode(buf, MXP_HEADER_SIZE + plen, nfds_of(m), expected);
}

static void test_decode_length_mismatch(void)
{
    MxpMsg m;
    unsigned t;
    uint32_t plen;

    /* Fixed-size types: any other length is wrong. */
    for (t = 1; t <= MXP_TYPE_MAX; t++) {
        if (t == MXP_READ_REPLY || t == MXP_WRITE || t == MXP_DOORBELL) {
            continue;
        }
        m = valid(t);
        plen = payload_len(&m);
        if (plen > 0) {
            expect_length(&m, plen - 1, MXP_ERR_LENGTH);
            expect_length(&m, 0, MXP_ERR_LENGTH);
        }
        expect_length(&m, plen + 1, MXP_ERR_LENGTH);
        expect_length(&m, plen + 8, MXP_ERR_LENGTH);
        expect_length(&m, MXP_MAX_PAYLOAD, MXP_ERR_LENGTH);
    }

    /* READ_REPLY, WRITE: shorter than the fixed part, or size mismatch. */
    for (t = MXP_READ_REPLY; t <= MXP_WRITE; t++) {
        m = valid(t);
        expect_length(&m, 0, MXP_ERR_LENGTH);
        expect_length(&m, 15, MXP_ERR_LENGTH);
        expect_length(&m, 16, MXP_ERR_LENGTH);      /* size says 8 */
        expect_length(&m, 16 + 7, MXP_ERR_LENGTH);
        expect_length(&m, 16 + 9, MXP_ERR_LENGTH);
        expect_length(&m, MXP_MAX_PAYLOAD, MXP_ERR_LENGTH);
    }

    /* DOORBELL likewise. */
    m = valid(MXP_DOORBELL);
    expect_length(&m, 0, MXP_ERR_LENGTH);
    expect_length(&m, 7, MXP_ERR_LENGTH);
    expect_length(&m, 8, MXP_ERR_LENGTH);           /* size says 16 */
    expect_length(&m, 8 + 15, MXP_ERR_LENGTH);
    expect_length(&m, 8 + 17, MXP_ERR_LENGTH);
    m.u.doorbell.size = 0;
    expect_length(&m, 7, MXP_ERR_LENGTH);
    expect_length(&m, 9, MXP_ERR_LENGTH);

    /* Size field patched instead of the length. */
    m = valid(MXP_WRITE);
    expect_patched(&m, A_SIZE, 4, 7, MXP_ERR_LENGTH);
    expect_patched(&m, A_SIZE, 4, 9, MXP_ERR_LENGTH);
    m = valid(MXP_DOORBELL);
    expect_patched(&m, D_SIZE, 2, 15, MXP_ERR_LENGTH);
    expect_patched(&m, D_SIZE, 2, 17, MXP_ERR_LENGTH);
    expect_patched(&m, D_SIZE, 2, 0, MXP_ERR_LENGTH);
}

/* ---- fd rejections ---------------------------------------------------- */

/* The valid message of @type takes exactly one fd, with the FD flag. */
static void expect_one_fd(unsigned type)
{
    uint8_t buf[BUF_SIZE];
    MxpMsg m = valid(type);
    size_t len = encode_ok(&m, buf);

    g_assert_cmpuint(get_le(buf + OFF_FLAGS, 2), ==, MXP_FLAG_FD);
    expect_decode(buf, len, 1, MXP_OK);
    expect_decode(buf, len, 0, MXP_ERR_FDS);
    expect_decode(buf, len, 2, MXP_ERR_FDS);
    put_le(buf + OFF_FLAGS, 2, 0);
    expect_decode(buf, len, 0, MXP_ERR_FDS);
    expect_decode(buf, len, 1, MXP_ERR_FDS);
}

static void test_decode_fds(void)
{
    uint8_t buf[BUF_SIZE];
    MxpMsg m;
    size_t len;
    unsigned t;

    /* Only MAP_REPLY of kind FD, DB_RING and DB_EVENT may carry one. */
    for (t = 1; t <= MXP_TYPE_MAX; t++) {
        if (t == MXP_MAP_REPLY || t == MXP_DB_RING || t == MXP_DB_EVENT) {
            continue;
        }
        m = valid(t);
        len = encode_ok(&m, buf);
        expect_decode(buf, len, 1, MXP_ERR_FDS);
        put_le(buf + OFF_FLAGS, 2, MXP_FLAG_FD);
        expect_decode(buf, len, 1, MXP_ERR_FDS);
        expect_decode(buf, len, 0, MXP_ERR_FDS);
    }

    /* FORWARD and DENIED replies: no fd, no FD flag. */
    for (t = MXP_MAP_FORWARD; t <= MXP_MAP_DENIED; t++) {
        m = valid(MXP_MAP_REPLY);
        m.u.map_reply.kind = (uint8_t)t;
        m.u.map_reply.perm = t == MXP_MAP_DENIED ? 0 : MXP_PERM_READ;
        m.u.map_reply.fd_offset = 0;
        len = encode_ok(&m, buf);
        expect_decode(buf, len, 0, MXP_OK);
        expect_decode(buf, len, 1, MXP_ERR_FDS);
        put_le(buf + OFF_FLAGS, 2, MXP_FLAG_FD);
        expect_decode(buf, len, 1, MXP_ERR_FDS);
        expect_decode(buf, len, 0, MXP_ERR_FDS);
    }

    /*
     * An FD reply, the doorbell ring and its eventfds: exactly one fd,
     * FD flag set.
     */
    expect_one_fd(MXP_MAP_REPLY);
    expect_one_fd(MXP_DB_RING);
    expect_one_fd(MXP_DB_EVENT);
}

/* The doorbell ring messages: field offsets and bounds. */
static void test_decode_db_ring(void)
{
    MxpMsg m = valid(MXP_DB_RING);
    uint8_t buf[BUF_SIZE];
    MxpMsg out;
    size_t len;

    len = encode_ok(&m, buf);
    g_assert_cmpuint(get_le(buf + G_VALUE, 4), ==, 32);
    g_assert_cmpint(mxp_decode(buf, len, 1, &out), ==, MXP_OK);
    g_assert_cmpuint(out.u.ring_depth, ==, 32);
    expect_patched(&m, G_VALUE, 4, 0, MXP_OK);
    expect_patched(&m, G_VALUE, 4, MXP_MAX_QUEUE_DEPTH, MXP_OK);
    expect_patched(&m, G_VALUE, 4, MXP_MAX_QUEUE_DEPTH + 1, MXP_ERR_RANGE);
    expect_reserved(&m, G_RSVD, 4);
    m.u.ring_depth = MXP_MAX_QUEUE_DEPTH + 1;
    g_assert_cmpint(mxp_encode(&m, buf, sizeof(buf)), ==, MXP_ERR_RANGE);

    m = valid(MXP_DB_EVENT);
    len = encode_ok(&m, buf);
    g_assert_cmpuint(get_le(buf + G_VALUE, 4), ==, 5);
    g_assert_cmpint(mxp_decode(buf, len, 1, &out), ==, MXP_OK);
    g_assert_cmpuint(out.u.event_vector, ==, 5);
    expect_patched(&m, G_VALUE, 4, MXP_MAX_VECTORS - 1, MXP_OK);
    expect_patched(&m, G_VALUE, 4, MXP_MAX_VECTORS, MXP_ERR_RANGE);
    expect_reserved(&m, G_RSVD, 4);

    /* Ring geometry the spec gives. */
    g_assert_cmpuint(MXP_DB_ENTRY_SIZE, ==, 264);
    g_assert_cmpuint(MXP_DB_RING_SIZE(32), ==, 128 + 32 * 264);
}

/* ---- field range rejections ------------------------------------------- */

static void test_decode_hello(void)
{
    static const uint64_t bad_magic[] = {
        0, MXP_MAGIC ^ 1, 0x4d585031, MXP_MAGIC + 0x01000000, 0xffffffff,
    };
    static const uint64_t bad_page[] = {
        0, 1, 2048, 4095, 4097, 3 * 4096, 0x3000, (1 << 21) + 4096,
        1 << 22, 0x80000000, 0xffffffff,
    };
    static const uint64_t bad_max_data[] = {
        0, 1, 7, MXP_MAX_DATA + 1, 0x10000, 0xffffffff,
    };
    static const uint8_t bad_chars[] = { 0x01, 0x09, 0x0a, 0x1f, 0x7f, 0x80,
                                         0xc3, 0xff };
    MxpMsg m = valid(MXP_HELLO);
    uint8_t buf[BUF_SIZE];
    size_t len;
    unsigned i, pos;

    for (i = 0; i < G_N_ELEMENTS(bad_magic); i++) {
        expect_patched(&m, H_MAGIC, 4, bad_magic[i], MXP_ERR_RANGE);
    }
    for (i = 0; i < G_N_ELEMENTS(bad_page); i++) {
        expect_patched(&m, H_PAGE_SIZE, 4, bad_page[i], MXP_ERR_RANGE);
    }
    expect_patched(&m, H_ROLE, 1, MXP_ROLE_MAX + 1, MXP_ERR_RANGE);
    expect_patched(&m, H_ROLE, 1, 0xff, MXP_ERR_RANGE);
    expect_patched(&m, H_VECTORS, 1, MXP_MAX_VECTORS + 1, MXP_ERR_RANGE);
    expect_patched(&m, H_VECTORS, 1, 0xff, MXP_ERR_RANGE);
    expect_patched(&m, H_QUEUE_DEPTH, 2, MXP_MAX_QUEUE_DEPTH + 1,
                   MXP_ERR_RANGE);
    expect_patched(&m, H_QUEUE_DEPTH, 2, 0xffff, MXP_ERR_RANGE);
    for (i = 0; i < G_N_ELEMENTS(bad_max_data); i++) {
        expect_patched(&m, H_MAX_DATA, 4, bad_max_data[i], MXP_ERR_RANGE);
    }
    expect_reserved(&m, H_RSVD, 4);

    /* Name filling the whole field, no NUL. */
    len = encode_ok(&m, buf);
    memset(buf + H_NAME, 'a', MXP_NAME_SIZE);
    expect_decode(buf, len, 0, MXP_ERR_RANGE);
    /* 63 characters and the NUL are fine. */
    buf[H_NAME + MXP_NAME_SIZE - 1] = '\0';
    expect_decode(buf, len, 0, MXP_OK);

    /* Non-printable characters, first, in the middle and last. */
    for (i = 0; i < G_N_ELEMENTS(bad_chars); i++) {
        for (pos = 0; pos < 3; pos++) {
            size_t at = pos == 0 ? 0 : pos == 1 ? 3 : MXP_NAME_SIZE - 2;

            len = encode_ok(&m, buf);
            memset(buf + H_NAME, 'b', MXP_NAME_SIZE - 1);
            buf[H_NAME + at] = bad_chars[i];
            expect_decode(buf, len, 0, MXP_ERR_RANGE);
        }
    }

    /* Garbage after the terminating NUL, anywhere up to the last byte. */
    for (pos = strlen(m.u.hello.name) + 1; pos < MXP_NAME_SIZE; pos++) {
        len = encode_ok(&m, buf);
        buf[H_NAME + pos] = 'x';
        expect_decode(buf, len, 0, MXP_ERR_RANGE);
    }
    memset(m.u.hello.name, 0, MXP_NAME_SIZE);
    expect_patched(&m, H_NAME + 1, 1, 'x', MXP_ERR_RANGE);
    expect_patched(&m, H_NAME + MXP_NAME_SIZE - 1, 1, 0x80, MXP_ERR_RANGE);
}

/*
 * A HELLO with our magic but another major version is refused as such,
 * whatever its length and the rest of its payload, with magic and
 * version filled in.
 */
static void test_decode_version(void)
{
    static const uint16_t majors[] = {
        0, MXP_VERSION_MAJOR + 1, 0x100, 0xffff,
    };
    static const uint32_t plens[] = {
        8, 9, 31, HELLO_LEN - 1, HELLO_LEN, HELLO_LEN + 1, 1024,
        MXP_MAX_PAYLOAD,
    };
    uint8_t buf[BUF_SIZE];
    MxpMsg m = valid(MXP_HELLO), out;
    unsigned i, j;
    size_t len;

    for (i = 0; i < G_N_ELEMENTS(majors); i++) {
        for (j = 0; j < G_N_ELEMENTS(plens); j++) {
            memset(buf, 0xee, sizeof(buf));
            encode_ok(&m, buf);
            put_le(buf + OFF_LENGTH, 4, plens[j]);
            put_le(buf + H_VMAJOR, 2, majors[i]);
            put_le(buf + H_VMINOR, 2, 0x1234 + j);
            /* Garbage where a v1 HELLO has bounded fields. */
            put_le(buf + H_PAGE_SIZE, 4, 3);
            put_le(buf + H_RSVD, 4, 0xffffffff);
            len = MXP_HEADER_SIZE + plens[j];

            expect_decode(buf, len, 0, MXP_ERR_VERSION);
            memset(&out, 0xff, sizeof(out));
            g_assert_cmpint(mxp_decode(buf, len, 0, &out), ==,
                            MXP_ERR_VERSION);
            g_assert_cmpuint(out.hdr.type, ==, MXP_HELLO);
            g_assert_cmpuint(out.hdr.length, ==, plens[j]);
            g_assert_cmpuint(out.u.hello.magic, ==, MXP_MAGIC);
            g_assert_cmpuint(out.u.hello.version_major, ==, majors[i]);
            g_assert_cmpuint(out.u.hello.version_minor, ==, 0x1234 + j);

            /* The message must still be whole and exactly framed. */
            expect_decode(buf, len - 1, 0, MXP_ERR_SHORT);
            expect_decode(buf, len + 1, 0, MXP_ERR_LENGTH);
        }
    }

    /* Fewer than the 8 frozen bytes: just a bad length. */
    for (j = 0; j < 8; j++) {
        memset(buf, 0, sizeof(buf));
        encode_ok(&m, buf);
        put_le(buf + H_VMAJOR, 2, MXP_VERSION_MAJOR + 1);
        put_le(buf + OFF_LENGTH, 4, j);
        expect_decode(buf, MXP_HEADER_SIZE + j, 0, MXP_ERR_LENGTH);
    }

    /* Not our magic: not a version problem. */
    m.u.hello.magic = MXP_MAGIC;
    encode_ok(&m, buf);
    put_le(buf + H_MAGIC, 4, MXP_MAGIC ^ 0x100);
    put_le(buf + H_VMAJOR, 2, MXP_VERSION_MAJOR + 1);
    expect_decode(buf, MXP_HEADER_SIZE + HELLO_LEN, 0, MXP_ERR_RANGE);
    put_le(buf + OFF_LENGTH, 4, 8);
    expect_decode(buf, MXP_HEADER_SIZE + 8, 0, MXP_ERR_LENGTH);

    /* Header faults come first. */
    encode_ok(&m, buf);
    put_le(buf + H_VMAJOR, 2, MXP_VERSION_MAJOR + 1);
    put_le(buf + OFF_FLAGS, 2, 2);
    expect_decode(buf, MXP_HEADER_SIZE + HELLO_LEN, 0, MXP_ERR_FLAGS);

    /* Only HELLO has a version: the same bytes in a PING are a cookie. */
    put_le(buf + OFF_FLAGS, 2, 0);
    put_le(buf + OFF_TYPE, 2, MXP_PING);
    put_le(buf + OFF_LENGTH, 4, 8);
    expect_decode(buf, MXP_HEADER_SIZE + 8, 0, MXP_OK);

    /* Another minor version of ours is fine. */
    m.u.hello.version_minor = MXP_VERSION_MINOR + 1;
    roundtrip(&m);
}

static void test_decode_bye_error(void)
{
    unsigned t;
    MxpMsg m;

    for (t = MXP_BYE; t <= MXP_ERROR; t++) {
        m = valid(t);
        expect_patched(&m, E_CODE, 4, MXP_E_NONE, MXP_ERR_RANGE);
        expect_patched(&m, E_CODE, 4, MXP_E_MAX + 1, MXP_ERR_RANGE);
        expect_patched(&m, E_CODE, 4, 0x80000000, MXP_ERR_RANGE);
        expect_patched(&m, E_CODE, 4, 0xffffffff, MXP_ERR_RANGE);
    }
    m = valid(MXP_ERROR);
    expect_patched(&m, E_REQ_TYPE, 4, MXP_TYPE_MAX + 1, MXP_ERR_RANGE);
    expect_patched(&m, E_REQ_TYPE, 4, 0xffffffff, MXP_ERR_RANGE);
}

/* BYE's request_type and addr are not checked: any value decodes. */
static void test_decode_bye_unchecked(void)
{
    static const uint32_t req_types[] = {
        MXP_TYPE_MAX + 1, 0x100, 0x80000000, 0xffffffff,
    };
    uint8_t buf[BUF_SIZE];
    unsigned r;
    MxpMsg m, out;
    int len;

    for (r = 0; r < G_N_ELEMENTS(req_types); r++) {
        m = valid(MXP_BYE);
        m.u.error.code = MXP_E_SHUTDOWN;
        len = mxp_encode(&m, buf, sizeof(buf));
        g_assert_cmpint(len, ==, MXP_HEADER_SIZE + 16);
        put_le(buf + E_REQ_TYPE, 4, req_types[r]);
        put_le(buf + E_ADDR, 8, ~0ULL);
        g_assert_cmpint(mxp_decode(buf, len, 0, &out), ==, MXP_OK);
        g_assert_cmpuint(out.u.error.code, ==, MXP_E_SHUTDOWN);
        g_assert_cmpuint(out.u.error.request_type, ==, req_types[r]);
        g_assert_cmphex(out.u.error.addr, ==, ~0ULL);
        /* The code is still checked. */
        put_le(buf + E_CODE, 4, MXP_E_NONE);
        g_assert_cmpint(mxp_decode(buf, len, 0, &out), ==, MXP_ERR_RANGE);
        put_le(buf + E_CODE, 4, MXP_E_MAX + 1);
        g_assert_cmpint(mxp_decode(buf, len, 0, &out), ==, MXP_ERR_RANGE);
    }
}

static void test_decode_access(void)
{
    unsigned t;
    MxpMsg m;

    /* READ carries a size but no data. */
    m = valid(MXP_READ);
    expect_patched(&m, A_SIZE, 4, 0, MXP_ERR_RANGE);
    expect_patched(&m, A_SIZE, 4, MXP_MAX_DATA + 1, MXP_ERR_RANGE);
    expect_patched(&m, A_SIZE, 4, 0xffffffff, MXP_ERR_RANGE);
    m.u.access.addr = 0 - 8ULL;                 /* ends at 2^64 exactly */
    expect_patched(&m, A_SIZE, 4, 9, MXP_ERR_RANGE);
    expect_patched(&m, A_ADDR, 8, 0 - 7ULL, MXP_ERR_RANGE);
    expect_patched(&m, A_ADDR, 8, ~0ULL, MXP_ERR_RANGE);
    m.u.access.size = MXP_MAX_DATA;
    m.u.access.addr = 0 - (uint64_t)MXP_MAX_DATA;
    expect_patched(&m, A_ADDR, 8, 1 - (uint64_t)MXP_MAX_DATA,
                   MXP_ERR_RANGE);

    for (t = MXP_READ; t <= MXP_WRITE; t++) {
        m = valid(t);
        expect_reserved(&m, A_RSVD, 4);
        m.u.access.addr = 0 - 8ULL;
        expect_patched(&m, A_ADDR, 8, 0 - 7ULL, MXP_ERR_RANGE);
        expect_patched(&m, A_ADDR, 8, ~0ULL, MXP_ERR_RANGE);
    }

    /* Zero-sized data. */
    for (t = MXP_READ_REPLY; t <= MXP_WRITE; t++) {
        uint8_t buf[BUF_SIZE];

        m = valid(t);
        encode_ok(&m, buf);
        put_le(buf + OFF_LENGTH, 4, 16);
        put_le(buf + A_SIZE, 4, 0);
        expect_decode(buf, MXP_HEADER_SIZE + 16, 0, MXP_ERR_RANGE);
    }
}

static void test_decode_map_reply(void)
{
    /* For FD and FORWARD: none, write-only, unknown bits. */
    static const uint64_t bad_perm[] = { 0, MXP_PERM_WRITE, 4, 5, 7, 8,
                                         0x80, 0xff };
    /* For DENIED: anything but none. */
    static const uint64_t bad_denied_perm[] = { MXP_PERM_READ,
                                                MXP_PERM_WRITE,
                                                MXP_PERM_ALL, 4, 0xff };
    unsigned i, kind;
    MxpMsg m;

    for (kind = 0; kind <= MXP_MAP_KIND_MAX; kind++) {
        m = valid(MXP_MAP_REPLY);
        m.u.map_reply.kind = (uint8_t)kind;
        m.u.map_reply.fd_offset = kind == MXP_MAP_FD ? 0x2000 : 0;
        if (kind == MXP_MAP_DENIED) {
            m.u.map_reply.perm = 0;
            for (i = 0; i < G_N_ELEMENTS(bad_denied_perm); i++) {
                expect_patched(&m, R_PERM, 1, bad_denied_perm[i],
                               MXP_ERR_RANGE);
            }
        } else {
            for (i = 0; i < G_N_ELEMENTS(bad_perm); i++) {
                expect_patched(&m, R_PERM, 1, bad_perm[i], MXP_ERR_RANGE);
            }
        }
        expect_patched(&m, R_KIND, 1, MXP_MAP_KIND_MAX + 1, MXP_ERR_RANGE);
        expect_patched(&m, R_KIND, 1, 0xff, MXP_ERR_RANGE);
        expect_patched(&m, R_LENGTH, 8, 0, MXP_ERR_RANGE);
        expect_reserved(&m, R_RSVD, 5);
        if (kind == MXP_MAP_FORWARD) {
            expect_patched(&m, R_REASON, 1, MXP_FWD_READ_ONLY, MXP_OK);
            expect_patched(&m, R_REASON, 1, MXP_FWD_REASON_MAX, MXP_OK);
            expect_patched(&m, R_REASON, 1, MXP_FWD_REASON_MAX + 1,
                           MXP_ERR_RANGE);
        } else {
            /* Only FORWARD gives a reason. */
            expect_patched(&m, R_REASON, 1, 1, MXP_ERR_RANGE);
        }

        /* Address range wrapping past 2^64. */
        m.u.map_reply.addr = 0 - 0x1000ULL;
        m.u.map_reply.length = 0x1000;
        expect_patched(&m, R_ADDR, 8, 1 - 0x1000ULL, MXP_ERR_RANGE);
        expect_patched(&m, R_ADDR, 8, ~0ULL, MXP_ERR_RANGE);
        expect_patched(&m, R_LENGTH, 8, 0x1001, MXP_ERR_RANGE);
        expect_patched(&m, R_LENGTH, 8, ~0ULL, MXP_ERR_RANGE);
    }

    /* fd_offset range wrapping past 2^64. */
    m = valid(MXP_MAP_REPLY);
    m.u.map_reply.fd_offset = 0 - 0x10000ULL;
    expect_patched(&m, R_FD_OFFSET, 8, 1 - 0x10000ULL, MXP_ERR_RANGE);
    expect_patched(&m, R_FD_OFFSET, 8, ~0ULL, MXP_ERR_RANGE);

    /* FORWARD and DENIED have no fd, so no fd_offset. */
    for (kind = MXP_MAP_FORWARD; kind <= MXP_MAP_DENIED; kind++) {
        m = valid(MXP_MAP_REPLY);
        m.u.map_reply.kind = (uint8_t)kind;
        m.u.map_reply.perm = kind == MXP_MAP_DENIED ? 0 : MXP_PERM_ALL;
        m.u.map_reply.fd_offset = 0;
        expect_patched(&m, R_FD_OFFSET, 8, 1, MXP_ERR_RANGE);
        expect_patched(&m, R_FD_OFFSET, 8, 0x2000, MXP_ERR_RANGE);
        expect_patched(&m, R_FD_OFFSET, 8, 1ULL << 63, MXP_ERR_RANGE);
    }
}

static void test_decode_invalidate(void)
{
    MxpMsg m = valid(MXP_INVALIDATE);

    expect_patched(&m, I_LENGTH, 8, 0, MXP_ERR_RANGE);
    m.u.range.addr = ~0ULL;
    m.u.range.length = 1;
    expect_patched(&m, I_LENGTH, 8, 2, MXP_ERR_RANGE);
    expect_patched(&m, I_LENGTH, 8, ~0ULL, MXP_ERR_RANGE);
    m.u.range.addr = 1;
    m.u.range.length = ~0ULL;
    expect_patched(&m, I_ADDR, 8, 2, MXP_ERR_RANGE);
}

static void test_decode_doorbell(void)
{
    uint8_t buf[BUF_SIZE];
    MxpMsg m = valid(MXP_DOORBELL);
    size_t len;

    expect_patched(&m, D_VECTOR, 2, MXP_MAX_VECTORS, MXP_ERR_RANGE);
    expect_patched(&m, D_VECTOR, 2, 0xffff, MXP_ERR_RANGE);
    expect_reserved(&m, D_RSVD, 4);

    /* One byte more data than allowed, consistent lengths. */
    m.u.doorbell.size = MXP_MAX_DOORBELL_DATA;
    memset(buf, 0, sizeof(buf));
    len = encode_ok(&m, buf);
    put_le(buf + D_SIZE, 2, MXP_MAX_DOORBELL_DATA + 1);
    put_le(buf + OFF_LENGTH, 4, 8 + MXP_MAX_DOORBELL_DATA + 1);
    expect_decode(buf, len + 1, 0, MXP_ERR_RANGE);

    /* And the most a message could hold. */
    put_le(buf + D_SIZE, 2, MXP_MAX_PAYLOAD - 8);
    put_le(buf + OFF_LENGTH, 4, MXP_MAX_PAYLOAD);
    expect_decode(buf, MXP_HEADER_SIZE + MXP_MAX_PAYLOAD, 0, MXP_ERR_RANGE);
}

static void test_decode_credit(void)
{
    MxpMsg m = valid(MXP_CREDIT);

    expect_patched(&m, C_CREDITS, 4, 0, MXP_ERR_RANGE);
    expect_patched(&m, C_CREDITS, 4, MXP_MAX_QUEUE_DEPTH + 1, MXP_ERR_RANGE);
    expect_patched(&m, C_CREDITS, 4, 0xffffffff, MXP_ERR_RANGE);
    expect_reserved(&m, C_RSVD, 4);
}

static void test_decode_boot(void)
{
    unsigned nargs, j;
    MxpMsg m = valid(MXP_BOOT);

    expect_patched(&m, B_NARGS, 4, MXP_BOOT_ARGS + 1, MXP_ERR_RANGE);
    expect_patched(&m, B_NARGS, 4, 0x80000000, MXP_ERR_RANGE);
    expect_patched(&m, B_NARGS, 4, 0xffffffff, MXP_ERR_RANGE);
    expect_reserved(&m, B_RSVD, 4);

    /* Arguments past nargs must be zero. */
    for (nargs = 0; nargs < MXP_BOOT_ARGS; nargs++) {
        m = valid(MXP_BOOT);
        memset(m.u.boot.args, 0, sizeof(m.u.boot.args));
        m.u.boot.nargs = nargs;
        for (j = nargs; j < MXP_BOOT_ARGS; j++) {
            expect_patched(&m, B_ARGS + 8 * j, 8, 1, MXP_ERR_RANGE);
            expect_patched(&m, B_ARGS + 8 * j, 8, 1ULL << 63, MXP_ERR_RANGE);
        }
    }
}

static void test_decode_state(void)
{
    MxpMsg m = valid(MXP_STATE);

    expect_patched(&m, S_STATE, 4, MXP_BOOT_STATE_MAX + 1, MXP_ERR_RANGE);
    expect_patched(&m, S_STATE, 4, 0xffffffff, MXP_ERR_RANGE);
    expect_reserved(&m, S_RSVD, 4);
}

/* ---- encode ----------------------------------------------------------- */

#define EXPECT_ENCODE(m, expected) \
    g_assert_cmpint(mxp_encode(&(m), buf, sizeof(buf)), ==, (expected))

static void test_encode_invalid(void)
{
    uint8_t buf[BUF_SIZE];
    MxpMsg m;

    /* Type. */
    m = valid(MXP_PING);
    m.hdr.type = 0;
    EXPECT_ENCODE(m, MXP_ERR_TYPE);
    m.hdr.type = MXP_TYPE_MAX + 1;
    EXPECT_ENCODE(m, MXP_ERR_TYPE);
    m.hdr.type = 0xffff;
    EXPECT_ENCODE(m, MXP_ERR_TYPE);

    /* HELLO. */
    m = valid(MXP_HELLO);
    m.u.hello.magic = 0;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_HELLO);
    m.u.hello.version_major = MXP_VERSION_MAJOR + 1;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m.u.hello.version_major = 0;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_HELLO);
    m.u.hello.page_size = 3 * 4096;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m.u.hello.page_size = MXP_MIN_PAGE_SIZE / 2;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m.u.hello.page_size = MXP_MAX_PAGE_SIZE * 2;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_HELLO);
    m.u.hello.role = MXP_ROLE_MAX + 1;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_HELLO);
    m.u.hello.vectors = MXP_MAX_VECTORS + 1;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_HELLO);
    m.u.hello.queue_depth = MXP_MAX_QUEUE_DEPTH + 1;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_HELLO);
    m.u.hello.max_data = 7;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m.u.hello.max_data = MXP_MAX_DATA + 1;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_HELLO);
    memset(m.u.hello.name, 'a', MXP_NAME_SIZE);
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_HELLO);
    m.u.hello.name[1] = '\t';
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_HELLO);
    m.u.hello.name[MXP_NAME_SIZE - 1] = 'z';
    EXPECT_ENCODE(m, MXP_ERR_RANGE);

    /* ERROR, BYE. */
    m = valid(MXP_ERROR);
    m.u.error.code = MXP_E_MAX + 1;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m.u.error.code = MXP_E_NONE;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_BYE);
    m.u.error.code = MXP_E_NONE;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_ERROR);
    m.u.error.request_type = MXP_TYPE_MAX + 1;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    /* A BYE with any request_type encodes, as it decodes. */
    m = valid(MXP_BYE);
    m.u.error.request_type = 0xffffffff;
    roundtrip(&m);

    /* READ, READ_REPLY, WRITE. */
    m = valid(MXP_READ);
    m.u.access.size = 0;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m.u.access.size = MXP_MAX_DATA + 1;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m.u.access.size = 2;
    m.u.access.addr = ~0ULL;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_READ_REPLY);
    m.u.access.data = NULL;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_WRITE);
    m.u.access.data = NULL;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_WRITE);
    m.u.access.size = MXP_MAX_DATA + 1;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);

    /* MAP_REPLY. */
    m = valid(MXP_MAP_REPLY);
    m.u.map_reply.perm = 0;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m.u.map_reply.perm = MXP_PERM_WRITE;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m.u.map_reply.perm = MXP_PERM_ALL + 1;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_MAP_REPLY);
    m.u.map_reply.kind = MXP_MAP_DENIED;
    m.u.map_reply.fd_offset = 0;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);        /* perm is MXP_PERM_ALL */
    m.u.map_reply.perm = 0;
    m.u.map_reply.fd_offset = 0x2000;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_MAP_REPLY);
    m.u.map_reply.kind = MXP_MAP_KIND_MAX + 1;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_MAP_REPLY);
    m.u.map_reply.length = 0;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_MAP_REPLY);
    m.u.map_reply.addr = ~0ULL;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_MAP_REPLY);
    m.u.map_reply.fd_offset = ~0ULL;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_MAP_REPLY);
    m.u.map_reply.kind = MXP_MAP_FORWARD;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);        /* fd_offset is 0x2000 */

    /* INVALIDATE. */
    m = valid(MXP_INVALIDATE);
    m.u.range.length = 0;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m.u.range.length = 2;
    m.u.range.addr = ~0ULL;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);

    /* DOORBELL. */
    m = valid(MXP_DOORBELL);
    m.u.doorbell.vector = MXP_MAX_VECTORS;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_DOORBELL);
    m.u.doorbell.size = MXP_MAX_DOORBELL_DATA + 1;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_DOORBELL);
    m.u.doorbell.data = NULL;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);

    /* CREDIT. */
    m = valid(MXP_CREDIT);
    m.u.credits = 0;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m.u.credits = MXP_MAX_QUEUE_DEPTH + 1;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);

    /* BOOT. */
    m = valid(MXP_BOOT);
    m.u.boot.nargs = MXP_BOOT_ARGS + 1;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
    m = valid(MXP_BOOT);
    m.u.boot.args[MXP_BOOT_ARGS - 1] = 1;   /* nargs is 2 */
    EXPECT_ENCODE(m, MXP_ERR_RANGE);

    /* STATE. */
    m = valid(MXP_STATE);
    m.u.state = MXP_BOOT_STATE_MAX + 1;
    EXPECT_ENCODE(m, MXP_ERR_RANGE);
}

static void test_encode_space(void)
{
    MxpMsg msgs[MAX_MSGS];
    unsigned n = all_messages(msgs, MAX_MSGS), i;
    uint8_t buf[BUF_SIZE], ref[BUF_SIZE];
    size_t len, cap;

    memset(ref, 0xa5, sizeof(ref));
    for (i = 0; i < n; i++) {
        len = MXP_HEADER_SIZE + payload_len(&msgs[i]);
        memset(buf, 0xa5, sizeof(buf));
        for (cap = 0; cap < len; cap++) {
            g_assert_cmpint(mxp_encode(&msgs[i], buf, cap), ==,
                            MXP_ERR_SPACE);
            /* Nothing written past the limit. */
            g_assert_true(memcmp(buf + cap, ref + cap,
                                 sizeof(buf) - cap) == 0);
        }
        g_assert_cmpint(mxp_encode(&msgs[i], buf, len), ==, (int)len);
    }
}

/* Header flags and length are computed, whatever the caller left there. */
static void test_encode_ignores_header_fields(void)
{
    uint8_t buf[BUF_SIZE], buf2[BUF_SIZE];
    MxpMsg msgs[MAX_MSGS];
    unsigned n = all_messages(msgs, MAX_MSGS), i;
    size_t len;

    for (i = 0; i < n; i++) {
        len = encode_ok(&msgs[i], buf);
        msgs[i].hdr.flags = 0xffff;
        msgs[i].hdr.length = 12345;
        g_assert_cmpint(mxp_encode(&msgs[i], buf2, sizeof(buf2)), ==,
                        (int)len);
        g_assert_cmpmem(buf, len, buf2, len);
        msgs[i].hdr.flags = 0;
        msgs[i].hdr.length = 0;
        g_assert_cmpint(mxp_encode(&msgs[i], buf2, sizeof(buf2)), ==,
                        (int)len);
        g_assert_cmpmem(buf, len, buf2, len);
    }
}

/* ---- helpers and strings ---------------------------------------------- */

static void test_strings(void)
{
    static const unsigned big[] = { 0x100, 0xffff, 0x10000, UINT_MAX };
    static const int big_status[] = { INT_MIN, INT_MIN + 1, -1000, 1000,
                                      INT_MAX };
    static const int statuses[] = {
        MXP_OK, MXP_ERR_SHORT, MXP_ERR_TOO_LONG, MXP_ERR_TYPE,
        MXP_ERR_LENGTH, MXP_ERR_FLAGS, MXP_ERR_FDS, MXP_ERR_RANGE,
        MXP_ERR_SPACE, MXP_ERR_VERSION,
    };
    unsigned i, j;
    int s;

    for (i = 0; i < 512; i++) {
        g_assert_nonnull(mxp_type_name(i));
        g_assert_nonnull(mxp_err_str(i));
    }
    for (i = 0; i < G_N_ELEMENTS(big); i++) {
        g_assert_nonnull(mxp_type_name(big[i]));
        g_assert_nonnull(mxp_err_str(big[i]));
    }
    for (s = -512; s < 512; s++) {
        g_assert_nonnull(mxp_status_str(s));
    }
    for (i = 0; i < G_N_ELEMENTS(big_status); i++) {
        g_assert_nonnull(mxp_status_str(big_status[i]));
    }

    /* Known values have their own, distinct text. */
    g_assert_cmpstr(mxp_type_name(MXP_HELLO), ==, "HELLO");
    g_assert_cmpstr(mxp_type_name(MXP_MAP_REPLY), ==, "MAP_REPLY");
    g_assert_cmpstr(mxp_type_name(MXP_STATE), ==, "STATE");
    for (i = 1; i <= MXP_TYPE_MAX; i++) {
        for (j = 1; j < i; j++) {
            g_assert_cmpstr(mxp_type_name(i), !=, mxp_type_name(j));
        }
        g_assert_cmpstr(mxp_type_name(i), !=, mxp_type_name(0));
    }
    g_assert_cmpstr(mxp_type_name(0), ==,
                    mxp_type_name(MXP_TYPE_MAX + 1));
    for (i = 0; i <= MXP_E_MAX; i++) {
        for (j = 0; j < i; j++) {
            g_assert_cmpstr(mxp_err_str(i), !=, mxp_err_str(j));
        }
        g_assert_cmpstr(mxp_err_str(i), !=, mxp_err_str(MXP_E_MAX + 1));
    }
    for (i = 0; i <= MXP_FWD_REASON_MAX; i++) {
        for (j = 0; j < i; j++) {
            g_assert_cmpstr(mxp_forward_reason_str(i), !=,
                            mxp_forward_reason_str(j));
        }
        g_assert_cmpstr(mxp_forward_reason_str(i), !=,
                        mxp_forward_reason_str(MXP_FWD_REASON_MAX + 1));
    }
    for (i = 0; i < G_N_ELEMENTS(statuses); i++) {
        for (j = 0; j < i; j++) {
            g_assert_cmpstr(mxp_status_str(statuses[i]), !=,
                            mxp_status_str(statuses[j]));
        }
        g_assert_cmpstr(mxp_status_str(statuses[i]), !=, mxp_status_str(1));
        g_assert_cmpstr(mxp_status_str(statuses[i]), !=,
                        mxp_status_str(INT_MIN));
    }
}

static void test_helpers(void)
{
    MxpHeader h;
    unsigned t;

    memset(&h, 0, sizeof(h));
    g_assert_cmpuint(mxp_expected_fds(&h), ==, 0);
    h.flags = MXP_FLAG_FD;
    g_assert_cmpuint(mxp_expected_fds(&h), ==, 1);

    for (t = 0; t <= MXP_TYPE_MAX + 8; t++) {
        bool reply = t == MXP_PONG || t == MXP_READ_REPLY || t == MXP_ACK ||
                     t == MXP_MAP_REPLY || t == MXP_INVALIDATE_ACK ||
                     t == MXP_ERROR;

        g_assert_cmpint(mxp_type_is_reply(t), ==, reply);
    }
}

int main(int argc, char **argv)
{
    unsigned i;

    for (i = 0; i < sizeof(pattern); i++) {
        pattern[i] = (uint8_t)(i * 7 + 3);
    }

    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/wire/roundtrip/all-types", test_roundtrip_all_types);
    g_test_add_func("/wire/roundtrip/hello", test_roundtrip_hello);
    g_test_add_func("/wire/roundtrip/bye-error", test_roundtrip_bye_error);
    g_test_add_func("/wire/roundtrip/ping-pong", test_roundtrip_ping_pong);
    g_test_add_func("/wire/roundtrip/read", test_roundtrip_read);
    g_test_add_func("/wire/roundtrip/read-reply", test_roundtrip_read_reply);
    g_test_add_func("/wire/roundtrip/write", test_roundtrip_write);
    g_test_add_func("/wire/roundtrip/no-payload", test_roundtrip_empty);
    g_test_add_func("/wire/roundtrip/map", test_roundtrip_map);
    g_test_add_func("/wire/roundtrip/map-reply", test_roundtrip_map_reply);
    g_test_add_func("/wire/roundtrip/invalidate", test_roundtrip_invalidate);
    g_test_add_func("/wire/roundtrip/doorbell", test_roundtrip_doorbell);
    g_test_add_func("/wire/roundtrip/credit", test_roundtrip_credit);
    g_test_add_func("/wire/roundtrip/boot", test_roundtrip_boot);
    g_test_add_func("/wire/roundtrip/state", test_roundtrip_state);

    g_test_add_func("/wire/header/short", test_header_short);
    g_test_add_func("/wire/header/type", test_header_type);
    g_test_add_func("/wire/header/flags", test_header_flags);
    g_test_add_func("/wire/header/too-long", test_header_too_long);

    g_test_add_func("/wire/decode/truncated", test_decode_truncated);
    g_test_add_func("/wire/decode/trailing", test_decode_trailing);
    g_test_add_func("/wire/decode/length-mismatch",
                    test_decode_length_mismatch);
    g_test_add_func("/wire/decode/fds", test_decode_fds);
    g_test_add_func("/wire/decode/db-ring", test_decode_db_ring);
    g_test_add_func("/wire/decode/hello", test_decode_hello);
    g_test_add_func("/wire/decode/version", test_decode_version);
    g_test_add_func("/wire/decode/bye-error", test_decode_bye_error);
    g_test_add_func("/wire/decode/bye-unchecked", test_decode_bye_unchecked);
    g_test_add_func("/wire/decode/access", test_decode_access);
    g_test_add_func("/wire/decode/map-reply", test_decode_map_reply);
    g_test_add_func("/wire/decode/invalidate", test_decode_invalidate);
    g_test_add_func("/wire/decode/doorbell", test_decode_doorbell);
    g_test_add_func("/wire/decode/credit", test_decode_credit);
    g_test_add_func("/wire/decode/boot", test_decode_boot);
    g_test_add_func("/wire/decode/state", test_decode_state);

    g_test_add_func("/wire/encode/layout", test_encode_layout);
    g_test_add_func("/wire/encode/invalid", test_encode_invalid);
    g_test_add_func("/wire/encode/space", test_encode_space);
    g_test_add_func("/wire/encode/ignores-header-fields",
                    test_encode_ignores_header_fields);

    g_test_add_func("/wire/misc/strings", test_strings);
    g_test_add_func("/wire/misc/helpers", test_helpers);

    return g_test_run();
}
