// SPDX-License-Identifier: GPL-2.0
/*
 * FL_LAYOUT leases for p2pmap (model: fs/nfsd/nfs4layouts.c).
 *
 * While p2pmap holds CMB windows of an inode it holds one layout lease on
 * it. Whatever changes the inode's block map (XFS: truncate, hole punch,
 * fallocate, reflink, write()) breaks the lease first.
 *
 * The lease's state lives in Rust, with the rest of the inode's state
 * (src/windows.rs: its holders, whether and when it was broken, the tasks
 * that pass it by); this file keeps only what must be C, as nfsd's
 * nfs4layouts.c does: the file_lease and its lm_ops, kernel_setlease(),
 * and the kthread worker. It names the Rust state by the inode and the
 * lease's generation (@gen), which Rust hands out once per lease taken.
 *
 * lm_break runs under the inode's flc_lock: it asks Rust
 * (p2pmap_rust_lease_break()) and, on the first break, queues the
 * revocation of the inode's windows on a real-time kthread worker (see
 * p2pmap_lease_init()). The windows drop their holds as they go; the last
 * one makes Rust call p2pmap_lease_release(), which queues the release on
 * the same worker, and the breaker proceeds.
 *
 * That is the slow path. XFS announces the range it is about to change
 * before it breaks the leases (filemap_device_break_begin(), patches 8 and
 * 10): p2pmap revokes the windows of that range in XFS's task and records
 * the task on the lease, which lm_breaker_owns_lease() then passes by
 * (p2pmap_rust_lease_passes()): no lm_break, no worker, no wait, and the
 * windows of the rest of the file stay.
 *
 * The same worker runs the reaper of unclaimed windows (staged by a
 * device_map() slow path whose caller never came back for them):
 * p2pmap_reap_schedule(), p2pmap_rust_reap_unclaimed().
 */
#include <linux/err.h>
#include <linux/file.h>
#include <linux/filelock.h>
#include <linux/fs.h>
#include <linux/jiffies.h>
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

#include "p2pmap_rust.h"
#include "p2pmap_shim.h"

struct p2pmap_lease {
	struct inode *inode;		/* key of the Rust state; pinned by @file */
	struct file *file;		/* our reference */
	u64 gen;			/* the Rust state's generation */
	u64 break_ns;			/* set by p2pmap_lease_release() */
	struct kthread_work break_work;
	struct kthread_work release_work;
};

static struct kthread_worker *p2pmap_worker;
/* Module exit: lm_break queues nothing any more (under p2pmap_exit_lock). */
static bool p2pmap_lease_exiting;
static DEFINE_SPINLOCK(p2pmap_exit_lock);
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

	p2pmap_rust_lease_broken(l->inode, l->gen);
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

	if (p2pmap_rust_lease_break(l->inode, l->gen)) {
		spin_lock_irqsave(&p2pmap_exit_lock, flags);
		/* At exit every window is being revoked anyway. */
		if (!p2pmap_lease_exiting)
			kthread_queue_work(p2pmap_worker, &l->break_work);
		spin_unlock_irqrestore(&p2pmap_exit_lock, flags);
	}
	/* false: the breaker waits until we release the lease */
	return false;
}

/*
 * Under the inode's flc_lock, in the breaking task, for every lease the
 * break meets (and in generic_add_lease() for the lease being added, as
 * patch 6 checks it against the waiting breakers).
 */
static bool p2pmap_lm_breaker_owns_lease(struct file_lease *fl)
{
	struct p2pmap_lease *l = fl->c.flc_owner;

	return p2pmap_rust_lease_passes(l->inode, l->gen, current);
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

struct p2pmap_lease *p2pmap_lease_take(struct file *file, u64 gen)
{
	struct p2pmap_lease *l;
	struct file_lease *fl;
	int ret;

	might_sleep();
	l = kzalloc(sizeof(*l), GFP_KERNEL);
	if (!l)
		return ERR_PTR(-ENOMEM);
	l->inode = file_inode(file);
	l->gen = gen;
	/*
	 * The lease lives on a file of our own: releasing a lease resets the
	 * F_SETOWN/F_SETSIG state of its file (lease_modify()), which must not
	 * be the user's (nfsd leases its own nfsd_file too).
	 */
	l->file = dentry_open(&file->f_path, O_RDONLY | O_LARGEFILE, file->f_cred);
	if (IS_ERR(l->file)) {
		ret = PTR_ERR(l->file);
		kfree(l);
		return ERR_PTR(ret);
	}
	kthread_init_work(&l->break_work, p2pmap_lease_break_fn);
	kthread_init_work(&l->release_work, p2pmap_lease_release_fn);

	fl = locks_alloc_lease();
	if (!fl) {
		ret = -ENOMEM;
		goto out_free;
	}
	fl->fl_lmops = &p2pmap_lm_ops;
	fl->c.flc_flags = FL_LAYOUT;
	fl->c.flc_type = F_RDLCK;
	fl->c.flc_owner = l;
	fl->c.flc_pid = current->tgid;
	fl->c.flc_file = l->file;
	/*
	 * -EAGAIN while a lease we held is still being released after a
	 * break (FL_UNLOCK_PENDING), and while a breaker still waits for the
	 * inode's leases to go: the series makes generic_add_lease() refuse
	 * a lease that a waiting breaker would never break (patch 6). From
	 * here on lm_ops may be called: Rust has the state of @gen already.
	 */
	ret = kernel_setlease(l->file, F_RDLCK, &fl, NULL);
	if (fl)
		locks_free_lease(fl);	/* not used (error, or merged) */
	if (ret)
		goto out_free;
	return l;

out_free:
	fput(l->file);
	kfree(l);
	return ERR_PTR(ret);
}

void p2pmap_lease_release(struct p2pmap_lease *l, u64 break_ns)
{
	l->break_ns = break_ns;
	kthread_queue_work(p2pmap_worker, &l->release_work);
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

	spin_lock_irqsave(&p2pmap_exit_lock, flags);
	p2pmap_lease_exiting = true;
	spin_unlock_irqrestore(&p2pmap_exit_lock, flags);
	/* Re-queueing itself is blocked while it is being cancelled. */
	kthread_cancel_delayed_work_sync(&p2pmap_reap_work);
	/* Every lease was put (windows drained): run their releases, stop. */
	kthread_destroy_worker(p2pmap_worker);
}
