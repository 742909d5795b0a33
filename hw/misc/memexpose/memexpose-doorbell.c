/*
 * memexpose doorbells: sending with the peer's credits, the receive
 * queue the guest pops, and the credits we return.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "memexpose.h"

void memexpose_doorbell_send(MemexposeState *s)
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
void memexpose_doorbell_receive(MemexposeState *s, const MxpMsg *msg)
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
        memexpose_protocol_error(s, "doorbell for vector %u of %u", db->vector,
                          s->vectors);
        return;
    }
    if (s->rx_count >= s->queue_depth) {
        qemu_mutex_unlock(&s->lock);
        bql_unlock();
        memexpose_protocol_error(s, "doorbell without credit");
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

/* IOThread: the peer freed @credits slots of its queue. */
void memexpose_doorbell_credit(MemexposeState *s, uint32_t credits)
{
    qemu_mutex_lock(&s->lock);
    s->tx_credits += credits;
    if (s->tx_credits > s->peer.queue_depth) {
        qemu_mutex_unlock(&s->lock);
        memexpose_protocol_error(s, "more credits than queue slots");
        return;
    }
    if (s->tx_was_busy) {
        s->tx_was_busy = false;
        s->tx_ready_pending = true;
        qemu_bh_schedule(s->irq_bh);
    }
    qemu_mutex_unlock(&s->lock);
}

/* Guest popped the queue head: return the slot to the peer as credit. */
void memexpose_doorbell_pop(MemexposeState *s)
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

uint64_t memexpose_doorbell_pending(MemexposeState *s)
{
    uint64_t pending = 0;
    uint32_t i;

    for (i = 0; i < s->rx_count; i++) {
        pending |= 1ULL << s->rxq[(s->rx_head + i) % s->queue_depth].vector;
    }
    return pending;
}
