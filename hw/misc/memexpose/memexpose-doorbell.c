/*
 * memexpose doorbells: sending with the peer's credits, the receive
 * queue the guest pops, and the credits we return.  Two transports:
 * DOORBELL and CREDIT messages on the socket, or (MXP_FEAT_DB_RING) a
 * ring in a sealed memfd owned by the receiver plus one eventfd per
 * vector, which keeps the socket and the link's threads off the path:
 * the sender's vCPU writes the entry and the eventfd, the receiver's
 * main loop copies it into the queue and raises the interrupt.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/memfd.h"
#include "memexpose.h"

static bool mx_ring_mode(MemexposeState *s)
{
    return s->features & MXP_FEAT_DB_RING;
}

static uint32_t *mx_ring_word(MemexposeRing *r, size_t off)
{
    return (uint32_t *)(r->base + off);
}

static uint8_t *mx_ring_slot(MemexposeRing *r, uint32_t index)
{
    return r->base + MXP_DB_RING_ENTRIES +
           (size_t)(index % r->depth) * MXP_DB_ENTRY_SIZE;
}

/*
 * Entries of the peer's ring in use, from our producer index and the
 * consumer index the peer wrote; more than the ring holds is a lie.
 */
static bool mx_tx_ring_used(MemexposeState *s, uint32_t *used)
{
    MemexposeRing *r = s->tx_ring;
    uint32_t consumer =
        qatomic_load_acquire(mx_ring_word(r, MXP_DB_RING_CONSUMER));

    *used = s->tx_produced - consumer;
    return *used <= r->depth;
}

/* With @lock: credits the guest may spend now. */
uint32_t memexpose_doorbell_credits(MemexposeState *s)
{
    uint32_t used;

    if (!s->up) {
        return 0;
    }
    if (!mx_ring_mode(s)) {
        return s->tx_credits;
    }
    return mx_tx_ring_used(s, &used) ? s->tx_ring->depth - used : 0;
}

static const char mx_bad_consumer[] =
    "the peer's doorbell ring has a consumer index beyond its producer index";

typedef enum MxRingSend {
    MX_RING_SENT,
    MX_RING_FULL,
    MX_RING_BAD_CONSUMER,
    MX_RING_BAD_EVENTFD,
} MxRingSend;

/*
 * With @lock (which keeps the ring mapped; the eventfd write cannot
 * block, see memexpose_ring_peer_event): publish one entry.
 */
static MxRingSend mx_ring_send(MemexposeState *s)
{
    MemexposeRing *r = s->tx_ring;
    static const uint64_t one = 1;
    uint32_t used;
    uint8_t *slot;
    int fd;

    if (!mx_tx_ring_used(s, &used)) {
        return MX_RING_BAD_CONSUMER;
    }
    if (used == r->depth) {
        /*
         * Ask for DB_SPACE, then look again: either the receiver sees
         * the flag when it frees a slot, or we see the slot (Dekker).
         */
        qatomic_set(mx_ring_word(r, MXP_DB_RING_WAITING), 1);
        smp_mb(); /* pairs with the one in memexpose_doorbell_pop() */
        if (!mx_tx_ring_used(s, &used)) {
            return MX_RING_BAD_CONSUMER;
        }
        if (used == r->depth) {
            return MX_RING_FULL;
        }
    }

    slot = mx_ring_slot(r, s->tx_produced);
    stw_he_p(slot, s->tx_vector);
    stw_he_p(slot + 2, s->tx_len);
    stl_he_p(slot + 4, 0);
    memcpy(slot + 8, s->tx_data, s->tx_len);
    s->tx_produced++;
    qatomic_store_release(mx_ring_word(r, MXP_DB_RING_PRODUCER),
                          s->tx_produced);

    fd = event_notifier_get_fd(&r->events[s->tx_vector].notifier);
    /* The flag is shared with the receiver: it must not have cleared it. */
    if (!(fcntl(fd, F_GETFL) & O_NONBLOCK)) {
        return MX_RING_BAD_EVENTFD;
    }
    if (write(fd, &one, sizeof(one)) != sizeof(one)) {
        /* Only a receiver that fills its own counter gets EAGAIN. */
        return MX_RING_BAD_EVENTFD;
    }
    return MX_RING_SENT;
}

void memexpose_doorbell_send(MemexposeState *s)
{
    MxpMsg msg = { .hdr = { .type = MXP_DOORBELL } };
    uint32_t status = MX_TX_OK;
    MxRingSend ring = MX_RING_FULL;
    bool ring_mode;

    qemu_mutex_lock(&s->lock);
    ring_mode = mx_ring_mode(s);
    if (!s->up) {
        status = MX_TX_LINK_DOWN;
    } else if (s->tx_vector >= s->peer.vectors) {
        status = MX_TX_BAD_VECTOR;
    } else if (s->tx_len > MXP_MAX_DOORBELL_DATA) {
        status = MX_TX_BAD_LENGTH;
    } else if (ring_mode) {
        ring = mx_ring_send(s);
        if (ring == MX_RING_FULL) {
            status = MX_TX_BUSY;
            s->tx_was_busy = true;
            s->stats.db_lost++;
        }
    } else if (s->tx_credits == 0) {
        status = MX_TX_BUSY;
        s->tx_was_busy = true;
        s->stats.db_lost++;
    } else {
        s->tx_credits--;
    }
    qemu_mutex_unlock(&s->lock);

    if (ring == MX_RING_BAD_CONSUMER) {
        memexpose_protocol_error(s, "%s", mx_bad_consumer);
        status = MX_TX_LINK_DOWN;
    } else if (ring == MX_RING_BAD_EVENTFD) {
        memexpose_protocol_error(s, "the peer's doorbell eventfd for vector"
                                 " %u does not take a signal", s->tx_vector);
        status = MX_TX_LINK_DOWN;
    }
    s->tx_status = status;
    if (status != MX_TX_OK) {
        return;
    }
    if (ring_mode) {
        qatomic_inc(&s->stats.db_sent);
        return;
    }
    msg.u.doorbell.vector = s->tx_vector;
    msg.u.doorbell.size = s->tx_len;
    msg.u.doorbell.data = s->tx_data;
    memexpose_send(s, &msg, -1);
    qatomic_inc(&s->stats.db_sent);
}

/*
 * Worker: queue a doorbell from the peer.  @stale: its link has gone
 * since, so popping it returns no credit.
 */
void memexpose_doorbell_receive(MemexposeState *s, const MxpMsg *msg,
                                bool stale)
{
    const MxpDoorbell *db = &msg->u.doorbell;
    MemexposeDoorbell *slot;

    /*
     * Registers are read under the BQL: holding it while queueing means
     * the guest never sees the entry without its interrupt status.
     */
    bql_lock();
    qemu_mutex_lock(&s->lock);
    /*
     * memexpose_queue_work() checked the vector and the credit.  The
     * doorbell moves from the work queue to the receive queue in one
     * step, so that the credit check on receipt never misses it.
     */
    s->nr_doorbell_work--;
    if (s->rx_count >= s->queue_depth) {
        qemu_mutex_unlock(&s->lock);
        bql_unlock();
        /* Its slot was reserved: only a broken count gets here. */
        if (!stale) {
            memexpose_link_error(s, MXP_E_BUSY, MXP_DOORBELL,
                                 "doorbell without credit");
        }
        return;
    }
    slot = &s->rxq[(s->rx_head + s->rx_count) % s->queue_depth];
    slot->vector = db->vector;
    slot->size = db->size;
    memcpy(slot->data, db->data, db->size);
    s->rx_count++;
    s->rx_stale += stale;
    s->stats.db_received++;
    qemu_mutex_unlock(&s->lock);

    memexpose_doorbell_notify(s, 1ULL << db->vector);
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
    bool send;

    qemu_mutex_lock(&s->lock);
    if (s->rx_count == 0) {
        qemu_mutex_unlock(&s->lock);
        return;
    }
    s->rx_head = (s->rx_head + 1) % s->queue_depth;
    s->rx_count--;
    send = s->up;
    if (s->rx_stale) {
        /* The peer of this link never spent a credit on it. */
        s->rx_stale--;
        send = false;
    } else if (mx_ring_mode(s) && s->rx_ring) {
        MemexposeRing *r = s->rx_ring;

        /* The credit is the consumer index; DB_SPACE if the peer waits. */
        s->rx_freed++;
        qatomic_store_release(mx_ring_word(r, MXP_DB_RING_CONSUMER),
                              s->rx_freed);
        smp_mb(); /* pairs with the one in mx_ring_send() */
        msg.hdr.type = MXP_DB_SPACE;
        send = qatomic_xchg(mx_ring_word(r, MXP_DB_RING_WAITING), 0) != 0;
    } else if (mx_ring_mode(s)) {
        send = false;
    }
    qemu_mutex_unlock(&s->lock);

    if (send) {
        memexpose_send(s, &msg, -1);
    }
}

/*
 * DB_RX_TAKE: the queue head, as DB_RX_HEAD shows it, popped in the same
 * access; its payload stays readable in DB_RX_TAKEN_DATA.  One trap per
 * doorbell instead of a HEAD read and a POP write.
 */
uint32_t memexpose_doorbell_take(MemexposeState *s)
{
    MemexposeDoorbell *head;

    qemu_mutex_lock(&s->lock);
    if (s->rx_count == 0) {
        qemu_mutex_unlock(&s->lock);
        return MX_RX_EMPTY;
    }
    head = &s->rxq[s->rx_head];
    s->rx_taken.vector = head->vector;
    s->rx_taken.size = head->size;
    memcpy(s->rx_taken.data, head->data, head->size);
    memset(s->rx_taken.data + head->size, 0,
           MXP_MAX_DOORBELL_DATA - head->size);
    qemu_mutex_unlock(&s->lock);
    /* Under the BQL, like every register access: nothing popped since. */
    memexpose_doorbell_pop(s);
    return s->rx_taken.vector | (s->rx_taken.size << 16);
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

/* ---- MXP_FEAT_DB_RING: setting up and tearing down the rings ---- */

static void mx_ring_free(MemexposeRing *r)
{
    unsigned i;

    for (i = 0; i < r->nr_events; i++) {
        if (r->handlers_set) {
            qemu_set_fd_handler(event_notifier_get_fd(&r->events[i].notifier),
                                NULL, NULL, NULL);
        }
        event_notifier_cleanup(&r->events[i].notifier);
    }
    if (r->base) {
        munmap(r->base, r->size);
    }
    if (r->memfd >= 0) {
        close(r->memfd);
    }
    g_free(r);
}

/*
 * With @lock: move what the peer published in our ring into the receive
 * queue, adding each entry's vector to *@vectors.  Each entry is copied
 * out of the shared page once and checked there; the peer's producer
 * index may not pass the slots it was given.  Returns why the ring is
 * broken, or NULL.
 */
static const char *mx_ring_collect_locked(MemexposeState *s,
                                          MemexposeRing *r,
                                          uint64_t *vectors)
{
    uint32_t produced, pending;

    produced = qatomic_load_acquire(mx_ring_word(r, MXP_DB_RING_PRODUCER));
    pending = produced - s->rx_freed;
    if (pending > r->depth || pending < s->rx_drained - s->rx_freed) {
        return "producer index outside the slots it was given";
    }
    while (s->rx_drained != produced) {
        uint8_t entry[MXP_DB_ENTRY_SIZE];
        MemexposeDoorbell *slot;
        uint16_t vector, size;

        memcpy(entry, mx_ring_slot(r, s->rx_drained), sizeof(entry));
        vector = lduw_he_p(entry);
        size = lduw_he_p(entry + 2);
        if (vector >= s->vectors) {
            return "an entry for a vector we do not have";
        }
        if (size > MXP_MAX_DOORBELL_DATA || ldl_he_p(entry + 4)) {
            return "a malformed entry";
        }
        if (s->rx_count >= s->queue_depth) {
            return "more entries than it has credits for";
        }
        slot = &s->rxq[(s->rx_head + s->rx_count) % s->queue_depth];
        slot->vector = vector;
        slot->size = size;
        memcpy(slot->data, entry + 8, size);
        s->rx_count++;
        s->rx_drained++;
        s->stats.db_received++;
        *vectors |= 1ULL << vector;
    }
    return NULL;
}

/* With the BQL: the guest learns of doorbells queued for @vectors. */
void memexpose_doorbell_notify(MemexposeState *s, uint64_t vectors)
{
    unsigned v;

    if (!vectors) {
        return;
    }
    s->intr_status |= MX_INTR_DOORBELL;
    for (v = 0; v < s->vectors; v++) {
        if (vectors & (1ULL << v)) {
            s->irq_notify(s, MX_IRQ_DOORBELL(v));
        }
    }
}

/* Main loop, on the peer's eventfd. */
static void mx_ring_drain(MemexposeState *s, MemexposeRing *r)
{
    uint64_t vectors = 0;
    const char *bad = NULL;

    qemu_mutex_lock(&s->lock);
    if (r == s->rx_ring) {
        bad = mx_ring_collect_locked(s, r, &vectors);
    }
    qemu_mutex_unlock(&s->lock);

    if (bad) {
        memexpose_protocol_error(s, "doorbell ring: %s", bad);
    }
    memexpose_doorbell_notify(s, vectors);
}

/*
 * Clear one of our receive eventfds without ever blocking.  The peer
 * holds the same open file: it can clear O_NONBLOCK and empty the
 * counter between our poll and our read, which would make a plain read()
 * hang the main loop.  RWF_NOWAIT fails with EAGAIN whatever the file's
 * flags; only kernels without it for eventfds fall back on O_NONBLOCK.
 */
static void mx_event_clear(int fd)
{
    uint64_t count;
    struct iovec iov = { .iov_base = &count, .iov_len = sizeof(count) };

#ifdef RWF_NOWAIT
    if (preadv2(fd, &iov, 1, -1, RWF_NOWAIT) >= 0 || errno != EOPNOTSUPP) {
        return;
    }
#endif
    if (g_unix_set_fd_nonblocking(fd, true, NULL)) {
        if (read(fd, &count, sizeof(count)) < 0) {
            /* EAGAIN: the peer emptied it, nothing to clear */
        }
    }
}

static void mx_ring_notified(void *opaque)
{
    MemexposeRingEvent *ev = opaque;

    mx_event_clear(event_notifier_get_fd(&ev->notifier));
    mx_ring_drain(ev->s, ev->ring);
}

/*
 * Main loop: free our rings of earlier links and watch the eventfds of
 * the current one (the I/O thread that made it may not touch the main
 * loop's handlers).
 */
void memexpose_ring_bh(void *opaque)
{
    MemexposeState *s = opaque;
    MemexposeRing *current;
    GSList *retired;
    unsigned i;

    qemu_mutex_lock(&s->lock);
    retired = s->retired_rings;
    s->retired_rings = NULL;
    current = s->rx_ring;
    qemu_mutex_unlock(&s->lock);

    g_slist_free_full(retired, (GDestroyNotify)mx_ring_free);
    /* A ring retired meanwhile is on the list again: freed next time. */
    if (current && !current->handlers_set) {
        for (i = 0; i < current->nr_events; i++) {
            qemu_set_fd_handler(
                event_notifier_get_fd(&current->events[i].notifier),
                mx_ring_notified, NULL, &current->events[i]);
        }
        current->handlers_set = true;
    }
}

/*
 * I/O thread, after the peer's HELLO agreed on MXP_FEAT_DB_RING: make
 * our ring with the slots our HELLO offered and hand it over.
 */
bool memexpose_ring_offer(MemexposeState *s)
{
    MemexposeRing *r = g_new0(MemexposeRing, 1);
    MxpMsg msg = { };
    Error *err = NULL;
    unsigned i;

    r->memfd = -1;
    r->depth = s->hello_depth;
    r->size = ROUND_UP(MXP_DB_RING_SIZE(r->depth), qemu_real_host_page_size());
    r->memfd = qemu_memfd_create("memexpose-doorbells", r->size, false, 0,
                                 F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL,
                                 &err);
    if (r->memfd < 0) {
        error_report_err(err);
        goto fail;
    }
    r->base = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED,
                   r->memfd, 0);
    if (r->base == MAP_FAILED) {
        r->base = NULL;
        goto fail;
    }
    for (i = 0; i < s->vectors; i++) {
        if (event_notifier_init(&r->events[i].notifier, false) < 0) {
            goto fail;
        }
        r->events[i].s = s;
        r->events[i].ring = r;
        r->nr_events++;
    }

    qemu_mutex_lock(&s->lock);
    if (!s->hello_received) {
        /* The link went down meanwhile. */
        qemu_mutex_unlock(&s->lock);
        mx_ring_free(r);
        return true;
    }
    assert(!s->rx_ring);
    s->rx_ring = r;
    s->rx_drained = 0;
    s->rx_freed = 0;
    qemu_mutex_unlock(&s->lock);
    qemu_bh_schedule(s->ring_bh);

    /* The ring stays ours until ring_bh frees it: the fds outlive this. */
    msg.hdr.type = MXP_DB_RING;
    msg.u.ring_depth = r->depth;
    memexpose_send(s, &msg, r->memfd);
    for (i = 0; i < r->nr_events; i++) {
        msg.hdr.type = MXP_DB_EVENT;
        msg.u.event_vector = i;
        memexpose_send(s, &msg,
                       event_notifier_get_fd(&r->events[i].notifier));
    }
    return true;

fail:
    error_report("memexpose %s: cannot make the doorbell ring: %s", s->name,
                 strerror(errno));
    mx_ring_free(r);
    return false;
}

/* With @lock: the peer's ring is complete once every eventfd is in. */
static bool mx_tx_ring_complete(MemexposeState *s)
{
    return s->tx_ring && s->tx_ring->nr_events == s->peer.vectors;
}

/*
 * I/O thread: the peer's DB_RING.  Takes @fd.  Returns true when the
 * ring is complete (a peer without vectors sends no DB_EVENT).
 */
bool memexpose_ring_peer(MemexposeState *s, uint32_t depth, int fd)
{
    size_t size = MXP_DB_RING_SIZE(depth);
    const char *bad = NULL;
    MemexposeRing *r;
    struct stat st;
    int seals;
    void *base;

    qemu_mutex_lock(&s->lock);
    if (s->tx_ring) {
        bad = "a second DB_RING";
    } else if (!s->hello_received) {
        bad = "DB_RING outside the handshake";
    } else if (depth != s->peer.queue_depth) {
        bad = "DB_RING of another depth than its HELLO offered";
    }
    qemu_mutex_unlock(&s->lock);
    if (bad) {
        goto out;
    }

    seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
        bad = "a doorbell ring that is not a memfd sealed against shrinking";
        goto out;
    }
    if (fstat(fd, &st) < 0 || st.st_size < (off_t)size) {
        bad = "a doorbell ring smaller than its depth needs";
        goto out;
    }
    base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        bad = "a doorbell ring that cannot be mapped";
        goto out;
    }

    r = g_new0(MemexposeRing, 1);
    r->base = base;
    r->size = size;
    r->memfd = -1;
    r->depth = depth;
    qemu_mutex_lock(&s->lock);
    s->tx_ring = r;
    s->tx_produced = 0;
    qemu_mutex_unlock(&s->lock);
    close(fd);
    return mx_tx_ring_complete(s);

out:
    close(fd);
    memexpose_protocol_error(s, "the peer sent %s", bad);
    return false;
}

static bool mx_is_eventfd(int fd)
{
    g_autofree char *path = g_strdup_printf("/proc/self/fd/%d", fd);
    char target[32] = "";

    return readlink(path, target, sizeof(target) - 1) > 0 &&
           g_str_equal(target, "anon_inode:[eventfd]");
}

/*
 * I/O thread: the peer's DB_EVENT for @vector.  Takes @fd.  Returns true
 * when the ring is complete.  A vCPU writes the eventfd holding @lock,
 * so it must never block: only a non-blocking eventfd is taken.
 */
bool memexpose_ring_peer_event(MemexposeState *s, uint32_t vector, int fd)
{
    const char *bad = NULL;
    bool complete = false;

    if (!mx_is_eventfd(fd)) {
        bad = "DB_EVENT with a descriptor that is not an eventfd";
        goto out;
    }
    if (!g_unix_set_fd_nonblocking(fd, true, NULL)) {
        bad = "DB_EVENT with an eventfd that cannot be made non-blocking";
        goto out;
    }

    qemu_mutex_lock(&s->lock);
    if (!s->hello_received || !s->tx_ring) {
        bad = "DB_EVENT outside the handshake";
    } else if (vector >= s->peer.vectors) {
        bad = "DB_EVENT for a vector its HELLO did not announce";
    } else if (vector != s->tx_ring->nr_events) {
        bad = "DB_EVENT out of order";
    } else {
        MemexposeRingEvent *ev = &s->tx_ring->events[vector];

        event_notifier_init_fd(&ev->notifier, fd);
        s->tx_ring->nr_events++;
        fd = -1;
        complete = mx_tx_ring_complete(s);
    }
    qemu_mutex_unlock(&s->lock);

out:
    if (bad) {
        close(fd);
        memexpose_protocol_error(s, "the peer sent %s", bad);
    }
    return complete;
}

/* I/O thread: the peer freed a slot of its ring while we were waiting. */
void memexpose_ring_space(MemexposeState *s)
{
    bool bad = false;
    uint32_t used;

    qemu_mutex_lock(&s->lock);
    if (!s->up || !s->tx_ring || !s->tx_was_busy) {
        /* Spurious, or crossed with a send that found the slot itself. */
    } else if (!mx_tx_ring_used(s, &used)) {
        bad = true;
    } else if (used < s->tx_ring->depth) {
        s->tx_was_busy = false;
        s->tx_ready_pending = true;
        qemu_bh_schedule(s->irq_bh);
    } else {
        /* Still full: wait for the next slot, as the sender did. */
        qatomic_set(mx_ring_word(s->tx_ring, MXP_DB_RING_WAITING), 1);
    }
    qemu_mutex_unlock(&s->lock);

    if (bad) {
        memexpose_protocol_error(s, "%s", mx_bad_consumer);
    }
}

/* With @lock, as the link goes down: neither ring belongs to the next. */
void memexpose_ring_drop_locked(MemexposeState *s)
{
    s->hello_received = false;
    /* Senders write the peer's ring holding @lock: it can go now. */
    g_clear_pointer(&s->tx_ring, mx_ring_free);
    s->tx_produced = 0;
    if (s->rx_ring) {
        uint64_t vectors = 0;

        /*
         * What the peer published before the link went down was sent as
         * far as its guest knows: keep it, unless the ring is what broke
         * the link.  The guest's interrupt needs the BQL.
         */
        if (!mx_ring_collect_locked(s, s->rx_ring, &vectors) && vectors) {
            s->rx_irq_pending |= vectors;
            qemu_bh_schedule(s->irq_bh);
        }
        /* Its fd handlers belong to the main loop: ring_bh frees it. */
        s->retired_rings = g_slist_prepend(s->retired_rings, s->rx_ring);
        s->rx_ring = NULL;
        qemu_bh_schedule(s->ring_bh);
    }
}

/* Unrealize: the link's threads are gone. */
void memexpose_ring_finalize(MemexposeState *s)
{
    g_clear_pointer(&s->tx_ring, mx_ring_free);
    if (s->rx_ring) {
        s->retired_rings = g_slist_prepend(s->retired_rings, s->rx_ring);
        s->rx_ring = NULL;
    }
    memexpose_ring_bh(s);
    qemu_bh_delete(s->ring_bh);
}
