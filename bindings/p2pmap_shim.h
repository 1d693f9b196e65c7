/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Out-of-line wrappers of the static inline kernel functions p2pmap and its
 * test importer call from Rust (rust/helpers does not cover them).
 */
#ifndef P2PMAP_SHIM_H
#define P2PMAP_SHIM_H

#include <linux/mmu_notifier.h>
#include <linux/types.h>

struct device;
struct file;
struct inode;
struct page;
struct super_block;
struct exportfs_block_ops;

/* include/linux/mmu_notifier.h */
void p2pmap_mmu_interval_set_seq(struct mmu_interval_notifier *sub,
				 unsigned long cur_seq);
bool p2pmap_mmu_interval_read_retry(struct mmu_interval_notifier *sub,
				    unsigned long seq);
bool p2pmap_mmu_notifier_range_blockable(const struct mmu_notifier_range *range);

/*
 * current->mm (no reference taken). Rust's `current!().mm()` reads the
 * field at the offset of rust/bindings' `task_struct`, which does not match
 * the C layout in this build (936 vs 984), so it must not be used.
 */
struct mm_struct *p2pmap_current_mm(void);

/* include/linux/hmm.h */
struct page *p2pmap_hmm_pfn_to_page(unsigned long hmm_pfn);

/* include/linux/dma-mapping.h */
int p2pmap_dma_mapping_error(struct device *dev, dma_addr_t dma_addr);
int p2pmap_dma_set_mask_and_coherent(struct device *dev, u64 mask);

/* include/linux/fs.h */
struct inode *p2pmap_file_inode(const struct file *file);

/* sb->s_export_op->block_ops, or NULL (include/linux/exportfs_block.h) */
const struct exportfs_block_ops *p2pmap_sb_block_ops(const struct super_block *sb);

/*
 * Sizes and offsets as the C compiler sees them, for the modules to check
 * the layouts they use from rust/bindings at load time (see
 * p2pmap_current_mm() for why).
 */
#define P2PMAP_SZ_VMA			0
#define P2PMAP_SZ_MM			1
#define P2PMAP_SZ_VM_OPS		2
#define P2PMAP_SZ_INTERVAL_NOTIFIER	3
#define P2PMAP_SZ_HMM_RANGE		4
#define P2PMAP_SZ_DEVICE_MAP_PROVIDER	5
#define P2PMAP_OFF_VMA_VM_OPS		6
#define P2PMAP_OFF_VMA_VM_FILE		7
#define P2PMAP_OFF_VMA_VM_MM		8
#define P2PMAP_OFF_VM_OPS_DEVICE_MAP	9
#define P2PMAP_OFF_VM_OPS_DEVICE_UNMAP	10
#define P2PMAP_SZ_FILE			11
unsigned long p2pmap_layout(int item);

#endif /* P2PMAP_SHIM_H */
