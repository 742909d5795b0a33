/*
 * memexpose serving: the worker thread that performs the peer's requests
 * in order (accesses to our memory, MAP, doorbell delivery, boot
 * requests), taking the BQL only where QEMU requires it.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "qemu/rcu.h"
#include "block/aio.h"
#include "memexpose.h"

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

static bool mx_access_size_ok(MemexposeState *s, const MxpAccess *acc)
{
    bool plain = acc->size == 1 || acc->size == 2 || acc->size == 4 ||
                 acc->size == 8;

    return acc->size <= s->max_data &&
           (plain || (s->features & MXP_FEAT_BULK));
}

/* The access was performed: ACK a WRITE, READ_REPLY a READ. */
static void mx_reply_access(MemexposeState *s, const MxpMsg *req,
                            const uint8_t *data)
{
    const MxpAccess *acc = &req->u.access;

    if (req->hdr.type == MXP_WRITE) {
        qatomic_inc(&s->stats.served_writes);
        memexpose_send_simple(s, MXP_ACK, req->hdr.id);
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

/*
 * I/O thread: perform a READ or WRITE of our RAM at once, without waking
 * the worker and without the BQL.  Only when nothing is queued before it
 * (requests are performed in the order received) and only for plain RAM
 * that the policy lets the peer reach; MMIO, ROM, peer memory in a
 * window and every refusal go to the worker.  True if served.
 */
bool memexpose_serve_access_now(MemexposeState *s, const MxpMsg *req)
{
    const MxpAccess *acc = &req->u.access;
    bool write = req->hdr.type == MXP_WRITE;
    const MemexposeExport *exp;
    uint8_t data[MXP_MAX_DATA];
    MemoryRegionCache cache;
    bool idle, direct;

    qemu_mutex_lock(&s->lock);
    idle = QSIMPLEQ_EMPTY(&s->work) && !s->worker_busy;
    qemu_mutex_unlock(&s->lock);
    if (!idle || !mx_access_size_ok(s, acc)) {
        return false;
    }
    exp = memexpose_find_export(s, acc->addr, acc->size);
    if (!exp || (write && !exp->writable)) {
        return false;
    }
    /* A cache maps only RAM directly (ptr); it never dispatches MMIO. */
    direct = address_space_cache_init(&cache, &address_space_memory,
                                      acc->addr, acc->size, write) ==
             acc->size &&
             cache.ptr && !memexpose_is_imported(cache.mrs.mr);
    if (direct && write) {
        address_space_write_cached(&cache, 0, acc->data, acc->size);
        /* Dirty tracking and translated code see the write. */
        address_space_cache_invalidate(&cache, 0, acc->size);
    } else if (direct) {
        address_space_read_cached(&cache, 0, data, acc->size);
    }
    address_space_cache_destroy(&cache);
    if (direct) {
        mx_reply_access(s, req, data);
    }
    return direct;
}

static void mx_serve_access(MemexposeState *s, const MxpMsg *req)
{
    const MxpAccess *acc = &req->u.access;
    bool write = req->hdr.type == MXP_WRITE;
    const MemexposeExport *exp;
    uint8_t data[MXP_MAX_DATA];
    MemTxResult res;

    if (!mx_access_size_ok(s, acc)) {
        qatomic_inc(&s->stats.refused);
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
    /* Unassigned space inside an export is a decode error: ACCESS too. */
    if (res != MEMTX_OK) {
        qatomic_inc(&s->stats.refused);
        memexpose_reply_error(s, req, MXP_E_ACCESS, acc->addr);
        return;
    }
    mx_reply_access(s, req, data);
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
    case MXP_DOORBELL:
        memexpose_doorbell_receive(s, msg, false);
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

void *memexpose_worker(void *opaque)
{
    MemexposeState *s = opaque;
    MemexposeWork *w;
    bool counted;

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
        s->worker_busy = true;
        qemu_mutex_unlock(&s->lock);

        counted = w->msg.hdr.type != MXP_DOORBELL;
        if (w->epoch == qatomic_read(&s->epoch)) {
            /* A doorbell leaves nr_doorbell_work as it is queued. */
            mx_handle_work(s, &w->msg);
        } else if (!counted) {
            /*
             * A doorbell was delivered when the peer sent it; the queue
             * outlives the link.  Its slot was kept out of the next
             * link's HELLO, so no credit of that link pays for it.
             */
            memexpose_doorbell_receive(s, &w->msg, true);
        }
        /* The other requests of a link that has gone since are void. */
        g_free(w);

        qemu_mutex_lock(&s->lock);
        s->worker_busy = false;
        if (!counted) {
            continue;
        }
        if (s->nr_work-- == MEMEXPOSE_MAX_WORK && !s->stopping) {
            aio_bh_schedule_oneshot(iothread_get_aio_context(s->iothread),
                                    mx_accept_input_bh, s);
        }
    }
    qemu_mutex_unlock(&s->lock);
    rcu_unregister_thread();
    return NULL;
}

/*
 * I/O thread: hand the peer's request to the worker.  Doorbells are
 * bounded by the credits we gave, so only the other requests count
 * towards MEMEXPOSE_MAX_WORK (see "Concurrency" in the spec).
 */
void memexpose_queue_work(MemexposeState *s, const MxpMsg *msg)
{
    bool doorbell = msg->hdr.type == MXP_DOORBELL;
    MemexposeWork *w;

    if (doorbell) {
        bool credit;

        /*
         * Checked on receipt, in the I/O thread, so that the ERROR goes
         * out before the connection is closed.
         */
        if (msg->u.doorbell.vector >= s->vectors) {
            memexpose_link_error(s, MXP_E_BAD_VECTOR, MXP_DOORBELL,
                                 "doorbell for vector %u of %u",
                                 msg->u.doorbell.vector, s->vectors);
            return;
        }
        qemu_mutex_lock(&s->lock);
        credit = s->rx_count + s->nr_doorbell_work < s->queue_depth;
        s->nr_doorbell_work += credit;
        qemu_mutex_unlock(&s->lock);
        if (!credit) {
            memexpose_link_error(s, MXP_E_BUSY, MXP_DOORBELL,
                                 "doorbell without credit");
            return;
        }
    }
    w = g_new(MemexposeWork, 1);
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
    s->nr_work += !doorbell;
    qemu_cond_signal(&s->work_cond);
    qemu_mutex_unlock(&s->lock);
}
