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

/* Tokens: the target's own functions, then each livepatch's (its CHAIN_VERSION). */
#define CHAIN_TOKEN_OLD 0

/* In the target; what the livepatches replace. */
int klp_chain_outer(void);
int klp_chain_inner(int token);

/* In the target, for the livepatches' functions too. */
void klp_chain_hold(void);	/* sleeps here while a hold is set (see klp_chain.c) */
void klp_chain_record(int outer_version, int inner_version, int token);

#endif
