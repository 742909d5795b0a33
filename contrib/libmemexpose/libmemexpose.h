/*
 * libmemexpose: the memexpose protocol for programs that are not QEMU.
 *
 * A host process links to a memexpose device (or to another program on
 * this library) over a unix socket and then, as importer, reads, writes
 * and maps the peer's guest-physical memory, and, as exporter, offers
 * memory of its own to the peer with a default-deny policy.  Both sides
 * ring each other's doorbells.  docs/specs/memexpose.rst is the protocol;
 * contrib/libmemexpose/README.md is the guide to this API.
 *
 * Threads: a link (mx_link) is single-threaded.  All calls on one link
 * must come from one thread at a time; callbacks run inside the call
 * that dispatched the message (mx_dispatch() or any blocking call), on
 * that thread, and must not call into their own link except
 * mx_lookup(), mx_peer() and mx_get_stats().  Different links are
 * independent.  The library installs
 * no signal handlers and never raises SIGPIPE (it sends with
 * MSG_NOSIGNAL).
 *
 * Liveness: the peer pings the link (the QEMU device once per heartbeat,
 * 1 s by default) and takes it down when a PING stays unanswered for
 * three heartbeats, so a program must call mx_dispatch() or a blocking
 * call at least once a second while it keeps a link.
 *
 * Return values: functions returning int give 0 on success, a positive
 * MX_E_* code when the peer refused the request (the link stays up), or
 * a negative MX_ERR_* value; after MX_ERR_LINK and MX_ERR_TIMEOUT the
 * link is down and mx_link_error() says why.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef LIBMEMEXPOSE_H
#define LIBMEMEXPOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Negative results. */
#define MX_ERR_LINK         (-1)    /* no link, or it went down */
#define MX_ERR_TIMEOUT      (-2)    /* no answer in time; link is down */
#define MX_ERR_INVAL        (-3)    /* bad argument; nothing was sent */
#define MX_ERR_NOMEM        (-4)    /* out of memory or mapping space */
#define MX_ERR_SYS          (-5)    /* a system call failed (see errno) */
#define MX_ERR_AGAIN        (-6)    /* would block (no doorbell, credit) */

/* Positive results: the peer's refusal (the protocol's error codes). */
#define MX_E_PROTOCOL       1
#define MX_E_VERSION        2
#define MX_E_DENIED         3   /* not inside one exported range */
#define MX_E_READ_ONLY      4   /* write to a read-only export */
#define MX_E_UNSUPPORTED    5   /* feature not negotiated, size too big */
#define MX_E_ACCESS         6   /* unassigned space or bus error */
#define MX_E_RECURSION      7   /* would reach a memexpose window */
#define MX_E_BUSY           8
#define MX_E_BAD_VECTOR     9
#define MX_E_NOT_BOOT_TARGET 10
#define MX_E_BAD_STATE      11
#define MX_E_BAD_ENTRY      12
#define MX_E_TIMEOUT        13
#define MX_E_SHUTDOWN       14
#define MX_E_INTERNAL       15

/* Feature bits (HELLO features, mx_peer_info.features). */
#define MX_FEAT_MAP         (1ULL << 0)
#define MX_FEAT_BULK        (1ULL << 1)
#define MX_FEAT_BOOT        (1ULL << 2)
#define MX_FEAT_HEARTBEAT   (1ULL << 3)
#define MX_FEAT_DB_RING     (1ULL << 4)

/* Permissions of exports and mappings. */
#define MX_PERM_READ        1
#define MX_PERM_RW          3

/* Peer roles (mx_peer_info.role). */
#define MX_ROLE_DEVICE      0
#define MX_ROLE_BOOT_TARGET 1
#define MX_ROLE_TOOL        2

/* Kinds of a range described by mx_map(). */
#define MX_MAP_FD           0   /* zero-copy: mx_range.host is set */
#define MX_MAP_FORWARD      1   /* reachable by mx_read()/mx_write() */
#define MX_MAP_DENIED       2   /* not exported by the peer */

/* Boot states of a boot target peer (mx_peer_boot_state()). */
#define MX_BOOT_NONE        0
#define MX_BOOT_WAITING     1
#define MX_BOOT_RUNNING     2
#define MX_BOOT_HALTED      3

#define MX_MAX_VECTORS      64
#define MX_MAX_DOORBELL     256     /* largest doorbell payload */
#define MX_NAME_MAX         63      /* longest HELLO name */

typedef struct mx_link mx_link;

/*
 * Callback for a register-like export (mx_export_callback()).  @offset
 * is relative to the start of the export; @size is 1, 2, 4 or 8 for a
 * single access of that width, anything up to 4096 for a bulk one.
 * Read fills @buf (memory order, little-endian values), write consumes
 * it.  Return 0, or an MX_E_* code to refuse (MX_E_ACCESS, typically).
 */
typedef int (*mx_access_fn)(void *opaque, uint64_t offset, void *buf,
                            uint32_t size, bool write);

/*
 * Called when the peer revokes [addr, addr + len) (INVALIDATE) or the
 * link goes down (@addr 0, @len UINT64_MAX).  By then every mapping
 * overlapping the range has already been replaced: its pages read as
 * zeros and writes go nowhere; the pointers stay valid until
 * mx_unmap() or mx_close().
 */
typedef void (*mx_invalidate_fn)(void *opaque, uint64_t addr, uint64_t len);

/* Called for each doorbell received, before it is queued. */
typedef void (*mx_doorbell_fn)(void *opaque, unsigned vector,
                               const void *data, size_t len);

typedef struct mx_options {
    const char *name;       /* HELLO name, printable ASCII, <= 63 chars */
    uint64_t features;      /* offered: MX_FEAT_MAP, _BULK, _BOOT,
                               _HEARTBEAT (needs heartbeat_ms), _DB_RING */
    unsigned vectors;       /* doorbell vectors we receive, 0..64 */
    unsigned queue_depth;   /* doorbells we queue (peer's credits) */
    unsigned timeout_ms;    /* bound of every wait for the peer */
    bool trust_peer;        /* map descriptors that are not sealed memfds */
    mx_invalidate_fn on_invalidate;
    mx_doorbell_fn on_doorbell;
    void *opaque;           /* passed to the callbacks */
    /*
     * Liveness interval, 0 for none.  While the caller is in a call of
     * ours (mx_dispatch() included), one PING is kept outstanding, the
     * next sent an interval after the last PONG, and the link goes down
     * when a PING is unanswered for three intervals ("the peer did not
     * answer PING") or, with HEARTBEAT in use, when no message at all
     * came for three ("no heartbeat from the peer").  The peer applies
     * the same rules to us: call in at least once per interval of its.
     */
    unsigned heartbeat_ms;
} mx_options;

typedef struct mx_peer_info {
    char name[MX_NAME_MAX + 1];
    unsigned version_minor;
    uint64_t features;      /* the peer's HELLO features */
    uint64_t negotiated;    /* what both offered: in effect on the link */
    unsigned page_size;
    unsigned role;          /* MX_ROLE_* */
    unsigned vectors;       /* doorbell vectors the peer receives */
    unsigned queue_depth;   /* credits the peer granted us */
    unsigned max_data;      /* effective READ/WRITE size limit */
} mx_peer_info;

/* A range of the peer's address space, as mx_map() describes it. */
typedef struct mx_range {
    uint64_t addr;          /* first byte */
    uint64_t length;        /* UINT64_MAX: to the end of the space */
    unsigned kind;          /* MX_MAP_* */
    unsigned perm;          /* MX_PERM_*, 0 for DENIED */
    unsigned reason;        /* FORWARD: the peer's reason code */
    void *host;             /* FD kind, mapped: byte at @map_addr */
    uint64_t map_addr;      /* peer address of host[0] */
    uint64_t map_len;       /* bytes mapped at @host */
    const char *why;        /* FD kind not mapped: why it is forwarded */
} mx_range;

/* Counters, for tests and tools. */
typedef struct mx_stats {
    uint64_t served_reads;      /* peer READs answered with data */
    uint64_t served_writes;     /* peer WRITEs performed */
    uint64_t refused;           /* peer requests answered with ERROR */
    uint64_t maps_served;       /* peer MAPs answered */
    uint64_t fds_sent;          /* MAP_REPLYs with a descriptor */
    uint64_t invalidations;     /* INVALIDATEs acknowledged */
    uint64_t doorbells_sent;
    uint64_t doorbells_received;
} mx_stats;

/*
 * Fill @opt with the defaults: MAP|BULK|BOOT|HEARTBEAT, 4 vectors, depth
 * 32, timeout and heartbeat 1000 ms.
 */
void mx_options_init(mx_options *opt);

/* A new link, not yet connected.  NULL if out of memory or bad @opt. */
mx_link *mx_link_new(const mx_options *opt);

/*
 * Connect to the unix socket @path and complete the handshake, retrying
 * the connection until the timeout if nobody listens yet.
 */
int mx_connect(mx_link *l, const char *path);

/*
 * Listen on @path (created; an existing socket file is replaced), accept
 * one connection within @timeout_ms (-1: forever) and complete the
 * handshake.  The listening socket is closed afterwards.
 */
int mx_listen(mx_link *l, const char *path, int timeout_ms);

/* Use the connected stream socket @fd (taken over) and hand-shake. */
int mx_attach(mx_link *l, int fd);

/*
 * End the link in order (BYE), keeping @l, its exports and its
 * mappings (revoked, as on any link loss): mx_connect(), mx_listen() or
 * mx_attach() make a new link with a new handshake.
 */
void mx_disconnect(mx_link *l);

/* Orderly close (BYE), unmap everything and free @l.  NULL is ignored. */
void mx_close(mx_link *l);

/* Why the link went down or the last call failed; "" if neither. */
const char *mx_link_error(const mx_link *l);

/* Whether the link is up. */
bool mx_link_up(const mx_link *l);

/* The peer's HELLO, or NULL before the handshake. */
const mx_peer_info *mx_peer(const mx_link *l);

const mx_stats *mx_get_stats(const mx_link *l);

/* Name of an MX_E_ or MX_ERR_ result. */
const char *mx_strerror(int result);

/* Why the peer forwards a range (mx_range.reason), e.g. "not RAM". */
const char *mx_reason_str(unsigned reason);

/* ---- event loop integration ---- */

/* The socket to poll for POLLIN (-1 without a link). */
int mx_fd(const mx_link *l);

/*
 * With MX_FEAT_DB_RING in use: the eventfd the peer signals doorbells
 * on; poll it for POLLIN as well (-1 otherwise).
 */
int mx_event_fd(const mx_link *l);

/* Whether output is queued: poll mx_fd() for POLLOUT as well. */
bool mx_want_write(const mx_link *l);

/*
 * Handle everything the peer has sent and send what is queued, waiting
 * up to @timeout_ms for input (0: do not wait, -1: forever).  Returns 0,
 * or MX_ERR_LINK once the link is down.
 */
int mx_dispatch(mx_link *l, int timeout_ms);

/* ---- importer: the peer's memory ---- */

/*
 * Read @len bytes at peer address @addr.  1, 2, 4 and 8 bytes are one
 * access of that width (MMIO semantics); other sizes need MX_FEAT_BULK
 * and go in chunks of max_data.  Mapped ranges are read directly.  On a
 * refusal @buf is all-ones (0xff) where it was refused.
 */
int mx_read(mx_link *l, uint64_t addr, void *buf, size_t len);

/* Write @len bytes at @addr; the same rules as mx_read(). */
int mx_write(mx_link *l, uint64_t addr, const void *buf, size_t len);

/* One access of @width (1, 2, 4, 8) bytes; little-endian value. */
int mx_read_value(mx_link *l, uint64_t addr, unsigned width, uint64_t *val);
int mx_write_value(mx_link *l, uint64_t addr, unsigned width, uint64_t val);

/*
 * Ask the peer how @addr can be reached (MAP) and describe the uniform
 * range around it in @r.  For kind FD the descriptor is checked as the
 * QEMU device checks it (regular file or memfd, size, access mode,
 * F_SEAL_SHRINK unless trust_peer, page alignment) and the part of the
 * range inside [@addr, @addr + @max_len) is mapped (@max_len 0: the whole
 * range); if a check fails, @r->why says why and the range is
 * forwarded.  Later mx_read()/mx_write() use the mapping.
 */
int mx_map(mx_link *l, uint64_t addr, uint64_t max_len, mx_range *r);

/*
 * A mapping that covers [@addr, @addr + @len) with at least @perm, or
 * NULL: the host address of @addr.
 */
void *mx_lookup(mx_link *l, uint64_t addr, uint64_t len, unsigned perm);

/* Unmap the mapping that contains @host (also after invalidation). */
void mx_unmap(mx_link *l, void *host);

/* ---- exporter: our memory for the peer ---- */

/*
 * Export @size bytes at address @addr of our space (page-aligned), held
 * in a new memfd sealed against shrinking and growing; *@host is our
 * mapping of it.  The peer gets the descriptor (zero-copy) when it asks
 * with MAP; a read-only export is also sealed against writes by others
 * (F_SEAL_FUTURE_WRITE), so the kernel enforces it, and is handed out
 * as a read-only descriptor.  Exports must not overlap.  Without any
 * export the peer is refused everything (default deny).
 */
int mx_export_buffer(mx_link *l, uint64_t addr, uint64_t size,
                     unsigned perm, void **host);

/*
 * Export [@addr, @addr + @size) served by @fn per access (forwarded
 * only, never mapped): register blocks, device models.
 */
int mx_export_callback(mx_link *l, uint64_t addr, uint64_t size,
                       unsigned perm, mx_access_fn fn, void *opaque);

/*
 * Export [@addr, @addr + @size) backed by the file @fd at @offset (the
 * library keeps a duplicate of @fd): the peer's READs and WRITEs become
 * pread() and pwrite() on it, so its writes land in the file and bytes
 * beyond its end read as zeros.  Never handed out as a descriptor (a
 * file cannot be sealed against shrinking: MAP says FORWARD, reason
 * UNSEALED).  MX_PERM_RW needs @fd open for writing.
 */
int mx_export_file(mx_link *l, uint64_t addr, uint64_t size,
                   unsigned perm, int fd, uint64_t offset);

/* ---- doorbells ---- */

/*
 * Ring the peer's doorbell @vector with @len (0..256) bytes of payload.
 * Uses one credit; without one, waits up to the timeout for the peer to
 * return credits (MX_ERR_AGAIN if none came).
 */
int mx_ring(mx_link *l, unsigned vector, const void *data, size_t len);

/* Credits left: doorbells that can be sent now. */
unsigned mx_credits(const mx_link *l);

typedef struct mx_doorbell {
    unsigned vector;
    size_t len;
    uint8_t data[MX_MAX_DOORBELL];
} mx_doorbell;

/*
 * Take the oldest queued doorbell, waiting up to @timeout_ms (0: no
 * wait, -1: forever); returns its credit to the peer.  MX_ERR_AGAIN if
 * none arrived in time.
 */
int mx_wait_doorbell(mx_link *l, mx_doorbell *db, int timeout_ms);

/* ---- boot master (the peer announced role BOOT_TARGET) ---- */

/* BOOT: start the target's CPU 0 at @entry with @nargs (0..4) args. */
int mx_boot(mx_link *l, uint64_t entry, const uint64_t *args,
            unsigned nargs);
int mx_reset(mx_link *l);
int mx_halt(mx_link *l);
/* The target's last STATE (MX_BOOT_*), MX_BOOT_NONE if none came. */
unsigned mx_peer_boot_state(const mx_link *l);

/*
 * Return once the peer has acted on everything sent before (doorbells
 * queued for its guest, writes done): a request it serves in order.
 * PING is no such barrier, it may be answered ahead.
 */
int mx_barrier(mx_link *l);

/* PING the peer and wait for its PONG. */
int mx_ping(mx_link *l);

#ifdef __cplusplus
}
#endif

#endif
