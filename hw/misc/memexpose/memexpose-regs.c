/*
 * memexpose register block: what the guest reads and writes (link state,
 * window base, doorbells, boot master commands), the same for every
 * front end.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bitops.h"
#include "qemu/log.h"
#include "memexpose.h"

bool memexpose_intx_level(MemexposeState *s)
{
    return s->intr_status & s->intr_mask;
}

static void mx_data_read(const uint8_t *area, hwaddr off, unsigned size,
                         uint64_t *val)
{
    *val = ldn_le_p(area + off, size);
}

uint64_t memexpose_reg_read(MemexposeState *s, hwaddr addr, unsigned size)
{
    uint64_t val = 0;

    if (addr >= MX_REG_DB_TX_DATA &&
        addr + size <= MX_REG_DB_TX_DATA + MXP_MAX_DOORBELL_DATA) {
        mx_data_read(s->tx_data, addr - MX_REG_DB_TX_DATA, size, &val);
        return val;
    }
    if (addr >= MX_REG_DB_RX_TAKEN_DATA &&
        addr + size <= MX_REG_DB_RX_TAKEN_DATA + MXP_MAX_DOORBELL_DATA) {
        /* Only register accesses touch it, all under the BQL. */
        mx_data_read(s->rx_taken.data, addr - MX_REG_DB_RX_TAKEN_DATA, size,
                     &val);
        return val;
    }
    /* The reads that act: they take @lock themselves. */
    if (size == 4 && addr == MX_REG_DB_RX_TAKE) {
        return memexpose_doorbell_take(s);
    }
    if (size == 4 && addr >= MX_REG_DB_TX_SEND(0) &&
        addr < MX_REG_DB_TX_SEND(MXP_MAX_VECTORS)) {
        s->tx_vector = (addr - MX_REG_DB_TX_SEND(0)) / 4;
        memexpose_doorbell_send(s);
        return s->tx_status;
    }
    qemu_mutex_lock(&s->lock);
    if (addr >= MX_REG_DB_RX_DATA &&
        addr + size <= MX_REG_DB_RX_DATA + MXP_MAX_DOORBELL_DATA) {
        if (s->rx_count) {
            mx_data_read(s->rxq[s->rx_head].data, addr - MX_REG_DB_RX_DATA,
                         size, &val);
        }
        goto out;
    }
    if (addr >= MX_REG_PEER_NAME &&
        addr + size <= MX_REG_PEER_NAME + MXP_NAME_SIZE) {
        if (s->up) {
            mx_data_read((const uint8_t *)s->peer.name,
                         addr - MX_REG_PEER_NAME, size, &val);
        }
        goto out;
    }
    if (size != 4) {
        qemu_log_mask(LOG_GUEST_ERROR, "memexpose: %u-byte register read at"
                      " 0x%" HWADDR_PRIx "\n", size, addr);
        goto out;
    }
    switch (addr) {
    case MX_REG_ID:
        val = MXP_MAGIC;
        break;
    case MX_REG_VERSION:
        val = (MXP_VERSION_MAJOR << 16) | MXP_VERSION_MINOR;
        break;
    case MX_REG_LINK:
        val = (s->up ? MX_LINK_UP : 0) |
              (s->up && s->peer.role == MXP_ROLE_BOOT_TARGET ?
               MX_LINK_PEER_BOOT_TARGET : 0);
        break;
    case MX_REG_FEATURES:
        val = s->up ? (uint32_t)s->features : 0;
        break;
    case MX_REG_INTR_STATUS:
        val = s->intr_status;
        break;
    case MX_REG_INTR_MASK:
        val = s->intr_mask;
        break;
    case MX_REG_WINDOW_BASE_LO:
        val = (uint32_t)s->window_base;
        break;
    case MX_REG_WINDOW_BASE_HI:
        val = s->window_base >> 32;
        break;
    case MX_REG_WINDOW_SIZE_LO:
        val = (uint32_t)s->window_size;
        break;
    case MX_REG_WINDOW_SIZE_HI:
        val = s->window_size >> 32;
        break;
    case MX_REG_VECTORS:
        val = s->vectors | ((s->up ? s->peer.vectors : 0) << 8) |
              (s->queue_depth << 16);
        break;
    case MX_REG_LINK_EPOCH:
        val = s->epoch;
        break;
    case MX_REG_CAPS:
        val = MX_CAP_ALL;
        break;
    case MX_REG_DB_TX_VECTOR:
        val = s->tx_vector;
        break;
    case MX_REG_DB_TX_LEN:
        val = s->tx_len;
        break;
    case MX_REG_DB_TX_STATUS:
        val = s->tx_status;
        break;
    case MX_REG_DB_TX_CREDITS:
        val = memexpose_doorbell_credits(s);
        break;
    case MX_REG_DB_RX_COUNT:
        val = s->rx_count;
        break;
    case MX_REG_DB_RX_HEAD:
        val = s->rx_count ? s->rxq[s->rx_head].vector |
                            (s->rxq[s->rx_head].size << 16) : MX_RX_EMPTY;
        break;
    case MX_REG_DB_RX_PENDING_LO:
        val = (uint32_t)memexpose_doorbell_pending(s);
        break;
    case MX_REG_DB_RX_PENDING_HI:
        val = memexpose_doorbell_pending(s) >> 32;
        break;
    case MX_REG_BOOT_ENTRY_LO:
        val = (uint32_t)s->boot_entry;
        break;
    case MX_REG_BOOT_ENTRY_HI:
        val = s->boot_entry >> 32;
        break;
    case MX_REG_BOOT_NARGS:
        val = s->boot_nargs;
        break;
    case MX_REG_BOOT_STATUS:
        val = s->boot_status;
        break;
    case MX_REG_BOOT_PEER_STATE:
        val = s->up ? s->peer_boot_state : MXP_BOOT_NONE;
        break;
    case MX_REG_BOOT_STATE:
        val = s->boot_state;
        break;
    case MX_REG_BOOT_ARG_LO(0) ... MX_REG_BOOT_ARG_HI(MX_BOOT_MAX_ARGS - 1):
        val = extract64(s->boot_args[(addr - MX_REG_BOOT_ARG_LO(0)) / 8],
                        addr & 4 ? 32 : 0, 32);
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR, "memexpose: read of unknown register"
                      " 0x%" HWADDR_PRIx "\n", addr);
        break;
    }
out:
    qemu_mutex_unlock(&s->lock);
    return val;
}

void memexpose_set_window_base(MemexposeState *s, uint64_t base)
{
    if (base == s->window_base) {
        return;
    }
    s->window_base = base;
    memexpose_unmap_all(s);
    memexpose_remap(s);
}

void memexpose_reg_write(MemexposeState *s, hwaddr addr, uint64_t val,
                         unsigned size)
{
    if (addr >= MX_REG_DB_TX_DATA &&
        addr + size <= MX_REG_DB_TX_DATA + MXP_MAX_DOORBELL_DATA) {
        stn_le_p(s->tx_data + (addr - MX_REG_DB_TX_DATA), size, val);
        return;
    }
    if (size != 4) {
        qemu_log_mask(LOG_GUEST_ERROR, "memexpose: %u-byte register write at"
                      " 0x%" HWADDR_PRIx "\n", size, addr);
        return;
    }
    switch (addr) {
    case MX_REG_INTR_STATUS:
        s->intr_status &= ~val;
        s->irq_notify(s, MX_IRQ_CONTROL);
        break;
    case MX_REG_INTR_MASK:
        s->intr_mask = val & MX_INTR_ALL;
        s->irq_notify(s, MX_IRQ_CONTROL);
        break;
    case MX_REG_WINDOW_BASE_LO:
        memexpose_set_window_base(s, deposit64(s->window_base, 0, 32, val));
        break;
    case MX_REG_WINDOW_BASE_HI:
        memexpose_set_window_base(s, deposit64(s->window_base, 32, 32, val));
        break;
    case MX_REG_DB_TX_LEN:
        s->tx_len = val;
        break;
    case MX_REG_DB_TX_VECTOR:
        s->tx_vector = val;
        memexpose_doorbell_send(s);
        break;
    case MX_REG_DB_RX_POP:
        memexpose_doorbell_pop(s);
        break;
    case MX_REG_BOOT_ENTRY_LO:
        s->boot_entry = deposit64(s->boot_entry, 0, 32, val);
        break;
    case MX_REG_BOOT_ENTRY_HI:
        s->boot_entry = deposit64(s->boot_entry, 32, 32, val);
        break;
    case MX_REG_BOOT_NARGS:
        s->boot_nargs = val;
        break;
    case MX_REG_BOOT_CMD:
        memexpose_boot_command(s, val);
        break;
    case MX_REG_BOOT_ARG_LO(0) ... MX_REG_BOOT_ARG_HI(MX_BOOT_MAX_ARGS - 1): {
        uint64_t *arg = &s->boot_args[(addr - MX_REG_BOOT_ARG_LO(0)) / 8];

        *arg = deposit64(*arg, addr & 4 ? 32 : 0, 32, val);
        break;
    }
    default:
        qemu_log_mask(LOG_GUEST_ERROR, "memexpose: write to read-only or"
                      " unknown register 0x%" HWADDR_PRIx "\n", addr);
        break;
    }
}

static uint64_t mx_reg_read_op(void *opaque, hwaddr addr, unsigned size)
{
    return memexpose_reg_read(opaque, addr, size);
}

static void mx_reg_write_op(void *opaque, hwaddr addr, uint64_t val,
                            unsigned size)
{
    memexpose_reg_write(opaque, addr, val, size);
}

static const MemoryRegionOps memexpose_reg_ops = {
    .read = mx_reg_read_op,
    .write = mx_reg_write_op,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 8 },
    .impl = { .min_access_size = 1, .max_access_size = 8 },
};

/* The register block, for the front end to map (BAR0, MMIO 0). */
void memexpose_init_regs(MemexposeState *s, MemoryRegion *mr)
{
    memory_region_init_io(mr, OBJECT(s->dev), &memexpose_reg_ops, s,
                          "memexpose-regs", MEMEXPOSE_REG_SIZE);
}
