/*
 * memexpose-sysbus: the memexpose core as a platform device.
 *
 * MMIO 0: registers, MMIO 1: the window.  One level-triggered interrupt,
 * asserted while (INTR_STATUS & INTR_MASK) != 0.  On the Arm virt board
 * it sits on the platform bus with a "qemu,memexpose" device tree node.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/module.h"
#include "qemu/units.h"
#include "hw/irq.h"
#include "hw/sysbus.h"
#include "hw/misc/memexpose-sysbus.h"
#include "memexpose.h"

OBJECT_DECLARE_SIMPLE_TYPE(MemexposeSysBusState, MEMEXPOSE_SYSBUS)

/* Fits the 32 MiB platform bus of the virt board with the registers. */
#define MEMEXPOSE_SYSBUS_DEFAULT_WINDOW (16 * MiB)

struct MemexposeSysBusState {
    SysBusDevice parent_obj;

    MemexposeState core;
    MemoryRegion regs;
    qemu_irq irq;
};

/* Called with the BQL held. */
static void memexpose_sysbus_irq(MemexposeState *core, unsigned irq)
{
    MemexposeSysBusState *d = container_of(core, MemexposeSysBusState, core);

    qemu_set_irq(d->irq, memexpose_intx_level(core));
}

static void memexpose_sysbus_realize(DeviceState *dev, Error **errp)
{
    ERRP_GUARD();
    MemexposeSysBusState *d = MEMEXPOSE_SYSBUS(dev);
    SysBusDevice *sbd = SYS_BUS_DEVICE(dev);
    MemexposeState *s = &d->core;

    s->dev = dev;
    s->irq_notify = memexpose_sysbus_irq;
    memexpose_realize(s, errp);
    if (*errp) {
        return;
    }
    memexpose_init_regs(s, &d->regs);
    sysbus_init_mmio(sbd, &d->regs);
    sysbus_init_mmio(sbd, &s->window);
    sysbus_init_irq(sbd, &d->irq);
}

static void memexpose_sysbus_unrealize(DeviceState *dev)
{
    memexpose_unrealize(&MEMEXPOSE_SYSBUS(dev)->core);
}

static void memexpose_sysbus_reset(DeviceState *dev)
{
    MemexposeSysBusState *d = MEMEXPOSE_SYSBUS(dev);

    memexpose_reset(&d->core);
    qemu_set_irq(d->irq, 0);
}

static void memexpose_sysbus_instance_init(Object *obj)
{
    memexpose_add_properties(obj, &MEMEXPOSE_SYSBUS(obj)->core);
}

static void memexpose_sysbus_class_init(ObjectClass *klass,
                                        MemexposeClassData *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);

    dc->realize = memexpose_sysbus_realize;
    dc->unrealize = memexpose_sysbus_unrealize;
    device_class_set_legacy_reset(dc, memexpose_sysbus_reset);
    memexpose_class_set_props(dc, offsetof(MemexposeSysBusState, core),
                              MEMEXPOSE_SYSBUS_DEFAULT_WINDOW);
    dc->desc = "memexpose: window into a peer VM's memory, with doorbells"
               " (platform device)";
    /* Placed on the board's platform bus, e.g. -M virt. */
    dc->user_creatable = true;
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
}

static const TypeInfo memexpose_sysbus_info = {
    .name = TYPE_MEMEXPOSE_SYSBUS,
    .parent = TYPE_SYS_BUS_DEVICE,
    .instance_size = sizeof(MemexposeSysBusState),
    .instance_init = memexpose_sysbus_instance_init,
    .class_init = memexpose_sysbus_class_init,
};

static void memexpose_sysbus_register_types(void)
{
    type_register_static(&memexpose_sysbus_info);
}

type_init(memexpose_sysbus_register_types)
