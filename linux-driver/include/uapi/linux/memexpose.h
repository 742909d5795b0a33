/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * memexpose: user space interface of the memexpose driver.
 *
 * A memexpose device links this machine to a peer machine (usually
 * another VM).  Its window is a range of the peer's physical address
 * space: offset X of the window reaches peer address window_base + X.
 * Doorbells are small messages (a vector and up to 256 bytes) exchanged
 * with the peer.
 *
 * Each device instance is a character device, /dev/memexposeN:
 *
 *  - pread(2)/pwrite(2), read(2)/write(2) and lseek(2): the window, as a
 *    file of fixed size (memexpose_info.window_size).  Accesses are made
 *    in naturally aligned pieces of 8, 4, 2 or 1 bytes.  While the link
 *    is down, or where the peer refuses access, reads return all-ones
 *    and writes are dropped (the device does that; these calls succeed).
 *  - mmap(2) with MAP_SHARED: the window; the mmap offset is the window
 *    offset and must be a multiple of the page size.  The mapping is
 *    uncached (see the driver's README for why that stays fast for peer
 *    RAM).
 *  - poll(2): EPOLLIN while a doorbell is queued (receive it with
 *    MEMEXPOSE_IOC_RECV_DOORBELL); EPOLLOUT while the link is up and the
 *    peer has a free slot (tx_credits > 0); EPOLLPRI once the link epoch
 *    or the peer's boot state differs from the one this open file last
 *    saw (at open(2), or by MEMEXPOSE_IOC_GET_INFO or
 *    MEMEXPOSE_IOC_GET_BOOT_STATE, each of which records both: call the
 *    one whose answer you need); EPOLLHUP | EPOLLERR once the device is
 *    gone.
 *    The device signals returning credits only after a send failed with
 *    EAGAIN: wait for EPOLLOUT after such a failure, not before sending.
 *  - the ioctls below.
 *
 * After the device is removed (unbind, hot unplug), every call on a file
 * that is still open fails with ENODEV, except close(2); access to an
 * existing mapping raises SIGBUS.
 *
 * The ioctl numbers and structure layouts are stable.  All structures
 * have the same layout on 32-bit and 64-bit systems, so the same numbers
 * work for 32-bit processes on a 64-bit kernel.  Reserved fields must be
 * zero.
 */
#ifndef _UAPI_LINUX_MEMEXPOSE_H
#define _UAPI_LINUX_MEMEXPOSE_H

#include <linux/ioctl.h>
#include <linux/types.h>

/*
 * ioctl magic.  Not registered upstream in
 * Documentation/userspace-api/ioctl/ioctl-number.rst; it must be before
 * the driver can be submitted.
 */
#define MEMEXPOSE_IOC_MAGIC		0xB6

/* Largest doorbell payload, in bytes. */
#define MEMEXPOSE_DOORBELL_MAX		256
/* Length of memexpose_info.peer_name, including the terminating NUL. */
#define MEMEXPOSE_NAME_LEN		64

/* memexpose_info.link bits */
#define MEMEXPOSE_LINK_UP		(1U << 0)
/* The link is up and the peer is a boot target (see MEMEXPOSE_IOC_BOOT). */
#define MEMEXPOSE_LINK_PEER_BOOT_TARGET	(1U << 1)

/* memexpose_info.features bits: the feature set negotiated on the link. */
#define MEMEXPOSE_FEATURE_MAP		(1ULL << 0) /* zero-copy peer RAM */
#define MEMEXPOSE_FEATURE_BULK		(1ULL << 1) /* accesses of any size */
#define MEMEXPOSE_FEATURE_BOOT		(1ULL << 2) /* BOOT, RESET, HALT */
#define MEMEXPOSE_FEATURE_HEARTBEAT	(1ULL << 3) /* peer liveness pings */

/**
 * struct memexpose_info - state of the device and of its link
 * @window_size:  size of the window in bytes (the file size)
 * @window_base:  peer address reached by window offset 0
 * @features:     MEMEXPOSE_FEATURE_* negotiated, 0 while the link is down
 * @link:         MEMEXPOSE_LINK_* bits
 * @link_epoch:   incremented at every link up and every link down (odd
 *                while the link is up); a change means the link went down
 *                in between
 * @vectors:      doorbell vectors this side receives
 * @peer_vectors: doorbell vectors the peer receives (valid vectors for
 *                MEMEXPOSE_IOC_SEND_DOORBELL), 0 while the link is down
 * @queue_depth:  size of this side's doorbell receive queue
 * @tx_credits:   doorbells that can be sent before the peer drains its
 *                queue, 0 while the link is down
 * @peer_name:    the peer's name, NUL-terminated, empty while the link is
 *                down
 */
struct memexpose_info {
	__u64 window_size;
	__u64 window_base;
	__u64 features;
	__u32 link;
	__u32 link_epoch;
	__u32 vectors;
	__u32 peer_vectors;
	__u32 queue_depth;
	__u32 tx_credits;
	char peer_name[MEMEXPOSE_NAME_LEN];
};

/**
 * struct memexpose_doorbell - one doorbell
 * @vector:   the vector, below memexpose_info.peer_vectors when sending
 * @size:     number of valid bytes in @data, 0..MEMEXPOSE_DOORBELL_MAX
 * @reserved: must be zero when sending; zero when received
 * @data:     the payload; bytes beyond @size are zero when received
 */
struct memexpose_doorbell {
	__u16 vector;
	__u16 size;
	__u32 reserved;
	__u8 data[MEMEXPOSE_DOORBELL_MAX];
};

/*
 * Boot states (struct memexpose_boot_state).  A boot target is a machine
 * whose CPUs stay stopped until its peer, the boot master, boots it.
 */
#define MEMEXPOSE_BOOT_STATE_NONE	0 /* not a boot target, or unknown */
#define MEMEXPOSE_BOOT_STATE_WAITING	1 /* CPUs stopped, waiting for BOOT */
#define MEMEXPOSE_BOOT_STATE_RUNNING	2 /* booted */
#define MEMEXPOSE_BOOT_STATE_HALTED	3 /* stopped by HALT */

/**
 * struct memexpose_boot - start the peer (it must be a boot target)
 * @entry:    the address the peer's boot CPU starts at
 * @nargs:    number of valid entries in @args, 0..4
 * @reserved: must be zero
 * @args:     initial register arguments for the peer's boot CPU
 */
struct memexpose_boot {
	__u64 entry;
	__u32 nargs;
	__u32 reserved;
	__u64 args[4];
};

/**
 * struct memexpose_boot_state - boot states of the peer and of this side
 * @peer_state: MEMEXPOSE_BOOT_STATE_* the peer last reported;
 *              MEMEXPOSE_BOOT_STATE_NONE if it reported none (e.g. it is
 *              not a boot target)
 * @own_state:  MEMEXPOSE_BOOT_STATE_* of this machine;
 *              MEMEXPOSE_BOOT_STATE_NONE when it is not a boot target
 *
 * Values above MEMEXPOSE_BOOT_STATE_HALTED may be defined later.
 */
struct memexpose_boot_state {
	__u32 peer_state;
	__u32 own_state;
};

/*
 * MEMEXPOSE_IOC_GET_INFO: fill in a struct memexpose_info.  Also records
 * the link epoch and the peer's boot state as seen by this open file (for
 * EPOLLPRI).
 */
#define MEMEXPOSE_IOC_GET_INFO \
	_IOR(MEMEXPOSE_IOC_MAGIC, 0x00, struct memexpose_info)

/*
 * MEMEXPOSE_IOC_SET_WINDOW_BASE: set the peer address that window offset
 * 0 reaches.  Needs a file opened for writing.  Mappings stay valid and
 * follow the new base.  A base that is a multiple of the page size keeps
 * zero-copy possible at the ends of the window.
 */
#define MEMEXPOSE_IOC_SET_WINDOW_BASE \
	_IOW(MEMEXPOSE_IOC_MAGIC, 0x01, __u64)

/*
 * MEMEXPOSE_IOC_SEND_DOORBELL: send a doorbell.  Needs a file opened for
 * writing.  Returns 0 once the device has sent it, or fails with:
 *   EAGAIN    the peer has no free slot (busy; the device counts the
 *             attempt).  Wait for EPOLLOUT and send again.
 *   ENOTCONN  the link is down.
 *   EINVAL    vector not below peer_vectors, size above
 *             MEMEXPOSE_DOORBELL_MAX, or reserved not zero.
 */
#define MEMEXPOSE_IOC_SEND_DOORBELL \
	_IOW(MEMEXPOSE_IOC_MAGIC, 0x02, struct memexpose_doorbell)

/*
 * MEMEXPOSE_IOC_BOOT, MEMEXPOSE_IOC_RESET, MEMEXPOSE_IOC_HALT: start,
 * reset (back to WAITING) or stop a peer that is a boot target.  Needs a
 * file opened for writing.  The request goes to the peer and the call
 * returns once the peer answered or the device gave up waiting (after
 * max(its timeout, 10 s)); one such request per device at a time, and
 * doorbell sends wait for it.  Returns 0 when the peer accepted it, or
 * fails with:
 *   EINVAL      BOOT: nargs above 4 or reserved not zero (checked before
 *               sending), or the peer refused the entry (outside its RAM)
 *   EPERM       the peer is not a boot target
 *   EBUSY       not valid in the peer's current boot state (e.g. BOOT
 *               while it is running)
 *   EOPNOTSUPP  the peer does not support boot on this link
 *   ENOLINK     the link is down, or went down before the peer answered
 *   ETIMEDOUT   the peer did not answer in time
 *   EIO         any other error reported by the peer or the device
 *   EINTR       interrupted while waiting for another request to finish
 * The peer's resulting state arrives separately: see
 * MEMEXPOSE_IOC_GET_BOOT_STATE.
 */
#define MEMEXPOSE_IOC_BOOT \
	_IOW(MEMEXPOSE_IOC_MAGIC, 0x03, struct memexpose_boot)
#define MEMEXPOSE_IOC_RESET		_IO(MEMEXPOSE_IOC_MAGIC, 0x04)
#define MEMEXPOSE_IOC_HALT		_IO(MEMEXPOSE_IOC_MAGIC, 0x05)

/*
 * MEMEXPOSE_IOC_RECV_DOORBELL: take the oldest doorbell from the receive
 * queue (doorbells of all vectors, in the order the peer sent them).
 * Blocks until one is queued, unless the file is O_NONBLOCK (then fails
 * with EAGAIN).  Queued doorbells stay receivable while the link is down.
 * A doorbell that could not be copied out (EFAULT) stays queued.
 */
#define MEMEXPOSE_IOC_RECV_DOORBELL \
	_IOR(MEMEXPOSE_IOC_MAGIC, 0x06, struct memexpose_doorbell)

/*
 * MEMEXPOSE_IOC_GET_BOOT_STATE: fill in a struct memexpose_boot_state.
 * Also records the link epoch and the peer's boot state as seen by this
 * open file (for EPOLLPRI): to wait for a state, call it, check, poll
 * for EPOLLPRI, and call it again.
 */
#define MEMEXPOSE_IOC_GET_BOOT_STATE \
	_IOR(MEMEXPOSE_IOC_MAGIC, 0x07, struct memexpose_boot_state)

#endif /* _UAPI_LINUX_MEMEXPOSE_H */
