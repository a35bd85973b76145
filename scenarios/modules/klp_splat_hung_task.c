// SPDX-License-Identifier: GPL-2.0
/*
 * Sleeps uninterruptibly in its init (so in insmod) for `seconds`: the hung task detector
 * reports "INFO: task insmod:PID blocked for more than N seconds" once that is over
 * kernel.hung_task_timeout_secs.
 */
#include <linux/module.h>
#include <linux/sched.h>

static unsigned int seconds = 6;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "how long insmod sleeps");

static int __init klp_splat_hung_task_init(void)
{
	schedule_timeout_uninterruptible(seconds * HZ);
	return 0;
}

static void __exit klp_splat_hung_task_exit(void)
{
}

module_init(klp_splat_hung_task_init);
module_exit(klp_splat_hung_task_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp-harness: an uninterruptible sleep for the hung task detector");
