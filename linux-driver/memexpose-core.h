/* SPDX-License-Identifier: GPL-2.0 */
/*
 * memexpose: interface between the bus-independent core
 * (memexpose-core.c) and the bus bindings (memexpose-pci.c for PCI,
 * memexpose-platform.c for the platform device / device-tree node
 * "qemu,memexpose").
 *
 * A binding's probe:
 *   1. enables the bus device and claims the register block and the
 *      window (e.g. pci_request_regions(), devm_request_mem_region());
 *   2. mx = memexpose_create(dev, regs, window): maps and validates the
 *      registers, maps the window;
 *   3. sets up 1 + memexpose_vectors(mx) interrupts (vector 0 = control,
 *      1 + v = doorbell vector v) or a single one, and calls
 *      memexpose_start(mx, &irqs): requests them and creates the
 *      character device.
 * On failure after step 2, and in remove: memexpose_stop(mx), release
 * the interrupts and the bus resources, then memexpose_put(mx).
 * (Resources a binding got with devm_*() are released by the driver core
 * after remove returns, i.e. after memexpose_put(): harmless, since
 * nothing touches the device after memexpose_stop().)
 *
 * Copyright (c) 2026 The memexpose authors
 */
#ifndef MEMEXPOSE_CORE_H
#define MEMEXPOSE_CORE_H

#include <linux/ioport.h>
#include <linux/types.h>

struct device;
struct memexpose_dev;

/* Size of the register block (hw/misc/memexpose/memexpose-regs.h). */
#define MEMEXPOSE_REG_SIZE		0x1000
/* Most doorbell vectors a device may have (MXP_MAX_VECTORS). */
#define MEMEXPOSE_MAX_VECTORS		64
#define MEMEXPOSE_MAX_IRQS		(1 + MEMEXPOSE_MAX_VECTORS)

/**
 * struct memexpose_irqs - interrupts a binding hands to the core
 * @nr:         1 + vectors (one interrupt per source) or 1 (one interrupt
 *              for everything; the core then reads INTR_STATUS)
 * @shared:     with @nr == 1: the line may be shared (PCI INTx)
 * @irq:        Linux interrupt numbers; irq[0] is the control interrupt,
 *              irq[1 + v] signals doorbell vector v
 */
struct memexpose_irqs {
	unsigned int nr;
	bool shared;
	int irq[MEMEXPOSE_MAX_IRQS];
};

struct memexpose_dev *memexpose_create(struct device *parent,
				       const struct resource *regs,
				       const struct resource *window);
unsigned int memexpose_vectors(const struct memexpose_dev *mx);
int memexpose_start(struct memexpose_dev *mx,
		    const struct memexpose_irqs *irqs);
void memexpose_quiesce(struct memexpose_dev *mx);
void memexpose_stop(struct memexpose_dev *mx);
void memexpose_put(struct memexpose_dev *mx);

/* Bindings, called from module init/exit in memexpose-core.c. */
int memexpose_pci_register(void);
void memexpose_pci_unregister(void);
int memexpose_platform_register(void);
void memexpose_platform_unregister(void);

#endif /* MEMEXPOSE_CORE_H */
