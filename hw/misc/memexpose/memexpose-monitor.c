/*
 * memexpose: query-memexpose (QMP) and info memexpose (HMP), the state
 * of every memexpose device in one place: link, peer, features, window,
 * zero-copy mappings, export policy and counters.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-memexpose.h"
#include "qemu/atomic.h"
#include "monitor/hmp.h"
#include "monitor/monitor.h"
#include "memexpose.h"

/* Realized devices in the order they were created (BQL). */
static QTAILQ_HEAD(, MemexposeState) mx_devices =
    QTAILQ_HEAD_INITIALIZER(mx_devices);

void memexpose_monitor_add(MemexposeState *s)
{
    QTAILQ_INSERT_TAIL(&mx_devices, s, monitor_next);
}

void memexpose_monitor_del(MemexposeState *s)
{
    QTAILQ_REMOVE(&mx_devices, s, monitor_next);
}

static const struct {
    uint64_t bit;
    MemexposeFeature feature;
} mx_features[] = {
    { MXP_FEAT_MAP, MEMEXPOSE_FEATURE_MAP },
    { MXP_FEAT_BULK, MEMEXPOSE_FEATURE_BULK },
    { MXP_FEAT_BOOT, MEMEXPOSE_FEATURE_BOOT },
    { MXP_FEAT_HEARTBEAT, MEMEXPOSE_FEATURE_HEARTBEAT },
    { MXP_FEAT_DB_RING, MEMEXPOSE_FEATURE_DOORBELL_RING },
};

static MemexposeRange *mx_range(uint64_t addr, uint64_t size, bool writable)
{
    MemexposeRange *r = g_new0(MemexposeRange, 1);

    r->addr = addr;
    r->size = size;
    r->perm = writable ? MEMEXPOSE_PERM_RW : MEMEXPOSE_PERM_RO;
    return r;
}

static gint mx_mapping_cmp(gconstpointer a, gconstpointer b)
{
    const MemexposeMapping *ma = *(MemexposeMapping * const *)a;
    const MemexposeMapping *mb = *(MemexposeMapping * const *)b;

    return ma->peer_addr < mb->peer_addr ? -1 : ma->peer_addr > mb->peer_addr;
}

/*
 * The zero-copy mappings are the window's subregions besides the
 * forwarding region; they enter and leave it only under the BQL, which
 * we hold, so unlike the importer's list (which RCU also edits) they
 * need no other lock.
 */
static MemexposeRangeList *mx_mappings(MemexposeState *s)
{
    g_autoptr(GPtrArray) maps = g_ptr_array_new();
    MemexposeRangeList *list = NULL, **tail = &list;
    MemoryRegion *sub;
    unsigned i;

    QTAILQ_FOREACH(sub, &s->window.subregions, subregions_link) {
        if (memexpose_is_imported(sub)) {
            g_ptr_array_add(maps, container_of(sub, MemexposeMapping, mr));
        }
    }
    g_ptr_array_sort(maps, mx_mapping_cmp);
    for (i = 0; i < maps->len; i++) {
        MemexposeMapping *m = g_ptr_array_index(maps, i);

        QAPI_LIST_APPEND(tail, mx_range(m->peer_addr, m->size,
                                        !m->mr.readonly));
    }
    return list;
}

static MemexposeInfo *mx_info(MemexposeState *s)
{
    MemexposeInfo *info = g_new0(MemexposeInfo, 1);
    MemexposeStats *c = g_new0(MemexposeStats, 1);
    MemexposeFeatureList **ftail = &info->features;
    MemexposeRangeList **etail = &info->exports;
    uint64_t features;
    unsigned i;

    info->qom_path = object_get_canonical_path(OBJECT(s->dev));
    info->id = g_strdup(s->dev->id);
    info->type = g_strdup(object_get_typename(OBJECT(s->dev)));
    info->name = g_strdup(s->name);

    qemu_mutex_lock(&s->lock);
    info->link = s->up ? MEMEXPOSE_LINK_STATE_UP :
                 s->connected ? MEMEXPOSE_LINK_STATE_HANDSHAKE :
                 MEMEXPOSE_LINK_STATE_DOWN;
    info->epoch = s->epoch;
    features = s->up ? s->features : 0;
    if (s->up) {
        info->peer_name = g_strndup(s->peer.name, sizeof(s->peer.name));
    }
    /* Some are counted under @lock, the rest atomically. */
    c->forwarded_reads = qatomic_read(&s->stats.fwd_reads);
    c->forwarded_writes = qatomic_read(&s->stats.fwd_writes);
    c->served_reads = qatomic_read(&s->stats.served_reads);
    c->served_writes = qatomic_read(&s->stats.served_writes);
    c->refused_accesses = qatomic_read(&s->stats.refused);
    c->mapped_bytes = qatomic_read(&s->stats.mapped_bytes);
    c->mappings_made = qatomic_read(&s->stats.maps);
    c->doorbells_sent = qatomic_read(&s->stats.db_sent);
    c->doorbells_received = qatomic_read(&s->stats.db_received);
    c->doorbells_dropped = qatomic_read(&s->stats.db_lost);
    c->timeouts = qatomic_read(&s->stats.timeouts);
    c->link_ups = qatomic_read(&s->stats.link_ups);
    c->invalidations = qatomic_read(&s->stats.invalidations);
    qemu_mutex_unlock(&s->lock);
    info->counters = c;

    for (i = 0; i < ARRAY_SIZE(mx_features); i++) {
        if (features & mx_features[i].bit) {
            QAPI_LIST_APPEND(ftail, mx_features[i].feature);
        }
    }
    info->window_size = s->window_size;
    info->window_base = s->window_base;
    info->mappings = mx_mappings(s);
    /* The policy is fixed at realize. */
    for (i = 0; i < s->nr_exports; i++) {
        QAPI_LIST_APPEND(etail, mx_range(s->exports[i].addr,
                                         s->exports[i].size,
                                         s->exports[i].writable));
    }
    if (s->forward_reason) {
        info->forward_reason =
            g_strdup(mxp_forward_reason_str(s->forward_reason));
    }
    return info;
}

MemexposeInfoList *qmp_query_memexpose(Error **errp)
{
    MemexposeInfoList *list = NULL, **tail = &list;
    MemexposeState *s;

    QTAILQ_FOREACH(s, &mx_devices, monitor_next) {
        QAPI_LIST_APPEND(tail, mx_info(s));
    }
    return list;
}

static void hmp_print_ranges(Monitor *mon, const char *what,
                             MemexposeRangeList *list)
{
    monitor_printf(mon, "  %s:", what);
    if (!list) {
        monitor_printf(mon, " none");
    }
    for (; list; list = list->next) {
        monitor_printf(mon, " 0x%" PRIx64 "+0x%" PRIx64 ":%s",
                       list->value->addr, list->value->size,
                       MemexposePerm_str(list->value->perm));
    }
    monitor_printf(mon, "\n");
}

void hmp_info_memexpose(Monitor *mon, const QDict *qdict)
{
    g_autoptr(MemexposeInfoList) list = qmp_query_memexpose(NULL);
    MemexposeInfoList *l;

    if (!list) {
        monitor_printf(mon, "No memexpose devices\n");
        return;
    }
    for (l = list; l; l = l->next) {
        MemexposeInfo *info = l->value;
        MemexposeStats *c = info->counters;
        MemexposeFeatureList *f;

        monitor_printf(mon, "%s: %s at %s, name \"%s\"\n",
                       info->id ?: "(no id)", info->type, info->qom_path,
                       info->name);
        monitor_printf(mon, "  link: %s, epoch %" PRIu32,
                       MemexposeLinkState_str(info->link), info->epoch);
        if (info->peer_name) {
            monitor_printf(mon, ", peer \"%s\"", info->peer_name);
        }
        monitor_printf(mon, "\n  features:");
        if (!info->features) {
            monitor_printf(mon, " none");
        }
        for (f = info->features; f; f = f->next) {
            monitor_printf(mon, " %s", MemexposeFeature_str(f->value));
        }
        monitor_printf(mon, "\n  window: 0x%" PRIx64 " bytes at peer"
                       " address 0x%" PRIx64 "\n",
                       info->window_size, info->window_base);
        hmp_print_ranges(mon, "mapped", info->mappings);
        hmp_print_ranges(mon, "exports", info->exports);
        if (info->forward_reason) {
            monitor_printf(mon, "  forward-reason: %s\n",
                           info->forward_reason);
        }
        monitor_printf(mon, "  forwarded-reads: %" PRIu64
                       "  forwarded-writes: %" PRIu64 "\n",
                       c->forwarded_reads, c->forwarded_writes);
        monitor_printf(mon, "  served-reads: %" PRIu64
                       "  served-writes: %" PRIu64
                       "  refused-accesses: %" PRIu64 "\n",
                       c->served_reads, c->served_writes,
                       c->refused_accesses);
        monitor_printf(mon, "  mapped-bytes: %" PRIu64
                       "  mappings-made: %" PRIu64
                       "  invalidations: %" PRIu64 "\n",
                       c->mapped_bytes, c->mappings_made, c->invalidations);
        monitor_printf(mon, "  doorbells-sent: %" PRIu64
                       "  doorbells-received: %" PRIu64
                       "  doorbells-dropped: %" PRIu64 "\n",
                       c->doorbells_sent, c->doorbells_received,
                       c->doorbells_dropped);
        monitor_printf(mon, "  timeouts: %" PRIu64 "  link-ups: %" PRIu64
                       "\n", c->timeouts, c->link_ups);
    }
}
