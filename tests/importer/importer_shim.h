/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Out-of-line wrappers of the static inline kernel functions the test
 * importer calls from Rust (rust/helpers does not cover them), compiled
 * into the importer only.
 */
#ifndef IMPORTER_SHIM_H
#define IMPORTER_SHIM_H

#include <linux/mmu_notifier.h>
#include <linux/types.h>

struct device;
struct mm_struct;
struct page;

/* include/linux/mmu_notifier.h */
void importer_mmu_interval_set_seq(struct mmu_interval_notifier *sub,
				   unsigned long cur_seq);
bool importer_mmu_interval_read_retry(struct mmu_interval_notifier *sub,
				      unsigned long seq);
bool importer_mmu_notifier_range_blockable(const struct mmu_notifier_range *range);
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

/* include/linux/hmm.h */
struct page *importer_hmm_pfn_to_page(unsigned long hmm_pfn);

/* include/linux/dma-mapping.h */
int importer_dma_mapping_error(struct device *dev, dma_addr_t dma_addr);

/*
 * Sizes and offsets as the C compiler sees them, checked against
 * rust/bindings and the importer's bindgen output at load time.
 */
#define IMPORTER_SZ_VMA			0
#define IMPORTER_SZ_MM			1
#define IMPORTER_SZ_INTERVAL_NOTIFIER	2
#define IMPORTER_SZ_HMM_RANGE		3
#define IMPORTER_OFF_VMA_VM_OPS		4
#define IMPORTER_OFF_VMA_VM_FILE	5
#define IMPORTER_OFF_VM_OPS_DEVICE_MAP	6
#define IMPORTER_OFF_VM_OPS_DEVICE_UNMAP	7
unsigned long importer_layout(int item);

#endif /* IMPORTER_SHIM_H */
