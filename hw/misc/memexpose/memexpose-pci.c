/*
 * memexpose-pci: the memexpose core behind a PCI function.
 *
 * BAR0: registers, BAR1: MSI-X, BAR2: the window (64-bit, prefetchable).
 * MSI-X vector 0 signals link changes, 1 + v doorbell vector v; without
 * MSI-X, INTx A is asserted while (INTR_STATUS & INTR_MASK) != 0.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/module.h"
#include "qemu/units.h"
#include "hw/pci/msix.h"
#include "hw/pci/pci_device.h"
#include "memexpose.h"

#define TYPE_MEMEXPOSE_PCI "memexpose-pci"
OBJECT_DECLARE_SIMPLE_TYPE(MemexposePCIState, MEMEXPOSE_PCI)

/* Provisional: in the 1b36 (QEMU) range, not yet allocated upstream. */
#define PCI_DEVICE_ID_REDHAT_MEMEXPOSE  0x00f0

#define MEMEXPOSE_PCI_MSIX_BAR  1
#define MEMEXPOSE_PCI_WINDOW_BAR 2

struct MemexposePCIState {
    PCIDevice parent_obj;

    MemexposeState core;
    MemoryRegion regs;
};

/* Called with the BQL held. */
static void memexpose_pci_irq(MemexposeState *core, unsigned irq)
{
    MemexposePCIState *d = container_of(core, MemexposePCIState, core);
    PCIDevice *pdev = PCI_DEVICE(d);

    if (msix_enabled(pdev)) {
        /*
         * Doorbells have vectors of their own; vector 0 carries only the
         * control events.  A masked vector sets its pending bit instead.
         */
        if (irq != MX_IRQ_CONTROL ||
            (core->intr_status & core->intr_mask & ~MX_INTR_DOORBELL)) {
            msix_notify(pdev, irq);
        }
        return;
    }
    pci_set_irq(pdev, memexpose_intx_level(core));
}

static void memexpose_pci_realize(PCIDevice *pdev, Error **errp)
{
    ERRP_GUARD();
    MemexposePCIState *d = MEMEXPOSE_PCI(pdev);
    MemexposeState *s = &d->core;
    unsigned i;

    s->dev = DEVICE(d);
    s->irq_notify = memexpose_pci_irq;
    memexpose_realize(s, errp);
    if (*errp) {
        return;
    }

    pdev->config[PCI_INTERRUPT_PIN] = 1;
    memexpose_init_regs(s, &d->regs);
    pci_register_bar(pdev, 0, PCI_BASE_ADDRESS_SPACE_MEMORY, &d->regs);

    if (msix_init_exclusive_bar(pdev, 1 + s->vectors, MEMEXPOSE_PCI_MSIX_BAR,
                                errp)) {
        memexpose_unrealize(s);
        return;
    }
    for (i = 0; i < 1 + s->vectors; i++) {
        msix_vector_use(pdev, i);
    }

    pci_register_bar(pdev, MEMEXPOSE_PCI_WINDOW_BAR,
                     PCI_BASE_ADDRESS_SPACE_MEMORY |
                     PCI_BASE_ADDRESS_MEM_PREFETCH |
                     PCI_BASE_ADDRESS_MEM_TYPE_64,
                     &s->window);
}

static void memexpose_pci_exit(PCIDevice *pdev)
{
    MemexposePCIState *d = MEMEXPOSE_PCI(pdev);

    msix_uninit_exclusive_bar(pdev);
    memexpose_unrealize(&d->core);
}

static void memexpose_pci_reset(DeviceState *dev)
{
    MemexposePCIState *d = MEMEXPOSE_PCI(dev);
    unsigned i;

    memexpose_reset(&d->core);
    msix_reset(PCI_DEVICE(d));
    for (i = 0; i < 1 + d->core.vectors; i++) {
        msix_vector_use(PCI_DEVICE(d), i);
    }
    pci_set_irq(PCI_DEVICE(d), 0);
}

static void memexpose_pci_instance_init(Object *obj)
{
    MemexposePCIState *d = MEMEXPOSE_PCI(obj);

    memexpose_add_properties(obj, &d->core);
}

static void memexpose_pci_class_init(ObjectClass *klass,
                                     MemexposeClassData *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);

    k->realize = memexpose_pci_realize;
    k->exit = memexpose_pci_exit;
    k->vendor_id = PCI_VENDOR_ID_REDHAT;
    k->device_id = PCI_DEVICE_ID_REDHAT_MEMEXPOSE;
    k->class_id = PCI_CLASS_MEMORY_OTHER;
    k->revision = 1;
    device_class_set_legacy_reset(dc, memexpose_pci_reset);
    memexpose_class_set_props(dc, offsetof(MemexposePCIState, core),
                              MEMEXPOSE_DEFAULT_WINDOW);
    dc->desc = "memexpose: window into a peer VM's memory, with doorbells";
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
}

static const TypeInfo memexpose_pci_info = {
    .name = TYPE_MEMEXPOSE_PCI,
    .parent = TYPE_PCI_DEVICE,
    .instance_size = sizeof(MemexposePCIState),
    .instance_init = memexpose_pci_instance_init,
    .class_init = memexpose_pci_class_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_CONVENTIONAL_PCI_DEVICE },
        { },
    },
};

static void memexpose_pci_register_types(void)
{
    type_register_static(&memexpose_pci_info);
}

type_init(memexpose_pci_register_types)
