// SPDX-License-Identifier: GPL-2.0
/*
 * Keeps its CPU with interrupts off for `seconds`: the hard lockup detector (the buddy
 * CPU's, or ppc64's own) reports "hard LOCKUP" once that is over watchdog_thresh.
 */
#include <linux/irqflags.h>
#include <linux/module.h>
#include "klp_splat_spin.h"

static unsigned int seconds = 5;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "how long interrupts stay off");

static int __init klp_splat_hard_lockup_init(void)
{
	unsigned long flags;

	local_irq_save(flags);
	klp_splat_spin(seconds);
	local_irq_restore(flags);
	return 0;
}

static void __exit klp_splat_hard_lockup_exit(void)
{
}

module_init(klp_splat_hard_lockup_init);
module_exit(klp_splat_hard_lockup_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp-harness: a CPU kept with interrupts off, for the hard lockup detector");
