/*
 * memexpose core: the device's life cycle (realize, reset, unrealize,
 * exit), its properties and the main-loop halves of link changes and
 * interrupts.  The parts live in files of their own:
 * - memexpose-link.c: the socket, handshake, requests, liveness; its
 *   IOThread reads and validates every message, completes our requests
 *   and queues the peer's for the worker, and never takes the BQL, so
 *   replies keep flowing whatever the rest of QEMU is doing;
 * - memexpose-serve.c: the worker, which serves the peer's requests in
 *   order and takes the BQL when needed;
 * - memexpose-doorbell.c, memexpose-regs.c, memexpose-boot.c;
 * - the memory layer (memexpose-memory.h): exporter and importer.
 * A vCPU (or qtest) accessing the window waits for the peer's reply with
 * the BQL dropped, as hw/remote/mpqemu-link.c does.
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
#include "chardev/char.h"
#include "memexpose.h"

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
        s->forward_reason = MXP_FWD_UNSPECIFIED;
        s->forward_reasons_logged = 0;
        s->map_errors_logged = 0;
        memexpose_remap(s);
    }
    s->intr_status |= MX_INTR_LINK;
    s->irq_notify(s, MX_IRQ_CONTROL);
}

/* Main loop: interrupts the I/O thread may not raise itself (BQL). */
static void mx_irq_bh(void *opaque)
{
    MemexposeState *s = opaque;
    uint64_t doorbells;
    bool tx_ready, boot;

    qemu_mutex_lock(&s->lock);
    doorbells = s->rx_irq_pending;
    s->rx_irq_pending = 0;
    tx_ready = s->tx_ready_pending;
    s->tx_ready_pending = false;
    boot = s->boot_state_pending;
    s->boot_state_pending = false;
    qemu_mutex_unlock(&s->lock);

    memexpose_doorbell_notify(s, doorbells);
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
    memexpose_link_drop(s, reason, false);
    qemu_mutex_lock(&s->send_lock);
    s->detached = true;
    qemu_mutex_unlock(&s->send_lock);

    /* The worker may be waiting for the BQL to finish its last request. */
    bql_unlock();
    qemu_thread_join(&s->worker);
    bql_lock();

    /* Nothing runs in the stopped I/O thread: safe from here. */
    memexpose_link_release(s);
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

/* The name goes into HELLO: printable ASCII, NUL-terminated there. */
static bool mx_name_valid(const char *name)
{
    const char *c;

    if (strlen(name) >= MXP_NAME_SIZE) {
        return false;
    }
    for (c = name; *c; c++) {
        if (*c < 0x20 || *c > 0x7e) {
            return false;
        }
    }
    return true;
}

/*
 * The link passes descriptors (zero-copy RAM, doorbell rings), which
 * only a unix socket can carry: refuse anything else by name.
 */
static bool mx_check_chardev(MemexposeState *s, Error **errp)
{
    Chardev *chr = qemu_chr_fe_get_driver(&s->chr);
    const char *type = object_get_typename(OBJECT(chr));

    if (!object_dynamic_cast(OBJECT(chr), TYPE_CHARDEV_SOCKET)) {
        error_setg(errp, "memexpose: chardev '%s' is of type '%s'; the link"
                   " needs a unix socket chardev (-chardev socket,path=...)",
                   chr->label, g_str_has_prefix(type, "chardev-") ?
                   type + strlen("chardev-") : type);
        return false;
    }
    if (!qemu_chr_has_feature(chr, QEMU_CHAR_FEATURE_FD_PASS)) {
        error_setg(errp, "memexpose: chardev '%s' is not a unix socket; the"
                   " link passes file descriptors, so it needs"
                   " -chardev socket,path=...", chr->label);
        return false;
    }
    return true;
}

void memexpose_realize(MemexposeState *s, Error **errp)
{
    g_autofree char *iothread_id = NULL;

    if (!qemu_chr_fe_backend_connected(&s->chr)) {
        error_setg(errp, "memexpose: the 'chardev' property is required");
        return;
    }
    if (!mx_check_chardev(s, errp)) {
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
        /* Say so when the name at fault is the device id. */
        if (s->dev->id && !mx_name_valid(s->dev->id)) {
            error_setg(errp, "memexpose: the device id '%s' cannot be the"
                       " link's name, which must be printable ASCII of at"
                       " most %d characters; give the device a name=",
                       s->dev->id, MXP_NAME_SIZE - 1);
            return;
        }
        s->name = g_strdup(s->dev->id ? s->dev->id : "memexpose");
    }
    if (!mx_name_valid(s->name)) {
        error_setg(errp, "memexpose: name must be printable ASCII of at most"
                   " %d characters", MXP_NAME_SIZE - 1);
        return;
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
    qemu_mutex_init(&s->hello_lock);
    qemu_cond_init(&s->cond);
    qemu_cond_init(&s->work_cond);
    s->granted = g_array_new(false, false, sizeof(MxpRange));
    s->changed = g_array_new(false, false, sizeof(MxpRange));
    QLIST_INIT(&s->calls);
    QSIMPLEQ_INIT(&s->work);
    s->rxq = g_new0(MemexposeDoorbell, s->queue_depth);
    s->link_bh = qemu_bh_new(mx_link_bh, s);
    s->irq_bh = qemu_bh_new(mx_irq_bh, s);
    s->ring_bh = qemu_bh_new(memexpose_ring_bh, s);
    memexpose_window_init(s);
    memexpose_listener_init(s);

    iothread_id = g_strdup_printf("memexpose-%u", mx_instances++);
    s->iothread = iothread_create(iothread_id, errp);
    if (!s->iothread) {
        memexpose_unrealize(s);
        return;
    }
    qemu_thread_create(&s->worker, "memexpose-srv", memexpose_worker, s,
                       QEMU_THREAD_JOINABLE);
    memexpose_link_start(s);
    s->shutdown.notify = mx_shutdown_notify;
    qemu_register_shutdown_notifier(&s->shutdown);
    memexpose_monitor_add(s);
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
    memexpose_monitor_del(s);
    notifier_remove(&s->shutdown);
    memory_listener_unregister(&s->listener);
    mx_detach(s, "device removed");
    iothread_destroy(s->iothread);
    s->iothread = NULL;

    while ((w = QSIMPLEQ_FIRST(&s->work))) {
        QSIMPLEQ_REMOVE_HEAD(&s->work, next);
        g_free(w);
    }
    memexpose_window_finalize(s);
    /* The subregion holds a reference on its owner, us: let go of it. */
    memory_region_del_subregion(&s->window, &s->forward);
    qemu_bh_delete(s->link_bh);
    qemu_bh_delete(s->irq_bh);
    memexpose_ring_finalize(s);
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
    memexpose_set_window_base(s, 0);
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

/* Why the peer forwards what it could share, "" if it did not say. */
static void mx_get_forward_reason(Object *obj, Visitor *v, const char *name,
                                  void *opaque, Error **errp)
{
    MemexposeState *s = opaque;
    char *reason = (char *)(s->forward_reason ?
                            mxp_forward_reason_str(s->forward_reason) : "");

    visit_type_str(v, name, &reason, errp);
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
    DEFINE_PROP_BOOL("doorbell-ring", MemexposeState, db_ring, true),
    DEFINE_PROP_BOOL("trust-peer", MemexposeState, trust_peer, false),
    DEFINE_PROP_BOOL("boot-target", MemexposeState, boot_target, false),
};

/* For "-device memexpose-pci,help"; the user guide has the details. */
static const struct {
    const char *name;
    const char *desc;
} memexpose_property_descs[] = {
    { "chardev", "the link's unix socket (-chardev socket,path=...)" },
    { "export", "ranges the peer may reach: ADDR+SIZE[:ro|:rw][;...]"
      " (default: none)" },
    { "name", "name given to the peer, printable ASCII, at most 63"
      " characters (default: the device id)" },
    { "window-size", "size of the window onto the peer's memory, a power"
      " of two of at least 4K" },
    { "vectors", "doorbell vectors received, 1..64" },
    { "queue-depth", "doorbell receive queue slots, 1..1024" },
    { "timeout", "milliseconds to wait for the peer's answer, 1..60000" },
    { "heartbeat", "milliseconds between liveness checks, 10..60000" },
    { "zero-copy", "map the peer's shareable RAM into the window" },
    { "doorbell-ring", "offer doorbells through a shared ring and eventfds" },
    { "trust-peer", "trust the peer QEMU: exchange RAM descriptors without"
      " the safety checks" },
    { "boot-target", "wait until the peer boots this VM (Arm only)" },
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

    QEMU_BUILD_BUG_ON(ARRAY_SIZE(memexpose_property_descs) !=
                      ARRAY_SIZE(memexpose_properties));
    for (i = 0; i < ARRAY_SIZE(memexpose_properties); i++) {
        props[i].offset += core_offset;
        if (!strcmp(props[i].name, "window-size")) {
            props[i].defval.u = default_window;
        }
    }
    device_class_set_props_n(dc, props, ARRAY_SIZE(memexpose_properties));
    for (i = 0; i < ARRAY_SIZE(memexpose_property_descs); i++) {
        object_class_property_set_description(OBJECT_CLASS(dc),
                                              memexpose_property_descs[i].name,
                                              memexpose_property_descs[i].desc);
    }
}

/*
 * QEMU has no read-only flag that "-device ...,help" would show, so the
 * descriptions say it.
 */
void memexpose_add_properties(Object *obj, MemexposeState *s)
{
    static const struct {
        const char *name;
        size_t offset;
        const char *desc;
    } counters[] = {
        { "forwarded-reads", offsetof(MemexposeCounters, fwd_reads),
          "window reads the peer answered" },
        { "forwarded-writes", offsetof(MemexposeCounters, fwd_writes),
          "window writes the peer answered" },
        { "served-reads", offsetof(MemexposeCounters, served_reads),
          "the peer's reads this side performed" },
        { "served-writes", offsetof(MemexposeCounters, served_writes),
          "the peer's writes this side performed" },
        { "refused-accesses", offsetof(MemexposeCounters, refused),
          "accesses refused, by this side or by the peer" },
        { "mapped-bytes", offsetof(MemexposeCounters, mapped_bytes),
          "bytes of peer RAM mapped into the window now" },
        { "mappings-made", offsetof(MemexposeCounters, maps),
          "zero-copy mappings made" },
        { "doorbells-sent", offsetof(MemexposeCounters, db_sent),
          "doorbells sent" },
        { "doorbells-received", offsetof(MemexposeCounters, db_received),
          "doorbells received" },
        { "doorbells-dropped", offsetof(MemexposeCounters, db_lost),
          "doorbells refused as BUSY: the peer's queue was full" },
        { "timeouts", offsetof(MemexposeCounters, timeouts),
          "requests the peer did not answer within timeout" },
        { "link-ups", offsetof(MemexposeCounters, link_ups),
          "times the link came up" },
        { "invalidations", offsetof(MemexposeCounters, invalidations),
          "invalidations of exported RAM the peer acknowledged" },
    };
    g_autofree char *desc = NULL;
    unsigned i;

    for (i = 0; i < ARRAY_SIZE(counters); i++) {
        object_property_add_uint64_ptr(obj, counters[i].name,
                                       (uint64_t *)((char *)&s->stats +
                                                    counters[i].offset),
                                       OBJ_PROP_FLAG_READ);
        desc = g_strdup_printf("%s (read-only)", counters[i].desc);
        object_property_set_description(obj, counters[i].name, desc);
        g_clear_pointer(&desc, g_free);
    }
    object_property_add(obj, "link-up", "bool", mx_get_link_up, NULL, NULL,
                        s);
    object_property_set_description(obj, "link-up",
                                    "whether the handshake with the peer is"
                                    " done (read-only)");
    object_property_add(obj, "peer-name", "str", mx_get_peer_name, NULL,
                        NULL, s);
    object_property_set_description(obj, "peer-name",
                                    "the name the peer gave, while the link"
                                    " is up (read-only)");
    object_property_add(obj, "forward-reason", "str", mx_get_forward_reason,
                        NULL, NULL, s);
    object_property_set_description(obj, "forward-reason",
                                    "why the peer forwards RAM it could"
                                    " share, if it said (read-only)");
}
