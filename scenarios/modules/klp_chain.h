/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the klp_chain target module and the livepatches for it share.
 *
 * klp_chain_outer() calls klp_chain_inner() with a token; a livepatch replaces both
 * together, its outer passing its own token, which only its own inner accepts. A task
 * that ran one version's outer and another version's inner (which the consistency model
 * forbids) makes a "mixed" call: klp_chain_record() counts it, says which task and
 * which functions, and /sys/kernel/klp_chain/mixed shows it.
 */
#ifndef KLP_CHAIN_H
#define KLP_CHAIN_H

#include <linux/sched.h>

/* Tokens: the target's own functions, then each livepatch's (its CHAIN_VERSION). */
#define CHAIN_TOKEN_OLD 0

/* In the target; what the livepatches replace. */
int klp_chain_outer(void);
int klp_chain_inner(int token);

/* In the target, for the livepatches' functions too. */
void klp_chain_hold(void);	/* sleeps here while a hold is set (see klp_chain.c) */
void klp_chain_record(int token, int inner_version);

/*
 * The livepatches' transitions, counted: their pre-patch and pre-unpatch callbacks (which
 * run before a transition starts, and only the new patch's in an atomic replace; also
 * when klp_chain loads after a patch, which scenarios under load do not do) call
 * klp_chain_transition(). klp_chain_transitions holds the count << 1 | 1 if the last one
 * patches. A mixed call then tells a task switched on its way into the outer (one
 * transition seen by both functions) from one that began the outer in an earlier one.
 */
extern int klp_chain_transitions;
void klp_chain_transition(bool patching);

/*
 * An outer's token: its version, the livepatch state of its task (patch_state: -1 none
 * in transition, 0 unpatched, 1 patched) and the transition (klp_chain_transitions, 20
 * bits) as the outer began. A mixed call then tells a task switched before its outer ran
 * (the state the inner saw) from one switched while in it (the state the handler chose
 * the outer by).
 */
#define CHAIN_TOKEN_TRANSITIONS 0xfffff

static inline int klp_chain_token(int version)
{
	return version | (READ_ONCE(current->patch_state) + 1) << 8 |
		(READ_ONCE(klp_chain_transitions) & CHAIN_TOKEN_TRANSITIONS) << 10;
}

static inline int klp_chain_token_version(int token)
{
	return token & 0xff;
}

static inline int klp_chain_token_state(int token)
{
	return ((token >> 8) & 3) - 1;
}

static inline int klp_chain_token_transitions(int token)
{
	return (token >> 10) & CHAIN_TOKEN_TRANSITIONS;
}

/*
 * After the outer's call of the inner: the call is then no sibling call (a jump, which
 * compilers make where frame pointers are off, as on x86_64 with ORC). With a jump the
 * outer's frame is gone while the inner's ftrace handler has yet to choose, so the stack
 * check sees neither function and may switch the task between them: a mixed call that
 * the consistency model, which looks at the functions on the stack, does not cover.
 */
#define klp_chain_no_tail_call() barrier()

#endif
