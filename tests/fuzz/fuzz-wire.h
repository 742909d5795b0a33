/*
 * The libFuzzer entry point of fuzz-wire.c, shared with replay.c.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MEMEXPOSE_FUZZ_WIRE_H
#define MEMEXPOSE_FUZZ_WIRE_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
