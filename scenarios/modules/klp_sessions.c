// SPDX-License-Identifier: GPL-2.0
/*
 * klp_sessions - a target module whose objects come and go while it is livepatched.
 *
 * Write "create N", "destroy N" (the newest N) or "destroy all" to /proc/klp_sessions,
 * or "cycle N": N sessions created, rendered and destroyed within that write (a workload
 * that makes and frees shadow data without touching the other sessions). Read the file
 * for one line per session. The lines are rendered when the file is opened for reading,
 * so each open calls klp_session_render() exactly once per session (a seq_file may call
 * its show function again when its buffer grows).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include "klp_sessions.h"

static LIST_HEAD(sessions);
static DEFINE_MUTEX(sessions_lock);
static int nr_sessions, next_id;

/* Replaced by the livepatches: noinline keeps them functions of their own. */
noinline int klp_session_render(struct klp_session *s, char *buf, size_t size)
{
	return scnprintf(buf, size, "session %d: unpatched\n", s->id);
}

noinline void klp_session_destroy(struct klp_session *s)
{
	kfree(s);
}

struct rendering {
	size_t len;
	char text[];
};

static int sessions_open(struct inode *inode, struct file *file)
{
	struct rendering *r;
	struct klp_session *s;

	if (!(file->f_mode & FMODE_READ))	/* opened to write a command */
		return 0;
	mutex_lock(&sessions_lock);
	r = kvmalloc(sizeof(*r) + (size_t)nr_sessions * KLP_SESSION_LINE + 1, GFP_KERNEL);
	if (!r) {
		mutex_unlock(&sessions_lock);
		return -ENOMEM;
	}
	r->len = 0;
	list_for_each_entry(s, &sessions, list)
		r->len += klp_session_render(s, r->text + r->len, KLP_SESSION_LINE);
	mutex_unlock(&sessions_lock);
	file->private_data = r;
	return 0;
}

static ssize_t sessions_read(struct file *file, char __user *buf, size_t len, loff_t *pos)
{
	struct rendering *r = file->private_data;

	if (!r)
		return -EBADF;
	return simple_read_from_buffer(buf, len, pos, r->text, r->len);
}

static int sessions_release(struct inode *inode, struct file *file)
{
	kvfree(file->private_data);
	return 0;
}

static int create(int n)
{
	struct klp_session *s;

	while (n-- > 0) {
		s = kzalloc(sizeof(*s), GFP_KERNEL);
		if (!s)
			return -ENOMEM;
		s->id = next_id++;
		list_add_tail(&s->list, &sessions);
		nr_sessions++;
	}
	return 0;
}

static void destroy(int n)
{
	struct klp_session *s;

	while (n-- > 0 && !list_empty(&sessions)) {
		s = list_last_entry(&sessions, struct klp_session, list);
		list_del(&s->list);
		nr_sessions--;
		klp_session_destroy(s);
	}
}

/* Sessions that live for one write: created, rendered and destroyed by the caller. */
static int cycle(int n)
{
	char line[KLP_SESSION_LINE];
	struct klp_session *s;

	while (n-- > 0) {
		s = kzalloc(sizeof(*s), GFP_KERNEL);
		if (!s)
			return -ENOMEM;
		s->id = -1;
		klp_session_render(s, line, sizeof(line));
		klp_session_destroy(s);
	}
	return 0;
}

static ssize_t sessions_write(struct file *file, const char __user *ubuf, size_t len,
			      loff_t *pos)
{
	char buf[32];
	int n, err = 0;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	mutex_lock(&sessions_lock);
	if (sysfs_streq(buf, "destroy all"))
		destroy(INT_MAX);
	else if (sscanf(buf, "create %d", &n) == 1 && n >= 0)
		err = create(n);
	else if (sscanf(buf, "destroy %d", &n) == 1 && n >= 0)
		destroy(n);
	else if (sscanf(buf, "cycle %d", &n) == 1 && n >= 0)
		err = cycle(n);
	else
		err = -EINVAL;
	mutex_unlock(&sessions_lock);
	return err ? err : len;
}

static const struct proc_ops sessions_ops = {
	.proc_open = sessions_open,
	.proc_read = sessions_read,
	.proc_write = sessions_write,
	.proc_release = sessions_release,
	.proc_lseek = default_llseek,
};

static int __init sessions_init(void)
{
	if (!proc_create("klp_sessions", 0600, NULL, &sessions_ops))
		return -ENOMEM;
	return 0;
}

static void __exit sessions_exit(void)
{
	remove_proc_entry("klp_sessions", NULL);
	mutex_lock(&sessions_lock);
	destroy(INT_MAX);
	mutex_unlock(&sessions_lock);
}

module_init(sessions_init);
module_exit(sessions_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp-harness: livepatch target whose objects are created and freed while patched");
