// SPDX-License-Identifier: GPL-2.0
/*
 * klp_chain - a target module that makes livepatching's consistency model observable.
 *
 * /sys/kernel/klp_chain/:
 *   call       write N: call klp_chain_outer() N times in the writing task; "N ADDR":
 *              klp_chain_hold() first reads a byte at the user address ADDR, a page of
 *              the writer's mapping of /sys/kernel/debug/klp_chain/fault_page, whose
 *              page fault sleeps (uninterruptibly, listed in "held") until "release":
 *              a task asleep in a page fault inside the patched path
 *   hold       write "interruptible" or "uninterruptible": the tasks that enter
 *              klp_chain_outer() from then on sleep in it (through klp_chain_hold())
 *              until "release"; "kthread" starts a kernel thread that enters it and sleeps
 *              interruptibly; "release" wakes them all and ends the hold
 *   held       how many tasks sleep in klp_chain_outer() now, and their pids
 *   calls      calls made through the chain
 *   mixed      0, or the count of mixed calls with the first one: task, and which
 *              version of klp_chain_outer() and of klp_chain_inner() it ran
 *   last       the versions of klp_chain_outer() and klp_chain_inner() the last call ran
 *              ("0 0" before any livepatch, "-" before any call)
 *   reset      write anything: calls and mixed back to 0
 *
 * An interruptible hold sleeps once: any wake-up (a signal, the fake signal livepatch
 * sends to a stalled transition's tasks, a kthread's wake-up) ends it, as a sleep that
 * waits for an event and then lets its caller go on would. The kthread then waits for
 * "release" outside klp_chain_outer().
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/mm.h>
#include <linux/kobject.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/wait.h>
#include "klp_chain.h"

#define MAX_HELD 16

enum hold { HOLD_NONE, HOLD_INTERRUPTIBLE, HOLD_UNINTERRUPTIBLE };

static enum hold hold_mode;
static unsigned long hold_generation;	/* "release" ends every hold begun before it */
static DECLARE_WAIT_QUEUE_HEAD(hold_wq);
static DEFINE_SPINLOCK(lock);
static pid_t held[MAX_HELD];
static atomic_long_t calls, mixed;
static char first_mixed[320];
/* The last call's versions, outer << 16 | inner, in one word (no lock on the hot path) */
static int last_call = -1;
static struct task_struct *kthread;
static struct kobject *dir;
static struct dentry *debug_dir;
/* The task of a "call N ADDR" and its address (one such call at a time) */
static pid_t fault_pid;
static unsigned long fault_addr;

static void held_add(pid_t pid, int add)
{
	int i;

	spin_lock(&lock);
	for (i = 0; i < MAX_HELD; i++) {
		if (add && !held[i]) {
			held[i] = pid;
			break;
		}
		if (!add && held[i] == pid) {
			held[i] = 0;
			break;
		}
	}
	spin_unlock(&lock);
}

static bool released(unsigned long generation)
{
	return READ_ONCE(hold_generation) != generation;
}

void klp_chain_hold(void)
{
	unsigned long generation = READ_ONCE(hold_generation);
	enum hold mode = READ_ONCE(hold_mode);

	if (READ_ONCE(fault_pid) == current->pid) {
		char byte;

		if (copy_from_user(&byte, (const char __user *)fault_addr, 1))
			pr_warn("pid %d: user address %lx not readable\n", current->pid,
				fault_addr);
	}
	if (mode == HOLD_NONE)
		return;
	held_add(current->pid, 1);
	if (mode == HOLD_UNINTERRUPTIBLE) {
		wait_event(hold_wq, released(generation));
	} else {	/* one sleep: any wake-up ends it */
		DEFINE_WAIT(wait);

		prepare_to_wait(&hold_wq, &wait, TASK_INTERRUPTIBLE);
		if (!released(generation) && !signal_pending(current))
			schedule();
		finish_wait(&hold_wq, &wait);
	}
	held_add(current->pid, 0);
}
EXPORT_SYMBOL_GPL(klp_chain_hold);

int klp_chain_transitions;
EXPORT_SYMBOL_GPL(klp_chain_transitions);

void klp_chain_transition(bool patching)
{
	WRITE_ONCE(klp_chain_transitions, ((klp_chain_transitions >> 1) + 1) << 1 | patching);
}
EXPORT_SYMBOL_GPL(klp_chain_transition);

/* "in transition 5, a patching one" */
static void transition_name(char *buf, size_t size, int transitions)
{
	if (!transitions)
		snprintf(buf, size, "before any transition");
	else
		snprintf(buf, size, "in transition %d, %s", transitions >> 1,
			 transitions & 1 ? "a patching one" : "an unpatching one");
}

void klp_chain_record(int token, int inner_version)
{
	int outer_version = klp_chain_token_version(token);
	int outer_state = klp_chain_token_state(token);
	int outer_transitions = klp_chain_token_transitions(token);
	int inner_state = READ_ONCE(current->patch_state);
	int inner_transitions = READ_ONCE(klp_chain_transitions) & CHAIN_TOKEN_TRANSITIONS;
	char outer_in[48], inner_in[48], states[160];

	WRITE_ONCE(last_call, outer_version << 16 | inner_version);
	atomic_long_inc(&calls);
	if (outer_version == inner_version)
		return;
	transition_name(outer_in, sizeof(outer_in), outer_transitions);
	transition_name(inner_in, sizeof(inner_in), inner_transitions);
	if (outer_transitions == inner_transitions)
		snprintf(states, sizeof(states), "its patch_state %d as the outer began, %d in "
			 "the inner, both %s", outer_state, inner_state, inner_in);
	else
		snprintf(states, sizeof(states), "its patch_state %d as the outer began, %s; "
			 "%d in the inner, %s", outer_state, outer_in, inner_state, inner_in);
	if (atomic_long_inc_return(&mixed) == 1) {
		spin_lock(&lock);
		snprintf(first_mixed, sizeof(first_mixed),
			 "pid %d (%s) ran klp_chain_outer version %d, then klp_chain_inner "
			 "version %d (%s)", current->pid, current->comm, outer_version,
			 inner_version, states);
		spin_unlock(&lock);
	}
	pr_info("mixed call: pid %d (%s): klp_chain_outer version %d, klp_chain_inner version %d, %s\n",
		current->pid, current->comm, outer_version, inner_version, states);
}
EXPORT_SYMBOL_GPL(klp_chain_record);

/* Replaced by the livepatches: noinline keeps them functions of their own. */
noinline int klp_chain_inner(int token)
{
	klp_chain_record(token, CHAIN_TOKEN_OLD);
	return token;
}
EXPORT_SYMBOL_GPL(klp_chain_inner);

noinline int klp_chain_outer(void)
{
	int token = klp_chain_token(CHAIN_TOKEN_OLD), ret;

	klp_chain_hold();
	ret = klp_chain_inner(token);
	klp_chain_no_tail_call();
	return ret;
}

static int kthread_fn(void *unused)
{
	unsigned long generation = READ_ONCE(hold_generation);

	klp_chain_outer();
	/* Woken (or released): wait for the release out of the chain, then end. */
	wait_event_interruptible(hold_wq, released(generation) || kthread_should_stop());
	while (!kthread_should_stop()) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (!kthread_should_stop())
			schedule();
		__set_current_state(TASK_RUNNING);
	}
	return 0;
}

static void stop_kthread(void)
{
	if (kthread) {
		kthread_stop(kthread);
		put_task_struct(kthread);
		kthread = NULL;
	}
}

static ssize_t call_store(struct kobject *k, struct kobj_attribute *a, const char *buf,
			  size_t count)
{
	unsigned int n, i;
	unsigned long addr;
	int fields = sscanf(buf, "%u %lu", &n, &addr);

	if (fields < 1)
		return -EINVAL;
	if (fields == 2) {
		if (cmpxchg(&fault_pid, 0, current->pid) != 0)
			return -EBUSY;
		fault_addr = addr;
	}
	for (i = 0; i < n; i++)
		klp_chain_outer();
	if (fields == 2)
		WRITE_ONCE(fault_pid, 0);
	return count;
}

/* The page fault of fault_page's mapping: sleeps until "release", then gives a zeroed page. */
static vm_fault_t fault_page_fault(struct vm_fault *vmf)
{
	unsigned long generation = READ_ONCE(hold_generation);
	struct page *page;

	held_add(current->pid, 1);
	wait_event(hold_wq, released(generation));
	held_add(current->pid, 0);
	page = alloc_page(GFP_KERNEL | __GFP_ZERO);
	if (!page)
		return VM_FAULT_OOM;
	vmf->page = page;	/* its reference goes to the page table */
	return 0;
}

static const struct vm_operations_struct fault_page_vm_ops = {
	.fault = fault_page_fault,
};

static int fault_page_mmap(struct file *file, struct vm_area_struct *vma)
{
	vma->vm_ops = &fault_page_vm_ops;
	return 0;
}

static const struct file_operations fault_page_fops = {
	.owner = THIS_MODULE,
	.mmap = fault_page_mmap,
};

static ssize_t hold_store(struct kobject *k, struct kobj_attribute *a, const char *buf,
			  size_t count)
{
	if (sysfs_streq(buf, "interruptible")) {
		WRITE_ONCE(hold_mode, HOLD_INTERRUPTIBLE);
	} else if (sysfs_streq(buf, "uninterruptible")) {
		WRITE_ONCE(hold_mode, HOLD_UNINTERRUPTIBLE);
	} else if (sysfs_streq(buf, "kthread")) {
		struct task_struct *t;

		if (kthread)
			return -EBUSY;
		WRITE_ONCE(hold_mode, HOLD_INTERRUPTIBLE);
		t = kthread_run(kthread_fn, NULL, "klp_chain_kthread");
		if (IS_ERR(t))
			return PTR_ERR(t);
		get_task_struct(t);
		kthread = t;
	} else if (sysfs_streq(buf, "release")) {
		WRITE_ONCE(hold_mode, HOLD_NONE);
		WRITE_ONCE(hold_generation, hold_generation + 1);
		wake_up_all(&hold_wq);
	} else {
		return -EINVAL;
	}
	return count;
}

static ssize_t hold_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	static const char *const names[] = { "none", "interruptible", "uninterruptible" };

	return sysfs_emit(buf, "%s\n", names[READ_ONCE(hold_mode)]);
}

static ssize_t held_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	int i, n = 0, len;
	char pids[MAX_HELD * 12] = "";

	spin_lock(&lock);
	for (i = 0, len = 0; i < MAX_HELD; i++) {
		if (held[i]) {
			n++;
			len += scnprintf(pids + len, sizeof(pids) - len, " %d", held[i]);
		}
	}
	spin_unlock(&lock);
	return sysfs_emit(buf, "%d%s\n", n, pids);
}

static ssize_t calls_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&calls));
}

static ssize_t mixed_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	long n = atomic_long_read(&mixed);
	ssize_t len;

	if (!n)
		return sysfs_emit(buf, "0\n");
	spin_lock(&lock);
	len = sysfs_emit(buf, "%ld mixed call(s), the first: %s\n", n, first_mixed);
	spin_unlock(&lock);
	return len;
}

static ssize_t last_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	int last = READ_ONCE(last_call);

	if (last < 0)
		return sysfs_emit(buf, "-\n");
	return sysfs_emit(buf, "%d %d\n", last >> 16, last & 0xffff);
}

static ssize_t reset_store(struct kobject *k, struct kobj_attribute *a, const char *buf,
			   size_t count)
{
	atomic_long_set(&calls, 0);
	atomic_long_set(&mixed, 0);
	return count;
}

static struct kobj_attribute attrs[] = {
	__ATTR(call, 0200, NULL, call_store),
	__ATTR(hold, 0600, hold_show, hold_store),
	__ATTR(held, 0400, held_show, NULL),
	__ATTR(calls, 0400, calls_show, NULL),
	__ATTR(mixed, 0400, mixed_show, NULL),
	__ATTR(reset, 0200, NULL, reset_store),
	__ATTR(last, 0400, last_show, NULL),
};

static struct attribute *attr_list[] = {
	&attrs[0].attr, &attrs[1].attr, &attrs[2].attr, &attrs[3].attr, &attrs[4].attr,
	&attrs[5].attr, &attrs[6].attr, NULL,
};

static const struct attribute_group group = { .attrs = attr_list };

static int __init klp_chain_init(void)
{
	int err;

	dir = kobject_create_and_add("klp_chain", kernel_kobj);
	if (!dir)
		return -ENOMEM;
	err = sysfs_create_group(dir, &group);
	if (err) {
		kobject_put(dir);
		return err;
	}
	debug_dir = debugfs_create_dir("klp_chain", NULL);
	/* _unsafe: the full proxy of debugfs_create_file() has no mmap; the file's owner
	 * reference keeps the module while the file is open or mapped. */
	debugfs_create_file_unsafe("fault_page", 0400, debug_dir, NULL, &fault_page_fops);
	return 0;
}

static void __exit klp_chain_exit(void)
{
	WRITE_ONCE(hold_mode, HOLD_NONE);
	WRITE_ONCE(hold_generation, hold_generation + 1);
	wake_up_all(&hold_wq);
	stop_kthread();
	debugfs_remove(debug_dir);
	sysfs_remove_group(dir, &group);
	kobject_put(dir);
}

module_init(klp_chain_init);
module_exit(klp_chain_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp-harness: a call chain that shows a task mixing old and new functions");
