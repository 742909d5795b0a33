/*
 * memexpose: query-memexpose for targets built without the device.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-memexpose.h"

MemexposeInfoList *qmp_query_memexpose(Error **errp)
{
    error_setg(errp, "memexpose is not available in this QEMU binary");
    return NULL;
}
