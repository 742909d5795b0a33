/*
 * memexpose: the bus-independent core shared by the PCI and platform
 * front ends, and the interfaces between its parts (link, serving,
 * doorbells, registers, boot; the memory layer has memexpose-memory.h).
 * The core owns the link (chardev, handshake, requests), the export
 * policy, the window and the doorbell queues; a front end maps the
 * register block and the window and delivers interrupts.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_MISC_MEMEXPOSE_H
#define HW_MISC_MEMEXPOSE_H

#include "chardev/char-fe.h"
#include "qemu/event_notifier.h"
#include "qemu/queue.h"
#include "qemu/units.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "system/iothread.h"
#include "system/runstate.h"
#include "memexpose-compat.h"
#include "memexpose-memory.h"
#include "memexpose-regs.h"
#include "memexpose-wire.h"

/* Interrupt 0 signals MX_INTR_LINK/TX_READY; 1 + v is doorbell vector v. */
#define MX_IRQ_CONTROL              0
#define MX_IRQ_DOORBELL(v)          (1 + (v))

#define MEMEXPOSE_DEFAULT_VECTORS   4
#define MEMEXPOSE_DEFAULT_QUEUE     32
#define MEMEXPOSE_DEFAULT_WINDOW    (1 * GiB)
#define MEMEXPOSE_DEFAULT_TIMEOUT_MS 1000
#define MEMEXPOSE_DEFAULT_HEARTBEAT_MS 1000
#define MEMEXPOSE_PATIENT_TIMEOUT_MS 10000

/* memexpose_call() results besides 0 and the peer's MxpErr */
#define MX_CALL_LINK_DOWN           (-1)
#define MX_CALL_TIMEOUT             (-2)

typedef struct MemexposeDoorbell {
    uint16_t vector;
    uint16_t size;
    uint8_t data[MXP_MAX_DOORBELL_DATA];
} MemexposeDoorbell;

/* One eventfd of a doorbell ring, with what its handler needs. */
typedef struct MemexposeRingEvent {
    EventNotifier notifier;
    MemexposeState *s;
    struct MemexposeRing *ring;
} MemexposeRingEvent;

/*
 * A doorbell ring of MXP_FEAT_DB_RING: ours, which the peer writes and
 * the main loop drains, or the peer's, which our vCPUs write.
 */
typedef struct MemexposeRing {
    uint8_t *base;              /* the memfd, mapped */
    size_t size;
    int memfd;
    uint32_t depth;
    unsigned nr_events;         /* one eventfd per vector of the receiver */
    MemexposeRingEvent events[MXP_MAX_VECTORS];
    bool handlers_set;          /* ours: watched by the main loop */
} MemexposeRing;

/*
 * One request of ours waiting for the peer's reply.  A caller of
 * memexpose_call() waits for it; one of memexpose_call_async() gives a
 * @notify BH that runs once the reply is in or the call failed.
 */
typedef struct MemexposeCall {
    uint64_t id;
    uint64_t addr;              /* READ: the address asked for */
    uint16_t type;
    bool done;
    int err;                    /* MxpErr from an ERROR reply, or 0 */
    uint32_t size;
    uint8_t data[MXP_MAX_DATA];
    MxpMapReply map;
    int fd;
    uint32_t inval_gen;         /* MAP: INVALIDATEs seen when answered */
    QEMUBH *notify;
    QLIST_ENTRY(MemexposeCall) next;
} MemexposeCall;

/* A message from the peer handed to the worker thread. */
typedef struct MemexposeWork {
    uint32_t epoch;             /* link the request arrived on */
    MxpMsg msg;
    uint8_t data[MXP_MAX_DATA];
    QSIMPLEQ_ENTRY(MemexposeWork) next;
} MemexposeWork;

/* A BOOT, RESET or HALT from the peer, waiting for the main loop. */
typedef struct MemexposeBootRequest {
    uint32_t epoch;             /* link the request arrived on */
    MxpMsg msg;                 /* no payload beyond the struct */
    QSIMPLEQ_ENTRY(MemexposeBootRequest) next;
} MemexposeBootRequest;

/*
 * Peer requests (doorbells aside) queued for the worker before we stop
 * reading the socket.  An honest QEMU peer has at most one forwarded
 * access per vCPU, one MAP and one boot command outstanding.
 */
#define MEMEXPOSE_MAX_WORK          256

/* More pending boot requests than this are answered BUSY. */
#define MEMEXPOSE_MAX_BOOT_REQUESTS 8

typedef struct MemexposeCounters {
    uint64_t fwd_reads;         /* our window accesses sent as READ */
    uint64_t fwd_writes;        /* ... and as WRITE */
    uint64_t served_reads;      /* peer READs we performed */
    uint64_t served_writes;
    uint64_t refused;           /* accesses refused, either direction */
    uint64_t mapped_bytes;      /* zero-copy bytes currently mapped */
    uint64_t maps;              /* zero-copy mappings made */
    uint64_t db_sent;
    uint64_t db_received;
    uint64_t db_lost;           /* sends ignored because the peer was busy */
    uint64_t timeouts;
    uint64_t link_ups;
    uint64_t invalidations;     /* INVALIDATEs the peer acknowledged */
} MemexposeCounters;

struct MemexposeState {
    /* Set by the front end before memexpose_realize(). */
    DeviceState *dev;
    void (*irq_notify)(MemexposeState *s, unsigned irq);

    /* Properties */
    CharFrontend chr;
    char *export_spec;
    char *name;
    uint64_t window_size;
    uint32_t vectors;
    uint32_t queue_depth;
    uint32_t timeout_ms;
    uint32_t heartbeat_ms;
    bool trust_peer;
    bool zero_copy;
    bool db_ring;               /* offer MXP_FEAT_DB_RING */
    bool boot_target;

    /* Export policy, parsed from export_spec */
    MemexposeExport *exports;
    unsigned nr_exports;

    IOThread *iothread;
    QemuThread worker;
    Notifier shutdown;
    Error *migration_blocker;

    /*
     * @lock protects everything below; never held while sending, while
     * waiting for the BQL or while touching guest memory.
     */
    QemuMutex lock;
    QemuCond cond;              /* a call completed or failed */
    QemuCond work_cond;         /* work queued, or stopping */
    QemuMutex send_lock;        /* one message at a time on the socket */
    QemuMutex hello_lock;       /* our HELLO goes out first, and once */
    bool connected;             /* socket open, handshake maybe pending */
    int64_t connected_ms;       /* ... since then: the HELLO is due */
    bool up;                    /* handshake done */
    bool hello_sent;
    bool hello_received;        /* waiting for the peer's doorbell ring */
    int64_t hello_rx_ms;
    uint32_t hello_depth;       /* the queue_depth our HELLO offered */
    bool stopping;
    bool detached;              /* chardev let go of (also @send_lock) */
    uint32_t epoch;             /* incremented on every link up and down */
    MxpHello peer;
    uint64_t features;
    uint32_t max_data;
    uint64_t next_id;
    QLIST_HEAD(, MemexposeCall) calls;
    int64_t last_rx_ms;         /* last complete message */
    uint64_t ping_id;           /* our PING awaiting its PONG, or 0 */
    int64_t ping_sent_ms;       /* ... and its cookie */
    QEMUTimer *heartbeat;

    /* Receive side, only touched in the iothread */
    uint8_t rxbuf[MXP_MAX_MESSAGE];
    uint32_t rxlen;
    int64_t rx_started_ms;      /* first byte of the message in rxbuf */
    int rxfds[MXP_MAX_FDS * 2];
    unsigned nr_rxfds;

    QSIMPLEQ_HEAD(, MemexposeWork) work;
    unsigned nr_work;           /* queued requests other than doorbells */
    unsigned nr_doorbell_work;  /* doorbells received, not in rxq yet */
    bool worker_busy;           /* the worker is performing a request */

    /* Doorbells */
    uint32_t tx_credits;
    uint32_t tx_vector;
    uint32_t tx_len;
    uint32_t tx_status;
    bool tx_was_busy;
    uint8_t tx_data[MXP_MAX_DOORBELL_DATA];
    MemexposeDoorbell *rxq;     /* ring of queue_depth entries */
    MemexposeDoorbell rx_taken; /* the entry DB_RX_TAKE last removed */
    uint32_t rx_head;
    uint32_t rx_count;
    uint32_t rx_stale;          /* queued on an earlier link: no credit */
    /* MXP_FEAT_DB_RING: the peer's ring we send into, and ours */
    MemexposeRing *tx_ring;     /* complete once it has all its eventfds */
    uint32_t tx_produced;       /* our producer index, the one we trust */
    MemexposeRing *rx_ring;
    uint32_t rx_drained;        /* entries of rx_ring copied to rxq */
    uint32_t rx_freed;          /* ... and popped by the guest */
    GSList *retired_rings;      /* ours of earlier links, for ring_bh */
    QEMUBH *ring_bh;
    bool tx_ready_pending;      /* TX_READY to raise from the main loop */
    uint64_t rx_irq_pending;    /* vectors whose doorbells await the BQL */
    bool boot_state_pending;    /* BOOT to raise from the main loop */
    uint32_t peer_boot_state;   /* last STATE from the peer (MxpBootState) */

    /* Boot target: our MxpBootState (written under BQL and @boot_lock) */
    QemuMutex boot_lock;
    uint32_t boot_state;
    VMChangeStateEntry *vm_state;
    QEMUBH *boot_bh;
    QSIMPLEQ_HEAD(, MemexposeBootRequest) boot_requests;    /* @lock */
    unsigned nr_boot_requests;                              /* @lock */

    /* Boot master registers (BQL) */
    uint64_t boot_entry;
    uint32_t boot_nargs;
    uint64_t boot_args[MXP_BOOT_ARGS];
    uint32_t boot_status;

    /* Registers visible to the guest (BQL) */
    uint32_t intr_status;
    uint32_t intr_mask;
    uint64_t window_base;

    /* Window (BQL) */
    MemoryRegion window;
    MemoryRegion forward;
    QEMUBH *remap_bh;
    QEMUBH *link_bh;
    QEMUBH *irq_bh;
    /* Importer's mapping walk (BQL) */
    MemexposeCall walk_call;    /* the one MAP outstanding */
    bool walk_pending;
    bool walk_restart;          /* start afresh once walk_call is done */
    uint64_t walk_base;
    uint64_t walk_off;
    unsigned walk_maps;
    QEMUBH *walk_bh;
    QEMUTimer *walk_timer;
    /* Why the peer forwards rather than shares (MxpForwardReason), BQL */
    uint8_t forward_reason;         /* last one given on this link */
    uint32_t forward_reasons_logged;
    uint32_t map_errors_logged;     /* MxpErr codes that refused a MAP */
    /* Importer's mappings, under memexpose-import.c's mapping lock */
    QLIST_HEAD(, MemexposeMapping) mappings;
    uint32_t inval_gen;         /* INVALIDATEs received; I/O thread writes */

    /* Exporter: a read-only export was forwarded for want of a seal (BQL) */
    bool ro_forward_logged;
    /* Exporter: RAM ranges handed out as fds on this link (@lock) */
    GArray *granted;
    /* Exporter: exported RAM ranges changed in this transaction (BQL) */
    GArray *changed;
    MemoryListener listener;

    MemexposeCounters stats;

    /* On query-memexpose's list of devices while realized (BQL) */
    QTAILQ_ENTRY(MemexposeState) monitor_next;
};

void memexpose_realize(MemexposeState *s, Error **errp);
void memexpose_unrealize(MemexposeState *s);
void memexpose_reset(MemexposeState *s);
void memexpose_init_regs(MemexposeState *s, MemoryRegion *mr);
void memexpose_add_properties(Object *obj, MemexposeState *s);
void memexpose_class_set_props(DeviceClass *dc, size_t core_offset,
                               uint64_t default_window);
uint64_t memexpose_reg_read(MemexposeState *s, hwaddr addr, unsigned size);
void memexpose_reg_write(MemexposeState *s, hwaddr addr, uint64_t val,
                         unsigned size);
bool memexpose_intx_level(MemexposeState *s);

/* query-memexpose and info memexpose (memexpose-monitor.c) */
void memexpose_monitor_add(MemexposeState *s);
void memexpose_monitor_del(MemexposeState *s);

/* Link (memexpose-link.c) */
void memexpose_link_start(MemexposeState *s);
void memexpose_link_release(MemexposeState *s);
int memexpose_call(MemexposeState *s, MxpMsg *req, MemexposeCall *call);
int memexpose_call_keep_bql(MemexposeState *s, MxpMsg *req,
                            MemexposeCall *call);
int memexpose_call_patient(MemexposeState *s, MxpMsg *req,
                           MemexposeCall *call);
int memexpose_call_async(MemexposeState *s, MxpMsg *req,
                         MemexposeCall *call);
bool memexpose_call_cancel(MemexposeState *s, MemexposeCall *call);
void memexpose_send(MemexposeState *s, MxpMsg *msg, int fd);
void memexpose_send_simple(MemexposeState *s, MxpType type, uint64_t id);
void memexpose_reply_error(MemexposeState *s, const MxpMsg *req,
                           MxpErr code, uint64_t addr);
void memexpose_reply_ack(MemexposeState *s, const MxpMsg *req);
void memexpose_link_down(MemexposeState *s, const char *reason);
void memexpose_link_drop(MemexposeState *s, const char *reason,
                         bool disconnect);
void memexpose_protocol_error(MemexposeState *s, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
void memexpose_link_error(MemexposeState *s, MxpErr code, MxpType type,
                          const char *fmt, ...) G_GNUC_PRINTF(4, 5);

/* Serving the peer (memexpose-serve.c) */
void *memexpose_worker(void *opaque);
void memexpose_queue_work(MemexposeState *s, const MxpMsg *msg);
bool memexpose_serve_access_now(MemexposeState *s, const MxpMsg *msg);
bool memexpose_in_service(void);
void memexpose_note_recursion(void);

/* Doorbells (memexpose-doorbell.c) */
void memexpose_doorbell_send(MemexposeState *s);
void memexpose_doorbell_receive(MemexposeState *s, const MxpMsg *msg,
                                bool stale);
void memexpose_doorbell_credit(MemexposeState *s, uint32_t credits);
void memexpose_doorbell_pop(MemexposeState *s);
uint32_t memexpose_doorbell_take(MemexposeState *s);
uint64_t memexpose_doorbell_pending(MemexposeState *s);
uint32_t memexpose_doorbell_credits(MemexposeState *s);
bool memexpose_ring_offer(MemexposeState *s);
bool memexpose_ring_peer(MemexposeState *s, uint32_t depth, int fd);
bool memexpose_ring_peer_event(MemexposeState *s, uint32_t vector, int fd);
void memexpose_ring_space(MemexposeState *s);
void memexpose_ring_drop_locked(MemexposeState *s);
void memexpose_doorbell_notify(MemexposeState *s, uint64_t vectors);
void memexpose_ring_bh(void *opaque);
void memexpose_ring_finalize(MemexposeState *s);

/* Registers (memexpose-regs.c) */
void memexpose_set_window_base(MemexposeState *s, uint64_t base);

/* Slave boot (memexpose-boot.c) */
bool memexpose_boot_realize(MemexposeState *s, Error **errp);
void memexpose_boot_unrealize(MemexposeState *s);
void memexpose_serve_boot(MemexposeState *s, const MxpMsg *req);
void memexpose_send_boot_state(MemexposeState *s);
void memexpose_boot_command(MemexposeState *s, uint32_t cmd);

/* The architecture part, built per target (memexpose-boot-cpu.c) */
bool memexpose_cpu_can_boot(void);
bool memexpose_cpu_entry_valid(CPUState *cs, uint64_t entry);
void memexpose_cpu_set_entry(CPUState *cs, uint64_t entry,
                             const uint64_t *args, unsigned nargs);

#endif
