/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The body of the livepatches for klp_chain: new versions of klp_chain_outer() and
 * klp_chain_inner(), replaced together. The including file defines CHAIN_VERSION (the
 * token of this version, 1 or more) and, for a cumulative patch, CHAIN_REPLACE.
 */
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include "klp_chain.h"

static int livepatch_chain_inner(int token)
{
	klp_chain_record(token, CHAIN_VERSION);
	return token;
}

static int livepatch_chain_outer(void)
{
	int token = klp_chain_token(CHAIN_VERSION), ret;

	klp_chain_hold();
	/* Through the target's symbol, as its own outer calls it: livepatch's ftrace
	 * handler picks the version of klp_chain_inner() this task is to run. */
	ret = klp_chain_inner(token);
	klp_chain_no_tail_call();
	return ret;
}

static struct klp_func funcs[] = {
	{ .old_name = "klp_chain_outer", .new_func = livepatch_chain_outer, },
	{ .old_name = "klp_chain_inner", .new_func = livepatch_chain_inner, },
	{ }
};

/* Each transition of this patch counted before it starts (see klp_chain.h). */
static int livepatch_pre_patch(struct klp_object *obj)
{
	klp_chain_transition(true);
	return 0;
}

static void livepatch_pre_unpatch(struct klp_object *obj)
{
	klp_chain_transition(false);
}

static struct klp_object objs[] = {
	{
		.name = "klp_chain",
		.funcs = funcs,
		.callbacks = {
			.pre_patch = livepatch_pre_patch,
			.pre_unpatch = livepatch_pre_unpatch,
		},
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
#ifdef CHAIN_REPLACE
	.replace = true,
#endif
};

static int livepatch_init(void)
{
	return klp_enable_patch(&patch);
}

static void livepatch_exit(void)
{
}

module_init(livepatch_init);
module_exit(livepatch_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
