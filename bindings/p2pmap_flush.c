// SPDX-License-Identifier: GPL-2.0
/*
 * The write-back worker of write mappings (module only).
 *
 * A device writes a file through a write mapping into a CMB window; when the
 * last importer gives the window back (device_unmap(), which may run in a
 * non-blockable mmu notifier), Rust marks it queued and calls
 * p2pmap_flush_schedule(). The worker writes the queued windows back to
 * their blocks by bios on the CMB pages and commits them (->commit_blocks()
 * takes the iolock), one at a time, in p2pmap_rust_flush().
 *
 * Its own unbound workqueue, not the real-time lease worker: write-back
 * sleeps on I/O and on the filesystem's locks, and a lease break must never
 * wait behind it. WQ_MEM_RECLAIM: freeing CMB space (what the writeback of
 * a window ends with) must make progress under memory pressure.
 */
#include <linux/workqueue.h>

#include "p2pmap_rust.h"
#include "p2pmap_shim.h"

static struct workqueue_struct *p2pmap_flush_wq;

static void p2pmap_flush_fn(struct work_struct *work)
{
	p2pmap_rust_flush();
}

static DECLARE_WORK(p2pmap_flush_work, p2pmap_flush_fn);

void p2pmap_flush_schedule(void)
{
	if (p2pmap_flush_wq)
		queue_work(p2pmap_flush_wq, &p2pmap_flush_work);
}

int p2pmap_flush_init(void)
{
	p2pmap_flush_wq = alloc_workqueue("p2pmap_writeback",
					  WQ_UNBOUND | WQ_MEM_RECLAIM, 1);
	return p2pmap_flush_wq ? 0 : -ENOMEM;
}

void p2pmap_flush_exit(void)
{
	struct workqueue_struct *wq = p2pmap_flush_wq;

	/* Runs what is queued to the end (drain_workqueue()), then frees. */
	p2pmap_flush_wq = NULL;
	if (wq)
		destroy_workqueue(wq);
}
