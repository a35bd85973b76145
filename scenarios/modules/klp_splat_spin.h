/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the klp_splat_* modules that keep a CPU busy: spin for a number of seconds by
 * the monotonic clock's NMI-safe reader, which other CPUs' ticks keep going while this one
 * has interrupts off (local_clock() does not advance past this CPU's last tick). Delay
 * loops bound the spin, so that it ends even if no CPU keeps time; they alone would not
 * do (under emulation the TSC is not calibrated, and mdelay(1) took 0.4 ms).
 */
#ifndef KLP_SPLAT_SPIN_H
#define KLP_SPLAT_SPIN_H

#include <linux/delay.h>
#include <linux/timekeeping.h>
#include <linux/time64.h>

static void klp_splat_spin(unsigned int seconds)
{
	u64 end = ktime_get_mono_fast_ns() + (u64)seconds * NSEC_PER_SEC;
	unsigned long ms;

	for (ms = 0; ms < seconds * 4000UL && ktime_get_mono_fast_ns() < end; ms++)
		mdelay(1);
}

#endif
