/*
 * memexpose memory layer, exporter side: the export policy, resolution
 * of an exported flat range of guest-physical memory to fd + offset (or
 * forwarding) for the peer's MAP, and invalidation of what was handed
 * out when our memory map changes.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/cutils.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/memfd.h"
#include "qemu/rcu.h"
#include "memexpose.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010      /* Linux 5.1 */
#endif

/* ---- export policy ---- */

/*
 * "ADDR+SIZE[:ro|:rw][;ADDR+SIZE...]".  Sizes take the usual suffixes
 * (K, M, G); the default permission is read-write.
 */
static bool mx_parse_export(const char *item, MemexposeExport *exp,
                            Error **errp)
{
    g_auto(GStrv) perm = g_strsplit(item, ":", 2);
    g_auto(GStrv) range = NULL;
    uint64_t size;

    range = g_strsplit(perm[0], "+", 2);
    if (!range[0] || !range[1] ||
        qemu_strtou64(range[0], NULL, 0, &exp->addr) < 0 ||
        qemu_strtosz(range[1], NULL, &size) < 0 || size == 0) {
        error_setg(errp, "memexpose: export '%s' is not ADDR+SIZE[:ro|:rw]",
                   item);
        return false;
    }
    if (exp->addr + (size - 1) < exp->addr) {
        error_setg(errp, "memexpose: export '%s' wraps around", item);
        return false;
    }
    exp->size = size;
    if (!perm[1] || !strcmp(perm[1], "rw")) {
        exp->writable = true;
    } else if (!strcmp(perm[1], "ro")) {
        exp->writable = false;
    } else {
        error_setg(errp, "memexpose: export '%s': permission must be ro or rw",
                   item);
        return false;
    }
    return true;
}

bool memexpose_parse_exports(MemexposeState *s, Error **errp)
{
    g_auto(GStrv) items = NULL;
    unsigned i, j;

    s->nr_exports = 0;
    if (!s->export_spec || !*s->export_spec) {
        return true;
    }
    items = g_strsplit(s->export_spec, ";", -1);
    s->exports = g_new0(MemexposeExport, g_strv_length(items));
    for (i = 0; items[i]; i++) {
        MemexposeExport *e = &s->exports[s->nr_exports];

        if (!*items[i]) {
            continue;
        }
        if (!mx_parse_export(items[i], e, errp)) {
            return false;
        }
        for (j = 0; j < s->nr_exports; j++) {
            const MemexposeExport *o = &s->exports[j];

            if (e->addr <= o->addr + (o->size - 1) &&
                o->addr <= e->addr + (e->size - 1)) {
                error_setg(errp, "memexpose: export '%s' overlaps another",
                           items[i]);
                return false;
            }
        }
        s->nr_exports++;
    }
    return true;
}

const MemexposeExport *memexpose_find_export(MemexposeState *s,
                                             uint64_t addr, uint64_t size)
{
    unsigned i;

    for (i = 0; i < s->nr_exports; i++) {
        const MemexposeExport *e = &s->exports[i];

        if (addr >= e->addr && size <= e->size &&
            addr - e->addr <= e->size - size) {
            return e;
        }
    }
    return NULL;
}

/* Start of the first export above @addr, or 0 if there is none. */
static uint64_t mx_next_export(MemexposeState *s, uint64_t addr)
{
    uint64_t next = 0;
    unsigned i;

    for (i = 0; i < s->nr_exports; i++) {
        if (s->exports[i].addr > addr &&
            (!next || s->exports[i].addr < next)) {
            next = s->exports[i].addr;
        }
    }
    return next;
}

/* ---- exporter: MAP ---- */

/* The flat range of system memory at an address, or the gap after it. */
typedef struct MxFlatLookup {
    uint64_t addr;
    bool found;
    uint64_t start;
    uint64_t len;
    MemoryRegion *mr;
    hwaddr offset_in_region;
    uint64_t next;              /* start of the next range, 0 if none */
} MxFlatLookup;

static bool mx_flat_lookup_cb(Int128 start, Int128 len,
                              const MemoryRegion *mr, hwaddr offset,
                              void *opaque)
{
    MxFlatLookup *l = opaque;
    uint64_t s = int128_get64(start);
    uint64_t n = int128_get64(len);

    if (s > l->addr) {
        l->next = s;
        return true;
    }
    if (l->addr - s < n) {
        l->found = true;
        l->start = s;
        l->len = n;
        l->mr = (MemoryRegion *)mr;
        l->offset_in_region = offset;
        return true;
    }
    return false;
}

typedef struct MxCoverage {
    MemexposeState *s;
    const MemoryRegion *mr;
    bool writable;
    bool covered;
    uint64_t visible;
} MxCoverage;

static bool mx_check_coverage(Int128 start, Int128 len,
                              const MemoryRegion *mr, hwaddr offset,
                              void *opaque)
{
    MxCoverage *c = opaque;
    const MemexposeExport *e;

    if (mr != c->mr) {
        return false;
    }
    e = memexpose_find_export(c->s, int128_get64(start), int128_get64(len));
    if (!e || (c->writable && !e->writable)) {
        c->covered = false;
        return true;
    }
    c->visible += int128_get64(len);
    return false;
}

/*
 * A descriptor gives its holder the whole file, not just the range we
 * describe.  Hand it out only if all of that RAM is visible to the guest
 * and exported with at least the descriptor's permission; if it is
 * writable, only if the peer cannot shrink it under us (SIGBUS); if it
 * is read-only, only if the kernel refuses writes through any descriptor
 * of the file: a read-only descriptor can be reopened read-write through
 * /proc/self/fd (a memfd's mode is 0777, and root ignores modes anyway),
 * so only a write seal makes read-only hold.
 */
static MxpForwardReason mx_fd_grant_allowed(MemexposeState *s, FlatView *fv,
                                            MemoryRegion *mr, int fd,
                                            const MemexposeExport *e)
{
    MxCoverage c = { .s = s, .mr = mr, .writable = e->writable,
                     .covered = true };
    int seals;

    if (s->trust_peer) {
        return MXP_FWD_UNSPECIFIED;
    }
    seals = fcntl(fd, F_GET_SEALS);
    if (e->writable && (seals < 0 || !(seals & F_SEAL_SHRINK))) {
        return MXP_FWD_UNSEALED;
    }
    if (!e->writable &&
        (seals < 0 || !(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))) {
        if (!s->ro_forward_logged) {
            s->ro_forward_logged = true;
            warn_report("memexpose %s: the read-only export 0x%" PRIx64
                        "+0x%" PRIx64 " is forwarded, not shared: '%s' is"
                        " not sealed against writing, and a peer could"
                        " write it through a reopened descriptor", s->name,
                        e->addr, e->size, memory_region_name(mr));
        }
        return MXP_FWD_READ_ONLY;
    }
    flatview_for_each_range(fv, mx_check_coverage, &c);
    if (!c.covered || c.visible != memory_region_size(mr)) {
        return MXP_FWD_NOT_WHOLE;
    }
    return MXP_FWD_UNSPECIFIED;
}

static void mx_reply_map(MemexposeState *s, const MxpMsg *req, uint8_t kind,
                         uint8_t perm, uint64_t addr, uint64_t len,
                         uint64_t fd_offset, int fd)
{
    MxpMsg reply = {
        .hdr = { .type = MXP_MAP_REPLY, .id = req->hdr.id },
        .u.map_reply = { .kind = kind, .perm = perm, .addr = addr,
                         .length = len, .fd_offset = fd_offset },
    };

    memexpose_send(s, &reply, fd);
}

/* FORWARD, with the reason for a peer of protocol 1.1 or later. */
static void mx_reply_forward(MemexposeState *s, const MxpMsg *req,
                             uint8_t perm, uint64_t addr, uint64_t len,
                             MxpForwardReason why)
{
    MxpMsg reply = {
        .hdr = { .type = MXP_MAP_REPLY, .id = req->hdr.id },
        .u.map_reply = { .kind = MXP_MAP_FORWARD, .perm = perm,
                         .addr = addr, .length = len },
    };

    if (s->peer.version_minor >= 1) {
        reply.u.map_reply.reason = why;
    }
    memexpose_send(s, &reply, -1);
}

/*
 * MAP replies cover whole granules, the larger of the two sides' page
 * sizes, so that every reply moves the importer's walk on by at least
 * one page and zero-copy ranges suit both sides' mmap().
 */
static uint64_t mx_granule(MemexposeState *s)
{
    return MAX(qemu_real_host_page_size(), s->peer.page_size);
}

/* The MAP_REPLY length of [start, end]; 2^64 does not fit. */
static uint64_t mx_range_length(uint64_t start, uint64_t end)
{
    if (end == UINT64_MAX && start == 0) {
        return UINT64_MAX;
    }
    return end - start + 1;
}

/* Last byte of the last whole granule of [.., end] (wraps correctly). */
static uint64_t mx_align_end(uint64_t end, uint64_t g)
{
    return ((end + 1) & ~(g - 1)) - 1;
}

/* What a descriptor for the granule at @a would describe. */
typedef struct MxFdSpan {
    const MemexposeExport *e;
    MemoryRegion *mr;
    uint64_t start;             /* granule aligned */
    uint64_t end;               /* inclusive, last byte of a granule */
    uint64_t fd_offset;
    int fd;
} MxFdSpan;

/*
 * Whether the granule at @a may be handed out as a descriptor: wholly
 * inside one export and one shareable RAM flat range that policy lets us
 * give away.  *sp is then the largest such granule-aligned span around
 * it, and the result MXP_FWD_UNSPECIFIED; otherwise the result says why
 * not.
 */
static MxpForwardReason mx_fd_span(MemexposeState *s, FlatView *fv,
                                   uint64_t a, uint64_t g, MxFdSpan *sp)
{
    MxFlatLookup l = { .addr = a };
    const MemexposeExport *e = memexpose_find_export(s, a, g);
    MxpForwardReason why;
    MemoryRegion *mr;
    int fd;

    if (!e) {
        return MXP_FWD_PARTIAL;
    }
    flatview_for_each_range(fv, mx_flat_lookup_cb, &l);
    if (!l.found) {
        return MXP_FWD_NOT_RAM;
    }
    mr = l.mr;
    if (!memory_region_is_ram(mr) || memory_region_is_ram_device(mr) ||
        memory_region_is_rom(mr) || !mr->ram_block ||
        memexpose_is_imported(mr)) {
        return MXP_FWD_NOT_RAM;
    }
    fd = memory_region_get_fd(mr);
    if (fd < 0 || !qemu_ram_is_shared(mr->ram_block)) {
        return MXP_FWD_PRIVATE;
    }
    sp->start = ROUND_UP(MAX(e->addr, l.start), g);
    sp->end = mx_align_end(MIN(e->addr + (e->size - 1),
                               l.start + (l.len - 1)), g);
    if (sp->start > a || sp->end < a + (g - 1)) {
        return MXP_FWD_PARTIAL;
    }
    why = mx_fd_grant_allowed(s, fv, mr, fd, e);
    if (why) {
        return why;
    }
    sp->e = e;
    sp->mr = mr;
    sp->fd = fd;
    sp->fd_offset = mr->ram_block->fd_offset + l.offset_in_region +
                    (sp->start - l.start);
    return MXP_FWD_UNSPECIFIED;
}

/* Hand out the descriptor of @sp; false if we cannot (forward it). */
static bool mx_reply_fd(MemexposeState *s, const MxpMsg *req,
                        const MxFdSpan *sp)
{
    int fd = sp->fd;
    int ro_fd = -1;

    if (!sp->e->writable) {
        /* A descriptor that cannot write, for a read-only export. */
        g_autofree char *path = g_strdup_printf("/proc/self/fd/%d", fd);

        ro_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (ro_fd < 0) {
            return false;
        }
        fd = ro_fd;
    }
    qemu_mutex_lock(&s->lock);
    g_array_append_val(s->granted,
                       ((MxpRange) { sp->start, sp->end - sp->start + 1 }));
    qemu_mutex_unlock(&s->lock);
    mx_reply_map(s, req, MXP_MAP_FD,
                 MXP_PERM_READ | (sp->e->writable ? MXP_PERM_WRITE : 0),
                 sp->start, mx_range_length(sp->start, sp->end),
                 sp->fd_offset, fd);
    if (ro_fd >= 0) {
        close(ro_fd);
    }
    return true;
}

static bool mx_collect_starts(Int128 start, Int128 len,
                              const MemoryRegion *mr, hwaddr offset,
                              void *opaque)
{
    uint64_t a = int128_get64(start);

    g_array_append_val((GArray *)opaque, a);
    return false;
}

static gint mx_cmp_u64(gconstpointer a, gconstpointer b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/*
 * The first granule above @a that could go out as a descriptor, or 0 if
 * there is none: only where a flat range or an export begins can that
 * change, so those are the granules to try.
 */
static uint64_t mx_next_fd_granule(MemexposeState *s, FlatView *fv,
                                   uint64_t a, uint64_t g)
{
    g_autoptr(GArray) starts = g_array_new(false, false, sizeof(uint64_t));
    MxFdSpan sp;
    unsigned i;

    flatview_for_each_range(fv, mx_collect_starts, starts);
    for (i = 0; i < s->nr_exports; i++) {
        g_array_append_val(starts, s->exports[i].addr);
    }
    for (i = 0; i < starts->len; i++) {
        uint64_t *b = &g_array_index(starts, uint64_t, i);

        *b = *b > UINT64_MAX - (g - 1) ? 0 : ROUND_UP(*b, g);
    }
    g_array_sort(starts, mx_cmp_u64);
    for (i = 0; i < starts->len; i++) {
        uint64_t b = g_array_index(starts, uint64_t, i);

        if (b > a && mx_fd_span(s, fv, b, g, &sp) == MXP_FWD_UNSPECIFIED) {
            return b;
        }
    }
    return 0;
}

/* Whether any byte of [start, end] is exported. */
static bool mx_any_exported(MemexposeState *s, uint64_t start, uint64_t end)
{
    unsigned i;

    for (i = 0; i < s->nr_exports; i++) {
        const MemexposeExport *e = &s->exports[i];

        if (start <= e->addr + (e->size - 1) && e->addr <= end) {
            return true;
        }
    }
    return false;
}

/*
 * MAP for @addr: describe the granule-aligned range around it that is
 * uniformly a descriptor (FD), reached by forwarding (FORWARD: every
 * access is still checked against the policy, so it may run over bytes
 * that are not exported), or not exported at all (DENIED).  FORWARD and
 * DENIED ranges run up to the next granule that can be handed out, so a
 * walk over a window takes about two MAPs per zero-copy range.
 */
void memexpose_serve_map(MemexposeState *s, const MxpMsg *req)
{
    uint64_t addr = req->u.map.addr;
    uint64_t g = mx_granule(s);
    uint64_t a = addr & ~(g - 1);
    const MemexposeExport *e;
    MxpForwardReason why;
    uint64_t next, end;
    MxFdSpan sp;
    FlatView *fv;

    if (!(s->features & MXP_FEAT_MAP)) {
        memexpose_reply_error(s, req, MXP_E_UNSUPPORTED, addr);
        return;
    }
    if (!mx_any_exported(s, a, a + (g - 1))) {
        next = mx_next_export(s, a);
        end = next ? (next & ~(g - 1)) - 1 : UINT64_MAX;
        mx_reply_map(s, req, MXP_MAP_DENIED, 0, a, mx_range_length(a, end),
                     0, -1);
        return;
    }

    /*
     * Under the BQL no memory transaction can commit between looking at
     * the map and recording the grant, so a later removal always finds
     * the grant and invalidates it after this reply.
     */
    bql_lock();
    rcu_read_lock();
    fv = address_space_to_flatview(&address_space_memory);
    why = mx_fd_span(s, fv, a, g, &sp);
    if (!why && !mx_reply_fd(s, req, &sp)) {
        why = MXP_FWD_NO_FD;
    }
    if (why) {
        next = mx_next_fd_granule(s, fv, a, g);
        end = next ? next - 1 : UINT64_MAX;
        e = memexpose_find_export(s, addr, 1);
        mx_reply_forward(s, req,
                         e ? MXP_PERM_READ |
                             (e->writable ? MXP_PERM_WRITE : 0) : 0,
                         a, mx_range_length(a, end), why);
    }
    rcu_read_unlock();
    bql_unlock();
}

/* ---- exporter: invalidation ---- */

static bool mx_overlaps(const MxpRange *r, uint64_t start, uint64_t size)
{
    return start <= r->addr + (r->length - 1) &&
           r->addr <= start + (size - 1);
}

/* Memory we handed out as an fd is leaving the map (removed or moved). */
static void mx_region_del(MemoryListener *listener,
                          MemoryRegionSection *section)
{
    MemexposeState *s = container_of(listener, MemexposeState, listener);
    uint64_t start = section->offset_within_address_space;
    uint64_t size = int128_get64(section->size);
    bool found = false;
    unsigned i;

    if (!memory_region_is_ram(section->mr) ||
        memexpose_is_imported(section->mr) || !size) {
        return;
    }
    qemu_mutex_lock(&s->lock);
    for (i = 0; i < s->granted->len; ) {
        if (mx_overlaps(&g_array_index(s->granted, MxpRange, i), start,
                        size)) {
            g_array_remove_index_fast(s->granted, i);
            found = true;
        } else {
            i++;
        }
    }
    qemu_mutex_unlock(&s->lock);
    if (found) {
        g_array_append_val(s->changed, ((MxpRange) { start, size }));
    }
}

/*
 * The peer drops its mappings of memory that left our map before this
 * transaction completes, so our guest never sees the change done while
 * the peer still reaches the old memory; a peer that does not answer in
 * time loses the link.  RAM that appears is left to forwarding until the
 * peer's next mapping walk.
 */
static void mx_listener_commit(MemoryListener *listener)
{
    MemexposeState *s = container_of(listener, MemexposeState, listener);
    unsigned i;

    for (i = 0; i < s->changed->len; i++) {
        MxpRange *r = &g_array_index(s->changed, MxpRange, i);
        MemexposeCall call = { 0 };
        MxpMsg req = {
            .hdr = { .type = MXP_INVALIDATE },
            .u.range = *r,
        };

        if (memexpose_call_keep_bql(s, &req, &call) < 0) {
            break;
        }
        qatomic_inc(&s->stats.invalidations);
    }
    g_array_set_size(s->changed, 0);
}

void memexpose_listener_init(MemexposeState *s)
{
    s->listener = (MemoryListener) {
        .name = "memexpose",
        .region_del = mx_region_del,
        .commit = mx_listener_commit,
        .priority = MEMORY_LISTENER_PRIORITY_DEV_BACKEND,
    };
    memory_listener_register(&s->listener, &address_space_memory);
}
