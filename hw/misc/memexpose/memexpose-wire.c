/*
 * memexpose wire protocol v1 codec.
 *
 * Every multi-byte field is little-endian and read or written byte by byte,
 * so the codec is independent of host endianness and alignment.  Decoding
 * checks lengths before touching any payload byte.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <string.h>

#include "memexpose-wire.h"

/* Fixed payload sizes; data-carrying messages add their data to these. */
#define HELLO_SIZE      (32 + MXP_NAME_SIZE)
#define ERROR_SIZE      16
#define COOKIE_SIZE     8
#define ACCESS_SIZE     16
#define MAP_SIZE        8
#define MAP_REPLY_SIZE  32
#define RANGE_SIZE      16
#define DOORBELL_SIZE   8
#define CREDIT_SIZE     8
#define BOOT_SIZE       (16 + 8 * MXP_BOOT_ARGS)
#define STATE_SIZE      8
#define DB_RING_SIZE    8
#define DB_EVENT_SIZE   8

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) |
           ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* [addr, addr + len) is non-empty and does not wrap past 2^64. */
static bool range_ok(uint64_t addr, uint64_t len)
{
    return len != 0 && addr + (len - 1) >= addr;
}

static bool data_size_ok(uint32_t size)
{
    return size >= 1 && size <= MXP_MAX_DATA;
}

/* Name: printable ASCII, NUL-terminated inside the field, zero padded. */
static bool name_ok(const char *name)
{
    size_t i = 0;

    while (i < MXP_NAME_SIZE && name[i] != '\0') {
        if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e) {
            return false;
        }
        i++;
    }
    if (i == MXP_NAME_SIZE) {
        return false;
    }
    for (; i < MXP_NAME_SIZE; i++) {
        if (name[i] != '\0') {
            return false;
        }
    }
    return true;
}

static bool is_pow2(uint32_t v)
{
    return v && !(v & (v - 1));
}

static bool hello_ok(const MxpHello *h)
{
    return h->magic == MXP_MAGIC &&
           h->version_major == MXP_VERSION_MAJOR &&
           is_pow2(h->page_size) &&
           h->page_size >= MXP_MIN_PAGE_SIZE &&
           h->page_size <= MXP_MAX_PAGE_SIZE &&
           h->role <= MXP_ROLE_MAX &&
           h->vectors <= MXP_MAX_VECTORS &&
           h->queue_depth <= MXP_MAX_QUEUE_DEPTH &&
           h->max_data >= 8 && h->max_data <= MXP_MAX_DATA &&
           name_ok(h->name);
}

static bool map_reply_ok(const MxpMapReply *r)
{
    if (r->kind > MXP_MAP_KIND_MAX || !range_ok(r->addr, r->length)) {
        return false;
    }
    if (r->kind == MXP_MAP_FORWARD ? r->reason > MXP_FWD_REASON_MAX
                                   : r->reason != 0) {
        return false;
    }
    if (r->kind == MXP_MAP_DENIED) {
        return r->perm == 0 && r->fd_offset == 0;
    }
    /* Readable, optionally writable: there is no write-only memory. */
    if (r->perm != MXP_PERM_READ && r->perm != MXP_PERM_ALL) {
        return false;
    }
    if (r->kind == MXP_MAP_FD) {
        return range_ok(r->fd_offset, r->length);
    }
    return r->fd_offset == 0;
}

static bool boot_ok(const MxpBoot *b)
{
    uint32_t i;

    if (b->nargs > MXP_BOOT_ARGS) {
        return false;
    }
    for (i = b->nargs; i < MXP_BOOT_ARGS; i++) {
        if (b->args[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Validate the decoded fields of a message; shared by decode and encode. */
static int check_fields(const MxpMsg *m)
{
    switch (m->hdr.type) {
    case MXP_HELLO:
        return hello_ok(&m->u.hello) ? MXP_OK : MXP_ERR_RANGE;
    case MXP_BYE:
        /* Only the code matters: a BYE ends the link whatever else it says. */
        return m->u.error.code >= 1 && m->u.error.code <= MXP_E_MAX ?
               MXP_OK : MXP_ERR_RANGE;
    case MXP_ERROR:
        return m->u.error.code >= 1 && m->u.error.code <= MXP_E_MAX &&
               m->u.error.request_type <= MXP_TYPE_MAX ? MXP_OK : MXP_ERR_RANGE;
    case MXP_READ:
    case MXP_READ_REPLY:
    case MXP_WRITE:
        return data_size_ok(m->u.access.size) &&
               range_ok(m->u.access.addr, m->u.access.size) ?
               MXP_OK : MXP_ERR_RANGE;
    case MXP_MAP_REPLY:
        return map_reply_ok(&m->u.map_reply) ? MXP_OK : MXP_ERR_RANGE;
    case MXP_INVALIDATE:
        return range_ok(m->u.range.addr, m->u.range.length) ?
               MXP_OK : MXP_ERR_RANGE;
    case MXP_DOORBELL:
        return m->u.doorbell.vector < MXP_MAX_VECTORS &&
               m->u.doorbell.size <= MXP_MAX_DOORBELL_DATA ?
               MXP_OK : MXP_ERR_RANGE;
    case MXP_CREDIT:
        return m->u.credits >= 1 && m->u.credits <= MXP_MAX_QUEUE_DEPTH ?
               MXP_OK : MXP_ERR_RANGE;
    case MXP_BOOT:
        return boot_ok(&m->u.boot) ? MXP_OK : MXP_ERR_RANGE;
    case MXP_STATE:
        return m->u.state <= MXP_BOOT_STATE_MAX ? MXP_OK : MXP_ERR_RANGE;
    case MXP_DB_RING:
        return m->u.ring_depth <= MXP_MAX_QUEUE_DEPTH ? MXP_OK : MXP_ERR_RANGE;
    case MXP_DB_EVENT:
        return m->u.event_vector < MXP_MAX_VECTORS ? MXP_OK : MXP_ERR_RANGE;
    default:
        return MXP_OK;
    }
}

/* Payload size for fixed-size types, or -1 for the variable-size ones. */
static long fixed_size(unsigned type)
{
    switch (type) {
    case MXP_HELLO:
        return HELLO_SIZE;
    case MXP_BYE:
    case MXP_ERROR:
        return ERROR_SIZE;
    case MXP_PING:
    case MXP_PONG:
        return COOKIE_SIZE;
    case MXP_READ:
        return ACCESS_SIZE;
    case MXP_ACK:
    case MXP_INVALIDATE_ACK:
    case MXP_RESET:
    case MXP_HALT:
    case MXP_DB_SPACE:
        return 0;
    case MXP_MAP:
        return MAP_SIZE;
    case MXP_MAP_REPLY:
        return MAP_REPLY_SIZE;
    case MXP_INVALIDATE:
        return RANGE_SIZE;
    case MXP_CREDIT:
        return CREDIT_SIZE;
    case MXP_BOOT:
        return BOOT_SIZE;
    case MXP_STATE:
        return STATE_SIZE;
    case MXP_DB_RING:
        return DB_RING_SIZE;
    case MXP_DB_EVENT:
        return DB_EVENT_SIZE;
    default:
        return -1;
    }
}

unsigned mxp_expected_fds(const MxpHeader *hdr)
{
    return (hdr->flags & MXP_FLAG_FD) ? 1 : 0;
}

int mxp_decode_header(const uint8_t *buf, size_t len, MxpHeader *hdr)
{
    if (len < MXP_HEADER_SIZE) {
        return MXP_ERR_SHORT;
    }
    hdr->type = get16(buf);
    hdr->flags = get16(buf + 2);
    hdr->length = get32(buf + 4);
    hdr->id = get64(buf + 8);

    if (hdr->type == 0 || hdr->type > MXP_TYPE_MAX) {
        return MXP_ERR_TYPE;
    }
    if (hdr->flags & ~MXP_FLAG_ALL) {
        return MXP_ERR_FLAGS;
    }
    if (hdr->length > MXP_MAX_PAYLOAD) {
        return MXP_ERR_TOO_LONG;
    }
    return MXP_OK;
}

static bool zero(const uint8_t *p, size_t n)
{
    while (n--) {
        if (*p++) {
            return false;
        }
    }
    return true;
}

/* The 8-byte payloads: a u32, then 4 reserved bytes. */
static bool get_word(const uint8_t *p, uint32_t *v)
{
    *v = get32(p);
    return zero(p + 4, 4);
}

static int decode_payload(const uint8_t *p, uint32_t len, MxpMsg *m)
{
    long fixed = fixed_size(m->hdr.type);
    uint32_t i;

    if (m->hdr.type == MXP_HELLO && len >= 8 && get32(p) == MXP_MAGIC &&
        get16(p + 4) != MXP_VERSION_MAJOR) {
        m->u.hello.magic = MXP_MAGIC;
        m->u.hello.version_major = get16(p + 4);
        m->u.hello.version_minor = get16(p + 6);
        return MXP_ERR_VERSION;
    }
    if (fixed >= 0 && len != (uint32_t)fixed) {
        return MXP_ERR_LENGTH;
    }

    switch (m->hdr.type) {
    case MXP_HELLO:
        m->u.hello.magic = get32(p);
        m->u.hello.version_major = get16(p + 4);
        m->u.hello.version_minor = get16(p + 6);
        m->u.hello.features = get64(p + 8);
        m->u.hello.page_size = get32(p + 16);
        m->u.hello.role = p[20];
        m->u.hello.vectors = p[21];
        m->u.hello.queue_depth = get16(p + 22);
        m->u.hello.max_data = get32(p + 24);
        if (!zero(p + 28, 4)) {
            return MXP_ERR_RANGE;
        }
        memcpy(m->u.hello.name, p + 32, MXP_NAME_SIZE);
        break;
    case MXP_BYE:
    case MXP_ERROR:
        m->u.error.code = get32(p);
        m->u.error.request_type = get32(p + 4);
        m->u.error.addr = get64(p + 8);
        break;
    case MXP_PING:
    case MXP_PONG:
        m->u.ping = get64(p);
        break;
    case MXP_READ:
    case MXP_READ_REPLY:
    case MXP_WRITE:
        if (len < ACCESS_SIZE) {
            return MXP_ERR_LENGTH;
        }
        m->u.access.addr = get64(p);
        m->u.access.size = get32(p + 8);
        if (!zero(p + 12, 4)) {
            return MXP_ERR_RANGE;
        }
        if (m->hdr.type == MXP_READ) {
            m->u.access.data = NULL;
        } else {
            if (len - ACCESS_SIZE != m->u.access.size) {
                return MXP_ERR_LENGTH;
            }
            m->u.access.data = p + ACCESS_SIZE;
        }
        break;
    case MXP_MAP:
        m->u.map.addr = get64(p);
        break;
    case MXP_MAP_REPLY:
        m->u.map_reply.kind = p[0];
        m->u.map_reply.perm = p[1];
        m->u.map_reply.reason = p[2];
        if (!zero(p + 3, 5)) {
            return MXP_ERR_RANGE;
        }
        m->u.map_reply.addr = get64(p + 8);
        m->u.map_reply.length = get64(p + 16);
        m->u.map_reply.fd_offset = get64(p + 24);
        break;
    case MXP_INVALIDATE:
        m->u.range.addr = get64(p);
        m->u.range.length = get64(p + 8);
        break;
    case MXP_DOORBELL:
        if (len < DOORBELL_SIZE) {
            return MXP_ERR_LENGTH;
        }
        m->u.doorbell.vector = get16(p);
        m->u.doorbell.size = get16(p + 2);
        if (!zero(p + 4, 4)) {
            return MXP_ERR_RANGE;
        }
        if (len - DOORBELL_SIZE != m->u.doorbell.size) {
            return MXP_ERR_LENGTH;
        }
        m->u.doorbell.data = p + DOORBELL_SIZE;
        break;
    case MXP_CREDIT:
        if (!get_word(p, &m->u.credits)) {
            return MXP_ERR_RANGE;
        }
        break;
    case MXP_BOOT:
        m->u.boot.entry = get64(p);
        m->u.boot.nargs = get32(p + 8);
        if (!zero(p + 12, 4)) {
            return MXP_ERR_RANGE;
        }
        for (i = 0; i < MXP_BOOT_ARGS; i++) {
            m->u.boot.args[i] = get64(p + 16 + 8 * i);
        }
        break;
    case MXP_STATE:
        if (!get_word(p, &m->u.state)) {
            return MXP_ERR_RANGE;
        }
        break;
    case MXP_DB_RING:
        if (!get_word(p, &m->u.ring_depth)) {
            return MXP_ERR_RANGE;
        }
        break;
    case MXP_DB_EVENT:
        if (!get_word(p, &m->u.event_vector)) {
            return MXP_ERR_RANGE;
        }
        break;
    default:
        /* ACK, INVALIDATE_ACK, RESET, HALT, DB_SPACE: no payload. */
        break;
    }
    return check_fields(m);
}

/* Messages that hand over memory or an eventfd carry one fd; no other. */
static bool wants_fd(const MxpMsg *m)
{
    switch (m->hdr.type) {
    case MXP_MAP_REPLY:
        return m->u.map_reply.kind == MXP_MAP_FD;
    case MXP_DB_RING:
    case MXP_DB_EVENT:
        return true;
    default:
        return false;
    }
}

static bool fd_flag_ok(const MxpMsg *m)
{
    return wants_fd(m) == !!(m->hdr.flags & MXP_FLAG_FD);
}

int mxp_decode(const uint8_t *buf, size_t len, unsigned nfds, MxpMsg *msg)
{
    int ret;

    memset(msg, 0, sizeof(*msg));
    ret = mxp_decode_header(buf, len, &msg->hdr);
    if (ret != MXP_OK) {
        return ret;
    }
    if (len - MXP_HEADER_SIZE < msg->hdr.length) {
        return MXP_ERR_SHORT;
    }
    if (len - MXP_HEADER_SIZE > msg->hdr.length) {
        return MXP_ERR_LENGTH;
    }
    ret = decode_payload(buf + MXP_HEADER_SIZE, msg->hdr.length, msg);
    if (ret != MXP_OK) {
        return ret;
    }
    if (!fd_flag_ok(msg) || nfds != mxp_expected_fds(&msg->hdr)) {
        return MXP_ERR_FDS;
    }
    return MXP_OK;
}

/* Payload size @m will encode to; the message must be valid already. */
static uint32_t payload_size(const MxpMsg *m)
{
    switch (m->hdr.type) {
    case MXP_READ_REPLY:
    case MXP_WRITE:
        return ACCESS_SIZE + m->u.access.size;
    case MXP_DOORBELL:
        return DOORBELL_SIZE + m->u.doorbell.size;
    default:
        return (uint32_t)fixed_size(m->hdr.type);
    }
}

int mxp_encode(const MxpMsg *msg, uint8_t *buf, size_t cap)
{
    MxpMsg m = *msg;
    uint8_t *p;
    uint32_t len, i;
    int ret;

    if (m.hdr.type == 0 || m.hdr.type > MXP_TYPE_MAX) {
        return MXP_ERR_TYPE;
    }
    ret = check_fields(&m);
    if (ret != MXP_OK) {
        return ret;
    }
    if ((m.hdr.type == MXP_READ_REPLY || m.hdr.type == MXP_WRITE) &&
        !m.u.access.data) {
        return MXP_ERR_RANGE;
    }
    if (m.hdr.type == MXP_DOORBELL && m.u.doorbell.size &&
        !m.u.doorbell.data) {
        return MXP_ERR_RANGE;
    }
    len = payload_size(&m);
    if (cap < MXP_HEADER_SIZE || cap - MXP_HEADER_SIZE < len) {
        return MXP_ERR_SPACE;
    }
    p = buf + MXP_HEADER_SIZE;
    m.hdr.flags = wants_fd(&m) ? MXP_FLAG_FD : 0;

    put16(buf, m.hdr.type);
    put16(buf + 2, m.hdr.flags);
    put32(buf + 4, len);
    put64(buf + 8, m.hdr.id);
    memset(p, 0, len);

    switch (m.hdr.type) {
    case MXP_HELLO:
        put32(p, m.u.hello.magic);
        put16(p + 4, m.u.hello.version_major);
        put16(p + 6, m.u.hello.version_minor);
        put64(p + 8, m.u.hello.features);
        put32(p + 16, m.u.hello.page_size);
        p[20] = m.u.hello.role;
        p[21] = m.u.hello.vectors;
        put16(p + 22, m.u.hello.queue_depth);
        put32(p + 24, m.u.hello.max_data);
        memcpy(p + 32, m.u.hello.name, MXP_NAME_SIZE);
        break;
    case MXP_BYE:
    case MXP_ERROR:
        put32(p, m.u.error.code);
        put32(p + 4, m.u.error.request_type);
        put64(p + 8, m.u.error.addr);
        break;
    case MXP_PING:
    case MXP_PONG:
        put64(p, m.u.ping);
        break;
    case MXP_READ:
    case MXP_READ_REPLY:
    case MXP_WRITE:
        put64(p, m.u.access.addr);
        put32(p + 8, m.u.access.size);
        if (m.hdr.type != MXP_READ) {
            memcpy(p + ACCESS_SIZE, m.u.access.data, m.u.access.size);
        }
        break;
    case MXP_MAP:
        put64(p, m.u.map.addr);
        break;
    case MXP_MAP_REPLY:
        p[0] = m.u.map_reply.kind;
        p[1] = m.u.map_reply.perm;
        p[2] = m.u.map_reply.reason;
        put64(p + 8, m.u.map_reply.addr);
        put64(p + 16, m.u.map_reply.length);
        put64(p + 24, m.u.map_reply.fd_offset);
        break;
    case MXP_INVALIDATE:
        put64(p, m.u.range.addr);
        put64(p + 8, m.u.range.length);
        break;
    case MXP_DOORBELL:
        put16(p, m.u.doorbell.vector);
        put16(p + 2, m.u.doorbell.size);
        if (m.u.doorbell.size) {
            memcpy(p + DOORBELL_SIZE, m.u.doorbell.data, m.u.doorbell.size);
        }
        break;
    case MXP_CREDIT:
        put32(p, m.u.credits);
        break;
    case MXP_BOOT:
        put64(p, m.u.boot.entry);
        put32(p + 8, m.u.boot.nargs);
        for (i = 0; i < MXP_BOOT_ARGS; i++) {
            put64(p + 16 + 8 * i, m.u.boot.args[i]);
        }
        break;
    case MXP_STATE:
        put32(p, m.u.state);
        break;
    case MXP_DB_RING:
        put32(p, m.u.ring_depth);
        break;
    case MXP_DB_EVENT:
        put32(p, m.u.event_vector);
        break;
    default:
        break;
    }
    return (int)(MXP_HEADER_SIZE + len);
}

bool mxp_type_is_reply(unsigned type)
{
    switch (type) {
    case MXP_PONG:
    case MXP_READ_REPLY:
    case MXP_ACK:
    case MXP_MAP_REPLY:
    case MXP_INVALIDATE_ACK:
    case MXP_ERROR:
        return true;
    default:
        return false;
    }
}

const char *mxp_type_name(unsigned type)
{
    static const char *const names[] = {
        [MXP_HELLO] = "HELLO",
        [MXP_BYE] = "BYE",
        [MXP_ERROR] = "ERROR",
        [MXP_PING] = "PING",
        [MXP_PONG] = "PONG",
        [MXP_READ] = "READ",
        [MXP_READ_REPLY] = "READ_REPLY",
        [MXP_WRITE] = "WRITE",
        [MXP_ACK] = "ACK",
        [MXP_MAP] = "MAP",
        [MXP_MAP_REPLY] = "MAP_REPLY",
        [MXP_INVALIDATE] = "INVALIDATE",
        [MXP_INVALIDATE_ACK] = "INVALIDATE_ACK",
        [MXP_DOORBELL] = "DOORBELL",
        [MXP_CREDIT] = "CREDIT",
        [MXP_BOOT] = "BOOT",
        [MXP_RESET] = "RESET",
        [MXP_HALT] = "HALT",
        [MXP_STATE] = "STATE",
        [MXP_DB_RING] = "DB_RING",
        [MXP_DB_EVENT] = "DB_EVENT",
        [MXP_DB_SPACE] = "DB_SPACE",
    };

    if (type < sizeof(names) / sizeof(names[0]) && names[type]) {
        return names[type];
    }
    return "unknown";
}

const char *mxp_status_str(int status)
{
    switch (status) {
    case MXP_OK:
        return "ok";
    case MXP_ERR_SHORT:
        return "message truncated";
    case MXP_ERR_TOO_LONG:
        return "payload longer than the protocol allows";
    case MXP_ERR_TYPE:
        return "unknown message type";
    case MXP_ERR_LENGTH:
        return "payload length does not match the message type";
    case MXP_ERR_FLAGS:
        return "unknown header flags";
    case MXP_ERR_FDS:
        return "file descriptors do not match the message";
    case MXP_ERR_RANGE:
        return "field out of bounds";
    case MXP_ERR_SPACE:
        return "output buffer too small";
    case MXP_ERR_VERSION:
        return "incompatible protocol version";
    default:
        return "unknown codec status";
    }
}

const char *mxp_err_str(unsigned code)
{
    static const char *const names[] = {
        [MXP_E_NONE] = "no error",
        [MXP_E_PROTOCOL] = "protocol violation",
        [MXP_E_VERSION] = "incompatible protocol version",
        [MXP_E_DENIED] = "address not exported",
        [MXP_E_READ_ONLY] = "export is read-only",
        [MXP_E_UNSUPPORTED] = "feature not negotiated",
        [MXP_E_ACCESS] = "bus error at the exporter",
        [MXP_E_RECURSION] = "access would recurse into a memexpose window",
        [MXP_E_BUSY] = "doorbell queue full",
        [MXP_E_BAD_VECTOR] = "no such doorbell vector",
        [MXP_E_NOT_BOOT_TARGET] = "peer is not a boot target",
        [MXP_E_BAD_STATE] = "request not valid in the current boot state",
        [MXP_E_BAD_ENTRY] = "boot entry outside the target's RAM",
        [MXP_E_TIMEOUT] = "timed out",
        [MXP_E_SHUTDOWN] = "shutting down",
        [MXP_E_INTERNAL] = "internal error",
    };

    if (code < sizeof(names) / sizeof(names[0])) {
        return names[code];
    }
    return "unknown error";
}

const char *mxp_forward_reason_str(unsigned reason)
{
    static const char *const names[] = {
        [MXP_FWD_UNSPECIFIED] = "no reason given",
        [MXP_FWD_NOT_RAM] = "it is MMIO, ROM or device memory",
        [MXP_FWD_PRIVATE] = "its RAM is not backed by a shareable file",
        [MXP_FWD_PARTIAL] = "it does not fill whole pages of one export and"
                            " one RAM range",
        [MXP_FWD_NOT_WHOLE] = "its file also backs memory that is not"
                              " visible or not exported (trust-peer=on"
                              " would share it)",
        [MXP_FWD_UNSEALED] = "its file is not sealed against shrinking"
                             " (trust-peer=on would share it)",
        [MXP_FWD_READ_ONLY] = "it is a read-only export of a file that is"
                              " not sealed against writing",
        [MXP_FWD_NO_FD] = "the exporter could not make a descriptor",
    };

    if (reason < sizeof(names) / sizeof(names[0])) {
        return names[reason];
    }
    return "unknown reason";
}
