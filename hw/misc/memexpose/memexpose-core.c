/*
 * memexpose core: link, handshake, request/reply, doorbells, registers.
 *
 * Threads:
 * - the device's IOThread runs the chardev: it reads and validates every
 *   message, completes our outstanding requests and queues the peer's
 *   requests for the worker.  It never takes the BQL, so replies keep
 *   flowing whatever the rest of QEMU is doing;
 * - the worker serves the peer's requests in order (guest memory
 *   accesses, mappings, doorbell delivery) and takes the BQL when needed;
 * - a vCPU (or qtest) accessing the window waits for the peer's reply
 *   with the BQL dropped, as hw/remote/mpqemu-link.c does.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/cutils.h"
#include "qemu/error-report.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "qemu/rcu.h"
#include "qom/object.h"
#include "migration/blocker.h"
#include "block/aio.h"
#include "block/aio-wait.h"
#include "system/runstate.h"
#include "system/runstate-action.h"
#include "hw/qdev-properties.h"
#include "hw/qdev-properties-system.h"
#include "memexpose.h"

/* Peer requests queued for the worker before we stop reading the socket. */
#define MX_MAX_WORK             64
/* Missed heartbeats after which the peer is considered gone. */
#define MX_HEARTBEAT_MISSES     3

static void mx_disconnect_bh(void *opaque)
{
    MemexposeState *s = opaque;

    qemu_chr_fe_disconnect(&s->chr);
}

/* Main loop: reflect a link change in the registers and the window. */
static void mx_link_bh(void *opaque)
{
    MemexposeState *s = opaque;
    bool up;

    qemu_mutex_lock(&s->lock);
    up = s->up;
    qemu_mutex_unlock(&s->lock);

    /* Mappings of an earlier link, even one already replaced, go. */
    memexpose_unmap_all(s);
    if (up) {
        memexpose_remap(s);
    }
    s->intr_status |= MX_INTR_LINK;
    s->irq_notify(s, MX_IRQ_CONTROL);
}

/* Main loop: interrupts the I/O thread may not raise itself (BQL). */
static void mx_irq_bh(void *opaque)
{
    MemexposeState *s = opaque;
    bool tx_ready, boot;

    qemu_mutex_lock(&s->lock);
    tx_ready = s->tx_ready_pending;
    s->tx_ready_pending = false;
    boot = s->boot_state_pending;
    s->boot_state_pending = false;
    qemu_mutex_unlock(&s->lock);

    if (tx_ready) {
        s->intr_status |= MX_INTR_TX_READY;
    }
    if (boot) {
        s->intr_status |= MX_INTR_BOOT;
    }
    if (tx_ready || boot) {
        s->irq_notify(s, MX_IRQ_CONTROL);
    }
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

static void mx_send_simple(MemexposeState *s, MxpType type, uint64_t id)
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
    mx_send_simple(s, MXP_ACK, req->hdr.id);
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
static void mx_link_down(MemexposeState *s, const char *reason,
                         bool disconnect)
{
    MemexposeCall *call;
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
    QLIST_FOREACH(call, &s->calls, next) {
        call->done = true;
        call->err = -1;
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
    mx_link_down(s, reason, true);
}

/* A peer that breaks the protocol loses the link. */
static void mx_protocol_error(MemexposeState *s, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

static void mx_protocol_error(MemexposeState *s, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *reason = NULL;
    MxpMsg msg = {
        .hdr = { .type = MXP_ERROR },
        .u.error = { .code = MXP_E_PROTOCOL },
    };

    va_start(ap, fmt);
    reason = g_strdup_vprintf(fmt, ap);
    va_end(ap);

    memexpose_send(s, &msg, -1);
    mx_send_bye(s, MXP_E_PROTOCOL);
    memexpose_link_down(s, reason);
}

static int mx_call(MemexposeState *s, MxpMsg *req, MemexposeCall *call,
                   bool keep_bql, uint32_t timeout_ms)
{
    bool had_bql = !keep_bql && bql_locked();
    int64_t deadline;
    bool timed_out;

    qemu_mutex_lock(&s->lock);
    if (!s->up) {
        qemu_mutex_unlock(&s->lock);
        return MX_CALL_LINK_DOWN;
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
 * For requests no guest access waits on (the mapping walk): a peer whose
 * machine is still starting may hold its BQL for longer than an access
 * may take, and that is no reason to drop the link.
 */
int memexpose_call_patient(MemexposeState *s, MxpMsg *req,
                           MemexposeCall *call)
{
    return mx_call(s, req, call, false,
                   MAX(s->timeout_ms, MEMEXPOSE_PATIENT_TIMEOUT_MS));
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

/* ---- doorbells ---- */

static void mx_send_doorbell(MemexposeState *s)
{
    MxpMsg msg = { .hdr = { .type = MXP_DOORBELL } };
    uint32_t status = MX_TX_OK;

    qemu_mutex_lock(&s->lock);
    if (!s->up) {
        status = MX_TX_LINK_DOWN;
    } else if (s->tx_vector >= s->peer.vectors) {
        status = MX_TX_BAD_VECTOR;
    } else if (s->tx_len > MXP_MAX_DOORBELL_DATA) {
        status = MX_TX_BAD_LENGTH;
    } else if (s->tx_credits == 0) {
        status = MX_TX_BUSY;
        s->tx_was_busy = true;
        s->stats.db_lost++;
    } else {
        s->tx_credits--;
    }
    qemu_mutex_unlock(&s->lock);

    s->tx_status = status;
    if (status != MX_TX_OK) {
        return;
    }
    msg.u.doorbell.vector = s->tx_vector;
    msg.u.doorbell.size = s->tx_len;
    msg.u.doorbell.data = s->tx_data;
    memexpose_send(s, &msg, -1);
    qatomic_inc(&s->stats.db_sent);
}

/* Worker: queue a doorbell from the peer. */
static void mx_receive_doorbell(MemexposeState *s, const MxpMsg *msg)
{
    const MxpDoorbell *db = &msg->u.doorbell;
    MemexposeDoorbell *slot;

    /*
     * Registers are read under the BQL: holding it while queueing means
     * the guest never sees the entry without its interrupt status.
     */
    bql_lock();
    qemu_mutex_lock(&s->lock);
    if (db->vector >= s->vectors) {
        qemu_mutex_unlock(&s->lock);
        bql_unlock();
        mx_protocol_error(s, "doorbell for vector %u of %u", db->vector,
                          s->vectors);
        return;
    }
    if (s->rx_count >= s->queue_depth) {
        qemu_mutex_unlock(&s->lock);
        bql_unlock();
        mx_protocol_error(s, "doorbell without credit");
        return;
    }
    slot = &s->rxq[(s->rx_head + s->rx_count) % s->queue_depth];
    slot->vector = db->vector;
    slot->size = db->size;
    memcpy(slot->data, db->data, db->size);
    s->rx_count++;
    s->stats.db_received++;
    qemu_mutex_unlock(&s->lock);

    s->intr_status |= MX_INTR_DOORBELL;
    s->irq_notify(s, MX_IRQ_DOORBELL(db->vector));
    bql_unlock();
}

/* Guest popped the queue head: return the slot to the peer as credit. */
static void mx_pop_doorbell(MemexposeState *s)
{
    MxpMsg msg = { .hdr = { .type = MXP_CREDIT }, .u.credits = 1 };
    bool up;

    qemu_mutex_lock(&s->lock);
    if (s->rx_count == 0) {
        qemu_mutex_unlock(&s->lock);
        return;
    }
    s->rx_head = (s->rx_head + 1) % s->queue_depth;
    s->rx_count--;
    up = s->up;
    if (s->rx_stale) {
        /* The peer of this link never spent a credit on it. */
        s->rx_stale--;
        up = false;
    }
    qemu_mutex_unlock(&s->lock);

    if (up) {
        memexpose_send(s, &msg, -1);
    }
}

static uint64_t mx_rx_pending(MemexposeState *s)
{
    uint64_t pending = 0;
    uint32_t i;

    for (i = 0; i < s->rx_count; i++) {
        pending |= 1ULL << s->rxq[(s->rx_head + i) % s->queue_depth].vector;
    }
    return pending;
}

/* ---- serving the peer ---- */

/* Set while the worker accesses our memory, to refuse re-entry. */
static __thread bool mx_serving;
static __thread bool mx_recursed;

bool memexpose_in_service(void)
{
    return mx_serving;
}

void memexpose_note_recursion(void)
{
    mx_recursed = true;
}

static void mx_serve_access(MemexposeState *s, const MxpMsg *req)
{
    const MxpAccess *acc = &req->u.access;
    bool write = req->hdr.type == MXP_WRITE;
    const MemexposeExport *exp;
    uint8_t data[MXP_MAX_DATA];
    MemTxResult res;
    bool plain = acc->size == 1 || acc->size == 2 || acc->size == 4 ||
                 acc->size == 8;

    if (acc->size > s->max_data ||
        (!plain && !(s->features & MXP_FEAT_BULK))) {
        memexpose_reply_error(s, req, MXP_E_UNSUPPORTED, acc->addr);
        return;
    }
    exp = memexpose_find_export(s, acc->addr, acc->size);
    if (!exp || (write && !exp->writable)) {
        qatomic_inc(&s->stats.refused);
        memexpose_reply_error(s, req, exp ? MXP_E_READ_ONLY : MXP_E_DENIED,
                              acc->addr);
        return;
    }

    mx_serving = true;
    mx_recursed = false;
    if (write) {
        res = address_space_write(&address_space_memory, acc->addr,
                                  MEMTXATTRS_UNSPECIFIED, acc->data,
                                  acc->size);
    } else {
        res = address_space_read(&address_space_memory, acc->addr,
                                 MEMTXATTRS_UNSPECIFIED, data, acc->size);
    }
    mx_serving = false;

    if (mx_recursed) {
        qatomic_inc(&s->stats.refused);
        memexpose_reply_error(s, req, MXP_E_RECURSION, acc->addr);
        return;
    }
    if (res != MEMTX_OK) {
        qatomic_inc(&s->stats.refused);
        memexpose_reply_error(s, req, MXP_E_ACCESS, acc->addr);
        return;
    }
    if (write) {
        qatomic_inc(&s->stats.served_writes);
        mx_send_simple(s, MXP_ACK, req->hdr.id);
    } else {
        MxpMsg reply = {
            .hdr = { .type = MXP_READ_REPLY, .id = req->hdr.id },
            .u.access = { .addr = acc->addr, .size = acc->size,
                          .data = data },
        };

        qatomic_inc(&s->stats.served_reads);
        memexpose_send(s, &reply, -1);
    }
}

static void mx_serve_invalidate(MemexposeState *s, const MxpMsg *req)
{
    /* Dropping everything is correct; remap resolves the rest again. */
    bql_lock();
    memexpose_unmap_all(s);
    bql_unlock();
    /*
     * TCG vCPUs flush their TLBs lazily but only while outside an RCU
     * read-side section; after a grace period none can still reach the
     * old mapping.
     */
    synchronize_rcu();
    mx_send_simple(s, MXP_INVALIDATE_ACK, req->hdr.id);
    bql_lock();
    memexpose_remap(s);
    bql_unlock();
}

static void mx_handle_work(MemexposeState *s, const MxpMsg *msg)
{
    switch (msg->hdr.type) {
    case MXP_READ:
    case MXP_WRITE:
        mx_serve_access(s, msg);
        break;
    case MXP_MAP:
        memexpose_serve_map(s, msg);
        break;
    case MXP_INVALIDATE:
        mx_serve_invalidate(s, msg);
        break;
    case MXP_DOORBELL:
        mx_receive_doorbell(s, msg);
        break;
    case MXP_BOOT:
    case MXP_RESET:
    case MXP_HALT:
        memexpose_serve_boot(s, msg);
        break;
    default:
        break;
    }
}

static void mx_accept_input_bh(void *opaque)
{
    MemexposeState *s = opaque;

    qemu_chr_fe_accept_input(&s->chr);
}

static void *mx_worker(void *opaque)
{
    MemexposeState *s = opaque;
    MemexposeWork *w;

    rcu_register_thread();
    qemu_mutex_lock(&s->lock);
    for (;;) {
        while (!s->stopping && QSIMPLEQ_EMPTY(&s->work)) {
            qemu_cond_wait(&s->work_cond, &s->lock);
        }
        if (s->stopping) {
            break;
        }
        w = QSIMPLEQ_FIRST(&s->work);
        QSIMPLEQ_REMOVE_HEAD(&s->work, next);
        qemu_mutex_unlock(&s->lock);

        /* Requests of a link that has gone since are void. */
        if (w->epoch == qatomic_read(&s->epoch)) {
            mx_handle_work(s, &w->msg);
        }
        g_free(w);

        qemu_mutex_lock(&s->lock);
        if (s->nr_work-- == MX_MAX_WORK && !s->stopping) {
            aio_bh_schedule_oneshot(iothread_get_aio_context(s->iothread),
                                    mx_accept_input_bh, s);
        }
    }
    qemu_mutex_unlock(&s->lock);
    rcu_unregister_thread();
    return NULL;
}

/* ---- receiving ---- */

static void mx_send_hello(MemexposeState *s)
{
    MxpMsg msg = {
        .hdr = { .type = MXP_HELLO },
        .u.hello = {
            .magic = MXP_MAGIC,
            .version_major = MXP_VERSION_MAJOR,
            .version_minor = MXP_VERSION_MINOR,
            .features = MXP_FEAT_BULK | MXP_FEAT_HEARTBEAT | MXP_FEAT_BOOT |
                        (s->zero_copy ? MXP_FEAT_MAP : 0),
            .page_size = qemu_real_host_page_size(),
            .role = s->boot_target ? MXP_ROLE_BOOT_TARGET : MXP_ROLE_DEVICE,
            .vectors = s->vectors,
            .max_data = MXP_MAX_DATA,
        },
    };

    qemu_mutex_lock(&s->lock);
    /* Slots still holding doorbells of a previous link are not free. */
    msg.u.hello.queue_depth = s->queue_depth - s->rx_count;
    s->rx_stale = s->rx_count;
    s->hello_sent = true;
    qemu_mutex_unlock(&s->lock);
    pstrcpy(msg.u.hello.name, sizeof(msg.u.hello.name), s->name);
    memexpose_send(s, &msg, -1);
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

static void mx_handle_hello(MemexposeState *s, const MxpHello *h)
{
    qemu_mutex_lock(&s->lock);
    s->peer = *h;
    s->features = h->features & (MXP_FEAT_BULK | MXP_FEAT_HEARTBEAT |
                                 MXP_FEAT_BOOT |
                                 (s->zero_copy ? MXP_FEAT_MAP : 0));
    s->peer_boot_state = MXP_BOOT_NONE;
    s->max_data = MIN(h->max_data, MXP_MAX_DATA);
    s->tx_credits = h->queue_depth;
    s->tx_was_busy = false;
    s->up = true;
    s->epoch++;
    s->stats.link_ups++;
    g_array_set_size(s->granted, 0);
    s->last_rx_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    qemu_mutex_unlock(&s->lock);

    info_report("memexpose %s: link up with '%s'", s->name, h->name);
    qemu_bh_schedule(s->link_bh);
    memexpose_send_boot_state(s);
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

/* Iothread: complete the call @msg answers.  Takes ownership of @fd. */
static bool mx_complete_call(MemexposeState *s, const MxpMsg *msg, int fd)
{
    MemexposeCall *call;

    qemu_mutex_lock(&s->lock);
    QLIST_FOREACH(call, &s->calls, next) {
        if (call->id == msg->hdr.id && !call->done) {
            break;
        }
    }
    if (!call || !mx_reply_matches(call->type, msg->hdr.type)) {
        qemu_mutex_unlock(&s->lock);
        return false;
    }
    switch (msg->hdr.type) {
    case MXP_ERROR:
        call->err = msg->u.error.code ? msg->u.error.code : MXP_E_PROTOCOL;
        break;
    case MXP_READ_REPLY:
        if (msg->u.access.size != call->size ||
            msg->u.access.addr != call->addr) {
            qemu_mutex_unlock(&s->lock);
            return false;
        }
        memcpy(call->data, msg->u.access.data, msg->u.access.size);
        break;
    case MXP_MAP_REPLY:
        call->map = msg->u.map_reply;
        call->fd = fd;
        fd = -1;
        break;
    default:
        break;
    }
    call->done = true;
    qemu_cond_broadcast(&s->cond);
    qemu_mutex_unlock(&s->lock);
    return true;
}

static void mx_queue_work(MemexposeState *s, const MxpMsg *msg)
{
    MemexposeWork *w = g_new(MemexposeWork, 1);

    w->msg = *msg;
    /* Copy the data: the receive buffer is reused for the next message. */
    if (msg->hdr.type == MXP_WRITE) {
        memcpy(w->data, msg->u.access.data, msg->u.access.size);
        w->msg.u.access.data = w->data;
    } else if (msg->hdr.type == MXP_DOORBELL) {
        memcpy(w->data, msg->u.doorbell.data, msg->u.doorbell.size);
        w->msg.u.doorbell.data = w->data;
    }
    qemu_mutex_lock(&s->lock);
    w->epoch = s->epoch;
    QSIMPLEQ_INSERT_TAIL(&s->work, w, next);
    s->nr_work++;
    qemu_cond_signal(&s->work_cond);
    qemu_mutex_unlock(&s->lock);
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
        mx_protocol_error(s, "STATE %u from a peer that may not send it",
                          state);
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

static void mx_dispatch(MemexposeState *s, const MxpMsg *msg, int fd)
{
    uint16_t type = msg->hdr.type;
    bool up;

    qemu_mutex_lock(&s->lock);
    up = s->up;
    s->last_rx_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    qemu_mutex_unlock(&s->lock);

    if (!up && type != MXP_HELLO) {
        mx_protocol_error(s, "%s before HELLO", mxp_type_name(type));
        goto out;
    }
    if (mx_is_request(type) && msg->hdr.id == 0) {
        mx_protocol_error(s, "%s without a request id", mxp_type_name(type));
        goto out;
    }
    if (!mx_is_request(type) && !mxp_type_is_reply(type) && msg->hdr.id) {
        mx_protocol_error(s, "%s with a request id", mxp_type_name(type));
        goto out;
    }

    switch (type) {
    case MXP_HELLO:
        if (up) {
            mx_protocol_error(s, "second HELLO");
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
    case MXP_INVALIDATE_ACK:
        if (!mx_complete_call(s, msg, fd)) {
            mx_protocol_error(s, "unexpected %s for request %" PRIu64,
                              mxp_type_name(type), msg->hdr.id);
        } else {
            fd = -1;
        }
        break;
    case MXP_PING:
        mx_send_simple(s, MXP_PONG, msg->hdr.id);
        break;
    case MXP_PONG:
        break;
    case MXP_STATE:
        mx_handle_state(s, msg->u.state);
        break;
    case MXP_CREDIT:
        qemu_mutex_lock(&s->lock);
        s->tx_credits += msg->u.credits;
        if (s->tx_credits > s->peer.queue_depth) {
            qemu_mutex_unlock(&s->lock);
            mx_protocol_error(s, "more credits than queue slots");
            break;
        }
        if (s->tx_was_busy) {
            s->tx_was_busy = false;
            s->tx_ready_pending = true;
            qemu_bh_schedule(s->irq_bh);
        }
        qemu_mutex_unlock(&s->lock);
        break;
    default:
        mx_queue_work(s, msg);
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
    return backlog >= MX_MAX_WORK ? 0 : mx_bytes_wanted(s);
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
            mx_protocol_error(s, "file descriptor outside a message header");
            return;
        }
    }

    assert(size <= (int)mx_bytes_wanted(s));
    memcpy(s->rxbuf + s->rxlen, buf, size);
    s->rxlen += size;

    if (s->rxlen == MXP_HEADER_SIZE) {
        ret = mxp_decode_header(s->rxbuf, s->rxlen, &hdr);
        if (ret != MXP_OK) {
            s->rxlen = 0;
            mx_drop_rxfds(s);
            mx_protocol_error(s, "bad header: %s", mxp_status_str(ret));
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
        mx_protocol_error(s, "bad %s: %s", mxp_type_name(msg.hdr.type),
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
        s->rxlen = 0;
        mx_drop_rxfds(s);
        qemu_mutex_lock(&s->lock);
        s->connected = true;
        qemu_mutex_unlock(&s->lock);
        mx_send_hello(s);
        break;
    case CHR_EVENT_CLOSED:
        mx_link_down(s, "the peer closed the connection", false);
        break;
    default:
        break;
    }
}

static void mx_heartbeat(void *opaque)
{
    MemexposeState *s = opaque;
    int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    MxpMsg ping = { .hdr = { .type = MXP_PING } };
    bool up, silent;

    qemu_mutex_lock(&s->lock);
    up = s->up;
    silent = (s->features & MXP_FEAT_HEARTBEAT) &&
             now - s->last_rx_ms > MX_HEARTBEAT_MISSES * s->heartbeat_ms;
    ping.hdr.id = ++s->next_id;
    qemu_mutex_unlock(&s->lock);

    if (up && silent) {
        memexpose_link_down(s, "no heartbeat from the peer");
    } else if (up) {
        ping.u.ping = now;
        memexpose_send(s, &ping, -1);
    }
    timer_mod(s->heartbeat, now + s->heartbeat_ms);
}

/* ---- registers ---- */

bool memexpose_intx_level(MemexposeState *s)
{
    return s->intr_status & s->intr_mask;
}

static void mx_data_read(const uint8_t *area, hwaddr off, unsigned size,
                         uint64_t *val)
{
    *val = ldn_le_p(area + off, size);
}

uint64_t memexpose_reg_read(MemexposeState *s, hwaddr addr, unsigned size)
{
    uint64_t val = 0;

    if (addr >= MX_REG_DB_TX_DATA &&
        addr + size <= MX_REG_DB_TX_DATA + MXP_MAX_DOORBELL_DATA) {
        mx_data_read(s->tx_data, addr - MX_REG_DB_TX_DATA, size, &val);
        return val;
    }
    qemu_mutex_lock(&s->lock);
    if (addr >= MX_REG_DB_RX_DATA &&
        addr + size <= MX_REG_DB_RX_DATA + MXP_MAX_DOORBELL_DATA) {
        if (s->rx_count) {
            mx_data_read(s->rxq[s->rx_head].data, addr - MX_REG_DB_RX_DATA,
                         size, &val);
        }
        goto out;
    }
    if (addr >= MX_REG_PEER_NAME &&
        addr + size <= MX_REG_PEER_NAME + MXP_NAME_SIZE) {
        if (s->up) {
            mx_data_read((const uint8_t *)s->peer.name,
                         addr - MX_REG_PEER_NAME, size, &val);
        }
        goto out;
    }
    if (size != 4) {
        qemu_log_mask(LOG_GUEST_ERROR, "memexpose: %u-byte register read at"
                      " 0x%" HWADDR_PRIx "\n", size, addr);
        goto out;
    }
    switch (addr) {
    case MX_REG_ID:
        val = MXP_MAGIC;
        break;
    case MX_REG_VERSION:
        val = (MXP_VERSION_MAJOR << 16) | MXP_VERSION_MINOR;
        break;
    case MX_REG_LINK:
        val = (s->up ? MX_LINK_UP : 0) |
              (s->up && s->peer.role == MXP_ROLE_BOOT_TARGET ?
               MX_LINK_PEER_BOOT_TARGET : 0);
        break;
    case MX_REG_FEATURES:
        val = s->up ? (uint32_t)s->features : 0;
        break;
    case MX_REG_INTR_STATUS:
        val = s->intr_status;
        break;
    case MX_REG_INTR_MASK:
        val = s->intr_mask;
        break;
    case MX_REG_WINDOW_BASE_LO:
        val = (uint32_t)s->window_base;
        break;
    case MX_REG_WINDOW_BASE_HI:
        val = s->window_base >> 32;
        break;
    case MX_REG_WINDOW_SIZE_LO:
        val = (uint32_t)s->window_size;
        break;
    case MX_REG_WINDOW_SIZE_HI:
        val = s->window_size >> 32;
        break;
    case MX_REG_VECTORS:
        val = s->vectors | ((s->up ? s->peer.vectors : 0) << 8) |
              (s->queue_depth << 16);
        break;
    case MX_REG_LINK_EPOCH:
        val = s->epoch;
        break;
    case MX_REG_DB_TX_VECTOR:
        val = s->tx_vector;
        break;
    case MX_REG_DB_TX_LEN:
        val = s->tx_len;
        break;
    case MX_REG_DB_TX_STATUS:
        val = s->tx_status;
        break;
    case MX_REG_DB_TX_CREDITS:
        val = s->up ? s->tx_credits : 0;
        break;
    case MX_REG_DB_RX_COUNT:
        val = s->rx_count;
        break;
    case MX_REG_DB_RX_HEAD:
        val = s->rx_count ? s->rxq[s->rx_head].vector |
                            (s->rxq[s->rx_head].size << 16) : MX_RX_EMPTY;
        break;
    case MX_REG_DB_RX_PENDING_LO:
        val = (uint32_t)mx_rx_pending(s);
        break;
    case MX_REG_DB_RX_PENDING_HI:
        val = mx_rx_pending(s) >> 32;
        break;
    case MX_REG_BOOT_ENTRY_LO:
        val = (uint32_t)s->boot_entry;
        break;
    case MX_REG_BOOT_ENTRY_HI:
        val = s->boot_entry >> 32;
        break;
    case MX_REG_BOOT_NARGS:
        val = s->boot_nargs;
        break;
    case MX_REG_BOOT_STATUS:
        val = s->boot_status;
        break;
    case MX_REG_BOOT_PEER_STATE:
        val = s->up ? s->peer_boot_state : MXP_BOOT_NONE;
        break;
    case MX_REG_BOOT_STATE:
        val = s->boot_state;
        break;
    case MX_REG_BOOT_ARG_LO(0) ... MX_REG_BOOT_ARG_HI(MX_BOOT_MAX_ARGS - 1):
        val = extract64(s->boot_args[(addr - MX_REG_BOOT_ARG_LO(0)) / 8],
                        addr & 4 ? 32 : 0, 32);
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR, "memexpose: read of unknown register"
                      " 0x%" HWADDR_PRIx "\n", addr);
        break;
    }
out:
    qemu_mutex_unlock(&s->lock);
    return val;
}

static void mx_set_window_base(MemexposeState *s, uint64_t base)
{
    if (base == s->window_base) {
        return;
    }
    s->window_base = base;
    memexpose_unmap_all(s);
    memexpose_remap(s);
}

void memexpose_reg_write(MemexposeState *s, hwaddr addr, uint64_t val,
                         unsigned size)
{
    if (addr >= MX_REG_DB_TX_DATA &&
        addr + size <= MX_REG_DB_TX_DATA + MXP_MAX_DOORBELL_DATA) {
        stn_le_p(s->tx_data + (addr - MX_REG_DB_TX_DATA), size, val);
        return;
    }
    if (size != 4) {
        qemu_log_mask(LOG_GUEST_ERROR, "memexpose: %u-byte register write at"
                      " 0x%" HWADDR_PRIx "\n", size, addr);
        return;
    }
    switch (addr) {
    case MX_REG_INTR_STATUS:
        s->intr_status &= ~val;
        s->irq_notify(s, MX_IRQ_CONTROL);
        break;
    case MX_REG_INTR_MASK:
        s->intr_mask = val & MX_INTR_ALL;
        s->irq_notify(s, MX_IRQ_CONTROL);
        break;
    case MX_REG_WINDOW_BASE_LO:
        mx_set_window_base(s, deposit64(s->window_base, 0, 32, val));
        break;
    case MX_REG_WINDOW_BASE_HI:
        mx_set_window_base(s, deposit64(s->window_base, 32, 32, val));
        break;
    case MX_REG_DB_TX_LEN:
        s->tx_len = val;
        break;
    case MX_REG_DB_TX_VECTOR:
        s->tx_vector = val;
        mx_send_doorbell(s);
        break;
    case MX_REG_DB_RX_POP:
        mx_pop_doorbell(s);
        break;
    case MX_REG_BOOT_ENTRY_LO:
        s->boot_entry = deposit64(s->boot_entry, 0, 32, val);
        break;
    case MX_REG_BOOT_ENTRY_HI:
        s->boot_entry = deposit64(s->boot_entry, 32, 32, val);
        break;
    case MX_REG_BOOT_NARGS:
        s->boot_nargs = val;
        break;
    case MX_REG_BOOT_CMD:
        memexpose_boot_command(s, val);
        break;
    case MX_REG_BOOT_ARG_LO(0) ... MX_REG_BOOT_ARG_HI(MX_BOOT_MAX_ARGS - 1): {
        uint64_t *arg = &s->boot_args[(addr - MX_REG_BOOT_ARG_LO(0)) / 8];

        *arg = deposit64(*arg, addr & 4 ? 32 : 0, 32, val);
        break;
    }
    default:
        qemu_log_mask(LOG_GUEST_ERROR, "memexpose: write to read-only or"
                      " unknown register 0x%" HWADDR_PRIx "\n", addr);
        break;
    }
}

static uint64_t mx_reg_read_op(void *opaque, hwaddr addr, unsigned size)
{
    return memexpose_reg_read(opaque, addr, size);
}

static void mx_reg_write_op(void *opaque, hwaddr addr, uint64_t val,
                            unsigned size)
{
    memexpose_reg_write(opaque, addr, val, size);
}

static const MemoryRegionOps memexpose_reg_ops = {
    .read = mx_reg_read_op,
    .write = mx_reg_write_op,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 8 },
    .impl = { .min_access_size = 1, .max_access_size = 8 },
};

/* The register block, for the front end to map (BAR0, MMIO 0). */
void memexpose_init_regs(MemexposeState *s, MemoryRegion *mr)
{
    memory_region_init_io(mr, OBJECT(s->dev), &memexpose_reg_ops, s,
                          "memexpose-regs", MEMEXPOSE_REG_SIZE);
}

/* ---- life cycle ---- */

/*
 * Stop every thread of ours from touching the chardev and the link.
 * QEMU finalizes chardevs when it exits without unrealizing devices
 * first, so this runs from a shutdown notifier too; the chardev may be
 * freed right after.
 */
static void mx_detach(MemexposeState *s, const char *reason)
{
    if (s->detached) {
        return;
    }
    /* Nothing schedules work on the I/O thread from now on. */
    qemu_mutex_lock(&s->lock);
    s->stopping = true;
    qemu_cond_broadcast(&s->work_cond);
    qemu_mutex_unlock(&s->lock);
    /* No more receiving, heartbeats or chardev events. */
    iothread_stop(s->iothread);
    /* Wakes vCPUs waiting for replies; later accesses fail at once. */
    mx_link_down(s, reason, false);
    qemu_mutex_lock(&s->send_lock);
    s->detached = true;
    qemu_mutex_unlock(&s->send_lock);

    /* The worker may be waiting for the BQL to finish its last request. */
    bql_unlock();
    qemu_thread_join(&s->worker);
    bql_lock();

    /* Nothing runs in the stopped I/O thread: safe from here. */
    qemu_chr_fe_set_handlers(&s->chr, NULL, NULL, NULL, NULL, NULL, NULL,
                             true);
    g_clear_pointer(&s->heartbeat, timer_free);
}

static void mx_shutdown_notify(Notifier *notifier, void *data)
{
    MemexposeState *s = container_of(notifier, MemexposeState, shutdown);

    /* With -no-shutdown the VM only pauses and keeps its link. */
    if (shutdown_action != SHUTDOWN_ACTION_PAUSE) {
        mx_detach(s, "QEMU is exiting");
    }
}

static unsigned mx_instances;

void memexpose_realize(MemexposeState *s, Error **errp)
{
    g_autofree char *iothread_id = NULL;

    if (!qemu_chr_fe_backend_connected(&s->chr)) {
        error_setg(errp, "memexpose: the 'chardev' property is required");
        return;
    }
    if (s->window_size < 4096 || !is_power_of_2(s->window_size)) {
        error_setg(errp, "memexpose: window-size must be a power of two"
                   " of at least 4 KiB");
        return;
    }
    if (s->vectors < 1 || s->vectors > MXP_MAX_VECTORS) {
        error_setg(errp, "memexpose: vectors must be 1..%d", MXP_MAX_VECTORS);
        return;
    }
    if (s->queue_depth < 1 || s->queue_depth > MXP_MAX_QUEUE_DEPTH) {
        error_setg(errp, "memexpose: queue-depth must be 1..%d",
                   MXP_MAX_QUEUE_DEPTH);
        return;
    }
    if (s->timeout_ms < 1 || s->timeout_ms > 60000) {
        error_setg(errp, "memexpose: timeout must be 1..60000 ms");
        return;
    }
    if (s->heartbeat_ms < 10 || s->heartbeat_ms > 60000) {
        error_setg(errp, "memexpose: heartbeat must be 10..60000 ms");
        return;
    }
    if (!s->name) {
        s->name = g_strdup(s->dev->id ? s->dev->id : "memexpose");
    }
    if (strlen(s->name) >= MXP_NAME_SIZE) {
        error_setg(errp, "memexpose: name must be shorter than %d bytes",
                   MXP_NAME_SIZE);
        return;
    }
    for (const char *c = s->name; *c; c++) {
        if (*c < 0x20 || *c > 0x7e) {
            error_setg(errp, "memexpose: name must be printable ASCII");
            return;
        }
    }
    if (!memexpose_parse_exports(s, errp)) {
        return;
    }
    if (!memexpose_boot_realize(s, errp)) {
        g_clear_pointer(&s->exports, g_free);
        return;
    }

    error_setg(&s->migration_blocker,
               "memexpose: migration is not supported; the window maps the"
               " peer's memory");
    if (migrate_add_blocker(&s->migration_blocker, errp) < 0) {
        memexpose_boot_unrealize(s);
        g_clear_pointer(&s->exports, g_free);
        return;
    }

    qemu_mutex_init(&s->lock);
    qemu_mutex_init(&s->send_lock);
    qemu_cond_init(&s->cond);
    qemu_cond_init(&s->work_cond);
    s->granted = g_array_new(false, false, sizeof(MxpRange));
    s->changed = g_array_new(false, false, sizeof(MxpRange));
    QLIST_INIT(&s->calls);
    QSIMPLEQ_INIT(&s->work);
    s->rxq = g_new0(MemexposeDoorbell, s->queue_depth);
    s->link_bh = qemu_bh_new(mx_link_bh, s);
    s->irq_bh = qemu_bh_new(mx_irq_bh, s);
    memexpose_window_init(s);
    memexpose_listener_init(s);

    iothread_id = g_strdup_printf("memexpose-%u", mx_instances++);
    s->iothread = iothread_create(iothread_id, errp);
    if (!s->iothread) {
        memexpose_unrealize(s);
        return;
    }
    qemu_thread_create(&s->worker, "memexpose-srv", mx_worker, s,
                       QEMU_THREAD_JOINABLE);
    s->heartbeat = aio_timer_new(iothread_get_aio_context(s->iothread),
                                 QEMU_CLOCK_REALTIME, SCALE_MS,
                                 mx_heartbeat, s);
    timer_mod(s->heartbeat,
              qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + s->heartbeat_ms);
    qemu_chr_fe_set_handlers(&s->chr, mx_chr_can_read, mx_chr_read,
                             mx_chr_event, NULL, s,
                             iothread_get_g_main_context(s->iothread), true);
    s->shutdown.notify = mx_shutdown_notify;
    qemu_register_shutdown_notifier(&s->shutdown);
}

void memexpose_unrealize(MemexposeState *s)
{
    MemexposeWork *w;

    if (!s->iothread) {
        /* Realize failed half way. */
        memexpose_boot_unrealize(s);
        g_clear_pointer(&s->exports, g_free);
        migrate_del_blocker(&s->migration_blocker);
        return;
    }
    notifier_remove(&s->shutdown);
    memory_listener_unregister(&s->listener);
    mx_detach(s, "device removed");
    iothread_destroy(s->iothread);
    s->iothread = NULL;

    while ((w = QSIMPLEQ_FIRST(&s->work))) {
        QSIMPLEQ_REMOVE_HEAD(&s->work, next);
        g_free(w);
    }
    memexpose_unmap_all(s);
    /* The subregion holds a reference on its owner, us: let go of it. */
    memory_region_del_subregion(&s->window, &s->forward);
    qemu_bh_delete(s->link_bh);
    qemu_bh_delete(s->irq_bh);
    qemu_bh_delete(s->remap_bh);
    g_free(s->rxq);
    g_free(s->exports);
    g_array_free(s->granted, true);
    g_array_free(s->changed, true);
    memexpose_boot_unrealize(s);
    migrate_del_blocker(&s->migration_blocker);
}

void memexpose_reset(MemexposeState *s)
{
    s->intr_status = 0;
    s->intr_mask = 0;
    s->tx_status = MX_TX_OK;
    s->boot_entry = 0;
    s->boot_nargs = 0;
    memset(s->boot_args, 0, sizeof(s->boot_args));
    s->boot_status = MX_BOOT_OK;
    mx_set_window_base(s, 0);
}

/* ---- QOM properties for observability ---- */

static void mx_get_link_up(Object *obj, Visitor *v, const char *name,
                           void *opaque, Error **errp)
{
    MemexposeState *s = opaque;
    bool up = s->iothread && qatomic_read(&s->up);

    visit_type_bool(v, name, &up, errp);
}

static void mx_get_peer_name(Object *obj, Visitor *v, const char *name,
                             void *opaque, Error **errp)
{
    MemexposeState *s = opaque;
    char peer[MXP_NAME_SIZE] = "";
    char *p = peer;

    if (s->iothread) {
        qemu_mutex_lock(&s->lock);
        if (s->up) {
            pstrcpy(peer, sizeof(peer), s->peer.name);
        }
        qemu_mutex_unlock(&s->lock);
    }
    visit_type_str(v, name, &p, errp);
}

QEMU_BUILD_BUG_ON(MX_BOOT_MAX_ARGS != MXP_BOOT_ARGS);

static const Property memexpose_properties[] = {
    DEFINE_PROP_CHR("chardev", MemexposeState, chr),
    DEFINE_PROP_STRING("export", MemexposeState, export_spec),
    DEFINE_PROP_STRING("name", MemexposeState, name),
    DEFINE_PROP_SIZE("window-size", MemexposeState, window_size, 0),
    DEFINE_PROP_UINT32("vectors", MemexposeState, vectors,
                       MEMEXPOSE_DEFAULT_VECTORS),
    DEFINE_PROP_UINT32("queue-depth", MemexposeState, queue_depth,
                       MEMEXPOSE_DEFAULT_QUEUE),
    DEFINE_PROP_UINT32("timeout", MemexposeState, timeout_ms,
                       MEMEXPOSE_DEFAULT_TIMEOUT_MS),
    DEFINE_PROP_UINT32("heartbeat", MemexposeState, heartbeat_ms,
                       MEMEXPOSE_DEFAULT_HEARTBEAT_MS),
    DEFINE_PROP_BOOL("zero-copy", MemexposeState, zero_copy, true),
    DEFINE_PROP_BOOL("trust-peer", MemexposeState, trust_peer, false),
    DEFINE_PROP_BOOL("boot-target", MemexposeState, boot_target, false),
};

/*
 * Every front end has the same properties; they live in the core, which
 * the front end embeds at @core_offset.  The window's default size
 * depends on where the front end puts it.
 */
void memexpose_class_set_props(DeviceClass *dc, size_t core_offset,
                               uint64_t default_window)
{
    Property *props = g_memdup2(memexpose_properties,
                                sizeof(memexpose_properties));
    unsigned i;

    for (i = 0; i < ARRAY_SIZE(memexpose_properties); i++) {
        props[i].offset += core_offset;
        if (!strcmp(props[i].name, "window-size")) {
            props[i].defval.u = default_window;
        }
    }
    device_class_set_props_n(dc, props, ARRAY_SIZE(memexpose_properties));
}

void memexpose_add_properties(Object *obj, MemexposeState *s)
{
    static const struct {
        const char *name;
        size_t offset;
    } counters[] = {
        { "forwarded-reads", offsetof(MemexposeCounters, fwd_reads) },
        { "forwarded-writes", offsetof(MemexposeCounters, fwd_writes) },
        { "served-reads", offsetof(MemexposeCounters, served_reads) },
        { "served-writes", offsetof(MemexposeCounters, served_writes) },
        { "refused-accesses", offsetof(MemexposeCounters, refused) },
        { "mapped-bytes", offsetof(MemexposeCounters, mapped_bytes) },
        { "mappings-made", offsetof(MemexposeCounters, maps) },
        { "doorbells-sent", offsetof(MemexposeCounters, db_sent) },
        { "doorbells-received", offsetof(MemexposeCounters, db_received) },
        { "doorbells-dropped", offsetof(MemexposeCounters, db_lost) },
        { "timeouts", offsetof(MemexposeCounters, timeouts) },
        { "link-ups", offsetof(MemexposeCounters, link_ups) },
        { "invalidations", offsetof(MemexposeCounters, invalidations) },
    };
    unsigned i;

    for (i = 0; i < ARRAY_SIZE(counters); i++) {
        object_property_add_uint64_ptr(obj, counters[i].name,
                                       (uint64_t *)((char *)&s->stats +
                                                    counters[i].offset),
                                       OBJ_PROP_FLAG_READ);
    }
    object_property_add(obj, "link-up", "bool", mx_get_link_up, NULL, NULL,
                        s);
    object_property_add(obj, "peer-name", "str", mx_get_peer_name, NULL,
                        NULL, s);
}
