// SPDX-License-Identifier: GPL-2.0
/*
 * Reads one byte past the end of a heap object: KASAN reports "BUG: KASAN:
 * slab-out-of-bounds".
 */
#include <linux/module.h>
#include <linux/slab.h>

static int __init klp_splat_kasan_init(void)
{
	size_t size = 64;
	char *object = kmalloc(size, GFP_KERNEL);
	char byte;

	if (!object)
		return -ENOMEM;
	OPTIMIZER_HIDE_VAR(size);   /* no compile-time bounds warning: the read is the point */
	byte = READ_ONCE(object[size]);
	OPTIMIZER_HIDE_VAR(byte);
	kfree(object);
	return 0;
}

static void __exit klp_splat_kasan_exit(void)
{
}

module_init(klp_splat_kasan_init);
module_exit(klp_splat_kasan_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp-harness: an out-of-bounds read for KASAN to report");
