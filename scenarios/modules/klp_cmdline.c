// SPDX-License-Identifier: GPL-2.0
/*
 * klp-harness's own smoke livepatch: replaces cmdline_proc_show() so that
 * /proc/cmdline reads a line that names this module.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>

static int livepatch_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s: patched by klp-harness\n", THIS_MODULE->name);
	return 0;
}

static struct klp_func funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = livepatch_cmdline_proc_show,
	}, { }
};

static struct klp_object objs[] = {
	{
		/* name being NULL means vmlinux */
		.funcs = funcs,
	}, { }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int klp_cmdline_init(void)
{
	return klp_enable_patch(&patch);
}

static void klp_cmdline_exit(void)
{
}

module_init(klp_cmdline_init);
module_exit(klp_cmdline_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("klp-harness smoke livepatch of /proc/cmdline");
