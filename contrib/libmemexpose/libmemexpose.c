/*
 * libmemexpose: a memexpose link for host programs.
 *
 * One link is one socket, driven by whoever calls in: every blocking
 * call runs the same receive loop as mx_dispatch() while it waits, so
 * the peer's requests (READ, WRITE, MAP, INVALIDATE, PING, doorbells)
 * are served in order of arrival whatever the caller is waiting for.
 * Output goes through a queue flushed without blocking, so we keep
 * reading while the peer is slow to read (two sides that both fill
 * their send buffers would otherwise deadlock).
 *
 * Peer input is checked as docs/specs/memexpose.rst requires: the codec
 * checks each message, this file the session rules (order, ids, reply
 * types and contents, feature gating, credits, vectors) and the
 * descriptors received.  A violation ends the link with a reason that
 * mx_link_error() returns.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "libmemexpose.h"
#include "memexpose-wire.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010      /* Linux 5.1 */
#endif

#define MX_EXPORT __attribute__((visibility("default")))

/* Requests of ours in flight at once (bulk transfers pipeline READs). */
#define MX_MAX_CALLS        16
#define MX_PIPELINE         8
/* Unsent output beyond which we stop reading, to push back on a flood. */
#define MX_TX_LIMIT         (4u << 20)
/* BOOT, RESET and HALT may take a starting target a while. */
#define MX_PATIENT_MS       10000

typedef struct TxMsg {
    struct TxMsg *next;
    int fd;                     /* rides with the first byte, then closed */
    size_t len;
    size_t off;
    uint8_t buf[];
} TxMsg;

typedef struct Call {
    bool used;
    bool done;
    uint16_t type;
    int err;                    /* 0, MX_E_* or MX_ERR_LINK */
    uint64_t id;
    uint64_t addr;              /* READ: expected reply */
    uint32_t size;
    uint8_t *data;              /* READ: where the reply's data goes */
    uint64_t cookie;            /* PING */
    MxpMapReply map;
    int fd;                     /* MAP_REPLY of kind FD */
    uint64_t inval_gen;         /* invalidations seen when it completed */
} Call;

typedef struct Mapping {
    struct Mapping *next;
    uint64_t addr;
    uint64_t len;
    void *host;
    unsigned perm;
    bool zapped;                /* revoked: anonymous memory now */
} Mapping;

typedef struct Export {
    uint64_t addr;
    uint64_t size;
    unsigned perm;
    void *host;                 /* buffer exports */
    int fd;                     /* the memfd (buffer exports), else -1 */
    int grant_fd;               /* what the peer gets: -1 = forward only */
    mx_access_fn fn;            /* callback exports */
    void *opaque;
    int file_fd;                /* file exports, else -1 */
    uint64_t file_offset;       /* where the export starts in the file */
} Export;

/* ST_RING: HELLOs exchanged, waiting for the peer's DB_RING/DB_EVENTs. */
enum { ST_NEW, ST_HELLO, ST_RING, ST_UP, ST_DOWN };

/* A doorbell ring (MXP_FEAT_DB_RING), ours or the peer's. */
typedef struct Ring {
    uint8_t *base;
    size_t size;
    uint32_t depth;
} Ring;

struct mx_link {
    mx_options opt;
    char name[MXP_NAME_SIZE];
    int fd;
    int state;
    char error[256];
    int64_t hello_deadline;

    MxpHello peer;
    mx_peer_info info;
    uint64_t features;
    uint32_t page_size;
    uint64_t granule;
    uint32_t max_data;

    uint8_t rxbuf[MXP_MAX_MESSAGE];
    size_t rxlen;
    int rxfd;
    int64_t rx_started;

    TxMsg *txhead;
    TxMsg *txtail;
    size_t txbytes;

    Call calls[MX_MAX_CALLS];
    uint64_t next_id;

    Mapping *maps;
    uint64_t inval_gen;

    Export *exports;
    unsigned nr_exports;

    unsigned tx_credits;
    mx_doorbell *rxq;
    unsigned rx_head;
    unsigned rx_count;
    unsigned rx_cap;

    unsigned boot_state;
    mx_stats stats;

    /* DB_RING: we receive in @rx_ring, signalled by @rx_event. */
    Ring rx_ring;
    int rx_memfd;
    int rx_event;
    uint32_t rx_drained;        /* entries copied out of the ring */
    uint32_t rx_freed;          /* entries taken: our consumer index */
    Ring tx_ring;               /* the peer's ring, we produce */
    bool tx_ring_set;
    uint32_t tx_produced;
    int tx_events[MXP_MAX_VECTORS];
    unsigned tx_nr_events;
    int64_t ring_deadline;

    /* Liveness: our PINGs (one at a time) and the peer's last message. */
    int64_t last_rx;
    int64_t next_ping;
    uint64_t ping_id;           /* outstanding liveness PING, or 0 */
    uint64_t ping_cookie;
    int64_t ping_sent;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_error(mx_link *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(mx_link *l, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(l->error, sizeof(l->error), fmt, ap);
    va_end(ap);
}

/* ---- output ---- */

static void link_down(mx_link *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void flush(mx_link *l)
{
    while (l->txhead && l->state != ST_DOWN) {
        TxMsg *m = l->txhead;
        struct iovec iov = { m->buf + m->off, m->len - m->off };
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } ctl;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (m->fd >= 0 && m->off == 0) {
            struct cmsghdr *c;

            memset(&ctl, 0, sizeof(ctl));
            mh.msg_control = ctl.buf;
            mh.msg_controllen = sizeof(ctl.buf);
            c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &m->fd, sizeof(int));
        }
        /* One message per call: no descriptor with an earlier message. */
        n = sendmsg(l->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }
            link_down(l, "cannot send to the peer: %s", strerror(errno));
            return;
        }
        if (m->fd >= 0) {
            close(m->fd);
            m->fd = -1;
        }
        m->off += n;
        l->txbytes -= n;
        if (m->off == m->len) {
            l->txhead = m->next;
            if (!l->txhead) {
                l->txtail = NULL;
            }
            free(m);
        }
    }
}

static void tx_free(mx_link *l)
{
    while (l->txhead) {
        TxMsg *m = l->txhead;

        l->txhead = m->next;
        if (m->fd >= 0) {
            close(m->fd);
        }
        free(m);
    }
    l->txtail = NULL;
    l->txbytes = 0;
}

/* Queue @msg (with a duplicate of @fd, if any) and send what we can. */
static void send_msg(mx_link *l, MxpMsg *msg, int fd)
{
    uint8_t buf[MXP_MAX_MESSAGE];
    int len;
    TxMsg *m;

    if (l->fd < 0 || l->state == ST_DOWN) {
        return;
    }
    len = mxp_encode(msg, buf, sizeof(buf));
    if (len < 0) {
        link_down(l, "internal error: cannot encode %s: %s",
                  mxp_type_name(msg->hdr.type), mxp_status_str(len));
        return;
    }
    m = malloc(sizeof(*m) + len);
    if (!m) {
        link_down(l, "out of memory");
        return;
    }
    m->next = NULL;
    m->fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (fd >= 0 && m->fd < 0) {
        free(m);
        link_down(l, "cannot duplicate a descriptor: %s", strerror(errno));
        return;
    }
    m->len = len;
    m->off = 0;
    memcpy(m->buf, buf, len);
    if (l->txtail) {
        l->txtail->next = m;
    } else {
        l->txhead = m;
    }
    l->txtail = m;
    l->txbytes += len;
    flush(l);
}

static void send_simple(mx_link *l, MxpType type, uint64_t id)
{
    MxpMsg msg = { .hdr = { .type = type, .id = id } };

    send_msg(l, &msg, -1);
}

static void send_error(mx_link *l, uint64_t id, uint32_t code,
                       uint32_t type, uint64_t addr)
{
    MxpMsg msg = {
        .hdr = { .type = MXP_ERROR, .id = id },
        .u.error = { .code = code, .request_type = type, .addr = addr },
    };

    send_msg(l, &msg, -1);
}

static void send_bye(mx_link *l, uint32_t code)
{
    MxpMsg msg = { .hdr = { .type = MXP_BYE }, .u.error = { .code = code } };

    send_msg(l, &msg, -1);
}

/* ---- mappings ---- */

/* Replace the pages of @m by anonymous memory: the peer's file is gone. */
static bool zap(Mapping *m)
{
    void *p;

    if (m->zapped) {
        return true;
    }
    p = mmap(m->host, m->len, PROT_READ | PROT_WRITE,
             MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        return false;
    }
    m->zapped = true;
    return true;
}

static bool zap_range(mx_link *l, uint64_t addr, uint64_t len)
{
    bool ok = true;
    Mapping *m;

    l->inval_gen++;
    for (m = l->maps; m; m = m->next) {
        if (addr <= m->addr + (m->len - 1) && m->addr <= addr + (len - 1)) {
            ok &= zap(m);
        }
    }
    return ok;
}

/* ---- doorbell rings (MXP_FEAT_DB_RING) ---- */

static bool ring_mode(const mx_link *l)
{
    return l->features & MXP_FEAT_DB_RING;
}

static uint32_t *ring_word(const Ring *r, size_t off)
{
    return (uint32_t *)(r->base + off);
}

static uint8_t *ring_slot(Ring *r, uint32_t index)
{
    return r->base + MXP_DB_RING_ENTRIES +
           (size_t)(index % r->depth) * MXP_DB_ENTRY_SIZE;
}

static void ring_free(mx_link *l)
{
    unsigned i;

    if (l->rx_ring.base) {
        munmap(l->rx_ring.base, l->rx_ring.size);
    }
    if (l->tx_ring.base) {
        munmap(l->tx_ring.base, l->tx_ring.size);
    }
    memset(&l->rx_ring, 0, sizeof(l->rx_ring));
    memset(&l->tx_ring, 0, sizeof(l->tx_ring));
    l->tx_ring_set = false;
    if (l->rx_memfd >= 0) {
        close(l->rx_memfd);
    }
    if (l->rx_event >= 0) {
        close(l->rx_event);
    }
    l->rx_memfd = l->rx_event = -1;
    for (i = 0; i < l->tx_nr_events; i++) {
        close(l->tx_events[i]);
    }
    l->tx_nr_events = 0;
    l->rx_drained = l->rx_freed = l->tx_produced = 0;
}

/*
 * Clear our eventfd without ever blocking: the peer holds the same open
 * file and may clear O_NONBLOCK or empty the counter at any time.
 */
static void event_clear(int fd)
{
    uint64_t count;
    struct iovec iov = { &count, sizeof(count) };

#ifdef RWF_NOWAIT
    if (preadv2(fd, &iov, 1, -1, RWF_NOWAIT) >= 0 || errno != EOPNOTSUPP) {
        return;
    }
#endif
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0 &&
        read(fd, &count, sizeof(count)) < 0) {
        /* EAGAIN: the peer emptied it */
    }
}

/* Entries of the peer's ring in use; false if its consumer index lies. */
static bool tx_ring_used(const mx_link *l, uint32_t *used)
{
    uint32_t consumer = __atomic_load_n(ring_word(&l->tx_ring,
                                                  MXP_DB_RING_CONSUMER),
                                        __ATOMIC_ACQUIRE);

    *used = l->tx_produced - consumer;
    return *used <= l->tx_ring.depth;
}

static void link_fail(mx_link *l, uint32_t code, uint32_t type,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* After the peer's HELLO: make our ring and hand it over. */
static bool ring_offer(mx_link *l, uint32_t depth)
{
    MxpMsg msg = { .hdr = { .type = MXP_DB_RING } };
    size_t size = MXP_DB_RING_SIZE(depth);
    unsigned i;

    size = (size + l->page_size - 1) & ~(size_t)(l->page_size - 1);
    l->rx_memfd = memfd_create("memexpose-doorbells",
                               MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (l->rx_memfd < 0 || ftruncate(l->rx_memfd, size) < 0 ||
        fcntl(l->rx_memfd, F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        return false;
    }
    l->rx_ring.base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
                           l->rx_memfd, 0);
    if (l->rx_ring.base == MAP_FAILED) {
        l->rx_ring.base = NULL;
        return false;
    }
    l->rx_ring.size = size;
    l->rx_ring.depth = depth;
    /* One eventfd serves all our vectors: the ring says which one. */
    l->rx_event = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->rx_event < 0) {
        return false;
    }
    msg.u.ring_depth = depth;
    send_msg(l, &msg, l->rx_memfd);
    for (i = 0; i < l->opt.vectors; i++) {
        MxpMsg ev = {
            .hdr = { .type = MXP_DB_EVENT }, .u.event_vector = i,
        };

        send_msg(l, &ev, l->rx_event);
    }
    return true;
}

static bool is_eventfd(int fd)
{
    char path[64], target[32] = "";

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return readlink(path, target, sizeof(target) - 1) > 0 &&
           !strcmp(target, "anon_inode:[eventfd]");
}

static void ring_check_up(mx_link *l)
{
    if (l->tx_ring_set && l->tx_nr_events == l->peer.vectors) {
        l->state = ST_UP;
    }
}

/* The peer's DB_RING: a sealed memfd we map as its receive ring. */
static void handle_db_ring(mx_link *l, uint32_t depth, int fd)
{
    size_t size = MXP_DB_RING_SIZE(depth);
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    void *base = MAP_FAILED;

    if (l->state != ST_RING || l->tx_ring_set) {
        link_fail(l, MXP_E_PROTOCOL, MXP_DB_RING, "DB_RING outside the"
                  " handshake");
    } else if (depth != l->peer.queue_depth) {
        link_fail(l, MXP_E_PROTOCOL, MXP_DB_RING, "DB_RING of another"
                  " depth than its HELLO offered");
    } else if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
        link_fail(l, MXP_E_PROTOCOL, MXP_DB_RING, "a doorbell ring that is"
                  " not a memfd sealed against shrinking");
    } else if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < size) {
        link_fail(l, MXP_E_PROTOCOL, MXP_DB_RING, "a doorbell ring smaller"
                  " than its depth needs");
    } else {
        base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    }
    if (l->state == ST_DOWN) {
        return;
    }
    if (base == MAP_FAILED) {
        link_fail(l, MXP_E_PROTOCOL, MXP_DB_RING, "a doorbell ring that"
                  " cannot be mapped");
    } else {
        l->tx_ring.base = base;
        l->tx_ring.size = size;
        l->tx_ring.depth = depth;
        l->tx_ring_set = true;
        ring_check_up(l);
    }
}

static void handle_db_event(mx_link *l, uint32_t vector, int *fd)
{
    if (l->state != ST_RING || !l->tx_ring_set) {
        link_fail(l, MXP_E_PROTOCOL, MXP_DB_EVENT, "DB_EVENT outside the"
                  " handshake");
    } else if (vector >= l->peer.vectors || vector != l->tx_nr_events) {
        link_fail(l, MXP_E_PROTOCOL, MXP_DB_EVENT, "DB_EVENT for vector %u"
                  " out of order", vector);
    } else if (!is_eventfd(*fd) ||
               fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) | O_NONBLOCK) < 0) {
        link_fail(l, MXP_E_PROTOCOL, MXP_DB_EVENT, "DB_EVENT with a"
                  " descriptor that is not an eventfd");
    } else {
        l->tx_events[l->tx_nr_events++] = *fd;
        *fd = -1;
        ring_check_up(l);
    }
}

static void queue_doorbell(mx_link *l, unsigned vector, const void *data,
                           size_t size);

/* Copy what the peer published in our ring into the queue. */
static void ring_drain(mx_link *l)
{
    Ring *r = &l->rx_ring;
    uint32_t produced, pending;

    if (l->state != ST_UP || !ring_mode(l) || !r->base) {
        return;
    }
    produced = __atomic_load_n(ring_word(r, MXP_DB_RING_PRODUCER),
                               __ATOMIC_ACQUIRE);
    pending = produced - l->rx_freed;
    if (pending > r->depth || pending < l->rx_drained - l->rx_freed) {
        link_fail(l, MXP_E_PROTOCOL, 0, "doorbell ring: producer index"
                  " outside the slots it was given");
        return;
    }
    while (l->rx_drained != produced && l->state == ST_UP) {
        uint8_t e[MXP_DB_ENTRY_SIZE];
        uint16_t vector, size;
        uint32_t rsvd;

        memcpy(e, ring_slot(r, l->rx_drained), sizeof(e));
        memcpy(&vector, e, 2);
        memcpy(&size, e + 2, 2);
        memcpy(&rsvd, e + 4, 4);
        if (vector >= l->opt.vectors || size > MXP_MAX_DOORBELL_DATA ||
            rsvd) {
            link_fail(l, MXP_E_PROTOCOL, 0, "doorbell ring: a malformed"
                      " entry");
            return;
        }
        l->rx_drained++;
        queue_doorbell(l, vector, e + 8, size);
    }
}

/* Our caller took an entry: free its slot, wake a waiting sender. */
static void ring_consume(mx_link *l)
{
    Ring *r = &l->rx_ring;

    l->rx_freed++;
    __atomic_store_n(ring_word(r, MXP_DB_RING_CONSUMER), l->rx_freed,
                     __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_exchange_n(ring_word(r, MXP_DB_RING_WAITING), 0,
                            __ATOMIC_SEQ_CST)) {
        send_simple(l, MXP_DB_SPACE, 0);
    }
}

/* Publish one doorbell in the peer's ring: 0, MX_ERR_AGAIN if full. */
static int ring_send(mx_link *l, unsigned vector, const void *data,
                     size_t len)
{
    static const uint64_t one = 1;
    Ring *r = &l->tx_ring;
    uint32_t used;
    uint8_t *slot;
    uint16_t v16 = vector, s16 = len;
    uint32_t zero = 0;
    int fd;

    if (!tx_ring_used(l, &used)) {
        goto bad_consumer;
    }
    if (used == r->depth) {
        /* Ask for DB_SPACE, then look again (no lost wake-up). */
        __atomic_store_n(ring_word(r, MXP_DB_RING_WAITING), 1,
                         __ATOMIC_SEQ_CST);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (!tx_ring_used(l, &used)) {
            goto bad_consumer;
        }
        if (used == r->depth) {
            return MX_ERR_AGAIN;
        }
    }
    slot = ring_slot(r, l->tx_produced);
    memcpy(slot, &v16, 2);
    memcpy(slot + 2, &s16, 2);
    memcpy(slot + 4, &zero, 4);
    if (len) {
        memcpy(slot + 8, data, len);
    }
    l->tx_produced++;
    __atomic_store_n(ring_word(r, MXP_DB_RING_PRODUCER), l->tx_produced,
                     __ATOMIC_RELEASE);
    fd = l->tx_events[vector];
    if (!(fcntl(fd, F_GETFL) & O_NONBLOCK) ||
        write(fd, &one, sizeof(one)) != sizeof(one)) {
        link_fail(l, MXP_E_PROTOCOL, 0, "the peer's doorbell eventfd for"
                  " vector %u does not take a signal", vector);
        return MX_ERR_LINK;
    }
    return 0;

bad_consumer:
    link_fail(l, MXP_E_PROTOCOL, 0, "the peer's doorbell ring has a"
              " consumer index beyond its producer index");
    return MX_ERR_LINK;
}

/* ---- taking the link down ---- */

static void link_down(mx_link *l, const char *fmt, ...)
{
    va_list ap;
    unsigned i;

    if (l->state == ST_DOWN) {
        return;
    }
    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(l->error, sizeof(l->error), fmt, ap);
        va_end(ap);
    }
    l->state = ST_DOWN;
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
    tx_free(l);
    if (l->rxfd >= 0) {
        close(l->rxfd);
        l->rxfd = -1;
    }
    for (i = 0; i < MX_MAX_CALLS; i++) {
        Call *c = &l->calls[i];

        if (c->used && !c->done) {
            c->done = true;
            c->err = MX_ERR_LINK;
        }
    }
    l->tx_credits = 0;
    l->boot_state = MX_BOOT_NONE;
    ring_free(l);
    /* The peer's memory is no longer ours to reach. */
    if (l->maps) {
        zap_range(l, 0, UINT64_MAX);
        if (l->opt.on_invalidate) {
            l->opt.on_invalidate(l->opt.opaque, 0, UINT64_MAX);
        }
    }
}

/* A violation by the peer: tell it (ERROR, BYE) and end the link. */
static void link_fail(mx_link *l, uint32_t code, uint32_t type,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void link_fail(mx_link *l, uint32_t code, uint32_t type,
                      const char *fmt, ...)
{
    char reason[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (l->state == ST_DOWN) {
        return;
    }
    send_error(l, 0, code, type, 0);
    send_bye(l, code);
    link_down(l, "protocol error: %s", reason);
}

/* ---- calls: our requests ---- */

static Call *call_start(mx_link *l, MxpMsg *req)
{
    unsigned i;

    if (l->state != ST_UP) {
        return NULL;
    }
    for (i = 0; i < MX_MAX_CALLS; i++) {
        Call *c = &l->calls[i];

        if (!c->used) {
            memset(c, 0, sizeof(*c));
            c->used = true;
            c->fd = -1;
            c->type = req->hdr.type;
            c->id = ++l->next_id;
            req->hdr.id = c->id;
            send_msg(l, req, -1);
            return c;
        }
    }
    return NULL;
}

static void call_release(Call *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->used = false;
}

static void poll_once(mx_link *l, int timeout_ms);

/*
 * Wait for @c, serving the peer meanwhile.  A peer that does not answer
 * in time loses the link.  The call stays allocated (caller releases).
 */
static int call_wait(mx_link *l, Call *c, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;

    while (!c->done) {
        int64_t left = deadline - now_ms();

        if (left <= 0) {
            send_bye(l, MXP_E_TIMEOUT);
            flush(l);
            link_down(l, "the peer did not answer %s in time",
                      mxp_type_name(c->type));
            return MX_ERR_TIMEOUT;
        }
        poll_once(l, (int)left);
    }
    return c->err;
}

static int call(mx_link *l, MxpMsg *req, Call **out, int timeout_ms)
{
    Call *c = call_start(l, req);
    int ret;

    if (!c) {
        return MX_ERR_LINK;
    }
    ret = call_wait(l, c, timeout_ms);
    if (out && ret == 0) {
        *out = c;
    } else {
        call_release(c);
    }
    return ret;
}

static bool reply_type_ok(uint16_t req, uint16_t rep)
{
    switch (req) {
    case MXP_READ:
        return rep == MXP_READ_REPLY || rep == MXP_ERROR;
    case MXP_WRITE:
    case MXP_BOOT:
    case MXP_RESET:
    case MXP_HALT:
        return rep == MXP_ACK || rep == MXP_ERROR;
    case MXP_MAP:
        return rep == MXP_MAP_REPLY || rep == MXP_ERROR;
    case MXP_PING:
        return rep == MXP_PONG;
    default:
        return false;
    }
}

/* A reply: complete its call, taking @fd; false if it answers none. */
static void handle_reply(mx_link *l, const MxpMsg *msg, int *fd)
{
    Call *c = NULL;
    unsigned i;

    if (l->ping_id && msg->hdr.id == l->ping_id &&
        msg->hdr.type == MXP_PONG) {
        if (msg->u.ping != l->ping_cookie) {
            link_fail(l, MXP_E_PROTOCOL, MXP_PONG,
                      "PONG that answers no PING of ours");
            return;
        }
        l->ping_id = 0;
        l->next_ping = l->ping_sent + l->opt.heartbeat_ms;
        return;
    }

    for (i = 0; i < MX_MAX_CALLS; i++) {
        if (l->calls[i].used && !l->calls[i].done &&
            l->calls[i].id == msg->hdr.id) {
            c = &l->calls[i];
            break;
        }
    }
    if (!c || !reply_type_ok(c->type, msg->hdr.type)) {
        link_fail(l, MXP_E_PROTOCOL, msg->hdr.type,
                  "unexpected %s for request %llu",
                  mxp_type_name(msg->hdr.type),
                  (unsigned long long)msg->hdr.id);
        return;
    }
    switch (msg->hdr.type) {
    case MXP_ERROR:
        if (msg->u.error.request_type != c->type) {
            link_fail(l, MXP_E_PROTOCOL, MXP_ERROR,
                      "ERROR for a %s names request type %u",
                      mxp_type_name(c->type), msg->u.error.request_type);
            return;
        }
        if (c->type == MXP_MAP && msg->u.error.code != MXP_E_UNSUPPORTED &&
            msg->u.error.code != MXP_E_BUSY &&
            msg->u.error.code != MXP_E_INTERNAL) {
            link_fail(l, MXP_E_PROTOCOL, MXP_ERROR,
                      "ERROR %u (%s) is no valid reply to MAP",
                      msg->u.error.code, mxp_err_str(msg->u.error.code));
            return;
        }
        c->err = msg->u.error.code;
        if (c->type == MXP_READ) {
            memset(c->data, 0xff, c->size);
        }
        break;
    case MXP_READ_REPLY:
        if (msg->u.access.addr != c->addr || msg->u.access.size != c->size) {
            link_fail(l, MXP_E_PROTOCOL, MXP_READ_REPLY,
                      "READ_REPLY for 0x%llx+%u answers 0x%llx+%u",
                      (unsigned long long)c->addr, c->size,
                      (unsigned long long)msg->u.access.addr,
                      msg->u.access.size);
            return;
        }
        memcpy(c->data, msg->u.access.data, c->size);
        break;
    case MXP_PONG:
        if (msg->u.ping != c->cookie) {
            link_fail(l, MXP_E_PROTOCOL, MXP_PONG,
                      "PONG that answers no PING of ours");
            return;
        }
        break;
    case MXP_MAP_REPLY:
        c->map = msg->u.map_reply;
        c->fd = *fd;
        *fd = -1;
        c->inval_gen = l->inval_gen;
        break;
    default:
        break;
    }
    c->done = true;
}

/* ---- exporter: serving the peer ---- */

static Export *find_export(mx_link *l, uint64_t addr, uint64_t size)
{
    unsigned i;

    for (i = 0; i < l->nr_exports; i++) {
        Export *e = &l->exports[i];

        if (addr >= e->addr && size <= e->size &&
            addr - e->addr <= e->size - size) {
            return e;
        }
    }
    return NULL;
}

static bool any_exported(mx_link *l, uint64_t start, uint64_t end)
{
    unsigned i;

    for (i = 0; i < l->nr_exports; i++) {
        const Export *e = &l->exports[i];

        if (start <= e->addr + (e->size - 1) && e->addr <= end) {
            return true;
        }
    }
    return false;
}

static bool size_ok(mx_link *l, uint32_t size)
{
    if (size > l->max_data) {
        return false;
    }
    return size == 1 || size == 2 || size == 4 || size == 8 ||
           (l->features & MXP_FEAT_BULK);
}

/*
 * A file export's bytes: read and written with pread/pwrite, never
 * mapped, so a file that shrinks under us costs zeros, not SIGBUS.
 * Bytes beyond the end of the file read as zeros.
 */
static uint32_t file_access(const Export *e, uint64_t off, uint8_t *data,
                            uint32_t size, bool write)
{
    off_t pos = (off_t)(e->file_offset + off);
    uint32_t done = 0;
    ssize_t n;

    while (done < size) {
        n = write ? pwrite(e->file_fd, data + done, size - done, pos + done)
                  : pread(e->file_fd, data + done, size - done, pos + done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return MXP_E_ACCESS;
        }
        if (n == 0) {
            if (write) {
                return MXP_E_ACCESS;
            }
            memset(data + done, 0, size - done);
            break;
        }
        done += n;
    }
    return 0;
}

static void serve_access(mx_link *l, const MxpMsg *req)
{
    const MxpAccess *a = &req->u.access;
    bool write = req->hdr.type == MXP_WRITE;
    uint8_t data[MXP_MAX_DATA];
    Export *e = find_export(l, a->addr, a->size);
    uint32_t code = 0;

    if (!size_ok(l, a->size)) {
        code = MXP_E_UNSUPPORTED;
    } else if (!e) {
        code = MXP_E_DENIED;
    } else if (write && !(e->perm & 2)) {
        code = MXP_E_READ_ONLY;
    } else if (e->host) {
        uint8_t *p = (uint8_t *)e->host + (a->addr - e->addr);

        if (write) {
            memcpy(p, a->data, a->size);
        } else {
            memcpy(data, p, a->size);
        }
    } else if (e->file_fd >= 0) {
        code = file_access(e, a->addr - e->addr, write ? (uint8_t *)a->data :
                           data, a->size, write);
    } else {
        if (write) {
            memcpy(data, a->data, a->size);
        }
        code = e->fn(e->opaque, a->addr - e->addr, data, a->size, write);
        if (code > MXP_E_MAX) {
            code = MXP_E_INTERNAL;
        }
    }
    if (code) {
        l->stats.refused++;
        send_error(l, req->hdr.id, code, req->hdr.type, a->addr);
        return;
    }
    if (write) {
        l->stats.served_writes++;
        send_simple(l, MXP_ACK, req->hdr.id);
    } else {
        MxpMsg rep = {
            .hdr = { .type = MXP_READ_REPLY, .id = req->hdr.id },
            .u.access = { .addr = a->addr, .size = a->size, .data = data },
        };

        l->stats.served_reads++;
        send_msg(l, &rep, -1);
    }
}

/* The granule-aligned span of @e that can go out as its descriptor. */
static bool fd_span(mx_link *l, const Export *e, uint64_t *start,
                    uint64_t *end)
{
    uint64_t g = l->granule;
    uint64_t last = e->addr + (e->size - 1);

    if (e->grant_fd < 0 || e->addr > UINT64_MAX - (g - 1)) {
        return false;
    }
    *start = (e->addr + (g - 1)) & ~(g - 1);
    *end = ((last + 1) & ~(g - 1)) - 1;
    return *end >= *start && *end - *start >= g - 1;
}

static uint64_t range_length(uint64_t start, uint64_t end)
{
    return (start == 0 && end == UINT64_MAX) ? UINT64_MAX : end - start + 1;
}

static void reply_map(mx_link *l, uint64_t id, uint8_t kind, uint8_t perm,
                      uint8_t reason, uint64_t start, uint64_t end,
                      uint64_t fd_offset, int fd)
{
    MxpMsg rep = {
        .hdr = { .type = MXP_MAP_REPLY, .id = id },
        .u.map_reply = {
            .kind = kind, .perm = perm,
            .reason = l->peer.version_minor >= 1 ? reason : 0,
            .addr = start, .length = range_length(start, end),
            .fd_offset = fd_offset,
        },
    };

    l->stats.maps_served++;
    if (fd >= 0) {
        l->stats.fds_sent++;
    }
    send_msg(l, &rep, fd);
}

/*
 * MAP: describe the uniform granule-aligned range around the address:
 * a buffer export's memfd (FD), something to forward (FORWARD, up to
 * the next granule that could go out as a descriptor) or nothing
 * exported (DENIED, up to the granule of the next exported byte).
 */
static void serve_map(mx_link *l, const MxpMsg *req)
{
    uint64_t addr = req->u.map.addr;
    uint64_t g = l->granule;
    uint64_t a = addr & ~(g - 1);
    uint64_t next = 0, s, e_end;
    const Export *e, *in;
    uint8_t reason;
    unsigned i;

    if (!(l->features & MXP_FEAT_MAP)) {
        l->stats.refused++;
        send_error(l, req->hdr.id, MXP_E_UNSUPPORTED, MXP_MAP, addr);
        return;
    }
    if (!any_exported(l, a, a + (g - 1))) {
        for (i = 0; i < l->nr_exports; i++) {
            uint64_t x = l->exports[i].addr;

            if (x > a && (!next || x < next)) {
                next = x;
            }
        }
        reply_map(l, req->hdr.id, MXP_MAP_DENIED, 0, 0, a,
                  next ? (next & ~(g - 1)) - 1 : UINT64_MAX, 0, -1);
        return;
    }
    e = find_export(l, a, g);
    if (e && fd_span(l, e, &s, &e_end)) {
        reply_map(l, req->hdr.id, MXP_MAP_FD, e->perm, 0, s, e_end,
                  s - e->addr, e->grant_fd);
        return;
    }
    if (!e) {
        reason = MXP_FWD_PARTIAL;
    } else if (e->fn) {
        reason = MXP_FWD_NOT_RAM;
    } else if (e->file_fd >= 0) {
        reason = MXP_FWD_UNSEALED;      /* a file can shrink under the peer */
    } else {
        reason = MXP_FWD_READ_ONLY;     /* could not seal it read-only */
    }
    for (i = 0; i < l->nr_exports; i++) {
        if (fd_span(l, &l->exports[i], &s, &e_end) && s > a &&
            (!next || s < next)) {
            next = s;
        }
    }
    in = find_export(l, addr, 1);
    reply_map(l, req->hdr.id, MXP_MAP_FORWARD, in ? in->perm : 0, reason, a,
              next ? next - 1 : UINT64_MAX, 0, -1);
}

/* ---- receiving ---- */

static bool is_request(uint16_t type)
{
    switch (type) {
    case MXP_READ:
    case MXP_WRITE:
    case MXP_MAP:
    case MXP_INVALIDATE:
    case MXP_BOOT:
    case MXP_RESET:
    case MXP_HALT:
    case MXP_PING:
        return true;
    default:
        return false;
    }
}

static void handle_hello(mx_link *l, const MxpHello *h)
{
    l->peer = *h;
    l->features = h->features & l->opt.features &
                  (MXP_FEAT_MAP | MXP_FEAT_BULK | MXP_FEAT_BOOT |
                   MXP_FEAT_DB_RING |
                   (l->opt.heartbeat_ms ? MXP_FEAT_HEARTBEAT : 0));
    l->next_ping = now_ms() + l->opt.heartbeat_ms;
    l->max_data = h->max_data < MXP_MAX_DATA ? h->max_data : MXP_MAX_DATA;
    l->granule = h->page_size > l->page_size ? h->page_size : l->page_size;
    l->tx_credits = h->queue_depth;
    memset(&l->info, 0, sizeof(l->info));
    memcpy(l->info.name, h->name, sizeof(l->info.name) - 1);
    l->info.version_minor = h->version_minor;
    l->info.features = h->features;
    l->info.negotiated = l->features;
    l->info.page_size = h->page_size;
    l->info.role = h->role;
    l->info.vectors = h->vectors;
    l->info.queue_depth = h->queue_depth;
    l->info.max_data = l->max_data;
    if (!ring_mode(l)) {
        l->state = ST_UP;
        return;
    }
    /* Up once the peer's ring and eventfds are in, within the timeout. */
    l->state = ST_RING;
    l->ring_deadline = now_ms() + l->opt.timeout_ms;
    if (!ring_offer(l, l->opt.vectors ? l->opt.queue_depth : 0)) {
        link_down(l, "cannot make the doorbell ring: %s", strerror(errno));
        return;
    }
    ring_check_up(l);
}

static void queue_doorbell(mx_link *l, unsigned vector, const void *data,
                           size_t size)
{
    mx_doorbell *slot;

    l->stats.doorbells_received++;
    if (l->opt.on_doorbell) {
        l->opt.on_doorbell(l->opt.opaque, vector, data, size);
    }
    slot = &l->rxq[(l->rx_head + l->rx_count) % l->rx_cap];
    slot->vector = vector;
    slot->len = size;
    memcpy(slot->data, data, size);
    l->rx_count++;
}

static void handle_doorbell(mx_link *l, const MxpDoorbell *db)
{
    if (db->vector >= l->opt.vectors) {
        link_fail(l, MXP_E_BAD_VECTOR, MXP_DOORBELL,
                  "doorbell for vector %u, we have %u", db->vector,
                  l->opt.vectors);
        return;
    }
    if (l->rx_count >= l->opt.queue_depth) {
        link_fail(l, MXP_E_BUSY, MXP_DOORBELL, "doorbell without credit");
        return;
    }
    queue_doorbell(l, db->vector, db->data, db->size);
}

/* Doorbells travel by messages or by the rings, never by both. */
static bool doorbell_transport_ok(mx_link *l, uint16_t type)
{
    switch (type) {
    case MXP_DOORBELL:
    case MXP_CREDIT:
        return !ring_mode(l);
    case MXP_DB_RING:
    case MXP_DB_EVENT:
    case MXP_DB_SPACE:
        return ring_mode(l);
    default:
        return true;
    }
}

static void handle_msg(mx_link *l, const MxpMsg *msg, int fd)
{
    uint16_t type = msg->hdr.type;

    if (l->state != ST_UP && type != MXP_HELLO &&
        !(l->state == ST_RING && (type == MXP_DB_RING ||
                                  type == MXP_DB_EVENT))) {
        link_fail(l, MXP_E_PROTOCOL, type, "%s before the handshake is"
                  " complete", mxp_type_name(type));
        goto out;
    }
    if (l->state != ST_HELLO && !doorbell_transport_ok(l, type)) {
        link_fail(l, MXP_E_PROTOCOL, type, "%s without the doorbell"
                  " transport it belongs to", mxp_type_name(type));
        goto out;
    }
    if (is_request(type) && msg->hdr.id == 0) {
        link_fail(l, MXP_E_PROTOCOL, type, "%s without a request id",
                  mxp_type_name(type));
        goto out;
    }
    if (!is_request(type) && !mxp_type_is_reply(type) && msg->hdr.id) {
        link_fail(l, MXP_E_PROTOCOL, type, "%s with a request id",
                  mxp_type_name(type));
        goto out;
    }
    switch (type) {
    case MXP_HELLO:
        if (l->state != ST_HELLO) {
            link_fail(l, MXP_E_PROTOCOL, type, "second HELLO");
        } else {
            handle_hello(l, &msg->u.hello);
        }
        break;
    case MXP_BYE:
        link_down(l, "the peer closed the link (%s)",
                  mxp_err_str(msg->u.error.code));
        break;
    case MXP_ERROR:
        if (msg->hdr.id == 0) {
            link_down(l, "the peer reported an error: %s (after %s)",
                      mxp_err_str(msg->u.error.code),
                      mxp_type_name(msg->u.error.request_type));
            break;
        }
        /* fall through */
    case MXP_READ_REPLY:
    case MXP_ACK:
    case MXP_MAP_REPLY:
    case MXP_PONG:
        handle_reply(l, msg, &fd);
        break;
    case MXP_INVALIDATE_ACK:
        /* We never invalidate: our exports do not change under the peer. */
        link_fail(l, MXP_E_PROTOCOL, type, "INVALIDATE_ACK for request %llu"
                  " we never sent", (unsigned long long)msg->hdr.id);
        break;
    case MXP_PING: {
        MxpMsg pong = {
            .hdr = { .type = MXP_PONG, .id = msg->hdr.id },
            .u.ping = msg->u.ping,
        };

        send_msg(l, &pong, -1);
        break;
    }
    case MXP_READ:
    case MXP_WRITE:
        serve_access(l, msg);
        break;
    case MXP_MAP:
        serve_map(l, msg);
        break;
    case MXP_INVALIDATE:
        if (!(l->features & MXP_FEAT_MAP)) {
            link_fail(l, MXP_E_PROTOCOL, type, "INVALIDATE without feature"
                      " MAP");
            break;
        }
        /* Mappings are gone before the ACK: the exporter waits for it. */
        if (!zap_range(l, msg->u.range.addr, msg->u.range.length)) {
            link_down(l, "a peer mapping could not be revoked: %s",
                      strerror(errno));
            break;
        }
        if (l->opt.on_invalidate) {
            l->opt.on_invalidate(l->opt.opaque, msg->u.range.addr,
                                 msg->u.range.length);
        }
        l->stats.invalidations++;
        send_simple(l, MXP_INVALIDATE_ACK, msg->hdr.id);
        break;
    case MXP_DOORBELL:
        handle_doorbell(l, &msg->u.doorbell);
        break;
    case MXP_CREDIT:
        if (l->tx_credits + msg->u.credits > l->peer.queue_depth) {
            link_fail(l, MXP_E_PROTOCOL, type, "more credits than queue"
                      " slots");
            break;
        }
        l->tx_credits += msg->u.credits;
        break;
    case MXP_BOOT:
    case MXP_RESET:
    case MXP_HALT:
        l->stats.refused++;
        send_error(l, msg->hdr.id, (l->features & MXP_FEAT_BOOT) ?
                   MXP_E_NOT_BOOT_TARGET : MXP_E_UNSUPPORTED, type,
                   type == MXP_BOOT ? msg->u.boot.entry : 0);
        break;
    case MXP_STATE:
        if (!(l->features & MXP_FEAT_BOOT) ||
            l->peer.role != MXP_ROLE_BOOT_TARGET ||
            msg->u.state == MXP_BOOT_NONE) {
            link_fail(l, MXP_E_PROTOCOL, type, "STATE %u from a peer that"
                      " may not send it", msg->u.state);
            break;
        }
        l->boot_state = msg->u.state;
        break;
    case MXP_DB_RING:
        handle_db_ring(l, msg->u.ring_depth, fd);
        break;
    case MXP_DB_EVENT:
        handle_db_event(l, msg->u.event_vector, &fd);
        break;
    default:
        /* DB_SPACE: mx_ring() looks at the consumer index again. */
        break;
    }
out:
    if (fd >= 0) {
        close(fd);
    }
}

static size_t rx_wanted(mx_link *l)
{
    MxpHeader hdr;

    if (l->rxlen < MXP_HEADER_SIZE) {
        return MXP_HEADER_SIZE - l->rxlen;
    }
    mxp_decode_header(l->rxbuf, l->rxlen, &hdr);
    return MXP_HEADER_SIZE + hdr.length - l->rxlen;
}

/*
 * Take the descriptors that came with a read.  They must come with the
 * first byte of a message: anything else is a protocol error.
 */
static bool rx_fds(mx_link *l, struct msghdr *mh, bool at_start)
{
    struct cmsghdr *c;
    bool ok = !(mh->msg_flags & MSG_CTRUNC);

    for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        int n, i;

        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (i = 0; i < n; i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (at_start && l->rxfd < 0) {
                l->rxfd = fd;
            } else {
                close(fd);
                ok = false;
            }
        }
    }
    if (!ok) {
        link_fail(l, MXP_E_PROTOCOL, 0, "file descriptor outside a message"
                  " header");
    }
    return ok;
}

/* Read and handle what the peer sent, up to the point we would block. */
static void do_read(mx_link *l)
{
    while (l->state != ST_DOWN && l->txbytes < MX_TX_LIMIT) {
        union {
            char buf[CMSG_SPACE(sizeof(int) * 4)];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = { l->rxbuf + l->rxlen, rx_wanted(l) };
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
        };
        bool at_start = l->rxlen == 0;
        MxpHeader hdr;
        MxpMsg msg;
        ssize_t n;
        int ret, fd;

        /* Never across a message boundary: fds belong to one header. */
        n = recvmsg(l->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }
            link_down(l, "cannot read from the peer: %s", strerror(errno));
            return;
        }
        if (!rx_fds(l, &mh, at_start)) {
            return;
        }
        if (n == 0) {
            link_down(l, l->rxlen ? "the peer closed the connection in the"
                      " middle of a message" : "the peer closed the"
                      " connection");
            return;
        }
        if (at_start) {
            l->rx_started = now_ms();
        }
        l->rxlen += n;
        if (l->rxlen < MXP_HEADER_SIZE) {
            continue;
        }
        if (l->rxlen == MXP_HEADER_SIZE) {
            ret = mxp_decode_header(l->rxbuf, l->rxlen, &hdr);
            if (ret != MXP_OK) {
                link_fail(l, MXP_E_PROTOCOL, 0, "bad header: %s",
                          mxp_status_str(ret));
                return;
            }
        }
        if (rx_wanted(l) > 0) {
            continue;
        }
        ret = mxp_decode(l->rxbuf, l->rxlen, l->rxfd >= 0, &msg);
        l->rxlen = 0;
        l->last_rx = now_ms();
        fd = l->rxfd;
        l->rxfd = -1;
        if (ret == MXP_ERR_VERSION) {
            if (fd >= 0) {
                close(fd);
            }
            send_error(l, 0, MXP_E_VERSION, MXP_HELLO, 0);
            send_bye(l, MXP_E_VERSION);
            link_down(l, "the peer speaks protocol version %u, we speak %u",
                      msg.u.hello.version_major, MXP_VERSION_MAJOR);
            return;
        }
        if (ret != MXP_OK) {
            if (fd >= 0) {
                close(fd);
            }
            link_fail(l, MXP_E_PROTOCOL, msg.hdr.type, "bad %s: %s",
                      mxp_type_name(msg.hdr.type), mxp_status_str(ret));
            return;
        }
        handle_msg(l, &msg, fd);
    }
}

/*
 * With heartbeat_ms: keep one PING outstanding, the next one an interval
 * after the last PONG; with or without feature HEARTBEAT, as the spec
 * allows.  Returns the milliseconds until the next one is due.
 */
static int64_t heartbeat(mx_link *l, int64_t t)
{
    MxpMsg ping = { .hdr = { .type = MXP_PING } };

    if (l->state != ST_UP || !l->opt.heartbeat_ms) {
        return -1;
    }
    if (l->ping_id) {
        int64_t left = l->ping_sent + 3 * (int64_t)l->opt.heartbeat_ms - t;

        return left > 0 ? left : 0;
    }
    if (t < l->next_ping) {
        return l->next_ping - t;
    }
    l->ping_id = ++l->next_id;
    l->ping_cookie = (uint64_t)t * 2654435761u ^ l->ping_id;
    l->ping_sent = t;
    ping.hdr.id = l->ping_id;
    ping.u.ping = l->ping_cookie;
    send_msg(l, &ping, -1);
    return 3 * (int64_t)l->opt.heartbeat_ms;
}

static void check_liveness(mx_link *l)
{
    int64_t t = now_ms();
    int64_t hb = 3 * (int64_t)l->opt.heartbeat_ms;

    if (l->state == ST_DOWN) {
        return;
    }
    if (l->rxlen && t - l->rx_started > (int64_t)l->opt.timeout_ms) {
        send_bye(l, MXP_E_TIMEOUT);
        link_down(l, "the peer left a message unfinished");
    } else if (l->state == ST_UP && l->ping_id && t - l->ping_sent > hb) {
        send_bye(l, MXP_E_TIMEOUT);
        link_down(l, "the peer did not answer PING");
    } else if (l->state == ST_UP && (l->features & MXP_FEAT_HEARTBEAT) &&
               hb && t - l->last_rx > hb) {
        send_bye(l, MXP_E_TIMEOUT);
        link_down(l, "no heartbeat from the peer");
    } else if (l->state == ST_HELLO && t > l->hello_deadline) {
        send_bye(l, MXP_E_TIMEOUT);
        link_down(l, "the peer sent no HELLO");
    } else if (l->state == ST_RING && t > l->ring_deadline) {
        send_bye(l, MXP_E_TIMEOUT);
        link_down(l, "the peer did not hand over its doorbell ring");
    }
}

static void poll_once(mx_link *l, int timeout_ms)
{
    struct pollfd p[2];
    int64_t due;

    if (l->state == ST_DOWN) {
        return;
    }
    /* A blocking wait still keeps the link alive. */
    due = heartbeat(l, now_ms());
    if (due >= 0 && (timeout_ms < 0 || due < timeout_ms)) {
        timeout_ms = (int)due + 1;
    }
    flush(l);
    ring_drain(l);
    if (l->state == ST_DOWN) {
        return;
    }
    p[0].fd = l->fd;
    p[0].events = (l->txbytes < MX_TX_LIMIT ? POLLIN : 0) |
                  (l->txhead ? POLLOUT : 0);
    p[0].revents = 0;
    p[1].fd = l->rx_event;
    p[1].events = POLLIN;
    p[1].revents = 0;
    if (poll(p, 2, timeout_ms) > 0) {
        if (p[0].revents & POLLOUT) {
            flush(l);
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            do_read(l);
        }
        if (p[1].revents & POLLIN) {
            event_clear(l->rx_event);
        }
        ring_drain(l);
    }
    check_liveness(l);
}

/* ---- public: setting up ---- */

MX_EXPORT void mx_options_init(mx_options *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->name = "memexpose-host";
    opt->features = MX_FEAT_MAP | MX_FEAT_BULK | MX_FEAT_BOOT |
                    MX_FEAT_HEARTBEAT;
    opt->vectors = 4;
    opt->queue_depth = 32;
    opt->timeout_ms = 1000;
    opt->heartbeat_ms = 1000;
}

static bool name_ok(const char *name)
{
    size_t n = strlen(name), i;

    if (n > MX_NAME_MAX) {
        return false;
    }
    for (i = 0; i < n; i++) {
        if (name[i] < 0x20 || name[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

MX_EXPORT mx_link *mx_link_new(const mx_options *opt)
{
    mx_options def;
    mx_link *l;

    if (!opt) {
        mx_options_init(&def);
        opt = &def;
    }
    if (opt->vectors > MXP_MAX_VECTORS ||
        opt->queue_depth > MXP_MAX_QUEUE_DEPTH ||
        opt->timeout_ms == 0 || opt->timeout_ms > 600000 ||
        opt->heartbeat_ms > 600000 ||
        !name_ok(opt->name ? opt->name : "")) {
        errno = EINVAL;
        return NULL;
    }
    l = calloc(1, sizeof(*l));
    if (!l) {
        return NULL;
    }
    l->opt = *opt;
    snprintf(l->name, sizeof(l->name), "%s", opt->name ? opt->name : "");
    l->opt.name = l->name;
    l->fd = -1;
    l->rxfd = -1;
    l->rx_memfd = -1;
    l->rx_event = -1;
    l->state = ST_NEW;
    l->page_size = (uint32_t)sysconf(_SC_PAGESIZE);
    l->granule = l->page_size;
    l->rx_cap = opt->queue_depth ? opt->queue_depth : 1;
    l->rxq = calloc(l->rx_cap, sizeof(*l->rxq));
    if (!l->rxq) {
        free(l);
        return NULL;
    }
    return l;
}

/* Reset what belongs to one link, keeping exports and options. */
static void link_reset(mx_link *l)
{
    unsigned i;

    for (i = 0; i < MX_MAX_CALLS; i++) {
        if (l->calls[i].used) {
            call_release(&l->calls[i]);
        }
    }
    l->rxlen = 0;
    l->rx_head = 0;
    l->rx_count = 0;
    l->error[0] = '\0';
    memset(&l->info, 0, sizeof(l->info));
    memset(&l->peer, 0, sizeof(l->peer));
    l->features = 0;
    l->boot_state = MX_BOOT_NONE;
    l->ping_id = 0;
    l->last_rx = now_ms();
}

MX_EXPORT int mx_attach(mx_link *l, int fd)
{
    int64_t deadline;
    MxpMsg hello = {
        .hdr = { .type = MXP_HELLO },
        .u.hello = {
            .magic = MXP_MAGIC,
            .version_major = MXP_VERSION_MAJOR,
            .version_minor = MXP_VERSION_MINOR,
            .role = MXP_ROLE_TOOL,
            .max_data = MXP_MAX_DATA,
        },
    };

    if (l->state == ST_UP || l->state == ST_HELLO || l->state == ST_RING) {
        return MX_ERR_INVAL;
    }
    link_reset(l);
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
        set_error(l, "cannot use the socket: %s", strerror(errno));
        close(fd);
        l->state = ST_DOWN;
        return MX_ERR_SYS;
    }
    l->fd = fd;
    l->state = ST_HELLO;
    hello.u.hello.features = l->opt.features &
                             (MXP_FEAT_MAP | MXP_FEAT_BULK | MXP_FEAT_BOOT |
                              MXP_FEAT_DB_RING |
                              (l->opt.heartbeat_ms ? MXP_FEAT_HEARTBEAT : 0));
    hello.u.hello.page_size = l->page_size;
    hello.u.hello.vectors = l->opt.vectors;
    hello.u.hello.queue_depth = l->opt.vectors ? l->opt.queue_depth : 0;
    snprintf(hello.u.hello.name, sizeof(hello.u.hello.name), "%s", l->name);
    send_msg(l, &hello, -1);

    deadline = now_ms() + l->opt.timeout_ms;
    l->hello_deadline = deadline;
    while (l->state == ST_HELLO || l->state == ST_RING) {
        poll_once(l, (int)(deadline - now_ms() > 0 ? deadline - now_ms()
                                                   : 0));
    }
    return l->state == ST_UP ? 0 : MX_ERR_LINK;
}

MX_EXPORT int mx_connect(mx_link *l, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int64_t deadline = now_ms() + l->opt.timeout_ms;
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        set_error(l, "socket path too long: %s", path);
        return MX_ERR_INVAL;
    }
    strcpy(sa.sun_path, path);
    for (;;) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            set_error(l, "socket: %s", strerror(errno));
            return MX_ERR_SYS;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            break;
        }
        set_error(l, "cannot connect to %s: %s", path, strerror(errno));
        close(fd);
        if ((errno != ENOENT && errno != ECONNREFUSED && errno != EAGAIN) ||
            now_ms() >= deadline) {
            l->state = ST_DOWN;
            return MX_ERR_LINK;
        }
        usleep(20000);
    }
    return mx_attach(l, fd);
}

MX_EXPORT int mx_listen(mx_link *l, const char *path, int timeout_ms)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct pollfd p;
    struct stat st;
    int lfd, fd, ret;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        set_error(l, "socket path too long: %s", path);
        return MX_ERR_INVAL;
    }
    strcpy(sa.sun_path, path);
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(lfd, 1) < 0) {
        set_error(l, "cannot listen on %s: %s", path, strerror(errno));
        if (lfd >= 0) {
            close(lfd);
        }
        return MX_ERR_SYS;
    }
    p.fd = lfd;
    p.events = POLLIN;
    ret = poll(&p, 1, timeout_ms);
    if (ret <= 0) {
        set_error(l, "nobody connected to %s in time", path);
        close(lfd);
        return ret == 0 ? MX_ERR_TIMEOUT : MX_ERR_SYS;
    }
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    close(lfd);
    if (fd < 0) {
        set_error(l, "accept on %s: %s", path, strerror(errno));
        return MX_ERR_SYS;
    }
    return mx_attach(l, fd);
}

MX_EXPORT void mx_disconnect(mx_link *l)
{
    if (l->state == ST_UP) {
        int64_t deadline = now_ms() + 100;

        send_bye(l, MXP_E_SHUTDOWN);
        /* Best effort: a peer that does not read gets no BYE. */
        while (l->txhead && l->state != ST_DOWN && now_ms() < deadline) {
            struct pollfd p = { .fd = l->fd, .events = POLLOUT };

            poll(&p, 1, 10);
            flush(l);
        }
    }
    link_down(l, "closed by us");
}

MX_EXPORT void mx_close(mx_link *l)
{
    unsigned i;

    if (!l) {
        return;
    }
    l->opt.on_invalidate = NULL;
    mx_disconnect(l);
    link_reset(l);
    while (l->maps) {
        Mapping *m = l->maps;

        l->maps = m->next;
        munmap(m->host, m->len);
        free(m);
    }
    for (i = 0; i < l->nr_exports; i++) {
        Export *e = &l->exports[i];

        if (e->host) {
            munmap(e->host, e->size);
        }
        if (e->fd >= 0) {
            close(e->fd);
        }
        if (e->grant_fd >= 0 && e->grant_fd != e->fd) {
            close(e->grant_fd);
        }
        if (e->file_fd >= 0) {
            close(e->file_fd);
        }
    }
    free(l->exports);
    free(l->rxq);
    free(l);
}

MX_EXPORT const char *mx_link_error(const mx_link *l)
{
    return l->error;
}

MX_EXPORT bool mx_link_up(const mx_link *l)
{
    return l->state == ST_UP;
}

MX_EXPORT const mx_peer_info *mx_peer(const mx_link *l)
{
    return l->info.page_size ? &l->info : NULL;
}

MX_EXPORT const mx_stats *mx_get_stats(const mx_link *l)
{
    return &l->stats;
}

MX_EXPORT const char *mx_strerror(int result)
{
    switch (result) {
    case 0:
        return "success";
    case MX_ERR_LINK:
        return "link down";
    case MX_ERR_TIMEOUT:
        return "timed out";
    case MX_ERR_INVAL:
        return "invalid argument";
    case MX_ERR_NOMEM:
        return "out of memory";
    case MX_ERR_SYS:
        return "system error";
    case MX_ERR_AGAIN:
        return "not now (no credit or nothing queued)";
    default:
        return result > 0 ? mxp_err_str(result) : "unknown error";
    }
}

MX_EXPORT const char *mx_reason_str(unsigned reason)
{
    return mxp_forward_reason_str(reason);
}

MX_EXPORT int mx_fd(const mx_link *l)
{
    return l->fd;
}

MX_EXPORT int mx_event_fd(const mx_link *l)
{
    return l->state == ST_UP ? l->rx_event : -1;
}

MX_EXPORT bool mx_want_write(const mx_link *l)
{
    return l->txhead != NULL;
}

MX_EXPORT int mx_dispatch(mx_link *l, int timeout_ms)
{
    if (l->state != ST_UP) {
        return MX_ERR_LINK;
    }
    poll_once(l, timeout_ms);
    return l->state == ST_UP ? 0 : MX_ERR_LINK;
}

/* ---- public: importer ---- */

static Mapping *find_mapping(mx_link *l, uint64_t addr, uint64_t len,
                             unsigned perm)
{
    Mapping *m;

    for (m = l->maps; m; m = m->next) {
        if (!m->zapped && (m->perm & perm) == perm && addr >= m->addr &&
            len <= m->len && addr - m->addr <= m->len - len) {
            return m;
        }
    }
    return NULL;
}

/* Bytes from @addr to the start of the next usable mapping above it. */
static uint64_t until_mapping(mx_link *l, uint64_t addr, uint64_t max,
                              unsigned perm)
{
    Mapping *m;

    for (m = l->maps; m; m = m->next) {
        if (!m->zapped && (m->perm & perm) == perm && m->addr > addr &&
            m->addr - addr < max) {
            max = m->addr - addr;
        }
    }
    return max;
}

MX_EXPORT void *mx_lookup(mx_link *l, uint64_t addr, uint64_t len,
                          unsigned perm)
{
    Mapping *m = find_mapping(l, addr, len ? len : 1, perm);

    return m ? (uint8_t *)m->host + (addr - m->addr) : NULL;
}

/* Size of the next forwarded piece at @addr: the protocol's rules. */
static uint32_t piece_size(mx_link *l, uint64_t addr, uint64_t left)
{
    uint32_t n;

    if (left == 1 || left == 2 || left == 4 || left == 8) {
        return left;
    }
    if (l->features & MXP_FEAT_BULK) {
        return left < l->max_data ? left : l->max_data;
    }
    /* Without BULK: the widest naturally aligned access that fits. */
    for (n = 8; n > 1; n /= 2) {
        if (left >= n && !(addr & (n - 1))) {
            break;
        }
    }
    return n;
}

static int do_access(mx_link *l, uint64_t addr, uint8_t *buf, size_t len,
                  bool write)
{
    unsigned perm = write ? MX_PERM_RW : MX_PERM_READ;
    Call *pipe[MX_PIPELINE];
    unsigned head = 0, count = 0;
    size_t done = 0;
    int result = 0;

    if (len == 0) {
        return 0;
    }
    if (addr + (len - 1) < addr) {
        set_error(l, "range wraps past 2^64");
        return MX_ERR_INVAL;
    }
    if (l->state != ST_UP) {
        if (!write) {
            memset(buf, 0xff, len);
        }
        return MX_ERR_LINK;
    }
    while (done < len || count) {
        if (done < len && count < MX_PIPELINE && l->state == ST_UP) {
            uint64_t a = addr + done;
            Mapping *m = find_mapping(l, a, 1, perm);

            if (m) {
                uint64_t n = m->len - (a - m->addr);
                uint8_t *h = (uint8_t *)m->host + (a - m->addr);

                n = n < len - done ? n : len - done;
                if (write) {
                    memcpy(h, buf + done, n);
                } else {
                    memcpy(buf + done, h, n);
                }
                done += n;
            } else {
                uint64_t left = until_mapping(l, a, len - done, perm);
                uint32_t n = piece_size(l, a, left);
                MxpMsg req = {
                    .hdr = { .type = write ? MXP_WRITE : MXP_READ },
                    .u.access = { .addr = a, .size = n,
                                  .data = write ? buf + done : NULL },
                };
                Call *c = call_start(l, &req);

                if (!c) {
                    break;
                }
                c->addr = a;
                c->size = n;
                c->data = buf + done;
                pipe[(head + count++) % MX_PIPELINE] = c;
                done += n;
            }
            continue;
        }
        if (!count) {
            break;
        }
        {
            Call *c = pipe[head];
            int ret = call_wait(l, c, l->opt.timeout_ms);

            head = (head + 1) % MX_PIPELINE;
            count--;
            if (ret != 0 && (result == 0 || ret < 0)) {
                result = ret;
            }
            if (ret < 0 && !write) {
                memset(c->data, 0xff, c->size);
            }
            call_release(c);
        }
    }
    if (done < len && result == 0) {
        result = l->state == ST_UP ? MX_ERR_INVAL : MX_ERR_LINK;
    }
    if (done < len && !write) {
        memset(buf + done, 0xff, len - done);
    }
    return result;
}

MX_EXPORT int mx_read(mx_link *l, uint64_t addr, void *buf, size_t len)
{
    return do_access(l, addr, buf, len, false);
}

MX_EXPORT int mx_write(mx_link *l, uint64_t addr, const void *buf,
                       size_t len)
{
    return do_access(l, addr, (uint8_t *)buf, len, true);
}

static bool width_ok(unsigned w)
{
    return w == 1 || w == 2 || w == 4 || w == 8;
}

MX_EXPORT int mx_read_value(mx_link *l, uint64_t addr, unsigned width,
                            uint64_t *val)
{
    uint8_t b[8];
    unsigned i;
    int ret;

    if (!width_ok(width)) {
        return MX_ERR_INVAL;
    }
    ret = do_access(l, addr, b, width, false);
    *val = 0;
    for (i = 0; i < width; i++) {
        *val |= (uint64_t)b[i] << (8 * i);
    }
    return ret;
}

MX_EXPORT int mx_write_value(mx_link *l, uint64_t addr, unsigned width,
                             uint64_t val)
{
    uint8_t b[8];
    unsigned i;

    if (!width_ok(width)) {
        return MX_ERR_INVAL;
    }
    for (i = 0; i < width; i++) {
        b[i] = (uint8_t)(val >> (8 * i));
    }
    return do_access(l, addr, b, width, true);
}

/* Whether @r answers a MAP for @addr as the spec requires. */
static const char *map_reply_invalid(mx_link *l, const MxpMapReply *r,
                                     uint64_t addr)
{
    uint64_t g = l->granule;
    uint64_t end = r->addr + (r->length - 1);
    bool to_top = end == UINT64_MAX ||
                  (r->addr == 0 && r->length == UINT64_MAX);

    if (r->addr > addr || (end < addr && !to_top)) {
        return "it does not contain the address asked for";
    }
    if (!to_top && end < (addr | (g - 1))) {
        return "it covers less than a page";
    }
    if ((r->addr & (g - 1)) || (!to_top && ((end + 1) & (g - 1)))) {
        return "it is not aligned to whole pages";
    }
    if (r->kind == MXP_MAP_FD && (r->fd_offset & (g - 1))) {
        return "its fd_offset is not aligned to whole pages";
    }
    return NULL;
}

/*
 * The device's checks before mapping a peer descriptor: a regular file
 * (memfds are) that covers the range, open for writing if the grant is,
 * and a memfd sealed against shrinking (or the peer could truncate it
 * and make us SIGBUS) unless we trust the peer.
 */
static const char *fd_unacceptable(mx_link *l, int fd, uint64_t off,
                                   uint64_t len, bool writable)
{
    struct stat st;
    int seals;

    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        return "not a regular file or memfd";
    }
    if (writable && (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDWR) {
        return "a read-write grant with a descriptor not open for writing";
    }
    if ((uint64_t)st.st_size < off || (uint64_t)st.st_size - off < len) {
        return "file smaller than the range";
    }
    if (l->opt.trust_peer) {
        return NULL;
    }
    seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0) {
        return "not a memfd (trust the peer to map other files)";
    }
    if (!(seals & F_SEAL_SHRINK)) {
        return "memfd not sealed against shrinking";
    }
    return NULL;
}

MX_EXPORT int mx_map(mx_link *l, uint64_t addr, uint64_t max_len,
                     mx_range *r)
{
    MxpMsg req = { .hdr = { .type = MXP_MAP }, .u.map.addr = addr };
    uint64_t pg = l->page_size, lo, hi, end, foff, len;
    const MxpMapReply *mr;
    const char *why;
    Mapping *m;
    Call *c;
    void *p;
    int ret;

    memset(r, 0, sizeof(*r));
    if (l->state == ST_UP && !(l->features & MXP_FEAT_MAP)) {
        return MX_E_UNSUPPORTED;
    }
    ret = call(l, &req, &c, l->opt.timeout_ms > MX_PATIENT_MS ?
               l->opt.timeout_ms : MX_PATIENT_MS);
    if (ret != 0) {
        return ret;
    }
    mr = &c->map;
    why = map_reply_invalid(l, mr, addr);
    if (why) {
        link_fail(l, MXP_E_PROTOCOL, MXP_MAP_REPLY, "bad MAP_REPLY for"
                  " 0x%llx: %s", (unsigned long long)addr, why);
        call_release(c);
        return MX_ERR_LINK;
    }
    r->addr = mr->addr;
    r->length = mr->length;
    r->kind = mr->kind;
    r->perm = mr->perm;
    r->reason = mr->reason;
    if (mr->kind != MXP_MAP_FD) {
        call_release(c);
        return 0;
    }

    /* Map the part of the range from @addr's page up to @max_len. */
    end = mr->addr + (mr->length - 1);
    lo = addr & ~(pg - 1);
    lo = lo > mr->addr ? lo : mr->addr;
    hi = end;
    if (max_len && addr + (max_len - 1) >= addr) {
        uint64_t want = addr + (max_len - 1);

        want |= pg - 1;
        hi = want < hi ? want : hi;
    }
    len = hi - lo + 1;
    foff = mr->fd_offset + (lo - mr->addr);
    if (c->inval_gen != l->inval_gen) {
        why = "invalidated before it was mapped";
    } else if (hi == UINT64_MAX || len == 0 || (lo | len | foff) & (pg - 1)) {
        why = "not page aligned";
    } else if (len > SIZE_MAX) {
        why = "too large to map";
    } else {
        why = fd_unacceptable(l, c->fd, foff, len, mr->perm & MXP_PERM_WRITE);
    }
    if (!why) {
        p = mmap(NULL, len, PROT_READ |
                 (mr->perm & MXP_PERM_WRITE ? PROT_WRITE : 0), MAP_SHARED,
                 c->fd, foff);
        m = p == MAP_FAILED ? NULL : calloc(1, sizeof(*m));
        if (p == MAP_FAILED) {
            why = "mmap failed";
        } else if (!m) {
            munmap(p, len);
            why = "out of memory";
        } else {
            m->addr = lo;
            m->len = len;
            m->host = p;
            m->perm = mr->perm;
            m->next = l->maps;
            l->maps = m;
            r->host = p;
            r->map_addr = lo;
            r->map_len = len;
        }
    }
    r->why = why;
    call_release(c);
    return 0;
}

/*
 * A request the peer's worker serves in order with everything before it
 * (not PING, which may be answered ahead): MAP, which touches nothing,
 * or without MAP a one-byte READ at the very top of the address space.
 */
MX_EXPORT int mx_barrier(mx_link *l)
{
    MxpMsg req = { .hdr = { .type = MXP_MAP }, .u.map.addr = UINT64_MAX };
    const char *why;
    uint8_t byte;
    Call *c;
    int ret;

    if (l->state != ST_UP) {
        return MX_ERR_LINK;
    }
    if (!(l->features & MXP_FEAT_MAP)) {
        ret = do_access(l, UINT64_MAX, &byte, 1, false);
        return ret > 0 ? 0 : ret;
    }
    ret = call(l, &req, &c, l->opt.timeout_ms > MX_PATIENT_MS ?
               l->opt.timeout_ms : MX_PATIENT_MS);
    if (ret != 0) {
        return ret > 0 ? 0 : ret;
    }
    why = map_reply_invalid(l, &c->map, UINT64_MAX);
    call_release(c);
    if (why) {
        link_fail(l, MXP_E_PROTOCOL, MXP_MAP_REPLY, "bad MAP_REPLY for"
                  " 0x%llx: %s", (unsigned long long)UINT64_MAX, why);
        return MX_ERR_LINK;
    }
    return 0;
}

MX_EXPORT void mx_unmap(mx_link *l, void *host)
{
    Mapping **pm, *m;

    for (pm = &l->maps; (m = *pm); pm = &m->next) {
        if ((uint8_t *)host >= (uint8_t *)m->host &&
            (uint8_t *)host < (uint8_t *)m->host + m->len) {
            *pm = m->next;
            munmap(m->host, m->len);
            free(m);
            return;
        }
    }
}

/* ---- public: exporter ---- */

static int add_export(mx_link *l, const Export *n)
{
    Export *arr;
    unsigned i;

    if (n->size == 0 || n->addr + (n->size - 1) < n->addr ||
        (n->perm != MX_PERM_READ && n->perm != MX_PERM_RW)) {
        return MX_ERR_INVAL;
    }
    for (i = 0; i < l->nr_exports; i++) {
        const Export *o = &l->exports[i];

        if (n->addr <= o->addr + (o->size - 1) &&
            o->addr <= n->addr + (n->size - 1)) {
            set_error(l, "export 0x%llx+0x%llx overlaps another",
                      (unsigned long long)n->addr,
                      (unsigned long long)n->size);
            return MX_ERR_INVAL;
        }
    }
    arr = realloc(l->exports, (l->nr_exports + 1) * sizeof(*arr));
    if (!arr) {
        return MX_ERR_NOMEM;
    }
    l->exports = arr;
    arr[l->nr_exports++] = *n;
    return 0;
}

MX_EXPORT int mx_export_buffer(mx_link *l, uint64_t addr, uint64_t size,
                               unsigned perm, void **host)
{
    Export e = { .addr = addr, .size = size, .perm = perm, .fd = -1,
                 .grant_fd = -1, .file_fd = -1 };
    int seals = F_SEAL_SHRINK | F_SEAL_GROW;
    int ret;

    if (((addr | size) & (l->page_size - 1)) || size == 0 ||
        size > SIZE_MAX) {
        set_error(l, "buffer exports must be whole pages");
        return MX_ERR_INVAL;
    }
    e.fd = memfd_create("memexpose-export", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (e.fd < 0 || ftruncate(e.fd, size) < 0) {
        set_error(l, "cannot make a memfd: %s", strerror(errno));
        goto fail;
    }
    e.host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, e.fd, 0);
    if (e.host == MAP_FAILED) {
        e.host = NULL;
        set_error(l, "cannot map the memfd: %s", strerror(errno));
        goto fail;
    }
    if (fcntl(e.fd, F_ADD_SEALS, seals) < 0) {
        set_error(l, "cannot seal the memfd: %s", strerror(errno));
        goto fail;
    }
    if (perm == MX_PERM_RW) {
        e.grant_fd = e.fd;
    } else if (fcntl(e.fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) == 0) {
        /*
         * Our own mapping stays writable; no descriptor of the file can
         * write it any more, so a read-only grant holds even if the peer
         * reopens it read-write.  The peer gets a read-only descriptor.
         */
        char path[64];

        snprintf(path, sizeof(path), "/proc/self/fd/%d", e.fd);
        e.grant_fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    /* Without a write seal a read-only buffer is forwarded. */
    fcntl(e.fd, F_ADD_SEALS, F_SEAL_SEAL);
    ret = add_export(l, &e);
    if (ret) {
        goto fail;
    }
    if (host) {
        *host = e.host;
    }
    return 0;

fail:
    if (e.host) {
        munmap(e.host, size);
    }
    if (e.grant_fd >= 0 && e.grant_fd != e.fd) {
        close(e.grant_fd);
    }
    if (e.fd >= 0) {
        close(e.fd);
    }
    return l->error[0] ? MX_ERR_SYS : MX_ERR_INVAL;
}

MX_EXPORT int mx_export_callback(mx_link *l, uint64_t addr, uint64_t size,
                                 unsigned perm, mx_access_fn fn,
                                 void *opaque)
{
    Export e = { .addr = addr, .size = size, .perm = perm, .fd = -1,
                 .grant_fd = -1, .fn = fn, .opaque = opaque, .file_fd = -1 };

    if (!fn) {
        return MX_ERR_INVAL;
    }
    return add_export(l, &e);
}

MX_EXPORT int mx_export_file(mx_link *l, uint64_t addr, uint64_t size,
                             unsigned perm, int fd, uint64_t offset)
{
    Export e = { .addr = addr, .size = size, .perm = perm, .fd = -1,
                 .grant_fd = -1, .file_offset = offset };
    int flags = fcntl(fd, F_GETFL);
    int ret;

    if (flags < 0) {
        set_error(l, "not a file descriptor: %s", strerror(errno));
        return MX_ERR_INVAL;
    }
    if (perm == MX_PERM_RW && (flags & O_ACCMODE) == O_RDONLY) {
        set_error(l, "a read-write file export needs a writable descriptor");
        return MX_ERR_INVAL;
    }
    if ((flags & O_ACCMODE) == O_WRONLY) {
        set_error(l, "a file export needs a readable descriptor");
        return MX_ERR_INVAL;
    }
    if (offset > (uint64_t)INT64_MAX || size > (uint64_t)INT64_MAX - offset) {
        set_error(l, "file export beyond the largest file offset");
        return MX_ERR_INVAL;
    }
    e.file_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (e.file_fd < 0) {
        set_error(l, "cannot duplicate the descriptor: %s", strerror(errno));
        return MX_ERR_SYS;
    }
    ret = add_export(l, &e);
    if (ret) {
        close(e.file_fd);
    }
    return ret;
}

/* ---- public: doorbells ---- */

MX_EXPORT unsigned mx_credits(const mx_link *l)
{
    uint32_t used;

    if (l->state != ST_UP) {
        return 0;
    }
    if (ring_mode(l)) {
        return tx_ring_used(l, &used) ? l->tx_ring.depth - used
                                                 : 0;
    }
    return l->tx_credits;
}

MX_EXPORT int mx_ring(mx_link *l, unsigned vector, const void *data,
                      size_t len)
{
    int64_t deadline = now_ms() + l->opt.timeout_ms;
    MxpMsg msg = { .hdr = { .type = MXP_DOORBELL } };

    if (l->state != ST_UP) {
        return MX_ERR_LINK;
    }
    if (len > MXP_MAX_DOORBELL_DATA) {
        return MX_ERR_INVAL;
    }
    if (vector >= l->peer.vectors) {
        return MX_E_BAD_VECTOR;
    }
    while (ring_mode(l)) {
        int64_t left = deadline - now_ms();
        int ret = ring_send(l, vector, data, len);

        if (ret != MX_ERR_AGAIN) {
            l->stats.doorbells_sent += ret == 0;
            return ret;
        }
        if (left <= 0) {
            set_error(l, "the peer's doorbell ring stayed full");
            return MX_ERR_AGAIN;
        }
        /* DB_SPACE, or a look at the consumer index, frees a slot. */
        poll_once(l, left < 10 ? (int)left : 10);
        if (l->state != ST_UP) {
            return MX_ERR_LINK;
        }
    }
    while (l->tx_credits == 0) {
        int64_t left = deadline - now_ms();

        if (left <= 0) {
            set_error(l, "the peer returned no doorbell credit in time");
            return MX_ERR_AGAIN;
        }
        poll_once(l, (int)left);
        if (l->state != ST_UP) {
            return MX_ERR_LINK;
        }
    }
    msg.u.doorbell.vector = vector;
    msg.u.doorbell.size = len;
    msg.u.doorbell.data = data;
    l->tx_credits--;
    send_msg(l, &msg, -1);
    l->stats.doorbells_sent++;
    return l->state == ST_UP ? 0 : MX_ERR_LINK;
}

MX_EXPORT int mx_wait_doorbell(mx_link *l, mx_doorbell *db, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    MxpMsg credit = { .hdr = { .type = MXP_CREDIT }, .u.credits = 1 };

    while (l->rx_count == 0) {
        int64_t left = deadline - now_ms();

        if (l->state != ST_UP) {
            return MX_ERR_LINK;
        }
        if (timeout_ms >= 0 && left <= 0) {
            return MX_ERR_AGAIN;
        }
        poll_once(l, timeout_ms < 0 ? -1 : (int)left);
    }
    *db = l->rxq[l->rx_head];
    l->rx_head = (l->rx_head + 1) % l->rx_cap;
    l->rx_count--;
    if (l->state == ST_UP && ring_mode(l)) {
        ring_consume(l);
    } else if (l->state == ST_UP) {
        send_msg(l, &credit, -1);
    }
    return 0;
}

/* ---- public: boot master, ping ---- */

static int boot_cmd(mx_link *l, MxpMsg *req)
{
    if (l->state != ST_UP) {
        return MX_ERR_LINK;
    }
    if (!(l->features & MXP_FEAT_BOOT)) {
        return MX_E_UNSUPPORTED;
    }
    return call(l, req, NULL, l->opt.timeout_ms > MX_PATIENT_MS ?
                l->opt.timeout_ms : MX_PATIENT_MS);
}

MX_EXPORT int mx_boot(mx_link *l, uint64_t entry, const uint64_t *args,
                      unsigned nargs)
{
    MxpMsg req = { .hdr = { .type = MXP_BOOT } };
    unsigned i;

    if (nargs > MXP_BOOT_ARGS || (nargs && !args)) {
        return MX_ERR_INVAL;
    }
    req.u.boot.entry = entry;
    req.u.boot.nargs = nargs;
    for (i = 0; i < nargs; i++) {
        req.u.boot.args[i] = args[i];
    }
    return boot_cmd(l, &req);
}

MX_EXPORT int mx_reset(mx_link *l)
{
    MxpMsg req = { .hdr = { .type = MXP_RESET } };

    return boot_cmd(l, &req);
}

MX_EXPORT int mx_halt(mx_link *l)
{
    MxpMsg req = { .hdr = { .type = MXP_HALT } };

    return boot_cmd(l, &req);
}

MX_EXPORT unsigned mx_peer_boot_state(const mx_link *l)
{
    return l->boot_state;
}

MX_EXPORT int mx_ping(mx_link *l)
{
    MxpMsg req = { .hdr = { .type = MXP_PING } };
    uint64_t cookie = (uint64_t)now_ms() ^ 0x6d656d6578706f73ULL;
    Call *c;

    req.u.ping = cookie;
    c = call_start(l, &req);
    if (!c) {
        return MX_ERR_LINK;
    }
    c->cookie = cookie;
    {
        int ret = call_wait(l, c, l->opt.timeout_ms);

        call_release(c);
        return ret;
    }
}
