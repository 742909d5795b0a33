/*
 * memexpose-sysbus: the memexpose device for boards without PCI.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_MISC_MEMEXPOSE_SYSBUS_H
#define HW_MISC_MEMEXPOSE_SYSBUS_H

#define TYPE_MEMEXPOSE_SYSBUS "memexpose-sysbus"

/* MMIO regions: the register block, then the window.  One IRQ line. */
#define MEMEXPOSE_SYSBUS_MMIO_REGS      0
#define MEMEXPOSE_SYSBUS_MMIO_WINDOW    1

#endif
