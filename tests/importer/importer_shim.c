// SPDX-License-Identifier: GPL-2.0
/* The test importer's C: wrappers (importer_shim.h) and ABI checks. */
#include <linux/build_bug.h>
#include <linux/device_map_range.h>
#include <linux/dma-buf.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/sched.h>

#include "../include/p2pmap_importer.h"
#include "importer_shim.h"

void importer_device_map_range_lock(struct device_map_range *range)
{
	device_map_range_lock(range);
}

void importer_device_map_range_unlock(struct device_map_range *range)
{
	device_map_range_unlock(range);
}

unsigned int importer_mmu_notifier_range_event(const struct mmu_notifier_range *range)
{
	return range->event;
}

struct mm_struct *importer_current_mm(void)
{
	return current->mm;
}

int importer_raw_device_map(struct mm_struct *mm, unsigned long addr, struct device *dev,
			    unsigned long start, unsigned long end, unsigned int flags,
			    bool with_bufp, dma_addr_t *pa, u64 *map_ns)
{
	const struct vm_operations_struct *ops;
	struct vm_area_struct *vma;
	struct dma_buf *buf = NULL;
	u64 t0;
	int ret;

	mmap_read_lock(mm);
	vma = vma_lookup(mm, addr);
	ops = vma ? vma->vm_ops : NULL;
	if (!ops || !ops->device_map || !ops->device_unmap) {
		mmap_read_unlock(mm);
		return vma ? -EOPNOTSUPP : -EFAULT;
	}
	t0 = ktime_get_ns();
	ret = ops->device_map(vma, dev, with_bufp ? &buf : NULL, start, end, flags, pa);
	if (map_ns)
		*map_ns = ktime_get_ns() - t0;
	if (ret == -EAGAIN)
		return ret;	/* the callee released mmap_lock */
	if (!ret)
		ops->device_unmap(vma, dev, start, end, pa);
	mmap_read_unlock(mm);
	/* Only a PIN mapping comes with a dma_buf; none is served today. */
#if IS_ENABLED(CONFIG_DMA_SHARED_BUFFER)
	if (buf)
		dma_buf_put(buf);
#else
	WARN_ON_ONCE(buf);
#endif
	return ret;
}

unsigned long importer_layout(int item)
{
	switch (item) {
	case IMPORTER_SZ_INTERVAL_NOTIFIER:
		return sizeof(struct mmu_interval_notifier);
	case IMPORTER_SZ_MUTEX:
		return sizeof(struct mutex);
	case IMPORTER_SZ_DEVICE_MAP_RANGE:
		return sizeof(struct device_map_range);
	case IMPORTER_OFF_RANGE_PA:
		return offsetof(struct device_map_range, pa);
	case IMPORTER_OFF_RANGE_MAPPED:
		return offsetof(struct device_map_range, mapped);
	case IMPORTER_OFF_RANGE_VM_OPS:
		return offsetof(struct device_map_range, vm_ops);
	case IMPORTER_OFF_VM_OPS_DEVICE_UNMAP:
		return offsetof(struct vm_operations_struct, device_unmap);
	}
	return ~0UL;
}

/* STATUS.revoked_by is 1 + enum mmu_notifier_event: the ABI names them. */
static_assert(P2PMAP_REVOKED_BY_UNMAP == 1 + MMU_NOTIFY_UNMAP);
static_assert(P2PMAP_REVOKED_BY_CLEAR == 1 + MMU_NOTIFY_CLEAR);
static_assert(P2PMAP_REVOKED_BY_PROTECTION_VMA == 1 + MMU_NOTIFY_PROTECTION_VMA);
static_assert(P2PMAP_REVOKED_BY_PROTECTION_PAGE == 1 + MMU_NOTIFY_PROTECTION_PAGE);
static_assert(P2PMAP_REVOKED_BY_SOFT_DIRTY == 1 + MMU_NOTIFY_SOFT_DIRTY);
static_assert(P2PMAP_REVOKED_BY_RELEASE == 1 + MMU_NOTIFY_RELEASE);
static_assert(P2PMAP_REVOKED_BY_MIGRATE == 1 + MMU_NOTIFY_MIGRATE);
static_assert(P2PMAP_REVOKED_BY_EXCLUSIVE == 1 + MMU_NOTIFY_EXCLUSIVE);

/* STATUS.path and MAP.path are enum device_map_path. */
static_assert(P2PMAP_PATH_P2P == DEVICE_MAP_PATH_P2P);
static_assert(P2PMAP_PATH_FALLBACK == DEVICE_MAP_PATH_PAGES);
/* MAP.flags' write bit is passed to the helper as is. */
static_assert(P2PMAP_MAP_WRITE == DEVICE_MAP_FLAG_WRITE);
