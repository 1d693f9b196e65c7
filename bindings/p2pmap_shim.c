// SPDX-License-Identifier: GPL-2.0
/*
 * Out-of-line wrappers of static inline kernel functions, linked into the
 * same .ko as the Rust code that calls them.
 */
#include <linux/exportfs.h>
#include <linux/exportfs_block.h>
#include <linux/fs.h>
#include <linux/mmu_notifier.h>

#include "p2pmap_shim.h"

void p2pmap_mmu_interval_set_seq(struct mmu_interval_notifier *sub,
				 unsigned long cur_seq)
{
	mmu_interval_set_seq(sub, cur_seq);
}

bool p2pmap_mmu_interval_read_retry(struct mmu_interval_notifier *sub,
				    unsigned long seq)
{
	return mmu_interval_read_retry(sub, seq);
}

bool p2pmap_mmu_notifier_range_blockable(const struct mmu_notifier_range *range)
{
	return mmu_notifier_range_blockable(range);
}

struct inode *p2pmap_file_inode(const struct file *file)
{
	return file_inode(file);
}

const struct exportfs_block_ops *p2pmap_sb_block_ops(const struct super_block *sb)
{
	if (!sb->s_export_op)
		return NULL;
	return sb->s_export_op->block_ops;
}
