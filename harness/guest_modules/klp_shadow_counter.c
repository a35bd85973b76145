// SPDX-License-Identifier: GPL-2.0
/*
 * klp_shadow_counter - count the live livepatch shadow variables, exactly.
 *
 * The kernel keeps shadow variables in a static hash table in kernel/livepatch/shadow.c
 * (klp_shadow_hash, 1 << 12 buckets, guarded by klp_shadow_lock) and counts nothing.
 * Both symbols are static, so the harness reads their addresses from /proc/kallsyms
 * (livepatch needs CONFIG_KALLSYMS_ALL, so they are always there) and passes them as
 * parameters. Walking the table under its lock sees every variable, including those made
 * before this module was loaded, and costs the code under test nothing between reads.
 *
 * struct klp_shadow is private to shadow.c; it has had the layout below since shadow
 * variables appeared (4.15). On load, a self-test allocates one variable through the
 * kernel's API and must find it in the bucket and at the offset this module expects;
 * otherwise loading fails with -EINVAL and says what differs, instead of counting wrong.
 *
 * debugfs, in /sys/kernel/debug/klp_shadow_counter/:
 *   counts   "total N", "walk_ns N", then "<id> <count>" per id (ids in hex)
 *   objects  "<id> <object>" for every variable (to name what leaked)
 *   free     write an id (hex): klp_shadow_free_all(id), to clear a detected leak
 */
#include <linux/debugfs.h>
#include <linux/hash.h>
#include <linux/hashtable.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/sort.h>
#include <linux/spinlock.h>

#define SHADOW_HASH_BITS 12
#define SHADOW_BUCKETS (1 << SHADOW_HASH_BITS)
#define SELFTEST_ID 0x6b6c7063UL	/* "klpc" */
#define MAX_IDS 64			/* distinct ids reported; more are summed as "other" */

/* Same layout as kernel/livepatch/shadow.c. */
struct klp_shadow {
	struct hlist_node node;
	struct rcu_head rcu_head;
	void *obj;
	unsigned long id;
	char data[];
};

static unsigned long hash_addr;
module_param(hash_addr, ulong, 0400);
MODULE_PARM_DESC(hash_addr, "address of klp_shadow_hash (from /proc/kallsyms)");
static unsigned long lock_addr;
module_param(lock_addr, ulong, 0400);
MODULE_PARM_DESC(lock_addr, "address of klp_shadow_lock (from /proc/kallsyms)");

static struct hlist_head *shadow_hash;
static spinlock_t *shadow_lock;
static struct dentry *dir;

struct id_count {
	unsigned long id;
	unsigned long count;
};

struct census {
	unsigned long total;
	unsigned long other;	/* variables whose id did not fit in ids[] */
	unsigned int nr_ids;
	u64 walk_ns;
	struct id_count ids[MAX_IDS];
};

static void count_one(struct census *c, unsigned long id)
{
	unsigned int i;

	c->total++;
	for (i = 0; i < c->nr_ids; i++) {
		if (c->ids[i].id == id) {
			c->ids[i].count++;
			return;
		}
	}
	if (c->nr_ids < MAX_IDS) {
		c->ids[c->nr_ids].id = id;
		c->ids[c->nr_ids++].count = 1;
	} else {
		c->other++;
	}
}

static void take_census(struct census *c)
{
	struct klp_shadow *shadow;
	unsigned long flags;
	u64 start;
	int bkt;

	memset(c, 0, sizeof(*c));
	start = ktime_get_ns();
	spin_lock_irqsave(shadow_lock, flags);
	for (bkt = 0; bkt < SHADOW_BUCKETS; bkt++)
		hlist_for_each_entry(shadow, &shadow_hash[bkt], node)
			count_one(c, shadow->id);
	spin_unlock_irqrestore(shadow_lock, flags);
	c->walk_ns = ktime_get_ns() - start;
}

static int cmp_id(const void *a, const void *b)
{
	const struct id_count *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static int counts_show(struct seq_file *m, void *v)
{
	struct census *c = kmalloc(sizeof(*c), GFP_KERNEL);
	unsigned int i;

	if (!c)
		return -ENOMEM;
	take_census(c);
	sort(c->ids, c->nr_ids, sizeof(c->ids[0]), cmp_id, NULL);
	seq_printf(m, "total %lu\nwalk_ns %llu\n", c->total, c->walk_ns);
	for (i = 0; i < c->nr_ids; i++)
		seq_printf(m, "0x%lx %lu\n", c->ids[i].id, c->ids[i].count);
	if (c->other)
		seq_printf(m, "other %lu\n", c->other);
	kfree(c);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(counts);

/* One variable a line. seq_printf does not sleep, so printing under the lock is safe;
 * when the buffer is too small, seq_file grows it and calls this again. */
static int objects_show(struct seq_file *m, void *v)
{
	struct klp_shadow *shadow;
	unsigned long flags;
	int bkt;

	spin_lock_irqsave(shadow_lock, flags);
	for (bkt = 0; bkt < SHADOW_BUCKETS; bkt++)
		hlist_for_each_entry(shadow, &shadow_hash[bkt], node)
			seq_printf(m, "0x%lx %px\n", shadow->id, shadow->obj);
	spin_unlock_irqrestore(shadow_lock, flags);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(objects);

static ssize_t free_write(struct file *file, const char __user *buf, size_t len, loff_t *pos)
{
	unsigned long id;
	int err = kstrtoul_from_user(buf, len, 16, &id);

	if (err)
		return err;
	klp_shadow_free_all(id, NULL);
	return len;
}

static const struct file_operations free_fops = {
	.owner = THIS_MODULE,
	.write = free_write,
};

/*
 * Is the variable at ``node`` the probe? Read without faulting: until the self-test has
 * passed, the table may not be where we think, and its "nodes" may be anything.
 */
static int probe_at(struct klp_shadow *node, void *obj, void *data)
{
	struct klp_shadow copy;

	if (copy_from_kernel_nofault(&copy, node, sizeof(copy)))
		return -EFAULT;
	if (copy.obj != obj || copy.id != SELFTEST_ID)
		return 0;
	return (void *)node->data == data ? 1 : -EINVAL;
}

/*
 * Allocate a variable through the kernel's API; it must sit in the bucket that a table
 * of SHADOW_BUCKETS buckets gives its object, with obj, id and data where struct
 * klp_shadow above puts them.
 */
static int selftest(void)
{
	static int probe_obj;
	struct hlist_node *node;
	unsigned long flags;
	const char *why = "test variable not found";
	void *data;
	int found = 0, bkt, steps;

	data = klp_shadow_alloc(&probe_obj, SELFTEST_ID, sizeof(long), GFP_KERNEL, NULL, NULL);
	if (!data)
		return -ENOMEM;
	spin_lock_irqsave(shadow_lock, flags);
	for (bkt = 0; bkt < SHADOW_BUCKETS && !found; bkt++) {
		if (get_kernel_nofault(node, &shadow_hash[bkt].first))
			break;
		for (steps = 0; node && steps < 1000 && !found; steps++) {
			found = probe_at(container_of(node, struct klp_shadow, node), &probe_obj, data);
			if (found < 0 || get_kernel_nofault(node, &node->next))
				break;
		}
		if (found == 1 && bkt != hash_min((unsigned long)&probe_obj, SHADOW_HASH_BITS)) {
			why = "test variable found in another bucket (a table of another size)";
			found = 0;
			break;
		}
	}
	spin_unlock_irqrestore(shadow_lock, flags);
	klp_shadow_free(&probe_obj, SELFTEST_ID, NULL);
	if (found == 1)
		return 0;
	if (found == -EINVAL)
		why = "test variable found with its data at another offset";
	pr_err("klp_shadow_counter: this kernel's shadow variable table is not the one this "
	       "counter knows (%s): expected a %d-bucket hash of struct { hlist_node; rcu_head; "
	       "obj; id; data[] } (kernel/livepatch/shadow.c, 4.15 and later)\n",
	       why, SHADOW_BUCKETS);
	return -EINVAL;
}

static int __init counter_init(void)
{
	int err;

	if (!hash_addr || !lock_addr) {
		pr_err("klp_shadow_counter: give hash_addr= and lock_addr= (klp_shadow_hash and "
		       "klp_shadow_lock in /proc/kallsyms)\n");
		return -EINVAL;
	}
	shadow_hash = (struct hlist_head *)hash_addr;
	shadow_lock = (spinlock_t *)lock_addr;
	err = selftest();
	if (err)
		return err;
	dir = debugfs_create_dir("klp_shadow_counter", NULL);
	debugfs_create_file("counts", 0400, dir, NULL, &counts_fops);
	debugfs_create_file("objects", 0400, dir, NULL, &objects_fops);
	debugfs_create_file("free", 0200, dir, NULL, &free_fops);
	return 0;
}

static void __exit counter_exit(void)
{
	debugfs_remove_recursive(dir);
}

module_init(counter_init);
module_exit(counter_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp-harness: exact count of live livepatch shadow variables");
