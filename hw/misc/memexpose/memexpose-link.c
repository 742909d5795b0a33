/*
 * memexpose link: the socket, framing and validation of what the peer
 * sends, the handshake, our requests and their replies, liveness, and
 * taking the link down.  Everything here runs in the device's IOThread
 * except sending (any thread) and the waits of memexpose_call() (the
 * caller's thread, with the BQL dropped).
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "block/aio.h"
#include "memexpose.h"

/* Missed heartbeats after which the peer is considered gone. */
#define MX_HEARTBEAT_MISSES     3

static void mx_disconnect_bh(void *opaque)
{
    MemexposeState *s = opaque;

    qemu_chr_fe_disconnect(&s->chr);
}

/*
 * Write the whole message, but give up after the access timeout: a peer
 * that stops reading must not hang us (qemu_chr_fe_write_all would retry
 * forever).
 */
static bool mx_write_bounded(MemexposeState *s, const uint8_t *buf, int len)
{
    int64_t deadline = qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + s->timeout_ms;
    int done = 0;

    while (done < len) {
        int ret = qemu_chr_fe_write(&s->chr, buf + done, len - done);

        if (ret > 0) {
            done += ret;
        } else if (ret < 0 && errno == EAGAIN &&
                   qemu_clock_get_ms(QEMU_CLOCK_REALTIME) < deadline) {
            g_usleep(100);
        } else {
            return false;
        }
    }
    return true;
}

void memexpose_send(MemexposeState *s, MxpMsg *msg, int fd)
{
    uint8_t buf[MXP_MAX_MESSAGE];
    int len = mxp_encode(msg, buf, sizeof(buf));
    bool ok;

    if (len < 0) {
        error_report("memexpose %s: cannot encode %s: %s", s->name,
                     mxp_type_name(msg->hdr.type), mxp_status_str(len));
        memexpose_link_down(s, "internal error");
        return;
    }

    qemu_mutex_lock(&s->send_lock);
    if (s->detached) {
        qemu_mutex_unlock(&s->send_lock);
        return;
    }
    if (fd >= 0) {
        qemu_chr_fe_set_msgfds(&s->chr, &fd, 1);
    }
    ok = mx_write_bounded(s, buf, len);
    if (fd >= 0 && !ok) {
        qemu_chr_fe_set_msgfds(&s->chr, NULL, 0);
    }
    qemu_mutex_unlock(&s->send_lock);

    if (!ok) {
        memexpose_link_down(s, "cannot send to the peer");
    }
}

void memexpose_send_simple(MemexposeState *s, MxpType type, uint64_t id)
{
    MxpMsg msg = { .hdr = { .type = type, .id = id } };

    memexpose_send(s, &msg, -1);
}

void memexpose_reply_error(MemexposeState *s, const MxpMsg *req,
                           MxpErr code, uint64_t addr)
{
    MxpMsg msg = {
        .hdr = { .type = MXP_ERROR, .id = req->hdr.id },
        .u.error = { .code = code, .request_type = req->hdr.type,
                     .addr = addr },
    };

    memexpose_send(s, &msg, -1);
}

void memexpose_reply_ack(MemexposeState *s, const MxpMsg *req)
{
    memexpose_send_simple(s, MXP_ACK, req->hdr.id);
}

static void mx_send_bye(MemexposeState *s, MxpErr code)
{
    MxpMsg msg = {
        .hdr = { .type = MXP_BYE },
        .u.error = { .code = code },
    };

    memexpose_send(s, &msg, -1);
}

/*
 * Take the link down: fail every outstanding request, forget the peer,
 * and let the main loop drop the mappings.  Safe from any thread.
 */
void memexpose_link_drop(MemexposeState *s, const char *reason,
                         bool disconnect)
{
    MemexposeCall *call, *tmp;
    bool was_connected;

    qemu_mutex_lock(&s->lock);
    was_connected = s->connected;
    if (s->up) {
        warn_report("memexpose %s: link down: %s", s->name, reason);
        s->up = false;
        s->epoch++;
        qemu_bh_schedule(s->link_bh);
    } else if (s->connected) {
        warn_report("memexpose %s: closing link: %s", s->name, reason);
    }
    s->connected = false;
    s->hello_sent = false;
    s->ping_id = 0;
    memexpose_ring_drop_locked(s);
    QLIST_FOREACH_SAFE(call, &s->calls, next, tmp) {
        call->done = true;
        call->err = MX_CALL_LINK_DOWN;
        if (call->notify) {
            QLIST_REMOVE(call, next);
            qemu_bh_schedule(call->notify);
        }
    }
    qemu_cond_broadcast(&s->cond);
    /* Under @lock: a stopped I/O thread would leak the BH. */
    if (disconnect && was_connected && s->iothread && !s->stopping) {
        aio_bh_schedule_oneshot(iothread_get_aio_context(s->iothread),
                                mx_disconnect_bh, s);
    }
    qemu_mutex_unlock(&s->lock);
}

void memexpose_link_down(MemexposeState *s, const char *reason)
{
    memexpose_link_drop(s, reason, true);
}

static void G_GNUC_PRINTF(4, 0)
mx_link_error(MemexposeState *s, MxpErr code, MxpType type, const char *fmt,
              va_list ap)
{
    g_autofree char *reason = g_strdup_vprintf(fmt, ap);
    MxpMsg msg = {
        .hdr = { .type = MXP_ERROR },
        .u.error = { .code = code, .request_type = type },
    };

    /* The reason first: the peer may hang up as soon as it reads ERROR. */
    memexpose_link_down(s, reason);
    memexpose_send(s, &msg, -1);
    mx_send_bye(s, code);
}

/* A peer that breaks the protocol loses the link. */
void memexpose_protocol_error(MemexposeState *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    mx_link_error(s, MXP_E_PROTOCOL, 0, fmt, ap);
    va_end(ap);
}

/*
 * The same with a more specific code than PROTOCOL (BUSY, BAD_VECTOR),
 * naming the type of the offending message in the ERROR.
 */
void memexpose_link_error(MemexposeState *s, MxpErr code, MxpType type,
                          const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    mx_link_error(s, code, type, fmt, ap);
    va_end(ap);
}

/* Give @req an id, register @call for its reply and send it. */
static bool mx_call_send(MemexposeState *s, MxpMsg *req, MemexposeCall *call)
{
    qemu_mutex_lock(&s->lock);
    if (!s->up) {
        qemu_mutex_unlock(&s->lock);
        return false;
    }
    call->id = ++s->next_id;
    call->type = req->hdr.type;
    call->done = false;
    call->err = 0;
    call->fd = -1;
    req->hdr.id = call->id;
    QLIST_INSERT_HEAD(&s->calls, call, next);
    qemu_mutex_unlock(&s->lock);

    memexpose_send(s, req, -1);
    return true;
}

static int mx_call(MemexposeState *s, MxpMsg *req, MemexposeCall *call,
                   bool keep_bql, uint32_t timeout_ms)
{
    bool had_bql = !keep_bql && bql_locked();
    int64_t deadline;
    bool timed_out;

    if (!mx_call_send(s, req, call)) {
        return MX_CALL_LINK_DOWN;
    }

    if (had_bql) {
        bql_unlock();
    }
    deadline = qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + timeout_ms;
    qemu_mutex_lock(&s->lock);
    while (!call->done) {
        int64_t left = deadline - qemu_clock_get_ms(QEMU_CLOCK_REALTIME);

        if (left <= 0) {
            break;
        }
        qemu_cond_timedwait(&s->cond, &s->lock, left);
    }
    timed_out = !call->done;
    QLIST_REMOVE(call, next);
    qemu_mutex_unlock(&s->lock);
    if (had_bql) {
        bql_lock();
    }

    if (timed_out) {
        qatomic_inc(&s->stats.timeouts);
        memexpose_link_down(s, "the peer did not answer in time");
        return MX_CALL_TIMEOUT;
    }
    return call->err;
}

/*
 * Send @req and wait for the reply, with the BQL dropped while waiting.
 * Returns 0, a positive MxpErr from the peer, MX_CALL_LINK_DOWN if there
 * was no link or it failed, or MX_CALL_TIMEOUT.
 */
int memexpose_call(MemexposeState *s, MxpMsg *req, MemexposeCall *call)
{
    return mx_call(s, req, call, false, s->timeout_ms);
}

/*
 * For a guest command whose answer may take the peer a while (BOOT_CMD:
 * the target may still be starting): bounded by the longer of the access
 * timeout and MEMEXPOSE_PATIENT_TIMEOUT_MS, with the BQL dropped.
 */
int memexpose_call_patient(MemexposeState *s, MxpMsg *req,
                           MemexposeCall *call)
{
    return mx_call(s, req, call, false,
                   MAX(s->timeout_ms, MEMEXPOSE_PATIENT_TIMEOUT_MS));
}

/*
 * Send @req without waiting: once the reply is in, or the link failed,
 * @call is done and @call->notify is scheduled.  The caller bounds the
 * wait itself (memexpose_call_cancel()).  Returns 0, or
 * MX_CALL_LINK_DOWN if there is no link.
 */
int memexpose_call_async(MemexposeState *s, MxpMsg *req, MemexposeCall *call)
{
    assert(call->notify);
    if (!mx_call_send(s, req, call)) {
        return MX_CALL_LINK_DOWN;
    }
    return 0;
}

/* Give up an asynchronous call; true if it was still outstanding. */
bool memexpose_call_cancel(MemexposeState *s, MemexposeCall *call)
{
    bool pending;

    qemu_mutex_lock(&s->lock);
    pending = !call->done && call->id;
    if (pending) {
        QLIST_REMOVE(call, next);
        call->done = true;
        call->err = MX_CALL_TIMEOUT;
    }
    qemu_mutex_unlock(&s->lock);
    return pending;
}

/*
 * The same for callers that must not let go of the BQL (memory listener
 * commit).  The reply still arrives: the I/O thread needs no BQL.
 */
int memexpose_call_keep_bql(MemexposeState *s, MxpMsg *req,
                            MemexposeCall *call)
{
    return mx_call(s, req, call, true, s->timeout_ms);
}

/*
 * Send our HELLO once per connection, before anything else of ours.
 * The chardev may report the connection from another thread after our
 * I/O thread has already read the peer's HELLO: whichever comes first
 * sends it, under @hello_lock so that the other waits until it is out.
 */
static void mx_send_hello(MemexposeState *s)
{
    MxpMsg msg = {
        .hdr = { .type = MXP_HELLO },
        .u.hello = {
            .magic = MXP_MAGIC,
            .version_major = MXP_VERSION_MAJOR,
            .version_minor = MXP_VERSION_MINOR,
            .features = MXP_FEAT_BULK | MXP_FEAT_HEARTBEAT | MXP_FEAT_BOOT |
                        (s->zero_copy ? MXP_FEAT_MAP : 0) |
                        (s->db_ring ? MXP_FEAT_DB_RING : 0),
            .page_size = qemu_real_host_page_size(),
            .role = s->boot_target ? MXP_ROLE_BOOT_TARGET : MXP_ROLE_DEVICE,
            .vectors = s->vectors,
            .max_data = MXP_MAX_DATA,
        },
    };

    qemu_mutex_lock(&s->hello_lock);
    qemu_mutex_lock(&s->lock);
    if (s->hello_sent) {
        qemu_mutex_unlock(&s->lock);
        qemu_mutex_unlock(&s->hello_lock);
        return;
    }
    /*
     * Slots holding doorbells of a previous link are not free, nor are
     * those its doorbells still on their way to the queue will take.
     */
    msg.u.hello.queue_depth = s->queue_depth - s->rx_count -
                              s->nr_doorbell_work;
    s->hello_depth = msg.u.hello.queue_depth;
    s->rx_stale = s->rx_count;
    s->hello_sent = true;
    s->connected = true;
    s->connected_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    qemu_mutex_unlock(&s->lock);
    pstrcpy(msg.u.hello.name, sizeof(msg.u.hello.name), s->name);
    memexpose_send(s, &msg, -1);
    qemu_mutex_unlock(&s->hello_lock);
}

static void mx_refuse_version(MemexposeState *s, unsigned major)
{
    MxpMsg err = {
        .hdr = { .type = MXP_ERROR },
        .u.error = { .code = MXP_E_VERSION, .request_type = MXP_HELLO },
    };
    g_autofree char *reason =
        g_strdup_printf("the peer speaks protocol version %u, we speak %u",
                        major, MXP_VERSION_MAJOR);

    memexpose_send(s, &err, -1);
    mx_send_bye(s, MXP_E_VERSION);
    memexpose_link_down(s, reason);
}

/* The handshake is complete: the link is up. */
static void mx_link_established(MemexposeState *s)
{
    char peer[MXP_NAME_SIZE];

    qemu_mutex_lock(&s->lock);
    s->hello_received = false;
    s->tx_credits = s->peer.queue_depth;
    s->tx_was_busy = false;
    s->up = true;
    s->ping_id = 0;
    s->epoch++;
    s->stats.link_ups++;
    g_array_set_size(s->granted, 0);
    s->last_rx_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    pstrcpy(peer, sizeof(peer), s->peer.name);
    qemu_mutex_unlock(&s->lock);

    info_report("memexpose %s: link up with '%s'", s->name, peer);
    qemu_bh_schedule(s->link_bh);
    memexpose_send_boot_state(s);
}

static void mx_handle_hello(MemexposeState *s, const MxpHello *h)
{
    bool ring;

    /* What we send from here on must follow our HELLO. */
    mx_send_hello(s);
    qemu_mutex_lock(&s->lock);
    s->peer = *h;
    s->features = h->features & (MXP_FEAT_BULK | MXP_FEAT_HEARTBEAT |
                                 MXP_FEAT_BOOT |
                                 (s->zero_copy ? MXP_FEAT_MAP : 0) |
                                 (s->db_ring ? MXP_FEAT_DB_RING : 0));
    s->peer_boot_state = MXP_BOOT_NONE;
    s->max_data = MIN(h->max_data, MXP_MAX_DATA);
    ring = s->features & MXP_FEAT_DB_RING;
    /* With doorbell rings, the link is up once both are exchanged. */
    s->hello_received = true;
    s->hello_rx_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    qemu_mutex_unlock(&s->lock);

    if (!ring) {
        mx_link_established(s);
    } else if (!memexpose_ring_offer(s)) {
        memexpose_link_down(s, "cannot make the doorbell ring");
    }
}

static bool mx_reply_matches(uint16_t call_type, uint16_t reply_type)
{
    switch (call_type) {
    case MXP_READ:
        return reply_type == MXP_READ_REPLY || reply_type == MXP_ERROR;
    case MXP_WRITE:
        return reply_type == MXP_ACK || reply_type == MXP_ERROR;
    case MXP_MAP:
        return reply_type == MXP_MAP_REPLY || reply_type == MXP_ERROR;
    case MXP_INVALIDATE:
        return reply_type == MXP_INVALIDATE_ACK;
    case MXP_BOOT:
    case MXP_RESET:
    case MXP_HALT:
        return reply_type == MXP_ACK || reply_type == MXP_ERROR;
    default:
        return false;
    }
}

/*
 * The ERROR codes valid in reply to MAP: no feature MAP, or the exporter
 * cannot describe the range now.  "Not exported" is a MAP_REPLY of kind
 * DENIED, so ERROR DENIED and every other code are a protocol error.
 */
static bool mx_map_error_ok(uint32_t code)
{
    return code == MXP_E_UNSUPPORTED || code == MXP_E_BUSY ||
           code == MXP_E_INTERNAL;
}

/*
 * Iothread: complete the call @msg answers and take ownership of @fd;
 * or return why @msg is no valid reply (to be freed), leaving @fd alone.
 */
static char *mx_complete_call(MemexposeState *s, const MxpMsg *msg, int fd)
{
    MemexposeCall *call;
    char *bad = NULL;

    qemu_mutex_lock(&s->lock);
    QLIST_FOREACH(call, &s->calls, next) {
        if (call->id == msg->hdr.id && !call->done) {
            break;
        }
    }
    if (!call || !mx_reply_matches(call->type, msg->hdr.type) ||
        (msg->hdr.type == MXP_READ_REPLY &&
         (msg->u.access.size != call->size ||
          msg->u.access.addr != call->addr))) {
        bad = g_strdup_printf("unexpected %s for request %" PRIu64,
                              mxp_type_name(msg->hdr.type), msg->hdr.id);
        goto out;
    }
    if (msg->hdr.type == MXP_ERROR && call->type == MXP_MAP &&
        !mx_map_error_ok(msg->u.error.code)) {
        bad = g_strdup_printf("ERROR %u (%s) is no valid reply to MAP",
                              msg->u.error.code,
                              mxp_err_str(msg->u.error.code));
        goto out;
    }
    switch (msg->hdr.type) {
    case MXP_ERROR:
        call->err = msg->u.error.code;
        break;
    case MXP_READ_REPLY:
        memcpy(call->data, msg->u.access.data, msg->u.access.size);
        break;
    case MXP_MAP_REPLY:
        call->map = msg->u.map_reply;
        call->fd = fd;
        call->inval_gen = s->inval_gen;
        break;
    default:
        break;
    }
    call->done = true;
    if (call->notify) {
        QLIST_REMOVE(call, next);
        qemu_bh_schedule(call->notify);
    }
    qemu_cond_broadcast(&s->cond);
out:
    qemu_mutex_unlock(&s->lock);
    return bad;
}

static bool mx_is_request(uint16_t type)
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

static void mx_handle_state(MemexposeState *s, uint32_t state)
{
    if (!(s->features & MXP_FEAT_BOOT) ||
        s->peer.role != MXP_ROLE_BOOT_TARGET || state == MXP_BOOT_NONE) {
        memexpose_protocol_error(s, "STATE %u from a peer that may not"
                                 " send it", state);
        return;
    }
    qemu_mutex_lock(&s->lock);
    if (s->peer_boot_state != state) {
        s->peer_boot_state = state;
        s->boot_state_pending = true;
        qemu_bh_schedule(s->irq_bh);
    }
    qemu_mutex_unlock(&s->lock);
}

/* Doorbells travel by the socket or by the ring, never by both. */
static bool mx_doorbell_transport_ok(MemexposeState *s, uint16_t type)
{
    bool ring = s->features & MXP_FEAT_DB_RING;

    switch (type) {
    case MXP_DOORBELL:
    case MXP_CREDIT:
        return !ring;
    case MXP_DB_RING:
    case MXP_DB_EVENT:
    case MXP_DB_SPACE:
        return ring;
    default:
        return true;
    }
}

static void mx_dispatch(MemexposeState *s, const MxpMsg *msg, int fd)
{
    uint16_t type = msg->hdr.type;
    bool up, hello_received;

    qemu_mutex_lock(&s->lock);
    up = s->up;
    hello_received = s->hello_received;
    s->last_rx_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    qemu_mutex_unlock(&s->lock);

    if (!up && type != MXP_HELLO &&
        !(hello_received && (type == MXP_DB_RING || type == MXP_DB_EVENT))) {
        memexpose_protocol_error(s, "%s before the handshake is complete",
                                 mxp_type_name(type));
        goto out;
    }
    if ((up || hello_received) && !mx_doorbell_transport_ok(s, type)) {
        memexpose_protocol_error(s, "%s without the doorbell transport it"
                                 " belongs to", mxp_type_name(type));
        goto out;
    }
    if (mx_is_request(type) && msg->hdr.id == 0) {
        memexpose_protocol_error(s, "%s without a request id",
                                 mxp_type_name(type));
        goto out;
    }
    if (!mx_is_request(type) && !mxp_type_is_reply(type) && msg->hdr.id) {
        memexpose_protocol_error(s, "%s with a request id",
                                 mxp_type_name(type));
        goto out;
    }

    switch (type) {
    case MXP_HELLO:
        if (up || hello_received) {
            memexpose_protocol_error(s, "second HELLO");
        } else {
            mx_handle_hello(s, &msg->u.hello);
        }
        break;
    case MXP_BYE:
        memexpose_link_down(s, mxp_err_str(msg->u.error.code));
        break;
    case MXP_ERROR:
        if (msg->hdr.id == 0) {
            memexpose_link_down(s, "the peer reported a protocol error");
            break;
        }
        /* fall through */
    case MXP_READ_REPLY:
    case MXP_ACK:
    case MXP_MAP_REPLY:
    case MXP_INVALIDATE_ACK: {
        g_autofree char *bad = mx_complete_call(s, msg, fd);

        if (bad) {
            memexpose_protocol_error(s, "%s", bad);
        } else {
            fd = -1;
        }
        break;
    }
    case MXP_PING: {
        MxpMsg pong = {
            .hdr = { .type = MXP_PONG, .id = msg->hdr.id },
            .u.ping = msg->u.ping,
        };

        memexpose_send(s, &pong, -1);
        break;
    }
    case MXP_READ:
    case MXP_WRITE:
        if (!memexpose_serve_access_now(s, msg)) {
            memexpose_queue_work(s, msg);
        }
        break;
    case MXP_INVALIDATE:
        /*
         * Served here, ahead of requests queued for the worker: it needs
         * neither the BQL nor our memory, so its ACK never waits for a
         * lock that the peer's own wait for the ACK may be holding up.
         */
        if (memexpose_invalidate(s, msg->u.range.addr,
                                 msg->u.range.length)) {
            memexpose_send_simple(s, MXP_INVALIDATE_ACK, msg->hdr.id);
        } else {
            memexpose_link_down(s, "a peer mapping could not be revoked");
        }
        break;
    case MXP_PONG:
        qemu_mutex_lock(&s->lock);
        if (msg->hdr.id != s->ping_id || msg->u.ping != s->ping_sent_ms) {
            qemu_mutex_unlock(&s->lock);
            memexpose_protocol_error(s, "PONG that answers no PING of ours");
            break;
        }
        s->ping_id = 0;
        qemu_mutex_unlock(&s->lock);
        break;
    case MXP_STATE:
        mx_handle_state(s, msg->u.state);
        break;
    case MXP_CREDIT:
        memexpose_doorbell_credit(s, msg->u.credits);
        break;
    case MXP_DB_RING:
        if (memexpose_ring_peer(s, msg->u.ring_depth, fd)) {
            mx_link_established(s);
        }
        fd = -1;
        break;
    case MXP_DB_EVENT:
        if (memexpose_ring_peer_event(s, msg->u.event_vector, fd)) {
            mx_link_established(s);
        }
        fd = -1;
        break;
    case MXP_DB_SPACE:
        memexpose_ring_space(s);
        break;
    default:
        memexpose_queue_work(s, msg);
        break;
    }
out:
    if (fd >= 0) {
        close(fd);
    }
}

static void mx_drop_rxfds(MemexposeState *s)
{
    while (s->nr_rxfds) {
        close(s->rxfds[--s->nr_rxfds]);
    }
}

static uint32_t mx_bytes_wanted(MemexposeState *s)
{
    MxpHeader hdr;

    if (s->rxlen < MXP_HEADER_SIZE) {
        return MXP_HEADER_SIZE - s->rxlen;
    }
    /* The header was validated when it completed. */
    mxp_decode_header(s->rxbuf, s->rxlen, &hdr);
    return MXP_HEADER_SIZE + hdr.length - s->rxlen;
}

static int mx_chr_can_read(void *opaque)
{
    MemexposeState *s = opaque;
    unsigned backlog;

    qemu_mutex_lock(&s->lock);
    backlog = s->nr_work;
    qemu_mutex_unlock(&s->lock);
    /*
     * Read no further than the end of the current message, so that any
     * fd arrives together with the header it belongs to.
     */
    return backlog >= MEMEXPOSE_MAX_WORK ? 0 : mx_bytes_wanted(s);
}

static void mx_chr_read(void *opaque, const uint8_t *buf, int size)
{
    MemexposeState *s = opaque;
    int fds[16];
    int nfds = qemu_chr_fe_get_msgfds(&s->chr, fds, ARRAY_SIZE(fds));
    MxpHeader hdr;
    MxpMsg msg;
    int ret, fd;

    if (nfds > 0) {
        bool at_start = s->rxlen == 0;
        int i;

        for (i = 0; i < nfds; i++) {
            if (s->nr_rxfds < ARRAY_SIZE(s->rxfds)) {
                s->rxfds[s->nr_rxfds++] = fds[i];
            } else {
                close(fds[i]);
                at_start = false;
            }
        }
        if (!at_start) {
            mx_drop_rxfds(s);
            memexpose_protocol_error(s, "file descriptor outside a"
                                     " message header");
            return;
        }
    }

    assert(size <= (int)mx_bytes_wanted(s));
    if (s->rxlen == 0) {
        s->rx_started_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    }
    memcpy(s->rxbuf + s->rxlen, buf, size);
    s->rxlen += size;

    if (s->rxlen == MXP_HEADER_SIZE) {
        ret = mxp_decode_header(s->rxbuf, s->rxlen, &hdr);
        if (ret != MXP_OK) {
            s->rxlen = 0;
            mx_drop_rxfds(s);
            memexpose_protocol_error(s, "bad header: %s", mxp_status_str(ret));
            return;
        }
    }
    if (s->rxlen < MXP_HEADER_SIZE || mx_bytes_wanted(s) > 0) {
        return;
    }

    ret = mxp_decode(s->rxbuf, s->rxlen, s->nr_rxfds, &msg);
    s->rxlen = 0;
    if (ret == MXP_ERR_VERSION) {
        mx_drop_rxfds(s);
        mx_refuse_version(s, msg.u.hello.version_major);
        return;
    }
    if (ret != MXP_OK) {
        mx_drop_rxfds(s);
        memexpose_protocol_error(s, "bad %s: %s", mxp_type_name(msg.hdr.type),
                          mxp_status_str(ret));
        return;
    }
    fd = s->nr_rxfds ? s->rxfds[0] : -1;
    s->nr_rxfds = 0;
    /* The payload pointers in @msg refer to rxbuf, which stays intact. */
    mx_dispatch(s, &msg, fd);
}

static void mx_chr_event(void *opaque, QEMUChrEvent event)
{
    MemexposeState *s = opaque;

    switch (event) {
    case CHR_EVENT_OPENED:
        /*
         * The receive state was reset when the last connection closed:
         * the I/O thread may already be reading this one.
         */
        mx_send_hello(s);
        break;
    case CHR_EVENT_CLOSED:
        memexpose_link_drop(s, "the peer closed the connection", false);
        s->rxlen = 0;
        mx_drop_rxfds(s);
        break;
    default:
        break;
    }
}

static void mx_heartbeat(void *opaque)
{
    MemexposeState *s = opaque;
    int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    int64_t patience = MX_HEARTBEAT_MISSES * s->heartbeat_ms;
    MxpMsg ping = { .hdr = { .type = MXP_PING }, .u.ping = now };
    const char *why = NULL;
    bool connected, send = false;

    qemu_mutex_lock(&s->lock);
    connected = s->connected;
    if (s->rxlen && now - s->rx_started_ms > s->timeout_ms) {
        /* Bytes of a message that never completes are no sign of life. */
        why = "the peer left a message unfinished";
    } else if (s->hello_received && now - s->hello_rx_ms > s->timeout_ms) {
        why = "the peer did not hand over its doorbell ring";
    } else if (!s->up && !s->hello_received && s->connected &&
               now - s->connected_ms > s->timeout_ms) {
        /* A silent connection would hold our one link for ever. */
        why = "the peer sent no HELLO";
    } else if (!s->up) {
        /* The rest needs the handshake done. */
    } else if (s->ping_id && now - s->ping_sent_ms > patience) {
        why = "the peer did not answer PING";
    } else if ((s->features & MXP_FEAT_HEARTBEAT) &&
               now - s->last_rx_ms > patience) {
        why = "no heartbeat from the peer";
    } else if (!s->ping_id) {
        s->ping_id = ++s->next_id;
        s->ping_sent_ms = now;
        ping.hdr.id = s->ping_id;
        send = true;
    }
    qemu_mutex_unlock(&s->lock);

    if (why && connected) {
        memexpose_link_down(s, why);
    } else if (send) {
        memexpose_send(s, &ping, -1);
    }
    timer_mod(s->heartbeat, now + s->heartbeat_ms);
}

/* Start receiving and the heartbeat, in the device's IOThread. */
void memexpose_link_start(MemexposeState *s)
{
    s->heartbeat = aio_timer_new(iothread_get_aio_context(s->iothread),
                                 QEMU_CLOCK_REALTIME, SCALE_MS,
                                 mx_heartbeat, s);
    timer_mod(s->heartbeat,
              qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + s->heartbeat_ms);
    qemu_chr_fe_set_handlers(&s->chr, mx_chr_can_read, mx_chr_read,
                             mx_chr_event, NULL, s,
                             iothread_get_g_main_context(s->iothread), true);
}

/* Let go of the chardev and the timer; the IOThread is stopped. */
void memexpose_link_release(MemexposeState *s)
{
    qemu_chr_fe_set_handlers(&s->chr, NULL, NULL, NULL, NULL, NULL, NULL,
                             true);
    g_clear_pointer(&s->heartbeat, timer_free);
}
