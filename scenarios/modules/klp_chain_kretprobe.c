// SPDX-License-Identifier: GPL-2.0
/*
 * klp_chain_kretprobe - a kretprobe on klp_chain_hold(), the callee a held task sleeps in.
 *
 * While the task sleeps, the return address in klp_chain_hold()'s frame points to the
 * kretprobe trampoline, not into klp_chain_outer(): a reliable stack unwinder must still
 * find klp_chain_outer() (or call the stack unreliable), so that patching it stays blocked.
 * /sys/module/klp_chain_kretprobe/parameters/returns counts the probed returns.
 */
#include <linux/kprobes.h>
#include <linux/module.h>

static int returns;
module_param(returns, int, 0444);
MODULE_PARM_DESC(returns, "returns from klp_chain_hold() the kretprobe saw");

static int on_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	returns++;
	return 0;
}

/* By name: the arch finds the probe point (on ppc64le the function's local entry, which
 * calls within a module take; its address as a pointer is the global entry). */
static struct kretprobe probe = {
	.kp.symbol_name = "klp_chain_hold",
	.handler = on_return,
	.maxactive = 16,
};

static int __init klp_chain_kretprobe_init(void)
{
	return register_kretprobe(&probe);
}

static void __exit klp_chain_kretprobe_exit(void)
{
	unregister_kretprobe(&probe);
}

module_init(klp_chain_kretprobe_init);
module_exit(klp_chain_kretprobe_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp-harness: a kretprobe on klp_chain_hold()");
