// SPDX-License-Identifier: GPL-2.0
/*
 * Takes a mutex (a function that may sleep) while holding a spinlock: DEBUG_ATOMIC_SLEEP
 * reports "BUG: sleeping function called from invalid context". The mutex is free, so
 * nothing sleeps in fact.
 */
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>

static DEFINE_SPINLOCK(klp_splat_lock);
static DEFINE_MUTEX(klp_splat_mutex);

static int __init klp_splat_atomic_sleep_init(void)
{
	spin_lock(&klp_splat_lock);
	mutex_lock(&klp_splat_mutex);
	mutex_unlock(&klp_splat_mutex);
	spin_unlock(&klp_splat_lock);
	return 0;
}

static void __exit klp_splat_atomic_sleep_exit(void)
{
}

module_init(klp_splat_atomic_sleep_init);
module_exit(klp_splat_atomic_sleep_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp-harness: a sleeping function called under a spinlock");
