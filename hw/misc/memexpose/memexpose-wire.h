/*
 * memexpose wire protocol v1: message layout, bounds and codec.
 *
 * Plain C99 on purpose: the same codec is compiled into QEMU, the host
 * tools, the unit tests and the fuzzers, so it uses no QEMU or glib
 * headers.  docs/specs/memexpose.rst is the normative description; the
 * constants here are the ones it names.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MEMEXPOSE_WIRE_H
#define MEMEXPOSE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MXP_VERSION_MAJOR       1
#define MXP_VERSION_MINOR       1
#define MXP_MAGIC               0x3150584dU /* "MXP1" read as LE u32 */

#define MXP_HEADER_SIZE         16
/* Largest data block a READ_REPLY or WRITE carries. */
#define MXP_MAX_DATA            4096
/* Largest payload of any message; WRITE is the biggest (16 + data). */
#define MXP_MAX_PAYLOAD         (16 + MXP_MAX_DATA)
#define MXP_MAX_MESSAGE         (MXP_HEADER_SIZE + MXP_MAX_PAYLOAD)
#define MXP_NAME_SIZE           64
#define MXP_MAX_DOORBELL_DATA   256
#define MXP_MAX_VECTORS         64
#define MXP_MAX_QUEUE_DEPTH     1024
#define MXP_BOOT_ARGS           4
#define MXP_MIN_PAGE_SIZE       4096U
#define MXP_MAX_PAGE_SIZE       (1U << 21)
/* A message carries at most this many file descriptors (SCM_RIGHTS). */
#define MXP_MAX_FDS             1

typedef enum MxpType {
    MXP_HELLO = 1,
    MXP_BYE = 2,
    MXP_ERROR = 3,
    MXP_PING = 4,
    MXP_PONG = 5,
    MXP_READ = 6,
    MXP_READ_REPLY = 7,
    MXP_WRITE = 8,
    MXP_ACK = 9,
    MXP_MAP = 10,
    MXP_MAP_REPLY = 11,
    MXP_INVALIDATE = 12,
    MXP_INVALIDATE_ACK = 13,
    MXP_DOORBELL = 14,
    MXP_CREDIT = 15,
    MXP_BOOT = 16,
    MXP_RESET = 17,
    MXP_HALT = 18,
    MXP_STATE = 19,
    MXP_DB_RING = 20,
    MXP_DB_EVENT = 21,
    MXP_DB_SPACE = 22,
    MXP_TYPE_MAX = MXP_DB_SPACE,
} MxpType;

/* Header flags. */
#define MXP_FLAG_FD             (1U << 0)   /* one fd rides with this message */
#define MXP_FLAG_ALL            MXP_FLAG_FD

/* HELLO feature bits. */
#define MXP_FEAT_MAP            (1ULL << 0) /* zero-copy MAP replies */
#define MXP_FEAT_BULK           (1ULL << 1) /* READ/WRITE not of 1/2/4/8 */
#define MXP_FEAT_BOOT           (1ULL << 2) /* BOOT/RESET/HALT/STATE */
#define MXP_FEAT_HEARTBEAT      (1ULL << 3) /* peer sends PING periodically */
#define MXP_FEAT_DB_RING        (1ULL << 4) /* doorbells: ring and eventfds */
#define MXP_FEAT_ALL            (MXP_FEAT_MAP | MXP_FEAT_BULK | \
                                 MXP_FEAT_BOOT | MXP_FEAT_HEARTBEAT | \
                                 MXP_FEAT_DB_RING)

/*
 * Doorbell ring (MXP_FEAT_DB_RING): a memfd the receiver creates, seals
 * against shrinking and hands to the sender with DB_RING.  Both sides
 * map it; fields are in host byte order (both peers share the host).
 * The sender writes entries and @producer, the receiver @consumer; each
 * side keeps its own copy of the index it writes and validates the
 * other's before use.  Indices count entries since the ring was made and
 * wrap at 2^32; entry i lives in slot i % depth.
 */
#define MXP_DB_RING_PRODUCER    0       /* u32, sender: entries published */
#define MXP_DB_RING_WAITING     4       /* u32, sender: nonzero = ring full */
#define MXP_DB_RING_CONSUMER    64      /* u32, receiver: entries freed */
#define MXP_DB_RING_ENTRIES     128     /* first entry */
/* Entry: u16 vector, u16 size, u32 zero, then MXP_MAX_DOORBELL_DATA bytes */
#define MXP_DB_ENTRY_SIZE       (8 + MXP_MAX_DOORBELL_DATA)
#define MXP_DB_RING_SIZE(depth) \
    (MXP_DB_RING_ENTRIES + (size_t)(depth) * MXP_DB_ENTRY_SIZE)

/* HELLO roles. */
typedef enum MxpRole {
    MXP_ROLE_DEVICE = 0,        /* a memexpose device in a VM */
    MXP_ROLE_BOOT_TARGET = 1,   /* a device whose VM waits for BOOT */
    MXP_ROLE_TOOL = 2,          /* a host tool: exports nothing by itself */
    MXP_ROLE_MAX = MXP_ROLE_TOOL,
} MxpRole;

/* Error codes carried by ERROR and BYE. */
typedef enum MxpErr {
    MXP_E_NONE = 0,
    MXP_E_PROTOCOL = 1,         /* malformed or unexpected message */
    MXP_E_VERSION = 2,          /* incompatible protocol version */
    MXP_E_DENIED = 3,           /* address outside the export policy */
    MXP_E_READ_ONLY = 4,        /* write to a read-only export */
    MXP_E_UNSUPPORTED = 5,      /* feature not negotiated */
    MXP_E_ACCESS = 6,           /* the exporter's bus reported an error */
    MXP_E_RECURSION = 7,        /* access would land in a memexpose window */
    MXP_E_BUSY = 8,             /* no doorbell credit / queue full */
    MXP_E_BAD_VECTOR = 9,
    MXP_E_NOT_BOOT_TARGET = 10,
    MXP_E_BAD_STATE = 11,       /* e.g. BOOT while already running */
    MXP_E_BAD_ENTRY = 12,       /* BOOT entry outside the target's RAM */
    MXP_E_TIMEOUT = 13,
    MXP_E_SHUTDOWN = 14,        /* BYE: orderly close */
    MXP_E_INTERNAL = 15,
    MXP_E_MAX = MXP_E_INTERNAL,
} MxpErr;

/* MAP_REPLY kinds. */
typedef enum MxpMapKind {
    MXP_MAP_FD = 0,             /* fd attached; mmap it at fd_offset */
    MXP_MAP_FORWARD = 1,        /* reachable, but only through READ/WRITE */
    MXP_MAP_DENIED = 2,         /* not exported: perm is 0 */
    MXP_MAP_KIND_MAX = MXP_MAP_DENIED,
} MxpMapKind;

/*
 * Why a MAP_REPLY of kind FORWARD is not of kind FD (protocol 1.1; sent
 * only to a peer of minor version 1 or later, 0 otherwise).
 */
typedef enum MxpForwardReason {
    MXP_FWD_UNSPECIFIED = 0,
    MXP_FWD_NOT_RAM = 1,        /* MMIO, ROM or device memory */
    MXP_FWD_PRIVATE = 2,        /* RAM without a shareable file */
    MXP_FWD_PARTIAL = 3,        /* not whole pages of one export and range */
    MXP_FWD_NOT_WHOLE = 4,      /* the file is not wholly visible, exported */
    MXP_FWD_UNSEALED = 5,       /* writable, not sealed against shrinking */
    MXP_FWD_READ_ONLY = 6,      /* read-only, not sealed against writing */
    MXP_FWD_NO_FD = 7,          /* the exporter could not make a descriptor */
    MXP_FWD_REASON_MAX = MXP_FWD_NO_FD,
} MxpForwardReason;

/* Permission bits for MAP_REPLY. */
#define MXP_PERM_READ           (1U << 0)
#define MXP_PERM_WRITE          (1U << 1)
#define MXP_PERM_ALL            (MXP_PERM_READ | MXP_PERM_WRITE)

/* Boot states reported by STATE. */
typedef enum MxpBootState {
    MXP_BOOT_NONE = 0,          /* not a boot target */
    MXP_BOOT_WAITING = 1,
    MXP_BOOT_RUNNING = 2,
    MXP_BOOT_HALTED = 3,
    MXP_BOOT_STATE_MAX = MXP_BOOT_HALTED,
} MxpBootState;

/* Codec results: 0 on success, a negative MxpStatus otherwise. */
typedef enum MxpStatus {
    MXP_OK = 0,
    MXP_ERR_SHORT = -1,         /* buffer shorter than the message */
    MXP_ERR_TOO_LONG = -2,      /* length beyond MXP_MAX_PAYLOAD */
    MXP_ERR_TYPE = -3,          /* unknown message type */
    MXP_ERR_LENGTH = -4,        /* length does not match the type */
    MXP_ERR_FLAGS = -5,         /* unknown flag bits */
    MXP_ERR_FDS = -6,           /* fd count does not match the message */
    MXP_ERR_RANGE = -7,         /* a field is out of its bounds */
    MXP_ERR_SPACE = -8,         /* encode: output buffer too small */
    MXP_ERR_VERSION = -9,       /* HELLO of another major version */
} MxpStatus;

typedef struct MxpHeader {
    uint16_t type;
    uint16_t flags;
    uint32_t length;            /* payload bytes after the header */
    uint64_t id;                /* request id; replies echo it */
} MxpHeader;

typedef struct MxpHello {
    uint32_t magic;
    uint16_t version_major;
    uint16_t version_minor;
    uint64_t features;
    uint32_t page_size;
    uint8_t role;
    uint8_t vectors;            /* doorbell vectors this side receives */
    uint16_t queue_depth;       /* initial doorbell credits for the peer */
    uint32_t max_data;          /* largest READ/WRITE data it accepts */
    char name[MXP_NAME_SIZE];   /* NUL-terminated, printable ASCII */
} MxpHello;

typedef struct MxpError {
    uint32_t code;              /* MxpErr */
    uint32_t request_type;      /* type of the refused request, or 0 */
    uint64_t addr;              /* address concerned, or 0 */
} MxpError;

typedef struct MxpAccess {
    uint64_t addr;
    uint32_t size;
    const uint8_t *data;        /* WRITE, READ_REPLY: points into buffer */
} MxpAccess;

typedef struct MxpMapRequest {
    uint64_t addr;
} MxpMapRequest;

typedef struct MxpMapReply {
    uint8_t kind;               /* MxpMapKind */
    uint8_t perm;               /* MXP_PERM_* */
    uint8_t reason;             /* MXP_MAP_FORWARD: MxpForwardReason */
    uint64_t addr;              /* start of the described range */
    uint64_t length;
    uint64_t fd_offset;         /* MXP_MAP_FD only */
} MxpMapReply;

typedef struct MxpRange {
    uint64_t addr;
    uint64_t length;
} MxpRange;

typedef struct MxpDoorbell {
    uint16_t vector;
    uint16_t size;
    const uint8_t *data;        /* points into buffer */
} MxpDoorbell;

typedef struct MxpBoot {
    uint64_t entry;
    uint32_t nargs;
    uint64_t args[MXP_BOOT_ARGS];
} MxpBoot;

typedef struct MxpMsg {
    MxpHeader hdr;
    union {
        MxpHello hello;
        MxpError error;         /* ERROR and BYE */
        uint64_t ping;          /* PING, PONG: opaque cookie */
        MxpAccess access;       /* READ, READ_REPLY, WRITE */
        MxpMapRequest map;
        MxpMapReply map_reply;
        MxpRange range;         /* INVALIDATE */
        MxpDoorbell doorbell;
        uint32_t credits;       /* CREDIT */
        MxpBoot boot;
        uint32_t state;         /* STATE: MxpBootState */
        uint32_t ring_depth;    /* DB_RING: entries in the ring */
        uint32_t event_vector;  /* DB_EVENT: the vector the eventfd rings */
    } u;
} MxpMsg;

/*
 * Decode the fixed header at @buf.  Checks type, flags and length bounds
 * but not the payload; use it to learn how many bytes the whole message
 * needs (MXP_HEADER_SIZE + hdr->length) before reading them.
 */
int mxp_decode_header(const uint8_t *buf, size_t len, MxpHeader *hdr);

/*
 * Decode and validate one whole message of exactly @len bytes that arrived
 * with @nfds file descriptors.  Pointers in @msg refer into @buf.  Never
 * reads outside buf[0..len).
 *
 * The first 8 payload bytes of HELLO (magic, major, minor) are frozen for
 * all protocol versions: a HELLO with the right magic but another major
 * version yields MXP_ERR_VERSION with those fields filled in, whatever
 * its length, so that the refusal can name the reason.
 */
int mxp_decode(const uint8_t *buf, size_t len, unsigned nfds, MxpMsg *msg);

/*
 * Encode @msg (hdr.length and the FD flag are computed here) into @buf.
 * Returns the message size, or a negative MxpStatus if @msg is invalid or
 * @cap is too small.  A message that encodes always decodes.
 */
int mxp_encode(const MxpMsg *msg, uint8_t *buf, size_t cap);

/* Number of fds that must accompany a message with this header. */
unsigned mxp_expected_fds(const MxpHeader *hdr);

const char *mxp_type_name(unsigned type);
const char *mxp_status_str(int status);
const char *mxp_err_str(unsigned code);
const char *mxp_forward_reason_str(unsigned reason);

/* True for a message sent in answer to a request (it echoes the id). */
bool mxp_type_is_reply(unsigned type);

#endif
