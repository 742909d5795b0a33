/*
 * memexpose: the QEMU interfaces that differ between the releases
 * memexpose supports (10.0.x and 10.2.x), decided here from QEMU's own
 * version macros so that no other file needs to know.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_MISC_MEMEXPOSE_COMPAT_H
#define HW_MISC_MEMEXPOSE_COMPAT_H

#include "chardev/char-fe.h"

#define MEMEXPOSE_QEMU_AT_LEAST(major, minor)                        \
    (QEMU_VERSION_MAJOR > (major) ||                                \
     (QEMU_VERSION_MAJOR == (major) && QEMU_VERSION_MINOR >= (minor)))

/* QEMU 10.1 moved the system memory API from exec/ to system/. */
#if MEMEXPOSE_QEMU_AT_LEAST(10, 1)
#include "system/memory.h"
#include "system/address-spaces.h"
#include "system/ramblock.h"
#else
#include "exec/memory.h"
#include "exec/address-spaces.h"
#include "exec/ramblock.h"
#endif

/* QEMU 10.1 passes class_init its class_data as const. */
#if MEMEXPOSE_QEMU_AT_LEAST(10, 1)
typedef const void MemexposeClassData;
#else
typedef void MemexposeClassData;
#endif

/* QEMU 10.2 renamed a device's end of a chardev to CharFrontend. */
#if !MEMEXPOSE_QEMU_AT_LEAST(10, 2)
typedef CharBackend CharFrontend;
#endif

#endif
