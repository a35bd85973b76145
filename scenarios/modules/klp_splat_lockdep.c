// SPDX-License-Identifier: GPL-2.0
/*
 * Takes two mutexes in one order and then in the other, one after the other (no deadlock
 * happens): lockdep reports "possible circular locking dependency detected" (PROVE_LOCKING).
 */
#include <linux/module.h>
#include <linux/mutex.h>

static DEFINE_MUTEX(klp_splat_a);
static DEFINE_MUTEX(klp_splat_b);

static int __init klp_splat_lockdep_init(void)
{
	mutex_lock(&klp_splat_a);
	mutex_lock(&klp_splat_b);
	mutex_unlock(&klp_splat_b);
	mutex_unlock(&klp_splat_a);

	mutex_lock(&klp_splat_b);
	mutex_lock(&klp_splat_a);
	mutex_unlock(&klp_splat_a);
	mutex_unlock(&klp_splat_b);
	return 0;
}

static void __exit klp_splat_lockdep_exit(void)
{
}

module_init(klp_splat_lockdep_init);
module_exit(klp_splat_lockdep_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp-harness: an AB-BA lock order for lockdep to report");
