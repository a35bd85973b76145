/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The body of the klp_sessions_* livepatches: a cumulative livepatch that keeps per-session
 * data in shadow variables, tied to a system state, written the way the livepatch
 * documentation (system-state.rst) asks of a cumulative patch author:
 *
 *   - the state is introduced (pre_patch) and removed (post_unpatch) only when no other
 *     installed patch has it: klp_get_prev_state() says whether one does;
 *   - a patch taking the state over keeps its data (state->data, the shadow variables);
 *   - removing the state frees every shadow variable tied to it.
 *
 * Each klp_sessions_*.c sets, before including this file:
 *   STATE_VERSION        version of the state it supports; 0: it has no state (and keeps
 *                        no shadow variables)
 * and the deliberately wrong ones (negative controls) one of:
 *   BUG_LEAK_ON_DISABLE  removing the state forgets the per-session variables
 *   BUG_FREE_ON_REPLACE  taking the state over frees the per-session variables
 *   BUG_SETUP_ON_REPLACE sets the state up again even when it takes it over
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/slab.h>
#include "klp_sessions.h"

#define SESSIONS_STATE	0x5e55UL	/* the system state: sessions carry shadow data */
#define SHADOW_SESSION	0x5e551UL	/* one per session: struct session_data */
#define SHADOW_ANCHOR	0x5e550UL	/* one per introduction of the state: struct anchor */

#ifndef BUG_LEAK_ON_DISABLE
#define BUG_LEAK_ON_DISABLE 0
#endif
#ifndef BUG_FREE_ON_REPLACE
#define BUG_FREE_ON_REPLACE 0
#endif
#ifndef BUG_SETUP_ON_REPLACE
#define BUG_SETUP_ON_REPLACE 0
#endif

struct session_data {
	unsigned int renders;
	char origin[MODULE_NAME_LEN];	/* the patch that allocated it */
};

struct anchor {
	char introduced_by[MODULE_NAME_LEN];
	unsigned int version;
};

static struct klp_patch patch;

static int session_data_init(void *obj, void *shadow_data, void *ctor_data)
{
	struct session_data *data = shadow_data;

	data->renders = 0;
	strscpy(data->origin, THIS_MODULE->name, sizeof(data->origin));
	return 0;
}

static int livepatch_session_render(struct klp_session *s, char *buf, size_t size)
{
	struct session_data *data;

	if (!STATE_VERSION)
		return scnprintf(buf, size, "session %d: patched by %s, no shadow data\n",
				 s->id, THIS_MODULE->name);
	data = klp_shadow_get_or_alloc(s, SHADOW_SESSION, sizeof(*data), GFP_KERNEL,
				       session_data_init, NULL);
	if (!data)
		return scnprintf(buf, size, "session %d: no memory for shadow data\n", s->id);
	data->renders++;
	return scnprintf(buf, size, "session %d: renders %u, shadow from %s, patched by %s\n",
			 s->id, data->renders, data->origin, THIS_MODULE->name);
}

static void livepatch_session_destroy(struct klp_session *s)
{
	klp_shadow_free(s, SHADOW_SESSION, NULL);
	kfree(s);
}

static int introduce_state(struct klp_state *state)
{
	struct anchor *anchor;

	/* Attached to this patch: each introduction makes one more anchor. */
	anchor = klp_shadow_alloc(&patch, SHADOW_ANCHOR, sizeof(*anchor), GFP_KERNEL,
				  NULL, NULL);
	if (!anchor)
		return -ENOMEM;
	strscpy(anchor->introduced_by, THIS_MODULE->name, sizeof(anchor->introduced_by));
	anchor->version = state->version;
	state->data = anchor;
	pr_info("introducing state 0x%lx version %u\n", state->id, state->version);
	return 0;
}

static int pre_patch_callback(struct klp_object *obj)
{
	struct klp_state *state = klp_get_state(&patch, SESSIONS_STATE);
	struct klp_state *prev = klp_get_prev_state(SESSIONS_STATE);
	struct anchor *anchor;

	if (!state)
		return 0;
	if (!prev || BUG_SETUP_ON_REPLACE)
		return introduce_state(state);
	anchor = prev->data;
	state->data = anchor;
	pr_info("taking over state 0x%lx version %u (introduced by %s) as version %u\n",
		state->id, prev->version, anchor->introduced_by, state->version);
	if (BUG_FREE_ON_REPLACE)
		klp_shadow_free_all(SHADOW_SESSION, NULL);
	return 0;
}

/* After the transition: no task runs patched code that could make a new variable. */
static void post_unpatch_callback(struct klp_object *obj)
{
	struct klp_state *state = klp_get_state(&patch, SESSIONS_STATE);

	if (!state || klp_get_prev_state(SESSIONS_STATE))
		return;
	pr_info("removing state 0x%lx version %u\n", state->id, state->version);
	if (!BUG_LEAK_ON_DISABLE)
		klp_shadow_free_all(SHADOW_SESSION, NULL);
	klp_shadow_free_all(SHADOW_ANCHOR, NULL);
	state->data = NULL;
}

static struct klp_func vmlinux_funcs[] = { {} };

static struct klp_func session_funcs[] = {
	{ .old_name = "klp_session_render", .new_func = livepatch_session_render },
	{ .old_name = "klp_session_destroy", .new_func = livepatch_session_destroy },
	{}
};

static struct klp_object objs[] = {
	{
		.name = NULL,	/* vmlinux: always there, so its callbacks always run */
		.funcs = vmlinux_funcs,
		.callbacks = {
			.pre_patch = pre_patch_callback,
			.post_unpatch = post_unpatch_callback,
		},
	},
	{ .name = "klp_sessions", .funcs = session_funcs },
	{}
};

static struct klp_state states[] = {
	{ .id = SESSIONS_STATE, .version = STATE_VERSION },
	{}
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
	.states = STATE_VERSION ? states : NULL,
	.replace = true,
};

static int __init sessions_patch_init(void)
{
	return klp_enable_patch(&patch);
}

static void __exit sessions_patch_exit(void)
{
}

module_init(sessions_patch_init);
module_exit(sessions_patch_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
