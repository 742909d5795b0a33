/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ivshmem-bench: user interface of the bench-only ivshmem-doorbell driver
 * (bench/guest/ivshmem-bench), used by bench/guest/mxbench.c.
 *
 * /dev/ivshmem-bench (one device):
 *   read(2)   of 8 bytes blocks until an interrupt (any vector) arrived
 *             that this open file has not seen yet; returns the device's
 *             interrupt count (__u64).
 *   write(2)  of 4 bytes writes the value into the Doorbell register:
 *             (peer_id << 16) | vector.
 *   IVSHMEM_BENCH_IOC_POSITION: the IVPosition register (__u32, our id).
 */
#ifndef IVSHMEM_BENCH_H
#define IVSHMEM_BENCH_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define IVSHMEM_BENCH_IOC_POSITION _IOR(0xB7, 0x00, __u32)

#endif
