/*
 * memexpose register block, as the guest sees it.  No QEMU headers:
 * qtests include it too.  docs/specs/memexpose.rst describes each one.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_MISC_MEMEXPOSE_REGS_H
#define HW_MISC_MEMEXPOSE_REGS_H

#define MEMEXPOSE_REG_SIZE          0x1000

#define MX_REG_ID                   0x00
#define MX_REG_VERSION              0x04
#define MX_REG_LINK                 0x08
#define MX_REG_FEATURES             0x0c
#define MX_REG_INTR_STATUS          0x10
#define MX_REG_INTR_MASK            0x14
#define MX_REG_WINDOW_BASE_LO       0x18
#define MX_REG_WINDOW_BASE_HI       0x1c
#define MX_REG_WINDOW_SIZE_LO       0x20
#define MX_REG_WINDOW_SIZE_HI       0x24
#define MX_REG_VECTORS              0x28
#define MX_REG_LINK_EPOCH           0x2c
#define MX_REG_CAPS                 0x30    /* MX_CAP_*: registers there are */
#define MX_REG_DB_TX_VECTOR         0x40
#define MX_REG_DB_TX_LEN            0x44
#define MX_REG_DB_TX_STATUS         0x48
#define MX_REG_DB_TX_CREDITS        0x4c
#define MX_REG_DB_RX_COUNT          0x50
#define MX_REG_DB_RX_HEAD           0x54
#define MX_REG_DB_RX_POP            0x58
#define MX_REG_DB_RX_TAKE           0x5c    /* read: DB_RX_HEAD, and pop it */
#define MX_REG_DB_RX_PENDING_LO     0x60
#define MX_REG_DB_RX_PENDING_HI     0x64
#define MX_REG_BOOT_ENTRY_LO        0x80    /* boot master: BOOT entry */
#define MX_REG_BOOT_ENTRY_HI        0x84
#define MX_REG_BOOT_NARGS           0x88    /* 0..MX_BOOT_MAX_ARGS */
#define MX_REG_BOOT_CMD             0x8c    /* write MX_BOOT_CMD_*: send */
#define MX_REG_BOOT_STATUS          0x90    /* outcome of the last command */
#define MX_REG_BOOT_PEER_STATE      0x94    /* peer's last STATE, 0 if none */
#define MX_REG_BOOT_STATE           0x98    /* this side's MxpBootState */
#define MX_REG_BOOT_ARG_LO(n)       (0xa0 + 8 * (n))
#define MX_REG_BOOT_ARG_HI(n)       (0xa4 + 8 * (n))
#define MX_REG_DB_TX_DATA           0x100
#define MX_REG_DB_RX_DATA           0x200
#define MX_REG_PEER_NAME            0x300   /* 64 bytes, NUL padded */
#define MX_REG_DB_RX_TAKEN_DATA     0x400   /* payload of the last TAKE */
/* A read sends a doorbell on vector n and returns DB_TX_STATUS. */
#define MX_REG_DB_TX_SEND(n)        (0x500 + 4 * (n))

/* MX_REG_CAPS bits */
#define MX_CAP_DB_RX_TAKE           (1U << 0)   /* DB_RX_TAKE, TAKEN_DATA */
#define MX_CAP_DB_TX_SEND           (1U << 1)   /* DB_TX_SEND(n) */
#define MX_CAP_ALL                  (MX_CAP_DB_RX_TAKE | MX_CAP_DB_TX_SEND)

/* MX_REG_LINK bits */
#define MX_LINK_UP                  (1U << 0)
#define MX_LINK_PEER_BOOT_TARGET    (1U << 1)

/* MX_REG_INTR_STATUS / MASK bits */
#define MX_INTR_LINK                (1U << 0)   /* link went up or down */
#define MX_INTR_DOORBELL            (1U << 1)   /* a doorbell was queued */
#define MX_INTR_TX_READY            (1U << 2)   /* credits back after busy */
#define MX_INTR_BOOT                (1U << 3)   /* peer's boot state changed */
#define MX_INTR_ALL                 (MX_INTR_LINK | MX_INTR_DOORBELL | \
                                     MX_INTR_TX_READY | MX_INTR_BOOT)

/* MX_REG_DB_TX_STATUS values */
#define MX_TX_OK                    0
#define MX_TX_BUSY                  1
#define MX_TX_LINK_DOWN             2
#define MX_TX_BAD_VECTOR            3
#define MX_TX_BAD_LENGTH            4

#define MX_RX_EMPTY                 0xffffffffU

#define MX_BOOT_MAX_ARGS            4

/* MX_REG_BOOT_CMD values */
#define MX_BOOT_CMD_BOOT            1
#define MX_BOOT_CMD_RESET           2
#define MX_BOOT_CMD_HALT            3

/*
 * MX_REG_BOOT_STATUS values: 0, the peer's ERROR code (1..255, MxpErr),
 * or one of these for failures on this side.
 */
#define MX_BOOT_OK                  0
#define MX_BOOT_LINK_DOWN           0x100   /* no link, or lost meanwhile */
#define MX_BOOT_TIMEOUT             0x101   /* no reply in time */
#define MX_BOOT_BAD_CMD             0x102   /* unknown command or nargs */

/* MX_REG_BOOT_STATE and MX_REG_BOOT_PEER_STATE values (MxpBootState) */
#define MX_BOOT_STATE_NONE          0
#define MX_BOOT_STATE_WAITING       1
#define MX_BOOT_STATE_RUNNING       2
#define MX_BOOT_STATE_HALTED        3

#endif
