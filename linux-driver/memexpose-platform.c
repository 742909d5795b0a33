// SPDX-License-Identifier: GPL-2.0
/*
 * memexpose: platform binding (QEMU's memexpose-sysbus).
 *
 * Device tree, as QEMU's virt generates it on its platform bus:
 *
 *	memexpose@0 {
 *		compatible = "qemu,memexpose";
 *		reg = <0x0 0x1000>,		// registers, 4 KiB
 *		      <0x1000000 0x1000000>;	// the window
 *		interrupts = <GIC_SPI 112 IRQ_TYPE_LEVEL_HIGH>;
 *	};
 *
 * One level-triggered interrupt, asserted while INTR_STATUS & INTR_MASK
 * is not zero: the same register semantics as PCI INTx, but the line is
 * the device's own (not shared).  Everything else is in memexpose-core.c.
 *
 * Copyright (c) 2026 The memexpose authors
 */

#include <linux/ioport.h>
#include <linux/mod_devicetable.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/version.h>

#include "memexpose-core.h"

#define MX_PLAT_REGS_RES		0
#define MX_PLAT_WINDOW_RES		1

/* Claim a memory resource until the device is unbound. */
static struct resource *memexpose_platform_mem(struct platform_device *pdev,
					       unsigned int index,
					       const char *what)
{
	struct resource *res;

	res = platform_get_resource(pdev, IORESOURCE_MEM, index);
	if (!res) {
		dev_err(&pdev->dev, "no %s (memory resource %u)\n", what,
			index);
		return ERR_PTR(-ENODEV);
	}
	if (!devm_request_mem_region(&pdev->dev, res->start,
				     resource_size(res), dev_name(&pdev->dev))) {
		dev_err(&pdev->dev, "%s %pR is busy\n", what, res);
		return ERR_PTR(-EBUSY);
	}
	return res;
}

static int memexpose_platform_probe(struct platform_device *pdev)
{
	struct memexpose_irqs irqs = { 0 };
	struct resource *regs, *window;
	struct memexpose_dev *mx;
	int irq, ret;

	regs = memexpose_platform_mem(pdev, MX_PLAT_REGS_RES, "register block");
	if (IS_ERR(regs))
		return PTR_ERR(regs);
	window = memexpose_platform_mem(pdev, MX_PLAT_WINDOW_RES, "window");
	if (IS_ERR(window))
		return PTR_ERR(window);
	/* Before memexpose_create(): may be -EPROBE_DEFER. */
	irq = platform_get_irq(pdev, 0);
	if (irq < 0)
		return irq;

	mx = memexpose_create(&pdev->dev, regs, window);
	if (IS_ERR(mx))
		return PTR_ERR(mx);

	/* One interrupt for everything; the core reads INTR_STATUS. */
	irqs.nr = 1;
	irqs.shared = false;
	irqs.irq[0] = irq;
	ret = memexpose_start(mx, &irqs);
	if (ret) {
		memexpose_stop(mx);
		memexpose_put(mx);
		return ret;	/* the memory regions are devm-managed */
	}

	platform_set_drvdata(pdev, mx);
	return 0;
}

static void memexpose_platform_remove_dev(struct platform_device *pdev)
{
	struct memexpose_dev *mx = platform_get_drvdata(pdev);

	/* Frees the interrupt; the regions are released after this. */
	memexpose_stop(mx);
	memexpose_put(mx);
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
#define memexpose_platform_remove	memexpose_platform_remove_dev
#else
static int memexpose_platform_remove(struct platform_device *pdev)
{
	memexpose_platform_remove_dev(pdev);
	return 0;
}
#endif

static void memexpose_platform_shutdown(struct platform_device *pdev)
{
	memexpose_quiesce(platform_get_drvdata(pdev));
}

/*
 * Not wrapped in of_match_ptr(): the table stays usable without
 * CONFIG_OF (e.g. ACPI PRP0001) and is never unused.
 */
static const struct of_device_id memexpose_of_ids[] = {
	{ .compatible = "qemu,memexpose" },
	{ }
};
MODULE_DEVICE_TABLE(of, memexpose_of_ids);

static struct platform_driver memexpose_platform_driver = {
	.driver = {
		.name		= KBUILD_MODNAME,
		.of_match_table	= memexpose_of_ids,
	},
	.probe		= memexpose_platform_probe,
	.remove		= memexpose_platform_remove,
	.shutdown	= memexpose_platform_shutdown,
};

int memexpose_platform_register(void)
{
	return platform_driver_register(&memexpose_platform_driver);
}

void memexpose_platform_unregister(void)
{
	platform_driver_unregister(&memexpose_platform_driver);
}
