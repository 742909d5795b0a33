// SPDX-License-Identifier: GPL-2.0
/*
 * memexpose: bus-independent core of the driver.
 *
 * The device (QEMU's memexpose-pci and memexpose-sysbus,
 * hw/misc/memexpose/) links this machine to a peer.  It has a 4 KiB
 * register block, a window through which offset X reaches peer physical
 * address WINDOW_BASE + X, doorbells: messages of a vector and up to 256
 * bytes, received into a queue that lives in the device, and boot-master
 * registers that start, reset or halt a peer that is a boot target.  This
 * file owns the registers, the window, interrupt handling and the
 * character device /dev/memexposeN; the bus bindings (memexpose-pci.c,
 * memexpose-platform.c) only find the resources and the interrupts.
 *
 * Locking:
 *  - @hw_rwsem is held for reading around every access to the registers
 *    or the window from process context, and @dead is checked under it.
 *    memexpose_stop() sets @dead and then takes it for writing once: after
 *    that no process-context code touches the hardware any more.  Never
 *    held while touching user memory (a fault on our own mapping takes it
 *    again, and a recursive read with a writer queued would deadlock).
 *  - @tx_lock serialises sending (payload, LEN, VECTOR, STATUS) and the
 *    boot commands (ENTRY, ARGs, NARGS, CMD, STATUS).
 *  - @rx_lock serialises receiving (HEAD, payload, POP).
 *  - @lock protects the window base halves and @mapping.
 *  Order: tx_lock / rx_lock -> hw_rwsem -> lock.  Interrupt handlers take
 *  none of these; they only run between memexpose_start() and the
 *  free_irq() in memexpose_stop(), while the registers are mapped.
 *
 * Lifetime: struct memexpose_dev embeds the struct device of
 * /dev/memexposeN, whose reference count (a kref) keeps it alive.  The
 * binding holds one reference, every open file one more.  After the
 * device is removed, open files see @dead and fail with -ENODEV, blocked
 * callers are woken, and user mappings are zapped so that touching them
 * raises SIGBUS.
 *
 * Copyright (c) 2026 The memexpose authors
 */

#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/rwsem.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <asm/unaligned.h>

#include "include/uapi/linux/memexpose.h"
#include "memexpose-core.h"

/* Registers: hw/misc/memexpose/memexpose-regs.h.  32 bits, little-endian. */
#define MX_REG_ID			0x00
#define MX_REG_VERSION			0x04
#define MX_REG_LINK			0x08
#define MX_REG_FEATURES			0x0c
#define MX_REG_INTR_STATUS		0x10	/* W1C */
#define MX_REG_INTR_MASK		0x14
#define MX_REG_WINDOW_BASE_LO		0x18
#define MX_REG_WINDOW_BASE_HI		0x1c
#define MX_REG_WINDOW_SIZE_LO		0x20
#define MX_REG_WINDOW_SIZE_HI		0x24
#define MX_REG_VECTORS			0x28
#define MX_REG_LINK_EPOCH		0x2c
#define MX_REG_CAPS			0x30	/* 0 on devices before it */
#define MX_REG_DB_TX_VECTOR		0x40	/* writing it sends */
#define MX_REG_DB_TX_LEN		0x44
#define MX_REG_DB_TX_STATUS		0x48
#define MX_REG_DB_TX_CREDITS		0x4c
#define MX_REG_DB_RX_COUNT		0x50
#define MX_REG_DB_RX_HEAD		0x54
#define MX_REG_DB_RX_POP		0x58
#define MX_REG_DB_RX_TAKE		0x5c	/* reading it pops the head */
#define MX_REG_DB_RX_PENDING_LO		0x60
#define MX_REG_DB_RX_PENDING_HI		0x64
#define MX_REG_BOOT_ENTRY_LO		0x80
#define MX_REG_BOOT_ENTRY_HI		0x84
#define MX_REG_BOOT_NARGS		0x88
#define MX_REG_BOOT_CMD			0x8c	/* writing it sends; synchronous */
#define MX_REG_BOOT_STATUS		0x90	/* outcome of the last command */
#define MX_REG_BOOT_PEER_STATE		0x94	/* peer's last reported state */
#define MX_REG_BOOT_STATE		0x98	/* this side's boot state */
#define MX_REG_BOOT_ARG_LO(n)		(0xa0 + 8 * (n))
#define MX_REG_BOOT_ARG_HI(n)		(0xa4 + 8 * (n))
#define MX_REG_DB_TX_DATA		0x100	/* 256 bytes, any access size */
#define MX_REG_DB_RX_DATA		0x200	/* 256 bytes, any access size */
#define MX_REG_PEER_NAME		0x300	/* 64 bytes, NUL padded */
#define MX_REG_DB_RX_TAKEN_DATA		0x400	/* payload of the last TAKE */
#define MX_REG_DB_TX_SEND(n)		(0x500 + 4 * (n))	/* reading sends */

#define MX_CAP_DB_RX_TAKE		BIT(0)
#define MX_CAP_DB_TX_SEND		BIT(1)

#define MX_ID_MAGIC			0x3150584d	/* "MXP1" */
#define MX_VERSION_MAJOR(v)		((v) >> 16)
#define MX_VERSION_MINOR(v)		((v) & 0xffff)
#define MX_SUPPORTED_MAJOR		1

#define MX_LINK_UP			BIT(0)
#define MX_LINK_PEER_BOOT_TARGET	BIT(1)

#define MX_INTR_LINK			BIT(0)
#define MX_INTR_DOORBELL		BIT(1)
#define MX_INTR_TX_READY		BIT(2)
#define MX_INTR_BOOT			BIT(3)	/* peer's boot state changed */
#define MX_INTR_ALL			(MX_INTR_LINK | MX_INTR_DOORBELL | \
					 MX_INTR_TX_READY | MX_INTR_BOOT)

#define MX_VECTORS_OURS(v)		((v) & 0xff)
#define MX_VECTORS_PEER(v)		(((v) >> 8) & 0xff)
#define MX_VECTORS_QUEUE(v)		((v) >> 16)

#define MX_TX_OK			0
#define MX_TX_BUSY			1
#define MX_TX_LINK_DOWN			2
#define MX_TX_BAD_VECTOR		3
#define MX_TX_BAD_LENGTH		4

#define MX_RX_EMPTY			0xffffffffU
#define MX_RX_HEAD_VECTOR(h)		((h) & 0xffff)
#define MX_RX_HEAD_LEN(h)		((h) >> 16)

#define MX_BOOT_MAX_ARGS		4
#define MX_BOOT_CMD_BOOT		1
#define MX_BOOT_CMD_RESET		2
#define MX_BOOT_CMD_HALT		3

/*
 * BOOT_STATUS: 0, the peer's ERROR code (1..255, MxpErr in
 * hw/misc/memexpose/memexpose-wire.h), or a failure on this side.
 */
#define MX_BOOT_OK			0
#define MX_BOOT_ERR_UNSUPPORTED		5	/* MXP_E_UNSUPPORTED */
#define MX_BOOT_ERR_NOT_BOOT_TARGET	10	/* MXP_E_NOT_BOOT_TARGET */
#define MX_BOOT_ERR_BAD_STATE		11	/* MXP_E_BAD_STATE */
#define MX_BOOT_ERR_BAD_ENTRY		12	/* MXP_E_BAD_ENTRY */
#define MX_BOOT_LINK_DOWN		0x100
#define MX_BOOT_TIMEOUT			0x101
#define MX_BOOT_BAD_CMD			0x102

#define MX_MAX_DEVS			256
/* Window reads and writes go through a bounce buffer of this size. */
#define MX_CHUNK			PAGE_SIZE
/* Pages mapped by one fault on a window mapping (an aligned block). */
#define MX_FAULT_AROUND			128UL

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
static inline void mx_vm_flags_set(struct vm_area_struct *vma,
				   unsigned long flags)
{
	vma->vm_flags |= flags;
}
#else
#define mx_vm_flags_set vm_flags_set
#endif

struct memexpose_dev {
	struct device dev;		/* /dev/memexposeN; owns the refcount */
	struct cdev cdev;
	struct device *parent;		/* the bus device */
	int id;

	void __iomem *regs;
	void __iomem *window;		/* kernel mapping, NULL if none */
	phys_addr_t window_phys;
	u64 window_size;
	bool window_mmap;		/* page aligned: can be mmapped */

	unsigned int vectors;
	unsigned int queue_depth;

	unsigned int nr_irqs;
	bool irq_per_vector;
	int irqs[MEMEXPOSE_MAX_IRQS];
	char *irq_names[MEMEXPOSE_MAX_IRQS];
	bool started;

	bool dead;			/* removed; set once, under no lock */
	struct rw_semaphore hw_rwsem;	/* hardware access vs. removal */
	struct mutex tx_lock;		/* sending a doorbell */
	u32 tx_len;			/* DB_TX_LEN as last written (tx_lock) */
	u32 caps;			/* MX_CAP_*: the one-trap registers */
	struct mutex rx_lock;		/* receiving a doorbell */
	/* Taken from the device, not yet copied to user space (rx_lock). */
	struct memexpose_doorbell rx_stash;
	bool rx_stashed;
	struct mutex lock;		/* window base, @mapping */

	/* All open files share this mapping so that remove can zap it. */
	struct address_space *mapping;
	struct inode *mapping_inode;

	wait_queue_head_t wq;		/* doorbells, link, credits, removal */
	atomic_t rx_seq;		/* bumped by every doorbell interrupt */
	struct work_struct link_work;	/* uevent on link change */
};

struct memexpose_file {
	struct memexpose_dev *mx;
	/* What this file last saw, at open / GET_INFO / GET_BOOT_STATE. */
	u32 seen_epoch;			/* LINK_EPOCH */
	u32 seen_boot;			/* BOOT_PEER_STATE */
};

static dev_t mx_devt;
static struct class *mx_class;
static DEFINE_IDA(mx_ida);

static inline u32 mx_rd(struct memexpose_dev *mx, unsigned int reg)
{
	return readl(mx->regs + reg);
}

static inline void mx_wr(struct memexpose_dev *mx, unsigned int reg, u32 val)
{
	writel(val, mx->regs + reg);
}

/*
 * Enter a section that touches the hardware from process context.
 * Returns -ENODEV (and holds nothing) once the device is gone.
 */
static int mx_hw_enter(struct memexpose_dev *mx)
{
	down_read(&mx->hw_rwsem);
	if (READ_ONCE(mx->dead)) {
		up_read(&mx->hw_rwsem);
		return -ENODEV;
	}
	return 0;
}

static inline void mx_hw_exit(struct memexpose_dev *mx)
{
	up_read(&mx->hw_rwsem);
}

static int mx_reg_get(struct memexpose_dev *mx, unsigned int reg, u32 *val)
{
	int ret = mx_hw_enter(mx);

	if (ret)
		return ret;
	*val = mx_rd(mx, reg);
	mx_hw_exit(mx);
	return 0;
}

/*
 * ---- payload areas: byte stream in register order ----
 *
 * Every access is a trap into the hypervisor, so they are as wide as the
 * device allows: 8 bytes where the CPU has 64-bit MMIO, else 4.
 */

#ifdef CONFIG_64BIT
#define MX_PAYLOAD_STEP	8U
typedef __le64 mx_payload_word;

static inline u64 mx_payload_rd(struct memexpose_dev *mx, unsigned int reg)
{
	return readq(mx->regs + reg);
}

static inline void mx_payload_wr(struct memexpose_dev *mx, unsigned int reg,
				 u64 val)
{
	writeq(val, mx->regs + reg);
}

#define mx_payload_to_le(v)	cpu_to_le64(v)
#define mx_payload_from_le(v)	le64_to_cpu(v)
#else
#define MX_PAYLOAD_STEP	4U
typedef __le32 mx_payload_word;
#define mx_payload_rd		mx_rd
#define mx_payload_wr		mx_wr
#define mx_payload_to_le(v)	cpu_to_le32(v)
#define mx_payload_from_le(v)	le32_to_cpu(v)
#endif

static void mx_payload_read(struct memexpose_dev *mx, unsigned int reg,
			    u8 *buf, unsigned int len)
{
	unsigned int i;

	for (i = 0; i < len; i += MX_PAYLOAD_STEP) {
		mx_payload_word v = mx_payload_to_le(mx_payload_rd(mx, reg + i));

		memcpy(buf + i, &v, min(MX_PAYLOAD_STEP, len - i));
	}
}

static void mx_payload_write(struct memexpose_dev *mx, unsigned int reg,
			     const u8 *buf, unsigned int len)
{
	unsigned int i;

	for (i = 0; i < len; i += MX_PAYLOAD_STEP) {
		mx_payload_word v = 0;

		memcpy(&v, buf + i, min(MX_PAYLOAD_STEP, len - i));
		mx_payload_wr(mx, reg + i, mx_payload_from_le(v));
	}
}

/* The peer's name: NUL-terminated, printable ASCII only (peer-controlled). */
static void mx_peer_name(struct memexpose_dev *mx, char *name)
{
	unsigned int i;
	bool end = false;

	mx_payload_read(mx, MX_REG_PEER_NAME, (u8 *)name, MEMEXPOSE_NAME_LEN);
	name[MEMEXPOSE_NAME_LEN - 1] = '\0';
	for (i = 0; i < MEMEXPOSE_NAME_LEN; i++) {
		if (!name[i])
			end = true;
		if (end)
			name[i] = '\0';
		else if (name[i] < 0x20 || name[i] > 0x7e)
			name[i] = '?';
	}
}

/* ---- window copies ---- */

/*
 * Copy between the window and a kernel buffer in naturally aligned
 * pieces of 8, 4, 2 and 1 bytes (alignment of the window offset; the
 * window itself is at least page aligned).  Unlike memcpy_fromio() and
 * memcpy_toio(), whose access sizes are arch-specific (x86 uses
 * "rep movs"), this makes the number and size of the accesses that reach
 * the device predictable: each becomes one forwarded access at most.
 * __raw accessors: the data is a byte stream, not a little-endian
 * register.
 */
static size_t mx_fromio_piece(u8 *dst, const void __iomem *src, u64 off,
			      size_t len)
{
#ifdef CONFIG_64BIT
	if (!(off & 7) && len >= 8) {
		put_unaligned(__raw_readq(src), (u64 *)dst);
		return 8;
	}
#endif
	if (!(off & 3) && len >= 4) {
		put_unaligned(__raw_readl(src), (u32 *)dst);
		return 4;
	}
	if (!(off & 1) && len >= 2) {
		put_unaligned(__raw_readw(src), (u16 *)dst);
		return 2;
	}
	*dst = __raw_readb(src);
	return 1;
}

static size_t mx_toio_piece(void __iomem *dst, u64 off, const u8 *src,
			    size_t len)
{
#ifdef CONFIG_64BIT
	if (!(off & 7) && len >= 8) {
		__raw_writeq(get_unaligned((const u64 *)src), dst);
		return 8;
	}
#endif
	if (!(off & 3) && len >= 4) {
		__raw_writel(get_unaligned((const u32 *)src), dst);
		return 4;
	}
	if (!(off & 1) && len >= 2) {
		__raw_writew(get_unaligned((const u16 *)src), dst);
		return 2;
	}
	__raw_writeb(*src, dst);
	return 1;
}

static void mx_window_fromio(u8 *dst, const void __iomem *win, u64 off,
			     size_t len)
{
	while (len) {
		size_t n = mx_fromio_piece(dst, win + off, off, len);

		dst += n;
		off += n;
		len -= n;
	}
}

static void mx_window_toio(void __iomem *win, u64 off, const u8 *src,
			   size_t len)
{
	while (len) {
		size_t n = mx_toio_piece(win + off, off, src, len);

		src += n;
		off += n;
		len -= n;
	}
	/* Complete the writes before anything (e.g. a doorbell) follows. */
	wmb();
}

/* ---- doorbells ---- */

/*
 * Send one doorbell: payload, LEN (when it changed), then one read of
 * DB_TX_SEND(vector), which sends and returns the status (VECTOR, then
 * STATUS, on devices without it).  The device checks the link and the
 * vector itself: reading LINK and VECTORS first would only cost traps.
 */
static int mx_send_doorbell(struct memexpose_dev *mx,
			    const struct memexpose_doorbell *db)
{
	u32 status;
	int ret;

	if (db->reserved || db->size > MEMEXPOSE_DOORBELL_MAX ||
	    db->vector >= MEMEXPOSE_MAX_VECTORS)
		return -EINVAL;

	ret = mutex_lock_interruptible(&mx->tx_lock);
	if (ret)
		return ret;
	ret = mx_hw_enter(mx);
	if (ret)
		goto out_unlock;

	mx_payload_write(mx, MX_REG_DB_TX_DATA, db->data, db->size);
	if (db->size != mx->tx_len) {
		mx_wr(mx, MX_REG_DB_TX_LEN, db->size);
		mx->tx_len = db->size;
	}
	if (mx->caps & MX_CAP_DB_TX_SEND) {
		/* One read sends on the vector and returns the status. */
		status = mx_rd(mx, MX_REG_DB_TX_SEND(db->vector));
	} else {
		mx_wr(mx, MX_REG_DB_TX_VECTOR, db->vector);
		status = mx_rd(mx, MX_REG_DB_TX_STATUS);
	}

	/* The device re-checks everything; the link may have gone since. */
	switch (status) {
	case MX_TX_OK:
		ret = 0;
		break;
	case MX_TX_BUSY:
		ret = -EAGAIN;
		break;
	case MX_TX_LINK_DOWN:
		ret = -ENOTCONN;
		break;
	case MX_TX_BAD_VECTOR:
	case MX_TX_BAD_LENGTH:
		ret = -EINVAL;
		break;
	default:
		dev_warn_ratelimited(&mx->dev, "unknown DB_TX_STATUS %#x\n",
				     status);
		ret = -EIO;
		break;
	}
	mx_hw_exit(mx);
out_unlock:
	mutex_unlock(&mx->tx_lock);
	return ret;
}

/*
 * Read the head of the receive queue: with @take through DB_RX_TAKE,
 * which pops it in the same read and keeps its payload in
 * DB_RX_TAKEN_DATA, else through DB_RX_HEAD and DB_RX_DATA, leaving it
 * queued.  Returns 0, -EAGAIN if the queue is empty or -ENODEV.  Called
 * with rx_lock held.
 */
static int mx_rx_read(struct memexpose_dev *mx, struct memexpose_doorbell *db,
		      bool take)
{
	u32 head, len;
	int ret;

	memset(db, 0, sizeof(*db));
	ret = mx_hw_enter(mx);
	if (ret)
		return ret;
	head = mx_rd(mx, take ? MX_REG_DB_RX_TAKE : MX_REG_DB_RX_HEAD);
	if (head == MX_RX_EMPTY) {
		ret = -EAGAIN;
		goto out;
	}
	len = MX_RX_HEAD_LEN(head);
	if (len > MEMEXPOSE_DOORBELL_MAX) {
		dev_warn_ratelimited(&mx->dev,
				     "doorbell of %u bytes, truncated\n", len);
		len = MEMEXPOSE_DOORBELL_MAX;
	}
	db->vector = MX_RX_HEAD_VECTOR(head);
	db->size = len;
	mx_payload_read(mx, take ? MX_REG_DB_RX_TAKEN_DATA : MX_REG_DB_RX_DATA,
			db->data, len);
out:
	mx_hw_exit(mx);
	return ret;
}

/* Remove the head of the receive queue.  Called with rx_lock held. */
static int mx_rx_pop(struct memexpose_dev *mx)
{
	int ret = mx_hw_enter(mx);

	if (ret)
		return ret;
	mx_wr(mx, MX_REG_DB_RX_POP, 1);
	mx_hw_exit(mx);
	return 0;
}

/*
 * Receive the oldest doorbell.  The device queue is the queue: a
 * doorbell is popped once it has been copied to user space, or, where
 * one DB_RX_TAKE read pops it, kept in rx_stash until it has been.
 */
static int mx_recv_doorbell(struct memexpose_dev *mx, bool nonblock,
			    void __user *argp)
{
	struct memexpose_doorbell db;
	int seq, ret;

	for (;;) {
		seq = atomic_read(&mx->rx_seq);
		/*
		 * Sample the interrupt count before looking at the queue
		 * (an MMIO read, hence a full barrier): a doorbell queued
		 * after the look raises an interrupt that changes it, so the
		 * wait below cannot miss it.
		 */
		mb();

		ret = mutex_lock_interruptible(&mx->rx_lock);
		if (ret)
			return ret;
		if (mx->rx_stashed) {
			db = mx->rx_stash;
			ret = 0;
		} else {
			ret = mx_rx_read(mx, &db, mx->caps & MX_CAP_DB_RX_TAKE);
			if (!ret && (mx->caps & MX_CAP_DB_RX_TAKE)) {
				/* Popped already: kept until user space has it. */
				mx->rx_stash = db;
				mx->rx_stashed = true;
			}
		}
		if (!ret) {
			/* User memory: not under hw_rwsem (see above). */
			if (copy_to_user(argp, &db, sizeof(db)))
				ret = -EFAULT;
			else if (mx->rx_stashed)
				mx->rx_stashed = false;
			else
				ret = mx_rx_pop(mx);
		}
		mutex_unlock(&mx->rx_lock);

		if (ret != -EAGAIN || nonblock)
			return ret;
		ret = wait_event_interruptible(mx->wq, READ_ONCE(mx->dead) ||
					       atomic_read(&mx->rx_seq) != seq);
		if (ret)
			return ret;
	}
}

/* ---- boot master ---- */

static int mx_boot_errno(u32 status)
{
	switch (status) {
	case MX_BOOT_OK:
		return 0;
	case MX_BOOT_LINK_DOWN:
		return -ENOLINK;
	case MX_BOOT_TIMEOUT:
		return -ETIMEDOUT;
	case MX_BOOT_BAD_CMD:
	case MX_BOOT_ERR_BAD_ENTRY:
		return -EINVAL;
	case MX_BOOT_ERR_UNSUPPORTED:
		return -EOPNOTSUPP;
	case MX_BOOT_ERR_NOT_BOOT_TARGET:
		return -EPERM;
	case MX_BOOT_ERR_BAD_STATE:
		return -EBUSY;
	default:
		return -EIO;
	}
}

/*
 * BOOT, RESET or HALT the peer: arguments, then CMD, then STATUS.  The
 * write of CMD completes only once the peer has replied or the device's
 * timeout passed, so STATUS is the outcome of this command.  Whether the
 * peer is a boot target is not checked here: the peer answers
 * NOT_BOOT_TARGET (EPERM), and user space sees the peer's answer.
 */
static int mx_boot(struct memexpose_dev *mx, unsigned int cmd,
		   void __user *argp)
{
	struct memexpose_boot boot;
	unsigned int i;
	u32 op, status;
	int ret;

	switch (cmd) {
	case MEMEXPOSE_IOC_BOOT:
		if (copy_from_user(&boot, argp, sizeof(boot)))
			return -EFAULT;
		if (boot.reserved || boot.nargs > ARRAY_SIZE(boot.args))
			return -EINVAL;
		op = MX_BOOT_CMD_BOOT;
		break;
	case MEMEXPOSE_IOC_RESET:
		op = MX_BOOT_CMD_RESET;
		break;
	default:
		op = MX_BOOT_CMD_HALT;
		break;
	}

	ret = mutex_lock_interruptible(&mx->tx_lock);
	if (ret)
		return ret;
	ret = mx_hw_enter(mx);
	if (ret)
		goto out_unlock;

	if (op == MX_BOOT_CMD_BOOT) {
		mx_wr(mx, MX_REG_BOOT_ENTRY_LO, lower_32_bits(boot.entry));
		mx_wr(mx, MX_REG_BOOT_ENTRY_HI, upper_32_bits(boot.entry));
		for (i = 0; i < boot.nargs; i++) {
			mx_wr(mx, MX_REG_BOOT_ARG_LO(i),
			      lower_32_bits(boot.args[i]));
			mx_wr(mx, MX_REG_BOOT_ARG_HI(i),
			      upper_32_bits(boot.args[i]));
		}
		mx_wr(mx, MX_REG_BOOT_NARGS, boot.nargs);
	}
	mx_wr(mx, MX_REG_BOOT_CMD, op);
	status = mx_rd(mx, MX_REG_BOOT_STATUS);
	mx_hw_exit(mx);

	ret = mx_boot_errno(status);
	dev_dbg(&mx->dev, "boot command %u: BOOT_STATUS %#x (%d)\n", op,
		status, ret);
out_unlock:
	mutex_unlock(&mx->tx_lock);
	return ret;
}

/* Read the boot states and record the link epoch and peer state seen. */
static int mx_get_boot_state(struct memexpose_file *mf,
			     struct memexpose_boot_state *bs)
{
	struct memexpose_dev *mx = mf->mx;
	u32 epoch;
	int ret;

	memset(bs, 0, sizeof(*bs));
	ret = mx_hw_enter(mx);
	if (ret)
		return ret;
	epoch = mx_rd(mx, MX_REG_LINK_EPOCH);
	bs->peer_state = mx_rd(mx, MX_REG_BOOT_PEER_STATE);
	bs->own_state = mx_rd(mx, MX_REG_BOOT_STATE);
	mx_hw_exit(mx);

	WRITE_ONCE(mf->seen_epoch, epoch);
	WRITE_ONCE(mf->seen_boot, bs->peer_state);
	return 0;
}

/* ---- info and window base ---- */

static int mx_get_info(struct memexpose_dev *mx, struct memexpose_info *info,
		       u32 *peer_boot)
{
	u32 epoch, vectors, tries = 0;
	int ret;

	memset(info, 0, sizeof(*info));
	ret = mx_hw_enter(mx);
	if (ret)
		return ret;

	mutex_lock(&mx->lock);
	info->window_base = mx_rd(mx, MX_REG_WINDOW_BASE_LO) |
			    (u64)mx_rd(mx, MX_REG_WINDOW_BASE_HI) << 32;
	mutex_unlock(&mx->lock);
	info->window_size = mx->window_size;

	/* A consistent snapshot: retry if the link changed meanwhile. */
	do {
		epoch = mx_rd(mx, MX_REG_LINK_EPOCH);
		info->link = mx_rd(mx, MX_REG_LINK) &
			     (MX_LINK_UP | MX_LINK_PEER_BOOT_TARGET);
		info->features = mx_rd(mx, MX_REG_FEATURES);
		vectors = mx_rd(mx, MX_REG_VECTORS);
		info->tx_credits = mx_rd(mx, MX_REG_DB_TX_CREDITS);
		mx_peer_name(mx, info->peer_name);
	} while (epoch != mx_rd(mx, MX_REG_LINK_EPOCH) && ++tries < 4);
	*peer_boot = mx_rd(mx, MX_REG_BOOT_PEER_STATE);
	mx_hw_exit(mx);

	info->link_epoch = epoch;
	info->vectors = MX_VECTORS_OURS(vectors);
	info->peer_vectors = MX_VECTORS_PEER(vectors);
	info->queue_depth = MX_VECTORS_QUEUE(vectors);
	return 0;
}

static int mx_set_window_base(struct memexpose_dev *mx, u64 base)
{
	int ret = mx_hw_enter(mx);

	if (ret)
		return ret;
	/*
	 * Each half takes effect when written (the device drops and
	 * re-resolves its zero-copy mappings), so write only what changes.
	 */
	mutex_lock(&mx->lock);
	if (mx_rd(mx, MX_REG_WINDOW_BASE_LO) != lower_32_bits(base))
		mx_wr(mx, MX_REG_WINDOW_BASE_LO, lower_32_bits(base));
	if (mx_rd(mx, MX_REG_WINDOW_BASE_HI) != upper_32_bits(base))
		mx_wr(mx, MX_REG_WINDOW_BASE_HI, upper_32_bits(base));
	mutex_unlock(&mx->lock);
	mx_hw_exit(mx);
	return 0;
}

/* ---- interrupts ---- */

static void mx_doorbell_event(struct memexpose_dev *mx)
{
	atomic_inc(&mx->rx_seq);
	wake_up_interruptible_poll(&mx->wq, EPOLLIN | EPOLLRDNORM);
}

static void mx_status_event(struct memexpose_dev *mx, u32 status)
{
	if (status & MX_INTR_DOORBELL)
		mx_doorbell_event(mx);
	if (status & MX_INTR_LINK) {
		/* Credits appear or vanish with the link too. */
		wake_up_interruptible_poll(&mx->wq, EPOLLPRI | EPOLLOUT |
					   EPOLLWRNORM);
		schedule_work(&mx->link_work);
	}
	if (status & MX_INTR_TX_READY)
		wake_up_interruptible_poll(&mx->wq, EPOLLOUT | EPOLLWRNORM);
	/* The peer's boot state changed: poll() reports EPOLLPRI. */
	if (status & MX_INTR_BOOT)
		wake_up_interruptible_poll(&mx->wq, EPOLLPRI);
}

/* Control vector (MSI-X vector 0) or the only interrupt (MSI, INTx). */
static irqreturn_t mx_irq_status(int irq, void *data)
{
	struct memexpose_dev *mx = data;
	u32 status = mx_rd(mx, MX_REG_INTR_STATUS);

	if (status == ~0U)		/* the device is gone */
		return IRQ_NONE;
	status &= MX_INTR_ALL;
	if (!status)
		return IRQ_NONE;
	/*
	 * Clear first: an event after this read sets its bit again and,
	 * with INTx, keeps the line asserted.  DOORBELL is cleared before
	 * the queue is drained, as the device expects.
	 */
	mx_wr(mx, MX_REG_INTR_STATUS, status);
	mx_status_event(mx, status);
	return IRQ_HANDLED;
}

/* MSI-X vector 1 + v: a doorbell of vector v was queued. */
static irqreturn_t mx_irq_doorbell(int irq, void *data)
{
	mx_doorbell_event(data);
	return IRQ_HANDLED;
}

static void mx_link_work(struct work_struct *work)
{
	struct memexpose_dev *mx = container_of(work, struct memexpose_dev,
						link_work);
	char link_env[32], epoch_env[40];
	char *envp[] = { link_env, epoch_env, NULL };
	char name[MEMEXPOSE_NAME_LEN];
	u32 link, epoch;

	/* Inside the section: memexpose_stop() waits for the uevent. */
	if (mx_hw_enter(mx))
		return;
	link = mx_rd(mx, MX_REG_LINK);
	epoch = mx_rd(mx, MX_REG_LINK_EPOCH);
	mx_peer_name(mx, name);
	if (link & MX_LINK_UP)
		dev_info(&mx->dev, "link up with '%s' (epoch %u)\n", name,
			 epoch);
	else
		dev_info(&mx->dev, "link down (epoch %u)\n", epoch);
	snprintf(link_env, sizeof(link_env), "MEMEXPOSE_LINK=%s",
		 link & MX_LINK_UP ? "up" : "down");
	snprintf(epoch_env, sizeof(epoch_env), "MEMEXPOSE_LINK_EPOCH=%u",
		 epoch);
	kobject_uevent_env(&mx->dev.kobj, KOBJ_CHANGE, envp);
	mx_hw_exit(mx);
}

/* ---- file operations ---- */

static int mx_open(struct inode *inode, struct file *file)
{
	struct memexpose_dev *mx = container_of(inode->i_cdev,
						struct memexpose_dev, cdev);
	struct memexpose_file *mf;
	int ret;

	mf = kzalloc(sizeof(*mf), GFP_KERNEL);
	if (!mf)
		return -ENOMEM;
	ret = mx_hw_enter(mx);
	if (ret) {
		kfree(mf);
		return ret;
	}
	mf->seen_epoch = mx_rd(mx, MX_REG_LINK_EPOCH);
	mf->seen_boot = mx_rd(mx, MX_REG_BOOT_PEER_STATE);

	/*
	 * Every open file uses the same address_space, so that
	 * unmap_mapping_range() in memexpose_stop() finds every mapping,
	 * whatever device node it was opened through.  Keep the inode that
	 * owns it alive until the device is released.
	 */
	mutex_lock(&mx->lock);
	if (!mx->mapping) {
		mx->mapping_inode = igrab(inode);
		if (mx->mapping_inode)
			mx->mapping = inode->i_mapping;
	}
	if (mx->mapping)
		file->f_mapping = mx->mapping;
	else
		ret = -ENODEV;
	mutex_unlock(&mx->lock);
	mx_hw_exit(mx);
	if (ret) {
		kfree(mf);
		return ret;
	}

	get_device(&mx->dev);
	mf->mx = mx;
	file->private_data = mf;
	return 0;
}

static int mx_release(struct inode *inode, struct file *file)
{
	struct memexpose_file *mf = file->private_data;
	struct memexpose_dev *mx = mf->mx;

	kfree(mf);
	put_device(&mx->dev);
	return 0;
}

static loff_t mx_llseek(struct file *file, loff_t offset, int whence)
{
	struct memexpose_file *mf = file->private_data;

	return fixed_size_llseek(file, offset, whence, mf->mx->window_size);
}

/* Clamp a window access; returns the length to transfer, or an errno. */
static ssize_t mx_window_span(struct memexpose_dev *mx, loff_t pos,
			      size_t count)
{
	if (READ_ONCE(mx->dead))
		return -ENODEV;
	if (pos < 0)
		return -EINVAL;
	if ((u64)pos >= mx->window_size || !count)
		return 0;
	if (!mx->window)
		return -ENOMEM;
	return min_t(u64, count, mx->window_size - pos);
}

static ssize_t mx_read(struct file *file, char __user *ubuf, size_t count,
		       loff_t *ppos)
{
	struct memexpose_file *mf = file->private_data;
	struct memexpose_dev *mx = mf->mx;
	loff_t pos = *ppos;
	ssize_t len, done = 0;
	int ret = 0;
	u8 *bounce;

	len = mx_window_span(mx, pos, count);
	if (len <= 0)
		return len;
	bounce = kmalloc(min_t(size_t, len, MX_CHUNK), GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;

	while (done < len) {
		size_t n = min_t(size_t, len - done, MX_CHUNK);

		ret = mx_hw_enter(mx);
		if (ret)
			break;
		mx_window_fromio(bounce, mx->window, pos, n);
		mx_hw_exit(mx);

		if (copy_to_user(ubuf + done, bounce, n)) {
			ret = -EFAULT;
			break;
		}
		done += n;
		pos += n;
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		cond_resched();
	}
	kfree(bounce);
	if (!done)
		return ret;
	*ppos = pos;
	return done;
}

static ssize_t mx_write(struct file *file, const char __user *ubuf,
			size_t count, loff_t *ppos)
{
	struct memexpose_file *mf = file->private_data;
	struct memexpose_dev *mx = mf->mx;
	loff_t pos = *ppos;
	ssize_t len, done = 0;
	int ret = 0;
	u8 *bounce;

	len = mx_window_span(mx, pos, count);
	if (len < 0)
		return len;
	if (!len)
		return count ? -ENOSPC : 0;
	bounce = kmalloc(min_t(size_t, len, MX_CHUNK), GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;

	while (done < len) {
		size_t n = min_t(size_t, len - done, MX_CHUNK);

		if (copy_from_user(bounce, ubuf + done, n)) {
			ret = -EFAULT;
			break;
		}
		ret = mx_hw_enter(mx);
		if (ret)
			break;
		mx_window_toio(mx->window, pos, bounce, n);
		mx_hw_exit(mx);

		done += n;
		pos += n;
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		cond_resched();
	}
	kfree(bounce);
	if (!done)
		return ret;
	*ppos = pos;
	return done;
}

static __poll_t mx_poll(struct file *file, poll_table *wait)
{
	struct memexpose_file *mf = file->private_data;
	struct memexpose_dev *mx = mf->mx;
	u32 count, link, credits, epoch, boot;
	__poll_t mask = 0;

	poll_wait(file, &mx->wq, wait);
	if (mx_hw_enter(mx))
		return EPOLLERR | EPOLLHUP;
	count = mx_rd(mx, MX_REG_DB_RX_COUNT);
	link = mx_rd(mx, MX_REG_LINK);
	credits = mx_rd(mx, MX_REG_DB_TX_CREDITS);
	epoch = mx_rd(mx, MX_REG_LINK_EPOCH);
	boot = mx_rd(mx, MX_REG_BOOT_PEER_STATE);
	mx_hw_exit(mx);

	if (count)
		mask |= EPOLLIN | EPOLLRDNORM;
	if ((link & MX_LINK_UP) && credits)
		mask |= EPOLLOUT | EPOLLWRNORM;
	if (epoch != READ_ONCE(mf->seen_epoch) ||
	    boot != READ_ONCE(mf->seen_boot))
		mask |= EPOLLPRI;
	return mask;
}

/* PFN of a user address in a window mapping (vm_pgoff = window page). */
static unsigned long mx_vma_pfn(struct memexpose_dev *mx,
				struct vm_area_struct *vma, unsigned long addr)
{
	return PHYS_PFN(mx->window_phys) + vma->vm_pgoff +
	       ((addr - vma->vm_start) >> PAGE_SHIFT);
}

static vm_fault_t mx_vm_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct memexpose_dev *mx = vma->vm_private_data;
	unsigned long block = MX_FAULT_AROUND << PAGE_SHIFT;
	unsigned long addr, start, end;
	vm_fault_t ret;

	/* mx_mmap() keeps the VMA inside the window; check anyway. */
	if (((u64)vmf->pgoff << PAGE_SHIFT) >= mx->window_size)
		return VM_FAULT_SIGBUS;
	/*
	 * Under hw_rwsem: memexpose_stop() zaps the mappings after it has
	 * drained this section, so no PTE inserted here survives removal,
	 * and any fault after removal gets SIGBUS.
	 */
	if (mx_hw_enter(mx))
		return VM_FAULT_SIGBUS;
	ret = vmf_insert_pfn(vma, vmf->address, mx_vma_pfn(mx, vma,
							   vmf->address));
	if (ret == VM_FAULT_NOPAGE) {
		/* Map the aligned block around it too (as TTM does). */
		start = max(vma->vm_start, ALIGN_DOWN(vmf->address, block));
		end = min(vma->vm_end, ALIGN_DOWN(vmf->address, block) + block);
		for (addr = start; addr < end; addr += PAGE_SIZE) {
			unsigned long pfn = mx_vma_pfn(mx, vma, addr);

			if (addr == (vmf->address & PAGE_MASK))
				continue;
			if (vmf_insert_pfn(vma, addr, pfn) != VM_FAULT_NOPAGE)
				break;
		}
	}
	mx_hw_exit(mx);
	return ret;
}

static const struct vm_operations_struct mx_vm_ops = {
	.fault = mx_vm_fault,
#ifdef CONFIG_HAVE_IOREMAP_PROT
	.access = generic_access_phys,	/* ptrace, gdb */
#endif
};

/*
 * mmap of the window.  The mapping is uncached (pgprot_noncached): that is
 * what forwarded parts of the window need (each access must reach the
 * device, with its size and in program order, and nothing may be read
 * speculatively or combined).  It does not make zero-copy peer RAM slow:
 * under TCG there are no caches to bypass, and under KVM with EPT the
 * guest's memory type is ignored for RAM-backed memory slots (EPT "ignore
 * PAT", unless the VM has non-coherent DMA), so peer RAM mapped into the
 * window stays write-back for the host.  Never use write-combining here:
 * a forwarded write could be merged, split or reordered.
 *
 * PTEs are inserted on fault rather than all at once with
 * io_remap_pfn_range(): the VMA only becomes visible to
 * unmap_mapping_range() after ->mmap returns, so a removal racing with
 * mmap could otherwise leave a populated mapping behind.
 */
static int mx_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct memexpose_file *mf = file->private_data;
	struct memexpose_dev *mx = mf->mx;
	u64 off = (u64)vma->vm_pgoff << PAGE_SHIFT;
	u64 len = vma->vm_end - vma->vm_start;

	if (READ_ONCE(mx->dead))
		return -ENODEV;
	/* MAP_SHARED only (VM_SHARED is cleared for read-only files). */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (!mx->window_mmap)
		return -ENODEV;
	if (vma->vm_pgoff > (U64_MAX >> PAGE_SHIFT) ||
	    off > mx->window_size || len > mx->window_size - off)
		return -EINVAL;

	mx_vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
	vma->vm_ops = &mx_vm_ops;
	vma->vm_private_data = mx;
	return 0;
}

static long mx_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct memexpose_file *mf = file->private_data;
	struct memexpose_dev *mx = mf->mx;
	void __user *argp = (void __user *)arg;
	bool writable = file->f_mode & FMODE_WRITE;
	struct memexpose_boot_state bs;
	struct memexpose_doorbell db;
	struct memexpose_info info;
	u32 peer_boot;
	u64 base;
	int ret;

	switch (cmd) {
	case MEMEXPOSE_IOC_GET_INFO:
		ret = mx_get_info(mx, &info, &peer_boot);
		if (ret)
			return ret;
		WRITE_ONCE(mf->seen_epoch, info.link_epoch);
		WRITE_ONCE(mf->seen_boot, peer_boot);
		if (copy_to_user(argp, &info, sizeof(info)))
			return -EFAULT;
		return 0;

	case MEMEXPOSE_IOC_SET_WINDOW_BASE:
		if (!writable)
			return -EBADF;
		if (copy_from_user(&base, argp, sizeof(base)))
			return -EFAULT;
		return mx_set_window_base(mx, base);

	case MEMEXPOSE_IOC_SEND_DOORBELL:
		if (!writable)
			return -EBADF;
		if (copy_from_user(&db, argp, sizeof(db)))
			return -EFAULT;
		return mx_send_doorbell(mx, &db);

	case MEMEXPOSE_IOC_RECV_DOORBELL:
		return mx_recv_doorbell(mx, file->f_flags & O_NONBLOCK, argp);

	case MEMEXPOSE_IOC_BOOT:
	case MEMEXPOSE_IOC_RESET:
	case MEMEXPOSE_IOC_HALT:
		if (!writable)
			return -EBADF;
		if (READ_ONCE(mx->dead))
			return -ENODEV;
		return mx_boot(mx, cmd, argp);

	case MEMEXPOSE_IOC_GET_BOOT_STATE:
		ret = mx_get_boot_state(mf, &bs);
		if (ret)
			return ret;
		if (copy_to_user(argp, &bs, sizeof(bs)))
			return -EFAULT;
		return 0;

	default:
		return -ENOTTY;
	}
}

static const struct file_operations mx_fops = {
	.owner		= THIS_MODULE,
	.open		= mx_open,
	.release	= mx_release,
	.llseek		= mx_llseek,
	.read		= mx_read,
	.write		= mx_write,
	.poll		= mx_poll,
	.mmap		= mx_mmap,
	.unlocked_ioctl	= mx_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

/* ---- sysfs: /sys/class/memexpose/memexposeN/ ---- */

static struct memexpose_dev *to_mx(struct device *dev)
{
	return container_of(dev, struct memexpose_dev, dev);
}

static ssize_t link_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	u32 link;
	int ret = mx_reg_get(to_mx(dev), MX_REG_LINK, &link);

	if (ret)
		return ret;
	return sysfs_emit(buf, "%s\n", link & MX_LINK_UP ? "up" : "down");
}
static DEVICE_ATTR_RO(link);

/* A read-only attribute showing one 32-bit register in decimal. */
#define MX_REG_ATTR_RO(_name, _reg)					\
static ssize_t _name##_show(struct device *dev,				\
			    struct device_attribute *attr, char *buf)	\
{									\
	u32 val;							\
	int ret = mx_reg_get(to_mx(dev), _reg, &val);			\
									\
	if (ret)							\
		return ret;						\
	return sysfs_emit(buf, "%u\n", val);				\
}									\
static DEVICE_ATTR_RO(_name)

MX_REG_ATTR_RO(link_epoch, MX_REG_LINK_EPOCH);

static ssize_t peer_name_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	struct memexpose_dev *mx = to_mx(dev);
	char name[MEMEXPOSE_NAME_LEN];
	int ret = mx_hw_enter(mx);

	if (ret)
		return ret;
	mx_peer_name(mx, name);
	mx_hw_exit(mx);
	return sysfs_emit(buf, "%s\n", name);
}
static DEVICE_ATTR_RO(peer_name);

static ssize_t window_size_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", to_mx(dev)->window_size);
}
static DEVICE_ATTR_RO(window_size);

static ssize_t window_base_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	struct memexpose_dev *mx = to_mx(dev);
	u64 base;
	int ret = mx_hw_enter(mx);

	if (ret)
		return ret;
	mutex_lock(&mx->lock);
	base = mx_rd(mx, MX_REG_WINDOW_BASE_LO) |
	       (u64)mx_rd(mx, MX_REG_WINDOW_BASE_HI) << 32;
	mutex_unlock(&mx->lock);
	mx_hw_exit(mx);
	return sysfs_emit(buf, "0x%llx\n", base);
}

static ssize_t window_base_store(struct device *dev,
				 struct device_attribute *attr,
				 const char *buf, size_t count)
{
	u64 base;
	int ret = kstrtou64(buf, 0, &base);

	if (ret)
		return ret;
	ret = mx_set_window_base(to_mx(dev), base);
	return ret ? ret : count;
}
static DEVICE_ATTR_RW(window_base);

MX_REG_ATTR_RO(tx_credits, MX_REG_DB_TX_CREDITS);

MX_REG_ATTR_RO(rx_count, MX_REG_DB_RX_COUNT);

static const char *const mx_boot_state_names[] = {
	[MEMEXPOSE_BOOT_STATE_NONE]	= "none",
	[MEMEXPOSE_BOOT_STATE_WAITING]	= "waiting",
	[MEMEXPOSE_BOOT_STATE_RUNNING]	= "running",
	[MEMEXPOSE_BOOT_STATE_HALTED]	= "halted",
};

static ssize_t peer_boot_state_show(struct device *dev,
				    struct device_attribute *attr, char *buf)
{
	u32 state;
	int ret = mx_reg_get(to_mx(dev), MX_REG_BOOT_PEER_STATE, &state);

	if (ret)
		return ret;
	if (state < ARRAY_SIZE(mx_boot_state_names))
		return sysfs_emit(buf, "%s\n", mx_boot_state_names[state]);
	return sysfs_emit(buf, "%u\n", state);	/* not defined yet */
}
static DEVICE_ATTR_RO(peer_boot_state);

static struct attribute *memexpose_attrs[] = {
	&dev_attr_link.attr,
	&dev_attr_link_epoch.attr,
	&dev_attr_peer_name.attr,
	&dev_attr_window_size.attr,
	&dev_attr_window_base.attr,
	&dev_attr_tx_credits.attr,
	&dev_attr_rx_count.attr,
	&dev_attr_peer_boot_state.attr,
	NULL
};
ATTRIBUTE_GROUPS(memexpose);

/* ---- life cycle ---- */

static void mx_dev_release(struct device *dev)
{
	struct memexpose_dev *mx = to_mx(dev);

	/* Only mapped here if memexpose_stop() never ran (probe failure). */
	if (mx->window)
		iounmap(mx->window);
	if (mx->regs)
		iounmap(mx->regs);
	iput(mx->mapping_inode);	/* NULL-safe */
	ida_free(&mx_ida, mx->id);
	kfree(mx);
}

unsigned int memexpose_vectors(const struct memexpose_dev *mx)
{
	return mx->vectors;
}

/**
 * memexpose_create - map and check a device, prepare its instance
 * @parent: the bus device
 * @regs:   the register block (at least MEMEXPOSE_REG_SIZE bytes)
 * @window: the window
 *
 * The caller owns both resources (requested) until memexpose_stop().
 * Returns the instance with one reference, or an ERR_PTR.
 */
struct memexpose_dev *memexpose_create(struct device *parent,
				       const struct resource *regs,
				       const struct resource *window)
{
	struct memexpose_dev *mx;
	u32 id, version, vectors;
	u64 reg_size;
	int ret;

	if (resource_size(regs) < MEMEXPOSE_REG_SIZE) {
		dev_err(parent, "register block too small: %pR\n", regs);
		return ERR_PTR(-ENODEV);
	}

	mx = kzalloc(sizeof(*mx), GFP_KERNEL);
	if (!mx)
		return ERR_PTR(-ENOMEM);
	ret = ida_alloc_max(&mx_ida, MX_MAX_DEVS - 1, GFP_KERNEL);
	if (ret < 0) {
		kfree(mx);
		return ERR_PTR(ret);
	}
	mx->id = ret;
	mx->parent = parent;
	init_rwsem(&mx->hw_rwsem);
	mutex_init(&mx->tx_lock);
	/* DB_TX_LEN is kept across device resets: write it on first use. */
	mx->tx_len = U32_MAX;
	mutex_init(&mx->rx_lock);
	mutex_init(&mx->lock);
	init_waitqueue_head(&mx->wq);
	atomic_set(&mx->rx_seq, 0);
	INIT_WORK(&mx->link_work, mx_link_work);
	cdev_init(&mx->cdev, &mx_fops);
	mx->cdev.owner = THIS_MODULE;

	/* From here on, put_device() frees everything. */
	device_initialize(&mx->dev);
	mx->dev.class = mx_class;
	mx->dev.parent = parent;
	mx->dev.devt = MKDEV(MAJOR(mx_devt), mx->id);
	mx->dev.groups = memexpose_groups;
	mx->dev.release = mx_dev_release;
	ret = dev_set_name(&mx->dev, "memexpose%d", mx->id);
	if (ret)
		goto err_put;

	mx->regs = ioremap(regs->start, MEMEXPOSE_REG_SIZE);
	if (!mx->regs) {
		ret = -ENOMEM;
		goto err_put;
	}

	id = mx_rd(mx, MX_REG_ID);
	version = mx_rd(mx, MX_REG_VERSION);
	if (id != MX_ID_MAGIC) {
		dev_err(parent, "not a memexpose device (ID %#010x)\n", id);
		ret = -ENODEV;
		goto err_put;
	}
	if (MX_VERSION_MAJOR(version) != MX_SUPPORTED_MAJOR) {
		dev_err(parent, "unsupported device version %u.%u (need %u.x)\n",
			MX_VERSION_MAJOR(version), MX_VERSION_MINOR(version),
			MX_SUPPORTED_MAJOR);
		ret = -ENODEV;
		goto err_put;
	}

	mx->caps = mx_rd(mx, MX_REG_CAPS);
	vectors = mx_rd(mx, MX_REG_VECTORS);
	mx->vectors = MX_VECTORS_OURS(vectors);
	mx->queue_depth = MX_VECTORS_QUEUE(vectors);
	if (!mx->vectors || mx->vectors > MEMEXPOSE_MAX_VECTORS) {
		dev_err(parent, "bad number of doorbell vectors: %u\n",
			mx->vectors);
		ret = -ENODEV;
		goto err_put;
	}

	/* Quiet until memexpose_start(). */
	mx_wr(mx, MX_REG_INTR_MASK, 0);

	reg_size = mx_rd(mx, MX_REG_WINDOW_SIZE_LO) |
		   (u64)mx_rd(mx, MX_REG_WINDOW_SIZE_HI) << 32;
	mx->window_phys = window->start;
	mx->window_size = min_t(u64, reg_size, resource_size(window));
	if (reg_size != resource_size(window))
		dev_warn(parent, "window: WINDOW_SIZE %#llx, resource %pR; using %#llx bytes\n",
			 reg_size, window, mx->window_size);
	mx->window_mmap = PAGE_ALIGNED(mx->window_phys) && mx->window_size;
	if (mx->window_size &&
	    mx->window_size == (unsigned long)mx->window_size) {
		/* Plain ioremap (uncached): the window can be MMIO. */
		mx->window = ioremap(mx->window_phys, mx->window_size);
		if (!mx->window)
			dev_warn(parent, "cannot map the %llu byte window: read/write unavailable, mmap still works\n",
				 mx->window_size);
	}

	dev_info(parent, "memexpose%d: device %u.%u, window %pR (%llu bytes), %u vectors, queue %u\n",
		 mx->id, MX_VERSION_MAJOR(version), MX_VERSION_MINOR(version),
		 window, mx->window_size, mx->vectors, mx->queue_depth);
	return mx;

err_put:
	put_device(&mx->dev);
	return ERR_PTR(ret);
}

static void mx_free_irqs(struct memexpose_dev *mx)
{
	unsigned int i;

	for (i = 0; i < mx->nr_irqs; i++) {
		free_irq(mx->irqs[i], mx);
		kfree(mx->irq_names[i]);
		mx->irq_names[i] = NULL;
	}
	mx->nr_irqs = 0;
}

/**
 * memexpose_start - request the interrupts, create /dev/memexposeN
 * @mx:   from memexpose_create()
 * @irqs: 1 + vectors interrupts, or a single one
 *
 * On failure everything done here is undone; the caller still calls
 * memexpose_stop() and memexpose_put().
 */
int memexpose_start(struct memexpose_dev *mx, const struct memexpose_irqs *irqs)
{
	unsigned long flags = 0;
	irq_handler_t handler;
	unsigned int i;
	int ret;

	if (irqs->nr == 1 + mx->vectors) {
		mx->irq_per_vector = true;
	} else if (irqs->nr == 1) {
		mx->irq_per_vector = false;
		if (irqs->shared)
			flags = IRQF_SHARED;
	} else {
		return -EINVAL;
	}

	/* Stale events from before the driver was loaded. */
	mx_wr(mx, MX_REG_INTR_STATUS, MX_INTR_ALL);

	for (i = 0; i < irqs->nr; i++) {
		if (i == 0) {
			handler = mx_irq_status;
			mx->irq_names[i] = kasprintf(GFP_KERNEL, "%s%s",
						     dev_name(&mx->dev),
						     mx->irq_per_vector ?
						     "-ctrl" : "");
		} else {
			handler = mx_irq_doorbell;
			mx->irq_names[i] = kasprintf(GFP_KERNEL, "%s-db%u",
						     dev_name(&mx->dev), i - 1);
		}
		if (!mx->irq_names[i]) {
			ret = -ENOMEM;
			goto err_irqs;
		}
		ret = request_irq(irqs->irq[i], handler, flags,
				  mx->irq_names[i], mx);
		if (ret) {
			kfree(mx->irq_names[i]);
			mx->irq_names[i] = NULL;
			dev_err(mx->parent, "cannot request interrupt %d: %d\n",
				irqs->irq[i], ret);
			goto err_irqs;
		}
		mx->irqs[i] = irqs->irq[i];
		mx->nr_irqs = i + 1;
	}

	ret = cdev_device_add(&mx->cdev, &mx->dev);
	if (ret) {
		dev_err(mx->parent, "cannot add %s: %d\n", dev_name(&mx->dev),
			ret);
		goto err_irqs;
	}
	mx->started = true;

	/*
	 * With one interrupt per source the doorbell vectors fire
	 * independently of INTR_MASK and vector 0 summarises the enabled
	 * status bits, so only LINK, TX_READY and BOOT are enabled (as the
	 * device specification recommends); with a single interrupt, all of
	 * them.  Every enabled bit is acknowledged by mx_irq_status(): with a
	 * level-triggered line one that is not would keep it asserted.
	 */
	mx_wr(mx, MX_REG_INTR_MASK, mx->irq_per_vector ?
	      MX_INTR_LINK | MX_INTR_TX_READY | MX_INTR_BOOT : MX_INTR_ALL);

	dev_info(mx->parent, "%s: %s interrupts\n", dev_name(&mx->dev),
		 mx->irq_per_vector ? "per-vector" :
		 flags ? "shared" : "single");
	return 0;

err_irqs:
	mx_wr(mx, MX_REG_INTR_MASK, 0);
	mx_free_irqs(mx);
	return ret;
}

/**
 * memexpose_quiesce - stop interrupts (shutdown, kexec)
 * @mx: the instance
 */
void memexpose_quiesce(struct memexpose_dev *mx)
{
	if (mx_hw_enter(mx))
		return;
	mx_wr(mx, MX_REG_INTR_MASK, 0);
	mx_hw_exit(mx);
}

/**
 * memexpose_stop - the device is going away
 * @mx: the instance
 *
 * After this returns nothing touches the device's registers or window,
 * no interrupt handler runs, /dev/memexposeN is gone, open files fail
 * with -ENODEV, blocked callers have been woken and user mappings are
 * zapped (a later access raises SIGBUS).  The caller may then release the
 * bus resources.  Safe to call whether or not memexpose_start() ran or
 * succeeded.
 */
void memexpose_stop(struct memexpose_dev *mx)
{
	WRITE_ONCE(mx->dead, true);
	/* Blocked RECV_DOORBELL and poll() see @dead and return. */
	wake_up_all(&mx->wq);

	/* Wait for every section that touches the hardware to finish. */
	down_write(&mx->hw_rwsem);
	up_write(&mx->hw_rwsem);

	if (mx->started) {
		cdev_device_del(&mx->cdev, &mx->dev);
		mx->started = false;
	}

	/*
	 * Zap user mappings.  Faults after this fail (mx_vm_fault sees
	 * @dead); the VMAs themselves stay until the process unmaps them.
	 */
	mutex_lock(&mx->lock);
	if (mx->mapping)
		unmap_mapping_range(mx->mapping, 0, 0, 1);
	mutex_unlock(&mx->lock);

	if (mx->regs)
		mx_wr(mx, MX_REG_INTR_MASK, 0);
	mx_free_irqs(mx);
	cancel_work_sync(&mx->link_work);

	if (mx->window) {
		iounmap(mx->window);
		mx->window = NULL;
	}
	if (mx->regs) {
		iounmap(mx->regs);
		mx->regs = NULL;
	}
	dev_info(mx->parent, "%s removed\n", dev_name(&mx->dev));
}

/**
 * memexpose_put - drop the binding's reference
 * @mx: the instance
 */
void memexpose_put(struct memexpose_dev *mx)
{
	put_device(&mx->dev);
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
static char *mx_devnode(const struct device *dev, umode_t *mode)
#else
static char *mx_devnode(struct device *dev, umode_t *mode)
#endif
{
	if (mode)
		*mode = 0600;
	return NULL;
}

static int __init memexpose_init(void)
{
	int ret;

	BUILD_BUG_ON(sizeof(struct memexpose_info) != 112);
	BUILD_BUG_ON(sizeof(struct memexpose_doorbell) != 264);
	BUILD_BUG_ON(sizeof(struct memexpose_boot) != 48);
	BUILD_BUG_ON(sizeof(struct memexpose_boot_state) != 8);
	BUILD_BUG_ON(ARRAY_SIZE(((struct memexpose_boot *)NULL)->args) !=
		     MX_BOOT_MAX_ARGS);

	ret = alloc_chrdev_region(&mx_devt, 0, MX_MAX_DEVS, KBUILD_MODNAME);
	if (ret)
		return ret;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	mx_class = class_create(KBUILD_MODNAME);
#else
	mx_class = class_create(THIS_MODULE, KBUILD_MODNAME);
#endif
	if (IS_ERR(mx_class)) {
		ret = PTR_ERR(mx_class);
		goto err_region;
	}
	mx_class->devnode = mx_devnode;

	ret = memexpose_pci_register();
	if (ret)
		goto err_class;
	ret = memexpose_platform_register();
	if (ret)
		goto err_pci;
	return 0;

err_pci:
	memexpose_pci_unregister();
err_class:
	class_destroy(mx_class);
err_region:
	unregister_chrdev_region(mx_devt, MX_MAX_DEVS);
	return ret;
}

static void __exit memexpose_exit(void)
{
	memexpose_platform_unregister();
	memexpose_pci_unregister();
	class_destroy(mx_class);
	unregister_chrdev_region(mx_devt, MX_MAX_DEVS);
	ida_destroy(&mx_ida);
}

module_init(memexpose_init);
module_exit(memexpose_exit);

MODULE_DESCRIPTION("memexpose: window into a peer machine's memory, with doorbells");
MODULE_AUTHOR("The memexpose authors");
MODULE_LICENSE("GPL");
