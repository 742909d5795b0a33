/*
 * A memexpose peer driven by fuzz input.
 *
 * Input format.  Byte 0 picks the handshake: bits 0..4 are the HELLO
 * features offered (MXP_FEAT_*), bit 5 a 64 KiB page size, bit 6 the
 * role TOOL instead of DEVICE, bit 7 "no handshake" (the operations that
 * follow start right after the device's HELLO, so the input writes its
 * own HELLO, or none).  The rest is a sequence of operations, each an
 * opcode byte (modulo MXF_OP_COUNT) and its operands; missing operand
 * bytes read as zero.  Multi-byte operands are little-endian.
 *
 *   MSG      type flags idsel len:16 payload   a message, header as given
 *   MSG_FD   fdkind, then as MSG               the same with one descriptor
 *   RAW      len:8 bytes                       bytes as they are
 *   MAP_REPLY  kind perm reason amode length:16 foff:16 fdkind
 *                                              answer the device's last MAP
 *   ACCESS   op area offset:32 sizesel len:16 data
 *                                              READ or WRITE near an export
 *   RING     which offset:16 len:8 bytes       write into a shared ring
 *   PUBLISH  vector:16 size:16 data            a doorbell through the ring
 *   SIGNAL   vector                            write the device's eventfd
 *   GUEST_W  reg value:32                      the guest writes a register
 *   GUEST_R  reg:16                            the guest reads a register
 *   SYNC                                       PING, wait for its PONG
 *
 * The peer answers PING and INVALIDATE by itself, takes the device's
 * doorbell ring and eventfds, and remembers the device's last request so
 * that MSG (idsel 1) and MAP_REPLY can answer it.  Each input ends with
 * a PING: a link that does not answer it within MXF_SYNC_US is given up.
 * Whatever the device sends must decode: anything else aborts, and so
 * does a device that stops accepting connections.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "qemu/atomic.h"
#include "qemu/bswap.h"
#include "standard-headers/linux/pci_regs.h"
#include "tests/qtest/libqtest.h"
#include "hw/misc/memexpose/memexpose-regs.h"
#include "hw/misc/memexpose/memexpose-wire.h"
#include "memexpose-fuzz-peer.h"

#define MXF_OUR_VECTORS     2
#define MXF_OUR_DEPTH       4
#define MXF_OUR_RING_SIZE   4096
#define MXF_SYNC_US         (30 * 1000)
#define MXF_GREET_US        (5 * 1000 * 1000)

enum {
    MXF_OP_MSG,
    MXF_OP_MSG_FD,
    MXF_OP_RAW,
    MXF_OP_MAP_REPLY,
    MXF_OP_ACCESS,
    MXF_OP_RING,
    MXF_OP_PUBLISH,
    MXF_OP_SIGNAL,
    MXF_OP_GUEST_W,
    MXF_OP_GUEST_R,
    MXF_OP_SYNC,
    MXF_OP_COUNT,
};

struct MxfPeer {
    char *sock;
    const MxfOps *ops;
    void *opaque;
    MxfStats stats;

    int fd;                     /* the link, or -1 */
    int config;                 /* its handshake byte */
    bool up;
    bool dead;                  /* the device said goodbye or hung up */

    uint8_t rx[MXP_MAX_MESSAGE];
    size_t rxlen;
    int rxfd;

    bool hello_rx;
    MxpHello dev_hello;

    int own_ring;               /* our receive ring: the device writes */
    uint8_t *own_map;
    int own_events[MXF_OUR_VECTORS];
    ino_t own_ring_inode;
    uint8_t *dev_map;           /* the device's receive ring: we write */
    size_t dev_size;
    uint32_t dev_producer;
    int dev_events[MXP_MAX_VECTORS];

    uint64_t next_id;
    uint64_t last_req_id;
    uint64_t last_map_addr;
    uint64_t pong_wanted;
    bool pong_seen;
};

typedef struct MxfInput {
    const uint8_t *p;
    size_t n;
} MxfInput;

static uint8_t in8(MxfInput *in)
{
    if (!in->n) {
        return 0;
    }
    in->n--;
    return *in->p++;
}

static uint16_t in16(MxfInput *in)
{
    uint16_t lo = in8(in);

    return lo | in8(in) << 8;
}

static uint32_t in32(MxfInput *in)
{
    uint32_t lo = in16(in);

    return lo | (uint32_t)in16(in) << 16;
}

static uint64_t in64(MxfInput *in)
{
    uint64_t lo = in32(in);

    return lo | (uint64_t)in32(in) << 32;
}

/* @len bytes of input into @buf, zeros where the input ran out. */
static void in_bytes(MxfInput *in, uint8_t *buf, size_t len)
{
    size_t have = MIN(len, in->n);

    memcpy(buf, in->p, have);
    memset(buf + have, 0, len - have);
    in->p += have;
    in->n -= have;
}

static int64_t now_us(void)
{
    return g_get_monotonic_time();
}

static void mxf_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* ---- descriptors the input may attach ---- */

static int memfd_of(size_t size, unsigned seals)
{
    int fd = memfd_create("mxf", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd < 0) {
        return -1;
    }
    if (ftruncate(fd, size) < 0 || (seals && fcntl(fd, F_ADD_SEALS, seals))) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A descriptor of kind @kind, sized by @pages where that applies. */
static int make_fd(uint8_t kind, unsigned pages)
{
    size_t size = (size_t)(pages % 512 + 1) * 4096;
    int fds[2], fd = -1;

    switch (kind % 8) {
    case 0:
        return memfd_of(size, F_SEAL_SHRINK | F_SEAL_GROW);
    case 1:
        return memfd_of(size, 0);
    case 2:
        return memfd_of(size, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    case 3:
        if (pipe2(fds, O_CLOEXEC) == 0) {
            close(fds[0]);
            fd = fds[1];
        }
        return fd;
    case 4:
        return eventfd(0, EFD_CLOEXEC);
    case 5:
        return open("/dev/null", O_RDWR | O_CLOEXEC);
    case 6:
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0) {
            close(fds[1]);
            fd = fds[0];
        }
        return fd;
    default: {
        /* A sealed memfd reopened read-only. */
        g_autofree char *path = NULL;
        int rw = memfd_of(size, F_SEAL_SHRINK | F_SEAL_GROW);

        if (rw < 0) {
            return -1;
        }
        path = g_strdup_printf("/proc/self/fd/%d", rw);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        close(rw);
        return fd;
    }
    }
}

/* ---- the link ---- */

static void mxf_disconnect(MxfPeer *p)
{
    unsigned i;

    mxf_close_fd(&p->fd);
    mxf_close_fd(&p->rxfd);
    p->rxlen = 0;
    p->up = false;
    p->dead = false;
    p->hello_rx = false;
    p->config = -1;
    if (p->dev_map) {
        munmap(p->dev_map, p->dev_size);
        p->dev_map = NULL;
    }
    for (i = 0; i < MXP_MAX_VECTORS; i++) {
        mxf_close_fd(&p->dev_events[i]);
    }
    p->last_req_id = 0;
    p->last_map_addr = 0;
}

static void mxf_handle(MxfPeer *p, const MxpMsg *msg, int fd);

/* Read what the device has sent, without waiting. */
static void mxf_receive(MxfPeer *p)
{
    while (p->fd >= 0 && !p->dead) {
        char control[CMSG_SPACE(sizeof(int) * 4)];
        MxpHeader hdr;
        size_t want;
        struct iovec iov;
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = control, .msg_controllen = sizeof(control),
        };
        struct cmsghdr *cmsg;
        MxpMsg msg;
        ssize_t n;
        int ret;

        if (p->rxlen < MXP_HEADER_SIZE) {
            want = MXP_HEADER_SIZE - p->rxlen;
        } else {
            mxp_decode_header(p->rx, p->rxlen, &hdr);
            want = MXP_HEADER_SIZE + hdr.length - p->rxlen;
        }
        iov.iov_base = p->rx + p->rxlen;
        iov.iov_len = want;
        n = recvmsg(p->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        if (n <= 0) {
            p->dead = true;
            return;
        }
        for (cmsg = CMSG_FIRSTHDR(&mh); cmsg; cmsg = CMSG_NXTHDR(&mh, cmsg)) {
            int fds[4], i, nfds;

            if (cmsg->cmsg_level != SOL_SOCKET ||
                cmsg->cmsg_type != SCM_RIGHTS) {
                continue;
            }
            nfds = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            memcpy(fds, CMSG_DATA(cmsg), nfds * sizeof(int));
            for (i = 0; i < nfds; i++) {
                if (p->rxlen || p->rxfd >= 0) {
                    fprintf(stderr, "memexpose-fuzz: the device sent a "
                            "descriptor outside a message header\n");
                    abort();
                }
                p->rxfd = fds[i];
            }
        }
        p->rxlen += n;
        if (p->rxlen == MXP_HEADER_SIZE) {
            ret = mxp_decode_header(p->rx, p->rxlen, &hdr);
            if (ret != MXP_OK) {
                fprintf(stderr, "memexpose-fuzz: the device sent a bad "
                        "header: %s\n", mxp_status_str(ret));
                abort();
            }
        }
        if (p->rxlen < MXP_HEADER_SIZE ||
            (mxp_decode_header(p->rx, p->rxlen, &hdr),
             p->rxlen < MXP_HEADER_SIZE + hdr.length)) {
            continue;
        }
        ret = mxp_decode(p->rx, p->rxlen, p->rxfd >= 0, &msg);
        if (ret != MXP_OK) {
            fprintf(stderr, "memexpose-fuzz: the device sent a bad %s: %s\n",
                    mxp_type_name(msg.hdr.type), mxp_status_str(ret));
            abort();
        }
        p->rxlen = 0;
        ret = p->rxfd;
        p->rxfd = -1;
        mxf_handle(p, &msg, ret);
    }
}

/*
 * Send @len bytes with @fd attached to the first of them (unless -1).
 * The device may stop reading (its backlog is full): then it is given
 * time, and a link that stays stuck is given up.
 */
static void mxf_send_raw(MxfPeer *p, const uint8_t *buf, size_t len, int fd)
{
    int64_t deadline = now_us() + MXF_SYNC_US;

    p->stats.sent++;
    while (len && p->fd >= 0 && !p->dead) {
        char control[CMSG_SPACE(sizeof(int))] = { 0 };
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        struct cmsghdr *cmsg;
        ssize_t n;

        if (fd >= 0) {
            mh.msg_control = control;
            mh.msg_controllen = sizeof(control);
            cmsg = CMSG_FIRSTHDR(&mh);
            cmsg->cmsg_level = SOL_SOCKET;
            cmsg->cmsg_type = SCM_RIGHTS;
            cmsg->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
        }
        n = sendmsg(p->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= n;
            fd = -1;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            p->dead = true;
            return;
        }
        if (now_us() > deadline) {
            p->stats.abandoned++;
            mxf_disconnect(p);
            return;
        }
        mxf_receive(p);
        p->ops->wait(p->opaque, p->fd, 1000);
    }
}

static void mxf_send(MxfPeer *p, const MxpMsg *msg, int fd)
{
    uint8_t buf[MXP_MAX_MESSAGE];
    int len = mxp_encode(msg, buf, sizeof(buf));

    if (len > 0) {
        mxf_send_raw(p, buf, len, fd);
    }
}

static void mxf_handle(MxfPeer *p, const MxpMsg *msg, int fd)
{
    MxpMsg reply = { .hdr = { .id = msg->hdr.id } };
    unsigned vector;
    struct stat st;

    switch (msg->hdr.type) {
    case MXP_HELLO:
        p->hello_rx = true;
        p->dev_hello = msg->u.hello;
        break;
    case MXP_BYE:
        p->dead = true;
        break;
    case MXP_ERROR:
        if (!msg->hdr.id) {
            p->dead = true;
        }
        break;
    case MXP_PING:
        reply.hdr.type = MXP_PONG;
        reply.u.ping = msg->u.ping;
        mxf_send(p, &reply, -1);
        break;
    case MXP_PONG:
        if (msg->hdr.id == p->pong_wanted) {
            p->pong_seen = true;
        }
        break;
    case MXP_INVALIDATE:
        reply.hdr.type = MXP_INVALIDATE_ACK;
        mxf_send(p, &reply, -1);
        break;
    case MXP_MAP:
        p->last_map_addr = msg->u.map.addr;
        /* fall through */
    case MXP_READ:
    case MXP_WRITE:
    case MXP_BOOT:
    case MXP_RESET:
    case MXP_HALT:
        p->last_req_id = msg->hdr.id;
        break;
    case MXP_DB_RING:
        if (!p->dev_map && fd >= 0 && !fstat(fd, &st) &&
            st.st_size >= (off_t)MXP_DB_RING_SIZE(msg->u.ring_depth)) {
            p->dev_size = MXP_DB_RING_SIZE(msg->u.ring_depth);
            p->dev_map = mmap(NULL, p->dev_size, PROT_READ | PROT_WRITE,
                              MAP_SHARED, fd, 0);
            if (p->dev_map == MAP_FAILED) {
                p->dev_map = NULL;
            }
            p->dev_producer = 0;
        }
        break;
    case MXP_DB_EVENT:
        vector = msg->u.event_vector;
        if (vector < MXP_MAX_VECTORS && p->dev_events[vector] < 0) {
            p->dev_events[vector] = fd;
            fd = -1;
        }
        break;
    default:
        break;
    }
    if (fd >= 0) {
        close(fd);
    }
}

/* Wait for @done, answering the device meanwhile; false on timeout. */
static bool mxf_wait_for(MxfPeer *p, bool (*done)(MxfPeer *p), int64_t us)
{
    int64_t deadline = now_us() + us;

    for (;;) {
        mxf_receive(p);
        if (done(p)) {
            return true;
        }
        if (p->fd < 0 || p->dead || now_us() > deadline) {
            return false;
        }
        p->ops->wait(p->opaque, p->fd, 1000);
    }
}

static bool mxf_greeted(MxfPeer *p)
{
    return p->hello_rx;
}

static bool mxf_has_ring(MxfPeer *p)
{
    unsigned i;

    if (!p->dev_map) {
        return false;
    }
    for (i = 0; i < p->dev_hello.vectors && i < MXP_MAX_VECTORS; i++) {
        if (p->dev_events[i] < 0) {
            return false;
        }
    }
    return true;
}

static bool mxf_ponged(MxfPeer *p)
{
    return p->pong_seen;
}

static ino_t mxf_inode(int fd)
{
    struct stat st;

    return fstat(fd, &st) ? 0 : st.st_ino;
}

static bool mxf_is_our_event(int fd)
{
    g_autofree char *path = g_strdup_printf("/proc/self/fd/%d", fd);
    g_autofree char *target = g_file_read_link(path, NULL);

    return target && !strcmp(target, "anon_inode:[eventfd]");
}

/*
 * The device shares this process's descriptor table: it must never
 * close a descriptor it does not own, such as the ones it was sent.
 */
static void mxf_check_own_fds(MxfPeer *p)
{
    unsigned i;

    for (i = 0; i < MXF_OUR_VECTORS; i++) {
        if (!mxf_is_our_event(p->own_events[i])) {
            g_autofree char *path = g_strdup_printf("/proc/self/fd/%d",
                                                    p->own_events[i]);
            g_autofree char *target = g_file_read_link(path, NULL);

            fprintf(stderr, "memexpose-fuzz: eventfd %d was closed under "
                    "the peer (now %s)\n", p->own_events[i],
                    target ? target : "nothing");
            abort();
        }
    }
    if (mxf_inode(p->own_ring) != p->own_ring_inode) {
        fprintf(stderr, "memexpose-fuzz: ring descriptor %d was closed "
                "under the peer\n", p->own_ring);
        abort();
    }
}

static void mxf_connect(MxfPeer *p, uint8_t config)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int64_t deadline = now_us() + MXF_GREET_US;
    uint64_t features = config & MXP_FEAT_ALL;
    MxpMsg hello = {
        .hdr = { .type = MXP_HELLO },
        .u.hello = {
            .magic = MXP_MAGIC, .version_major = MXP_VERSION_MAJOR,
            .version_minor = MXP_VERSION_MINOR, .features = features,
            .page_size = config & 0x20 ? 64 * 1024 : 4096,
            .role = config & 0x40 ? MXP_ROLE_TOOL : MXP_ROLE_DEVICE,
            .vectors = MXF_OUR_VECTORS, .queue_depth = MXF_OUR_DEPTH,
            .max_data = MXP_MAX_DATA, .name = "fuzz-peer",
        },
    };
    MxpMsg ring = { .hdr = { .type = MXP_DB_RING },
                    .u.ring_depth = MXF_OUR_DEPTH };
    unsigned i;

    mxf_disconnect(p);
    g_strlcpy(sun.sun_path, p->sock, sizeof(sun.sun_path));
    for (;;) {
        p->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        g_assert(p->fd >= 0);
        if (!connect(p->fd, (struct sockaddr *)&sun, sizeof(sun))) {
            break;
        }
        mxf_close_fd(&p->fd);
        if (now_us() > deadline) {
            fprintf(stderr, "memexpose-fuzz: the device does not accept "
                    "connections: %s\n", strerror(errno));
            abort();
        }
        p->ops->wait(p->opaque, -1, 1000);
    }
    p->config = config;
    if (!mxf_wait_for(p, mxf_greeted, MXF_GREET_US)) {
        if (!p->dead) {
            fprintf(stderr, "memexpose-fuzz: the device sent no HELLO\n");
            abort();
        }
        return;
    }
    if (config & 0x80) {
        p->up = true;
        return;
    }

    /* A fresh ring for every link. */
    mxf_check_own_fds(p);
    memset(p->own_map, 0, MXF_OUR_RING_SIZE);
    for (i = 0; i < MXF_OUR_VECTORS; i++) {
        uint64_t count;
        struct iovec iov = { .iov_base = &count, .iov_len = sizeof(count) };

        /* QEMU's chardev clears O_NONBLOCK on what it receives. */
        if (preadv2(p->own_events[i], &iov, 1, -1, RWF_NOWAIT) < 0) {
            /* empty */
        }
    }
    mxf_send(p, &hello, -1);
    if (features & p->dev_hello.features & MXP_FEAT_DB_RING) {
        mxf_send(p, &ring, p->own_ring);
        for (i = 0; i < MXF_OUR_VECTORS; i++) {
            MxpMsg event = { .hdr = { .type = MXP_DB_EVENT },
                             .u.event_vector = i };

            mxf_send(p, &event, p->own_events[i]);
        }
        if (!mxf_wait_for(p, mxf_has_ring, MXF_GREET_US)) {
            return;
        }
    }
    p->up = true;
    p->stats.links++;
}

/* PING and wait for the PONG; a link that does not answer is given up. */
static void mxf_sync(MxfPeer *p)
{
    MxpMsg ping = { .hdr = { .type = MXP_PING } };

    if (p->fd < 0 || p->dead) {
        return;
    }
    ping.hdr.id = p->pong_wanted = ++p->next_id | (1ULL << 62);
    ping.u.ping = p->next_id;
    p->pong_seen = false;
    mxf_send(p, &ping, -1);
    if (!mxf_wait_for(p, mxf_ponged, MXF_SYNC_US) && !p->dead &&
        p->fd >= 0) {
        p->stats.abandoned++;
        mxf_disconnect(p);
    }
}

/* ---- operations ---- */

static uint64_t mxf_id(MxfPeer *p, MxfInput *in)
{
    uint8_t sel = in8(in);

    switch (sel) {
    case 0:
        return 0;
    case 1:
        return p->last_req_id;
    case 2:
        return ++p->next_id;
    case 3:
        return in64(in);
    default:
        return sel;
    }
}

/* A message whose header fields are taken from the input as they are. */
static void op_msg(MxfPeer *p, MxfInput *in, bool with_fd)
{
    uint8_t buf[MXP_MAX_MESSAGE + 64];
    int fd = -1;
    uint8_t type, flags;
    uint64_t id;
    uint32_t len;

    if (with_fd) {
        uint8_t kind = in8(in);

        fd = make_fd(kind, in8(in));
    }
    type = in8(in);
    flags = in8(in);
    id = mxf_id(p, in);
    len = in16(in) % (sizeof(buf) - MXP_HEADER_SIZE + 1);
    stw_le_p(buf, type);
    stw_le_p(buf + 2, flags);
    stl_le_p(buf + 4, len);
    stq_le_p(buf + 8, id);
    in_bytes(in, buf + MXP_HEADER_SIZE, len);
    mxf_send_raw(p, buf, MXP_HEADER_SIZE + len, fd);
    mxf_close_fd(&fd);
}

static void op_raw(MxfPeer *p, MxfInput *in)
{
    uint8_t buf[256];
    uint8_t len = in8(in);

    in_bytes(in, buf, len);
    if (len) {
        mxf_send_raw(p, buf, len, -1);
    }
}

static uint64_t mxf_granule(MxfPeer *p)
{
    uint32_t ours = p->config & 0x20 ? 64 * 1024 : 4096;

    return MAX(ours, p->dev_hello.page_size);
}

/* A MAP_REPLY to the device's last MAP, mostly well formed. */
static void op_map_reply(MxfPeer *p, MxfInput *in)
{
    uint64_t granule = mxf_granule(p);
    MxpMsg reply = { .hdr = { .type = MXP_MAP_REPLY,
                              .id = p->last_req_id } };
    MxpMapReply *r = &reply.u.map_reply;
    uint8_t amode, fdkind;
    uint16_t pages, foff;
    int fd = -1;

    r->kind = in8(in) % (MXP_MAP_KIND_MAX + 1);
    r->perm = in8(in) % 4;
    r->reason = in8(in) % (MXP_FWD_REASON_MAX + 1);
    amode = in8(in);
    pages = in16(in);
    foff = in16(in);
    fdkind = in8(in);
    r->addr = p->last_map_addr & ~(granule - 1);
    if (amode & 1) {
        r->addr -= (uint64_t)(amode >> 1) * granule;
    }
    r->length = amode & 0x80 ? (uint64_t)pages + 1 :
                ((uint64_t)pages % 1024 + 1) * granule;
    if (r->kind == MXP_MAP_FD) {
        r->fd_offset = (uint64_t)foff * granule;
        reply.hdr.flags = MXP_FLAG_FD;
        fd = make_fd(fdkind, (r->fd_offset + r->length) / 4096);
        if (fd < 0) {
            return;
        }
    } else {
        r->reason = r->kind == MXP_MAP_FORWARD ? r->reason : 0;
        r->perm = r->kind == MXP_MAP_DENIED ? 0 : r->perm;
    }
    mxf_send(p, &reply, fd);
    mxf_close_fd(&fd);
}

/* READ or WRITE at an interesting place of the device's address space. */
static void op_access(MxfPeer *p, MxfInput *in)
{
    static const uint64_t areas[] = {
        0, 0x2000000 - 8, 0x2000000, 0x4000000 - 8, 0xfed00000,
        0x40000000, MXF_WINDOW_ADDR, MXF_REGS_ADDR, UINT64_MAX - 4095,
        0xfec00000,
    };
    static const uint32_t sizes[] = { 1, 2, 4, 8, 3, 16, 4096 };
    static uint8_t data[MXP_MAX_DATA];
    uint8_t op = in8(in);
    uint8_t area = in8(in);
    uint32_t offset = in32(in);
    uint8_t sizesel = in8(in);
    MxpMsg req = { .hdr = { .type = op & 1 ? MXP_WRITE : MXP_READ } };

    req.hdr.id = ++p->next_id;
    req.u.access.addr = areas[area % ARRAY_SIZE(areas)] +
                        (op & 2 ? offset : offset % 64);
    req.u.access.size = sizesel < 0xf0 ? sizes[sizesel % ARRAY_SIZE(sizes)] :
                        in16(in) % MXP_MAX_DATA + 1;
    if (req.hdr.type == MXP_WRITE) {
        in_bytes(in, data, req.u.access.size);
        req.u.access.data = data;
    }
    mxf_send(p, &req, -1);
}

/* Bytes into one of the shared rings, wherever the input says. */
static void op_ring(MxfPeer *p, MxfInput *in)
{
    uint8_t which = in8(in);
    uint16_t offset = in16(in);
    uint8_t len = in8(in);
    uint8_t buf[256];
    uint8_t *map = which & 1 ? p->own_map : p->dev_map;
    size_t size = which & 1 ? MXF_OUR_RING_SIZE : p->dev_size;

    in_bytes(in, buf, len);
    if (!map || offset >= size) {
        return;
    }
    memcpy(map + offset, buf, MIN(len, size - offset));
}

/* A doorbell as a well-behaved sender publishes it, then its signal. */
static void op_publish(MxfPeer *p, MxfInput *in)
{
    uint16_t vector = in16(in);
    uint16_t size = in16(in);
    uint32_t depth = p->dev_hello.queue_depth;
    uint8_t *slot;
    uint64_t one = 1;

    if (!p->dev_map || !depth) {
        uint8_t skip[MXP_MAX_DOORBELL_DATA];

        in_bytes(in, skip, MIN(size, MXP_MAX_DOORBELL_DATA));
        return;
    }
    slot = p->dev_map + MXP_DB_RING_ENTRIES +
           (size_t)(p->dev_producer % depth) * MXP_DB_ENTRY_SIZE;
    stw_he_p(slot, vector);
    stw_he_p(slot + 2, size);
    stl_he_p(slot + 4, 0);
    in_bytes(in, slot + 8, MIN(size, MXP_MAX_DOORBELL_DATA));
    qatomic_store_release((uint32_t *)(p->dev_map + MXP_DB_RING_PRODUCER),
                          ++p->dev_producer);
    vector %= MXP_MAX_VECTORS;
    if (p->dev_events[vector] >= 0 &&
        write(p->dev_events[vector], &one, sizeof(one)) < 0) {
        /* A full counter: the device's problem to notice. */
    }
}

static void op_signal(MxfPeer *p, MxfInput *in)
{
    uint8_t vector = in8(in) % MXP_MAX_VECTORS;
    uint64_t one = 1;

    if (p->dev_events[vector] >= 0 &&
        write(p->dev_events[vector], &one, sizeof(one)) < 0) {
        /* as above */
    }
}

/*
 * The guest's register writes.  Not BOOT_CMD: a boot command waits for
 * the peer in the vCPU, which is this thread in the fuzzer.
 */
static void op_guest_write(MxfPeer *p, MxfInput *in)
{
    static const uint16_t regs[] = {
        MX_REG_INTR_STATUS, MX_REG_INTR_MASK, MX_REG_WINDOW_BASE_LO,
        MX_REG_WINDOW_BASE_HI, MX_REG_DB_TX_LEN, MX_REG_DB_TX_VECTOR,
        MX_REG_DB_RX_POP, MX_REG_BOOT_ENTRY_LO, MX_REG_BOOT_NARGS,
        MX_REG_BOOT_ARG_LO(0), MX_REG_DB_TX_DATA, MX_REG_DB_TX_DATA + 4,
        MX_REG_ID,
    };
    uint8_t sel = in8(in);
    uint32_t value = in32(in);

    p->ops->writel(p->opaque, MXF_REGS_ADDR + regs[sel % ARRAY_SIZE(regs)],
                   value);
}

static void op_guest_read(MxfPeer *p, MxfInput *in)
{
    uint16_t reg = in16(in) % MEMEXPOSE_REG_SIZE & ~3;

    p->ops->readl(p->opaque, MXF_REGS_ADDR + reg);
}

void mxf_peer_run(MxfPeer *p, const uint8_t *data, size_t size)
{
    MxfInput in = { .p = data, .n = size };
    uint8_t config = in8(&in);

    p->stats.inputs++;
    if (p->fd < 0 || p->dead || !p->up || p->config != config ||
        (config & 0x80)) {
        if (p->dead) {
            p->stats.drops++;
        }
        mxf_connect(p, config);
    }
    while (in.n && p->fd >= 0 && !p->dead) {
        switch (in8(&in) % MXF_OP_COUNT) {
        case MXF_OP_MSG:
            op_msg(p, &in, false);
            break;
        case MXF_OP_MSG_FD:
            op_msg(p, &in, true);
            break;
        case MXF_OP_RAW:
            op_raw(p, &in);
            break;
        case MXF_OP_MAP_REPLY:
            op_map_reply(p, &in);
            break;
        case MXF_OP_ACCESS:
            op_access(p, &in);
            break;
        case MXF_OP_RING:
            op_ring(p, &in);
            break;
        case MXF_OP_PUBLISH:
            op_publish(p, &in);
            break;
        case MXF_OP_SIGNAL:
            op_signal(p, &in);
            break;
        case MXF_OP_GUEST_W:
            op_guest_write(p, &in);
            break;
        case MXF_OP_GUEST_R:
            op_guest_read(p, &in);
            break;
        case MXF_OP_SYNC:
            mxf_sync(p);
            break;
        }
        mxf_receive(p);
    }
    mxf_sync(p);
}

/* MxfOps register accesses through a QTestState (the ops' opaque). */
void mxf_qtest_outl(void *qts, uint16_t port, uint32_t value)
{
    qtest_outl(qts, port, value);
}

void mxf_qtest_writel(void *qts, uint64_t addr, uint32_t value)
{
    qtest_writel(qts, addr, value);
}

uint32_t mxf_qtest_readl(void *qts, uint64_t addr)
{
    return qtest_readl(qts, addr);
}

/* Map the registers and the window where MXF_REGS_ADDR etc. say. */
void mxf_peer_setup_pci(MxfPeer *p)
{
    uint32_t cfg = 0x80000000U | MXF_PCI_SLOT << 11;

    p->ops->outl(p->opaque, 0xcf8, cfg | PCI_BASE_ADDRESS_0);
    p->ops->outl(p->opaque, 0xcfc, MXF_REGS_ADDR);
    p->ops->outl(p->opaque, 0xcf8, cfg | PCI_BASE_ADDRESS_2);
    p->ops->outl(p->opaque, 0xcfc, MXF_WINDOW_ADDR);
    p->ops->outl(p->opaque, 0xcf8, cfg | (PCI_BASE_ADDRESS_2 + 4));
    p->ops->outl(p->opaque, 0xcfc, 0);
    p->ops->outl(p->opaque, 0xcf8, cfg | PCI_COMMAND);
    p->ops->outl(p->opaque, 0xcfc, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

MxfPeer *mxf_peer_new(const char *sock, const MxfOps *ops, void *opaque)
{
    MxfPeer *p = g_new0(MxfPeer, 1);
    unsigned i;

    p->sock = g_strdup(sock);
    p->ops = ops;
    p->opaque = opaque;
    p->fd = p->rxfd = -1;
    p->config = -1;
    for (i = 0; i < MXP_MAX_VECTORS; i++) {
        p->dev_events[i] = -1;
    }
    p->own_ring = memfd_of(MXF_OUR_RING_SIZE, F_SEAL_SHRINK | F_SEAL_GROW);
    g_assert(p->own_ring >= 0);
    p->own_map = mmap(NULL, MXF_OUR_RING_SIZE, PROT_READ | PROT_WRITE,
                      MAP_SHARED, p->own_ring, 0);
    g_assert(p->own_map != MAP_FAILED);
    for (i = 0; i < MXF_OUR_VECTORS; i++) {
        p->own_events[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        g_assert(p->own_events[i] >= 0);
    }
    p->own_ring_inode = mxf_inode(p->own_ring);
    return p;
}

const MxfStats *mxf_peer_stats(MxfPeer *p)
{
    return &p->stats;
}

void mxf_peer_free(MxfPeer *p)
{
    unsigned i;

    mxf_disconnect(p);
    munmap(p->own_map, MXF_OUR_RING_SIZE);
    close(p->own_ring);
    for (i = 0; i < MXF_OUR_VECTORS; i++) {
        close(p->own_events[i]);
    }
    g_free(p->sock);
    g_free(p);
}
