// SPDX-License-Identifier: GPL-2.0
/*
 * FL_LAYOUT leases for p2pmap (model: fs/nfsd/nfs4layouts.c).
 *
 * While p2pmap holds CMB windows of an inode it holds one layout lease on
 * it. Whatever changes the inode's block map (XFS: truncate, hole punch,
 * fallocate, reflink, write()) breaks the lease first; lm_break runs under
 * the lease spinlock, so it only queues work (on a real-time kthread
 * worker, see p2pmap_lease_init()). The work asks p2pmap (Rust,
 * p2pmap_rust_lease_broken()) to revoke every window of the inode; the
 * windows drop their lease references as they go, and the last one queues
 * the release, which lets the breaker proceed.
 *
 * That is the slow path. XFS announces the range it is about to change
 * before it breaks the leases (filemap_device_break_begin(), patch 8): the
 * provider's break_begin (Rust) records the task on the inode's lease
 * (p2pmap_lease_break_begin()), whose lm_breaker_owns_lease() then lets
 * that task's break_layout() pass it by until p2pmap_lease_break_end(),
 * and revokes the windows of the range in that task: no lm_break, no
 * worker, no wait, and the windows of the rest of the file stay. Breaks by other tasks (and by XFS
 * paths without a range: IOCB_NOWAIT writes, reflink and exchange-range)
 * still go through lm_break and the worker.
 *
 * The same worker runs the reaper of unclaimed windows (staged by a
 * device_map() slow path whose caller never came back for them):
 * p2pmap_reap_schedule(), p2pmap_rust_reap_unclaimed().
 */
#include <linux/file.h>
#include <linux/jiffies.h>
#include <linux/sched.h>
#include <linux/filelock.h>
#include <linux/fs.h>
#include <linux/ktime.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/kthread.h>
#include <linux/sched.h>

#include "p2pmap_shim.h"

/*
 * Tasks that may break one inode's layout at once having revoked their
 * range themselves (XFS: writers holding the iolock shared). Beyond that
 * the lease is broken as if the hook were not there: slower, as correct.
 */
#define P2PMAP_SYNC_BREAKERS 4

struct p2pmap_lease {
	struct list_head list;		/* p2pmap_leases, under p2pmap_lease_lock */
	struct inode *inode;		/* key; pinned by @file */
	struct file *file;		/* our reference */
	unsigned int refs;		/* windows holding the lease */
	bool broken;			/* lm_break ran: take no new reference */
	u64 gen;			/* p2pmap_lease_gen() */
	/* Tasks between p2pmap_lease_break_begin() and _end() on the inode. */
	struct task_struct *breakers[P2PMAP_SYNC_BREAKERS];
	u64 break_ns;			/* ktime_get_ns() in lm_break, or 0 */
	struct kthread_work break_work;
	struct kthread_work release_work;
};

static LIST_HEAD(p2pmap_leases);
static atomic64_t p2pmap_lease_gens = ATOMIC64_INIT(0);
static DEFINE_SPINLOCK(p2pmap_lease_lock);

static struct kthread_worker *p2pmap_worker;
static bool p2pmap_lease_exiting;	/* under p2pmap_lease_lock */
/* Unloading: no break passes a lease by any more (under p2pmap_lease_lock). */
static bool p2pmap_lease_no_passing;
static struct kthread_delayed_work p2pmap_reap_work;

static void p2pmap_reap_fn(struct kthread_work *work)
{
	unsigned long next_ms = p2pmap_rust_reap_unclaimed();

	if (next_ms)
		p2pmap_reap_schedule(next_ms);
}

void p2pmap_reap_schedule(unsigned long delay_ms)
{
	/* Does nothing if already pending: the earlier expiry comes first. */
	kthread_queue_delayed_work(p2pmap_worker, &p2pmap_reap_work,
				   msecs_to_jiffies(delay_ms));
}

static void p2pmap_lease_break_fn(struct kthread_work *work)
{
	struct p2pmap_lease *l = container_of(work, struct p2pmap_lease, break_work);

	p2pmap_rust_lease_broken(l->inode, l->break_ns);
}

static void p2pmap_lease_release_fn(struct kthread_work *work)
{
	struct p2pmap_lease *l = container_of(work, struct p2pmap_lease, release_work);
	void *owner = l;

	/*
	 * The end of a revocation: the breaker goes on once the lease is
	 * gone. Counted just before, so that the count is there when the
	 * breaker returns to its caller.
	 */
	if (l->break_ns)
		p2pmap_rust_lease_released(l->break_ns);
	kernel_setlease(l->file, F_UNLCK, NULL, &owner);
	/* A break queued before the release must not run on freed memory. */
	kthread_cancel_work_sync(&l->break_work);
	fput(l->file);
	kfree(l);
}

static bool p2pmap_lm_break(struct file_lease *fl)
{
	struct p2pmap_lease *l = fl->c.flc_owner;
	unsigned long flags;

	spin_lock_irqsave(&p2pmap_lease_lock, flags);
	if (!l->broken) {
		l->broken = true;
		l->break_ns = ktime_get_ns();
		/* At exit every window is being revoked anyway. */
		if (!p2pmap_lease_exiting)
			kthread_queue_work(p2pmap_worker, &l->break_work);
	}
	spin_unlock_irqrestore(&p2pmap_lease_lock, flags);
	/* false: the breaker waits until we release the lease */
	return false;
}

/*
 * Under the inode's flc_lock, in the breaking task, for every lease the
 * break meets: a task that revoked the range it changes itself
 * (p2pmap_lease_break_begin()) does not break this lease.
 */
static bool p2pmap_lm_breaker_owns_lease(struct file_lease *fl)
{
	struct p2pmap_lease *l = fl->c.flc_owner;
	unsigned long flags;
	bool owns = false;
	int i;

	spin_lock_irqsave(&p2pmap_lease_lock, flags);
	for (i = 0; !p2pmap_lease_no_passing && i < P2PMAP_SYNC_BREAKERS; i++)
		if (l->breakers[i] == current)
			owns = true;
	spin_unlock_irqrestore(&p2pmap_lease_lock, flags);
	return owns;
}

/*
 * Module exit, before the provider is unregistered: a task between
 * break_begin and break_end when the provider goes would never get its
 * break_end, and could pass the lease by with a later, unannounced break.
 */
void p2pmap_lease_stop_passing(void)
{
	unsigned long flags;

	spin_lock_irqsave(&p2pmap_lease_lock, flags);
	p2pmap_lease_no_passing = true;
	spin_unlock_irqrestore(&p2pmap_lease_lock, flags);
}

static int p2pmap_lm_change(struct file_lease *onlist, int arg,
			    struct list_head *dispose)
{
	return lease_modify(onlist, arg, dispose);
}

static int p2pmap_lm_open_conflict(struct file *filp, int arg)
{
	return 0;
}

static const struct lease_manager_operations p2pmap_lm_ops = {
	.lm_break = p2pmap_lm_break,
	.lm_breaker_owns_lease = p2pmap_lm_breaker_owns_lease,
	.lm_change = p2pmap_lm_change,
	.lm_open_conflict = p2pmap_lm_open_conflict,
};

/* Caller holds p2pmap_lease_lock. */
static struct p2pmap_lease *p2pmap_lease_find(struct inode *inode)
{
	struct p2pmap_lease *l;

	list_for_each_entry(l, &p2pmap_leases, list)
		if (l->inode == inode)
			return l;
	return NULL;
}

/*
 * Takes a reference on the inode's existing lease: true if there is one,
 * with *ret 0, or -EBUSY while it is being broken.
 */
static bool p2pmap_lease_ref_existing(struct inode *inode, int *ret)
{
	struct p2pmap_lease *l;
	unsigned long flags;

	spin_lock_irqsave(&p2pmap_lease_lock, flags);
	l = p2pmap_lease_find(inode);
	if (l) {
		*ret = l->broken ? -EBUSY : 0;
		if (!*ret)
			l->refs++;
	}
	spin_unlock_irqrestore(&p2pmap_lease_lock, flags);
	return l != NULL;
}

int p2pmap_lease_get(struct file *file)
{
	struct inode *inode = file_inode(file);
	struct p2pmap_lease *new;
	struct file_lease *fl;
	unsigned long flags;
	int ret;

	might_sleep();
	if (p2pmap_lease_ref_existing(inode, &ret))
		return ret;

	new = kzalloc(sizeof(*new), GFP_KERNEL);
	if (!new)
		return -ENOMEM;
	new->inode = inode;
	/*
	 * The lease lives on a file of our own: releasing a lease resets the
	 * F_SETOWN/F_SETSIG state of its file (lease_modify()), which must not
	 * be the user's (nfsd leases its own nfsd_file too).
	 */
	new->file = dentry_open(&file->f_path, O_RDONLY | O_LARGEFILE, file->f_cred);
	if (IS_ERR(new->file)) {
		ret = PTR_ERR(new->file);
		kfree(new);
		return ret;
	}
	new->refs = 1;
	new->gen = atomic64_inc_return(&p2pmap_lease_gens);
	kthread_init_work(&new->break_work, p2pmap_lease_break_fn);
	kthread_init_work(&new->release_work, p2pmap_lease_release_fn);

	fl = locks_alloc_lease();
	if (!fl) {
		ret = -ENOMEM;
		goto out_free;
	}
	fl->fl_lmops = &p2pmap_lm_ops;
	fl->c.flc_flags = FL_LAYOUT;
	fl->c.flc_type = F_RDLCK;
	fl->c.flc_owner = new;
	fl->c.flc_pid = current->tgid;
	fl->c.flc_file = new->file;
	/*
	 * -EAGAIN while the lease we held is still being released after a
	 * break (FL_UNLOCK_PENDING), and while a breaker still waits for the
	 * inode's leases to go: the series makes generic_add_lease() refuse
	 * a lease that a waiting breaker would never break (patch 6), so no
	 * cool-down is needed here.
	 */
	ret = kernel_setlease(new->file, F_RDLCK, &fl, NULL);
	if (fl)
		locks_free_lease(fl);	/* not used (error, or merged) */
	if (ret)
		goto out_free;

	spin_lock_irqsave(&p2pmap_lease_lock, flags);
	if (!p2pmap_lease_find(inode)) {
		list_add(&new->list, &p2pmap_leases);
		spin_unlock_irqrestore(&p2pmap_lease_lock, flags);
		return 0;
	}
	spin_unlock_irqrestore(&p2pmap_lease_lock, flags);
	/* Lost a race with another window of the inode: use theirs. */
	kthread_queue_work(p2pmap_worker, &new->release_work);
	if (p2pmap_lease_ref_existing(inode, &ret))
		return ret;
	return -EBUSY;	/* theirs went away meanwhile: let the caller retry */

out_free:
	fput(new->file);
	kfree(new);
	return ret;
}

u64 p2pmap_lease_gen(struct file *file)
{
	struct p2pmap_lease *l;
	unsigned long flags;
	u64 gen;

	spin_lock_irqsave(&p2pmap_lease_lock, flags);
	l = p2pmap_lease_find(file_inode(file));
	gen = l && !l->broken ? l->gen : 0;
	spin_unlock_irqrestore(&p2pmap_lease_lock, flags);
	return gen;
}

bool p2pmap_lease_broken(struct file *file)
{
	return !p2pmap_lease_gen(file);
}

bool p2pmap_lease_held(struct file *file)
{
	unsigned long flags;
	bool held;

	spin_lock_irqsave(&p2pmap_lease_lock, flags);
	held = p2pmap_lease_find(file_inode(file));
	spin_unlock_irqrestore(&p2pmap_lease_lock, flags);
	return held;
}

void p2pmap_lease_put(struct file *file)
{
	struct inode *inode = file_inode(file);
	struct p2pmap_lease *l;
	unsigned long flags;

	spin_lock_irqsave(&p2pmap_lease_lock, flags);
	l = p2pmap_lease_find(inode);
	if (l && !WARN_ON_ONCE(!l->refs) && !--l->refs) {
		list_del(&l->list);
		kthread_queue_work(p2pmap_worker, &l->release_work);
	}
	spin_unlock_irqrestore(&p2pmap_lease_lock, flags);
}

int p2pmap_lease_break_begin(struct inode *inode)
{
	struct p2pmap_lease *l;
	unsigned long flags;
	int i, ret = -EBUSY;

	spin_lock_irqsave(&p2pmap_lease_lock, flags);
	l = p2pmap_lease_find(inode);
	if (!l)
		ret = -ENOENT;
	/* Once broken, the whole file is being revoked anyway. */
	for (i = 0; l && !l->broken && ret && i < P2PMAP_SYNC_BREAKERS; i++) {
		if (!l->breakers[i] || l->breakers[i] == current) {
			l->breakers[i] = current;
			ret = 0;
		}
	}
	spin_unlock_irqrestore(&p2pmap_lease_lock, flags);
	return ret;
}

/*
 * A lease whose last reference went while the task was recorded (its
 * revocation freed the inode's last window) is no longer found here and
 * keeps the record until the worker releases it: it protects no window
 * any more, so passing it by is harmless.
 */
void p2pmap_lease_break_end(struct inode *inode)
{
	struct p2pmap_lease *l;
	unsigned long flags;
	int i;

	spin_lock_irqsave(&p2pmap_lease_lock, flags);
	l = p2pmap_lease_find(inode);
	for (i = 0; l && i < P2PMAP_SYNC_BREAKERS; i++)
		if (l->breakers[i] == current)
			l->breakers[i] = NULL;
	spin_unlock_irqrestore(&p2pmap_lease_lock, flags);
}

int p2pmap_lease_init(void)
{
	/*
	 * Revocations and lease releases run on one kthread worker with a
	 * real-time priority: the breaker (truncate, write) sleeps until the
	 * lease is released, and that must depend neither on CPU-bound tasks
	 * (a SCHED_NORMAL wakeup, even of a nice -20 kworker, waits for the
	 * next tick under PREEMPT_LAZY) nor on any userspace process.
	 * sched_set_fifo() (MAX_RT_PRIO / 2), the priority of threaded
	 * interrupt handlers, not sched_set_fifo_low(): a busy-polling
	 * SCHED_FIFO application thread at the usual low priorities must not
	 * hold up a truncate or a hot-unplug behind it. Administrators can
	 * change it with chrt(1) on the "p2pmap-revoke" thread.
	 */
	p2pmap_worker = kthread_run_worker(0, "p2pmap-revoke");
	if (IS_ERR(p2pmap_worker))
		return PTR_ERR(p2pmap_worker);
	sched_set_fifo(p2pmap_worker->task);
	kthread_init_delayed_work(&p2pmap_reap_work, p2pmap_reap_fn);
	return 0;
}

void p2pmap_lease_exit(void)
{
	unsigned long flags;

	spin_lock_irqsave(&p2pmap_lease_lock, flags);
	p2pmap_lease_exiting = true;
	spin_unlock_irqrestore(&p2pmap_lease_lock, flags);
	/* Re-queueing itself is blocked while it is being cancelled. */
	kthread_cancel_delayed_work_sync(&p2pmap_reap_work);
	/* Every lease was put (windows drained): run their releases, stop. */
	kthread_destroy_worker(p2pmap_worker);
}
