// SPDX-License-Identifier: GPL-2.0
/*
 * Allocates objects and forgets them: kmemleak's next scans (once they are older than its
 * minimum age, 5 s) report "N new suspected memory leaks", with this module's function in
 * each one's backtrace. Objects of over two pages, which kmalloc() takes from the page
 * allocator: slab objects allocated so (128 bytes on x86_64, 16 KB in ppc64le's 64 KB
 * pages) were never reported on the debug image, kmemleak counting one reference to each
 * (from where, we did not find). Several, in case a stale word still points at one.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>

#define LEAKED 4
#define SIZE (2 * PAGE_SIZE + 64)

/* Not __init: its name must still resolve in the backtraces kmemleak shows later. */
static noinline int klp_splat_kmemleak_leak(void)
{
	int i;

	for (i = 0; i < LEAKED; i++) {
		char *lost = kzalloc(SIZE, GFP_KERNEL);

		if (!lost)
			return -ENOMEM;
		strscpy(lost, "klp_splat_kmemleak: a deliberately leaked object", SIZE);
		OPTIMIZER_HIDE_VAR(lost);
	}
	return 0;
}

static int __init klp_splat_kmemleak_init(void)
{
	return klp_splat_kmemleak_leak();
}

static void __exit klp_splat_kmemleak_exit(void)
{
}

module_init(klp_splat_kmemleak_init);
module_exit(klp_splat_kmemleak_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp-harness: leaks objects for kmemleak to report");
