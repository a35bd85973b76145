/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the klp_splat_* modules that keep a CPU busy: spin for a number of seconds
 * by the scheduler clock, which runs with interrupts and preemption off too.
 */
#ifndef KLP_SPLAT_SPIN_H
#define KLP_SPLAT_SPIN_H

#include <linux/processor.h>
#include <linux/sched/clock.h>
#include <linux/time64.h>

static void klp_splat_spin(unsigned int seconds)
{
	u64 end = local_clock() + (u64)seconds * NSEC_PER_SEC;

	while (local_clock() < end)
		cpu_relax();
}

#endif
