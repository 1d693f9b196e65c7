// SPDX-License-Identifier: GPL-2.0
/* The test importer's C: wrappers (importer_shim.h) and ABI checks. */
#include <linux/build_bug.h>
#include <linux/dma-mapping.h>
#include <linux/hmm.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/sched.h>

#include "../include/p2pmap_importer.h"
#include "importer_shim.h"

void importer_mmu_interval_set_seq(struct mmu_interval_notifier *sub,
				   unsigned long cur_seq)
{
	mmu_interval_set_seq(sub, cur_seq);
}

bool importer_mmu_interval_read_retry(struct mmu_interval_notifier *sub,
				      unsigned long seq)
{
	return mmu_interval_read_retry(sub, seq);
}

bool importer_mmu_notifier_range_blockable(const struct mmu_notifier_range *range)
{
	return mmu_notifier_range_blockable(range);
}

unsigned int importer_mmu_notifier_range_event(const struct mmu_notifier_range *range)
{
	return range->event;
}

struct mm_struct *importer_current_mm(void)
{
	return current->mm;
}

struct page *importer_hmm_pfn_to_page(unsigned long hmm_pfn)
{
	return hmm_pfn_to_page(hmm_pfn);
}

int importer_dma_mapping_error(struct device *dev, dma_addr_t dma_addr)
{
	return dma_mapping_error(dev, dma_addr);
}

unsigned long importer_layout(int item)
{
	switch (item) {
	case IMPORTER_SZ_VMA:
		return sizeof(struct vm_area_struct);
	case IMPORTER_SZ_MM:
		return sizeof(struct mm_struct);
	case IMPORTER_SZ_INTERVAL_NOTIFIER:
		return sizeof(struct mmu_interval_notifier);
	case IMPORTER_SZ_HMM_RANGE:
		return sizeof(struct hmm_range);
	case IMPORTER_OFF_VMA_VM_OPS:
		return offsetof(struct vm_area_struct, vm_ops);
	case IMPORTER_OFF_VMA_VM_FILE:
		return offsetof(struct vm_area_struct, vm_file);
	case IMPORTER_OFF_VM_OPS_DEVICE_MAP:
		return offsetof(struct vm_operations_struct, device_map);
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
