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

/*
 * Zero-copy mappings and invalidation.
 *
 * An INVALIDATE is served in the I/O thread, without the BQL, so that
 * two QEMUs that change their memory maps at the same moment (each
 * waiting for the other's INVALIDATE_ACK with its own BQL held) cannot
 * deadlock: the host pages of every mapping that overlaps the range are
 * replaced in place by anonymous memory, which cuts off TCG's TLB entries
 * and KVM's memslots from the exporter's RAM at once, and the ACK goes
 * out.  The main loop removes the regions and walks the window again
 * afterwards.  Guest accesses in between read zeros and write nowhere.
 *
 * mx_map_lock guards every device's list of mappings and the mappings'
 * state.  A mapping stays on its device's list, and so within reach of
 * invalidation, from before it is mapped until it is finalized, a grace
 * period after the last flat view using it has gone.
 */
static QemuMutex mx_map_lock;

static void mx_walk_start(MemexposeState *s);

/* Replace the mapping's pages by anonymous memory.  mx_map_lock held. */
static bool mx_zap(MemexposeState *s, MemexposeMapping *m)
{
    void *p;

    if (m->zapped) {
        return true;
    }
    p = mmap(m->host, m->size, PROT_READ | PROT_WRITE,
             MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        error_report("memexpose %s: cannot revoke the mapping of peer range"
                     " 0x%" PRIx64 "+0x%" PRIx64 ": %s", s->name,
                     m->peer_addr, m->size, strerror(errno));
        return false;
    }
    m->zapped = true;
    return true;
}

bool memexpose_invalidate(MemexposeState *s, uint64_t addr, uint64_t len)
{
    MemexposeMapping *m;
    bool ok = true;

    qemu_mutex_lock(&mx_map_lock);
    s->inval_gen++;
    QLIST_FOREACH(m, &s->mappings, next) {
        if (addr <= m->peer_addr + (m->size - 1) &&
            m->peer_addr <= addr + (len - 1)) {
            ok &= mx_zap(s, m);
        }
    }
    qemu_mutex_unlock(&mx_map_lock);
    memexpose_remap(s);
    return ok;
}

static void mx_mapping_finalize(Object *obj)
{
    MemexposeMapping *m = MEMEXPOSE_MAPPING(obj);

    qemu_mutex_lock(&mx_map_lock);
    if (m->dev) {
        QLIST_REMOVE(m, next);
        m->dev = NULL;
    }
    qemu_mutex_unlock(&mx_map_lock);
}

static void mx_remap_bh(void *opaque)
{
    MemexposeState *s = opaque;

    memexpose_unmap_all(s);
    mx_walk_start(s);
}

static void mx_walk_reply_bh(void *opaque);
static void mx_walk_timeout(void *opaque);

void memexpose_window_init(MemexposeState *s)
{
    Object *owner = OBJECT(s->dev);

    memory_region_init(&s->window, owner, "memexpose-window", s->window_size);
    memory_region_init_io(&s->forward, owner, &mx_forward_ops, s,
                          "memexpose-forward", s->window_size);
    memory_region_add_subregion_overlap(&s->window, 0, &s->forward, 0);
    QLIST_INIT(&s->mappings);
    s->remap_bh = qemu_bh_new(mx_remap_bh, s);
    s->walk_bh = qemu_bh_new(mx_walk_reply_bh, s);
    s->walk_timer = timer_new_ms(QEMU_CLOCK_REALTIME, mx_walk_timeout, s);
    s->walk_call.fd = -1;
    s->walk_call.notify = s->walk_bh;
}

/* Unrealize: the mappings that are still being freed forget us. */
void memexpose_window_finalize(MemexposeState *s)
{
    MemexposeMapping *m, *tmp;

    memexpose_unmap_all(s);
    qemu_mutex_lock(&mx_map_lock);
    QLIST_FOREACH_SAFE(m, &s->mappings, next, tmp) {
        QLIST_REMOVE(m, next);
        m->dev = NULL;
    }
    qemu_mutex_unlock(&mx_map_lock);
    memexpose_call_cancel(s, &s->walk_call);
    if (s->walk_call.fd >= 0) {
        close(s->walk_call.fd);
    }
    qemu_bh_delete(s->remap_bh);
    qemu_bh_delete(s->walk_bh);
    g_clear_pointer(&s->walk_timer, timer_free);
}

/* Take every mapping out of the window (BQL). */
void memexpose_unmap_all(MemexposeState *s)
{
    g_autoptr(GPtrArray) gone = g_ptr_array_new();
    MemexposeMapping *m;
    unsigned i;

    /* Retired mappings stay listed until finalized, for invalidation. */
    qemu_mutex_lock(&mx_map_lock);
    QLIST_FOREACH(m, &s->mappings, next) {
        if (!m->retired) {
            m->retired = true;
            g_ptr_array_add(gone, m);
        }
    }
    qemu_mutex_unlock(&mx_map_lock);
    if (!gone->len) {
        return;
    }
    memory_region_transaction_begin();
    for (i = 0; i < gone->len; i++) {
        m = g_ptr_array_index(gone, i);
        memory_region_del_subregion(&s->window, &m->mr);
        qatomic_sub(&s->stats.mapped_bytes, m->size);
        /* Freed, with its RAMBlock and mmap, when no flat view uses it. */
        object_unref(OBJECT(m));
    }
    memory_region_transaction_commit();
}

/* Drop the mappings and walk the window again, from the main loop. */
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
                             uint64_t len, bool writable, const char **why)
{
    struct stat st;
    int seals, mode;

    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        *why = "not a regular file or memfd";
        return false;
    }
    mode = fcntl(fd, F_GETFL) & O_ACCMODE;
    if (writable && mode != O_RDWR) {
        *why = "a read-write grant with a descriptor not open for writing";
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
                      uint64_t base, uint32_t inval_gen)
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
    bool stale;

    if ((wstart | len | foff) & (page - 1)) {
        warn_report("memexpose %s: peer range 0x%" PRIx64 "+0x%" PRIx64
                    " not page aligned; forwarding it", s->name, wstart, len);
        close(fd);
        return;
    }
    if (!mx_fd_acceptable(s, fd, foff, len, r->perm & MXP_PERM_WRITE,
                          &why)) {
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
    m->host = memory_region_get_ram_ptr(&m->mr);

    /*
     * An INVALIDATE that arrived after this reply may have revoked it
     * already: then the walk starts again and this mapping is not made.
     * From here on an INVALIDATE finds it on the list.
     */
    qemu_mutex_lock(&mx_map_lock);
    stale = s->inval_gen != inval_gen;
    if (!stale) {
        m->dev = s;
        QLIST_INSERT_HEAD(&s->mappings, m, next);
    }
    qemu_mutex_unlock(&mx_map_lock);
    if (stale) {
        object_unref(OBJECT(m));
        return;
    }
    memory_region_add_subregion_overlap(&s->window, wstart - base, &m->mr, 1);
    qatomic_add(&s->stats.mapped_bytes, len);
    qatomic_inc(&s->stats.maps);
}

/*
 * The mapping walk: one MAP outstanding at a time, continued from its
 * reply in the main loop, so neither the main loop nor a vCPU ever waits
 * for the exporter.  Every reply must cover whole granules (the larger
 * of the two page sizes) including the one asked for, so the walk always
 * advances; a walk that needs more than MEMEXPOSE_MAX_WALK_MAPS requests
 * ends the link.  A new window base, a link change or an invalidation
 * restarts it.
 */
static uint64_t mx_granule(MemexposeState *s)
{
    return MAX(qemu_real_host_page_size(), s->peer.page_size);
}

static void mx_walk_send(MemexposeState *s)
{
    MxpMsg req = {
        .hdr = { .type = MXP_MAP },
        .u.map.addr = s->walk_base + s->walk_off,
    };

    if (++s->walk_maps > MEMEXPOSE_MAX_WALK_MAPS) {
        memexpose_link_down(s, "the mapping walk needs more than "
                            stringify(MEMEXPOSE_MAX_WALK_MAPS) " MAPs");
        return;
    }
    if (memexpose_call_async(s, &req, &s->walk_call) != 0) {
        return;         /* no link: the next link up walks again */
    }
    s->walk_pending = true;
    timer_mod(s->walk_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
              MAX(s->timeout_ms, MEMEXPOSE_PATIENT_TIMEOUT_MS));
}

static void mx_walk_start(MemexposeState *s)
{
    if (s->walk_pending) {
        s->walk_restart = true;     /* once the outstanding reply is in */
        return;
    }
    s->walk_restart = false;
    if (!qatomic_read(&s->up) || !(s->features & MXP_FEAT_MAP)) {
        return;
    }
    s->walk_base = s->window_base;
    s->walk_off = 0;
    s->walk_maps = 0;
    mx_walk_send(s);
}

/* Whether @r answers a MAP for @addr as the spec requires. */
static const char *mx_map_reply_invalid(MemexposeState *s,
                                        const MxpMapReply *r, uint64_t addr)
{
    uint64_t g = mx_granule(s);
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

static void mx_walk_reply_bh(void *opaque)
{
    MemexposeState *s = opaque;
    MemexposeCall *call = &s->walk_call;
    uint64_t addr = s->walk_base + s->walk_off;
    const MxpMapReply *r = &call->map;
    int fd = call->fd;
    const char *why;
    uint64_t end;

    if (!s->walk_pending || !call->done) {
        return;
    }
    s->walk_pending = false;
    call->fd = -1;
    timer_del(s->walk_timer);

    if (call->err || s->walk_restart || !qatomic_read(&s->up)) {
        if (fd >= 0) {
            close(fd);
        }
        /*
         * UNSUPPORTED, BUSY or INTERNAL (the I/O thread ended the link on
         * any other code): said once per link, not at every walk.
         */
        if (call->err > 0 && !(s->map_errors_logged & (1U << call->err))) {
            s->map_errors_logged |= 1U << call->err;
            warn_report("memexpose %s: the peer refused MAP for 0x%" PRIx64
                        ": %s; forwarding the rest of the window", s->name,
                        addr, mxp_err_str(call->err));
        }
        if (s->walk_restart) {
            mx_walk_start(s);
        }
        return;
    }
    why = mx_map_reply_invalid(s, r, addr);
    if (why) {
        g_autofree char *reason = g_strdup_printf(
            "bad MAP_REPLY for 0x%" PRIx64 ": %s", addr, why);

        if (fd >= 0) {
            close(fd);
        }
        memexpose_link_down(s, reason);
        return;
    }
    if (r->kind == MXP_MAP_FD) {
        mx_map_fd(s, r, fd, s->walk_base, call->inval_gen);
    } else if (r->kind == MXP_MAP_FORWARD && r->reason) {
        s->forward_reason = r->reason;
        if (!(s->forward_reasons_logged & (1U << r->reason))) {
            s->forward_reasons_logged |= 1U << r->reason;
            info_report("memexpose %s: the peer forwards 0x%" PRIx64
                        "+0x%" PRIx64 " instead of sharing it: %s", s->name,
                        r->addr, r->length, mxp_forward_reason_str(r->reason));
        }
    }
    end = r->addr + (r->length - 1);
    if (end == UINT64_MAX || (r->addr == 0 && r->length == UINT64_MAX) ||
        end - s->walk_base >= s->window_size - 1) {
        return;                     /* the whole window is resolved */
    }
    s->walk_off = end + 1 - s->walk_base;
    mx_walk_send(s);
}

/* The exporter did not answer the walk's MAP in time. */
static void mx_walk_timeout(void *opaque)
{
    MemexposeState *s = opaque;

    if (s->walk_pending && memexpose_call_cancel(s, &s->walk_call)) {
        s->walk_pending = false;
        qatomic_inc(&s->stats.timeouts);
        memexpose_link_down(s, "the peer did not answer MAP in time");
    }
}

static const TypeInfo memexpose_mapping_info = {
    .name = TYPE_MEMEXPOSE_MAPPING,
    .parent = TYPE_OBJECT,
    .instance_size = sizeof(MemexposeMapping),
    .instance_finalize = mx_mapping_finalize,
};

static void memexpose_mapping_register_types(void)
{
    qemu_mutex_init(&mx_map_lock);
    type_register_static(&memexpose_mapping_info);
}

type_init(memexpose_mapping_register_types)
