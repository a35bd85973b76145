// SPDX-License-Identifier: GPL-2.0
/*
 * Keeps the last CPU with interrupts off for `seconds` (a kernel thread bound to it, which
 * init waits for): the hard lockup detector (the buddy CPU's, or ppc64's own) reports
 * "hard LOCKUP" once that is over watchdog_thresh. The last CPU, not insmod's: an x86
 * guest without the APIC timer (noapictimer) gets every CPU's tick from the CPU that takes
 * the PIT's interrupt (the first), and with that one stopped no CPU could see anything.
 */
#include <linux/completion.h>
#include <linux/cpumask.h>
#include <linux/err.h>
#include <linux/irqflags.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include "klp_splat_spin.h"

static unsigned int seconds = 5;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "how long interrupts stay off");

static DECLARE_COMPLETION(spun);

static int klp_splat_hard_lockup_fn(void *unused)
{
	unsigned long flags;

	local_irq_save(flags);
	klp_splat_spin(seconds);
	local_irq_restore(flags);
	kthread_complete_and_exit(&spun, 0);	/* never back into module code after */
}

static int __init klp_splat_hard_lockup_init(void)
{
	struct task_struct *t;

	t = kthread_create(klp_splat_hard_lockup_fn, NULL, "klp_splat_hard");
	if (IS_ERR(t))
		return PTR_ERR(t);
	kthread_bind(t, nr_cpu_ids - 1);
	wake_up_process(t);
	wait_for_completion(&spun);
	return 0;
}

static void __exit klp_splat_hard_lockup_exit(void)
{
}

module_init(klp_splat_hard_lockup_init);
module_exit(klp_splat_hard_lockup_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp-harness: a CPU kept with interrupts off, for the hard lockup detector");
