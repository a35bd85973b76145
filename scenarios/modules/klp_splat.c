// SPDX-License-Identifier: GPL-2.0
/*
 * A target module whose init emits a kernel WARNING on purpose: the harness's splat
 * watch must fail a scenario that loads it, unless the scenario declares expect-splat.
 */
#include <linux/module.h>
#include <linux/kernel.h>

static int __init klp_splat_init(void)
{
	WARN(1, "klp_splat: a deliberate warning for the harness's splat watch\n");
	return 0;
}

static void __exit klp_splat_exit(void)
{
}

module_init(klp_splat_init);
module_exit(klp_splat_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp-harness: emits one WARNING when loaded");
