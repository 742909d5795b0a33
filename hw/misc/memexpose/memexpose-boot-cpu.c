/*
 * memexpose slave boot, the architecture part: which CPUs can be started
 * at an entry point with argument registers.  Built once per target.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "cpu.h"
#include "system/hw_accel.h"
#include "memexpose.h"

bool memexpose_cpu_can_boot(void)
{
#ifdef TARGET_ARM
    return true;
#else
    return false;
#endif
}

bool memexpose_cpu_entry_valid(CPUState *cs, uint64_t entry)
{
#ifdef TARGET_ARM
    CPUARMState *env = cpu_env(cs);

    /* A32 entries may have bit 0 set for Thumb, which cpu_set_pc honours. */
    return is_a64(env) ? !(entry & 3) : entry <= UINT32_MAX;
#else
    return false;
#endif
}

/*
 * Called with the BQL held and the VM stopped.  The CPU is in its reset
 * state; only the PC and the argument registers change.
 */
void memexpose_cpu_set_entry(CPUState *cs, uint64_t entry,
                             const uint64_t *args, unsigned nargs)
{
#ifdef TARGET_ARM
    CPUARMState *env = cpu_env(cs);
    unsigned i;

    /* With an accelerator the registers live in the kernel: fetch them. */
    cpu_synchronize_state(cs);

    for (i = 0; i < MXP_BOOT_ARGS; i++) {
        uint64_t val = i < nargs ? args[i] : 0;

        if (is_a64(env)) {
            env->xregs[i] = val;
        } else {
            env->regs[i] = val;
        }
    }
    cpu_set_pc(cs, entry);
#else
    g_assert_not_reached();
#endif
}
