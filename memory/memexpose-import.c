/*
 * memexpose memory layer, importer side: the window through which the
 * guest reaches the peer's memory, forwarding for what is not mapped,
 * and zero-copy subregions for the peer RAM handed out as descriptors.
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
#include "qemu/module.h"
#include "memexpose.h"

/* Names of zero-copy mappings: "memexpose-peer@<peer address>". */
#define MX_IMPORTED_PREFIX "memexpose-peer@"

bool memexpose_is_imported(const MemoryRegion *mr)
{
    return g_str_has_prefix(memory_region_name(mr), MX_IMPORTED_PREFIX);
}

/* ---- importer: window ---- */

/* The peer range of a window access must not wrap past 2^64. */
static bool mx_window_access_ok(MemexposeState *s, hwaddr offset,
                                unsigned size)
{
    uint64_t addr = s->window_base + offset;

    return addr >= s->window_base && addr + (size - 1) >= addr;
}

/*
 * Whether a window access may go to the peer; if not, *res is how it
 * completes here.  A peer's access must not come back out through a
 * window (recursion), and the peer range must not wrap.
 */
static bool mx_may_forward(MemexposeState *s, hwaddr offset, unsigned size,
                           MemTxResult *res)
{
    if (memexpose_in_service()) {
        memexpose_note_recursion();
        *res = MEMTX_ERROR;
        return false;
    }
    if (!mx_window_access_ok(s, offset, size)) {
        qatomic_inc(&s->stats.refused);
        *res = MEMTX_OK;
        return false;
    }
    return true;
}

/* Account a forwarded access: done, refused by the peer, or link lost. */
static void mx_count_forward(MemexposeState *s, int ret, uint64_t *done)
{
    if (ret == 0) {
        qatomic_inc(done);
    } else if (ret > 0) {
        qatomic_inc(&s->stats.refused);
    }
}

static MemTxResult mx_forward_read(void *opaque, hwaddr offset,
                                   uint64_t *data, unsigned size,
                                   MemTxAttrs attrs)
{
    MemexposeState *s = opaque;
    MemexposeCall call = { .size = size, .addr = s->window_base + offset };
    MxpMsg req = {
        .hdr = { .type = MXP_READ },
        .u.access = { .addr = s->window_base + offset, .size = size },
    };
    MemTxResult res;
    int ret;

    *data = MAKE_64BIT_MASK(0, size * 8);
    if (!mx_may_forward(s, offset, size, &res)) {
        return res;
    }
    ret = memexpose_call(s, &req, &call);
    if (ret == 0) {
        *data = ldn_le_p(call.data, size);
    }
    mx_count_forward(s, ret, &s->stats.fwd_reads);
    return MEMTX_OK;
}

static MemTxResult mx_forward_write(void *opaque, hwaddr offset,
                                    uint64_t data, unsigned size,
                                    MemTxAttrs attrs)
{
    MemexposeState *s = opaque;
    MemexposeCall call = { 0 };
    uint8_t buf[8];
    MxpMsg req = {
        .hdr = { .type = MXP_WRITE },
        .u.access = { .addr = s->window_base + offset, .size = size,
                      .data = buf },
    };
    MemTxResult res;
    int ret;

    if (!mx_may_forward(s, offset, size, &res)) {
        return res;
    }
    stn_le_p(buf, size, data);
    ret = memexpose_call(s, &req, &call);
    mx_count_forward(s, ret, &s->stats.fwd_writes);
    return MEMTX_OK;
}

static const MemoryRegionOps mx_forward_ops = {
    .read_with_attrs = mx_forward_read,
    .write_with_attrs = mx_forward_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 8,
               .unaligned = true },
    .impl = { .min_access_size = 1, .max_access_size = 8,
              .unaligned = true },
};

static void mx_remap_bh(void *opaque)
{
    memexpose_remap_now(opaque);
}

void memexpose_window_init(MemexposeState *s)
{
    Object *owner = OBJECT(s->dev);

    memory_region_init(&s->window, owner, "memexpose-window", s->window_size);
    memory_region_init_io(&s->forward, owner, &mx_forward_ops, s,
                          "memexpose-forward", s->window_size);
    memory_region_add_subregion_overlap(&s->window, 0, &s->forward, 0);
    QLIST_INIT(&s->mappings);
    s->remap_bh = qemu_bh_new(mx_remap_bh, s);
}

void memexpose_unmap_all(MemexposeState *s)
{
    MemexposeMapping *m, *tmp;

    s->map_generation++;
    if (QLIST_EMPTY(&s->mappings)) {
        return;
    }
    memory_region_transaction_begin();
    QLIST_FOREACH_SAFE(m, &s->mappings, next, tmp) {
        QLIST_REMOVE(m, next);
        memory_region_del_subregion(&s->window, &m->mr);
        qatomic_sub(&s->stats.mapped_bytes, m->size);
        /* Freed, with its RAMBlock and mmap, when no flat view uses it. */
        object_unref(OBJECT(m));
    }
    memory_region_transaction_commit();
}

void memexpose_remap(MemexposeState *s)
{
    qemu_bh_schedule(s->remap_bh);
}

/*
 * Check a descriptor from the peer before mapping it: it must be a
 * regular file (memfds are) that covers the range, and since a peer that
 * shrinks the file under our mapping would make us SIGBUS, a memfd must
 * be sealed against shrinking.  Other files only if the peer is trusted.
 */
static bool mx_fd_acceptable(MemexposeState *s, int fd, uint64_t offset,
                             uint64_t len, const char **why)
{
    struct stat st;
    int seals;

    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        *why = "not a regular file or memfd";
        return false;
    }
    if ((uint64_t)st.st_size < offset || st.st_size - offset < len) {
        *why = "file smaller than the range";
        return false;
    }
    if (s->trust_peer) {
        return true;
    }
    seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0) {
        *why = "not a memfd (set trust-peer=on to map other files)";
        return false;
    }
    if (!(seals & F_SEAL_SHRINK)) {
        *why = "memfd not sealed against shrinking";
        return false;
    }
    return true;
}

static void mx_map_fd(MemexposeState *s, const MxpMapReply *r, int fd,
                      uint64_t base)
{
    uint64_t page = qemu_real_host_page_size();
    uint64_t wstart = MAX(r->addr, base);
    uint64_t wend = MIN(r->addr + (r->length - 1), base + (s->window_size - 1));
    uint64_t foff = r->fd_offset + (wstart - r->addr);
    uint64_t len = wend - wstart + 1;
    uint32_t flags = RAM_SHARED;
    g_autofree char *name = NULL;
    MemexposeMapping *m;
    const char *why;
    Error *err = NULL;

    if ((wstart | len | foff) & (page - 1)) {
        warn_report("memexpose %s: peer range 0x%" PRIx64 "+0x%" PRIx64
                    " not page aligned; forwarding it", s->name, wstart, len);
        close(fd);
        return;
    }
    if (!mx_fd_acceptable(s, fd, foff, len, &why)) {
        warn_report("memexpose %s: not mapping peer range 0x%" PRIx64
                    ": %s; forwarding it", s->name, wstart, why);
        close(fd);
        return;
    }
    if (!(r->perm & MXP_PERM_WRITE)) {
        flags |= RAM_READONLY | RAM_READONLY_FD;
    }
    m = MEMEXPOSE_MAPPING(object_new(TYPE_MEMEXPOSE_MAPPING));
    name = g_strdup_printf(MX_IMPORTED_PREFIX "0x%" PRIx64, wstart);
    if (!memory_region_init_ram_from_fd(&m->mr, OBJECT(m), name, len,
                                        flags, fd, foff, &err)) {
        warn_reportf_err(err, "memexpose %s: mapping failed, forwarding: ",
                         s->name);
        close(fd);
        object_unref(OBJECT(m));
        return;
    }
    /* The RAMBlock owns @fd from here on. */
    m->peer_addr = wstart;
    m->size = len;
    QLIST_INSERT_HEAD(&s->mappings, m, next);
    memory_region_add_subregion_overlap(&s->window, wstart - base, &m->mr, 1);
    qatomic_add(&s->stats.mapped_bytes, len);
    qatomic_inc(&s->stats.maps);
}

/*
 * Walk the window and map every part of it the peer hands out as an fd.
 * BQL held; memexpose_call() drops it while waiting, so the map may have
 * changed under us: a new window base or link restarts the walk.
 */
void memexpose_remap_now(MemexposeState *s)
{
    uint64_t base = s->window_base;
    uint32_t gen = ++s->map_generation;
    uint64_t off = 0;

    if (!qatomic_read(&s->up) || !(s->features & MXP_FEAT_MAP)) {
        return;
    }
    while (off < s->window_size) {
        MemexposeCall call = { 0 };
        MxpMsg req = {
            .hdr = { .type = MXP_MAP },
            .u.map.addr = base + off,
        };
        const MxpMapReply *r = &call.map;
        uint64_t next;

        if (base + off < base) {
            break;
        }
        if (memexpose_call_patient(s, &req, &call) != 0) {
            break;
        }
        if (gen != s->map_generation) {
            /* Unmapped or moved while we waited: this reply is stale. */
            if (call.fd >= 0) {
                close(call.fd);
            }
            return;
        }
        if (r->addr > base + off ||
            r->addr + (r->length - 1) < base + off) {
            warn_report("memexpose %s: MAP reply does not cover 0x%" PRIx64,
                        s->name, base + off);
            if (call.fd >= 0) {
                close(call.fd);
            }
            memexpose_link_down(s, "MAP reply for the wrong range");
            return;
        }
        if (r->kind == MXP_MAP_FD) {
            mx_map_fd(s, r, call.fd, base);
        }
        next = r->addr + (r->length - 1) - base;
        if (next >= s->window_size - 1) {
            break;
        }
        off = next + 1;
    }
}

static const TypeInfo memexpose_mapping_info = {
    .name = TYPE_MEMEXPOSE_MAPPING,
    .parent = TYPE_OBJECT,
    .instance_size = sizeof(MemexposeMapping),
};

static void memexpose_mapping_register_types(void)
{
    type_register_static(&memexpose_mapping_info);
}

type_init(memexpose_mapping_register_types)
