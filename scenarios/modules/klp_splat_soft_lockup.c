// SPDX-License-Identifier: GPL-2.0
/*
 * Keeps its CPU in the kernel with preemption off for `seconds` (interrupts on): the soft
 * lockup detector reports "BUG: soft lockup" once that is over twice watchdog_thresh.
 */
#include <linux/module.h>
#include <linux/preempt.h>
#include "klp_splat_spin.h"

static unsigned int seconds = 5;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "how long the CPU is kept");

static int __init klp_splat_soft_lockup_init(void)
{
	preempt_disable();
	klp_splat_spin(seconds);
	preempt_enable();
	return 0;
}

static void __exit klp_splat_soft_lockup_exit(void)
{
}

module_init(klp_splat_soft_lockup_init);
module_exit(klp_splat_soft_lockup_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp-harness: a CPU kept with preemption off, for the soft lockup detector");
