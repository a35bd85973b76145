// SPDX-License-Identifier: GPL-2.0
/*
 * Allocates an object and forgets it: kmemleak's next scans (once the object is older
 * than its minimum age, 5 s) report "N new suspected memory leaks".
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>

static int __init klp_splat_kmemleak_init(void)
{
	char *lost = kmalloc(128, GFP_KERNEL);

	if (!lost)
		return -ENOMEM;
	strscpy(lost, "klp_splat_kmemleak: a deliberately leaked object", 128);
	OPTIMIZER_HIDE_VAR(lost);
	return 0;
}

static void __exit klp_splat_kmemleak_exit(void)
{
}

module_init(klp_splat_kmemleak_init);
module_exit(klp_splat_kmemleak_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp-harness: leaks one object for kmemleak to report");
