// SPDX-License-Identifier: GPL-2.0
/*
 * memexpose: PCI binding (QEMU's memexpose-pci).
 *
 * BAR0: registers (4 KiB), BAR1: MSI-X table and PBA, BAR2/3: the window
 * (64-bit, prefetchable).  MSI-X vector 0 is the control interrupt,
 * 1 + v doorbell vector v; without MSI-X, INTx A.  Everything else is in
 * memexpose-core.c.
 *
 * Copyright (c) 2026 The memexpose authors
 */

#include <linux/module.h>
#include <linux/pci.h>

#include "memexpose-core.h"

/* Provisional: in QEMU's 1b36 range, not allocated upstream yet. */
#define PCI_DEVICE_ID_REDHAT_MEMEXPOSE	0x00f0

#define MX_PCI_REGS_BAR			0
#define MX_PCI_WINDOW_BAR		2

#ifndef PCI_IRQ_INTX
#define PCI_IRQ_INTX			PCI_IRQ_LEGACY
#endif

static int memexpose_pci_irqs(struct pci_dev *pdev, unsigned int vectors,
			      struct memexpose_irqs *irqs)
{
	unsigned int nvec = 1 + vectors, i;
	int ret;

	/* One vector per source, or a single interrupt for everything. */
	ret = pci_alloc_irq_vectors(pdev, nvec, nvec, PCI_IRQ_MSIX);
	if (ret < 0) {
		dev_info(&pdev->dev, "no %u MSI-X vectors (%d), using one interrupt\n",
			 nvec, ret);
		nvec = 1;
		ret = pci_alloc_irq_vectors(pdev, 1, 1,
					    PCI_IRQ_MSI | PCI_IRQ_INTX);
		if (ret < 0)
			return ret;
	}

	irqs->nr = nvec;
	irqs->shared = !pdev->msix_enabled && !pdev->msi_enabled;
	for (i = 0; i < nvec; i++) {
		ret = pci_irq_vector(pdev, i);
		if (ret < 0) {
			pci_free_irq_vectors(pdev);
			return ret;
		}
		irqs->irq[i] = ret;
	}
	return 0;
}

static int memexpose_pci_probe(struct pci_dev *pdev,
			       const struct pci_device_id *id)
{
	struct memexpose_irqs irqs = { 0 };
	struct memexpose_dev *mx;
	int ret;

	ret = pci_enable_device(pdev);
	if (ret)
		return ret;

	if (!(pci_resource_flags(pdev, MX_PCI_REGS_BAR) & IORESOURCE_MEM) ||
	    pci_resource_len(pdev, MX_PCI_REGS_BAR) < MEMEXPOSE_REG_SIZE) {
		dev_err(&pdev->dev, "BAR%d is not a register block\n",
			MX_PCI_REGS_BAR);
		ret = -ENODEV;
		goto err_disable;
	}
	if (!(pci_resource_flags(pdev, MX_PCI_WINDOW_BAR) & IORESOURCE_MEM)) {
		dev_err(&pdev->dev, "BAR%d is not a memory window\n",
			MX_PCI_WINDOW_BAR);
		ret = -ENODEV;
		goto err_disable;
	}

	ret = pci_request_regions(pdev, KBUILD_MODNAME);
	if (ret)
		goto err_disable;
	/* MSI-X messages are memory writes by the device. */
	pci_set_master(pdev);

	mx = memexpose_create(&pdev->dev,
			      &pdev->resource[MX_PCI_REGS_BAR],
			      &pdev->resource[MX_PCI_WINDOW_BAR]);
	if (IS_ERR(mx)) {
		ret = PTR_ERR(mx);
		goto err_regions;
	}

	ret = memexpose_pci_irqs(pdev, memexpose_vectors(mx), &irqs);
	if (ret) {
		dev_err(&pdev->dev, "cannot allocate interrupts: %d\n", ret);
		goto err_stop;
	}
	ret = memexpose_start(mx, &irqs);
	if (ret)
		goto err_vectors;

	pci_set_drvdata(pdev, mx);
	return 0;

err_vectors:
	memexpose_stop(mx);
	pci_free_irq_vectors(pdev);
	memexpose_put(mx);
	goto err_regions;
err_stop:
	memexpose_stop(mx);
	memexpose_put(mx);
err_regions:
	pci_clear_master(pdev);
	pci_release_regions(pdev);
err_disable:
	pci_disable_device(pdev);
	return ret;
}

static void memexpose_pci_remove(struct pci_dev *pdev)
{
	struct memexpose_dev *mx = pci_get_drvdata(pdev);

	memexpose_stop(mx);
	pci_free_irq_vectors(pdev);
	pci_clear_master(pdev);
	pci_release_regions(pdev);
	pci_disable_device(pdev);
	memexpose_put(mx);
}

static void memexpose_pci_shutdown(struct pci_dev *pdev)
{
	struct memexpose_dev *mx = pci_get_drvdata(pdev);

	memexpose_quiesce(mx);
	pci_clear_master(pdev);
}

static const struct pci_device_id memexpose_pci_ids[] = {
	{ PCI_DEVICE(PCI_VENDOR_ID_REDHAT, PCI_DEVICE_ID_REDHAT_MEMEXPOSE) },
	{ }
};
MODULE_DEVICE_TABLE(pci, memexpose_pci_ids);

static struct pci_driver memexpose_pci_driver = {
	.name		= KBUILD_MODNAME,
	.id_table	= memexpose_pci_ids,
	.probe		= memexpose_pci_probe,
	.remove		= memexpose_pci_remove,
	.shutdown	= memexpose_pci_shutdown,
};

int memexpose_pci_register(void)
{
	return pci_register_driver(&memexpose_pci_driver);
}

void memexpose_pci_unregister(void)
{
	pci_unregister_driver(&memexpose_pci_driver);
}
