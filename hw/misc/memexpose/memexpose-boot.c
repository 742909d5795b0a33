/*
 * memexpose slave boot: a boot target waits with its VM stopped until the
 * boot master sends BOOT; the master side drives BOOT, RESET and HALT
 * through its boot registers.  The target performs them in the main loop.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "hw/core/cpu.h"
#include "hw/qdev-core.h"
#include "qemu/main-loop.h"
#include "system/runstate.h"
#include "system/system.h"
#include "memexpose.h"

static void mx_set_boot_state(MemexposeState *s, uint32_t state)
{
    qemu_mutex_lock(&s->boot_lock);
    s->boot_state = state;
    qemu_mutex_unlock(&s->boot_lock);
}

/*
 * Boot target: tell the master our state.  Any thread.  The state is
 * read under @boot_lock, held while sending, so the last STATE on the
 * wire always carries the current state.
 */
void memexpose_send_boot_state(MemexposeState *s)
{
    MxpMsg msg = { .hdr = { .type = MXP_STATE } };

    if (!s->boot_target || !qatomic_read(&s->up) ||
        !(s->features & MXP_FEAT_BOOT)) {
        return;
    }
    qemu_mutex_lock(&s->boot_lock);
    msg.u.state = s->boot_state;
    memexpose_send(s, &msg, -1);
    qemu_mutex_unlock(&s->boot_lock);
}

/* Is @entry in this machine's own RAM (not ROM, not a peer's memory)? */
static bool mx_entry_in_ram(uint64_t entry)
{
    MemoryRegionSection sec = memory_region_find(get_system_memory(),
                                                 entry, 4);
    bool ok;

    if (!sec.mr) {
        return false;
    }
    ok = int128_ge(sec.size, int128_make64(4)) &&
         memory_region_is_ram(sec.mr) && !memory_region_is_rom(sec.mr) &&
         !object_dynamic_cast(memory_region_owner(sec.mr),
                              TYPE_MEMEXPOSE_MAPPING);
    memory_region_unref(sec.mr);
    return ok;
}

static bool mx_resettable(void)
{
    static const RunState ok[] = {
        RUN_STATE_RUNNING, RUN_STATE_PAUSED, RUN_STATE_PRELAUNCH,
        RUN_STATE_SHUTDOWN, RUN_STATE_GUEST_PANICKED,
        RUN_STATE_INTERNAL_ERROR, RUN_STATE_IO_ERROR, RUN_STATE_WATCHDOG,
    };
    unsigned i;

    if (qemu_system_dump_in_progress()) {
        return false;
    }
    for (i = 0; i < ARRAY_SIZE(ok); i++) {
        if (runstate_check(ok[i])) {
            return true;
        }
    }
    return false;
}

/* Called with the BQL held. */
static MxpErr mx_boot_check(MemexposeState *s, const MxpMsg *req)
{
    if (!(s->features & MXP_FEAT_BOOT)) {
        return MXP_E_UNSUPPORTED;
    }
    if (!s->boot_target) {
        return MXP_E_NOT_BOOT_TARGET;
    }
    switch (req->hdr.type) {
    case MXP_BOOT:
        /* vm_start() is only valid from these; WAITING implies them. */
        if (s->boot_state != MXP_BOOT_WAITING ||
            !(runstate_check(RUN_STATE_PRELAUNCH) ||
              runstate_check(RUN_STATE_PAUSED)) ||
            qemu_system_dump_in_progress()) {
            return MXP_E_BAD_STATE;
        }
        if (!first_cpu || !mx_entry_in_ram(req->u.boot.entry) ||
            !memexpose_cpu_entry_valid(first_cpu, req->u.boot.entry)) {
            return MXP_E_BAD_ENTRY;
        }
        return MXP_E_NONE;
    case MXP_HALT:
        return s->boot_state == MXP_BOOT_RUNNING && runstate_is_running() ?
               MXP_E_NONE : MXP_E_BAD_STATE;
    default:
        /* RESET: states a reset may leave for prelaunch; not mid-dump. */
        return mx_resettable() ? MXP_E_NONE : MXP_E_BAD_STATE;
    }
}

/*
 * Called with the BQL held.  The new state is recorded before the VM
 * starts or stops so that mx_vm_state_change() sees nothing to report:
 * the STATE goes out after the ACK.
 */
static void mx_boot_apply(MemexposeState *s, const MxpMsg *req)
{
    switch (req->hdr.type) {
    case MXP_BOOT:
        memexpose_cpu_set_entry(first_cpu, req->u.boot.entry,
                                req->u.boot.args, req->u.boot.nargs);
        mx_set_boot_state(s, MXP_BOOT_RUNNING);
        vm_start();
        break;
    case MXP_HALT:
        mx_set_boot_state(s, MXP_BOOT_HALTED);
        vm_stop(RUN_STATE_PAUSED);
        break;
    case MXP_RESET:
        mx_set_boot_state(s, MXP_BOOT_WAITING);
        if (runstate_is_running()) {
            vm_stop(RUN_STATE_PAUSED);
        }
        qemu_system_reset(SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET);
        /* As the main loop does after a reset: a shut down VM may start. */
        runstate_set(RUN_STATE_PRELAUNCH);
        break;
    }
}

/*
 * Main loop: the queued BOOT, RESET and HALT requests.  Run states are
 * the main loop's business: starting, stopping and resetting the VM
 * anywhere else races with the monitor and with guest resets.
 */
static void mx_boot_bh(void *opaque)
{
    MemexposeState *s = opaque;
    MemexposeBootRequest *r;

    for (;;) {
        MxpErr err;

        qemu_mutex_lock(&s->lock);
        r = QSIMPLEQ_FIRST(&s->boot_requests);
        if (r) {
            QSIMPLEQ_REMOVE_HEAD(&s->boot_requests, next);
            s->nr_boot_requests--;
        }
        qemu_mutex_unlock(&s->lock);
        if (!r) {
            return;
        }
        /* Requests of a link that has gone since, or of a dying device. */
        if (r->epoch != qatomic_read(&s->epoch) || s->stopping) {
            g_free(r);
            continue;
        }
        err = mx_boot_check(s, &r->msg);
        if (err != MXP_E_NONE) {
            memexpose_reply_error(s, &r->msg, err,
                                  r->msg.hdr.type == MXP_BOOT ?
                                  r->msg.u.boot.entry : 0);
        } else {
            mx_boot_apply(s, &r->msg);
            memexpose_reply_ack(s, &r->msg);
            memexpose_send_boot_state(s);
        }
        g_free(r);
    }
}

/* Worker: a BOOT, RESET or HALT request from the peer, for the main loop. */
void memexpose_serve_boot(MemexposeState *s, const MxpMsg *req)
{
    MemexposeBootRequest *r;

    qemu_mutex_lock(&s->lock);
    if (s->nr_boot_requests >= MEMEXPOSE_MAX_BOOT_REQUESTS) {
        qemu_mutex_unlock(&s->lock);
        memexpose_reply_error(s, req, MXP_E_BUSY, 0);
        return;
    }
    r = g_new(MemexposeBootRequest, 1);
    r->msg = *req;
    r->epoch = s->epoch;
    QSIMPLEQ_INSERT_TAIL(&s->boot_requests, r, next);
    s->nr_boot_requests++;
    qemu_mutex_unlock(&s->lock);
    qemu_bh_schedule(s->boot_bh);
}

/* Stops and starts that were not ours: the monitor, the guest. */
static void mx_vm_state_change(void *opaque, bool running, RunState state)
{
    MemexposeState *s = opaque;
    uint32_t old = s->boot_state;
    uint32_t new = old;

    if (running && old != MXP_BOOT_RUNNING) {
        new = MXP_BOOT_RUNNING;
    } else if (!running && old == MXP_BOOT_RUNNING) {
        new = MXP_BOOT_HALTED;
    }
    if (new != old) {
        mx_set_boot_state(s, new);
        memexpose_send_boot_state(s);
    }
}

bool memexpose_boot_realize(MemexposeState *s, Error **errp)
{
    if (s->boot_target && !memexpose_cpu_can_boot()) {
        error_setg(errp, "memexpose: boot-target=on is supported only on"
                   " Arm machines");
        return false;
    }
    if (s->boot_target && phase_check(PHASE_MACHINE_READY)) {
        error_setg(errp, "memexpose: a boot target cannot be hot-plugged:"
                   " its CPUs have already started");
        return false;
    }
    qemu_mutex_init(&s->boot_lock);
    QSIMPLEQ_INIT(&s->boot_requests);
    s->boot_bh = qemu_bh_new(mx_boot_bh, s);
    s->boot_status = MX_BOOT_OK;
    s->boot_state = MXP_BOOT_NONE;
    if (s->boot_target) {
        /* Like -S: the CPUs wait until BOOT. */
        autostart = 0;
        s->boot_state = MXP_BOOT_WAITING;
        s->vm_state = qemu_add_vm_change_state_handler(mx_vm_state_change,
                                                       s);
    }
    return true;
}

void memexpose_boot_unrealize(MemexposeState *s)
{
    MemexposeBootRequest *r;

    g_clear_pointer(&s->boot_bh, qemu_bh_delete);
    while ((r = QSIMPLEQ_FIRST(&s->boot_requests))) {
        QSIMPLEQ_REMOVE_HEAD(&s->boot_requests, next);
        g_free(r);
    }
    if (s->vm_state) {
        qemu_del_vm_change_state_handler(s->vm_state);
        s->vm_state = NULL;
    }
    qemu_mutex_destroy(&s->boot_lock);
}

/*
 * Boot master: a write to MX_REG_BOOT_CMD.  Called with the BQL held,
 * which memexpose_call_patient() drops while the peer works: a RESET may
 * have to wait for the target's vCPUs to stop.
 */
void memexpose_boot_command(MemexposeState *s, uint32_t cmd)
{
    MxpMsg req = { 0 };
    g_autofree MemexposeCall *call = g_new0(MemexposeCall, 1);
    int ret;

    switch (cmd) {
    case MX_BOOT_CMD_BOOT:
        if (s->boot_nargs > MXP_BOOT_ARGS) {
            s->boot_status = MX_BOOT_BAD_CMD;
            return;
        }
        req.hdr.type = MXP_BOOT;
        req.u.boot.entry = s->boot_entry;
        req.u.boot.nargs = s->boot_nargs;
        memcpy(req.u.boot.args, s->boot_args,
               s->boot_nargs * sizeof(s->boot_args[0]));
        break;
    case MX_BOOT_CMD_RESET:
        req.hdr.type = MXP_RESET;
        break;
    case MX_BOOT_CMD_HALT:
        req.hdr.type = MXP_HALT;
        break;
    default:
        s->boot_status = MX_BOOT_BAD_CMD;
        return;
    }
    if (qatomic_read(&s->up) && !(s->features & MXP_FEAT_BOOT)) {
        s->boot_status = MXP_E_UNSUPPORTED;
        return;
    }

    ret = memexpose_call_patient(s, &req, call);
    switch (ret) {
    case MX_CALL_LINK_DOWN:
        s->boot_status = MX_BOOT_LINK_DOWN;
        break;
    case MX_CALL_TIMEOUT:
        s->boot_status = MX_BOOT_TIMEOUT;
        break;
    default:
        s->boot_status = ret;
        break;
    }
}
