/*
 * memexpose memory layer: what the device core asks of it.  The layer
 * sits on QEMU's memory API: the exporter resolves exported flat ranges
 * of guest-physical memory to fd + offset and invalidates them when the
 * map changes (memexpose-export.c); the importer builds the window out
 * of forwarding and zero-copy mappings (memexpose-import.c).  The link,
 * the policy's configuration and the locking belong to the core
 * (memexpose.h).
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_MISC_MEMEXPOSE_MEMORY_H
#define HW_MISC_MEMEXPOSE_MEMORY_H

#include "qemu/queue.h"
#include "qom/object.h"
#include "memexpose-compat.h"
#include "memexpose-wire.h"

typedef struct MemexposeState MemexposeState;

/* One range of the export policy (property "export"). */
typedef struct MemexposeExport {
    uint64_t addr;
    uint64_t size;
    bool writable;
} MemexposeExport;

/*
 * A zero-copy mapping of peer RAM inside the window.  It is an object of
 * its own and owns its MemoryRegion, so flat views that still refer to
 * the region after it is unmapped keep it alive until RCU lets go.
 */
#define TYPE_MEMEXPOSE_MAPPING "memexpose-mapping"
OBJECT_DECLARE_SIMPLE_TYPE(MemexposeMapping, MEMEXPOSE_MAPPING)

struct MemexposeMapping {
    Object parent_obj;

    MemoryRegion mr;
    uint64_t peer_addr;
    uint64_t size;
    void *host;                 /* where the RAMBlock maps the peer's file */
    /* Under the importer's mapping lock (memexpose-import.c): */
    MemexposeState *dev;        /* whose list it is on; NULL once off it */
    bool retired;               /* out of the window, not finalized yet */
    bool zapped;                /* pages replaced: the peer is cut off */
    QLIST_ENTRY(MemexposeMapping) next;
};

/* MAP requests one mapping walk may take before the link is ended. */
#define MEMEXPOSE_MAX_WALK_MAPS     1024

/* Exporter: policy (s->export_spec) */
bool memexpose_parse_exports(MemexposeState *s, Error **errp);
const MemexposeExport *memexpose_find_export(MemexposeState *s,
                                             uint64_t addr, uint64_t size);

/* Exporter: answer the peer's MAP; called by the worker, takes the BQL. */
void memexpose_serve_map(MemexposeState *s, const MxpMsg *req);

/* Exporter: INVALIDATE what leaves our memory map (BQL, at realize). */
void memexpose_listener_init(MemexposeState *s);

/* Importer: the window and its mappings (BQL) */
void memexpose_window_init(MemexposeState *s);
void memexpose_window_finalize(MemexposeState *s);
void memexpose_unmap_all(MemexposeState *s);
void memexpose_remap(MemexposeState *s);

/*
 * Importer: the peer's INVALIDATE, in the I/O thread without the BQL.
 * On return no access through a mapping of [addr, addr + len) reaches
 * the peer's memory any more (false: a mapping could not be revoked).
 */
bool memexpose_invalidate(MemexposeState *s, uint64_t addr, uint64_t len);

/* A peer mapping of this or another memexpose window: never exported. */
bool memexpose_is_imported(const MemoryRegion *mr);

#endif
