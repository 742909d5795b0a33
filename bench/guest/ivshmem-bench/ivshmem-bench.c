// SPDX-License-Identifier: GPL-2.0
/*
 * ivshmem-bench: a minimal driver for QEMU's ivshmem-doorbell device
 * (1af4:1110), for `make bench` only.  It gives the doorbell the same
 * route as memexpose.ko gives its doorbells: interrupt in the guest
 * kernel -> wake a user-space waiter -> the waiter rings back.
 *
 * BAR0 registers (QEMU's docs/specs/ivshmem-spec.rst): IntrMask 0x0,
 * IntrStatus 0x4, IVPosition 0x8, Doorbell 0xc = (peer_id << 16) |
 * vector.  With MSI-X (ivshmem-doorbell's default) each doorbell vector
 * has its own MSI-X vector; without it, INTx with IntrStatus (read to
 * clear).  The shared memory (BAR2) is not used.
 *
 * /dev/ivshmem-bench: see ivshmem-bench.h.  One device only.
 */
#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include "ivshmem-bench.h"

#define IVB_INTR_MASK	0x00
#define IVB_INTR_STATUS	0x04
#define IVB_IVPOSITION	0x08
#define IVB_DOORBELL	0x0c

#ifndef PCI_IRQ_INTX
#define PCI_IRQ_INTX PCI_IRQ_LEGACY
#endif

struct ivb_dev {
	struct pci_dev *pdev;
	void __iomem *regs;
	int nvec;
	bool msix;
	atomic64_t count;
	wait_queue_head_t wq;
};

static struct ivb_dev *ivb;	/* the one device */
static DEFINE_MUTEX(ivb_lock);

struct ivb_file {
	u64 seen;
};

static irqreturn_t ivb_irq(int irq, void *data)
{
	struct ivb_dev *d = data;

	if (!d->msix && !readl(d->regs + IVB_INTR_STATUS))
		return IRQ_NONE;	/* shared INTx, not ours */
	atomic64_inc(&d->count);
	wake_up_interruptible(&d->wq);
	return IRQ_HANDLED;
}

static int ivb_open(struct inode *inode, struct file *file)
{
	struct ivb_file *f;

	mutex_lock(&ivb_lock);
	if (!ivb) {
		mutex_unlock(&ivb_lock);
		return -ENODEV;
	}
	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f) {
		mutex_unlock(&ivb_lock);
		return -ENOMEM;
	}
	f->seen = atomic64_read(&ivb->count);
	mutex_unlock(&ivb_lock);
	file->private_data = f;
	return 0;
}

static int ivb_release(struct inode *inode, struct file *file)
{
	kfree(file->private_data);
	return 0;
}

/* The device cannot go away while a file is open: the misc device is
 * deregistered in remove, and rmmod is refused while files are open. */
static ssize_t ivb_read(struct file *file, char __user *buf, size_t len,
			loff_t *ppos)
{
	struct ivb_file *f = file->private_data;
	u64 c;
	int ret;

	if (len < sizeof(c))
		return -EINVAL;
	if (file->f_flags & O_NONBLOCK) {
		if (atomic64_read(&ivb->count) == f->seen)
			return -EAGAIN;
	} else {
		ret = wait_event_interruptible(ivb->wq,
				atomic64_read(&ivb->count) != f->seen);
		if (ret)
			return ret;
	}
	c = atomic64_read(&ivb->count);
	f->seen = c;
	if (copy_to_user(buf, &c, sizeof(c)))
		return -EFAULT;
	return sizeof(c);
}

static ssize_t ivb_write(struct file *file, const char __user *buf,
			 size_t len, loff_t *ppos)
{
	u32 val;

	if (len != sizeof(val))
		return -EINVAL;
	if (copy_from_user(&val, buf, sizeof(val)))
		return -EFAULT;
	writel(val, ivb->regs + IVB_DOORBELL);
	return sizeof(val);
}

static long ivb_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	u32 pos;

	if (cmd != IVSHMEM_BENCH_IOC_POSITION)
		return -ENOTTY;
	pos = readl(ivb->regs + IVB_IVPOSITION);
	return put_user(pos, (u32 __user *)arg);
}

static const struct file_operations ivb_fops = {
	.owner = THIS_MODULE,
	.open = ivb_open,
	.release = ivb_release,
	.read = ivb_read,
	.write = ivb_write,
	.unlocked_ioctl = ivb_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice ivb_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "ivshmem-bench",
	.fops = &ivb_fops,
	.mode = 0600,
};

static void ivb_free_irqs(struct ivb_dev *d, int n)
{
	while (n-- > 0)
		free_irq(pci_irq_vector(d->pdev, n), d);
	pci_free_irq_vectors(d->pdev);
}

static int ivb_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct ivb_dev *d;
	int i, ret;

	mutex_lock(&ivb_lock);
	ret = ivb ? -EBUSY : 0;
	mutex_unlock(&ivb_lock);
	if (ret)
		return ret;

	d = devm_kzalloc(&pdev->dev, sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	d->pdev = pdev;
	atomic64_set(&d->count, 0);
	init_waitqueue_head(&d->wq);

	ret = pci_enable_device(pdev);
	if (ret)
		return ret;
	ret = pci_request_region(pdev, 0, "ivshmem-bench");
	if (ret)
		goto err_disable;
	d->regs = pci_iomap(pdev, 0, 0x100);
	if (!d->regs) {
		ret = -ENOMEM;
		goto err_region;
	}
	/* MSI(-X) messages are memory writes by the device. */
	pci_set_master(pdev);

	d->nvec = pci_alloc_irq_vectors(pdev, 1, 64, PCI_IRQ_MSIX);
	if (d->nvec > 0) {
		d->msix = true;
	} else {
		d->nvec = pci_alloc_irq_vectors(pdev, 1, 1, PCI_IRQ_INTX);
		if (d->nvec < 0) {
			ret = d->nvec;
			goto err_unmap;
		}
	}
	for (i = 0; i < d->nvec; i++) {
		ret = request_irq(pci_irq_vector(pdev, i), ivb_irq,
				  d->msix ? 0 : IRQF_SHARED, "ivshmem-bench", d);
		if (ret) {
			ivb_free_irqs(d, i);
			goto err_unmap;
		}
	}
	/* INTx: IntrMask enables the status bits (MSI-X ignores them). */
	writel(d->msix ? 0 : 0xffffffff, d->regs + IVB_INTR_MASK);
	pci_set_drvdata(pdev, d);

	mutex_lock(&ivb_lock);
	ivb = d;
	mutex_unlock(&ivb_lock);
	ret = misc_register(&ivb_misc);
	if (ret) {
		mutex_lock(&ivb_lock);
		ivb = NULL;
		mutex_unlock(&ivb_lock);
		ivb_free_irqs(d, d->nvec);
		goto err_unmap;
	}
	dev_info(&pdev->dev, "ivshmem-bench: %d %s vector(s), IVPosition %d\n",
		 d->nvec, d->msix ? "MSI-X" : "INTx",
		 (int)readl(d->regs + IVB_IVPOSITION));
	return 0;

err_unmap:
	pci_iounmap(pdev, d->regs);
err_region:
	pci_release_region(pdev, 0);
err_disable:
	pci_disable_device(pdev);
	return ret;
}

static void ivb_remove(struct pci_dev *pdev)
{
	struct ivb_dev *d = pci_get_drvdata(pdev);

	misc_deregister(&ivb_misc);
	mutex_lock(&ivb_lock);
	ivb = NULL;
	mutex_unlock(&ivb_lock);
	writel(0, d->regs + IVB_INTR_MASK);
	ivb_free_irqs(d, d->nvec);
	pci_iounmap(pdev, d->regs);
	pci_release_region(pdev, 0);
	pci_disable_device(pdev);
}

static const struct pci_device_id ivb_ids[] = {
	{ PCI_DEVICE(0x1af4, 0x1110) },
	{ }
};
MODULE_DEVICE_TABLE(pci, ivb_ids);

static struct pci_driver ivb_driver = {
	.name = "ivshmem-bench",
	.id_table = ivb_ids,
	.probe = ivb_probe,
	.remove = ivb_remove,
};
module_pci_driver(ivb_driver);

MODULE_DESCRIPTION("ivshmem-doorbell driver for the memexpose benchmark");
MODULE_LICENSE("GPL");
