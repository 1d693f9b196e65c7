/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Out-of-line wrappers of the static inline kernel functions the test
 * importer calls from Rust (rust/helpers does not cover them), compiled
 * into the importer only.
 */
#ifndef IMPORTER_SHIM_H
#define IMPORTER_SHIM_H

#include <linux/device_map_range.h>
#include <linux/mmu_notifier.h>
#include <linux/types.h>

struct mm_struct;

/* include/linux/device_map_range.h */
void importer_device_map_range_lock(struct device_map_range *range);
void importer_device_map_range_unlock(struct device_map_range *range);

/* range->event: enum mmu_notifier_event, what the invalidation is for. */
unsigned int importer_mmu_notifier_range_event(const struct mmu_notifier_range *range);

/*
 * current->mm (no reference taken). Rust's `current!().mm()` reads the
 * field at the offset of rust/bindings' `task_struct`, which does not match
 * the C layout in this build (936 vs 984), so it must not be used. Cause:
 * with CONFIG_SCHEDSTATS=n and CONFIG_SCHED_CORE=n, struct sched_statistics
 * is empty but ____cacheline_aligned; bindgen emits it without
 * #[repr(align(64))], so task_struct::stats sits at 720 in Rust and 768 in
 * C, and every later field is 48 bytes off (sizeof 5120 vs 5184).
 */
struct mm_struct *importer_current_mm(void);

/*
 * One raw vma->vm_ops->device_map() call, for fuzzing it: for @dev, on the
 * vma of @mm that contains @addr, with the caller's arguments (possibly
 * outside the contract; @pa must have room for the pages of [@start, @end)
 * when @start < @end), under mmap_lock for read, then device_unmap() of a
 * successful one under the same hold and dma_buf_put() of a returned
 * dma_buf. Returns device_map()'s result (-EAGAIN: it released
 * mmap_lock), or -EFAULT (no vma at @addr), -EOPNOTSUPP (no device_map).
 * If @map_ns is not NULL, it receives the nanoseconds the device_map()
 * call itself took (ktime_get_ns() around it).
 */
int importer_raw_device_map(struct mm_struct *mm, unsigned long addr, struct device *dev,
			    unsigned long start, unsigned long end, unsigned int flags,
			    bool with_bufp, dma_addr_t *pa, u64 *map_ns);

/*
 * DEVICE_MAP_FLAG_PIN (importer_pin.c). importer_pin_device_map(): calls
 * the device_map() of @mm's vma at @start with PIN for [@start, @end)
 * (retrying while it releases mmap_lock) and stores the dma_buf in *@out.
 * importer_pin_import(): attaches @dev dynamically to @dmabuf (whose
 * reference it takes over, put on error) and maps it; ERR_PTR on error.
 * @flags P2PMAP_IMPORT_*: attach statically, or without allow_peer2peer.
 * importer_pin_free() unmaps, detaches and puts. importer_pin_fd(): a new
 * fd of the buffer (its own reference). importer_pin_bus(), under
 * importer_pin_lock(): the bus address of page @page, 0 once revoked.
 */
struct dma_buf;
struct importer_pin;
int importer_pin_device_map(struct mm_struct *mm, struct device *dev,
			    unsigned long start, unsigned long end,
			    struct dma_buf **out);
struct importer_pin *importer_pin_import(struct dma_buf *dmabuf, struct device *dev,
					 unsigned int flags);
struct dma_buf *importer_dma_buf_get(int fd);
void importer_pin_free(struct importer_pin *pin);
int importer_pin_fd(struct importer_pin *pin);
void importer_pin_lock(struct importer_pin *pin);
void importer_pin_unlock(struct importer_pin *pin);
u64 importer_pin_bus(struct importer_pin *pin, unsigned long page);
void importer_pin_state(struct importer_pin *pin, bool *mapped, bool *revoked,
			u64 *invalidations, u64 *len);

/*
 * Sizes and offsets as the C compiler sees them, checked against
 * rust/bindings and the importer's bindgen output at load time.
 */
#define IMPORTER_SZ_INTERVAL_NOTIFIER	0
#define IMPORTER_SZ_MUTEX		1
#define IMPORTER_SZ_DEVICE_MAP_RANGE	2
#define IMPORTER_OFF_RANGE_PA		3
#define IMPORTER_OFF_RANGE_MAPPED	4
#define IMPORTER_OFF_RANGE_VM_OPS	5
#define IMPORTER_OFF_VM_OPS_DEVICE_UNMAP	6
unsigned long importer_layout(int item);

#endif /* IMPORTER_SHIM_H */
