/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Rust for C: the functions the Rust part of p2pmap implements
 * (#[no_mangle] extern "C", in the file that owns what they touch) for
 * its C files. Not an input of bindgen: Rust defines them. Pointers are
 * keys only; Rust never dereferences them.
 */
#ifndef P2PMAP_RUST_H
#define P2PMAP_RUST_H

#include <linux/types.h>

struct inode;
struct pci_dev;
struct task_struct;

/*
 * src/windows.rs, on the lease worker: frees the unclaimed windows that
 * expired; returns the milliseconds until the next one expires, 0 if none
 * is left.
 */
unsigned long p2pmap_rust_reap_unclaimed(void);

/*
 * src/windows.rs, under the inode's flc_lock (must not sleep). lm_break of
 * lease @gen of @inode: true the first time, when C queues
 * p2pmap_rust_lease_broken() on the worker. lm_breaker_owns_lease: whether
 * @task's break passes the lease by (it revoked what it changes itself,
 * or the lease has no holder any more).
 */
bool p2pmap_rust_lease_break(struct inode *inode, u64 gen);
bool p2pmap_rust_lease_passes(struct inode *inode, u64 gen,
			      struct task_struct *task);

/* src/revocation.rs, on the lease worker: revoke every window of @inode. */
void p2pmap_rust_lease_broken(struct inode *inode, u64 gen);
/* src/revocation.rs, on the worker, before a broken lease is released. */
void p2pmap_rust_lease_released(u64 break_ns);

/*
 * src/revocation.rs, from the PCI bus notifier (process context, device
 * lock held): before @pdev is unbound, revoke and free every window of its
 * CMB; after, forget its mark.
 */
void p2pmap_rust_device_unbind(struct pci_dev *pdev);
void p2pmap_rust_device_unbound(struct pci_dev *pdev);

/*
 * src/windows.rs, from p2pmap_pin.c (any context but NMI; spinlocks may be
 * held): give back the claim pin @key holds on the windows of @pa (@npages
 * bus addresses).
 */
/*
 * The write-back worker (p2pmap_flush.c): writes back and commits the
 * queued write windows. Process context; sleeps.
 */
void p2pmap_rust_flush(void);
void p2pmap_rust_pin_release(unsigned long key, const u64 *pa, unsigned long npages);

#endif /* P2PMAP_RUST_H */
