/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the klp_splat_* modules that keep a CPU busy: spin for a number of seconds
 * by the monotonic clock's NMI-safe reader, which advances with this CPU's interrupts off
 * (local_clock() does not: it is held within a tick of this CPU's last one).
 */
#ifndef KLP_SPLAT_SPIN_H
#define KLP_SPLAT_SPIN_H

#include <linux/processor.h>
#include <linux/timekeeping.h>
#include <linux/time64.h>

static void klp_splat_spin(unsigned int seconds)
{
	u64 end = ktime_get_mono_fast_ns() + (u64)seconds * NSEC_PER_SEC;

	while (ktime_get_mono_fast_ns() < end)
		cpu_relax();
}

#endif
