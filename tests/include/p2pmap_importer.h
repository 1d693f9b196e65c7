/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ABI of the p2pmap test importer (tests/importer), a driver for QEMU's
 * "edu" PCI device that maps file ranges through vm_ops->device_map() and
 * reads them with the edu DMA engine. Device node: /dev/p2pmap_importer.
 *
 * Handles belong to the open file that created them; closing the file
 * unmaps them all.
 *
 * The one copy of this ABI: the C tests include it, the importer
 * (tests/importer/Kbuild) and p2pctl (tests/tools/p2pctl/build.rs) get
 * their Rust definitions from it through bindgen
 * (p2pmap_importer_consts.h).
 */
#ifndef _P2PMAP_IMPORTER_H
#define _P2PMAP_IMPORTER_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define P2PMAP_IMPORTER_DEV	"/dev/p2pmap_importer"

/* p2pmap_map.flags, passed through to device_map() */
#define P2PMAP_MAP_WRITE	(1U << 1)	/* DEVICE_MAP_FLAG_WRITE */
#define P2PMAP_MAP_ATOMIC	(1U << 2)	/* DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP, with WRITE */
/* importer-only flags (bits 16..) */
#define P2PMAP_MAP_NO_FALLBACK	(1U << 16)	/* fail instead of using the page cache */

/*
 * MAP: map [addr, addr + len) of the caller's address space for the edu
 * device. addr and len must be page aligned, len > 0, inside one vma.
 * Returns the handle (> 0) in .handle.
 * Errors: EINVAL (alignment, length, overflow, unknown flags, ATOMIC
 * without WRITE), EFAULT (no
 * vma, the range leaves the vma, or the fallback faulted past EOF), EPERM
 * (P2PMAP_MAP_WRITE on a range the process may not write: the fallback's
 * hmm_range_fault()), E2BIG (more than 128 MiB), ENOMEM, EBUSY
 * (invalidated during each of 16 attempts); with P2PMAP_MAP_NO_FALLBACK, device_map()'s refusal itself
 * (EOPNOTSUPP for a vma without device_map, else the provider's errno:
 * EBUSY, ENXIO, ENOSPC, ...; the p2pmap debugfs counters say why).
 */
struct p2pmap_map {
	__u64 addr;
	__u64 len;
	__u32 flags;
	__u32 handle;		/* out */
	__s32 p2p_errno;	/* out: 0 if device_map served, else -errno */
	__u32 path;		/* out: P2PMAP_PATH_* */
};

#define P2PMAP_PATH_P2P		1	/* device_map() bus addresses */
#define P2PMAP_PATH_FALLBACK	2	/* page cache pages, dma_map_page() */
#define P2PMAP_PATH_PINNED	3	/* the dma_buf of a PIN device_map(), attached */

/*
 * READ: DMA [offset, offset + len) of the mapping into the edu buffer in
 * 4 KiB steps and copy it to buf. WRITE is the reverse (write mappings).
 * Errors: ENOENT (no such handle), ESTALE (revoked: unmap and map again),
 * EINVAL (range outside the mapping), EFAULT (buf), ETIMEDOUT (a DMA
 * transfer timed out; the engine was reset), EIO (the engine could not be
 * reset and is disabled), EACCES (WRITE through a mapping made without
 * P2PMAP_MAP_WRITE).
 */
struct p2pmap_rw {
	__u32 handle;
	__u32 pad;
	__u64 offset;
	__u64 len;
	__u64 buf;
};

/* STATUS: state of a handle. */
struct p2pmap_status {
	__u32 handle;
	__u32 path;		/* P2PMAP_PATH_* */
	__s32 p2p_errno;	/* why device_map did not serve (fallback) */
	__u32 mapped;		/* 1 while the device may access the mapping */
	__u32 revoked;		/* 1 after an invalidation */
	__u32 revoked_by;	/* P2PMAP_REVOKED_BY_*: what revoked it */
	__u64 invalidations;	/* invalidate callbacks that hit the range */
	__u64 quiesce_ns;	/* last invalidation: callback entry -> DMA quiesced */
	__u64 len;
};

/*
 * p2pmap_status.revoked_by: 1 + the enum mmu_notifier_event of the
 * invalidation that revoked the mapping (include/linux/mmu_notifier.h), 0
 * while it is not revoked. CLEAR is unmap_mapping_range(): the filesystem
 * (truncate, punch) or the provider (a lease break, a CPU store, CMB
 * pressure, NVMe removal, unload; its debugfs counters say which); UNMAP
 * is munmap() or exit; PROTECTION_PAGE is writeback write-protecting a
 * page of the range; MIGRATE is page migration or compaction.
 */
#define P2PMAP_REVOKED_BY_NONE			0
#define P2PMAP_REVOKED_BY_UNMAP			1
#define P2PMAP_REVOKED_BY_CLEAR			2
#define P2PMAP_REVOKED_BY_PROTECTION_VMA	3
#define P2PMAP_REVOKED_BY_PROTECTION_PAGE	4
#define P2PMAP_REVOKED_BY_SOFT_DIRTY		5
#define P2PMAP_REVOKED_BY_RELEASE		6
#define P2PMAP_REVOKED_BY_MIGRATE		7
#define P2PMAP_REVOKED_BY_EXCLUSIVE		8

#define P2PMAP_IOC_MAGIC	'p'
#define P2PMAP_IOC_MAP		_IOWR(P2PMAP_IOC_MAGIC, 1, struct p2pmap_map)
#define P2PMAP_IOC_READ		_IOW(P2PMAP_IOC_MAGIC, 2, struct p2pmap_rw)
#define P2PMAP_IOC_WRITE	_IOW(P2PMAP_IOC_MAGIC, 3, struct p2pmap_rw)
#define P2PMAP_IOC_STATUS	_IOWR(P2PMAP_IOC_MAGIC, 4, struct p2pmap_status)
#define P2PMAP_IOC_UNMAP	_IOW(P2PMAP_IOC_MAGIC, 5, __u32)
/*
 * UNMAP_AGAIN (fault injection): call device_unmap() once more for a P2P
 * handle whose mapping was already given back (revoked), as a buggy
 * importer would. Errors: ENOENT, EBUSY (still mapped), EINVAL (never
 * mapped peer to peer).
 */
#define P2PMAP_IOC_UNMAP_AGAIN	_IOW(P2PMAP_IOC_MAGIC, 6, __u32)
/*
 * INJECT_TIMEOUT (fault injection): the device's next N DMA transfers
 * (N <= 16; 0 cancels) are declared timed out as soon as they started,
 * while the engine still runs them. A READ or WRITE that meets one fails
 * with ETIMEDOUT after the driver reset the engine (bus mastering off
 * until the engine is idle, then on again); the next one works.
 * Errors: EINVAL (N > 16).
 *
 * Every ioctl fails with ENODEV once the edu function is being unbound:
 * the unbind waits for ioctls in progress, then revokes every mapping of
 * every open file.
 */
#define P2PMAP_IOC_INJECT_TIMEOUT	_IOW(P2PMAP_IOC_MAGIC, 7, __u32)

/*
 * FUZZ_DEVICE_MAP: calls the device_map() of the vma at addr directly,
 * count times, with arguments drawn from seed (ranges in and around
 * [addr, addr + len), empty, reversed and unaligned ones, every flag and
 * random bits, with and without a dma_buf pointer), under mmap_lock as
 * the contract says, and device_unmap() right after each success. Counts
 * how the calls ended; errno_mask has bit e set (e < 128) when a call
 * failed with -e, other_errno is the first failure outside that range.
 * A vma without device_map counts every call as refused with EOPNOTSUPP.
 * count is at most 100000. Errors: EINVAL (count; len not page aligned,
 * 0 or over 128 MiB), EFAULT (no vma at addr).
 */
struct p2pmap_fuzz {
	__u64 addr;
	__u64 len;
	__u64 seed;
	__u32 count;
	__u32 served;		/* out: returned 0 (then given back) */
	__u32 retried;		/* out: -EAGAIN (mmap_lock released) */
	__u32 refused;		/* out: any other error */
	__u64 errno_mask[2];	/* out */
	__s32 other_errno;	/* out */
	__u32 pad;
};

#define P2PMAP_FUZZ_MAX_COUNT	100000
#define P2PMAP_IOC_FUZZ_DEVICE_MAP	_IOWR(P2PMAP_IOC_MAGIC, 8, struct p2pmap_fuzz)

/*
 * TIME_DEVICE_MAP (benchmark): calls the device_map() of the vma at addr for
 * exactly [addr, addr + len) with no flag, count times, under mmap_lock,
 * and device_unmap() right after each success, timing each device_map()
 * call alone (ktime_get_ns() around it). With the range already staged and
 * held by a mapping, every call is p2pmap's fast path. served counts the
 * calls that returned 0; p50/p99/max are over those (nearest rank);
 * first_errno is the first other result (-EAGAIN: a slow path ran).
 * Errors: EINVAL (count 0 or over P2PMAP_TIME_MAX_COUNT, len 0, not page
 * aligned or over 32 pages), EFAULT (no vma at addr), ENOMEM.
 */
struct p2pmap_time_map {
	__u64 addr;
	__u64 len;
	__u32 count;
	__u32 served;		/* out */
	__u64 p50_ns;		/* out */
	__u64 p99_ns;		/* out */
	__u64 max_ns;		/* out */
	__s32 first_errno;	/* out */
	__u32 pad;
};

#define P2PMAP_TIME_MAX_COUNT	100000
#define P2PMAP_TIME_MAX_PAGES	32
#define P2PMAP_IOC_TIME_DEVICE_MAP	_IOWR(P2PMAP_IOC_MAGIC, 9, struct p2pmap_time_map)

/*
 * MAP_PIN: device_map() with DEVICE_MAP_FLAG_PIN for [addr, addr + len)
 * (page aligned, inside one vma; .flags must be 0). The mapping belongs to
 * the dma_buf device_map() returns, which the edu device attaches as a
 * dynamic importer (allow_peer2peer, invalidate_mappings) and maps:
 * munmap, close and exit no longer end it. The handle (.path
 * P2PMAP_PATH_PINNED) works with READ, STATUS (revoked: the exporter
 * invalidated it) and UNMAP (which puts the importer's reference). No
 * page-cache fallback. Errors: EINVAL, E2BIG, EFAULT as MAP; device_map()'s
 * refusal (EOPNOTSUPP when pinning is not allowed: p2pmap's allow_pin);
 * the attachment's (EXDEV, EOPNOTSUPP); ENODEV (revoked before it mapped).
 */
#define P2PMAP_IOC_MAP_PIN	_IOWR(P2PMAP_IOC_MAGIC, 10, struct p2pmap_map)
/*
 * PIN_FD: returns a new file descriptor (O_CLOEXEC) of a pinned handle's
 * dma_buf, with its own reference, for another process to IMPORT.
 * Errors: ENOENT, EINVAL (not a pinned handle).
 */
#define P2PMAP_IOC_PIN_FD	_IOW(P2PMAP_IOC_MAGIC, 11, __u32)
/*
 * IMPORT: attaches the edu device to the dma_buf of .fd and maps it, as
 * MAP_PIN does: a pinned handle (.handle) of .len bytes. .flags (testing
 * the exporter's refusals): P2PMAP_IMPORT_STATIC attaches as a static
 * importer (no invalidate_mappings), P2PMAP_IMPORT_NO_P2P without
 * allow_peer2peer.
 * Errors: EBADF/EINVAL (not a dma_buf, unknown flags), the attachment's,
 * ENODEV (revoked).
 */
struct p2pmap_import {
	__s32 fd;
	__u32 flags;
	__u32 handle;		/* out */
	__u32 pad;
	__u64 len;		/* out */
};

#define P2PMAP_IMPORT_STATIC	(1U << 0)
#define P2PMAP_IMPORT_NO_P2P	(1U << 1)
#define P2PMAP_IOC_IMPORT	_IOWR(P2PMAP_IOC_MAGIC, 12, struct p2pmap_import)

#endif /* _P2PMAP_IMPORTER_H */
