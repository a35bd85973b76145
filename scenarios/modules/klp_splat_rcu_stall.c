// SPDX-License-Identifier: GPL-2.0
/*
 * Queues an RCU callback, so that a grace period starts (an idle kernel may have none in
 * progress), and stays in an RCU read-side critical section, with preemption off, for
 * `seconds`: the grace period cannot end, and RCU reports a CPU stall once that is over
 * rcupdate.rcu_cpu_stall_timeout (as it was when the grace period began).
 */
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/rcupdate.h>
#include "klp_splat_spin.h"

static unsigned int seconds = 8;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "how long the grace period is held up");

static struct rcu_head klp_splat_head;

static void klp_splat_rcu_done(struct rcu_head *head)
{
}

static int __init klp_splat_rcu_stall_init(void)
{
	/* A grace period already under way began with the old stall timeout: let it end. */
	synchronize_rcu();
	call_rcu(&klp_splat_head, klp_splat_rcu_done);
	preempt_disable();
	rcu_read_lock();
	klp_splat_spin(seconds);
	rcu_read_unlock();
	preempt_enable();
	return 0;
}

static void __exit klp_splat_rcu_stall_exit(void)
{
	rcu_barrier();	/* the callback has run before the module's code goes */
}

module_init(klp_splat_rcu_stall_init);
module_exit(klp_splat_rcu_stall_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp-harness: an RCU reader that holds a grace period up");
